//! The hub's SoftEther side, in process, over real TLS: a SoftEther
//! client made of switch-core's `ClientHandshake` and data framing (the
//! same code `vnic connect softether://` runs, itself tested against the
//! real vpnserver) logs in on the hub's TLS port beside `vhub/1` clients.
//! The real Debian `vpnclient` against the hub is `client/tests/softether_hub.rs`.
//!
//! - frames both ways between a SoftEther session and a `vhub/1` session
//!   on another shard; the hub's first keep-alive; metrics and refusals;
//! - every refusal a real client can meet, with SoftEther's error code;
//! - framing errors end only that connection; a SoftEther client that
//!   stops reading costs bounded memory and counted drops, nobody else.

mod common;

use std::time::{Duration, Instant};

use common::*;
use switch_core::softether::data::{encode_batch, KEEPALIVE_MAGIC};
use switch_core::softether::{
    ClientAuth, ClientConfig, ClientError, ClientEvent, ClientHandshake, ClientState, Decoder,
    ErrorCode, HashedPassword, Item, Welcome,
};
use vhub_bench::client::{frame, TestClient};

const T: Duration = Duration::from_secs(10);
const SE_MAC: [u8; 6] = [0x02, 0x5e, 0, 0, 0, 1];
const VH_MAC: [u8; 6] = [0x02, 0x5e, 0, 0, 0, 2];

/// A SoftEther client on a raw TLS connection.
struct SeClient {
    raw: RawTls,
    decoder: Decoder,
    welcome: Welcome,
    received: Vec<Vec<u8>>,
    keepalives: usize,
}

fn password(user: &str, password: &str) -> ClientAuth {
    ClientAuth::Password(HashedPassword::new(user, password))
}

/// Runs a handshake to its end: the welcome, or why not.
fn handshake(raw: &mut RawTls, mut hs: ClientHandshake) -> Result<Option<Welcome>, ClientError> {
    let deadline = Instant::now() + T;
    let mut welcome = None;
    loop {
        let mut out = Vec::new();
        if hs.poll_transmit(&mut out) > 0 {
            raw.send(&out).expect("send");
        }
        let used = hs.handle_input(Instant::now(), &raw.plain)?;
        raw.plain.drain(..used);
        while let Some(ev) = hs.poll_event() {
            if let ClientEvent::Established(w) = ev {
                welcome = Some(w);
            }
        }
        if hs.state() == ClientState::Established {
            return Ok(welcome);
        }
        if hs.wants_transmit() {
            continue;
        }
        if !raw.pump() && raw.plain.is_empty() {
            return Err(ClientError::Closed);
        }
        assert!(Instant::now() < deadline, "the handshake did not end");
    }
}

impl SeClient {
    fn login(
        addr: std::net::SocketAddr,
        hub: &str,
        user: &str,
        auth: ClientAuth,
        probe: bool,
    ) -> Result<SeClient, ClientError> {
        let mut raw = RawTls::connect(addr).expect("TLS to the hub");
        let mut cfg = ClientConfig::new("127.0.0.1", hub, user, auth, [7; 20]);
        cfg.probe = probe;
        let hs = ClientHandshake::login(Instant::now(), cfg, 1);
        let welcome = handshake(&mut raw, hs)?.expect("a login ends with a welcome");
        Ok(SeClient {
            raw,
            decoder: Decoder::default(),
            welcome,
            received: Vec::new(),
            keepalives: 0,
        })
    }

    fn send(&mut self, frames: &[&[u8]]) {
        let mut out = Vec::new();
        encode_batch(&mut out, frames.iter().copied()).expect("frames fit");
        self.raw.send(&out).expect("send");
    }

    /// Reads what arrived; false once the hub closed the connection.
    fn pump(&mut self) -> bool {
        let open = self.raw.pump();
        let mut used = 0;
        while let Some((item, n)) = self
            .decoder
            .decode(&self.raw.plain[used..])
            .expect("the hub's framing is valid")
        {
            match item {
                Item::Frame(f) => self.received.push(f.to_vec()),
                Item::KeepAlive(_) => self.keepalives += 1,
                Item::Skipped(s) => panic!("the hub sent a skipped item: {s:?}"),
            }
            used += n;
        }
        self.raw.plain.drain(..used);
        open
    }

    fn receives(&mut self, f: &[u8]) -> bool {
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if self.received.iter().any(|r| r == f) {
                return true;
            }
            if !self.pump() {
                break;
            }
        }
        self.received.iter().any(|r| r == f)
    }
}

fn refusal(r: Result<SeClient, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Refused(code)) => code,
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, got a welcome"),
    }
}

#[test]
fn a_softether_client_and_a_vhub_client_switch_frames_through_the_hub() {
    // Two shards: the SoftEther session on shard 0, the vhub/1 one on 1.
    let hub = start_hub(2, false, |_| {});
    let mut se = SeClient::login(
        hub.shard_addr(0),
        "DEFAULT",
        "alice",
        password("alice", "secret"),
        false,
    )
    .expect("alice logs in from SoftEther");
    assert_eq!(se.welcome.max_connection, 1);
    assert!(se.welcome.use_encrypt && !se.welcome.use_compress && !se.welcome.qos);
    assert_eq!(se.welcome.timeout_ms, 20_000);
    assert!(
        se.welcome.session_name.starts_with("SID-ALICE-"),
        "{}",
        se.welcome.session_name
    );
    // The data phase starts with the hub's keep-alive.
    let deadline = Instant::now() + T;
    while se.keepalives == 0 && Instant::now() < deadline {
        assert!(se.pump(), "the hub closed the connection");
    }
    assert!(se.keepalives > 0, "no keep-alive from the hub");

    let mut vh = TestClient::connect(hub.shard_addr(1), "DEFAULT", Some(("alice", "secret")))
        .expect("vhub client");
    // A broadcast from the SoftEther client reaches the vhub client (and
    // teaches the hub where SE_MAC is)…
    let hello = frame([0xff; 6], SE_MAC, b"hello from softether");
    se.send(&[&hello]);
    assert!(receives(&mut vh, 0, &hello, T), "broadcast se -> vhub");
    // …and unicasts go both ways, several per batch.
    let to_vh: Vec<Vec<u8>> = (0..5)
        .map(|i| frame(VH_MAC, SE_MAC, format!("se {i}").as_bytes()))
        .collect();
    let n = vh.received.len();
    vh.send(&frame(SE_MAC, VH_MAC, b"learn me"));
    vh.pump().unwrap();
    let refs: Vec<&[u8]> = to_vh.iter().map(Vec::as_slice).collect();
    se.send(&refs);
    for f in &to_vh {
        assert!(receives(&mut vh, n, f, T), "unicast se -> vhub");
    }
    for i in 0..5 {
        let f = frame(SE_MAC, VH_MAC, format!("vhub {i}").as_bytes());
        vh.send(&f);
        vh.pump().unwrap();
        assert!(se.receives(&f), "unicast vhub -> se");
    }
    // A full-size frame both ways.
    let big = frame(SE_MAC, VH_MAC, &[0x5a; 1500]);
    vh.send(&big);
    vh.pump().unwrap();
    assert!(se.receives(&big), "1514-byte frame vhub -> se");

    assert_eq!(
        hub.metric("vhub_sessions_by_protocol{protocol=\"softether\"}"),
        1.0
    );
    assert_eq!(
        hub.metric("vhub_sessions_by_protocol{protocol=\"vhub\"}"),
        1.0
    );
    assert_eq!(hub.metric("vhub_sessions{hub=\"DEFAULT\"}"), 2.0);

    // The SoftEther session ends with its connection: no resume.
    drop(se);
    assert!(
        wait_for(T, || hub
            .metric("vhub_sessions_by_protocol{protocol=\"softether\"}")
            == 0.0),
        "the SoftEther session outlived its connection"
    );
    assert_eq!(hub.metric("vhub_sessions_detached{hub=\"DEFAULT\"}"), 0.0);
    assert!(vh.pump().is_ok(), "the vhub client is unaffected");
}

#[test]
fn every_refusal_carries_softether_s_error_code() {
    let hub = start_hub(1, false, |s| {
        // OTHER does not take SoftEther clients.
        s.hubs[1].softether = false;
    });
    let addr = hub.addr();
    let failed = |h: &TestHub| h.metric("vhub_handshakes_total{result=\"auth_failed\"}");
    let before = failed(&hub);
    let wrong = SeClient::login(addr, "DEFAULT", "alice", password("alice", "nope"), false);
    assert_eq!(refusal(wrong), ErrorCode::AuthFailed);
    let nobody = SeClient::login(addr, "DEFAULT", "mallory", password("mallory", "x"), false);
    assert_eq!(refusal(nobody), ErrorCode::AuthFailed);
    let anonymous = SeClient::login(addr, "DEFAULT", "alice", ClientAuth::Anonymous, false);
    assert_eq!(refusal(anonymous), ErrorCode::AuthFailed);
    assert_eq!(failed(&hub), before + 3.0);

    let unknown = SeClient::login(addr, "NOPE", "alice", password("alice", "secret"), false);
    assert_eq!(refusal(unknown), ErrorCode::HubNotFound);
    assert_eq!(
        hub.metric("vhub_handshakes_total{result=\"unknown_hub\"}"),
        1.0
    );
    let off = SeClient::login(addr, "OTHER", "bob", password("bob", "hunter2"), false);
    assert_eq!(refusal(off), ErrorCode::AccessDenied);

    // A hub name in other case is found (SoftEther's names are
    // case-insensitive); a clear-text login checks the vhub password; the
    // probe is answered with the marker and the login goes on on the same
    // connection.
    let se = SeClient::login(addr, "default", "alice", password("alice", "secret"), true)
        .expect("the probe, then the login on the same connection");
    let plain = SeClient::login(
        addr,
        "DEFAULT",
        "alice",
        ClientAuth::PlainPassword("secret".into()),
        false,
    );
    assert!(plain.is_ok(), "{:?}", plain.err());

    // The page any browser gets passes the client's probe too.
    let page = RawTls::connect(addr)
        .unwrap()
        .request("GET / HTTP/1.1\r\nHost: hub\r\n\r\n");
    assert_eq!(page.status, 200);
    assert!(
        switch_core::softether::probe::is_softether_page(page.body.as_bytes()),
        "no probe marker on the hub's page"
    );

    // An additional connection is refused with 13: the client logs in again.
    let mut raw = RawTls::connect(addr).unwrap();
    let cfg = ClientConfig::new(
        "127.0.0.1",
        "DEFAULT",
        "alice",
        password("alice", "secret"),
        [7; 20],
    );
    let key = se.welcome.session_key;
    let extra = ClientHandshake::additional(Instant::now(), cfg, key, 2);
    assert_eq!(
        handshake(&mut raw, extra),
        Err(ClientError::Refused(ErrorCode::SessionTimeout))
    );
    assert!(raw.wait_closed(T), "the refused connection stays open");
    assert_eq!(
        hub.metric("vhub_sessions_by_protocol{protocol=\"softether\"}"),
        2.0
    );
}

#[test]
fn failed_softether_logins_are_throttled_like_vhub_logins() {
    let hub = start_hub(1, false, |s| {
        s.auth.refuse_after_per_user = 2;
        s.auth.slow_after = 10;
    });
    let addr = hub.addr();
    for _ in 0..2 {
        let r = SeClient::login(addr, "DEFAULT", "alice", password("alice", "no"), false);
        assert_eq!(refusal(r), ErrorCode::AuthFailed);
    }
    // Past the limit even the right password is refused without a check,
    // with the code after which the real client waits 60 s.
    let r = SeClient::login(addr, "DEFAULT", "alice", password("alice", "secret"), false);
    assert_eq!(refusal(r), ErrorCode::HubIsBusy);
    assert!(hub.metric("vhub_limit_refusals_total{limit=\"login_failures_per_user\"}") >= 1.0);
}

#[test]
fn broken_framing_ends_only_that_connection_and_a_stalled_reader_costs_bounded_memory() {
    let hub = start_hub(1, false, |_| {});
    let addr = hub.addr();
    let mut pair = Pair::new(addr);

    // A frame length past SoftEther's hard limit (3200) ends the connection.
    let mut bad =
        SeClient::login(addr, "DEFAULT", "alice", password("alice", "secret"), false).unwrap();
    let mut evil = 1u32.to_be_bytes().to_vec();
    evil.extend_from_slice(&5000u32.to_be_bytes());
    bad.raw.send(&evil).unwrap();
    assert!(bad.raw.wait_closed(T), "the hub kept a broken connection");
    assert!(hub.metric("vhub_protocol_errors_total") >= 1.0);
    // A keep-alive marker with an oversized length too.
    let mut bad =
        SeClient::login(addr, "DEFAULT", "alice", password("alice", "secret"), false).unwrap();
    let mut evil = KEEPALIVE_MAGIC.to_be_bytes().to_vec();
    evil.extend_from_slice(&100_000u32.to_be_bytes());
    bad.raw.send(&evil).unwrap();
    assert!(bad.raw.wait_closed(T), "the hub kept a broken connection");
    pair.check("after the broken SoftEther connections");

    // Runts and frames over 1600 bytes (but within 3200) are skipped and
    // counted; the connection stays.
    let mut se =
        SeClient::login(addr, "DEFAULT", "alice", password("alice", "secret"), false).unwrap();
    let mut odd = 2u32.to_be_bytes().to_vec();
    odd.extend_from_slice(&5u32.to_be_bytes());
    odd.extend_from_slice(&[0; 5]);
    odd.extend_from_slice(&2000u32.to_be_bytes());
    odd.extend_from_slice(&[0; 2000]);
    se.raw.send(&odd).unwrap();
    let hello = frame([0xff; 6], SE_MAC, b"still here");
    se.send(&hello.as_slice().chunks(hello.len()).collect::<Vec<_>>());
    assert!(
        receives(&mut pair.a, 0, &hello, T),
        "the connection was kept"
    );
    assert!(hub.metric("vhub_frames_dropped_total{reason=\"too_long\"}") >= 1.0);

    // The SoftEther client stops reading while the pair floods frames at
    // it: its queue stops at its bound, the rest is dropped and counted,
    // and the pair keeps working.
    let flood: Vec<Vec<u8>> = (0..20_000u32)
        .map(|i| {
            let mut f = frame(SE_MAC, PAIR_A, &[0x33; 1400]);
            f[14..18].copy_from_slice(&i.to_be_bytes());
            f
        })
        .collect();
    let sent = send_many(&mut pair.a, flood);
    assert_eq!(sent, 20_000);
    assert!(
        wait_for(T, || hub
            .metric("vhub_frames_dropped_total{reason=\"queue_full\"}")
            > 0.0),
        "a reader that stopped must cost drops, not memory"
    );
    let buffered = hub.metric("vhub_buffered_bytes");
    assert!(
        buffered <= 2.0 * 1024.0 * 1024.0,
        "the stalled SoftEther client holds {buffered} bytes in the hub"
    );
    pair.check("while a SoftEther client stalls");
    // It reads again: what was queued arrives, in order, and it is alive.
    let deadline = Instant::now() + T;
    while se.received.len() < 100 && Instant::now() < deadline {
        assert!(se.pump());
    }
    let seqs: Vec<u32> = se
        .received
        .iter()
        .filter(|f| f.len() == 1414)
        .map(|f| u32::from_be_bytes(f[14..18].try_into().unwrap()))
        .collect();
    assert!(seqs.len() >= 100, "{} frames arrived", seqs.len());
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order");
}

#[test]
fn an_anonymous_hub_takes_anonymous_softether_logins() {
    let hub = start_hub(1, true, |_| {});
    let se = SeClient::login(hub.addr(), "DEFAULT", "guest", ClientAuth::Anonymous, false)
        .expect("an anonymous login on an anonymous hub");
    assert!(
        se.welcome.session_name.starts_with("SID-GUEST-"),
        "{}",
        se.welcome.session_name
    );
    // A password is still checked where one is given.
    let wrong = SeClient::login(
        hub.addr(),
        "DEFAULT",
        "alice",
        password("alice", "x"),
        false,
    );
    assert_eq!(refusal(wrong), ErrorCode::AuthFailed);
    assert_eq!(
        hub.metric("vhub_sessions_by_protocol{protocol=\"softether\"}"),
        1.0
    );
}

#[test]
fn a_softether_session_is_listed_kicked_and_closed_at_shutdown() {
    let hub = start_hub(1, false, |_| {});
    let sb = hub.server().switchboard.clone();
    let alice = || {
        SeClient::login(
            hub.addr(),
            "DEFAULT",
            "alice",
            password("alice", "secret"),
            false,
        )
        .unwrap()
    };
    let mut kicked = alice();
    let mut live = alice();
    let list = hub::admin::sessions(&sb);
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list
        .iter()
        .all(|s| s.protocol == "softether" && s.user == "alice" && s.state == "attached"));
    // `vhub ctl kick` ends the connection (SoftEther has no CLOSE message).
    hub::admin::kick(&sb, &list[0].id).expect("kick");
    let (first, second) = (&mut kicked, &mut live);
    let deadline = Instant::now() + T;
    let closed = loop {
        let a = !first.pump();
        let b = !second.pump();
        if a || b || Instant::now() > deadline {
            break (a, b);
        }
    };
    assert!(
        closed.0 ^ closed.1,
        "exactly one connection ends: {closed:?}"
    );
    assert!(
        wait_for(T, || hub::admin::sessions(&sb).len() == 1),
        "the kicked session is still listed"
    );
    // A shutdown with a SoftEther session attached ends it.
    drop(hub);
    let still = if closed.0 { &mut live } else { &mut kicked };
    assert!(still.raw.wait_closed(T), "the connection outlived the hub");
}
