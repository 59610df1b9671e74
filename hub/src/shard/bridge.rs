//! A local bridge on this shard: a fabric port (`PortKind::Bridge`) whose
//! far end is a TAP device the hub made and enslaved to a Linux bridge, or
//! a packet socket on an interface (`crate::bridge`). It is switched like
//! a session: frames read from the device go through `switch_frames` and
//! `finish_round` as a session reader's chunk does; frames the fabric
//! routes to it are queued by `deliver` (offload form, a bounded queue,
//! tail drop counted) and written by its task. The fabric never routes a frame back to its ingress port, so a
//! frame from the host network never goes back out of the bridge.
//!
//! One task per bridge, on the shard's runtime: the device's descriptor is
//! non-blocking and waited on with tokio's `AsyncFd`, which both backends
//! run (tokio-uring drives a tokio current-thread runtime). Readiness
//! futures may be dropped at any time, so one `select!` serves reading,
//! writing, the periodic check of the Linux bridge and the stop.
//!
//! ```text
//!  host LAN ─► Linux bridge ─► TAP ─► run_tap: read ≤64 frames ─► switch_frames ─► sessions
//!  sessions ─► deliver ─► BridgePort::queue_frame ─► (dirty → wake) ─► run_tap: write each frame ─► TAP
//! ```
//!
//! The Linux bridge missing (at start or later) or down is not fatal: the
//! state says so (`vhub ctl hubs`, one warning per change), frames for it
//! are dropped and counted, and the TAP is attached again when the bridge
//! is back (checked every [`CHECK_EVERY`]).

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switch_core::fabric::{PortId, PortInfo};
use switch_core::offload::{self, Form};
use switch_core::wire::http::SessionToken;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::deliver::Ingress;
use super::{Endpoint, Shard, Slot, State_};
use crate::bridge::{self as host, BridgeStatus, PacketPort, Tap};
use crate::config::BridgeMode;
use crate::metrics::Local;
use crate::net::Backend;

/// Bytes of frames queued for the host network; past it new frames are
/// tail-dropped (counted), as a session's full ring does. As much as an
/// offload session holds (`offload::OFFLOAD_BUFFER_BYTES`): one offload
/// sender's burst of 64 KiB super frames, cut to plain frames, fits.
const QUEUE_BYTES: usize = offload::OFFLOAD_BUFFER_BYTES;
/// Frames read from the TAP per round (one fabric lock per round).
const READ_BATCH: usize = 64;
/// The read buffer of one round, and the room one frame needs in it: the
/// largest frame taken from the host network (jumbo frames fit).
const READ_BUFFER: usize = 512 * 1024;
const FRAME_ROOM: usize = offload::MAX_VNET_FRAME as usize;
/// The form of the device's frames, both modes: behind a `virtio_net_hdr`
/// (`IFF_VNET_HDR` on the TAP, `PACKET_VNET_HDR` on the packet socket),
/// so TCP super frames cross whole, as between offload sessions.
const DEVICE_FORM: Form = Form::Vnet;
/// How often the TAP's place on the Linux bridge is checked (and taken
/// again after the bridge came back), and the retry of a failed start.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// A record in the queue: the frame's length, native endian.
const LEN: usize = 4;

/// Shared by the slot (delivery) and the bridge's task.
struct BridgeIo {
    /// Frames queued, or stop: the task looks.
    wake: Notify,
    stop: Cell<bool>,
}

/// The bridge end of a slot: what `deliver` needs.
pub(super) struct BridgePort {
    pub status: Arc<BridgeStatus>,
    io: Rc<BridgeIo>,
    /// Frames for the host network: `len: u32, frame` records, swapped
    /// out whole by the task.
    queue: Vec<u8>,
    /// The form of the device's frames ([`DEVICE_FORM`]; a field so the
    /// tests can queue plain too).
    form: Form,
    max_frame: usize,
}

impl BridgePort {
    /// Queues `frame` (in form `from`) for the host network, in the
    /// device's form (`offload::convert`: a plain frame gets a zero
    /// header; an offload super frame crosses whole). Dropped and
    /// counted when the TAP is not on the bridge or the queue is full.
    /// True when something was queued.
    pub fn queue_frame(
        &mut self,
        frame: &[u8],
        from: Form,
        scratch: &mut Vec<u8>,
        c: &mut Local,
    ) -> bool {
        if !self.status.up.load(Relaxed) {
            self.status.dropped.fetch_add(1, Relaxed);
            return false;
        }
        let queue = &mut self.queue;
        let (mut queued, mut full) = (false, 0u64);
        let done = offload::convert(frame, from, self.form, self.max_frame, scratch, |f| {
            if queue.len() + LEN + f.len() > QUEUE_BYTES {
                full += 1;
                return;
            }
            queue.extend_from_slice(&(f.len() as u32).to_ne_bytes());
            queue.extend_from_slice(f);
            c.frames_out += 1;
            c.bytes_out += f.len() as u64;
            queued = true;
        });
        match done {
            Ok(d) if d.cut => c.gso_segments += d.frames as u64,
            Ok(_) => {}
            Err(_) => c.drop_bad_offload += 1,
        }
        if full > 0 {
            c.drop_queue_full += full;
            self.status.dropped.fetch_add(full, Relaxed);
        }
        queued
    }

    /// Wakes the task (frames were queued).
    pub fn wake(&self) {
        self.io.wake.notify_one();
    }
}

/// Why a running TAP was given up (the task makes a new one).
enum Ended {
    Stopped,
    Failed(io::Error),
}

impl<B: Backend> Shard<B> {
    /// `Control::AddBridge`: a slot and a fabric port for the bridge, and
    /// its task. Sessions are not touched.
    pub(super) fn add_bridge(self: &Rc<Self>, hub: usize, status: Arc<BridgeStatus>) {
        let io = Rc::new(BridgeIo {
            wake: Notify::new(),
            stop: Cell::new(false),
        });
        let (slot, port) = {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            // One bridge per hub: an old one still here is replaced.
            if let Some(old) = bridge_slot(st, hub) {
                self.remove_bridge_slot(st, old);
            }
            let entry = st.slots.vacant_entry();
            let slot = entry.key() as u32;
            let info = PortInfo::bridge(self.id, slot, DEVICE_FORM, status.settings.max_macs);
            let port = self.sb.add_port(hub, info);
            entry.insert(Slot {
                endpoint: Endpoint::Bridge(Box::new(BridgePort {
                    status: status.clone(),
                    io: io.clone(),
                    queue: Vec::new(),
                    form: DEVICE_FORM,
                    max_frame: self.ctx.settings.session.limits.max_frame as usize,
                })),
                hub,
                port,
                token: SessionToken([0; 16]),
                user: String::new(),
                conn: None,
                detached: false,
                dirty: false,
                peer: ([0, 0, 0, 0], 0).into(),
                buffered: 0,
            });
            st.local.add(hub, slot);
            (slot, port)
        };
        let s = &status.settings;
        info!(hub = %self.sb.hubs[hub].name(), bridge = %s.interface, tap = %s.tap, shard = self.id, "local bridge added");
        B::spawn(self.clone().run_bridge(hub, slot, port, io, status));
    }

    /// `Control::RemoveBridge`: the port goes at once (no frame is routed
    /// to it after this); the task ends and the TAP device is deleted.
    pub(super) fn remove_bridge(&self, hub: usize) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        if let Some(slot) = bridge_slot(st, hub) {
            self.remove_bridge_slot(st, slot);
        }
    }

    /// Takes a bridge's slot out of the fabric and this shard, and stops
    /// its task.
    pub(super) fn remove_bridge_slot(&self, st: &mut State_<B::Stream>, slot: u32) {
        if !st.slots.get(slot as usize).is_some_and(Slot::is_bridge) {
            return;
        }
        let s = st.slots.remove(slot as usize);
        self.sb.remove_port(s.hub, s.port);
        st.local.remove(s.hub, slot);
        if let Endpoint::Bridge(b) = s.endpoint {
            b.io.stop.set(true);
            b.io.wake.notify_one();
            let set = &b.status.settings;
            info!(hub = %self.sb.hubs[s.hub].name(), bridge = %set.interface, tap = %set.tap, "local bridge removed");
        }
    }

    /// The bridge's task: make the TAP and attach it, move frames until
    /// stopped; when the TAP cannot be made or attached, say why (once)
    /// and try again every [`CHECK_EVERY`].
    async fn run_bridge(
        self: Rc<Self>,
        hub: usize,
        slot: u32,
        port: PortId,
        io: Rc<BridgeIo>,
        status: Arc<BridgeStatus>,
    ) {
        let name = self.sb.hubs[hub].name().to_owned();
        let set = &status.settings;
        while !io.stop.get() {
            let opened = match set.mode {
                BridgeMode::Tap => Tap::open(set).map(|t| (t.fd, None)),
                BridgeMode::Packet => PacketPort::open(set).map(|p| (p.fd, Some(p.ifindex))),
            };
            let why = match opened.map_err(|e| e.to_string()).and_then(|(dev, bound)| {
                let ctl = host::control_socket().map_err(|e| e.to_string())?;
                // SAFETY: an OwnedFd is a valid, open descriptor, and it stays
                // open (owned by the AsyncFd) until the AsyncFd is dropped.
                let fd = unsafe { AsyncFd::register(dev) }.map_err(|e| e.to_string())?;
                Ok((fd, ctl, bound))
            }) {
                Ok((fd, ctl, bound)) => {
                    let tap = &set.tap;
                    status.attaches.fetch_add(1, Relaxed);
                    status.set_state(true, "up");
                    match bound {
                        None => {
                            info!(hub = %name, bridge = %set.interface, %tap, "local bridge up: the TAP device is a port of the Linux bridge")
                        }
                        Some(_) => {
                            info!(hub = %name, interface = %set.interface, "local bridge up: a packet socket on the interface")
                        }
                    }
                    match self
                        .run_device(slot, port, &io, &status, &fd, &ctl, bound)
                        .await
                    {
                        Ended::Stopped => break,
                        // Dropping `fd` deletes the device; a new one is made.
                        Ended::Failed(e) => format!("the device failed: {e}"),
                    }
                }
                Err(e) => e,
            };
            if status.set_state(false, &format!("waiting: {why}")) {
                warn!(hub = %name, bridge = %set.interface, "local bridge not attached: {why}; sessions carry on, retrying every {CHECK_EVERY:?}");
            }
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = io.wake.notified() => {}
            }
        }
        status.set_state(false, "removed");
    }

    /// Moves frames between the device (TAP, or a packet socket bound to
    /// interface index `bound`) and the fabric until stopped or the device
    /// fails. Checks the host side every [`CHECK_EVERY`].
    #[allow(clippy::too_many_arguments)]
    async fn run_device(
        &self,
        slot: u32,
        port: PortId,
        io: &BridgeIo,
        status: &BridgeStatus,
        fd: &AsyncFd<OwnedFd>,
        ctl: &OwnedFd,
        bound: Option<libc::c_int>,
    ) -> Ended {
        let raw = fd.get_ref().as_raw_fd();
        let mut buf: Vec<u8> = Vec::with_capacity(READ_BUFFER);
        let mut spans: Vec<(u32, u32)> = Vec::new();
        let mut out: Vec<u8> = Vec::new();
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if io.stop.get() {
                return Ended::Stopped;
            }
            self.write_queued(slot, port, raw, &mut out, status);
            tokio::select! {
                biased;
                ready = fd.readable() => {
                    let mut guard = match ready {
                        Ok(g) => g,
                        Err(e) => return Ended::Failed(e),
                    };
                    match read_round(raw, &mut buf, &mut spans, FRAME_ROOM) {
                        Ok(true) => guard.clear_ready(),
                        Ok(false) => {}
                        Err(e) => return Ended::Failed(e),
                    }
                    if !self.switch_round(slot, port, DEVICE_FORM, &buf, &spans, status) {
                        return Ended::Stopped;
                    }
                }
                _ = io.wake.notified() => {}
                _ = check.tick() => match bound {
                    None => check_bridge(ctl, status),
                    Some(index) => {
                        if let Err(e) = check_interface(ctl, status, index) {
                            return Ended::Failed(e);
                        }
                    }
                },
            }
        }
    }

    /// Frames read from the TAP: through the fabric like a session's chunk.
    /// False when the slot is no longer this bridge's.
    fn switch_round(
        &self,
        slot: u32,
        port: PortId,
        form: Form,
        buf: &[u8],
        spans: &[(u32, u32)],
        status: &BridgeStatus,
    ) -> bool {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(s) = st.slots.get(slot as usize).filter(|s| s.port == port) else {
            return false;
        };
        if spans.is_empty() {
            return true;
        }
        let from = Ingress {
            hub: s.hub,
            slot,
            port,
            form,
        };
        status.frames_in.fetch_add(spans.len() as u64, Relaxed);
        self.switch_frames(st, from, Instant::now(), buf, spans);
        self.finish_round(st);
        true
    }

    /// Takes the bridge's queue (leaving `out`'s empty buffer in its place)
    /// and writes each frame to the TAP. A frame the TAP refuses (its
    /// device set down, its queue full) is dropped and counted.
    fn write_queued(
        &self,
        slot: u32,
        port: PortId,
        raw: i32,
        out: &mut Vec<u8>,
        status: &BridgeStatus,
    ) {
        {
            let mut st = self.st.borrow_mut();
            match st.slots.get_mut(slot as usize) {
                Some(s) if s.port == port => match &mut s.endpoint {
                    Endpoint::Bridge(b) => std::mem::swap(&mut b.queue, out),
                    Endpoint::Session(_) | Endpoint::SoftEther(_) => return,
                },
                _ => return,
            }
        }
        let (mut sent, mut dropped) = (0u64, 0u64);
        let mut rest = &out[..];
        while rest.len() >= LEN {
            let len = u32::from_ne_bytes(rest[..LEN].try_into().expect("4 bytes")) as usize;
            let frame = &rest[LEN..LEN + len];
            rest = &rest[LEN + len..];
            match host::write_frame(raw, frame) {
                Ok(()) => sent += 1,
                Err(_) => dropped += 1,
            }
        }
        out.clear();
        status.frames_out.fetch_add(sent, Relaxed);
        if dropped > 0 {
            status.dropped.fetch_add(dropped, Relaxed);
        }
    }
}

/// The periodic check: the TAP still a port of the Linux bridge (added
/// again when the bridge came back), the bridge up. Logs changes only.
fn check_bridge(ctl: &OwnedFd, status: &BridgeStatus) {
    let (bridge, tap) = (&status.settings.interface, &status.settings.tap);
    let (up, state) = match host::attach(ctl, tap, bridge) {
        Err(e) => (false, format!("waiting: {e}")),
        Ok(()) => match host::link_up(ctl, bridge) {
            Some(false) => (false, format!("down: the Linux bridge {bridge} is down")),
            _ => (true, "up".to_owned()),
        },
    };
    let was_up = status.up.load(Relaxed);
    if status.set_state(up, &state) {
        if up {
            if !was_up {
                status.attaches.fetch_add(1, Relaxed);
            }
            info!(%bridge, %tap, "local bridge up again");
        } else {
            warn!(%bridge, %tap, "local bridge {state}; frames for it are dropped until it is back");
        }
    }
}

/// The periodic check of a packet socket's interface: still there under
/// the same index (else the socket is dead: an error makes a new one),
/// and up.
fn check_interface(ctl: &OwnedFd, status: &BridgeStatus, bound: libc::c_int) -> io::Result<()> {
    let iface = &status.settings.interface;
    if host::index_of(ctl, iface) != Some(bound) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {iface} went away"),
        ));
    }
    let (up, state) = match host::link_up(ctl, iface) {
        Some(false) => (false, format!("down: interface {iface} is down")),
        _ => (true, "up".to_owned()),
    };
    if status.set_state(up, &state) {
        if up {
            status.attaches.fetch_add(1, Relaxed);
            info!(interface = %iface, "local bridge up again");
        } else {
            warn!(interface = %iface, "local bridge {state}; frames for it are dropped until it is back");
        }
    }
    Ok(())
}

/// The slot of hub `hub`'s bridge on this shard.
fn bridge_slot<S>(st: &State_<S>, hub: usize) -> Option<u32> {
    st.slots
        .iter()
        .find(|(_, s)| s.hub == hub && s.is_bridge())
        .map(|(k, _)| k as u32)
}

/// Reads up to [`READ_BATCH`] frames into `buf` (their spans in `spans`).
/// `Ok(true)` when the TAP has nothing more to read (readiness is used up).
fn read_round(
    raw: i32,
    buf: &mut Vec<u8>,
    spans: &mut Vec<(u32, u32)>,
    room: usize,
) -> io::Result<bool> {
    buf.clear();
    spans.clear();
    while spans.len() < READ_BATCH && buf.capacity() - buf.len() >= room {
        let at = buf.len();
        match host::read_into(raw, buf, room) {
            Ok(0) => return Ok(true),
            Ok(n) => spans.push((at as u32, n as u32)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A packet socket reports its interface going down once; the
            // periodic check says so, the socket stays good.
            Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::BridgeSettings;

    fn port(up: bool) -> BridgePort {
        let status = Arc::new(BridgeStatus::new(
            BridgeSettings {
                interface: "br-test".into(),
                tap: "vh-test".into(),
                mode: BridgeMode::Tap,
                max_macs: 10,
            },
            0,
        ));
        status.set_state(up, if up { "up" } else { "waiting" });
        BridgePort {
            status,
            io: Rc::new(BridgeIo {
                wake: Notify::new(),
                stop: Cell::new(false),
            }),
            queue: Vec::new(),
            form: Form::Plain,
            max_frame: 1514,
        }
    }

    fn frames(queue: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = queue;
        while rest.len() >= LEN {
            let len = u32::from_ne_bytes(rest[..LEN].try_into().unwrap()) as usize;
            out.push(&rest[LEN..LEN + len]);
            rest = &rest[LEN + len..];
        }
        out
    }

    #[test]
    fn frames_are_queued_plain_and_tail_dropped_when_full() {
        let mut b = port(true);
        let (mut scratch, mut c) = (Vec::new(), Local::default());
        let frame = [0x5a; 60];
        assert!(b.queue_frame(&frame, Form::Plain, &mut scratch, &mut c));
        // An offload sender's frame loses its (plain) virtio_net_hdr.
        let mut vnet = vec![0u8; offload::VNET_HDR_LEN];
        vnet.extend_from_slice(&frame);
        assert!(b.queue_frame(&vnet, Form::Vnet, &mut scratch, &mut c));
        assert_eq!(frames(&b.queue), vec![&frame[..], &frame[..]]);
        assert_eq!((c.frames_out, c.bytes_out), (2, 120));
        // Fill the queue: the rest is tail-dropped and counted.
        let big = [0x11; 1500];
        let mut queued = 0;
        for _ in 0..(QUEUE_BYTES / 1500 + 10) {
            queued += usize::from(b.queue_frame(&big, Form::Plain, &mut scratch, &mut c));
        }
        assert!(b.queue.len() <= QUEUE_BYTES);
        assert_eq!(
            queued as u64 + c.drop_queue_full,
            (QUEUE_BYTES / 1500 + 10) as u64
        );
        assert!(c.drop_queue_full > 0);
        assert_eq!(b.status.counters().2, c.drop_queue_full);
    }

    #[test]
    fn a_plain_frame_gets_a_zero_header_for_the_device() {
        let mut b = port(true);
        b.form = DEVICE_FORM;
        let (mut scratch, mut c) = (Vec::new(), Local::default());
        let frame = [0x5a; 60];
        assert!(b.queue_frame(&frame, Form::Plain, &mut scratch, &mut c));
        let mut want = vec![0u8; offload::VNET_HDR_LEN];
        want.extend_from_slice(&frame);
        assert_eq!(frames(&b.queue), vec![&want[..]]);
    }

    /// A shard's state with hub 0's bridge in slot 0 and nothing else.
    fn state_with_bridge(up: bool) -> State_<()> {
        let mut b = port(up);
        b.form = DEVICE_FORM;
        let mut st = State_ {
            slots: slab::Slab::new(),
            local: switch_core::fabric::LocalPorts::new(1),
            outbox: Vec::new(),
            to_wake: Vec::new(),
            dirty: Vec::new(),
            spans: Vec::new(),
            routes: Vec::new(),
            scratch: Vec::new(),
            buffered: 0,
            buffer_budget: usize::MAX,
            counters: Local::default(),
            handshakes: 0,
            next_conn_id: 0,
            writers: 0,
        };
        let slot = st.slots.insert(Slot {
            endpoint: Endpoint::Bridge(Box::new(b)),
            hub: 0,
            port: PortId::from_raw(0, 0),
            token: SessionToken([0; 16]),
            user: String::new(),
            conn: None,
            detached: false,
            dirty: false,
            peer: ([0, 0, 0, 0], 0).into(),
            buffered: 0,
        });
        st.local.add(0, slot as u32);
        st
    }

    fn queued(st: &State_<()>) -> Vec<Vec<u8>> {
        match &st.slots[0].endpoint {
            Endpoint::Bridge(b) => frames(&b.queue).into_iter().map(<[u8]>::to_vec).collect(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn deliver_and_flood_reach_a_bridge_endpoint_but_never_its_own_frames() {
        use super::super::deliver::{deliver, flood_here};
        let mut st = state_with_bridge(true);
        let frame = [0x5a; 60];
        let mut want = vec![0u8; offload::VNET_HDR_LEN];
        want.extend_from_slice(&frame);
        // Unicast to the bridge's slot: queued in the device's form, the
        // slot marked dirty once (finish_round wakes its task).
        deliver(&mut st, 0, &frame, Form::Plain);
        assert_eq!(queued(&st), vec![want.clone()]);
        assert!(st.slots[0].dirty);
        assert_eq!(st.dirty, vec![0]);
        // A flood from another port reaches it; dirty is not listed twice.
        flood_here(&mut st, 0, None, &frame, Form::Plain);
        assert_eq!(queued(&st).len(), 2);
        assert_eq!(st.dirty, vec![0]);
        // A flood that came in through the bridge never goes back out.
        flood_here(&mut st, 0, Some(0), &frame, Form::Plain);
        assert_eq!(queued(&st).len(), 2);
        assert_eq!((st.counters.frames_out, st.counters.bytes_out), (2, 140));
        // A bridge that is not attached takes nothing and wakes nobody.
        let mut st = state_with_bridge(false);
        deliver(&mut st, 0, &frame, Form::Plain);
        assert!(queued(&st).is_empty() && st.dirty.is_empty());
    }

    #[test]
    fn nothing_is_queued_while_the_tap_is_not_on_the_bridge() {
        let mut b = port(false);
        let (mut scratch, mut c) = (Vec::new(), Local::default());
        assert!(!b.queue_frame(&[0x5a; 60], Form::Plain, &mut scratch, &mut c));
        assert!(b.queue.is_empty());
        assert_eq!(b.status.counters(), (0, 0, 1));
    }
}
