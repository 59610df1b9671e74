//! The hub end to end, over real TCP and real TLS on loopback, with the
//! protocol client of `vhub-bench`. Every test runs on both I/O backends,
//! epoll and io_uring (skipped, saying why, where io_uring is blocked).

#[macro_use]
mod common;

use std::time::Duration;

use common::{start_hub_on, IoBackend};
use vhub_bench::client::{frame, mac, ClientError, TestClient, BROADCAST};

const T: Duration = Duration::from_secs(5);

on_both_backends!(
    unicast_reaches_only_its_destination_and_broadcast_stays_in_its_hub,
    frames_cross_shards,
    resume_after_cut_delivers_what_was_missed,
    resume_of_an_unknown_session_is_refused_with_410_and_the_client_starts_over,
    wrong_password_unknown_hub_and_anonymous_refusals,
    session_limit_answers_429,
    close_and_shutdown_reasons_reach_the_client,
    a_lone_frame_is_acknowledged_after_the_ack_delay_not_the_keepalive,
    a_busy_polling_shard_sends_while_it_polls,
);

fn alice(addr: std::net::SocketAddr) -> TestClient {
    TestClient::connect(addr, "DEFAULT", Some(("alice", "secret"))).expect("alice connects")
}

fn unicast_reaches_only_its_destination_and_broadcast_stays_in_its_hub(backend: IoBackend) {
    let hub = start_hub_on(backend, 1, false, |_| {});
    let mut a = alice(hub.addr());
    let mut b = alice(hub.addr());
    let mut c = alice(hub.addr());
    let mut other = TestClient::connect(hub.addr(), "OTHER", Some(("bob", "hunter2"))).unwrap();

    // B and C announce themselves (broadcast): everyone else on DEFAULT sees it.
    b.send(&frame(BROADCAST, mac(2), b"hello from b"));
    c.send(&frame(BROADCAST, mac(3), b"hello from c"));
    b.pump().unwrap();
    c.pump().unwrap();
    assert_eq!(a.recv_until(2, T), 2);
    assert_eq!(b.recv_until(1, T), 1, "b sees c's broadcast, not its own");
    assert_eq!(c.recv_until(1, T), 1);
    assert_eq!(b.received[0], frame(BROADCAST, mac(3), b"hello from c"));

    // A → B unicast: only B gets it.
    let f = frame(mac(2), mac(1), b"for b only");
    a.send(&f);
    a.pump().unwrap();
    assert_eq!(b.recv_until(2, T), 2);
    assert_eq!(b.received[1], f);
    c.pump_for(Duration::from_millis(300));
    assert_eq!(c.received.len(), 1, "c must not see unicast for b");
    // The other hub saw nothing at all.
    other.pump_for(Duration::from_millis(300));
    assert!(
        other.received.is_empty(),
        "frames crossed from DEFAULT to OTHER"
    );
    // And a broadcast in OTHER does not reach DEFAULT.
    other.send(&frame(BROADCAST, mac(9), b"other hub"));
    other.pump().unwrap();
    a.pump_for(Duration::from_millis(300));
    assert_eq!(a.received.len(), 2);
}

fn frames_cross_shards(backend: IoBackend) {
    let hub = start_hub_on(backend, 2, true, |_| {});
    let mut a = TestClient::connect(hub.shard_addr(0), "DEFAULT", None).unwrap();
    let mut b = TestClient::connect(hub.shard_addr(1), "DEFAULT", None).unwrap();
    // Learn both, then unicast both ways, then many frames.
    a.send(&frame(BROADCAST, mac(1), b"a"));
    a.pump().unwrap();
    assert_eq!(b.recv_until(1, T), 1);
    b.send(&frame(BROADCAST, mac(2), b"b"));
    b.pump().unwrap();
    assert_eq!(a.recv_until(1, T), 1);
    for i in 0..2000u32 {
        a.send(&frame(mac(2), mac(1), &i.to_be_bytes()));
        if i % 100 == 99 {
            a.pump().unwrap();
        }
    }
    a.pump().unwrap();
    assert_eq!(b.recv_until(2001, Duration::from_secs(10)), 2001);
    for (i, f) in b.received[1..].iter().enumerate() {
        assert_eq!(&f[14..18], &(i as u32).to_be_bytes(), "in order");
    }
    let t = hub.server().switchboard.metrics.totals();
    assert!(t.handoff_frames >= 2001, "frames crossed shards: {t:?}");
    assert!(t.handoff_batches < t.handoff_frames, "batched: {t:?}");
}

fn resume_after_cut_delivers_what_was_missed(backend: IoBackend) {
    for shard_of_resume in [0usize, 1] {
        let hub = start_hub_on(backend, 2, true, |_| {});
        let mut a = TestClient::connect(hub.shard_addr(0), "DEFAULT", None).unwrap();
        let mut b = TestClient::connect(hub.shard_addr(0), "DEFAULT", None).unwrap();
        a.send(&frame(BROADCAST, mac(1), b"a"));
        a.pump().unwrap();
        b.recv_until(1, T);
        a.cut();
        // While A is away, B sends 100 frames to A's MAC.
        for i in 0..100u32 {
            b.send(&frame(mac(1), mac(2), &i.to_be_bytes()));
        }
        b.pump().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // A comes back (on the same shard, or on the other: then the hub
        // moves the connection to the session's shard).
        let a_addr = hub.shard_addr(shard_of_resume);
        a.set_addr(a_addr);
        a.resume().expect("resume");
        assert_eq!(
            a.recv_until(100, T),
            100,
            "resumed on shard {shard_of_resume}"
        );
        for (i, f) in a.received.iter().enumerate() {
            assert_eq!(&f[14..18], &(i as u32).to_be_bytes());
        }
        assert_eq!(a.session.stats().rx_gaps, 0);
        // Traffic flows again both ways.
        a.send(&frame(mac(2), mac(1), b"back"));
        a.pump().unwrap();
        assert_eq!(b.recv_until(2, T), 2);
        let t = hub.server().switchboard.metrics.totals();
        assert_eq!(t.resumes, 1);
        assert_eq!(t.migrations, shard_of_resume as u64);
    }
}

fn resume_of_an_unknown_session_is_refused_with_410_and_the_client_starts_over(backend: IoBackend) {
    let hub = start_hub_on(backend, 1, true, |_| {});
    let mut a = TestClient::connect(hub.addr(), "DEFAULT", None).unwrap();
    a.cut();
    drop(hub); // the hub restarts: a new one knows nothing
    let hub2 = start_hub_on(backend, 1, true, |_| {});
    a.set_addr(hub2.addr());
    match a.resume() {
        Err(ClientError::Ended(e)) => assert!(format!("{e:?}").contains("SessionExpired")),
        other => panic!("expected session expiry, got {:?}", other.err()),
    }
    // A fresh session works.
    a.resume().expect("new session");
    assert!(a.session.token().is_some());
}

fn wrong_password_unknown_hub_and_anonymous_refusals(backend: IoBackend) {
    let hub = start_hub_on(backend, 1, false, |_| {});
    let mut healthy = alice(hub.addr());
    let mut peer = alice(hub.addr());
    peer.send(&frame(BROADCAST, mac(7), b"peer"));
    peer.pump().unwrap();
    healthy.recv_until(1, T);

    let refused = |hubname: &str, creds: Option<(&str, &str)>| match TestClient::connect(
        hub.addr(),
        hubname,
        creds,
    ) {
        Err(ClientError::Refused(r)) => r,
        Ok(_) => panic!("{hubname} {creds:?} was accepted"),
        Err(e) => panic!("unexpected error {e}"),
    };
    let r = refused("DEFAULT", Some(("alice", "wrong")));
    assert_eq!((r.status.0, r.code.as_str()), (401, "auth-failed"));
    assert!(!r.is_retryable());
    let r = refused("DEFAULT", Some(("mallory", "x")));
    assert_eq!(r.status.0, 401);
    let r = refused("DEFAULT", None);
    assert_eq!((r.status.0, r.code.as_str()), (401, "auth-required"));
    let r = refused("NOPE", Some(("alice", "secret")));
    assert_eq!((r.status.0, r.code.as_str()), (404, "unknown-hub"));
    // alice's password is not valid on OTHER.
    let r = refused("OTHER", Some(("alice", "secret")));
    assert_eq!(r.status.0, 401);

    // Meanwhile the healthy session still passes frames.
    peer.send(&frame(BROADCAST, mac(7), b"still here"));
    peer.pump().unwrap();
    assert_eq!(healthy.recv_until(2, T), 2);
}

fn session_limit_answers_429(backend: IoBackend) {
    let hub = start_hub_on(backend, 1, true, |s| s.max_sessions = 2);
    let _a = TestClient::connect(hub.addr(), "DEFAULT", None).unwrap();
    let _b = TestClient::connect(hub.addr(), "DEFAULT", None).unwrap();
    match TestClient::connect(hub.addr(), "DEFAULT", None) {
        Err(ClientError::Refused(r)) => {
            assert_eq!(r.status.0, 429);
            assert!(r.is_retryable());
            assert_eq!(r.retry_after, Some(30));
        }
        other => panic!("third session: {:?}", other.err()),
    }
}

fn close_and_shutdown_reasons_reach_the_client(backend: IoBackend) {
    let hub = start_hub_on(backend, 1, true, |_| {});
    let mut a = TestClient::connect(hub.addr(), "DEFAULT", None).unwrap();
    drop(hub); // SIGTERM-equivalent: Server::shutdown
    a.pump_for(Duration::from_millis(500));
    let closed = a.events.iter().find_map(|e| match e {
        switch_core::session::Event::Closed {
            code,
            reason,
            by_peer: true,
        } => Some((*code, reason.clone())),
        _ => None,
    });
    let (code, reason) = closed.expect("the client was told");
    assert_eq!(code, switch_core::wire::CloseCode::Shutdown);
    assert!(reason.contains("shutting down"));
}

fn a_lone_frame_is_acknowledged_after_the_ack_delay_not_the_keepalive(backend: IoBackend) {
    // A keep-alive far longer than the wait below: an ACK that waits for
    // the hub's next timer instead of `ack_delay` (5 ms) shows as a frame
    // still unacknowledged seconds later.
    let hub = start_hub_on(backend, 1, true, |s| {
        s.session.keepalive = Duration::from_secs(30);
        s.session.timeout = Duration::from_secs(90);
    });
    let mut a = TestClient::connect(hub.addr(), "DEFAULT", None).unwrap();
    let mut b = TestClient::connect(hub.addr(), "DEFAULT", None).unwrap();
    for i in 0..3u32 {
        a.send(&frame(BROADCAST, mac(1), &i.to_be_bytes()));
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while a.session.buffered_frames() > 0 && std::time::Instant::now() < deadline {
            a.pump().unwrap();
        }
        assert_eq!(
            a.session.buffered_frames(),
            0,
            "frame {i} not acknowledged within 3 s"
        );
        assert_eq!(b.recv_until(i as usize + 1, T), i as usize + 1);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With `busy_poll`, a shard that has had traffic polls instead of
/// sleeping, and the traffic that comes while it polls is handled by the
/// polling shard: its reads and writes keep going. On io_uring the poll
/// has to submit the queued operations itself (tokio-uring submits only
/// when the runtime parks, and a task that merely yields does not let it
/// park): were it not to, a polling shard would not read anything until
/// its window ran out, and frames sent every ~1 ms into a 10 ms window
/// would never find it polling. So most of them must count as hits (a
/// stall of the sender longer than the window ends a poll; the bound
/// leaves room for many).
fn a_busy_polling_shard_sends_while_it_polls(backend: IoBackend) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    const N: usize = 300;
    for shards in [1, 2] {
        let hub = start_hub_on(backend, shards, true, |s| {
            s.busy_poll = Duration::from_millis(10);
        });
        let mut a = TestClient::connect(hub.shard_addr(0), "DEFAULT", None).unwrap();
        let mut b = TestClient::connect(hub.shard_addr(shards - 1), "DEFAULT", None).unwrap();
        b.send(&frame(BROADCAST, mac(2), b"b"));
        b.pump().unwrap();
        assert_eq!(
            a.recv_until(1, T),
            1,
            "{shards} shards: b's broadcast reaches a"
        );
        a.set_read_wait(Duration::from_millis(1)).unwrap();
        let sent = Arc::new(AtomicUsize::new(0));
        let sender = {
            let sent = sent.clone();
            std::thread::spawn(move || {
                for i in 0..N as u32 {
                    a.send(&frame(mac(2), mac(1), &i.to_be_bytes()));
                    a.pump().unwrap();
                    sent.store(i as usize + 1, Ordering::SeqCst);
                }
                a
            })
        };
        // How many frames a had sent when b got its first one.
        let mut sent_at_first = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while b.received.len() < N && std::time::Instant::now() < deadline {
            b.pump().unwrap();
            if sent_at_first.is_none() && !b.received.is_empty() {
                sent_at_first = Some(sent.load(Ordering::SeqCst));
            }
        }
        let _a = sender.join().unwrap();
        assert_eq!(b.received.len(), N, "{shards} shards: every frame arrives");
        for (i, f) in b.received.iter().enumerate() {
            assert_eq!(&f[14..18], &(i as u32).to_be_bytes(), "in order");
        }
        let first = sent_at_first.unwrap();
        assert!(
            first < N,
            "{shards} shards: b got nothing while a was sending (its first frame came after all {N}): \
             the polling shard held its writes back"
        );
        // Counted when a poll ends (10 ms after the last traffic).
        assert!(
            common::wait_for(T, || hub.metric("vhub_busy_poll_seconds_total") > 0.0),
            "{shards} shards: the time spent polling is counted"
        );
        let hits = hub.metric("vhub_busy_poll_hits_total");
        eprintln!(
            "{shards} shards: {hits} rounds of traffic found their shard polling ({N} frames sent)"
        );
        assert!(
            hits >= (N / 3) as f64,
            "{shards} shards: only {hits} rounds of traffic found their shard polling ({N} frames sent)"
        );
    }
}
