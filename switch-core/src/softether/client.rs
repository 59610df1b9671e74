//! The client side of one SoftEther TCP connection, up to the data phase:
//! what vnic sends a real vpnserver and how it reads the answers
//! (PROTOCOL-NOTES.md §3, §5, §6, §11).
//!
//! ```text
//!  [Probing]  GET / (X-VPN: 1) ── page with marker or SoftEther 403 ──┐   (optional)
//!  AwaitingHello   POST /vpnsvc/connect.cgi, watermark + 0..1999 bytes ◄┘
//!    │ 200 + PACK hello (20-byte random)       poll_event: Hello
//!  AwaitingWelcome POST /vpnsvc/vpn.cgi, PACK login (secure_password)
//!    │                   or additional_connect (session_key)
//!    │ 200 + PACK welcome  ──► Established     poll_event: Established(Welcome)
//!    │ 200 + {error: 0, direction} ──► Established  poll_event: Attached
//!    └ 200 + {error: N} ──► Err(ClientError::Refused(code))
//! ```
//!
//! The shell sends what [`ClientHandshake::poll_transmit`] gives right
//! after TLS, feeds received plaintext to [`ClientHandshake::handle_input`]
//! and arms a timer at [`ClientHandshake::poll_timeout`]. Once
//! established, unused bytes belong to the data phase ([`super::data`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::error::ErrorCode;
use super::http::{
    emit_connect_request_head, emit_pack_request, emit_probe_request, parse_response_head,
    HttpError,
};
use super::message::{
    add_pencore, is_noop, pack_error, AdditionalConnect, Direction, Hello, Login, LoginAuth,
    MessageError, ProductInfo, SessionOptions, Welcome, SESSION_KEY_LEN, UNIQUE_ID_LEN,
};
use super::pack::{Pack, PackError};
use super::padding::Padding;
use super::password::HashedPassword;
use super::probe::{self, MAX_PROBE_BODY};
use super::watermark::{MAX_PADDING, WATERMARK};

/// Largest PACK answer read (a real welcome is about 2 KB; the real client
/// would take up to 512 MiB).
pub const MAX_RESPONSE_PACK: usize = 1024 * 1024;

/// How the client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// authtype 0.
    Anonymous,
    /// authtype 1: the stored `SHA0(password ‖ USER)`
    /// ([`HashedPassword::new`]), as vpncmd's `/TYPE:standard` stores it.
    Password(HashedPassword),
    /// authtype 2 (RADIUS / NT domain accounts): the password in clear
    /// inside TLS.
    PlainPassword(String),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Anonymous => "Anonymous",
            Self::Password(_) => "Password(<redacted>)",
            Self::PlainPassword(_) => "PlainPassword(<redacted>)",
        })
    }
}

/// What the client asks for.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The `Host` header: the server name or address as configured.
    pub host: String,
    pub hub: String,
    pub user: String,
    pub auth: ClientAuth,
    /// `client_str`, `client_ver`, `client_build` (and `hello`, `version`,
    /// `build`). A `client_str` containing "server" or "bridge" makes a
    /// real server force bridge mode.
    pub client: ProductInfo,
    /// Stable per machine (the real client hashes host facts into it).
    pub unique_id: [u8; UNIQUE_ID_LEN],
    /// Asked for in the login. Whatever the welcome says, this crate's
    /// client uses one connection, TLS and no compression.
    pub options: SessionOptions,
    /// Send the HTTPS probe first and stop unless it looks like SoftEther.
    pub probe: bool,
    /// Longest wait for each answer (the real client: 15 s).
    pub step_timeout: Duration,
}

impl ClientConfig {
    /// A login with the defaults of PROTOCOL-NOTES.md §11: one connection,
    /// no QoS, encryption on, no probe, 15 s per step.
    pub fn new(
        host: &str,
        hub: &str,
        user: &str,
        auth: ClientAuth,
        unique_id: [u8; UNIQUE_ID_LEN],
    ) -> Self {
        Self {
            host: host.to_owned(),
            hub: hub.to_owned(),
            user: user.to_owned(),
            auth,
            client: ProductInfo::softether_client(),
            unique_id,
            options: SessionOptions::default(),
            probe: false,
            step_timeout: Duration::from_secs(15),
        }
    }
}

/// Where the handshake is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    Probing,
    AwaitingHello,
    AwaitingWelcome,
    /// Every byte after the answer, both ways, is data phase framing.
    Established,
    Closed,
}

/// Progress worth telling the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server's hello (its product string, for logs).
    Hello(Hello),
    /// Logged in: the session's parameters.
    Established(Welcome),
    /// An additional connection was attached to the session.
    Attached(Direction),
}

/// Why the handshake failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("the server sent a malformed HTTP answer: {0}")]
    Http(#[from] HttpError),
    #[error("the server does not look like a SoftEther VPN server: {0}")]
    NotSoftEther(&'static str),
    #[error("the server's answer of {0} bytes is larger than this client reads")]
    TooLarge(usize),
    #[error("the server sent a malformed PACK: {0}")]
    Pack(#[from] PackError),
    #[error("the server sent an unusable PACK: {0}")]
    Message(#[from] MessageError),
    /// The server refused (bad password, unknown hub, session gone, …):
    /// see [`ErrorCode::retry_after`] and [`ErrorCode::session_gone`].
    #[error("the server refused: {0}")]
    Refused(ErrorCode),
    #[error("the server's welcome asks for {0}, which this client does not do")]
    Unsupported(&'static str),
    #[error("no answer from the server within {0:?}")]
    TimedOut(Duration),
    #[error("the handshake is already over")]
    Closed,
}

#[derive(Clone, Debug)]
enum Mode {
    Login,
    Additional([u8; SESSION_KEY_LEN]),
}

/// The client side of one TCP connection's handshake. See the module doc.
#[derive(Debug)]
pub struct ClientHandshake {
    config: ClientConfig,
    mode: Mode,
    state: ClientState,
    padding: Padding,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
    deadline: Instant,
}

impl ClientHandshake {
    /// A handshake that logs in, started at `now` (after TLS). The first
    /// request is queued at once. `padding_seed` seeds the filler bytes.
    pub fn login(now: Instant, config: ClientConfig, padding_seed: u64) -> Self {
        Self::start(now, config, Mode::Login, padding_seed)
    }

    /// A handshake that attaches this connection to the session of
    /// `session_key` (a further connection, or a re-attach).
    pub fn additional(
        now: Instant,
        config: ClientConfig,
        session_key: [u8; SESSION_KEY_LEN],
        padding_seed: u64,
    ) -> Self {
        Self::start(now, config, Mode::Additional(session_key), padding_seed)
    }

    fn start(now: Instant, config: ClientConfig, mode: Mode, padding_seed: u64) -> Self {
        let mut hs = Self {
            deadline: now + config.step_timeout,
            state: ClientState::Probing,
            config,
            mode,
            padding: Padding::new(padding_seed),
            out: Vec::new(),
            events: VecDeque::new(),
        };
        if hs.config.probe {
            emit_probe_request(&mut hs.out, &hs.config.host);
        } else {
            hs.send_watermark();
        }
        hs
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Feeds received plaintext; returns how many bytes were used. Keep
    /// the rest and call again with more appended; once established the
    /// rest is data phase.
    pub fn handle_input(&mut self, now: Instant, buf: &[u8]) -> Result<usize, ClientError> {
        let mut used = 0;
        loop {
            match self.state {
                ClientState::Established => return Ok(used),
                ClientState::Closed => return Err(ClientError::Closed),
                _ => {}
            }
            match self.step(&buf[used..]) {
                Ok(None) => return Ok(used),
                Ok(Some((n, progress))) => {
                    used += n;
                    if progress {
                        self.deadline = now + self.config.step_timeout;
                    }
                }
                Err(e) => {
                    self.state = ClientState::Closed;
                    return Err(e);
                }
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Appends the bytes to send to `out`; returns how many.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        super::drain_into(&mut self.out, out)
    }

    pub fn wants_transmit(&self) -> bool {
        !self.out.is_empty()
    }

    /// When the server's answer is due; `None` once established or closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ClientState::Established | ClientState::Closed => None,
            _ => Some(self.deadline),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ClientError> {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {
                self.state = ClientState::Closed;
                Err(ClientError::TimedOut(self.config.step_timeout))
            }
            _ => Ok(()),
        }
    }

    fn send_watermark(&mut self) {
        let pad = self.padding.below(MAX_PADDING + 1);
        emit_connect_request_head(&mut self.out, &self.config.host, WATERMARK.len() + pad);
        self.out.extend_from_slice(WATERMARK);
        self.padding.append(&mut self.out, pad);
        self.state = ClientState::AwaitingHello;
    }

    fn send_pack(&mut self, mut pack: Pack) {
        add_pencore(&mut pack, &mut self.padding);
        emit_pack_request(&mut self.out, &self.config.host, &pack);
    }

    /// One answer at the start of `buf`: `None` if incomplete, else the
    /// bytes it took and whether it moved the handshake on.
    fn step(&mut self, buf: &[u8]) -> Result<Option<(usize, bool)>, ClientError> {
        let Some(head) = parse_response_head(buf)? else {
            return Ok(None);
        };
        let body_len = head.body_len();
        if self.state == ClientState::Probing {
            // The real client's test: any status, 1..=1048575 bytes of body
            // whose first 1023 bytes carry the marker or the 403 page.
            if !(1..=MAX_PROBE_BODY).contains(&body_len) {
                return Err(ClientError::NotSoftEther(
                    "the probe's answer has no usable body",
                ));
            }
            let Some(body) = buf.get(head.len..head.len + body_len) else {
                return Ok(None);
            };
            if !probe::is_softether_page(body) {
                return Err(ClientError::NotSoftEther(
                    "the probe's answer lacks the marker",
                ));
            }
            self.send_watermark();
            return Ok(Some((head.len + body_len, true)));
        }
        if !head.is_pack_response() {
            return Err(ClientError::NotSoftEther(
                "the answer is not HTTP/1.1 200 with an application/octet-stream body",
            ));
        }
        if body_len > MAX_RESPONSE_PACK {
            return Err(ClientError::TooLarge(body_len));
        }
        let Some(body) = buf.get(head.len..head.len + body_len) else {
            return Ok(None);
        };
        let used = head.len + body_len;
        let pack = Pack::decode(body)?;
        if let Some(code) = pack_error(&pack) {
            return Err(ClientError::Refused(code));
        }
        match self.state {
            ClientState::AwaitingHello => {
                let hello = Hello::from_pack(&pack)?;
                self.send_request(&hello);
                self.events.push_back(ClientEvent::Hello(hello));
                self.state = ClientState::AwaitingWelcome;
                Ok(Some((used, true)))
            }
            ClientState::AwaitingWelcome => {
                // A NOOP answer (a 5.02 server's noop=2) is skipped, as the
                // real client skips it; it does not extend the deadline.
                if is_noop(&pack) {
                    return Ok(Some((used, false)));
                }
                match self.mode {
                    Mode::Login => {
                        let welcome = Welcome::from_pack(&pack)?;
                        check_welcome(&welcome)?;
                        self.events.push_back(ClientEvent::Established(welcome));
                    }
                    Mode::Additional(_) => {
                        let d = pack.get_int("direction").unwrap_or(0);
                        let d = Direction::from_u32(d).ok_or(MessageError::Bad("direction"))?;
                        if d != Direction::Both {
                            return Err(ClientError::Unsupported("a half-duplex connection"));
                        }
                        self.events.push_back(ClientEvent::Attached(d));
                    }
                }
                self.state = ClientState::Established;
                Ok(Some((used, true)))
            }
            _ => unreachable!("step runs only while reading answers"),
        }
    }

    fn send_request(&mut self, hello: &Hello) {
        let c = &self.config;
        let pack = match &self.mode {
            Mode::Login => {
                let auth = match &c.auth {
                    ClientAuth::Anonymous => LoginAuth::Anonymous,
                    ClientAuth::Password(h) => LoginAuth::Password {
                        secure_password: h.secure_password(&hello.random),
                    },
                    ClientAuth::PlainPassword(p) => LoginAuth::PlainPassword {
                        password: p.clone(),
                    },
                };
                Login {
                    hub: c.hub.clone(),
                    user: c.user.clone(),
                    auth,
                    client: c.client.clone(),
                    unique_id: Some(c.unique_id),
                    options: c.options,
                    hello_random: hello.random,
                }
                .to_pack()
            }
            Mode::Additional(key) => AdditionalConnect {
                session_key: *key,
                client: c.client.clone(),
            }
            .to_pack(),
        };
        self.send_pack(pack);
    }
}

/// What this client cannot follow in a welcome: plaintext data outside
/// TLS, compression, half-duplex connections, cluster redirects. More
/// connections or QoS are fine: one connection still works.
fn check_welcome(w: &Welcome) -> Result<(), ClientError> {
    if !w.use_encrypt {
        return Err(ClientError::Unsupported(
            "the data phase outside TLS (use_encrypt 0)",
        ));
    }
    if w.use_compress {
        return Err(ClientError::Unsupported("compression (use_compress 1)"));
    }
    if w.half_connection {
        return Err(ClientError::Unsupported("half-duplex connections"));
    }
    if w.redirect {
        return Err(ClientError::Unsupported("a cluster redirect"));
    }
    Ok(())
}
