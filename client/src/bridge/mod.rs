//! The bridge: a TAP device on one side, a `vhub/1` session (or, for a
//! `softether://` hub, a SoftEther one) on the other, and the loop that
//! moves frames between them, keeps the link alive and brings it back.
//!
//! ```text
//!   TAP ──recv_batch──► Session::send_frame ─┐            ┌─► TAP::send
//!                                             ▼            │
//!                            Session::poll_transmit    Session::handle_input
//!                                             │            ▲
//!                                  TlsConn::write_plaintext / read_plaintext
//!                                             ▼            │
//!                           relay/TCP stream (write half)  (read half)
//! ```
//!
//! One task on a current-thread tokio runtime owns everything; a
//! `select!` waits for whichever of the TAP, the stream, a connection
//! attempt, a timer, a signal or a network change is ready. What goes
//! where is the session's business (switch-core); when to (re)connect,
//! wait, start a new session or give up is the [`Supervisor`]'s (sans-IO,
//! tested on a virtual clock): the bridge tells it what happened and does
//! what it answers. This folder only moves bytes:
//!
//! - `mod.rs`: the loop, the session's events, the supervisor's actions;
//! - `connect.rs`: opening a link, switching to it, losing it;
//! - `pump.rs`: socket ⇄ TLS ⇄ session;
//! - `proto.rs`: the session of either dialect behind one set of calls
//!   ([`Proto`](proto::Proto)): `vhub/1`'s `Session`, or
//!   `crate::softether`'s login-per-link session with no resume;
//! - `tap_path.rs`: TAP ⇄ session, in the form each side wants (and,
//!   while the link is down, the host's neighbour requests answered from
//!   `crate::suppress`'s table);
//! - `status.rs`: the status file and the state lines.
//!
//! With several hubs, the supervisor names the hub of each attempt (an
//! index into `hubs`, the try order) and when the session moves to
//! another one; the bridge dials that hub and binds the session to it.

use std::future::{pending, Future};
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use certs::tls::{TlsConn, TlsInfo};
use openssl::ssl::SslContext;
use switch_core::offload;
use switch_core::pump::Pump;
use switch_core::session::{Connect, Event, Session, SessionConfig, SessionStats, State};
use switch_core::wire::CloseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::signal::unix::{signal, SignalKind};

use crate::addr::{Dialect, HubUrl};
use crate::backoff::Backoff;
use crate::lan::IcmpKeepalive;
use crate::link::{Link, LinkError};
use crate::netwatch::NetWatch;
use crate::relay::{Relay, Transport};
use crate::report::{say, warn};
use crate::settings::{HubOrder, Settings};
use crate::softether::{SeEvent, SoftEther};
use crate::supervisor::{self, Action, Level, Settled, Supervisor};
use crate::suppress::{self, Neighbours};
use crate::tap::{FrameBatch, TapIo};
use crate::units::fmt_duration;
use proto::Carrier;

pub use crate::supervisor::Outcome;

mod connect;
mod proto;
mod pump;
mod status;
mod tap_path;

/// Most frames taken from the TAP in one go before they are transmitted.
const TAP_BATCH: usize = 256;
/// Plaintext handed to TLS per `poll_transmit` call.
const TRANSMIT_CHUNK: usize = 256 * 1024;
/// Stop reading the TAP (and polling the session) while this much
/// ciphertext waits for the socket: the kernel's TAP queue then holds or
/// drops frames, which is how a NIC pushes back on TCP.
const HIGH_WATER: usize = 1 << 20;
/// Read this much ciphertext per read call at most.
const READ_CHUNK: usize = 256 * 1024;
/// How long to wait for the CLOSE to leave when stopping.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

type ConnectFuture = Pin<Box<dyn Future<Output = Result<Link, LinkError>>>>;

/// What woke the loop.
enum Wake {
    Stop(&'static str),
    StatusLine,
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Connected(Result<Link, LinkError>),
    Tap(std::io::Result<()>),
    NetChanged,
    Timer,
    /// One round of a busy-poll (`--busy-poll`): nothing to do.
    Spin,
}

/// Counters of the shell (the session counts the protocol's).
#[derive(Default, Debug)]
struct ShellStats {
    reconnects: u64,
    new_sessions: u64,
    tap_write_errors: u64,
    /// Frames too large for the session's limits.
    oversize: u64,
    /// Frames left in the buffer of a session the hub ended.
    dropped_with_session: u64,
    /// Frames read from the TAP with a virtio_net_hdr vnic could not cut
    /// (the kernel does not make those; counted, never silent).
    bad_offload: u64,
    /// Plain frames cut from TAP super frames for a hub without offload.
    segments_cut: u64,
    /// Sessions established on another hub than the one before.
    failovers: u64,
    /// When the last of them was, and the hub it left.
    failed_over_at: Option<SystemTime>,
    failed_over_from: Option<String>,
    /// Neighbour requests answered while the link was down, when the
    /// last session was established (for the line that says how many
    /// were answered during the outage).
    answered_before: u64,
}

pub struct Bridge<T: TapIo> {
    settings: Settings,
    /// The hubs in the order to try them (`--hub-order`); the supervisor's
    /// hub indexes point here.
    hubs: Vec<HubUrl>,
    /// The hub the session is bound to.
    hub: usize,
    /// The hub of the attempt in flight.
    connecting_hub: usize,
    ctx: SslContext,
    tap: T,
    session: proto::Proto,
    /// Counters of earlier `Session`s (a session the hub ended is
    /// replaced by a new one; the status adds them up).
    prior: SessionStats,
    shell: ShellStats,

    // The current link, if any.
    rd: Option<ReadHalf<Box<dyn Transport>>>,
    wr: Option<WriteHalf<Box<dyn Transport>>>,
    tls: Option<TlsConn>,
    tls_info: Option<TlsInfo>,
    /// The session was established on this link.
    link_established: bool,
    /// When the current link's session was established.
    established_at: Option<Instant>,
    /// Last time ciphertext arrived on the current link.
    last_rx: Instant,
    /// With `--busy-poll`: the loop polls instead of sleeping until then.
    poll_until: Instant,

    // Buffers, kept across links.
    rbuf: Vec<u8>,
    /// Plaintext between TLS and the session, both ways.
    pump: Pump,
    out: Vec<u8>,
    out_pos: usize,
    batch: FrameBatch,

    // Reconnection: the attempt in flight; the supervisor decides.
    connecting: Option<ConnectFuture>,
    sup: Supervisor,
    rtt_reported: bool,
    /// PONGs received when the current connection was established: the
    /// round trip is reported once a PONG of this connection arrived.
    pongs_at_connect: u64,

    icmp: Option<IcmpKeepalive>,
    netwatch: Option<NetWatch>,
    /// ARP suppression's table (`None` with `--no-arp-suppression`), and
    /// the buffer its answers are built in.
    neighbours: Option<Neighbours>,
    reply: Vec<u8>,

    // Status.
    state_name: &'static str,
    detail: String,
    status_due: Instant,
    started: Instant,
    started_at: SystemTime,

    outcome: Option<Outcome>,
    /// Frames converted between offload and plain form are built here.
    scratch: Vec<u8>,
    /// A SoftEther session's plaintext output on its way into TLS.
    plain_out: Vec<u8>,
    /// The SoftEther server's product string, from its hello.
    se_server: Option<String>,
    /// Frames that arrived with the handshake response (rare: kept only
    /// until the response is processed).
    early: Vec<Vec<u8>>,
}

#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// Reads from the link if there is one; pends forever otherwise.
async fn read_opt(
    rd: &mut Option<ReadHalf<Box<dyn Transport>>>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match rd {
        Some(r) => r.read(buf).await,
        None => pending().await,
    }
}

async fn write_opt(
    wr: &mut Option<WriteHalf<Box<dyn Transport>>>,
    buf: &[u8],
) -> std::io::Result<usize> {
    match wr {
        Some(w) if !buf.is_empty() => w.write(buf).await,
        _ => pending().await,
    }
}

async fn connect_opt(c: &mut Option<ConnectFuture>) -> Result<Link, LinkError> {
    match c {
        Some(f) => f.await,
        None => pending().await,
    }
}

async fn netwatch_opt(n: &mut Option<NetWatch>) {
    match n {
        Some(w) => {
            if w.changed().await.is_err() {
                // A watcher that fails is dropped by the caller; until then
                // do not spin.
                pending::<()>().await
            }
        }
        None => pending().await,
    }
}

impl<T: TapIo> Bridge<T> {
    pub fn new(settings: Settings, ctx: SslContext, tap: T) -> Self {
        let t = now();
        let mut hubs = settings.hubs();
        if settings.hub_order == HubOrder::Random {
            fastrand::shuffle(&mut hubs);
        }
        let session = Self::fresh_session(&settings, &hubs[0], tap.vnet(), t);
        let neighbours = settings.arp_suppression.then(|| {
            let net = settings.ip.map(|c| (c.addr, c.prefix));
            Neighbours::new(tap.mac(), net, suppress::DEFAULT_CAPACITY)
        });
        let icmp = settings
            .icmp
            .as_ref()
            .map(|i| IcmpKeepalive::new(i.target, i.interval, std::process::id() as u16, t));
        let netwatch = match NetWatch::new(crate::netwatch::ifindex(tap.name())) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("not watching for network changes: {e}");
                None
            }
        };
        let sup = Supervisor::new(
            supervisor::Config {
                hubs: hubs.iter().map(|h| h.to_string()).collect(),
                max_retries: settings.max_retries,
                with_cert: settings.client_cert.is_some(),
                resumable: settings.url.dialect != Dialect::SoftEther,
                failback: settings.failback,
            },
            Backoff::new(settings.max_backoff),
        );
        Self {
            settings,
            hubs,
            hub: 0,
            connecting_hub: 0,
            ctx,
            tap,
            session,
            prior: SessionStats::default(),
            shell: ShellStats::default(),
            rd: None,
            wr: None,
            tls: None,
            tls_info: None,
            link_established: false,
            established_at: None,
            last_rx: t,
            rbuf: vec![0; READ_CHUNK],
            pump: Pump::new(),
            out: Vec::new(),
            out_pos: 0,
            batch: FrameBatch::default(),
            connecting: None,
            sup,
            rtt_reported: false,
            pongs_at_connect: 0,
            icmp,
            netwatch,
            neighbours,
            reply: Vec::new(),
            state_name: "connecting",
            detail: String::new(),
            status_due: t,
            poll_until: t,
            started: t,
            started_at: SystemTime::now(),
            outcome: None,
            scratch: Vec::new(),
            plain_out: Vec::new(),
            se_server: None,
            early: Vec::new(),
        }
    }

    /// A session with no link yet, for the hub at `url`: `reconnect`
    /// starts its handshake on each new link (a new session first, a
    /// resume afterwards). `offload`: the TAP speaks `virtio_net_hdr`;
    /// ask the hub for it too. A `softether://` hub gets a SoftEther
    /// session, which logs in on each new link.
    fn fresh_session(settings: &Settings, url: &HubUrl, offload: bool, t: Instant) -> proto::Proto {
        if url.dialect == Dialect::SoftEther {
            return proto::Proto::SoftEther(SoftEther::new(
                &url.host_port(),
                &url.hub,
                settings.credentials.as_ref(),
            ));
        }
        let mut config = SessionConfig {
            keepalive: settings.keepalive,
            timeout: settings.timeout,
            offload,
            ..SessionConfig::default()
        };
        if offload {
            config.limits.max_frame = offload::MAX_VNET_FRAME;
            config.max_buffered_bytes = offload::OFFLOAD_BUFFER_BYTES;
        }
        proto::Proto::Vhub(Session::connect(
            t,
            config,
            Self::connect_params(settings, url),
        ))
    }

    /// What the upgrade request names: the virtual hub, the `Host`, us.
    fn connect_params(settings: &Settings, url: &HubUrl) -> Connect {
        Connect {
            hub: url.hub.clone(),
            host: url.host_port(),
            credentials: settings.credentials.clone(),
        }
    }

    fn relay_label(&self) -> String {
        match &self.settings.relay {
            Relay::Direct => "direct".to_owned(),
            r => format!("via {r}"),
        }
    }

    /// Runs until the user stops the client or something final happens.
    pub async fn run(mut self) -> Outcome {
        let signals = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::user_defined1()),
        );
        let (mut sigint, mut sigterm, mut sigusr1) = match signals {
            (Ok(a), Ok(b), Ok(c)) => (a, b, c),
            _ => return Outcome::Failed("cannot install signal handlers".into()),
        };
        self.apply(now());
        loop {
            if let Some(o) = self.outcome.take() {
                // Whatever is queued (a CLOSE after a protocol error) goes
                // out, briefly.
                if let Some(wr) = &mut self.wr {
                    let out = &self.out[self.out_pos..];
                    let _ = tokio::time::timeout(CLOSE_GRACE, wr.write_all(out)).await;
                }
                self.write_status(now());
                return o;
            }
            let t = now();
            let deadline = self.next_deadline(t);
            let pending_out = self.out.len() - self.out_pos;
            let read_tap = match self.session.state() {
                State::Closed => false,
                // On a live link, frames in flight are bounded by what the
                // session can keep for a resume: when it is full the TAP
                // queue fills instead (and the kernel drops, as a NIC
                // would), so nothing sent is ever evicted from the
                // retransmit buffer and a link loss loses nothing.
                State::Established => pending_out < HIGH_WATER && self.room_for_a_batch(),
                // Detached or resuming: frames wait in the buffer (tail
                // drops counted when it is full) — once the form they take
                // (with a virtio_net_hdr or not) is settled by a first
                // handshake; until then they wait in the kernel's queue.
                _ => !self.tap.vnet() || self.session.form_settled(),
            };
            let wake = tokio::select! {
                biased;
                _ = sigint.recv() => Wake::Stop("interrupted (SIGINT)"),
                _ = sigterm.recv() => Wake::Stop("terminated (SIGTERM)"),
                _ = sigusr1.recv() => Wake::StatusLine,
                r = write_opt(&mut self.wr, &self.out[self.out_pos..]) => Wake::Wrote(r),
                r = read_opt(&mut self.rd, &mut self.rbuf) => Wake::Read(r),
                r = self.tap.readable(), if read_tap => Wake::Tap(r),
                r = connect_opt(&mut self.connecting) => Wake::Connected(r),
                _ = netwatch_opt(&mut self.netwatch) => Wake::NetChanged,
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => Wake::Timer,
                // Last, so that every source above is looked at first: a
                // yield lets the runtime poll for events without sleeping.
                _ = tokio::task::yield_now(), if t < self.poll_until => Wake::Spin,
            };
            let t = now();
            match wake {
                Wake::Stop(why) => return self.stop(why).await,
                Wake::StatusLine => {
                    let line = self.status(t).line();
                    say(line);
                }
                Wake::Read(r) => {
                    self.keep_polling(t, matches!(r, Ok(n) if n > 0));
                    self.on_read(t, r);
                }
                Wake::Wrote(r) => self.on_wrote(t, r),
                Wake::Tap(r) => {
                    self.keep_polling(t, r.is_ok());
                    self.on_tap(r);
                }
                Wake::Spin => {}
                Wake::Connected(r) => {
                    self.connecting = None;
                    self.on_connected(t, r);
                }
                Wake::NetChanged => self.on_net_changed(t),
                Wake::Timer => self.on_timer(t),
            }
            self.drain_events(t);
            self.flush(t);
            if t >= self.status_due {
                self.write_status(t);
            }
        }
    }

    /// Traffic moved: with `--busy-poll`, poll rather than sleep for a while.
    fn keep_polling(&mut self, t: Instant, traffic: bool) {
        if traffic && !self.settings.busy_poll.is_zero() {
            self.poll_until = t + self.settings.busy_poll;
        }
    }

    fn next_deadline(&self, t: Instant) -> Instant {
        let mut d = self.status_due;
        if self.tls.is_some() {
            if let Some(s) = self.session.poll_timeout() {
                // While the socket is backed up, `flush` does not ask the
                // session for output, so a due ACK or PING stays due: do
                // not spin on it; the write completing wakes the loop.
                let s = if self.out.len() - self.out_pos >= HIGH_WATER {
                    s.max(t + Duration::from_millis(10))
                } else {
                    s
                };
                d = d.min(s);
            }
        }
        if let Some(r) = self.sup.poll_timeout() {
            d = d.min(r);
        }
        if let Some(i) = &self.icmp {
            if self.session.state() == State::Established {
                d = d.min(i.next_due());
            }
        }
        d.max(t)
    }

    // ------------------------------------------------------------------
    // The supervisor's decisions
    // ------------------------------------------------------------------

    /// Does what the supervisor asks, in order.
    fn apply(&mut self, t: Instant) {
        while let Some(a) = self.sup.poll_action() {
            match a {
                Action::Connect(attempt) => self.start_connect(t, attempt),
                Action::DropLink => self.drop_link(t),
                Action::NewSession => self.renew_session(t),
                Action::MoveSession { hub } => self.move_session(hub),
                Action::Report { state, level, line } => {
                    let line = match level {
                        Level::Say => say(line),
                        Level::Warn => warn(line),
                    };
                    self.set_state(t, state, line);
                }
                Action::Wait { until: _, line } => {
                    // The supervisor's `poll_timeout` wakes the loop then.
                    let line = warn(line);
                    self.set_state(t, "reconnecting", line);
                }
                Action::GiveUp(o) => self.finish_with(o),
            }
        }
    }

    fn on_timer(&mut self, t: Instant) {
        if self.tls.is_some() {
            self.session.handle_timeout(t);
        }
        self.sup.handle_timeout(t);
        self.apply(t);
        if self.session.state() == State::Established {
            if let Some(k) = &mut self.icmp {
                let src_ip = self.settings.ip.map(|c| c.addr).or_else(|| self.tap.ipv4());
                match src_ip {
                    Some(ip) => {
                        if let Some(frame) = k.poll(t, self.tap.mac(), ip) {
                            self.send_own_frame(&frame);
                        }
                    }
                    None if t >= k.next_due() => {
                        // Nothing to send from; check again later.
                        let _ = k.poll(t, [0; 6], std::net::Ipv4Addr::UNSPECIFIED);
                    }
                    None => {}
                }
            }
        }
    }

    // ------------------------------------------------------------------
    // Session events
    // ------------------------------------------------------------------

    fn drain_events(&mut self, t: Instant) {
        while let Some(ev) = self.session.poll_event() {
            self.on_event(t, ev);
        }
        if !self.rtt_reported
            && self.link_established
            && self.session.stats().pongs_received > self.pongs_at_connect
        {
            if let Some(rtt) = self.session.rtt() {
                self.rtt_reported = true;
                say(format!("round trip to the hub: {}", fmt_duration(rtt)));
            }
        }
    }

    fn short_id(&self) -> String {
        self.session.short_id().unwrap_or_else(|| "-".into())
    }

    fn on_event(&mut self, t: Instant, ev: proto::ProtoEvent) {
        let ev = match ev {
            proto::ProtoEvent::Vhub(ev) => ev,
            proto::ProtoEvent::SoftEther(ev) => return self.on_softether_event(t, ev),
        };
        match ev {
            Event::Established {
                resumed,
                resent,
                lost,
            } => self.on_established(t, resumed, resent, lost),
            Event::SessionExpired { unconfirmed } => {
                self.shell.new_sessions += 1;
                let detached = self.session.state() == State::Detached;
                self.sup.handle_session_expired(t, unconfirmed, detached);
            }
            Event::LinkDead => {
                let timeout = self.session.config().timeout;
                self.sup.handle_keepalive_dead(t, timeout);
            }
            Event::Refused(r) => self.sup.handle_refused(t, &r),
            Event::Closed {
                code,
                reason,
                by_peer,
            } => self.sup.handle_closed(t, code, &reason, by_peer),
        }
        self.apply(t);
    }

    /// What a SoftEther session reports; the supervisor decides, as for
    /// `vhub/1`'s events.
    fn on_softether_event(&mut self, t: Instant, ev: SeEvent) {
        match ev {
            SeEvent::Established { server, .. } => {
                self.se_server = Some(server);
                self.on_established(t, false, 0, 0);
            }
            SeEvent::HandshakeFailed(e) => self.sup.handle_softether_failed(t, &e),
            SeEvent::Broken(e) => {
                self.link_down(t, format!("the SoftEther server broke the framing: {e}"))
            }
            SeEvent::LinkDead(timeout) => self.sup.handle_keepalive_dead(t, timeout),
        }
        self.apply(t);
    }

    fn on_established(&mut self, t: Instant, resumed: bool, resent: u64, lost: u64) {
        let again = self.sup.ever_established();
        let Settled { outage, moved_from } = self.sup.handle_established(t, resumed);
        self.link_established = true;
        // On every later event: the session's hub and its ID as the hub logs
        // it (JSON logs of both sides can be joined on it).
        crate::report::record_session(&self.hubs[self.hub], &self.short_id());
        self.established_at = Some(t);
        self.rtt_reported = false;
        self.pongs_at_connect = self.session.stats().pongs_received;
        let tls = self
            .tls_info
            .as_ref()
            .map(|i| i.to_string())
            .unwrap_or_else(|| "TLS".into());
        // What ARP suppression did while there was no session.
        let answered = self.neighbours.as_ref().map_or(0, |n| n.stats().answered());
        let suppressed = match answered - self.shell.answered_before {
            0 => String::new(),
            n => format!("; {n} neighbour request(s) of the host answered here meanwhile"),
        };
        self.shell.answered_before = answered;
        let line = if resumed {
            let outage = outage
                .map(|d| format!(" after {}", fmt_duration(d)))
                .unwrap_or_default();
            say(format!(
                "resumed session {}{outage}: {resent} frame(s) re-sent, {lost} lost ({tls}){suppressed}",
                self.short_id()
            ))
        } else if let Some(from) = moved_from {
            let from = self.hubs[from].to_string();
            let outage = outage
                .map(|d| format!(" after {}", fmt_duration(d)))
                .unwrap_or_default();
            self.shell.failovers += 1;
            self.shell.failed_over_at = Some(SystemTime::now());
            // A failback is planned: nothing was lost, nothing to time.
            let moved = if outage.is_empty() {
                "moved back to"
            } else {
                "failed over to"
            };
            let line = say(format!(
                "{moved} {} ({}) from {from}{outage}: {tls}, session {} (a new session){suppressed}",
                self.hubs[self.hub],
                self.relay_label(),
                self.short_id()
            ));
            self.shell.failed_over_from = Some(from);
            line
        } else if self.session.is_softether() {
            let new = if again { " (a new session)" } else { "" };
            say(format!(
                "connected to {} ({}): {tls}, SoftEther session {}{new} on {}; \
                 no resume (a lost link means a new session), no offload{suppressed}",
                self.hubs[self.hub],
                self.relay_label(),
                self.short_id(),
                self.se_server.as_deref().unwrap_or("a SoftEther server")
            ))
        } else {
            let new = if again { " (a new session)" } else { "" };
            let offload = match (self.tap.vnet(), self.session.offload()) {
                (true, true) => "offload on",
                (true, false) => "offload off (the hub did not grant it)",
                (false, _) => "offload off",
            };
            say(format!(
                "connected to {} ({}): {tls}, session {}{new}, {offload}{suppressed}",
                self.hubs[self.hub],
                self.relay_label(),
                self.short_id()
            ))
        };
        self.set_state(t, "connected", line);
    }

    // ------------------------------------------------------------------
    // Ending
    // ------------------------------------------------------------------

    fn finish_with(&mut self, o: Outcome) {
        let line = match &o {
            Outcome::Stopped => say("closed"),
            Outcome::Refused(m) | Outcome::Untrusted(m) | Outcome::Failed(m) => {
                warn(format!("stopped: {m}"))
            }
        };
        self.state_name = "closed";
        self.detail = line;
        if self.outcome.is_none() {
            self.outcome = Some(o);
        }
    }

    /// Ctrl-C or SIGTERM: CLOSE(normal) to the hub, close_notify, done.
    async fn stop(mut self, why: &'static str) -> Outcome {
        let t = now();
        let had_link = self.tls.is_some() && self.session.state() == State::Established;
        self.session
            .close(CloseCode::Normal, &format!("vnic stopped: {why}"));
        self.flush(t);
        if let (Some(tls), Some(wr)) = (&mut self.tls, &mut self.wr) {
            tls.shutdown();
            if self.out_pos > 0 {
                self.out.drain(..self.out_pos);
                self.out_pos = 0;
            }
            tls.take_ciphertext(&mut self.out);
            let out = &self.out;
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                wr.write_all(out).await?;
                wr.shutdown().await
            })
            .await;
        }
        let line = say(format!(
            "closed: {why}{}",
            if had_link && self.session.is_softether() {
                "; the server was told (TLS close)"
            } else if had_link {
                "; the hub was told (CLOSE normal)"
            } else {
                ""
            }
        ));
        self.state_name = "closed";
        self.detail = line;
        self.write_status(t);
        Outcome::Stopped
    }

    // ------------------------------------------------------------------
    // Status
    // ------------------------------------------------------------------
}
