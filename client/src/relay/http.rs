//! HTTP proxy, CONNECT method (RFC 9110 section 9.3.6), optional Basic auth.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::{RelayError, Target};

/// The proxy's response head may not be longer than this.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// How much of a refusal's body is read to explain it.
const MAX_BODY: usize = 16 * 1024;
/// A refusal without `Content-Length` on a kept-alive connection gives no end
/// of body: stop waiting for more after this long.
const BODY_WAIT: Duration = Duration::from_secs(1);
/// Characters of readable body text kept in the error.
const EXCERPT_CHARS: usize = 300;

/// Asks the proxy behind `stream` to connect to `target`.
///
/// On a 2xx answer, returns the stream to the hub; bytes the proxy sent after
/// its response head already belong to the tunnel and are read first.
pub(crate) async fn handshake<S>(
    mut stream: S,
    proxy: &str,
    target: &Target,
    auth: Option<&(String, String)>,
) -> Result<Prefixed<S>, RelayError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = connect_request(target, auth);
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(RelayError::handshake_io(
            proxy,
            "while sending the CONNECT request",
        ))?;
    stream.flush().await.map_err(RelayError::handshake_io(
        proxy,
        "while sending the CONNECT request",
    ))?;

    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head = loop {
        match parse_head(&buf) {
            Ok(Some(head)) => break head,
            Ok(None) if buf.len() >= MAX_HEAD => {
                return Err(RelayError::HttpProtocol {
                    proxy: proxy.to_owned(),
                    problem: format!("response head longer than {} KiB", MAX_HEAD / 1024),
                })
            }
            Ok(None) => {}
            Err(problem) => {
                return Err(RelayError::HttpProtocol {
                    proxy: proxy.to_owned(),
                    problem,
                })
            }
        }
        // Never read past the head limit: what follows a 2xx head is tunnel
        // data and is kept, but a head may not grow without bound.
        let want = chunk.len().min(MAX_HEAD - buf.len());
        let n = stream
            .read(&mut chunk[..want])
            .await
            .map_err(RelayError::handshake_io(
                proxy,
                "while reading the CONNECT response",
            ))?;
        if n == 0 {
            return Err(RelayError::handshake_io(proxy, "before answering CONNECT")(
                io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };

    if (200..300).contains(&head.status) {
        buf.drain(..head.len);
        return Ok(Prefixed::new(buf, stream));
    }

    // Refused: read some of the body to say why, within limits.
    let mut body = buf.split_off(head.len);
    let limit = head.content_length.unwrap_or(MAX_BODY).min(MAX_BODY);
    let _ = tokio::time::timeout(BODY_WAIT, async {
        while body.len() < limit {
            let want = chunk.len().min(limit - body.len());
            match stream.read(&mut chunk[..want]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    body.truncate(limit);
    Err(RelayError::HttpRefused {
        proxy: proxy.to_owned(),
        target: target.to_string(),
        status: head.status,
        reason: head.reason,
        body_excerpt: excerpt(&body, head.html),
        user: auth.map(|(user, _)| user.clone()),
    })
}

/// The CONNECT request, ready to send.
pub(crate) fn connect_request(target: &Target, auth: Option<&(String, String)>) -> String {
    let authority = target.to_string();
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, pass)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str(concat!(
        "User-Agent: vnic/",
        env!("CARGO_PKG_VERSION"),
        "\r\n\r\n"
    ));
    request
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// Bytes of the head, blank line included.
    len: usize,
    status: u16,
    reason: String,
    content_length: Option<usize>,
    html: bool,
}

/// `Ok(None)` while the head is incomplete.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            let start = String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned();
            return Err(format!("{e} (answer starts with {start:?})"));
        }
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    Ok(Some(Head {
        len,
        status: response.code.unwrap_or_default(),
        reason: response.reason.unwrap_or_default().to_owned(),
        content_length: header("content-length").and_then(|v| v.trim().parse().ok()),
        html: header("content-type").is_some_and(|v| v.to_ascii_lowercase().contains("html")),
    }))
}

/// Readable text from the start of an error body: HTML without head, styles,
/// scripts, comments and tags; whitespace collapsed; at most
/// [`EXCERPT_CHARS`] characters.
pub(crate) fn excerpt(body: &[u8], html: bool) -> String {
    let text = String::from_utf8_lossy(body);
    let text = if html || text.trim_start().starts_with('<') {
        strip_html(&text)
    } else {
        text.into_owned()
    };
    let mut out = String::new();
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().filter(|c| !c.is_control()));
        if out.chars().count() > EXCERPT_CHARS {
            let cut: String = out.chars().take(EXCERPT_CHARS).collect();
            return format!("{cut}…");
        }
    }
    out
}

fn strip_html(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len());
    let mut i = 0;
    while i < html.len() {
        let rest = &lower[i..];
        // Elements whose content is not text to show.
        let skip_to = [
            ("<!--", "-->"),
            ("<head", "</head>"),
            ("<style", "</style>"),
            ("<script", "</script>"),
        ]
        .iter()
        .find(|(open, _)| rest.starts_with(open))
        .map(|(_, close)| rest.find(close).map_or(html.len(), |j| i + j + close.len()));
        if let Some(end) = skip_to {
            out.push(' ');
            i = end;
        } else if rest.starts_with('<') {
            out.push(' ');
            i = rest.find('>').map_or(html.len(), |j| i + j + 1);
        } else {
            let next = rest.find('<').map_or(html.len(), |j| i + j);
            out.push_str(&decode_entities(&html[i..next]));
            i = next;
        }
    }
    out
}

fn decode_entities(s: &str) -> String {
    s.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A stream whose first bytes were already read into `prefix`.
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.pos);
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target::new("hub.example", 8443).unwrap()
    }

    #[test]
    fn request_with_and_without_auth() {
        assert_eq!(
            connect_request(&target(), None),
            format!(
                "CONNECT hub.example:8443 HTTP/1.1\r\nHost: hub.example:8443\r\n\
                 User-Agent: vnic/{}\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        let auth = ("Aladdin".to_owned(), "open sesame".to_owned());
        let request = connect_request(&Target::new("::1", 443).unwrap(), Some(&auth));
        assert!(request.starts_with("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n"));
        // RFC 7617's example.
        assert!(request.contains("\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"));
    }

    #[test]
    fn head_parsing() {
        assert_eq!(parse_head(b"HTTP/1.1 200 Connection est").unwrap(), None);
        let head = parse_head(b"HTTP/1.0 200 Connection established\r\n\r\nTLS").unwrap();
        assert_eq!(
            head,
            Some(Head {
                len: 39,
                status: 200,
                reason: "Connection established".into(),
                content_length: None,
                html: false
            })
        );
        let head = parse_head(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (head.status, head.content_length, head.html),
            (407, Some(12), true)
        );
        assert!(parse_head(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
    }

    #[test]
    fn excerpt_of_an_html_error_page() {
        let page =
            b"<!DOCTYPE html><html><head><title>ERROR</title><style>p { x: 1 }</style></head>\
            <body><!-- c --><h1>ERROR</h1><p>Connection to 127.0.0.1 failed.</p>\
            <p id=\"sysmsg\">The system returned: <i>(111) Connection refused</i></p>\
            <p>a &amp; b &lt;c&gt;</p></body></html>";
        assert_eq!(
            excerpt(page, true),
            "ERROR Connection to 127.0.0.1 failed. The system returned: (111) Connection refused a & b <c>"
        );
        assert_eq!(excerpt(b"  plain\r\n text\x07 ", false), "plain text");
        let long = "word ".repeat(200);
        let cut = excerpt(long.as_bytes(), false);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    async fn answer(response: &'static [u8]) -> Result<Vec<u8>, RelayError> {
        let (client, mut proxy) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let mut request = vec![0u8; 4096];
            let n = proxy.read(&mut request).await.unwrap();
            assert!(request[..n].starts_with(b"CONNECT hub.example:8443 HTTP/1.1\r\n"));
            proxy.write_all(response).await.unwrap();
            proxy.shutdown().await.unwrap();
        });
        let result = handshake(client, "HTTP proxy p:3128", &target(), None).await;
        server.await.unwrap();
        let mut stream = result?;
        let mut tunnel = Vec::new();
        stream.read_to_end(&mut tunnel).await.unwrap();
        Ok(tunnel)
    }

    #[tokio::test]
    async fn bytes_after_the_head_belong_to_the_tunnel() {
        let tunnel = answer(b"HTTP/1.1 200 OK\r\nVia: x\r\n\r\n\x16\x03\x03hello")
            .await
            .unwrap();
        assert_eq!(tunnel, b"\x16\x03\x03hello");
    }

    #[tokio::test]
    async fn refusals_carry_status_reason_and_body() {
        let err = answer(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nno entry!ignored")
            .await
            .unwrap_err();
        let RelayError::HttpRefused {
            status,
            reason,
            body_excerpt,
            ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(
            (*status, reason.as_str(), body_excerpt.as_str()),
            (403, "Forbidden", "no entry!")
        );
        assert_eq!(
            err.to_string(),
            "HTTP proxy p:3128 refused CONNECT hub.example:8443: 403 Forbidden; the proxy said: no entry!"
        );
        assert!(!err.is_auth_failure());
    }

    #[tokio::test]
    async fn garbage_and_early_close_are_reported() {
        let err = answer(b"").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "HTTP proxy p:3128 closed the connection before answering CONNECT"
        );
        let err = answer(b"\x05\x00garbage\r\n\r\n").await.unwrap_err();
        assert!(matches!(err, RelayError::HttpProtocol { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_endless_head_is_cut_at_16_kib() {
        let (client, mut proxy) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let mut request = vec![0u8; 4096];
            let _ = proxy.read(&mut request).await.unwrap();
            let _ = proxy.write_all(b"HTTP/1.1 200 OK\r\nX-Padding: ").await;
            let _ = proxy.write_all(&[b'a'; 20 * 1024]).await;
        });
        let err = handshake(client, "HTTP proxy p:3128", &target(), None)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("longer than 16 KiB"), "{err}");
        server.abort();
    }
}
