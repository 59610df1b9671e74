//! The TAP ⇄ session path with an in-memory TAP and a session on the
//! simulator's in-memory link: no device, no root.

use std::time::Duration;

use switch_core::offload::{VnetHdr, VNET_HDR_LEN};
use switch_core::session::SessionConfig;
use switch_core::sim::{test_frame, Pair};

use super::*;
use crate::tap::fake::FakeTap;

/// A client session established with a hub on the simulator.
#[allow(clippy::disallowed_methods)]
fn established() -> Pair {
    let mut p = Pair::new(
        Instant::now(),
        SessionConfig::default(),
        SessionConfig::default(),
    );
    p.drive();
    assert_eq!(p.client.state(), State::Established);
    assert!(!p.client.offload());
    p
}

fn with_plain_header(frame: &[u8]) -> Vec<u8> {
    let mut f = VnetHdr::PLAIN.to_bytes().to_vec();
    f.extend_from_slice(frame);
    f
}

#[test]
fn frames_read_from_the_tap_reach_the_hub_in_the_sessions_form() {
    let mut p = established();
    // A TAP with offload and a session without it: the header goes.
    let tap = FakeTap::new("vnic-test", true);
    let frames: Vec<Vec<u8>> = (0..3).map(|n| test_frame(1, n, 200)).collect();
    for f in &frames {
        tap.push_incoming(&with_plain_header(f));
    }
    // One frame larger than the session allows is counted, not sent.
    let max = p.client.config().limits.max_frame as usize;
    tap.push_incoming(&with_plain_header(&test_frame(1, 9, max + 1)));
    let (mut batch, mut shell, mut scratch) = Default::default();
    let n = tap_to_session(
        &tap,
        &mut batch,
        &mut p.client,
        &mut shell,
        &mut scratch,
        None,
    )
    .unwrap();
    assert_eq!(n, 4);
    assert_eq!(tap.pending(), 0);
    assert_eq!(
        p.client.buffered_frames(),
        3,
        "held for a resume until acked"
    );
    let ShellStats {
        oversize,
        segments_cut,
        bad_offload,
        ..
    } = shell;
    // Every frame taken out of its header counts as cut, the one the
    // session then refused too.
    assert_eq!((oversize, segments_cut, bad_offload), (1, 4, 0));
    p.drive();
    assert_eq!(p.to_hub, frames);
    // Nothing waiting: nothing read, nothing queued.
    let n = tap_to_session(
        &tap,
        &mut batch,
        &mut p.client,
        &mut shell,
        &mut scratch,
        None,
    )
    .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn frames_from_the_hub_are_written_to_the_tap_in_its_form() {
    for vnet in [false, true] {
        let mut p = established();
        let tap = FakeTap::new("vnic-test", vnet);
        let frames: Vec<Vec<u8>> = (0..3).map(|n| test_frame(2, n, 100)).collect();
        for f in &frames {
            p.hub().send_frame(f).unwrap();
        }
        let now = p.now + Duration::from_millis(1);
        let mut wire = Vec::new();
        p.hub().poll_transmit(now, &mut wire, usize::MAX);
        let (mut icmp, mut errors, mut early) = (None, 0, Vec::new());
        let to = ToTap {
            tap: &tap,
            icmp: &mut icmp,
            neighbours: &mut None,
            errors: &mut errors,
            early: &mut early,
        };
        let used = session_to_tap(now, &mut p.client, &wire, to).unwrap();
        assert_eq!(used, wire.len());
        let written = tap.take_written();
        let expected: Vec<Vec<u8>> = if vnet {
            // A vnet TAP gets a plain header in front of each frame.
            frames.iter().map(|f| with_plain_header(f)).collect()
        } else {
            frames.clone()
        };
        assert_eq!(written, expected, "vnet {vnet}");
        assert!(written
            .iter()
            .all(|w| !vnet || w.len() == 100 + VNET_HDR_LEN));
        assert_eq!(errors, 0);
    }
}

#[test]
fn frames_the_tap_refuses_are_counted() {
    let mut p = established();
    let mut tap = FakeTap::new("vnic-test", false);
    tap.refuse_writes = true;
    p.hub().send_frame(&test_frame(3, 0, 80)).unwrap();
    let mut wire = Vec::new();
    let now = p.now;
    p.hub().poll_transmit(now, &mut wire, usize::MAX);
    let (mut icmp, mut errors, mut early) = (None, 0, Vec::new());
    let to = ToTap {
        tap: &tap,
        icmp: &mut icmp,
        neighbours: &mut None,
        errors: &mut errors,
        early: &mut early,
    };
    session_to_tap(now, &mut p.client, &wire, to).unwrap();
    assert_eq!(errors, 1);
    assert!(tap.take_written().is_empty());
}

#[test]
fn while_the_link_is_down_the_tap_gets_answers_from_what_the_hub_showed() {
    use crate::lan::arp_request;
    use std::net::Ipv4Addr;
    let (ip_a, ip_b, ip_c) = (
        Ipv4Addr::new(10, 77, 0, 11),
        Ipv4Addr::new(10, 77, 0, 12),
        Ipv4Addr::new(10, 77, 0, 13),
    );
    let mut p = established();
    // A TAP with offload, as vnic opens it by default.
    let tap = FakeTap::new("vnic-test", true);
    let mac_b = [0x02, 0, 0, 0, 0, 0x0b];
    // B's ARP request for the host, delivered by the hub: learned.
    p.hub().send_frame(&arp_request(mac_b, ip_b, ip_a)).unwrap();
    let mut wire = Vec::new();
    let now = p.now;
    p.hub().poll_transmit(now, &mut wire, usize::MAX);
    let mut neighbours = Some(Neighbours::new(tap.mac, Some((ip_a, 24)), 64));
    let (mut icmp, mut errors, mut early) = (None, 0, Vec::new());
    let to = ToTap {
        tap: &tap,
        icmp: &mut icmp,
        neighbours: &mut neighbours,
        errors: &mut errors,
        early: &mut early,
    };
    session_to_tap(now, &mut p.client, &wire, to).unwrap();
    assert_eq!(tap.take_written().len(), 1);
    // The link goes; the host asks for B, then for C (never seen).
    p.cut();
    let buffered = p.client.buffered_frames();
    tap.push_incoming(&with_plain_header(&arp_request(tap.mac, ip_a, ip_b)));
    tap.push_incoming(&with_plain_header(&arp_request(tap.mac, ip_a, ip_c)));
    let (mut batch, mut shell, mut scratch) = Default::default();
    let mut reply = Vec::new();
    let suppress = Suppress {
        now,
        neighbours: neighbours.as_mut().unwrap(),
        reply: &mut reply,
    };
    let n = tap_to_session(
        &tap,
        &mut batch,
        &mut p.client,
        &mut shell,
        &mut scratch,
        Some(suppress),
    )
    .unwrap();
    assert_eq!(n, 2);
    // B's answer went back to the TAP (behind a plain header) …
    let written = tap.take_written();
    assert_eq!(written.len(), 1);
    let answer = &written[0][VNET_HDR_LEN..];
    assert_eq!(&answer[0..6], &tap.mac);
    assert_eq!(&answer[6..12], &mac_b);
    assert_eq!(&answer[20..22], &[0, 2], "an ARP reply");
    // … and only the unknown request waits for the hub.
    assert_eq!(p.client.buffered_frames(), buffered + 1);
    let stats = neighbours.unwrap().stats();
    assert_eq!((stats.arp_answered, stats.unknown), (1, 1));
}
