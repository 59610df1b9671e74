//! Bytes between the socket and the session: ciphertext read from the
//! link goes through TLS into the session (whose frames go to the TAP),
//! and what the session transmits goes through TLS to the socket — both
//! with switch-core's `pump::Pump`, as the hub and the bench do (a
//! SoftEther session's output takes the same path by hand: `Pump::output`
//! is typed for `vhub/1`'s `Session`).

use std::time::Instant;

use super::proto::Proto;
use super::tap_path::{session_to_tap, ToTap};
use super::{Bridge, HIGH_WATER, TRANSMIT_CHUNK};
use crate::tap::TapIo;

impl<T: TapIo> Bridge<T> {
    pub(super) fn on_read(&mut self, t: Instant, r: std::io::Result<usize>) {
        match r {
            Ok(0) => {
                if let Some(tls) = &mut self.tls {
                    tls.feed_eof();
                }
                self.process_input(t, true);
            }
            Ok(n) => {
                self.last_rx = t;
                if let Some(tls) = &mut self.tls {
                    tls.feed(&self.rbuf[..n]);
                }
                self.process_input(t, false);
            }
            Err(e) => self.link_down(t, format!("reading from the hub: {e}")),
        }
    }

    /// Decrypts what arrived, feeds it to the session, writes the frames
    /// it delivers to the TAP (all of them before anything else runs).
    pub(super) fn process_input(&mut self, t: Instant, eof: bool) {
        let Some(tls) = &mut self.tls else { return };
        let closed = match self.pump.decrypt(tls) {
            Ok(closed) => closed,
            Err(e) => {
                self.link_down(t, format!("TLS: {e}"));
                return;
            }
        };
        if !self.pump.plaintext().is_empty() {
            let to = ToTap {
                tap: &self.tap,
                icmp: &mut self.icmp,
                neighbours: &mut self.neighbours,
                errors: &mut self.shell.tap_write_errors,
                early: &mut self.early,
            };
            match session_to_tap(t, &mut self.session, self.pump.plaintext(), to) {
                Ok(used) => self.pump.consume(used),
                Err(e) => {
                    // The session is closed with a CLOSE queued; the event
                    // loop reports it and flushes.
                    self.pump.discard_input();
                    tracing::debug!("protocol error: {e}");
                }
            }
        }
        if closed || eof {
            // Let the session's events (a CLOSE, a refusal) speak first.
            self.drain_events(t);
            if self.tls.is_some() {
                let why = if closed {
                    "the hub closed the connection"
                } else {
                    "the connection was closed (end of file)"
                };
                self.link_down(t, why.to_owned());
            }
        }
    }

    pub(super) fn on_wrote(&mut self, t: Instant, r: std::io::Result<usize>) {
        match r {
            Ok(0) => self.link_down(t, "the connection does not take data".into()),
            Ok(n) => {
                self.out_pos += n;
                if self.out_pos >= self.out.len() {
                    self.out.clear();
                    self.out_pos = 0;
                }
            }
            Err(e) => self.link_down(t, format!("writing to the hub: {e}")),
        }
    }

    /// Hands everything the session has to send to TLS, as long as the
    /// socket keeps up.
    pub(super) fn flush(&mut self, t: Instant) {
        let Some(tls) = &mut self.tls else { return };
        loop {
            if self.out.len() - self.out_pos >= HIGH_WATER {
                break;
            }
            if self.out_pos > 0 && self.out_pos == self.out.len() {
                self.out.clear();
                self.out_pos = 0;
            }
            let moved = match &mut self.session {
                Proto::Vhub(s) => self.pump.output(t, tls, s, TRANSMIT_CHUNK, &mut self.out),
                Proto::SoftEther(s) => {
                    self.plain_out.clear();
                    let n = s.poll_transmit(t, &mut self.plain_out, TRANSMIT_CHUNK);
                    let r = if n > 0 {
                        tls.write_plaintext(&self.plain_out)
                    } else {
                        Ok(())
                    };
                    tls.take_ciphertext(&mut self.out);
                    r.map(|()| n)
                }
            };
            match moved {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    self.link_down(t, format!("TLS: {e}"));
                    return;
                }
            }
        }
    }
}
