//! The HTTP/1.1 layer of SoftEther's handshake (PROTOCOL-NOTES.md §3):
//! request and response heads parsed with `httparse`, bodies delimited by
//! `Content-Length` only (no chunked encoding, as in SoftEther), and the
//! requests and responses both roles send, with SoftEther's header lines.
//!
//! Parsers take the start of the received bytes and return the head (with
//! its length) or `None` when more bytes are needed; the body follows the
//! head and is the caller's to wait for, because how long a body may be
//! depends on where the handshake is.

use std::io::Write as _;

use super::pack::Pack;
use super::probe::HTML_CONTENT_TYPE;

/// Target of the watermark POST.
pub const CONNECT_TARGET: &str = "/vpnsvc/connect.cgi";
/// Target of the PACK POSTs.
pub const PACK_TARGET: &str = "/vpnsvc/vpn.cgi";
/// Content type of PACK requests and responses (checked by both ends).
pub const PACK_CONTENT_TYPE: &str = "application/octet-stream";
/// Content type the client gives the watermark (not checked by servers).
pub const CONNECT_CONTENT_TYPE: &str = "image/jpeg";
/// SoftEther's `Keep-Alive` header value.
pub const KEEP_ALIVE: &str = "timeout=15; max=19";
/// Largest PACK body a server reads (`HTTP_PACK_MAX_SIZE`).
pub const MAX_PACK_BODY: usize = 65_536;
/// Largest request or response head accepted (SoftEther: lines of at most
/// 4096 bytes, at most 128 of them; real heads are under 400 bytes).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines in a head.
pub const MAX_HEADERS: usize = 64;

/// A head that cannot be parsed. The peer's fault; SoftEther drops the
/// connection on the same input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("malformed HTTP head from the peer: {0}")]
    Malformed(httparse::Error),
    #[error("HTTP head larger than {MAX_HEAD} bytes or with more than {MAX_HEADERS} headers")]
    HeadTooLarge,
    #[error("Content-Length is not a number")]
    BadContentLength,
}

/// A request head, borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub target: &'a str,
    /// The version is `HTTP/1.1` (SoftEther requires it for PACK requests).
    pub http11: bool,
    pub content_length: Option<usize>,
    /// Trimmed.
    pub content_type: Option<&'a str>,
    /// The client's probe sends `X-VPN: 1`.
    pub x_vpn: bool,
    /// Bytes of the head, CRLF CRLF included; the body starts here.
    pub len: usize,
}

impl RequestHead<'_> {
    /// Bytes of the body (`Content-Length`, or 0).
    pub fn body_len(&self) -> usize {
        self.content_length.unwrap_or(0)
    }

    /// Whether this request opens a SoftEther connection: a POST under
    /// `/vpnsvc/`, or the client's probe (`X-VPN` header). A hub that
    /// serves several dialects on one port looks at the first request
    /// with this.
    pub fn is_softether(&self) -> bool {
        (self.method == "POST" && self.target.starts_with("/vpnsvc/")) || self.x_vpn
    }
}

/// A response head, borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    pub http11: bool,
    pub status: u16,
    pub content_length: Option<usize>,
    pub content_type: Option<&'a str>,
    pub len: usize,
}

impl ResponseHead<'_> {
    /// Bytes of the body (`Content-Length`, or 0).
    pub fn body_len(&self) -> usize {
        self.content_length.unwrap_or(0)
    }

    /// Whether the head is what a SoftEther client accepts around a PACK
    /// (`HttpClientRecv`): `HTTP/1.1 200`, `Content-Type:
    /// application/octet-stream`, `Content-Length` ≥ 1.
    pub fn is_pack_response(&self) -> bool {
        self.http11
            && self.status == 200
            && self
                .content_type
                .is_some_and(|t| t.eq_ignore_ascii_case(PACK_CONTENT_TYPE))
            && self.body_len() >= 1
    }
}

fn header<'h>(headers: &[httparse::Header<'h>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn trimmed(v: &[u8]) -> Option<&str> {
    std::str::from_utf8(v).ok().map(str::trim)
}

fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<usize>, HttpError> {
    match header(headers, "Content-Length") {
        None => Ok(None),
        Some(v) => {
            let v = trimmed(v).ok_or(HttpError::BadContentLength)?;
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::BadContentLength);
            }
            v.parse().map(Some).map_err(|_| HttpError::BadContentLength)
        }
    }
}

fn complete(
    status: Result<httparse::Status<usize>, httparse::Error>,
    buf_len: usize,
) -> Result<Option<usize>, HttpError> {
    match status {
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => Err(HttpError::HeadTooLarge),
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Ok(httparse::Status::Partial) if buf_len >= MAX_HEAD => Err(HttpError::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeadTooLarge),
        Err(e) => Err(HttpError::Malformed(e)),
    }
}

/// Parses a request head at the start of `buf`; `Ok(None)`: incomplete.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead<'_>>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf);
    let Some(len) = complete(status, buf.len())? else {
        return Ok(None);
    };
    Ok(Some(RequestHead {
        method: req.method.unwrap_or(""),
        target: req.path.unwrap_or(""),
        http11: req.version == Some(1),
        content_length: content_length(req.headers)?,
        content_type: header(req.headers, "Content-Type").and_then(trimmed),
        x_vpn: header(req.headers, "X-VPN").is_some(),
        len,
    }))
}

/// Parses a response head at the start of `buf`; `Ok(None)`: incomplete.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead<'_>>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let status = resp.parse(buf);
    let Some(len) = complete(status, buf.len())? else {
        return Ok(None);
    };
    Ok(Some(ResponseHead {
        http11: resp.version == Some(1),
        status: resp.code.unwrap_or(0),
        content_length: content_length(resp.headers)?,
        content_type: header(resp.headers, "Content-Type").and_then(trimmed),
        len,
    }))
}

/// A header value from local configuration (a host name): no control
/// characters, so it cannot end the line early.
fn clean(s: &str) -> impl std::fmt::Display + '_ {
    struct Clean<'a>(&'a str);
    impl std::fmt::Display for Clean<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0
                .chars()
                .filter(|c| !c.is_control())
                .try_for_each(|c| std::fmt::Write::write_char(f, c))
        }
    }
    Clean(s)
}

/// Client: the probe, headers in the order the real client sends them (§3.2).
pub fn emit_probe_request(out: &mut Vec<u8>, host: &str) {
    let _ = write!(
        out,
        "GET / HTTP/1.1\r\nX-VPN: 1\r\nHost: {}\r\nKeep-Alive: {KEEP_ALIVE}\r\nConnection: Keep-Alive\r\nAccept-Language: ja\r\nUser-Agent: Mozilla/5.0 (Windows NT 6.3; WOW64; rv:29.0) Gecko/20100101 Firefox/29.0\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n\r\n",
        clean(host)
    );
}

/// Client: the head of the watermark POST (§3.3); the body follows.
pub fn emit_connect_request_head(out: &mut Vec<u8>, host: &str, body_len: usize) {
    let _ = write!(
        out,
        "POST {CONNECT_TARGET} HTTP/1.1\r\nConnection: Keep-Alive\r\nContent-Length: {body_len}\r\nContent-Type: {CONNECT_CONTENT_TYPE}\r\nHost: {}\r\n\r\n",
        clean(host)
    );
}

/// Client: a PACK POST (§3.4), without the cosmetic `Date` (no clock here).
pub fn emit_pack_request(out: &mut Vec<u8>, host: &str, pack: &Pack) {
    let _ = write!(
        out,
        "POST {PACK_TARGET} HTTP/1.1\r\nConnection: Keep-Alive\r\nContent-Length: {}\r\nContent-Type: {PACK_CONTENT_TYPE}\r\nHost: {}\r\nKeep-Alive: {KEEP_ALIVE}\r\n\r\n",
        pack.encoded_len(),
        clean(host)
    );
    pack.encode(out);
}

/// Server: a PACK in a `200 OK` (§3.4), without the cosmetic `Date`.
pub fn emit_pack_response(out: &mut Vec<u8>, pack: &Pack) {
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: {}\r\nContent-Type: {PACK_CONTENT_TYPE}\r\nKeep-Alive: {KEEP_ALIVE}\r\n\r\n",
        pack.encoded_len()
    );
    pack.encode(out);
}

/// Server: an HTML page (the probe answer, 403, 404, 501) with SoftEther's
/// headers, keeping the connection open.
pub fn emit_page(out: &mut Vec<u8>, status: u16, reason: &str, body: &[u8]) {
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nConnection: Keep-Alive\r\nContent-Length: {}\r\nContent-Type: {HTML_CONTENT_TYPE}\r\nKeep-Alive: {KEEP_ALIVE}\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The probe as captured between two namespaces (§3.2).
    const PROBE: &str = "GET / HTTP/1.1\r\nX-VPN: 1\r\nHost: 198.51.100.1\r\nKeep-Alive: timeout=15; max=19\r\nConnection: Keep-Alive\r\nAccept-Language: ja\r\nUser-Agent: Mozilla/5.0 (Windows NT 6.3; WOW64; rv:29.0) Gecko/20100101 Firefox/29.0\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n\r\n";

    #[test]
    fn the_probe_is_sent_and_recognised_as_captured() {
        let mut out = Vec::new();
        emit_probe_request(&mut out, "198.51.100.1");
        assert_eq!(out, PROBE.as_bytes());
        let head = parse_request_head(PROBE.as_bytes()).unwrap().unwrap();
        assert_eq!((head.method, head.target, head.http11), ("GET", "/", true));
        assert!(head.x_vpn && head.is_softether());
        assert_eq!((head.len, head.body_len()), (PROBE.len(), 0));
    }

    #[test]
    fn the_watermark_post_head_is_the_observed_one() {
        let mut out = Vec::new();
        emit_connect_request_head(&mut out, "127.0.0.1", 1600);
        assert_eq!(
            out,
            b"POST /vpnsvc/connect.cgi HTTP/1.1\r\nConnection: Keep-Alive\r\nContent-Length: 1600\r\nContent-Type: image/jpeg\r\nHost: 127.0.0.1\r\n\r\n"
        );
        let head = parse_request_head(&out).unwrap().unwrap();
        assert!(head.is_softether());
        assert_eq!(head.content_length, Some(1600));
    }

    #[test]
    fn pack_messages_both_ways() {
        let mut p = Pack::new();
        p.add_int("error", 0).add_int("noop", 1);
        let mut out = Vec::new();
        emit_pack_request(&mut out, "h\r\nX: y", &p);
        let head = parse_request_head(&out).unwrap().unwrap();
        assert_eq!(head.target, PACK_TARGET);
        assert_eq!(head.content_type, Some(PACK_CONTENT_TYPE));
        assert_eq!(&out[head.len..], &p.to_bytes()[..]);
        assert!(
            out.windows(7).any(|w| w == b"hX: y\r\n"),
            "no header injection"
        );
        out.clear();
        emit_pack_response(&mut out, &p);
        let head = parse_response_head(&out).unwrap().unwrap();
        assert!(head.is_pack_response());
        assert_eq!(&out[head.len..], &p.to_bytes()[..]);
    }

    #[test]
    fn client_acceptance_of_a_pack_response() {
        let ok = |s: &str| {
            parse_response_head(s.as_bytes())
                .unwrap()
                .unwrap()
                .is_pack_response()
        };
        assert!(ok("HTTP/1.1 200 OK\r\nContent-Type:  Application/Octet-Stream \r\nContent-Length: 5\r\n\r\n"));
        assert!(!ok("HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\n"));
        assert!(!ok("HTTP/1.1 202 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\n"));
        assert!(!ok(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\n"
        ));
        assert!(!ok("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 0\r\n\r\n"));
        assert!(!ok(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
        ));
    }

    #[test]
    fn partial_oversized_and_malformed_heads() {
        assert_eq!(
            parse_request_head(b"POST /vpnsvc/vpn.cgi HTTP/1.1\r\nContent-Le"),
            Ok(None)
        );
        assert_eq!(parse_response_head(b"HTTP/1.1 200"), Ok(None));
        // Bare LF line ends (SoftEther accepts them too).
        let h = parse_request_head(b"GET /x HTTP/1.1\nHost: a\n\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.target, "/x");
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD, b'a');
        assert_eq!(parse_request_head(&long), Err(HttpError::HeadTooLarge));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(
            parse_request_head(many.as_bytes()),
            Err(HttpError::HeadTooLarge)
        );
        for cl in ["x", "-1", "", "1 2", "99999999999999999999999"] {
            let s = format!("POST / HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n");
            assert_eq!(
                parse_request_head(s.as_bytes()),
                Err(HttpError::BadContentLength),
                "{cl:?}"
            );
        }
        assert!(matches!(
            parse_request_head(b"\x00\x01\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
    }
}
