//! Notices when the host's network changes (a link comes up, an address or
//! a route appears) through an rtnetlink socket, so that a client waiting
//! to reconnect tries at once instead of sleeping out its backoff, and a
//! client whose connection went silent probes a fresh one. Without it a
//! link that was down for 3 s could cost another backoff period (or TCP's
//! own retransmission backoff) before traffic flows again.
//!
//! The contents of the messages barely matter: only changes that concern
//! the client's own TAP device are filtered out.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

const NLMSG_HDR: usize = 16;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTA_OIF: u16 = 4;

pub struct NetWatch {
    fd: AsyncFd<OwnedFd>,
    /// Changes of this interface (our TAP) are not news.
    ignore_ifindex: u32,
    buf: Vec<u8>,
}

impl NetWatch {
    pub fn new(ignore_ifindex: u32) -> io::Result<NetWatch> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain old data; zeroed is a valid value.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = RTMGRP_LINK
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV6_ROUTE;
        // SAFETY: bind with a properly sized sockaddr_nl.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it (and
        // so keeps it open and unchanged) until it is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(NetWatch {
            fd,
            ignore_ifindex,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Waits until the network changed (in a way that does not concern
    /// only our TAP). Cancel-safe.
    pub async fn changed(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut relevant = false;
            loop {
                let fd = guard.get_inner().as_raw_fd();
                // SAFETY: recv into our own buffer of the given length.
                let n = unsafe { libc::recv(fd, self.buf.as_mut_ptr().cast(), self.buf.len(), 0) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => {
                            guard.clear_ready();
                            break;
                        }
                        io::ErrorKind::Interrupted => continue,
                        // ENOBUFS: we missed messages; something changed.
                        _ if e.raw_os_error() == Some(libc::ENOBUFS) => {
                            relevant = true;
                            continue;
                        }
                        _ => return Err(e),
                    }
                }
                relevant |= concerns_others(&self.buf[..n as usize], self.ignore_ifindex);
            }
            if relevant {
                return Ok(());
            }
        }
    }
}

/// Whether a batch of rtnetlink messages holds a change of some interface
/// other than `ignore`.
pub fn concerns_others(mut data: &[u8], ignore: u32) -> bool {
    let mut any = false;
    while data.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes(data[4..6].try_into().unwrap());
        if len < NLMSG_HDR || len > data.len() {
            break;
        }
        let body = &data[NLMSG_HDR..len];
        let ifindex = match ty {
            RTM_NEWLINK | RTM_DELLINK | RTM_NEWADDR | RTM_DELADDR if body.len() >= 8 => {
                Some(u32::from_ne_bytes(body[4..8].try_into().unwrap()))
            }
            RTM_NEWROUTE | RTM_DELROUTE => route_oif(body),
            _ => None,
        };
        if ty >= RTM_NEWLINK && ifindex != Some(ignore) {
            any = true;
        }
        data = &data[len.next_multiple_of(4).min(data.len())..];
    }
    any
}

/// The output interface of a route message (RTA_OIF), if it has one.
fn route_oif(body: &[u8]) -> Option<u32> {
    const RTMSG: usize = 12;
    let mut attrs = body.get(RTMSG..)?;
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes(attrs[0..2].try_into().unwrap()));
        let ty = u16::from_ne_bytes(attrs[2..4].try_into().unwrap());
        if len < 4 || len > attrs.len() {
            return None;
        }
        if ty == RTA_OIF && len >= 8 {
            return Some(u32::from_ne_bytes(attrs[4..8].try_into().unwrap()));
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    None
}

/// The index of interface `name`, or 0.
pub fn ifindex(name: &str) -> u32 {
    let Ok(c) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDR + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn link(ifindex: u32) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        msg(RTM_NEWLINK, &b)
    }

    fn route(oif: u32) -> Vec<u8> {
        let mut b = vec![0u8; 12];
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&RTA_OIF.to_ne_bytes());
        b.extend_from_slice(&oif.to_ne_bytes());
        msg(RTM_NEWROUTE, &b)
    }

    #[test]
    fn our_own_tap_is_not_news() {
        assert!(!concerns_others(&link(7), 7));
        assert!(concerns_others(&link(3), 7));
        assert!(!concerns_others(&route(7), 7));
        assert!(concerns_others(&route(2), 7));
        let mut both = link(7);
        both.extend(route(2));
        assert!(concerns_others(&both, 7));
        assert!(!concerns_others(&[1, 2, 3], 7), "garbage is ignored");
    }
}
