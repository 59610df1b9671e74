//! Segmentation offload through the hub (`Vhub-Offload: vnet`): super
//! frames pass unchanged between offload sessions, are cut into valid
//! Ethernet frames for plain sessions, plain frames gain an all-zero
//! header for offload sessions — on one shard and across shards, on both
//! I/O backends. Segments are checked with etherparse, an independent
//! parser and checksum implementation.

#[macro_use]
mod common;

use std::time::Duration;

use certs::tls::TlsOptions;
use common::{start_hub_on, IoBackend};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use switch_core::offload::{self, VnetHdr, VNET_HDR_LEN};
use switch_core::session::SessionConfig;
use switch_core::wire::Limits;
use vhub_bench::client::{frame, mac, TestClient, BROADCAST};

const T: Duration = Duration::from_secs(5);

on_both_backends!(super_frames_pass_or_are_cut_for_each_receiver);

fn client(addr: std::net::SocketAddr, offload: bool) -> TestClient {
    let config = SessionConfig {
        offload,
        limits: Limits {
            max_frame: if offload {
                offload::MAX_VNET_FRAME
            } else {
                1518
            },
            ..Limits::default()
        },
        ..SessionConfig::default()
    };
    let c = TestClient::connect_with(addr, "DEFAULT", None, config, &TlsOptions::default())
        .expect("connects");
    assert_eq!(c.session.offload(), offload, "offload negotiated as asked");
    c
}

fn with_hdr(h: VnetHdr, eth: &[u8]) -> Vec<u8> {
    let mut r = h.to_bytes().to_vec();
    r.extend_from_slice(eth);
    r
}

/// A 20,000-byte TCP segment from mac(1) to `dst`, as a TAP with TSO reads it.
fn tcp_super_frame(dst: [u8; 6]) -> (Vec<u8>, Vec<u8>) {
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let mut eth = Vec::new();
    PacketBuilder::ethernet2(mac(1), dst)
        .ipv4([10, 9, 0, 1], [10, 9, 0, 2], 64)
        .tcp(40000, 5201, 7, 64000)
        .ack(1)
        .psh()
        .write(&mut eth, &data)
        .unwrap();
    let h = VnetHdr {
        flags: offload::F_NEEDS_CSUM,
        gso_type: offload::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    (with_hdr(h, &eth), data)
}

/// Checks every segment (IP and TCP checksums, sequence) and returns the
/// payload put back together.
fn reassemble(segs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in segs {
        assert!(s.len() <= 1514, "a segment of {} bytes", s.len());
        let p = SlicedPacket::from_ethernet(s).unwrap();
        let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(tcp))) = (p.net, p.transport)
        else {
            panic!("not IPv4 TCP")
        };
        let h = ip.header();
        assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
        let want = tcp.calc_checksum_ipv4(h.source(), h.destination()).unwrap();
        assert_eq!(tcp.checksum(), want, "TCP checksum");
        assert_eq!(tcp.sequence_number(), 7 + out.len() as u32);
        out.extend_from_slice(tcp.payload());
    }
    out
}

fn super_frames_pass_or_are_cut_for_each_receiver(backend: IoBackend) {
    let hub = start_hub_on(backend, 2, true, |s| s.distinct_ports = true);
    // Offload and plain sessions on both shards.
    let mut a = client(hub.shard_addr(0), true);
    let mut b = client(hub.shard_addr(1), false);
    let mut c = client(hub.shard_addr(1), true);
    let mut d = client(hub.shard_addr(0), false);

    // Everyone announces its MAC; each hears the others in its own form.
    a.send(&with_hdr(
        VnetHdr::PLAIN,
        &frame(BROADCAST, mac(1), b"from a"),
    ));
    a.pump().unwrap();
    let plain_bcast = frame(BROADCAST, mac(1), b"from a");
    assert_eq!(b.recv_until(1, T), 1);
    assert_eq!(
        b.received[0], plain_bcast,
        "header stripped for a plain session"
    );
    assert_eq!(d.recv_until(1, T), 1);
    assert_eq!(d.received[0], plain_bcast);
    assert_eq!(c.recv_until(1, T), 1);
    assert_eq!(
        c.received[0],
        with_hdr(VnetHdr::PLAIN, &plain_bcast),
        "passed as is"
    );
    for (cl, n, off) in [(&mut b, 2u8, false), (&mut c, 3, true), (&mut d, 4, false)] {
        let f = frame(BROADCAST, mac(n), b"hello");
        cl.send(&if off { with_hdr(VnetHdr::PLAIN, &f) } else { f });
        cl.pump().unwrap();
    }
    assert_eq!(a.recv_until(3, T), 3);
    for f in &a.received {
        assert_eq!(
            &f[..VNET_HDR_LEN],
            &[0u8; VNET_HDR_LEN],
            "zero header for a plain sender"
        );
    }
    for cl in [&mut b, &mut c, &mut d] {
        cl.pump_for(Duration::from_millis(100));
        cl.received.clear();
    }
    a.received.clear();

    // A TCP super frame to an offload session crosses as one record …
    let (sf, _) = tcp_super_frame(mac(3));
    a.send(&sf);
    a.pump().unwrap();
    assert_eq!(c.recv_until(1, T), 1);
    assert_eq!(c.received[0], sf, "unchanged, one record");
    // … and is cut into checked MSS-sized segments for a plain one, on the
    // other shard and on the same shard.
    for (n, cl) in [(2u8, &mut b), (4, &mut d)] {
        let (sf, data) = tcp_super_frame(mac(n));
        a.send(&sf);
        a.pump().unwrap();
        let want = data.len().div_ceil(1448);
        assert_eq!(cl.recv_until(want, T), want);
        assert_eq!(reassemble(&cl.received), data, "payload whole and in order");
    }
    let t = hub.server().switchboard.metrics.totals();
    assert_eq!(t.gso_segments, 2 * 20_000u64.div_ceil(1448));

    // A header the hub cannot honour is dropped and counted; the session
    // goes on.
    // (An offload receiver gets such a frame as it is: its kernel judges.)
    let (sf, _) = tcp_super_frame(mac(2));
    let mut bad = VnetHdr::parse(&sf).unwrap();
    bad.gso_type = 3; // UFO: not supported
    a.send(&with_hdr(bad, &sf[VNET_HDR_LEN..]));
    a.send(&with_hdr(VnetHdr::PLAIN, &frame(mac(2), mac(1), b"after")));
    a.pump().unwrap();
    b.received.clear();
    assert_eq!(b.recv_until(1, T), 1);
    assert_eq!(b.received[0], frame(mac(2), mac(1), b"after"));
    let t = hub.server().switchboard.metrics.totals();
    assert_eq!(t.drop_bad_offload, 1);
}
