//! An async `vhub/1` session for load generation: tokio TCP, sans-IO TLS
//! (`certs::tls::TlsConn`), and switch-core's `Session`. One task per
//! session; it sends what its traffic plan allows, reads everything that
//! arrives, and records sequence gaps and one-way latency.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certs::tls::TlsConn;
use hdrhistogram::Histogram;
use openssl::ssl::SslContext;
use switch_core::pump::Pump;
use switch_core::session::{Connect, Event, Session, SessionConfig, State};
use switch_core::wire::http::Credentials;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Bytes of bench header inside each frame's payload.
pub const HEADER: usize = 14 + 4 + 8 + 8;
/// EtherType of bench frames (IEEE local experimental).
pub const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

/// Per-session shared counters (read by the reporter, written by tasks).
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub received: AtomicU64,
    pub received_bytes: AtomicU64,
    pub reordered: AtomicU64,
    pub client_drops: AtomicU64,
    /// Frames received that were addressed to someone else (flooded).
    pub foreign: AtomicU64,
    /// Frames from this session that some receiver got (for the window).
    pub delivered: AtomicU64,
    pub wake: Notify,
}

pub fn mac_of(id: u32) -> [u8; 6] {
    let b = id.to_be_bytes();
    [0x02, 0xbe, b[0], b[1], b[2], b[3]]
}

pub fn id_of(mac: &[u8]) -> Option<u32> {
    (mac[0] == 0x02 && mac[1] == 0xbe).then(|| u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]))
}

/// Writes a bench frame into `buf` (resized to `len`).
pub fn build_frame(buf: &mut Vec<u8>, dst: [u8; 6], src: u32, seq: u64, ts: u64, len: usize) {
    buf.clear();
    buf.extend_from_slice(&dst);
    buf.extend_from_slice(&mac_of(src));
    buf.extend_from_slice(&ETHERTYPE);
    buf.extend_from_slice(&src.to_be_bytes());
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&ts.to_be_bytes());
    buf.resize(len.max(HEADER), 0);
}

/// Opens TCP + TLS + the `vhub/1` upgrade. Returns when established.
pub async fn connect(
    addr: SocketAddr,
    hub: &str,
    creds: Option<(String, String)>,
    ctx: &SslContext,
    config: SessionConfig,
    epoch: Instant,
) -> anyhow::Result<Conn> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut tls = TlsConn::client(ctx, None)?;
    let mut buf = vec![0u8; 64 * 1024];
    tls_handshake(&mut stream, &mut tls, &mut buf).await?;
    let mut session = Session::connect(
        Instant::now(),
        config,
        Connect {
            hub: hub.to_owned(),
            host: addr.to_string(),
            credentials: creds.map(|(user, password)| Credentials { user, password }),
        },
    );
    session.reconnect(Instant::now()); // TCP and TLS are up
    let mut c = Conn {
        stream,
        tls,
        session,
        pump: Pump::new(),
        cipher_out: Vec::new(),
        buf,
        epoch,
    };
    loop {
        c.flush().await?;
        let n = c.stream.read(&mut c.buf).await?;
        if n == 0 {
            anyhow::bail!("hub closed during the upgrade");
        }
        c.tls.feed(&c.buf[..n]);
        c.input(|_| {})?;
        while let Some(e) = c.session.poll_event() {
            match e {
                Event::Established { .. } => return Ok(c),
                Event::Refused(r) => anyhow::bail!("hub refused the session: {r}"),
                _ => {}
            }
        }
        if c.session.state() == State::Closed {
            anyhow::bail!("session closed during the upgrade");
        }
    }
}

/// Drives a TLS handshake (either side) over a tokio stream.
pub async fn tls_handshake(
    stream: &mut TcpStream,
    tls: &mut TlsConn,
    buf: &mut [u8],
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    loop {
        let done = tls.handshake()?;
        tls.take_ciphertext(&mut out);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if done {
            return Ok(());
        }
        let n = stream.read(buf).await?;
        if n == 0 {
            anyhow::bail!("the peer closed the connection during the TLS handshake");
        }
        tls.feed(&buf[..n]);
    }
}

/// An established bench session.
pub struct Conn {
    pub stream: TcpStream,
    pub tls: TlsConn,
    pub session: Session,
    pump: Pump,
    cipher_out: Vec<u8>,
    buf: Vec<u8>,
    epoch: Instant,
}

/// What a session does during the run.
pub struct Plan {
    pub id: u32,
    /// Destinations, cycled through (empty = only receive).
    pub dsts: Vec<[u8; 6]>,
    /// Frame sizes, cycled through.
    pub sizes: Vec<usize>,
    /// Frames per second (0 = as fast as the window allows).
    pub rate: u64,
    /// Most frames in flight (sent, not yet seen by a receiver).
    pub window: u64,
    /// Start sending at this instant (after every session announced its MAC).
    pub start: Instant,
    /// Stop sending at this instant.
    pub until: Instant,
    /// Sessions, by id, for the window and wake-ups.
    pub all: Arc<Vec<Counters>>,
}

impl Conn {
    /// Runs what TLS decrypted through the session, frames to `deliver`.
    fn input(&mut self, deliver: impl FnMut(&[u8])) -> anyhow::Result<()> {
        let input = self
            .pump
            .input(Instant::now(), &mut self.tls, &mut self.session, deliver)?;
        if let Some(e) = input.protocol_error {
            return Err(e.into());
        }
        Ok(())
    }

    /// Encrypts and writes what the session has to send.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        self.session.handle_timeout(now);
        while self.pump.output(
            now,
            &mut self.tls,
            &mut self.session,
            256 * 1024,
            &mut self.cipher_out,
        )? > 0
        {}
        if !self.cipher_out.is_empty() {
            self.stream.write_all(&self.cipher_out).await?;
            self.cipher_out.clear();
        }
        Ok(())
    }

    /// Keeps the session alive (keep-alives, ACKs, PONGs) until `go` turns
    /// true: while 10,000 sessions connect a few at a time, the first ones
    /// must not time out.
    pub async fn hold(
        &mut self,
        go: &mut tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        while !*go.borrow() {
            self.flush().await?;
            let wait = self
                .session
                .poll_timeout()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                r = self.stream.read(&mut self.buf) => {
                    let n = r?;
                    if n == 0 {
                        anyhow::bail!("hub closed the connection while the others connected");
                    }
                    self.tls.feed(&self.buf[..n]);
                    // Nothing is sent before the run: any frame is stray.
                    self.input(|_| {})?;
                }
                _ = go.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        Ok(())
    }

    /// The bench's end of the TCP connection: its port names the session
    /// in the hub's admin API.
    pub fn local_port(&self) -> std::io::Result<u16> {
        Ok(self.stream.local_addr()?.port())
    }

    /// Closes a session the run does not need (CLOSE, then the socket).
    pub async fn close(mut self) {
        self.session
            .close(switch_core::wire::CloseCode::Normal, "not needed");
        let _ = self.flush().await;
    }

    /// Runs the plan until `until` plus a drain period with no traffic.
    pub async fn run(mut self, plan: Plan, hist: &mut Histogram<u64>) -> anyhow::Result<()> {
        let me = &plan.all[plan.id as usize];
        let mut next_seq = vec![1u64; plan.dsts.len()];
        // Receiver state: next expected sequence number per sender id.
        let mut expected: seq_map::SeqMap = seq_map::SeqMap::default();
        let mut frame = Vec::with_capacity(2048);
        let mut di = 0usize;
        let mut si = 0usize;
        let mut sent_total = 0u64;
        let mut last_progress = Instant::now();
        let mut last_delivered = 0u64;
        let mut drain_since: Option<Instant> = None;
        // Announce our MAC (sequence 0) so the hub learns it before the
        // measured traffic: a frame to ourselves, which the hub learns from
        // and then drops (same segment) — not a broadcast, which with
        // 10,000 sessions would be 10^8 copies queued before the run.
        // Only unicast senders need it (their peers send back to them).
        let my_mac = mac_of(plan.id);
        if plan.dsts.first().is_some_and(|d| d[0] & 1 == 0) {
            build_frame(&mut frame, my_mac, plan.id, 0, 0, 64);
            let _ = self.session.send_frame(&frame);
        }
        loop {
            let now = Instant::now();
            let sending = now >= plan.start && now < plan.until && !plan.dsts.is_empty();
            let warming = now < plan.start;
            // 1. Queue frames allowed by rate or window.
            if sending {
                let allowed = if plan.rate > 0 {
                    let due = (now - plan.start).as_secs_f64() * plan.rate as f64;
                    (due as u64).saturating_sub(sent_total).min(256)
                } else {
                    let delivered = me.delivered.load(Relaxed);
                    if delivered != last_delivered {
                        last_delivered = delivered;
                        last_progress = now;
                    } else if now - last_progress > Duration::from_millis(200) {
                        // Frames in flight were lost: do not stall forever.
                        me.delivered.store(sent_total, Relaxed);
                        last_progress = now;
                    }
                    (plan
                        .window
                        .saturating_sub(sent_total.saturating_sub(me.delivered.load(Relaxed))))
                    .min(256)
                };
                for _ in 0..allowed {
                    let dst = plan.dsts[di % plan.dsts.len()];
                    let slot = di % plan.dsts.len();
                    di += 1;
                    let len = plan.sizes[si % plan.sizes.len()];
                    si += 1;
                    let ts = (now - self.epoch).as_nanos() as u64;
                    build_frame(&mut frame, dst, plan.id, next_seq[slot], ts, len);
                    next_seq[slot] += 1;
                    match self.session.send_frame(&frame) {
                        Ok(()) => {
                            sent_total += 1;
                            me.sent.fetch_add(1, Relaxed);
                            me.sent_bytes.fetch_add(frame.len() as u64, Relaxed);
                        }
                        Err(_) => {
                            me.client_drops.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
            self.flush().await?;
            // 2. Read whatever is there (wait a little if nothing).
            let wait = if warming {
                (plan.start - now).min(Duration::from_millis(50))
            } else if sending && plan.rate > 0 {
                Duration::from_micros(200)
            } else if sending {
                Duration::from_millis(5)
            } else {
                Duration::from_millis(50)
            };
            let read = tokio::select! {
                r = self.stream.read(&mut self.buf) => Some(r),
                _ = me.wake.notified(), if sending && plan.rate == 0 => None,
                _ = tokio::time::sleep(wait) => None,
            };
            let mut got = 0u64;
            if let Some(r) = read {
                let n = r?;
                if n == 0 {
                    if sending {
                        anyhow::bail!("hub closed the connection");
                    }
                    break; // the peer went away while we were draining
                }
                self.tls.feed(&self.buf[..n]);
                let now_ns = (Instant::now() - self.epoch).as_nanos() as u64;
                let all = &plan.all;
                self.input(|f| {
                    if f.len() < HEADER || f[12..14] != ETHERTYPE {
                        return;
                    }
                    let src = u32::from_be_bytes(f[14..18].try_into().unwrap());
                    let seq = u64::from_be_bytes(f[18..26].try_into().unwrap());
                    if seq == 0 {
                        return; // a MAC announcement
                    }
                    if f[0..6] != my_mac && f[0] & 1 == 0 {
                        me.foreign.fetch_add(1, Relaxed);
                        return;
                    }
                    let ts = u64::from_be_bytes(f[26..34].try_into().unwrap());
                    got += 1;
                    me.received.fetch_add(1, Relaxed);
                    me.received_bytes.fetch_add(f.len() as u64, Relaxed);
                    let exp = expected.entry(src);
                    if seq < *exp {
                        me.reordered.fetch_add(1, Relaxed);
                    } else {
                        *exp = seq + 1;
                    }
                    let _ = hist.record(now_ns.saturating_sub(ts).max(1) / 1000);
                    if let Some(c) = all.get(src as usize) {
                        c.delivered.fetch_add(1, Relaxed);
                        c.wake.notify_one();
                    }
                })?;
            }
            // 3. After the sending period: drain until quiet for a second.
            // An idle session (nothing to send) stays until the end too.
            if !sending && !warming && (now >= plan.until || !plan.dsts.is_empty()) {
                if got > 0 {
                    drain_since = None;
                } else {
                    let since = *drain_since.get_or_insert(Instant::now());
                    if Instant::now() - since > Duration::from_millis(1000) {
                        break;
                    }
                }
            }
        }
        self.session
            .close(switch_core::wire::CloseCode::Normal, "bench done");
        let _ = self.flush().await;
        Ok(())
    }
}

/// A tiny map from sender id to next expected sequence number: a Vec for
/// small ids (the common case), no hashing.
mod seq_map {
    #[derive(Default)]
    pub struct SeqMap(Vec<u64>);
    impl SeqMap {
        pub fn entry(&mut self, id: u32) -> &mut u64 {
            let i = id as usize;
            if self.0.len() <= i {
                self.0.resize(i + 1, 0);
            }
            &mut self.0[i]
        }
    }
}
