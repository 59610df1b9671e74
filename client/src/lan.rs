//! The ICMP keep-alive through the virtual LAN (`--icmp-keepalive`), sans
//! I/O: it builds ARP requests and ICMP echo requests as Ethernet frames,
//! which the client sends into the session as if they came from the TAP,
//! and it reads the frames the hub delivers to learn the target's MAC and
//! count echo replies.
//!
//! ```text
//!   IcmpKeepalive::poll(now, src) ──► ARP who-has / ICMP echo ──► Session::send_frame
//!   frames from the hub ──► IcmpKeepalive::observe(frame)   (MAC learned, reply counted)
//! ```
//!
//! Why at all: an operating system may drop an idle default route through
//! the TAP (or a NAT on the virtual LAN may forget a mapping); a small echo
//! at an interval keeps it alive. Off by default: we never phone home.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

pub const ETH_HDR: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const BROADCAST: [u8; 6] = [0xff; 6];
/// Ethernet frames shorter than this (without FCS) are padded.
const MIN_FRAME: usize = 60;
const IPV4_HDR: usize = 20;
const ICMP_HDR: usize = 8;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
/// Payload of our echo requests: a recognisable tag, then zeros.
const ECHO_PAYLOAD: &[u8] = b"vnic icmp keep-alive";

fn put_eth(out: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

fn pad(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < MIN_FRAME {
        f.resize(MIN_FRAME, 0);
    }
    f
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A broadcast ARP request: who has `target`? tell `src_ip` (at `src_mac`).
pub fn arp_request(src_mac: [u8; 6], src_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(MIN_FRAME);
    put_eth(&mut f, BROADCAST, src_mac, ETHERTYPE_ARP);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&src_ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    pad(f)
}

/// If `frame` is an ARP packet (request or reply) sent by `ip`, the MAC
/// it gives for `ip`.
pub fn arp_sender_mac(frame: &[u8], ip: Ipv4Addr) -> Option<[u8; 6]> {
    if frame.len() < ETH_HDR + 28 || ethertype(frame) != ETHERTYPE_ARP {
        return None;
    }
    let a = &frame[ETH_HDR..];
    if a[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let mac: [u8; 6] = a[8..14].try_into().ok()?;
    let sender_ip = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
    (sender_ip == ip && mac != [0; 6] && mac[0] & 1 == 0).then_some(mac)
}

/// The EtherType of a frame (no VLAN tag handling: the keep-alive runs
/// untagged).
pub fn ethertype(frame: &[u8]) -> u16 {
    if frame.len() < ETH_HDR {
        return 0;
    }
    u16::from_be_bytes([frame[12], frame[13]])
}

/// An ICMP echo request from `src` to `dst` as an Ethernet frame.
pub fn icmp_echo_request(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    seq: u16,
) -> Vec<u8> {
    let icmp_len = ICMP_HDR + ECHO_PAYLOAD.len();
    let total = IPV4_HDR + icmp_len;
    let mut f = Vec::with_capacity(ETH_HDR + total);
    put_eth(&mut f, dst_mac, src_mac, ETHERTYPE_IPV4);
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0]); // version 4, IHL 5, DSCP 0
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes()); // identification
    f.extend_from_slice(&[0x40, 0]); // don't fragment
    f.extend_from_slice(&[64, 1, 0, 0]); // TTL 64, ICMP, checksum later
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let c = checksum(&f[ip_start..ip_start + IPV4_HDR]);
    f[ip_start + 10..ip_start + 12].copy_from_slice(&c.to_be_bytes());
    let icmp_start = f.len();
    f.extend_from_slice(&[ICMP_ECHO_REQUEST, 0, 0, 0]);
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(ECHO_PAYLOAD);
    let c = checksum(&f[icmp_start..]);
    f[icmp_start + 2..icmp_start + 4].copy_from_slice(&c.to_be_bytes());
    pad(f)
}

/// If `frame` is an ICMP echo reply to `to` with identifier `id`, its
/// sequence number.
pub fn icmp_echo_reply_seq(frame: &[u8], to: Ipv4Addr, id: u16) -> Option<u16> {
    if ethertype(frame) != ETHERTYPE_IPV4 || frame.len() < ETH_HDR + IPV4_HDR + ICMP_HDR {
        return None;
    }
    let ip = &frame[ETH_HDR..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < IPV4_HDR || ip[9] != 1 || ip.len() < ihl + ICMP_HDR {
        return None;
    }
    if ip[16..20] != to.octets() {
        return None;
    }
    let icmp = &ip[ihl..];
    if icmp[0] != ICMP_ECHO_REPLY || icmp[1] != 0 || icmp[4..6] != id.to_be_bytes() {
        return None;
    }
    Some(u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// Counters of the ICMP keep-alive, for the status file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IcmpStats {
    pub arp_requests: u64,
    pub echo_requests: u64,
    pub echo_replies: u64,
}

/// The keep-alive's state: the target, its MAC once learned, counters.
#[derive(Debug)]
pub struct IcmpKeepalive {
    target: Ipv4Addr,
    interval: Duration,
    id: u16,
    seq: u16,
    target_mac: Option<[u8; 6]>,
    /// Echo requests sent since the last reply: after a few, ARP again
    /// (the target may have a new MAC).
    unanswered: u32,
    next: Instant,
    /// When this was made (a time surely in the past, for "due now").
    created: Instant,
    /// The MAC was just learned: send the first echo without waiting.
    send_now: bool,
    /// The source IP of the last request (replies must be to it).
    src_ip: Option<Ipv4Addr>,
    pub stats: IcmpStats,
}

/// Echo requests without a reply before the MAC is looked up again.
const REARP_AFTER: u32 = 3;

impl IcmpKeepalive {
    pub fn new(target: Ipv4Addr, interval: Duration, id: u16, now: Instant) -> Self {
        Self {
            target,
            interval,
            id,
            seq: 0,
            target_mac: None,
            unanswered: 0,
            next: now,
            created: now,
            send_now: false,
            src_ip: None,
            stats: IcmpStats::default(),
        }
    }

    /// When [`poll`](Self::poll) next has something to send.
    pub fn next_due(&self) -> Instant {
        if self.send_now {
            self.created
        } else {
            self.next
        }
    }

    /// The frame to send now, if one is due: an echo request when the
    /// target's MAC is known, else an ARP request for it. `src_mac`/`src_ip`
    /// are the TAP's.
    pub fn poll(&mut self, now: Instant, src_mac: [u8; 6], src_ip: Ipv4Addr) -> Option<Vec<u8>> {
        if now < self.next && !self.send_now {
            return None;
        }
        self.send_now = false;
        self.next = now + self.interval;
        self.src_ip = Some(src_ip);
        match self.target_mac {
            Some(mac) if self.unanswered < REARP_AFTER => {
                self.seq = self.seq.wrapping_add(1);
                self.unanswered += 1;
                self.stats.echo_requests += 1;
                Some(icmp_echo_request(
                    mac,
                    src_mac,
                    src_ip,
                    self.target,
                    self.id,
                    self.seq,
                ))
            }
            _ => {
                // Unknown, or silent for a while: ask for the MAC again
                // (the target may have a new one) and wait for the answer.
                self.target_mac = None;
                self.unanswered = 0;
                self.stats.arp_requests += 1;
                // Until the answer comes, ask again soon rather than a
                // whole interval later.
                self.next = now + self.interval.min(Duration::from_secs(1));
                Some(arp_request(src_mac, src_ip, self.target))
            }
        }
    }

    /// Looks at a frame delivered by the hub: learns the target's MAC from
    /// its ARP traffic, counts echo replies addressed to us.
    pub fn observe(&mut self, frame: &[u8]) {
        match ethertype(frame) {
            ETHERTYPE_ARP => {
                if let Some(mac) = arp_sender_mac(frame, self.target) {
                    if self.target_mac.is_none() {
                        // Learned: the first echo goes out at the next poll.
                        self.send_now = true;
                    }
                    self.target_mac = Some(mac);
                }
            }
            ETHERTYPE_IPV4 => {
                if let Some(src) = self.src_ip {
                    if icmp_echo_reply_seq(frame, src, self.id).is_some() {
                        self.stats.echo_replies += 1;
                        self.unanswered = 0;
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    const IP_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);
    const IP_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 11);

    #[test]
    fn checksum_of_a_known_ipv4_header() {
        // The example header of RFC 1071 discussions (Wikipedia "IPv4
        // header checksum"): the checksum field is 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0, "a header with its checksum sums to zero");
        assert_eq!(checksum(&[0x01]), !0x0100);
    }

    #[test]
    fn arp_request_bytes() {
        let f = arp_request(MAC_A, IP_A, IP_B);
        assert_eq!(f.len(), 60);
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  0x02, 0, 0, 0, 0, 0x0a,  0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,
            0x02, 0, 0, 0, 0, 0x0a,  10, 77, 0, 10,
            0, 0, 0, 0, 0, 0,        10, 77, 0, 11,
        ];
        assert_eq!(&f[..42], &expected);
        assert!(f[42..].iter().all(|b| *b == 0));
        // A request is "sent by" its sender too.
        assert_eq!(arp_sender_mac(&f, IP_A), Some(MAC_A));
        assert_eq!(arp_sender_mac(&f, IP_B), None);
    }

    #[test]
    fn echo_request_is_valid_ipv4_icmp() {
        let f = icmp_echo_request(MAC_B, MAC_A, IP_A, IP_B, 0x1234, 7);
        assert_eq!(&f[0..6], &MAC_B);
        assert_eq!(&f[6..12], &MAC_A);
        assert_eq!(ethertype(&f), ETHERTYPE_IPV4);
        let ip = &f[ETH_HDR..ETH_HDR + IPV4_HDR];
        assert_eq!(checksum(ip), 0, "IPv4 header checksum");
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert_eq!(total, IPV4_HDR + ICMP_HDR + ECHO_PAYLOAD.len());
        let icmp = &f[ETH_HDR + IPV4_HDR..ETH_HDR + total];
        assert_eq!(checksum(icmp), 0, "ICMP checksum");
        assert_eq!(&icmp[0..8], &[8, 0, icmp[2], icmp[3], 0x12, 0x34, 0, 7]);
    }

    /// What the target's kernel answers: swap addresses, type 0, fix sums.
    fn reply_to(req: &[u8]) -> Vec<u8> {
        let mut r = req.to_vec();
        r.copy_within(0..6, 6);
        r[0..6].copy_from_slice(&req[6..12]);
        let ip = ETH_HDR;
        r[ip + 12..ip + 16].copy_from_slice(&req[ip + 16..ip + 20]);
        r[ip + 16..ip + 20].copy_from_slice(&req[ip + 12..ip + 16]);
        let icmp = ip + IPV4_HDR;
        r[icmp] = 0;
        r[icmp + 2..icmp + 4].copy_from_slice(&[0, 0]);
        let end = ip + usize::from(u16::from_be_bytes([r[ip + 2], r[ip + 3]]));
        let c = checksum(&r[icmp..end]);
        r[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
        r
    }

    #[test]
    fn keepalive_arps_then_pings_and_counts_replies() {
        let t0 = Instant::now();
        let mut k = IcmpKeepalive::new(IP_B, Duration::from_secs(5), 0x4242, t0);
        let f = k.poll(t0, MAC_A, IP_A).expect("ARP first");
        assert_eq!(ethertype(&f), ETHERTYPE_ARP);
        assert!(k.poll(t0, MAC_A, IP_A).is_none(), "nothing until due");
        // The target answers the ARP.
        let mut reply = arp_request(MAC_B, IP_B, IP_A);
        reply[ETH_HDR + 7] = 2;
        k.observe(&reply);
        let echo = k.poll(t0, MAC_A, IP_A).expect("echo as soon as learned");
        assert_eq!(&echo[0..6], &MAC_B);
        assert_eq!(icmp_echo_reply_seq(&reply_to(&echo), IP_A, 0x4242), Some(1));
        k.observe(&reply_to(&echo));
        k.observe(&reply_to(&echo)[..30]); // truncated: ignored
        assert_eq!(k.stats.echo_replies, 1);
        assert!(k.poll(t0 + Duration::from_secs(4), MAC_A, IP_A).is_none());
        assert!(k.poll(t0 + Duration::from_secs(5), MAC_A, IP_A).is_some());
        assert_eq!(k.stats.echo_requests, 2);
        assert_eq!(k.stats.arp_requests, 1);
    }

    #[test]
    fn unanswered_echoes_lead_to_a_new_arp() {
        let t0 = Instant::now();
        let mut k = IcmpKeepalive::new(IP_B, Duration::from_secs(1), 1, t0);
        let mut reply = arp_request(MAC_B, IP_B, IP_A);
        reply[ETH_HDR + 7] = 2;
        k.observe(&reply);
        let mut t = t0;
        let mut kinds = Vec::new();
        for _ in 0..5 {
            let f = k.poll(t, MAC_A, IP_A).unwrap();
            kinds.push(ethertype(&f));
            t += Duration::from_secs(1);
        }
        use super::{ETHERTYPE_ARP as A, ETHERTYPE_IPV4 as I};
        assert_eq!(kinds, [I, I, I, A, A]);
    }

    #[test]
    fn replies_to_others_are_not_counted() {
        let t0 = Instant::now();
        let mut k = IcmpKeepalive::new(IP_B, Duration::from_secs(1), 9, t0);
        let echo = icmp_echo_request(MAC_B, MAC_A, IP_A, IP_B, 9, 1);
        k.poll(t0, MAC_A, IP_A);
        let mut other_id = reply_to(&echo);
        other_id[ETH_HDR + IPV4_HDR + 5] = 8;
        k.observe(&other_id);
        k.observe(&echo); // a request, not a reply
        assert_eq!(k.stats.echo_replies, 0);
        k.observe(&reply_to(&echo));
        assert_eq!(k.stats.echo_replies, 1);
    }
}
