//! The one Session ↔ secure-channel pump: plaintext from a channel (TLS)
//! through a [`Session`] into frames, and a session's output through the
//! channel into ciphertext. The hub's reader and writer, `vnic` and the
//! load generator all move their bytes with it.
//!
//! ```text
//!   ciphertext ──► Channel ──► Pump::decrypt ──► plaintext ──► Session::handle_input ──► frames
//!   ciphertext ◄── Channel ◄── Pump::output  ◄── Session::poll_transmit
//! ```
//!
//! Like the rest of switch-core it does no I/O: the caller feeds the
//! channel the ciphertext it read and writes the ciphertext it is handed.
//! The channel is a trait so this crate needs no TLS library
//! (`certs::tls::TlsConn` implements it).

use std::time::Instant;

use crate::session::{Session, SessionError};

/// A sans-IO secure channel: ciphertext in and out is the caller's
/// business; the pump asks only for plaintext.
pub trait Channel {
    type Error;
    /// Appends the plaintext decrypted so far to `out`; `Ok(true)` once the
    /// peer has closed (nothing more will come).
    fn read_plaintext(&mut self, out: &mut Vec<u8>) -> Result<bool, Self::Error>;
    /// Encrypts `plain` (many frames per record).
    fn write_plaintext(&mut self, plain: &[u8]) -> Result<(), Self::Error>;
    /// Appends the ciphertext waiting to be written to `out`.
    fn take_ciphertext(&mut self, out: &mut Vec<u8>);
}

/// What one [`Pump::input`] did.
#[derive(Debug, Default)]
pub struct Input {
    /// The peer closed the channel.
    pub closed: bool,
    /// The session refused the input (a CLOSE is queued; the rest of the
    /// plaintext was dropped).
    pub protocol_error: Option<SessionError>,
}

/// The buffers between a channel and a session. Plaintext the session has
/// not consumed yet (half a message) stays for the next call; frames handed
/// out borrow from it.
#[derive(Debug, Default)]
pub struct Pump {
    plain_in: Vec<u8>,
    /// Bytes at the front of `plain_in` already consumed, removed at the
    /// next decrypt (so frames stay valid until then).
    used: usize,
    plain_out: Vec<u8>,
}

impl Pump {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decrypts what the channel holds, after the plaintext still pending.
    /// `Ok(true)` once the peer has closed.
    pub fn decrypt<C: Channel>(&mut self, ch: &mut C) -> Result<bool, C::Error> {
        if self.used > 0 {
            self.plain_in.drain(..self.used);
            self.used = 0;
        }
        ch.read_plaintext(&mut self.plain_in)
    }

    /// The plaintext not yet consumed: what the next
    /// [`Session::handle_input`] reads.
    pub fn plaintext(&self) -> &[u8] {
        &self.plain_in[self.used..]
    }

    /// Marks `n` bytes of [`plaintext`](Self::plaintext) as consumed. The
    /// bytes (and frames borrowed from them) stay until the next
    /// [`decrypt`](Self::decrypt).
    pub fn consume(&mut self, n: usize) {
        self.used = (self.used + n).min(self.plain_in.len());
    }

    /// Drops all pending plaintext (after a protocol error).
    pub fn discard_input(&mut self) {
        self.used = self.plain_in.len();
    }

    /// Decrypts and runs the plaintext through `session`, handing each new
    /// frame to `deliver`, in order. Errors are the channel's; a protocol
    /// error of the session is reported in [`Input`] (the session has
    /// queued its CLOSE).
    pub fn input<C: Channel>(
        &mut self,
        now: Instant,
        ch: &mut C,
        session: &mut Session,
        deliver: impl FnMut(&[u8]),
    ) -> Result<Input, C::Error> {
        let closed = self.decrypt(ch)?;
        let mut protocol_error = None;
        if !self.plaintext().is_empty() {
            match session.handle_input(now, self.plaintext(), deliver) {
                Ok(n) => self.consume(n),
                Err(e) => {
                    self.discard_input();
                    protocol_error = Some(e);
                }
            }
        }
        Ok(Input {
            closed,
            protocol_error,
        })
    }

    /// Moves up to `max` bytes of the session's output through the channel
    /// and appends the ciphertext to `out`. Returns the plaintext bytes
    /// moved (0: the session had nothing to send; ciphertext the channel
    /// made by itself, such as a key update or close_notify, is still
    /// appended).
    pub fn output<C: Channel>(
        &mut self,
        now: Instant,
        ch: &mut C,
        session: &mut Session,
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, C::Error> {
        self.plain_out.clear();
        let n = session.poll_transmit(now, &mut self.plain_out, max);
        if n > 0 {
            ch.write_plaintext(&self.plain_out)?;
        }
        ch.take_ciphertext(out);
        Ok(n)
    }

    /// Gives the input buffer back when nothing is pending (an idle
    /// reader holds none). Returns the bytes freed.
    pub fn shrink_input(&mut self) -> usize {
        if !self.plaintext().is_empty() {
            return 0;
        }
        let freed = self.plain_in.capacity();
        self.plain_in = Vec::new();
        self.used = 0;
        freed
    }

    /// Gives the output buffer back (an idle writer holds none). Returns
    /// the bytes freed.
    pub fn shrink_output(&mut self) -> usize {
        std::mem::take(&mut self.plain_out).capacity()
    }

    /// Capacity held for output, for the writer's memory accounting.
    pub fn output_capacity(&self) -> usize {
        self.plain_out.capacity()
    }

    /// Reserves `n` bytes of output up front (a writer about to move a
    /// batch avoids regrowing its buffer from nothing).
    pub fn reserve_output(&mut self, n: usize) {
        self.plain_out.reserve(n);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::session::{Accept, Connect, SessionConfig};
    use crate::sim::test_frame;
    use crate::wire::http::{self, FrontRequest, SessionToken};

    /// A "channel" that encrypts by XOR with a key byte: enough to check
    /// that every byte goes through it both ways.
    #[derive(Default)]
    struct Xor {
        incoming: Vec<u8>,
        outgoing: Vec<u8>,
        closed: bool,
    }

    impl Channel for Xor {
        type Error = &'static str;
        fn read_plaintext(&mut self, out: &mut Vec<u8>) -> Result<bool, Self::Error> {
            out.extend(self.incoming.drain(..).map(|b| b ^ 0x5a));
            Ok(self.closed)
        }
        fn write_plaintext(&mut self, plain: &[u8]) -> Result<(), Self::Error> {
            self.outgoing.extend(plain.iter().map(|b| b ^ 0x5a));
            Ok(())
        }
        fn take_ciphertext(&mut self, out: &mut Vec<u8>) {
            out.append(&mut self.outgoing);
        }
    }

    fn t0() -> Instant {
        #[allow(clippy::disallowed_methods)] // the test's one clock read
        Instant::now()
    }

    /// A client and a hub session, upgraded, each with its pump and
    /// channel; bytes are carried one at a time to split every message.
    #[test]
    fn frames_cross_both_ways_through_channels_byte_by_byte() {
        let now = t0();
        let mut client = Session::connect(
            now,
            SessionConfig::default(),
            Connect {
                hub: "DEFAULT".into(),
                host: "h".into(),
                credentials: None,
            },
        );
        client.reconnect(now);
        let (mut cp, mut hp) = (Pump::new(), Pump::new());
        let (mut cch, mut hch) = (Xor::default(), Xor::default());
        // The request, in the clear of the channel.
        let mut wire = Vec::new();
        cp.output(now, &mut cch, &mut client, 1 << 16, &mut wire)
            .unwrap();
        let mut head = Vec::new();
        hch.incoming.extend_from_slice(&wire);
        hch.read_plaintext(&mut head).unwrap();
        let Ok(Some((FrontRequest::Upgrade(req), _))) = http::parse_request(&head, 8192) else {
            panic!("no upgrade request")
        };
        let mut hub = Session::accept(
            now,
            SessionConfig::default(),
            Accept {
                token: SessionToken([1; 16]),
                version: req.version,
            },
        );
        client.send_frame(&test_frame(1, 1, 100)).unwrap();
        hub.send_frame(&test_frame(2, 2, 1514)).unwrap();
        let (mut to_hub, mut to_client) = (Vec::new(), Vec::new());
        for round in 0..4 {
            let t = now + Duration::from_millis(round);
            let mut h2c = Vec::new();
            hp.output(t, &mut hch, &mut hub, 1 << 16, &mut h2c).unwrap();
            for b in h2c {
                cch.incoming.push(b);
                let r = cp
                    .input(t, &mut cch, &mut client, |f| to_client.push(f.to_vec()))
                    .unwrap();
                assert!(r.protocol_error.is_none() && !r.closed);
            }
            let mut c2h = Vec::new();
            cp.output(t, &mut cch, &mut client, 1 << 16, &mut c2h)
                .unwrap();
            for b in c2h {
                hch.incoming.push(b);
                let r = hp
                    .input(t, &mut hch, &mut hub, |f| to_hub.push(f.to_vec()))
                    .unwrap();
                assert!(r.protocol_error.is_none());
            }
        }
        assert_eq!(to_client, vec![test_frame(2, 2, 1514)]);
        assert_eq!(to_hub, vec![test_frame(1, 1, 100)]);
        // Idle: nothing pending, the buffers go.
        assert!(cp.shrink_input() + cp.shrink_output() > 0);
        assert!(cp.plaintext().is_empty());
    }

    #[test]
    fn consumed_plaintext_stays_until_the_next_decrypt() {
        let mut p = Pump::new();
        let mut ch = Xor::default();
        ch.incoming.extend(b"abcdef".iter().map(|b| b ^ 0x5a));
        assert!(!p.decrypt(&mut ch).unwrap());
        p.consume(4);
        assert_eq!(p.plaintext(), b"ef");
        p.consume(99); // never past the end
        assert!(p.plaintext().is_empty());
        p.used = 4; // back to "ef" pending
        ch.incoming.extend(b"g".iter().map(|b| b ^ 0x5a));
        ch.closed = true;
        assert!(p.decrypt(&mut ch).unwrap());
        assert_eq!(p.plaintext(), b"efg");
        p.discard_input();
        assert!(p.plaintext().is_empty());
    }
}
