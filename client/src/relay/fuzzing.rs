//! Entry points for the fuzz targets (`fuzz/fuzz_targets/relay_reply.rs`):
//! each relay handshake run against a scripted proxy whose whole answer is
//! the fuzzer's input. Not an API: hidden from the docs, no stability.
//!
//! The scripted proxy takes whatever the client writes and answers from
//! `reply` as a real socket would, in pieces of at most `chunk` bytes, then
//! end of stream. Each function returns the handshake's result and what the
//! client reads next (the bytes it did not consume): on success, that is
//! tunnel data, which must be exactly the rest of the proxy's answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use super::{http, socks4a, socks5, RelayError, Target};

/// A proxy that answers `reply` in pieces of at most `chunk` bytes.
struct Scripted<'a> {
    reply: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.reply.len().min(self.chunk).min(buf.remaining());
        let (now, rest) = self.reply.split_at(n);
        buf.put_slice(now);
        self.reply = rest;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    // The HTTP handshake bounds the wait for an error body with a tokio
    // timer: a runtime with time (the scripted proxy never blocks, so the
    // timer never fires). One per thread, reused across inputs.
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime");
    }
    RUNTIME.with(|rt| rt.block_on(f))
}

fn target() -> Target {
    Target::new("hub.example", 443).expect("a valid target")
}

fn credentials(with: bool) -> Option<(String, String)> {
    with.then(|| ("user".to_owned(), "pass".to_owned()))
}

/// The HTTP CONNECT handshake against `reply` (with Basic credentials when
/// `auth`): its result, and on success what the tunnel yields next.
pub fn http_connect(reply: &[u8], chunk: usize, auth: bool) -> (Result<(), RelayError>, Vec<u8>) {
    let proxy = Scripted {
        reply,
        chunk: chunk.max(1),
    };
    block_on(async {
        let auth = credentials(auth);
        match http::handshake(proxy, "HTTP proxy fuzz:3128", &target(), auth.as_ref()).await {
            Ok(mut tunnel) => {
                let mut rest = Vec::new();
                tunnel
                    .read_to_end(&mut rest)
                    .await
                    .expect("the scripted proxy never fails");
                (Ok(()), rest)
            }
            Err(e) => (Err(e), Vec::new()),
        }
    })
}

/// The SOCKS5 handshake against `reply` (offering user/password when
/// `auth`): its result and the bytes of `reply` it did not read.
pub fn socks5(reply: &[u8], chunk: usize, auth: bool) -> (Result<(), RelayError>, Vec<u8>) {
    let mut proxy = Scripted {
        reply,
        chunk: chunk.max(1),
    };
    let auth = credentials(auth);
    let r = block_on(socks5::handshake(
        &mut proxy,
        "SOCKS5 proxy fuzz:1080",
        &target(),
        auth.as_ref(),
    ));
    (r, proxy.reply.to_vec())
}

/// The SOCKS4a handshake against `reply`: its result and the bytes of
/// `reply` it did not read.
pub fn socks4a(reply: &[u8], chunk: usize, user: bool) -> (Result<(), RelayError>, Vec<u8>) {
    let mut proxy = Scripted {
        reply,
        chunk: chunk.max(1),
    };
    let r = block_on(socks4a::handshake(
        &mut proxy,
        "SOCKS4a proxy fuzz:1080",
        &target(),
        user.then_some("user"),
    ));
    (r, proxy.reply.to_vec())
}

/// The most bytes of a CONNECT response head the client reads.
pub const MAX_HTTP_HEAD: usize = http::MAX_HEAD;
