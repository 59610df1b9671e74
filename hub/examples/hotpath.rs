//! Fixed workloads on the hot path, for instruction counts under
//! callgrind (`scripts/instructions.sh`): a count of instructions does not
//! move with the load of a shared machine, so a regression shows in review
//! even where wall-clock benchmarks are noise.
//!
//! `hotpath OP N` runs N operations of OP and prints nothing:
//!
//! - `encode64` / `encode1514`: one frame appended with `FramesWriter`
//!   (a message of 256 frames begun and finished every 256);
//! - `decode64`: one frame of a 256-frame message decoded and touched;
//! - `fabric1k` / `fabric100k`: one `Fabric::forward` (learn + lookup) with
//!   1,000 / 100,000 MACs learned;
//! - `session64`: one 64-byte frame through `Session::send_frame` and
//!   `poll_transmit` (ring copy + wire form);
//! - `handoff64`: one 64-byte frame through the cross-shard path: appended
//!   to a `Batch`, the batch pushed to and popped from the mailbox's
//!   `ArrayQueue` every 1,000 frames, and read back;
//! - `gso64k`: one 64 KiB TCP super frame cut into 45 segments for a plain
//!   receiver (`offload::to_plain`).
//!
//! Setup costs cancel out: the script runs N and 2N and reports the
//! difference divided by N.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use hub::switchboard::{Batch, Target};
use switch_core::fabric::{Fabric, FabricConfig, PortId, PortInfo};
use switch_core::offload::{self, Form, VnetHdr};
use switch_core::session::{Accept, Session, SessionConfig};
use switch_core::wire::http::SessionToken;
use switch_core::wire::{self, FramesWriter, Limits, Message};

fn mac(i: usize) -> [u8; 6] {
    let b = (i as u32).to_be_bytes();
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

fn frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

fn encode(n: u64, len: usize) {
    let f = frame([2; 6], [4; 6], len);
    let mut out = Vec::with_capacity(256 * (len + 4) + 64);
    let mut done = 0;
    while done < n {
        out.clear();
        let mut w = FramesWriter::begin(&mut out, 1);
        for _ in 0..256.min(n - done) {
            w.push(&f);
            done += 1;
        }
        black_box(w.finish());
    }
}

fn decode(n: u64) {
    let f = frame([2; 6], [4; 6], 64);
    let mut buf = Vec::new();
    let mut w = FramesWriter::begin(&mut buf, 1);
    for _ in 0..256 {
        w.push(&f);
    }
    w.finish();
    let limits = Limits::default();
    for _ in 0..n / 256 {
        let (m, _) = wire::decode(black_box(&buf), &limits).unwrap().unwrap();
        let Message::Frames(frames) = m else {
            unreachable!()
        };
        let mut sum = 0u32;
        for f in frames.iter() {
            sum = sum.wrapping_add(u32::from(f[0]));
        }
        black_box(sum);
    }
}

#[allow(clippy::disallowed_methods)] // one clock reading for the setup
fn epoch() -> Instant {
    Instant::now()
}

fn fabric(n: u64, macs: usize) {
    let epoch = epoch();
    let config = FabricConfig {
        max_macs_per_port: u32::MAX,
        max_macs_per_hub: u32::MAX,
        aging: Duration::from_secs(300),
    };
    let mut fabric = Fabric::new(config, epoch);
    let ports: Vec<PortId> = (0..64)
        .map(|slot| fabric.add_port(PortInfo::vhub(0, slot, Form::Plain)))
        .collect();
    let now = epoch + Duration::from_secs(10);
    for i in 0..macs {
        let _ = fabric.forward(now, ports[i % 64], 0, &frame([0xff; 6], mac(i), 60));
    }
    // Frame i: from MAC i on its port to MAC i*7919 (another port, spread).
    let ring: Vec<(PortId, Vec<u8>)> = (0..macs)
        .map(|i| {
            let j = (i * 7919 + 1) % macs;
            (ports[i % 64], frame(mac(j), mac(i), 60))
        })
        .collect();
    for k in 0..n as usize {
        let (p, f) = &ring[k % macs];
        let _ = black_box(fabric.forward(now, *p, 0, f));
    }
}

fn session(n: u64) {
    let t = epoch();
    let mut s = Session::accept(
        t,
        SessionConfig::default(),
        Accept {
            token: SessionToken([1; 16]),
            version: 1,
        },
    );
    let f = frame([2; 6], [4; 6], 64);
    let mut out = Vec::with_capacity(1 << 20);
    s.poll_transmit(t, &mut out, 1 << 20); // the 101
    let mut done = 0;
    while done < n {
        for _ in 0..256.min(n - done) {
            s.send_frame(&f).unwrap();
            done += 1;
        }
        out.clear();
        s.poll_transmit(t, &mut out, 1 << 20);
        black_box(&out);
        // The peer acknowledges everything: the ring empties.
        let mut ack = Vec::new();
        wire::encode_ack(&mut ack, done);
        s.handle_input(t, &ack, |_| {}).unwrap();
    }
}

fn handoff(n: u64) {
    let q: ArrayQueue<Batch> = ArrayQueue::new(64);
    let f = frame([2; 6], [4; 6], 64);
    let mut batch = Batch {
        buf: Vec::with_capacity(1 << 20),
        frames: 0,
        from: 0,
    };
    let mut sum = 0u64;
    for i in 0..n {
        let port = PortId::from_raw(42, 0);
        batch.push(Target::Unicast { slot: 7, port }, Form::Plain, &f);
        if (i + 1) % 1000 == 0 || i + 1 == n {
            q.push(batch).ok().unwrap();
            let b = q.pop().unwrap();
            for (target, _, fr) in b.records() {
                if let Target::Unicast { slot, .. } = target {
                    sum += u64::from(slot);
                }
                sum += fr.len() as u64;
            }
            batch = b;
            batch.buf.clear();
            batch.frames = 0;
        }
    }
    black_box(sum);
}

fn gso(n: u64) {
    // A 64 KiB IPv4 TCP super frame with a 1448-byte MSS.
    let payload = 45 * 1448;
    let mut eth = frame([2; 6], [4; 6], 14 + 20 + 20 + payload);
    let ip = &mut eth[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + 20 + payload) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[32] = 0x50; // TCP data offset 5
    let hdr = VnetHdr {
        flags: offload::F_NEEDS_CSUM,
        gso_type: offload::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    let mut rec = hdr.to_bytes().to_vec();
    rec.extend_from_slice(&eth);
    let mut scratch = Vec::new();
    let mut segs = 0;
    for _ in 0..n {
        segs += offload::to_plain(&rec, 1518, &mut scratch, |s| {
            black_box(s);
        })
        .unwrap();
    }
    assert_eq!(segs as u64, 45 * n);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(op), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok())) else {
        eprintln!("usage: hotpath OP N (see the source for the operations)");
        std::process::exit(2);
    };
    match op.as_str() {
        "encode64" => encode(n, 64),
        "encode1514" => encode(n, 1514),
        "decode64" => decode(n),
        "fabric1k" => fabric(n, 1_000),
        "fabric100k" => fabric(n, 100_000),
        "session64" => session(n),
        "handoff64" => handoff(n),
        "gso64k" => gso(n),
        other => {
            eprintln!("hotpath: unknown operation {other:?}");
            std::process::exit(2);
        }
    }
}
