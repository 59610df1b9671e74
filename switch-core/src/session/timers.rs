//! Time-driven behaviour: the keep-alive PING, the link timeout, the
//! delayed ACK's deadline, and a detached hub session's grace period.
//! [`Session::poll_timeout`] says when, [`Session::handle_timeout`] fires.

use std::time::Instant;

use super::{Event, Role, Session, State};
use crate::wire::CloseCode;

impl Session {
    /// Fires timers: keep-alive timeout, delayed ack (via poll_transmit),
    /// grace period of a detached hub session.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Established | State::Handshaking => {
                if now >= self.last_rx + self.config.timeout {
                    self.stats.link_deaths += 1;
                    self.link_lost(now);
                    self.events.push_back(Event::LinkDead);
                }
            }
            State::Detached => {
                if let (Role::Hub, Some(at)) = (&self.role, self.detached_at) {
                    if now >= at + self.config.detach_grace {
                        self.state = State::Closed;
                        self.events.push_back(Event::Closed {
                            code: CloseCode::Timeout,
                            reason: "detached longer than the grace period".into(),
                            by_peer: false,
                        });
                    }
                }
            }
            State::Closed => {}
        }
    }

    /// When a keep-alive PING is due (established sessions only).
    pub(super) fn ping_due(&self) -> Option<Instant> {
        if self.state != State::Established {
            return None;
        }
        let idle_since = self.last_tx.min(self.last_rx);
        let due = idle_since + self.config.keepalive;
        Some(match self.last_ping {
            Some(p) => due.max(p + self.config.keepalive),
            None => due,
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) or
    /// [`poll_transmit`](Self::poll_transmit) next has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Established | State::Handshaking => {
                let mut t = self.last_rx + self.config.timeout;
                if let Some(p) = self.ping_due() {
                    t = t.min(p);
                }
                if let Some(a) = self.ack_deadline {
                    t = t.min(a);
                }
                Some(t)
            }
            State::Detached => match (&self.role, self.detached_at) {
                (Role::Hub, Some(at)) => Some(at + self.config.detach_grace),
                _ => None,
            },
            State::Closed => None,
        }
    }
}
