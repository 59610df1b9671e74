//! The server side of one SoftEther TCP connection, up to the data phase
//! (PROTOCOL-NOTES.md §3, §5, §6, §10).
//!
//! ```text
//!  AwaitingConnect ── POST /vpnsvc/connect.cgi + watermark ──► hello sent
//!   │  GET / → index page with the probe marker; other GET → 404;
//!   │  POST elsewhere → 404; bad body → 403; other methods → 501
//!   ▼
//!  AwaitingLogin ── NOOP PACK → {error:0, noop:1} (≤ 30)
//!   │  PACK {method: login} ──────────► poll_event: Login
//!   │  PACK {method: additional_connect} ► poll_event: AdditionalConnect
//!   ▼
//!  Deciding ── accept(&Welcome) / attach(Direction) ──► Established (data phase)
//!           └─ refuse(ErrorCode) ─────────────────────► Refused (flush, close)
//! ```
//!
//! The hub feeds received plaintext to [`ServerHandshake::handle_input`],
//! sends what [`ServerHandshake::poll_transmit`] gives, answers each
//! [`ServerEvent`], and arms a timer at [`ServerHandshake::poll_timeout`].
//! It never parses HTTP or PACKs itself, and this type never knows users
//! or hubs: a [`Login`] carries what is needed to check a password
//! ([`Login::check_password`]). On `Err`, whatever answer the error owes
//! the client (a 403 page, an error PACK) is already queued: flush
//! `poll_transmit`, then close.

use std::time::{Duration, Instant};

use super::error::ErrorCode;
use super::http::{
    emit_pack_response, emit_page, parse_request_head, HttpError, CONNECT_TARGET, MAX_PACK_BODY,
    PACK_CONTENT_TYPE, PACK_TARGET,
};
use super::message::{
    add_pencore, attach_reply, error_pack, is_noop, noop_reply, AdditionalConnect, Direction,
    Hello, Login, MessageError, Method, ProductInfo, Welcome, MAX_TCP_CONNECTIONS,
    TIMEOUT_RANGE_MS,
};
use super::pack::{Pack, PackError};
use super::padding::Padding;
use super::password::RANDOM_LEN;
use super::probe;
use super::watermark::{connect_length_ok, is_connect_body, MAX_CONNECT_BODY};

/// What the server says about itself and how patient it is.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The hello's `hello`, `version`, `build`. Clients only display them.
    pub product: ProductInfo,
    /// The page for `GET /` (the probe marker is put in front of it).
    pub index_html: String,
    /// Longest wait for the client's next request (the real server allows
    /// 15 s plus jitter; PROTOCOL-NOTES.md §2.4 recommends about 20 s).
    pub step_timeout: Duration,
    /// Most HTTP requests before the watermark POST (the real server
    /// serves 19, and drops the connection at the 20th).
    pub max_requests: u32,
    /// Most NOOP PACKs before the login (`MAX_NOOP_PER_SESSION`).
    pub max_noops: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            product: ProductInfo::softether_server(),
            index_html: probe::DEFAULT_INDEX_HTML.to_owned(),
            step_timeout: Duration::from_secs(20),
            max_requests: 19,
            max_noops: 30,
        }
    }
}

/// Where the handshake is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    /// Reading HTTP requests until the watermark POST.
    AwaitingConnect,
    /// Hello sent; reading PACK POSTs until a login or additional_connect.
    AwaitingLogin,
    /// An event is waiting for the hub's answer.
    Deciding,
    /// Welcome or attach queued: every byte after it, both ways, is data
    /// phase framing (see [`super::data`]).
    Established,
    /// Refusal queued: flush it, then close (the client closes too).
    Refused,
    /// Failed: close (after flushing any queued answer).
    Closed,
}

/// A decision the hub owes this connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// Answer with [`ServerHandshake::accept`] or [`ServerHandshake::refuse`]
    /// (e.g. [`ErrorCode::HubNotFound`], [`ErrorCode::AuthFailed`]).
    Login(Login),
    /// Answer with [`ServerHandshake::attach`] or, for a hub of one
    /// connection per session, [`ServerHandshake::refuse`] with
    /// [`ErrorCode::SessionTimeout`], which makes the client log in again
    /// at once (§8).
    AdditionalConnect(AdditionalConnect),
}

/// Why the handshake ended. All but the last four are the client's fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    #[error("client sent a malformed HTTP request: {0}")]
    Http(#[from] HttpError),
    #[error("client sent a request this step does not take: {0}")]
    BadRequest(&'static str),
    #[error("client POSTed a body of {0} bytes where the watermark (1411..=3411 bytes) belongs; answered 403")]
    ConnectLength(usize),
    #[error("client sent more HTTP requests than the {0} allowed before the watermark")]
    TooManyRequests(u32),
    #[error("client sent more NOOP PACKs than the {0} allowed")]
    TooManyNoops(u32),
    #[error("client sent a malformed PACK: {0}; answered with error 4")]
    Pack(#[from] PackError),
    #[error("client sent an unusable PACK: {0}; answered with an error PACK")]
    Message(#[from] MessageError),
    #[error("client sent nothing for {0:?} during the handshake")]
    TimedOut(Duration),
    #[error("the hub answered a connection that is not waiting for that answer ({0:?})")]
    NotDeciding(ServerState),
    #[error("the hub's welcome is unsafe to send: {0}")]
    BadWelcome(&'static str),
    #[error("the handshake is already over")]
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Login,
    Additional,
}

/// The server side of one TCP connection's handshake. See the module doc.
#[derive(Debug)]
pub struct ServerHandshake {
    config: ServerConfig,
    state: ServerState,
    random: [u8; RANDOM_LEN],
    padding: Padding,
    out: Vec<u8>,
    events: Option<ServerEvent>,
    pending: Option<Pending>,
    requests: u32,
    noops: u32,
    deadline: Instant,
}

impl ServerHandshake {
    /// A handshake for a connection accepted at `now` (after TLS).
    /// `random` is the hello's challenge: 20 bytes from a CSPRNG, new for
    /// every connection. `padding_seed` seeds the filler bytes.
    pub fn new(
        now: Instant,
        config: ServerConfig,
        random: [u8; RANDOM_LEN],
        padding_seed: u64,
    ) -> Self {
        let deadline = now + config.step_timeout;
        Self {
            config,
            state: ServerState::AwaitingConnect,
            random,
            padding: Padding::new(padding_seed),
            out: Vec::new(),
            events: None,
            pending: None,
            requests: 0,
            noops: 0,
            deadline,
        }
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The challenge of this connection's hello.
    pub fn hello_random(&self) -> &[u8; RANDOM_LEN] {
        &self.random
    }

    /// Feeds received plaintext; returns how many bytes were used. Keep
    /// the rest and call again with more appended. Once the state is
    /// [`ServerState::Established`], the unused bytes belong to the data
    /// phase. While [`ServerState::Deciding`] nothing is consumed.
    pub fn handle_input(&mut self, now: Instant, buf: &[u8]) -> Result<usize, ServerError> {
        let mut used = 0;
        loop {
            match self.state {
                ServerState::AwaitingConnect | ServerState::AwaitingLogin => {}
                ServerState::Deciding | ServerState::Established => return Ok(used),
                // The client should only close now; whatever it sends is ignored.
                ServerState::Refused => return Ok(buf.len()),
                ServerState::Closed => return Err(ServerError::Closed),
            }
            match self.step(&buf[used..]) {
                Ok(0) => return Ok(used),
                Ok(n) => {
                    used += n;
                    self.deadline = now + self.config.step_timeout;
                }
                Err(e) => {
                    self.state = ServerState::Closed;
                    return Err(e);
                }
            }
        }
    }

    /// The next decision to make, if any.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.take()
    }

    /// Appends the bytes to send to `out`; returns how many.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        super::drain_into(&mut self.out, out)
    }

    /// Whether [`ServerHandshake::poll_transmit`] has bytes.
    pub fn wants_transmit(&self) -> bool {
        !self.out.is_empty()
    }

    /// When the client's next request is due; `None` once established or closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ServerState::Established | ServerState::Closed => None,
            _ => Some(self.deadline),
        }
    }

    /// Ends the handshake if the client is late.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ServerError> {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {
                self.state = ServerState::Closed;
                Err(ServerError::TimedOut(self.config.step_timeout))
            }
            _ => Ok(()),
        }
    }

    /// Accepts a [`ServerEvent::Login`]: queues the welcome; the data phase
    /// starts after it. Refuses to send a welcome that would break the
    /// real client: `use_encrypt` false (it would leave TLS), a `timeout`
    /// outside 5000..=60000 ms, `max_connection` outside 1..=32, a
    /// half-duplex session of one connection, or a cluster redirect.
    pub fn accept(&mut self, welcome: &Welcome) -> Result<(), ServerError> {
        self.expect(Pending::Login)?;
        if !welcome.use_encrypt {
            return Err(ServerError::BadWelcome("use_encrypt must be true"));
        }
        if !TIMEOUT_RANGE_MS.contains(&welcome.timeout_ms) {
            return Err(ServerError::BadWelcome("timeout must be 5000..=60000 ms"));
        }
        if !(1..=MAX_TCP_CONNECTIONS).contains(&welcome.max_connection) {
            return Err(ServerError::BadWelcome("max_connection must be 1..=32"));
        }
        if welcome.half_connection && welcome.max_connection < 2 {
            return Err(ServerError::BadWelcome(
                "half_connection needs max_connection >= 2",
            ));
        }
        if welcome.redirect {
            return Err(ServerError::BadWelcome(
                "cluster redirects are not supported",
            ));
        }
        self.send_pack(welcome.to_pack());
        self.finish(ServerState::Established);
        Ok(())
    }

    /// Accepts a [`ServerEvent::AdditionalConnect`]: queues `{error: 0,
    /// direction}`; the data phase starts after it.
    pub fn attach(&mut self, direction: Direction) -> Result<(), ServerError> {
        self.expect(Pending::Additional)?;
        self.send_pack(attach_reply(direction));
        self.finish(ServerState::Established);
        Ok(())
    }

    /// Refuses the pending login or additional connection with `code`
    /// (`{error: code, no_save_password: 0}`). Flush, then close.
    pub fn refuse(&mut self, code: ErrorCode) -> Result<(), ServerError> {
        if self.state != ServerState::Deciding {
            return Err(ServerError::NotDeciding(self.state));
        }
        // 0 would read as success.
        let code = if code.to_u32() == 0 {
            ErrorCode::ProtocolError
        } else {
            code
        };
        self.send_pack(error_pack(code));
        self.finish(ServerState::Refused);
        Ok(())
    }

    fn expect(&self, pending: Pending) -> Result<(), ServerError> {
        if self.state == ServerState::Deciding && self.pending == Some(pending) {
            Ok(())
        } else {
            Err(ServerError::NotDeciding(self.state))
        }
    }

    fn finish(&mut self, state: ServerState) {
        self.state = state;
        self.pending = None;
        self.events = None;
    }

    fn send_pack(&mut self, mut pack: Pack) {
        add_pencore(&mut pack, &mut self.padding);
        emit_pack_response(&mut self.out, &pack);
    }

    fn send_page(&mut self, status: u16, reason: &str, body: &[u8]) {
        emit_page(&mut self.out, status, reason, body);
    }

    /// One request at the start of `buf`: the bytes it took, or 0 if it is
    /// not complete yet.
    fn step(&mut self, buf: &[u8]) -> Result<usize, ServerError> {
        let Some(head) = parse_request_head(buf)? else {
            return Ok(0);
        };
        let body_len = head.body_len();
        match self.state {
            ServerState::AwaitingConnect => {
                // Counted when it is whole (this may be a retry of a
                // request whose body had not all arrived).
                if self.requests >= self.config.max_requests {
                    return Err(ServerError::TooManyRequests(self.config.max_requests));
                }
                if head.method == "POST" && !connect_length_ok(body_len) {
                    self.send_page(403, "Forbidden", &probe::forbidden_page(head.target));
                    return Err(ServerError::ConnectLength(body_len));
                }
                if body_len > MAX_CONNECT_BODY {
                    return Err(ServerError::BadRequest("a body larger than 3411 bytes"));
                }
                let Some(body) = buf.get(head.len..head.len + body_len) else {
                    return Ok(0);
                };
                match head.method {
                    "GET" | "HEAD" => {
                        // HEAD gets the body too, as from the real server.
                        if head.target == "/" || head.target.starts_with("/?") {
                            let page = probe::index_page(&self.config.index_html);
                            self.send_page(200, "OK", &page);
                        } else {
                            self.send_page(404, "Not Found", &probe::not_found_page(head.target));
                        }
                    }
                    "POST" if head.target != CONNECT_TARGET => {
                        self.send_page(404, "Not Found", &probe::not_found_page(head.target));
                    }
                    "POST" if is_connect_body(body) => {
                        let hello = Hello {
                            server: self.config.product.clone(),
                            random: self.random,
                        };
                        self.send_pack(hello.to_pack());
                        self.state = ServerState::AwaitingLogin;
                    }
                    "POST" => {
                        self.send_page(403, "Forbidden", &probe::forbidden_page(head.target));
                    }
                    method => {
                        let page = probe::not_implemented_page(method, head.target);
                        self.send_page(501, "Method Not Implemented", &page);
                    }
                }
                self.requests += 1;
                Ok(head.len + body_len)
            }
            ServerState::AwaitingLogin => {
                let is_pack_request = head.method == "POST"
                    && head.target == PACK_TARGET
                    && head.http11
                    && head
                        .content_type
                        .is_some_and(|t| t.eq_ignore_ascii_case(PACK_CONTENT_TYPE));
                if !is_pack_request {
                    return Err(ServerError::BadRequest(
                        "after the hello only POST /vpnsvc/vpn.cgi with a PACK",
                    ));
                }
                if !(1..=MAX_PACK_BODY).contains(&body_len) {
                    return Err(ServerError::BadRequest("a PACK of 1..=65536 bytes"));
                }
                let Some(body) = buf.get(head.len..head.len + body_len) else {
                    return Ok(0);
                };
                self.handle_pack(body)?;
                Ok(head.len + body_len)
            }
            _ => unreachable!("step runs only while reading requests"),
        }
    }

    fn handle_pack(&mut self, body: &[u8]) -> Result<(), ServerError> {
        let pack = match Pack::decode(body) {
            Ok(p) => p,
            Err(e) => {
                self.send_pack(error_pack(ErrorCode::ProtocolError));
                return Err(e.into());
            }
        };
        if is_noop(&pack) {
            self.noops += 1;
            if self.noops > self.config.max_noops {
                return Err(ServerError::TooManyNoops(self.config.max_noops));
            }
            self.send_pack(noop_reply());
            return Ok(());
        }
        let parsed = match Method::of(&pack) {
            Method::Login => Login::from_pack(&pack, self.random)
                .map(|l| (ServerEvent::Login(l), Pending::Login)),
            Method::AdditionalConnect => AdditionalConnect::from_pack(&pack)
                .map(|a| (ServerEvent::AdditionalConnect(a), Pending::Additional)),
            Method::Other(m) => Err(MessageError::UnknownMethod(m)),
        };
        match parsed {
            Ok((event, pending)) => {
                self.events = Some(event);
                self.pending = Some(pending);
                self.state = ServerState::Deciding;
                Ok(())
            }
            Err(e) => {
                self.send_pack(error_pack(e.code()));
                Err(e.into())
            }
        }
    }
}
