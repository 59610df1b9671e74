//! The ways a session call can fail, one enum per call, each saying who is
//! at fault: the peer ([`SessionError`]), a local limit or state
//! ([`SendError`]), or the resuming client ([`ResumeError`]).

use crate::wire::http::ResponseError;
use crate::wire::WireError;

/// The peer broke the protocol. The session is closed and a CLOSE with
/// [`CloseCode::ProtocolError`](crate::wire::CloseCode::ProtocolError) is queued; transmit it, then drop the link.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SessionError {
    #[error("malformed message: {0}")]
    Wire(#[from] WireError),
    #[error("malformed upgrade response: {0}")]
    Response(#[from] ResponseError),
    #[error("ack for frame {acked}, but only {sent} were sent")]
    AckFromTheFuture { acked: u64, sent: u64 },
    #[error("binary message before the handshake completed")]
    NotEstablished,
    #[error("the hub answered with a different protocol version ({0})")]
    WrongVersion(u32),
    #[error("the hub's limits are out of range: max frame {max_frame}, max batch {max_batch}")]
    BadLimits { max_frame: u32, max_batch: u32 },
}

/// Why a frame was not queued.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SendError {
    #[error("buffer full: frame dropped")]
    Full,
    #[error("frame of {0} bytes is outside the negotiated limits")]
    BadLength(usize),
    #[error("session closed")]
    Closed,
}

/// Why a resume was refused (hub side). The hub answers 409 and keeps the
/// session as it was.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("the client claims to have received frame {claimed}, but only {sent} were sent")]
    RxFromTheFuture { claimed: u64, sent: u64 },
    #[error("session is closed")]
    Closed,
}
