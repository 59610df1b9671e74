//! What is sent, when, and in which order: [`Session::poll_transmit`]
//! writes the handshake, CLOSE, PONGs, a due PING, a due ACK, then batches
//! of frames from the retransmit buffer.

use std::time::Instant;

use super::{Session, State};
use crate::wire::message::{FRAMES_PREFIX_LEN, RECORD_PREFIX_LEN};
use crate::wire::{self, FramesWriter, HEADER_LEN};

impl Session {
    /// Whether `poll_transmit` would append anything right now, ignoring
    /// timers: for a shell deciding whether to wake the writer.
    pub fn wants_transmit(&self) -> bool {
        !self.handshake_out.is_empty()
            || self.close_out.is_some()
            || (self.state == State::Established
                && (self.tx_sent < self.tx_next
                    || !self.pongs_due.is_empty()
                    || self.ack_due_by_count()))
    }

    /// Enough was received since the last ACK to send one without waiting.
    fn ack_due_by_count(&self) -> bool {
        self.rx_last >= self.ack_sent + self.config.ack_every
            || self.rx_unacked_bytes >= self.config.ack_bytes
    }

    /// Appends what should be sent now to `out` — the handshake, CLOSE,
    /// PONGs, a PING if due, an ACK if due, then frame batches until about
    /// `max_bytes` were appended (at least one batch if any frame waits).
    /// Returns the number of bytes appended.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>, max_bytes: usize) -> usize {
        let start = out.len();
        if !self.handshake_out.is_empty() {
            out.extend_from_slice(&self.handshake_out);
            self.handshake_out.clear();
        }
        if let Some((code, reason)) = self.close_out.take() {
            wire::encode_close(out, code, &reason);
        }
        if self.state == State::Established {
            while let Some(p) = self.pongs_due.pop_front() {
                wire::encode_pong(out, p);
            }
            if self.ping_due().is_some_and(|t| now >= t) {
                let payload = (now - self.epoch).as_nanos() as u64;
                wire::encode_ping(out, payload);
                self.last_ping = Some(now);
                self.stats.pings_sent += 1;
                // An idle session gives its buffer memory back.
                if self.ring.len() == 0 {
                    self.ring.shrink_if_empty();
                }
            }
            let frames_waiting = self.tx_sent < self.tx_next;
            if self.rx_last > self.ack_sent
                && (frames_waiting
                    || self.ack_due_by_count()
                    || self.ack_deadline.is_some_and(|d| now >= d))
            {
                wire::encode_ack(out, self.rx_last);
                self.ack_sent = self.rx_last;
                self.rx_unacked_bytes = 0;
                self.ack_deadline = None;
            }
            if frames_waiting {
                self.transmit_frames(out, start + max_bytes);
            }
        }
        let n = out.len() - start;
        if n > 0 {
            self.last_tx = now;
        }
        n
    }

    fn transmit_frames(&mut self, out: &mut Vec<u8>, limit: usize) {
        let max_batch = self.config.limits.max_batch as u64;
        let mut first = true;
        while self.tx_sent < self.tx_next && (first || out.len() < limit) {
            first = false;
            // Walk records to see how many fit in this batch.
            let mut count = 0u64;
            let mut bytes = 0usize;
            let budget = limit.saturating_sub(out.len() + HEADER_LEN + FRAMES_PREFIX_LEN);
            while self.tx_sent + count < self.tx_next && count < max_batch {
                let rec = RECORD_PREFIX_LEN + self.ring.read_u32(self.sent_offset + bytes) as usize;
                if count > 0 && bytes + rec > budget {
                    break;
                }
                bytes += rec;
                count += 1;
            }
            let mut w = FramesWriter::begin(out, self.tx_sent);
            let (a, b) = self.ring.slices(self.sent_offset, bytes);
            w.push_records(a, 0);
            w.push_records(b, count as u32);
            w.finish();
            self.tx_sent += count;
            self.sent_offset += bytes;
            self.tx_high = self.tx_high.max(self.tx_sent - 1);
        }
    }
}
