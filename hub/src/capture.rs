//! `vhub ctl capture`: the frames of a virtual hub as pcapng, for tcpdump
//! and Wireshark.
//!
//! ```text
//!  shard: switch_frames ──(Taps::active? one relaxed load per chunk)──► Capture::offer
//!          session filter, BPF filter (libpcap), snaplen copy ──► bounded queue
//!  admin thread: Capture::pop ──► pcapng (one interface per port) ──► admin socket ──► vhub ctl ──► stdout
//! ```
//!
//! Every frame is captured once, where it enters the fabric (on the shard
//! of its ingress port), on the pcapng interface of that port. With
//! `--session ID` the capture keeps what a `tcpdump -i` on that session's
//! port would see: the frames it sent and the frames the fabric sends to
//! it (unicast to it, and floods).
//!
//! What it costs:
//! - nobody captures: one relaxed atomic load per input chunk;
//! - someone captures: per frame, the filters and, for a frame kept, one
//!   copy (up to the snap length) into a bounded queue. A reader that
//!   does not keep up loses capture frames, counted
//!   (`vhub_capture_frames_total{result="dropped"}`); the hub's own frames
//!   never wait for it.
//!
//! Offload super frames (a `virtio_net_hdr` and up to 64 KiB of TCP) are
//! shown as `tcpdump` on the sender's TAP device shows them: the header
//! stripped, one large packet before segmentation.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use switch_core::fabric::{PortId, PortKind};
use switch_core::offload::Form;

use crate::switchboard::{Switchboard, VirtualHub};

/// Captures running at once on one virtual hub.
pub const MAX_PER_HUB: usize = 4;
/// The default and the largest snap length (as tcpdump's default).
pub const MAX_SNAPLEN: u32 = 262_144;
/// The queue between the shards and the reader: whichever fills first.
const QUEUE_FRAMES: usize = 8192;
const QUEUE_BYTES: usize = 16 << 20;
/// How long the writer sleeps when the queue is empty.
const IDLE: Duration = Duration::from_millis(5);

/// A virtual hub's running captures.
#[derive(Default)]
pub struct Taps {
    /// How many captures run: the frame path reads only this when none do.
    active: AtomicUsize,
    list: Mutex<Arc<[Arc<Capture>]>>,
}

impl Taps {
    /// Whether anyone captures on this hub (one relaxed load).
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Relaxed) != 0
    }

    /// The running captures (an `Arc` clone under a short lock).
    pub fn list(&self) -> Arc<[Arc<Capture>]> {
        self.list.lock().clone()
    }

    fn add(&self, c: Arc<Capture>) -> Result<(), String> {
        let mut list = self.list.lock();
        if list.len() >= MAX_PER_HUB {
            return Err(format!(
                "{MAX_PER_HUB} captures already run on this hub: stop one first"
            ));
        }
        *list = list.iter().cloned().chain([c]).collect();
        self.active.store(list.len(), Relaxed);
        Ok(())
    }

    fn remove(&self, c: &Arc<Capture>) {
        let mut list = self.list.lock();
        *list = list
            .iter()
            .filter(|x| !Arc::ptr_eq(x, c))
            .cloned()
            .collect();
        self.active.store(list.len(), Relaxed);
    }
}

/// Where the fabric sends a frame, as far as a session filter cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// To one port.
    Port(PortId),
    /// To every port of the hub but the ingress.
    Flood,
    /// Nowhere (dropped, or back to its own port).
    None,
}

/// One capture: its filters and the queue its reader drains.
pub struct Capture {
    /// `--session`: only what that port sends or receives.
    port: Option<PortId>,
    /// A compiled BPF program (libpcap's compiler). `BpfProgram` is `Send`
    /// but not `Sync`: shards take turns, only while capturing.
    filter: Option<Mutex<pcap::BpfProgram>>,
    snaplen: u32,
    queue: ArrayQueue<Captured>,
    queued_bytes: AtomicUsize,
    /// Frames lost because the reader was behind.
    pub dropped: AtomicU64,
}

/// A captured frame, as the queue carries it.
pub struct Captured {
    /// Since the Unix epoch.
    pub time: Duration,
    /// The port it entered the fabric from.
    pub ingress: PortId,
    pub original_len: u32,
    pub data: Vec<u8>,
}

impl Capture {
    /// A capture keeping frames of `port` (all if `None`) that pass
    /// `filter` (pcap-filter(7) syntax), cut to `snaplen` bytes.
    pub fn new(port: Option<PortId>, filter: Option<&str>, snaplen: u32) -> Result<Self, String> {
        let filter = match filter.map(str::trim).filter(|f| !f.is_empty()) {
            None => None,
            Some(expr) => Some(Mutex::new(compile(expr)?)),
        };
        Ok(Capture {
            port,
            filter,
            snaplen: snaplen.clamp(64, MAX_SNAPLEN),
            queue: ArrayQueue::new(QUEUE_FRAMES),
            queued_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Whether the session filter keeps a frame from `ingress` going to `to`.
    pub fn wants(&self, ingress: PortId, to: Egress) -> bool {
        match self.port {
            None => true,
            Some(p) => p == ingress || to == Egress::Flood || to == Egress::Port(p),
        }
    }

    /// Offers one frame (in `form`) to this capture: filtered, copied and
    /// queued, or counted as dropped when the queue is full (then returns
    /// true). Never blocks.
    pub fn offer(
        &self,
        time: Duration,
        ingress: PortId,
        to: Egress,
        form: Form,
        frame: &[u8],
    ) -> bool {
        if !self.wants(ingress, to) {
            return false;
        }
        let Some(eth) = frame.get(form.header_len()..) else {
            return false;
        };
        if let Some(f) = &self.filter {
            if !f.lock().filter(eth) {
                return false;
            }
        }
        let keep = eth.len().min(self.snaplen as usize);
        if self.queued_bytes.load(Relaxed) + keep > QUEUE_BYTES {
            self.dropped.fetch_add(1, Relaxed);
            return true;
        }
        let item = Captured {
            time,
            ingress,
            original_len: eth.len() as u32,
            data: eth[..keep].to_vec(),
        };
        self.queued_bytes.fetch_add(keep, Relaxed);
        if self.queue.push(item).is_err() {
            self.queued_bytes.fetch_sub(keep, Relaxed);
            self.dropped.fetch_add(1, Relaxed);
            return true;
        }
        false
    }

    /// The oldest queued frame.
    pub fn pop(&self) -> Option<Captured> {
        let c = self.queue.pop()?;
        self.queued_bytes.fetch_sub(c.data.len(), Relaxed);
        Some(c)
    }
}

/// Compiles a pcap-filter(7) expression for Ethernet frames with libpcap.
pub fn compile(expr: &str) -> Result<pcap::BpfProgram, String> {
    let dead =
        pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(|e| format!("libpcap: {e}"))?;
    dead.compile(expr, true)
        .map_err(|e| format!("bad filter {expr:?}: {e}"))
}

/// Offers the frames of one input chunk to every capture of `taps`. `to`
/// says where each frame goes; frames lost to slow readers are added to
/// `lost` (the hub's metric).
pub fn offer_chunk<'a>(
    taps: &Taps,
    ingress: PortId,
    form: Form,
    frames: impl Iterator<Item = (&'a [u8], Egress)>,
    lost: &AtomicU64,
) {
    let list = taps.list();
    let mut dropped = 0;
    for (frame, to) in frames {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        for c in list.iter() {
            dropped += u64::from(c.offer(time, ingress, to, form, frame));
        }
    }
    if dropped > 0 {
        lost.fetch_add(dropped, Relaxed);
    }
}

/// What `vhub ctl capture` asks for.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub hub: String,
    pub session: Option<String>,
    pub count: Option<u64>,
    pub snaplen: Option<u32>,
    pub filter: Option<String>,
}

/// A capture ready to stream: checked and registered on its hub (removed
/// again when dropped).
pub struct Running<'a> {
    hub: &'a VirtualHub,
    capture: Arc<Capture>,
    count: Option<u64>,
    /// The pcapng interface of each port seen so far.
    interfaces: HashMap<PortId, u32>,
    /// Frames written.
    pub written: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.hub.taps.remove(&self.capture);
    }
}

/// Checks a capture request (hub, session, filter) and registers it.
pub fn start<'a>(sb: &'a Switchboard, req: &Request) -> Result<Running<'a>, String> {
    let hub = sb
        .hubs
        .iter()
        .find(|h| h.in_use() && h.name() == req.hub)
        .ok_or_else(|| format!("no virtual hub {:?} (see `vhub ctl hubs`)", req.hub))?;
    let port = match &req.session {
        None => None,
        Some(id) => Some(session_port(sb, hub, id)?),
    };
    let capture = Arc::new(Capture::new(
        port,
        req.filter.as_deref(),
        req.snaplen.unwrap_or(MAX_SNAPLEN),
    )?);
    hub.taps.add(capture.clone())?;
    Ok(Running {
        hub,
        capture,
        count: req.count,
        interfaces: HashMap::new(),
        written: 0,
    })
}

/// The fabric port of the session whose id starts with `id`, on `hub`.
fn session_port(sb: &Switchboard, hub: &VirtualHub, id: &str) -> Result<PortId, String> {
    let (_, e) = crate::admin::find_session(sb, id, Some(hub.index))
        .map_err(|e| format!("{e} on hub {}", hub.name()))?;
    let loc = (e.shard, e.slot);
    hub.fabric
        .lock()
        .ports()
        .find(|(_, p)| (p.loc.shard, p.loc.slot) == loc)
        .map(|(id, _)| id)
        .ok_or_else(|| format!("session {id} has no port on hub {}", hub.name()))
}

/// Why a capture stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// `--count` frames written.
    Count,
    /// The reader went away (or the socket failed).
    Reader,
}

impl Running<'_> {
    /// Streams pcapng to `out` until `--count` frames are written or the
    /// reader goes away. Runs on the admin connection's thread.
    pub fn stream(&mut self, sb: &Switchboard, out: UnixStream) -> End {
        let fd = out.as_raw_fd();
        match PcapNgWriter::new(std::io::BufWriter::new(out)) {
            Ok(mut w) => self.pump(sb, &mut w, fd),
            Err(_) => End::Reader,
        }
    }

    fn pump<W: Write>(&mut self, sb: &Switchboard, w: &mut PcapNgWriter<W>, fd: i32) -> End {
        loop {
            let mut any = false;
            while let Some(c) = self.capture.pop() {
                any = true;
                if self.write(sb, w, &c).is_err() {
                    return End::Reader;
                }
                self.written += 1;
                sb.metrics.capture_written.fetch_add(1, Relaxed);
                if self.count.is_some_and(|n| self.written >= n) {
                    let _ = w.get_mut().flush();
                    return End::Count;
                }
            }
            if any {
                if w.get_mut().flush().is_err() {
                    return End::Reader;
                }
            } else {
                if reader_gone(fd) {
                    return End::Reader;
                }
                std::thread::sleep(IDLE);
            }
        }
    }

    fn write<W: Write>(
        &mut self,
        sb: &Switchboard,
        w: &mut PcapNgWriter<W>,
        c: &Captured,
    ) -> Result<(), pcap_file::PcapError> {
        let next = self.interfaces.len() as u32;
        let interface_id = match self.interfaces.get(&c.ingress) {
            Some(&i) => i,
            None => {
                let (name, description) = port_name(sb, self.hub, c.ingress);
                w.write_pcapng_block(InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen: self.capture.snaplen,
                    options: vec![
                        InterfaceDescriptionOption::IfName(name.into()),
                        InterfaceDescriptionOption::IfDescription(description.into()),
                        // pcap-file writes nanoseconds.
                        InterfaceDescriptionOption::IfTsResol(9),
                    ],
                })?;
                self.interfaces.insert(c.ingress, next);
                next
            }
        };
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id,
            timestamp: c.time,
            original_len: c.original_len,
            data: std::borrow::Cow::Borrowed(&c.data),
            options: vec![],
        })?;
        Ok(())
    }

    /// Frames this capture lost because its reader was behind.
    pub fn dropped(&self) -> u64 {
        self.capture.dropped.load(Relaxed)
    }
}

/// A pcapng interface name and description for a port: the session id
/// (as `vhub ctl sessions` shows it) and its user and kind, or
/// `bridge:<interface>` for a local bridge (as `vhub ctl macs` names it).
fn port_name(sb: &Switchboard, hub: &VirtualHub, port: PortId) -> (String, String) {
    let info = hub.fabric.lock().port(port);
    let Some(info) = info else {
        return (
            format!("port-{}", port.to_u64()),
            "a port that has ended".into(),
        );
    };
    let entry = sb
        .sessions
        .lock()
        .iter()
        .find(|(_, e)| (e.shard, e.slot) == (info.loc.shard, info.loc.slot))
        .map(|(t, e)| (t.short(), e.user.clone()));
    let kind = info.kind.as_str();
    if info.kind == PortKind::Bridge {
        let iface = hub
            .bridge
            .lock()
            .as_ref()
            .map(|b| b.settings.interface.clone());
        let iface = iface.unwrap_or_else(|| "?".into());
        return (
            format!("bridge:{iface}"),
            format!("local bridge of {} to {iface}", hub.name()),
        );
    }
    match entry {
        Some((id, user)) if user.is_empty() => {
            (id, format!("{kind} session (anonymous) on {}", hub.name()))
        }
        Some((id, user)) => (id, format!("{kind} session of {user} on {}", hub.name())),
        None => (
            format!("port-{}", port.to_u64()),
            format!("{kind} port on {}", hub.name()),
        ),
    }
}

/// Whether the peer of a Unix stream hung up (nothing else is read from it).
fn reader_gone(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n < 0 || (n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(n: u64) -> PortId {
        PortId::from_u64(n)
    }

    /// An Ethernet frame: ARP (0x0806) or IPv4 ICMP echo.
    fn frame(ethertype: u16, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        if ethertype == 0x0800 {
            f[14] = 0x45;
            f[23] = 1; // ICMP
        }
        f
    }

    #[test]
    fn session_filter_keeps_what_the_port_sends_and_receives() {
        let c = Capture::new(Some(port(7)), None, 100).unwrap();
        assert!(c.wants(port(7), Egress::Port(port(8))));
        assert!(c.wants(port(8), Egress::Port(port(7))));
        assert!(c.wants(port(8), Egress::Flood));
        assert!(!c.wants(port(8), Egress::Port(port(9))));
        assert!(!c.wants(port(8), Egress::None));
        let all = Capture::new(None, None, 100).unwrap();
        assert!(all.wants(port(8), Egress::None));
    }

    #[test]
    fn bpf_filter_selects_and_bad_filters_are_refused() {
        let c = Capture::new(None, Some("arp"), 100).unwrap();
        let t = Duration::ZERO;
        c.offer(t, port(1), Egress::Flood, Form::Plain, &frame(0x0806, 60));
        c.offer(t, port(1), Egress::Flood, Form::Plain, &frame(0x0800, 98));
        assert_eq!(c.pop().map(|f| f.data.len()), Some(60));
        assert!(c.pop().is_none(), "the IPv4 frame passed an arp filter");
        let err = Capture::new(None, Some("tcp port nonsense"), 100)
            .err()
            .unwrap();
        assert!(err.contains("bad filter"), "{err}");
    }

    #[test]
    fn snaplen_cuts_and_vnet_header_is_stripped() {
        let c = Capture::new(None, None, 64).unwrap();
        let mut f = vec![0u8; switch_core::offload::VNET_HDR_LEN];
        f.extend(frame(0x0800, 1500));
        c.offer(Duration::ZERO, port(1), Egress::None, Form::Vnet, &f);
        let got = c.pop().unwrap();
        assert_eq!(got.original_len, 1500);
        assert_eq!(got.data.len(), 64);
        assert_eq!(
            &got.data[12..14],
            &[8, 0],
            "the vnet header was not stripped"
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_never_blocks() {
        let c = Capture::new(None, None, MAX_SNAPLEN).unwrap();
        let f = frame(0x0800, 9000);
        let n = QUEUE_BYTES / 9000 + 10;
        for _ in 0..n {
            c.offer(Duration::ZERO, port(1), Egress::None, Form::Plain, &f);
        }
        let dropped = c.dropped.load(Relaxed);
        assert!(dropped >= 10, "dropped {dropped}");
        let mut kept = 0;
        while c.pop().is_some() {
            kept += 1;
        }
        assert_eq!(kept + dropped as usize, n);
        assert_eq!(c.queued_bytes.load(Relaxed), 0);
    }

    #[test]
    fn taps_are_bounded_and_removed() {
        let taps = Taps::default();
        assert!(!taps.active());
        let cs: Vec<_> = (0..MAX_PER_HUB)
            .map(|_| Arc::new(Capture::new(None, None, 100).unwrap()))
            .collect();
        for c in &cs {
            taps.add(c.clone()).unwrap();
        }
        assert!(taps.active());
        let extra = Arc::new(Capture::new(None, None, 100).unwrap());
        assert!(taps.add(extra).is_err());
        for c in &cs {
            taps.remove(c);
        }
        assert!(!taps.active());
        assert_eq!(taps.list().len(), 0);
    }
}
