//! The hub cuts super frames from offload sessions for plain receivers:
//! any header and bytes, any receiver limit. Never a panic, and an
//! oracle that does not reuse the segmenter's own arithmetic:
//!
//! - an error emits nothing (no half-cut record reaches a receiver);
//! - a plain frame passes through byte for byte;
//! - a completed checksum verifies, and nothing else in the frame changed;
//! - a cut super frame: `max(1, ⌈payload / gso_size⌉)` segments (at most
//!   `MAX_SEGMENTS`), each within the receiver's limit and at most the
//!   headers plus `gso_size`, every one but the last exactly that; the
//!   Ethernet header of each is the original's; the payloads, in order,
//!   concatenate to the original payload; each TCP sequence number is the
//!   first one plus the payload before it; IP lengths match; the IPv4
//!   header checksum and the TCP checksum (with the pseudo-header) verify.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switch_core::offload::{
    to_plain, VnetHdr, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, MAX_SEGMENTS,
    VNET_HDR_LEN,
};

/// The Internet checksum's ones' complement sum of `data` (16-bit
/// big-endian words, an odd last byte padded with zero) plus `start`,
/// folded: written here, not taken from the code under test.
fn ones_sum(data: &[u8], start: u32) -> u16 {
    let mut acc = start;
    for pair in data.chunks(2) {
        let word = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
        acc += word;
        acc = (acc & 0xffff) + (acc >> 16);
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Where the IP header starts: after the Ethernet header and its VLAN
/// tags (the segmenter accepts at most two; this only runs on its Ok).
fn ip_start(frame: &[u8]) -> usize {
    let mut off = 12;
    while off + 2 <= frame.len() && matches!(be16(frame, off), 0x8100 | 0x88a8) {
        off += 4;
    }
    off + 2
}

fuzz_target!(|data: &[u8]| {
    let (max, rec) = match data.split_first_chunk::<2>() {
        Some((m, rest)) => (14 + usize::from(u16::from_be_bytes(*m)), rest),
        None => (1518, data),
    };
    let mut scratch = Vec::new();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let r = to_plain(rec, max, &mut scratch, |f| out.push(f.to_vec()));
    assert!(out.len() <= MAX_SEGMENTS);
    let k = match r {
        Ok(k) => k,
        Err(_) => {
            assert!(
                out.is_empty(),
                "an error after {} frames were emitted",
                out.len()
            );
            return;
        }
    };
    assert_eq!(k, out.len());
    let hdr = VnetHdr::parse(rec).expect("Ok means the header was there");
    let frame = &rec[VNET_HDR_LEN..];
    let gso = hdr.gso_type & !GSO_ECN;

    if gso == GSO_NONE {
        assert_eq!(k, 1);
        let f = &out[0];
        assert_eq!(f.len(), frame.len());
        if hdr.flags & F_NEEDS_CSUM == 0 {
            assert_eq!(f, frame, "a plain frame must pass through unchanged");
            return;
        }
        // Completed: only the checksum field changed, and the sum over
        // csum_start.. with the pseudo-header sum the field held verifies.
        let start = usize::from(hdr.csum_start);
        let at = start + usize::from(hdr.csum_offset);
        for (i, (a, b)) in f.iter().zip(frame).enumerate() {
            if i != at && i != at + 1 {
                assert_eq!(a, b, "byte {i} changed outside the checksum field");
            }
        }
        let partial = u32::from(be16(frame, at));
        let mut zeroed = f[start..].to_vec();
        let field = at - start;
        let stored = be16(&zeroed, field);
        zeroed[field] = 0;
        zeroed[field + 1] = 0;
        let expected = !ones_sum(&zeroed, partial);
        assert_eq!(stored, expected, "completed checksum");
        return;
    }

    // A cut super frame.
    assert!(
        gso == GSO_TCPV4 || gso == GSO_TCPV6,
        "Ok for gso_type {gso:#x}"
    );
    let v6 = gso == GSO_TCPV6;
    let ip = ip_start(frame);
    let tcp = usize::from(hdr.csum_start);
    let headers = tcp + usize::from(frame[tcp + 12] >> 4) * 4;
    let mss = usize::from(hdr.gso_size);
    let payload = &frame[headers..];
    assert_eq!(k, payload.len().div_ceil(mss).max(1), "segment count");
    let mut joined = Vec::with_capacity(payload.len());
    let seq0 = be32(frame, tcp + 4);
    for (i, seg) in out.iter().enumerate() {
        assert!(
            seg.len() <= max,
            "segment of {} > the receiver's {max}",
            seg.len()
        );
        assert!(seg.len() >= headers, "segment {i} shorter than the headers");
        let piece = &seg[headers..];
        assert!(
            piece.len() <= mss,
            "segment {i} carries {} > gso_size {mss}",
            piece.len()
        );
        if i + 1 < k {
            assert_eq!(
                piece.len(),
                mss,
                "segment {i} is not full but is not the last"
            );
        }
        assert_eq!(
            seg[..ip],
            frame[..ip],
            "segment {i}: the Ethernet header changed"
        );
        assert_eq!(
            be32(seg, tcp + 4),
            seq0.wrapping_add(joined.len() as u32),
            "segment {i}: sequence number"
        );
        // IP length and (IPv4) header checksum.
        let (addrs, l4_len) = if v6 {
            assert_eq!(
                usize::from(be16(seg, ip + 4)),
                seg.len() - ip - 40,
                "IPv6 length"
            );
            (&seg[ip + 8..ip + 40], seg.len() - tcp)
        } else {
            assert_eq!(
                usize::from(be16(seg, ip + 2)),
                seg.len() - ip,
                "IPv4 total length"
            );
            assert_eq!(
                ones_sum(&seg[ip..tcp], 0),
                0xffff,
                "segment {i}: IPv4 header checksum"
            );
            (&seg[ip + 12..ip + 20], seg.len() - tcp)
        };
        // TCP checksum over the pseudo-header and the segment.
        let pseudo = u32::from(ones_sum(addrs, 0)) + 6 + l4_len as u32;
        assert_eq!(
            ones_sum(&seg[tcp..], pseudo),
            0xffff,
            "segment {i}: TCP checksum"
        );
        joined.extend_from_slice(piece);
    }
    assert_eq!(
        joined, payload,
        "the payloads do not concatenate to the original"
    );
});
