//! One test per state transition, with the sim's virtual clock.

use std::time::{Duration, Instant};

use super::input::MAX_PONGS_DUE;
use super::*;
use crate::sim::{test_frame, Pair};
use crate::wire::http::{self, Credentials, FrontRequest, SessionToken, Status};
use crate::wire::{self, CloseCode, FramesWriter, Limits, Message, WireError};

#[allow(clippy::disallowed_methods)] // the one clock read: the sim's origin
fn t0() -> Instant {
    Instant::now()
}

/// A client session whose link just came up (handshake started).
fn linked_client(now: Instant, hub: &str, host: &str, creds: Option<(&str, &str)>) -> Session {
    let mut c = Session::connect(
        now,
        SessionConfig::default(),
        Connect {
            hub: hub.into(),
            host: host.into(),
            credentials: creds.map(|(u, p)| Credentials {
                user: u.into(),
                password: p.into(),
            }),
        },
    );
    c.reconnect(now);
    c
}

/// A hub-side session as the hub creates it after an upgrade.
fn accepted(now: Instant, config: SessionConfig) -> Session {
    Session::accept(
        now,
        config,
        Accept {
            token: SessionToken([1; 16]),
            version: 1,
        },
    )
}

fn established() -> Pair {
    let mut p = Pair::new(t0(), SessionConfig::default(), SessionConfig::default());
    p.drive();
    assert_eq!(p.client.state(), State::Established);
    assert_eq!(p.hub().state(), State::Established);
    p
}

#[test]
fn connect_emits_an_upgrade_request() {
    let now = t0();
    let mut c = linked_client(now, "LAB", "h:1", Some(("u", "p")));
    assert_eq!(c.state(), State::Handshaking);
    let mut out = Vec::new();
    c.poll_transmit(now, &mut out, 1 << 16);
    let (req, n) = http::parse_request(&out, 8192).unwrap().unwrap();
    assert_eq!(n, out.len());
    let FrontRequest::Upgrade(req) = req else {
        panic!()
    };
    assert_eq!(req.hub, "LAB");
    assert_eq!(req.credentials.unwrap().user, "u");
    assert!(req.resume.is_none());
    // Nothing more until the hub answers.
    out.clear();
    assert_eq!(c.poll_transmit(now, &mut out, 1 << 16), 0);
}

#[test]
fn handshaking_to_established_both_sides() {
    let p = established();
    assert_eq!(
        p.client_events,
        [Event::Established {
            resumed: false,
            resent: 0,
            lost: 0
        }]
    );
    assert_eq!(
        p.hub_events,
        [Event::Established {
            resumed: false,
            resent: 0,
            lost: 0
        }]
    );
}

#[test]
fn client_adopts_the_hubs_parameters() {
    let hub_cfg = SessionConfig {
        keepalive: Duration::from_secs(2),
        timeout: Duration::from_secs(7),
        limits: Limits {
            max_frame: 9000,
            max_batch: 64,
        },
        ..SessionConfig::default()
    };
    let mut p = Pair::new(t0(), SessionConfig::default(), hub_cfg);
    p.drive();
    let c = p.client.config();
    assert_eq!(c.keepalive, Duration::from_secs(2));
    assert_eq!(c.timeout, Duration::from_secs(7));
    assert_eq!(c.limits.max_frame, 9000);
    assert_eq!(p.client.token(), p.hub().token());
}

#[test]
fn frames_flow_both_ways_in_order_and_acks_release_the_buffer() {
    let mut p = established();
    for i in 0..1000 {
        p.client
            .send_frame(&test_frame(1, i, 60 + (i as usize % 1400)))
            .unwrap();
        p.hub().send_frame(&test_frame(2, i, 100)).unwrap();
    }
    p.drive();
    assert_eq!(p.to_hub.len(), 1000);
    assert_eq!(p.to_client.len(), 1000);
    for (i, f) in p.to_hub.iter().enumerate() {
        assert_eq!(f, &test_frame(1, i as u32, 60 + (i % 1400)));
    }
    // Frames were acked in bulk (ack_every), the rest after the ack delay.
    assert!(
        p.client.buffered_frames() < 64,
        "{}",
        p.client.buffered_frames()
    );
    p.advance(Duration::from_millis(10));
    p.drive();
    assert_eq!(p.client.buffered_frames(), 0);
    assert_eq!(p.hub().buffered_frames(), 0);
    assert_eq!(p.client.stats().tx_frames, 1000);
    assert_eq!(p.hub().stats().rx_frames, 1000);
}

#[test]
fn many_frames_ride_in_one_message() {
    let now = t0();
    let mut s = accepted(now, SessionConfig::default());
    let mut out = Vec::new();
    s.poll_transmit(now, &mut out, 1 << 20); // the 101
    out.clear();
    for i in 0..100 {
        s.send_frame(&test_frame(1, i, 64)).unwrap();
    }
    s.poll_transmit(now, &mut out, 1 << 20);
    let (m, n) = wire::decode(&out, &Limits::default()).unwrap().unwrap();
    assert_eq!(n, out.len(), "one message carries all 100 frames");
    let Message::Frames(f) = m else { panic!() };
    assert_eq!((f.first_seq(), f.count()), (1, 100));
}

#[test]
fn transmit_respects_batch_and_byte_budget() {
    let now = t0();
    let cfg = SessionConfig {
        limits: Limits {
            max_frame: 1518,
            max_batch: 10,
        },
        ..Default::default()
    };
    let mut s = accepted(now, cfg);
    let mut out = Vec::new();
    s.poll_transmit(now, &mut out, 1 << 20);
    out.clear();
    for i in 0..100 {
        s.send_frame(&test_frame(1, i, 1000)).unwrap();
    }
    s.poll_transmit(now, &mut out, 5000);
    // 5 frames of 1004 bytes fit the ~5000 byte budget (the first always goes).
    let mut off = 0;
    let mut total = 0;
    while let Some((Message::Frames(f), n)) = wire::decode(&out[off..], &Limits::default()).unwrap()
    {
        assert!(f.count() <= 10);
        total += f.count();
        off += n;
    }
    assert!((4..=6).contains(&total), "{total}");
}

#[test]
fn keepalive_ping_pong_measures_rtt() {
    let mut p = established();
    p.advance(Duration::from_secs(5));
    p.drive();
    assert_eq!(p.client.stats().pings_sent, 1);
    assert_eq!(p.client.stats().pongs_received, 1);
    assert_eq!(p.client.rtt(), Some(Duration::ZERO));
    assert!(p.hub().stats().pings_sent >= 1);
    // Pings keep the link alive past the timeout.
    for _ in 0..10 {
        p.advance(Duration::from_secs(5));
        p.drive();
    }
    assert_eq!(p.client.state(), State::Established);
    assert_eq!(p.client.stats().link_deaths, 0);
}

#[test]
fn silence_for_the_timeout_detaches() {
    let mut p = established();
    // The hub stops answering: nothing from it reaches the client.
    p.advance(Duration::from_secs(14));
    assert_eq!(p.client.state(), State::Established);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.client.state(), State::Detached);
    assert_eq!(p.client_events.last(), Some(&Event::LinkDead));
    assert_eq!(p.client.stats().link_deaths, 1);
}

#[test]
fn hub_forgets_a_detached_session_after_the_grace_period() {
    let mut p = established();
    p.cut();
    assert_eq!(p.hub().state(), State::Detached);
    assert_eq!(
        p.hub().poll_timeout(),
        Some(p.now + Duration::from_secs(60))
    );
    p.advance(Duration::from_secs(59));
    assert_eq!(p.hub().state(), State::Detached);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.hub().state(), State::Closed);
    assert!(matches!(
        p.hub_events.last(),
        Some(Event::Closed {
            code: CloseCode::Timeout,
            ..
        })
    ));
    // The client's resume is now refused with 410 and it starts over.
    p.reconnect();
    p.drive();
    assert!(p
        .client_events
        .iter()
        .any(|e| matches!(e, Event::SessionExpired { .. })));
    assert_eq!(p.client.state(), State::Detached);
    assert_eq!(p.client.token(), None);
    p.reconnect();
    p.drive();
    assert_eq!(p.client.state(), State::Established);
    assert_eq!(p.hub().state(), State::Established);
}

#[test]
fn move_to_another_hub_starts_a_new_session_and_keeps_unsent_frames() {
    let mut p = established();
    for i in 0..5 {
        p.client.send_frame(&test_frame(1, i, 100)).unwrap();
    }
    // Transmitted, never acknowledged: the old hub dies with them.
    let mut lost = Vec::new();
    p.client.poll_transmit(p.now, &mut lost, 1 << 20);
    p.cut();
    // Queued while detached: never transmitted.
    for i in 5..8 {
        p.client.send_frame(&test_frame(1, i, 100)).unwrap();
    }
    // Only a detached session moves.
    assert_eq!(p.client.state(), State::Detached);
    let unconfirmed = p.client.move_to(Connect {
        hub: "LAB".into(),
        host: "hub2:8443".into(),
        credentials: None,
    });
    assert_eq!(unconfirmed, 5);
    assert_eq!(p.client.stats().unconfirmed, 5);
    assert_eq!(p.client.token(), None);
    // The second hub has never heard of it: a fresh hub session.
    p.hub = None;
    p.client.reconnect(p.now);
    let mut req = Vec::new();
    p.client.poll_transmit(p.now, &mut req, 1 << 16);
    let head = String::from_utf8_lossy(&req);
    assert!(head.starts_with("GET /vhub/LAB "), "{head}");
    assert!(head.contains("Host: hub2:8443\r\n"), "{head}");
    assert!(
        !head.contains("Vhub-Resume"),
        "a new session, no resume: {head}"
    );
    // Re-run the handshake through the sim (the request above is gone).
    p.client.link_lost(p.now);
    p.reconnect();
    p.drive();
    assert_eq!(p.client.state(), State::Established);
    assert!(!p
        .client_events
        .iter()
        .any(|e| matches!(e, Event::SessionExpired { .. })));
    // The frames queued while detached, and only those, reach the new hub.
    assert_eq!(p.to_hub, [5, 6, 7].map(|i| test_frame(1, i, 100)));
    // An established session does not move.
    let c = Connect {
        hub: "X".into(),
        host: "x".into(),
        credentials: None,
    };
    assert_eq!(p.client.move_to(c), 0);
    assert!(p.client.token().is_some());
}

#[test]
fn resume_resends_exactly_what_was_missed() {
    let mut p = established();
    for i in 0..50 {
        p.client.send_frame(&test_frame(1, i, 100)).unwrap();
        p.hub().send_frame(&test_frame(2, i, 100)).unwrap();
    }
    // Deliver part of the bytes, then cut.
    p.chunk = 2000;
    p.step();
    p.cut();
    let got_hub = p.to_hub.len();
    let got_client = p.to_client.len();
    assert!(got_hub < 50 && got_client < 50);
    // While detached, more frames are queued on both sides.
    for i in 50..60 {
        p.client.send_frame(&test_frame(1, i, 100)).unwrap();
        p.hub().send_frame(&test_frame(2, i, 100)).unwrap();
    }
    p.chunk = usize::MAX;
    p.reconnect();
    p.drive();
    assert_eq!(p.client.state(), State::Established);
    let expect_hub: Vec<_> = (0..60).map(|i| test_frame(1, i, 100)).collect();
    let expect_client: Vec<_> = (0..60).map(|i| test_frame(2, i, 100)).collect();
    assert_eq!(p.to_hub, expect_hub);
    assert_eq!(p.to_client, expect_client);
    assert_eq!(p.client.stats().resumes, 1);
    assert_eq!(p.hub().stats().resumes, 1);
    assert!(p.client_events.iter().any(|e| matches!(
        e,
        Event::Established {
            resumed: true,
            lost: 0,
            ..
        }
    )));
    assert_eq!(
        p.client.stats().lost_on_resume + p.hub().stats().lost_on_resume,
        0
    );
}

#[test]
fn duplicates_are_dropped_and_counted() {
    let now = t0();
    let mut s = accepted(now, SessionConfig::default());
    let mut msg = Vec::new();
    let mut w = FramesWriter::begin(&mut msg, 1);
    for i in 0..3 {
        w.push(&test_frame(1, i, 60));
    }
    w.finish();
    let mut got = 0;
    s.handle_input(now, &msg, |_| got += 1).unwrap();
    s.handle_input(now, &msg, |_| got += 1).unwrap();
    assert_eq!(got, 3);
    assert_eq!(s.stats().rx_duplicates, 3);
    assert_eq!(s.rx_last(), 3);
}

#[test]
fn a_gap_in_sequence_numbers_is_counted() {
    let now = t0();
    let mut s = accepted(now, SessionConfig::default());
    let mut msg = Vec::new();
    let mut w = FramesWriter::begin(&mut msg, 5);
    w.push(&test_frame(1, 0, 60));
    w.finish();
    s.handle_input(now, &msg, |_| {}).unwrap();
    assert_eq!(s.stats().rx_gaps, 4);
}

#[test]
fn resume_with_rx_from_the_future_is_refused() {
    let mut p = established();
    p.hub().send_frame(&test_frame(2, 0, 60)).unwrap();
    p.drive();
    p.cut();
    let now = p.now;
    assert_eq!(
        p.hub().resume(now, 99),
        Err(ResumeError::RxFromTheFuture {
            claimed: 99,
            sent: 1
        })
    );
    assert_eq!(p.hub().state(), State::Detached);
    assert!(p.hub().resume(now, 1).is_ok());
}

#[test]
fn ack_for_a_frame_never_sent_is_a_protocol_error() {
    let now = t0();
    let mut s = accepted(now, SessionConfig::default());
    let mut out = Vec::new();
    s.poll_transmit(now, &mut out, 1 << 16);
    let mut msg = Vec::new();
    wire::encode_ack(&mut msg, 5);
    let e = s.handle_input(now, &msg, |_| {}).unwrap_err();
    assert_eq!(e, SessionError::AckFromTheFuture { acked: 5, sent: 0 });
    assert_eq!(s.state(), State::Closed);
    out.clear();
    s.poll_transmit(now, &mut out, 1 << 16);
    let (m, _) = wire::decode(&out, &Limits::default()).unwrap().unwrap();
    assert!(matches!(
        m,
        Message::Close {
            code: CloseCode::ProtocolError,
            ..
        }
    ));
}

#[test]
fn malformed_message_closes_with_protocol_error() {
    let now = t0();
    let mut s = accepted(now, SessionConfig::default());
    let e = s
        .handle_input(now, &[0x7f, 0, 0, 0, 0, 0, 0, 0], |_| {})
        .unwrap_err();
    assert_eq!(e, SessionError::Wire(WireError::UnknownType(0x7f)));
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn close_reaches_the_peer() {
    let mut p = established();
    p.client.close(CloseCode::Normal, "user pressed Ctrl-C");
    p.drive();
    assert_eq!(p.client.state(), State::Closed);
    assert_eq!(p.hub().state(), State::Closed);
    assert_eq!(
        p.hub_events.last(),
        Some(&Event::Closed {
            code: CloseCode::Normal,
            reason: "user pressed Ctrl-C".into(),
            by_peer: true
        })
    );
    assert_eq!(
        p.client.send_frame(&test_frame(1, 0, 60)),
        Err(SendError::Closed)
    );
}

#[test]
fn full_buffer_evicts_sent_frames_then_tail_drops_unsent() {
    let now = t0();
    let cfg = SessionConfig {
        max_buffered_frames: 8,
        ..Default::default()
    };
    let mut s = accepted(now, cfg);
    for i in 0..8 {
        s.send_frame(&test_frame(1, i, 60)).unwrap();
    }
    // All 8 unsent: the 9th is tail-dropped.
    assert_eq!(s.send_frame(&test_frame(1, 8, 60)), Err(SendError::Full));
    assert_eq!(s.stats().tail_drops, 1);
    // Transmit them: now they are evictable.
    let mut out = Vec::new();
    s.poll_transmit(now, &mut out, 1 << 20);
    for i in 9..12 {
        s.send_frame(&test_frame(1, i, 60)).unwrap();
    }
    assert_eq!(s.stats().evicted, 3);
    assert_eq!(s.buffered_frames(), 8);
}

#[test]
fn eviction_shows_up_as_loss_on_resume() {
    let cfg = SessionConfig {
        max_buffered_frames: 4,
        ..Default::default()
    };
    let mut p = Pair::new(t0(), cfg.clone(), cfg);
    p.drive();
    for i in 0..4 {
        p.client.send_frame(&test_frame(1, i, 60)).unwrap();
    }
    // Transmit, but the link dies before the hub reads anything.
    let mut sink = Vec::new();
    let now = p.now;
    p.client.poll_transmit(now, &mut sink, 1 << 16);
    p.cut();
    for i in 4..6 {
        p.client.send_frame(&test_frame(1, i, 60)).unwrap();
    }
    assert_eq!(p.client.stats().evicted, 2);
    p.reconnect();
    p.drive();
    assert_eq!(p.client.stats().lost_on_resume, 2);
    assert_eq!(p.hub().stats().rx_gaps, 2);
    let expect: Vec<_> = (2..6).map(|i| test_frame(1, i, 60)).collect();
    assert_eq!(p.to_hub, expect);
}

#[test]
fn send_frame_checks_length() {
    let now = t0();
    let mut s = accepted(now, SessionConfig::default());
    assert_eq!(s.send_frame(&[0; 13]), Err(SendError::BadLength(13)));
    assert_eq!(s.send_frame(&[0; 1519]), Err(SendError::BadLength(1519)));
    assert!(s.send_frame(&[0; 1518]).is_ok());
}

#[test]
fn ping_flood_is_bounded() {
    let now = t0();
    let mut s = accepted(now, SessionConfig::default());
    let mut msg = Vec::new();
    for i in 0..10_000 {
        wire::encode_ping(&mut msg, i);
    }
    s.handle_input(now, &msg, |_| {}).unwrap();
    let mut out = Vec::new();
    s.poll_transmit(now, &mut out, 1 << 20);
    // 101 + at most MAX_PONGS_DUE pongs of 16 bytes.
    let head = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(out.len() - head <= MAX_PONGS_DUE * 16);
}

fn client_answered(status: Status, code: &str) -> Session {
    let now = t0();
    let mut c = linked_client(now, "X", "h", None);
    let mut out = Vec::new();
    c.poll_transmit(now, &mut out, 1 << 16);
    let mut resp = Vec::new();
    http::emit_error(&mut resp, status, code, "nope", &[]);
    assert_eq!(c.handle_input(now, &resp, |_| {}).unwrap(), resp.len());
    c
}

#[test]
fn fatal_refusal_closes_the_client() {
    for (status, code) in [
        (Status::UNAUTHORIZED, "auth-failed"),
        (Status::NOT_FOUND, "unknown-hub"),
        (Status::UPGRADE_REQUIRED, "unsupported-version"),
    ] {
        let mut c = client_answered(status, code);
        assert_eq!(c.state(), State::Closed);
        let Some(Event::Refused(r)) = c.poll_event() else {
            panic!()
        };
        assert_eq!(r.status, status);
        assert!(!r.is_retryable());
    }
}

#[test]
fn retryable_refusal_detaches_the_client() {
    for status in [Status::TOO_MANY_REQUESTS, Status::SERVICE_UNAVAILABLE] {
        let mut c = client_answered(status, "busy");
        assert_eq!(c.state(), State::Detached);
        assert!(matches!(c.poll_event(), Some(Event::Refused(r)) if r.is_retryable()));
    }
}

#[test]
fn handshake_times_out_without_an_answer() {
    let now = t0();
    let mut c = linked_client(now, "X", "h", None);
    c.handle_timeout(now + Duration::from_secs(15));
    assert_eq!(c.state(), State::Detached);
    assert_eq!(c.poll_event(), Some(Event::LinkDead));
}

#[test]
fn idle_session_gives_its_buffer_back() {
    let mut p = established();
    for i in 0..100 {
        p.client.send_frame(&test_frame(1, i, 1000)).unwrap();
    }
    p.drive();
    p.advance(Duration::from_millis(10));
    p.drive();
    assert!(p.client.buffer_capacity() > 0);
    p.advance(Duration::from_secs(5));
    p.drive();
    assert_eq!(p.client.buffer_capacity(), 0);
}

#[test]
fn sequence_numbers_up_to_u64_max_do_not_overflow() {
    // Regression: fuzz/artifacts crash-21653f4e — a batch ending exactly at
    // u64::MAX made the receive loop step past it and panic.
    let now = t0();
    let mut s = accepted(now, SessionConfig::default());
    let mut msg = Vec::new();
    let mut w = FramesWriter::begin(&mut msg, u64::MAX - 1);
    w.push(&test_frame(1, 0, 60));
    w.finish();
    let mut got = 0;
    s.handle_input(now, &msg, |_| got += 1).unwrap();
    assert_eq!(got, 1);
    assert_eq!(s.rx_last(), u64::MAX - 1);
    // The exact input the fuzzer found, too.
    let crash = include_bytes!("../../tests/regressions/session_input-crash-21653f4e");
    let mut s = accepted(now, SessionConfig::default());
    let mut buf = Vec::new();
    for chunk in crash.chunks(97) {
        buf.extend_from_slice(chunk);
        match s.handle_input(now, &buf, |_| {}) {
            Ok(used) => {
                buf.drain(..used);
            }
            Err(_) => break,
        }
    }
}

#[test]
fn a_client_without_a_link_sends_nothing_and_never_times_out() {
    // However long TCP, a relay and TLS take, the handshake timer starts
    // only when `reconnect` says the link is up.
    let now = t0();
    let mut c = Session::connect(
        now,
        SessionConfig::default(),
        Connect {
            hub: "X".into(),
            host: "h".into(),
            credentials: None,
        },
    );
    assert_eq!(c.state(), State::Detached);
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(now + Duration::from_secs(60));
    assert_eq!(c.poll_event(), None);
    let mut out = Vec::new();
    assert_eq!(c.poll_transmit(now, &mut out, 1 << 16), 0);
    let later = now + Duration::from_secs(60);
    c.reconnect(later);
    assert_eq!(c.state(), State::Handshaking);
    assert_eq!(c.poll_timeout(), Some(later + Duration::from_secs(15)));
}

#[test]
fn offload_is_used_only_when_asked_for_and_granted() {
    let on = SessionConfig {
        offload: true,
        ..SessionConfig::default()
    };
    for (client, hub, want) in [
        (true, true, true),
        (true, false, false),
        (false, true, false),
    ] {
        let c = SessionConfig {
            offload: client,
            ..on.clone()
        };
        let h = SessionConfig {
            offload: hub,
            ..on.clone()
        };
        let mut p = Pair::new(t0(), c, h);
        p.drive();
        assert_eq!(p.client.state(), State::Established);
        assert_eq!(p.client.offload(), want, "client {client}, hub {hub}");
    }
}

#[test]
fn large_frames_are_acked_by_bytes_before_the_ack_delay() {
    let big = SessionConfig {
        limits: Limits {
            max_frame: 65_600,
            max_batch: 16,
        },
        max_buffered_bytes: 4 << 20,
        ..SessionConfig::default()
    };
    let mut p = Pair::new(t0(), big.clone(), big);
    p.drive();
    // 8 × 60 KiB = 480 KiB: past ack_bytes (256 KiB), far below ack_every
    // (64 frames); the virtual clock does not move, so no ack_delay fires.
    for i in 0..8 {
        p.client.send_frame(&test_frame(1, i, 60 * 1024)).unwrap();
    }
    p.drive();
    assert_eq!(p.hub().stats().rx_frames, 8);
    assert!(
        p.client.buffered_frames() < 8,
        "an ACK released the buffer without waiting: {} frames still held",
        p.client.buffered_frames()
    );
}
