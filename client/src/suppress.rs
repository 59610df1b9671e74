//! ARP suppression: while the link to the hub is down, `vnic` answers the
//! host's ARP requests and IPv6 neighbour solicitations itself, from a
//! table of the addresses it has seen on the virtual LAN — as the edge
//! switches of an EVPN fabric answer from their own table — so that the
//! host's neighbour entries stay REACHABLE or STALE through an outage
//! instead of going FAILED (after which the host drops its packets with
//! "no route to host", and has to resolve again once the link is back).
//! Sans I/O: frames in, frames out, the time a parameter.
//!
//! ```text
//!   frames the hub delivers ──► Neighbours::learn(now, frame)       (every frame: a few bytes read)
//!   frames the TAP sends, link down ──► Neighbours::answer(now, frame, &mut reply)
//!        Verdict::Answered → `reply` goes back to the TAP, the request goes nowhere
//!        Verdict::Unknown | Pass → the request waits for the hub as before
//! ```
//!
//! What is learned, from frames the hub delivered (never from the host):
//! ARP senders; IPv4 sources inside the TAP's own subnet (`--ip`; a
//! router's frames carry other subnets' sources, which are not its);
//! IPv6 neighbour solicitations (source and its link-layer option),
//! advertisements (target, link-layer option and router flag), router
//! advertisements (the router); IPv6 link-local sources. Untagged frames
//! only.
//!
//! What is never done:
//! - answering while the link is up (the caller asks only while it is
//!   down: then the hub's LAN answers, as always);
//! - answering for the host's own addresses: ARP probes (sender
//!   0.0.0.0) and announcements (sender = target), duplicate address
//!   detection (source `::`), and any address the host has used as the
//!   sender of a request;
//! - answering an IPv6 solicitation for a neighbour whose router flag is
//!   unknown (learned from a solicitation or a data frame only): an
//!   advertisement without the flag would make the host drop that router
//!   from its default routes (RFC 4861 §7.2.5);
//! - growing without bound: at most `capacity` entries, the oldest
//!   evicted (counted); an entry not seen for [`MAX_AGE`] is not used.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::lan::{ethertype, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH_HDR};

pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Entries kept at most.
pub const DEFAULT_CAPACITY: usize = 4096;
/// An entry not seen on the LAN for this long is not answered for: its
/// owner may be gone, or have another MAC.
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// An entry seen again within this long is not written again: bulk
/// traffic from one neighbour costs a few comparisons per frame.
const REFRESH: Duration = Duration::from_secs(1);
/// Slots of the cache in front of the table (a power of two).
const RECENT: usize = 64;
/// Addresses of the host remembered (as senders of its requests).
const OWN: usize = 8;

const ARP_LEN: usize = 28;
const ARP_ETH_IPV4: [u8; 6] = [0, 1, 8, 0, 6, 4];
const MIN_FRAME: usize = 60;
const IPV6_HDR: usize = 40;
const ICMPV6: u8 = 58;
const ND_HOP_LIMIT: u8 = 255;
const ICMPV6_RA: u8 = 134;
const ICMPV6_NS: u8 = 135;
const ICMPV6_NA: u8 = 136;
const ND_OPT_SOURCE_LL: u8 = 1;
const ND_OPT_TARGET_LL: u8 = 2;
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
/// A neighbour advertisement with a target link-layer address option.
const NA_LEN: usize = 24 + 8;

/// What [`Neighbours::answer`] did with a frame from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a neighbour request, or one that is not ours to answer
    /// (about the host itself): send it on as usual.
    Pass,
    /// The reply is in the buffer: write it to the TAP, drop the request.
    Answered,
    /// A request for an address the table does not know (or no longer
    /// trusts): send it on as usual.
    Unknown,
}

/// Counters, for the status file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SuppressStats {
    /// Entries in the table now.
    pub entries: u64,
    /// Entries added or changed (a new address, or a new MAC for one).
    pub learned: u64,
    /// Entries dropped to stay within the capacity.
    pub evicted: u64,
    /// Entries dropped because they were not seen for [`MAX_AGE`].
    pub aged_out: u64,
    /// ARP requests answered while the link was down.
    pub arp_answered: u64,
    /// IPv6 neighbour solicitations answered while the link was down.
    pub nd_answered: u64,
    /// Requests the table could not answer while the link was down.
    pub unknown: u64,
}

impl SuppressStats {
    pub fn answered(&self) -> u64 {
        self.arp_answered + self.nd_answered
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: [u8; 6],
    seen: Instant,
    /// IPv6 only: the neighbour is a router (from an NA's flag or an RA);
    /// `None`: not known, so not answered for.
    router: Option<bool>,
}

/// The learned table and the responder.
#[derive(Debug)]
pub struct Neighbours {
    map: HashMap<IpAddr, Entry>,
    capacity: usize,
    max_age: Duration,
    /// The TAP's MAC: frames from it are the host's, answers never carry it.
    own_mac: [u8; 6],
    /// The TAP's IPv4 subnet: IPv4 sources inside it are learned.
    v4_net: Option<(Ipv4Addr, u8)>,
    /// A direct-mapped cache of what was learned last: (address, MAC, when).
    recent: [Option<(IpAddr, [u8; 6], Instant)>; RECENT],
    /// The host's addresses, as senders of its requests.
    own: [Option<IpAddr>; OWN],
    own_next: usize,
    stats: SuppressStats,
}

impl Neighbours {
    /// An empty table for the host behind the TAP with MAC `own_mac`;
    /// `v4_net`: the TAP's IPv4 address and prefix length, if known.
    pub fn new(own_mac: [u8; 6], v4_net: Option<(Ipv4Addr, u8)>, capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            capacity: capacity.max(1),
            max_age: MAX_AGE,
            own_mac,
            v4_net,
            recent: [None; RECENT],
            own: [None; OWN],
            own_next: 0,
            stats: SuppressStats::default(),
        }
    }

    pub fn stats(&self) -> SuppressStats {
        SuppressStats {
            entries: self.map.len() as u64,
            ..self.stats
        }
    }

    /// The MAC the table holds for `ip`, if any.
    #[cfg(test)]
    pub fn lookup(&self, ip: IpAddr) -> Option<[u8; 6]> {
        self.map.get(&ip).map(|e| e.mac)
    }

    // ------------------------------------------------------------------
    // Learning (every frame the hub delivers: keep it cheap)
    // ------------------------------------------------------------------

    /// Looks at a plain Ethernet frame the hub delivered and learns the
    /// sender's address(es) from it.
    pub fn learn(&mut self, now: Instant, frame: &[u8]) {
        if frame.len() < ETH_HDR {
            return;
        }
        let mac: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
        if !usable_mac(mac) || mac == self.own_mac {
            return;
        }
        match ethertype(frame) {
            ETHERTYPE_ARP => {
                if let Some(a) = arp(frame) {
                    if !a.sender_ip.is_unspecified() && usable_mac(a.sender_mac) {
                        self.insert(now, IpAddr::V4(a.sender_ip), a.sender_mac, None);
                    }
                }
            }
            ETHERTYPE_IPV4 => {
                let Some((net, prefix)) = self.v4_net else {
                    return;
                };
                if frame.len() < ETH_HDR + 20 || frame[ETH_HDR] >> 4 != 4 {
                    return;
                }
                let src = Ipv4Addr::from(<[u8; 4]>::try_from(&frame[26..30]).expect("4 bytes"));
                if on_link(src, net, prefix) {
                    self.insert(now, IpAddr::V4(src), mac, None);
                }
            }
            ETHERTYPE_IPV6 => self.learn_v6(now, frame, mac),
            _ => {}
        }
    }

    fn learn_v6(&mut self, now: Instant, frame: &[u8], mac: [u8; 6]) {
        let Some(ip6) = frame.get(ETH_HDR..ETH_HDR + IPV6_HDR) else {
            return;
        };
        if ip6[0] >> 4 != 6 {
            return;
        }
        let src = v6_at(ip6, 8);
        if let Some(nd) = nd(frame) {
            match nd.kind {
                ICMPV6_NS if !src.is_unspecified() => {
                    let ll = nd.option(ND_OPT_SOURCE_LL).unwrap_or(mac);
                    self.insert(now, IpAddr::V6(src), ll, None);
                }
                ICMPV6_NA => {
                    let ll = nd.option(ND_OPT_TARGET_LL).unwrap_or(mac);
                    let router = nd.flags & NA_ROUTER != 0;
                    self.insert(now, IpAddr::V6(nd.target), ll, Some(router));
                }
                ICMPV6_RA if is_link_local(src) => {
                    let ll = nd.option(ND_OPT_SOURCE_LL).unwrap_or(mac);
                    self.insert(now, IpAddr::V6(src), ll, Some(true));
                }
                _ => {}
            }
        } else if is_link_local(src) {
            self.insert(now, IpAddr::V6(src), mac, None);
        }
    }

    fn insert(&mut self, now: Instant, ip: IpAddr, mac: [u8; 6], router: Option<bool>) {
        if !usable_mac(mac) || mac == self.own_mac {
            return;
        }
        let slot = recent_slot(ip);
        // The hot path: the same neighbour again, just now.
        if router.is_none() {
            if let Some((rip, rmac, when)) = self.recent[slot] {
                if rip == ip && rmac == mac && now.saturating_duration_since(when) < REFRESH {
                    return;
                }
            }
        }
        self.recent[slot] = Some((ip, mac, now));
        if let Some(e) = self.map.get_mut(&ip) {
            if e.mac != mac {
                // Moved (or replaced): what we knew of it is void.
                e.mac = mac;
                e.router = router;
                self.stats.learned += 1;
            } else if router.is_some() {
                e.router = router;
            }
            e.seen = now;
            return;
        }
        if self.map.len() >= self.capacity {
            self.make_room(now);
        }
        self.map.insert(
            ip,
            Entry {
                mac,
                seen: now,
                router,
            },
        );
        self.stats.learned += 1;
    }

    /// The table is full: drop what aged out, else the oldest eighth.
    /// Sorting an eighth away at once keeps the cost per new entry small.
    #[cold]
    fn make_room(&mut self, now: Instant) {
        let max_age = self.max_age;
        let before = self.map.len();
        self.map
            .retain(|_, e| now.saturating_duration_since(e.seen) < max_age);
        self.stats.aged_out += (before - self.map.len()) as u64;
        if self.map.len() < self.capacity {
            return;
        }
        let mut seen: Vec<Instant> = self.map.values().map(|e| e.seen).collect();
        let k = (self.capacity / 8).max(1) - 1;
        let (_, cut, _) = seen.select_nth_unstable(k);
        let cut = *cut;
        let before = self.map.len();
        self.map.retain(|_, e| e.seen > cut);
        self.stats.evicted += (before - self.map.len()) as u64;
    }

    // ------------------------------------------------------------------
    // Answering (frames from the host, only while the link is down)
    // ------------------------------------------------------------------

    /// Looks at a plain Ethernet frame the host sent. If it is an ARP
    /// request or an IPv6 neighbour solicitation for an address the table
    /// knows, writes the reply (a plain Ethernet frame for the host) into
    /// `reply` and says [`Verdict::Answered`].
    pub fn answer(&mut self, now: Instant, frame: &[u8], reply: &mut Vec<u8>) -> Verdict {
        match ethertype(frame) {
            ETHERTYPE_ARP => self.answer_arp(now, frame, reply),
            ETHERTYPE_IPV6 => self.answer_ns(now, frame, reply),
            _ => Verdict::Pass,
        }
    }

    fn answer_arp(&mut self, now: Instant, frame: &[u8], reply: &mut Vec<u8>) -> Verdict {
        let Some(a) = arp(frame) else {
            return Verdict::Pass;
        };
        // A probe (RFC 5227) or an announcement is about the host itself.
        if a.op != 1 || a.sender_ip.is_unspecified() || a.sender_ip == a.target_ip {
            return Verdict::Pass;
        }
        self.note_own(IpAddr::V4(a.sender_ip));
        let target = IpAddr::V4(a.target_ip);
        let Some(e) = self.usable(now, target) else {
            return self.unknown(target);
        };
        if self.is_own(target) || e.mac == self.own_mac {
            return Verdict::Pass;
        }
        reply.clear();
        put_eth(reply, a.sender_mac, e.mac, ETHERTYPE_ARP);
        reply.extend_from_slice(&ARP_ETH_IPV4);
        reply.extend_from_slice(&[0, 2]); // reply
        reply.extend_from_slice(&e.mac);
        reply.extend_from_slice(&a.target_ip.octets());
        reply.extend_from_slice(&a.sender_mac);
        reply.extend_from_slice(&a.sender_ip.octets());
        reply.resize(MIN_FRAME, 0);
        self.stats.arp_answered += 1;
        Verdict::Answered
    }

    fn answer_ns(&mut self, now: Instant, frame: &[u8], reply: &mut Vec<u8>) -> Verdict {
        let Some(nd) = nd(frame).filter(|n| n.kind == ICMPV6_NS) else {
            return Verdict::Pass;
        };
        let ip6 = &frame[ETH_HDR..];
        let src = v6_at(ip6, 8);
        // Duplicate address detection: the host checks its own address.
        if src.is_unspecified() || src == nd.target {
            return Verdict::Pass;
        }
        self.note_own(IpAddr::V6(src));
        let target = IpAddr::V6(nd.target);
        let Some(e) = self.usable(now, target) else {
            return self.unknown(target);
        };
        if self.is_own(target) || e.mac == self.own_mac {
            return Verdict::Pass;
        }
        let Some(router) = e.router else {
            return self.unknown(target);
        };
        let eth_src: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
        let requester = nd.option(ND_OPT_SOURCE_LL).unwrap_or(eth_src);
        reply.clear();
        put_eth(reply, requester, e.mac, ETHERTYPE_IPV6);
        let ip_start = reply.len();
        reply.extend_from_slice(&[0x60, 0, 0, 0]);
        reply.extend_from_slice(&(NA_LEN as u16).to_be_bytes());
        reply.extend_from_slice(&[ICMPV6, ND_HOP_LIMIT]);
        reply.extend_from_slice(&nd.target.octets());
        reply.extend_from_slice(&src.octets());
        let icmp_start = reply.len();
        // Solicited; not Override: a proxy's answer must not replace an
        // entry the owner itself may have updated (RFC 4861 §7.2.8).
        let flags = NA_SOLICITED | if router { NA_ROUTER } else { 0 };
        reply.extend_from_slice(&[ICMPV6_NA, 0, 0, 0, flags, 0, 0, 0]);
        reply.extend_from_slice(&nd.target.octets());
        reply.extend_from_slice(&[ND_OPT_TARGET_LL, 1]);
        reply.extend_from_slice(&e.mac);
        let c = icmpv6_checksum(
            &reply[ip_start + 8..ip_start + 24],
            &reply[ip_start + 24..ip_start + 40],
            &reply[icmp_start..],
        );
        reply[icmp_start + 2..icmp_start + 4].copy_from_slice(&c.to_be_bytes());
        self.stats.nd_answered += 1;
        Verdict::Answered
    }

    /// The entry for `ip` if it is young enough to answer with; an old
    /// one is dropped.
    fn usable(&mut self, now: Instant, ip: IpAddr) -> Option<Entry> {
        let e = *self.map.get(&ip)?;
        if now.saturating_duration_since(e.seen) >= self.max_age {
            self.map.remove(&ip);
            self.stats.aged_out += 1;
            return None;
        }
        Some(e)
    }

    fn unknown(&mut self, ip: IpAddr) -> Verdict {
        self.stats.unknown += 1;
        tracing::debug!("link down: no answer for {ip} in the neighbour table");
        Verdict::Unknown
    }

    fn note_own(&mut self, ip: IpAddr) {
        if !self.is_own(ip) {
            self.own[self.own_next] = Some(ip);
            self.own_next = (self.own_next + 1) % OWN;
        }
    }

    fn is_own(&self, ip: IpAddr) -> bool {
        self.own.contains(&Some(ip))
    }
}

/// A unicast MAC that is not all zeros.
fn usable_mac(mac: [u8; 6]) -> bool {
    mac[0] & 1 == 0 && mac != [0; 6]
}

fn on_link(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    let (a, n) = (u32::from(ip), u32::from(net));
    let host = a & !mask;
    // Not the network or broadcast address of the subnet, not ours.
    a & mask == n & mask && a != n && host != 0 && host != !mask
}

fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

fn recent_slot(ip: IpAddr) -> usize {
    let x = match ip {
        IpAddr::V4(v) => u32::from(v),
        IpAddr::V6(v) => {
            let o = v.octets();
            u32::from_be_bytes([o[12], o[13], o[14], o[15]])
        }
    };
    ((x ^ (x >> 8)) as usize) & (RECENT - 1)
}

fn v6_at(b: &[u8], at: usize) -> Ipv6Addr {
    Ipv6Addr::from(<[u8; 16]>::try_from(&b[at..at + 16]).expect("16 bytes"))
}

fn put_eth(out: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// An Ethernet/IPv4 ARP packet.
struct Arp {
    op: u16,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
}

fn arp(frame: &[u8]) -> Option<Arp> {
    let a = frame.get(ETH_HDR..ETH_HDR + ARP_LEN)?;
    if a[0..6] != ARP_ETH_IPV4 {
        return None;
    }
    Some(Arp {
        op: u16::from_be_bytes([a[6], a[7]]),
        sender_mac: a[8..14].try_into().ok()?,
        sender_ip: Ipv4Addr::new(a[14], a[15], a[16], a[17]),
        target_ip: Ipv4Addr::new(a[24], a[25], a[26], a[27]),
    })
}

/// A neighbour discovery message (RS/RA/NS/NA) right after the IPv6
/// header, hop limit 255 as RFC 4861 requires.
struct Nd<'a> {
    kind: u8,
    /// The NA's flags byte (R, S, O).
    flags: u8,
    /// NS and NA: the target address (unspecified for an RA).
    target: Ipv6Addr,
    options: &'a [u8],
}

impl Nd<'_> {
    /// The link-layer address of the first option of `kind`.
    fn option(&self, kind: u8) -> Option<[u8; 6]> {
        let mut o = self.options;
        while o.len() >= 8 {
            let len = usize::from(o[1]) * 8;
            if len == 0 || len > o.len() {
                return None;
            }
            if o[0] == kind && len == 8 {
                return o[2..8].try_into().ok().filter(|m| usable_mac(*m));
            }
            o = &o[len..];
        }
        None
    }
}

fn nd(frame: &[u8]) -> Option<Nd<'_>> {
    let ip6 = frame.get(ETH_HDR..)?;
    if ip6.len() < IPV6_HDR + 16 || ip6[0] >> 4 != 6 || ip6[6] != ICMPV6 || ip6[7] != ND_HOP_LIMIT {
        return None;
    }
    let payload = usize::from(u16::from_be_bytes([ip6[4], ip6[5]]));
    let icmp = ip6
        .get(IPV6_HDR..IPV6_HDR + payload)
        .filter(|i| i.len() >= 16)?;
    match icmp[0] {
        ICMPV6_NS | ICMPV6_NA if icmp.len() >= 24 && icmp[1] == 0 => Some(Nd {
            kind: icmp[0],
            flags: icmp[4],
            target: v6_at(icmp, 8),
            options: &icmp[24..],
        }),
        ICMPV6_RA if icmp.len() >= 16 && icmp[1] == 0 => Some(Nd {
            kind: ICMPV6_RA,
            flags: 0,
            target: Ipv6Addr::UNSPECIFIED,
            options: &icmp[16..],
        }),
        _ => None,
    }
}

/// The ICMPv6 checksum: the one's complement sum over the pseudo-header
/// (source, destination, length, next header; RFC 8200 §8.1) and the
/// message, whose checksum field is zero.
fn icmpv6_checksum(src: &[u8], dst: &[u8], msg: &[u8]) -> u16 {
    let len = (msg.len() as u32).to_be_bytes();
    let mut sum = 0u32;
    for part in [src, dst, &len[..], &[0, 0, 0, ICMPV6][..], msg] {
        sum = add_words(sum, part);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Adds `data` as big-endian 16-bit words (every part but the last is
/// of even length here).
fn add_words(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

#[cfg(test)]
mod tests;
