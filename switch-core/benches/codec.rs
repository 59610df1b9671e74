//! Encode and decode of frame batches: the per-frame cost of the wire codec.
//!
//! `cargo bench -p switch-core --bench codec`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use switch_core::wire::{self, FramesWriter, Limits, Message};

const BATCH: usize = 256;

fn frames(len: usize) -> Vec<Vec<u8>> {
    (0..BATCH).map(|i| vec![i as u8; len]).collect()
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for len in [64usize, 1514] {
        let fs = frames(len);
        let mut out = Vec::with_capacity(BATCH * (len + 4) + 64);
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::new("frames", len), &len, |b, _| {
            b.iter(|| {
                out.clear();
                let mut w = FramesWriter::begin(&mut out, 1);
                for f in &fs {
                    w.push(f);
                }
                black_box(w.finish());
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    let limits = Limits {
        max_frame: 1518,
        max_batch: BATCH as u32,
    };
    for len in [64usize, 1514] {
        let mut buf = Vec::new();
        let mut w = FramesWriter::begin(&mut buf, 1);
        for f in &frames(len) {
            w.push(f);
        }
        w.finish();
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::new("frames", len), &len, |b, _| {
            b.iter(|| {
                let (m, _) = wire::decode(black_box(&buf), &limits).unwrap().unwrap();
                let Message::Frames(f) = m else {
                    unreachable!()
                };
                // Touch every frame as a consumer would (first byte).
                let mut sum = 0u32;
                for frame in f.iter() {
                    sum = sum.wrapping_add(frame[0] as u32);
                }
                black_box(sum)
            })
        });
    }
    g.finish();
}

fn session_path(c: &mut Criterion) {
    // The full per-frame cost inside switch-core on the sending side:
    // send_frame (copy into the retransmit ring) + poll_transmit (batch
    // into the output buffer), with acks releasing the ring.
    use std::time::Instant;
    use switch_core::session::{Accept, Session, SessionConfig};
    use switch_core::wire::http::SessionToken;
    let mut g = c.benchmark_group("session_tx");
    for len in [64usize, 1514] {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut s = Session::accept(
            now,
            SessionConfig::default(),
            Accept {
                token: SessionToken([1; 16]),
                version: 1,
            },
        );
        let mut out = Vec::with_capacity(1 << 20);
        s.poll_transmit(now, &mut out, 1 << 20);
        let frame = vec![0x02u8; len];
        let mut acked = 0u64;
        let mut ack = Vec::new();
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::new("send+transmit", len), &len, |b, _| {
            b.iter(|| {
                for _ in 0..BATCH {
                    s.send_frame(&frame).unwrap();
                }
                out.clear();
                s.poll_transmit(now, &mut out, 1 << 20);
                acked += BATCH as u64;
                ack.clear();
                wire::encode_ack(&mut ack, acked);
                s.handle_input(now, &ack, |_| {}).unwrap();
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode, decode, session_path);
criterion_main!(benches);
