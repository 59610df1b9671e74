//! `Fabric::forward` per frame: learn the source (a refresh, in steady state)
//! and look up the destination, with 1k and 100k MACs learned in one hub
//! (one fabric).
//!
//! The frames are a prebuilt ring: frame `i` comes from MAC `i` on its own
//! port and goes to a randomly chosen MAC on another port, so every frame is
//! a known unicast (checked before measuring) and consecutive frames touch
//! unrelated table slots, as on a busy hub. One iteration is one frame.
//! Every port is a plain one on shard 0 and shard 0 asks, so every answer
//! is a `Route::Local`: the same work the bench measured before the fabric
//! knew about shards (a `Route::Remote` differs only in the fields it
//! copies out).
//!
//! Run: `cargo bench -p switch-core --bench fabric`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switch_core::fabric::{Fabric, FabricConfig, PortId, PortInfo, Route};
use switch_core::offload::Form;

/// Sessions in the hub (slots 0..64 of shard 0); the MACs are spread over
/// them round-robin.
const PORTS: usize = 64;

/// splitmix64: a fixed-seed generator, so every run uses the same ring.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A locally administered unicast MAC per index.
fn mac(i: usize) -> [u8; 6] {
    let b = (i as u32).to_be_bytes();
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

/// A minimum-size frame (60 bytes) from `src` to `dst`.
fn frame(dst: [u8; 6], src: [u8; 6]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

/// A fabric with `macs` MACs learned, the clock to use, and the ring.
fn setup(macs: usize) -> (Fabric, Instant, Vec<(PortId, [u8; 60])>) {
    #[allow(clippy::disallowed_methods)] // a bench may read the clock once
    let epoch = Instant::now();
    let config = FabricConfig {
        max_macs_per_port: u32::MAX,
        max_macs_per_hub: u32::MAX,
        aging: Duration::from_secs(300),
    };
    let mut fabric = Fabric::new(config, epoch);
    let ports: Vec<PortId> = (0..PORTS as u32)
        .map(|slot| fabric.add_port(PortInfo::vhub(0, slot, Form::Plain)))
        .collect();
    let now = epoch + Duration::from_secs(10);
    for i in 0..macs {
        let _ = fabric.forward(now, ports[i % PORTS], 0, &frame([0xff; 6], mac(i)));
    }
    assert_eq!(fabric.mac_count(), macs);

    let mut rng = 0x5eed;
    let ring = (0..macs)
        .map(|i| {
            let j = loop {
                let j = (splitmix(&mut rng) % macs as u64) as usize;
                if j % PORTS != i % PORTS {
                    break j;
                }
            };
            (ports[i % PORTS], frame(mac(j), mac(i)))
        })
        .collect::<Vec<_>>();
    for (port, f) in &ring {
        assert!(matches!(
            fabric.forward(now, *port, 0, f),
            Route::Local { .. }
        ));
    }
    (fabric, now, ring)
}

fn learn_and_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("fabric");
    group.throughput(Throughput::Elements(1));
    for macs in [1_000, 100_000] {
        let (mut fabric, now, ring) = setup(macs);
        let mut next = 0;
        group.bench_with_input(BenchmarkId::new("learn+lookup", macs), &macs, |b, _| {
            b.iter(|| {
                let (port, f) = &ring[next];
                next += 1;
                if next == ring.len() {
                    next = 0;
                }
                // The inputs need no `black_box`: the ring index is opaque to
                // the optimiser already, and forcing them through memory
                // measures store-forwarding stalls instead of the fabric.
                // std's `black_box` keeps the answer without the byte-wise
                // volatile reads criterion's does on a returned value.
                let _ = black_box(fabric.forward(now, *port, 0, f));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, learn_and_lookup);
criterion_main!(benches);
