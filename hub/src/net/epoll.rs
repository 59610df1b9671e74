//! The epoll backend: tokio's current-thread runtime with a `LocalSet`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

use super::{Backend, NetStream};

pub struct Epoll;

pub struct Stream(tokio::net::TcpStream);

impl NetStream for Stream {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            buf.reserve(16 * 1024);
        }
        loop {
            if let Err(e) = self.0.readable().await {
                return (Err(e), buf);
            }
            match self.0.try_read_buf(&mut buf) {
                Ok(n) => return (Ok(n), buf),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return (Err(e), buf),
            }
        }
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut off = 0;
        while off < buf.len() {
            if let Err(e) = self.0.writable().await {
                return (Err(e), buf);
            }
            match self.0.try_write(&buf[off..]) {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    fn shutdown(&self) {
        let _ = socket2::SockRef::from(&self.0).shutdown(std::net::Shutdown::Both);
    }

    fn dup_fd(&self) -> io::Result<OwnedFd> {
        self.0.as_fd().try_clone_to_owned()
    }

    fn quick_ack(&self) {
        let _ = socket2::SockRef::from(&self.0).set_quickack(true);
    }
}

pub struct Listener(tokio::net::TcpListener);

impl Backend for Epoll {
    type Stream = Stream;
    type Listener = Listener;
    const NAME: &'static str = "epoll";

    fn block_on<F: Future>(fut: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        tokio::task::LocalSet::new().block_on(&rt, fut)
    }

    fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
        tokio::task::spawn_local(fut);
    }

    /// Writes here are direct syscalls: yielding lets the scheduler poll
    /// for events (without sleeping) and run whoever they woke.
    async fn spin_once() {
        tokio::task::yield_now().await;
    }

    fn listener(l: std::net::TcpListener) -> io::Result<Listener> {
        l.set_nonblocking(true)?;
        Ok(Listener(tokio::net::TcpListener::from_std(l)?))
    }

    async fn accept(l: &Listener) -> io::Result<(Stream, SocketAddr)> {
        let (s, a) = l.0.accept().await?;
        // Frames are latency-sensitive and already batched by us: no Nagle.
        let _ = s.set_nodelay(true);
        Ok((Stream(s), a))
    }

    fn shutdown_listener(l: &Listener) {
        let _ = socket2::SockRef::from(&l.0).shutdown(std::net::Shutdown::Both);
    }

    fn stream_from_std(s: std::net::TcpStream) -> io::Result<Stream> {
        s.set_nonblocking(true)?;
        Ok(Stream(tokio::net::TcpStream::from_std(s)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handshake's `quick_ack` really switches the socket to quick
    /// ACKs (Linux reports `TCP_QUICKACK` as "not in delayed-ACK
    /// ping-pong mode"). The uring backend makes the same call on its fd.
    #[test]
    fn quick_ack_turns_delayed_acks_off() {
        Epoll::block_on(async {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            let s = Epoll::stream_from_std(s).unwrap();
            let fd = s.dup_fd().unwrap();
            let sock = socket2::SockRef::from(&fd);
            sock.set_quickack(false).unwrap();
            assert!(!sock.quickack().unwrap());
            s.quick_ack();
            assert!(sock.quickack().unwrap());
        });
    }
}
