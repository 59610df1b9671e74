//! A small blocking client of `vhub/1` built on switch-core and the certs
//! crate's sans-IO TLS: real TCP, real TLS, real upgrade. The hub's
//! integration tests use it; `vhub-bench` grows from it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use certs::tls::{self, TlsConn, TlsOptions, Verify};
use switch_core::pump::Pump;
use switch_core::session::{Connect, Event, Session, SessionConfig, State};
use switch_core::wire::http::{Credentials, Refusal};

/// Why a test client could not get a session.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] certs::tls::TlsError),
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error("session error: {0}")]
    Session(#[from] switch_core::session::SessionError),
    #[error("the hub closed the connection during the handshake")]
    Closed,
    #[error("timed out")]
    Timeout,
    #[error("session ended: {0:?}")]
    Ended(Event),
}

pub struct TestClient {
    addr: SocketAddr,
    stream: TcpStream,
    tls: TlsConn,
    pub session: Session,
    ctx: openssl::ssl::SslContext,
    /// The local address connections are made from (any when `None`).
    local_ip: Option<std::net::IpAddr>,
    pump: Pump,
    cipher_out: Vec<u8>,
    read_buf: Vec<u8>,
    /// Frames received, in order.
    pub received: Vec<Vec<u8>>,
    pub events: Vec<Event>,
}

#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

impl TestClient {
    /// Connects to `addr`, TLS without verification (tests), and opens a
    /// session on `hub`.
    pub fn connect(
        addr: SocketAddr,
        hub: &str,
        creds: Option<(&str, &str)>,
    ) -> Result<Self, ClientError> {
        Self::connect_with(
            addr,
            hub,
            creds,
            SessionConfig::default(),
            &TlsOptions::default(),
        )
    }

    pub fn connect_with(
        addr: SocketAddr,
        hub: &str,
        creds: Option<(&str, &str)>,
        config: SessionConfig,
        opts: &TlsOptions,
    ) -> Result<Self, ClientError> {
        Self::connect_ext(addr, hub, creds, config, opts, &Extras::default())
    }

    /// As [`TestClient::connect_with`], with a client certificate and/or a
    /// chosen local address (tests of per-address limits use 127.0.0.x).
    pub fn connect_ext(
        addr: SocketAddr,
        hub: &str,
        creds: Option<(&str, &str)>,
        config: SessionConfig,
        opts: &TlsOptions,
        extras: &Extras,
    ) -> Result<Self, ClientError> {
        let ctx = tls::client_context_with_cert(&Verify::Insecure, opts, extras.cert.as_ref())?;
        let mut session = Session::connect(
            now(),
            config,
            Connect {
                hub: hub.into(),
                host: addr.to_string(),
                credentials: creds.map(|(u, p)| Credentials {
                    user: u.into(),
                    password: p.into(),
                }),
            },
        );
        let (stream, tls) = Self::open(addr, &ctx, extras.local_ip)?;
        session.reconnect(now()); // TCP and TLS are up
        let mut c = Self {
            addr,
            stream,
            tls,
            session,
            ctx,
            local_ip: extras.local_ip,
            pump: Pump::new(),
            cipher_out: Vec::new(),
            read_buf: vec![0; 256 * 1024],
            received: Vec::new(),
            events: Vec::new(),
        };
        c.wait_established()?;
        Ok(c)
    }

    fn open(
        addr: SocketAddr,
        ctx: &openssl::ssl::SslContext,
        local_ip: Option<std::net::IpAddr>,
    ) -> Result<(TcpStream, TlsConn), ClientError> {
        let mut stream = connect_from(addr, local_ip)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_millis(20)))?;
        let mut tls = TlsConn::client(ctx, None)?;
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = now() + Duration::from_secs(10);
        loop {
            let done = tls.handshake()?;
            let mut out = Vec::new();
            tls.take_ciphertext(&mut out);
            stream.write_all(&out)?;
            if done {
                return Ok((stream, tls));
            }
            match stream.read(&mut buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => tls.feed(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e.into()),
            }
            if now() > deadline {
                return Err(ClientError::Timeout);
            }
        }
    }

    /// The negotiated TLS version and suite.
    pub fn tls_info(&self) -> Option<tls::TlsInfo> {
        self.tls.info()
    }

    fn wait_established(&mut self) -> Result<(), ClientError> {
        let deadline = now() + Duration::from_secs(10);
        let mut seen = self.events.len();
        loop {
            self.pump()?;
            while seen < self.events.len() {
                let e = self.events[seen].clone();
                seen += 1;
                match e {
                    Event::Established { .. } => return Ok(()),
                    Event::Refused(r) => return Err(ClientError::Refused(r)),
                    Event::SessionExpired { .. } => return Err(ClientError::Ended(e)),
                    _ => {}
                }
            }
            if self.session.state() == State::Closed {
                return Err(ClientError::Closed);
            }
            if now() > deadline {
                return Err(ClientError::Timeout);
            }
        }
    }

    /// One round: transmit what the session has, read what arrived (waits
    /// at most ~20 ms for input).
    pub fn pump(&mut self) -> Result<(), ClientError> {
        let t = now();
        self.session.handle_timeout(t);
        self.cipher_out.clear();
        self.pump.output(
            t,
            &mut self.tls,
            &mut self.session,
            1 << 20,
            &mut self.cipher_out,
        )?;
        if !self.cipher_out.is_empty() {
            self.stream.write_all(&self.cipher_out)?;
        }
        match self.stream.read(&mut self.read_buf) {
            Ok(0) => {
                self.session.link_lost(now());
                return Err(ClientError::Closed);
            }
            Ok(n) => {
                self.tls.feed(&self.read_buf[..n]);
                let received = &mut self.received;
                let input = self
                    .pump
                    .input(now(), &mut self.tls, &mut self.session, |f| {
                        received.push(f.to_vec())
                    })?;
                if let Some(e) = input.protocol_error {
                    return Err(e.into());
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e.into()),
        }
        while let Some(e) = self.session.poll_event() {
            self.events.push(e);
        }
        Ok(())
    }

    /// How long [`TestClient::pump`] waits for input (20 ms unless set).
    pub fn set_read_wait(&mut self, d: Duration) -> std::io::Result<()> {
        self.stream.set_read_timeout(Some(d))
    }

    /// Queues a frame (sent on the next pump).
    pub fn send(&mut self, frame: &[u8]) {
        self.session.send_frame(frame).expect("frame queued");
    }

    /// Pumps until `n` frames in total were received or `timeout` passed.
    pub fn recv_until(&mut self, n: usize, timeout: Duration) -> usize {
        let deadline = now() + timeout;
        while self.received.len() < n && now() < deadline {
            if self.pump().is_err() {
                break;
            }
        }
        self.received.len()
    }

    /// Pumps for `d` (lets frames arrive that should not).
    pub fn pump_for(&mut self, d: Duration) {
        let deadline = now() + d;
        while now() < deadline {
            if self.pump().is_err() {
                break;
            }
        }
    }

    /// Drops the TCP connection without a word (a link cut).
    pub fn cut(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.session.link_lost(now());
    }

    /// Points later reconnects at another address (another shard, a
    /// restarted hub).
    pub fn set_addr(&mut self, addr: SocketAddr) {
        self.addr = addr;
    }

    /// Opens a new connection and resumes the session.
    pub fn resume(&mut self) -> Result<(), ClientError> {
        let (stream, tls) = Self::open(self.addr, &self.ctx, self.local_ip)?;
        self.stream = stream;
        self.tls = tls;
        self.pump = Pump::new();
        self.session.reconnect(now());
        self.wait_established()
    }

    /// Closes the session cleanly.
    pub fn close(mut self) {
        self.session
            .close(switch_core::wire::CloseCode::Normal, "test done");
        let _ = self.pump();
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// An Ethernet frame from `src` to `dst` (last bytes of locally
/// administered MACs) carrying `payload`.
pub fn frame(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len().max(46));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]); // local experimental EtherType
    f.extend_from_slice(payload);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// A locally administered unicast MAC ending in `n`.
pub fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

pub const BROADCAST: [u8; 6] = [0xff; 6];

/// What [`TestClient::connect_ext`] adds to a plain connection.
#[derive(Default)]
pub struct Extras {
    /// Presented when the hub asks for a client certificate.
    pub cert: Option<certs::Identity>,
    /// Connect from this local address (e.g. 127.0.0.2).
    pub local_ip: Option<std::net::IpAddr>,
}

/// A TCP connection to `addr`, from `local` when given.
pub fn connect_from(
    addr: SocketAddr,
    local: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(ip) = local else {
        return TcpStream::connect(addr);
    };
    let domain = if ip.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(ip, 0).into())?;
    s.connect(&addr.into())?;
    Ok(s.into())
}
