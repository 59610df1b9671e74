//! The HTTP upgrade that starts or resumes a session: the client's request,
//! the hub's `101 Switching Protocols`, and the client reading the answer
//! (accepted, resumed, expired, refused, or a hub that breaks the rules).

use std::time::{Duration, Instant};

use super::{Event, Role, Session, SessionError, State};
use crate::wire::http::{self, Resume, UpgradeRequest, UpgradeResponse};
use crate::wire::{self, Limits};

/// Largest head of an upgrade response the client accepts.
const MAX_RESPONSE_HEAD: usize = http::DEFAULT_MAX_HEAD;

impl Session {
    pub(super) fn emit_upgrade_response(&mut self, resumed_rx: Option<u64>) {
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

    pub(super) fn start_handshake(&mut self, now: Instant) {
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

    /// Client: parses the upgrade response at the start of `data`. Returns
    /// the bytes it used (0: the head is not complete yet).
    pub(super) fn handle_response(
        &mut self,
        now: Instant,
        data: &[u8],
    ) -> Result<usize, SessionError> {
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
}
