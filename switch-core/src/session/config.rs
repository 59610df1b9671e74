//! [`SessionConfig`]: the tunables of a session and their defaults.

use std::time::Duration;

use crate::wire::Limits;

/// Tunables of a session. The hub's values win in the handshake for
/// keep-alive, timeout and limits.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Send a PING after this long without sending or receiving anything.
    pub keepalive: Duration,
    /// Declare the link dead after this long without receiving anything.
    pub timeout: Duration,
    /// How long the hub keeps a detached session for a resume.
    pub detach_grace: Duration,
    /// Frame size and batch limits.
    pub limits: Limits,
    /// Most frames kept for retransmission (unacked plus not yet sent).
    pub max_buffered_frames: usize,
    /// Most bytes kept for retransmission (frame bytes + 4 per frame).
    pub max_buffered_bytes: usize,
    /// Send an ACK after this many new frames received…
    pub ack_every: u64,
    /// …or once this many frame bytes arrived unacknowledged (64 KiB
    /// offload super frames fill the peer's buffer long before 64 frames)…
    pub ack_bytes: u64,
    /// …or this long after the first unacknowledged one, whichever is first.
    pub ack_delay: Duration,
    /// Frames carry a `virtio_net_hdr` (see [`crate::offload`]). A client
    /// sets it to ask for it; after the handshake it says whether the hub
    /// agreed. A hub sets it on the sessions it accepts with offload.
    pub offload: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            keepalive: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            detach_grace: Duration::from_secs(60),
            limits: Limits::default(),
            max_buffered_frames: 4096,
            max_buffered_bytes: 1 << 20,
            ack_every: 64,
            ack_bytes: 256 * 1024,
            ack_delay: Duration::from_millis(5),
            offload: false,
        }
    }
}
