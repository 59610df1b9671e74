//! One end of a `vhub/1` session, as a state machine fed with bytes and time.
//!
//! ```text
//!      client: connect() + reconnect()     hub: accept()
//!                 │                              │
//!                 ▼        101 received          ▼
//!           Handshaking ───────────────────► Established ◄──┐
//!                 ▲                              │          │ resume (hub)
//!  reconnect()    │            link_lost() or    │          │ 101 with Vhub-Rx (client)
//!  (client)       │            keep-alive timeout▼          │
//!                 └─────────────────────────  Detached ─────┘
//!                                                │ grace period over (hub),
//!                                                ▼ CLOSE, fatal refusal
//!                                              Closed
//! ```
//!
//! Frames carry consecutive sequence numbers per direction, starting at 1.
//! Every frame handed to [`Session::send_frame`] is kept in a bounded
//! retransmit buffer until the peer acknowledges it (cumulatively, with
//! ACK messages that this end sends at most every [`SessionConfig::ack_every`]
//! frames or [`SessionConfig::ack_delay`]). When a link dies, the client
//! reconnects and both ends tell each other the last sequence number they
//! received; each then re-sends what the other is missing, and the receiver
//! drops anything it has already seen. Frames sent while detached simply
//! wait in the same buffer.
//!
//! ## When the buffer is full
//!
//! The buffer is bounded by [`SessionConfig::max_buffered_frames`] and
//! [`SessionConfig::max_buffered_bytes`]. A new frame that does not fit:
//!
//! 1. first evicts the oldest frames that were already *transmitted* (still
//!    unacknowledged). On a live link those almost always arrive anyway; the
//!    eviction only costs the ability to re-send them after a link loss. It is
//!    counted in [`SessionStats::evicted`], and if a resume later finds the peer
//!    missing an evicted frame, the gap is counted in [`SessionStats::lost_on_resume`].
//! 2. if every buffered frame is still waiting for its first transmission (a
//!    detached session, or a peer that reads slower than we send), the *new*
//!    frame is dropped — a tail drop, like a real switch port — and counted in
//!    [`SessionStats::tail_drops`].
//!
//! Nothing is dropped silently: every loss lands in one of those counters.
//!
//! ## Where things are
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`Session`]'s fields, constructors, accessors |
//! | `config.rs` | [`SessionConfig`] and its defaults |
//! | `role.rs` | [`Connect`] (client), [`Accept`] (hub) |
//! | `event.rs` | [`State`], [`Event`], [`Session::poll_event`] |
//! | `stats.rs` | [`SessionStats`] |
//! | `error.rs` | [`SessionError`], [`SendError`], [`ResumeError`] |
//! | `handshake.rs` | the upgrade request, the `101`, reading the answer |
//! | `input.rs` | [`Session::handle_input`]: received messages |
//! | `buffer.rs` | the retransmit buffer: [`Session::send_frame`], ACKs, eviction |
//! | `output.rs` | [`Session::poll_transmit`]: what is sent when |
//! | `timers.rs` | keep-alive, link timeout, grace period, [`Session::poll_timeout`] |
//! | `resume.rs` | link lost, reconnect, resume, re-send, expiry |
//! | `close.rs` | [`Session::close`] and protocol errors |
//! | `ring.rs` | the byte ring under the retransmit buffer |

mod buffer;
mod close;
mod config;
mod error;
mod event;
mod handshake;
mod input;
mod output;
mod resume;
mod ring;
mod role;
mod stats;
mod timers;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::wire::http::SessionToken;
use crate::wire::CloseCode;
use ring::ByteRing;
use role::Role;

pub use config::SessionConfig;
pub use error::{ResumeError, SendError, SessionError};
pub use event::{Event, State};
pub use role::{Accept, Connect};
pub use stats::SessionStats;

/// One end of a session. See the module documentation.
#[derive(Debug)]
pub struct Session {
    role: Role,
    state: State,
    config: SessionConfig,
    /// Origin of PING payloads (nanoseconds since this instant).
    epoch: Instant,
    token: Option<SessionToken>,

    // --- transmit side ---
    ring: ByteRing,
    /// Sequence number of the oldest frame in `ring`.
    ring_first: u64,
    /// Next sequence number to assign.
    tx_next: u64,
    /// Next sequence number to transmit (`ring_first ..= tx_next`).
    tx_sent: u64,
    /// Byte offset of frame `tx_sent` in `ring`.
    sent_offset: usize,
    /// Highest sequence number ever transmitted.
    tx_high: u64,
    /// Highest cumulative ack from the peer.
    peer_acked: u64,

    // --- receive side ---
    rx_last: u64,
    ack_sent: u64,
    /// Client: the offload the caller asked for (the config's flag becomes
    /// what the hub granted).
    wants_offload: bool,
    /// Frame bytes received since the last ACK sent.
    rx_unacked_bytes: u64,
    ack_deadline: Option<Instant>,

    // --- control output ---
    handshake_out: Vec<u8>,
    pongs_due: VecDeque<u64>,
    close_out: Option<(CloseCode, String)>,

    // --- timers ---
    last_rx: Instant,
    last_tx: Instant,
    last_ping: Option<Instant>,
    detached_at: Option<Instant>,
    rtt: Option<Duration>,

    events: VecDeque<Event>,
    stats: SessionStats,
}

impl Session {
    fn new(role: Role, state: State, now: Instant, config: SessionConfig) -> Self {
        let wants_offload = config.offload;
        Self {
            role,
            state,
            config,
            epoch: now,
            token: None,
            ring: ByteRing::default(),
            ring_first: 1,
            tx_next: 1,
            tx_sent: 1,
            sent_offset: 0,
            tx_high: 0,
            peer_acked: 0,
            rx_last: 0,
            ack_sent: 0,
            wants_offload,
            rx_unacked_bytes: 0,
            ack_deadline: None,
            handshake_out: Vec::new(),
            pongs_due: VecDeque::new(),
            close_out: None,
            last_rx: now,
            last_tx: now,
            last_ping: None,
            detached_at: None,
            rtt: None,
            events: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// A client session with no link yet: it runs no timers and sends
    /// nothing until [`reconnect`](Self::reconnect) says a link is up
    /// (however long TCP, a relay and TLS take to get there).
    pub fn connect(now: Instant, config: SessionConfig, connect: Connect) -> Self {
        Self::new(Role::Client { connect }, State::Detached, now, config)
    }

    /// A hub session for an upgrade request the hub has accepted
    /// (authenticated, hub found). The first `poll_transmit` yields the
    /// `101 Switching Protocols`. The hub's `config` is what both ends use.
    pub fn accept(now: Instant, config: SessionConfig, accept: Accept) -> Self {
        let mut s = Self::new(Role::Hub, State::Established, now, config);
        s.token = Some(accept.token);
        s.emit_upgrade_response(None);
        s.events.push_back(Event::Established {
            resumed: false,
            resent: 0,
            lost: 0,
        });
        s
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    pub fn token(&self) -> Option<SessionToken> {
        self.token
    }

    /// Whether this session's frames carry a `virtio_net_hdr` (asked for
    /// and granted; see [`crate::offload`]).
    pub fn offload(&self) -> bool {
        self.config.offload
    }

    /// The effective configuration (after the handshake, the hub's values).
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Round-trip time from the last PING/PONG.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Highest sequence number received from the peer.
    pub fn rx_last(&self) -> u64 {
        self.rx_last
    }

    /// Bytes buffered (frames + 4 per frame), against
    /// [`SessionConfig::max_buffered_bytes`].
    pub fn buffered_bytes(&self) -> usize {
        self.ring.len()
    }

    /// Frames buffered (unacknowledged or not yet sent).
    pub fn buffered_frames(&self) -> u64 {
        self.tx_next - self.ring_first
    }

    /// Bytes of buffer memory held.
    pub fn buffer_capacity(&self) -> usize {
        self.ring.capacity()
    }
}

#[cfg(test)]
mod tests;
