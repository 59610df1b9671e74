//! The baseline: a bare TLS pipe with no switching. It terminates TLS like
//! the hub (same OpenSSL, same record sizes), answers the `vhub/1` upgrade,
//! and then splices the plaintext of connection 2k to connection 2k+1 and
//! back — so two client sessions talk to each other directly. Whatever the
//! hub costs beyond this is the price of switching, queues and shards.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use certs::tls::TlsConn;
use openssl::ssl::SslContext;
use switch_core::wire::http::{self, FrontRequest, SessionToken, UpgradeResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex as AsyncMutex;

type Shared = Arc<Mutex<TlsConn>>;

/// Starts the pipe on its own threads (as many as the hub has shards, so the
/// comparison is fair); returns its address.
pub fn start_threads(
    ctx: SslContext,
    session: switch_core::session::SessionConfig,
    threads: usize,
) -> anyhow::Result<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("pipe".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let _ = tx.send(start(ctx, &session).await.map_err(|e| e.to_string()));
                std::future::pending::<()>().await;
            });
        })?;
    rx.recv()?.map_err(anyhow::Error::msg)
}

/// Starts the pipe on 127.0.0.1:0 in the current tokio runtime; returns its address.
pub async fn start(
    ctx: SslContext,
    session: &switch_core::session::SessionConfig,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let ctx = Arc::new(ctx);
    let (ka, to, mf, mb) = (
        session.keepalive,
        session.timeout,
        session.limits.max_frame,
        session.limits.max_batch,
    );
    tokio::spawn(async move {
        // Connections are paired by the hub name in their upgrade path
        // (`pair-K`), whatever order they arrive in.
        type Half = (OwnedReadHalf, OwnedWriteHalf, Shared);
        let waiting: Arc<AsyncMutex<std::collections::HashMap<String, Half>>> = Arc::default();
        let mut n = 0u8;
        while let Ok((stream, _)) = listener.accept().await {
            let (ctx, waiting) = (ctx.clone(), waiting.clone());
            n = n.wrapping_add(1);
            let token = SessionToken([n; 16]);
            tokio::spawn(async move {
                let Ok((stream, tls, name)) = upgrade(stream, &ctx, token, (ka, to, mf, mb)).await
                else {
                    return;
                };
                let (r, w) = stream.into_split();
                let tls = Arc::new(Mutex::new(tls));
                let mut slot = waiting.lock().await;
                match slot.remove(&name) {
                    None => {
                        slot.insert(name, (r, w, tls));
                    }
                    Some((r0, w0, tls0)) => {
                        drop(slot);
                        tokio::spawn(splice(r0, tls0.clone(), w, tls.clone()));
                        tokio::spawn(splice(r, tls, w0, tls0));
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn upgrade(
    mut stream: TcpStream,
    ctx: &SslContext,
    token: SessionToken,
    (keepalive, timeout, max_frame, max_batch): (
        std::time::Duration,
        std::time::Duration,
        u32,
        u32,
    ),
) -> anyhow::Result<(TcpStream, TlsConn, String)> {
    stream.set_nodelay(true)?;
    let mut tls = TlsConn::server(ctx)?;
    let mut buf = vec![0u8; 64 * 1024];
    crate::driver::tls_handshake(&mut stream, &mut tls, &mut buf).await?;
    let mut plain = Vec::new();
    loop {
        tls.read_plaintext(&mut plain)?;
        if let Some((FrontRequest::Upgrade(req), _)) = http::parse_request(&plain, 8192)? {
            let resp = UpgradeResponse {
                version: req.version,
                token,
                resumed_rx: None,
                keepalive,
                timeout,
                max_frame,
                max_batch,
                offload: false,
            };
            let mut head = Vec::new();
            resp.emit(&mut head);
            tls.write_plaintext(&head)?;
            let mut out = Vec::new();
            tls.take_ciphertext(&mut out);
            stream.write_all(&out).await?;
            return Ok((stream, tls, req.hub));
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            anyhow::bail!("closed before the upgrade request");
        }
        tls.feed(&buf[..n]);
    }
}

/// Moves plaintext from `from` (decrypting) to `to` (encrypting).
async fn splice(mut r: OwnedReadHalf, from: Shared, mut w: OwnedWriteHalf, to: Shared) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut plain = Vec::with_capacity(256 * 1024);
    let mut out = Vec::with_capacity(256 * 1024);
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        {
            let mut t = from.lock().unwrap();
            t.feed(&buf[..n]);
            if t.read_plaintext(&mut plain).is_err() {
                return;
            }
        }
        if plain.is_empty() {
            continue;
        }
        {
            let mut t = to.lock().unwrap();
            if t.write_plaintext(&plain).is_err() {
                return;
            }
            t.take_ciphertext(&mut out);
        }
        plain.clear();
        if w.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}
