//! State shared by all shards: the virtual hubs with their MAC fabrics, the
//! session registry (token → owning shard), and one mailbox per shard.
//!
//! ```text
//!  shard 0 ──► Mailbox[1].frames (ArrayQueue<Batch>) ──► shard 1
//!     ▲                                                     │
//!     └────────── Mailbox[0].free (buffers come back) ◄─────┘
//! ```
//!
//! A fabric is per virtual hub, behind its own mutex, held once per chunk of
//! received plaintext only while `Fabric::forward` learns and looks up each
//! frame: the copies happen after it is released. Sessions are
//! shard-local; what crosses shards is frame batches and control messages,
//! through bounded lock-free queues with one wake per batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crossbeam_queue::{ArrayQueue, SegQueue};
use parking_lot::Mutex;
use switch_core::fabric::{Fabric, FabricConfig, PortId, PortInfo};
use switch_core::offload::Form;
use switch_core::wire::http::SessionToken;
use tokio::sync::Notify;

use crate::bridge::{BridgeSettings, BridgeStatus};
use crate::metrics::Metrics;

/// A virtual hub: its own broadcast domain. The settings a config reload
/// may change are atomics, read at login (never per frame).
pub struct VirtualHub {
    /// Set once: at start for configured hubs, by the reload that adds it
    /// for a spare slot (unset = a spare slot, never used).
    name: OnceLock<String>,
    pub anonymous: AtomicBool,
    /// SoftEther VPN clients are admitted (`softether` in the config).
    pub softether: AtomicBool,
    pub max_sessions: AtomicUsize,
    /// False once a reload removed the hub from the config: new sessions
    /// are refused as for an unknown hub (a reload that brings it back
    /// sets it again).
    pub enabled: AtomicBool,
    pub index: usize,
    /// The hub's MAC fabric: its ports (where each lives, in which form)
    /// and its MAC table. Held only for learn + look up.
    pub fabric: Mutex<Fabric>,
    /// `vhub ctl capture` on this hub (read once per chunk: nobody
    /// capturing costs one relaxed load).
    pub taps: crate::capture::Taps,
    /// The hub's local bridge to a host network, if configured: its
    /// settings, state and counters (the owning shard writes them).
    pub bridge: Mutex<Option<Arc<BridgeStatus>>>,
}

impl VirtualHub {
    /// The hub's name ("" for a spare slot no reload has used yet).
    pub fn name(&self) -> &str {
        self.name.get().map_or("", String::as_str)
    }

    /// Whether a configured hub lives in this slot (now or before a reload
    /// removed it).
    pub fn in_use(&self) -> bool {
        self.name.get().is_some()
    }
}

/// Slots for virtual hubs a config reload may add, beyond the configured
/// ones: every per-hub table (fabrics, shard port lists, metrics) is sized
/// at start, so a reload fills a spare slot instead of resizing them.
pub const SPARE_HUBS: usize = 16;

/// What the registry knows of a session, for resume and admin.
#[derive(Clone, Debug)]
pub struct SessionEntry {
    pub shard: u16,
    pub slot: u32,
    pub hub: usize,
    pub user: String,
}

/// Where a frame in a [`Batch`] goes on the receiving shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// To slot `slot`, if it still holds `port` (the slot may have been
    /// reused since the route was made).
    Unicast { slot: u32, port: PortId },
    /// To every port of virtual hub `hub` on the receiving shard.
    Flood { hub: u32 },
}

/// A batch of frames for another shard. Records of
/// `kind: u32, target: u32, port: u64, len: u32, frame` (native endian,
/// never leaves the process); `push` and `records` are the only code that
/// knows the layout.
pub struct Batch {
    pub buf: Vec<u8>,
    pub frames: u32,
    /// The shard that filled it: the empty buffer goes back there.
    pub from: u16,
}

const KIND_UNICAST: u32 = 0;
const KIND_FLOOD: u32 = 1;
/// Or'ed into the kind: the frame carries a `virtio_net_hdr` (its sender
/// has offload).
const KIND_VNET: u32 = 0x100;
const RECORD_HEADER: usize = 20;
/// Target bytes per batch before it is handed over.
pub const BATCH_BYTES: usize = 64 * 1024;

impl Batch {
    /// Appends one frame, in its sender's `form`, for `target`.
    #[inline]
    pub fn push(&mut self, target: Target, form: Form, frame: &[u8]) {
        let (kind, to, port) = match target {
            Target::Unicast { slot, port } => (KIND_UNICAST, slot, port.to_u64()),
            Target::Flood { hub } => (KIND_FLOOD, hub, 0),
        };
        let kind = kind | if form == Form::Vnet { KIND_VNET } else { 0 };
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&to.to_ne_bytes());
        self.buf.extend_from_slice(&port.to_ne_bytes());
        self.buf
            .extend_from_slice(&(frame.len() as u32).to_ne_bytes());
        self.buf.extend_from_slice(frame);
        self.frames += 1;
    }

    /// Iterates `(target, form, frame)`, in the order pushed.
    pub fn records(&self) -> impl Iterator<Item = (Target, Form, &[u8])> {
        let mut rest = &self.buf[..];
        std::iter::from_fn(move || {
            if rest.len() < RECORD_HEADER {
                return None;
            }
            let u32_at = |i: usize| u32::from_ne_bytes(rest[i..i + 4].try_into().unwrap());
            let port = u64::from_ne_bytes(rest[8..16].try_into().unwrap());
            let (kind, to, len) = (u32_at(0), u32_at(4), u32_at(16) as usize);
            let frame = &rest[RECORD_HEADER..RECORD_HEADER + len];
            rest = &rest[RECORD_HEADER + len..];
            let target = if kind & !KIND_VNET == KIND_FLOOD {
                Target::Flood { hub: to }
            } else {
                Target::Unicast {
                    slot: to,
                    port: PortId::from_u64(port),
                }
            };
            Some((target, Form::of(kind & KIND_VNET != 0), frame))
        })
    }
}

/// Control messages between shards (rare: not the hot path).
pub enum Control {
    /// A client resumed on the wrong shard: the connection moves to the
    /// session's owner, with its TLS state and the parsed request.
    Migrate(Box<crate::shard::Migration>),
    /// Close a session (admin kick, user or hub removed by a reload). The
    /// token guards against a slot reused since the request was made.
    Kick {
        slot: u32,
        token: SessionToken,
        code: switch_core::wire::CloseCode,
        reason: String,
    },
    /// The admin API asks for this shard's sessions.
    Snapshot(std::sync::mpsc::Sender<Vec<crate::admin::SessionInfo>>),
    /// Attach hub `hub` to a host network (a local bridge) on this shard.
    AddBridge {
        hub: usize,
        status: Arc<BridgeStatus>,
    },
    /// Detach hub `hub`'s local bridge (its TAP device is deleted).
    RemoveBridge { hub: usize },
    /// The hub is stopping: close every session with a reason.
    Shutdown,
}

/// One shard's inbox.
pub struct Mailbox {
    pub frames: ArrayQueue<Batch>,
    pub control: SegQueue<Control>,
    /// Empty batch buffers returned to this shard for reuse.
    pub free: ArrayQueue<Vec<u8>>,
    /// Set by the shard before it waits; a sender that swaps it from true
    /// wakes the shard (one wake per batch, none while it is busy).
    pub sleeping: AtomicBool,
    pub notify: Notify,
}

impl Mailbox {
    fn new(capacity: usize) -> Self {
        Self {
            frames: ArrayQueue::new(capacity),
            control: SegQueue::new(),
            free: ArrayQueue::new(capacity),
            sleeping: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// Wakes the shard if it sleeps, after a push. SeqCst pairs with the
    /// sleeper's fence (`mailbox.rs`): either it sees the push, or this
    /// sees it asleep.
    pub fn wake(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }
}

/// Everything shared between shards.
pub struct Switchboard {
    /// The configured hubs, then [`SPARE_HUBS`] spare slots.
    pub hubs: Vec<VirtualHub>,
    hub_by_name: parking_lot::RwLock<HashMap<String, usize>>,
    pub sessions: Mutex<HashMap<SessionToken, SessionEntry>>,
    pub mailboxes: Vec<Mailbox>,
    pub metrics: Metrics,
    pub shutting_down: AtomicBool,
}

/// Batches queued per destination shard before a wake.
const MAILBOX_BATCHES: usize = 256;

/// Empty batch buffers a shard keeps for the next burst once traffic calms
/// down (the pool may hold `MAILBOX_BATCHES`, ~17 MiB, after a storm).
pub const KEEP_FREE_BATCHES: usize = 16;

impl Switchboard {
    pub fn new(
        hubs: &[crate::server::HubSettings],
        fabric: &FabricConfig,
        shards: usize,
        epoch: Instant,
    ) -> Self {
        let slots = hubs.len() + SPARE_HUBS;
        let hubs: Vec<VirtualHub> = (0..slots)
            .map(|index| {
                let h = hubs.get(index);
                let mut cfg = fabric.clone();
                if let Some(h) = h.filter(|h| h.max_macs > 0) {
                    cfg.max_macs_per_hub = h.max_macs;
                }
                let fabric = Fabric::new(cfg, epoch);
                let name = OnceLock::new();
                if let Some(h) = h {
                    let _ = name.set(h.name.clone());
                }
                VirtualHub {
                    name,
                    anonymous: AtomicBool::new(h.is_some_and(|h| h.anonymous)),
                    softether: AtomicBool::new(h.is_some_and(|h| h.softether)),
                    max_sessions: AtomicUsize::new(h.map_or(0, |h| h.max_sessions)),
                    enabled: AtomicBool::new(h.is_some()),
                    index,
                    fabric: Mutex::new(fabric),
                    taps: Default::default(),
                    bridge: Mutex::new(None),
                }
            })
            .collect();
        let hub_by_name = hubs
            .iter()
            .filter(|h| h.in_use())
            .map(|h| (h.name().to_owned(), h.index))
            .collect();
        Self {
            metrics: Metrics::new(slots, shards),
            hubs,
            hub_by_name: parking_lot::RwLock::new(hub_by_name),
            sessions: Mutex::new(HashMap::new()),
            mailboxes: (0..shards).map(|_| Mailbox::new(MAILBOX_BATCHES)).collect(),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// Adds a port (a new session) to `hub`'s fabric.
    pub fn add_port(&self, hub: usize, info: PortInfo) -> PortId {
        self.hubs[hub].fabric.lock().add_port(info)
    }

    /// Removes a port and its MAC entries (a stale handle is a no-op).
    pub fn remove_port(&self, hub: usize, port: PortId) {
        self.hubs[hub].fabric.lock().remove_port(port);
    }

    /// The index of a virtual hub that takes new sessions.
    pub fn enabled_hub(&self, name: &str) -> Option<usize> {
        let i = self.hub_index(name)?;
        self.hubs[i].enabled.load(Ordering::Acquire).then_some(i)
    }

    /// The slot of the hub of that name, enabled or not.
    pub fn hub_index(&self, name: &str) -> Option<usize> {
        self.hub_by_name.read().get(name).copied()
    }

    /// Puts a hub that a config reload added into a spare slot and enables
    /// it. `None` when every spare slot is taken (a restart is needed).
    pub fn add_hub(&self, h: &crate::server::HubSettings) -> Option<usize> {
        let mut by_name = self.hub_by_name.write();
        if let Some(&i) = by_name.get(&h.name) {
            return Some(i);
        }
        let slot = self
            .hubs
            .iter()
            .find(|v| v.name.set(h.name.clone()).is_ok())?;
        slot.anonymous.store(h.anonymous, Ordering::Relaxed);
        slot.softether.store(h.softether, Ordering::Relaxed);
        slot.max_sessions.store(h.max_sessions, Ordering::Relaxed);
        slot.enabled.store(true, Ordering::Release);
        by_name.insert(h.name.clone(), slot.index);
        Some(slot.index)
    }

    /// Asks the shard that owns `token`'s session to close it with a CLOSE
    /// carrying `code` and `reason`. False when no such session exists.
    pub fn kick(
        &self,
        token: &SessionToken,
        code: switch_core::wire::CloseCode,
        reason: &str,
    ) -> bool {
        let Some(e) = self.sessions.lock().get(token).cloned() else {
            return false;
        };
        let mb = &self.mailboxes[e.shard as usize];
        mb.control.push(Control::Kick {
            slot: e.slot,
            token: *token,
            code,
            reason: reason.to_owned(),
        });
        mb.wake();
        true
    }

    /// Attaches, changes or detaches hub `hub`'s local bridge (start and
    /// reload). The bridge lives on shard `hub % shards`; a change is a
    /// detach then an attach, in that order through that shard's control
    /// queue. Sessions are not touched. Returns whether anything changed.
    pub fn set_bridge(&self, hub: usize, settings: Option<BridgeSettings>) -> bool {
        let mut cur = self.hubs[hub].bridge.lock();
        if cur.as_ref().map(|b| &b.settings) == settings.as_ref() {
            return false;
        }
        let shard = (hub % self.mailboxes.len()) as u16;
        let mb = &self.mailboxes[usize::from(shard)];
        if cur.take().is_some() {
            mb.control.push(Control::RemoveBridge { hub });
        }
        if let Some(s) = settings {
            let status = Arc::new(BridgeStatus::new(s, shard));
            *cur = Some(status.clone());
            mb.control.push(Control::AddBridge { hub, status });
        }
        mb.wake();
        true
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_records_come_back_as_pushed() {
        let mut b = Batch {
            buf: Vec::new(),
            frames: 0,
            from: 1,
        };
        let port = PortId::from_raw(7, 3);
        b.push(Target::Unicast { slot: 9, port }, Form::Vnet, b"abc");
        b.push(Target::Flood { hub: 2 }, Form::Plain, b"");
        b.push(Target::Flood { hub: 0 }, Form::Vnet, &[0xff; 70]);
        let got: Vec<_> = b.records().collect();
        assert_eq!(b.frames, 3);
        assert_eq!(
            got,
            vec![
                (Target::Unicast { slot: 9, port }, Form::Vnet, &b"abc"[..]),
                (Target::Flood { hub: 2 }, Form::Plain, &b""[..]),
                (Target::Flood { hub: 0 }, Form::Vnet, &[0xff; 70][..]),
            ]
        );
    }
}
