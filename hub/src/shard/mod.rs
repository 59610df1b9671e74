//! One shard: a thread with its own runtime (io_uring or epoll), its own
//! `SO_REUSEPORT` listener, and the sessions it accepted.
//!
//! A connection goes through: TLS handshake → HTTP request → either a page
//! (`/`, `/ca.crt`), an error status, or the `vhub/1` upgrade; then a
//! reader loop and a writer task share the connection. The shard is split
//! by concern, one file each:
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the shard's state, its tasks (accept, housekeeping), session slots, shutdown |
//! | `front.rs` | TLS handshake and the HTTP request head: pages, errors, handshake limits |
//! | `login.rs` | who a new session belongs to: password, certificate, anonymous; throttling |
//! | `admit.rs` | the `vhub/1` upgrade: new session, resume, migration to the owner shard |
//! | `pump.rs` | an established connection: the reader loop and the writer task |
//! | `deliver.rs` | frames of one input chunk: ask the fabric, offer them to captures (if any), then move the bytes |
//! | `mailbox.rs` | what other shards send: frame batches and control messages |
//! | `bridge.rs` | a local bridge: a fabric port whose far end is a TAP device on a Linux bridge |
//! | `softether.rs` | a SoftEther VPN client: its handshake and login, then a fabric port fed by its data-phase framing |
//!
//! Where a frame goes is decided by switch-core (`Session` for the bytes,
//! `Fabric::forward` for the port, `LocalPorts` for a flood's receivers on
//! this shard); this module only moves bytes, locally or through another
//! shard's mailbox.

mod admit;
mod bridge;
mod deliver;
mod front;
mod login;
mod mailbox;
mod pump;
mod softether;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certs::tls::TlsConn;
use slab::Slab;
use switch_core::fabric::{LocalPorts, PortId, Route};
use switch_core::session::{Event, Session, State};
use switch_core::wire::http::SessionToken;
use switch_core::wire::CloseCode;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::metrics::Local;
use crate::net::{Backend, NetStream};
use crate::server::ServerContext;
use crate::switchboard::{Batch, Switchboard};

pub use admit::Migration;

/// Longest a stopping shard waits for its writers to send their CLOSE
/// (a peer that stopped reading must not hold the hub up).
const DRAIN_MAX: Duration = Duration::from_secs(5);

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

/// What sits behind one of this shard's fabric ports.
enum Endpoint {
    /// A `vhub/1` session. `None` only while its reader has taken it out
    /// to run input through it (`pump.rs: process_input`).
    Session(Option<Box<Session>>),
    /// A local bridge to a host network (`bridge.rs`).
    Bridge(Box<bridge::BridgePort>),
    /// A SoftEther VPN client's session (`softether.rs`): no resume, one
    /// TCP connection; its port lives as long as that connection.
    SoftEther(Box<softether::SePort>),
}

/// One port of a virtual hub's fabric held by this shard: a session (of
/// `vhub/1` or SoftEther), or a local bridge. The session's own fields
/// (token, user, conn, peer) are empty for a bridge (a zero token, never in
/// the registry).
struct Slot<S> {
    endpoint: Endpoint,
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

impl<S> Slot<S> {
    /// The session, unless the slot holds a bridge (or the reader has the
    /// session out).
    fn session(&self) -> Option<&Session> {
        match &self.endpoint {
            Endpoint::Session(s) => s.as_deref(),
            _ => None,
        }
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.endpoint {
            Endpoint::Session(s) => s.as_deref_mut(),
            _ => None,
        }
    }

    /// Takes the session out (to run input through it without holding the
    /// slot); [`Slot::put_session`] puts it back.
    fn take_session(&mut self) -> Option<Box<Session>> {
        match &mut self.endpoint {
            Endpoint::Session(s) => s.take(),
            _ => None,
        }
    }

    fn put_session(&mut self, session: Box<Session>) {
        self.endpoint = Endpoint::Session(Some(session));
    }

    fn is_bridge(&self) -> bool {
        matches!(self.endpoint, Endpoint::Bridge(_))
    }

    /// Whether the slot holds a `vhub/1` session (which can detach and
    /// resume).
    fn is_vhub_session(&self) -> bool {
        matches!(self.endpoint, Endpoint::Session(_))
    }

    fn is_softether(&self) -> bool {
        matches!(self.endpoint, Endpoint::SoftEther(_))
    }
}

/// Whether `conn` is still the connection of slot `s` (a resume replaces it).
fn is_current<S>(s: &Slot<S>, conn: &Conn<S>) -> bool {
    s.conn.as_ref().is_some_and(|c| c.id == conn.id)
}

struct State_<S> {
    slots: Slab<Slot<S>>,
    /// Per virtual hub: this shard's ports, the receivers of a flood here.
    local: LocalPorts,
    /// Per destination shard: the batch being filled.
    outbox: Vec<Option<Batch>>,
    /// Shards whose mailbox got a batch in this round: wake once each.
    to_wake: Vec<bool>,
    /// Slots that received frames in this round: wake their writers once.
    dirty: Vec<u32>,
    /// The frames of the input chunk being switched (offset, length in the
    /// plaintext) and their routes: kept between chunks, so switching
    /// allocates nothing in the steady state.
    spans: Vec<(u32, u32)>,
    routes: Vec<Route>,
    /// Frames converted between offload and plain form are built here.
    scratch: Vec<u8>,
    /// Bytes the shard's sessions hold in their buffers, and the most they
    /// may hold together (its share of `limits.max_buffer_memory`).
    buffered: usize,
    buffer_budget: usize,
    counters: Local,
    handshakes: usize,
    next_conn_id: u64,
    /// Writer tasks still running (shutdown waits for them).
    writers: usize,
}

pub struct Shard<B: Backend> {
    pub id: u16,
    sb: Arc<Switchboard>,
    ctx: Arc<ServerContext>,
    st: RefCell<State_<B::Stream>>,
    listener: RefCell<Option<Rc<B::Listener>>>,
    done: Notify,
    /// The last writer ended (after shutdown).
    drained: Notify,
    /// Memory was freed (a session ended, a writer gave its buffers back):
    /// housekeeping hands free pages back to the system.
    trim: Cell<bool>,
    /// Busy-poll (`busy_poll` > 0): traffic since the poller last looked,
    /// whether it is polling, and what starts it when it is not.
    traffic: Cell<bool>,
    polling: Cell<bool>,
    poll_start: Notify,
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
                    local: LocalPorts::new(hubs),
                    outbox: (0..shards).map(|_| None).collect(),
                    to_wake: vec![false; shards],
                    dirty: Vec::new(),
                    spans: Vec::new(),
                    routes: Vec::new(),
                    scratch: Vec::new(),
                    buffered: 0,
                    buffer_budget,
                    counters: Local::default(),
                    handshakes: 0,
                    next_conn_id: 0,
                    writers: 0,
                }),
                listener: RefCell::new(Some(listener.clone())),
                done: Notify::new(),
                drained: Notify::new(),
                trim: Cell::new(false),
                traffic: Cell::new(false),
                polling: Cell::new(false),
                poll_start: Notify::new(),
            });
            B::spawn(shard.clone().mailbox_loop());
            B::spawn(shard.clone().housekeeping());
            B::spawn(shard.clone().accept_loop(listener));
            let window = shard.ctx.settings.busy_poll;
            if !window.is_zero() {
                B::spawn(shard.clone().busy_poll(window));
            }
            shard.done.notified().await;
            shard.drain().await;
        });
    }

    /// Waits until every writer has sent its CLOSE and ended, at most
    /// [`DRAIN_MAX`].
    async fn drain(&self) {
        let give_up = tokio::time::Instant::now() + DRAIN_MAX;
        while self.st.borrow().writers > 0 {
            if tokio::time::timeout_at(give_up, self.drained.notified())
                .await
                .is_err()
            {
                let left = self.st.borrow().writers;
                warn!(
                    shard = self.id,
                    writers = left,
                    "stopping with writers that did not finish in {DRAIN_MAX:?}"
                );
                return;
            }
        }
    }

    /// Keeps the shard awake for `window` after its last traffic: the
    /// thread polls for events instead of sleeping, so the next frame (a
    /// reply, typically) is handled by a running thread with warm caches
    /// instead of one woken from a halted CPU. Started by
    /// [`Shard::note_traffic`]; the time spent polling is counted in
    /// `vhub_busy_poll_seconds_total`.
    async fn busy_poll(self: Rc<Self>, window: Duration) {
        loop {
            self.poll_start.notified().await;
            let start = Instant::now();
            self.traffic.set(false);
            let mut until = start + window;
            let mut hits = 0;
            loop {
                B::spin_once().await;
                let now = Instant::now();
                if self.traffic.replace(false) {
                    hits += 1;
                    until = now + window;
                } else if now >= until {
                    break;
                }
            }
            self.polling.set(false);
            let mut st = self.st.borrow_mut();
            st.counters.busy_poll_ns += start.elapsed().as_nanos() as u64;
            st.counters.busy_poll_hits += hits;
            self.sb.metrics.shards[self.id as usize].publish(&mut st.counters);
        }
    }

    /// Frames moved: with busy-poll on, stay awake a while.
    fn note_traffic(&self) {
        if self.ctx.settings.busy_poll.is_zero() {
            return;
        }
        self.traffic.set(true);
        if !self.polling.replace(true) {
            self.poll_start.notify_one();
        }
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

    /// Stops accepting and closes every session with a reason; `run` then
    /// waits for the writers to send it.
    fn shutdown(&self) {
        if let Some(l) = self.listener.borrow_mut().take() {
            B::shutdown_listener(&l);
        }
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let slots: Vec<u32> = st.slots.iter().map(|(k, _)| k as u32).collect();
        for slot in slots {
            let s = &mut st.slots[slot as usize];
            if s.is_bridge() {
                self.remove_bridge_slot(st, slot);
                continue;
            }
            if let Some(session) = s.session_mut() {
                session.close(CloseCode::Shutdown, "the hub is shutting down");
            }
            match &s.conn {
                // SoftEther has no goodbye: the client logs in again elsewhere.
                Some(c) if s.is_softether() => c.close(),
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
                    .filter(|(_, s)| s.conn.is_none() && s.is_vhub_session())
                    .map(|(k, _)| k as u32)
                    .collect();
                for slot in detached {
                    if let Some(session) = st.slots[slot as usize].session_mut() {
                        session.handle_timeout(now);
                    }
                    self.handle_events(st, slot);
                    if st
                        .slots
                        .get(slot as usize)
                        .is_some_and(|s| s.session().is_some_and(|x| x.state() == State::Closed))
                    {
                        self.remove_slot(st, slot);
                    }
                }
            }
            // Batch buffers left over from a burst of cross-shard traffic:
            // half the excess over a small reserve goes each second, so an
            // idle hub gives them back within seconds and a steady load
            // hardly churns.
            let free = &self.sb.mailboxes[self.id as usize].free;
            let excess = free
                .len()
                .saturating_sub(crate::switchboard::KEEP_FREE_BATCHES);
            if excess > 0 {
                for _ in 0..excess.div_ceil(2) {
                    drop(free.pop());
                }
                self.trim.set(true);
            }
            if self.trim.take() {
                crate::memory::give_back_free_memory();
            }
            // Shard 0 ages the MAC tables of every hub.
            if self.id == 0 {
                for h in &self.sb.hubs {
                    h.fabric.lock().expire(now);
                }
            }
        }
    }

    fn handle_events(&self, st: &mut State_<B::Stream>, slot: u32) {
        let Some(s) = st.slots.get_mut(slot as usize) else {
            return;
        };
        let Endpoint::Session(Some(session)) = &mut s.endpoint else {
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
                    info!(session = %s.token.short(), user = %s.user, peer = %s.peer, hub = %self.sb.hubs[s.hub].name(), ?code, %reason, by_peer, "session closed");
                    closed = true;
                }
                Event::LinkDead => {
                    st.counters.keepalive_timeouts += 1;
                    info!(session = %s.token.short(), user = %s.user, peer = %s.peer, hub = %self.sb.hubs[s.hub].name(), "keep-alive timeout: link dead, session detached");
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
        match st.slots.get(slot as usize) {
            None => return,
            Some(s) if s.is_bridge() => return self.remove_bridge_slot(st, slot),
            Some(_) => {}
        }
        let s = st.slots.remove(slot as usize);
        self.trim.set(true);
        st.buffered -= s.buffered;
        self.sb.remove_port(s.hub, s.port);
        st.local.remove(s.hub, slot);
        self.sb.sessions.lock().remove(&s.token);
        self.ctx.admission.remove_user_session(s.hub, &s.user);
        self.sb.metrics.sessions_by_hub[s.hub].fetch_sub(1, Ordering::Relaxed);
        if s.is_softether() {
            self.sb
                .metrics
                .softether_sessions
                .fetch_sub(1, Ordering::Relaxed);
        }
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
        if s.is_softether() {
            // No resume in SoftEther: the client logs in again.
            info!(session = %s.token.short(), user = %s.user, peer = %s.peer, hub = %self.sb.hubs[s.hub].name(), protocol = "softether", "session closed: connection ended (SoftEther has no resume)");
            self.remove_slot(st, slot);
            return;
        }
        s.conn = None;
        let session = s.session_mut().expect("session present");
        if session.state() == State::Closed {
            self.remove_slot(st, slot);
            return;
        }
        session.link_lost(Instant::now());
        s.detached = true;
        self.sb.metrics.detached_by_hub[s.hub].fetch_add(1, Ordering::Relaxed);
        debug!(session = %s.token.short(), "link lost; session detached");
    }
}
