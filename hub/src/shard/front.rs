//! The front of a connection: handshake limits, the TLS handshake and the
//! HTTP request head. Pages and errors are answered here; a `vhub/1`
//! upgrade goes on to `admit.rs`, a SoftEther client's first request to
//! `softether.rs`.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use certs::tls::TlsConn;
use switch_core::wire::http::{self, FrontRequest, UpgradeRequest};
use tracing::{debug, warn};

use super::Shard;
use crate::metrics::{Handshake, Limit};
use crate::net::{Backend, NetStream};
use crate::throttle::AddrKey;

/// A handshake in progress, counted per shard and per source address
/// until dropped.
pub(super) struct HandshakeGuard<B: Backend> {
    shard: Rc<Shard<B>>,
    addr: AddrKey,
}

impl<B: Backend> Drop for HandshakeGuard<B> {
    fn drop(&mut self) {
        self.shard.st.borrow_mut().handshakes -= 1;
        self.shard.ctx.admission.end_handshake(self.addr);
    }
}

impl<B: Backend> Shard<B> {
    pub(super) async fn handle_connection(self: Rc<Self>, stream: B::Stream, peer: SocketAddr) {
        let limits = &self.ctx.settings;
        let addr = AddrKey::of(peer.ip());
        let refused = {
            let mut st = self.st.borrow_mut();
            if st.handshakes >= limits.max_handshakes_per_shard {
                Some(Limit::HandshakesPerShard)
            } else if !self
                .ctx
                .admission
                .begin_handshake(addr, limits.max_handshakes_per_address)
            {
                Some(Limit::HandshakesPerAddress)
            } else {
                st.handshakes += 1;
                None
            }
        };
        if let Some(limit) = refused {
            self.limit_reached(limit, peer, "connection closed before TLS");
            self.sb.metrics.handshake(Handshake::Limited);
            stream.shutdown();
            return;
        }
        // Held until the login is decided (TLS, HTTP, authentication): the
        // handshake limits cover a slow or throttled login too.
        let guard = HandshakeGuard {
            shard: self.clone(),
            addr,
        };
        let stream = Rc::new(stream);
        // The handshake deadline: a watchdog shuts the socket down, which
        // ends the pending read (never drop an in-flight read). The
        // handshake then counts the connection once, as a timeout.
        let finished = Rc::new(Cell::new(false));
        let timed_out = Rc::new(Cell::new(false));
        {
            // A weak handle: the watchdog must not keep the stream alive.
            let (stream, finished, timed_out) =
                (Rc::downgrade(&stream), finished.clone(), timed_out.clone());
            let timeout = limits.handshake_timeout;
            B::spawn(async move {
                tokio::time::sleep(timeout).await;
                if let (false, Some(stream)) = (finished.get(), stream.upgrade()) {
                    timed_out.set(true);
                    stream.shutdown();
                }
            });
        }
        let outcome = self.handshake(&stream, peer, &timed_out).await;
        let (tls, front) = match outcome {
            Some(o) => o,
            None => return finished.set(true),
        };
        // A SoftEther login runs under the same deadline: the watchdog
        // stays armed until the hub has decided.
        let (tls, upgrade) = match front {
            Front::Upgrade(req) => (tls, Ok(req)),
            Front::SoftEther(plain) => {
                match self
                    .softether_handshake(&stream, tls, plain, peer, &timed_out)
                    .await
                {
                    Some((tls, admitted)) => (tls, Err(admitted)),
                    None => return finished.set(true),
                }
            }
        };
        finished.set(true);
        let Ok(stream) = Rc::try_unwrap(stream) else {
            unreachable!("only the watchdog's weak handle remains");
        };
        match upgrade {
            Ok(req) => self.upgrade(stream, tls, req, peer, guard).await,
            Err(admitted) => self.run_softether(stream, tls, admitted, guard).await,
        }
    }

    /// Counts a refusal by `limit` and logs it (at most once a second per
    /// limit: a flood must not flood the log too).
    pub(super) fn limit_reached(&self, limit: Limit, peer: SocketAddr, what: &str) {
        self.sb.metrics.limit(limit);
        if self.ctx.admission.should_log(limit as usize) {
            warn!(%peer, limit = limit.as_str(), "limit reached: {what}");
        }
    }

    /// Writes `plain` through TLS and closes the connection.
    pub(super) async fn respond_and_close(
        &self,
        stream: &B::Stream,
        tls: &mut TlsConn,
        plain: &[u8],
    ) {
        let _ = tls.write_plaintext(plain);
        tls.shutdown();
        let mut out = Vec::new();
        tls.take_ciphertext(&mut out);
        let _ = stream.write_all(out).await;
        stream.shutdown();
    }

    /// TLS handshake and the HTTP request. Returns the TLS state and what
    /// comes next when the client asks for a session; answers everything
    /// else itself.
    async fn handshake(
        &self,
        stream: &B::Stream,
        peer: SocketAddr,
        timed_out: &Cell<bool>,
    ) -> Option<(TlsConn, Front)> {
        let (tls, buf) = self.tls_handshake(stream, peer, timed_out).await?;
        self.read_request(stream, peer, timed_out, tls, buf).await
    }

    /// Counts a connection that ended before its request: as a timeout
    /// when the deadline cut it, else as `h`.
    pub(super) fn ended(&self, peer: SocketAddr, timed_out: &Cell<bool>, h: Handshake) {
        if timed_out.get() {
            self.sb.metrics.handshake(Handshake::Timeout);
            self.limit_reached(
                Limit::HandshakeTimeout,
                peer,
                "handshake not finished in time; connection closed",
            );
        } else {
            self.sb.metrics.handshake(h);
        }
    }

    /// The TLS handshake, after telling a plain-HTTP client to use https.
    /// Returns the connection and the (empty) read buffer.
    async fn tls_handshake(
        &self,
        stream: &B::Stream,
        peer: SocketAddr,
        timed_out: &Cell<bool>,
    ) -> Option<(TlsConn, Vec<u8>)> {
        let metrics = &self.sb.metrics;
        let mut tls = match TlsConn::server(&self.ctx.tls) {
            Ok(t) => t,
            Err(e) => {
                warn!("TLS setup failed: {e}");
                return None;
            }
        };
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut out = Vec::new();
        // The client speaks first. Plain HTTP where TLS is expected (a
        // browser or curl given http://) is told so in plain text, as nginx
        // does, instead of a silent close; a ClientHello starts with 0x16.
        if !read_some(stream, &mut buf).await {
            self.ended(peer, timed_out, Handshake::TlsFailed);
            return None;
        }
        if looks_like_plain_http(&buf) {
            debug!(%peer, "plain HTTP on the TLS port");
            metrics.handshake(Handshake::TlsFailed);
            let _ = stream.write_all(PLAIN_HTTP_ANSWER.to_vec()).await;
            stream.shutdown();
            return None;
        }
        tls.feed(&buf);
        buf.clear();
        loop {
            let r = tls.handshake();
            if tls.wants_write() {
                tls.take_ciphertext(&mut out);
                let (res, b) = stream.write_all(std::mem::take(&mut out)).await;
                out = b;
                out.clear();
                if res.is_err() {
                    self.ended(peer, timed_out, Handshake::TlsFailed);
                    return None;
                }
            }
            match r {
                Ok(true) => return Some((tls, buf)),
                Ok(false) => {}
                Err(e) => {
                    debug!(%peer, "TLS handshake failed: {e}");
                    metrics.handshake(Handshake::TlsFailed);
                    stream.shutdown();
                    return None;
                }
            }
            // The client's Finished (and its request) are next: ACK them at
            // once (see `NetStream::quick_ack`).
            stream.quick_ack();
            if !read_into(stream, &mut tls, &mut buf).await {
                self.ended(peer, timed_out, Handshake::TlsFailed);
                return None;
            }
        }
    }

    /// Reads the HTTP request head; answers a page or an error itself and
    /// returns an upgrade request, or the plaintext of a SoftEther client
    /// (its probe or its watermark POST), all of it unconsumed.
    async fn read_request(
        &self,
        stream: &B::Stream,
        peer: SocketAddr,
        timed_out: &Cell<bool>,
        mut tls: TlsConn,
        mut buf: Vec<u8>,
    ) -> Option<(TlsConn, Front)> {
        let metrics = &self.sb.metrics;
        let max_head = self.ctx.settings.max_header_bytes;
        let mut plain = Vec::new();
        loop {
            if let Err(e) = tls.read_plaintext(&mut plain) {
                debug!(%peer, "TLS error before the request: {e}");
                metrics.handshake(Handshake::TlsFailed);
                stream.shutdown();
                return None;
            }
            if is_softether(&plain) {
                return Some((tls, Front::SoftEther(plain)));
            }
            let resp = match http::parse_request(&plain, max_head) {
                Ok(Some((FrontRequest::Upgrade(u), _))) => return Some((tls, Front::Upgrade(u))),
                Ok(Some((page, _))) => {
                    metrics.handshake(Handshake::Page);
                    self.page(page)
                }
                Ok(None) => {
                    stream.quick_ack();
                    if !read_into(stream, &mut tls, &mut buf).await {
                        self.ended(peer, timed_out, Handshake::HttpError);
                        return None;
                    }
                    continue;
                }
                Err(e) => {
                    debug!(%peer, "refused request: {e}");
                    if let http::HttpError::HeadTooLarge(_) = e {
                        self.limit_reached(Limit::HeaderBytes, peer, "request head too large; 431");
                    }
                    metrics.handshake(match e {
                        http::HttpError::UnsupportedVersion { .. } => Handshake::UnsupportedVersion,
                        _ => Handshake::HttpError,
                    });
                    let mut resp = Vec::new();
                    http::emit_http_error(&mut resp, &e);
                    resp
                }
            };
            self.respond_and_close(stream, &mut tls, &resp).await;
            return None;
        }
    }

    /// The answer to a request for a page: the HTML page or the CA
    /// certificate.
    fn page(&self, req: FrontRequest) -> Vec<u8> {
        let mut resp = Vec::new();
        match req {
            FrontRequest::Index(m) => {
                http::emit_ok(&mut resp, m, "text/html; charset=utf-8", &self.ctx.page)
            }
            FrontRequest::CaCert(m) => http::emit_ok(
                &mut resp,
                m,
                "application/x-x509-ca-cert",
                &self.ctx.cert_pem,
            ),
            FrontRequest::Upgrade(_) => unreachable!("an upgrade is not a page"),
        }
        resp
    }
}

/// What follows the first request of a connection that asks for a session.
enum Front {
    /// The `vhub/1` upgrade.
    Upgrade(UpgradeRequest),
    /// A SoftEther client: its probe (`GET /` with `X-VPN`) or its
    /// watermark POST, with everything it sent so far (unconsumed).
    SoftEther(Vec<u8>),
}

/// Whether a complete request head at the start of `plain` is a SoftEther
/// client's (a POST under `/vpnsvc/`, or the probe's `X-VPN` header).
/// Anything else, malformed heads included, is for `http::parse_request`.
fn is_softether(plain: &[u8]) -> bool {
    matches!(
        switch_core::softether::http::parse_request_head(plain),
        Ok(Some(head)) if head.is_softether()
    )
}

/// What a plain-HTTP client on the TLS port gets before the close.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 56\r\n\
Connection: close\r\n\
\r\n\
This port speaks HTTPS: use https:// instead of http://\n";

/// Whether the first bytes of a connection are a plain HTTP request line
/// (a method in capitals and a space) rather than a TLS record.
fn looks_like_plain_http(first: &[u8]) -> bool {
    let n = first.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (3..=7).contains(&n) && first.get(n) == Some(&b' ')
}

/// Reads once from the socket, appending to `buf`; false at end of stream
/// or on an error.
async fn read_some<S: NetStream>(stream: &S, buf: &mut Vec<u8>) -> bool {
    let (res, b) = stream.read(std::mem::take(buf)).await;
    *buf = b;
    matches!(res, Ok(n) if n > 0)
}

/// Reads once from the socket into the TLS input; false at end of stream or
/// on an error.
async fn read_into<S: NetStream>(stream: &S, tls: &mut TlsConn, buf: &mut Vec<u8>) -> bool {
    if !read_some(stream, buf).await {
        return false;
    }
    tls.feed(buf);
    buf.clear();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_told_from_tls() {
        for req in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /x",
            b"OPTIONS * HTTP/1.1",
            b"PUT ",
        ] {
            assert!(looks_like_plain_http(req), "{req:?}");
        }
        // A ClientHello, a lower-case word, a partial method, no method.
        for other in [
            &[0x16u8, 0x03, 0x01, 0x02, 0x00][..],
            b"get / HTTP/1.1",
            b"GE",
            b" / HTTP",
            b"CONNECTIONS x",
        ] {
            assert!(!looks_like_plain_http(other), "{other:?}");
        }
        // The answer's Content-Length is its body's length.
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 "));
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}
