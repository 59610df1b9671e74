//! [`TlsConn`]: an OpenSSL session over two in-memory buffers.
//!
//! ```text
//!   socket ──feed()/incoming_mut()──▶ ┌──────────┐ ──read_plaintext()──▶ app
//!                                     │ TlsConn  │
//!   socket ◀──take_ciphertext()────── └──────────┘ ◀──write_plaintext()── app
//! ```
//!
//! OpenSSL reads ciphertext from `incoming` and appends ciphertext to
//! `outgoing` through the `Read`/`Write` impls of [`MemDuplex`]; it never
//! sees a socket. Both buffers keep their capacity, so a connection in
//! steady state allocates nothing.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use openssl::ssl::{self, ErrorCode, Ssl, SslContext, SslRef, SslStream, SslVerifyMode};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::X509;

use super::context::{pin_verify, verify_meta, VerifyMeta};
use super::error::{internal, is_garbage, TlsError};
use crate::error::openssl_reason;
use crate::Fingerprint;

/// Read this much spare room at least before each `SSL_read`: one full
/// TLS record (16 KiB of plaintext) fits.
const READ_RESERVE: usize = 16 * 1024;

/// The in-memory "socket" under OpenSSL: ciphertext in, ciphertext out.
#[derive(Default)]
struct MemDuplex {
    /// Ciphertext received from the peer; `incoming[read_pos..]` is not yet
    /// read by OpenSSL.
    incoming: Vec<u8>,
    read_pos: usize,
    /// The peer's side of the socket is closed: once `incoming` is drained,
    /// reads return end-of-file instead of `WouldBlock`.
    eof: bool,
    /// Ciphertext for the peer, drained by [`TlsConn::take_ciphertext`].
    outgoing: Vec<u8>,
}

impl MemDuplex {
    fn unread(&self) -> usize {
        self.incoming.len() - self.read_pos
    }

    /// Moves the unread bytes to the front. Cheap in practice: OpenSSL
    /// (with read-ahead) takes everything it can, so what is left is at
    /// most part of a record.
    /// Takes `buf`'s bytes as input: by swapping buffers when nothing is
    /// unread, else by appending. `buf` is left empty.
    fn take_input(&mut self, buf: &mut Vec<u8>) {
        if self.unread() == 0 {
            self.read_pos = 0;
            std::mem::swap(&mut self.incoming, buf);
        } else {
            if self.read_pos > 0 {
                self.compact();
            }
            self.incoming.extend_from_slice(buf);
        }
        buf.clear();
    }

    fn compact(&mut self) {
        if self.read_pos > 0 {
            self.incoming.drain(..self.read_pos);
            self.read_pos = 0;
        }
    }
}

impl Read for MemDuplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.incoming.get(self.read_pos..).unwrap_or(&[]);
        if avail.is_empty() {
            self.incoming.clear();
            self.read_pos = 0;
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.read_pos += n;
        if self.read_pos == self.incoming.len() {
            // All consumed: start over at the front, keeping the capacity.
            self.incoming.clear();
            self.read_pos = 0;
        }
        Ok(n)
    }
}

impl Write for MemDuplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What [`TlsConn::read_plaintext`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReadStatus {
    /// Plaintext bytes appended to the caller's buffer.
    pub bytes: usize,
    /// The peer closed the session: it sent close_notify, or the socket
    /// reached end-of-file ([`TlsConn::feed_eof`]) after all its records.
    /// Nothing more will arrive.
    pub closed: bool,
}

/// The negotiated protocol and cipher suite, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// As OpenSSL names it: `TLSv1.3`, `TLSv1.2`, …
    pub version: String,
    /// OpenSSL's name of the suite: `TLS_AES_256_GCM_SHA384`,
    /// `ECDHE-RSA-AES256-GCM-SHA384`, `AES256-SHA`, `RC4-MD5`, …
    pub cipher: String,
}

impl fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.version, self.cipher)
    }
}

/// A pinned fingerprint and what the peer actually presented, filled in by
/// the verify callback so that a mismatch can be reported with both.
struct PinState {
    expected: Fingerprint,
    presented: Mutex<Option<Fingerprint>>,
}

/// One TLS session, sans I/O: the caller moves ciphertext between it and
/// a socket, however it likes (io_uring, epoll, a blocking `TcpStream`).
///
/// The loop, on either side:
///
/// 1. bytes read from the socket go in with [`feed`](Self::feed) (or
///    straight into [`incoming_mut`](Self::incoming_mut));
/// 2. [`handshake`](Self::handshake) until it returns `Ok(true)`, then
///    [`read_plaintext`](Self::read_plaintext) /
///    [`write_plaintext`](Self::write_plaintext);
/// 3. whenever [`wants_write`](Self::wants_write), write what
///    [`take_ciphertext`](Self::take_ciphertext) gives to the socket —
///    including after an error, when it holds the alert for the peer.
///
/// For throughput, batch: write many frames with one `write_plaintext`
/// (OpenSSL cuts records of up to 16 KiB), take the ciphertext of many
/// records at once, and feed large reads.
pub struct TlsConn {
    stream: SslStream<MemDuplex>,
    pin: Option<Arc<PinState>>,
    /// An error was returned: OpenSSL's state is dead (and some versions
    /// would not say so again), so every later call says so.
    failed: bool,
}

impl fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConn")
            .field("server", &self.stream.ssl().is_server())
            .field("handshake_done", &self.is_handshake_done())
            .field("info", &self.info())
            .field("unread_ciphertext", &self.stream.get_ref().unread())
            .field("pending_ciphertext", &self.pending_ciphertext())
            .finish_non_exhaustive()
    }
}

impl TlsConn {
    /// The server end of a session, for a context from
    /// [`server_context`](super::server_context).
    pub fn server(ctx: &SslContext) -> Result<TlsConn, TlsError> {
        let mut ssl = Ssl::new(ctx).map_err(internal("create a TLS session"))?;
        ssl.set_accept_state();
        Self::wrap(ssl, None)
    }

    /// The client end of a session, for a context from
    /// [`client_context`](super::client_context).
    ///
    /// `server_name` is the host dialled: a DNS name is sent as SNI; when
    /// the context verifies the chain ([`Verify::Ca`](super::Verify::Ca)),
    /// the certificate must also match it (DNS name or IP address, IPv6
    /// with or without brackets). `None` sends no SNI and checks the chain
    /// only.
    pub fn client(ctx: &SslContext, server_name: Option<&str>) -> Result<TlsConn, TlsError> {
        let mut ssl = Ssl::new(ctx).map_err(internal("create a TLS session"))?;
        ssl.set_connect_state();
        let meta = verify_meta(ctx);
        let verifies_name = match meta {
            Some(VerifyMeta::Ca) => true,
            Some(_) => false,
            // A context made elsewhere: check the name if it verifies at all.
            None => ctx.verify_mode().contains(SslVerifyMode::PEER),
        };
        if let Some(name) = server_name {
            let bare = name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .unwrap_or(name);
            let ip = bare.parse::<IpAddr>().ok();
            if ip.is_none() {
                // SNI carries host names only, never address literals.
                ssl.set_hostname(name).map_err(|e| TlsError::Config {
                    what: format!("server name {name:?}"),
                    reason: openssl_reason(&e),
                })?;
            }
            if verifies_name {
                let param = ssl.param_mut();
                param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
                match ip {
                    Some(ip) => param.set_ip(ip),
                    None => param.set_host(name),
                }
                .map_err(|e| TlsError::Config {
                    what: format!("server name {name:?}"),
                    reason: openssl_reason(&e),
                })?;
            }
        }
        let pin = match meta {
            Some(VerifyMeta::Pin(expected)) => {
                let state = Arc::new(PinState {
                    expected: *expected,
                    presented: Mutex::new(None),
                });
                let seen = Arc::clone(&state);
                let expected = *expected;
                // Per connection, so the callback can record what this
                // peer presented for the error message.
                ssl.set_verify_callback(SslVerifyMode::PEER, move |_ok, x509| {
                    pin_verify(expected, x509, |fp| {
                        *seen.presented.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
                    })
                });
                Some(state)
            }
            _ => None,
        };
        Self::wrap(ssl, pin)
    }

    fn wrap(ssl: Ssl, pin: Option<Arc<PinState>>) -> Result<TlsConn, TlsError> {
        let stream =
            SslStream::new(ssl, MemDuplex::default()).map_err(internal("create a TLS stream"))?;
        Ok(TlsConn {
            stream,
            pin,
            failed: false,
        })
    }

    /// Hands over ciphertext read from the socket.
    pub fn feed(&mut self, ciphertext: &[u8]) {
        let d = self.stream.get_mut();
        if d.read_pos > 0
            && (d.read_pos >= d.unread()
                || d.incoming.capacity() - d.incoming.len() < ciphertext.len())
        {
            d.compact();
        }
        d.incoming.extend_from_slice(ciphertext);
    }

    /// Hands over a buffer of ciphertext read from the socket. When all
    /// earlier ciphertext was consumed (the usual case) the buffers are
    /// swapped, not copied: `buf` comes back empty, holding the previous
    /// input buffer's allocation for the next read. Otherwise its bytes
    /// are appended as by [`feed`](Self::feed) and it is cleared.
    pub fn feed_buf(&mut self, buf: &mut Vec<u8>) {
        self.stream.get_mut().take_input(buf);
    }

    /// Gives back the memory of the in-memory buffers when they hold
    /// nothing: for connections that go idle (with `SSL_MODE_RELEASE_BUFFERS`
    /// OpenSSL does the same for its own record buffers). Returns the bytes
    /// of capacity released.
    pub fn shrink_idle(&mut self) -> usize {
        let mut freed = self.shrink_idle_input();
        let d = self.stream.get_mut();
        if d.outgoing.is_empty() && d.outgoing.capacity() > 0 {
            freed += d.outgoing.capacity();
            d.outgoing = Vec::new();
        }
        freed
    }

    /// Like [`shrink_idle`](Self::shrink_idle), for the input side only
    /// (a reader going quiet while the other direction is busy).
    pub fn shrink_idle_input(&mut self) -> usize {
        let d = self.stream.get_mut();
        if d.unread() == 0 && d.incoming.capacity() > 0 {
            let freed = d.incoming.capacity();
            d.incoming = Vec::new();
            d.read_pos = 0;
            return freed;
        }
        0
    }

    /// The buffer of unread ciphertext, for reading from the socket
    /// straight into its spare capacity (`reserve`, read, `set_len`) with
    /// no copy. Only append to it: what is in it is not yet read by
    /// OpenSSL.
    pub fn incoming_mut(&mut self) -> &mut Vec<u8> {
        let d = self.stream.get_mut();
        d.compact();
        &mut d.incoming
    }

    /// Tells the session that the socket reached end-of-file: once the
    /// ciphertext fed so far is used up, [`read_plaintext`](Self::read_plaintext)
    /// reports `closed` (and a handshake in progress fails) instead of
    /// waiting for more.
    pub fn feed_eof(&mut self) {
        self.stream.get_mut().eof = true;
    }

    /// Drives the handshake with the ciphertext fed so far. `Ok(true)`:
    /// done (also when it already was). `Ok(false)`: it needs more input
    /// from the peer — first send what [`wants_write`](Self::wants_write).
    pub fn handshake(&mut self) -> Result<bool, TlsError> {
        self.check_alive()?;
        if self.is_handshake_done() {
            return Ok(true);
        }
        match self.stream.do_handshake() {
            Ok(()) => {
                self.check_pin_after_handshake()?;
                Ok(true)
            }
            Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => Ok(false),
            Err(e) => Err(self.fail(&e)),
        }
    }

    /// Whether the handshake has completed.
    pub fn is_handshake_done(&self) -> bool {
        self.stream.ssl().is_init_finished()
    }

    /// Decrypts all the plaintext that the ciphertext fed so far holds and
    /// appends it to `out`, growing it by at least one record's room at a
    /// time and never zeroing it. Drives the handshake too if it is not
    /// done.
    ///
    /// On an error, `out` keeps the plaintext decrypted before it.
    pub fn read_plaintext(&mut self, out: &mut Vec<u8>) -> Result<ReadStatus, TlsError> {
        self.check_alive()?;
        let start = out.len();
        let mut closed = false;
        loop {
            if out.capacity() - out.len() < READ_RESERVE {
                out.reserve(READ_RESERVE);
            }
            match self.stream.ssl_read_uninit(out.spare_capacity_mut()) {
                Ok(n) => {
                    // SAFETY: `ssl_read_uninit` guarantees that the first `n`
                    // bytes of the spare capacity it was given are
                    // initialized, and `n` is at most its length.
                    unsafe { out.set_len(out.len() + n) };
                }
                Err(e) => match e.code() {
                    ErrorCode::WANT_READ | ErrorCode::WANT_WRITE => break,
                    ErrorCode::ZERO_RETURN => {
                        closed = true;
                        break;
                    }
                    _ if self.at_eof() && self.is_handshake_done() && is_eof_error(&e) => {
                        closed = true;
                        break;
                    }
                    _ => return Err(self.fail(&e)),
                },
            }
        }
        Ok(ReadStatus {
            bytes: out.len() - start,
            closed,
        })
    }

    /// Encrypts all of `data` into outgoing ciphertext, in records of up to
    /// 16 KiB. Call it once per batch of frames, not once per frame: every
    /// call ends a record.
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.check_alive()?;
        if !self.is_handshake_done() {
            return Err(TlsError::Usage(
                "write_plaintext called before the handshake finished",
            ));
        }
        let mut done = 0;
        while done < data.len() {
            // With SSL_MODE_ENABLE_PARTIAL_WRITE each call may take a
            // single record; the in-memory sink never blocks, so the loop
            // always makes progress.
            match self.stream.ssl_write(&data[done..]) {
                Ok(n) => done += n,
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => return Err(TlsError::Closed),
                Err(e) => {
                    let err = self.classify(&e);
                    return Err(match err {
                        TlsError::Protocol { ref reason } if reason.contains("shutdown") => {
                            TlsError::Closed
                        }
                        other => {
                            self.failed = true;
                            other
                        }
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether there is ciphertext to send.
    pub fn wants_write(&self) -> bool {
        !self.stream.get_ref().outgoing.is_empty()
    }

    /// How many bytes of ciphertext wait to be sent: a caller that cannot
    /// send them fast enough stops writing plaintext (backpressure).
    pub fn pending_ciphertext(&self) -> usize {
        self.stream.get_ref().outgoing.len()
    }

    /// Moves the ciphertext to be sent into `out`: appended, or — when
    /// `out` is empty — swapped, so the bytes are not copied and `out`'s
    /// old allocation becomes this session's next output buffer.
    pub fn take_ciphertext(&mut self, out: &mut Vec<u8>) {
        let outgoing = &mut self.stream.get_mut().outgoing;
        if out.is_empty() {
            std::mem::swap(out, outgoing);
        } else {
            out.extend_from_slice(outgoing);
            outgoing.clear();
        }
    }

    /// Queues a close_notify alert; send it with
    /// [`take_ciphertext`](Self::take_ciphertext). Nothing can be written
    /// after it. Does nothing before the handshake is done.
    pub fn shutdown(&mut self) {
        if self.is_handshake_done() {
            // `Sent` or an error: either way there is nothing to wait for,
            // the caller owns the socket.
            let _ = self.stream.shutdown();
        }
    }

    /// The negotiated protocol and suite, once the handshake has chosen
    /// them.
    pub fn info(&self) -> Option<TlsInfo> {
        let ssl = self.stream.ssl();
        let cipher = ssl.current_cipher()?;
        Some(TlsInfo {
            version: ssl.version_str().to_owned(),
            cipher: cipher.name().to_owned(),
        })
    }

    /// The certificate the peer presented (the hub's, on a client; a
    /// client certificate, if one was asked for, on the hub).
    pub fn peer_certificate(&self) -> Option<X509> {
        self.stream.ssl().peer_certificate()
    }

    /// SHA-256 of [`peer_certificate`](Self::peer_certificate).
    pub fn peer_fingerprint(&self) -> Option<Fingerprint> {
        self.peer_certificate().map(|c| Fingerprint::of(&c))
    }

    /// The client certificate's verdict, on a hub whose context asked for
    /// one ([`server_context_with_client_ca`](super::server_context_with_client_ca)).
    /// Call after the handshake.
    pub fn client_cert(&self) -> ClientCert {
        let ssl = self.stream.ssl();
        let Some(cert) = ssl.peer_certificate() else {
            return ClientCert::None;
        };
        let fingerprint = Fingerprint::of(&cert);
        let subject = subject_string(cert.subject_name());
        match ssl.verify_result() {
            openssl::x509::X509VerifyResult::OK => ClientCert::Verified {
                fingerprint,
                subject,
            },
            e => ClientCert::Rejected {
                fingerprint,
                subject,
                reason: e.error_string().to_owned(),
            },
        }
    }

    /// The OpenSSL session, for what this type does not wrap (ALPN,
    /// session reuse, client certificates).
    pub fn ssl(&self) -> &SslRef {
        self.stream.ssl()
    }

    fn at_eof(&self) -> bool {
        let d = self.stream.get_ref();
        d.eof && d.unread() == 0
    }

    /// Belt and braces for [`Verify::Pin`](super::Verify::Pin): the verify
    /// callback already refused any other certificate.
    fn check_pin_after_handshake(&mut self) -> Result<(), TlsError> {
        let Some(pin) = &self.pin else {
            return Ok(());
        };
        let expected = pin.expected;
        match self.peer_fingerprint() {
            Some(fp) if fp == expected => Ok(()),
            presented => {
                self.failed = true;
                let _ = self.stream.shutdown();
                Err(match presented {
                    Some(presented) => TlsError::PinMismatch {
                        expected,
                        presented,
                    },
                    None => TlsError::Handshake {
                        reason: "the hub presented no certificate".into(),
                    },
                })
            }
        }
    }

    fn check_alive(&self) -> Result<(), TlsError> {
        if self.failed {
            Err(TlsError::Failed)
        } else {
            Ok(())
        }
    }

    /// [`classify`](Self::classify), and the session is dead from now on.
    fn fail(&mut self, e: &ssl::Error) -> TlsError {
        self.failed = true;
        self.classify(e)
    }

    /// Turns an OpenSSL failure into an error that names who is at fault.
    fn classify(&self, e: &ssl::Error) -> TlsError {
        let during_handshake = !self.is_handshake_done();
        let reason = match e.ssl_error() {
            Some(stack) if !stack.errors().is_empty() => openssl_reason(stack),
            _ => match e.code() {
                ErrorCode::ZERO_RETURN => "the peer sent close_notify".to_owned(),
                ErrorCode::SYSCALL if self.at_eof() => {
                    "the peer closed the connection (end of file)".to_owned()
                }
                _ => e
                    .io_error()
                    .map_or_else(|| format!("OpenSSL error {e}"), |io| io.to_string()),
            },
        };
        if reason.contains("certificate verify failed") {
            if let Some(pin) = &self.pin {
                let presented = *pin.presented.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(presented) = presented.filter(|p| *p != pin.expected) {
                    return TlsError::PinMismatch {
                        expected: pin.expected,
                        presented,
                    };
                }
            }
            return TlsError::CertificateVerify {
                reason: self.stream.ssl().verify_result().error_string().to_owned(),
            };
        }
        if is_garbage(&reason) {
            return TlsError::Protocol { reason };
        }
        if during_handshake {
            let reason = if self.at_eof() && is_eof_reason(&reason) {
                "the peer closed the connection during the handshake".to_owned()
            } else {
                reason
            };
            TlsError::Handshake { reason }
        } else {
            TlsError::Protocol { reason }
        }
    }
}

/// OpenSSL 3 reports end-of-file without close_notify as an error
/// ("unexpected eof while reading"); older ones as a bare SYSCALL error.
fn is_eof_error(e: &ssl::Error) -> bool {
    match e.ssl_error() {
        Some(stack) if !stack.errors().is_empty() => is_eof_reason(&openssl_reason(stack)),
        _ => e.code() == ErrorCode::SYSCALL && e.io_error().is_none(),
    }
}

fn is_eof_reason(reason: &str) -> bool {
    reason.contains("unexpected eof") || reason.contains("end of file")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_duplex_reads_would_block_then_eof() {
        let mut d = MemDuplex::default();
        let mut b = [0u8; 4];
        assert_eq!(
            d.read(&mut b).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        d.incoming.extend_from_slice(b"abcdef");
        assert_eq!(d.read(&mut b).unwrap(), 4);
        assert_eq!(&b, b"abcd");
        assert_eq!(d.read_pos, 4);
        assert_eq!(d.read(&mut b).unwrap(), 2);
        assert_eq!(&b[..2], b"ef");
        // Consumed: the buffer starts over, keeping its allocation.
        assert_eq!((d.read_pos, d.incoming.len()), (0, 0));
        assert!(d.incoming.capacity() >= 6);
        d.eof = true;
        assert_eq!(d.read(&mut b).unwrap(), 0);
    }

    #[test]
    fn input_buffers_are_swapped_when_nothing_is_unread() {
        let mut d = MemDuplex::default();
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(b"first");
        let p = buf.as_ptr();
        d.take_input(&mut buf);
        assert_eq!(d.incoming.as_ptr(), p, "swapped, not copied");
        assert!(buf.is_empty());
        // Partly read: the next input is appended behind what is unread.
        let mut b = [0u8; 2];
        assert_eq!(d.read(&mut b).unwrap(), 2);
        buf.extend_from_slice(b"second");
        d.take_input(&mut buf);
        assert_eq!(&d.incoming[d.read_pos..], b"rstsecond");
        assert!(buf.is_empty());
    }

    #[test]
    fn tls_conn_is_send() {
        // A shard may hand a session to another thread (e.g. on resume).
        fn is_send<T: Send>() {}
        is_send::<TlsConn>();
    }

    #[test]
    fn mem_duplex_compacts() {
        let mut d = MemDuplex::default();
        d.incoming.extend_from_slice(b"0123456789");
        let mut b = [0u8; 7];
        assert_eq!(d.read(&mut b).unwrap(), 7);
        d.compact();
        assert_eq!((d.read_pos, &d.incoming[..]), (0, &b"789"[..]));
        d.write_all(b"out").unwrap();
        assert_eq!(d.outgoing, b"out");
    }
}

/// What a client presented, as judged by the hub's client CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCert {
    /// No certificate (or the hub did not ask for one).
    None,
    /// Issued by the configured CA (chain, dates and purpose checked).
    Verified {
        fingerprint: Fingerprint,
        /// See [`subject_string`].
        subject: String,
    },
    /// Presented but not acceptable: another CA, expired, …
    Rejected {
        fingerprint: Fingerprint,
        subject: String,
        /// OpenSSL's verify error, e.g. "unable to get local issuer certificate".
        reason: String,
    },
}

/// The session pump moves plaintext through a `TlsConn` (hub, vnic, bench).
impl switch_core::pump::Channel for TlsConn {
    type Error = TlsError;

    fn read_plaintext(&mut self, out: &mut Vec<u8>) -> Result<bool, TlsError> {
        TlsConn::read_plaintext(self, out).map(|s| s.closed)
    }

    fn write_plaintext(&mut self, plain: &[u8]) -> Result<(), TlsError> {
        TlsConn::write_plaintext(self, plain)
    }

    fn take_ciphertext(&mut self, out: &mut Vec<u8>) {
        TlsConn::take_ciphertext(self, out)
    }
}

/// A certificate name as `KEY=value` pairs in certificate order joined by
/// `,` (e.g. `O=Example,CN=alice`), with OpenSSL's short names. Values
/// are taken as UTF-8; `,` `=` `\\` in a value are escaped with `\\`.
pub fn subject_string(name: &openssl::x509::X509NameRef) -> String {
    let mut out = String::new();
    for e in name.entries() {
        if !out.is_empty() {
            out.push(',');
        }
        let key = e.object().nid().short_name().unwrap_or("?");
        out.push_str(key);
        out.push('=');
        let value = e
            .data()
            .to_string()
            .map(|v| v.to_string())
            .unwrap_or_else(|_| String::from_utf8_lossy(e.data().as_slice()).into_owned());
        for c in value.chars() {
            if matches!(c, ',' | '=' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// Normalizes a subject written by a person (`CN = alice, O=Example`, or
/// OpenSSL's `/O=Example/CN=alice`) to the form of [`subject_string`]:
/// spaces around separators removed, `/`-separated input turned around
/// into `,`-separated pairs in the same order.
pub fn normalize_subject(s: &str) -> String {
    let s = s.trim();
    let parts: Vec<&str> = if let Some(rest) = s.strip_prefix('/') {
        rest.split('/').collect()
    } else {
        split_unescaped(s)
    };
    parts
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
            None => p.trim().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn split_unescaped(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}
