//! What the shell observes: the [`State`] a session is in and the
//! [`Event`]s it reports, drained with [`Session::poll_event`].

use super::Session;
use crate::wire::http::Refusal;
use crate::wire::CloseCode;

/// Where a session is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    /// Client: the upgrade request is out (or about to be), waiting for 101.
    Handshaking,
    /// Frames flow.
    Established,
    /// The link is gone; frames wait in the buffer for a resume.
    Detached,
    /// Finished; nothing more will happen.
    Closed,
}

/// What happened, for the shell to act on and to tell the user.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// The session is up: new (`resumed == false`), or resumed after a link
    /// loss with `resent` frames transmitted again and `lost` frames the peer
    /// missed that were no longer in the buffer.
    Established {
        resumed: bool,
        resent: u64,
        lost: u64,
    },
    /// The hub no longer knows the session we tried to resume (it restarted,
    /// or the grace period passed). The client should reconnect: a fresh
    /// session is requested next time; unsent frames are kept.
    SessionExpired { unconfirmed: u64 },
    /// Nothing was received for the timeout: drop the connection. The
    /// session is now detached.
    LinkDead,
    /// The hub refused the upgrade. If [`Refusal::is_retryable`], the session
    /// is detached and may reconnect later; otherwise it is closed.
    Refused(Refusal),
    /// The session ended.
    Closed {
        code: CloseCode,
        reason: String,
        by_peer: bool,
    },
}

impl Session {
    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
