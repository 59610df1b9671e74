//! The TAP device: Ethernet frames in and out of the kernel.
//!
//! The client talks to the device only through [`TapIo`], so that the
//! plain single-queue device of today ([`TunTap`]: one frame per `read`,
//! no `IFF_VNET_HDR`) can later be swapped for a multi-queue one with
//! offload, where one read yields a 64 KiB super-frame to be cut into
//! frames ([`FrameBatch`] already carries many frames per call).

use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::ops::Range;

use crate::addr::Ipv4Cidr;

/// Largest frame read from the device: a 1500-byte MTU plus Ethernet
/// header and one VLAN tag; larger MTUs are not supported yet.
pub const MAX_FRAME: usize = 1518;

/// Frames read from the device in one go, stored back to back.
#[derive(Debug, Default)]
pub struct FrameBatch {
    buf: Vec<u8>,
    frames: Vec<Range<usize>>,
}

impl FrameBatch {
    pub fn clear(&mut self) {
        self.buf.clear();
        self.frames.clear();
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Room for one more frame of up to `max` bytes; call [`commit`](Self::commit)
    /// with the length actually written.
    pub fn spare(&mut self, max: usize) -> &mut [u8] {
        let start = self.buf.len();
        self.buf.resize(start + max, 0);
        &mut self.buf[start..]
    }

    /// Keeps `n` bytes of the room given by the last [`spare`](Self::spare).
    pub fn commit(&mut self, max: usize, n: usize) {
        let start = self.buf.len() - max;
        self.buf.truncate(start + n);
        self.frames.push(start..start + n);
    }

    /// Gives back the room of the last [`spare`](Self::spare) unused.
    pub fn abandon(&mut self, max: usize) {
        self.buf.truncate(self.buf.len() - max);
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
    /// Resolves when frames may be waiting (spurious wake-ups allowed).
    fn readable(&self) -> impl Future<Output = io::Result<()>>;
    /// Reads frames that are waiting, without blocking, until `max`
    /// frames are in `batch` or none is left. Returns how many were added.
    fn recv_batch(&self, batch: &mut FrameBatch, max: usize) -> io::Result<usize>;
    /// Writes one frame to the kernel. Never blocks: a frame the kernel
    /// cannot take is an error (counted by the caller).
    fn send(&self, frame: &[u8]) -> io::Result<()>;
}

/// A single-queue TAP device from `tun-rs`, plain frames (no offload).
pub struct TunTap {
    dev: tun_rs::AsyncDevice,
    name: String,
    mac: [u8; 6],
}

impl TunTap {
    /// Creates the TAP device `name` (or attaches to an existing persistent
    /// one of that name), brings it up and, if given, sets its address.
    pub fn open(name: &str, ip: Option<Ipv4Cidr>) -> io::Result<TunTap> {
        let mut b = tun_rs::DeviceBuilder::new()
            .name(name)
            .layer(tun_rs::Layer::L2)
            .mtu(1500)
            .with(|o| {
                // The speed issue turns these on; see the module docs.
                o.offload(false).multi_queue(false);
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
        let mac = dev.mac_address()?;
        let name = dev.name().unwrap_or_else(|_| name.to_owned());
        Ok(TunTap { dev, name, mac })
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

    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        self.dev.readable()
    }

    fn recv_batch(&self, batch: &mut FrameBatch, max: usize) -> io::Result<usize> {
        let mut n = 0;
        while n < max {
            let room = batch.spare(MAX_FRAME);
            match self.dev.try_recv(room) {
                Ok(len) => {
                    batch.commit(MAX_FRAME, len);
                    n += 1;
                }
                Err(e) => {
                    batch.abandon(MAX_FRAME);
                    if e.kind() == io::ErrorKind::WouldBlock {
                        break;
                    }
                    if n == 0 {
                        return Err(e);
                    }
                    break;
                }
            }
        }
        Ok(n)
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.dev.try_send(frame).map(|_| ())
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
        b.commit(16, 3);
        b.spare(16);
        b.abandon(16);
        let room = b.spare(16);
        room[..2].copy_from_slice(b"de");
        b.commit(16, 2);
        let frames: Vec<&[u8]> = b.iter().collect();
        assert_eq!(frames, [&b"abc"[..], &b"de"[..]]);
        assert_eq!(b.len(), 2);
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn loopback_has_127_0_0_1() {
        assert_eq!(interface_ipv4("lo"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(interface_ipv4("no-such-if0"), None);
    }
}
