//! The io_uring backend: tokio-uring 0.5 (pinned: it has no active
//! maintainer; the epoll backend is the fallback).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use tokio_uring::buf::BoundedBuf;

use super::{Backend, NetStream};

pub struct Uring;

pub struct Stream(tokio_uring::net::TcpStream);

/// Checks that this process may create an io_uring (seccomp, sysctl
/// `kernel.io_uring_disabled`, old kernels).
///
/// The probe runs on a thread of its own that ends right after: closing a
/// ring makes the kernel queue clean-up work (`TWA_SIGNAL` task work) for
/// every thread that used it, which later interrupts that thread's next
/// blocking socket call that has a timeout with `EINTR` — here, a caller
/// that goes on to read a socket would see a spurious "Interrupted system
/// call". A thread that has exited is cleaned up without that.
pub fn probe() -> io::Result<()> {
    std::thread::Builder::new()
        .name("io_uring-probe".into())
        .spawn(|| {
            // SAFETY: io_uring_setup with a zeroed params struct; the fd is
            // closed right away. Pure syscalls, no memory is shared with
            // the kernel.
            unsafe {
                let mut params = [0u8; 120]; // struct io_uring_params
                let fd = libc::syscall(libc::SYS_io_uring_setup, 2u32, params.as_mut_ptr());
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                libc::close(fd as i32);
            }
            Ok(())
        })?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the io_uring probe thread panicked")))
}

impl NetStream for Stream {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            buf.reserve(16 * 1024);
        }
        // Read into the spare capacity only: a slice past the current length.
        let start = buf.len();
        let cap = buf.capacity();
        let (res, slice) = self.0.read(buf.slice(start..cap)).await;
        (res, slice.into_inner())
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        self.0.write_all(buf).await
    }

    fn shutdown(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }

    fn dup_fd(&self) -> io::Result<OwnedFd> {
        // SAFETY: the fd is owned by self.0 and open for the borrow's duration.
        unsafe { BorrowedFd::borrow_raw(self.0.as_raw_fd()) }.try_clone_to_owned()
    }

    fn quick_ack(&self) {
        // SAFETY: the fd is owned by self.0 and open for the borrow's duration.
        let fd = unsafe { BorrowedFd::borrow_raw(self.0.as_raw_fd()) };
        let _ = socket2::SockRef::from(&fd).set_quickack(true);
    }
}

pub struct Listener(tokio_uring::net::TcpListener);

impl Backend for Uring {
    type Stream = Stream;
    type Listener = Listener;
    const NAME: &'static str = "io_uring";

    fn block_on<F: Future>(fut: F) -> F::Output {
        tokio_uring::start(fut)
    }

    fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
        tokio_uring::spawn(fut);
    }

    /// A no-op through the ring. A task that merely yields would not do:
    /// tokio's scheduler skips its park hook when a task yields, and that
    /// hook is where tokio-uring submits the queued operations, so a
    /// yielding loop would hold every write back. Waiting for a no-op lets
    /// the runtime park: the hook submits (the no-op with every queued
    /// write), the no-op completes at once, so the wait for events returns
    /// at once with whatever else arrived.
    async fn spin_once() {
        let _ = tokio_uring::no_op().await;
    }

    fn listener(l: std::net::TcpListener) -> io::Result<Listener> {
        Ok(Listener(tokio_uring::net::TcpListener::from_std(l)))
    }

    async fn accept(l: &Listener) -> io::Result<(Stream, SocketAddr)> {
        let (s, a) = l.0.accept().await?;
        // Frames are latency-sensitive and already batched by us: no Nagle.
        let _ = s.set_nodelay(true);
        Ok((Stream(s), a))
    }

    fn shutdown_listener(l: &Listener) {
        // SAFETY: plain shutdown(2) on the listener's own open fd; on Linux
        // this makes a pending accept on a listening socket return.
        unsafe {
            libc::shutdown(l.0.as_raw_fd(), libc::SHUT_RDWR);
        }
    }

    fn stream_from_std(s: std::net::TcpStream) -> io::Result<Stream> {
        Ok(Stream(tokio_uring::net::TcpStream::from_std(s)))
    }
}
