//! The HTTP/1.1 side of `vhub/1`: the front door of the TLS port.
//!
//! A client opens a session with
//!
//! ```text
//! GET /vhub/DEFAULT HTTP/1.1
//! Host: hub.example:8443
//! Connection: Upgrade
//! Upgrade: vhub/1
//! Authorization: Basic dXNlcjpwYXNz
//! ```
//!
//! and the hub answers `101 Switching Protocols` with the session token and
//! the negotiated parameters, or an error status with a reason. The same
//! parser classifies the other requests the TLS port answers (`GET /`,
//! `GET /ca.crt`). Handshakes are not the hot path: these types own their
//! strings.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;

/// The protocol versions this implementation speaks, newest first.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];
/// The path prefix of the upgrade: `/vhub/<hub name>`.
pub const UPGRADE_PATH_PREFIX: &str = "/vhub/";
/// Most headers a request or response may carry.
pub const MAX_HEADERS: usize = 32;
/// Default bound on the size of a request or response head (line + headers).
pub const DEFAULT_MAX_HEAD: usize = 8 * 1024;
/// Longest virtual hub name.
pub const MAX_HUB_NAME: usize = 64;

/// A random secret that names a session for resumption (128 bits).
///
/// Equality is constant-time (no early exit at the first differing byte),
/// so that comparing a guessed token with a real one takes the same time
/// however many leading bytes match.
#[derive(Clone, Copy, Eq)]
pub struct SessionToken(pub [u8; 16]);

impl std::hash::Hash for SessionToken {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for SessionToken {
    fn eq(&self, other: &Self) -> bool {
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // black_box: the optimizer must not turn the fold into memcmp.
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SessionToken {
    // A token is a bearer secret: never print it whole in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionToken({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

impl SessionToken {
    /// Parses 32 hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.as_bytes();
        if s.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            let hex = |c: u8| (c as char).to_digit(16);
            out[i] = (hex(pair[0])? * 16 + hex(pair[1])?) as u8;
        }
        Some(Self(out))
    }

    /// A short, non-secret label for logs and admin tables: the first 4 bytes.
    pub fn short(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}{:02x}",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// User name and password from `Authorization: Basic`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a reconnecting client asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Resume {
    pub token: SessionToken,
    /// The highest frame sequence number the client received from the hub.
    pub rx: u64,
}

/// The client's session request (`GET /vhub/<hub>` with `Upgrade: vhub/1`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UpgradeRequest {
    /// Virtual hub name from the path.
    pub hub: String,
    /// The `Host` header (empty if absent).
    pub host: String,
    /// The version chosen: the highest both sides speak.
    pub version: u32,
    pub credentials: Option<Credentials>,
    pub resume: Option<Resume>,
    /// Keep-alive interval the client would like (`Vhub-Keepalive`, ms).
    pub keepalive: Option<Duration>,
    /// Dead-link timeout the client would like (`Vhub-Timeout`, ms).
    pub timeout: Option<Duration>,
    /// Largest frame the client is prepared to receive (`Vhub-Max-Frame`).
    pub max_frame: Option<u32>,
    /// The client's frames can carry a `virtio_net_hdr` and it takes them
    /// so (`Vhub-Offload: vnet`; see [`crate::offload`]).
    pub offload: bool,
    /// Free-form client name and version (`User-Agent`).
    pub user_agent: String,
}

impl UpgradeRequest {
    /// A request for a new session on `hub`.
    pub fn new(hub: &str, host: &str) -> Self {
        Self {
            hub: hub.to_owned(),
            host: host.to_owned(),
            version: SUPPORTED_VERSIONS[0],
            credentials: None,
            resume: None,
            keepalive: None,
            timeout: None,
            max_frame: None,
            offload: false,
            user_agent: format!("vnic/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Appends the request head to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let _ = write!(
            out,
            "GET {UPGRADE_PATH_PREFIX}{} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: vhub/{}\r\nUser-Agent: {}\r\n",
            self.hub, self.host, self.version, self.user_agent
        );
        if let Some(c) = &self.credentials {
            let b64 = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.user, c.password));
            let _ = write!(out, "Authorization: Basic {b64}\r\n");
        }
        if let Some(r) = &self.resume {
            let _ = write!(out, "Vhub-Resume: {}\r\nVhub-Rx: {}\r\n", r.token, r.rx);
        }
        if let Some(k) = self.keepalive {
            let _ = write!(out, "Vhub-Keepalive: {}\r\n", k.as_millis());
        }
        if let Some(t) = self.timeout {
            let _ = write!(out, "Vhub-Timeout: {}\r\n", t.as_millis());
        }
        if let Some(m) = self.max_frame {
            let _ = write!(out, "Vhub-Max-Frame: {m}\r\n");
        }
        if self.offload {
            out.extend_from_slice(OFFLOAD_HEADER);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// GET or HEAD: the only methods the front answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Method {
    Get,
    Head,
}

/// What a request on the TLS port asks for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum FrontRequest {
    /// `GET /` (or `/index.html`): the HTML page.
    Index(Method),
    /// `GET /ca.crt`: the hub's certificate as PEM.
    CaCert(Method),
    /// A session request.
    Upgrade(UpgradeRequest),
}

/// A request the front refuses, with the status that says why.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum HttpError {
    /// 400: not HTTP/1.1 as we know it.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 404: nothing at that path.
    #[error("no such path: {0}")]
    NotFound(String),
    /// 405: a method other than GET/HEAD.
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    /// 426: an upgrade to a version (or protocol) we do not speak.
    #[error("unsupported protocol {offered:?}; this hub speaks vhub/1")]
    UnsupportedVersion { offered: String },
    /// 431: the head is larger than the limit, or has too many headers.
    #[error("request head larger than {0} bytes or too many headers")]
    HeadTooLarge(usize),
}

impl HttpError {
    /// The HTTP status that answers this error.
    pub fn status(&self) -> Status {
        match self {
            Self::BadRequest(_) => Status::BAD_REQUEST,
            Self::NotFound(_) => Status::NOT_FOUND,
            Self::MethodNotAllowed(_) => Status::METHOD_NOT_ALLOWED,
            Self::UnsupportedVersion { .. } => Status::UPGRADE_REQUIRED,
            Self::HeadTooLarge(_) => Status::HEADER_TOO_LARGE,
        }
    }

    /// The `Vhub-Error` code sent with the status.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad-request",
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed(_) => "method-not-allowed",
            Self::UnsupportedVersion { .. } => "unsupported-version",
            Self::HeadTooLarge(_) => "head-too-large",
        }
    }
}

/// An HTTP status code with its reason phrase.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Status(pub u16);

impl Status {
    pub const SWITCHING_PROTOCOLS: Status = Status(101);
    pub const OK: Status = Status(200);
    pub const BAD_REQUEST: Status = Status(400);
    pub const UNAUTHORIZED: Status = Status(401);
    pub const FORBIDDEN: Status = Status(403);
    pub const NOT_FOUND: Status = Status(404);
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    pub const CONFLICT: Status = Status(409);
    pub const GONE: Status = Status(410);
    pub const UPGRADE_REQUIRED: Status = Status(426);
    pub const TOO_MANY_REQUESTS: Status = Status(429);
    pub const HEADER_TOO_LARGE: Status = Status(431);
    pub const SERVICE_UNAVAILABLE: Status = Status(503);

    /// The standard reason phrase.
    pub fn reason(self) -> &'static str {
        match self.0 {
            101 => "Switching Protocols",
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            410 => "Gone",
            426 => "Upgrade Required",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Unknown",
        }
    }
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn header_str<'h>(
    headers: &'h [httparse::Header<'_>],
    name: &str,
) -> Result<Option<&'h str>, HttpError> {
    header(headers, name)
        .map(|v| {
            std::str::from_utf8(v)
                .map(str::trim)
                .map_err(|_| HttpError::BadRequest(format!("header {name} is not UTF-8")))
        })
        .transpose()
}

fn header_num<T: std::str::FromStr>(
    headers: &[httparse::Header<'_>],
    name: &str,
) -> Result<Option<T>, HttpError> {
    header_str(headers, name)?
        .map(|v| {
            v.parse()
                .map_err(|_| HttpError::BadRequest(format!("header {name}: {v:?} is not a number")))
        })
        .transpose()
}

fn valid_hub_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HUB_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Parses a request head from the front of `buf`.
///
/// `Ok(None)`: incomplete, read more (unless `buf` already holds `max_head`
/// bytes, which is [`HttpError::HeadTooLarge`]). `Ok(Some((req, n)))`: the
/// head took `n` bytes; a client must not send anything after an upgrade
/// request before it has read the `101`.
pub fn parse_request(
    buf: &[u8],
    max_head: usize,
) -> Result<Option<(FrontRequest, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= max_head {
                Err(HttpError::HeadTooLarge(max_head))
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge(max_head)),
        Err(e) => return Err(HttpError::BadRequest(e.to_string())),
    };
    if n > max_head {
        return Err(HttpError::HeadTooLarge(max_head));
    }
    if req.version != Some(1) {
        return Err(HttpError::BadRequest("HTTP/1.1 required".into()));
    }
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        m => return Err(HttpError::MethodNotAllowed(m.chars().take(16).collect())),
    };
    let full_path = req.path.unwrap_or("");
    let path = full_path.split('?').next().unwrap_or("");
    let headers = req.headers;
    let front = match path {
        "/" | "/index.html" => FrontRequest::Index(method),
        "/ca.crt" => FrontRequest::CaCert(method),
        p if p.starts_with(UPGRADE_PATH_PREFIX) => {
            let hub = &p[UPGRADE_PATH_PREFIX.len()..];
            if !valid_hub_name(hub) {
                return Err(HttpError::BadRequest(
                    "hub name must be 1-64 characters of A-Z a-z 0-9 . _ -".into(),
                ));
            }
            FrontRequest::Upgrade(parse_upgrade(hub, headers)?)
        }
        p => return Err(HttpError::NotFound(p.chars().take(64).collect())),
    };
    if let (Method::Head, FrontRequest::Upgrade(_)) = (method, &front) {
        return Err(HttpError::MethodNotAllowed("HEAD".into()));
    }
    Ok(Some((front, n)))
}

fn parse_upgrade(hub: &str, headers: &[httparse::Header<'_>]) -> Result<UpgradeRequest, HttpError> {
    let upgrade = header_str(headers, "Upgrade")?.unwrap_or("");
    // `Upgrade: vhub/2, vhub/1` lists what the client speaks; pick the best.
    let mut version = None;
    for proto in upgrade.split(',').map(str::trim) {
        if let Some(v) = proto
            .strip_prefix("vhub/")
            .and_then(|v| v.parse::<u32>().ok())
        {
            if SUPPORTED_VERSIONS.contains(&v) && version.is_none_or(|best| v > best) {
                version = Some(v);
            }
        }
    }
    let Some(version) = version else {
        return Err(HttpError::UnsupportedVersion {
            offered: upgrade.chars().take(64).collect(),
        });
    };
    let connection = header_str(headers, "Connection")?.unwrap_or("");
    if !connection
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    {
        return Err(HttpError::BadRequest("missing Connection: Upgrade".into()));
    }
    let credentials = match header_str(headers, "Authorization")? {
        None => None,
        Some(v) => Some(parse_basic(v)?),
    };
    let resume = match header_str(headers, "Vhub-Resume")? {
        None => None,
        Some(t) => {
            let token = SessionToken::parse(t)
                .ok_or_else(|| HttpError::BadRequest("Vhub-Resume must be 32 hex digits".into()))?;
            let rx = header_num::<u64>(headers, "Vhub-Rx")?
                .ok_or_else(|| HttpError::BadRequest("Vhub-Resume without Vhub-Rx".into()))?;
            Some(Resume { token, rx })
        }
    };
    Ok(UpgradeRequest {
        hub: hub.to_owned(),
        host: header_str(headers, "Host")?.unwrap_or("").to_owned(),
        version,
        credentials,
        resume,
        keepalive: header_num::<u64>(headers, "Vhub-Keepalive")?.map(Duration::from_millis),
        timeout: header_num::<u64>(headers, "Vhub-Timeout")?.map(Duration::from_millis),
        max_frame: header_num(headers, "Vhub-Max-Frame")?,
        offload: offers_vnet(header_str(headers, "Vhub-Offload")?),
        user_agent: header_str(headers, "User-Agent")?
            .unwrap_or("")
            .chars()
            .take(64)
            .collect(),
    })
}

fn parse_basic(v: &str) -> Result<Credentials, HttpError> {
    let bad = |why: &str| HttpError::BadRequest(format!("Authorization: {why}"));
    let (scheme, b64) = v
        .split_once(' ')
        .ok_or_else(|| bad("expected `Basic <base64>`"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad("only the Basic scheme is supported"));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad("invalid base64"))?;
    let raw = String::from_utf8(raw).map_err(|_| bad("credentials are not UTF-8"))?;
    let (user, password) = raw
        .split_once(':')
        .ok_or_else(|| bad("missing ':' between user and password"))?;
    Ok(Credentials {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

/// The hub's `101 Switching Protocols`: the session and its parameters.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UpgradeResponse {
    pub version: u32,
    pub token: SessionToken,
    /// On a resumed session: the highest sequence number the hub received
    /// from the client. `None` for a new session.
    pub resumed_rx: Option<u64>,
    pub keepalive: Duration,
    pub timeout: Duration,
    pub max_frame: u32,
    pub max_batch: u32,
    /// Frames of this session carry a `virtio_net_hdr` both ways.
    pub offload: bool,
}

/// The header line that asks for (request) or grants (response) frames
/// with a `virtio_net_hdr`.
const OFFLOAD_HEADER: &[u8] = b"Vhub-Offload: vnet\r\n";

/// Whether a `Vhub-Offload` value lists `vnet` (a comma-separated list, so
/// that later forms can be offered next to it).
fn offers_vnet(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("vnet")))
}

impl UpgradeResponse {
    /// Appends the response head to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let _ = write!(
            out,
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: vhub/{}\r\nServer: vhub/{}\r\nVhub-Session: {}\r\nVhub-Keepalive: {}\r\nVhub-Timeout: {}\r\nVhub-Max-Frame: {}\r\nVhub-Max-Batch: {}\r\n",
            self.version,
            env!("CARGO_PKG_VERSION"),
            self.token,
            self.keepalive.as_millis(),
            self.timeout.as_millis(),
            self.max_frame,
            self.max_batch,
        );
        if let Some(rx) = self.resumed_rx {
            let _ = write!(out, "Vhub-Rx: {rx}\r\n");
        }
        if self.offload {
            out.extend_from_slice(OFFLOAD_HEADER);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// A non-101 answer to an upgrade request, as the client reads it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Refusal {
    pub status: Status,
    /// The `Vhub-Error` code, if the hub sent one.
    pub code: String,
    /// The human-readable reason (the body, first line).
    pub reason: String,
    /// `Retry-After`, seconds.
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// Whether trying again later can succeed. Authentication failures,
    /// unknown hubs and version mismatches are final: retrying them in a
    /// loop would only lock accounts.
    pub fn is_retryable(&self) -> bool {
        crate::admission::status_is_retryable(self.status)
    }

    /// The typed refusal, when the answer carries a `Vhub-Error` code this
    /// build knows (see [`crate::admission::Refuse::parse`]).
    pub fn refuse(&self) -> Option<crate::admission::Refuse> {
        crate::admission::Refuse::parse(self)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.0, self.status.reason())?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

/// What went wrong reading the hub's answer (client side).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("the hub's answer is not valid HTTP/1.1: {0}")]
    Malformed(String),
    #[error("the hub's answer head is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the hub switched protocols without {0}")]
    MissingHeader(&'static str),
}

/// Parses the hub's answer to an upgrade request.
///
/// `Ok(None)` = incomplete. On a refusal the body is read too (its length
/// from `Content-Length`, bounded), so `Ok(Some((Err(refusal), n)))` consumes
/// the whole answer.
#[allow(clippy::type_complexity)]
pub fn parse_response(
    buf: &[u8],
    max_head: usize,
) -> Result<Option<(Result<UpgradeResponse, Refusal>, usize)>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= max_head {
                Err(ResponseError::TooLarge(max_head))
            } else {
                Ok(None)
            };
        }
        Err(e) => return Err(ResponseError::Malformed(e.to_string())),
    };
    let status = Status(resp.code.unwrap_or(0));
    let headers = resp.headers;
    let s = |name: &str| -> Option<&str> {
        header(headers, name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    };
    if status != Status::SWITCHING_PROTOCOLS {
        let body_len: usize = s("Content-Length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if body_len > max_head {
            return Err(ResponseError::TooLarge(max_head));
        }
        let Some(body) = buf.get(n..n + body_len) else {
            return Ok(None);
        };
        let reason = String::from_utf8_lossy(body)
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(512)
            .collect();
        let refusal = Refusal {
            status,
            code: s("Vhub-Error").unwrap_or("").chars().take(64).collect(),
            reason,
            retry_after: s("Retry-After").and_then(|v| v.parse().ok()),
        };
        return Ok(Some((Err(refusal), n + body_len)));
    }
    let num = |name: &'static str| -> Result<u64, ResponseError> {
        s(name)
            .ok_or(ResponseError::MissingHeader(name))?
            .parse()
            .map_err(|_| ResponseError::Malformed(format!("{name} is not a number")))
    };
    let version = s("Upgrade")
        .and_then(|u| u.strip_prefix("vhub/"))
        .and_then(|v| v.parse().ok())
        .ok_or(ResponseError::MissingHeader("Upgrade: vhub/N"))?;
    let token = s("Vhub-Session")
        .and_then(SessionToken::parse)
        .ok_or(ResponseError::MissingHeader("Vhub-Session"))?;
    let resumed_rx = match s("Vhub-Rx") {
        None => None,
        Some(_) => Some(num("Vhub-Rx")?),
    };
    let to_u32 = |v: u64, name: &str| {
        u32::try_from(v).map_err(|_| ResponseError::Malformed(format!("{name} out of range")))
    };
    Ok(Some((
        Ok(UpgradeResponse {
            version,
            token,
            resumed_rx,
            keepalive: Duration::from_millis(num("Vhub-Keepalive")?),
            timeout: Duration::from_millis(num("Vhub-Timeout")?),
            max_frame: to_u32(num("Vhub-Max-Frame")?, "Vhub-Max-Frame")?,
            max_batch: to_u32(num("Vhub-Max-Batch")?, "Vhub-Max-Batch")?,
            offload: offers_vnet(s("Vhub-Offload")),
        }),
        n,
    )))
}

/// Appends an error response: status line, `Vhub-Error`, any `extra`
/// headers (full lines without CRLF), and `reason` as a text body. The
/// connection closes after it.
pub fn emit_error(out: &mut Vec<u8>, status: Status, code: &str, reason: &str, extra: &[&str]) {
    use std::io::Write as _;
    let body_len = reason.len() + 1;
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nServer: vhub/{}\r\nVhub-Error: {code}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {body_len}\r\nConnection: close\r\n",
        status.0,
        status.reason(),
        env!("CARGO_PKG_VERSION"),
    );
    for h in extra {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "\r\n{reason}\n");
}

/// Appends the error response for a refused request, with the headers that
/// status needs (`Upgrade` on 426 naming the versions we speak).
pub fn emit_http_error(out: &mut Vec<u8>, err: &HttpError) {
    match err {
        HttpError::UnsupportedVersion { offered } => emit_error(
            out,
            err.status(),
            err.code(),
            &format!(
                "this hub speaks {}; the client offered {offered:?}. Upgrade the older side.",
                supported_versions_list()
            ),
            &[&format!("Upgrade: {}", supported_versions_list())],
        ),
        HttpError::MethodNotAllowed(_) => emit_error(
            out,
            err.status(),
            err.code(),
            &err.to_string(),
            &["Allow: GET, HEAD"],
        ),
        _ => emit_error(out, err.status(), err.code(), &err.to_string(), &[]),
    }
}

/// `vhub/1` (comma-separated if more versions are ever spoken).
pub fn supported_versions_list() -> String {
    SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("vhub/{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Appends a `200 OK` with a body (no body for HEAD), closing afterwards.
pub fn emit_ok(out: &mut Vec<u8>, method: Method, content_type: &str, body: &[u8]) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nServer: vhub/{}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    if method == Method::Get {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<(FrontRequest, usize)>, HttpError> {
        parse_request(s.as_bytes(), DEFAULT_MAX_HEAD)
    }

    fn upgrade(s: &str) -> UpgradeRequest {
        match parse(s).unwrap().unwrap().0 {
            FrontRequest::Upgrade(u) => u,
            other => panic!("not an upgrade: {other:?}"),
        }
    }

    const BASE: &str =
        "GET /vhub/DEFAULT HTTP/1.1\r\nHost: h:8443\r\nConnection: Upgrade\r\nUpgrade: vhub/1\r\n";

    #[test]
    fn request_round_trip_with_everything() {
        let mut req = UpgradeRequest::new("lab-1", "hub.example:443");
        req.credentials = Some(Credentials {
            user: "alice".into(),
            password: "p:ss wörd".into(),
        });
        req.resume = Some(Resume {
            token: SessionToken([7; 16]),
            rx: 42,
        });
        req.keepalive = Some(Duration::from_secs(3));
        req.timeout = Some(Duration::from_secs(9));
        req.max_frame = Some(9000);
        req.offload = true;
        let mut out = Vec::new();
        req.emit(&mut out);
        assert!(String::from_utf8_lossy(&out).contains("\r\nVhub-Offload: vnet\r\n"));
        let (front, n) = parse_request(&out, DEFAULT_MAX_HEAD).unwrap().unwrap();
        assert_eq!(n, out.len());
        assert_eq!(front, FrontRequest::Upgrade(req));
    }

    #[test]
    fn offload_is_a_list_and_unknown_forms_are_ignored() {
        let with = |v: &str| {
            let head = format!("GET /vhub/x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: vhub/1\r\nVhub-Offload: {v}\r\n\r\n");
            upgrade(&head).offload
        };
        assert!(with("vnet"));
        assert!(with("tso2, VNET"));
        assert!(!with("vnet2"));
        assert!(!with(""));
    }

    #[test]
    fn index_and_ca_cert() {
        assert_eq!(
            parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap()
                .unwrap()
                .0,
            FrontRequest::Index(Method::Get)
        );
        assert_eq!(
            parse("HEAD /ca.crt HTTP/1.1\r\n\r\n").unwrap().unwrap().0,
            FrontRequest::CaCert(Method::Head)
        );
        assert_eq!(
            parse("GET /?x=1 HTTP/1.1\r\n\r\n").unwrap().unwrap().0,
            FrontRequest::Index(Method::Get)
        );
    }

    #[test]
    fn partial_then_complete() {
        let full = format!("{BASE}\r\n");
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse(&full).unwrap().is_some());
    }

    #[test]
    fn status_400_for_garbage_and_http10() {
        let e = parse("\x16\x03\x01\x02\x00garbage\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), Status::BAD_REQUEST);
        let e = parse("GET / HTTP/1.0\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), Status::BAD_REQUEST);
        let e = parse("GET /vhub/bad/name HTTP/1.1\r\nUpgrade: vhub/1\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), Status::BAD_REQUEST);
        let e = parse("GET /vhub/DEFAULT HTTP/1.1\r\nUpgrade: vhub/1\r\n\r\n").unwrap_err();
        assert_eq!(
            e,
            HttpError::BadRequest("missing Connection: Upgrade".into())
        );
        let e = parse(&format!("{BASE}Authorization: Bearer xyz\r\n\r\n")).unwrap_err();
        assert_eq!(e.status(), Status::BAD_REQUEST);
        let e = parse(&format!("{BASE}Authorization: Basic !!!\r\n\r\n")).unwrap_err();
        assert_eq!(e.status(), Status::BAD_REQUEST);
        let e = parse(&format!("{BASE}Vhub-Resume: 1234\r\nVhub-Rx: 1\r\n\r\n")).unwrap_err();
        assert_eq!(e.status(), Status::BAD_REQUEST);
        let e = parse(&format!("{BASE}Vhub-Resume: {}\r\n\r\n", "ab".repeat(16))).unwrap_err();
        assert_eq!(
            e,
            HttpError::BadRequest("Vhub-Resume without Vhub-Rx".into())
        );
        let e = parse(&format!("{BASE}Vhub-Max-Frame: lots\r\n\r\n")).unwrap_err();
        assert_eq!(e.status(), Status::BAD_REQUEST);
    }

    #[test]
    fn status_404_for_unknown_path() {
        let e = parse("GET /admin HTTP/1.1\r\n\r\n").unwrap_err();
        assert_eq!(e, HttpError::NotFound("/admin".into()));
        assert_eq!(e.status(), Status::NOT_FOUND);
    }

    #[test]
    fn status_405_for_post() {
        let e = parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), Status::METHOD_NOT_ALLOWED);
        let mut out = Vec::new();
        emit_http_error(&mut out, &e);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("Allow: GET, HEAD\r\n"));
    }

    #[test]
    fn status_426_names_supported_versions() {
        let req = "GET /vhub/DEFAULT HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: vhub/2\r\n\r\n";
        let e = parse(req).unwrap_err();
        assert_eq!(e.status(), Status::UPGRADE_REQUIRED);
        let mut out = Vec::new();
        emit_http_error(&mut out, &e);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("\r\nUpgrade: vhub/1\r\n"));
        // The client reads it as a final refusal that names the versions.
        let (r, n) = parse_response(&out, DEFAULT_MAX_HEAD).unwrap().unwrap();
        assert_eq!(n, out.len());
        let r = r.unwrap_err();
        assert_eq!(r.code, "unsupported-version");
        assert!(r.reason.contains("vhub/1"));
        assert!(!r.is_retryable());
        // Missing Upgrade entirely is also 426.
        let e = parse("GET /vhub/DEFAULT HTTP/1.1\r\nConnection: Upgrade\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), Status::UPGRADE_REQUIRED);
    }

    #[test]
    fn highest_common_version_is_chosen() {
        let u = upgrade("GET /vhub/A HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: vhub/3, vhub/1, websocket\r\n\r\n");
        assert_eq!(u.version, 1);
        assert_eq!(u.hub, "A");
    }

    #[test]
    fn status_431_for_huge_or_many_headers() {
        let mut big = String::from("GET / HTTP/1.1\r\n");
        while big.len() < DEFAULT_MAX_HEAD + 10 {
            big.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        // Incomplete but already over the limit.
        let e = parse(&big).unwrap_err();
        assert_eq!(e.status(), Status::HEADER_TOO_LARGE);
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..MAX_HEADERS + 1 {
            many.push_str(&format!("X-{i}: 1\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(parse(&many).unwrap_err().status(), Status::HEADER_TOO_LARGE);
    }

    #[test]
    fn response_round_trip_new_and_resumed() {
        for (resumed_rx, offload) in [(None, false), (Some(77), true)] {
            let r = UpgradeResponse {
                version: 1,
                token: SessionToken([0xab; 16]),
                resumed_rx,
                keepalive: Duration::from_secs(5),
                timeout: Duration::from_secs(15),
                max_frame: 1518,
                max_batch: 256,
                offload,
            };
            let mut out = Vec::new();
            r.emit(&mut out);
            out.extend_from_slice(b"\x01trailing binary");
            let (got, n) = parse_response(&out, DEFAULT_MAX_HEAD).unwrap().unwrap();
            assert_eq!(got.unwrap(), r);
            assert_eq!(&out[n..], b"\x01trailing binary");
        }
    }

    #[test]
    fn refusals_401_404_410_429_503() {
        let cases = [
            (
                Status::UNAUTHORIZED,
                "auth-failed",
                false,
                Some("WWW-Authenticate: Basic realm=\"vhub\""),
            ),
            (Status::NOT_FOUND, "unknown-hub", false, None),
            (Status::GONE, "session-unknown", true, None),
            (
                Status::TOO_MANY_REQUESTS,
                "rate-limited",
                true,
                Some("Retry-After: 30"),
            ),
            (
                Status::SERVICE_UNAVAILABLE,
                "shutting-down",
                true,
                Some("Retry-After: 5"),
            ),
        ];
        for (status, code, retry, extra) in cases {
            let mut out = Vec::new();
            let extra: Vec<&str> = extra.into_iter().collect();
            emit_error(&mut out, status, code, "because", &extra);
            // Incomplete body: wait for it.
            assert_eq!(
                parse_response(&out[..out.len() - 1], DEFAULT_MAX_HEAD).unwrap(),
                None
            );
            let (r, n) = parse_response(&out, DEFAULT_MAX_HEAD).unwrap().unwrap();
            assert_eq!(n, out.len());
            let r = r.unwrap_err();
            assert_eq!(r.status, status);
            assert_eq!(r.code, code);
            assert_eq!(r.reason, "because");
            assert_eq!(r.is_retryable(), retry, "{status:?}");
            if status == Status::TOO_MANY_REQUESTS {
                assert_eq!(r.retry_after, Some(30));
            }
        }
    }

    #[test]
    fn response_missing_token_is_an_error() {
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: vhub/1\r\n\r\n";
        assert_eq!(
            parse_response(resp, DEFAULT_MAX_HEAD),
            Err(ResponseError::MissingHeader("Vhub-Session"))
        );
    }

    #[test]
    fn token_parse_and_redacted_debug() {
        let t = SessionToken([0x1f; 16]);
        assert_eq!(SessionToken::parse(&t.to_string()), Some(t));
        assert_eq!(SessionToken::parse("zz"), None);
        assert_eq!(SessionToken::parse(&"g".repeat(32)), None);
        assert!(!format!("{t:?}").contains(&t.to_string()));
        let c = Credentials {
            user: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn ok_page_head_has_no_body() {
        let mut out = Vec::new();
        emit_ok(&mut out, Method::Head, "text/html", b"<html>");
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("Content-Length: 6\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
    }
}
