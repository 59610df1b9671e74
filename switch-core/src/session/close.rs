//! Ending a session: by the shell ([`Session::close`]) or because the peer
//! broke the protocol. Either way a CLOSE is queued if the link is up.

use super::{Event, Session, SessionError, State};
use crate::wire::CloseCode;

impl Session {
    /// Ends the session: a CLOSE is queued for the peer (transmit it, then
    /// drop the link).
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.state == State::Closed {
            return;
        }
        if self.state == State::Established {
            self.close_out = Some((code, reason.to_owned()));
        }
        self.state = State::Closed;
        self.events.push_back(Event::Closed {
            code,
            reason: reason.to_owned(),
            by_peer: false,
        });
    }

    /// Closes the session because the peer broke the protocol, queueing a
    /// CLOSE(protocol error); returns `e` for the caller to pass on.
    pub(super) fn protocol_error(&mut self, e: SessionError) -> SessionError {
        if self.state == State::Established {
            self.close_out = Some((CloseCode::ProtocolError, e.to_string()));
        }
        self.state = State::Closed;
        self.events.push_back(Event::Closed {
            code: CloseCode::ProtocolError,
            reason: e.to_string(),
            by_peer: false,
        });
        e
    }
}
