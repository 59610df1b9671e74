//! Resume properties: a session cut at any point and resumed delivers every
//! frame exactly once and in order, in both directions, as long as the
//! outage fits the buffer.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use switch_core::session::{SessionConfig, State};
use switch_core::sim::{test_frame, Pair};

#[allow(clippy::disallowed_methods)] // the sim's origin; time is virtual from here
fn t0() -> Instant {
    Instant::now()
}

#[derive(Debug, Clone)]
enum Op {
    /// Queue frames on each side.
    Send { client: u8, hub: u8, len: u16 },
    /// Move up to `chunk` bytes per direction, `steps` times.
    Run { chunk: u16, steps: u8 },
    /// Cut the link (at whatever byte the last Run stopped), optionally
    /// queue frames during the outage, then reconnect and resume.
    CutAndResume { during: u8 },
    /// Let time pass (acks on their delay, keep-alives).
    Wait { ms: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..40, 0u8..40, 14u16..1519).prop_map(|(client, hub, len)| Op::Send {
            client,
            hub,
            len
        }),
        (1u16..5000, 1u8..6).prop_map(|(chunk, steps)| Op::Run { chunk, steps }),
        (0u8..20).prop_map(|during| Op::CutAndResume { during }),
        (0u16..3000).prop_map(|ms| Op::Wait { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cut_anywhere_resume_delivers_exactly_once_in_order(ops in proptest::collection::vec(op(), 1..40)) {
        let mut p = Pair::new(t0(), SessionConfig::default(), SessionConfig::default());
        p.drive();
        let (mut sent_c, mut sent_h) = (Vec::new(), Vec::new());
        let mut n = 0u32;
        for op in ops {
            match op {
                Op::Send { client, hub, len } => {
                    for _ in 0..client {
                        let f = test_frame(1, n, len as usize);
                        n += 1;
                        p.client.send_frame(&f).unwrap();
                        sent_c.push(f);
                    }
                    for _ in 0..hub {
                        let f = test_frame(2, n, len as usize);
                        n += 1;
                        if p.hub().send_frame(&f).is_ok() {
                            sent_h.push(f);
                        }
                    }
                }
                Op::Run { chunk, steps } => {
                    p.chunk = chunk as usize;
                    for _ in 0..steps {
                        p.step();
                    }
                }
                Op::CutAndResume { during } => {
                    p.cut();
                    for _ in 0..during {
                        let f = test_frame(1, n, 100);
                        n += 1;
                        p.client.send_frame(&f).unwrap();
                        sent_c.push(f);
                        let f = test_frame(2, n, 100);
                        n += 1;
                        p.hub().send_frame(&f).unwrap();
                        sent_h.push(f);
                    }
                    p.reconnect();
                    p.chunk = usize::MAX;
                    p.drive();
                    prop_assert_eq!(p.client.state(), State::Established);
                }
                Op::Wait { ms } => {
                    // Stay well inside the keep-alive timeout: the link is up.
                    p.chunk = usize::MAX;
                    p.drive();
                    p.advance(Duration::from_millis(ms as u64));
                }
            }
        }
        p.chunk = usize::MAX;
        if p.client.state() != State::Established {
            p.reconnect();
        }
        p.drive();
        p.advance(Duration::from_millis(10));
        p.drive();
        prop_assert_eq!(&p.to_hub, &sent_c, "client → hub");
        prop_assert_eq!(&p.to_client, &sent_h, "hub → client");
        let (c, h) = (*p.client.stats(), *p.hub().stats());
        prop_assert_eq!(c.lost_on_resume + h.lost_on_resume + c.rx_gaps + h.rx_gaps, 0);
        prop_assert_eq!(c.tail_drops + h.tail_drops + c.evicted + h.evicted, 0);
        prop_assert_eq!(p.client.buffered_frames(), 0);
        prop_assert_eq!(p.hub().buffered_frames(), 0);
    }
}

/// The opposite case, stated: an outage larger than the buffer loses
/// frames, and every lost frame is counted on both sides.
#[test]
fn outage_beyond_the_buffer_is_counted_not_silent() {
    let cfg = SessionConfig {
        max_buffered_frames: 100,
        ..SessionConfig::default()
    };
    let mut p = Pair::new(t0(), cfg.clone(), cfg);
    p.drive();
    p.cut();
    let mut accepted = 0;
    for i in 0..150 {
        if p.client.send_frame(&test_frame(1, i, 60)).is_ok() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 100);
    assert_eq!(p.client.stats().tail_drops, 50);
    p.reconnect();
    p.drive();
    assert_eq!(p.to_hub.len(), 100);
    assert_eq!(p.to_hub[0], test_frame(1, 0, 60));
}
