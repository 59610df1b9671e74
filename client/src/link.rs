//! One connection to the hub: a byte stream (direct TCP or through a
//! relay), the TLS handshake over it, and the trust check. What comes
//! after — the HTTP upgrade and the `vhub/1` messages — is the session's.

use std::time::Duration;

use certs::tls::{TlsConn, TlsError, TlsInfo};
use openssl::ssl::SslContext;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::addr::HubUrl;
use crate::relay::{self, Relay, RelayError, Transport};
use crate::trust::{self, Checked, Trust};

/// A connection whose TLS handshake is done and whose certificate is
/// trusted. Ciphertext that arrived after the handshake is still in `tls`.
pub struct Link {
    pub stream: Box<dyn Transport>,
    pub tls: TlsConn,
    pub info: Option<TlsInfo>,
    pub checked: Checked,
}

/// Why a connection attempt failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{0}")]
    Relay(#[from] RelayError),
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("the connection was closed during the TLS handshake (by the hub, or by a relay)")]
    ClosedInHandshake,
    #[error("no TLS handshake within {0:?}")]
    Timeout(Duration),
}

impl LinkError {
    /// A failure that trying again will not fix and that must not be
    /// repeated in a loop: a relay refusing our credentials, a certificate
    /// that does not verify or has changed, a TLS setting the hub does
    /// not share, a broken local setting.
    pub fn is_final(&self) -> bool {
        match self {
            LinkError::Relay(e) => e.is_auth_failure(),
            LinkError::Tls(e) => match e {
                TlsError::Protocol { .. } | TlsError::Closed | TlsError::Failed => false,
                TlsError::Handshake { reason } => {
                    !(reason.contains("closed") || reason.contains("eof"))
                }
                _ => true,
            },
            LinkError::Io { .. } | LinkError::ClosedInHandshake | LinkError::Timeout(_) => false,
        }
    }
}

/// Opens a link to the hub at `url` through `relay` and runs the TLS
/// handshake with `ctx`; the whole attempt is bounded by `timeout`.
pub async fn open(
    url: &HubUrl,
    relay: &Relay,
    ctx: &SslContext,
    trust: &Trust,
    timeout: Duration,
) -> Result<Link, LinkError> {
    let start = tokio::time::Instant::now();
    let mut stream = relay::connect(relay, &url.host, url.port, timeout).await?;
    let left = timeout.saturating_sub(start.elapsed());
    let tls = tokio::time::timeout(left, handshake(&mut stream, ctx, &url.host))
        .await
        .map_err(|_| LinkError::Timeout(timeout))??;
    let checked = trust::check_after_handshake(trust, &url.host_port(), &tls)?;
    Ok(Link {
        stream,
        info: tls.info(),
        tls,
        checked,
    })
}

async fn handshake(
    stream: &mut Box<dyn Transport>,
    ctx: &SslContext,
    host: &str,
) -> Result<TlsConn, LinkError> {
    let mut tls = TlsConn::client(ctx, Some(host))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let result = tls.handshake();
        // Send what OpenSSL produced, also after an error (the alert).
        out.clear();
        tls.take_ciphertext(&mut out);
        if !out.is_empty() {
            let w = stream.write_all(&out).await;
            if result.is_ok() {
                w.map_err(|source| LinkError::Io {
                    op: "sending the TLS handshake",
                    source,
                })?;
            }
        }
        if result? {
            stream.flush().await.map_err(|source| LinkError::Io {
                op: "sending the TLS handshake",
                source,
            })?;
            return Ok(tls);
        }
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|source| LinkError::Io {
                op: "reading the TLS handshake",
                source,
            })?;
        if n == 0 {
            tls.feed_eof();
            // Let OpenSSL say what it makes of the end (an alert it got
            // before, or a plain early close).
            return match tls.handshake() {
                Err(e @ (TlsError::CertificateVerify { .. } | TlsError::PinMismatch { .. })) => {
                    Err(e.into())
                }
                _ => Err(LinkError::ClosedInHandshake),
            };
        }
        tls.feed(&buf[..n]);
    }
}
