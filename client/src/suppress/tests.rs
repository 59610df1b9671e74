//! The table and the responder with real frames: ARP and ICMPv6 built
//! byte by byte, replies checked byte by byte (checksums with the
//! independent `lan::checksum`).

use super::*;
use crate::lan::{arp_request, checksum, icmp_echo_request};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a]; // the host behind the TAP
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b]; // a neighbour on the LAN
const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 11);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 12);
const IP_C: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 13);
const V6_A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x0a);
const V6_B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x0b);
const LL_B: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x0b);

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

fn table() -> Neighbours {
    Neighbours::new(MAC_A, Some((IP_A, 24)), DEFAULT_CAPACITY)
}

/// An ARP reply from `mac`/`ip` to `to_mac`/`to_ip`.
fn arp_reply(mac: [u8; 6], ip: Ipv4Addr, to_mac: [u8; 6], to_ip: Ipv4Addr) -> Vec<u8> {
    let mut f = arp_request(mac, ip, to_ip);
    f[0..6].copy_from_slice(&to_mac);
    f[ETH_HDR + 7] = 2;
    f[ETH_HDR + 18..ETH_HDR + 24].copy_from_slice(&to_mac);
    f
}

/// An ICMPv6 neighbour discovery message with a link-layer option,
/// checksum computed the independent way.
fn nd_frame(
    (eth_dst, eth_src): ([u8; 6], [u8; 6]),
    (src, dst): (Ipv6Addr, Ipv6Addr),
    kind: u8,
    flags: u8,
    target: Ipv6Addr,
    option: Option<(u8, [u8; 6])>,
) -> Vec<u8> {
    let mut icmp = vec![kind, 0, 0, 0, flags, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    if let Some((k, mac)) = option {
        icmp.extend_from_slice(&[k, 1]);
        icmp.extend_from_slice(&mac);
    }
    let c = checksum(&pseudo(src, dst, &icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&eth_src);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    f
}

/// The pseudo-header and the message, as one buffer.
fn pseudo(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 58]);
    p.extend_from_slice(msg);
    p
}

fn solicited_node(ip: Ipv6Addr) -> (Ipv6Addr, [u8; 6]) {
    let o = ip.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    );
    (group, [0x33, 0x33, 0xff, o[13], o[14], o[15]])
}

/// The host's solicitation for `target`.
fn ns_from_host(target: Ipv6Addr) -> Vec<u8> {
    let (group, mac) = solicited_node(target);
    nd_frame(
        (mac, MAC_A),
        (V6_A, group),
        135,
        0,
        target,
        Some((1, MAC_A)),
    )
}

/// B's advertisement for itself (to A), with the router flag as given.
fn na_from_b(router: bool) -> Vec<u8> {
    let flags = 0x40 | 0x20 | if router { 0x80 } else { 0 };
    nd_frame(
        (MAC_A, MAC_B),
        (V6_B, V6_A),
        136,
        flags,
        V6_B,
        Some((2, MAC_B)),
    )
}

#[test]
fn an_arp_request_is_answered_from_a_learned_reply() {
    let t = t0();
    let mut n = table();
    // B answered an earlier request of the host (delivered by the hub).
    n.learn(t, &arp_reply(MAC_B, IP_B, MAC_A, IP_A));
    assert_eq!(n.lookup(IpAddr::V4(IP_B)), Some(MAC_B));
    // The link is down; the host asks for B (broadcast).
    let mut reply = Vec::new();
    let v = n.answer(t, &arp_request(MAC_A, IP_A, IP_B), &mut reply);
    assert_eq!(v, Verdict::Answered);
    #[rustfmt::skip]
    let expected: [u8; 42] = [
        0x02, 0, 0, 0, 0, 0x0a,  0x02, 0, 0, 0, 0, 0x0b,  0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02,
        0x02, 0, 0, 0, 0, 0x0b,  10, 77, 0, 12,
        0x02, 0, 0, 0, 0, 0x0a,  10, 77, 0, 11,
    ];
    assert_eq!(reply.len(), 60, "padded to the Ethernet minimum");
    assert_eq!(&reply[..42], &expected);
    assert!(reply[42..].iter().all(|b| *b == 0));
    // The kernel's unicast probe (PROBE state) gets the same answer.
    let mut probe = arp_request(MAC_A, IP_A, IP_B);
    probe[0..6].copy_from_slice(&MAC_B);
    let mut again = Vec::new();
    assert_eq!(n.answer(t, &probe, &mut again), Verdict::Answered);
    assert_eq!(again, reply);
    assert_eq!(n.stats().arp_answered, 2);
}

#[test]
fn nothing_is_answered_without_a_learned_entry() {
    let t = t0();
    let mut n = table();
    n.learn(t, &arp_reply(MAC_B, IP_B, MAC_A, IP_A));
    let mut reply = vec![0xee];
    let v = n.answer(t, &arp_request(MAC_A, IP_A, IP_C), &mut reply);
    assert_eq!(v, Verdict::Unknown);
    assert_eq!(reply, [0xee], "the buffer is untouched");
    assert_eq!(n.stats().unknown, 1);
    // Not a request at all: passed on, not counted.
    let echo = icmp_echo_request(MAC_B, MAC_A, IP_A, IP_B, 1, 1);
    assert_eq!(n.answer(t, &echo, &mut reply), Verdict::Pass);
    assert_eq!(n.answer(t, &[0u8; 10], &mut reply), Verdict::Pass);
    assert_eq!(n.stats().unknown, 1);
}

#[test]
fn the_hosts_own_addresses_are_never_answered_for() {
    let t = t0();
    let mut n = table();
    // Someone on the LAN claims the host's address (a conflict).
    n.learn(t, &arp_reply(MAC_C, IP_A, MAC_B, IP_B));
    n.learn(t, &arp_reply(MAC_B, IP_B, MAC_C, IP_A));
    let mut reply = Vec::new();
    // An ARP probe (RFC 5227, sender 0.0.0.0) for the host's address.
    let probe = arp_request(MAC_A, Ipv4Addr::UNSPECIFIED, IP_A);
    assert_eq!(n.answer(t, &probe, &mut reply), Verdict::Pass);
    // An announcement (sender = target).
    let announce = arp_request(MAC_A, IP_A, IP_A);
    assert_eq!(n.answer(t, &announce, &mut reply), Verdict::Pass);
    // The host used IP_A as a sender: a request for it, from another of
    // its addresses, is not answered either.
    assert_eq!(
        n.answer(t, &arp_request(MAC_A, IP_A, IP_B), &mut reply),
        Verdict::Answered
    );
    let other = arp_request(MAC_A, Ipv4Addr::new(10, 77, 0, 99), IP_A);
    assert_eq!(n.answer(t, &other, &mut reply), Verdict::Pass);
    // Frames from the TAP's own MAC are never learned.
    n.learn(t, &arp_reply(MAC_A, IP_C, MAC_B, IP_B));
    assert_eq!(n.lookup(IpAddr::V4(IP_C)), None);
    // IPv6 duplicate address detection (source ::).
    n.learn(t, &na_from_b(false));
    let (group, mac) = solicited_node(V6_B);
    let dad = nd_frame(
        (mac, MAC_A),
        (Ipv6Addr::UNSPECIFIED, group),
        135,
        0,
        V6_B,
        None,
    );
    assert_eq!(n.answer(t, &dad, &mut reply), Verdict::Pass);
}

#[test]
fn a_neighbour_solicitation_gets_an_advertisement_with_a_valid_checksum() {
    let t = t0();
    let mut n = table();
    n.learn(t, &na_from_b(false));
    assert_eq!(n.lookup(IpAddr::V6(V6_B)), Some(MAC_B));
    let mut na = Vec::new();
    assert_eq!(n.answer(t, &ns_from_host(V6_B), &mut na), Verdict::Answered);
    assert_eq!(na.len(), 14 + 40 + 32);
    // Ethernet: to the host's MAC (from its source link-layer option), from B.
    assert_eq!(&na[0..6], &MAC_A);
    assert_eq!(&na[6..12], &MAC_B);
    assert_eq!(&na[12..14], &[0x86, 0xdd]);
    // IPv6: version 6, payload 32, ICMPv6, hop limit 255, B → A.
    let ip = &na[14..54];
    assert_eq!(&ip[0..8], &[0x60, 0, 0, 0, 0, 32, 58, 255]);
    assert_eq!(&ip[8..24], &V6_B.octets());
    assert_eq!(&ip[24..40], &V6_A.octets());
    // ICMPv6: NA, code 0, solicited, not router, not override; target B;
    // target link-layer option with B's MAC.
    let icmp = &na[54..];
    assert_eq!(&icmp[0..2], &[136, 0]);
    assert_eq!(&icmp[4..8], &[0x40, 0, 0, 0]);
    assert_eq!(&icmp[8..24], &V6_B.octets());
    assert_eq!(&icmp[24..32], &[2, 1, 0x02, 0, 0, 0, 0, 0x0b]);
    assert_eq!(checksum(&pseudo(V6_B, V6_A, icmp)), 0, "ICMPv6 checksum");
    // The same NS built here checks out the same way (the test's own
    // frames are valid too).
    let ns = ns_from_host(V6_B);
    let (group, _) = solicited_node(V6_B);
    assert_eq!(checksum(&pseudo(V6_A, group, &ns[54..])), 0);
    assert_eq!(n.stats().nd_answered, 1);
}

#[test]
fn a_router_is_answered_as_a_router_and_an_unknown_flag_not_at_all() {
    let t = t0();
    let mut n = table();
    n.learn(t, &na_from_b(true));
    let mut na = Vec::new();
    assert_eq!(n.answer(t, &ns_from_host(V6_B), &mut na), Verdict::Answered);
    assert_eq!(na[54 + 4], 0x80 | 0x40, "router and solicited");
    assert_eq!(checksum(&pseudo(V6_B, V6_A, &na[54..])), 0);
    // Learned from B's own solicitation only: the router flag is not
    // known, so no answer (it could drop a default route).
    let mut n = table();
    let (group, mac) = solicited_node(V6_A);
    n.learn(
        t,
        &nd_frame((mac, MAC_B), (V6_B, group), 135, 0, V6_A, Some((1, MAC_B))),
    );
    assert_eq!(n.lookup(IpAddr::V6(V6_B)), Some(MAC_B));
    assert_eq!(n.answer(t, &ns_from_host(V6_B), &mut na), Verdict::Unknown);
    // A router advertisement from a link-local address says it all.
    let ra = {
        let mut f = nd_frame(
            ([0x33, 0x33, 0, 0, 0, 1], MAC_B),
            (LL_B, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)),
            134,
            0,
            Ipv6Addr::UNSPECIFIED,
            Some((1, MAC_B)),
        );
        // An RA has 16 bytes before its options, not 24: drop the
        // last 8 bytes of the "target" and recompute.
        f.drain(14 + 40 + 16..14 + 40 + 24);
        f[18..20].copy_from_slice(&16u16.to_be_bytes());
        let icmp = &mut f[54..];
        icmp[2..4].copy_from_slice(&[0, 0]);
        let c = checksum(&pseudo(
            LL_B,
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            icmp,
        ));
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        f
    };
    n.learn(t, &ra);
    assert_eq!(n.lookup(IpAddr::V6(LL_B)), Some(MAC_B));
    assert_eq!(n.answer(t, &ns_from_host(LL_B), &mut na), Verdict::Answered);
    assert_eq!(na[54 + 4], 0x80 | 0x40);
}

#[test]
fn data_frames_teach_only_on_link_sources() {
    let t = t0();
    let mut n = table();
    // B pinging A: on the TAP's subnet.
    n.learn(t, &icmp_echo_request(MAC_A, MAC_B, IP_B, IP_A, 1, 1));
    assert_eq!(n.lookup(IpAddr::V4(IP_B)), Some(MAC_B));
    // A router forwarding from elsewhere: not its address.
    let far = Ipv4Addr::new(192, 0, 2, 1);
    n.learn(t, &icmp_echo_request(MAC_A, MAC_C, far, IP_A, 1, 1));
    assert_eq!(n.lookup(IpAddr::V4(far)), None);
    // The subnet's broadcast address is nobody's.
    let bcast = Ipv4Addr::new(10, 77, 0, 255);
    n.learn(t, &icmp_echo_request(MAC_A, MAC_C, bcast, IP_A, 1, 1));
    assert_eq!(n.lookup(IpAddr::V4(bcast)), None);
    // Without a known subnet, only ARP teaches IPv4.
    let mut n = Neighbours::new(MAC_A, None, 16);
    n.learn(t, &icmp_echo_request(MAC_A, MAC_B, IP_B, IP_A, 1, 1));
    assert_eq!(n.lookup(IpAddr::V4(IP_B)), None);
    // A tagged frame (802.1Q) is not looked into.
    let mut tagged = arp_reply(MAC_B, IP_B, MAC_A, IP_A);
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    n.learn(t, &tagged);
    assert_eq!(n.lookup(IpAddr::V4(IP_B)), None);
    // A multicast source MAC is never learned.
    n.learn(t, &arp_reply([0x01, 0, 0x5e, 0, 0, 1], IP_B, MAC_A, IP_A));
    assert_eq!(n.lookup(IpAddr::V4(IP_B)), None);
    // Truncated frames are ignored.
    for len in 0..42 {
        n.learn(t, &arp_reply(MAC_B, IP_B, MAC_A, IP_A)[..len]);
        n.learn(t, &na_from_b(false)[..len.min(60)]);
    }
    assert_eq!(n.stats().entries, 0);
}

#[test]
fn a_new_mac_replaces_the_old_one() {
    let t = t0();
    let mut n = table();
    n.learn(t, &arp_reply(MAC_B, IP_B, MAC_A, IP_A));
    n.learn(t, &arp_reply(MAC_C, IP_B, MAC_A, IP_A));
    assert_eq!(n.lookup(IpAddr::V4(IP_B)), Some(MAC_C));
    assert_eq!(n.stats().learned, 2);
    assert_eq!(n.stats().entries, 1);
}

#[test]
fn the_table_is_bounded_and_the_oldest_go_first() {
    let mut t = t0();
    let mut n = Neighbours::new(MAC_A, Some((IP_A, 16)), 16);
    for k in 0..40u8 {
        t += Duration::from_millis(10);
        let ip = Ipv4Addr::new(10, 77, 1, k + 1);
        n.learn(t, &arp_reply([2, 0, 0, 0, 1, k], ip, MAC_A, IP_A));
    }
    let s = n.stats();
    assert!(s.entries <= 16, "{s:?}");
    assert_eq!(s.learned, 40);
    assert_eq!(s.evicted + s.entries, 40, "{s:?}");
    // The newest is there, the oldest is not.
    assert!(n.lookup(IpAddr::V4(Ipv4Addr::new(10, 77, 1, 40))).is_some());
    assert!(n.lookup(IpAddr::V4(Ipv4Addr::new(10, 77, 1, 1))).is_none());
}

#[test]
fn an_old_entry_is_not_answered_for() {
    let t = t0();
    let mut n = table();
    n.learn(t, &arp_reply(MAC_B, IP_B, MAC_A, IP_A));
    let mut reply = Vec::new();
    let req = arp_request(MAC_A, IP_A, IP_B);
    assert_eq!(
        n.answer(t + MAX_AGE - Duration::from_secs(1), &req, &mut reply),
        Verdict::Answered
    );
    assert_eq!(n.answer(t + MAX_AGE, &req, &mut reply), Verdict::Unknown);
    assert_eq!(n.stats().aged_out, 1);
    assert_eq!(n.stats().entries, 0);
    // Seen again (a data frame refreshes it): answered again.
    n.learn(
        t + MAX_AGE,
        &icmp_echo_request(MAC_A, MAC_B, IP_B, IP_A, 1, 1),
    );
    assert_eq!(n.answer(t + MAX_AGE, &req, &mut reply), Verdict::Answered);
}

#[test]
fn bulk_traffic_refreshes_without_rewriting() {
    let t = t0();
    let mut n = table();
    let f = icmp_echo_request(MAC_A, MAC_B, IP_B, IP_A, 1, 1);
    n.learn(t, &f);
    let seen = n.map[&IpAddr::V4(IP_B)].seen;
    // Within REFRESH the entry is not touched …
    n.learn(t + Duration::from_millis(500), &f);
    assert_eq!(n.map[&IpAddr::V4(IP_B)].seen, seen);
    // … after it, it is.
    n.learn(t + REFRESH, &f);
    assert_eq!(n.map[&IpAddr::V4(IP_B)].seen, t + REFRESH);
}
