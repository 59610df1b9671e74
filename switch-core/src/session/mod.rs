//! One end of a `vhub/1` session, as a state machine fed with bytes and time.
//!
//! ```text
//!      client: connect() + reconnect()     hub: accept()
//!                 │                              │
//!                 ▼        101 received          ▼
//!           Handshaking ───────────────────► Established ◄──┐
//!                 ▲                              │          │ resume (hub)
//!  reconnect()    │            link_lost() or    │          │ 101 with Vhub-Rx (client)
//!  (client)       │            keep-alive timeout▼          │
//!                 └─────────────────────────  Detached ─────┘
//!                                                │ grace period over (hub),
//!                                                ▼ CLOSE, fatal refusal
//!                                              Closed
//! ```
//!
//! Frames carry consecutive sequence numbers per direction, starting at 1.
//! Every frame handed to [`Session::send_frame`] is kept in a bounded
//! retransmit buffer until the peer acknowledges it (cumulatively, with
//! ACK messages that this end sends at most every [`SessionConfig::ack_every`]
//! frames or [`SessionConfig::ack_delay`]). When a link dies, the client
//! reconnects and both ends tell each other the last sequence number they
//! received; each then re-sends what the other is missing, and the receiver
//! drops anything it has already seen. Frames sent while detached simply
//! wait in the same buffer.
//!
//! ## When the buffer is full
//!
//! The buffer is bounded by [`SessionConfig::max_buffered_frames`] and
//! [`SessionConfig::max_buffered_bytes`]. A new frame that does not fit:
//!
//! 1. first evicts the oldest frames that were already *transmitted* (still
//!    unacknowledged). On a live link those almost always arrive anyway; the
//!    eviction only costs the ability to re-send them after a link loss. It is
//!    counted in [`SessionStats::evicted`], and if a resume later finds the peer
//!    missing an evicted frame, the gap is counted in [`SessionStats::lost_on_resume`].
//! 2. if every buffered frame is still waiting for its first transmission (a
//!    detached session, or a peer that reads slower than we send), the *new*
//!    frame is dropped — a tail drop, like a real switch port — and counted in
//!    [`SessionStats::tail_drops`].
//!
//! Nothing is dropped silently: every loss lands in one of those counters.

mod ring;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::wire::http::{
    self, Credentials, Refusal, ResponseError, Resume, SessionToken, UpgradeRequest,
    UpgradeResponse,
};
use crate::wire::message::{FRAMES_PREFIX_LEN, RECORD_PREFIX_LEN};
use crate::wire::{self, CloseCode, FramesWriter, Limits, Message, WireError, HEADER_LEN};
use ring::ByteRing;

/// Tunables of a session. The hub's values win in the handshake for
/// keep-alive, timeout and limits.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Send a PING after this long without sending or receiving anything.
    pub keepalive: Duration,
    /// Declare the link dead after this long without receiving anything.
    pub timeout: Duration,
    /// How long the hub keeps a detached session for a resume.
    pub detach_grace: Duration,
    /// Frame size and batch limits.
    pub limits: Limits,
    /// Most frames kept for retransmission (unacked plus not yet sent).
    pub max_buffered_frames: usize,
    /// Most bytes kept for retransmission (frame bytes + 4 per frame).
    pub max_buffered_bytes: usize,
    /// Send an ACK after this many new frames received…
    pub ack_every: u64,
    /// …or once this many frame bytes arrived unacknowledged (64 KiB
    /// offload super frames fill the peer's buffer long before 64 frames)…
    pub ack_bytes: u64,
    /// …or this long after the first unacknowledged one, whichever is first.
    pub ack_delay: Duration,
    /// Frames carry a `virtio_net_hdr` (see [`crate::offload`]). A client
    /// sets it to ask for it; after the handshake it says whether the hub
    /// agreed. A hub sets it on the sessions it accepts with offload.
    pub offload: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            keepalive: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            detach_grace: Duration::from_secs(60),
            limits: Limits::default(),
            max_buffered_frames: 4096,
            max_buffered_bytes: 1 << 20,
            ack_every: 64,
            ack_bytes: 256 * 1024,
            ack_delay: Duration::from_millis(5),
            offload: false,
        }
    }
}

/// Where a session is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    /// Client: the upgrade request is out (or about to be), waiting for 101.
    Handshaking,
    /// Frames flow.
    Established,
    /// The link is gone; frames wait in the buffer for a resume.
    Detached,
    /// Finished; nothing more will happen.
    Closed,
}

/// What happened, for the shell to act on and to tell the user.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// The session is up: new (`resumed == false`), or resumed after a link
    /// loss with `resent` frames transmitted again and `lost` frames the peer
    /// missed that were no longer in the buffer.
    Established {
        resumed: bool,
        resent: u64,
        lost: u64,
    },
    /// The hub no longer knows the session we tried to resume (it restarted,
    /// or the grace period passed). The client should reconnect: a fresh
    /// session is requested next time; unsent frames are kept.
    SessionExpired { unconfirmed: u64 },
    /// Nothing was received for the timeout: drop the connection. The
    /// session is now detached.
    LinkDead,
    /// The hub refused the upgrade. If [`Refusal::is_retryable`], the session
    /// is detached and may reconnect later; otherwise it is closed.
    Refused(Refusal),
    /// The session ended.
    Closed {
        code: CloseCode,
        reason: String,
        by_peer: bool,
    },
}

/// Counters of one session, for metrics and status lines.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct SessionStats {
    /// Frames accepted by `send_frame` (assigned a sequence number).
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames delivered to the shell (each exactly once).
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames transmitted a second time after a resume.
    pub resent: u64,
    /// New frames refused because the buffer was full of unsent frames.
    pub tail_drops: u64,
    /// Transmitted-but-unacked frames dropped from the buffer to make room.
    pub evicted: u64,
    /// Frames the peer missed at a resume that were no longer buffered.
    pub lost_on_resume: u64,
    /// Frames received twice (after a resume) and dropped.
    pub rx_duplicates: u64,
    /// Gaps in the received sequence (frames the peer could not re-send).
    pub rx_gaps: u64,
    /// Frames sent before a session expired whose delivery is unknown.
    pub unconfirmed: u64,
    /// Successful resumes.
    pub resumes: u64,
    /// Keep-alive timeouts.
    pub link_deaths: u64,
    pub pings_sent: u64,
    pub pongs_received: u64,
}

/// The peer broke the protocol. The session is closed and a CLOSE with
/// [`CloseCode::ProtocolError`] is queued; transmit it, then drop the link.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SessionError {
    #[error("malformed message: {0}")]
    Wire(#[from] WireError),
    #[error("malformed upgrade response: {0}")]
    Response(#[from] ResponseError),
    #[error("ack for frame {acked}, but only {sent} were sent")]
    AckFromTheFuture { acked: u64, sent: u64 },
    #[error("binary message before the handshake completed")]
    NotEstablished,
    #[error("the hub answered with a different protocol version ({0})")]
    WrongVersion(u32),
    #[error("the hub's limits are out of range: max frame {max_frame}, max batch {max_batch}")]
    BadLimits { max_frame: u32, max_batch: u32 },
}

/// Why a frame was not queued.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SendError {
    #[error("buffer full: frame dropped")]
    Full,
    #[error("frame of {0} bytes is outside the negotiated limits")]
    BadLength(usize),
    #[error("session closed")]
    Closed,
}

/// Why a resume was refused (hub side). The hub answers 409 and keeps the
/// session as it was.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("the client claims to have received frame {claimed}, but only {sent} were sent")]
    RxFromTheFuture { claimed: u64, sent: u64 },
    #[error("session is closed")]
    Closed,
}

/// The hub's parameters for a new session (see [`Session::accept`]).
#[derive(Clone, Copy, Debug)]
pub struct Accept {
    pub token: SessionToken,
    pub version: u32,
}

/// Client-side identity for the upgrade request.
#[derive(Clone, Debug)]
pub struct Connect {
    pub hub: String,
    pub host: String,
    pub credentials: Option<Credentials>,
}

#[derive(Debug)]
enum Role {
    Client { connect: Connect },
    Hub,
}

/// One end of a session. See the module documentation.
#[derive(Debug)]
pub struct Session {
    role: Role,
    state: State,
    config: SessionConfig,
    /// Origin of PING payloads (nanoseconds since this instant).
    epoch: Instant,
    token: Option<SessionToken>,

    // --- transmit side ---
    ring: ByteRing,
    /// Sequence number of the oldest frame in `ring`.
    ring_first: u64,
    /// Next sequence number to assign.
    tx_next: u64,
    /// Next sequence number to transmit (`ring_first ..= tx_next`).
    tx_sent: u64,
    /// Byte offset of frame `tx_sent` in `ring`.
    sent_offset: usize,
    /// Highest sequence number ever transmitted.
    tx_high: u64,
    /// Highest cumulative ack from the peer.
    peer_acked: u64,

    // --- receive side ---
    rx_last: u64,
    ack_sent: u64,
    /// Client: the offload the caller asked for (the config's flag becomes
    /// what the hub granted).
    wants_offload: bool,
    /// Frame bytes received since the last ACK sent.
    rx_unacked_bytes: u64,
    ack_deadline: Option<Instant>,

    // --- control output ---
    handshake_out: Vec<u8>,
    pongs_due: VecDeque<u64>,
    close_out: Option<(CloseCode, String)>,

    // --- timers ---
    last_rx: Instant,
    last_tx: Instant,
    last_ping: Option<Instant>,
    detached_at: Option<Instant>,
    rtt: Option<Duration>,

    events: VecDeque<Event>,
    stats: SessionStats,
}

/// Largest head of an upgrade response the client accepts.
const MAX_RESPONSE_HEAD: usize = http::DEFAULT_MAX_HEAD;
/// At most this many PONGs queued: a PING flood cannot grow memory.
const MAX_PONGS_DUE: usize = 8;

impl Session {
    fn new(role: Role, state: State, now: Instant, config: SessionConfig) -> Self {
        let wants_offload = config.offload;
        Self {
            role,
            state,
            config,
            epoch: now,
            token: None,
            ring: ByteRing::default(),
            ring_first: 1,
            tx_next: 1,
            tx_sent: 1,
            sent_offset: 0,
            tx_high: 0,
            peer_acked: 0,
            rx_last: 0,
            ack_sent: 0,
            wants_offload,
            rx_unacked_bytes: 0,
            ack_deadline: None,
            handshake_out: Vec::new(),
            pongs_due: VecDeque::new(),
            close_out: None,
            last_rx: now,
            last_tx: now,
            last_ping: None,
            detached_at: None,
            rtt: None,
            events: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// A client session with no link yet: it runs no timers and sends
    /// nothing until [`reconnect`](Self::reconnect) says a link is up
    /// (however long TCP, a relay and TLS take to get there).
    pub fn connect(now: Instant, config: SessionConfig, connect: Connect) -> Self {
        Self::new(Role::Client { connect }, State::Detached, now, config)
    }

    /// A hub session for an upgrade request the hub has accepted
    /// (authenticated, hub found). The first `poll_transmit` yields the
    /// `101 Switching Protocols`. The hub's `config` is what both ends use.
    pub fn accept(now: Instant, config: SessionConfig, accept: Accept) -> Self {
        let mut s = Self::new(Role::Hub, State::Established, now, config);
        s.token = Some(accept.token);
        s.emit_upgrade_response(None);
        s.events.push_back(Event::Established {
            resumed: false,
            resent: 0,
            lost: 0,
        });
        s
    }

    fn emit_upgrade_response(&mut self, resumed_rx: Option<u64>) {
        let resp = UpgradeResponse {
            version: 1,
            token: self.token.expect("hub sessions have a token"),
            resumed_rx,
            keepalive: self.config.keepalive,
            timeout: self.config.timeout,
            max_frame: self.config.limits.max_frame,
            max_batch: self.config.limits.max_batch,
            offload: self.config.offload,
        };
        self.handshake_out.clear();
        resp.emit(&mut self.handshake_out);
    }

    fn start_handshake(&mut self, now: Instant) {
        let Role::Client { connect } = &self.role else {
            return;
        };
        let mut req = UpgradeRequest::new(&connect.hub, &connect.host);
        req.credentials = connect.credentials.clone();
        req.resume = self.token.map(|token| Resume {
            token,
            rx: self.rx_last,
        });
        req.keepalive = Some(self.config.keepalive);
        req.timeout = Some(self.config.timeout);
        req.max_frame = Some(self.config.limits.max_frame);
        req.offload = self.wants_offload;
        self.handshake_out.clear();
        req.emit(&mut self.handshake_out);
        self.state = State::Handshaking;
        self.last_rx = now;
        self.last_tx = now;
        self.last_ping = None;
    }

    // ------------------------------------------------------------------
    // Inputs
    // ------------------------------------------------------------------

    /// Feeds received plaintext. Complete messages are processed; frames
    /// are handed to `deliver` in order, each exactly once, borrowed from
    /// `data`. Returns how many bytes were consumed: keep the rest and call
    /// again with more appended.
    ///
    /// On `Err` the session is closed with a CLOSE(protocol error) queued.
    pub fn handle_input(
        &mut self,
        now: Instant,
        data: &[u8],
        mut deliver: impl FnMut(&[u8]),
    ) -> Result<usize, SessionError> {
        let mut used = 0;
        if self.state == State::Handshaking {
            match self.handle_response(now, data) {
                Ok(0) => return Ok(0),
                Ok(n) => used = n,
                Err(e) => return Err(self.protocol_error(e)),
            }
        }
        if self.state != State::Established {
            // Detached or closed: whatever the old link still carries is ignored.
            return Ok(data.len());
        }
        if used < data.len() {
            self.last_rx = now;
        }
        loop {
            let msg = match wire::decode(&data[used..], &self.config.limits) {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(used),
                Err(e) => return Err(self.protocol_error(e.into())),
            };
            used += msg.1;
            match msg.0 {
                Message::Frames(frames) => {
                    // `first_seq + i` cannot overflow: the decoder checked
                    // first_seq + count. (A `(first_seq..).zip(..)` would step
                    // past u64::MAX once more and panic — found by fuzzing.)
                    for (i, frame) in frames.iter().enumerate() {
                        let seq = frames.first_seq() + i as u64;
                        if seq <= self.rx_last {
                            self.stats.rx_duplicates += 1;
                        } else {
                            self.stats.rx_gaps += seq - self.rx_last - 1;
                            self.rx_last = seq;
                            self.stats.rx_frames += 1;
                            self.stats.rx_bytes += frame.len() as u64;
                            self.rx_unacked_bytes += frame.len() as u64;
                            deliver(frame);
                        }
                    }
                    if self.ack_deadline.is_none() && self.rx_last > self.ack_sent {
                        self.ack_deadline = Some(now + self.config.ack_delay);
                    }
                }
                Message::Ack(seq) => {
                    if let Err(e) = self.handle_ack(seq) {
                        return Err(self.protocol_error(e));
                    }
                }
                Message::Ping(p) => {
                    if self.pongs_due.len() < MAX_PONGS_DUE {
                        self.pongs_due.push_back(p);
                    }
                }
                Message::Pong(p) => {
                    self.stats.pongs_received += 1;
                    // The payload is ours, but check it: a peer may echo anything.
                    if let Some(sent) = self.epoch.checked_add(Duration::from_nanos(p)) {
                        if sent <= now {
                            self.rtt = Some(now - sent);
                        }
                    }
                }
                Message::Close { code, reason } => {
                    self.state = State::Closed;
                    self.events.push_back(Event::Closed {
                        code,
                        reason: reason.to_owned(),
                        by_peer: true,
                    });
                    return Ok(data.len());
                }
            }
            if self.state != State::Established {
                return Ok(data.len());
            }
        }
    }

    fn handle_response(&mut self, now: Instant, data: &[u8]) -> Result<usize, SessionError> {
        let Some((resp, n)) = http::parse_response(data, MAX_RESPONSE_HEAD)? else {
            return Ok(0);
        };
        let resp = match resp {
            Ok(r) => r,
            Err(refusal) => {
                if refusal.status == http::Status::GONE && self.token.is_some() {
                    self.expire_session();
                } else if refusal.is_retryable() {
                    self.state = State::Detached;
                    self.events.push_back(Event::Refused(refusal));
                } else {
                    self.state = State::Closed;
                    self.events.push_back(Event::Refused(refusal));
                }
                return Ok(data.len());
            }
        };
        if resp.version != 1 {
            return Err(SessionError::WrongVersion(resp.version));
        }
        if !(wire::MIN_FRAME_LEN as u32..=Limits::MAX_FRAME_CEILING).contains(&resp.max_frame)
            || !(1..=Limits::MAX_BATCH_CEILING).contains(&resp.max_batch)
        {
            return Err(SessionError::BadLimits {
                max_frame: resp.max_frame,
                max_batch: resp.max_batch,
            });
        }
        let resumed = self.token == Some(resp.token) && resp.resumed_rx.is_some();
        if self.token.is_some() && !resumed {
            // Asked to resume, got a new session: the old one is gone.
            self.expire_session();
        }
        self.token = Some(resp.token);
        self.config.keepalive = resp.keepalive.max(Duration::from_millis(100));
        self.config.timeout = resp.timeout.max(self.config.keepalive);
        self.config.limits = Limits {
            max_frame: resp.max_frame,
            max_batch: resp.max_batch,
        };
        // Granted only if asked for: a hub cannot push a form on us.
        self.config.offload = resp.offload && self.wants_offload;
        self.state = State::Established;
        self.last_rx = now;
        let (resent, lost) = match resp.resumed_rx {
            Some(peer_rx) if resumed => {
                if peer_rx > self.tx_high {
                    return Err(SessionError::AckFromTheFuture {
                        acked: peer_rx,
                        sent: self.tx_high,
                    });
                }
                self.stats.resumes += 1;
                self.rewind_to_peer(peer_rx)
            }
            _ => (0, 0),
        };
        self.events.push_back(Event::Established {
            resumed,
            resent,
            lost,
        });
        Ok(n)
    }

    /// The resumed session starts over: a new session on the next reconnect.
    fn expire_session(&mut self) {
        // Frames transmitted on the lost session may or may not have arrived.
        let unconfirmed = self.tx_sent - self.ring_first;
        self.drop_front_frames(unconfirmed);
        self.stats.unconfirmed += unconfirmed;
        // Renumber what is left (never transmitted) from 1 for the new session.
        let pending = self.tx_next - self.ring_first;
        self.ring_first = 1;
        self.tx_sent = 1;
        self.tx_next = 1 + pending;
        self.sent_offset = 0;
        self.tx_high = 0;
        self.peer_acked = 0;
        self.rx_last = 0;
        self.ack_sent = 0;
        self.rx_unacked_bytes = 0;
        self.ack_deadline = None;
        self.token = None;
        self.state = State::Detached;
        self.events.push_back(Event::SessionExpired { unconfirmed });
    }

    fn handle_ack(&mut self, seq: u64) -> Result<(), SessionError> {
        if seq > self.tx_high {
            return Err(SessionError::AckFromTheFuture {
                acked: seq,
                sent: self.tx_high,
            });
        }
        if seq > self.peer_acked {
            self.peer_acked = seq;
            self.release_acked();
        }
        Ok(())
    }

    /// Drops every buffered frame the peer has acknowledged.
    fn release_acked(&mut self) {
        if self.peer_acked >= self.ring_first {
            let n = (self.peer_acked + 1 - self.ring_first).min(self.tx_sent - self.ring_first);
            self.drop_front_frames(n);
        }
    }

    /// Removes `n` frames from the front of the buffer (they must have been
    /// transmitted, or the caller renumbers afterwards).
    fn drop_front_frames(&mut self, n: u64) {
        let mut bytes = 0;
        for _ in 0..n {
            bytes += RECORD_PREFIX_LEN + self.ring.read_u32(bytes) as usize;
        }
        self.ring.pop_front(bytes);
        self.ring_first += n;
        self.sent_offset = self.sent_offset.saturating_sub(bytes);
        if self.tx_sent < self.ring_first {
            self.tx_sent = self.ring_first;
        }
    }

    /// After a resume: the peer has everything up to `peer_rx`. Returns
    /// (frames to be re-sent, frames lost because they were evicted).
    fn rewind_to_peer(&mut self, peer_rx: u64) -> (u64, u64) {
        if peer_rx > self.peer_acked {
            self.peer_acked = peer_rx;
        }
        // Frames up to peer_rx arrived: release them (they were all transmitted).
        if self.peer_acked >= self.ring_first {
            let n = self.peer_acked + 1 - self.ring_first;
            self.drop_front_frames(n.min(self.tx_next - self.ring_first));
        }
        let lost = self.ring_first.saturating_sub(self.peer_acked + 1);
        self.stats.lost_on_resume += lost;
        let resent = self.tx_sent.saturating_sub(self.ring_first);
        self.stats.resent += resent;
        self.tx_sent = self.ring_first;
        self.sent_offset = 0;
        // The handshake told the peer our receive position: no ACK is owed.
        self.ack_sent = self.rx_last;
        self.rx_unacked_bytes = 0;
        self.ack_deadline = None;
        (resent, lost)
    }

    /// Queues a frame for the peer. It gets the next sequence number and
    /// stays buffered until acknowledged. See the module docs for what
    /// happens when the buffer is full.
    pub fn send_frame(&mut self, frame: &[u8]) -> Result<(), SendError> {
        if self.state == State::Closed {
            return Err(SendError::Closed);
        }
        if frame.len() < wire::MIN_FRAME_LEN || frame.len() > self.config.limits.max_frame as usize
        {
            return Err(SendError::BadLength(frame.len()));
        }
        let need = RECORD_PREFIX_LEN + frame.len();
        while self.tx_next - self.ring_first >= self.config.max_buffered_frames as u64
            || self.ring.len() + need > self.config.max_buffered_bytes
        {
            if self.tx_sent > self.ring_first {
                self.drop_front_frames(1);
                self.stats.evicted += 1;
            } else {
                self.stats.tail_drops += 1;
                return Err(SendError::Full);
            }
        }
        self.ring
            .push(&[&(frame.len() as u32).to_be_bytes(), frame]);
        self.tx_next += 1;
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        Ok(())
    }

    /// The transport under the session is gone (reset, closed, relay died).
    pub fn link_lost(&mut self, now: Instant) {
        if matches!(self.state, State::Established | State::Handshaking) {
            self.state = State::Detached;
            self.detached_at = Some(now);
            self.pongs_due.clear();
        }
    }

    /// Client: a link is up (the first one, or a new one after a loss):
    /// start the handshake — a resume if the session has a token, a new
    /// session otherwise. The next `poll_transmit` yields the request.
    pub fn reconnect(&mut self, now: Instant) {
        if self.state == State::Detached {
            self.start_handshake(now);
        }
    }

    /// Hub: a client presented this session's token on a new connection,
    /// saying it received everything up to `peer_rx`. Any old link is
    /// considered dead (drop it); the next `poll_transmit` yields the `101`
    /// followed by whatever the client is missing.
    pub fn resume(&mut self, now: Instant, peer_rx: u64) -> Result<(), ResumeError> {
        if self.state == State::Closed {
            return Err(ResumeError::Closed);
        }
        if peer_rx > self.tx_high {
            return Err(ResumeError::RxFromTheFuture {
                claimed: peer_rx,
                sent: self.tx_high,
            });
        }
        self.state = State::Established;
        self.detached_at = None;
        self.last_rx = now;
        self.last_tx = now;
        self.last_ping = None;
        self.pongs_due.clear();
        self.stats.resumes += 1;
        self.emit_upgrade_response(Some(self.rx_last));
        let (resent, lost) = self.rewind_to_peer(peer_rx);
        self.events.push_back(Event::Established {
            resumed: true,
            resent,
            lost,
        });
        Ok(())
    }

    /// Ends the session: a CLOSE is queued for the peer (transmit it, then
    /// drop the link).
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.state == State::Closed {
            return;
        }
        if self.state == State::Established {
            self.close_out = Some((code, reason.to_owned()));
        }
        self.state = State::Closed;
        self.events.push_back(Event::Closed {
            code,
            reason: reason.to_owned(),
            by_peer: false,
        });
    }

    fn protocol_error(&mut self, e: SessionError) -> SessionError {
        if self.state == State::Established {
            self.close_out = Some((CloseCode::ProtocolError, e.to_string()));
        }
        self.state = State::Closed;
        self.events.push_back(Event::Closed {
            code: CloseCode::ProtocolError,
            reason: e.to_string(),
            by_peer: false,
        });
        e
    }

    /// Fires timers: keep-alive timeout, delayed ack (via poll_transmit),
    /// grace period of a detached hub session.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Established | State::Handshaking => {
                if now >= self.last_rx + self.config.timeout {
                    self.stats.link_deaths += 1;
                    self.link_lost(now);
                    self.events.push_back(Event::LinkDead);
                }
            }
            State::Detached => {
                if let (Role::Hub, Some(at)) = (&self.role, self.detached_at) {
                    if now >= at + self.config.detach_grace {
                        self.state = State::Closed;
                        self.events.push_back(Event::Closed {
                            code: CloseCode::Timeout,
                            reason: "detached longer than the grace period".into(),
                            by_peer: false,
                        });
                    }
                }
            }
            State::Closed => {}
        }
    }

    // ------------------------------------------------------------------
    // Outputs
    // ------------------------------------------------------------------

    fn ping_due(&self) -> Option<Instant> {
        if self.state != State::Established {
            return None;
        }
        let idle_since = self.last_tx.min(self.last_rx);
        let due = idle_since + self.config.keepalive;
        Some(match self.last_ping {
            Some(p) => due.max(p + self.config.keepalive),
            None => due,
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) or
    /// [`poll_transmit`](Self::poll_transmit) next has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Established | State::Handshaking => {
                let mut t = self.last_rx + self.config.timeout;
                if let Some(p) = self.ping_due() {
                    t = t.min(p);
                }
                if let Some(a) = self.ack_deadline {
                    t = t.min(a);
                }
                Some(t)
            }
            State::Detached => match (&self.role, self.detached_at) {
                (Role::Hub, Some(at)) => Some(at + self.config.detach_grace),
                _ => None,
            },
            State::Closed => None,
        }
    }

    /// Whether `poll_transmit` would append anything right now, ignoring
    /// timers: for a shell deciding whether to wake the writer.
    pub fn wants_transmit(&self) -> bool {
        !self.handshake_out.is_empty()
            || self.close_out.is_some()
            || (self.state == State::Established
                && (self.tx_sent < self.tx_next
                    || !self.pongs_due.is_empty()
                    || self.ack_due_by_count()))
    }

    /// Enough was received since the last ACK to send one without waiting.
    fn ack_due_by_count(&self) -> bool {
        self.rx_last >= self.ack_sent + self.config.ack_every
            || self.rx_unacked_bytes >= self.config.ack_bytes
    }

    /// Appends what should be sent now to `out` — the handshake, CLOSE,
    /// PONGs, a PING if due, an ACK if due, then frame batches until about
    /// `max_bytes` were appended (at least one batch if any frame waits).
    /// Returns the number of bytes appended.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>, max_bytes: usize) -> usize {
        let start = out.len();
        if !self.handshake_out.is_empty() {
            out.extend_from_slice(&self.handshake_out);
            self.handshake_out.clear();
        }
        if let Some((code, reason)) = self.close_out.take() {
            wire::encode_close(out, code, &reason);
        }
        if self.state == State::Established {
            while let Some(p) = self.pongs_due.pop_front() {
                wire::encode_pong(out, p);
            }
            if self.ping_due().is_some_and(|t| now >= t) {
                let payload = (now - self.epoch).as_nanos() as u64;
                wire::encode_ping(out, payload);
                self.last_ping = Some(now);
                self.stats.pings_sent += 1;
                // An idle session gives its buffer memory back.
                if self.ring.len() == 0 {
                    self.ring.shrink_if_empty();
                }
            }
            let frames_waiting = self.tx_sent < self.tx_next;
            if self.rx_last > self.ack_sent
                && (frames_waiting
                    || self.ack_due_by_count()
                    || self.ack_deadline.is_some_and(|d| now >= d))
            {
                wire::encode_ack(out, self.rx_last);
                self.ack_sent = self.rx_last;
                self.rx_unacked_bytes = 0;
                self.ack_deadline = None;
            }
            if frames_waiting {
                self.transmit_frames(out, start + max_bytes);
            }
        }
        let n = out.len() - start;
        if n > 0 {
            self.last_tx = now;
        }
        n
    }

    fn transmit_frames(&mut self, out: &mut Vec<u8>, limit: usize) {
        let max_batch = self.config.limits.max_batch as u64;
        let mut first = true;
        while self.tx_sent < self.tx_next && (first || out.len() < limit) {
            first = false;
            // Walk records to see how many fit in this batch.
            let mut count = 0u64;
            let mut bytes = 0usize;
            let budget = limit.saturating_sub(out.len() + HEADER_LEN + FRAMES_PREFIX_LEN);
            while self.tx_sent + count < self.tx_next && count < max_batch {
                let rec = RECORD_PREFIX_LEN + self.ring.read_u32(self.sent_offset + bytes) as usize;
                if count > 0 && bytes + rec > budget {
                    break;
                }
                bytes += rec;
                count += 1;
            }
            let mut w = FramesWriter::begin(out, self.tx_sent);
            let (a, b) = self.ring.slices(self.sent_offset, bytes);
            w.push_records(a, 0);
            w.push_records(b, count as u32);
            w.finish();
            self.tx_sent += count;
            self.sent_offset += bytes;
            self.tx_high = self.tx_high.max(self.tx_sent - 1);
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ------------------------------------------------------------------
    // Introspection
    // ------------------------------------------------------------------

    pub fn state(&self) -> State {
        self.state
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    pub fn token(&self) -> Option<SessionToken> {
        self.token
    }

    /// The effective configuration (after the handshake, the hub's values).
    /// Whether this session's frames carry a `virtio_net_hdr` (asked for
    /// and granted; see [`crate::offload`]).
    pub fn offload(&self) -> bool {
        self.config.offload
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Round-trip time from the last PING/PONG.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Highest sequence number received from the peer.
    pub fn rx_last(&self) -> u64 {
        self.rx_last
    }

    /// Bytes buffered (frames + 4 per frame), against
    /// [`SessionConfig::max_buffered_bytes`].
    pub fn buffered_bytes(&self) -> usize {
        self.ring.len()
    }

    /// Frames buffered (unacknowledged or not yet sent).
    pub fn buffered_frames(&self) -> u64 {
        self.tx_next - self.ring_first
    }

    /// Bytes of buffer memory held.
    pub fn buffer_capacity(&self) -> usize {
        self.ring.capacity()
    }
}

#[cfg(test)]
mod tests;
