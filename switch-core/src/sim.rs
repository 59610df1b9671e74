//! A deterministic in-memory link between a client and a hub session, with
//! a virtual clock and link cuts at any byte: the harness behind the resume
//! properties (in the spirit of quinn's `Pair` and smoltcp's netsim).
//!
//! The sim plays the hub's shell for the handshake: it parses the upgrade
//! request and runs the hub's own admission (`admission::decide`,
//! `admission::resume_refusal`): a new session, a resume of the existing
//! one by token, `409` for a resume from the future, `410 Gone` for an
//! unknown or ended session.

use std::time::{Duration, Instant};

use crate::admission::{self, Decision, Facts, HubFacts, KnownSession};
use crate::session::{Accept, Connect, Event, Session, SessionConfig};
use crate::wire::http::{self, FrontRequest, SessionToken};

/// One direction of the link: bytes written but not yet read, and bytes
/// read but not yet consumed by the receiving session.
#[derive(Default, Debug)]
struct Pipe {
    in_flight: Vec<u8>,
    unread: Vec<u8>,
}

/// A client session and a hub session joined by an in-memory link.
#[derive(Debug)]
pub struct Pair {
    pub now: Instant,
    pub client: Session,
    /// `None` until the hub has accepted the first upgrade.
    pub hub: Option<Session>,
    hub_config: SessionConfig,
    c2h: Pipe,
    h2c: Pipe,
    /// The hub has parsed the request on the current connection.
    hub_attached: bool,
    /// Frames each side delivered, in order.
    pub to_hub: Vec<Vec<u8>>,
    pub to_client: Vec<Vec<u8>>,
    /// Every event seen, per side.
    pub client_events: Vec<Event>,
    pub hub_events: Vec<Event>,
    next_token: u8,
    /// Bytes to move per direction per step (`usize::MAX` = everything).
    pub chunk: usize,
    /// `max_bytes` for each `poll_transmit`.
    pub transmit_budget: usize,
}

impl Pair {
    /// A client and (once the handshake runs) a hub, with the given configs.
    pub fn new(now: Instant, client_config: SessionConfig, hub_config: SessionConfig) -> Self {
        let mut client = Session::connect(
            now,
            client_config,
            Connect {
                hub: "DEFAULT".into(),
                host: "sim".into(),
                credentials: None,
            },
        );
        client.reconnect(now); // the link is up from the start
        Self {
            now,
            client,
            hub: None,
            hub_config,
            c2h: Pipe::default(),
            h2c: Pipe::default(),
            hub_attached: false,
            to_hub: Vec::new(),
            to_client: Vec::new(),
            client_events: Vec::new(),
            hub_events: Vec::new(),
            next_token: 1,
            chunk: usize::MAX,
            transmit_budget: 64 * 1024,
        }
    }

    /// The hub session (panics before the first handshake).
    pub fn hub(&mut self) -> &mut Session {
        self.hub.as_mut().expect("hub session exists")
    }

    /// Advances the virtual clock and fires both sides' timers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.handle_timeout(self.now);
        if let Some(h) = &mut self.hub {
            h.handle_timeout(self.now);
        }
        self.collect_events();
    }

    fn collect_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        if let Some(h) = &mut self.hub {
            while let Some(e) = h.poll_event() {
                self.hub_events.push(e);
            }
        }
    }

    /// One round: both sides transmit, then up to `chunk` bytes per
    /// direction are read by the other side. Returns whether anything moved.
    pub fn step(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        moved |= self
            .client
            .poll_transmit(now, &mut self.c2h.in_flight, self.transmit_budget)
            > 0;
        if self.hub_attached {
            if let Some(h) = &mut self.hub {
                moved |= h.poll_transmit(now, &mut self.h2c.in_flight, self.transmit_budget) > 0;
            }
        }
        // client → hub
        moved |= Self::carry(&mut self.c2h, self.chunk);
        if !self.hub_attached {
            self.hub_handshake();
        }
        if self.hub_attached {
            if let Some(h) = &mut self.hub {
                let to_hub = &mut self.to_hub;
                if let Ok(n) = h.handle_input(now, &self.c2h.unread, |f| to_hub.push(f.to_vec())) {
                    self.c2h.unread.drain(..n);
                }
            }
        }
        // hub → client
        moved |= Self::carry(&mut self.h2c, self.chunk);
        let to_client = &mut self.to_client;
        if let Ok(n) = self
            .client
            .handle_input(now, &self.h2c.unread, |f| to_client.push(f.to_vec()))
        {
            self.h2c.unread.drain(..n);
        }
        self.collect_events();
        moved
    }

    fn carry(pipe: &mut Pipe, chunk: usize) -> bool {
        let n = pipe.in_flight.len().min(chunk);
        pipe.unread.extend(pipe.in_flight.drain(..n));
        n > 0
    }

    /// The hub's shell: read the upgrade request and let the hub's own
    /// admission ([`admission::decide`]) accept it, resume, or refuse. The
    /// sim's hub is one anonymous virtual hub with at most one session, at
    /// shard 0, slot 0.
    fn hub_handshake(&mut self) {
        let Ok(Some((FrontRequest::Upgrade(req), n))) =
            http::parse_request(&self.c2h.unread, http::DEFAULT_MAX_HEAD)
        else {
            return;
        };
        self.c2h.unread.drain(..n);
        let known = match (&req.resume, &self.hub) {
            (Some(r), Some(h)) if h.token() == Some(r.token) => Some(KnownSession {
                hub: 0,
                user: "",
                shard: 0,
                slot: 0,
                user_exists: true,
            }),
            _ => None,
        };
        let facts = Facts {
            shutting_down: false,
            hub: Some(HubFacts {
                index: 0,
                anonymous: true,
            }),
            session: known,
        };
        let refusal = match admission::decide(&req, &facts) {
            Decision::New { .. } => {
                let token = SessionToken([self.next_token; 16]);
                self.next_token += 1;
                self.hub = Some(Session::accept(
                    self.now,
                    self.hub_config.clone(),
                    Accept { token, version: 1 },
                ));
                None
            }
            Decision::Resume { .. } => {
                let rx = req.resume.map_or(0, |r| r.rx);
                let found = self.hub.as_mut().map(|h| h.resume(self.now, rx));
                admission::resume_refusal(found)
            }
            Decision::Refuse(r) => Some(r),
        };
        match refusal {
            None => self.hub_attached = true,
            Some(r) => r.emit(&mut self.h2c.in_flight),
        }
    }

    /// Steps until nothing moves (at most `limit` rounds).
    pub fn drive(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("sim did not settle");
    }

    /// Cuts the link: bytes in flight and unread bytes are lost, both ends
    /// are told the transport is gone.
    pub fn cut(&mut self) {
        self.c2h = Pipe::default();
        self.h2c = Pipe::default();
        self.hub_attached = false;
        self.client.link_lost(self.now);
        if let Some(h) = &mut self.hub {
            h.link_lost(self.now);
        }
        self.collect_events();
    }

    /// The client opens a new connection and resumes (or starts a new session).
    pub fn reconnect(&mut self) {
        self.client.reconnect(self.now);
    }
}

/// An Ethernet-sized test frame whose bytes encode `(tag, n)` so a test can
/// tell every frame apart.
pub fn test_frame(tag: u8, n: u32, len: usize) -> Vec<u8> {
    let mut f = vec![tag; len.max(crate::wire::MIN_FRAME_LEN)];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, tag]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 1, tag]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    if f.len() >= 18 {
        f[14..18].copy_from_slice(&n.to_be_bytes());
    }
    f
}
