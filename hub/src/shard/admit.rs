//! The `vhub/1` upgrade: switch-core's admission decides (new session,
//! resume, or a typed refusal); this file gathers its facts and acts on
//! the answer — logs in, makes the session and its fabric port, attaches a
//! resume, or moves the connection to the shard that owns the session.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use certs::tls::TlsConn;
use switch_core::admission::{
    self, Capacity, Decision, Facts, Full, HubFacts, KnownSession, Refuse, RefuseCode,
};
use switch_core::fabric::PortInfo;
use switch_core::offload::{self, Form};
use switch_core::session::{Accept, Session};
use switch_core::wire::http::{SessionToken, UpgradeRequest};
use tracing::{info, warn};

use super::front::HandshakeGuard;
use super::{Shard, Slot};
use crate::metrics::{Handshake, Limit};
use crate::net::{Backend, NetStream};
use crate::switchboard::{Control, SessionEntry};

/// Offload sessions: most 64 KiB super frames per message (a message stays
/// near 1 MiB); their buffer is `offload::OFFLOAD_BUFFER_BYTES`.
const OFFLOAD_MAX_BATCH: u32 = 16;

/// A connection moving to the shard that owns its session (resume on the
/// wrong shard).
pub struct Migration {
    pub fd: OwnedFd,
    pub tls: TlsConn,
    pub request: UpgradeRequest,
    pub entry: SessionEntry,
    pub token: SessionToken,
    pub peer: SocketAddr,
}

/// How a refusal is counted in `vhub_handshakes_total`.
pub(super) fn handshake_of(code: RefuseCode) -> Handshake {
    match code {
        RefuseCode::AuthRequired
        | RefuseCode::AuthFailed
        | RefuseCode::CertNotBound
        | RefuseCode::CertAmbiguous
        | RefuseCode::CertRefused => Handshake::AuthFailed,
        RefuseCode::LoginThrottled | RefuseCode::LimitSessions | RefuseCode::LimitSessionsUser => {
            Handshake::Limited
        }
        RefuseCode::UnknownHub => Handshake::UnknownHub,
        RefuseCode::SessionUnknown => Handshake::ResumeUnknown,
        RefuseCode::BadResume => Handshake::HttpError,
        RefuseCode::ShuttingDown => Handshake::ShuttingDown,
    }
}

impl<B: Backend> Shard<B> {
    /// Answers a refusal and closes.
    async fn refuse(&self, stream: B::Stream, mut tls: TlsConn, r: &Refuse) {
        self.sb.metrics.handshake(handshake_of(r.code));
        let mut resp = Vec::new();
        r.emit(&mut resp);
        self.respond_and_close(&stream, &mut tls, &resp).await;
    }

    /// What admission needs to know of this request, read from the
    /// switchboard, the registry and the user store.
    fn facts<'a>(&self, req: &UpgradeRequest, known: Option<&'a SessionEntry>) -> Facts<'a> {
        let hub = self.sb.enabled_hub(&req.hub).map(|index| HubFacts {
            index,
            anonymous: self.sb.hubs[index].anonymous.load(Ordering::Relaxed),
        });
        Facts {
            shutting_down: self.sb.is_shutting_down(),
            hub,
            session: known.map(|e| KnownSession {
                hub: e.hub,
                user: &e.user,
                shard: e.shard,
                slot: e.slot,
                user_exists: e.user.is_empty() || self.ctx.auth.auth.user_exists(&req.hub, &e.user),
            }),
        }
    }

    /// The `vhub/1` upgrade: new session or resume.
    pub(super) async fn upgrade(
        self: Rc<Self>,
        stream: B::Stream,
        tls: TlsConn,
        req: UpgradeRequest,
        peer: SocketAddr,
        guard: HandshakeGuard<B>,
    ) {
        let entry = req
            .resume
            .and_then(|r| self.sb.sessions.lock().get(&r.token).cloned());
        match admission::decide(&req, &self.facts(&req, entry.as_ref())) {
            Decision::Refuse(r) => self.refuse(stream, tls, &r).await,
            Decision::Resume { shard, .. } => {
                // A token lookup, no slow check: the handshake is over.
                drop(guard);
                let entry = entry.expect("a resume names a known session");
                let token = req.resume.expect("a resume has a token").token;
                if shard == self.id {
                    self.attach_resumed(stream, tls, req, entry, token, peer)
                        .await;
                } else {
                    self.migrate(stream, tls, req, entry, token, peer);
                }
            }
            Decision::New { hub } => self.new_session(stream, tls, req, hub, peer, guard).await,
        }
    }

    /// Hands a resumed connection to the shard that owns its session.
    fn migrate(
        &self,
        stream: B::Stream,
        tls: TlsConn,
        request: UpgradeRequest,
        entry: SessionEntry,
        token: SessionToken,
        peer: SocketAddr,
    ) {
        let fd = match stream.dup_fd() {
            Ok(fd) => fd,
            Err(e) => {
                warn!("cannot duplicate a socket for migration: {e}");
                return;
            }
        };
        let owner = entry.shard as usize;
        {
            let mut st = self.st.borrow_mut();
            st.counters.migrations += 1;
            self.sb.metrics.shards[self.id as usize].publish(&mut st.counters);
        }
        self.sb.mailboxes[owner]
            .control
            .push(Control::Migrate(Box::new(Migration {
                fd,
                tls,
                request,
                entry,
                token,
                peer,
            })));
        self.sb.mailboxes[owner].wake();
        // Our handle closes; the duplicate lives on in the owner.
        drop(stream);
    }

    /// A migrated connection arrives at the shard that owns its session.
    pub(super) async fn accept_migration(self: Rc<Self>, m: Migration) {
        let std_stream = std::net::TcpStream::from(m.fd);
        let stream = match B::stream_from_std(std_stream) {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot adopt a migrated connection: {e}");
                return;
            }
        };
        self.attach_resumed(stream, m.tls, m.request, m.entry, m.token, m.peer)
            .await;
    }

    /// Whether a new session fits the session limits (hub-wide, per
    /// virtual hub, per user); takes the user's place when it does.
    pub(super) fn reserve_capacity(
        &self,
        hub: usize,
        user: &str,
        peer: SocketAddr,
    ) -> Result<(), Refuse> {
        let m = &self.sb.metrics;
        let capacity = Capacity {
            hub_sessions: m.sessions_by_hub[hub].load(Ordering::Relaxed) as usize,
            hub_max: self.sb.hubs[hub].max_sessions.load(Ordering::Relaxed),
            total: m
                .sessions_by_hub
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .sum::<i64>() as usize,
            total_max: self.ctx.settings.max_sessions,
        };
        if let Err((full, r)) = admission::check_capacity(capacity) {
            let limit = match full {
                Full::Hub => Limit::SessionsPerHub,
                Full::Total => Limit::Sessions,
            };
            self.limit_reached(limit, peer, "new session refused; 429");
            return Err(r);
        }
        let per_user = self.ctx.settings.max_sessions_per_user;
        if !self.ctx.admission.add_user_session(hub, user, per_user) {
            self.limit_reached(Limit::SessionsPerUser, peer, "new session refused; 429");
            return Err(admission::user_limit_refusal(user, per_user));
        }
        Ok(())
    }

    /// A new session: log in, check the limits, make the session and its
    /// port, then run the connection.
    async fn new_session(
        self: Rc<Self>,
        stream: B::Stream,
        tls: TlsConn,
        req: UpgradeRequest,
        hub: usize,
        peer: SocketAddr,
        guard: HandshakeGuard<B>,
    ) {
        let vhub = &self.sb.hubs[hub];
        let cert = tls.client_cert();
        let anonymous = vhub.anonymous.load(Ordering::Relaxed);
        let login = self
            .login(
                vhub.name(),
                anonymous,
                req.credentials.as_ref(),
                &cert,
                peer,
            )
            .await;
        let user = match login {
            Ok(user) => user,
            Err(r) => return self.refuse(stream, tls, &r).await,
        };
        if let Err(r) = self.reserve_capacity(hub, &user, peer) {
            return self.refuse(stream, tls, &r).await;
        }
        // Counted from here: remove_slot uncounts it.
        drop(guard);
        let token = SessionToken(random_token());
        let session = Session::accept(
            Instant::now(),
            self.session_config(&req),
            Accept {
                token,
                version: req.version,
            },
        );
        let form = Form::of(session.offload());
        let endpoint = super::Endpoint::Session(Some(Box::new(session)));
        let port = PortInfo::vhub(self.id, 0, form);
        let slot = self.add_slot(hub, endpoint, port, token, &user, peer);
        self.sb.metrics.sessions_by_hub[hub].fetch_add(1, Ordering::Relaxed);
        self.sb.metrics.handshake(Handshake::New);
        if let Some(i) = tls.info() {
            self.sb.metrics.suite(&i.version, &i.cipher);
            info!(%peer, hub = %req.hub, user = %user, session = %token.short(), shard = self.id, tls = %i.version, suite = %i.cipher, "session established");
        }
        self.run_connection(stream, tls, slot).await;
    }

    /// The session's settings: the hub's, narrowed by what the client
    /// asked for (its largest frame, offload).
    fn session_config(&self, req: &UpgradeRequest) -> switch_core::session::SessionConfig {
        let mut cfg = self.ctx.settings.session.clone();
        if let Some(m) = req.max_frame {
            cfg.limits.max_frame = cfg
                .limits
                .max_frame
                .min(m.max(switch_core::wire::MIN_FRAME_LEN as u32));
        }
        cfg.offload &= req.offload;
        if cfg.offload {
            // 64 KiB super frames: a message stays near 1 MiB, the buffer
            // holds a few dozen of them.
            cfg.limits.max_frame = offload::MAX_VNET_FRAME;
            cfg.limits.max_batch = cfg.limits.max_batch.min(OFFLOAD_MAX_BATCH);
            cfg.max_buffered_bytes = cfg.max_buffered_bytes.max(offload::OFFLOAD_BUFFER_BYTES);
        }
        cfg
    }

    /// Gives a new session (`endpoint`, of `vhub/1` or SoftEther) a slot
    /// here, a port in its hub's fabric (`info`, its slot filled in here),
    /// a place in this shard's flood list and in the registry.
    pub(super) fn add_slot(
        &self,
        hub: usize,
        endpoint: super::Endpoint,
        mut info: PortInfo,
        token: SessionToken,
        user: &str,
        peer: SocketAddr,
    ) -> u32 {
        let slot = {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            let entry = st.slots.vacant_entry();
            let slot = entry.key() as u32;
            info.loc.slot = slot;
            let port = self.sb.add_port(hub, info);
            entry.insert(Slot {
                endpoint,
                hub,
                port,
                token,
                user: user.to_owned(),
                conn: None,
                detached: false,
                dirty: false,
                peer,
                buffered: 0,
            });
            st.local.add(hub, slot);
            slot
        };
        self.sb.sessions.lock().insert(
            token,
            SessionEntry {
                shard: self.id,
                slot,
                hub,
                user: user.to_owned(),
            },
        );
        slot
    }

    async fn attach_resumed(
        self: Rc<Self>,
        stream: B::Stream,
        tls: TlsConn,
        req: UpgradeRequest,
        entry: SessionEntry,
        token: SessionToken,
        peer: SocketAddr,
    ) {
        let rx = req.resume.map(|r| r.rx).unwrap_or(0);
        let found = {
            let mut st = self.st.borrow_mut();
            match st.slots.get_mut(entry.slot as usize) {
                Some(slot) if slot.token == token && slot.is_vhub_session() => {
                    if let Some(old) = slot.conn.take() {
                        // The client came back before we noticed the old link died.
                        old.close();
                    } else if slot.detached {
                        slot.detached = false;
                        self.sb.metrics.detached_by_hub[slot.hub].fetch_sub(1, Ordering::Relaxed);
                    }
                    slot.peer = peer;
                    let s = slot.session_mut().expect("session present");
                    let r = s.resume(Instant::now(), rx);
                    if r.is_err() {
                        // Stays detached: the next valid resume may still come.
                        slot.detached = true;
                        self.sb.metrics.detached_by_hub[slot.hub].fetch_add(1, Ordering::Relaxed);
                    }
                    Some(r)
                }
                _ => None,
            }
        };
        if let Some(r) = admission::resume_refusal(found) {
            return self.refuse(stream, tls, &r).await;
        }
        self.sb.metrics.handshake(Handshake::Resumed);
        if let Some(i) = tls.info() {
            self.sb.metrics.suite(&i.version, &i.cipher);
        }
        info!(%peer, session = %token.short(), user = %entry.user, hub = %self.sb.hubs[entry.hub].name(), shard = self.id, "session resumed");
        self.run_connection(stream, tls, entry.slot).await;
    }
}

/// 128 random bits from OpenSSL's CSPRNG.
pub(super) fn random_token() -> [u8; 16] {
    let mut t = [0u8; 16];
    openssl::rand::rand_bytes(&mut t).expect("OpenSSL's random generator failed");
    t
}
