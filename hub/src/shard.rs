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

use certs::tls::TlsConn;
use slab::Slab;
use switch_core::fabric::{DropReason, Forward, PortId};
use switch_core::offload::{self, VnetHdr};
use switch_core::session::{Accept, Event, ResumeError, SendError, Session, State};
use switch_core::wire::http::{self, FrontRequest, SessionToken, Status, UpgradeRequest};
use switch_core::wire::CloseCode;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::auth::AuthResult;
use crate::metrics::{Handshake, Local};
use crate::net::{Backend, NetStream};
use crate::server::ServerContext;
use crate::switchboard::{
    port_to_u64, Batch, Control, HubFabric, PortLoc, SessionEntry, Switchboard, BATCH_BYTES,
    BATCH_FLOOD, BATCH_UNICAST, BATCH_VNET,
};

/// Bytes asked of the socket per read: large reads, few syscalls. A read
/// starts at `READ_MIN` and doubles while reads fill the buffer, up to
/// `READ_CHUNK`; an idle connection holds only `READ_MIN` (the pending read
/// owns its buffer the whole time it waits).
const READ_CHUNK: usize = 256 * 1024;
const READ_MIN: usize = 4 * 1024;
/// Plaintext produced per writer round before it is encrypted and written.
const WRITE_CHUNK: usize = 256 * 1024;
/// A writer quiet for this long gives its buffers back when it sleeps.
const KEEP_BUFFERS_IDLE: Duration = Duration::from_millis(500);
/// Offload sessions: most 64 KiB super frames per message (a message stays
/// near 1 MiB) …
const OFFLOAD_MAX_BATCH: u32 = 16;
/// … and at least this much buffer for resume (64 super frames).
const OFFLOAD_BUFFER_BYTES: usize = 4 << 20;

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
                    counters: Local::default(),
                    handshakes: 0,
                    next_conn_id: 0,
                }),
                listener: RefCell::new(Some(listener.clone())),
                done: Notify::new(),
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
        {
            let mut st = self.st.borrow_mut();
            if st.handshakes >= limits.max_handshakes_per_shard {
                drop(st);
                self.sb.metrics.handshake(Handshake::Limited);
                stream.shutdown();
                return;
            }
            st.handshakes += 1;
        }
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
        self.st.borrow_mut().handshakes -= 1;
        if let Some((tls, req)) = outcome {
            let Ok(stream) = Rc::try_unwrap(stream) else {
                unreachable!("only the watchdog's weak handle remains");
            };
            self.upgrade(stream, tls, req, peer).await;
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
            metrics.handshake(if timed_out.get() {
                Handshake::Timeout
            } else {
                h
            })
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

    /// The `vhub/1` upgrade: new session or resume.
    async fn upgrade(
        self: Rc<Self>,
        stream: B::Stream,
        tls: TlsConn,
        req: UpgradeRequest,
        peer: SocketAddr,
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
        let Some(&hub) = self.sb.hub_by_name.get(&req.hub) else {
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
            let entry = self.sb.sessions.lock().get(&resume.token).cloned();
            let user_ok = |e: &SessionEntry| match &req.credentials {
                Some(c) => c.user == e.user,
                None => true,
            };
            match entry {
                Some(e)
                    if e.hub == hub
                        && user_ok(&e)
                        && (e.user.is_empty()
                            || self.ctx.auth.auth.user_exists(&req.hub, &e.user)) =>
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
        let realm = format!("WWW-Authenticate: Basic realm=\"vhub {}\"", vhub.name);
        let user = match &req.credentials {
            None if vhub.anonymous => String::new(),
            None => {
                return self
                    .refuse(
                        stream,
                        tls,
                        Status::UNAUTHORIZED,
                        "auth-required",
                        "this hub needs a user name and password",
                        &[&realm],
                        Handshake::AuthFailed,
                    )
                    .await;
            }
            Some(c) => match self
                .ctx
                .auth
                .authenticate(&vhub.name, &c.user, &c.password)
                .await
            {
                AuthResult::Ok => c.user.clone(),
                _ => {
                    info!(%peer, hub = %vhub.name, user = %c.user, "authentication failed");
                    return self
                        .refuse(
                            stream,
                            tls,
                            Status::UNAUTHORIZED,
                            "auth-failed",
                            "wrong user name or password",
                            &[&realm],
                            Handshake::AuthFailed,
                        )
                        .await;
                }
            },
        };
        let hub_sessions = self.sb.metrics.sessions_by_hub[hub].load(Ordering::Relaxed) as usize;
        let total: i64 = self
            .sb
            .metrics
            .sessions_by_hub
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum();
        if (vhub.max_sessions > 0 && hub_sessions >= vhub.max_sessions)
            || total as usize >= self.ctx.settings.max_sessions
        {
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
            cfg.max_buffered_bytes = cfg.max_buffered_bytes.max(OFFLOAD_BUFFER_BYTES);
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
        st.slots[slot as usize].session = Some(session);
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
        self.sb.remove_port(s.hub, s.port, self.id);
        st.local_ports[s.hub].retain(|&x| x != slot);
        self.sb.sessions.lock().remove(&s.token);
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
            // been quiet for a while gives them back.
            if now.saturating_duration_since(last_busy) >= KEEP_BUFFERS_IDLE {
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
                    Control::Kick { slot, reason } => self.kick(slot, &reason),
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

    fn kick(&self, slot: u32, reason: &str) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        if let Some(s) = st.slots.get_mut(slot as usize) {
            if let Some(session) = s.session.as_mut() {
                session.close(CloseCode::Kicked, reason);
            }
            match &s.conn {
                Some(c) => c.wake.notify_one(),
                None => self.remove_slot(st, slot),
            }
        }
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
            // Shard 0 ages the MAC tables of every hub.
            if self.id == 0 {
                for h in &self.sb.hubs {
                    h.fabric.lock().fabric.expire(now);
                }
            }
        }
    }
}

/// Reads once from the socket into the TLS input; false at end of stream or
/// on an error.
async fn read_into<S: NetStream>(stream: &S, tls: &mut TlsConn, buf: &mut Vec<u8>) -> bool {
    let (res, b) = stream.read(std::mem::take(buf)).await;
    *buf = b;
    match res {
        Ok(n) if n > 0 => {
            tls.feed(buf);
            buf.clear();
            true
        }
        _ => false,
    }
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
    let sent = if session.offload() == vnet {
        send_counted(c, session, frame)
    } else if !vnet {
        st.scratch.clear();
        st.scratch.extend_from_slice(&VnetHdr::PLAIN.to_bytes());
        st.scratch.extend_from_slice(frame);
        send_counted(c, session, &st.scratch)
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
    if sent && !s.dirty {
        s.dirty = true;
        st.dirty.push(slot);
    }
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
