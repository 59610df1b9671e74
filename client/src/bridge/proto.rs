//! The seam between the bridge and what rides on a link after TLS: the
//! `vhub/1` [`Session`] (resume, acks, offload) or vnic's SoftEther
//! session ([`SoftEther`]: a login per link, no resume, plain frames).
//! [`Proto`] gives the loop, the pump and the TAP path one set of calls;
//! each arm is the protocol's own sans-IO object, so nothing of the pump
//! is copied. [`Carrier`] is the part the TAP path needs, so its tests
//! still run on a bare `Session`.

use std::fmt;
use std::time::{Duration, Instant};

use switch_core::session::{Event, SendError, Session, SessionConfig, SessionStats, State};
use switch_core::wire::CloseCode;

use crate::softether::{SeEvent, SoftEther};

/// What the TAP path does with a session.
pub(super) trait Carrier {
    type Error: fmt::Display;
    fn state(&self) -> State;
    /// The session's frames carry a virtio_net_hdr.
    fn offload(&self) -> bool;
    /// Largest frame it takes (in its form).
    fn max_frame(&self) -> usize;
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), SendError>;
    fn handle_input(
        &mut self,
        now: Instant,
        input: &[u8],
        deliver: impl FnMut(&[u8]),
    ) -> Result<usize, Self::Error>;
}

impl Carrier for Session {
    type Error = switch_core::session::SessionError;
    fn state(&self) -> State {
        Session::state(self)
    }
    fn offload(&self) -> bool {
        Session::offload(self)
    }
    fn max_frame(&self) -> usize {
        self.config().limits.max_frame as usize
    }
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), SendError> {
        Session::send_frame(self, frame)
    }
    fn handle_input(
        &mut self,
        now: Instant,
        input: &[u8],
        deliver: impl FnMut(&[u8]),
    ) -> Result<usize, Self::Error> {
        Session::handle_input(self, now, input, deliver)
    }
}

/// The session of the current hub, in its dialect.
#[derive(Debug)]
pub(super) enum Proto {
    Vhub(Session),
    SoftEther(SoftEther),
}

/// An event of either dialect.
pub(super) enum ProtoEvent {
    Vhub(Event),
    SoftEther(SeEvent),
}

/// Why input was refused (the session's event says what to do).
#[derive(Debug)]
pub(super) struct ProtoError(String);

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Proto {
    pub fn is_softether(&self) -> bool {
        matches!(self, Proto::SoftEther(_))
    }

    pub fn config(&self) -> &SessionConfig {
        match self {
            Proto::Vhub(s) => s.config(),
            Proto::SoftEther(s) => s.config(),
        }
    }

    pub fn stats(&self) -> &SessionStats {
        match self {
            Proto::Vhub(s) => s.stats(),
            Proto::SoftEther(s) => s.stats(),
        }
    }

    /// A short name of the session, as the hub or server logs it.
    pub fn short_id(&self) -> Option<String> {
        match self {
            Proto::Vhub(s) => s.token().map(|t| t.short()),
            Proto::SoftEther(s) => s.name().map(str::to_owned),
        }
    }

    /// Whether the session has been granted a form for its frames (a
    /// vhub token: the hub settled offload). A SoftEther session's are
    /// always plain.
    pub fn form_settled(&self) -> bool {
        match self {
            Proto::Vhub(s) => s.token().is_some(),
            Proto::SoftEther(_) => true,
        }
    }

    pub fn rtt(&self) -> Option<Duration> {
        match self {
            Proto::Vhub(s) => s.rtt(),
            Proto::SoftEther(_) => None,
        }
    }

    pub fn buffered_frames(&self) -> u64 {
        match self {
            Proto::Vhub(s) => s.buffered_frames(),
            Proto::SoftEther(s) => s.buffered_frames(),
        }
    }

    pub fn buffered_bytes(&self) -> usize {
        match self {
            Proto::Vhub(s) => s.buffered_bytes(),
            Proto::SoftEther(s) => s.buffered_bytes(),
        }
    }

    pub fn poll_event(&mut self) -> Option<ProtoEvent> {
        match self {
            Proto::Vhub(s) => s.poll_event().map(ProtoEvent::Vhub),
            Proto::SoftEther(s) => s.poll_event().map(ProtoEvent::SoftEther),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Proto::Vhub(s) => s.poll_timeout(),
            Proto::SoftEther(s) => s.poll_timeout(),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Proto::Vhub(s) => s.handle_timeout(now),
            Proto::SoftEther(s) => s.handle_timeout(now),
        }
    }

    /// A new link is up: start the handshake on it.
    pub fn reconnect(&mut self, now: Instant) {
        match self {
            Proto::Vhub(s) => s.reconnect(now),
            Proto::SoftEther(s) => s.reconnect(now),
        }
    }

    pub fn link_lost(&mut self, now: Instant) {
        match self {
            Proto::Vhub(s) => s.link_lost(now),
            Proto::SoftEther(s) => s.link_lost(now),
        }
    }

    pub fn close(&mut self, code: CloseCode, reason: &str) {
        match self {
            Proto::Vhub(s) => s.close(code, reason),
            Proto::SoftEther(s) => s.close(),
        }
    }
}

impl Carrier for Proto {
    type Error = ProtoError;
    fn state(&self) -> State {
        match self {
            Proto::Vhub(s) => s.state(),
            Proto::SoftEther(s) => s.state(),
        }
    }
    fn offload(&self) -> bool {
        match self {
            Proto::Vhub(s) => s.offload(),
            Proto::SoftEther(_) => false,
        }
    }
    fn max_frame(&self) -> usize {
        self.config().limits.max_frame as usize
    }
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), SendError> {
        match self {
            Proto::Vhub(s) => s.send_frame(frame),
            Proto::SoftEther(s) => s.send_frame(frame),
        }
    }
    fn handle_input(
        &mut self,
        now: Instant,
        input: &[u8],
        deliver: impl FnMut(&[u8]),
    ) -> Result<usize, ProtoError> {
        match self {
            Proto::Vhub(s) => s
                .handle_input(now, input, deliver)
                .map_err(|e| ProtoError(e.to_string())),
            Proto::SoftEther(s) => s
                .handle_input(now, input, deliver)
                .map_err(|e| ProtoError(e.to_string())),
        }
    }
}
