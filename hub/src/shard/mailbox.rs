//! What other shards send this one: frame batches (delivered here) and
//! control messages (migrations, kicks, admin snapshots, shutdown).

use std::rc::Rc;
use std::sync::atomic::Ordering;

use switch_core::session::State;
use switch_core::wire::http::SessionToken;
use switch_core::wire::CloseCode;
use tracing::info;

use super::{Endpoint, Shard};
use crate::net::Backend;
use crate::switchboard::Control;

impl<B: Backend> Shard<B> {
    pub(super) async fn mailbox_loop(self: Rc<Self>) {
        let mb = &self.sb.mailboxes[self.id as usize];
        loop {
            let mut stop = false;
            while let Some(c) = mb.control.pop() {
                match c {
                    Control::Migrate(m) => {
                        let me = self.clone();
                        B::spawn(async move { me.accept_migration(*m).await });
                    }
                    Control::Kick {
                        slot,
                        token,
                        code,
                        reason,
                    } => self.kick(slot, token, code, &reason),
                    Control::Snapshot(reply) => {
                        let _ = reply.send(self.snapshot());
                    }
                    Control::AddBridge { hub, status } => self.add_bridge(hub, status),
                    Control::RemoveBridge { hub } => self.remove_bridge(hub),
                    Control::Shutdown => stop = true,
                }
            }
            if stop {
                self.shutdown();
                return;
            }
            let mut any = false;
            while let Some(batch) = mb.frames.pop() {
                any = true;
                self.deliver_batch(&batch);
                let mut buf = batch.buf;
                buf.clear();
                let _ = self.sb.mailboxes[batch.from as usize].free.push(buf);
            }
            if any {
                let mut st = self.st.borrow_mut();
                st.counters.wakeups += 1;
                self.finish_round(&mut st);
            }
            // Announce the sleep, then look at the queues once more. The
            // full fence orders the store before the loads: without it the
            // store may sit in this core's store buffer while a sender
            // pushes, reads `sleeping` as false (its `swap` is a full
            // barrier) and skips the wake, and the batch would wait for
            // the next hand-over (a store-load reordering x86 allows).
            mb.sleeping.store(true, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            if mb.frames.is_empty() && mb.control.is_empty() {
                mb.notify.notified().await;
            }
            mb.sleeping.store(false, Ordering::Release);
        }
    }

    fn kick(&self, slot: u32, token: SessionToken, code: CloseCode, reason: &str) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        if let Some(s) = st
            .slots
            .get_mut(slot as usize)
            .filter(|s| s.token == token && !s.is_bridge())
        {
            info!(session = %token.short(), user = %s.user, peer = %s.peer, hub = %self.sb.hubs[s.hub].name(), ?code, %reason, "closing a session on request");
            if let Some(session) = s.session_mut() {
                session.close(code, reason);
            }
            match &s.conn {
                // SoftEther has no CLOSE message: the connection ends.
                Some(c) if s.is_softether() => c.close(),
                Some(c) => c.wake.notify_one(),
                None => self.remove_slot(st, slot),
            }
        }
    }

    /// This shard's sessions for the admin API. Takes each hub's fabric
    /// lock once, briefly, for the MAC counts.
    fn snapshot(&self) -> Vec<crate::admin::SessionInfo> {
        let st = self.st.borrow();
        st.slots
            .iter()
            // Bridges are not sessions: `vhub ctl hubs` shows them.
            .filter(|(_, s)| !s.is_bridge())
            .map(|(slot, s)| {
                let session = s.session();
                let (stats, protocol) = match &s.endpoint {
                    Endpoint::SoftEther(p) => (p.stats(), "softether"),
                    _ => (session.map(|x| *x.stats()).unwrap_or_default(), "vhub"),
                };
                let state = match (session.map(|x| x.state()), &s.conn) {
                    (_, Some(c)) if s.is_softether() && c.closed.get() => "closing",
                    (_, Some(_)) if s.is_softether() => "attached",
                    (Some(State::Closed) | None, _) => "closing",
                    (_, None) => "detached",
                    (_, Some(_)) => "attached",
                };
                let macs = self.sb.hubs[s.hub].fabric.lock().port_mac_count(s.port);
                crate::admin::SessionInfo {
                    id: s.token.short(),
                    hub: self.sb.hubs[s.hub].name().to_owned(),
                    user: s.user.clone(),
                    protocol: protocol.into(),
                    remote: s.peer.to_string(),
                    shard: self.id,
                    slot: slot as u32,
                    state: state.into(),
                    frames_in: stats.rx_frames,
                    bytes_in: stats.rx_bytes,
                    frames_out: stats.tx_frames,
                    bytes_out: stats.tx_bytes,
                    macs,
                }
            })
            .collect()
    }
}
