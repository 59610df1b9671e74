//! The MAC switching fabric: where a frame goes.
//!
//! Sans-IO like the rest of switch-core: no sockets, no threads, and no clock
//! reads — every method that needs the time takes `now: Instant` from the
//! caller. The fabric never touches payload bytes beyond the 12 address
//! octets; it names the destination and the caller moves the bytes.
//!
//! ```text
//!   ingress PortId + frame ──► Fabric::forward ──► Route::Local { slot, form }
//!   (+ the asking shard)        learn src,         Route::Remote { shard, slot, port }
//!                               look up dst        Route::Flood { local, remote shards }
//!                                                  Route::Drop(reason)
//! ```
//!
//! * A [`Fabric`] is one broadcast domain (one virtual hub) with its own MAC
//!   table: a frame never crosses from one domain to another because no
//!   domain knows another's ports. The hub keeps one per virtual hub, each
//!   behind its own lock, held only for [`Fabric::forward`] (learn + look
//!   up): the bytes move after it is released.
//! * A *port* is anything that sends and takes Ethernet frames: a `vhub/1`
//!   session or a local bridge to a host network ([`PortKind`]). The fabric knows where it lives
//!   ([`PortLoc`]: shard and slot) and the form of its frames
//!   ([`Form`](crate::offload::Form): plain, or behind a `virtio_net_hdr`),
//!   and switches every kind alike. [`PortId`] is a slab index plus a
//!   generation, so a handle kept after [`Fabric::remove_port`] can never
//!   address the port that later reuses the slot.
//! * Routes are counted once, here ([`FabricStats`]).
//! * Learning is capped per port and per domain (a MAC flood cannot grow
//!   memory without bound); a refused learn still forwards the frame and is
//!   counted.
//! * Entries age out after [`FabricConfig::aging`] of silence. Timestamps are
//!   coarse `u32` seconds since the `epoch` given to [`Fabric::new`]; an
//!   entry is never treated as expired early and is treated as expired at
//!   most one second late.
//! * A shard's own ports per domain, the receivers of a flood on that shard,
//!   are in [`LocalPorts`]: read without the lock.
//!
//! Hot path: [`Fabric::forward`] does two hash lookups (source, destination)
//! in a hashbrown map keyed by the packed `u64` MAC, and allocates nothing
//! unless it learns a new MAC and the table must grow. The map keeps
//! hashbrown's default hasher (foldhash, randomly seeded per map): sources
//! are chosen by whoever sends frames, and a seeded hash keeps them from
//! building colliding keys (HashDoS).

mod local;
mod mac;
mod route;
#[cfg(test)]
mod tests;

pub use local::LocalPorts;
pub use mac::Mac;
pub use route::{DropReason, PortInfo, PortKind, PortLoc, Route, ShardSet, MAX_SHARDS};

use std::time::{Duration, Instant};

use hashbrown::HashMap;

/// Handle of a port (one session, or any other kind of port, attached to
/// the domain).
///
/// Index into the fabric's port slab plus the slot's generation: once the
/// port is removed, the handle is stale for good, even after the slot is
/// reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PortId {
    index: u32,
    generation: u32,
}

impl PortId {
    /// Rebuilds a handle from its parts (e.g. after it crossed a queue as two
    /// integers). The fabric checks every handle it is given, so a made-up
    /// one is answered as unknown, never trusted.
    #[inline]
    pub const fn from_raw(index: u32, generation: u32) -> Self {
        PortId { index, generation }
    }

    /// The slab slot.
    #[inline]
    pub const fn index(self) -> u32 {
        self.index
    }

    /// The slot's generation when this handle was issued.
    #[inline]
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// Both parts in one integer (index high, generation low).
    #[inline]
    pub const fn to_u64(self) -> u64 {
        ((self.index as u64) << 32) | self.generation as u64
    }

    /// The inverse of [`to_u64`](Self::to_u64).
    #[inline]
    pub const fn from_u64(v: u64) -> Self {
        PortId {
            index: (v >> 32) as u32,
            generation: v as u32,
        }
    }
}

/// Limits and timers of a [`Fabric`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FabricConfig {
    /// MAC entries one port may own, unless the port has a cap of its own
    /// ([`PortInfo::max_macs`], a bridge); a port at its cap learns no new
    /// source and cannot take over a MAC from another port. Default 1024.
    pub max_macs_per_port: u32,
    /// MAC entries the domain (one virtual hub) may hold. Default 65536.
    pub max_macs_per_hub: u32,
    /// An entry not refreshed for longer than this is treated as absent and
    /// removed by [`Fabric::expire`]. Rounded up to whole seconds. Default
    /// 300 s, as on most hardware switches.
    pub aging: Duration,
}

impl Default for FabricConfig {
    fn default() -> Self {
        FabricConfig {
            max_macs_per_port: 1024,
            max_macs_per_hub: 65536,
            aging: Duration::from_secs(300),
        }
    }
}

/// Counters since the fabric was made. Plain `u64`s: the fabric is used
/// under its owner's lock, and the owner exports them at scrape time. Every
/// frame [`Fabric::forward`] is asked about is counted here exactly once:
/// as unicast (local or remote), flood, or one drop reason.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct FabricStats {
    /// New entries, including an aged entry learned again.
    pub learned: u64,
    /// Live entries that moved to another port.
    pub moves: u64,
    /// Entries removed by [`Fabric::expire`].
    pub aged_out: u64,
    /// Learns or moves refused because the ingress port was at its cap.
    pub refused_port_cap: u64,
    /// Learns refused because the domain was at its cap.
    pub refused_hub_cap: u64,
    /// Frames routed to one port ([`Route::Local`] or [`Route::Remote`]).
    pub unicast: u64,
    /// Frames answered with [`Route::Flood`].
    pub flooded: u64,
    /// Frames dropped as [`DropReason::Runt`].
    pub dropped_runt: u64,
    /// Frames dropped as [`DropReason::UnknownPort`].
    pub dropped_unknown_port: u64,
    /// Frames dropped as [`DropReason::SameSegment`].
    pub dropped_same_segment: u64,
    /// Frames dropped as [`DropReason::InvalidSource`].
    pub dropped_invalid_source: u64,
}

/// Length of an Ethernet header: destination, source, EtherType.
const ETHERNET_HEADER_LEN: usize = 14;

/// One slot of the port slab.
#[derive(Clone, Debug)]
struct PortSlot {
    /// Generation of the handle issued for the current (or next) occupant.
    generation: u32,
    /// The occupant, `None` when vacant.
    info: Option<PortInfo>,
    /// Entries of the table that point at this slot; kept exact so
    /// `remove_port` can skip the table scan for a port with none.
    mac_count: u32,
    /// The occupant's MAC cap: its own ([`PortInfo::max_macs`]) or the
    /// fabric's per-port default.
    max_macs: u32,
}

/// One MAC table entry. The port is a slab index: entries are purged when
/// their port is removed, so the slot is always occupied by that port and
/// its generation completes the handle. Key plus entry is 16 bytes, which
/// keeps a 100k-entry table near 2 MiB.
#[derive(Clone, Copy, Debug)]
struct Entry {
    port: u32,
    /// Coarse seconds since the fabric's epoch.
    last_seen: u32,
}

/// The MAC switching fabric of one broadcast domain (one virtual hub). See
/// the [module docs](self).
#[derive(Debug)]
pub struct Fabric {
    config: FabricConfig,
    epoch: Instant,
    /// `config.aging` in whole seconds, rounded up.
    aging_secs: u32,
    /// The last `now` given to `forward` and its coarse seconds: callers
    /// pass one `now` for a whole batch of frames, and converting an
    /// `Instant` costs more than the rest of the time handling.
    last_now: (Instant, u32),
    /// MAC (packed) → entry, with foldhash's per-map random seed.
    table: HashMap<u64, Entry>,
    /// Lower bound on `last_seen` over `table` (`u32::MAX` when nothing has
    /// been learned since the last sweep emptied it). `expire` skips the
    /// scan while the oldest entry cannot be aged yet.
    oldest: u32,
    slots: Vec<PortSlot>,
    /// Vacant slots ready for reuse.
    free: Vec<u32>,
    /// Live ports.
    ports: usize,
    /// Live ports per shard (index = shard), for the shards a flood reaches.
    per_shard: Vec<u32>,
    /// The shards with at least one port.
    shards: ShardSet,
    stats: FabricStats,
}

impl Fabric {
    /// An empty domain. `epoch` is the origin of its coarse clock: every
    /// `now` passed in later should be at or after it (an earlier one counts
    /// as the epoch itself).
    pub fn new(config: FabricConfig, epoch: Instant) -> Self {
        let aging = config.aging;
        let whole = aging.as_secs() + u64::from(aging.subsec_nanos() > 0);
        Fabric {
            aging_secs: u32::try_from(whole).unwrap_or(u32::MAX),
            config,
            epoch,
            last_now: (epoch, 0),
            table: HashMap::new(),
            oldest: u32::MAX,
            slots: Vec::new(),
            free: Vec::new(),
            ports: 0,
            per_shard: Vec::new(),
            shards: ShardSet::EMPTY,
            stats: FabricStats::default(),
        }
    }

    /// The configuration the fabric was made with.
    pub fn config(&self) -> &FabricConfig {
        &self.config
    }

    /// Attaches a new port that lives at `info.loc` and takes frames in
    /// `info.form`.
    ///
    /// # Panics
    ///
    /// If `info.loc.shard` is not below [`MAX_SHARDS`]: the hub never runs
    /// that many shards, so that is a programming error.
    pub fn add_port(&mut self, info: PortInfo) -> PortId {
        let shard = info.loc.shard;
        assert!(
            usize::from(shard) < MAX_SHARDS,
            "add_port: shard {shard} is not below {MAX_SHARDS}"
        );
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.slots.len()).expect("more than 2^32 port slots");
                self.slots.push(PortSlot {
                    generation: 0,
                    info: None,
                    mac_count: 0,
                    max_macs: 0,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        debug_assert!(slot.info.is_none() && slot.mac_count == 0);
        slot.info = Some(info);
        slot.max_macs = match info.max_macs {
            0 => self.config.max_macs_per_port,
            own => own,
        };
        let port = PortId {
            index,
            generation: slot.generation,
        };
        self.ports += 1;
        let s = usize::from(shard);
        if self.per_shard.len() <= s {
            self.per_shard.resize(s + 1, 0);
        }
        self.per_shard[s] += 1;
        self.shards.insert(shard);
        port
    }

    /// Detaches `port` and forgets every MAC learned on it; returns how many
    /// MACs were removed. A stale or unknown handle is a no-op returning 0.
    /// Scans the table only when the port owns at least one MAC.
    pub fn remove_port(&mut self, port: PortId) -> usize {
        let Some(info) = self.port(port) else {
            return 0;
        };
        let owned = self.slots[port.index as usize].mac_count;
        let removed = if owned == 0 {
            0
        } else {
            let before = self.table.len();
            self.table.retain(|_, e| e.port != port.index);
            before - self.table.len()
        };
        debug_assert_eq!(removed, owned as usize);

        self.ports -= 1;
        let s = usize::from(info.loc.shard);
        self.per_shard[s] -= 1;
        if self.per_shard[s] == 0 {
            self.shards.remove(info.loc.shard);
        }
        let slot = &mut self.slots[port.index as usize];
        slot.info = None;
        slot.mac_count = 0;
        // A slot whose generation is exhausted is retired rather than
        // wrapped, so no old handle can ever match it again.
        if slot.generation != u32::MAX {
            slot.generation += 1;
            self.free.push(port.index);
        }
        removed
    }

    /// Decides where `frame`, received on `ingress` (in `ingress`'s form),
    /// goes, as seen from shard `here`: learns its source on `ingress`
    /// (within the caps), then looks up its destination. Counts the route.
    ///
    /// Checks, in order: runt, unknown ingress, invalid source. A refused
    /// learn (cap reached) does not stop the frame.
    ///
    /// Pass the same `now` for a batch of frames where possible: the
    /// conversion to coarse seconds is cached for the last `now` seen.
    #[inline]
    pub fn forward(&mut self, now: Instant, ingress: PortId, here: u16, frame: &[u8]) -> Route {
        // The steady state — a valid frame from a live port whose source is
        // already learned there — stays in this function; everything else
        // goes to cold, out-of-line paths so this one stays small enough
        // to inline into the caller's frame loop.
        let Some(info) = self.port(ingress) else {
            return self.reject(ingress, frame);
        };
        let eth = frame.get(info.form.header_len()..).unwrap_or(&[]);
        let Some((dst, src)) = addresses(eth) else {
            return self.reject(ingress, frame);
        };
        if !src.is_valid_source() {
            return self.reject(ingress, frame);
        }
        let now_s = if now == self.last_now.0 {
            self.last_now.1
        } else {
            self.set_now(now)
        };
        let aging = self.aging_secs;

        // Learn: in the steady state the source is already known on this
        // port and only its timestamp moves.
        let refreshed = match self.table.get_mut(&src.0) {
            Some(e) if e.port == ingress.index && !expired(e.last_seen, now_s, aging) => {
                // Never move a timestamp backwards (a caller's `now` may lag
                // a little), so `oldest` stays a lower bound.
                e.last_seen = e.last_seen.max(now_s);
                true
            }
            _ => false,
        };
        if !refreshed {
            self.learn(ingress.index, src.0, now_s);
        }

        // Look up.
        let known = if dst.is_multicast() {
            None
        } else {
            self.table
                .get(&dst.0)
                .filter(|e| !expired(e.last_seen, now_s, aging))
                .map(|e| e.port)
        };
        match known {
            Some(port) if port == ingress.index => {
                self.stats.dropped_same_segment += 1;
                Route::Drop(DropReason::SameSegment)
            }
            Some(port) => {
                self.stats.unicast += 1;
                let slot = &self.slots[port as usize];
                let to = slot.info.expect("a MAC entry points at a live port");
                if to.loc.shard == here {
                    Route::Local {
                        slot: to.loc.slot,
                        form: to.form,
                    }
                } else {
                    Route::Remote {
                        shard: to.loc.shard,
                        slot: to.loc.slot,
                        port: PortId {
                            index: port,
                            generation: slot.generation,
                        },
                    }
                }
            }
            None => {
                self.stats.flooded += 1;
                self.flood_route(here, info.loc.shard)
            }
        }
    }

    /// The flood answer for shard `here` of a frame that entered on
    /// `from_shard`: here's own ports (but the ingress), every other shard
    /// that has ports.
    #[inline]
    fn flood_route(&self, here: u16, from_shard: u16) -> Route {
        let mine = self.per_shard.get(usize::from(here)).copied().unwrap_or(0);
        let local = mine > u32::from(from_shard == here);
        let mut remote = self.shards;
        remote.remove(here);
        Route::Flood { local, remote }
    }

    /// The drop answer (and its counter) for a frame `forward` does not
    /// switch: a runt, a stale ingress handle, or an invalid source.
    #[cold]
    #[inline(never)]
    fn reject(&mut self, ingress: PortId, frame: &[u8]) -> Route {
        let reason = match self.port(ingress) {
            None => {
                self.stats.dropped_unknown_port += 1;
                DropReason::UnknownPort
            }
            Some(info) => match frame.get(info.form.header_len()..).and_then(addresses) {
                None => {
                    self.stats.dropped_runt += 1;
                    DropReason::Runt
                }
                Some(_) => {
                    self.stats.dropped_invalid_source += 1;
                    DropReason::InvalidSource
                }
            },
        };
        Route::Drop(reason)
    }

    /// Converts and caches a new `now` for `forward`.
    #[cold]
    #[inline(never)]
    fn set_now(&mut self, now: Instant) -> u32 {
        let now_s = self.secs(now);
        self.last_now = (now, now_s);
        now_s
    }

    /// Learns `src` on `port` (a live port) when it is not simply a
    /// refresh: a new MAC, a move, or an aged entry.
    ///
    /// An aged entry still in the table counts as absent: learning it again
    /// counts as `learned`, reuses its table slot (so needs no domain cap
    /// space) and, when it was on another port, needs room under the new
    /// port's cap.
    #[cold]
    #[inline(never)]
    fn learn(&mut self, port: u32, src: u64, now_s: u32) {
        let slots = &mut self.slots;
        let stats = &mut self.stats;
        let port_full = slots[port as usize].mac_count >= slots[port as usize].max_macs;
        let hub_full = self.table.len() >= self.config.max_macs_per_hub as usize;
        match self.table.get_mut(&src) {
            Some(e) => {
                let was_aged = expired(e.last_seen, now_s, self.aging_secs);
                if e.port != port {
                    if port_full {
                        stats.refused_port_cap += 1;
                        return;
                    }
                    slots[e.port as usize].mac_count -= 1;
                    slots[port as usize].mac_count += 1;
                    e.port = port;
                    if !was_aged {
                        stats.moves += 1;
                    }
                }
                if was_aged {
                    stats.learned += 1;
                }
                e.last_seen = e.last_seen.max(now_s);
            }
            None if port_full => stats.refused_port_cap += 1,
            None if hub_full => stats.refused_hub_cap += 1,
            None => {
                self.table.insert(
                    src,
                    Entry {
                        port,
                        last_seen: now_s,
                    },
                );
                slots[port as usize].mac_count += 1;
                self.oldest = self.oldest.min(now_s);
                stats.learned += 1;
            }
        }
    }

    /// Every live port with what the fabric knows of it, in slab order.
    pub fn ports(&self) -> impl Iterator<Item = (PortId, PortInfo)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.info.map(|info| {
                (
                    PortId {
                        index: i as u32,
                        generation: s.generation,
                    },
                    info,
                )
            })
        })
    }

    /// How many ports are attached.
    pub fn port_count(&self) -> usize {
        self.ports
    }

    /// What the fabric knows of `port`; `None` if the handle is stale.
    #[inline]
    pub fn port(&self, port: PortId) -> Option<PortInfo> {
        let slot = self.slots.get(port.index as usize)?;
        if slot.generation == port.generation {
            slot.info
        } else {
            None
        }
    }

    /// The port `mac` was learned on, without learning anything; `None` if
    /// unknown or aged.
    pub fn lookup(&self, now: Instant, mac: Mac) -> Option<PortId> {
        let now_s = self.secs(now);
        let e = self.table.get(&mac.0)?;
        (!expired(e.last_seen, now_s, self.aging_secs)).then(|| self.port_at(e.port))
    }

    /// Removes every entry that has aged out; returns how many. Meant to be
    /// called about once a second. Skips the scan while the oldest entry
    /// cannot have aged yet.
    pub fn expire(&mut self, now: Instant) -> usize {
        let now_s = self.secs(now);
        let aging = self.aging_secs;
        if self.oldest == u32::MAX || !expired(self.oldest, now_s, aging) {
            return 0;
        }
        let slots = &mut self.slots;
        let before = self.table.len();
        let mut oldest = u32::MAX;
        self.table.retain(|_, e| {
            if expired(e.last_seen, now_s, aging) {
                slots[e.port as usize].mac_count -= 1;
                false
            } else {
                oldest = oldest.min(e.last_seen);
                true
            }
        });
        self.oldest = oldest;
        let total = before - self.table.len();
        self.stats.aged_out += total as u64;
        total
    }

    /// Entries held, including ones that have aged but were not yet removed
    /// by [`expire`](Self::expire) (they count against the cap until then).
    pub fn mac_count(&self) -> usize {
        self.table.len()
    }

    /// Entries held for `port`, counted like [`mac_count`](Self::mac_count);
    /// 0 for a stale handle.
    pub fn port_mac_count(&self, port: PortId) -> usize {
        self.port(port)
            .map_or(0, |_| self.slots[port.index as usize].mac_count as usize)
    }

    /// The live (not aged) entries as `(mac, port, age in seconds)`, in no
    /// particular order, for the admin API's MAC table. Takes `now` because
    /// the fabric reads no clock.
    pub fn entries(&self, now: Instant) -> impl Iterator<Item = (Mac, PortId, u32)> + '_ {
        let now_s = self.secs(now);
        let aging = self.aging_secs;
        self.table
            .iter()
            .filter(move |(_, e)| !expired(e.last_seen, now_s, aging))
            .map(move |(&mac, e)| {
                let age = now_s.saturating_sub(e.last_seen);
                (Mac(mac), self.port_at(e.port), age)
            })
    }

    /// Counters since the fabric was made.
    pub fn stats(&self) -> &FabricStats {
        &self.stats
    }

    /// The handle of the port in an occupied slot.
    #[inline]
    fn port_at(&self, index: u32) -> PortId {
        PortId {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    /// Coarse seconds since the epoch, saturating at both ends.
    #[inline]
    fn secs(&self, now: Instant) -> u32 {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        u32::try_from(secs).unwrap_or(u32::MAX)
    }
}

/// Destination and source of an Ethernet frame, `None` for a runt.
#[inline]
fn addresses(frame: &[u8]) -> Option<(Mac, Mac)> {
    let header = frame.get(..ETHERNET_HEADER_LEN)?;
    // Two 8-byte big-endian loads (bytes 0..8 and 6..14), each shifted down
    // to its 6 address octets. The slices have constant lengths, so the
    // conversions cannot fail and compile to plain loads.
    let dst = u64::from_be_bytes(header[0..8].try_into().ok()?) >> 16;
    let src = u64::from_be_bytes(header[6..14].try_into().ok()?) >> 16;
    Some((Mac(dst), Mac(src)))
}

/// Has an entry last seen at `last_seen` aged out at `now_s`? Both are
/// truncated to whole seconds, so the true age can be up to a second more
/// or less than `now_s - last_seen`; requiring the coarse age to *exceed*
/// `aging` (not merely reach it) means an entry is never aged early.
#[inline]
fn expired(last_seen: u32, now_s: u32, aging: u32) -> bool {
    now_s.saturating_sub(last_seen) > aging
}
