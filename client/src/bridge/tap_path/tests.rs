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
    let n = tap_to_session(&tap, &mut batch, &mut p.client, &mut shell, &mut scratch).unwrap();
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
    let n = tap_to_session(&tap, &mut batch, &mut p.client, &mut shell, &mut scratch).unwrap();
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
        errors: &mut errors,
        early: &mut early,
    };
    session_to_tap(now, &mut p.client, &wire, to).unwrap();
    assert_eq!(errors, 1);
    assert!(tap.take_written().is_empty());
}
