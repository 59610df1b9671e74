//! The TAP device: Ethernet frames in and out of the kernel.
//!
//! The client talks to the device only through [`TapIo`]. [`TunTap`] is a
//! single-queue `tun-rs` device, opened with `IFF_VNET_HDR` and TCP
//! segmentation offload (TSO4/TSO6/ECN and checksum offload) unless told
//! not to: the kernel then hands over TCP segments of up to 64 KiB behind
//! a 10-byte `virtio_net_hdr` (see `switch_core::offload`), and takes such
//! super frames back, so one read or write moves ~40 frames' worth.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::os::fd::AsRawFd;

use switch_core::offload::{VnetHdr, MAX_VNET_FRAME};

use crate::addr::Ipv4Cidr;

#[cfg(test)]
pub mod fake;

/// Largest frame read from a device without offload: a 1500-byte MTU plus
/// Ethernet header and one VLAN tag; larger MTUs are not supported yet.
pub const MAX_FRAME: usize = 1518;

/// Stop filling a batch past this many bytes (a few super frames): a batch
/// holds at most this plus one frame.
pub const BATCH_BYTES: usize = 512 * 1024;

/// Frames read from the device in one go, stored back to back in a
/// buffer that is zeroed once and reused (no per-frame allocation or
/// clearing).
#[derive(Debug, Default)]
pub struct FrameBatch {
    buf: Vec<u8>,
    used: usize,
    frames: Vec<Range<usize>>,
}

impl FrameBatch {
    pub fn clear(&mut self) {
        self.used = 0;
        self.frames.clear();
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.used
    }

    /// Room for one more frame of up to `max` bytes; call [`commit`](Self::commit)
    /// with the length actually written.
    pub fn spare(&mut self, max: usize) -> &mut [u8] {
        if self.buf.len() < self.used + max {
            self.buf.resize(self.used + max, 0);
        }
        &mut self.buf[self.used..self.used + max]
    }

    /// Keeps `n` bytes of the room given by the last [`spare`](Self::spare).
    pub fn commit(&mut self, n: usize) {
        self.frames.push(self.used..self.used + n);
        self.used += n;
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.frames.iter().map(|r| &self.buf[r.clone()])
    }
}

/// What the client needs from a TAP device.
pub trait TapIo {
    /// The interface name (`vnic0`).
    fn name(&self) -> &str;
    /// The interface's MAC address (source of the ICMP keep-alive).
    fn mac(&self) -> [u8; 6];
    /// The first IPv4 address of the interface, if it has one.
    fn ipv4(&self) -> Option<Ipv4Addr>;
    /// Frames read and written carry a `virtio_net_hdr` (offload is on).
    fn vnet(&self) -> bool;
    /// Resolves when frames may be waiting (spurious wake-ups allowed).
    fn readable(&self) -> impl Future<Output = io::Result<()>>;
    /// Reads frames that are waiting, without blocking, until `max`
    /// frames are in `batch` or none is left. Returns how many were added.
    fn recv_batch(&self, batch: &mut FrameBatch, max: usize) -> io::Result<usize>;
    /// Writes one frame to the kernel, in the device's form (with the
    /// header if [`vnet`](Self::vnet)). Never blocks: a frame the kernel
    /// cannot take is an error (counted by the caller).
    fn send(&self, frame: &[u8]) -> io::Result<()>;
    /// Writes one plain Ethernet frame (an all-zero header goes in front
    /// on a [`vnet`](Self::vnet) device).
    fn send_plain(&self, frame: &[u8]) -> io::Result<()>;
}

/// A single-queue TAP device from `tun-rs`.
pub struct TunTap {
    dev: tun_rs::AsyncDevice,
    name: String,
    mac: [u8; 6],
    vnet: bool,
}

/// `TUNSETOFFLOAD`: `_IOW('T', 208, unsigned int)`.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;

impl TunTap {
    /// Creates the TAP device `name` (or attaches to an existing persistent
    /// one of that name), brings it up and, if given, sets its address.
    /// `offload`: ask for `IFF_VNET_HDR` and TCP segmentation offload.
    pub fn open(name: &str, ip: Option<Ipv4Cidr>, offload: bool) -> io::Result<TunTap> {
        // The virtio_net_hdr is carried little-endian on the wire: the
        // device's own (native) layout only on little-endian hosts.
        let offload = offload && cfg!(target_endian = "little");
        let mut b = tun_rs::DeviceBuilder::new()
            .name(name)
            .layer(tun_rs::Layer::L2)
            .mtu(1500)
            .with(|o| {
                o.offload(offload).multi_queue(false);
            })
            .enable(true);
        if let Some(c) = ip {
            b = b.ipv4(c.addr, c.prefix, None);
        }
        let dev = b.build_async().map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    " (creating a TAP device needs root or CAP_NET_ADMIN)"
                }
                Some(libc::EBUSY) => " (a device of that name is in use by another process)",
                Some(libc::EINVAL) => {
                    " (a device of that name exists and is not a TAP device, or the name is invalid)"
                }
                Some(libc::ENOENT) | Some(libc::ENODEV) => " (no /dev/net/tun: load the tun module)",
                _ => "",
            };
            io::Error::new(e.kind(), format!("TAP device {name}: {e}{hint}"))
        })?;
        let vnet = offload && dev.tcp_gso();
        if vnet {
            // tun-rs also turns on UDP segmentation (USO) where the kernel
            // has it; vhub cuts only TCP, so ask for exactly TCP + checksum.
            let flags =
                libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
            // SAFETY: TUNSETOFFLOAD takes an unsigned int by value on a TUN/TAP fd we own.
            let r =
                unsafe { libc::ioctl(dev.as_raw_fd(), TUNSETOFFLOAD as _, flags as libc::c_uint) };
            if r < 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("TAP device {name}: setting offloads: {e}"),
                ));
            }
        }
        let mac = dev.mac_address()?;
        let name = dev.name().unwrap_or_else(|_| name.to_owned());
        Ok(TunTap {
            dev,
            name,
            mac,
            vnet,
        })
    }
}

impl TapIo for TunTap {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn ipv4(&self) -> Option<Ipv4Addr> {
        interface_ipv4(&self.name)
    }

    fn vnet(&self) -> bool {
        self.vnet
    }

    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        self.dev.readable()
    }

    fn recv_batch(&self, batch: &mut FrameBatch, max: usize) -> io::Result<usize> {
        let room = if self.vnet {
            MAX_VNET_FRAME as usize
        } else {
            MAX_FRAME
        };
        let mut n = 0;
        while n < max && batch.bytes() < BATCH_BYTES {
            match self.dev.try_recv(batch.spare(room)) {
                Ok(len) => {
                    batch.commit(len);
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.dev.try_send(frame).map(|_| ())
    }

    fn send_plain(&self, frame: &[u8]) -> io::Result<()> {
        if !self.vnet {
            return self.send(frame);
        }
        let hdr = VnetHdr::PLAIN.to_bytes();
        self.dev
            .try_send_vectored(&[IoSlice::new(&hdr), IoSlice::new(frame)])
            .map(|_| ())
    }
}

/// The (primary) IPv4 address of interface `name`, by `SIOCGIFADDR`.
pub fn interface_ipv4(name: &str) -> Option<Ipv4Addr> {
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: plain socket(2); the result is checked and closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFADDR fills `req` (a properly sized ifreq) for the named interface.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFADDR as _, &mut req) };
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    if r < 0 {
        return None;
    }
    // SAFETY: on success the union holds a sockaddr_in (AF_INET was asked for).
    let sin: libc::sockaddr_in = unsafe {
        std::ptr::read_unaligned((&req.ifr_ifru.ifru_addr as *const libc::sockaddr).cast())
    };
    Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_keeps_frames_back_to_back() {
        let mut b = FrameBatch::default();
        let room = b.spare(16);
        room[..3].copy_from_slice(b"abc");
        b.commit(3);
        b.spare(16); // given back by not committing
        let room = b.spare(16);
        room[..2].copy_from_slice(b"de");
        b.commit(2);
        let frames: Vec<&[u8]> = b.iter().collect();
        assert_eq!(frames, [&b"abc"[..], &b"de"[..]]);
        assert_eq!((b.len(), b.bytes()), (2, 5));
        b.clear();
        assert!(b.is_empty());
        // The buffer is kept: no new allocation for the next batch.
        let p = b.spare(16).as_ptr();
        b.commit(1);
        assert_eq!(b.iter().next().unwrap().as_ptr(), p);
    }

    #[test]
    fn loopback_has_127_0_0_1() {
        assert_eq!(interface_ipv4("lo"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(interface_ipv4("no-such-if0"), None);
    }
}
