//! How bytes reach the wire: the socket I/O behind a small trait, with an
//! io_uring backend (tokio-uring) and an epoll backend (tokio).
//!
//! Both present the same owned-buffer API (the io_uring style): a read takes
//! a `Vec<u8>`, fills its spare capacity and gives it back; a write takes the
//! buffer and gives it back when every byte is out. The rules that keep
//! io_uring safe hold for both:
//!
//! - every operation is awaited to its end — never dropped in flight (a
//!   dropped uring read loses data or keeps the fd alive); to stop a
//!   connection early, call [`NetStream::shutdown`], which makes the pending
//!   read complete, and let the task finish;
//! - accept runs in its own loop, never under `select!`.

pub mod epoll;
pub mod uring;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

/// A connected TCP stream, shared (`Rc`) by a connection's reader and writer.
pub trait NetStream: 'static {
    /// Reads at least one byte into the spare capacity of `buf` (appending
    /// after `buf.len()`); `Ok(0)` is end of stream.
    fn read(&self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;
    /// Writes all of `buf`.
    fn write_all(&self, buf: Vec<u8>) -> impl Future<Output = (io::Result<()>, Vec<u8>)>;
    /// Shuts both directions down: pending reads complete, the peer sees EOF.
    fn shutdown(&self);
    /// A duplicate of the descriptor, to hand the connection to another shard.
    fn dup_fd(&self) -> io::Result<OwnedFd>;
    /// Acknowledges what arrives next at once instead of after the kernel's
    /// delayed-ACK time (`TCP_QUICKACK`, which the kernel turns off again by
    /// itself). Used during the handshake only: after TLS 1.3's handshake
    /// the hub has nothing to send, and a client with Nagle's algorithm on
    /// (most socket libraries) holds its first request until its Finished
    /// is acknowledged — 40 ms without this.
    fn quick_ack(&self);
}

/// A runtime flavour: how a shard runs its tasks and its sockets.
pub trait Backend: 'static {
    type Stream: NetStream;
    type Listener: 'static;
    /// Name for logs and metrics.
    const NAME: &'static str;
    /// Runs `fut` to completion on this thread with this backend's runtime.
    fn block_on<F: Future>(fut: F) -> F::Output;
    /// Spawns a task on the current shard.
    fn spawn<F: Future<Output = ()> + 'static>(fut: F);
    fn listener(l: std::net::TcpListener) -> io::Result<Self::Listener>;
    fn accept(l: &Self::Listener) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>>;
    /// Wakes a pending `accept` so the accept loop can end.
    fn shutdown_listener(l: &Self::Listener);
    fn stream_from_std(s: std::net::TcpStream) -> io::Result<Self::Stream>;
    /// One round of a busy-poll: lets the runtime send what is queued and
    /// pick up what arrived, without putting the thread to sleep.
    fn spin_once() -> impl Future<Output = ()>;
}

/// Which backend to run, from `--io-backend`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IoBackend {
    Uring,
    Epoll,
}

/// Resolves `auto|uring|epoll`: `auto` probes io_uring (containers often
/// block it in their seccomp profile) and falls back to epoll.
pub fn choose_backend(wanted: &str) -> Result<(IoBackend, String), String> {
    match wanted {
        "epoll" => Ok((IoBackend::Epoll, "epoll (asked for)".into())),
        "uring" => match uring::probe() {
            Ok(()) => Ok((IoBackend::Uring, "io_uring (asked for)".into())),
            Err(e) => Err(format!(
                "io_uring was asked for (--io-backend uring) but is not available: {e}; \
                 use --io-backend epoll or auto"
            )),
        },
        "auto" | "" => match uring::probe() {
            Ok(()) => Ok((IoBackend::Uring, "io_uring (probed)".into())),
            Err(e) => Ok((
                IoBackend::Epoll,
                format!("epoll (io_uring unavailable: {e})"),
            )),
        },
        other => Err(format!(
            "unknown I/O backend {other:?}: use auto, uring or epoll"
        )),
    }
}

/// A listening socket with `SO_REUSEPORT`, so every shard can have its own
/// and the kernel spreads connections among them.
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(false).ok();
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}
