//! The retransmit buffer: frames queued by [`Session::send_frame`] wait
//! here, numbered, until the peer acknowledges them. The eviction and
//! tail-drop rules are in the module documentation of [`super`].

use super::{SendError, Session, SessionError, State};
use crate::wire;
use crate::wire::message::RECORD_PREFIX_LEN;

impl Session {
    /// Queues a frame for the peer. It gets the next sequence number and
    /// stays buffered until acknowledged. See the module docs for what
    /// happens when the buffer is full.
    pub fn send_frame(&mut self, frame: &[u8]) -> Result<(), SendError> {
        if self.state == State::Closed {
            return Err(SendError::Closed);
        }
        if frame.len() < wire::MIN_FRAME_LEN || frame.len() > self.config.limits.max_frame as usize
        {
            return Err(SendError::BadLength(frame.len()));
        }
        let need = RECORD_PREFIX_LEN + frame.len();
        while self.tx_next - self.ring_first >= self.config.max_buffered_frames as u64
            || self.ring.len() + need > self.config.max_buffered_bytes
        {
            if self.tx_sent > self.ring_first {
                self.drop_front_frames(1);
                self.stats.evicted += 1;
            } else {
                self.stats.tail_drops += 1;
                return Err(SendError::Full);
            }
        }
        self.ring
            .push(&[&(frame.len() as u32).to_be_bytes(), frame]);
        self.tx_next += 1;
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        Ok(())
    }

    /// A cumulative ACK from the peer: everything up to `seq` arrived.
    pub(super) fn handle_ack(&mut self, seq: u64) -> Result<(), SessionError> {
        if seq > self.tx_high {
            return Err(SessionError::AckFromTheFuture {
                acked: seq,
                sent: self.tx_high,
            });
        }
        if seq > self.peer_acked {
            self.peer_acked = seq;
            self.release_acked();
        }
        Ok(())
    }

    /// Drops every buffered frame the peer has acknowledged.
    fn release_acked(&mut self) {
        if self.peer_acked >= self.ring_first {
            let n = (self.peer_acked + 1 - self.ring_first).min(self.tx_sent - self.ring_first);
            self.drop_front_frames(n);
        }
    }

    /// Removes `n` frames from the front of the buffer (they must have been
    /// transmitted, or the caller renumbers afterwards).
    pub(super) fn drop_front_frames(&mut self, n: u64) {
        let mut bytes = 0;
        for _ in 0..n {
            bytes += RECORD_PREFIX_LEN + self.ring.read_u32(bytes) as usize;
        }
        self.ring.pop_front(bytes);
        self.ring_first += n;
        self.sent_offset = self.sent_offset.saturating_sub(bytes);
        if self.tx_sent < self.ring_first {
            self.tx_sent = self.ring_first;
        }
    }
}
