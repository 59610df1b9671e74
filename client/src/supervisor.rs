//! When to connect, when to wait, when to start a new session and when to
//! give up: the client's reconnect decisions, with no socket, no TLS, no
//! TAP and no clock.
//!
//! ```text
//!   bridge ──handle_connected / handle_connect_error / handle_established──►
//!          ──handle_link_down / handle_keepalive_dead / handle_refused ─────►  Supervisor
//!          ──handle_session_expired / handle_closed / handle_net_changed ───►
//!          ──handle_timeout(now) ───────────────────────────────────────────►
//!   bridge ◄──poll_action(): Connect(hub) | DropLink | NewSession | MoveSession(hub)
//!                            | Report | Wait(until) | GiveUp(outcome)
//!   bridge ◄──poll_timeout(): when to call handle_timeout
//! ```
//!
//! The shape is quinn-proto's: inputs are `handle_*` with the time as a
//! parameter, outputs are drained with `poll_*`. The bridge
//! (`crate::bridge`) owns the sockets, TLS, the TAP and the `Session`, and
//! does what the actions say, in order, right after each `handle_*` call.
//! What the supervisor decides:
//!
//! - a lost link (reset, end of file, keep-alive timeout) is retried at
//!   once, then with exponential backoff and jitter ([`Backoff`]);
//! - a failed attempt (no TCP, a TLS error, a retryable refusal) waits the
//!   backoff delay, or the hub's `Retry-After` if longer, unless
//!   `--max-retries` failures in a row are used up;
//! - a hub that forgot the session (410) gets a new session at once; a hub
//!   that ended it with a CLOSE that allows another (shutdown, kicked,
//!   timeout, limit) gets a new session too;
//! - a final answer — 401/403, an unknown hub (404), another protocol
//!   version (426), a certificate that changed or does not verify, a relay
//!   refusing our credentials — ends the client with [`Outcome`], never
//!   retried (retries could lock an account);
//! - a SoftEther server ([`Config::resumable`] false) has no resume: a
//!   lost link gets a new session at once, and its refusals are mapped
//!   as vhub's are (wrong password → final, unknown hub → final, busy →
//!   retried later) by [`Supervisor::handle_softether_failed`];
//! - with several hubs ([`Config::hubs`], in the order to try them): a
//!   lost link is first retried on the hub of the session (a resume);
//!   an attempt that fails (no TCP, no TLS, no answer, a retryable
//!   refusal) moves on to the next hub at once, without backoff, and the
//!   backoff only starts when every hub of the round failed; the next
//!   round starts again with the session's hub. A link to another hub
//!   than the session's asks for a new session there
//!   ([`Action::MoveSession`]) instead of a resume it could only refuse;
//! - failback ([`Config::failback`]): on a hub other than the first, the
//!   first is tried again now and then, next to the live link; when it
//!   answers, the client moves back to it (a new session). Without it a
//!   client that failed over would stay on the second hub while clients
//!   that start later join the first: two halves of one LAN that cannot
//!   see each other.
//!
//! The lines it asks the bridge to print ([`Action::Report`],
//! [`Action::Wait`], [`Action::GiveUp`]) are the user's view of these
//! decisions; their text is part of the interface (tests and people read it).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use certs::tls::TlsError;
use switch_core::admission::RefuseCode;
use switch_core::softether::{ClientError, ErrorCode};
use switch_core::wire::http::Refusal;
use switch_core::wire::CloseCode;

use crate::backoff::Backoff;
use crate::link::LinkError;
use crate::units::fmt_duration;

/// A network change while the link has been silent this long makes the
/// client try a fresh connection next to the old one.
pub const SILENCE_BEFORE_PROBE: Duration = Duration::from_millis(700);
/// The wait after a CLOSE "limit exceeded" before a new session.
const LIMIT_WAIT: Duration = Duration::from_secs(5);

/// How `vnic connect` ended; `main` turns it into an exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A connection attempt the bridge is asked to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The hub to dial: an index into [`Config::hubs`].
    pub hub: usize,
    /// Tried next to a live link (after a network change while the link
    /// is silent, or a failback to the first hub); its failure is no news.
    pub probe: bool,
    /// 1 for the first try after a success (or ever), then 2, 3, …
    pub number: u32,
    /// The very first attempt of this client (announced to the user;
    /// later ones only go to the log).
    pub first: bool,
}

/// Whether a line is news or a problem (`report::say` or `report::warn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Say,
    Warn,
}

/// What the bridge is asked to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a new connection (TCP or relay, then TLS) now.
    Connect(Attempt),
    /// Forget the current link, if any; the session stays, detached.
    DropLink,
    /// Replace the session by a fresh one (the hub ended the old one):
    /// the next connection opens a new session.
    NewSession,
    /// The link that just came up goes to another hub than the session's
    /// (an index into [`Config::hubs`]): bind the session to that hub and
    /// ask it for a new session (frames never sent are kept).
    MoveSession { hub: usize },
    /// Print `line` and show `state` in the status.
    Report {
        state: &'static str,
        level: Level,
        line: String,
    },
    /// An attempt failed: print `line` (a warning), show "reconnecting";
    /// the next attempt is due at `until` ([`Supervisor::poll_timeout`]).
    Wait { until: Instant, line: String },
    /// Stop the client with this outcome.
    GiveUp(Outcome),
}

/// The state of the current link, as far as reconnecting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    /// No link: an attempt is on its way or due.
    Down,
    /// TLS is up; the session's handshake is not done.
    Handshaking,
    /// The session was established on this link.
    Established,
}

/// What the supervisor is told about the client it supervises.
#[derive(Debug, Clone)]
pub struct Config {
    /// The hubs' URLs (for messages), in the order to try them; at least
    /// one. The first is the one to be on (failback returns to it).
    pub hubs: Vec<String>,
    /// Failed rounds (one attempt per hub) in a row before giving up;
    /// `None`: never.
    pub max_retries: Option<u32>,
    /// A client certificate is used (the advice after a 401 names it).
    pub with_cert: bool,
    /// Sessions can be resumed on a new link (`vhub/1`); a SoftEther
    /// server's cannot: a lost link means a new session.
    pub resumable: bool,
    /// On another hub than the first, try the first again after this
    /// long (and as often); `None`: stay where it is.
    pub failback: Option<Duration>,
}

/// What [`Supervisor::handle_established`] tells the bridge about the
/// session just established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// How long the client had no session: from the loss of the last one
    /// (if one was lost) to now.
    pub outage: Option<Duration>,
    /// The session is on another hub than the last one: the hub it left.
    pub moved_from: Option<usize>,
}

/// The reconnect decisions of one client (see the module doc).
#[derive(Debug)]
pub struct Supervisor {
    config: Config,
    backoff: Backoff,
    link: LinkState,
    /// The attempt in flight, if any.
    attempt: Option<Attempt>,
    /// When the next attempt is due (none in flight).
    retry_at: Option<Instant>,
    ever_established: bool,
    /// When the established link was lost (for the outage of a resume).
    lost_at: Option<Instant>,
    /// The hub the next attempt (not a probe) goes to.
    current: usize,
    /// The hub the session is bound to (its token, if it has one, is
    /// that hub's).
    session_hub: usize,
    /// The hub of the last session established, if any.
    last_hub: Option<usize>,
    /// Hubs that failed in this round before `current`.
    tried: usize,
    /// When to try the first hub again (on another one, link up).
    failback_at: Option<Instant>,
    /// Gave up: every later input is ignored.
    done: bool,
    actions: VecDeque<Action>,
}

impl Supervisor {
    /// A supervisor whose first action is to connect to the first hub.
    pub fn new(config: Config, backoff: Backoff) -> Self {
        assert!(!config.hubs.is_empty(), "at least one hub");
        let mut s = Self {
            config,
            backoff,
            link: LinkState::Down,
            attempt: None,
            retry_at: None,
            ever_established: false,
            lost_at: None,
            current: 0,
            session_hub: 0,
            last_hub: None,
            tried: 0,
            failback_at: None,
            done: false,
            actions: VecDeque::new(),
        };
        s.connect(false);
        s
    }

    // ------------------------------------------------------------------
    // Outputs
    // ------------------------------------------------------------------

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) has something to do
    /// (no attempt in flight): a retry that is due, or a failback.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.done, self.attempt) {
            (false, None) => match (self.retry_at, self.failback_due()) {
                (Some(r), Some(f)) => Some(r.min(f)),
                (r, f) => r.or(f),
            },
            _ => None,
        }
    }

    /// The failback time, while it applies (a live link on another hub).
    fn failback_due(&self) -> Option<Instant> {
        self.failback_at
            .filter(|_| self.link == LinkState::Established)
    }

    /// The hub the session is bound to (an index into [`Config::hubs`]).
    #[cfg(test)]
    pub fn session_hub(&self) -> usize {
        self.session_hub
    }

    /// A session was established at least once (a later one is "a new
    /// session", and every later connection counts as a reconnect).
    pub fn ever_established(&self) -> bool {
        self.ever_established
    }

    /// Gave up (a [`Action::GiveUp`] was queued).
    #[cfg(test)]
    pub fn is_done(&self) -> bool {
        self.done
    }

    // ------------------------------------------------------------------
    // Inputs
    // ------------------------------------------------------------------

    /// Timers: a retry that is due starts; so does a failback probe.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.done || self.attempt.is_some() {
            return;
        }
        if self.retry_at.is_some_and(|r| r <= now) {
            self.connect(false);
        } else if self.failback_due().is_some_and(|f| f <= now) {
            self.failback_at = None;
            tracing::info!(
                "on {}: trying {} again (failback)",
                self.config.hubs[self.session_hub],
                self.config.hubs[0]
            );
            self.connect_to(0, true);
        }
    }

    /// The attempt in flight produced a link (TLS done, certificate
    /// trusted); the session's handshake starts on it. A link that was
    /// still there (a probe won) has been replaced. A link to another
    /// hub than the session's moves the session there.
    pub fn handle_connected(&mut self, _now: Instant) {
        let attempt = self.attempt.take();
        self.link = LinkState::Handshaking;
        self.failback_at = None;
        let Some(a) = attempt else { return };
        self.current = a.hub;
        if a.hub == self.session_hub {
            return;
        }
        let from = self.session_hub;
        self.session_hub = a.hub;
        self.actions.push_back(Action::MoveSession { hub: a.hub });
        if a.probe && !self.done {
            self.report(
                "reconnecting",
                Level::Say,
                format!(
                    "{} answers again: moving back to it from {} (a new session)",
                    self.config.hubs[a.hub], self.config.hubs[from]
                ),
            );
        }
    }

    /// The attempt in flight failed before TLS was up.
    pub fn handle_connect_error(&mut self, now: Instant, e: &LinkError) {
        let attempt = self.attempt.take();
        if self.done {
            return;
        }
        if e.is_final() {
            let hub = attempt.map_or(self.current, |a| a.hub);
            let msg = format!("cannot connect to {}: {e}", self.config.hubs[hub]);
            self.give_up(match e {
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
        if let Some(a) = attempt.filter(|a| a.probe && self.link != LinkState::Down) {
            tracing::info!(
                "probe connection to {} failed: {e}",
                self.config.hubs[a.hub]
            );
            if a.hub != self.session_hub {
                self.schedule_failback(now);
            }
            return;
        }
        self.handle_attempt_failed(now, e.to_string(), Duration::ZERO);
    }

    /// The session is established on the current link (new or resumed).
    pub fn handle_established(&mut self, now: Instant, _resumed: bool) -> Settled {
        self.link = LinkState::Established;
        self.backoff.reset();
        self.retry_at = None;
        self.tried = 0;
        self.ever_established = true;
        let moved_from = self.last_hub.filter(|h| *h != self.session_hub);
        self.last_hub = Some(self.session_hub);
        self.schedule_failback(now);
        Settled {
            outage: self.lost_at.take().map(|l| now - l),
            moved_from,
        }
    }

    /// On another hub than the first with failback on: try the first
    /// again after the interval.
    fn schedule_failback(&mut self, now: Instant) {
        self.failback_at = match self.config.failback {
            Some(d) if self.session_hub != 0 => Some(now + d),
            _ => None,
        };
    }

    /// The link broke (reset, end of file, a TLS or write error). The
    /// bridge has already let go of it.
    pub fn handle_link_down(&mut self, now: Instant, why: String) {
        let had_session = self.link == LinkState::Established;
        self.link = LinkState::Down;
        if self.done {
            return;
        }
        if had_session {
            self.lost_at = Some(now);
            self.failback_at = None;
            let next = if self.config.resumable {
                "reconnecting now"
            } else {
                self.actions.push_back(Action::NewSession);
                "SoftEther: no resume, new session; reconnecting now"
            };
            self.report(
                "reconnecting",
                Level::Warn,
                format!("link lost: {why}; {next}"),
            );
            match &mut self.attempt {
                None => self.connect(false),
                // A probe is already on its way: it becomes the reconnection.
                Some(a) => {
                    a.probe = false;
                    self.current = a.hub;
                }
            }
        } else if self.attempt.is_none() {
            self.handle_attempt_failed(now, why, Duration::ZERO);
        }
    }

    /// The session saw nothing from the hub for `timeout`.
    pub fn handle_keepalive_dead(&mut self, now: Instant, timeout: Duration) {
        let why = format!(
            "nothing received for {} (keep-alive timeout)",
            fmt_duration(timeout)
        );
        self.actions.push_back(Action::DropLink);
        if self.link == LinkState::Established {
            self.handle_link_down(now, why);
        } else {
            // The upgrade never got an answer.
            self.link = LinkState::Down;
            self.handle_attempt_failed(
                now,
                format!("the hub did not answer: {why}"),
                Duration::ZERO,
            );
        }
    }

    /// An attempt failed (or a link died before its session was up): the
    /// next hub of the round is tried at once; when every hub of the round
    /// failed, wait at least `retry_after`, then start the next round with
    /// the session's hub — unless the retries are used up.
    pub fn handle_attempt_failed(&mut self, now: Instant, why: String, retry_after: Duration) {
        if self.done {
            return;
        }
        let n = self.config.hubs.len();
        if self.tried + 1 < n {
            self.tried += 1;
            self.current = (self.current + 1) % n;
            let state = if self.ever_established {
                "reconnecting"
            } else {
                "connecting"
            };
            self.report(
                state,
                Level::Warn,
                format!(
                    "{why}; trying {} now (hub {} of {n})",
                    self.config.hubs[self.current],
                    self.current + 1
                ),
            );
            self.connect(false);
            return;
        }
        // A round is over: every hub failed. The next starts where a
        // resume is possible.
        self.tried = 0;
        self.current = self.session_hub;
        let why = if n > 1 {
            format!("{why}; none of the {n} hubs answered")
        } else {
            why
        };
        let failures = self.backoff.failures() + 1;
        if let Some(max) = self.config.max_retries {
            if failures > max {
                self.give_up(Outcome::Failed(format!(
                    "giving up after {failures} failed attempt(s) in a row (--max-retries {max}): {why}"
                )));
                return;
            }
        }
        let delay = self.backoff.next_delay().max(retry_after);
        let until = now + delay;
        self.retry_at = Some(until);
        let again = if self.ever_established {
            "reconnecting"
        } else {
            "trying again"
        };
        let line = format!(
            "{why}; {again} in {} (attempt {})",
            fmt_duration(delay),
            failures + 1
        );
        self.actions.push_back(Action::Wait { until, line });
    }

    /// The hub answered the upgrade with something other than 101 (a 410
    /// for a known token is [`handle_session_expired`](Self::handle_session_expired)).
    pub fn handle_refused(&mut self, now: Instant, r: &Refusal) {
        self.actions.push_back(Action::DropLink);
        self.link = LinkState::Down;
        if r.is_retryable() {
            let wait = Duration::from_secs(r.retry_after.unwrap_or(0));
            self.handle_attempt_failed(now, format!("the hub refused the session: {r}"), wait);
        } else {
            let advice = refusal_advice(r, self.config.with_cert);
            self.give_up(Outcome::Refused(format!(
                "the hub refused the session: {r}{advice}"
            )));
        }
    }

    /// A SoftEther login failed on the current link: refused by the
    /// server (its error code decides, as a vhub refusal's status does),
    /// not a SoftEther server, or no answer in time.
    pub fn handle_softether_failed(&mut self, now: Instant, e: &ClientError) {
        self.actions.push_back(Action::DropLink);
        self.link = LinkState::Down;
        let hub = &self.config.hubs[self.current];
        let what = format!("{hub} refused the login: {e}");
        let code = match e {
            ClientError::Refused(code) => *code,
            ClientError::TimedOut(_) | ClientError::Closed => {
                self.handle_attempt_failed(now, format!("{hub}: {e}"), Duration::ZERO);
                return;
            }
            // Not SoftEther, or a server this client cannot follow.
            _ => {
                self.give_up(Outcome::Failed(format!("{hub}: {e}")));
                return;
            }
        };
        const ACCOUNT: &str = " (not retrying: repeated attempts could lock the account; \
                               check --user and --password-file)";
        match code {
            ErrorCode::AuthFailed
            | ErrorCode::AuthTypeNotSupported
            | ErrorCode::AccessDenied
            | ErrorCode::NullPasswordLocalOnly => {
                self.give_up(Outcome::Refused(format!("{what}{ACCOUNT}")))
            }
            ErrorCode::HubNotFound => self.give_up(Outcome::Refused(format!(
                "{what} (check the virtual hub name in the URL)"
            ))),
            ErrorCode::IpAddressDenied | ErrorCode::BrandedCToS | ErrorCode::BrandedCFromS => {
                self.give_up(Outcome::Refused(what))
            }
            // Busy, at a limit, stopping, or anything else: later, as the
            // real client does (at least its wait), with backoff.
            code => {
                let wait = code.retry_after().unwrap_or(Duration::ZERO);
                self.handle_attempt_failed(now, what, wait);
            }
        }
    }

    /// The hub no longer knows our session (410): the session has already
    /// started over; connect at once. `detached`: the session is waiting
    /// for a new link (the hub closes this one after its 410).
    pub fn handle_session_expired(&mut self, _now: Instant, unconfirmed: u64, detached: bool) {
        if self.done {
            return;
        }
        self.report(
            "reconnecting",
            Level::Say,
            format!(
                "new session: the hub no longer knows the old one (it restarted, or the \
                 grace period passed); {unconfirmed} frame(s) sent before may not have arrived"
            ),
        );
        if detached {
            self.actions.push_back(Action::DropLink);
            self.link = LinkState::Down;
            if self.attempt.is_none() {
                // The hub answered: it is up, and where the order put us.
                self.connect(false);
            }
        }
    }

    /// The session was closed: by the hub (a CLOSE) or by ourselves
    /// (`by_peer == false`: a protocol error of the hub, or stopping).
    pub fn handle_closed(&mut self, now: Instant, code: CloseCode, reason: &str, by_peer: bool) {
        if self.done {
            return;
        }
        if !by_peer {
            if code == CloseCode::ProtocolError {
                self.give_up(Outcome::Failed(format!(
                    "closed: the hub broke the protocol: {reason}"
                )));
            }
            return;
        }
        let again = matches!(
            code,
            CloseCode::Shutdown | CloseCode::Kicked | CloseCode::Timeout | CloseCode::LimitExceeded
        );
        let what = format!(
            "the hub closed the session ({}): {reason}",
            close_name(code)
        );
        if !again {
            self.give_up(Outcome::Failed(what));
            return;
        }
        self.actions.push_back(Action::DropLink);
        self.actions.push_back(Action::NewSession);
        self.link = LinkState::Down;
        self.failback_at = None;
        self.lost_at = Some(now);
        self.report(
            "reconnecting",
            Level::Warn,
            format!("{what}; starting a new session"),
        );
        if code == CloseCode::LimitExceeded {
            self.handle_attempt_failed(now, what, LIMIT_WAIT);
        } else if self.attempt.is_none() {
            self.connect(false);
        }
    }

    /// The host's network changed (an address or route came or went).
    /// `last_rx`: when the current link last received anything.
    pub fn handle_net_changed(&mut self, now: Instant, last_rx: Instant) {
        if self.attempt.is_some() || self.done {
            return;
        }
        if self.link == LinkState::Down {
            if self.retry_at.is_some_and(|r| r > now) {
                tracing::info!("network changed: trying again now");
                self.retry_at = Some(now);
            }
        } else if now.saturating_duration_since(last_rx) >= SILENCE_BEFORE_PROBE {
            self.connect(true);
        }
    }

    // ------------------------------------------------------------------

    /// An attempt on the current hub.
    fn connect(&mut self, probe: bool) {
        self.connect_to(self.current, probe);
    }

    fn connect_to(&mut self, hub: usize, probe: bool) {
        if !probe {
            self.retry_at = None;
        }
        let failures = self.backoff.failures();
        let a = Attempt {
            hub,
            probe,
            number: failures + 1,
            first: !probe && !self.ever_established && failures == 0 && self.tried == 0,
        };
        self.attempt = Some(a);
        self.actions.push_back(Action::Connect(a));
    }

    fn report(&mut self, state: &'static str, level: Level, line: String) {
        self.actions
            .push_back(Action::Report { state, level, line });
    }

    fn give_up(&mut self, o: Outcome) {
        if self.done {
            return;
        }
        self.done = true;
        self.retry_at = None;
        self.actions.push_back(Action::GiveUp(o));
    }
}

/// What a person should check after a final refusal: by the hub's typed
/// code when it sent one, else by the HTTP status (a proxy, an older hub).
fn refusal_advice(r: &Refusal, with_cert: bool) -> &'static str {
    const CERT: &str = " (not retrying; check --cert and --key, the hub's client CA \
                        and which user the certificate is bound to)";
    const ACCOUNT: &str = " (not retrying: repeated attempts could lock the account; \
                           check --user and --password-file)";
    const HUB: &str = " (check the virtual hub name in the URL)";
    match r.refuse().map(|x| x.code) {
        Some(RefuseCode::CertNotBound | RefuseCode::CertAmbiguous | RefuseCode::CertRefused) => {
            CERT
        }
        Some(RefuseCode::AuthFailed | RefuseCode::AuthRequired) if with_cert => CERT,
        Some(RefuseCode::AuthFailed | RefuseCode::AuthRequired) => ACCOUNT,
        Some(RefuseCode::UnknownHub) => HUB,
        _ => match r.status.0 {
            401 | 403 if with_cert => CERT,
            401 | 403 => ACCOUNT,
            404 => HUB,
            426 => " (this vnic and the hub speak different protocol versions)",
            _ => "",
        },
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

#[cfg(test)]
mod tests;
