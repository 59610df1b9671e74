//! Opening links and losing them: the bridge's side of what the
//! supervisor decides (which opens a connection, which drops a link,
//! which replaces the session).

use std::time::Instant;

use switch_core::pump::Pump;
use switch_core::session::State;

use super::proto::{Carrier, Proto};
use super::status::add_stats;
use super::Bridge;
use crate::link::{self, Link, LinkError};
use crate::relay::Relay;
use crate::report::say;
use crate::supervisor::Attempt;
use crate::tap::TapIo;
use crate::trust::Checked;

impl<T: TapIo> Bridge<T> {
    /// Starts the connection attempt the supervisor asked for.
    pub(super) fn start_connect(&mut self, t: Instant, attempt: Attempt) {
        let url = self.hubs[attempt.hub].clone();
        self.connecting_hub = attempt.hub;
        // The hub tried now on every later event (main's span; JSON logs).
        crate::report::record_hub(&url);
        let relay = self.settings.relay.clone();
        let ctx = self.ctx.clone();
        let trust = self.settings.trust.clone();
        let timeout = self.settings.connect_timeout;
        let via = match &relay {
            Relay::Direct => String::new(),
            r => format!(" via {r}"),
        };
        if attempt.probe && attempt.hub != self.hub {
            tracing::info!("failback: trying {url}{via} next to the live link");
        } else if attempt.probe {
            tracing::info!(
                "network changed and the link is silent: trying a fresh connection{via}"
            );
        } else if attempt.first {
            self.set_state(t, "connecting", say(format!("connecting to {url}{via}")));
        } else {
            self.state_name = "reconnecting";
            tracing::info!("connecting to {url}{via} (attempt {})", attempt.number);
        }
        self.connecting = Some(Box::pin(async move {
            link::open(&url, &relay, &ctx, &trust, timeout).await
        }));
    }

    pub(super) fn on_connected(&mut self, t: Instant, r: Result<Link, LinkError>) {
        let link = match r {
            Ok(l) => l,
            Err(e) => {
                self.sup.handle_connect_error(t, &e);
                self.apply(t);
                return;
            }
        };
        if self.tls.is_some() {
            // A probe succeeded while the old link was silent: move over.
            tracing::info!("switching to the fresh connection");
            self.drop_link(t);
        }
        self.sup.handle_connected(t);
        // A link to another hub moves the session there (MoveSession).
        self.apply(t);
        if let Checked::FirstUse { fingerprint, file } = &link.checked {
            say(format!(
                "first contact with {}: its certificate is {fingerprint}; remembered in {} \
                 (a different certificate will be refused)",
                self.hubs[self.connecting_hub].host_port(),
                file.display()
            ));
        }
        let (rd, wr) = tokio::io::split(link.stream);
        self.rd = Some(rd);
        self.wr = Some(wr);
        self.tls = Some(link.tls);
        self.tls_info = link.info;
        self.link_established = false;
        self.last_rx = t;
        self.out.clear();
        self.out_pos = 0;
        self.pump = Pump::new();
        if self.sup.ever_established() {
            self.shell.reconnects += 1;
        }
        if self.session.state() == State::Closed {
            self.renew_session(t);
        }
        self.session.reconnect(t);
        // The TLS handshake may have brought more than the handshake.
        self.process_input(t, false);
    }

    /// The link is gone: forget it, keep the session (detached).
    pub(super) fn drop_link(&mut self, t: Instant) {
        self.rd = None;
        self.wr = None;
        self.tls = None;
        self.tls_info = None;
        self.out.clear();
        self.out_pos = 0;
        self.pump = Pump::new();
        self.established_at = None;
        self.link_established = false;
        self.session.link_lost(t);
    }

    /// The link broke (reset, end of file, TLS error): let go of it and
    /// ask the supervisor what next.
    pub(super) fn link_down(&mut self, t: Instant, why: String) {
        self.drop_link(t);
        if self.session.state() == State::Closed || self.outcome.is_some() {
            // Ended already (the supervisor was told why).
            return;
        }
        self.sup.handle_link_down(t, why);
        self.apply(t);
    }

    /// The hub ended the session in a way that allows a new one: keep
    /// the counters, start over.
    pub(super) fn renew_session(&mut self, t: Instant) {
        let fresh = Self::fresh_session(&self.settings, &self.hubs[self.hub], self.tap.vnet(), t);
        let old = std::mem::replace(&mut self.session, fresh);
        add_stats(&mut self.prior, old.stats());
        self.shell.dropped_with_session += old.buffered_frames();
        self.shell.new_sessions += 1;
    }

    /// The new link goes to another hub (the supervisor's choice): bind
    /// the session to it; its next handshake asks for a new session
    /// there, with the frames that were never sent.
    pub(super) fn move_session(&mut self, hub: usize) {
        self.hub = hub;
        let session = match &mut self.session {
            Proto::Vhub(s) => s,
            Proto::SoftEther(s) => {
                // Nothing is kept across links: only the address changes.
                let url = &self.hubs[hub];
                s.move_to(&url.host_port(), &url.hub);
                return;
            }
        };
        let unconfirmed = session.move_to(Self::connect_params(&self.settings, &self.hubs[hub]));
        if unconfirmed > 0 {
            tracing::info!(
                "moving to {}: {unconfirmed} frame(s) sent to the old hub may not have arrived",
                self.hubs[hub]
            );
        }
    }

    pub(super) fn on_net_changed(&mut self, t: Instant) {
        if self.outcome.is_some() {
            return;
        }
        self.sup.handle_net_changed(t, self.last_rx);
        self.apply(t);
    }
}
