//! Unit tests with literal frames and a virtual clock: `t(s)` is the epoch
//! plus `s` seconds, and the epoch is the only `Instant` ever read.

use super::*;

const A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
const B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
const C: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0c];
const D: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0d];

/// A minimum-size (60-byte) IPv4 frame from `src` to `dst`.
fn eth(dst: [u8; 6], src: [u8; 6]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

/// An ARP request (who-has 10.0.0.2 tell 10.0.0.1) broadcast by
/// 02:00:00:00:00:0a, byte for byte.
const ARP_REQUEST_FROM_A: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst: broadcast
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // src: A
    0x08, 0x06, // EtherType ARP
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet/IPv4, request
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 10, 0, 0, 1, // sender
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 2, // target
];

/// An IPv6 neighbour solicitation's Ethernet header: B to the
/// solicited-node multicast group 33:33:ff:00:00:0a.
const NDP_HEADER_FROM_B: [u8; 14] = [
    0x33, 0x33, 0xff, 0x00, 0x00, 0x0a, // dst: IPv6 multicast
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, // src: B
    0x86, 0xdd, // EtherType IPv6
];

struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        #[allow(clippy::disallowed_methods)] // the one real clock read: the test's epoch
        Clock(Instant::now())
    }
    fn t(&self, secs: u64) -> Instant {
        self.0 + Duration::from_secs(secs)
    }
    fn t_ms(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

fn setup(config: FabricConfig) -> (Clock, Fabric) {
    let clock = Clock::new();
    let fabric = Fabric::new(config, clock.0);
    (clock, fabric)
}

fn mac(b: [u8; 6]) -> Mac {
    Mac::from_bytes(b)
}

#[test]
fn learns_then_forwards_unicast() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let (p1, p2) = (f.add_port(hub), f.add_port(hub));

    // B is unknown: flood, and A is learned on p1.
    assert_eq!(
        f.forward(c.t(0), p1, &eth(B, A)),
        Forward::Flood { hub, except: p1 }
    );
    assert_eq!(f.lookup(c.t(0), hub, mac(A)), Some(p1));
    // The reply is switched to p1 and teaches B on p2.
    assert_eq!(f.forward(c.t(1), p2, &eth(A, B)), Forward::Unicast(p1));
    assert_eq!(f.forward(c.t(2), p1, &eth(B, A)), Forward::Unicast(p2));

    let s = f.stats();
    assert_eq!((s.learned, s.unicast, s.flooded), (2, 2, 1));
    assert_eq!((f.mac_count(hub), f.port_mac_count(p1)), (2, 1));
}

#[test]
fn unknown_unicast_floods_to_the_ingress_hub() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let p1 = f.add_port(hub);
    let p2 = f.add_port(hub);
    assert_eq!(
        f.forward(c.t(0), p2, &eth(C, A)),
        Forward::Flood { hub, except: p2 }
    );
    assert_eq!(f.hub_ports(hub), &[p1, p2]);
}

#[test]
fn broadcast_and_multicast_flood_even_when_known() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let (p1, p2) = (f.add_port(hub), f.add_port(hub));
    assert_eq!(
        f.forward(c.t(0), p1, &ARP_REQUEST_FROM_A),
        Forward::Flood { hub, except: p1 }
    );
    assert_eq!(
        f.forward(c.t(0), p2, &NDP_HEADER_FROM_B),
        Forward::Flood { hub, except: p2 }
    );
    // Both sources were learned from the group-addressed frames.
    assert_eq!(f.lookup(c.t(0), hub, mac(A)), Some(p1));
    assert_eq!(f.lookup(c.t(0), hub, mac(B)), Some(p2));
    assert_eq!(f.stats().flooded, 2);
}

#[test]
fn destination_on_the_ingress_port_is_filtered() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let p1 = f.add_port(hub);
    // A and C both sit behind p1 (a bridged LAN).
    let _ = f.forward(c.t(0), p1, &eth(B, A));
    let _ = f.forward(c.t(0), p1, &eth(B, C));
    assert_eq!(
        f.forward(c.t(1), p1, &eth(C, A)),
        Forward::Drop(DropReason::SameSegment)
    );
    // A frame to itself is filtered too: its source was just learned here.
    assert_eq!(
        f.forward(c.t(1), p1, &eth(A, A)),
        Forward::Drop(DropReason::SameSegment)
    );
    assert_eq!(f.stats().dropped_same_segment, 2);
}

#[test]
fn a_mac_seen_on_another_port_moves() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let (p1, p2, p3) = (f.add_port(hub), f.add_port(hub), f.add_port(hub));
    let _ = f.forward(c.t(0), p1, &eth(B, A));
    let _ = f.forward(c.t(1), p2, &eth(B, A));
    assert_eq!(f.lookup(c.t(1), hub, mac(A)), Some(p2));
    assert_eq!((f.port_mac_count(p1), f.port_mac_count(p2)), (0, 1));
    assert_eq!(f.mac_count(hub), 1);
    assert_eq!(f.forward(c.t(2), p3, &eth(A, C)), Forward::Unicast(p2));
    assert_eq!((f.stats().moves, f.stats().learned), (1, 2));
}

#[test]
fn per_port_cap_refuses_learns_and_moves_but_forwards() {
    let config = FabricConfig {
        max_macs_per_port: 2,
        ..FabricConfig::default()
    };
    let (c, mut f) = setup(config);
    let hub = f.add_hub();
    let (p1, p2) = (f.add_port(hub), f.add_port(hub));
    let _ = f.forward(c.t(0), p1, &eth(D, A));
    let _ = f.forward(c.t(0), p1, &eth(D, B));
    // The third source is refused, yet the frame still goes out.
    assert_eq!(
        f.forward(c.t(0), p1, &eth(D, C)),
        Forward::Flood { hub, except: p1 }
    );
    assert_eq!(f.lookup(c.t(0), hub, mac(C)), None);
    assert_eq!(f.port_mac_count(p1), 2);
    assert_eq!(f.stats().refused_port_cap, 1);
    // Refreshing a MAC the port already owns needs no room.
    let _ = f.forward(c.t(1), p1, &eth(D, A));
    assert_eq!(f.stats().refused_port_cap, 1);

    // p2 fills up; a move of A onto it is refused and A stays on p1.
    let _ = f.forward(c.t(2), p2, &eth(A, C));
    let _ = f.forward(c.t(2), p2, &eth(A, D));
    assert_eq!(f.forward(c.t(2), p2, &eth(B, A)), Forward::Unicast(p1));
    assert_eq!(f.lookup(c.t(2), hub, mac(A)), Some(p1));
    assert_eq!((f.stats().refused_port_cap, f.stats().moves), (2, 0));
}

#[test]
fn per_hub_cap_refuses_new_macs_but_not_moves() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub_with_cap(2);
    let (p1, p2, p3) = (f.add_port(hub), f.add_port(hub), f.add_port(hub));
    let _ = f.forward(c.t(0), p1, &eth(D, A));
    let _ = f.forward(c.t(0), p2, &eth(D, B));
    assert_eq!(
        f.forward(c.t(0), p3, &eth(A, C)),
        Forward::Unicast(p1),
        "a refused learn still forwards"
    );
    assert_eq!(f.lookup(c.t(0), hub, mac(C)), None);
    assert_eq!((f.mac_count(hub), f.stats().refused_hub_cap), (2, 1));
    // A move reuses its entry, so a full hub allows it.
    let _ = f.forward(c.t(1), p3, &eth(D, A));
    assert_eq!(f.lookup(c.t(1), hub, mac(A)), Some(p3));
    assert_eq!((f.stats().moves, f.stats().refused_hub_cap), (1, 1));
}

#[test]
fn entries_age_out_after_300_seconds() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let (p1, p2) = (f.add_port(hub), f.add_port(hub));
    let _ = f.forward(c.t(0), p1, &eth(B, A));
    let _ = f.forward(c.t(100), p2, &eth(A, B));

    // Exactly 300 s old is not older than 300 s.
    assert_eq!(f.lookup(c.t(300), hub, mac(A)), Some(p1));
    assert_eq!(f.expire(c.t(300)), 0);
    // Past 300 s, A counts as absent: traffic to it floods.
    assert_eq!(f.lookup(c.t(301), hub, mac(A)), None);
    assert_eq!(
        f.forward(c.t(301), p2, &eth(A, B)),
        Forward::Flood { hub, except: p2 }
    );
    // Until swept, the aged entry is still held (and counted).
    assert_eq!(f.mac_count(hub), 2);
    assert_eq!(f.expire(c.t(301)), 1);
    assert_eq!((f.mac_count(hub), f.port_mac_count(p1)), (1, 0));
    assert_eq!(f.stats().aged_out, 1);
    // B was refreshed at 301 by the frame above, so it outlives its first
    // sighting by far.
    assert_eq!(f.expire(c.t(601)), 0);
    assert_eq!(f.lookup(c.t(601), hub, mac(B)), Some(p2));
    assert_eq!(f.expire(c.t(602)), 1);
    assert_eq!((f.mac_count(hub), f.stats().aged_out), (0, 2));
}

#[test]
fn expire_sweeps_only_aged_entries_across_hubs() {
    let (c, mut f) = setup(FabricConfig::default());
    let (h1, h2) = (f.add_hub(), f.add_hub());
    let (p1, q1) = (f.add_port(h1), f.add_port(h2));
    let _ = f.forward(c.t(0), p1, &eth(D, A));
    let _ = f.forward(c.t(50), p1, &eth(D, B));
    let _ = f.forward(c.t(10), q1, &eth(D, A));
    assert_eq!(f.expire(c.t(311)), 2, "A in both hubs");
    assert_eq!(f.expire(c.t(311)), 0, "nothing left to sweep yet");
    assert_eq!(f.lookup(c.t(311), h1, mac(B)), Some(p1));
    assert_eq!(f.expire(c.t(351)), 1);
    assert_eq!(f.mac_count(h1) + f.mac_count(h2), 0);
    // Learning after a sweep emptied a hub re-arms it.
    let _ = f.forward(c.t(400), q1, &eth(D, C));
    assert_eq!(f.expire(c.t(701)), 1);
}

#[test]
fn an_aged_entry_seen_elsewhere_is_learned_not_moved() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let (p1, p2) = (f.add_port(hub), f.add_port(hub));
    let _ = f.forward(c.t(0), p1, &eth(B, A));
    let _ = f.forward(c.t(400), p2, &eth(B, A));
    assert_eq!(f.lookup(c.t(400), hub, mac(A)), Some(p2));
    assert_eq!((f.stats().learned, f.stats().moves), (2, 0));
    assert_eq!((f.port_mac_count(p1), f.port_mac_count(p2)), (0, 1));
    // Same port, aged: learned again.
    let _ = f.forward(c.t(800), p2, &eth(B, A));
    assert_eq!(f.stats().learned, 3);
    assert_eq!(f.expire(c.t(800)), 0);
}

#[test]
fn the_coarse_clock_never_ages_early() {
    let config = FabricConfig {
        aging: Duration::from_millis(1500), // rounds up to 2 s
        ..FabricConfig::default()
    };
    let (c, mut f) = setup(config);
    let hub = f.add_hub();
    let p1 = f.add_port(hub);
    // Seen at 0.999 s (coarse 0); at 2.9 s the true age is 1.9 s < 2 s.
    let _ = f.forward(c.t_ms(999), p1, &eth(B, A));
    assert_eq!(f.lookup(c.t_ms(2_900), hub, mac(A)), Some(p1));
    // At 3.0 s (coarse age 3 > 2) it is gone, at most a second late.
    assert_eq!(f.lookup(c.t_ms(3_000), hub, mac(A)), None);
}

#[test]
fn time_never_runs_backwards_for_an_entry() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let p1 = f.add_port(hub);
    let _ = f.forward(c.t(100), p1, &eth(B, A));
    // A lagging `now` (and one before the epoch) must not age A early.
    let _ = f.forward(c.t(50), p1, &eth(B, A));
    let _ = f.forward(c.0 - Duration::from_secs(5), p1, &eth(B, A));
    assert_eq!(f.expire(c.t(400)), 0);
    assert_eq!(f.lookup(c.t(400), hub, mac(A)), Some(p1));
    assert_eq!(f.expire(c.t(401)), 1);
}

#[test]
fn removing_a_port_forgets_its_macs_and_its_handle() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let (p1, p2, p3) = (f.add_port(hub), f.add_port(hub), f.add_port(hub));
    let _ = f.forward(c.t(0), p1, &eth(D, A));
    let _ = f.forward(c.t(0), p1, &eth(D, B));
    let _ = f.forward(c.t(0), p2, &eth(D, C));

    assert_eq!(f.remove_port(p1), 2);
    assert_eq!(f.lookup(c.t(0), hub, mac(A)), None);
    assert_eq!(f.mac_count(hub), 1);
    assert_eq!(f.port_hub(p1), None);
    assert_eq!(f.port_mac_count(p1), 0);
    assert_eq!(
        f.forward(c.t(0), p1, &eth(C, A)),
        Forward::Drop(DropReason::UnknownPort)
    );
    assert_eq!(f.stats().dropped_unknown_port, 1);
    // p3 took p1's place in the hub's list; removing it must still work.
    assert_eq!(f.hub_ports(hub), &[p3, p2]);
    assert_eq!(f.remove_port(p3), 0);
    assert_eq!(f.hub_ports(hub), &[p2]);

    // The slot is reused under a new generation; the old handle stays dead.
    let p4 = f.add_port(hub);
    assert_eq!(p4.index(), p3.index());
    assert_ne!(p4, p3);
    assert_eq!(f.remove_port(p3), 0, "a stale handle removes nothing");
    assert_eq!(f.port_hub(p4), Some(hub));
    assert_eq!(f.forward(c.t(1), p4, &eth(C, A)), Forward::Unicast(p2));
    assert_eq!(
        f.forward(c.t(1), PortId::from_raw(99, 0), &eth(C, A)),
        Forward::Drop(DropReason::UnknownPort)
    );
}

#[test]
fn a_slot_with_an_exhausted_generation_is_retired() {
    let (_, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let p = f.add_port(hub);
    f.slots[p.index() as usize].generation = u32::MAX;
    let last = PortId::from_raw(p.index(), u32::MAX);
    assert_eq!(f.port_hub(last), Some(hub));
    f.remove_port(last);
    let next = f.add_port(hub);
    assert_ne!(next.index(), p.index());
    assert_eq!(f.port_hub(last), None);
}

#[test]
fn runts_are_dropped_first() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let p1 = f.add_port(hub);
    let frame = eth(B, A);
    assert_eq!(
        f.forward(c.t(0), p1, &frame[..13]),
        Forward::Drop(DropReason::Runt)
    );
    assert_eq!(f.forward(c.t(0), p1, &[]), Forward::Drop(DropReason::Runt));
    assert_eq!(
        f.forward(c.t(0), PortId::from_raw(7, 7), &frame[..13]),
        Forward::Drop(DropReason::Runt)
    );
    assert_eq!(f.stats().dropped_runt, 3);
    assert_eq!(f.mac_count(hub), 0);
    // A bare 14-byte header is a frame.
    assert_eq!(
        f.forward(c.t(0), p1, &frame[..14]),
        Forward::Flood { hub, except: p1 }
    );
}

#[test]
fn invalid_sources_are_neither_learned_nor_forwarded() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let p1 = f.add_port(hub);
    for src in [
        [0xff; 6],                            // broadcast
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01], // IPv4 multicast
        [0x00; 6],                            // all-zero
    ] {
        assert_eq!(
            f.forward(c.t(0), p1, &eth(B, src)),
            Forward::Drop(DropReason::InvalidSource)
        );
    }
    assert_eq!(f.stats().dropped_invalid_source, 3);
    assert_eq!((f.mac_count(hub), f.stats().learned), (0, 0));
}

#[test]
fn hubs_are_isolated_even_for_the_same_mac() {
    let (c, mut f) = setup(FabricConfig::default());
    let (h1, h2) = (f.add_hub(), f.add_hub());
    let (p1, p2) = (f.add_port(h1), f.add_port(h1));
    let (q1, q2) = (f.add_port(h2), f.add_port(h2));
    // A lives behind p1 in h1 and behind q2 in h2.
    let _ = f.forward(c.t(0), p1, &eth(B, A));
    let _ = f.forward(c.t(0), q2, &eth(B, A));
    assert_eq!(f.lookup(c.t(0), h1, mac(A)), Some(p1));
    assert_eq!(f.lookup(c.t(0), h2, mac(A)), Some(q2));
    assert_eq!(f.forward(c.t(0), p2, &eth(A, B)), Forward::Unicast(p1));
    assert_eq!(f.forward(c.t(0), q1, &eth(A, B)), Forward::Unicast(q2));
    assert_eq!(f.stats().moves, 0, "the same MAC in two hubs is no move");
    // A MAC known only in h1 floods in h2, within h2.
    let _ = f.forward(c.t(0), p2, &eth(D, C));
    assert_eq!(
        f.forward(c.t(0), q1, &eth(C, B)),
        Forward::Flood {
            hub: h2,
            except: q1
        }
    );
    assert_eq!(f.hub_ports(h2), &[q1, q2]);
    assert_eq!((f.port_hub(p1), f.port_hub(q1)), (Some(h1), Some(h2)));
    // Removing h1's port leaves h2's entry alone.
    assert_eq!(f.remove_port(p1), 1);
    assert_eq!(f.lookup(c.t(0), h2, mac(A)), Some(q2));
}

#[test]
fn entries_lists_live_macs_with_their_age() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let other = f.add_hub();
    let (p1, p2) = (f.add_port(hub), f.add_port(hub));
    let _ = f.forward(c.t(0), p1, &eth(D, A));
    let _ = f.forward(c.t(100), p2, &eth(D, B));
    let _ = f.forward(c.t(250), p1, &eth(D, C));
    let mut listed: Vec<_> = f.entries(c.t(350), hub).collect();
    listed.sort_by_key(|&(m, _, _)| m);
    // A (350 s old) has aged and is not listed.
    assert_eq!(listed, vec![(mac(B), p2, 250), (mac(C), p1, 100)]);
    assert_eq!(f.entries(c.t(0), other).count(), 0);
    assert_eq!(f.entries(c.t(0), HubId(42)).count(), 0);
}

#[test]
fn unknown_hubs_answer_empty() {
    let (c, mut f) = setup(FabricConfig::default());
    let hub = f.add_hub();
    let _ = f.add_port(hub);
    let nope = HubId(9);
    assert_eq!(f.hub_ports(nope), &[]);
    assert_eq!(f.mac_count(nope), 0);
    assert_eq!(f.lookup(c.t(0), nope, mac(A)), None);
}

#[test]
#[should_panic(expected = "not issued by this fabric")]
fn adding_a_port_to_an_unknown_hub_panics() {
    let (_, mut f) = setup(FabricConfig::default());
    f.add_port(HubId(0));
}
