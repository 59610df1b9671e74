//! The reconnect decisions on a virtual clock: no socket, no root.

use super::*;
use crate::backoff::FIRST_DELAY;
use crate::relay::RelayError;
use switch_core::wire::http::Status;

/// One real instant as the origin; everything after it is virtual.
#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

fn config(max_retries: Option<u32>) -> Config {
    Config {
        hubs: vec!["https://hub.example:443/DEFAULT".into()],
        max_retries,
        with_cert: false,
        resumable: true,
        failback: None,
    }
}

/// A supervisor with a seeded backoff (cap 30 s), its first `Connect`
/// already taken.
fn supervisor(max_retries: Option<u32>, seed: u64) -> Supervisor {
    let backoff = Backoff::with_rng(Duration::from_secs(30), fastrand::Rng::with_seed(seed));
    let mut s = Supervisor::new(config(max_retries), backoff);
    assert_eq!(
        s.poll_action(),
        Some(Action::Connect(Attempt {
            hub: 0,
            probe: false,
            number: 1,
            first: true
        }))
    );
    assert_eq!(s.poll_action(), None);
    s
}

fn actions(s: &mut Supervisor) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

/// Connected and established at `t`.
fn establish(s: &mut Supervisor, t: Instant) {
    s.handle_connected(t);
    assert_eq!(
        s.handle_established(t, false),
        Settled {
            outage: None,
            moved_from: None
        }
    );
    assert_eq!(actions(s), []);
}

fn refusal(status: u16, code: &str, retry_after: Option<u64>) -> Refusal {
    Refusal {
        status: Status(status),
        code: code.into(),
        reason: String::new(),
        retry_after,
    }
}

fn refused_tcp() -> LinkError {
    LinkError::Io {
        op: "connecting",
        source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
    }
}

/// The single `Wait` among `acts`.
fn wait_of(acts: &[Action]) -> (Instant, String) {
    let waits: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Wait { until, line } => Some((*until, line.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(waits.len(), 1, "{acts:?}");
    waits[0].clone()
}

#[test]
fn a_retryable_refusal_waits_retry_after_then_connects() {
    let t = t0();
    let mut s = supervisor(None, 1);
    s.handle_connected(t);
    s.handle_refused(t, &refusal(503, "hub-full", Some(7)));
    let acts = actions(&mut s);
    assert_eq!(acts[0], Action::DropLink);
    let (until, line) = wait_of(&acts);
    // Retry-After (7 s) is longer than the first backoff delay.
    assert_eq!(until, t + Duration::from_secs(7));
    assert!(
        line.starts_with("the hub refused the session: 503"),
        "{line}"
    );
    assert!(
        line.ends_with("; trying again in 7.0 s (attempt 2)"),
        "{line}"
    );
    assert_eq!(s.poll_timeout(), Some(until));
    // Nothing before it is due.
    s.handle_timeout(t + Duration::from_millis(6_999));
    assert_eq!(actions(&mut s), []);
    s.handle_timeout(until);
    assert_eq!(
        actions(&mut s),
        [Action::Connect(Attempt {
            hub: 0,
            probe: false,
            number: 2,
            first: false
        })]
    );
    assert_eq!(s.poll_timeout(), None, "an attempt is in flight");
}

#[test]
fn a_401_gives_up_at_once_with_the_advice() {
    let t = t0();
    let mut s = supervisor(None, 1);
    s.handle_connected(t);
    s.handle_refused(t, &refusal(401, "auth-failed", None));
    let acts = actions(&mut s);
    let [Action::DropLink, Action::GiveUp(o)] = &acts[..] else {
        panic!("{acts:?}")
    };
    let Outcome::Refused(msg) = o else {
        panic!("{o:?}")
    };
    assert!(msg.starts_with("the hub refused the session: 401"), "{msg}");
    assert!(msg.contains("check --user and --password-file"), "{msg}");
    assert_eq!(o.exit_code(), 3);
    // Never retried: no timer, and nothing later brings it back.
    assert!(s.is_done());
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t + Duration::from_secs(3600));
    s.handle_link_down(t, "reset".into());
    s.handle_net_changed(t, t);
    assert_eq!(actions(&mut s), []);
}

#[test]
fn final_answers_are_never_retried() {
    let t = t0();
    // 404 and 426 by status; a client certificate changes the advice.
    for (status, code, with_cert, advice) in [
        (404, "unknown-hub", false, "hub name"),
        (426, "", false, "versions"),
        (401, "", true, "--cert"),
    ] {
        let mut s = supervisor(None, 1);
        s.config.with_cert = with_cert;
        s.handle_connected(t);
        s.handle_refused(t, &refusal(status, code, Some(1)));
        let acts = actions(&mut s);
        assert!(
            matches!(&acts[..], [Action::DropLink, Action::GiveUp(Outcome::Refused(m))] if m.contains(advice)),
            "{status}: {acts:?}"
        );
    }
    // A certificate that changed: untrusted, exit 4.
    let fp = certs::Fingerprint([7; 32]);
    let mut s = supervisor(None, 1);
    s.handle_connect_error(
        t,
        &LinkError::Tls(TlsError::FingerprintChanged {
            host_port: "hub.example:443".into(),
            path: "/tmp/known_hubs".into(),
            stored: fp,
            presented: certs::Fingerprint([8; 32]),
        }),
    );
    let acts = actions(&mut s);
    assert!(
        matches!(&acts[..], [Action::GiveUp(o @ Outcome::Untrusted(m))]
            if m.starts_with("cannot connect to https://hub.example:443/DEFAULT: ") && o.exit_code() == 4),
        "{acts:?}"
    );
    // A relay refusing our credentials: refused, exit 3.
    let mut s = supervisor(None, 1);
    s.handle_connect_error(
        t,
        &LinkError::Relay(RelayError::SocksAuthFailed {
            proxy: "SOCKS5 proxy 10.0.0.1:1080".into(),
            user: "me".into(),
        }),
    );
    let acts = actions(&mut s);
    assert!(
        matches!(&acts[..], [Action::GiveUp(Outcome::Refused(m))] if m.contains("authentication failed")),
        "{acts:?}"
    );
}

/// Fails every attempt from the one in flight, `n` times; returns the
/// delays waited.
fn fail_attempts(s: &mut Supervisor, t: &mut Instant, n: usize) -> Vec<Duration> {
    let mut delays = Vec::new();
    for _ in 0..n {
        s.handle_connect_error(*t, &refused_tcp());
        let (until, line) = wait_of(&actions(s));
        assert!(line.contains("; reconnecting in "), "{line}");
        delays.push(until - *t);
        *t = until;
        s.handle_timeout(*t);
        assert!(matches!(&actions(s)[..], [Action::Connect(_)]));
    }
    delays
}

#[test]
fn a_lost_link_reconnects_at_once_then_backs_off_with_jitter() {
    let cap = Duration::from_secs(30);
    let run = |seed: u64| {
        let mut t = t0();
        let mut s = supervisor(None, seed);
        establish(&mut s, t);
        t += Duration::from_secs(60);
        s.handle_link_down(t, "reading from the hub: connection reset".into());
        let acts = actions(&mut s);
        assert_eq!(
            acts,
            [
                Action::Report {
                    state: "reconnecting",
                    level: Level::Warn,
                    line: "link lost: reading from the hub: connection reset; reconnecting now"
                        .into()
                },
                // At once: no wait before the first try.
                Action::Connect(Attempt {
                    hub: 0,
                    probe: false,
                    number: 1,
                    first: false
                }),
            ]
        );
        let delays = fail_attempts(&mut s, &mut t, 10);
        // The resume after it all reports the outage.
        s.handle_connected(t);
        let outage: Duration = delays.iter().sum();
        assert_eq!(s.handle_established(t, true).outage, Some(outage));
        delays
    };
    let a = run(7);
    for (k, d) in a.iter().enumerate() {
        // Equal jitter: in [full/2, full], full doubling up to the cap.
        let full = (FIRST_DELAY * 2u32.pow(k as u32)).min(cap);
        assert!(*d >= full / 2 && *d <= full, "try {k}: {d:?}");
    }
    assert!(a.windows(2).take(5).all(|w| w[1] > w[0]), "{a:?}");
    assert!(a.iter().all(|d| *d <= cap));
    // Seeded: the same seed waits the same, another seed differs.
    assert_eq!(run(7), a);
    assert_ne!(run(8), a);
}

#[test]
fn success_resets_the_backoff() {
    let mut t = t0();
    let mut s = supervisor(None, 3);
    fail_attempts_first(&mut s, &mut t, 4);
    establish(&mut s, t);
    s.handle_link_down(t, "eof".into());
    assert!(matches!(
        &actions(&mut s)[..],
        [
            Action::Report { .. },
            Action::Connect(Attempt { number: 1, .. })
        ]
    ));
    let d = fail_attempts(&mut s, &mut t, 1);
    assert!(d[0] <= FIRST_DELAY, "{d:?}");
}

#[test]
fn a_410_starts_a_new_session_at_once() {
    let t = t0();
    let mut s = supervisor(None, 1);
    establish(&mut s, t);
    s.handle_link_down(t, "eof".into());
    actions(&mut s);
    // The resume is answered with 410: the session has started over.
    s.handle_connected(t);
    s.handle_session_expired(t, 3, true);
    let acts = actions(&mut s);
    let [Action::Report { state, line, .. }, Action::DropLink, Action::Connect(a)] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(*state, "reconnecting");
    assert!(line.starts_with("new session: the hub no longer knows the old one"));
    assert!(line.contains("3 frame(s) sent before may not have arrived"));
    assert!(!a.probe);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_kick_gives_a_new_session_and_a_limit_waits() {
    let t = t0();
    let mut s = supervisor(None, 1);
    establish(&mut s, t);
    s.handle_closed(t, CloseCode::Kicked, "bye", true);
    let acts = actions(&mut s);
    assert!(
        matches!(&acts[..], [Action::DropLink, Action::NewSession, Action::Report { line, .. }, Action::Connect(_)]
            if line == "the hub closed the session (kicked by an administrator): bye; starting a new session"),
        "{acts:?}"
    );
    s.handle_connected(t);
    s.handle_established(t, false);
    s.handle_closed(t, CloseCode::LimitExceeded, "too many", true);
    let acts = actions(&mut s);
    assert_eq!(acts[..2], [Action::DropLink, Action::NewSession]);
    let (until, _) = wait_of(&acts);
    assert_eq!(until, t + LIMIT_WAIT);
    // Not renewable: the end.
    let mut s = supervisor(None, 1);
    establish(&mut s, t);
    s.handle_closed(t, CloseCode::AuthRevoked, "", true);
    assert!(matches!(
        &actions(&mut s)[..],
        [Action::GiveUp(Outcome::Failed(m))] if m.contains("authorization revoked")
    ));
}

#[test]
fn the_retry_limit_ends_it() {
    let mut t = t0();
    let mut s = supervisor(Some(2), 1);
    // Two retries are allowed …
    fail_attempts_first(&mut s, &mut t, 2);
    // … the third failure in a row is the end.
    s.handle_connect_error(t, &refused_tcp());
    let acts = actions(&mut s);
    assert!(
        matches!(&acts[..], [Action::GiveUp(Outcome::Failed(m))]
            if m.starts_with("giving up after 3 failed attempt(s) in a row (--max-retries 2): ")),
        "{acts:?}"
    );
    assert_eq!(s.poll_timeout(), None);
}

/// As `fail_attempts`, before any session ("trying again").
fn fail_attempts_first(s: &mut Supervisor, t: &mut Instant, n: usize) {
    for k in 0..n {
        s.handle_connect_error(*t, &refused_tcp());
        let (until, line) = wait_of(&actions(s));
        assert!(
            line.ends_with(&format!("(attempt {})", k + 2)) && line.contains("trying again in"),
            "{line}"
        );
        *t = until;
        s.handle_timeout(*t);
        assert!(matches!(&actions(s)[..], [Action::Connect(_)]));
    }
}

#[test]
fn a_keepalive_timeout_before_the_handshake_is_a_failed_attempt() {
    let t = t0();
    let mut s = supervisor(None, 1);
    s.handle_connected(t);
    s.handle_keepalive_dead(t, Duration::from_secs(15));
    let acts = actions(&mut s);
    assert_eq!(acts[0], Action::DropLink);
    let (_, line) = wait_of(&acts);
    assert!(line.starts_with(
        "the hub did not answer: nothing received for 15.0 s (keep-alive timeout); trying again in"
    ));
}

#[test]
fn a_network_change_probes_a_silent_link_and_hurries_a_retry() {
    let t = t0();
    let mut s = supervisor(None, 1);
    establish(&mut s, t);
    // Heard from the hub just now: no probe.
    s.handle_net_changed(t + Duration::from_millis(100), t);
    assert_eq!(actions(&mut s), []);
    let t1 = t + SILENCE_BEFORE_PROBE;
    s.handle_net_changed(t1, t);
    assert_eq!(
        actions(&mut s),
        [Action::Connect(Attempt {
            hub: 0,
            probe: true,
            number: 1,
            first: false
        })]
    );
    // A probe that fails next to a live link is no news.
    s.handle_connect_error(t1, &refused_tcp());
    assert_eq!(actions(&mut s), []);
    // A probe in flight when the link dies becomes the reconnection.
    s.handle_net_changed(t1, t);
    actions(&mut s);
    s.handle_link_down(t1, "eof".into());
    let acts = actions(&mut s);
    assert!(matches!(&acts[..], [Action::Report { .. }]), "{acts:?}");
    s.handle_connect_error(t1, &refused_tcp());
    let (until, _) = wait_of(&actions(&mut s));
    // Waiting for a retry: a network change tries now.
    s.handle_net_changed(t1, t);
    assert_eq!(s.poll_timeout(), Some(t1));
    assert!(until >= t1);
    s.handle_timeout(t1);
    assert!(matches!(&actions(&mut s)[..], [Action::Connect(_)]));
}

#[test]
fn advice_follows_the_typed_code_then_the_status() {
    let r = |status, code| refusal(status, code, None);
    // A certificate problem is named as such even without --cert.
    assert!(refusal_advice(&r(401, "cert-not-bound"), false).contains("--cert"));
    assert!(refusal_advice(&r(401, "auth-failed"), false).contains("--password-file"));
    assert!(refusal_advice(&r(401, "auth-failed"), true).contains("--cert"));
    assert!(refusal_advice(&r(404, "unknown-hub"), false).contains("hub name"));
    // No code this build knows (a proxy's 403, an older hub): by status.
    assert!(refusal_advice(&r(403, ""), false).contains("--user"));
    assert!(refusal_advice(&r(426, "unsupported-version"), false).contains("versions"));
    assert_eq!(refusal_advice(&r(409, "bad-resume"), false), "");
}

// ----------------------------------------------------------------------
// Several hubs: failover and failback

const HUB1: &str = "https://hub1.example:443/DEFAULT";
const HUB2: &str = "https://hub2.example:443/DEFAULT";
const HUB3: &str = "https://hub3.example:443/DEFAULT";

/// A supervisor with these hubs (seeded backoff), its first `Connect`
/// (to the first hub) already taken.
fn with_hubs(hubs: &[&str], failback: Option<Duration>, max_retries: Option<u32>) -> Supervisor {
    let backoff = Backoff::with_rng(Duration::from_secs(30), fastrand::Rng::with_seed(5));
    let config = Config {
        hubs: hubs.iter().map(|h| (*h).to_owned()).collect(),
        max_retries,
        with_cert: false,
        resumable: true,
        failback,
    };
    let mut s = Supervisor::new(config, backoff);
    assert_eq!(
        actions(&mut s),
        [Action::Connect(Attempt {
            hub: 0,
            probe: false,
            number: 1,
            first: true
        })]
    );
    s
}

/// The hubs the `Connect`s among `acts` go to.
fn dialled(acts: &[Action]) -> Vec<usize> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Connect(a) => Some(a.hub),
            _ => None,
        })
        .collect()
}

#[test]
fn a_failed_attempt_tries_the_next_hub_at_once_then_backs_off_after_the_round() {
    let t = t0();
    let mut s = with_hubs(&[HUB1, HUB2, HUB3], None, None);
    // The first hub refuses the TCP connection: the second, at once.
    s.handle_connect_error(t, &refused_tcp());
    let acts = actions(&mut s);
    let [Action::Report { state, level, line }, Action::Connect(a)] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!((*state, *level), ("connecting", Level::Warn));
    assert_eq!(
        line,
        &format!("{}; trying {HUB2} now (hub 2 of 3)", refused_tcp())
    );
    assert_eq!(
        *a,
        Attempt {
            hub: 1,
            probe: false,
            number: 1,
            // Only the very first attempt is announced as such.
            first: false
        }
    );
    assert_eq!(s.poll_timeout(), None, "no wait: an attempt is in flight");
    // The second does not answer the upgrade: the third, at once.
    s.handle_connected(t);
    assert_eq!(actions(&mut s), [Action::MoveSession { hub: 1 }]);
    s.handle_keepalive_dead(t, Duration::from_secs(15));
    let acts = actions(&mut s);
    assert_eq!(acts[0], Action::DropLink);
    assert_eq!(dialled(&acts), [2]);
    // The third fails too: the round is over, the backoff starts, and
    // the next round begins with the hub the session is bound to.
    s.handle_connect_error(t, &refused_tcp());
    let (until, line) = wait_of(&actions(&mut s));
    assert!(until > t && until - t <= FIRST_DELAY, "{:?}", until - t);
    assert!(
        line.ends_with(&format!(
            "none of the 3 hubs answered; trying again in {} (attempt 2)",
            fmt_duration(until - t)
        )),
        "{line}"
    );
    s.handle_timeout(until);
    assert_eq!(
        actions(&mut s),
        [Action::Connect(Attempt {
            hub: 1,
            probe: false,
            number: 2,
            first: false
        })]
    );
}

#[test]
fn a_lost_hub_is_resumed_first_then_left_for_the_next_with_a_new_session() {
    let mut t = t0();
    let mut s = with_hubs(&[HUB1, HUB2], None, None);
    establish(&mut s, t);
    t += Duration::from_secs(10);
    // The hub dies: its connection is reset, then it refuses connections.
    s.handle_link_down(t, "reading from the hub: connection reset".into());
    let acts = actions(&mut s);
    assert!(matches!(acts[0], Action::Report { .. }), "{acts:?}");
    assert_eq!(dialled(&acts), [0], "a resume on the same hub first");
    t += Duration::from_millis(2);
    s.handle_connect_error(t, &refused_tcp());
    let acts = actions(&mut s);
    assert_eq!(dialled(&acts), [1], "the next hub at once: {acts:?}");
    assert!(
        matches!(&acts[0], Action::Report { state: "reconnecting", line, .. }
            if line.ends_with(&format!("trying {HUB2} now (hub 2 of 2)"))),
        "{acts:?}"
    );
    // The link to the second hub moves the session there (no resume).
    t += Duration::from_millis(5);
    s.handle_connected(t);
    assert_eq!(actions(&mut s), [Action::MoveSession { hub: 1 }]);
    assert_eq!(s.session_hub(), 1);
    t += Duration::from_millis(1);
    assert_eq!(
        s.handle_established(t, false),
        Settled {
            outage: Some(Duration::from_millis(8)),
            moved_from: Some(0)
        }
    );
    assert_eq!(actions(&mut s), []);
    // Without failback it stays there: no timer.
    assert_eq!(s.poll_timeout(), None);
    // A later loss resumes on the second hub, where the session now is.
    s.handle_link_down(t, "eof".into());
    assert_eq!(dialled(&actions(&mut s)), [1]);
    s.handle_connected(t);
    assert_eq!(actions(&mut s), [], "same hub: no move");
    assert_eq!(s.handle_established(t, true).moved_from, None);
}

#[test]
fn a_retryable_refusal_moves_on_and_a_410_stays() {
    let t = t0();
    let mut s = with_hubs(&[HUB1, HUB2], None, None);
    establish(&mut s, t);
    s.handle_link_down(t, "eof".into());
    actions(&mut s);
    // The hub answers the resume with 410: it is up, so the new session
    // is opened there, not elsewhere.
    s.handle_connected(t);
    s.handle_session_expired(t, 0, true);
    assert_eq!(dialled(&actions(&mut s)), [0]);
    // A hub that is full: the next one at once, not its Retry-After.
    s.handle_connected(t);
    s.handle_refused(t, &refusal(503, "hub-full", Some(7)));
    let acts = actions(&mut s);
    assert_eq!(acts[0], Action::DropLink);
    assert_eq!(dialled(&acts), [1]);
    // Both full: the wait is at least the Retry-After.
    s.handle_connected(t);
    s.handle_refused(t, &refusal(503, "hub-full", Some(7)));
    let (until, _) = wait_of(&actions(&mut s));
    assert_eq!(until, t + Duration::from_secs(7));
}

#[test]
fn max_retries_counts_rounds_not_hubs() {
    let t = t0();
    let mut s = with_hubs(&[HUB1, HUB2], None, Some(1));
    // Round 1: both fail; one retry is allowed.
    s.handle_connect_error(t, &refused_tcp());
    assert_eq!(dialled(&actions(&mut s)), [1]);
    s.handle_connect_error(t, &refused_tcp());
    let (until, _) = wait_of(&actions(&mut s));
    s.handle_timeout(until);
    assert_eq!(dialled(&actions(&mut s)), [0]);
    // Round 2: the first fails, the second is still tried …
    s.handle_connect_error(until, &refused_tcp());
    assert_eq!(dialled(&actions(&mut s)), [1]);
    // … and when it fails too, that is the end.
    s.handle_connect_error(until, &refused_tcp());
    let acts = actions(&mut s);
    assert!(
        matches!(&acts[..], [Action::GiveUp(Outcome::Failed(m))]
            if m.starts_with("giving up after 2 failed attempt(s) in a row (--max-retries 1): ")
                && m.contains("none of the 2 hubs answered")),
        "{acts:?}"
    );
}

#[test]
fn a_final_answer_from_any_hub_ends_it() {
    // A certificate that changed is not a reason to try another hub: it
    // is a reason to stop (someone may be in the middle).
    let t = t0();
    let mut s = with_hubs(&[HUB1, HUB2], None, None);
    s.handle_connect_error(t, &refused_tcp());
    assert_eq!(dialled(&actions(&mut s)), [1]);
    s.handle_connect_error(
        t,
        &LinkError::Tls(TlsError::PinMismatch {
            expected: certs::Fingerprint([1; 32]),
            presented: certs::Fingerprint([2; 32]),
        }),
    );
    let acts = actions(&mut s);
    assert!(
        matches!(&acts[..], [Action::GiveUp(Outcome::Untrusted(m))]
            if m.starts_with(&format!("cannot connect to {HUB2}: "))),
        "{acts:?}"
    );
}

#[test]
fn failback_probes_the_first_hub_and_moves_back_when_it_answers() {
    let every = Duration::from_secs(30);
    let mut t = t0();
    let mut s = with_hubs(&[HUB1, HUB2], Some(every), None);
    // On the first hub: no failback timer.
    establish(&mut s, t);
    assert_eq!(s.poll_timeout(), None);
    // Fail over to the second.
    s.handle_link_down(t, "eof".into());
    actions(&mut s);
    s.handle_connect_error(t, &refused_tcp());
    actions(&mut s);
    s.handle_connected(t);
    actions(&mut s);
    s.handle_established(t, false);
    assert_eq!(s.poll_timeout(), Some(t + every));
    // Nothing before it is due.
    s.handle_timeout(t + every - Duration::from_millis(1));
    assert_eq!(actions(&mut s), []);
    t += every;
    s.handle_timeout(t);
    assert_eq!(
        actions(&mut s),
        [Action::Connect(Attempt {
            hub: 0,
            probe: true,
            number: 1,
            first: false
        })]
    );
    // Still down: no news, and again one interval later.
    s.handle_connect_error(t, &refused_tcp());
    assert_eq!(actions(&mut s), []);
    assert_eq!(s.poll_timeout(), Some(t + every));
    t += every;
    s.handle_timeout(t);
    assert_eq!(dialled(&actions(&mut s)), [0]);
    // Up again: the bridge switched links; the session moves back.
    s.handle_connected(t);
    let acts = actions(&mut s);
    let [Action::MoveSession { hub: 0 }, Action::Report { line, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(
        line,
        &format!("{HUB1} answers again: moving back to it from {HUB2} (a new session)")
    );
    let settled = s.handle_established(t, false);
    assert_eq!(settled.moved_from, Some(1));
    assert_eq!(s.poll_timeout(), None, "home: no more failback");
}

#[test]
fn a_failback_probe_in_flight_when_the_link_dies_becomes_the_reconnection() {
    let every = Duration::from_secs(30);
    let t = t0();
    let mut s = with_hubs(&[HUB1, HUB2], Some(every), None);
    s.handle_connect_error(t, &refused_tcp());
    actions(&mut s);
    s.handle_connected(t);
    actions(&mut s);
    s.handle_established(t, false);
    s.handle_timeout(t + every);
    assert_eq!(dialled(&actions(&mut s)), [0]);
    // The second hub dies while the probe to the first is on its way.
    s.handle_link_down(t + every, "eof".into());
    let acts = actions(&mut s);
    assert!(matches!(&acts[..], [Action::Report { .. }]), "{acts:?}");
    // It fails: an ordinary failed attempt now, so the next hub (the
    // second, where the session is) is tried at once.
    s.handle_connect_error(t + every, &refused_tcp());
    assert_eq!(dialled(&actions(&mut s)), [1]);
}

#[test]
fn one_hub_behaves_as_before() {
    // No failover lines, and the wait text is unchanged.
    let t = t0();
    let mut s = supervisor(None, 1);
    s.handle_connect_error(t, &refused_tcp());
    let (_, line) = wait_of(&actions(&mut s));
    assert!(!line.contains("hubs"), "{line}");
    assert!(line.ends_with("(attempt 2)"), "{line}");
}

/// A supervisor for one SoftEther server (no resume), first `Connect` taken.
fn softether() -> Supervisor {
    let mut config = config(None);
    config.hubs = vec!["softether://se.example:443/TEST".into()];
    config.resumable = false;
    let backoff = Backoff::with_rng(Duration::from_secs(30), fastrand::Rng::with_seed(3));
    let mut s = Supervisor::new(config, backoff);
    assert!(matches!(s.poll_action(), Some(Action::Connect(_))));
    s
}

#[test]
fn softether_link_loss_is_a_new_session_at_once() {
    let t = t0();
    let mut s = softether();
    establish(&mut s, t);
    s.handle_link_down(t, "eof".into());
    let a = actions(&mut s);
    assert_eq!(a[0], Action::NewSession);
    let Action::Report { line, .. } = &a[1] else {
        panic!("{a:?}")
    };
    assert!(line.contains("SoftEther: no resume, new session"), "{line}");
    assert!(matches!(a[2], Action::Connect(Attempt { number: 1, .. })));
}

#[test]
fn softether_refusals_map_to_vnic_outcomes() {
    use switch_core::softether::{ClientError, ErrorCode};
    let t = t0();
    for (code, exit) in [(ErrorCode::AuthFailed, 3), (ErrorCode::HubNotFound, 3)] {
        let mut s = softether();
        s.handle_connected(t);
        s.handle_softether_failed(t, &ClientError::Refused(code));
        let a = actions(&mut s);
        assert_eq!(a[0], Action::DropLink);
        let Action::GiveUp(o) = &a[1] else {
            panic!("{a:?}")
        };
        assert_eq!(o.exit_code(), exit, "{o:?}");
        assert!(s.is_done());
    }
    // Busy: tried again, no sooner than the real client would (60 s).
    let mut s = softether();
    s.handle_connected(t);
    s.handle_softether_failed(t, &ClientError::Refused(ErrorCode::HubIsBusy));
    let a = actions(&mut s);
    let Action::Wait { until, .. } = a[1] else {
        panic!("{a:?}")
    };
    assert!(until >= t + Duration::from_secs(60));
    assert!(!s.is_done());
}
