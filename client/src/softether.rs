//! vnic's SoftEther session: what rides on the TLS stream of a
//! `softether://` link instead of the `vhub/1` [`Session`]. It joins
//! switch-core's sans-IO pieces into the shape the bridge drives:
//!
//! ```text
//!   reconnect(now) ─► ClientHandshake::login (watermark POST, hello, login PACK)
//!   handle_input ───► handshake answers … welcome ─► Decoder: frames ─► deliver
//!   send_frame ─────► BatchWriter (one batch until the next poll_transmit)
//!   handle_timeout ─► Liveness: keep-alives when idle, LinkDead after T
//! ```
//!
//! Like `Session` it does no I/O and reads no clock (`now` is a
//! parameter); unlike it there is no resume: a SoftEther server knows a
//! session by its TCP connections, and the Debian 5.01 client cannot
//! re-attach either (PROTOCOL-NOTES.md §8), so every link starts with a
//! full login and frames that arrive from the TAP while there is no link
//! are dropped (counted as tail drops). One TCP connection, no
//! compression, no offload: the welcome is checked for that by
//! [`ClientHandshake`].
//!
//! [`Session`]: switch_core::session::Session

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use switch_core::session::{SendError, SessionConfig, SessionStats, State};
use switch_core::softether::data::MAX_FRAME;
use switch_core::softether::{
    BatchWriter, ClientAuth, ClientConfig, ClientError, ClientEvent, ClientHandshake, DataError,
    Decoder, HashedPassword, Item, Liveness,
};
use switch_core::wire::http::Credentials;

/// Most frames in one batch: a new one is started after this many, so a
/// receiver's batch limit (8192 in vhub's decoder) is never reached.
const MAX_BATCH_FRAMES: u32 = 1024;

/// What the SoftEther session tells the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeEvent {
    /// Logged in: frames flow. `session` is the server's session name
    /// (`SID-USER-n`), `server` its product string.
    Established { session: String, server: String },
    /// The login failed (refused by the server, not a SoftEther server,
    /// no answer in time, a welcome this client cannot follow).
    HandshakeFailed(ClientError),
    /// The server broke the data-phase framing: the link is unusable.
    Broken(DataError),
    /// Nothing arrived for the session timeout.
    LinkDead(Duration),
}

/// Why [`SoftEther::handle_input`] stopped (the event says the same).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SeError {
    #[error("SoftEther handshake: {0}")]
    Handshake(ClientError),
    #[error("SoftEther data: {0}")]
    Data(DataError),
}

enum Phase {
    /// No link (before the first, or after a loss).
    Down,
    Handshake(Box<ClientHandshake>),
    Data {
        decoder: Decoder,
        liveness: Liveness,
    },
    Closed,
}

/// One SoftEther client session over the bridge's links (module doc).
pub struct SoftEther {
    login: ClientConfig,
    /// Limits and timeouts the bridge reads (`config()`), as for `Session`.
    config: SessionConfig,
    phase: Phase,
    stats: SessionStats,
    events: VecDeque<SeEvent>,
    /// Plaintext to send: handshake requests, then batches and keep-alives.
    tx: Vec<u8>,
    /// Where the batch still open in `tx` starts.
    batch: Option<usize>,
    /// Frames in `tx`.
    tx_frames: u64,
    /// The server's session name, once logged in.
    name: Option<String>,
    /// The server's product string, from its hello.
    server: String,
}

impl std::fmt::Debug for SoftEther {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftEther")
            .field("hub", &self.login.hub)
            .field("user", &self.login.user)
            .field("state", &self.state())
            .finish()
    }
}

/// A per-machine `unique_id`-like value: the real client hashes host
/// facts; vnic draws one per process (the server only logs it).
fn unique_id() -> [u8; 20] {
    std::array::from_fn(|_| fastrand::u8(..))
}

impl SoftEther {
    /// A session for virtual hub `hub` at `host` (the `Host` header);
    /// password login with `credentials`, anonymous without.
    pub fn new(host: &str, hub: &str, credentials: Option<&Credentials>) -> Self {
        let (user, auth) = match credentials {
            Some(c) => (
                c.user.clone(),
                ClientAuth::Password(HashedPassword::new(&c.user, &c.password)),
            ),
            None => (String::new(), ClientAuth::Anonymous),
        };
        let login = ClientConfig::new(host, hub, &user, auth, unique_id());
        let mut config = SessionConfig {
            offload: false,
            // Frames wait in `tx` only until the next flush.
            max_buffered_frames: 4 * 1024,
            max_buffered_bytes: 8 << 20,
            ..SessionConfig::default()
        };
        config.limits.max_frame = MAX_FRAME;
        Self {
            login,
            config,
            phase: Phase::Down,
            stats: SessionStats::default(),
            events: VecDeque::new(),
            tx: Vec::new(),
            batch: None,
            tx_frames: 0,
            name: None,
            server: String::new(),
        }
    }

    pub fn state(&self) -> State {
        match self.phase {
            Phase::Down => State::Detached,
            Phase::Handshake(_) => State::Handshaking,
            Phase::Data { .. } => State::Established,
            Phase::Closed => State::Closed,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// The server's session name (`SID-USER-n`) once logged in.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn poll_event(&mut self) -> Option<SeEvent> {
        self.events.pop_front()
    }

    /// A new link is up (TLS done): log in on it.
    pub fn reconnect(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.reset_tx();
        self.name = None;
        let hs = ClientHandshake::login(now, self.login.clone(), fastrand::u64(..));
        self.phase = Phase::Handshake(Box::new(hs));
    }

    /// The link is gone; there is no resume.
    pub fn link_lost(&mut self, _now: Instant) {
        if !matches!(self.phase, Phase::Closed) {
            self.phase = Phase::Down;
        }
        self.reset_tx();
    }

    /// Ends the session (SoftEther has no close message: the bridge's TLS
    /// close_notify and FIN say it).
    pub fn close(&mut self) {
        self.phase = Phase::Closed;
        self.reset_tx();
    }

    /// The link will go to another server of the failover list.
    pub fn move_to(&mut self, host: &str, hub: &str) {
        self.login.host = host.to_owned();
        self.login.hub = hub.to_owned();
    }

    fn reset_tx(&mut self) {
        self.tx.clear();
        self.batch = None;
        self.tx_frames = 0;
    }

    /// Queues a frame for the next batch; only on a live session.
    pub fn send_frame(&mut self, frame: &[u8]) -> Result<(), SendError> {
        if !matches!(self.phase, Phase::Data { .. }) {
            // No link, no buffer: SoftEther cannot resume, so nothing
            // waits for the next one.
            self.stats.tail_drops += 1;
            return Err(SendError::Closed);
        }
        if frame.len() > MAX_FRAME as usize {
            return Err(SendError::BadLength(frame.len()));
        }
        let mut w = match self
            .batch
            .and_then(|at| BatchWriter::reopen(&mut self.tx, at))
        {
            Some(w) if w.count() < MAX_BATCH_FRAMES => w,
            _ => {
                self.batch = Some(self.tx.len());
                BatchWriter::new(&mut self.tx)
            }
        };
        w.push(frame)
            .map_err(|_| SendError::BadLength(frame.len()))?;
        self.tx_frames += 1;
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        Ok(())
    }

    pub fn buffered_frames(&self) -> u64 {
        self.tx_frames
    }

    pub fn buffered_bytes(&self) -> usize {
        self.tx.len()
    }

    /// Appends what is to be sent to `out` (all of it: it is at most a
    /// TAP batch or a handshake request); returns the bytes.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>, _max: usize) -> usize {
        if let Phase::Handshake(hs) = &mut self.phase {
            hs.poll_transmit(&mut self.tx);
        }
        let n = self.tx.len();
        if n == 0 {
            return 0;
        }
        if let Phase::Data { liveness, .. } = &mut self.phase {
            if self.tx_frames > 0 {
                liveness.on_send(now);
            }
        }
        if out.is_empty() {
            // Hand the buffer over instead of copying it.
            std::mem::swap(out, &mut self.tx);
        } else {
            out.extend_from_slice(&self.tx);
        }
        self.reset_tx();
        n
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Handshake(hs) => hs.poll_timeout(),
            Phase::Data { liveness, .. } => Some(liveness.poll_timeout()),
            Phase::Down | Phase::Closed => None,
        }
    }

    /// A handshake step overdue, a keep-alive due, or the link dead.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Handshake(hs) => {
                if let Err(e) = hs.handle_timeout(now) {
                    self.phase = Phase::Down;
                    self.events.push_back(SeEvent::HandshakeFailed(e));
                }
            }
            Phase::Data { liveness, .. } => {
                // A keep-alive goes after the batch, never inside it.
                self.batch = None;
                if let Err(e) = liveness.handle_timeout(now, &mut self.tx) {
                    self.phase = Phase::Down;
                    self.reset_tx();
                    self.events.push_back(SeEvent::LinkDead(e.0));
                }
            }
            Phase::Down | Phase::Closed => {}
        }
    }

    /// Feeds plaintext from the server: handshake answers, then frames
    /// (each handed to `deliver`). Returns the bytes used; keep the rest.
    pub fn handle_input(
        &mut self,
        now: Instant,
        input: &[u8],
        mut deliver: impl FnMut(&[u8]),
    ) -> Result<usize, SeError> {
        let mut used = 0;
        if let Phase::Handshake(hs) = &mut self.phase {
            match hs.handle_input(now, input) {
                Ok(n) => used = n,
                Err(e) => {
                    self.phase = Phase::Down;
                    self.events.push_back(SeEvent::HandshakeFailed(e.clone()));
                    return Err(SeError::Handshake(e));
                }
            }
            // The login request, once the hello is in.
            hs.poll_transmit(&mut self.tx);
            let mut welcome = None;
            while let Some(ev) = hs.poll_event() {
                match ev {
                    ClientEvent::Hello(h) => self.server = h.server.name,
                    ClientEvent::Established(w) => welcome = Some(w),
                    ClientEvent::Attached(_) => {}
                }
            }
            let Some(w) = welcome else {
                return Ok(used);
            };
            let timeout = Duration::from_millis(u64::from(w.timeout_ms.max(1000)));
            self.config.timeout = timeout;
            self.name = Some(w.session_name.clone());
            self.phase = Phase::Data {
                decoder: Decoder::default(),
                liveness: Liveness::new(now, timeout, fastrand::u64(..)),
            };
            self.events.push_back(SeEvent::Established {
                session: w.session_name,
                server: self.server.clone(),
            });
        }
        let Phase::Data { decoder, liveness } = &mut self.phase else {
            // No link or closed: what an old link still carries is ignored.
            return Ok(input.len());
        };
        loop {
            match decoder.decode(&input[used..]) {
                Ok(Some((item, n))) => {
                    used += n;
                    liveness.on_receive(now);
                    if let Item::Frame(f) = item {
                        self.stats.rx_frames += 1;
                        self.stats.rx_bytes += f.len() as u64;
                        deliver(f);
                    }
                }
                Ok(None) => return Ok(used),
                Err(e) => {
                    self.phase = Phase::Down;
                    self.reset_tx();
                    self.events.push_back(SeEvent::Broken(e));
                    return Err(SeError::Data(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
