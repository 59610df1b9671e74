//! Unit tests with literal frames and a virtual clock: `t(s)` is the epoch
//! plus `s` seconds, and the epoch is the only `Instant` ever read.
//!
//! Most tests put every port on shard 0 and ask from shard 0, so a known
//! unicast is a `Route::Local` naming the receiver's slot; each port is
//! given its own slot (`p1` at slot 1, …) so a slot names one port. The
//! tests of where ports live (`routes_*`, the two-domain ones) spread
//! ports over shards, where a `Route::Remote` names the receiving `PortId`.

use super::*;
use crate::offload::{Form, VnetHdr, F_NEEDS_CSUM, GSO_TCPV4, VNET_HDR_LEN};

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

/// The `virtio_net_hdr` of a TCP super frame, byte for byte: NEEDS_CSUM,
/// TCPv4, hdr_len 54, gso_size 1448, csum_start 34, csum_offset 16. Its
/// bytes 6..10 would read as part of a source MAC if the fabric did not
/// skip the header.
const SUPER_FRAME_HDR: [u8; VNET_HDR_LEN] =
    [0x01, 0x01, 0x36, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00];

/// `frame` as a `Vnet` port sends it: behind `SUPER_FRAME_HDR`.
fn vnet(frame: &[u8]) -> Vec<u8> {
    let mut out = SUPER_FRAME_HDR.to_vec();
    out.extend_from_slice(frame);
    out
}

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

/// A plain `vhub/1` port at `slot` on shard 0.
fn at(slot: u32) -> PortInfo {
    PortInfo::vhub(0, slot, Form::Plain)
}

/// The route to the plain port at `slot` on the asking shard.
fn local(slot: u32) -> Route {
    Route::Local {
        slot,
        form: Form::Plain,
    }
}

/// A flood to the asking shard's other ports (`local`) and to `remote`.
fn flood(local: bool, remote: &[u16]) -> Route {
    Route::Flood {
        local,
        remote: remote.iter().copied().collect(),
    }
}

#[test]
fn learns_then_forwards_unicast() {
    let (c, mut f) = setup(FabricConfig::default());
    let (p1, p2) = (f.add_port(at(1)), f.add_port(at(2)));

    // B is unknown: flood (to p2, the shard's other port), and A is
    // learned on p1.
    assert_eq!(f.forward(c.t(0), p1, 0, &eth(B, A)), flood(true, &[]));
    assert_eq!(f.lookup(c.t(0), mac(A)), Some(p1));
    // The reply is switched to p1 and teaches B on p2.
    assert_eq!(f.forward(c.t(1), p2, 0, &eth(A, B)), local(1));
    assert_eq!(f.forward(c.t(2), p1, 0, &eth(B, A)), local(2));

    let s = f.stats();
    assert_eq!((s.learned, s.unicast, s.flooded), (2, 2, 1));
    assert_eq!((f.mac_count(), f.port_mac_count(p1)), (2, 1));
}

#[test]
fn unknown_unicast_floods_to_the_other_ports() {
    let (c, mut f) = setup(FabricConfig::default());
    let p1 = f.add_port(at(1));
    let p2 = f.add_port(at(2));
    assert_eq!(f.forward(c.t(0), p2, 0, &eth(C, A)), flood(true, &[]));
    assert_eq!(
        f.ports().collect::<Vec<_>>(),
        vec![(p1, at(1)), (p2, at(2))]
    );
    assert_eq!(f.port_count(), 2);
    // Alone in the domain, a port's flood reaches nobody.
    assert_eq!(f.remove_port(p1), 0);
    assert_eq!(f.forward(c.t(0), p2, 0, &eth(C, A)), flood(false, &[]));
}

#[test]
fn broadcast_and_multicast_flood_even_when_known() {
    let (c, mut f) = setup(FabricConfig::default());
    let (p1, p2) = (f.add_port(at(1)), f.add_port(at(2)));
    assert_eq!(
        f.forward(c.t(0), p1, 0, &ARP_REQUEST_FROM_A),
        flood(true, &[])
    );
    assert_eq!(
        f.forward(c.t(0), p2, 0, &NDP_HEADER_FROM_B),
        flood(true, &[])
    );
    // Both sources were learned from the group-addressed frames.
    assert_eq!(f.lookup(c.t(0), mac(A)), Some(p1));
    assert_eq!(f.lookup(c.t(0), mac(B)), Some(p2));
    assert_eq!(f.stats().flooded, 2);
}

#[test]
fn destination_on_the_ingress_port_is_filtered() {
    let (c, mut f) = setup(FabricConfig::default());
    let p1 = f.add_port(at(1));
    // A and C both sit behind p1 (a bridged LAN).
    let _ = f.forward(c.t(0), p1, 0, &eth(B, A));
    let _ = f.forward(c.t(0), p1, 0, &eth(B, C));
    assert_eq!(
        f.forward(c.t(1), p1, 0, &eth(C, A)),
        Route::Drop(DropReason::SameSegment)
    );
    // A frame to itself is filtered too: its source was just learned here.
    assert_eq!(
        f.forward(c.t(1), p1, 0, &eth(A, A)),
        Route::Drop(DropReason::SameSegment)
    );
    assert_eq!(f.stats().dropped_same_segment, 2);
}

#[test]
fn a_mac_seen_on_another_port_moves() {
    let (c, mut f) = setup(FabricConfig::default());
    let (p1, p2, p3) = (f.add_port(at(1)), f.add_port(at(2)), f.add_port(at(3)));
    let _ = f.forward(c.t(0), p1, 0, &eth(B, A));
    let _ = f.forward(c.t(1), p2, 0, &eth(B, A));
    assert_eq!(f.lookup(c.t(1), mac(A)), Some(p2));
    assert_eq!((f.port_mac_count(p1), f.port_mac_count(p2)), (0, 1));
    assert_eq!(f.mac_count(), 1);
    assert_eq!(f.forward(c.t(2), p3, 0, &eth(A, C)), local(2));
    assert_eq!((f.stats().moves, f.stats().learned), (1, 2));
}

#[test]
fn per_port_cap_refuses_learns_and_moves_but_forwards() {
    let config = FabricConfig {
        max_macs_per_port: 2,
        ..FabricConfig::default()
    };
    let (c, mut f) = setup(config);
    let (p1, p2) = (f.add_port(at(1)), f.add_port(at(2)));
    let _ = f.forward(c.t(0), p1, 0, &eth(D, A));
    let _ = f.forward(c.t(0), p1, 0, &eth(D, B));
    // The third source is refused, yet the frame still goes out.
    assert_eq!(f.forward(c.t(0), p1, 0, &eth(D, C)), flood(true, &[]));
    assert_eq!(f.lookup(c.t(0), mac(C)), None);
    assert_eq!(f.port_mac_count(p1), 2);
    assert_eq!(f.stats().refused_port_cap, 1);
    // Refreshing a MAC the port already owns needs no room.
    let _ = f.forward(c.t(1), p1, 0, &eth(D, A));
    assert_eq!(f.stats().refused_port_cap, 1);

    // p2 fills up; a move of A onto it is refused and A stays on p1.
    let _ = f.forward(c.t(2), p2, 0, &eth(A, C));
    let _ = f.forward(c.t(2), p2, 0, &eth(A, D));
    assert_eq!(f.forward(c.t(2), p2, 0, &eth(B, A)), local(1));
    assert_eq!(f.lookup(c.t(2), mac(A)), Some(p1));
    assert_eq!((f.stats().refused_port_cap, f.stats().moves), (2, 0));
}

#[test]
fn a_bridge_port_has_its_own_mac_cap() {
    // Sessions may own 2 MACs; the bridge (a LAN behind one port) 4.
    const BROADCAST: [u8; 6] = [0xff; 6];
    let config = FabricConfig {
        max_macs_per_port: 2,
        ..FabricConfig::default()
    };
    let (c, mut f) = setup(config);
    let session = f.add_port(at(1));
    let bridge = f.add_port(PortInfo::bridge(0, 2, Form::Plain, 4));
    assert_eq!(f.port(bridge).map(|p| p.kind), Some(PortKind::Bridge));
    let stations = [A, B, C, D, [0x02, 0, 0, 0, 0, 0x0e]];
    for s in &stations {
        let _ = f.forward(c.t(0), bridge, 0, &eth(BROADCAST, *s));
    }
    // Four learned behind the bridge, the fifth refused (and counted).
    assert_eq!(f.port_mac_count(bridge), 4);
    assert_eq!(f.stats().refused_port_cap, 1);
    assert_eq!(f.lookup(c.t(0), mac(stations[4])), None);
    // The session keeps the default cap of 2.
    let e = [0x02, 0, 0, 0, 0, 0x10];
    for k in 0..3u8 {
        let _ = f.forward(c.t(0), session, 0, &eth(A, [e[0], 0, 0, 0, 0, 0x10 + k]));
    }
    assert_eq!(f.port_mac_count(session), 2);
    // A frame from the session to a station behind the bridge goes there;
    // one from the bridge to its own station never goes back out.
    assert_eq!(f.forward(c.t(1), session, 0, &eth(B, e)), local(2));
    assert_eq!(
        f.forward(c.t(1), bridge, 0, &eth(B, A)),
        Route::Drop(DropReason::SameSegment)
    );
    // A bridge with 0 takes the fabric default, like a session.
    let other = f.add_port(PortInfo::bridge(0, 3, Form::Plain, 0));
    for k in 0..3u8 {
        let _ = f.forward(c.t(2), other, 0, &eth(BROADCAST, [0x02, 0, 0, 0, 1, k]));
    }
    assert_eq!(f.port_mac_count(other), 2);
}

#[test]
fn per_hub_cap_refuses_new_macs_but_not_moves() {
    let config = FabricConfig {
        max_macs_per_hub: 2,
        ..FabricConfig::default()
    };
    let (c, mut f) = setup(config);
    let (p1, p2, p3) = (f.add_port(at(1)), f.add_port(at(2)), f.add_port(at(3)));
    let _ = f.forward(c.t(0), p1, 0, &eth(D, A));
    let _ = f.forward(c.t(0), p2, 0, &eth(D, B));
    assert_eq!(
        f.forward(c.t(0), p3, 0, &eth(A, C)),
        local(1),
        "a refused learn still forwards"
    );
    assert_eq!(f.lookup(c.t(0), mac(C)), None);
    assert_eq!((f.mac_count(), f.stats().refused_hub_cap), (2, 1));
    // A move reuses its entry, so a full hub allows it.
    let _ = f.forward(c.t(1), p3, 0, &eth(D, A));
    assert_eq!(f.lookup(c.t(1), mac(A)), Some(p3));
    assert_eq!((f.stats().moves, f.stats().refused_hub_cap), (1, 1));
}

#[test]
fn entries_age_out_after_300_seconds() {
    let (c, mut f) = setup(FabricConfig::default());
    let (p1, p2) = (f.add_port(at(1)), f.add_port(at(2)));
    let _ = f.forward(c.t(0), p1, 0, &eth(B, A));
    let _ = f.forward(c.t(100), p2, 0, &eth(A, B));

    // Exactly 300 s old is not older than 300 s.
    assert_eq!(f.lookup(c.t(300), mac(A)), Some(p1));
    assert_eq!(f.expire(c.t(300)), 0);
    // Past 300 s, A counts as absent: traffic to it floods.
    assert_eq!(f.lookup(c.t(301), mac(A)), None);
    assert_eq!(f.forward(c.t(301), p2, 0, &eth(A, B)), flood(true, &[]));
    // Until swept, the aged entry is still held (and counted).
    assert_eq!(f.mac_count(), 2);
    assert_eq!(f.expire(c.t(301)), 1);
    assert_eq!((f.mac_count(), f.port_mac_count(p1)), (1, 0));
    assert_eq!(f.stats().aged_out, 1);
    // B was refreshed at 301 by the frame above, so it outlives its first
    // sighting by far.
    assert_eq!(f.expire(c.t(601)), 0);
    assert_eq!(f.lookup(c.t(601), mac(B)), Some(p2));
    assert_eq!(f.expire(c.t(602)), 1);
    assert_eq!((f.mac_count(), f.stats().aged_out), (0, 2));
}

#[test]
fn expire_sweeps_only_aged_entries_of_each_domain() {
    // Two domains (two virtual hubs) are two fabrics; each sweeps its own
    // table. The counts are the old one-fabric counts split per domain.
    let (c, mut f) = setup(FabricConfig::default());
    let mut g = Fabric::new(FabricConfig::default(), c.0);
    let (p1, q1) = (f.add_port(at(1)), g.add_port(at(2)));
    let _ = f.forward(c.t(0), p1, 0, &eth(D, A));
    let _ = f.forward(c.t(50), p1, 0, &eth(D, B));
    let _ = g.forward(c.t(10), q1, 0, &eth(D, A));
    assert_eq!(
        (f.expire(c.t(311)), g.expire(c.t(311))),
        (1, 1),
        "A in both domains"
    );
    assert_eq!(
        (f.expire(c.t(311)), g.expire(c.t(311))),
        (0, 0),
        "nothing left to sweep yet"
    );
    assert_eq!(f.lookup(c.t(311), mac(B)), Some(p1));
    assert_eq!((f.expire(c.t(351)), g.expire(c.t(351))), (1, 0));
    assert_eq!(f.mac_count() + g.mac_count(), 0);
    // Learning after a sweep emptied a domain re-arms it.
    let _ = g.forward(c.t(400), q1, 0, &eth(D, C));
    assert_eq!(g.expire(c.t(701)), 1);
}

#[test]
fn an_aged_entry_seen_elsewhere_is_learned_not_moved() {
    let (c, mut f) = setup(FabricConfig::default());
    let (p1, p2) = (f.add_port(at(1)), f.add_port(at(2)));
    let _ = f.forward(c.t(0), p1, 0, &eth(B, A));
    let _ = f.forward(c.t(400), p2, 0, &eth(B, A));
    assert_eq!(f.lookup(c.t(400), mac(A)), Some(p2));
    assert_eq!((f.stats().learned, f.stats().moves), (2, 0));
    assert_eq!((f.port_mac_count(p1), f.port_mac_count(p2)), (0, 1));
    // Same port, aged: learned again.
    let _ = f.forward(c.t(800), p2, 0, &eth(B, A));
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
    let p1 = f.add_port(at(1));
    // Seen at 0.999 s (coarse 0); at 2.9 s the true age is 1.9 s < 2 s.
    let _ = f.forward(c.t_ms(999), p1, 0, &eth(B, A));
    assert_eq!(f.lookup(c.t_ms(2_900), mac(A)), Some(p1));
    // At 3.0 s (coarse age 3 > 2) it is gone, at most a second late.
    assert_eq!(f.lookup(c.t_ms(3_000), mac(A)), None);
}

#[test]
fn time_never_runs_backwards_for_an_entry() {
    let (c, mut f) = setup(FabricConfig::default());
    let p1 = f.add_port(at(1));
    let _ = f.forward(c.t(100), p1, 0, &eth(B, A));
    // A lagging `now` (and one before the epoch) must not age A early.
    let _ = f.forward(c.t(50), p1, 0, &eth(B, A));
    let _ = f.forward(c.0 - Duration::from_secs(5), p1, 0, &eth(B, A));
    assert_eq!(f.expire(c.t(400)), 0);
    assert_eq!(f.lookup(c.t(400), mac(A)), Some(p1));
    assert_eq!(f.expire(c.t(401)), 1);
}

#[test]
fn removing_a_port_forgets_its_macs_and_its_handle() {
    let (c, mut f) = setup(FabricConfig::default());
    let (p1, p2, p3) = (f.add_port(at(1)), f.add_port(at(2)), f.add_port(at(3)));
    let _ = f.forward(c.t(0), p1, 0, &eth(D, A));
    let _ = f.forward(c.t(0), p1, 0, &eth(D, B));
    let _ = f.forward(c.t(0), p2, 0, &eth(D, C));

    assert_eq!(f.remove_port(p1), 2);
    assert_eq!(f.lookup(c.t(0), mac(A)), None);
    assert_eq!(f.mac_count(), 1);
    assert_eq!(f.port(p1), None);
    assert_eq!(f.port_mac_count(p1), 0);
    assert_eq!(
        f.forward(c.t(0), p1, 0, &eth(C, A)),
        Route::Drop(DropReason::UnknownPort)
    );
    assert_eq!(f.stats().dropped_unknown_port, 1);
    assert_eq!(
        f.ports().collect::<Vec<_>>(),
        vec![(p2, at(2)), (p3, at(3))]
    );
    assert_eq!(f.remove_port(p3), 0);
    assert_eq!(f.ports().collect::<Vec<_>>(), vec![(p2, at(2))]);
    assert_eq!(f.port_count(), 1);

    // The slot is reused under a new generation; the old handle stays dead.
    let p4 = f.add_port(at(4));
    assert_eq!(p4.index(), p3.index());
    assert_ne!(p4, p3);
    assert_eq!(f.remove_port(p3), 0, "a stale handle removes nothing");
    assert_eq!(f.port(p3), None);
    assert_eq!(f.port(p4), Some(at(4)));
    assert_eq!(f.forward(c.t(1), p4, 0, &eth(C, A)), local(2));
    assert_eq!(
        f.forward(c.t(1), PortId::from_raw(99, 0), 0, &eth(C, A)),
        Route::Drop(DropReason::UnknownPort)
    );
}

#[test]
fn a_slot_with_an_exhausted_generation_is_retired() {
    let (_, mut f) = setup(FabricConfig::default());
    let p = f.add_port(at(1));
    f.slots[p.index() as usize].generation = u32::MAX;
    let last = PortId::from_raw(p.index(), u32::MAX);
    assert_eq!(f.port(last), Some(at(1)));
    f.remove_port(last);
    let next = f.add_port(at(2));
    assert_ne!(next.index(), p.index());
    assert_eq!(f.port(last), None);
}

#[test]
fn runts_from_a_live_port_are_dropped_before_anything_is_learned() {
    let (c, mut f) = setup(FabricConfig::default());
    let p1 = f.add_port(at(1));
    let frame = eth(B, A);
    assert_eq!(
        f.forward(c.t(0), p1, 0, &frame[..13]),
        Route::Drop(DropReason::Runt)
    );
    assert_eq!(f.forward(c.t(0), p1, 0, &[]), Route::Drop(DropReason::Runt));
    // A stale or made-up handle is checked first now: its form (and so
    // where its Ethernet header starts) is unknown, so its frame cannot be
    // measured. This runt used to count as `Runt`.
    assert_eq!(
        f.forward(c.t(0), PortId::from_raw(7, 7), 0, &frame[..13]),
        Route::Drop(DropReason::UnknownPort)
    );
    assert_eq!(
        (f.stats().dropped_runt, f.stats().dropped_unknown_port),
        (2, 1)
    );
    assert_eq!(f.mac_count(), 0);
    // A bare 14-byte header is a frame.
    assert_eq!(f.forward(c.t(0), p1, 0, &frame[..14]), flood(false, &[]));
}

#[test]
fn invalid_sources_are_neither_learned_nor_forwarded() {
    let (c, mut f) = setup(FabricConfig::default());
    let p1 = f.add_port(at(1));
    for src in [
        [0xff; 6],                            // broadcast
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01], // IPv4 multicast
        [0x00; 6],                            // all-zero
    ] {
        assert_eq!(
            f.forward(c.t(0), p1, 0, &eth(B, src)),
            Route::Drop(DropReason::InvalidSource)
        );
    }
    assert_eq!(f.stats().dropped_invalid_source, 3);
    assert_eq!((f.mac_count(), f.stats().learned), (0, 0));
}

#[test]
fn domains_are_isolated_even_for_the_same_mac() {
    // Two virtual hubs are two fabrics. h1 has ports on shards 0 and 1, h2
    // on shards 0 and 2: a flood in h2 must not name shard 1.
    let (c, mut h1) = setup(FabricConfig::default());
    let mut h2 = Fabric::new(FabricConfig::default(), c.0);
    let (i1, i2) = (
        PortInfo::vhub(0, 1, Form::Plain),
        PortInfo::vhub(1, 2, Form::Plain),
    );
    let (j1, j2) = (
        PortInfo::vhub(0, 3, Form::Plain),
        PortInfo::vhub(2, 4, Form::Plain),
    );
    let (p1, p2) = (h1.add_port(i1), h1.add_port(i2));
    let (q1, q2) = (h2.add_port(j1), h2.add_port(j2));
    // A lives behind p1 in h1 and behind q2 in h2.
    let _ = h1.forward(c.t(0), p1, 0, &eth(B, A));
    let _ = h2.forward(c.t(0), q2, 2, &eth(B, A));
    assert_eq!(h1.lookup(c.t(0), mac(A)), Some(p1));
    assert_eq!(h2.lookup(c.t(0), mac(A)), Some(q2));
    assert_eq!(
        h1.forward(c.t(0), p2, 1, &eth(A, B)),
        Route::Remote {
            shard: 0,
            slot: 1,
            port: p1
        }
    );
    assert_eq!(
        h2.forward(c.t(0), q1, 0, &eth(A, B)),
        Route::Remote {
            shard: 2,
            slot: 4,
            port: q2
        }
    );
    assert_eq!(
        (h1.stats().moves, h2.stats().moves),
        (0, 0),
        "the same MAC in two hubs is no move"
    );
    // A MAC known only in h1 floods in h2, within h2.
    let _ = h1.forward(c.t(0), p2, 1, &eth(D, C));
    assert_eq!(h1.lookup(c.t(0), mac(C)), Some(p2));
    assert_eq!(h2.lookup(c.t(0), mac(C)), None);
    assert_eq!(h2.forward(c.t(0), q1, 0, &eth(C, B)), flood(false, &[2]));
    assert_eq!(h2.ports().collect::<Vec<_>>(), vec![(q1, j1), (q2, j2)]);
    assert_eq!((h1.port(p1), h2.port(q1)), (Some(i1), Some(j1)));
    // Removing h1's port leaves h2's entry alone.
    assert_eq!(h1.remove_port(p1), 1);
    assert_eq!(h2.lookup(c.t(0), mac(A)), Some(q2));
}

#[test]
fn entries_lists_live_macs_with_their_age() {
    let (c, mut f) = setup(FabricConfig::default());
    let other = Fabric::new(FabricConfig::default(), c.0);
    let (p1, p2) = (f.add_port(at(1)), f.add_port(at(2)));
    let _ = f.forward(c.t(0), p1, 0, &eth(D, A));
    let _ = f.forward(c.t(100), p2, 0, &eth(D, B));
    let _ = f.forward(c.t(250), p1, 0, &eth(D, C));
    let mut listed: Vec<_> = f.entries(c.t(350)).collect();
    listed.sort_by_key(|&(m, _, _)| m);
    // A (350 s old) has aged and is not listed.
    assert_eq!(listed, vec![(mac(B), p2, 250), (mac(C), p1, 100)]);
    assert_eq!(other.entries(c.t(0)).count(), 0);
}

#[test]
fn handles_never_issued_answer_empty() {
    // Was `unknown_hubs_answer_empty`: there are no hub handles any more;
    // the handles a caller can get wrong are port handles.
    let (c, mut f) = setup(FabricConfig::default());
    let p = f.add_port(at(1));
    let _ = f.forward(c.t(0), p, 0, &eth(B, A));
    let nope = PortId::from_raw(9, 0);
    assert_eq!(f.port(nope), None);
    assert_eq!(f.port(PortId::from_raw(p.index(), 1)), None);
    assert_eq!(f.port_mac_count(nope), 0);
    assert_eq!(f.remove_port(nope), 0);
    assert_eq!((f.port_count(), f.mac_count()), (1, 1));
    let empty = Fabric::new(FabricConfig::default(), c.0);
    assert_eq!(empty.lookup(c.t(0), mac(A)), None);
    assert_eq!(
        (empty.ports().count(), empty.port_count(), empty.mac_count()),
        (0, 0, 0)
    );
}

#[test]
#[should_panic(expected = "add_port: shard 256 is not below 256")]
fn adding_a_port_on_a_shard_past_max_shards_panics() {
    let (_, mut f) = setup(FabricConfig::default());
    f.add_port(PortInfo::vhub(MAX_SHARDS as u16, 0, Form::Plain));
}

#[test]
fn routes_name_where_the_receiver_lives() {
    let (c, mut f) = setup(FabricConfig::default());
    // Shard 0 holds a plain and a vnet port; shards 1 and 2 one each. Slot
    // numbers are per shard: shard 1 reuses slot 1.
    let a_info = PortInfo::vhub(0, 1, Form::Plain);
    let b_info = PortInfo::vhub(0, 2, Form::Vnet);
    let c_info = PortInfo::vhub(1, 1, Form::Plain);
    let d_info = PortInfo::vhub(2, 7, Form::Plain);
    let pa = f.add_port(a_info);
    let pb = f.add_port(b_info);
    let pc = f.add_port(c_info);
    let pd = f.add_port(d_info);

    // Each station announces itself, asked by its own shard. A flood from
    // shard 0 reaches shard 0's other port and shards 1 and 2; from shards
    // 1 and 2, whose ingress is their only port, no local port.
    assert_eq!(
        f.forward(c.t(0), pa, 0, &eth([0xff; 6], A)),
        flood(true, &[1, 2])
    );
    assert_eq!(
        f.forward(c.t(0), pb, 0, &vnet(&eth([0xff; 6], B))),
        flood(true, &[1, 2])
    );
    assert_eq!(
        f.forward(c.t(0), pc, 1, &eth([0xff; 6], C)),
        flood(false, &[0, 2])
    );
    assert_eq!(
        f.forward(c.t(0), pd, 2, &eth([0xff; 6], D)),
        flood(false, &[0, 1])
    );

    // On the asking shard: the receiver's slot and form.
    assert_eq!(
        f.forward(c.t(1), pa, 0, &eth(B, A)),
        Route::Local {
            slot: 2,
            form: Form::Vnet
        }
    );
    assert_eq!(f.forward(c.t(1), pb, 0, &vnet(&eth(A, B))), local(1));
    // On another shard: that shard, the slot there, and the handle.
    assert_eq!(
        f.forward(c.t(1), pa, 0, &eth(C, A)),
        Route::Remote {
            shard: 1,
            slot: 1,
            port: pc
        }
    );
    assert_eq!(
        f.forward(c.t(1), pc, 1, &eth(B, C)),
        Route::Remote {
            shard: 0,
            slot: 2,
            port: pb
        }
    );
    assert_eq!(
        f.forward(c.t(1), pd, 2, &eth(A, D)),
        Route::Remote {
            shard: 0,
            slot: 1,
            port: pa
        }
    );
    assert_eq!((f.stats().unicast, f.stats().flooded), (5, 4));

    // Shard 2 loses its last port: floods no longer cross to it.
    assert_eq!(f.remove_port(pd), 1);
    assert_eq!(
        f.forward(c.t(2), pa, 0, &eth([0xff; 6], A)),
        flood(true, &[1])
    );
    // Shard 0 down to the ingress alone: nothing local to flood to.
    assert_eq!(f.remove_port(pb), 1);
    assert_eq!(
        f.forward(c.t(2), pa, 0, &eth([0xff; 6], A)),
        flood(false, &[1])
    );
    assert_eq!(
        f.forward(c.t(2), pc, 1, &eth([0xff; 6], C)),
        flood(false, &[0])
    );
    // The last port anywhere: a flood with no receiver.
    assert_eq!(f.remove_port(pc), 1);
    assert_eq!(
        f.forward(c.t(2), pa, 0, &eth([0xff; 6], A)),
        flood(false, &[])
    );
    assert_eq!(f.ports().collect::<Vec<_>>(), vec![(pa, a_info)]);
}

#[test]
fn a_vnet_port_is_switched_past_its_header() {
    let (c, mut f) = setup(FabricConfig::default());
    let v_info = PortInfo::vhub(0, 1, Form::Vnet);
    let v = f.add_port(v_info);
    let p = f.add_port(at(2));
    assert_eq!(
        VnetHdr::parse(&SUPER_FRAME_HDR),
        Some(VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        })
    );

    // The source is read after the 10-byte header, and only it is learned.
    assert_eq!(f.forward(c.t(0), v, 0, &vnet(&eth(B, A))), flood(true, &[]));
    assert_eq!(f.lookup(c.t(0), mac(A)), Some(v));
    assert_eq!(f.mac_count(), 1);
    // Frames to it name its form.
    assert_eq!(
        f.forward(c.t(0), p, 0, &eth(A, C)),
        Route::Local {
            slot: 1,
            form: Form::Vnet
        }
    );
    assert_eq!(f.forward(c.t(0), v, 0, &vnet(&eth(C, A))), local(2));

    // Under 10 + 14 bytes is a runt from a vnet port (and nothing is
    // learned from it); exactly 10 + 14 is a frame.
    let frame = vnet(&eth(D, B));
    for len in [0, 9, 10, 13, VNET_HDR_LEN + 13] {
        assert_eq!(
            f.forward(c.t(0), v, 0, &frame[..len]),
            Route::Drop(DropReason::Runt),
            "{len} bytes"
        );
    }
    assert_eq!(f.stats().dropped_runt, 5);
    assert_eq!(f.lookup(c.t(0), mac(B)), None);
    assert_eq!(
        f.forward(c.t(0), v, 0, &frame[..VNET_HDR_LEN + 14]),
        flood(true, &[])
    );
    assert_eq!(f.lookup(c.t(0), mac(B)), Some(v));
    // An invalid source behind the header is still refused.
    assert_eq!(
        f.forward(c.t(0), v, 0, &vnet(&eth(C, [0xff; 6]))),
        Route::Drop(DropReason::InvalidSource)
    );
}

#[test]
fn a_remote_route_does_not_match_a_reused_slot() {
    let (c, mut f) = setup(FabricConfig::default());
    let p = f.add_port(at(1));
    let r_info = PortInfo::vhub(1, 5, Form::Plain);
    let old = f.add_port(r_info);
    let _ = f.forward(c.t(0), old, 1, &eth(A, B));
    let route = f.forward(c.t(0), p, 0, &eth(B, A));
    let Route::Remote { shard, slot, port } = route else {
        panic!("not remote: {route:?}");
    };
    assert_eq!((shard, slot, port), (1, 5, old));
    assert_eq!(f.port(port), Some(r_info));
    // The handle crosses to shard 1 as an integer and back unchanged.
    assert_eq!(PortId::from_u64(port.to_u64()), port);
    assert_eq!(
        port.to_u64(),
        (u64::from(port.index()) << 32) | u64::from(port.generation())
    );

    // The session goes; another takes its fabric slot and, on shard 1, its
    // slot 5. A frame routed before then must not reach the newcomer.
    assert_eq!(f.remove_port(old), 1);
    let new = f.add_port(r_info);
    assert_eq!((new.index(), f.port(new)), (old.index(), Some(r_info)));
    assert_ne!(new, old);
    assert_eq!(f.port(port), None);
    assert_eq!(f.port(PortId::from_u64(port.to_u64())), None);
    // B is forgotten with the old port; the newcomer gets routes of its own.
    assert_eq!(f.forward(c.t(1), p, 0, &eth(B, A)), flood(false, &[1]));
    let _ = f.forward(c.t(1), new, 1, &eth(A, C));
    assert_eq!(
        f.forward(c.t(1), p, 0, &eth(C, A)),
        Route::Remote {
            shard: 1,
            slot: 5,
            port: new
        }
    );
}
