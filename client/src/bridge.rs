//! The bridge: a TAP device on one side, a `vhub/1` session on the other,
//! and the loop that moves frames between them, keeps the link alive and
//! brings it back.
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
//! where is the session's business (switch-core); this file only moves
//! bytes and decides when to (re)connect:
//!
//! - a lost link (reset, end of file, keep-alive timeout) is retried at
//!   once, then with exponential backoff and jitter; the session resumes
//!   with its token and both sides re-send what the other missed;
//! - frames read from the TAP while the link is down wait in the session's
//!   bounded buffer (overflow is counted as tail drops);
//! - a hub that forgot the session (410) gets a new session at once;
//! - a refusal that retrying cannot fix (401, unknown hub, a certificate
//!   that changed, a relay refusing our credentials) stops the client.

use std::future::{pending, Future};
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use certs::tls::{TlsConn, TlsError, TlsInfo};
use openssl::ssl::SslContext;
use switch_core::offload;
use switch_core::session::{
    Connect, Event, SendError, Session, SessionConfig, SessionStats, State,
};
use switch_core::wire::CloseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::signal::unix::{signal, SignalKind};

use crate::backoff::Backoff;
use crate::lan::IcmpKeepalive;
use crate::link::{self, Link, LinkError};
use crate::netwatch::NetWatch;
use crate::relay::{Relay, Transport};
use crate::report::{say, warn};
use crate::settings::Settings;
use crate::status::Status;
use crate::tap::{FrameBatch, TapIo};
use crate::trust::Checked;
use crate::units::fmt_duration;

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
/// A network change while the link has been silent this long makes the
/// client try a fresh connection next to the old one.
const SILENCE_BEFORE_PROBE: Duration = Duration::from_millis(700);
/// How long to wait for the CLOSE to leave when stopping.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How `vnic connect` ended; `main` turns it into an exit code.
#[derive(Debug)]
pub enum Outcome {
    /// The user stopped it (Ctrl-C, SIGTERM): exit 0.
    Stopped,
    /// The hub or a relay refused us for good (authentication, unknown
    /// hub, unsupported version): exit 3.
    Refused(String),
    /// The hub's certificate is not trusted (changed, wrong pin, CA
    /// check failed): exit 4.
    Untrusted(String),
    /// Anything else that ends the client (gave up retrying, the hub
    /// ended the session for good, the TAP device failed): exit 1.
    Failed(String),
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Stopped => 0,
            Outcome::Failed(_) => 1,
            Outcome::Refused(_) => 3,
            Outcome::Untrusted(_) => 4,
        }
    }
}

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
}

pub struct Bridge<T: TapIo> {
    settings: Settings,
    ctx: SslContext,
    tap: T,
    session: Session,
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
    /// When the link was lost (for the outage time of a resume).
    lost_at: Option<Instant>,

    // Buffers, kept across links.
    rbuf: Vec<u8>,
    plain_in: Vec<u8>,
    plain_out: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    batch: FrameBatch,

    // Reconnection.
    connecting: Option<ConnectFuture>,
    /// The attempt in flight runs next to a live link (a probe after a
    /// network change); its failure is no news.
    connecting_is_probe: bool,
    retry_at: Option<Instant>,
    backoff: Backoff,
    ever_established: bool,
    rtt_reported: bool,
    /// PONGs received when the current connection was established: the
    /// round trip is reported once a PONG of this connection arrived.
    pongs_at_connect: u64,
    last_error: Option<String>,

    icmp: Option<IcmpKeepalive>,
    netwatch: Option<NetWatch>,

    // Status.
    state_name: &'static str,
    detail: String,
    status_due: Instant,
    started: Instant,
    started_at: SystemTime,

    outcome: Option<Outcome>,
    /// Frames converted between offload and plain form are built here.
    scratch: Vec<u8>,
    /// Frames that arrived with the handshake response (rare: kept only
    /// until the response is processed).
    early: Vec<Vec<u8>>,
}

#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// Queues a frame on the session; what it refuses is counted.
fn queue_frame(session: &mut Session, shell: &mut ShellStats, frame: &[u8]) {
    match session.send_frame(frame) {
        // Full: counted by the session as a tail drop; Closed: counted
        // when the session is replaced.
        Ok(()) | Err(SendError::Full) | Err(SendError::Closed) => {}
        Err(SendError::BadLength(_)) => shell.oversize += 1,
    }
}

/// How frames from the session reach the TAP.
#[derive(Clone, Copy)]
struct Form {
    /// The session's frames carry a virtio_net_hdr.
    offload: bool,
    /// The TAP's frames do.
    vnet_tap: bool,
}

impl Form {
    fn to_tap<T: TapIo>(
        self,
        tap: &T,
        icmp: &mut Option<IcmpKeepalive>,
        errors: &mut u64,
        frame: &[u8],
    ) {
        let (r, eth) = if self.offload {
            // Only asked for with a vnet TAP: the same form on both sides.
            (
                tap.send(frame),
                frame.get(offload::VNET_HDR_LEN..).unwrap_or(&[]),
            )
        } else if self.vnet_tap {
            (tap.send_plain(frame), frame)
        } else {
            (tap.send(frame), frame)
        };
        if r.is_err() {
            *errors += 1;
        }
        if let Some(k) = icmp {
            k.observe(eth);
        }
    }
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

fn add_stats(a: &mut SessionStats, b: &SessionStats) {
    a.tx_frames += b.tx_frames;
    a.tx_bytes += b.tx_bytes;
    a.rx_frames += b.rx_frames;
    a.rx_bytes += b.rx_bytes;
    a.resent += b.resent;
    a.tail_drops += b.tail_drops;
    a.evicted += b.evicted;
    a.lost_on_resume += b.lost_on_resume;
    a.rx_duplicates += b.rx_duplicates;
    a.rx_gaps += b.rx_gaps;
    a.unconfirmed += b.unconfirmed;
    a.resumes += b.resumes;
    a.link_deaths += b.link_deaths;
    a.pings_sent += b.pings_sent;
    a.pongs_received += b.pongs_received;
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<T: TapIo> Bridge<T> {
    pub fn new(settings: Settings, ctx: SslContext, tap: T) -> Self {
        let t = now();
        let session = Self::fresh_session(&settings, tap.vnet(), t);
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
        Self {
            backoff: Backoff::new(settings.max_backoff),
            settings,
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
            lost_at: None,
            rbuf: vec![0; READ_CHUNK],
            plain_in: Vec::new(),
            plain_out: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            batch: FrameBatch::default(),
            connecting: None,
            connecting_is_probe: false,
            retry_at: None,
            ever_established: false,
            rtt_reported: false,
            pongs_at_connect: 0,
            last_error: None,
            icmp,
            netwatch,
            state_name: "connecting",
            detail: String::new(),
            status_due: t,
            started: t,
            started_at: SystemTime::now(),
            outcome: None,
            scratch: Vec::new(),
            early: Vec::new(),
        }
    }

    /// A session with no link yet: `reconnect` starts its handshake on
    /// each new link (a new session first, a resume afterwards).
    /// `offload`: the TAP speaks `virtio_net_hdr`; ask the hub for it too.
    fn fresh_session(settings: &Settings, offload: bool, t: Instant) -> Session {
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
        Session::connect(
            t,
            config,
            Connect {
                hub: settings.url.hub.clone(),
                host: settings.url.host_port(),
                credentials: settings.credentials.clone(),
            },
        )
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
        self.start_connect(now(), false);
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
                _ => !self.tap.vnet() || self.session.token().is_some(),
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
            };
            let t = now();
            match wake {
                Wake::Stop(why) => return self.stop(why).await,
                Wake::StatusLine => {
                    let line = self.status(t).line();
                    say(line);
                }
                Wake::Read(r) => self.on_read(t, r),
                Wake::Wrote(r) => self.on_wrote(t, r),
                Wake::Tap(r) => self.on_tap(r),
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
        if let Some(r) = self.retry_at {
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
    // Connecting
    // ------------------------------------------------------------------

    fn start_connect(&mut self, t: Instant, probe: bool) {
        self.retry_at = None;
        self.connecting_is_probe = probe;
        let url = self.settings.url.clone();
        let relay = self.settings.relay.clone();
        let ctx = self.ctx.clone();
        let trust = self.settings.trust.clone();
        let timeout = self.settings.connect_timeout;
        let via = match &relay {
            Relay::Direct => String::new(),
            r => format!(" via {r}"),
        };
        if probe {
            tracing::info!(
                "network changed and the link is silent: trying a fresh connection{via}"
            );
        } else if !self.ever_established && self.backoff.failures() == 0 {
            self.set_state(t, "connecting", say(format!("connecting to {url}{via}")));
        } else {
            self.state_name = "reconnecting";
            tracing::info!(
                "connecting to {url}{via} (attempt {})",
                self.backoff.failures() + 1
            );
        }
        self.connecting = Some(Box::pin(async move {
            link::open(&url, &relay, &ctx, &trust, timeout).await
        }));
    }

    fn on_connected(&mut self, t: Instant, r: Result<Link, LinkError>) {
        let link = match r {
            Ok(l) => l,
            Err(e) => {
                if e.is_final() {
                    let msg = format!("cannot connect to {}: {e}", self.settings.url);
                    self.finish_with(match &e {
                        LinkError::Relay(_) => Outcome::Refused(msg),
                        LinkError::Tls(
                            TlsError::PinMismatch { .. }
                            | TlsError::FingerprintChanged { .. }
                            | TlsError::CertificateVerify { .. },
                        ) => Outcome::Untrusted(msg),
                        _ => Outcome::Failed(msg),
                    });
                    return;
                }
                if self.connecting_is_probe && self.tls.is_some() {
                    tracing::info!("probe connection failed: {e}");
                    return;
                }
                self.attempt_failed(t, e.to_string(), Duration::ZERO);
                return;
            }
        };
        if self.tls.is_some() {
            // A probe succeeded while the old link was silent: move over.
            tracing::info!("switching to the fresh connection");
            self.drop_link(t);
        }
        if let Checked::FirstUse { fingerprint, file } = &link.checked {
            say(format!(
                "first contact with {}: its certificate is {fingerprint}; remembered in {} \
                 (a different certificate will be refused)",
                self.settings.url.host_port(),
                file.display()
            ));
        }
        let (rd, wr) = tokio::io::split(link.stream);
        self.rd = Some(rd);
        self.wr = Some(wr);
        self.tls = Some(link.tls);
        self.tls_info = link.info;
        self.link_established = false;
        self.last_rx = t;
        self.out.clear();
        self.out_pos = 0;
        self.plain_in.clear();
        if self.ever_established {
            self.shell.reconnects += 1;
        }
        if self.session.state() == State::Closed {
            self.renew_session(t);
        }
        self.session.reconnect(t);
        // The TLS handshake may have brought more than the handshake.
        self.process_input(t, false);
    }

    /// A connection attempt failed (or a link died before its session was
    /// up): wait, then try again — unless the retries are used up.
    fn attempt_failed(&mut self, t: Instant, why: String, at_least: Duration) {
        let failures = self.backoff.failures() + 1;
        if let Some(max) = self.settings.max_retries {
            if failures > max {
                self.finish_with(Outcome::Failed(format!(
                    "giving up after {failures} failed attempt(s) in a row (--max-retries {max}): {why}"
                )));
                return;
            }
        }
        let delay = self.backoff.next_delay().max(at_least);
        self.retry_at = Some(t + delay);
        self.last_error = Some(why.clone());
        let again = if self.ever_established {
            "reconnecting"
        } else {
            "trying again"
        };
        let line = warn(format!(
            "{why}; {again} in {} (attempt {})",
            fmt_duration(delay),
            failures + 1
        ));
        self.set_state(t, "reconnecting", line);
    }

    /// The link is gone: forget it, keep the session (detached).
    fn drop_link(&mut self, t: Instant) {
        self.rd = None;
        self.wr = None;
        self.tls = None;
        self.tls_info = None;
        self.out.clear();
        self.out_pos = 0;
        self.plain_in.clear();
        self.established_at = None;
        self.session.link_lost(t);
    }

    /// The link broke (reset, end of file, TLS error, keep-alive timeout).
    fn link_down(&mut self, t: Instant, why: String) {
        let had_session = self.link_established;
        self.drop_link(t);
        if self.session.state() == State::Closed || self.outcome.is_some() {
            return;
        }
        if had_session {
            self.lost_at = Some(t);
            let line = warn(format!("link lost: {why}; reconnecting now"));
            self.set_state(t, "reconnecting", line);
            if self.connecting.is_none() {
                self.start_connect(t, false);
            } else {
                // A probe is already on its way: it becomes the reconnection.
                self.connecting_is_probe = false;
            }
        } else if self.connecting.is_none() {
            self.attempt_failed(t, why, Duration::ZERO);
        }
    }

    /// The hub ended the session in a way that allows a new one: keep
    /// the counters, start over.
    fn renew_session(&mut self, t: Instant) {
        let old = std::mem::replace(
            &mut self.session,
            Self::fresh_session(&self.settings, self.tap.vnet(), t),
        );
        add_stats(&mut self.prior, old.stats());
        self.shell.dropped_with_session += old.buffered_frames();
        self.shell.new_sessions += 1;
    }

    fn on_net_changed(&mut self, t: Instant) {
        if self.connecting.is_some() || self.outcome.is_some() {
            return;
        }
        if self.tls.is_none() {
            if self.retry_at.is_some_and(|r| r > t) {
                tracing::info!("network changed: trying again now");
                self.retry_at = Some(t);
            }
        } else if t.duration_since(self.last_rx) >= SILENCE_BEFORE_PROBE {
            self.start_connect(t, true);
        }
    }

    // ------------------------------------------------------------------
    // Moving bytes
    // ------------------------------------------------------------------

    fn on_read(&mut self, t: Instant, r: std::io::Result<usize>) {
        match r {
            Ok(0) => {
                if let Some(tls) = &mut self.tls {
                    tls.feed_eof();
                }
                self.process_input(t, true);
            }
            Ok(n) => {
                self.last_rx = t;
                if let Some(tls) = &mut self.tls {
                    tls.feed(&self.rbuf[..n]);
                }
                self.process_input(t, false);
            }
            Err(e) => self.link_down(t, format!("reading from the hub: {e}")),
        }
    }

    /// Decrypts what arrived, feeds it to the session, writes the frames
    /// it delivers to the TAP (all of them before anything else runs).
    fn process_input(&mut self, t: Instant, eof: bool) {
        let Some(tls) = &mut self.tls else { return };
        let status = match tls.read_plaintext(&mut self.plain_in) {
            Ok(s) => s,
            Err(e) => {
                self.link_down(t, format!("TLS: {e}"));
                return;
            }
        };
        if !self.plain_in.is_empty() {
            // The form of the frames (offload or not) is settled by the
            // handshake, which may arrive in this very input: frames that
            // come with it wait until it is known.
            let settled = self.session.state() != State::Handshaking;
            let form = Form {
                offload: self.session.offload(),
                vnet_tap: self.tap.vnet(),
            };
            let tap = &self.tap;
            let icmp = &mut self.icmp;
            let errors = &mut self.shell.tap_write_errors;
            let early = &mut self.early;
            let r = self.session.handle_input(t, &self.plain_in, |frame| {
                if settled {
                    form.to_tap(tap, icmp, errors, frame);
                } else {
                    early.push(frame.to_vec());
                }
            });
            if !self.early.is_empty() {
                let form = Form {
                    offload: self.session.offload(),
                    vnet_tap: self.tap.vnet(),
                };
                for frame in self.early.drain(..) {
                    form.to_tap(
                        &self.tap,
                        &mut self.icmp,
                        &mut self.shell.tap_write_errors,
                        &frame,
                    );
                }
            }
            match r {
                Ok(used) => {
                    self.plain_in.drain(..used);
                }
                Err(e) => {
                    // The session is closed with a CLOSE queued; the event
                    // loop reports it and flushes.
                    self.plain_in.clear();
                    self.last_error = Some(format!("protocol error: {e}"));
                }
            }
        }
        if status.closed || eof {
            // Let the session's events (a CLOSE, a refusal) speak first.
            self.drain_events(t);
            if self.tls.is_some() {
                let why = if status.closed {
                    "the hub closed the connection"
                } else {
                    "the connection was closed (end of file)"
                };
                self.link_down(t, why.to_owned());
            }
        }
    }

    fn on_wrote(&mut self, t: Instant, r: std::io::Result<usize>) {
        match r {
            Ok(0) => self.link_down(t, "the connection does not take data".into()),
            Ok(n) => {
                self.out_pos += n;
                if self.out_pos >= self.out.len() {
                    self.out.clear();
                    self.out_pos = 0;
                }
            }
            Err(e) => self.link_down(t, format!("writing to the hub: {e}")),
        }
    }

    fn on_tap(&mut self, r: std::io::Result<()>) {
        if let Err(e) = r {
            self.finish_with(Outcome::Failed(format!(
                "TAP device {} failed: {e}",
                self.tap.name()
            )));
            return;
        }
        self.batch.clear();
        match self.tap.recv_batch(&mut self.batch, TAP_BATCH) {
            Ok(_) => {}
            Err(e) => {
                self.finish_with(Outcome::Failed(format!(
                    "reading TAP device {}: {e}",
                    self.tap.name()
                )));
                return;
            }
        }
        if self.batch.is_empty() {
            return;
        }
        tracing::trace!(frames = self.batch.len(), "from the TAP");
        // A TAP with offload and a session without it (a hub that did not
        // grant it): cut super frames here.
        let cut = self.tap.vnet() && !self.session.offload();
        let max = self.session.config().limits.max_frame as usize;
        let (session, shell) = (&mut self.session, &mut self.shell);
        for frame in self.batch.iter() {
            if cut {
                match offload::to_plain(frame, max, &mut self.scratch, |f| {
                    queue_frame(session, shell, f)
                }) {
                    Ok(n) => shell.segments_cut += n as u64,
                    Err(_) => shell.bad_offload += 1,
                }
            } else {
                queue_frame(session, shell, frame);
            }
        }
    }

    /// Whether the session can take a whole TAP batch and still keep
    /// every frame for a resume: on a live link frames in flight are
    /// bounded by the retransmit buffer; when it is full the TAP queue
    /// fills instead (and the kernel drops, as a NIC would), so nothing
    /// sent is ever evicted and a link loss loses nothing.
    fn room_for_a_batch(&self) -> bool {
        let c = self.session.config();
        let frame = if self.tap.vnet() {
            offload::MAX_VNET_FRAME as usize
        } else {
            crate::tap::MAX_FRAME
        } + 4;
        let batch_bytes = (TAP_BATCH * frame).min(crate::tap::BATCH_BYTES + frame);
        self.session.buffered_frames() as usize + TAP_BATCH <= c.max_buffered_frames
            && self.session.buffered_bytes() + batch_bytes <= c.max_buffered_bytes
    }

    /// Queues a frame the client made itself (a plain Ethernet frame) in
    /// the session's form.
    fn send_own_frame(&mut self, frame: &[u8]) {
        if self.session.offload() {
            let framed = offload::with_plain_header(&mut self.scratch, frame);
            queue_frame(&mut self.session, &mut self.shell, framed);
        } else {
            queue_frame(&mut self.session, &mut self.shell, frame);
        }
    }

    /// Hands everything the session has to send to TLS, as long as the
    /// socket keeps up.
    fn flush(&mut self, t: Instant) {
        let Some(tls) = &mut self.tls else { return };
        loop {
            if self.out.len() - self.out_pos >= HIGH_WATER {
                break;
            }
            self.plain_out.clear();
            if self
                .session
                .poll_transmit(t, &mut self.plain_out, TRANSMIT_CHUNK)
                == 0
            {
                break;
            }
            if let Err(e) = tls.write_plaintext(&self.plain_out) {
                self.link_down(t, format!("TLS: {e}"));
                return;
            }
            if self.out_pos > 0 && self.out_pos == self.out.len() {
                self.out.clear();
                self.out_pos = 0;
            }
            tls.take_ciphertext(&mut self.out);
        }
    }

    fn on_timer(&mut self, t: Instant) {
        if self.tls.is_some() {
            self.session.handle_timeout(t);
        }
        if self.retry_at.is_some_and(|r| r <= t) && self.connecting.is_none() {
            self.start_connect(t, false);
        }
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
        self.session
            .token()
            .map(|t| t.short())
            .unwrap_or_else(|| "-".into())
    }

    fn on_event(&mut self, t: Instant, ev: Event) {
        match ev {
            Event::Established {
                resumed,
                resent,
                lost,
            } => {
                self.link_established = true;
                self.established_at = Some(t);
                self.backoff.reset();
                self.retry_at = None;
                self.rtt_reported = false;
                self.pongs_at_connect = self.session.stats().pongs_received;
                let tls = self
                    .tls_info
                    .as_ref()
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "TLS".into());
                let line = if resumed {
                    let outage = self
                        .lost_at
                        .take()
                        .map(|l| format!(" after {}", fmt_duration(t - l)))
                        .unwrap_or_default();
                    say(format!(
                        "resumed session {}{outage}: {resent} frame(s) re-sent, {lost} lost ({tls})",
                        self.short_id()
                    ))
                } else {
                    self.lost_at = None;
                    let new = if self.ever_established {
                        " (a new session)"
                    } else {
                        ""
                    };
                    let offload = match (self.tap.vnet(), self.session.offload()) {
                        (true, true) => "offload on",
                        (true, false) => "offload off (the hub did not grant it)",
                        (false, _) => "offload off",
                    };
                    say(format!(
                        "connected to {} ({}): {tls}, session {}{new}, {offload}",
                        self.settings.url,
                        self.relay_label(),
                        self.short_id()
                    ))
                };
                self.ever_established = true;
                self.set_state(t, "connected", line);
            }
            Event::SessionExpired { unconfirmed } => {
                self.shell.new_sessions += 1;
                let line = say(format!(
                    "new session: the hub no longer knows the old one (it restarted, or the \
                     grace period passed); {unconfirmed} frame(s) sent before may not have arrived"
                ));
                self.set_state(t, "reconnecting", line);
                if self.session.state() == State::Detached {
                    // The hub closes this connection after its 410.
                    self.drop_link(t);
                    if self.connecting.is_none() {
                        self.start_connect(t, false);
                    }
                }
            }
            Event::LinkDead => {
                let why = format!(
                    "nothing received for {} (keep-alive timeout)",
                    fmt_duration(self.session.config().timeout)
                );
                if self.link_established {
                    self.link_down(t, why);
                } else {
                    // The upgrade never got an answer.
                    self.drop_link(t);
                    self.attempt_failed(
                        t,
                        format!("the hub did not answer: {why}"),
                        Duration::ZERO,
                    );
                }
            }
            Event::Refused(r) => {
                self.drop_link(t);
                if r.is_retryable() {
                    let wait = Duration::from_secs(r.retry_after.unwrap_or(0));
                    self.attempt_failed(t, format!("the hub refused the session: {r}"), wait);
                } else {
                    let advice = match r.status.0 {
                        401 | 403 if self.settings.client_cert.is_some() => {
                            " (not retrying; check --cert and --key, the hub's client CA \
                             and which user the certificate is bound to)"
                        }
                        401 | 403 => {
                            " (not retrying: repeated attempts could lock the account; \
                             check --user and --password-file)"
                        }
                        404 => " (check the virtual hub name in the URL)",
                        426 => " (this vnic and the hub speak different protocol versions)",
                        _ => "",
                    };
                    self.finish_with(Outcome::Refused(format!(
                        "the hub refused the session: {r}{advice}"
                    )));
                }
            }
            Event::Closed {
                code,
                reason,
                by_peer,
            } => {
                if !by_peer {
                    if code == CloseCode::ProtocolError {
                        self.finish_with(Outcome::Failed(format!(
                            "closed: the hub broke the protocol: {reason}"
                        )));
                    }
                    return;
                }
                let again = matches!(
                    code,
                    CloseCode::Shutdown
                        | CloseCode::Kicked
                        | CloseCode::Timeout
                        | CloseCode::LimitExceeded
                );
                let what = format!(
                    "the hub closed the session ({}): {reason}",
                    close_name(code)
                );
                if again {
                    self.drop_link(t);
                    self.renew_session(t);
                    self.lost_at = Some(t);
                    let line = warn(format!("{what}; starting a new session"));
                    self.set_state(t, "reconnecting", line);
                    if code == CloseCode::LimitExceeded {
                        self.attempt_failed(t, what, Duration::from_secs(5));
                    } else if self.connecting.is_none() {
                        self.start_connect(t, false);
                    }
                } else {
                    self.finish_with(Outcome::Failed(what));
                }
            }
        }
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
            if had_link {
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

    fn set_state(&mut self, t: Instant, name: &'static str, line: String) {
        self.state_name = name;
        self.detail = line;
        self.write_status(t);
    }

    fn status(&self, t: Instant) -> Status {
        let mut s = self.prior;
        add_stats(&mut s, self.session.stats());
        Status {
            pid: std::process::id(),
            tap: self.tap.name().to_owned(),
            hub: self.settings.url.to_string(),
            relay: self.relay_label(),
            state: self.state_name.to_owned(),
            detail: self.detail.clone(),
            session: self.session.token().map(|t| t.short()),
            tls: self.tls_info.as_ref().map(|i| i.to_string()),
            rtt_ms: self.session.rtt().map(|r| r.as_secs_f64() * 1000.0),
            started_at: unix_secs(self.started_at),
            updated_at: unix_secs(SystemTime::now()),
            connected_for_s: self.established_at.map(|e| (t - e).as_secs()),
            uptime_s: (t - self.started).as_secs(),
            tx_frames: s.tx_frames,
            tx_bytes: s.tx_bytes,
            rx_frames: s.rx_frames,
            rx_bytes: s.rx_bytes,
            resent: s.resent,
            lost_on_resume: s.lost_on_resume,
            rx_gaps: s.rx_gaps,
            tail_drops: s.tail_drops,
            evicted: s.evicted,
            unconfirmed: s.unconfirmed + self.shell.dropped_with_session,
            rx_duplicates: s.rx_duplicates,
            tap_write_errors: self.shell.tap_write_errors,
            oversize: self.shell.oversize,
            offload: self.session.offload(),
            bad_offload: self.shell.bad_offload,
            segments_cut: self.shell.segments_cut,
            reconnects: self.shell.reconnects,
            resumes: s.resumes,
            new_sessions: self.shell.new_sessions,
            link_deaths: s.link_deaths,
            icmp: self.icmp.as_ref().map(|k| k.stats),
        }
    }

    fn write_status(&mut self, t: Instant) {
        self.status_due = t + Duration::from_secs(1);
        let path: &PathBuf = &self.settings.status_file;
        if let Err(e) = self.status(t).write(path) {
            tracing::debug!("status file {}: {e}", path.display());
        }
    }
}

fn close_name(code: CloseCode) -> String {
    match code {
        CloseCode::Normal => "normal".into(),
        CloseCode::ProtocolError => "protocol error".into(),
        CloseCode::Shutdown => "hub shutting down".into(),
        CloseCode::Kicked => "kicked by an administrator".into(),
        CloseCode::Timeout => "timeout".into(),
        CloseCode::Replaced => "replaced by another connection of this session".into(),
        CloseCode::AuthRevoked => "authorization revoked".into(),
        CloseCode::LimitExceeded => "limit exceeded".into(),
        CloseCode::Other(n) => format!("code {n}"),
    }
}
