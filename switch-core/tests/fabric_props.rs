//! Property tests of the MAC fabric: random sequences of port churn, frames
//! and clock advances across 2–3 hubs, run against the fabric and against a
//! plain reference model (a `HashMap` per hub), with the fabric's safety
//! invariants checked after every step.
//!
//! The clock is virtual: one `Instant` is read as the epoch and every `now`
//! is that epoch plus a generated offset.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use switch_core::fabric::{
    DropReason, Fabric, FabricConfig, FabricStats, Forward, HubId, Mac, PortId,
};

/// Unicast MACs to draw sources and destinations from: few, so that learns,
/// moves, hits and caps all happen often.
const POOL: u8 = 6;

#[derive(Clone, Copy, Debug)]
enum Addr {
    Unicast(u8),
    Broadcast,
    Multicast,
    Zero,
}

impl Addr {
    fn bytes(self) -> [u8; 6] {
        match self {
            Addr::Unicast(i) => pool_mac(i),
            Addr::Broadcast => [0xff; 6],
            Addr::Multicast => [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb],
            Addr::Zero => [0; 6],
        }
    }
}

fn pool_mac(i: u8) -> [u8; 6] {
    [0x02, 0x00, 0x00, 0x00, 0x00, 0x10 + i]
}

#[derive(Clone, Debug)]
enum Op {
    /// Add a port to hub `hub % hubs`.
    AddPort {
        hub: usize,
    },
    /// Remove the `port % issued`-th port ever issued (maybe already gone).
    RemovePort {
        port: usize,
    },
    /// A frame on the `port % issued`-th port ever issued (maybe stale).
    Frame {
        port: usize,
        dst: Addr,
        src: Addr,
        len: usize,
    },
    Advance {
        ms: u64,
    },
    Expire,
}

fn addr() -> impl Strategy<Value = Addr> {
    prop_oneof![
        12 => (0..POOL).prop_map(Addr::Unicast),
        1 => Just(Addr::Broadcast),
        1 => Just(Addr::Multicast),
        1 => Just(Addr::Zero),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<usize>().prop_map(|hub| Op::AddPort { hub }),
        1 => any::<usize>().prop_map(|port| Op::RemovePort { port }),
        16 => (
            any::<usize>(),
            addr(),
            addr(),
            prop_oneof![20 => Just(60usize), 1 => 0..14usize],
        )
            .prop_map(|(port, dst, src, len)| Op::Frame { port, dst, src, len }),
        4 => (0..4_000u64).prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Expire),
    ]
}

/// A fabric setup: the config, then one cap per hub.
#[derive(Clone, Debug)]
struct Setup {
    config: FabricConfig,
    hub_caps: Vec<u32>,
}

fn generous_caps() -> impl Strategy<Value = Setup> {
    (2..=3usize, 1_000..=8_000u64).prop_map(|(hubs, aging_ms)| Setup {
        config: FabricConfig {
            aging: Duration::from_millis(aging_ms),
            ..FabricConfig::default()
        },
        hub_caps: vec![FabricConfig::default().max_macs_per_hub; hubs],
    })
}

fn tight_caps() -> impl Strategy<Value = Setup> {
    (
        1..=3u32,
        prop::collection::vec(1..=5u32, 2..=3),
        1_000..=8_000u64,
    )
        .prop_map(|(per_port, hub_caps, aging_ms)| Setup {
            config: FabricConfig {
                max_macs_per_port: per_port,
                max_macs_per_hub: 0, // unused: every hub gets its own cap
                aging: Duration::from_millis(aging_ms),
            },
            hub_caps,
        })
}

/// The reference: what a learning switch does, written as plainly as
/// possible. Time is in the same coarse seconds the fabric documents, and
/// an entry counts as absent once its age *exceeds* the aging time (rounded
/// up to whole seconds).
struct Model {
    aging_s: u32,
    max_per_port: usize,
    hub_caps: Vec<usize>,
    /// Per hub: MAC → (port, last seen), including aged entries not yet
    /// swept.
    tables: Vec<HashMap<Mac, (PortId, u32)>>,
    live: HashMap<PortId, usize>,
    stats: FabricStats,
}

impl Model {
    fn expired(&self, last_seen: u32, now_s: u32) -> bool {
        now_s.saturating_sub(last_seen) > self.aging_s
    }

    fn owned(&self, hub: usize, port: PortId) -> usize {
        self.tables[hub]
            .values()
            .filter(|(p, _)| *p == port)
            .count()
    }

    fn lookup(&self, now_s: u32, hub: usize, mac: Mac) -> Option<PortId> {
        match self.tables[hub].get(&mac) {
            Some(&(p, seen)) if !self.expired(seen, now_s) => Some(p),
            _ => None,
        }
    }

    fn forward(&mut self, now_s: u32, port: PortId, frame: &[u8]) -> Forward {
        if frame.len() < 14 {
            self.stats.dropped_runt += 1;
            return Forward::Drop(DropReason::Runt);
        }
        let Some(&hub) = self.live.get(&port) else {
            self.stats.dropped_unknown_port += 1;
            return Forward::Drop(DropReason::UnknownPort);
        };
        let dst = Mac::from_bytes(frame[0..6].try_into().unwrap());
        let src = Mac::from_bytes(frame[6..12].try_into().unwrap());
        if src.is_multicast() || src == Mac(0) {
            self.stats.dropped_invalid_source += 1;
            return Forward::Drop(DropReason::InvalidSource);
        }

        // Learn.
        let port_full = self.owned(hub, port) >= self.max_per_port;
        match self.tables[hub].get(&src).copied() {
            Some((old, seen)) => {
                let aged = self.expired(seen, now_s);
                if old != port && port_full {
                    self.stats.refused_port_cap += 1;
                } else {
                    if aged {
                        self.stats.learned += 1;
                    } else if old != port {
                        self.stats.moves += 1;
                    }
                    self.tables[hub].insert(src, (port, now_s.max(seen)));
                }
            }
            None if port_full => self.stats.refused_port_cap += 1,
            None if self.tables[hub].len() >= self.hub_caps[hub] => self.stats.refused_hub_cap += 1,
            None => {
                self.stats.learned += 1;
                self.tables[hub].insert(src, (port, now_s));
            }
        }

        // Look up.
        let flood = Forward::Flood {
            hub: HubId(hub as u32),
            except: port,
        };
        if dst.is_multicast() {
            self.stats.flooded += 1;
            return flood;
        }
        match self.lookup(now_s, hub, dst) {
            Some(p) if p == port => {
                self.stats.dropped_same_segment += 1;
                Forward::Drop(DropReason::SameSegment)
            }
            Some(p) => {
                self.stats.unicast += 1;
                Forward::Unicast(p)
            }
            None => {
                self.stats.flooded += 1;
                flood
            }
        }
    }

    fn remove_port(&mut self, port: PortId) -> usize {
        let Some(hub) = self.live.remove(&port) else {
            return 0;
        };
        let before = self.tables[hub].len();
        self.tables[hub].retain(|_, (p, _)| *p != port);
        before - self.tables[hub].len()
    }

    fn expire(&mut self, now_s: u32) -> usize {
        let aging_s = self.aging_s;
        let mut removed = 0;
        for table in &mut self.tables {
            let before = table.len();
            table.retain(|_, (_, seen)| now_s.saturating_sub(*seen) <= aging_s);
            removed += before - table.len();
        }
        self.stats.aged_out += removed as u64;
        removed
    }
}

fn run(setup: Setup, ops: Vec<Op>) -> Result<(), TestCaseError> {
    #[allow(clippy::disallowed_methods)] // the one real clock read: the epoch
    let epoch = Instant::now();
    let mut fabric = Fabric::new(setup.config.clone(), epoch);
    let hubs: Vec<HubId> = setup
        .hub_caps
        .iter()
        .map(|&cap| fabric.add_hub_with_cap(cap))
        .collect();
    let aging = setup.config.aging;
    let mut model = Model {
        aging_s: aging.as_secs_f64().ceil() as u32,
        max_per_port: setup.config.max_macs_per_port as usize,
        hub_caps: setup.hub_caps.iter().map(|&c| c as usize).collect(),
        tables: vec![HashMap::new(); hubs.len()],
        live: HashMap::new(),
        stats: FabricStats::default(),
    };
    // Every port ever issued, live or not, so stale handles get exercised.
    let mut issued: Vec<PortId> = Vec::new();
    for (i, &hub) in hubs.iter().enumerate() {
        let port = fabric.add_port(hub);
        prop_assert_eq!(fabric.port_hub(port), Some(hub));
        model.live.insert(port, i);
        issued.push(port);
    }
    let mut elapsed_ms = 0u64;

    for op in ops {
        let now = epoch + Duration::from_millis(elapsed_ms);
        let now_s = (elapsed_ms / 1000) as u32;
        match op {
            Op::AddPort { hub } => {
                let i = hub % hubs.len();
                let port = fabric.add_port(hubs[i]);
                prop_assert!(!issued.contains(&port), "a handle was issued twice");
                model.live.insert(port, i);
                issued.push(port);
            }
            Op::RemovePort { port } => {
                let port = issued[port % issued.len()];
                let removed = fabric.remove_port(port);
                prop_assert_eq!(removed, model.remove_port(port));
                prop_assert_eq!(fabric.port_hub(port), None);
            }
            Op::Frame {
                port,
                dst,
                src,
                len,
            } => {
                let ingress = issued[port % issued.len()];
                let mut frame = [0u8; 60];
                frame[0..6].copy_from_slice(&dst.bytes());
                frame[6..12].copy_from_slice(&src.bytes());
                frame[12..14].copy_from_slice(&[0x08, 0x00]);
                let frame = &frame[..len];

                let refused_before = refusals(fabric.stats());
                let got = fabric.forward(now, ingress, frame);
                check_forward(&fabric, now, ingress, frame, got, refused_before)?;
                prop_assert_eq!(got, model.forward(now_s, ingress, frame));
            }
            Op::Advance { ms } => elapsed_ms += ms,
            Op::Expire => {
                let removed = fabric.expire(now);
                prop_assert_eq!(removed, model.expire(now_s));
            }
        }
        let now = epoch + Duration::from_millis(elapsed_ms);
        let now_s = (elapsed_ms / 1000) as u32;
        check_state(&fabric, &model, &setup, &hubs, &issued, now, now_s)?;
    }
    Ok(())
}

fn refusals(s: &FabricStats) -> u64 {
    s.refused_port_cap + s.refused_hub_cap
}

/// Invariants of one `forward` answer that need no model.
fn check_forward(
    fabric: &Fabric,
    now: Instant,
    ingress: PortId,
    frame: &[u8],
    got: Forward,
    refused_before: u64,
) -> Result<(), TestCaseError> {
    let ingress_hub = fabric.port_hub(ingress);
    match got {
        Forward::Unicast(to) => {
            prop_assert_ne!(to, ingress, "unicast back to the ingress port");
            prop_assert!(ingress_hub.is_some(), "a stale port got a unicast");
            prop_assert_eq!(
                fabric.port_hub(to),
                ingress_hub,
                "crossed hubs or dead port"
            );
        }
        Forward::Flood { hub, except } => {
            prop_assert_eq!(except, ingress);
            prop_assert_eq!(Some(hub), ingress_hub);
        }
        Forward::Drop(DropReason::Runt) => prop_assert!(frame.len() < 14),
        Forward::Drop(DropReason::UnknownPort) => prop_assert_eq!(ingress_hub, None),
        Forward::Drop(_) => {}
    }
    // A source that was learned (nothing refused) is found on the ingress.
    let learned_here = matches!(
        got,
        Forward::Unicast(_) | Forward::Flood { .. } | Forward::Drop(DropReason::SameSegment)
    );
    if learned_here && refusals(fabric.stats()) == refused_before {
        let src = Mac::from_bytes(frame[6..12].try_into().unwrap());
        prop_assert_eq!(fabric.lookup(now, ingress_hub.unwrap(), src), Some(ingress));
    }
    Ok(())
}

/// Caps, bookkeeping and agreement with the model, after every step.
fn check_state(
    fabric: &Fabric,
    model: &Model,
    setup: &Setup,
    hubs: &[HubId],
    issued: &[PortId],
    now: Instant,
    now_s: u32,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(fabric.stats(), &model.stats);
    for (i, &hub) in hubs.iter().enumerate() {
        let count = fabric.mac_count(hub);
        prop_assert!(count <= setup.hub_caps[i] as usize, "hub over its cap");
        prop_assert_eq!(count, model.tables[i].len());

        let ports = fabric.hub_ports(hub);
        let as_set: HashSet<PortId> = ports.iter().copied().collect();
        prop_assert_eq!(as_set.len(), ports.len(), "a port listed twice");
        let expected: HashSet<PortId> = model
            .live
            .iter()
            .filter(|&(_, &h)| h == i)
            .map(|(&p, _)| p)
            .collect();
        prop_assert_eq!(&as_set, &expected);

        let mut owned_total = 0;
        for &port in ports {
            let owned = fabric.port_mac_count(port);
            prop_assert!(owned <= setup.config.max_macs_per_port as usize);
            prop_assert_eq!(owned, model.owned(i, port));
            owned_total += owned;
        }
        prop_assert_eq!(owned_total, count, "per-port counts drifted");

        for m in 0..POOL {
            let mac = Mac::from_bytes(pool_mac(m));
            prop_assert_eq!(
                fabric.lookup(now, hub, mac),
                model.lookup(now_s, i, mac),
                "lookup of {} in {:?}",
                mac,
                hub
            );
        }

        let mut listed: Vec<(Mac, PortId, u32)> = fabric.entries(now, hub).collect();
        listed.sort_by_key(|&(m, _, _)| m);
        let mut want: Vec<(Mac, PortId, u32)> = model.tables[i]
            .iter()
            .filter(|&(_, &(_, seen))| !model.expired(seen, now_s))
            .map(|(&m, &(p, seen))| (m, p, now_s - seen))
            .collect();
        want.sort_by_key(|&(m, _, _)| m);
        prop_assert_eq!(listed, want);
    }
    for &port in issued {
        if !model.live.contains_key(&port) {
            prop_assert_eq!(fabric.port_hub(port), None);
            prop_assert_eq!(fabric.port_mac_count(port), 0);
        }
    }
    Ok(())
}

proptest! {
    /// Caps never bind: the fabric is exactly a per-hub learning table.
    #[test]
    fn matches_the_reference_model(
        setup in generous_caps(),
        ops in prop::collection::vec(op(), 1..250),
    ) {
        run(setup, ops)?;
    }

    /// Caps of 1–5 MACs per hub and 1–3 per port bind constantly.
    #[test]
    fn holds_its_invariants_under_tight_caps(
        setup in tight_caps(),
        ops in prop::collection::vec(op(), 1..250),
    ) {
        run(setup, ops)?;
    }
}
