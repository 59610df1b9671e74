//! Property tests of the MAC fabric: random sequences of port churn, frames
//! and clock advances across 2–3 hubs (one `Fabric` each: a fabric is one
//! broadcast domain), run against the fabrics and against a plain reference
//! model (a `HashMap` per hub), with the fabric's safety invariants checked
//! after every step.
//!
//! Ports live on 1–4 shards, plain or `Vnet` (frames behind a 10-byte
//! header the fabric must skip), and a frame is asked about from its
//! ingress's shard or, now and then, from any shard: the model says which
//! route (`Local`, `Remote`, `Flood` with its shards) each answer must be.
//!
//! The clock is virtual: one `Instant` is read as the epoch and every `now`
//! is that epoch plus a generated offset.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use switch_core::fabric::{
    DropReason, Fabric, FabricConfig, FabricStats, Mac, PortId, PortInfo, PortLoc, Route, ShardSet,
};
use switch_core::offload::Form;

/// Unicast MACs to draw sources and destinations from: few, so that learns,
/// moves, hits and caps all happen often.
const POOL: u8 = 6;

/// Length of the header in front of a `Vnet` port's frames.
const VNET_HDR: usize = 10;

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
    /// Add a port to hub `hub % hubs`, on shard `shard % shards`.
    AddPort {
        hub: usize,
        shard: u16,
        vnet: bool,
    },
    /// Remove the `port % issued`-th port ever issued (maybe already gone).
    RemovePort {
        port: usize,
    },
    /// A frame on the `port % issued`-th port ever issued (maybe stale),
    /// asked about from the ingress's shard (`here: None`) or from shard
    /// `here % shards`. A `Vnet` port's frame is `hdr` and then the
    /// Ethernet frame; the whole is cut to `cut` bytes if given.
    Frame {
        port: usize,
        here: Option<u16>,
        dst: Addr,
        src: Addr,
        hdr: [u8; VNET_HDR],
        cut: Option<usize>,
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
        2 => (any::<usize>(), any::<u16>(), any::<bool>())
            .prop_map(|(hub, shard, vnet)| Op::AddPort { hub, shard, vnet }),
        1 => any::<usize>().prop_map(|port| Op::RemovePort { port }),
        16 => (
            any::<usize>(),
            prop_oneof![4 => Just(None), 1 => any::<u16>().prop_map(Some)],
            addr(),
            addr(),
            any::<[u8; VNET_HDR]>(),
            // Runts of either form, and a bare header of either form.
            prop_oneof![20 => Just(None), 1 => (0..=VNET_HDR + 14).prop_map(Some)],
        )
            .prop_map(|(port, here, dst, src, hdr, cut)| Op::Frame {
                port,
                here,
                dst,
                src,
                hdr,
                cut,
            }),
        4 => (0..4_000u64).prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Expire),
    ]
}

/// A setup: the config shared by every hub's fabric, one MAC cap per hub
/// (its fabric's `max_macs_per_hub`), and how many shards ports live on.
#[derive(Clone, Debug)]
struct Setup {
    config: FabricConfig,
    hub_caps: Vec<u32>,
    shards: u16,
}

fn generous_caps() -> impl Strategy<Value = Setup> {
    (2..=3usize, 1_000..=8_000u64, 1..=4u16).prop_map(|(hubs, aging_ms, shards)| Setup {
        config: FabricConfig {
            aging: Duration::from_millis(aging_ms),
            ..FabricConfig::default()
        },
        hub_caps: vec![FabricConfig::default().max_macs_per_hub; hubs],
        shards,
    })
}

fn tight_caps() -> impl Strategy<Value = Setup> {
    (
        1..=3u32,
        prop::collection::vec(1..=5u32, 2..=3),
        1_000..=8_000u64,
        1..=4u16,
    )
        .prop_map(|(per_port, hub_caps, aging_ms, shards)| Setup {
            config: FabricConfig {
                max_macs_per_port: per_port,
                max_macs_per_hub: 0, // replaced: every hub gets its own cap
                aging: Duration::from_millis(aging_ms),
            },
            hub_caps,
            shards,
        })
}

/// The reference: what a learning switch does, written as plainly as
/// possible, one table per hub. Time is in the same coarse seconds the
/// fabric documents, and an entry counts as absent once its age *exceeds*
/// the aging time (rounded up to whole seconds).
struct Model {
    aging_s: u32,
    max_per_port: usize,
    hub_caps: Vec<usize>,
    /// Per hub: MAC → (port, last seen), including aged entries not yet
    /// swept.
    tables: Vec<HashMap<Mac, (PortId, u32)>>,
    /// Per hub: live port → where it lives and its form.
    live: Vec<HashMap<PortId, PortInfo>>,
    /// Per hub: what its fabric must count.
    stats: Vec<FabricStats>,
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

    /// A flood of `hub` from `ingress`, as seen from shard `here`: here's
    /// ports other than the ingress, and every other shard with a port.
    fn flood(&self, hub: usize, ingress: PortId, here: u16) -> Route {
        let ports = &self.live[hub];
        Route::Flood {
            local: ports
                .iter()
                .any(|(&p, i)| p != ingress && i.loc.shard == here),
            remote: ports
                .values()
                .map(|i| i.loc.shard)
                .filter(|&s| s != here)
                .collect(),
        }
    }

    fn forward(&mut self, now_s: u32, hub: usize, port: PortId, here: u16, frame: &[u8]) -> Route {
        // The port comes first: without it, where the Ethernet header
        // starts (its form) is unknown. (Before forms, a runt was checked
        // first.)
        let Some(&info) = self.live[hub].get(&port) else {
            self.stats[hub].dropped_unknown_port += 1;
            return Route::Drop(DropReason::UnknownPort);
        };
        let skip = if info.form == Form::Vnet { VNET_HDR } else { 0 };
        if frame.len() < skip + 14 {
            self.stats[hub].dropped_runt += 1;
            return Route::Drop(DropReason::Runt);
        }
        let dst = Mac::from_bytes(frame[skip..skip + 6].try_into().unwrap());
        let src = Mac::from_bytes(frame[skip + 6..skip + 12].try_into().unwrap());
        if src.is_multicast() || src == Mac(0) {
            self.stats[hub].dropped_invalid_source += 1;
            return Route::Drop(DropReason::InvalidSource);
        }

        // Learn.
        let port_full = self.owned(hub, port) >= self.max_per_port;
        match self.tables[hub].get(&src).copied() {
            Some((old, seen)) => {
                let aged = self.expired(seen, now_s);
                if old != port && port_full {
                    self.stats[hub].refused_port_cap += 1;
                } else {
                    if aged {
                        self.stats[hub].learned += 1;
                    } else if old != port {
                        self.stats[hub].moves += 1;
                    }
                    self.tables[hub].insert(src, (port, now_s.max(seen)));
                }
            }
            None if port_full => self.stats[hub].refused_port_cap += 1,
            None if self.tables[hub].len() >= self.hub_caps[hub] => {
                self.stats[hub].refused_hub_cap += 1
            }
            None => {
                self.stats[hub].learned += 1;
                self.tables[hub].insert(src, (port, now_s));
            }
        }

        // Look up.
        if dst.is_multicast() {
            self.stats[hub].flooded += 1;
            return self.flood(hub, port, here);
        }
        match self.lookup(now_s, hub, dst) {
            Some(p) if p == port => {
                self.stats[hub].dropped_same_segment += 1;
                Route::Drop(DropReason::SameSegment)
            }
            Some(p) => {
                self.stats[hub].unicast += 1;
                let to = self.live[hub][&p];
                if to.loc.shard == here {
                    Route::Local {
                        slot: to.loc.slot,
                        form: to.form,
                    }
                } else {
                    Route::Remote {
                        shard: to.loc.shard,
                        slot: to.loc.slot,
                        port: p,
                    }
                }
            }
            None => {
                self.stats[hub].flooded += 1;
                self.flood(hub, port, here)
            }
        }
    }

    fn remove_port(&mut self, hub: usize, port: PortId) -> usize {
        if self.live[hub].remove(&port).is_none() {
            return 0;
        }
        let before = self.tables[hub].len();
        self.tables[hub].retain(|_, (p, _)| *p != port);
        before - self.tables[hub].len()
    }

    fn expire(&mut self, hub: usize, now_s: u32) -> usize {
        let aging_s = self.aging_s;
        let table = &mut self.tables[hub];
        let before = table.len();
        table.retain(|_, (_, seen)| now_s.saturating_sub(*seen) <= aging_s);
        let removed = before - table.len();
        self.stats[hub].aged_out += removed as u64;
        removed
    }
}

/// A port handle as issued, with its hub and what it was added as (kept
/// after removal, so stale handles get exercised with their old form).
#[derive(Clone, Copy, Debug)]
struct Issued {
    hub: usize,
    port: PortId,
    info: PortInfo,
}

fn run(setup: Setup, ops: Vec<Op>) -> Result<(), TestCaseError> {
    #[allow(clippy::disallowed_methods)] // the one real clock read: the epoch
    let epoch = Instant::now();
    let mut fabrics: Vec<Fabric> = setup
        .hub_caps
        .iter()
        .map(|&cap| {
            let config = FabricConfig {
                max_macs_per_hub: cap,
                ..setup.config.clone()
            };
            Fabric::new(config, epoch)
        })
        .collect();
    let hubs = fabrics.len();
    let aging = setup.config.aging;
    let mut model = Model {
        aging_s: aging.as_secs_f64().ceil() as u32,
        max_per_port: setup.config.max_macs_per_port as usize,
        hub_caps: setup.hub_caps.iter().map(|&c| c as usize).collect(),
        tables: vec![HashMap::new(); hubs],
        live: vec![HashMap::new(); hubs],
        stats: vec![FabricStats::default(); hubs],
    };
    // Every port ever issued, live or not, so stale handles get exercised.
    // Its index is its slot, so a slot names one port across all hubs.
    let mut issued: Vec<Issued> = Vec::new();
    for hub in 0..hubs {
        let shard = hub as u16 % setup.shards;
        add_port(
            &mut fabrics,
            &mut model,
            &mut issued,
            hub,
            shard,
            Form::Plain,
        )?;
    }
    let mut elapsed_ms = 0u64;

    for op in ops {
        let now = epoch + Duration::from_millis(elapsed_ms);
        let now_s = (elapsed_ms / 1000) as u32;
        match op {
            Op::AddPort { hub, shard, vnet } => {
                let (hub, shard) = (hub % hubs, shard % setup.shards);
                add_port(
                    &mut fabrics,
                    &mut model,
                    &mut issued,
                    hub,
                    shard,
                    Form::of(vnet),
                )?;
            }
            Op::RemovePort { port } => {
                let Issued { hub, port, .. } = issued[port % issued.len()];
                let removed = fabrics[hub].remove_port(port);
                prop_assert_eq!(removed, model.remove_port(hub, port));
                prop_assert_eq!(fabrics[hub].port(port), None);
            }
            Op::Frame {
                port,
                here,
                dst,
                src,
                hdr,
                cut,
            } => {
                let Issued {
                    hub,
                    port: ingress,
                    info,
                } = issued[port % issued.len()];
                let here = here.map_or(info.loc.shard, |s| s % setup.shards);
                let mut frame = Vec::with_capacity(VNET_HDR + 60);
                if info.form == Form::Vnet {
                    frame.extend_from_slice(&hdr);
                }
                let mut eth = [0u8; 60];
                eth[0..6].copy_from_slice(&dst.bytes());
                eth[6..12].copy_from_slice(&src.bytes());
                eth[12..14].copy_from_slice(&[0x08, 0x00]);
                frame.extend_from_slice(&eth);
                frame.truncate(cut.unwrap_or(frame.len()));

                let fabric = &mut fabrics[hub];
                let refused_before = refusals(fabric.stats());
                let got = fabric.forward(now, ingress, here, &frame);
                check_forward(fabric, now, ingress, here, &frame, got, refused_before)?;
                prop_assert_eq!(got, model.forward(now_s, hub, ingress, here, &frame));
            }
            Op::Advance { ms } => elapsed_ms += ms,
            Op::Expire => {
                for (hub, fabric) in fabrics.iter_mut().enumerate() {
                    let removed = fabric.expire(now);
                    prop_assert_eq!(removed, model.expire(hub, now_s), "hub {}", hub);
                }
            }
        }
        let now = epoch + Duration::from_millis(elapsed_ms);
        let now_s = (elapsed_ms / 1000) as u32;
        check_state(&fabrics, &model, &setup, &issued, now, now_s)?;
    }
    Ok(())
}

/// Adds a port to hub `hub` on `shard` in `form`, to the fabric and the
/// model alike; its slot is its issue number.
fn add_port(
    fabrics: &mut [Fabric],
    model: &mut Model,
    issued: &mut Vec<Issued>,
    hub: usize,
    shard: u16,
    form: Form,
) -> Result<(), TestCaseError> {
    let info = PortInfo::vhub(shard, issued.len() as u32, form);
    let port = fabrics[hub].add_port(info);
    prop_assert_eq!(fabrics[hub].port(port), Some(info));
    prop_assert!(
        !issued.iter().any(|x| x.hub == hub && x.port == port),
        "a handle was issued twice"
    );
    model.live[hub].insert(port, info);
    issued.push(Issued { hub, port, info });
    Ok(())
}

fn refusals(s: &FabricStats) -> u64 {
    s.refused_port_cap + s.refused_hub_cap
}

/// Invariants of one `forward` answer, asked from shard `here`, that need
/// no model.
fn check_forward(
    fabric: &Fabric,
    now: Instant,
    ingress: PortId,
    here: u16,
    frame: &[u8],
    got: Route,
    refused_before: u64,
) -> Result<(), TestCaseError> {
    let ingress_info = fabric.port(ingress);
    match got {
        Route::Local { slot, form } => {
            prop_assert!(ingress_info.is_some(), "a stale port got a unicast");
            let to: Vec<PortId> = fabric
                .ports()
                .filter(|&(_, i)| i.loc == PortLoc { shard: here, slot } && i.form == form)
                .map(|(p, _)| p)
                .collect();
            // Slots are unique across hubs here: another hub's port, or a
            // dead one, is not found among this fabric's live ports.
            prop_assert_eq!(to.len(), 1, "crossed hubs, dead port or wrong form");
            prop_assert_ne!(to[0], ingress, "unicast back to the ingress port");
        }
        Route::Remote { shard, slot, port } => {
            prop_assert!(ingress_info.is_some(), "a stale port got a unicast");
            prop_assert_ne!(port, ingress, "unicast back to the ingress port");
            prop_assert_ne!(shard, here, "a remote route to the asking shard");
            prop_assert_eq!(
                fabric.port(port).map(|i| i.loc),
                Some(PortLoc { shard, slot }),
                "crossed hubs, dead port or wrong place"
            );
        }
        Route::Flood { local, remote } => {
            prop_assert!(ingress_info.is_some(), "a stale port got a flood");
            let others: ShardSet = fabric
                .ports()
                .map(|(_, i)| i.loc.shard)
                .filter(|&s| s != here)
                .collect();
            prop_assert_eq!(remote, others, "a flood misses or invents a shard");
            let mine = fabric
                .ports()
                .any(|(p, i)| p != ingress && i.loc.shard == here);
            prop_assert_eq!(local, mine);
        }
        Route::Drop(DropReason::Runt) => {
            let Some(info) = ingress_info else {
                return Err(TestCaseError::fail("a runt from an unknown port"));
            };
            prop_assert!(frame.len() < info.form.header_len() + 14);
        }
        Route::Drop(DropReason::UnknownPort) => prop_assert_eq!(ingress_info, None),
        Route::Drop(_) => {}
    }
    // A source that was learned (nothing refused) is found on the ingress.
    let learned_here = matches!(
        got,
        Route::Local { .. }
            | Route::Remote { .. }
            | Route::Flood { .. }
            | Route::Drop(DropReason::SameSegment)
    );
    if learned_here && refusals(fabric.stats()) == refused_before {
        let skip = ingress_info.unwrap().form.header_len();
        let src = Mac::from_bytes(frame[skip + 6..skip + 12].try_into().unwrap());
        prop_assert_eq!(fabric.lookup(now, src), Some(ingress));
    }
    Ok(())
}

/// Caps, bookkeeping and agreement with the model, after every step.
fn check_state(
    fabrics: &[Fabric],
    model: &Model,
    setup: &Setup,
    issued: &[Issued],
    now: Instant,
    now_s: u32,
) -> Result<(), TestCaseError> {
    for (i, fabric) in fabrics.iter().enumerate() {
        prop_assert_eq!(fabric.stats(), &model.stats[i], "stats of hub {}", i);
        let count = fabric.mac_count();
        prop_assert!(count <= setup.hub_caps[i] as usize, "hub over its cap");
        prop_assert_eq!(count, model.tables[i].len());

        let ports: Vec<(PortId, PortInfo)> = fabric.ports().collect();
        let as_map: HashMap<PortId, PortInfo> = ports.iter().copied().collect();
        prop_assert_eq!(as_map.len(), ports.len(), "a port listed twice");
        prop_assert_eq!(&as_map, &model.live[i]);
        prop_assert_eq!(fabric.port_count(), ports.len());

        let mut owned_total = 0;
        for &(port, info) in &ports {
            prop_assert_eq!(fabric.port(port), Some(info));
            let owned = fabric.port_mac_count(port);
            prop_assert!(owned <= setup.config.max_macs_per_port as usize);
            prop_assert_eq!(owned, model.owned(i, port));
            owned_total += owned;
        }
        prop_assert_eq!(owned_total, count, "per-port counts drifted");

        for m in 0..POOL {
            let mac = Mac::from_bytes(pool_mac(m));
            prop_assert_eq!(
                fabric.lookup(now, mac),
                model.lookup(now_s, i, mac),
                "lookup of {} in hub {}",
                mac,
                i
            );
        }

        let mut listed: Vec<(Mac, PortId, u32)> = fabric.entries(now).collect();
        listed.sort_by_key(|&(m, _, _)| m);
        let mut want: Vec<(Mac, PortId, u32)> = model.tables[i]
            .iter()
            .filter(|&(_, &(_, seen))| !model.expired(seen, now_s))
            .map(|(&m, &(p, seen))| (m, p, now_s - seen))
            .collect();
        want.sort_by_key(|&(m, _, _)| m);
        prop_assert_eq!(listed, want);
    }
    for x in issued {
        if !model.live[x.hub].contains_key(&x.port) {
            prop_assert_eq!(fabrics[x.hub].port(x.port), None);
            prop_assert_eq!(fabrics[x.hub].port_mac_count(x.port), 0);
        }
    }
    Ok(())
}

proptest! {
    /// Caps never bind: each fabric is exactly its hub's learning table.
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
