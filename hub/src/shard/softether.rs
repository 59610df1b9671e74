//! A SoftEther VPN client on the hub's TLS port: its handshake (probe,
//! watermark, hello, login), the hub's decision, and then a fabric port
//! fed by SoftEther's data-phase framing — switched like any other port.
//!
//! ```text
//!  front.rs: first request is SoftEther's ─► softether_handshake
//!    ServerHandshake (switch-core): pages, watermark, hello, NOOPs
//!    Login ─► decide: hub (exact name, else one case-insensitive match),
//!             `softether` on for it, throttle, password, session limits
//!          ─► welcome (1 connection, timeout 20 s) | error PACK and close
//!    additional_connect ─► error 13 (the client logs in anew after its retry interval)
//!  run_softether: slot with Endpoint::SoftEther, port PortKind::SoftEther
//!    reader: TLS → Decoder → frame spans → switch_frames (deliver.rs)
//!    writer: queued batches + keep-alives (Liveness) → TLS → socket
//! ```
//!
//! A SoftEther session has no resume: when its connection ends, its port
//! ends, and the client logs in again (PROTOCOL-NOTES.md §8). Its frames
//! are plain (no offload) and at most 1600 bytes; a super frame from a
//! `vnic` is cut to size on the way (`offload::convert`), a longer plain
//! frame is dropped and counted (`too_long`).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use certs::tls::TlsConn;
use switch_core::admission::{Refuse, RefuseCode};
use switch_core::fabric::PortInfo;
use switch_core::offload::Form;
use switch_core::session::SessionStats;
use switch_core::softether::data::{BatchWriter, MAX_FRAME};
use switch_core::softether::{
    Decoder, ErrorCode, Item, Liveness, Login, LoginAuth, ProductInfo, ServerConfig, ServerError,
    ServerEvent, ServerHandshake, ServerState, Skip, Welcome,
};
use switch_core::wire::http::SessionToken;
use tracing::{debug, info};

use super::admit::{handshake_of, random_token};
use super::deliver::Ingress;
use super::front::HandshakeGuard;
use super::pump::Reader;
use super::{is_current, Conn, Endpoint, Shard};
use crate::auth::AuthResult;
use crate::metrics::Handshake;
use crate::net::{Backend, NetStream};

/// Plaintext bytes a SoftEther port may hold for its client (queued
/// batches), besides the hub-wide budget: about 650 full frames.
const MAX_QUEUED: usize = 1024 * 1024;
/// A writer that wrote less than this since it last slept (keep-alives, a
/// trickle of frames) gives its buffers back before sleeping; a busy one
/// keeps them (see `pump.rs`).
const LIGHT_WRITE: usize = 4 * 1024;

/// The rate-limit slot of "SoftEther login refused" lines (beside the
/// `Limit` ones and login.rs's `AUTH_LOG_SLOT`): a misconfigured client
/// fleet must not flood the log.
const REFUSAL_LOG_SLOT: usize = 14;

/// Numbers the `SID-…`/`CID-…` names the client shows (unique per process).
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// A client the hub admitted: what its port needs.
pub(super) struct Admitted {
    hub: usize,
    user: String,
    peer: SocketAddr,
    timeout: Duration,
    /// Data-phase bytes that came with the login's request.
    plain: Vec<u8>,
}

/// The hub's side of one SoftEther session in the data phase.
pub(super) struct SePort {
    decoder: Decoder,
    liveness: Liveness,
    /// Plaintext for the client: batches of frames (and keep-alives the
    /// writer adds), taken whole by the writer.
    out: Vec<u8>,
    /// Where the batch frames are appended to starts in `out`.
    batch_at: Option<usize>,
    stats: SessionStats,
}

impl SePort {
    fn new(now: Instant, timeout: Duration) -> Self {
        SePort {
            decoder: Decoder::default(),
            liveness: Liveness::new(now, timeout, seed()),
            out: Vec::new(),
            batch_at: None,
            stats: SessionStats::default(),
        }
    }

    /// Bytes queued for the client.
    pub(super) fn buffered(&self) -> usize {
        self.out.len()
    }

    pub(super) fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Queues one plain frame for the client in the open batch; counts it
    /// as sent or dropped (too long for a SoftEther client, or the queue
    /// is full). Returns whether it was queued.
    pub(super) fn queue_frame(&mut self, frame: &[u8], c: &mut crate::metrics::Local) -> bool {
        if frame.len() > MAX_FRAME as usize {
            c.drop_too_long += 1;
            return false;
        }
        if self.out.len() + frame.len() + 8 > MAX_QUEUED {
            c.drop_queue_full += 1;
            return false;
        }
        let mut batch = match self
            .batch_at
            .and_then(|at| BatchWriter::reopen(&mut self.out, at))
        {
            Some(b) => b,
            None => {
                self.batch_at = Some(self.out.len());
                BatchWriter::new(&mut self.out)
            }
        };
        if batch.push(frame).is_err() {
            c.drop_too_long += 1;
            batch.finish();
            return false;
        }
        batch.finish();
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        c.frames_out += 1;
        c.bytes_out += frame.len() as u64;
        true
    }
}

/// `N` bytes from OpenSSL's CSPRNG.
fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    openssl::rand::rand_bytes(&mut b).expect("OpenSSL's random generator failed");
    b
}

/// A seed for filler bytes and keep-alive timing.
fn seed() -> u64 {
    u64::from_le_bytes(random())
}

/// SoftEther's answer to a vhub refusal.
fn error_of(code: RefuseCode) -> ErrorCode {
    match code {
        RefuseCode::AuthRequired
        | RefuseCode::AuthFailed
        | RefuseCode::CertNotBound
        | RefuseCode::CertAmbiguous
        | RefuseCode::CertRefused => ErrorCode::AuthFailed,
        // The client waits 60 s after these (§5.6): right for a throttle.
        RefuseCode::LoginThrottled | RefuseCode::LimitSessions => ErrorCode::HubIsBusy,
        RefuseCode::LimitSessionsUser => ErrorCode::TooManyUserSession,
        RefuseCode::UnknownHub => ErrorCode::HubNotFound,
        RefuseCode::ShuttingDown => ErrorCode::HubStopping,
        RefuseCode::SessionUnknown | RefuseCode::BadResume => ErrorCode::ProtocolError,
    }
}

impl<B: Backend> Shard<B> {
    /// The SoftEther handshake on a connection whose first request was
    /// SoftEther's (`plain`, unconsumed), up to the hub's decision. Returns
    /// the TLS state and the admitted client, or `None` when the
    /// connection ended (refused, failed, timed out: answered and counted).
    pub(super) async fn softether_handshake(
        &self,
        stream: &B::Stream,
        mut tls: TlsConn,
        mut plain: Vec<u8>,
        peer: SocketAddr,
        timed_out: &Cell<bool>,
    ) -> Option<(TlsConn, Admitted)> {
        let config = ServerConfig {
            product: ProductInfo {
                name: format!("vhub {}", env!("CARGO_PKG_VERSION")),
                ..ProductInfo::softether_server()
            },
            index_html: String::from_utf8_lossy(&self.ctx.page).into_owned(),
            ..ServerConfig::default()
        };
        let mut hs = ServerHandshake::new(Instant::now(), config, random(), seed());
        let mut buf = Vec::new();
        loop {
            let step = hs.handle_input(Instant::now(), &plain);
            if let Ok(used) = step {
                plain.drain(..used);
            }
            if !self.send_handshake(stream, &mut tls, &mut hs).await {
                self.ended(peer, timed_out, Handshake::TlsFailed);
                return None;
            }
            if let Err(e) = step {
                debug!(%peer, "SoftEther handshake failed: {e}");
                self.sb.metrics.handshake(match e {
                    ServerError::TimedOut(_) => Handshake::Timeout,
                    _ => Handshake::HttpError,
                });
                self.close_tls(stream, &mut tls).await;
                return None;
            }
            match hs.poll_event() {
                Some(ServerEvent::Login(login)) => {
                    let decided = self.softether_login(&login, peer).await;
                    let answer = match &decided {
                        Ok(admitted) => hs.accept(&welcome(admitted, &login)),
                        Err(code) => hs.refuse(*code),
                    };
                    if let Err(e) = &answer {
                        // Only a bug makes an unsendable welcome.
                        info!(%peer, "SoftEther login not answered: {e}");
                    }
                    let sent =
                        answer.is_ok() && self.send_handshake(stream, &mut tls, &mut hs).await;
                    match decided {
                        Ok(mut admitted) if sent && hs.state() == ServerState::Established => {
                            admitted.plain = plain;
                            return Some((tls, admitted));
                        }
                        // Admitted, but the welcome did not go out (the
                        // deadline or the client cut the connection): give
                        // the user's place back.
                        Ok(admitted) => self
                            .ctx
                            .admission
                            .remove_user_session(admitted.hub, &admitted.user),
                        Err(_) => {}
                    }
                    self.close_tls(stream, &mut tls).await;
                    return None;
                }
                Some(ServerEvent::AdditionalConnect(_)) => {
                    // One connection per session, and no session outlives
                    // its connection: error 13 makes the client end the
                    // session and log in anew after its retry interval
                    // (15 s; PROTOCOL-NOTES.md §8).
                    let _ = hs.refuse(ErrorCode::SessionTimeout);
                    let _ = self.send_handshake(stream, &mut tls, &mut hs).await;
                    self.sb.metrics.handshake(Handshake::ResumeUnknown);
                    self.close_tls(stream, &mut tls).await;
                    return None;
                }
                None => {}
            }
            stream.quick_ack();
            let (res, b) = stream.read(std::mem::take(&mut buf)).await;
            buf = b;
            if !matches!(res, Ok(n) if n > 0) {
                self.ended(peer, timed_out, Handshake::HttpError);
                return None;
            }
            tls.feed(&buf);
            buf.clear();
            match tls.read_plaintext(&mut plain) {
                Ok(r) if !r.closed => {}
                _ => {
                    self.ended(peer, timed_out, Handshake::TlsFailed);
                    return None;
                }
            }
            if let Err(e) = hs.handle_timeout(Instant::now()) {
                debug!(%peer, "SoftEther handshake failed: {e}");
                self.sb.metrics.handshake(Handshake::Timeout);
                self.close_tls(stream, &mut tls).await;
                return None;
            }
        }
    }

    /// Sends what the handshake queued; false if the socket failed.
    async fn send_handshake(
        &self,
        stream: &B::Stream,
        tls: &mut TlsConn,
        hs: &mut ServerHandshake,
    ) -> bool {
        let mut plain = Vec::new();
        if hs.poll_transmit(&mut plain) == 0 {
            return true;
        }
        if tls.write_plaintext(&plain).is_err() {
            return false;
        }
        let mut out = Vec::new();
        tls.take_ciphertext(&mut out);
        stream.write_all(out).await.0.is_ok()
    }

    /// Ends the TLS session and the connection.
    async fn close_tls(&self, stream: &B::Stream, tls: &mut TlsConn) {
        self.respond_and_close(stream, tls, &[]).await;
    }

    /// Decides a SoftEther login: which hub, whether SoftEther is on for
    /// it, who the user is (throttled like vhub's logins), and whether the
    /// session limits leave room. `Err` is the error PACK's code; the
    /// refusal is counted.
    async fn softether_login(
        &self,
        login: &Login,
        peer: SocketAddr,
    ) -> Result<Admitted, ErrorCode> {
        let refused = |h: Handshake, code: ErrorCode| {
            self.sb.metrics.handshake(h);
            Err(code)
        };
        if self.sb.is_shutting_down() {
            return refused(Handshake::ShuttingDown, ErrorCode::HubStopping);
        }
        let log = || self.ctx.admission.should_log(REFUSAL_LOG_SLOT);
        let Some(hub) = self.softether_hub(&login.hub) else {
            if log() {
                info!(%peer, hub = %login.hub, user = %login.user, "SoftEther login refused: no such hub (error 8)");
            }
            return refused(Handshake::UnknownHub, ErrorCode::HubNotFound);
        };
        let vhub = &self.sb.hubs[hub];
        if !vhub.softether.load(Ordering::Relaxed) {
            if log() {
                info!(%peer, hub = %vhub.name(), user = %login.user, "SoftEther login refused: softether = false for this hub (error 12)");
            }
            return refused(Handshake::AuthFailed, ErrorCode::AccessDenied);
        }
        let user = match self.softether_user(hub, login, peer).await {
            Ok(user) => user,
            Err(r) => return refused(handshake_of(r.code), error_of(r.code)),
        };
        if let Err(r) = self.reserve_capacity(hub, &user, peer) {
            return refused(handshake_of(r.code), error_of(r.code));
        }
        Ok(Admitted {
            hub,
            user,
            peer,
            timeout: Duration::from_millis(20_000),
            plain: Vec::new(),
        })
    }

    /// The enabled hub a SoftEther client names: by its exact name, else
    /// the one hub whose name matches ignoring case (SoftEther's own hub
    /// names are case-insensitive, and its users often type them in capitals).
    fn softether_hub(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.sb.enabled_hub(name) {
            return Some(i);
        }
        let mut found =
            self.sb.hubs.iter().filter(|h| {
                h.enabled.load(Ordering::Acquire) && h.name().eq_ignore_ascii_case(name)
            });
        match (found.next(), found.next()) {
            (Some(h), None) => Some(h.index),
            _ => None,
        }
    }

    /// Who a SoftEther login is: anonymous where the hub is, else a
    /// password proof against the user's SoftEther hash (or a clear
    /// password against the user's vhub password), throttled per address
    /// and user like vhub's password logins.
    async fn softether_user(
        &self,
        hub: usize,
        login: &Login,
        peer: SocketAddr,
    ) -> Result<String, Refuse> {
        let vhub = &self.sb.hubs[hub];
        let hub = vhub.name();
        let name = login.user.as_str();
        if matches!(login.auth, LoginAuth::Anonymous) {
            if vhub.anonymous.load(Ordering::Relaxed) {
                return Ok(String::new());
            }
            let r = Refuse::new(
                RefuseCode::AuthRequired,
                "this hub needs a user name and password",
            );
            return Err(r);
        }
        let throttle_user = Some((hub, name));
        self.throttle_gate(peer, throttle_user).await?;
        let result = match &login.auth {
            LoginAuth::Password { secure_password } => self.ctx.auth.authenticate_softether(
                hub,
                name,
                secure_password,
                &login.hello_random,
            ),
            LoginAuth::PlainPassword { password } => {
                self.ctx.auth.authenticate(hub, name, password).await
            }
            LoginAuth::Anonymous => unreachable!("answered above"),
        };
        let outcome = match result {
            AuthResult::Ok => Ok(name.to_owned()),
            _ => Err(Refuse::new(
                RefuseCode::AuthFailed,
                "wrong user name or password",
            )),
        };
        self.settle_login(outcome, peer, hub, name, throttle_user)
    }

    /// An admitted SoftEther client: its slot, port and registry entry,
    /// then its connection until it ends.
    pub(super) async fn run_softether(
        self: Rc<Self>,
        stream: B::Stream,
        tls: TlsConn,
        admitted: Admitted,
        guard: HandshakeGuard<B>,
    ) {
        // Counted from here: remove_slot uncounts it.
        drop(guard);
        let Admitted {
            hub,
            user,
            peer,
            timeout,
            plain,
        } = admitted;
        let token = SessionToken(random_token());
        let port = SePort::new(Instant::now(), timeout);
        let endpoint = Endpoint::SoftEther(Box::new(port));
        let info = PortInfo::softether(self.id, 0);
        let slot = self.add_slot(hub, endpoint, info, token, &user, peer);
        let m = &self.sb.metrics;
        m.sessions_by_hub[hub].fetch_add(1, Ordering::Relaxed);
        m.softether_sessions.fetch_add(1, Ordering::Relaxed);
        m.handshake(Handshake::New);
        if let Some(i) = tls.info() {
            m.suite(&i.version, &i.cipher);
            info!(%peer, hub = %self.sb.hubs[hub].name(), user = %user, session = %token.short(), shard = self.id, tls = %i.version, suite = %i.cipher, protocol = "softether", "session established");
        }
        let Some(conn) = self.open_conn(stream, tls, slot) else {
            return;
        };
        B::spawn(self.clone().softether_writer(conn.clone(), slot));
        conn.wake.notify_one(); // the first keep-alive is due at once
        self.softether_reader(&conn, slot, plain).await;
        self.connection_lost(slot, &conn);
    }

    /// Reads the client's data phase and switches its frames, until the
    /// connection ends or breaks the framing.
    async fn softether_reader(&self, conn: &Rc<Conn<B::Stream>>, slot: u32, mut plain: Vec<u8>) {
        let mut reader = Reader::new();
        loop {
            if !plain.is_empty() && !self.softether_input(slot, conn, &mut plain) {
                return;
            }
            if reader.is_light() && plain.is_empty() && plain.capacity() > 4096 {
                // Light traffic: keep no buffers between reads.
                plain = Vec::new();
                conn.tls.borrow_mut().shrink_idle_input();
            }
            if !reader.read_into_tls(conn).await {
                return;
            }
            let ok = {
                let mut tls = conn.tls.borrow_mut();
                match tls.read_plaintext(&mut plain) {
                    Ok(r) => !r.closed,
                    Err(e) => {
                        debug!("TLS error on a SoftEther session: {e}");
                        false
                    }
                }
            };
            if !ok {
                if !plain.is_empty() {
                    self.softether_input(slot, conn, &mut plain);
                }
                return;
            }
            if conn.tls.borrow().wants_write() {
                conn.wake.notify_one();
            }
        }
    }

    /// Decodes the complete items at the front of `plain` (removed from
    /// it) and switches their frames. False when the connection must end.
    fn softether_input(&self, slot: u32, conn: &Rc<Conn<B::Stream>>, plain: &mut Vec<u8>) -> bool {
        let now = Instant::now();
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(s) = st.slots.get_mut(slot as usize) else {
            return false;
        };
        if !is_current(s, conn) {
            return false;
        }
        let (hub, port) = (s.hub, s.port);
        let Endpoint::SoftEther(p) = &mut s.endpoint else {
            return false;
        };
        let mut spans = std::mem::take(&mut st.spans);
        let base = plain.as_ptr() as usize;
        let mut used = 0;
        let mut keep = true;
        loop {
            match p.decoder.decode(&plain[used..]) {
                Ok(Some((item, n))) => {
                    match item {
                        Item::Frame(f) => {
                            let at = f.as_ptr() as usize - base;
                            spans.push((at as u32, f.len() as u32));
                            p.stats.rx_frames += 1;
                            p.stats.rx_bytes += f.len() as u64;
                        }
                        Item::KeepAlive(_) | Item::Skipped(Skip::EmptyBatch) => {}
                        Item::Skipped(Skip::Runt(_)) => st.counters.drop_runt += 1,
                        Item::Skipped(Skip::Oversize(_)) => st.counters.drop_too_long += 1,
                    }
                    used += n;
                }
                Ok(None) => break,
                Err(e) => {
                    info!(session = %s.token.short(), user = %s.user, peer = %s.peer, "SoftEther protocol error: {e}; connection closed");
                    st.counters.protocol_errors += 1;
                    keep = false;
                    break;
                }
            }
        }
        if used > 0 {
            p.liveness.on_receive(now);
        }
        let from = Ingress {
            hub,
            slot,
            port,
            form: Form::Plain,
        };
        self.switch_frames(st, from, now, plain, &spans);
        spans.clear();
        st.spans = spans;
        plain.drain(..used);
        self.finish_round(st);
        if !keep {
            conn.close();
        }
        keep
    }

    async fn softether_writer(self: Rc<Self>, conn: Rc<Conn<B::Stream>>, slot: u32) {
        self.softether_write(&conn, slot).await;
        self.writer_done(&conn);
    }

    /// The writer: queued batches and due keep-alives through TLS to the
    /// socket; ends the connection when the client has been silent for the
    /// session timeout.
    async fn softether_write(&self, conn: &Rc<Conn<B::Stream>>, slot: u32) {
        let mut plain: Vec<u8> = Vec::new();
        let mut out: Vec<u8> = Vec::new();
        // Ciphertext written since the writer last slept.
        let mut written = 0usize;
        loop {
            let now = Instant::now();
            let deadline = {
                let mut st = self.st.borrow_mut();
                let st = &mut *st;
                let Some(s) = st.slots.get_mut(slot as usize) else {
                    return;
                };
                if !is_current(s, conn) {
                    return;
                }
                let Endpoint::SoftEther(p) = &mut s.endpoint else {
                    return;
                };
                std::mem::swap(&mut plain, &mut p.out);
                p.batch_at = None;
                st.buffered -= s.buffered;
                s.buffered = 0;
                if !plain.is_empty() {
                    p.liveness.on_send(now);
                }
                if let Err(e) = p.liveness.handle_timeout(now, &mut plain) {
                    st.counters.keepalive_timeouts += 1;
                    info!(session = %s.token.short(), user = %s.user, peer = %s.peer, "SoftEther client: {e}");
                    self.sb.metrics.shards[self.id as usize].publish(&mut st.counters);
                    return;
                }
                let mut tls = conn.tls.borrow_mut();
                if !plain.is_empty() {
                    let r = tls.write_plaintext(&plain);
                    plain.clear();
                    if r.is_err() {
                        return;
                    }
                }
                if tls.wants_write() {
                    tls.take_ciphertext(&mut out);
                }
                p.liveness.poll_timeout()
            };
            if !out.is_empty() {
                written += out.len();
                let (res, b) = conn.stream.write_all(std::mem::take(&mut out)).await;
                out = b;
                out.clear();
                if res.is_err() {
                    return;
                }
                continue;
            }
            if conn.closed.get() {
                return;
            }
            if std::mem::take(&mut written) < LIGHT_WRITE {
                if plain.capacity() + out.capacity() > LIGHT_WRITE {
                    self.trim.set(true);
                }
                plain = Vec::new();
                out = Vec::new();
                conn.tls.borrow_mut().shrink_idle();
            }
            conn.sleep_until.set(Some(deadline));
            tokio::select! {
                _ = conn.wake.notified() => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            if conn.closed.get() {
                return;
            }
        }
    }
}

/// The welcome of an admitted client: one connection, no QoS, encrypted,
/// the admitted timeout; names as SoftEther makes them.
fn welcome(admitted: &Admitted, login: &Login) -> Welcome {
    let n = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let name = match (admitted.user.as_str(), login.user.as_str()) {
        ("", "") => "ANONYMOUS".to_owned(),
        ("", typed) => typed.to_uppercase(),
        (user, _) => user.to_uppercase(),
    };
    let k32 = u32::from_le_bytes(random());
    let mut w = Welcome::new(format!("SID-{name}-{n}"), format!("CID-{n}"), random(), k32);
    w.timeout_ms = admitted.timeout.as_millis() as u32;
    w
}
