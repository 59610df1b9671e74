//! One shard: a thread with its own runtime (io_uring or epoll), its own
//! `SO_REUSEPORT` listener, and the sessions it accepted.
//!
//! A connection goes through: TLS handshake → HTTP request → either a page
//! (`/`, `/ca.crt`), an error status, or the `vhub/1` upgrade; then a
//! reader loop (this task) and a writer task share the connection.
//!
//! Where a frame goes is decided by switch-core (`Session` for the bytes,
//! `Fabric` for the port); this file only moves bytes and hands frames to
//! the right session, locally or through another shard's mailbox.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certs::tls::{ClientCert, TlsConn};
use slab::Slab;
use switch_core::fabric::{DropReason, Forward, PortId};
use switch_core::offload::{self, VnetHdr};
use switch_core::session::{Accept, Event, ResumeError, SendError, Session, State};
use switch_core::wire::http::{
    self, Credentials, FrontRequest, SessionToken, Status, UpgradeRequest,
};
use switch_core::wire::CloseCode;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::auth::{AuthResult, CertLogin};
use crate::metrics::{Handshake, Limit, Local};
use crate::net::{Backend, NetStream};
use crate::server::ServerContext;
use crate::switchboard::{
    port_to_u64, Batch, Control, HubFabric, PortLoc, SessionEntry, Switchboard, BATCH_BYTES,
    BATCH_FLOOD, BATCH_UNICAST, BATCH_VNET,
};
use crate::throttle::{AddrKey, Scope, Verdict};

/// Bytes asked of the socket per read: large reads, few syscalls. A read
/// starts at `READ_MIN` and doubles while reads fill the buffer, up to
/// `READ_CHUNK`; an idle connection holds only `READ_MIN` (the pending read
/// owns its buffer the whole time it waits).
const READ_CHUNK: usize = 256 * 1024;
const READ_MIN: usize = 4 * 1024;
/// Plaintext produced per writer round before it is encrypted and written.
const WRITE_CHUNK: usize = 256 * 1024;
/// A session holding less than this always takes frames, whatever the
/// hub-wide buffer budget says.
const BUFFER_FLOOR: usize = 64 * 1024;
/// A writer quiet for this long gives its buffers back when it sleeps.
const KEEP_BUFFERS_IDLE: Duration = Duration::from_millis(500);
/// A writer that wrote less than this since it last slept (keep-alives,
/// ACKs, a trickle of frames) gives its buffers back before sleeping.
const LIGHT_WRITE: usize = 4 * 1024;
/// Buffers this large given back by a quiet writer are worth a trim.
const TRIM_AFTER_FREEING: usize = 64 * 1024;
/// Offload sessions: most 64 KiB super frames per message (a message stays
/// near 1 MiB); their buffer is `offload::OFFLOAD_BUFFER_BYTES`.
const OFFLOAD_MAX_BATCH: u32 = 16;

/// A connection moving to the shard that owns its session (resume on the
/// wrong shard).
pub struct Migration {
    pub fd: OwnedFd,
    pub tls: TlsConn,
    pub request: UpgradeRequest,
    pub entry: SessionEntry,
    pub token: SessionToken,
    pub peer: SocketAddr,
}

/// The rate-limit slot of "authentication failed" log lines (after the
/// [`Limit`] ones).
const AUTH_LOG_SLOT: usize = 15;

/// A refused login: the parts of the HTTP error answer.
struct Deny {
    status: Status,
    code: &'static str,
    reason: String,
    extra: Vec<String>,
    handshake: Handshake,
}

/// A handshake in progress, counted per shard and per source address
/// until dropped.
struct HandshakeGuard<B: Backend> {
    shard: Rc<Shard<B>>,
    addr: AddrKey,
}

impl<B: Backend> Drop for HandshakeGuard<B> {
    fn drop(&mut self) {
        self.shard.st.borrow_mut().handshakes -= 1;
        self.shard.ctx.admission.end_handshake(self.addr);
    }
}

/// A live TCP+TLS connection carrying a session.
struct Conn<S> {
    stream: S,
    tls: RefCell<TlsConn>,
    /// Wakes the writer: frames queued, timers, closing.
    wake: Notify,
    closed: Cell<bool>,
    /// The timer the writer last went to sleep with: input that brings a
    /// session deadline before it (a delayed ACK) must wake the writer.
    sleep_until: Cell<Option<Instant>>,
    id: u64,
}

impl<S: NetStream> Conn<S> {
    fn close(&self) {
        if !self.closed.replace(true) {
            self.stream.shutdown();
            self.wake.notify_one();
        }
    }
}

struct Slot<S> {
    session: Option<Box<Session>>,
    hub: usize,
    port: PortId,
    token: SessionToken,
    user: String,
    conn: Option<Rc<Conn<S>>>,
    /// Counted in `vhub_sessions_detached` (link lost, waiting for a
    /// resume). A flag, not `conn.is_none()`: a session that ends detached
    /// (grace over, state Closed) must still leave the gauge.
    detached: bool,
    dirty: bool,
    peer: SocketAddr,
    /// This session's buffered bytes as last counted in the shard's total.
    buffered: usize,
}

struct State_<S> {
    slots: Slab<Slot<S>>,
    /// Per virtual hub: this shard's slots, for flooding.
    local_ports: Vec<Vec<u32>>,
    /// Per destination shard: the batch being filled.
    outbox: Vec<Option<Batch>>,
    /// Shards whose mailbox got a batch in this round: wake once each.
    to_wake: Vec<bool>,
    /// Slots that received frames in this round: wake their writers once.
    dirty: Vec<u32>,
    /// Frames converted between offload and plain form are built here.
    scratch: Vec<u8>,
    /// Bytes the shard's sessions hold in their buffers, and the most they
    /// may hold together (its share of `limits.max_buffer_memory`).
    buffered: usize,
    buffer_budget: usize,
    counters: Local,
    handshakes: usize,
    next_conn_id: u64,
}

pub struct Shard<B: Backend> {
    pub id: u16,
    sb: Arc<Switchboard>,
    ctx: Arc<ServerContext>,
    st: RefCell<State_<B::Stream>>,
    listener: RefCell<Option<Rc<B::Listener>>>,
    done: Notify,
    /// Memory was freed (a session ended, a writer gave its buffers back):
    /// housekeeping hands free pages back to the system.
    trim: Cell<bool>,
}

impl<B: Backend> Shard<B> {
    /// Runs the shard on the current thread until the hub shuts down.
    pub fn run(
        id: u16,
        sb: Arc<Switchboard>,
        ctx: Arc<ServerContext>,
        listener: std::net::TcpListener,
    ) {
        B::block_on(async move {
            let shards = sb.mailboxes.len();
            let hubs = sb.hubs.len();
            let buffer_budget = ctx.settings.max_buffer_memory / shards.max(1);
            let listener = match B::listener(listener) {
                Ok(l) => Rc::new(l),
                Err(e) => {
                    warn!(shard = id, "cannot use the listener: {e}");
                    return;
                }
            };
            let shard = Rc::new(Shard::<B> {
                id,
                sb,
                ctx,
                st: RefCell::new(State_ {
                    slots: Slab::new(),
                    local_ports: vec![Vec::new(); hubs],
                    outbox: (0..shards).map(|_| None).collect(),
                    to_wake: vec![false; shards],
                    dirty: Vec::new(),
                    scratch: Vec::new(),
                    buffered: 0,
                    buffer_budget,
                    counters: Local::default(),
                    handshakes: 0,
                    next_conn_id: 0,
                }),
                listener: RefCell::new(Some(listener.clone())),
                done: Notify::new(),
                trim: Cell::new(false),
            });
            B::spawn(shard.clone().mailbox_loop());
            B::spawn(shard.clone().housekeeping());
            B::spawn(shard.clone().accept_loop(listener));
            shard.done.notified().await;
            // Give writers a moment to flush their CLOSE messages.
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
    }

    async fn accept_loop(self: Rc<Self>, listener: Rc<B::Listener>) {
        loop {
            match B::accept(&listener).await {
                Ok((stream, peer)) => {
                    if self.sb.is_shutting_down() {
                        stream.shutdown();
                        continue;
                    }
                    B::spawn(self.clone().handle_connection(stream, peer));
                }
                Err(e) => {
                    if self.sb.is_shutting_down() {
                        return;
                    }
                    // EMFILE and friends: back off instead of spinning.
                    warn!(shard = self.id, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    // ------------------------------------------------------------------
    // Handshake: TLS, then HTTP
    // ------------------------------------------------------------------

    async fn handle_connection(self: Rc<Self>, stream: B::Stream, peer: SocketAddr) {
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
        finished.set(true);
        if let Some((tls, req)) = outcome {
            let Ok(stream) = Rc::try_unwrap(stream) else {
                unreachable!("only the watchdog's weak handle remains");
            };
            self.upgrade(stream, tls, req, peer, guard).await;
        }
    }

    /// Counts a refusal by `limit` and logs it (at most once a second per
    /// limit: a flood must not flood the log too).
    fn limit_reached(&self, limit: Limit, peer: SocketAddr, what: &str) {
        self.sb.metrics.limit(limit);
        if self.ctx.admission.should_log(limit as usize) {
            warn!(%peer, limit = limit.as_str(), "limit reached: {what}");
        }
    }

    /// Writes `plain` through TLS and closes the connection.
    async fn respond_and_close(&self, stream: &B::Stream, tls: &mut TlsConn, plain: &[u8]) {
        let _ = tls.write_plaintext(plain);
        tls.shutdown();
        let mut out = Vec::new();
        tls.take_ciphertext(&mut out);
        let _ = stream.write_all(out).await;
        stream.shutdown();
    }

    /// TLS handshake and the HTTP request. Returns the TLS state and the
    /// upgrade request when the client asks for a session; answers
    /// everything else itself.
    async fn handshake(
        &self,
        stream: &B::Stream,
        peer: SocketAddr,
        timed_out: &Cell<bool>,
    ) -> Option<(TlsConn, UpgradeRequest)> {
        let metrics = &self.sb.metrics;
        // The connection ended before a request: by the deadline or not.
        let ended = |h| {
            if timed_out.get() {
                metrics.handshake(Handshake::Timeout);
                self.limit_reached(
                    Limit::HandshakeTimeout,
                    peer,
                    "handshake not finished in time; connection closed",
                );
            } else {
                metrics.handshake(h);
            }
        };
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
            ended(Handshake::TlsFailed);
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
        // TLS handshake.
        loop {
            let r = tls.handshake();
            if tls.wants_write() {
                tls.take_ciphertext(&mut out);
                let (res, b) = stream.write_all(std::mem::take(&mut out)).await;
                out = b;
                out.clear();
                if res.is_err() {
                    ended(Handshake::TlsFailed);
                    return None;
                }
            }
            match r {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    debug!(%peer, "TLS handshake failed: {e}");
                    metrics.handshake(Handshake::TlsFailed);
                    stream.shutdown();
                    return None;
                }
            }
            if !read_into(stream, &mut tls, &mut buf).await {
                ended(Handshake::TlsFailed);
                return None;
            }
        }
        // HTTP request head.
        let max_head = self.ctx.settings.max_header_bytes;
        let mut plain = Vec::new();
        loop {
            if let Err(e) = tls.read_plaintext(&mut plain) {
                debug!(%peer, "TLS error before the request: {e}");
                metrics.handshake(Handshake::TlsFailed);
                stream.shutdown();
                return None;
            }
            match http::parse_request(&plain, max_head) {
                Ok(Some((req, _))) => {
                    return match req {
                        FrontRequest::Upgrade(u) => Some((tls, u)),
                        FrontRequest::Index(m) => {
                            metrics.handshake(Handshake::Page);
                            let mut resp = Vec::new();
                            http::emit_ok(&mut resp, m, "text/html; charset=utf-8", &self.ctx.page);
                            self.respond_and_close(stream, &mut tls, &resp).await;
                            None
                        }
                        FrontRequest::CaCert(m) => {
                            metrics.handshake(Handshake::Page);
                            let mut resp = Vec::new();
                            http::emit_ok(
                                &mut resp,
                                m,
                                "application/x-x509-ca-cert",
                                &self.ctx.cert_pem,
                            );
                            self.respond_and_close(stream, &mut tls, &resp).await;
                            None
                        }
                    };
                }
                Ok(None) => {}
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
                    self.respond_and_close(stream, &mut tls, &resp).await;
                    return None;
                }
            }
            if !read_into(stream, &mut tls, &mut buf).await {
                ended(Handshake::HttpError);
                return None;
            }
        }
    }

    /// Answers an error status and closes. (The arguments are the parts of
    /// one HTTP error response; a struct would only rename them.)
    #[allow(clippy::too_many_arguments)]
    async fn refuse(
        &self,
        stream: B::Stream,
        mut tls: TlsConn,
        status: Status,
        code: &str,
        reason: &str,
        extra: &[&str],
        h: Handshake,
    ) {
        self.sb.metrics.handshake(h);
        let mut resp = Vec::new();
        http::emit_error(&mut resp, status, code, reason, extra);
        self.respond_and_close(&stream, &mut tls, &resp).await;
    }

    /// Decides who a new session belongs to: anonymous, a password login,
    /// or a certificate login (a client certificate and no password; a user
    /// name, if given, says which user bound to it). Failed logins are
    /// slowed down, then refused, per address and per user.
    async fn login(
        &self,
        hub: &str,
        anonymous: bool,
        creds: Option<&Credentials>,
        cert: &ClientCert,
        peer: SocketAddr,
    ) -> Result<String, Deny> {
        let realm = format!("WWW-Authenticate: Basic realm=\"vhub {hub}\"");
        let cert_login = *cert != ClientCert::None && creds.is_none_or(|c| c.password.is_empty());
        let Some(named) = creds.map(|c| c.user.as_str()).or(cert_login.then_some("")) else {
            if anonymous {
                return Ok(String::new());
            }
            return Err(Deny {
                status: Status::UNAUTHORIZED,
                code: "auth-required",
                reason: "this hub needs a user name and password (or a client certificate)".into(),
                extra: vec![realm],
                handshake: Handshake::AuthFailed,
            });
        };
        // A password login is throttled by address and user; a certificate
        // login by address only.
        let throttle_user = (!cert_login).then_some((hub, named));
        let ip = peer.ip();
        let verdict = self
            .ctx
            .admission
            .throttle
            .lock()
            .check(Instant::now(), ip, throttle_user);
        match verdict {
            Verdict::Go => {}
            Verdict::Delay(d) => {
                self.sb
                    .metrics
                    .logins_delayed
                    .fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(d).await;
            }
            Verdict::Refuse { scope, retry_after } => {
                let limit = match scope {
                    Scope::Address => Limit::LoginFailuresPerAddress,
                    Scope::User => Limit::LoginFailuresPerUser,
                };
                self.limit_reached(limit, peer, "login refused without checking; 429");
                let secs = retry_after.as_secs().max(1);
                return Err(Deny {
                    status: Status::TOO_MANY_REQUESTS,
                    code: "login-throttled",
                    reason: format!(
                        "too many failed logins for this {}; try again in {secs} s",
                        scope.as_str()
                    ),
                    extra: vec![format!("Retry-After: {secs}")],
                    handshake: Handshake::Limited,
                });
            }
        }
        let outcome: Result<String, (&'static str, String)> = if cert_login {
            let name = (!named.is_empty()).then_some(named);
            match cert {
                ClientCert::Verified {
                    fingerprint,
                    subject,
                } => match self
                    .ctx
                    .auth
                    .auth
                    .authenticate_cert(hub, name, fingerprint, subject)
                {
                    CertLogin::Ok(user) => Ok(user),
                    CertLogin::NotBound => Err((
                        "cert-not-bound",
                        match name {
                            Some(n) => format!("this client certificate is not bound to user {n:?} on this hub"),
                            None => "this client certificate is not bound to a user of this hub".into(),
                        },
                    )),
                    CertLogin::Ambiguous => Err((
                        "cert-ambiguous",
                        "several users of this hub are bound to this certificate; give the user name".into(),
                    )),
                },
                ClientCert::Rejected { reason, .. } => Err((
                    "cert-refused",
                    format!("the client certificate was not accepted: {reason}"),
                )),
                ClientCert::None => unreachable!("a certificate login has a certificate"),
            }
        } else {
            let c = creds.expect("a password login has credentials");
            match self.ctx.auth.authenticate(hub, &c.user, &c.password).await {
                AuthResult::Ok => Ok(c.user.clone()),
                _ => Err(("auth-failed", "wrong user name or password".into())),
            }
        };
        let mut throttle = self.ctx.admission.throttle.lock();
        match outcome {
            Ok(user) => {
                throttle.succeeded(ip);
                Ok(user)
            }
            Err((code, reason)) => {
                let before = throttle.untracked();
                throttle.failed(Instant::now(), ip, throttle_user);
                if throttle.untracked() > before {
                    self.sb
                        .metrics
                        .logins_untracked
                        .fetch_add(1, Ordering::Relaxed);
                }
                drop(throttle);
                // The name and the address, never the password or a hash.
                if self.ctx.admission.should_log(AUTH_LOG_SLOT) {
                    info!(%peer, hub, user = named, code, "authentication failed");
                }
                Err(Deny {
                    status: Status::UNAUTHORIZED,
                    code,
                    reason,
                    extra: vec![realm],
                    handshake: Handshake::AuthFailed,
                })
            }
        }
    }

    /// The `vhub/1` upgrade: new session or resume.
    async fn upgrade(
        self: Rc<Self>,
        stream: B::Stream,
        tls: TlsConn,
        req: UpgradeRequest,
        peer: SocketAddr,
        guard: HandshakeGuard<B>,
    ) {
        if self.sb.is_shutting_down() {
            return self
                .refuse(
                    stream,
                    tls,
                    Status::SERVICE_UNAVAILABLE,
                    "shutting-down",
                    "the hub is shutting down; try again shortly",
                    &["Retry-After: 5"],
                    Handshake::ShuttingDown,
                )
                .await;
        }
        let Some(hub) = self.sb.enabled_hub(&req.hub) else {
            let reason = format!("no virtual hub named {:?} here", req.hub);
            return self
                .refuse(
                    stream,
                    tls,
                    Status::NOT_FOUND,
                    "unknown-hub",
                    &reason,
                    &[],
                    Handshake::UnknownHub,
                )
                .await;
        };
        if let Some(resume) = req.resume {
            // A token lookup, no slow check: the handshake is over.
            drop(guard);
            let entry = self.sb.sessions.lock().get(&resume.token).cloned();
            let user_ok = |e: &SessionEntry| match &req.credentials {
                Some(c) => c.user == e.user,
                None => true,
            };
            match entry {
                Some(e)
                    if e.hub == hub
                        && user_ok(&e)
                        && (if e.user.is_empty() {
                            self.sb.hubs[hub].anonymous.load(Ordering::Relaxed)
                        } else {
                            self.ctx.auth.auth.user_exists(&req.hub, &e.user)
                        }) =>
                {
                    if e.shard == self.id {
                        return self
                            .attach_resumed(stream, tls, req, e, resume.token, peer)
                            .await;
                    }
                    // The session lives on another shard: hand the connection over.
                    let fd = match stream.dup_fd() {
                        Ok(fd) => fd,
                        Err(e) => {
                            warn!("cannot duplicate a socket for migration: {e}");
                            return;
                        }
                    };
                    let owner = e.shard as usize;
                    {
                        let mut st = self.st.borrow_mut();
                        st.counters.migrations += 1;
                        self.sb.metrics.shards[self.id as usize].publish(&mut st.counters);
                    }
                    self.sb.mailboxes[owner]
                        .control
                        .push(Control::Migrate(Box::new(Migration {
                            fd,
                            tls,
                            request: req,
                            entry: e,
                            token: resume.token,
                            peer,
                        })));
                    self.sb.mailboxes[owner].wake();
                    // Our handle closes; the duplicate lives on in the owner.
                    drop(stream);
                    return;
                }
                _ => {
                    return self
                        .refuse(stream, tls, Status::GONE, "session-unknown", "this hub does not know that session (restarted or expired); start a new one", &[], Handshake::ResumeUnknown)
                        .await;
                }
            }
        }
        // A new session: authenticate.
        let vhub = &self.sb.hubs[hub];
        let cert = tls.client_cert();
        let user = match self
            .login(
                vhub.name(),
                vhub.anonymous.load(Ordering::Relaxed),
                req.credentials.as_ref(),
                &cert,
                peer,
            )
            .await
        {
            Ok(user) => user,
            Err(d) => {
                let extra: Vec<&str> = d.extra.iter().map(String::as_str).collect();
                return self
                    .refuse(
                        stream,
                        tls,
                        d.status,
                        d.code,
                        &d.reason,
                        &extra,
                        d.handshake,
                    )
                    .await;
            }
        };
        let hub_sessions = self.sb.metrics.sessions_by_hub[hub].load(Ordering::Relaxed) as usize;
        let total: i64 = self
            .sb
            .metrics
            .sessions_by_hub
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum();
        let max_sessions = vhub.max_sessions.load(Ordering::Relaxed);
        let full = if max_sessions > 0 && hub_sessions >= max_sessions {
            Some(Limit::SessionsPerHub)
        } else if total as usize >= self.ctx.settings.max_sessions {
            Some(Limit::Sessions)
        } else {
            None
        };
        if let Some(limit) = full {
            self.limit_reached(limit, peer, "new session refused; 429");
            return self
                .refuse(
                    stream,
                    tls,
                    Status::TOO_MANY_REQUESTS,
                    "limit-sessions",
                    "the hub has reached its session limit",
                    &["Retry-After: 30"],
                    Handshake::Limited,
                )
                .await;
        }
        let per_user = self.ctx.settings.max_sessions_per_user;
        if !self.ctx.admission.add_user_session(hub, &user, per_user) {
            self.limit_reached(Limit::SessionsPerUser, peer, "new session refused; 429");
            let reason = format!(
                "user {user:?} has reached its limit of {per_user} sessions on this hub; end one first"
            );
            return self
                .refuse(
                    stream,
                    tls,
                    Status::TOO_MANY_REQUESTS,
                    "limit-sessions-user",
                    &reason,
                    &["Retry-After: 30"],
                    Handshake::Limited,
                )
                .await;
        }
        // Counted from here: remove_slot uncounts it.
        drop(guard);
        let token = SessionToken(random_token());
        let mut cfg = self.ctx.settings.session.clone();
        if let Some(m) = req.max_frame {
            cfg.limits.max_frame = cfg
                .limits
                .max_frame
                .min(m.max(switch_core::wire::MIN_FRAME_LEN as u32));
        }
        cfg.offload &= req.offload;
        if cfg.offload {
            // 64 KiB super frames: a message stays near 1 MiB, the buffer
            // holds a few dozen of them.
            cfg.limits.max_frame = offload::MAX_VNET_FRAME;
            cfg.limits.max_batch = cfg.limits.max_batch.min(OFFLOAD_MAX_BATCH);
            cfg.max_buffered_bytes = cfg.max_buffered_bytes.max(offload::OFFLOAD_BUFFER_BYTES);
        }
        let session = Session::accept(
            Instant::now(),
            cfg,
            Accept {
                token,
                version: req.version,
            },
        );
        let slot = {
            let mut st = self.st.borrow_mut();
            let entry = st.slots.vacant_entry();
            let slot = entry.key() as u32;
            let port = self.sb.add_port(
                hub,
                PortLoc {
                    shard: self.id,
                    slot,
                },
            );
            entry.insert(Slot {
                session: Some(Box::new(session)),
                hub,
                port,
                token,
                user: user.clone(),
                conn: None,
                detached: false,
                dirty: false,
                peer,
                buffered: 0,
            });
            st.local_ports[hub].push(slot);
            slot
        };
        self.sb.sessions.lock().insert(
            token,
            SessionEntry {
                shard: self.id,
                slot,
                hub,
                user: user.clone(),
            },
        );
        self.sb.metrics.sessions_by_hub[hub].fetch_add(1, Ordering::Relaxed);
        self.sb.metrics.handshake(Handshake::New);
        if let Some(i) = tls.info() {
            self.sb.metrics.suite(&i.version, &i.cipher);
            info!(%peer, hub = %req.hub, user = %user, session = %token.short(), shard = self.id, tls = %i.version, suite = %i.cipher, "session established");
        }
        self.run_connection(stream, tls, slot).await;
    }

    async fn attach_resumed(
        self: Rc<Self>,
        stream: B::Stream,
        tls: TlsConn,
        req: UpgradeRequest,
        entry: SessionEntry,
        token: SessionToken,
        peer: SocketAddr,
    ) {
        let rx = req.resume.map(|r| r.rx).unwrap_or(0);
        let result = {
            let mut st = self.st.borrow_mut();
            match st.slots.get_mut(entry.slot as usize) {
                Some(slot) if slot.token == token => {
                    if let Some(old) = slot.conn.take() {
                        // The client came back before we noticed the old link died.
                        old.close();
                    } else if slot.detached {
                        slot.detached = false;
                        self.sb.metrics.detached_by_hub[slot.hub].fetch_sub(1, Ordering::Relaxed);
                    }
                    slot.peer = peer;
                    let s = slot.session.as_mut().expect("session present");
                    let r = s.resume(Instant::now(), rx);
                    if r.is_err() {
                        // Stays detached: the next valid resume may still come.
                        slot.detached = true;
                        self.sb.metrics.detached_by_hub[slot.hub].fetch_add(1, Ordering::Relaxed);
                    }
                    Some(r)
                }
                _ => None,
            }
        };
        match result {
            None => {
                self.refuse(
                    stream,
                    tls,
                    Status::GONE,
                    "session-unknown",
                    "this hub does not know that session; start a new one",
                    &[],
                    Handshake::ResumeUnknown,
                )
                .await
            }
            Some(Err(e @ ResumeError::RxFromTheFuture { .. })) => {
                self.refuse(
                    stream,
                    tls,
                    Status::CONFLICT,
                    "bad-resume",
                    &e.to_string(),
                    &[],
                    Handshake::HttpError,
                )
                .await
            }
            Some(Err(ResumeError::Closed)) => {
                self.refuse(
                    stream,
                    tls,
                    Status::GONE,
                    "session-unknown",
                    "that session has ended; start a new one",
                    &[],
                    Handshake::ResumeUnknown,
                )
                .await
            }
            Some(Ok(())) => {
                self.sb.metrics.handshake(Handshake::Resumed);
                if let Some(i) = tls.info() {
                    self.sb.metrics.suite(&i.version, &i.cipher);
                }
                info!(%peer, session = %token.short(), shard = self.id, "session resumed");
                self.run_connection(stream, tls, entry.slot).await;
            }
        }
    }

    // ------------------------------------------------------------------
    // An established connection: reader (here) and writer (spawned)
    // ------------------------------------------------------------------

    async fn run_connection(self: Rc<Self>, stream: B::Stream, tls: TlsConn, slot: u32) {
        let conn = {
            let mut st = self.st.borrow_mut();
            st.next_conn_id += 1;
            let conn = Rc::new(Conn {
                stream,
                tls: RefCell::new(tls),
                wake: Notify::new(),
                closed: Cell::new(false),
                sleep_until: Cell::new(None),
                id: st.next_conn_id,
            });
            match st.slots.get_mut(slot as usize) {
                Some(s) => s.conn = Some(conn.clone()),
                None => return,
            }
            conn
        };
        B::spawn(self.clone().writer(conn.clone(), slot));
        conn.wake.notify_one(); // send the 101 and whatever waits
        let mut want = READ_MIN;
        let mut buf: Vec<u8> = Vec::with_capacity(want);
        let mut plain: Vec<u8> = Vec::new();
        loop {
            if buf.capacity() < want {
                buf.reserve_exact(want);
            }
            let (res, b) = conn.stream.read(std::mem::take(&mut buf)).await;
            buf = b;
            let n: usize = res.unwrap_or_default();
            if n == 0 || conn.closed.get() {
                break;
            }
            // Grow while reads fill the buffer; shrink when traffic is light.
            want = if n >= want {
                (want * 2).min(READ_CHUNK)
            } else if n < want / 4 {
                (want / 2).max(READ_MIN)
            } else {
                want
            };
            let tls_ok = {
                let mut tls = conn.tls.borrow_mut();
                // Swapped into TLS, not copied, when it has nothing unread;
                // `buf` comes back with the previous input buffer.
                tls.feed_buf(&mut buf);
                if buf.capacity() > 2 * want {
                    buf = Vec::new();
                }
                match tls.read_plaintext(&mut plain) {
                    Ok(st) => !st.closed,
                    Err(e) => {
                        debug!("TLS error on a session: {e}");
                        false
                    }
                }
            };
            if !plain.is_empty() && !self.process_input(slot, &conn, &mut plain) {
                break;
            }
            if want == READ_MIN {
                // Light traffic: keep no buffers between reads.
                if plain.is_empty() && plain.capacity() > 0 {
                    plain = Vec::new();
                }
                conn.tls.borrow_mut().shrink_idle_input();
            }
            if !tls_ok {
                break;
            }
            // TLS may want to answer (key updates).
            if conn.tls.borrow().wants_write() {
                conn.wake.notify_one();
            }
        }
        self.connection_lost(slot, &conn);
    }

    /// Runs the session's input through switch-core and forwards frames.
    /// Returns false when the connection must end.
    fn process_input(&self, slot: u32, conn: &Rc<Conn<B::Stream>>, plain: &mut Vec<u8>) -> bool {
        let now = Instant::now();
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(s) = st.slots.get_mut(slot as usize) else {
            return false;
        };
        if !is_current(s, conn) {
            return false; // replaced by a resumed connection
        }
        let hub = s.hub;
        let port = s.port;
        let mut session = s.session.take().expect("session present");
        let result = {
            let mut hf = self.sb.hubs[hub].fabric.lock();
            let mut fwd = Forwarder {
                shard: self,
                st,
                hf: &mut hf,
                hub,
                slot,
                port,
                now,
                vnet: session.offload(),
            };
            session.handle_input(now, plain, |frame| fwd.route(frame))
        };
        let keep = match result {
            Ok(used) => {
                plain.drain(..used);
                true
            }
            Err(e) => {
                info!(session = %session.token().map(|t| t.short()).unwrap_or_default(), "protocol error: {e}");
                st.counters.protocol_errors += 1;
                plain.clear();
                true // the CLOSE is queued; the writer sends it and ends
            }
        };
        // Also wake the writer when the input set a timer it is not
        // sleeping for (an ACK due in `ack_delay`), or that ACK would wait
        // for the next keep-alive.
        let sooner = match (session.poll_timeout(), conn.sleep_until.get()) {
            (Some(t), Some(d)) => t < d,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let wants = session.wants_transmit() || session.state() == State::Closed || sooner;
        // ACKs in the input freed buffer space.
        let s = &mut st.slots[slot as usize];
        recount(&mut st.buffered, s, &session);
        s.session = Some(session);
        if wants {
            conn.wake.notify_one();
        }
        self.finish_round(st);
        self.handle_events(st, slot);
        keep
    }

    /// After frames were routed: hand over filled batches, wake shards and
    /// writers once each, publish counters.
    fn finish_round(&self, st: &mut State_<B::Stream>) {
        for to in 0..st.outbox.len() {
            if st.outbox[to].as_ref().is_some_and(|b| b.frames > 0) {
                self.hand_over(st, to);
            }
        }
        for to in 0..st.to_wake.len() {
            if std::mem::take(&mut st.to_wake[to]) {
                self.sb.mailboxes[to].wake();
            }
        }
        // Swap the list out and back so its allocation is reused.
        let mut dirty = std::mem::take(&mut st.dirty);
        for slot in dirty.drain(..) {
            if let Some(s) = st.slots.get_mut(slot as usize) {
                s.dirty = false;
                if let Some(c) = &s.conn {
                    c.wake.notify_one();
                }
            }
        }
        st.dirty = dirty;
        self.sb.metrics.shards[self.id as usize].publish(&mut st.counters);
        self.sb.metrics.buffered[self.id as usize].store(st.buffered as u64, Ordering::Relaxed);
    }

    fn hand_over(&self, st: &mut State_<B::Stream>, to: usize) {
        let Some(batch) = st.outbox[to].take() else {
            return;
        };
        let frames = batch.frames;
        match self.sb.mailboxes[to].frames.push(batch) {
            Ok(()) => {
                st.counters.handoff_batches += 1;
                st.counters.handoff_frames += u64::from(frames);
                st.to_wake[to] = true;
            }
            Err(mut batch) => {
                // The other shard is that far behind: drop, counted, like a full port.
                st.counters.handoff_queue_full += u64::from(frames);
                batch.buf.clear();
                batch.frames = 0;
                st.outbox[to] = Some(batch);
                st.to_wake[to] = true;
            }
        }
    }

    fn handle_events(&self, st: &mut State_<B::Stream>, slot: u32) {
        let Some(s) = st.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(session) = s.session.as_mut() else {
            return;
        };
        let mut closed = false;
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::Closed {
                    code,
                    reason,
                    by_peer,
                } => {
                    info!(session = %s.token.short(), user = %s.user, peer = %s.peer, ?code, %reason, by_peer, "session closed");
                    closed = true;
                }
                Event::LinkDead => {
                    st.counters.keepalive_timeouts += 1;
                    info!(session = %s.token.short(), "keep-alive timeout: link dead, session detached");
                    if let Some(c) = &s.conn {
                        c.close();
                    }
                }
                Event::Established {
                    resumed: true,
                    resent,
                    lost,
                } => {
                    st.counters.resumes += 1;
                    st.counters.resend_frames += resent;
                    st.counters.lost_on_resume += lost;
                }
                _ => {}
            }
        }
        if closed && s.conn.is_none() {
            self.remove_slot(st, slot);
        }
    }

    /// Drops a finished session everywhere.
    fn remove_slot(&self, st: &mut State_<B::Stream>, slot: u32) {
        if !st.slots.contains(slot as usize) {
            return;
        }
        let s = st.slots.remove(slot as usize);
        self.trim.set(true);
        st.buffered -= s.buffered;
        self.sb.remove_port(s.hub, s.port, self.id);
        st.local_ports[s.hub].retain(|&x| x != slot);
        self.sb.sessions.lock().remove(&s.token);
        self.ctx.admission.remove_user_session(s.hub, &s.user);
        self.sb.metrics.sessions_by_hub[s.hub].fetch_sub(1, Ordering::Relaxed);
        if s.detached {
            self.sb.metrics.detached_by_hub[s.hub].fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(c) = s.conn {
            c.close();
        }
    }

    /// The reader ended: the link is gone. The session detaches (and waits
    /// for a resume) unless it was closed or replaced.
    fn connection_lost(&self, slot: u32, conn: &Rc<Conn<B::Stream>>) {
        conn.close();
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(s) = st.slots.get_mut(slot as usize) else {
            return;
        };
        if !is_current(s, conn) {
            return; // a resumed connection took over
        }
        s.conn = None;
        let session = s.session.as_mut().expect("session present");
        if session.state() == State::Closed {
            self.remove_slot(st, slot);
            return;
        }
        session.link_lost(Instant::now());
        s.detached = true;
        self.sb.metrics.detached_by_hub[s.hub].fetch_add(1, Ordering::Relaxed);
        debug!(session = %s.token.short(), "link lost; session detached");
    }

    async fn writer(self: Rc<Self>, conn: Rc<Conn<B::Stream>>, slot: u32) {
        // Allocated on demand and given back when the session goes quiet.
        let mut plain: Vec<u8> = Vec::new();
        let mut out: Vec<u8> = Vec::new();
        let mut last_busy = Instant::now();
        // Ciphertext written since the writer last slept.
        let mut written = 0usize;
        loop {
            let now = Instant::now();
            let (deadline, finished) = {
                let mut st = self.st.borrow_mut();
                let st = &mut *st;
                let Some(s) = st.slots.get_mut(slot as usize) else {
                    break;
                };
                if !is_current(s, &conn) {
                    break;
                }
                let session = s.session.as_mut().expect("session present");
                session.handle_timeout(now);
                if plain.capacity() == 0 && session.wants_transmit() {
                    plain.reserve(16 * 1024);
                }
                session.poll_transmit(now, &mut plain, WRITE_CHUNK);
                let finished = session.state() == State::Closed;
                let deadline = session.poll_timeout();
                self.handle_events(st, slot);
                (deadline, finished)
            };
            {
                let mut tls = conn.tls.borrow_mut();
                if !plain.is_empty() {
                    if tls.write_plaintext(&plain).is_err() {
                        break;
                    }
                    plain.clear();
                }
                if finished {
                    tls.shutdown();
                }
                tls.take_ciphertext(&mut out);
            }
            if !out.is_empty() {
                last_busy = now;
                written += out.len();
                let (res, b) = conn.stream.write_all(std::mem::take(&mut out)).await;
                out = b;
                out.clear();
                if res.is_err() {
                    break;
                }
                // More may have been queued while the write was in flight.
                continue;
            }
            if finished || conn.closed.get() {
                break;
            }
            // Going to sleep. A busy connection sleeps between every two
            // batches: it keeps its buffers (freeing and regrowing them
            // cost a tenth of the hub's time at 3 Gbit/s). One that has
            // been quiet for a while gives them back, and so does one that
            // only wrote a little (a keep-alive, an ACK): otherwise every
            // idle session would hold 16 KiB from one keep-alive to the
            // next.
            let light = written < LIGHT_WRITE;
            written = 0;
            if light || now.saturating_duration_since(last_busy) >= KEEP_BUFFERS_IDLE {
                if plain.capacity() + out.capacity() >= TRIM_AFTER_FREEING {
                    self.trim.set(true);
                }
                plain = Vec::new();
                out = Vec::new();
                conn.tls.borrow_mut().shrink_idle();
            }
            match deadline {
                Some(d) => {
                    conn.sleep_until.set(Some(d));
                    tokio::select! {
                        _ = conn.wake.notified() => {}
                        _ = tokio::time::sleep_until(d.into()) => {}
                    }
                }
                None => {
                    conn.sleep_until.set(None);
                    conn.wake.notified().await
                }
            }
            if conn.closed.get() {
                break;
            }
        }
        conn.close();
    }

    // ------------------------------------------------------------------
    // Mailbox: frames and control from other shards
    // ------------------------------------------------------------------

    async fn mailbox_loop(self: Rc<Self>) {
        let mb = &self.sb.mailboxes[self.id as usize];
        loop {
            let mut stop = false;
            while let Some(c) = mb.control.pop() {
                match c {
                    Control::Migrate(m) => {
                        let me = self.clone();
                        B::spawn(async move { me.accept_migration(*m).await });
                    }
                    Control::Kick {
                        slot,
                        token,
                        code,
                        reason,
                    } => self.kick(slot, token, code, &reason),
                    Control::Snapshot(reply) => {
                        let _ = reply.send(self.snapshot());
                    }
                    Control::Shutdown => stop = true,
                }
            }
            if stop {
                self.shutdown();
                return;
            }
            let mut any = false;
            while let Some(batch) = mb.frames.pop() {
                any = true;
                self.deliver_batch(&batch);
                let mut buf = batch.buf;
                buf.clear();
                let _ = self.sb.mailboxes[batch.from as usize].free.push(buf);
            }
            if any {
                let mut st = self.st.borrow_mut();
                st.counters.wakeups += 1;
                self.finish_round(&mut st);
            }
            mb.sleeping.store(true, Ordering::Release);
            if mb.frames.is_empty() && mb.control.is_empty() {
                mb.notify.notified().await;
            }
            mb.sleeping.store(false, Ordering::Release);
        }
    }

    fn deliver_batch(&self, batch: &Batch) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        for (kind, target, port, frame) in batch.records() {
            let vnet = kind & BATCH_VNET != 0;
            match kind & !BATCH_VNET {
                BATCH_UNICAST => match st.slots.get(target as usize) {
                    Some(s) if port_to_u64(s.port) == port => local_send(st, target, frame, vnet),
                    _ => st.counters.drop_stale_port += 1,
                },
                BATCH_FLOOD => {
                    let ports = std::mem::take(&mut st.local_ports[target as usize]);
                    for &p in &ports {
                        local_send(st, p, frame, vnet);
                    }
                    st.local_ports[target as usize] = ports;
                }
                _ => {}
            }
        }
    }

    async fn accept_migration(self: Rc<Self>, m: Migration) {
        let std_stream = std::net::TcpStream::from(m.fd);
        let stream = match B::stream_from_std(std_stream) {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot adopt a migrated connection: {e}");
                return;
            }
        };
        self.attach_resumed(stream, m.tls, m.request, m.entry, m.token, m.peer)
            .await;
    }

    fn kick(&self, slot: u32, token: SessionToken, code: CloseCode, reason: &str) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        if let Some(s) = st.slots.get_mut(slot as usize).filter(|s| s.token == token) {
            info!(session = %token.short(), user = %s.user, ?code, %reason, "closing a session on request");
            if let Some(session) = s.session.as_mut() {
                session.close(code, reason);
            }
            match &s.conn {
                Some(c) => c.wake.notify_one(),
                None => self.remove_slot(st, slot),
            }
        }
    }

    /// This shard's sessions for the admin API. Takes each hub's fabric
    /// lock once, briefly, for the MAC counts.
    fn snapshot(&self) -> Vec<crate::admin::SessionInfo> {
        let st = self.st.borrow();
        st.slots
            .iter()
            .map(|(slot, s)| {
                let session = s.session.as_ref();
                let stats = session.map(|x| *x.stats()).unwrap_or_default();
                let state = match (session.map(|x| x.state()), &s.conn) {
                    (Some(State::Closed) | None, _) => "closing",
                    (_, None) => "detached",
                    (_, Some(_)) => "attached",
                };
                let macs = self.sb.hubs[s.hub]
                    .fabric
                    .lock()
                    .fabric
                    .port_mac_count(s.port);
                crate::admin::SessionInfo {
                    id: s.token.short(),
                    hub: self.sb.hubs[s.hub].name().to_owned(),
                    user: s.user.clone(),
                    remote: s.peer.to_string(),
                    shard: self.id,
                    slot: slot as u32,
                    state: state.into(),
                    frames_in: stats.rx_frames,
                    bytes_in: stats.rx_bytes,
                    frames_out: stats.tx_frames,
                    bytes_out: stats.tx_bytes,
                    macs,
                }
            })
            .collect()
    }

    fn shutdown(&self) {
        if let Some(l) = self.listener.borrow_mut().take() {
            B::shutdown_listener(&l);
        }
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let slots: Vec<u32> = st.slots.iter().map(|(k, _)| k as u32).collect();
        for slot in slots {
            let s = &mut st.slots[slot as usize];
            if let Some(session) = s.session.as_mut() {
                session.close(CloseCode::Shutdown, "the hub is shutting down");
            }
            match &s.conn {
                Some(c) => c.wake.notify_one(),
                None => self.remove_slot(st, slot),
            }
        }
        self.done.notify_one();
    }

    /// Once a second: timers of detached sessions (grace period), MAC aging.
    async fn housekeeping(self: Rc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if self.sb.is_shutting_down() {
                return;
            }
            let now = Instant::now();
            {
                let mut st = self.st.borrow_mut();
                let st = &mut *st;
                let detached: Vec<u32> = st
                    .slots
                    .iter()
                    .filter(|(_, s)| s.conn.is_none())
                    .map(|(k, _)| k as u32)
                    .collect();
                for slot in detached {
                    if let Some(session) = st.slots[slot as usize].session.as_mut() {
                        session.handle_timeout(now);
                    }
                    self.handle_events(st, slot);
                    if st.slots.get(slot as usize).is_some_and(|s| {
                        s.session
                            .as_ref()
                            .is_some_and(|x| x.state() == State::Closed)
                    }) {
                        self.remove_slot(st, slot);
                    }
                }
            }
            if self.trim.take() {
                crate::memory::give_back_free_memory();
            }
            // Shard 0 ages the MAC tables of every hub.
            if self.id == 0 {
                for h in &self.sb.hubs {
                    h.fabric.lock().fabric.expire(now);
                }
            }
        }
    }
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

/// Whether `conn` is still the connection of slot `s` (a resume replaces it).
fn is_current<S>(s: &Slot<S>, conn: &Conn<S>) -> bool {
    s.conn.as_ref().is_some_and(|c| c.id == conn.id)
}

/// Hands a frame to a session on this shard, in the receiver's form: as
/// it is when sender and receiver agree on offload, behind an all-zero
/// `virtio_net_hdr` for an offload receiver of a plain frame, cut into
/// plain frames (checksums completed) for a plain receiver of an offload
/// frame. `vnet`: the frame carries a header.
fn local_send<S>(st: &mut State_<S>, slot: u32, frame: &[u8], vnet: bool) {
    let Some(s) = st.slots.get_mut(slot as usize) else {
        return;
    };
    let Some(session) = s.session.as_mut() else {
        return;
    };
    let c = &mut st.counters;
    // The hub-wide buffer budget: past it, a session that already holds
    // more than its floor takes no more (every session keeps the floor, so
    // one storm cannot starve the others).
    if st.buffered >= st.buffer_budget && session.buffered_bytes() >= BUFFER_FLOOR {
        c.drop_memory += 1;
        return;
    }
    let sent = if session.offload() == vnet {
        send_counted(c, session, frame)
    } else if !vnet {
        send_counted(
            c,
            session,
            offload::with_plain_header(&mut st.scratch, frame),
        )
    } else if VnetHdr::parse(frame).is_some_and(|h| h.is_plain()) {
        send_counted(c, session, &frame[offload::VNET_HDR_LEN..])
    } else {
        let max = session.config().limits.max_frame as usize;
        let mut sent = false;
        let mut cut = 0;
        match offload::to_plain(frame, max, &mut st.scratch, |f| {
            cut += 1;
            sent |= send_counted(c, session, f);
        }) {
            Ok(_) => c.gso_segments += cut,
            Err(_) => c.drop_bad_offload += 1,
        }
        sent
    };
    let now = session.buffered_bytes();
    st.buffered = st.buffered + now - s.buffered;
    s.buffered = now;
    if sent && !s.dirty {
        s.dirty = true;
        st.dirty.push(slot);
    }
}

/// Brings the shard's total of buffered bytes up to date with `session`
/// (the slot's session, taken out or not).
fn recount<S>(total: &mut usize, slot: &mut Slot<S>, session: &Session) {
    let now = session.buffered_bytes();
    *total = *total + now - slot.buffered;
    slot.buffered = now;
}

/// Queues one frame on a session, counting it as sent or dropped.
fn send_counted(c: &mut Local, session: &mut Session, frame: &[u8]) -> bool {
    match session.send_frame(frame) {
        Ok(()) => {
            c.frames_out += 1;
            c.bytes_out += frame.len() as u64;
            return true;
        }
        Err(SendError::Full) => c.drop_queue_full += 1,
        Err(SendError::BadLength(_)) => c.drop_runt += 1,
        Err(SendError::Closed) => c.drop_stale_port += 1,
    }
    false
}

/// Routes the frames of one session's input (the fabric lock is held).
struct Forwarder<'a, B: Backend> {
    shard: &'a Shard<B>,
    st: &'a mut State_<B::Stream>,
    hf: &'a mut HubFabric,
    hub: usize,
    slot: u32,
    port: PortId,
    now: Instant,
    /// The sender's frames carry a `virtio_net_hdr`.
    vnet: bool,
}

impl<B: Backend> Forwarder<'_, B> {
    fn route(&mut self, frame: &[u8]) {
        let c = &mut self.st.counters;
        c.frames_in += 1;
        c.bytes_in += frame.len() as u64;
        let vnet = self.vnet;
        let flag = if vnet { BATCH_VNET } else { 0 };
        let eth = if vnet {
            match frame.get(offload::VNET_HDR_LEN..) {
                Some(eth) => eth,
                None => {
                    c.drop_runt += 1;
                    return;
                }
            }
        } else {
            frame
        };
        match self.hf.fabric.forward(self.now, self.port, eth) {
            Forward::Unicast(p) => {
                self.st.counters.unicast += 1;
                let loc = self.hf.locs[p.index() as usize];
                if loc.shard == self.shard.id {
                    local_send(self.st, loc.slot, frame, vnet);
                } else {
                    self.outbox(
                        loc.shard as usize,
                        BATCH_UNICAST | flag,
                        loc.slot,
                        port_to_u64(p),
                        frame,
                    );
                }
            }
            Forward::Flood { .. } => {
                self.st.counters.flooded += 1;
                let ports = std::mem::take(&mut self.st.local_ports[self.hub]);
                for &p in &ports {
                    if p != self.slot {
                        local_send(self.st, p, frame, vnet);
                    }
                }
                self.st.local_ports[self.hub] = ports;
                for to in 0..self.hf.shard_ports.len() {
                    if to != self.shard.id as usize && self.hf.shard_ports[to] > 0 {
                        self.outbox(to, BATCH_FLOOD | flag, self.hub as u32, 0, frame);
                    }
                }
            }
            Forward::Drop(r) => {
                let c = &mut self.st.counters;
                match r {
                    DropReason::Runt => c.drop_runt += 1,
                    DropReason::UnknownPort => c.drop_unknown_port += 1,
                    DropReason::SameSegment => c.drop_same_segment += 1,
                    DropReason::InvalidSource => c.drop_invalid_source += 1,
                }
            }
        }
    }

    fn outbox(&mut self, to: usize, kind: u32, target: u32, port: u64, frame: &[u8]) {
        let me = self.shard.id;
        let batch = self.st.outbox[to].get_or_insert_with(|| {
            let buf = self.shard.sb.mailboxes[me as usize]
                .free
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(BATCH_BYTES + 2048));
            Batch {
                buf,
                frames: 0,
                from: me,
            }
        });
        batch.push(kind, target, port, frame);
        if batch.buf.len() >= BATCH_BYTES {
            self.shard.hand_over(self.st, to);
        }
    }
}

/// 128 random bits from OpenSSL's CSPRNG.
fn random_token() -> [u8; 16] {
    let mut t = [0u8; 16];
    openssl::rand::rand_bytes(&mut t).expect("OpenSSL's random generator failed");
    t
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
