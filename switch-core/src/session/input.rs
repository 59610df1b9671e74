//! Received bytes: [`Session::handle_input`] decodes messages and acts on
//! each — frames delivered in order and exactly once, ACKs, PING/PONG, CLOSE.

use std::time::{Duration, Instant};

use super::{Event, Session, SessionError, State};
use crate::wire::{self, Message};

/// At most this many PONGs queued: a PING flood cannot grow memory.
pub(super) const MAX_PONGS_DUE: usize = 8;

impl Session {
    /// Feeds received plaintext. Complete messages are processed; frames
    /// are handed to `deliver` in order, each exactly once, borrowed from
    /// `data`. Returns how many bytes were consumed: keep the rest and call
    /// again with more appended.
    ///
    /// On `Err` the session is closed with a CLOSE(protocol error) queued.
    pub fn handle_input(
        &mut self,
        now: Instant,
        data: &[u8],
        mut deliver: impl FnMut(&[u8]),
    ) -> Result<usize, SessionError> {
        let mut used = 0;
        if self.state == State::Handshaking {
            match self.handle_response(now, data) {
                Ok(0) => return Ok(0),
                Ok(n) => used = n,
                Err(e) => return Err(self.protocol_error(e)),
            }
        }
        if self.state != State::Established {
            // Detached or closed: whatever the old link still carries is ignored.
            return Ok(data.len());
        }
        if used < data.len() {
            self.last_rx = now;
        }
        loop {
            let msg = match wire::decode(&data[used..], &self.config.limits) {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(used),
                Err(e) => return Err(self.protocol_error(e.into())),
            };
            used += msg.1;
            match msg.0 {
                Message::Frames(frames) => {
                    // `first_seq + i` cannot overflow: the decoder checked
                    // first_seq + count. (A `(first_seq..).zip(..)` would step
                    // past u64::MAX once more and panic — found by fuzzing.)
                    for (i, frame) in frames.iter().enumerate() {
                        let seq = frames.first_seq() + i as u64;
                        if seq <= self.rx_last {
                            self.stats.rx_duplicates += 1;
                        } else {
                            self.stats.rx_gaps += seq - self.rx_last - 1;
                            self.rx_last = seq;
                            self.stats.rx_frames += 1;
                            self.stats.rx_bytes += frame.len() as u64;
                            self.rx_unacked_bytes += frame.len() as u64;
                            deliver(frame);
                        }
                    }
                    if self.ack_deadline.is_none() && self.rx_last > self.ack_sent {
                        self.ack_deadline = Some(now + self.config.ack_delay);
                    }
                }
                Message::Ack(seq) => {
                    if let Err(e) = self.handle_ack(seq) {
                        return Err(self.protocol_error(e));
                    }
                }
                Message::Ping(p) => {
                    if self.pongs_due.len() < MAX_PONGS_DUE {
                        self.pongs_due.push_back(p);
                    }
                }
                Message::Pong(p) => {
                    self.stats.pongs_received += 1;
                    // The payload is ours, but check it: a peer may echo anything.
                    if let Some(sent) = self.epoch.checked_add(Duration::from_nanos(p)) {
                        if sent <= now {
                            self.rtt = Some(now - sent);
                        }
                    }
                }
                Message::Close { code, reason } => {
                    self.state = State::Closed;
                    self.events.push_back(Event::Closed {
                        code,
                        reason: reason.to_owned(),
                        by_peer: true,
                    });
                    return Ok(data.len());
                }
            }
            if self.state != State::Established {
                return Ok(data.len());
            }
        }
    }
}
