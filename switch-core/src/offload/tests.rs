//! Segments are checked with etherparse (an independent implementation of
//! the IP and TCP checksums), not with this module's own arithmetic.

use super::*;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use proptest::prelude::*;

const SRC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DST: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A TCP super frame as a TAP device would hand it over: one IP packet
/// with the whole payload, a vnet header asking for `mss` segments.
fn super_frame(v6: bool, vlan: bool, data: &[u8], mss: u16, fin_psh: bool) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(SRC, DST);
    let mut out = Vec::new();
    macro_rules! finish {
        ($ip:expr) => {{
            let mut t = $ip.tcp(40000, 5201, 1_000_000, 64240).ack(77);
            if fin_psh {
                t = t.psh().fin();
            }
            t.write(&mut out, data).unwrap();
        }};
    }
    match (v6, vlan) {
        (false, false) => finish!(eth.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)),
        (false, true) => finish!(eth
            .single_vlan(etherparse::VlanId::try_new(7).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)),
        (true, _) => finish!(eth.ipv6([0xfd; 16], [0xfe; 16], 64)),
    }
    let l3 = if vlan { 18 } else { 14 };
    let tcp = l3 + if v6 { 40 } else { 20 };
    // The kernel leaves only the pseudo-header sum in the checksum field.
    out[tcp + 16] = 0xab;
    out[tcp + 17] = 0xcd;
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        // What a TAP reports: the linear part, longer than the headers.
        hdr_len: (tcp + 20 + 100) as u16,
        gso_size: mss,
        csum_start: tcp as u16,
        csum_offset: 16,
    };
    let mut rec = hdr.to_bytes().to_vec();
    rec.extend_from_slice(&out);
    rec
}

/// Checks one segment with etherparse; returns (seq, payload, fin, psh, ip id).
fn check_segment(seg: &[u8]) -> (u32, Vec<u8>, bool, bool, Option<u16>) {
    let p = SlicedPacket::from_ethernet(seg).expect("a well-formed frame");
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("not TCP")
    };
    let (want, id) = match p.net.expect("IP") {
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
            assert_eq!(
                usize::from(h.total_len()),
                h.slice().len() + tcp.slice().len()
            );
            (
                tcp.calc_checksum_ipv4(h.source(), h.destination()).unwrap(),
                Some(h.identification()),
            )
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header();
            assert_eq!(usize::from(h.payload_length()), tcp.slice().len());
            (
                tcp.calc_checksum_ipv6(h.source(), h.destination()).unwrap(),
                None,
            )
        }
        NetSlice::Arp(_) => panic!("ARP"),
    };
    assert_eq!(tcp.checksum(), want, "TCP checksum");
    (
        tcp.sequence_number(),
        tcp.payload().to_vec(),
        tcp.fin(),
        tcp.psh(),
        id,
    )
}

fn segments(rec: &[u8], max_frame: usize) -> Result<Vec<Vec<u8>>, OffloadError> {
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    let n = to_plain(rec, max_frame, &mut scratch, |f| out.push(f.to_vec()))?;
    assert_eq!(n, out.len());
    Ok(out)
}

fn check_cut(v6: bool, vlan: bool, len: usize, mss: u16) {
    let data = payload(len);
    let rec = super_frame(v6, vlan, &data, mss, true);
    let segs = segments(&rec, 1518).unwrap();
    assert_eq!(segs.len(), len.div_ceil(usize::from(mss)).max(1));
    let mut joined = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let (seq, pl, fin, psh, id) = check_segment(s);
        assert_eq!(seq, 1_000_000 + (i * usize::from(mss)) as u32);
        let last = i + 1 == segs.len();
        assert_eq!((fin, psh), (last, last), "FIN/PSH on the last segment only");
        if let Some(id) = id {
            assert_eq!(
                id,
                id_of(&rec, vlan).wrapping_add(i as u16),
                "IPv4 IDs count up"
            );
        }
        assert!(pl.len() <= usize::from(mss));
        joined.extend_from_slice(&pl);
    }
    assert_eq!(joined, data, "the payload arrives whole and in order");
}

fn id_of(rec: &[u8], vlan: bool) -> u16 {
    let ip = VNET_HDR_LEN + if vlan { 18 } else { 14 };
    u16::from_be_bytes([rec[ip + 4], rec[ip + 5]])
}

#[test]
fn cuts_ipv4_tcp() {
    check_cut(false, false, 20_000, 1448);
}

#[test]
fn cuts_ipv4_tcp_behind_a_vlan_tag() {
    check_cut(false, true, 9_000, 1444);
}

#[test]
fn cuts_ipv6_tcp() {
    check_cut(true, false, 60_000, 1428);
}

#[test]
fn a_payload_of_exactly_n_segments_has_no_empty_tail() {
    check_cut(false, false, 1448 * 5, 1448);
}

/// An ordinary TCP frame (500 bytes of payload, returned too) whose
/// checksum the kernel left partial: the field holds the folded
/// pseudo-header sum, as Linux leaves it.
fn partial_checksum_frame() -> (Vec<u8>, Vec<u8>) {
    let data = payload(500);
    let mut rec = super_frame(false, false, &data, 1448, false);
    let mut h = VnetHdr::parse(&rec).unwrap();
    h.gso_type = GSO_NONE;
    h.gso_size = 0;
    rec[..VNET_HDR_LEN].copy_from_slice(&h.to_bytes());
    let tcp = VNET_HDR_LEN + 34;
    let pseudo = fold(sum_words(
        &rec[VNET_HDR_LEN + 26..VNET_HDR_LEN + 34],
        6 + (rec.len() - tcp) as u64,
    ));
    rec[tcp + 16..tcp + 18].copy_from_slice(&pseudo.to_be_bytes());
    (data, rec)
}

#[test]
fn completes_a_partial_checksum() {
    // An ordinary TCP frame whose checksum the kernel left partial.
    let (data, rec) = partial_checksum_frame();
    let segs = segments(&rec, 1518).unwrap();
    assert_eq!(segs.len(), 1);
    let (_, pl, ..) = check_segment(&segs[0]);
    assert_eq!(pl, data);
}

#[test]
fn a_plain_frame_passes_without_a_copy() {
    let mut rec = VnetHdr::PLAIN.to_bytes().to_vec();
    rec.extend_from_slice(&[0x55; 60]);
    let mut scratch = Vec::new();
    let mut seen = None;
    to_plain(&rec, 1518, &mut scratch, |f| seen = Some(f.as_ptr())).unwrap();
    assert_eq!(seen, Some(rec[VNET_HDR_LEN..].as_ptr()));
    assert!(scratch.is_empty());
}

#[test]
fn header_round_trips() {
    let h = VnetHdr {
        flags: 1,
        gso_type: GSO_TCPV6 | GSO_ECN,
        hdr_len: 66,
        gso_size: 1448,
        csum_start: 54,
        csum_offset: 16,
    };
    assert_eq!(VnetHdr::parse(&h.to_bytes()), Some(h));
    assert_eq!(h.to_bytes(), [1, 0x84, 66, 0, 0xa8, 5, 54, 0, 16, 0]);
    assert!(!h.is_plain());
    assert!(VnetHdr::PLAIN.is_plain());
}

#[test]
fn refuses_what_it_cannot_cut() {
    let rec = super_frame(false, false, &payload(3000), 1448, false);
    let with = |f: &dyn Fn(&mut VnetHdr)| {
        let mut r = rec.clone();
        let mut h = VnetHdr::parse(&r).unwrap();
        f(&mut h);
        r[..VNET_HDR_LEN].copy_from_slice(&h.to_bytes());
        segments(&r, 1518).unwrap_err()
    };
    assert_eq!(with(&|h| h.gso_size = 0), OffloadError::ZeroGsoSize);
    assert_eq!(
        with(&|h| h.gso_size = 10),
        OffloadError::TooManySegments(300)
    );
    assert_eq!(with(&|h| h.gso_type = 5), OffloadError::UnsupportedGso(5));
    assert_eq!(with(&|h| h.gso_type = GSO_TCPV6), OffloadError::NotTcp);
    assert_eq!(with(&|h| h.csum_start = 20), OffloadError::NotTcp);
    assert_eq!(with(&|h| h.csum_start = 60_000), OffloadError::NotTcp);
    assert_eq!(
        with(&|h| {
            h.gso_type = GSO_NONE;
            h.csum_offset = 9000
        }),
        OffloadError::BadChecksumOffsets
    );
    assert_eq!(
        segments(&rec, 1000).unwrap_err(),
        OffloadError::SegmentTooLarge(1502)
    );
    assert_eq!(segments(&rec[..5], 1518).unwrap_err(), OffloadError::Short);
}

/// What [`convert`] handed on: its answer and each emitted frame.
fn converted(
    frame: &[u8],
    from: Form,
    to: Form,
    max_frame: usize,
    scratch: &mut Vec<u8>,
) -> Result<(Converted, Vec<Vec<u8>>), OffloadError> {
    let mut out = Vec::new();
    let c = convert(frame, from, to, max_frame, scratch, |f| {
        out.push(f.to_vec())
    })?;
    assert_eq!(c.frames, out.len(), "frames counts what was emitted");
    Ok((c, out))
}

/// One call of [`convert`] whose single emitted frame is `frame[at..]`
/// itself (no copy) and whose scratch stays untouched.
fn passes_through(frame: &[u8], from: Form, to: Form, at: usize) {
    let mut scratch = Vec::new();
    let mut seen = Vec::new();
    let c = convert(frame, from, to, 1518, &mut scratch, |f| {
        seen.push((f.as_ptr(), f.len()))
    })
    .unwrap();
    assert_eq!(
        c,
        Converted {
            frames: 1,
            cut: false
        }
    );
    assert_eq!(seen, vec![(frame[at..].as_ptr(), frame.len() - at)]);
    assert!(scratch.is_empty());
}

/// A 60-byte plain frame, byte for byte: an IPv4 frame from `SRC` to `DST`
/// padded with 0x55.
fn plain_frame() -> Vec<u8> {
    let mut f = Vec::from(DST);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(60, 0x55);
    f
}

#[test]
fn forms_know_their_header() {
    assert_eq!((Form::of(false), Form::of(true)), (Form::Plain, Form::Vnet));
    assert_eq!(Form::Plain.header_len(), 0);
    assert_eq!(Form::Vnet.header_len(), VNET_HDR_LEN);
    assert_eq!(VNET_HDR_LEN, 10);
}

#[test]
fn convert_passes_a_frame_in_its_own_form_as_it_is() {
    passes_through(&plain_frame(), Form::Plain, Form::Plain, 0);
    // Vnet to vnet: even a super frame crosses whole, header and all.
    let rec = super_frame(false, false, &payload(20_000), 1448, true);
    passes_through(&rec, Form::Vnet, Form::Vnet, 0);
}

#[test]
fn convert_puts_a_plain_frame_behind_an_all_zero_header() {
    let frame = plain_frame();
    let mut scratch = Vec::new();
    let (c, out) = converted(&frame, Form::Plain, Form::Vnet, 1518, &mut scratch).unwrap();
    assert_eq!(
        c,
        Converted {
            frames: 1,
            cut: false
        }
    );
    let mut want = vec![0u8; 10];
    want.extend_from_slice(&frame);
    assert_eq!(out, vec![want]);
    assert_eq!(VnetHdr::parse(&out[0]), Some(VnetHdr::PLAIN));
}

#[test]
fn convert_strips_a_header_that_asks_for_nothing() {
    let frame = plain_frame();
    let mut rec = vec![0u8; 10];
    rec.extend_from_slice(&frame);
    passes_through(&rec, Form::Vnet, Form::Plain, VNET_HDR_LEN);
    // ECN alone asks for no cut and no checksum either.
    rec[1] = GSO_ECN;
    passes_through(&rec, Form::Vnet, Form::Plain, VNET_HDR_LEN);
    // And what comes out is the plain frame, byte for byte.
    let (_, out) = converted(&rec, Form::Vnet, Form::Plain, 1518, &mut Vec::new()).unwrap();
    assert_eq!(out, vec![frame]);
}

#[test]
fn convert_cuts_a_super_frame_for_a_plain_receiver() {
    let data = payload(20_000);
    let rec = super_frame(false, false, &data, 1448, true);
    let mut scratch = Vec::new();
    let (c, out) = converted(&rec, Form::Vnet, Form::Plain, 1518, &mut scratch).unwrap();
    assert_eq!(
        c,
        Converted {
            frames: 14,
            cut: true
        }
    );
    // The very frames `to_plain` makes, each a valid TCP segment, carrying
    // the payload whole and in order.
    assert_eq!(out, segments(&rec, 1518).unwrap());
    let mut joined = Vec::new();
    for (i, seg) in out.iter().enumerate() {
        assert!(seg.len() <= 1518);
        let (seq, pl, ..) = check_segment(seg);
        assert_eq!(seq, 1_000_000 + 1448 * i as u32);
        joined.extend_from_slice(&pl);
    }
    assert_eq!(joined, data);
}

#[test]
fn convert_completes_a_partial_checksum_for_a_plain_receiver() {
    // One TCP frame the kernel left with a partial checksum: not a super
    // frame, yet not plain either, so it is rewritten (cut into one).
    let (data, rec) = partial_checksum_frame();
    let (c, out) = converted(&rec, Form::Vnet, Form::Plain, 1518, &mut Vec::new()).unwrap();
    assert_eq!(
        c,
        Converted {
            frames: 1,
            cut: true
        }
    );
    assert_eq!(out[0].len(), rec.len() - VNET_HDR_LEN);
    let (_, pl, ..) = check_segment(&out[0]);
    assert_eq!(pl, data);
}

#[test]
fn convert_refuses_what_to_plain_refuses_and_emits_nothing() {
    let mut rec = super_frame(false, false, &payload(3000), 1448, false);
    let mut emitted = 0;
    let mut go = |rec: &[u8], max_frame| {
        convert(
            rec,
            Form::Vnet,
            Form::Plain,
            max_frame,
            &mut Vec::new(),
            |_| emitted += 1,
        )
    };
    assert_eq!(go(&rec, 1000), Err(OffloadError::SegmentTooLarge(1502)));
    assert_eq!(go(&rec[..5], 1518), Err(OffloadError::Short));
    let mut h = VnetHdr::parse(&rec).unwrap();
    h.gso_size = 0;
    rec[..VNET_HDR_LEN].copy_from_slice(&h.to_bytes());
    assert_eq!(go(&rec, 1518), Err(OffloadError::ZeroGsoSize));
    assert_eq!(emitted, 0);
    // Towards a vnet receiver nothing is checked: it takes the record whole.
    let (c, _) = converted(&rec, Form::Vnet, Form::Vnet, 1000, &mut Vec::new()).unwrap();
    assert!(!c.cut);
}

proptest! {
    /// Whatever the header and the bytes say, no panic and no more than
    /// MAX_SEGMENTS frames, each within the limit.
    #[test]
    fn arbitrary_records_never_panic(
        hdr in any::<[u8; VNET_HDR_LEN]>(),
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        ty in prop_oneof![Just(GSO_NONE), Just(GSO_TCPV4), Just(GSO_TCPV6), any::<u8>()],
    ) {
        let mut rec = hdr.to_vec();
        rec[1] = ty;
        rec.extend_from_slice(&body);
        let mut scratch = Vec::new();
        let mut n = 0;
        let r = to_plain(&rec, 1518, &mut scratch, |f| {
            n += 1;
            assert!(f.len() <= 1518 || ty & !GSO_ECN == GSO_NONE);
        });
        prop_assert!(n <= MAX_SEGMENTS);
        if let Ok(k) = r {
            prop_assert_eq!(k, n);
        }
    }

    /// Real super frames of any size and MSS are cut correctly.
    #[test]
    fn real_super_frames_are_cut_correctly(
        len in 0usize..30_000,
        mss in 536u16..=1460,
        v6 in any::<bool>(),
        vlan in any::<bool>(),
    ) {
        // A 1500-byte MTU leaves 1460 bytes of TCP payload over IPv4, 1440 over IPv6.
        let mss = if v6 { mss.min(1440) } else { mss };
        check_cut(v6, vlan && !v6, len, mss);
    }
}
