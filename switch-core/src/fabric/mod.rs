//! The MAC switching fabric: where a frame goes.
//!
//! Sans-IO like the rest of switch-core: no sockets, no threads, and no clock
//! reads — every method that needs the time takes `now: Instant` from the
//! caller. The fabric never touches payload bytes beyond the 12 address
//! octets; it names the destination and the caller moves the bytes.
//!
//! ```text
//!   ingress PortId + frame ──► Fabric::forward ──► Forward::Unicast(port)
//!        (a session)            learn src,         Forward::Flood { hub, except }
//!                               look up dst        Forward::Drop(reason)
//! ```
//!
//! * A *hub* is one broadcast domain with its own MAC table: a lookup in one
//!   hub never sees another hub's entries, so a frame never crosses hubs.
//! * A *port* is one session attached to one hub. [`PortId`] is a slab index
//!   plus a generation, so a handle kept after [`Fabric::remove_port`] can
//!   never address the port that later reuses the slot.
//! * Learning is capped per port and per hub (a MAC flood cannot grow memory
//!   without bound); a refused learn still forwards the frame and is counted.
//! * Entries age out after [`FabricConfig::aging`] of silence. Timestamps are
//!   coarse `u32` seconds since the `epoch` given to [`Fabric::new`]; an
//!   entry is never treated as expired early and is treated as expired at
//!   most one second late.
//!
//! Hot path: [`Fabric::forward`] does two hash lookups (source, destination)
//! in a hashbrown map keyed by the packed `u64` MAC, and allocates nothing
//! unless it learns a new MAC and the table must grow. The map keeps
//! hashbrown's default hasher (foldhash, randomly seeded per map): sources
//! are chosen by whoever sends frames, and a seeded hash keeps them from
//! building colliding keys (HashDoS).

mod mac;
#[cfg(test)]
mod tests;

pub use mac::Mac;

use std::time::{Duration, Instant};

use hashbrown::HashMap;

/// Handle of a port (a session attached to one hub).
///
/// Index into the fabric's port slab plus the slot's generation: once the
/// port is removed, the handle is stale for good, even after the slot is
/// reused. The hub may map it to a session on any shard.
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
}

/// Handle of a virtual hub (one broadcast domain). Hubs are never removed, so
/// a `HubId` issued by a fabric stays valid for that fabric's lifetime.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HubId(pub u32);

/// Limits and timers of a [`Fabric`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FabricConfig {
    /// MAC entries one port may own; a port at its cap learns no new source
    /// and cannot take over a MAC from another port. Default 1024.
    pub max_macs_per_port: u32,
    /// MAC entries one hub may hold, for hubs made by [`Fabric::add_hub`];
    /// [`Fabric::add_hub_with_cap`] overrides it per hub. Default 65536.
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

/// Where a frame goes: the fabric names the destination, the caller moves
/// the bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use]
pub enum Forward {
    /// Send to this one port (never the ingress port, always the same hub).
    Unicast(PortId),
    /// Send to every port of [`Fabric::hub_ports`]`(hub)` except `except`
    /// (the ingress port): broadcast, multicast, or unknown unicast.
    Flood { hub: HubId, except: PortId },
    /// Send nowhere.
    Drop(DropReason),
}

/// Why [`Fabric::forward`] dropped a frame. Each reason has a counter in
/// [`FabricStats`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DropReason {
    /// Shorter than the 14-byte Ethernet header: the peer sent garbage.
    Runt,
    /// The ingress handle is stale or was never issued: a caller bug or a
    /// frame that raced the removal of its session.
    UnknownPort,
    /// The destination was learned on the ingress port itself; a real
    /// switch filters such frames (the station's own segment has it).
    SameSegment,
    /// The source MAC is multicast, broadcast or all-zero; a real switch
    /// neither learns nor forwards such frames.
    InvalidSource,
}

/// Counters since the fabric was made. Plain `u64`s: the fabric is owned by
/// one thread, and the caller exports them (summed over shards) at scrape
/// time.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct FabricStats {
    /// New entries, including an aged entry learned again.
    pub learned: u64,
    /// Live entries that moved to another port of the same hub.
    pub moves: u64,
    /// Entries removed by [`Fabric::expire`].
    pub aged_out: u64,
    /// Learns or moves refused because the ingress port was at its cap.
    pub refused_port_cap: u64,
    /// Learns refused because the hub was at its cap.
    pub refused_hub_cap: u64,
    /// Frames answered with [`Forward::Unicast`].
    pub unicast: u64,
    /// Frames answered with [`Forward::Flood`].
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

/// `PortSlot::hub` of a vacant slot.
const VACANT: u32 = u32::MAX;

/// One slot of the port slab.
#[derive(Clone, Debug)]
struct PortSlot {
    /// Generation of the handle issued for the current (or next) occupant.
    generation: u32,
    /// Index into `Fabric::hubs`, or `VACANT`.
    hub: u32,
    /// Entries of the hub's table that point at this slot; kept exact so
    /// `remove_port` can skip the table scan for a port with none.
    mac_count: u32,
    /// Position of this port in its hub's `ports` list.
    hub_pos: u32,
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

#[derive(Debug)]
struct Hub {
    /// MAC (packed) → entry, with foldhash's per-map random seed.
    table: HashMap<u64, Entry>,
    ports: Vec<PortId>,
    max_macs: u32,
    /// Lower bound on `last_seen` over `table` (`u32::MAX` when nothing has
    /// been learned since the last sweep emptied it). `expire` skips a hub
    /// whose oldest entry cannot be aged yet.
    oldest: u32,
}

/// The MAC switching fabric of all virtual hubs of one owner (e.g. one
/// shard or the whole server). See the [module docs](self).
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
    hubs: Vec<Hub>,
    slots: Vec<PortSlot>,
    /// Vacant slots ready for reuse.
    free: Vec<u32>,
    stats: FabricStats,
}

impl Fabric {
    /// A fabric with no hubs. `epoch` is the origin of its coarse clock:
    /// every `now` passed in later should be at or after it (an earlier one
    /// counts as the epoch itself).
    pub fn new(config: FabricConfig, epoch: Instant) -> Self {
        let aging = config.aging;
        let whole = aging.as_secs() + u64::from(aging.subsec_nanos() > 0);
        Fabric {
            aging_secs: u32::try_from(whole).unwrap_or(u32::MAX),
            config,
            epoch,
            last_now: (epoch, 0),
            hubs: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            stats: FabricStats::default(),
        }
    }

    /// The configuration the fabric was made with.
    pub fn config(&self) -> &FabricConfig {
        &self.config
    }

    /// Adds a hub with the configured `max_macs_per_hub`.
    pub fn add_hub(&mut self) -> HubId {
        self.add_hub_with_cap(self.config.max_macs_per_hub)
    }

    /// Adds a hub that holds at most `max_macs` MAC entries.
    pub fn add_hub_with_cap(&mut self, max_macs: u32) -> HubId {
        let id = u32::try_from(self.hubs.len())
            .ok()
            .filter(|&i| i != VACANT)
            .expect("more than 2^32 - 1 hubs");
        self.hubs.push(Hub {
            table: HashMap::new(),
            ports: Vec::new(),
            max_macs,
            oldest: u32::MAX,
        });
        HubId(id)
    }

    /// Attaches a new port to `hub`.
    ///
    /// # Panics
    ///
    /// If `hub` was not issued by this fabric: hubs are never removed, so
    /// that is a programming error, not a runtime condition.
    pub fn add_port(&mut self, hub: HubId) -> PortId {
        let hub_ports = &mut self
            .hubs
            .get_mut(hub.0 as usize)
            .unwrap_or_else(|| panic!("add_port: {hub:?} was not issued by this fabric"))
            .ports;
        let hub_pos = u32::try_from(hub_ports.len()).expect("more than 2^32 ports in one hub");
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.slots.len()).expect("more than 2^32 port slots");
                self.slots.push(PortSlot {
                    generation: 0,
                    hub: VACANT,
                    mac_count: 0,
                    hub_pos: 0,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        debug_assert!(slot.hub == VACANT && slot.mac_count == 0);
        slot.hub = hub.0;
        slot.hub_pos = hub_pos;
        let port = PortId {
            index,
            generation: slot.generation,
        };
        hub_ports.push(port);
        port
    }

    /// Detaches `port` and forgets every MAC learned on it; returns how many
    /// MACs were removed. A stale or unknown handle is a no-op returning 0.
    /// Scans the hub's table only when the port owns at least one MAC.
    pub fn remove_port(&mut self, port: PortId) -> usize {
        let Some(hub_index) = self.live_hub(port) else {
            return 0;
        };
        let slot = &self.slots[port.index as usize];
        let (hub_pos, owned) = (slot.hub_pos as usize, slot.mac_count);
        let hub = &mut self.hubs[hub_index as usize];

        hub.ports.swap_remove(hub_pos);
        if let Some(moved) = hub.ports.get(hub_pos) {
            self.slots[moved.index as usize].hub_pos = hub_pos as u32;
        }

        let removed = if owned == 0 {
            0
        } else {
            let before = hub.table.len();
            hub.table.retain(|_, e| e.port != port.index);
            before - hub.table.len()
        };
        debug_assert_eq!(removed, owned as usize);

        let slot = &mut self.slots[port.index as usize];
        slot.hub = VACANT;
        slot.mac_count = 0;
        // A slot whose generation is exhausted is retired rather than
        // wrapped, so no old handle can ever match it again.
        if slot.generation != u32::MAX {
            slot.generation += 1;
            self.free.push(port.index);
        }
        removed
    }

    /// Decides where `frame`, received on `ingress`, goes: learns its source
    /// on `ingress` (within the caps), then looks up its destination.
    ///
    /// Checks, in order: runt, unknown ingress, invalid source. A refused
    /// learn (cap reached) does not stop the frame.
    ///
    /// Pass the same `now` for a batch of frames where possible: the
    /// conversion to coarse seconds is cached for the last `now` seen.
    #[inline]
    pub fn forward(&mut self, now: Instant, ingress: PortId, frame: &[u8]) -> Forward {
        // The steady state — a valid frame from a live port whose source is
        // already learned there — stays in this function; everything else
        // goes to cold, out-of-line paths so this one stays small enough
        // to inline into the caller's frame loop.
        let (Some((dst, src)), Some(hub_index)) = (addresses(frame), self.live_hub(ingress)) else {
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
        let hub = &mut self.hubs[hub_index as usize];

        // Learn: in the steady state the source is already known on this
        // port and only its timestamp moves.
        let refreshed = match hub.table.get_mut(&src.0) {
            Some(e) if e.port == ingress.index && !expired(e.last_seen, now_s, aging) => {
                // Never move a timestamp backwards (a caller's `now` may lag
                // a little), so `Hub::oldest` stays a lower bound.
                e.last_seen = e.last_seen.max(now_s);
                true
            }
            _ => false,
        };
        if !refreshed {
            self.learn(hub_index, ingress.index, src.0, now_s);
        }

        // Look up.
        let known = if dst.is_multicast() {
            None
        } else {
            self.hubs[hub_index as usize]
                .table
                .get(&dst.0)
                .filter(|e| !expired(e.last_seen, now_s, aging))
                .map(|e| e.port)
        };
        match known {
            Some(port) if port == ingress.index => {
                self.stats.dropped_same_segment += 1;
                Forward::Drop(DropReason::SameSegment)
            }
            Some(port) => {
                self.stats.unicast += 1;
                Forward::Unicast(self.port_at(port))
            }
            None => {
                self.stats.flooded += 1;
                Forward::Flood {
                    hub: HubId(hub_index),
                    except: ingress,
                }
            }
        }
    }

    /// The drop answer (and its counter) for a frame `forward` does not
    /// switch: a runt, a stale ingress handle, or an invalid source.
    #[cold]
    #[inline(never)]
    fn reject(&mut self, ingress: PortId, frame: &[u8]) -> Forward {
        let reason = match addresses(frame) {
            None => {
                self.stats.dropped_runt += 1;
                DropReason::Runt
            }
            Some(_) if self.live_hub(ingress).is_none() => {
                self.stats.dropped_unknown_port += 1;
                DropReason::UnknownPort
            }
            Some(_) => {
                self.stats.dropped_invalid_source += 1;
                DropReason::InvalidSource
            }
        };
        Forward::Drop(reason)
    }

    /// Converts and caches a new `now` for `forward`.
    #[cold]
    #[inline(never)]
    fn set_now(&mut self, now: Instant) -> u32 {
        let now_s = self.secs(now);
        self.last_now = (now, now_s);
        now_s
    }

    /// Learns `src` on `port` (a live port of hub `hub_index`) when it is
    /// not simply a refresh: a new MAC, a move, or an aged entry.
    ///
    /// An aged entry still in the table counts as absent: learning it again
    /// counts as `learned`, reuses its table slot (so needs no hub cap space)
    /// and, when it was on another port, needs room under the new port's cap.
    #[cold]
    #[inline(never)]
    fn learn(&mut self, hub_index: u32, port: u32, src: u64, now_s: u32) {
        let hub = &mut self.hubs[hub_index as usize];
        let slots = &mut self.slots;
        let stats = &mut self.stats;
        let port_full = slots[port as usize].mac_count >= self.config.max_macs_per_port;
        let hub_full = hub.table.len() >= hub.max_macs as usize;
        match hub.table.get_mut(&src) {
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
                hub.table.insert(
                    src,
                    Entry {
                        port,
                        last_seen: now_s,
                    },
                );
                slots[port as usize].mac_count += 1;
                hub.oldest = hub.oldest.min(now_s);
                stats.learned += 1;
            }
        }
    }

    /// Every port of `hub`, for flooding (skip the `except` port of
    /// [`Forward::Flood`]). Order is unspecified and changes when ports are
    /// removed. Empty for a hub not issued by this fabric.
    pub fn hub_ports(&self, hub: HubId) -> &[PortId] {
        self.hubs
            .get(hub.0 as usize)
            .map_or(&[], |h| h.ports.as_slice())
    }

    /// The hub `port` is attached to; `None` if the handle is stale.
    pub fn port_hub(&self, port: PortId) -> Option<HubId> {
        self.live_hub(port).map(HubId)
    }

    /// The port `mac` was learned on in `hub`, without learning anything;
    /// `None` if unknown, aged, or the hub was not issued by this fabric.
    pub fn lookup(&self, now: Instant, hub: HubId, mac: Mac) -> Option<PortId> {
        let now_s = self.secs(now);
        let e = self.hubs.get(hub.0 as usize)?.table.get(&mac.0)?;
        (!expired(e.last_seen, now_s, self.aging_secs)).then(|| self.port_at(e.port))
    }

    /// Removes every entry that has aged out; returns how many. Meant to be
    /// called about once a second. Hubs whose oldest entry cannot have aged
    /// yet are skipped without a scan.
    pub fn expire(&mut self, now: Instant) -> usize {
        let now_s = self.secs(now);
        let aging = self.aging_secs;
        let slots = &mut self.slots;
        let mut total = 0;
        for hub in &mut self.hubs {
            if hub.oldest == u32::MAX || !expired(hub.oldest, now_s, aging) {
                continue;
            }
            let before = hub.table.len();
            let mut oldest = u32::MAX;
            hub.table.retain(|_, e| {
                if expired(e.last_seen, now_s, aging) {
                    slots[e.port as usize].mac_count -= 1;
                    false
                } else {
                    oldest = oldest.min(e.last_seen);
                    true
                }
            });
            hub.oldest = oldest;
            total += before - hub.table.len();
        }
        self.stats.aged_out += total as u64;
        total
    }

    /// Entries held by `hub`, including ones that have aged but were not yet
    /// removed by [`expire`](Self::expire) (they count against the cap until
    /// then). 0 for a hub not issued by this fabric.
    pub fn mac_count(&self, hub: HubId) -> usize {
        self.hubs.get(hub.0 as usize).map_or(0, |h| h.table.len())
    }

    /// Entries held for `port`, counted like [`mac_count`](Self::mac_count);
    /// 0 for a stale handle.
    pub fn port_mac_count(&self, port: PortId) -> usize {
        self.live_hub(port)
            .map_or(0, |_| self.slots[port.index as usize].mac_count as usize)
    }

    /// The live (not aged) entries of `hub` as `(mac, port, age in seconds)`,
    /// in no particular order, for the admin API's MAC table. Takes `now`
    /// because the fabric reads no clock. Empty for an unknown hub.
    pub fn entries(
        &self,
        now: Instant,
        hub: HubId,
    ) -> impl Iterator<Item = (Mac, PortId, u32)> + '_ {
        let now_s = self.secs(now);
        let aging = self.aging_secs;
        self.hubs
            .get(hub.0 as usize)
            .into_iter()
            .flat_map(|h| h.table.iter())
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

    /// The hub index of a live port, `None` for a stale or made-up handle.
    #[inline]
    fn live_hub(&self, port: PortId) -> Option<u32> {
        let slot = self.slots.get(port.index as usize)?;
        (slot.generation == port.generation && slot.hub != VACANT).then_some(slot.hub)
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
