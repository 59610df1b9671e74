//! The frames of one input chunk: the hub's fabric lock is taken once, for
//! `Fabric::forward` (learn + look up) of every frame; the copies into
//! receivers' buffers, the form conversions and the cross-shard batches all
//! happen after it is released. Nothing here decides where a frame goes:
//! the `Route` does.

use std::sync::atomic::Ordering;
use std::time::Instant;

use switch_core::fabric::{PortId, Route};
use switch_core::offload::{self, Form};
use switch_core::session::{SendError, Session};

use super::{Endpoint, Shard, Slot, State_};
use crate::capture::{self, Egress};
use crate::metrics::Local;
use crate::net::Backend;
use crate::switchboard::{Batch, Target, BATCH_BYTES};

/// A session holding less than this always takes frames, whatever the
/// hub-wide buffer budget says.
const BUFFER_FLOOR: usize = 64 * 1024;

/// Where a chunk of frames came from.
#[derive(Clone, Copy)]
pub(super) struct Ingress {
    pub hub: usize,
    pub slot: u32,
    pub port: PortId,
    pub form: Form,
}

impl<B: Backend> Shard<B> {
    /// Switches the frames of one input chunk (`spans` of `plain`, in
    /// order): routes them all under the hub's lock, then moves them.
    pub(super) fn switch_frames(
        &self,
        st: &mut State_<B::Stream>,
        from: Ingress,
        now: Instant,
        plain: &[u8],
        spans: &[(u32, u32)],
    ) {
        if spans.is_empty() {
            return;
        }
        let frame = |&(at, len): &(u32, u32)| &plain[at as usize..(at + len) as usize];
        let mut routes = std::mem::take(&mut st.routes);
        {
            let mut fabric = self.sb.hubs[from.hub].fabric.lock();
            routes.extend(
                spans
                    .iter()
                    .map(|s| fabric.forward(now, from.port, self.id, frame(s))),
            );
        }
        let hub = &self.sb.hubs[from.hub];
        if hub.taps.active() {
            let frames = spans.iter().zip(&routes).map(|(s, r)| {
                let to = match *r {
                    Route::Local { slot, .. } => st
                        .slots
                        .get(slot as usize)
                        .map_or(Egress::None, |s| Egress::Port(s.port)),
                    Route::Remote { port, .. } => Egress::Port(port),
                    Route::Flood { .. } => Egress::Flood,
                    Route::Drop(_) => Egress::None,
                };
                (frame(s), to)
            });
            let lost = &self.sb.metrics.capture_dropped;
            capture::offer_chunk(&hub.taps, from.port, from.form, frames, lost);
        }
        for (span, route) in spans.iter().zip(&routes) {
            let f = frame(span);
            st.counters.frames_in += 1;
            st.counters.bytes_in += f.len() as u64;
            match *route {
                Route::Local { slot, .. } => deliver(st, slot, f, from.form),
                Route::Remote { shard, slot, port } => {
                    self.outbox(st, shard, Target::Unicast { slot, port }, from.form, f)
                }
                Route::Flood { local, remote } => {
                    if local {
                        flood_here(st, from.hub, Some(from.slot), f, from.form);
                    }
                    for shard in remote.iter() {
                        let hub = from.hub as u32;
                        self.outbox(st, shard, Target::Flood { hub }, from.form, f);
                    }
                }
                // Counted by the fabric.
                Route::Drop(_) => {}
            }
        }
        routes.clear();
        st.routes = routes;
    }

    /// Appends a frame to the batch for shard `to`, handing the batch over
    /// when it is full.
    fn outbox(
        &self,
        st: &mut State_<B::Stream>,
        to: u16,
        target: Target,
        form: Form,
        frame: &[u8],
    ) {
        let me = self.id;
        let to = usize::from(to);
        let batch = st.outbox[to].get_or_insert_with(|| {
            let buf = self.sb.mailboxes[me as usize]
                .free
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(BATCH_BYTES + 2048));
            Batch {
                buf,
                frames: 0,
                from: me,
            }
        });
        batch.push(target, form, frame);
        if batch.buf.len() >= BATCH_BYTES {
            self.hand_over(st, to);
        }
    }

    /// After frames were routed: hand over filled batches, wake shards and
    /// writers once each, publish counters.
    pub(super) fn finish_round(&self, st: &mut State_<B::Stream>) {
        for to in 0..st.outbox.len() {
            if st.outbox[to].as_ref().is_some_and(|b| b.frames > 0) {
                self.hand_over(st, to);
            }
        }
        for to in 0..st.to_wake.len() {
            if std::mem::take(&mut st.to_wake[to]) {
                self.sb.mailboxes[to].wake();
            }
        }
        // Swap the list out and back so its allocation is reused.
        let mut dirty = std::mem::take(&mut st.dirty);
        for slot in dirty.drain(..) {
            if let Some(s) = st.slots.get_mut(slot as usize) {
                s.dirty = false;
                if let Some(c) = &s.conn {
                    c.wake.notify_one();
                } else if let Endpoint::Bridge(b) = &s.endpoint {
                    b.wake();
                }
            }
        }
        st.dirty = dirty;
        self.note_traffic();
        self.sb.metrics.shards[self.id as usize].publish(&mut st.counters);
        self.sb.metrics.buffered[self.id as usize].store(st.buffered as u64, Ordering::Relaxed);
    }

    fn hand_over(&self, st: &mut State_<B::Stream>, to: usize) {
        let Some(batch) = st.outbox[to].take() else {
            return;
        };
        let frames = batch.frames;
        match self.sb.mailboxes[to].frames.push(batch) {
            Ok(()) => {
                st.counters.handoff_batches += 1;
                st.counters.handoff_frames += u64::from(frames);
                st.to_wake[to] = true;
            }
            Err(mut batch) => {
                // The other shard is that far behind: drop, counted, like a full port.
                st.counters.handoff_queue_full += u64::from(frames);
                batch.buf.clear();
                batch.frames = 0;
                st.outbox[to] = Some(batch);
                st.to_wake[to] = true;
            }
        }
    }

    /// Delivers a batch another shard handed over.
    pub(super) fn deliver_batch(&self, batch: &Batch) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        for (target, form, frame) in batch.records() {
            match target {
                Target::Unicast { slot, port } => match st.slots.get(slot as usize) {
                    // The slot may have been reused since the route was made.
                    Some(s) if s.port == port => deliver(st, slot, frame, form),
                    _ => st.counters.drop_stale_port += 1,
                },
                Target::Flood { hub } => flood_here(st, hub as usize, None, frame, form),
            }
        }
    }
}

/// Delivers a flood to this shard's ports of `hub`, but `except`.
pub(super) fn flood_here<S>(
    st: &mut State_<S>,
    hub: usize,
    except: Option<u32>,
    frame: &[u8],
    form: Form,
) {
    // Taken out while delivering (which needs the state mutably; the list
    // does not change meanwhile): moves one Vec header, copies nothing.
    let local = std::mem::take(&mut st.local);
    for slot in local.flood(hub, except) {
        deliver(st, slot, frame, form);
    }
    st.local = local;
}

/// Hands a frame (in form `from`) to the endpoint of a port on this
/// shard: a session (in its form, `offload::convert`, within the hub-wide
/// buffer budget; a SoftEther session takes plain frames only) or a local
/// bridge (plain frames, its own bounded queue).
/// Either way the slot is marked dirty, so `finish_round` wakes its writer.
pub(super) fn deliver<S>(st: &mut State_<S>, slot: u32, frame: &[u8], from: Form) {
    let Some(s) = st.slots.get_mut(slot as usize) else {
        return;
    };
    let session = match &mut s.endpoint {
        Endpoint::Session(Some(session)) => session,
        Endpoint::Session(None) => return,
        Endpoint::Bridge(b) => {
            let c = &mut st.counters;
            if b.queue_frame(frame, from, &mut st.scratch, c) && !s.dirty {
                s.dirty = true;
                st.dirty.push(slot);
            }
            return;
        }
        Endpoint::SoftEther(p) => {
            if st.buffered >= st.buffer_budget && p.buffered() >= BUFFER_FLOOR {
                st.counters.drop_memory += 1;
                return;
            }
            let c = &mut st.counters;
            let mut sent = false;
            // Plain frames only: a super frame is cut to the client's size.
            let max = switch_core::softether::data::MAX_FRAME as usize;
            match offload::convert(frame, from, Form::Plain, max, &mut st.scratch, |f| {
                sent |= p.queue_frame(f, c)
            }) {
                Ok(done) if done.cut => c.gso_segments += done.frames as u64,
                Ok(_) => {}
                Err(_) => c.drop_bad_offload += 1,
            }
            let now = p.buffered();
            st.buffered = st.buffered + now - s.buffered;
            s.buffered = now;
            if sent && !s.dirty {
                s.dirty = true;
                st.dirty.push(slot);
            }
            return;
        }
    };
    let c = &mut st.counters;
    // The hub-wide buffer budget: past it, a session that already holds
    // more than its floor takes no more (every session keeps the floor, so
    // one storm cannot starve the others).
    if st.buffered >= st.buffer_budget && session.buffered_bytes() >= BUFFER_FLOOR {
        c.drop_memory += 1;
        return;
    }
    let to = Form::of(session.offload());
    let max = session.config().limits.max_frame as usize;
    let mut sent = false;
    match offload::convert(frame, from, to, max, &mut st.scratch, |f| {
        sent |= send_counted(c, session, f)
    }) {
        Ok(done) if done.cut => c.gso_segments += done.frames as u64,
        Ok(_) => {}
        Err(_) => c.drop_bad_offload += 1,
    }
    let now = session.buffered_bytes();
    st.buffered = st.buffered + now - s.buffered;
    s.buffered = now;
    if sent && !s.dirty {
        s.dirty = true;
        st.dirty.push(slot);
    }
}

/// Brings the shard's total of buffered bytes up to date with `session`
/// (the slot's session, taken out or not).
pub(super) fn recount<S>(total: &mut usize, slot: &mut Slot<S>, session: &Session) {
    let now = session.buffered_bytes();
    *total = *total + now - slot.buffered;
    slot.buffered = now;
}

/// Queues one frame on a session, counting it as sent or dropped.
fn send_counted(c: &mut Local, session: &mut Session, frame: &[u8]) -> bool {
    match session.send_frame(frame) {
        Ok(()) => {
            c.frames_out += 1;
            c.bytes_out += frame.len() as u64;
            return true;
        }
        Err(SendError::Full) => c.drop_queue_full += 1,
        Err(SendError::BadLength(_)) => c.drop_runt += 1,
        Err(SendError::Closed) => c.drop_stale_port += 1,
    }
    false
}
