//! The local bridge: a virtual hub attached to a host network, two ways.
//!
//! - TAP mode (the default): the hub creates a TAP device (`IFF_TAP |
//!   IFF_NO_PI | IFF_VNET_HDR` with TCP offloads: one frame per read or
//!   write, behind a `virtio_net_hdr`, TCP super frames whole), brings it
//!   up and enslaves it to an existing Linux bridge (`SIOCBRADDIF`); the
//!   TAP is then one more port of that bridge. Closing the descriptor
//!   deletes the device, and the kernel takes it off the bridge.
//! - Packet mode: a promiscuous `AF_PACKET` socket bound to an existing
//!   interface, with `PACKET_VNET_HDR` (the same frame form) and
//!   `PACKET_IGNORE_OUTGOING` ([`PacketPort`]).
//!
//! On the hub's side either is a port of the virtual hub's fabric
//! (`switch_core::fabric::PortKind::Bridge`). Frames move in
//! `shard/bridge.rs`; this file only holds what the kernel is asked
//! (ioctls and socket options, no `ip` commands run) and the state the
//! admin API and the metrics read.
//!
//! What it does not do: create or configure the Linux bridge or the
//! interface (the host's network setup owns them), or set addresses.
//!
//! Needs, only when a bridge is configured: `CAP_NET_ADMIN` in TAP mode
//! (TUNSETIFF, SIOCSIFFLAGS, SIOCBRADDIF), `CAP_NET_RAW` in packet mode.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

use crate::config::{BridgeConfig, BridgeMode};

/// A hub's bridge as the running hub needs it (from `[[hub]] bridge`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeSettings {
    /// The Linux bridge the TAP device joins.
    pub interface: String,
    /// The TAP device's name (already resolved: `vh-<hub>` by default).
    pub tap: String,
    pub mode: BridgeMode,
    /// MACs learned behind the bridge port.
    pub max_macs: u32,
}

impl BridgeSettings {
    pub fn from_config(hub: &str, c: &BridgeConfig) -> Self {
        BridgeSettings {
            interface: c.interface.clone(),
            tap: c.tap_name(hub),
            mode: c.mode,
            max_macs: u32::try_from(c.max_macs).unwrap_or(u32::MAX),
        }
    }
}

/// What the admin API and the metrics see of a running bridge; the shard
/// that runs it writes, anyone reads.
#[derive(Debug)]
pub struct BridgeStatus {
    pub settings: BridgeSettings,
    /// The shard the bridge's port lives on.
    pub shard: u16,
    /// The TAP device exists and is a port of the Linux bridge.
    pub up: AtomicBool,
    /// `up`, or why not (`waiting: …`), for `vhub ctl hubs`.
    pub state: Mutex<String>,
    /// Frames read from the TAP (host network → hub) and written to it.
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    /// Frames for the host network dropped: its queue was full, or the
    /// TAP was not there (waiting for the Linux bridge).
    pub dropped: AtomicU64,
    /// Times the TAP was attached to the Linux bridge (1 after a clean
    /// start; more after the bridge went away and came back).
    pub attaches: AtomicU64,
}

impl BridgeStatus {
    pub fn new(settings: BridgeSettings, shard: u16) -> Self {
        BridgeStatus {
            settings,
            shard,
            up: AtomicBool::new(false),
            state: Mutex::new("starting".into()),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            attaches: AtomicU64::new(0),
        }
    }

    /// Sets the state; returns true when it changed (callers log changes
    /// only, so a bridge that stays away is one warning, not one a retry).
    pub fn set_state(&self, up: bool, state: &str) -> bool {
        self.up.store(up, Relaxed);
        let mut s = self.state.lock();
        if *s == state {
            return false;
        }
        *s = state.to_owned();
        true
    }

    /// `(frames in, frames out, dropped)`.
    pub fn counters(&self) -> (u64, u64, u64) {
        (
            self.frames_in.load(Relaxed),
            self.frames_out.load(Relaxed),
            self.dropped.load(Relaxed),
        )
    }
}

/// Why the TAP could not be made or attached: says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("cannot open /dev/net/tun: {0} (the tun module loaded? the hub needs CAP_NET_ADMIN for a bridge)")]
    OpenTun(io::Error),
    #[error("cannot create TAP device {tap}: {err} (EPERM: the hub needs CAP_NET_ADMIN; EBUSY: another process uses that name)")]
    Create { tap: String, err: io::Error },
    #[error("cannot bring TAP device {tap} up: {err}")]
    Up { tap: String, err: io::Error },
    #[error("Linux bridge {bridge} not found (create it, e.g. `ip link add {bridge} type bridge`); retrying")]
    NoBridge { bridge: String },
    #[error("cannot add {tap} to bridge {bridge}: {err} (is {bridge} a Linux bridge?)")]
    Enslave {
        tap: String,
        bridge: String,
        err: io::Error,
    },
    #[error("interface {iface} not found; retrying")]
    NoInterface { iface: String },
    #[error("cannot open a packet socket on {iface}: {err} (EPERM: the hub needs CAP_NET_RAW)")]
    Packet { iface: String, err: io::Error },
}

/// A TAP device of the hub's, attached to a Linux bridge; closing it
/// (drop) deletes the device.
#[derive(Debug)]
pub struct Tap {
    pub fd: OwnedFd,
    pub name: String,
}

impl Tap {
    /// Creates TAP `s.tap` (non-blocking, plain frames), brings it up and
    /// adds it to bridge `s.interface`. The device is deleted again if a
    /// later step fails.
    pub fn open(s: &BridgeSettings) -> Result<Tap, TapError> {
        let fd = create_tap(&s.tap)?;
        let tap = Tap {
            fd,
            name: s.tap.clone(),
        };
        // The TAP is the hub's port on the bridge, not a host interface:
        // without this the kernel would send its own IPv6 router
        // solicitations and DAD probes through it into the virtual hub.
        // Best effort (a kernel without IPv6 has no such file).
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", s.tap),
            "1",
        );
        let ctl = control_socket().map_err(|err| TapError::Up {
            tap: s.tap.clone(),
            err,
        })?;
        set_up(&ctl, &s.tap).map_err(|err| TapError::Up {
            tap: s.tap.clone(),
            err,
        })?;
        attach(&ctl, &tap.name, &s.interface)?;
        Ok(tap)
    }
}

/// Adds interface `tap` to Linux bridge `bridge`. Ok when it is a port of
/// it now (EBUSY: it was one already, the usual answer of the periodic
/// check).
pub fn attach(ctl: &OwnedFd, tap: &str, bridge: &str) -> Result<(), TapError> {
    let index = ifindex(ctl, tap).map_err(|err| TapError::Enslave {
        tap: tap.to_owned(),
        bridge: bridge.to_owned(),
        err,
    })?;
    let mut req = ifreq(bridge);
    req.ifr_ifru.ifru_ifindex = index;
    // SAFETY: SIOCBRADDIF reads `req` (a properly sized ifreq with the
    // bridge's name and the port's index) and writes nothing back.
    let r = unsafe { libc::ioctl(ctl.as_raw_fd(), SIOCBRADDIF as _, &mut req) };
    if r == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EBUSY) => Ok(()),
        Some(libc::ENODEV) => Err(TapError::NoBridge {
            bridge: bridge.to_owned(),
        }),
        _ => Err(TapError::Enslave {
            tap: tap.to_owned(),
            bridge: bridge.to_owned(),
            err,
        }),
    }
}

/// An `AF_PACKET` socket on an existing interface (`mode = "packet"`):
/// promiscuous, blind to what it sends itself (`PACKET_IGNORE_OUTGOING`),
/// every frame behind a `virtio_net_hdr` (`PACKET_VNET_HDR`), so GRO'd
/// super frames come in whole and super frames go out whole (the
/// kernel or the NIC cuts them).
#[derive(Debug)]
pub struct PacketPort {
    pub fd: OwnedFd,
    /// The interface index it is bound to: an interface deleted and made
    /// again under the same name has a new one, and needs a new socket.
    pub ifindex: libc::c_int,
}

// linux/if_packet.h (stable ABI; not all in every libc release).
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

impl PacketPort {
    /// Opens the packet socket on `s.interface` (non-blocking).
    pub fn open(s: &BridgeSettings) -> Result<PacketPort, TapError> {
        let iface = &s.interface;
        let err = |err: io::Error| TapError::Packet {
            iface: iface.clone(),
            err,
        };
        let ctl = control_socket().map_err(err)?;
        let ifindex = ifindex(&ctl, iface).map_err(|_| TapError::NoInterface {
            iface: iface.clone(),
        })?;
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket(2) with constant arguments; owned right below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        };
        if raw < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let on: libc::c_int = 1;
        let opt = |level, name, v: *const libc::c_void, len: usize| {
            // SAFETY: setsockopt reads `len` bytes at `v`, a live value.
            let r = unsafe { libc::setsockopt(raw, level, name, v, len as libc::socklen_t) };
            if r != 0 {
                return Err(err(io::Error::last_os_error()));
            }
            Ok(())
        };
        let int = std::mem::size_of::<libc::c_int>();
        // Before bind: the header applies to every frame from the start.
        opt(
            libc::SOL_PACKET,
            PACKET_VNET_HDR,
            (&on as *const libc::c_int).cast(),
            int,
        )?;
        // Since Linux 4.20; without it the hub would read back what it sends.
        opt(
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            (&on as *const libc::c_int).cast(),
            int,
        )?;
        // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as libc::c_ushort;
        sa.sll_protocol = proto;
        sa.sll_ifindex = ifindex;
        // SAFETY: bind(2) with a properly sized sockaddr_ll.
        let r = unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(err(io::Error::last_os_error()));
        }
        let mreq = PacketMreq {
            mr_ifindex: ifindex,
            mr_type: PACKET_MR_PROMISC,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        opt(
            libc::SOL_PACKET,
            PACKET_ADD_MEMBERSHIP,
            (&mreq as *const PacketMreq).cast(),
            std::mem::size_of::<PacketMreq>(),
        )?;
        Ok(PacketPort { fd, ifindex })
    }
}

/// The index of interface `name` (`None`: no such interface).
pub fn index_of(ctl: &OwnedFd, name: &str) -> Option<libc::c_int> {
    ifindex(ctl, name).ok()
}

/// `TUNSETOFFLOAD`: `_IOW('T', 208, unsigned int)`.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;

/// `SIOCBRADDIF` (linux/sockios.h): add an interface to a bridge.
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// A socket for interface ioctls.
pub fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned
    // by the returned OwnedFd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether interface `name` exists and is up (`IFF_UP`); `None` when it
/// does not exist.
pub fn link_up(ctl: &OwnedFd, name: &str) -> Option<bool> {
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFFLAGS fills the flags of a properly sized ifreq.
    let r = unsafe { libc::ioctl(ctl.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) };
    if r != 0 {
        return None;
    }
    // SAFETY: the ioctl succeeded, so the flags member is the one written.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Some(flags & libc::IFF_UP as libc::c_short != 0)
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // Names are checked by the config validator (at most 15 bytes); cut
    // anyway so the NUL always fits.
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s as libc::c_char;
    }
    req
}

fn ifindex(ctl: &OwnedFd, name: &str) -> io::Result<libc::c_int> {
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFINDEX fills the index of a properly sized ifreq.
    let r = unsafe { libc::ioctl(ctl.as_raw_fd(), libc::SIOCGIFINDEX as _, &mut req) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl succeeded, so the index member is the one written.
    Ok(unsafe { req.ifr_ifru.ifru_ifindex })
}

fn set_up(ctl: &OwnedFd, name: &str) -> io::Result<()> {
    let mut req = ifreq(name);
    // SAFETY: as in `link_up`.
    if unsafe { libc::ioctl(ctl.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: flags were just read into this member; SIOCSIFFLAGS reads it.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(ctl.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut req) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Opens `/dev/net/tun` and makes TAP `name` on it, non-blocking.
fn create_tap(name: &str) -> Result<OwnedFd, TapError> {
    const TUN: &CStr = c"/dev/net/tun";
    // SAFETY: open(2) of a constant NUL-terminated path; the descriptor is
    // owned by the OwnedFd below.
    let raw: RawFd = unsafe {
        libc::open(
            TUN.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(TapError::OpenTun(io::Error::last_os_error()));
    }
    // SAFETY: raw is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes a properly sized ifreq.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, &mut req) };
    if r != 0 {
        return Err(TapError::Create {
            tap: name.to_owned(),
            err: io::Error::last_os_error(),
        });
    }
    // TCP super frames both ways, as the client's TAP does: the kernel
    // hands the hub GRO'd frames whole and takes offload senders' 64 KiB
    // frames whole (it, or the NIC, cuts them). vhub cuts only TCP, so
    // exactly TCP + checksum.
    let offloads = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
    // SAFETY: TUNSETOFFLOAD takes an unsigned int by value on a TAP fd we own.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD as _, offloads as libc::c_uint) };
    if r != 0 {
        return Err(TapError::Create {
            tap: name.to_owned(),
            err: io::Error::last_os_error(),
        });
    }
    Ok(fd)
}

/// Reads one frame (non-blocking descriptor) into the spare capacity of
/// `buf`, at most `room` bytes, and appends it; returns its length.
pub fn read_into(fd: RawFd, buf: &mut Vec<u8>, room: usize) -> io::Result<usize> {
    buf.reserve(room);
    let spare = buf.spare_capacity_mut();
    let room = room.min(spare.len());
    // SAFETY: read(2) writes at most `room` bytes into spare capacity we
    // own; the length is advanced only over the bytes it wrote.
    let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), room) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel initialised the first n (≤ room) spare bytes.
    unsafe { buf.set_len(buf.len() + n as usize) };
    Ok(n as usize)
}

/// Writes one frame (a TAP takes one frame per write).
pub fn write_frame(fd: RawFd, frame: &[u8]) -> io::Result<()> {
    // SAFETY: write(2) of a buffer we own, of its length.
    let n = unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
