//! Surviving a lost link: detaching, the client reconnecting, the hub
//! resuming, both ends re-sending what the other is missing — and the
//! session starting over when the hub no longer knows it.

use std::time::Instant;

use super::{Connect, Event, ResumeError, Role, Session, State};

impl Session {
    /// The transport under the session is gone (reset, closed, relay died).
    pub fn link_lost(&mut self, now: Instant) {
        if matches!(self.state, State::Established | State::Handshaking) {
            self.state = State::Detached;
            self.detached_at = Some(now);
            self.pongs_due.clear();
        }
    }

    /// Client: a link is up (the first one, or a new one after a loss):
    /// start the handshake — a resume if the session has a token, a new
    /// session otherwise. The next `poll_transmit` yields the request.
    pub fn reconnect(&mut self, now: Instant) {
        if self.state == State::Detached {
            self.start_handshake(now);
        }
    }

    /// Hub: a client presented this session's token on a new connection,
    /// saying it received everything up to `peer_rx`. Any old link is
    /// considered dead (drop it); the next `poll_transmit` yields the `101`
    /// followed by whatever the client is missing.
    pub fn resume(&mut self, now: Instant, peer_rx: u64) -> Result<(), ResumeError> {
        if self.state == State::Closed {
            return Err(ResumeError::Closed);
        }
        if peer_rx > self.tx_high {
            return Err(ResumeError::RxFromTheFuture {
                claimed: peer_rx,
                sent: self.tx_high,
            });
        }
        self.state = State::Established;
        self.detached_at = None;
        self.last_rx = now;
        self.last_tx = now;
        self.last_ping = None;
        self.pongs_due.clear();
        self.stats.resumes += 1;
        self.emit_upgrade_response(Some(self.rx_last));
        let (resent, lost) = self.rewind_to_peer(peer_rx);
        self.events.push_back(Event::Established {
            resumed: true,
            resent,
            lost,
        });
        Ok(())
    }

    /// After a resume: the peer has everything up to `peer_rx`. Returns
    /// (frames to be re-sent, frames lost because they were evicted).
    pub(super) fn rewind_to_peer(&mut self, peer_rx: u64) -> (u64, u64) {
        if peer_rx > self.peer_acked {
            self.peer_acked = peer_rx;
        }
        // Frames up to peer_rx arrived: release them (they were all transmitted).
        if self.peer_acked >= self.ring_first {
            let n = self.peer_acked + 1 - self.ring_first;
            self.drop_front_frames(n.min(self.tx_next - self.ring_first));
        }
        let lost = self.ring_first.saturating_sub(self.peer_acked + 1);
        self.stats.lost_on_resume += lost;
        let resent = self.tx_sent.saturating_sub(self.ring_first);
        self.stats.resent += resent;
        self.tx_sent = self.ring_first;
        self.sent_offset = 0;
        // The handshake told the peer our receive position: no ACK is owed.
        self.ack_sent = self.rx_last;
        self.rx_unacked_bytes = 0;
        self.ack_deadline = None;
        (resent, lost)
    }

    /// Client: the link is gone and the next one goes to another hub
    /// (`connect` names it): that hub cannot know this session, so the
    /// next [`reconnect`](Self::reconnect) asks it for a new one instead
    /// of a resume that could only be refused. Frames never transmitted
    /// are kept for the new session; frames transmitted on the old one
    /// may or may not have arrived and are dropped, counted in
    /// `unconfirmed` (returned). No event: the caller chose this. Only a
    /// detached client session moves; otherwise nothing happens and 0 is
    /// returned.
    pub fn move_to(&mut self, connect: Connect) -> u64 {
        if self.state != State::Detached {
            return 0;
        }
        let Role::Client { connect: c } = &mut self.role else {
            return 0;
        };
        *c = connect;
        if self.token.is_none() {
            return 0;
        }
        self.start_over()
    }

    /// The resumed session starts over: a new session on the next reconnect.
    pub(super) fn expire_session(&mut self) {
        let unconfirmed = self.start_over();
        self.events.push_back(Event::SessionExpired { unconfirmed });
    }

    /// Forgets the token and renumbers what was never transmitted for a
    /// new session. Returns the frames transmitted whose fate is unknown.
    fn start_over(&mut self) -> u64 {
        // Frames transmitted on the lost session may or may not have arrived.
        let unconfirmed = self.tx_sent - self.ring_first;
        self.drop_front_frames(unconfirmed);
        self.stats.unconfirmed += unconfirmed;
        // Renumber what is left (never transmitted) from 1 for the new session.
        let pending = self.tx_next - self.ring_first;
        self.ring_first = 1;
        self.tx_sent = 1;
        self.tx_next = 1 + pending;
        self.sent_offset = 0;
        self.tx_high = 0;
        self.peer_acked = 0;
        self.rx_last = 0;
        self.ack_sent = 0;
        self.rx_unacked_bytes = 0;
        self.ack_deadline = None;
        self.token = None;
        self.state = State::Detached;
        unconfirmed
    }
}
