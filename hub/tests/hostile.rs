//! Hostile and broken peers against a running hub, over real TCP and TLS on
//! loopback. Each test keeps a healthy pair of sessions on the same hub and
//! checks that it passes frames before and after the abuse.
//!
//! Every test runs on both I/O backends (epoll and io_uring): the abuse
//! paths — a deadline that shuts a socket with a read in flight, a peer
//! that vanishes mid-record — are where the two differ.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use certs::tls::TlsOptions;
use common::{
    receives, send_many, start_hub_on, upgrade_head, wait_for, HttpAnswer, IoBackend, Pair, RawTls,
    TestHub, PAIR_A, PAIR_B,
};
use hub::config::AuthConfig;
use switch_core::session::SessionConfig;
use switch_core::wire::{self, CloseCode, FramesWriter, Limits, Message};
use vhub_bench::client::{frame, ClientError, Extras, TestClient, BROADCAST};

const T: Duration = Duration::from_secs(10);

on_both_backends!(
    plain_http_and_garbage_on_the_tls_port_are_closed,
    stalled_handshakes_and_slowloris_end_at_the_handshake_timeout,
    a_megabyte_of_headers_gets_431,
    wrong_version_unknown_hub_and_bad_resumes_get_their_status,
    a_thousand_bad_passwords_from_one_address_are_slowed_then_refused,
    too_many_concurrent_handshakes_from_one_address_are_refused,
    session_limits_per_user_and_per_hub_refuse_only_the_next_session,
    a_resume_with_someone_elses_token_is_refused,
    a_broadcast_storm_reaches_the_others_and_drops_only_what_their_queues_cannot_hold,
    headers_without_end_are_cut_at_the_handshake_deadline,
    failures_for_one_user_from_many_addresses_lock_that_user_only,
    client_certificates_log_in_bound_users_and_refuse_the_rest,
    protocol_violations_close_only_the_violating_session,
    a_mac_flood_of_a_million_sources_is_capped_per_port,
    a_storm_to_silent_receivers_stays_within_the_hub_buffer_budget,
    a_receiver_that_never_reads_gets_tail_drops_and_slows_nobody,
    a_client_that_vanishes_mid_record_leaves_a_detached_session,
);

fn hub(backend: IoBackend) -> TestHub {
    start_hub_on(backend, 1, false, |_| {})
}

/// Plain TCP: writes `bytes`, then reads until the hub closes. Returns
/// what the hub sent, or panics if it kept the connection open.
fn tcp_send_expect_close(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!(
                "the hub kept the connection open ({e}) after {:?}; it sent {got:?}",
                start.elapsed()
            ),
        }
    }
}

fn plain_http_and_garbage_on_the_tls_port_are_closed(backend: IoBackend) {
    let hub = hub(backend);
    let mut pair = Pair::new(hub.addr());

    // Plain HTTP where TLS is expected: a 400 in clear text that says to
    // use https, then the close; no page leaks out in clear text.
    let got = tcp_send_expect_close(hub.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("use https://"), "{text}");
    assert!(!got.windows(4).any(|w| w == b"html"), "{got:?}");
    pair.check("after plain HTTP");

    // A TLS handshake record whose ClientHello is garbage.
    let mut hello = vec![0x16, 0x03, 0x01, 0x01, 0x00];
    hello.extend((0..256u32).map(|i| (i * 37 + 11) as u8));
    tcp_send_expect_close(hub.addr(), &hello);
    // Not TLS at all.
    let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    tcp_send_expect_close(hub.addr(), &noise);
    // Connect and close at once.
    drop(TcpStream::connect(hub.addr()).unwrap());
    pair.check("after garbage");

    let failed = r#"vhub_handshakes_total{result="tls_failed"}"#;
    assert!(
        wait_for(T, || hub.metric(failed) == 4.0),
        "{}",
        hub.scrape()
    );
    assert_eq!(hub.metric(r#"vhub_sessions{hub="DEFAULT"}"#), 2.0);
}

fn stalled_handshakes_and_slowloris_end_at_the_handshake_timeout(backend: IoBackend) {
    let hub = start_hub_on(backend, 1, false, |s| {
        s.handshake_timeout = Duration::from_secs(1)
    });
    let mut pair = Pair::new(hub.addr());
    let timeouts = r#"vhub_handshakes_total{result="timeout"}"#;
    let failures = [
        r#"vhub_handshakes_total{result="tls_failed"}"#,
        r#"vhub_handshakes_total{result="http_error"}"#,
    ];

    // TCP up, then silence: no TLS ClientHello ever comes.
    let start = Instant::now();
    let got = tcp_send_expect_close(hub.addr(), b"");
    let waited = start.elapsed();
    assert!(got.is_empty());
    assert!(
        waited >= Duration::from_millis(900),
        "closed before the timeout: {waited:?}"
    );
    assert!(
        wait_for(T, || hub.metric(timeouts) == 1.0),
        "{}",
        hub.scrape()
    );
    pair.check("after a stalled handshake");

    // TLS up, then a request head that never ends, one header line per 200 ms.
    let mut raw = RawTls::connect(hub.addr()).unwrap();
    let start = Instant::now();
    raw.send(b"GET / HTTP/1.1\r\n").unwrap();
    let mut lines = 0;
    while raw.pump() {
        std::thread::sleep(Duration::from_millis(200));
        if raw
            .send(format!("X-Slow-{lines}: x\r\n").as_bytes())
            .is_err()
        {
            break;
        }
        lines += 1;
        assert!(
            start.elapsed() < T,
            "slowloris still connected after {lines} lines"
        );
    }
    assert!(raw.wait_closed(T));
    assert!(
        raw.plain.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&raw.plain)
    );
    assert!(lines >= 3, "closed too early, after {lines} header lines");
    assert!(
        wait_for(T, || hub.metric(timeouts) == 2.0),
        "{}",
        hub.scrape()
    );
    pair.check("after slowloris");

    // Each timed-out connection is counted once, as a timeout only.
    let m = hub.scrape();
    for f in failures {
        assert_eq!(
            common::metric(&m, f),
            0.0,
            "{f} counted a timeout too:\n{m}"
        );
    }
    // A session is not subject to the handshake timeout.
    std::thread::sleep(Duration::from_millis(1200));
    pair.check("after the handshake timeout has passed");
}

fn a_megabyte_of_headers_gets_431(backend: IoBackend) {
    let hub = hub(backend);
    let mut pair = Pair::new(hub.addr());
    let mut raw = RawTls::connect(hub.addr()).unwrap();
    raw.send(b"GET /vhub/DEFAULT HTTP/1.1\r\nHost: x\r\nX-Big: ")
        .unwrap();
    let chunk = vec![b'a'; 16 * 1024];
    let mut sent = 0;
    // Stop writing as soon as the hub has answered (or closed).
    while sent < 1 << 20 && raw.plain.is_empty() && !raw.closed {
        if raw.send(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
        raw.pump();
    }
    let answer = raw.read_answer();
    assert_eq!(answer.status, 431, "{answer:?}");
    assert_eq!(answer.header("vhub-error"), Some("head-too-large"));
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(raw.wait_closed(T), "still open after 431");
    assert!(sent < 1 << 20, "the hub read the whole megabyte first");
    pair.check("after a megabyte of headers");
}

/// A raw session on DEFAULT as alice: the TLS connection after the `101`,
/// and the session token.
fn raw_session(addr: SocketAddr) -> (RawTls, String) {
    let mut raw = RawTls::connect(addr).unwrap();
    let a = raw.request(&upgrade_head("DEFAULT", "vhub/1", &[]));
    assert_eq!(a.status, 101, "{a:?}");
    let token = a
        .header("vhub-session")
        .expect("a session token")
        .to_owned();
    (raw, token)
}

/// Reads binary messages until a CLOSE; panics if the connection ends
/// without one.
fn read_close(raw: &mut RawTls) -> (CloseCode, String) {
    let deadline = Instant::now() + T;
    loop {
        let limits = Limits::default();
        while let Some((msg, used)) = wire::decode(&raw.plain, &limits).expect("hub speaks vhub/1")
        {
            let close = match msg {
                Message::Close { code, reason } => Some((code, reason.to_owned())),
                _ => None,
            };
            raw.plain.drain(..used);
            if let Some(c) = close {
                return c;
            }
        }
        assert!(!raw.closed, "closed without a CLOSE message");
        raw.pump();
        assert!(Instant::now() < deadline, "no CLOSE within {T:?}");
    }
}

fn answer(addr: SocketAddr, head: &str) -> HttpAnswer {
    let mut raw = RawTls::connect(addr).unwrap();
    let a = raw.request(head);
    assert!(
        raw.wait_closed(T),
        "connection left open after {}",
        a.status
    );
    a
}

fn wrong_version_unknown_hub_and_bad_resumes_get_their_status(backend: IoBackend) {
    let hub = hub(backend);
    let mut pair = Pair::new(hub.addr());

    let a = answer(hub.addr(), &upgrade_head("DEFAULT", "vhub/9", &[]));
    assert_eq!(a.status, 426, "{a:?}");
    assert_eq!(a.header("vhub-error"), Some("unsupported-version"));
    assert_eq!(a.header("upgrade"), Some("vhub/1"));
    assert!(a.body.contains("vhub/1"), "the body names vhub/1: {a:?}");
    // A newer client offering both gets vhub/1.
    let mut raw = RawTls::connect(hub.addr()).unwrap();
    let a = raw.request(&upgrade_head("DEFAULT", "vhub/2, vhub/1", &[]));
    assert_eq!((a.status, a.header("upgrade")), (101, Some("vhub/1")));
    // Ends it cleanly: the hub forgets the session at once.
    let mut close = Vec::new();
    wire::encode_close(&mut close, CloseCode::Normal, "done");
    raw.send(&close).unwrap();
    assert!(raw.wait_closed(T));
    let sessions = r#"vhub_sessions{hub="DEFAULT"}"#;
    assert!(
        wait_for(T, || hub.metric(sessions) == 2.0),
        "{}",
        hub.scrape()
    );

    let a = answer(hub.addr(), &upgrade_head("NOPE", "vhub/1", &[]));
    assert_eq!(
        (a.status, a.header("vhub-error")),
        (404, Some("unknown-hub"))
    );
    let a = answer(hub.addr(), &upgrade_head("bad/name", "vhub/1", &[]));
    assert_eq!(a.status, 400, "{a:?}");
    pair.check("after refusals");

    // Resume of a session the hub never had.
    let a = answer(
        hub.addr(),
        &upgrade_head(
            "DEFAULT",
            "vhub/1",
            &[
                "Vhub-Resume: 00112233445566778899aabbccddeeff",
                "Vhub-Rx: 0",
            ],
        ),
    );
    assert_eq!(
        (a.status, a.header("vhub-error")),
        (410, Some("session-unknown"))
    );

    // Resume claiming frames the hub never sent.
    let (raw, token) = raw_session(hub.addr());
    drop(raw);
    let detached = r#"vhub_sessions_detached{hub="DEFAULT"}"#;
    assert!(
        wait_for(T, || hub.metric(detached) == 1.0),
        "{}",
        hub.scrape()
    );
    let resume = format!("Vhub-Resume: {token}");
    let a = answer(
        hub.addr(),
        &upgrade_head("DEFAULT", "vhub/1", &[&resume, "Vhub-Rx: 5"]),
    );
    assert_eq!(
        (a.status, a.header("vhub-error")),
        (409, Some("bad-resume"))
    );
    pair.check("after bad resumes");
    // The session is kept as it was: a correct resume still works.
    assert_eq!(hub.metric(detached), 1.0);
    let mut raw = RawTls::connect(hub.addr()).unwrap();
    let a = raw.request(&upgrade_head("DEFAULT", "vhub/1", &[&resume, "Vhub-Rx: 0"]));
    assert_eq!(a.status, 101, "{a:?}");
    assert_eq!(a.header("vhub-session"), Some(token.as_str()));
    assert_eq!(a.header("vhub-rx"), Some("0"), "answered as a resume");
    assert!(
        wait_for(T, || hub.metric(detached) == 0.0),
        "{}",
        hub.scrape()
    );
    assert_eq!(hub.metric(r#"vhub_sessions{hub="DEFAULT"}"#), 3.0);
}

/// Small throttle settings so that a test sees every stage in little time.
fn quick_throttle() -> AuthConfig {
    AuthConfig {
        failure_window: Duration::from_secs(60),
        slow_after: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        refuse_after_per_address: 10,
        refuse_after_per_user: 40,
        lockout: Duration::from_secs(60),
        max_tracked: 1024,
    }
}

const LOCALHOST_2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A session from another loopback address (Linux routes all of 127/8).
fn connect_from(
    addr: SocketAddr,
    local: IpAddr,
    hub: &str,
    creds: Option<(&str, &str)>,
) -> Result<TestClient, ClientError> {
    TestClient::connect_ext(
        addr,
        hub,
        creds,
        SessionConfig::default(),
        &TlsOptions::default(),
        &Extras {
            cert: None,
            local_ip: Some(local),
        },
    )
}

fn a_thousand_bad_passwords_from_one_address_are_slowed_then_refused(backend: IoBackend) {
    let hub = start_hub_on(backend, 1, false, |s| s.auth = quick_throttle());
    let mut pair = Pair::new(hub.addr());
    let (mut unauthorized, mut throttled) = (0, 0);
    for i in 0..1000 {
        let pw = format!("guess-{i}");
        match TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", &pw))) {
            Err(ClientError::Refused(r)) if i < 10 => {
                assert_eq!(
                    (r.status.0, r.code.as_str()),
                    (401, "auth-failed"),
                    "try {i}"
                );
                unauthorized += 1;
            }
            Err(ClientError::Refused(r)) => {
                assert_eq!(
                    (r.status.0, r.code.as_str()),
                    (429, "login-throttled"),
                    "try {i}: {r:?}"
                );
                let retry = r.retry_after.expect("Retry-After");
                assert!((1..=60).contains(&retry), "Retry-After: {retry}");
                throttled += 1;
            }
            Ok(_) => panic!("password {pw} accepted"),
            Err(e) => panic!("try {i}: {e}"),
        }
        if i % 250 == 249 {
            pair.check(&format!("after {} bad passwords", i + 1));
        }
    }
    assert_eq!((unauthorized, throttled), (10, 990));
    let m = hub.scrape();
    // Only the first ten were checked (and cost a scrypt); tries 4 to 10
    // each waited first.
    assert_eq!(
        common::metric(&m, r#"vhub_handshakes_total{result="auth_failed"}"#),
        10.0
    );
    assert_eq!(common::metric(&m, "vhub_logins_delayed_total"), 7.0);
    assert_eq!(
        common::metric(
            &m,
            r#"vhub_limit_refusals_total{limit="login_failures_per_address"}"#
        ),
        990.0
    );
    assert_eq!(
        common::metric(
            &m,
            r#"vhub_limit_refusals_total{limit="login_failures_per_user"}"#
        ),
        0.0
    );
    assert_eq!(common::metric(&m, r#"vhub_sessions{hub="DEFAULT"}"#), 2.0);
    // Even the right password is refused from that address for now…
    match TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))) {
        Err(ClientError::Refused(r)) => assert_eq!(r.status.0, 429),
        other => panic!("locked address got {:?}", other.map(|_| "a session")),
    }
    // …but alice from another address logs in at once: ten failures did
    // not lock her account.
    connect_from(
        hub.addr(),
        LOCALHOST_2,
        "DEFAULT",
        Some(("alice", "secret")),
    )
    .expect("alice from another address");
    pair.check("after the lockout");
}

fn failures_for_one_user_from_many_addresses_lock_that_user_only(backend: IoBackend) {
    let hub = start_hub_on(backend, 1, false, |s| s.auth = quick_throttle());
    let mut pair = Pair::new(hub.addr());
    // 40 failures for bob, two from each of 20 addresses (no address
    // reaches its own limit of 10).
    for i in 0..40u8 {
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 10 + i / 2));
        match connect_from(hub.addr(), from, "OTHER", Some(("bob", "wrong"))) {
            Err(ClientError::Refused(r)) => assert_eq!(r.status.0, 401, "try {i}: {r:?}"),
            other => panic!("try {i}: {:?}", other.map(|_| "a session")),
        }
    }
    // bob is locked now, even with his password from a fresh address.
    let fresh = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1));
    match connect_from(hub.addr(), fresh, "OTHER", Some(("bob", "hunter2"))) {
        Err(ClientError::Refused(r)) => {
            assert_eq!((r.status.0, r.code.as_str()), (429, "login-throttled"));
            assert!(r.reason.contains("user"), "{r:?}");
        }
        other => panic!("locked user got {:?}", other.map(|_| "a session")),
    }
    let m = hub.scrape();
    assert_eq!(
        common::metric(
            &m,
            r#"vhub_limit_refusals_total{limit="login_failures_per_user"}"#
        ),
        1.0
    );
    assert_eq!(
        common::metric(
            &m,
            r#"vhub_limit_refusals_total{limit="login_failures_per_address"}"#
        ),
        0.0
    );
    // Other users are not affected, from the same fresh address either.
    connect_from(hub.addr(), fresh, "DEFAULT", Some(("alice", "secret"))).expect("alice");
    pair.check("with bob locked out");
}

fn too_many_concurrent_handshakes_from_one_address_are_refused(backend: IoBackend) {
    let hub = start_hub_on(backend, 1, false, |s| {
        s.max_handshakes_per_address = 4;
        s.handshake_timeout = Duration::from_secs(5);
    });
    let mut pair = Pair::new(hub.addr());
    // Four stalled handshakes from 127.0.0.1: TCP up, no ClientHello.
    let mut stalled: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(hub.addr()).unwrap())
        .collect();
    // The hub has accepted them once a fifth is refused; try until then.
    let limit = r#"vhub_limit_refusals_total{limit="handshakes_per_address"}"#;
    assert!(
        wait_for(T, || {
            let got = tcp_send_expect_close(hub.addr(), b"");
            assert!(got.is_empty(), "a refused connection gets no bytes");
            hub.metric(limit) >= 1.0
        }),
        "{}",
        hub.scrape()
    );
    let refused = hub.metric(limit);
    assert_eq!(
        hub.metric(r#"vhub_handshakes_total{result="limited"}"#),
        refused
    );
    // The four are still open (the hub waits for their ClientHello).
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            other => panic!("a stalled handshake was closed early: {other:?}"),
        }
    }
    // Another address is not affected, nor the sessions.
    connect_from(
        hub.addr(),
        LOCALHOST_2,
        "DEFAULT",
        Some(("alice", "secret")),
    )
    .expect("a login from 127.0.0.2");
    pair.check("with 127.0.0.1's handshakes at the limit");
    // Once they go, 127.0.0.1 may handshake again.
    stalled.clear();
    assert!(
        wait_for(T, || TestClient::connect(
            hub.addr(),
            "DEFAULT",
            Some(("alice", "secret"))
        )
        .is_ok()),
        "127.0.0.1 still refused after its handshakes ended"
    );
    pair.check("after");
}

fn session_limits_per_user_and_per_hub_refuse_only_the_next_session(backend: IoBackend) {
    let hub = start_hub_on(backend, 1, false, |s| {
        s.max_sessions_per_user = 3;
        s.hubs[1].max_sessions = 2;
    });
    let mut pair = Pair::new(hub.addr()); // alice's first two
    let third = TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    match TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))) {
        Err(ClientError::Refused(r)) => {
            assert_eq!((r.status.0, r.code.as_str()), (429, "limit-sessions-user"));
            assert_eq!(r.retry_after, Some(30));
        }
        other => panic!("a fourth session: {:?}", other.map(|_| "a session")),
    }
    // bob on OTHER: the hub's own limit is 2.
    let _b1 = TestClient::connect(hub.addr(), "OTHER", Some(("bob", "hunter2"))).unwrap();
    let _b2 = TestClient::connect(hub.addr(), "OTHER", Some(("bob", "hunter2"))).unwrap();
    match TestClient::connect(hub.addr(), "OTHER", Some(("bob", "hunter2"))) {
        Err(ClientError::Refused(r)) => {
            assert_eq!((r.status.0, r.code.as_str()), (429, "limit-sessions"))
        }
        other => panic!("a third session on OTHER: {:?}", other.map(|_| "a session")),
    }
    let m = hub.scrape();
    for (limit, n) in [
        ("sessions_per_user", 1.0),
        ("sessions_per_hub", 1.0),
        ("sessions", 0.0),
    ] {
        let series = format!(r#"vhub_limit_refusals_total{{limit="{limit}"}}"#);
        assert_eq!(common::metric(&m, &series), n, "{series}");
    }
    pair.check("at alice's session limit");
    // Ending a session gives its place back.
    third.close();
    let sessions = r#"vhub_sessions{hub="DEFAULT"}"#;
    assert!(
        wait_for(T, || hub.metric(sessions) == 2.0),
        "{}",
        hub.scrape()
    );
    TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret")))
        .expect("a session after one ended");
    pair.check("after");
}

/// An upgrade head with any Basic credentials.
fn upgrade_head_as(hub: &str, user: &str, password: &str, extra: &[&str]) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    upgrade_head(hub, "vhub/1", extra).replace(
        &format!(
            "Authorization: Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:secret")
        ),
        &format!("Authorization: Basic {auth}"),
    )
}

fn a_resume_with_someone_elses_token_is_refused(backend: IoBackend) {
    let hub = hub(backend);
    let mut pair = Pair::new(hub.addr());
    let (raw, token) = raw_session(hub.addr());
    drop(raw);
    let detached = r#"vhub_sessions_detached{hub="DEFAULT"}"#;
    assert!(
        wait_for(T, || hub.metric(detached) == 1.0),
        "{}",
        hub.scrape()
    );
    let resume = format!("Vhub-Resume: {token}");
    let extra = [resume.as_str(), "Vhub-Rx: 0"];
    // bob (a valid user of OTHER) with alice's token, on either hub; and a
    // token that differs from alice's in its last bit only.
    let mut flipped = token.clone();
    let last = flipped.pop().unwrap().to_digit(16).unwrap() ^ 1;
    flipped.push(char::from_digit(last, 16).unwrap());
    let flipped = format!("Vhub-Resume: {flipped}");
    let attempts = [
        upgrade_head_as("OTHER", "bob", "hunter2", &extra),
        upgrade_head_as("DEFAULT", "bob", "hunter2", &extra),
        upgrade_head("DEFAULT", "vhub/1", &[&flipped, "Vhub-Rx: 0"]),
    ];
    for (i, head) in attempts.iter().enumerate() {
        let a = answer(hub.addr(), head);
        assert_eq!(
            (a.status, a.header("vhub-error")),
            (410, Some("session-unknown")),
            "attempt {i}: {a:?}"
        );
    }
    assert_eq!(
        hub.metric(r#"vhub_handshakes_total{result="resume_unknown"}"#),
        3.0
    );
    pair.check("after resumes with a stolen token");
    // The owner's session is intact: alice resumes it.
    let mut raw = RawTls::connect(hub.addr()).unwrap();
    let a = raw.request(&upgrade_head("DEFAULT", "vhub/1", &extra));
    assert_eq!(
        (a.status, a.header("vhub-session")),
        (101, Some(token.as_str()))
    );
    assert!(
        wait_for(T, || hub.metric(detached) == 0.0),
        "{}",
        hub.scrape()
    );
}

fn a_broadcast_storm_reaches_the_others_and_drops_only_what_their_queues_cannot_hold(
    backend: IoBackend,
) {
    let hub = hub(backend);
    // The healthy pair is on another virtual hub: a pair inside the storm's
    // broadcast domain that pauses reading is itself a congested receiver
    // (its unicasts may be tail-dropped behind the storm, correctly).
    let mut pair = Pair::on(hub.addr(), "OTHER", ("bob", "hunter2"));
    // A receiver in the storm's hub that reads between rounds…
    let mut reader = TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    // …and one that never reads: its queue fills.
    let mut sink = TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    sink.pump().unwrap();
    let mut storm = TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    let m0 = hub.scrape();
    let get = |m: &str, s: &str| common::metric(m, s);
    let (out, drops, fin) = (
        r#"vhub_frames_total{direction="out"}"#,
        r#"vhub_frames_dropped_total{reason="queue_full"}"#,
        r#"vhub_frames_total{direction="in"}"#,
    );
    let payload = vec![0xbb; 1000];
    let src = [0x02, 0x5b, 0, 0, 0, 1];
    let storm_frame = frame(BROADCAST, src, &payload);
    const ROUNDS: usize = 5;
    const PER_ROUND: usize = 5000;
    for round in 0..ROUNDS {
        send_many(&mut storm, (0..PER_ROUND).map(|_| storm_frame.clone()));
        // The reader in the storm's domain gets storm frames in every
        // round, intact (its queue may tail-drop the rest: it reads only
        // now and then).
        let before = reader.received.len();
        assert!(
            receives(&mut reader, before, &storm_frame, T),
            "the reader in the storm's hub received no storm frame in round {round}"
        );
        reader.pump_for(Duration::from_millis(50));
        let got = &reader.received[before..];
        assert!(
            got.iter().all(|f| *f == storm_frame),
            "round {round}: the reader received something else than the storm's frame"
        );
        pair.check(&format!("during the storm, round {round}"));
    }
    let to_reader = reader.received.len();
    assert!(
        (ROUNDS..=ROUNDS * PER_ROUND).contains(&to_reader),
        "the reader received {to_reader} storm frames"
    );
    // Every storm frame came in; each of its 2 receivers got it queued or
    // counted as dropped; the pair's 2 unicasts per check were delivered.
    let storm_frames = (ROUNDS * PER_ROUND) as f64;
    let checks = ROUNDS as f64;
    let expected_in = storm_frames + 2.0 * checks;
    assert!(
        wait_for(T, || hub.metric(fin) - get(&m0, fin) == expected_in),
        "{}",
        hub.scrape()
    );
    let m = hub.scrape();
    let (d_out, d_drop) = (
        get(&m, out) - get(&m0, out),
        get(&m, drops) - get(&m0, drops),
    );
    assert_eq!(
        d_out + d_drop,
        2.0 * storm_frames + 2.0 * checks,
        "queued {d_out} + dropped {d_drop}"
    );
    assert!(d_drop > 0.0, "the sink's queue never filled");
    // No frame went to the storm itself or anywhere else.
    assert_eq!(
        get(&m, r#"vhub_frames_dropped_total{reason="handoff_full"}"#),
        0.0
    );
    assert_eq!(get(&m, r#"vhub_sessions{hub="DEFAULT"}"#), 3.0);
    storm.pump().expect("the storm's own session is kept");
    pair.check("after the storm");
    drop(sink);
}

fn a_storm_to_silent_receivers_stays_within_the_hub_buffer_budget(backend: IoBackend) {
    // 2 MiB for all sessions together; each may hold 1 MiB on its own.
    const BUDGET: f64 = (2 << 20) as f64;
    let hub = start_hub_on(backend, 1, false, |s| s.max_buffer_memory = 2 << 20);
    // The healthy pair is on another virtual hub of the same server: the
    // budget is the server's, the storm is DEFAULT's.
    let mut pair = Pair::on(hub.addr(), "OTHER", ("bob", "hunter2"));
    // Eight receivers that never read (never acknowledge): without the
    // budget their queues would hold 8 MiB.
    let sinks: Vec<TestClient> = (0..8)
        .map(|_| TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap())
        .collect();
    let mut storm = TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    let m0 = hub.scrape();
    let get = |m: &str, s: &str| common::metric(m, s);
    let fin = r#"vhub_frames_total{direction="in"}"#;
    const N: usize = 8000;
    let src = [0x02, 0x5c, 0, 0, 0, 1];
    let payload = vec![0xcc; 1000];
    send_many(&mut storm, (0..N).map(|_| frame(BROADCAST, src, &payload)));
    pair.check("during the storm");
    assert!(
        wait_for(T, || hub.metric(fin) - get(&m0, fin) >= N as f64),
        "{}",
        hub.scrape()
    );
    let m = hub.scrape();
    let buffered = get(&m, "vhub_buffered_bytes");
    // Every session keeps a 64 KiB floor (plus the frame that crossed it).
    let sessions = 11.0;
    let bound = BUDGET + sessions * (64.0 * 1024.0 + 1100.0);
    assert!(
        buffered <= bound,
        "buffered {buffered} bytes, bound {bound}"
    );
    assert!(
        buffered >= BUDGET,
        "the storm filled the budget: {buffered}"
    );
    let memory = r#"vhub_frames_dropped_total{reason="memory"}"#;
    assert!(get(&m, memory) - get(&m0, memory) > 0.0, "{m}");
    // The healthy pair stays under its floor: unaffected.
    pair.check("after the storm");
    storm.pump().expect("the storm's own session is kept");
    drop(sinks);
}

fn headers_without_end_are_cut_at_the_handshake_deadline(backend: IoBackend) {
    let hub = start_hub_on(backend, 1, false, |s| {
        s.handshake_timeout = Duration::from_secs(1)
    });
    let mut pair = Pair::new(hub.addr());
    let mut raw = RawTls::connect(hub.addr()).unwrap();
    // A request line and a header, then nothing: no blank line ever comes.
    raw.send(b"GET /vhub/DEFAULT HTTP/1.1\r\nHost: x\r\nX-Pending: ")
        .unwrap();
    assert!(raw.wait_closed(T), "still open");
    assert!(
        raw.plain.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&raw.plain)
    );
    // The hub counts it as its read ends, just after the client saw it.
    let timeouts = r#"vhub_handshakes_total{result="timeout"}"#;
    assert!(
        wait_for(T, || hub.metric(timeouts) == 1.0),
        "{}",
        hub.scrape()
    );
    assert_eq!(
        hub.metric(r#"vhub_limit_refusals_total{limit="handshake_timeout"}"#),
        1.0
    );
    pair.check("after headers without end");
}

/// A FRAMES message with one frame of `len` bytes.
fn frames_message(first_seq: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = FramesWriter::begin(&mut out, first_seq);
    let mut f = frame(PAIR_A, [0x02, 0xee, 0, 0, 0, 1], &[]);
    f.resize(len, 0x55);
    w.push(&f);
    w.finish();
    out
}

fn protocol_violations_close_only_the_violating_session(backend: IoBackend) {
    let hub = hub(backend);
    let mut pair = Pair::new(hub.addr());
    let errors = "vhub_protocol_errors_total";
    let sessions = r#"vhub_sessions{hub="DEFAULT"}"#;

    let mut violations: Vec<(&str, Vec<u8>)> = Vec::new();
    // A frame one byte over the negotiated maximum (1518).
    violations.push(("frame too long", frames_message(1, 1519)));
    // A frame count of 2^32 - 1 with a body that holds one frame.
    let mut m = frames_message(1, 60);
    m[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    violations.push(("count 2^32-1", m));
    // A body length of 4 GiB: refused from the 8-byte header alone.
    let mut m = frames_message(1, 60);
    m[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    violations.push(("body 4 GiB", m));
    // A batch that lies about its length: the body length says 26 bytes
    // (one 10-byte frame) but the frame inside says it has 60.
    let mut m = frames_message(1, 60);
    m[4..8].copy_from_slice(&26u32.to_be_bytes());
    violations.push(("batch shorter than its frame", m));
    // An ACK for frame 1000: the hub sent this session nothing.
    let mut m = Vec::new();
    wire::encode_ack(&mut m, 1000);
    violations.push(("ack from the future", m));
    // Sequence number 0.
    violations.push(("sequence 0", frames_message(0, 60)));

    for (i, (what, bytes)) in violations.iter().enumerate() {
        let (mut raw, _) = raw_session(hub.addr());
        // A valid frame first: the session is live and forwarding.
        let n = pair.a.received.len();
        let ok = frame(PAIR_A, [0x02, 0xee, 0, 0, 0, 2], what.as_bytes());
        let mut good = Vec::new();
        let mut w = FramesWriter::begin(&mut good, 1);
        w.push(&ok);
        w.finish();
        raw.send(&good).unwrap();
        assert!(
            receives(&mut pair.a, n, &ok, T),
            "{what}: valid frame first"
        );

        let seq_fix = |mut b: Vec<u8>| {
            // FRAMES after the valid one start at 2 (except "sequence 0").
            if b[0] == 1 && b[8..16] == 1u64.to_be_bytes() {
                b[8..16].copy_from_slice(&2u64.to_be_bytes());
            }
            b
        };
        raw.send(&seq_fix(bytes.clone())).unwrap();
        let (code, reason) = read_close(&mut raw);
        assert_eq!(code, CloseCode::ProtocolError, "{what}: {reason}");
        assert!(!reason.is_empty(), "{what}: the reason says why");
        println!("{what}: CLOSE(protocol error) {reason:?}");
        assert!(raw.wait_closed(T), "{what}: connection left open");
        assert!(
            wait_for(T, || hub.metric(errors) == (i + 1) as f64),
            "{what}: {}",
            hub.scrape()
        );
        assert!(
            wait_for(T, || hub.metric(sessions) == 2.0),
            "{what}: session gone"
        );
        pair.check(&format!("after {what}"));
    }
    // None of the invalid frames was forwarded.
    assert!(pair
        .a
        .received
        .iter()
        .all(|f| f[6..12] != [0x02, 0xee, 0, 0, 0, 1]));
}

fn a_mac_flood_of_a_million_sources_is_capped_per_port(backend: IoBackend) {
    let hub = hub(backend);
    let mut pair = Pair::new(hub.addr());
    let mut flooder =
        TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    // The flooder's first MAC is learned; every later frame is addressed to
    // it, so the fabric drops them (same segment) after learning the source.
    let home = [0x02, 0xf1, 0, 0, 0, 0];
    flooder.send(&frame(BROADCAST, home, b"home"));
    flooder.pump().unwrap();
    const N: u32 = 1_000_000;
    let frames = (1..=N).map(|i| {
        let b = i.to_be_bytes();
        frame(home, [0x02, 0xf2, b[0], b[1], b[2], b[3]], b"flood")
    });
    let sent = send_many(&mut flooder, frames);
    assert_eq!(sent, N as usize);
    pair.check("during the flood");
    let frames_in = r#"vhub_frames_total{direction="in"}"#;
    assert!(
        wait_for(T, || hub.metric(frames_in) >= f64::from(N)),
        "{}",
        hub.scrape()
    );
    let m = hub.scrape();
    let macs = common::metric(&m, r#"vhub_mac_entries{hub="DEFAULT"}"#);
    let cap = 1024.0;
    // The flooder's port holds at most the cap; the pair holds its own two.
    assert!(macs <= cap + 2.0, "MAC table grew to {macs}");
    assert!(macs >= cap, "the cap was reached: {macs}");
    let refused = common::metric(&m, r#"vhub_mac_refused_total{reason="port_cap"}"#);
    assert!(refused >= f64::from(N) - cap, "refusals counted: {refused}");
    assert!(common::metric(&m, r#"vhub_frames_dropped_total{reason="same_segment"}"#) > 0.0);
    // The pair's own entries were not pushed out.
    pair.check("after the flood");
    assert!(
        flooder.pump().is_ok(),
        "the flooder's session itself is kept"
    );
}

fn a_receiver_that_never_reads_gets_tail_drops_and_slows_nobody(backend: IoBackend) {
    let hub = hub(backend);
    let mut pair = Pair::new(hub.addr());
    let sink_mac = [0x02, 0x51, 0, 0, 0, 1];
    let mut sink = TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    sink.send(&frame(BROADCAST, sink_mac, b"sink"));
    sink.pump().unwrap();
    // From here on the sink never reads.
    let mut sender = TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    let src = [0x02, 0x52, 0, 0, 0, 1];
    let payload = vec![0x5a; 1500];
    // 50 MB in five rounds of 10 MB, the pair checked after each.
    let per_round = (10 << 20) / (payload.len() + 14);
    let mut frames = 0;
    for round in 1..=5 {
        frames += send_many(
            &mut sender,
            (0..per_round).map(|_| frame(sink_mac, src, &payload)),
        );
        pair.check(&format!(
            "with {}0 MB sent to a receiver that never reads",
            round
        ));
    }
    let dropped = r#"vhub_frames_dropped_total{reason="queue_full"}"#;
    let frames_in = r#"vhub_frames_total{direction="in"}"#;
    assert!(
        wait_for(T, || hub.metric(frames_in) >= frames as f64),
        "every frame reached the hub: {}",
        hub.scrape()
    );
    let m = hub.scrape();
    let d = common::metric(&m, dropped);
    assert!(d > 0.0, "no tail drops:\n{m}");
    // What was not dropped fits the sink's queue and the socket buffers.
    assert!(d >= (frames as f64) * 0.5, "{d} of {frames} dropped");
    assert_eq!(common::metric(&m, r#"vhub_sessions{hub="DEFAULT"}"#), 4.0);
    pair.check("after 50 MB to a receiver that never reads");
    drop(sink);
}

fn a_client_that_vanishes_mid_record_leaves_a_detached_session(backend: IoBackend) {
    let hub = hub(backend);
    let mut pair = Pair::new(hub.addr());
    let (mut raw, _) = raw_session(hub.addr());
    let half_sent = frame(PAIR_A, [0x02, 0xee, 0, 0, 0, 3], b"never complete");
    let mut msg = Vec::new();
    let mut w = FramesWriter::begin(&mut msg, 1);
    w.push(&half_sent);
    w.finish();
    let record = raw.seal(&msg);
    raw.stream.write_all(&record[..record.len() / 2]).unwrap();
    raw.stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(raw);

    let detached = r#"vhub_sessions_detached{hub="DEFAULT"}"#;
    assert!(
        wait_for(T, || hub.metric(detached) == 1.0),
        "{}",
        hub.scrape()
    );
    assert_eq!(hub.metric(r#"vhub_sessions{hub="DEFAULT"}"#), 3.0);
    pair.check("after a client vanished mid-record");
    assert!(
        !pair.a.received.contains(&half_sent),
        "half a record was delivered"
    );
    // The pair is told nothing; a new session still works.
    let mut c = TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    let n = pair.b.received.len();
    let f = frame(PAIR_B, [0x02, 0xee, 0, 0, 0, 4], b"new");
    c.send(&f);
    c.pump().unwrap();
    assert!(receives(&mut pair.b, n, &f, T));
}

// ----------------------------------------------------------------------
// Client certificates (the TLS layer is the same on both backends).
// ----------------------------------------------------------------------

/// Runs `openssl ARGS` in `dir`; panics with its output on failure.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI is installed");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME.crt`, `NAME.key`) made by the openssl CLI.
fn make_ca(dir: &std::path::Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// A client certificate for `subj` signed by CA `ca`, loaded (its key file
/// has mode 0600, or the certs crate would refuse it).
fn make_client(dir: &std::path::Path, ca: &str, name: &str, subj: &str) -> certs::Identity {
    use std::os::unix::fs::PermissionsExt;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subj,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-days",
            "2",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-extfile",
            "client.ext",
            "-out",
            &format!("{name}.crt"),
        ],
    );
    let key = dir.join(format!("{name}.key"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    certs::load(&dir.join(format!("{name}.crt")), &key).expect("load the client identity")
}

fn client_certificates_log_in_bound_users_and_refuse_the_rest(backend: IoBackend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_ca(dir, "clients-ca");
    make_ca(dir, "other-ca");
    let carol = make_client(dir, "clients-ca", "carol", "/CN=carol");
    let dave = make_client(dir, "clients-ca", "dave", "/O=vhub-test/CN=dave");
    let erin = make_client(dir, "clients-ca", "erin", "/CN=erin");
    // Same subject as carol, but from a CA the hub does not trust.
    let mallory = make_client(dir, "other-ca", "mallory", "/CN=carol");
    let hash = hub::users::hash_password_with_cost("secret", 10).unwrap();
    let users = format!(
        "[[user]]\nname = \"alice\"\nhub = \"DEFAULT\"\npassword = \"{hash}\"\n\
         [[user]]\nname = \"carol\"\nhub = \"DEFAULT\"\ncert_fingerprint = \"{}\"\n\
         [[user]]\nname = \"dave\"\nhub = \"DEFAULT\"\ncert_subject = \"O = vhub-test, CN = dave\"\n",
        carol.fingerprint()
    );
    let db = hub::users::UserDb::from_toml(&users, &dir.join("users.toml")).unwrap();
    let hub = common::start_hub_spec(
        common::HubSpec {
            backend,
            client_ca: Some(dir.join("clients-ca.crt")),
            auth: Some(std::sync::Arc::new(db)),
            ..Default::default()
        },
        |s| s.auth = quick_throttle(),
    );
    // Password logins (no certificate) still work: the pair is alice's.
    let mut pair = Pair::new(hub.addr());
    let with_cert = |id: &certs::Identity, creds: Option<(&str, &str)>| {
        TestClient::connect_ext(
            hub.addr(),
            "DEFAULT",
            creds,
            SessionConfig::default(),
            &TlsOptions::default(),
            &Extras {
                cert: Some(id.clone()),
                local_ip: None,
            },
        )
    };
    let refused = |r: Result<TestClient, ClientError>| match r {
        Err(ClientError::Refused(r)) => (r.status.0, r.code),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("logged in"),
    };
    // Bound by fingerprint, without a user name or with it.
    let mut c = with_cert(&carol, None).expect("carol by certificate");
    with_cert(&carol, Some(("carol", ""))).expect("carol by certificate, named");
    // Bound by subject.
    with_cert(&dave, None).expect("dave by certificate subject");
    pair.check("with certificate sessions");
    let n = pair.a.received.len();
    let f = frame(PAIR_A, [0x02, 0xc0, 0, 0, 0, 1], b"from carol");
    c.send(&f);
    c.pump().unwrap();
    assert!(receives(&mut pair.a, n, &f, T), "carol's frame arrives");

    // Another CA: refused, saying why.
    assert_eq!(
        refused(with_cert(&mallory, None)),
        (401, "cert-refused".into())
    );
    assert_eq!(
        refused(with_cert(&mallory, Some(("carol", "")))),
        (401, "cert-refused".into())
    );
    // The right CA, but bound to nobody, or to another user than named.
    assert_eq!(
        refused(with_cert(&erin, None)),
        (401, "cert-not-bound".into())
    );
    assert_eq!(
        refused(with_cert(&erin, Some(("carol", "")))),
        (401, "cert-not-bound".into())
    );
    assert_eq!(
        refused(with_cert(&carol, Some(("dave", "")))),
        (401, "cert-not-bound".into())
    );
    // A certificate does not replace a password that is given: wrong is wrong.
    assert_eq!(
        refused(with_cert(&carol, Some(("alice", "wrong")))),
        (401, "auth-failed".into())
    );
    // No certificate, no credentials.
    assert_eq!(
        refused(TestClient::connect(hub.addr(), "DEFAULT", None)),
        (401, "auth-required".into())
    );
    let m = hub.scrape();
    assert_eq!(
        common::metric(&m, r#"vhub_handshakes_total{result="auth_failed"}"#),
        7.0
    );
    assert_eq!(common::metric(&m, r#"vhub_sessions{hub="DEFAULT"}"#), 5.0);
    pair.check("after refused certificates");
}
