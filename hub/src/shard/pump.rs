//! An established connection: the reader loop (ciphertext in, through
//! TLS and the session, frames to `deliver.rs`) and the writer task (the
//! session's output through TLS to the socket, many frames per record, one
//! awaited write at a time).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use certs::tls::TlsConn;
use switch_core::offload::Form;
use switch_core::pump::Pump;
use switch_core::session::State;
use tokio::sync::Notify;
use tracing::{debug, info};

use super::{is_current, Conn, Shard};
use crate::net::{Backend, NetStream};

/// Bytes asked of the socket per read: large reads, few syscalls. A read
/// starts at `READ_MIN` and doubles while reads fill the buffer, up to
/// `READ_CHUNK`; an idle connection holds only `READ_MIN` (the pending read
/// owns its buffer the whole time it waits).
const READ_CHUNK: usize = 256 * 1024;
const READ_MIN: usize = 4 * 1024;
/// Plaintext produced per writer round before it is encrypted and written.
const WRITE_CHUNK: usize = 256 * 1024;
/// A writer quiet for this long gives its buffers back when it sleeps.
const KEEP_BUFFERS_IDLE: Duration = Duration::from_millis(500);
/// A writer that wrote less than this since it last slept (keep-alives,
/// ACKs, a trickle of frames) gives its buffers back before sleeping.
const LIGHT_WRITE: usize = 4 * 1024;
/// Buffers this large given back by a quiet writer are worth a trim.
const TRIM_AFTER_FREEING: usize = 64 * 1024;

/// The socket side of a connection's reader: reads of `READ_MIN` bytes
/// that double while they come back full, up to `READ_CHUNK`, and halve
/// when traffic is light, each fed to the connection's TLS.
pub(super) struct Reader {
    want: usize,
    buf: Vec<u8>,
}

impl Reader {
    pub(super) fn new() -> Self {
        Reader {
            want: READ_MIN,
            buf: Vec::with_capacity(READ_MIN),
        }
    }

    /// Whether reads are at their smallest (light traffic: the caller
    /// keeps no buffers between reads).
    pub(super) fn is_light(&self) -> bool {
        self.want == READ_MIN
    }

    /// Reads once from the socket into the connection's TLS input; false
    /// at end of stream, on an error, or once the connection is closed.
    pub(super) async fn read_into_tls<S: NetStream>(&mut self, conn: &Conn<S>) -> bool {
        if self.buf.capacity() < self.want {
            self.buf.reserve_exact(self.want);
        }
        let (res, b) = conn.stream.read(std::mem::take(&mut self.buf)).await;
        self.buf = b;
        let n: usize = res.unwrap_or_default();
        if n == 0 || conn.closed.get() {
            return false;
        }
        let want = self.want;
        self.want = if n >= want {
            (want * 2).min(READ_CHUNK)
        } else if n < want / 4 {
            (want / 2).max(READ_MIN)
        } else {
            want
        };
        // Swapped into TLS, not copied, when it has nothing unread; `buf`
        // comes back with the previous input buffer.
        conn.tls.borrow_mut().feed_buf(&mut self.buf);
        if self.buf.capacity() > 2 * self.want {
            self.buf = Vec::new();
        }
        true
    }
}

impl<B: Backend> Shard<B> {
    /// Makes the connection of `slot` (`None` if the slot is gone) and
    /// counts the writer its caller starts next: a shutdown waits for it
    /// ([`Shard::writer_done`]).
    pub(super) fn open_conn(
        &self,
        stream: B::Stream,
        tls: TlsConn,
        slot: u32,
    ) -> Option<Rc<Conn<B::Stream>>> {
        let mut st = self.st.borrow_mut();
        st.next_conn_id += 1;
        let conn = Rc::new(Conn {
            stream,
            tls: RefCell::new(tls),
            wake: Notify::new(),
            closed: Cell::new(false),
            sleep_until: Cell::new(None),
            id: st.next_conn_id,
        });
        st.slots.get_mut(slot as usize)?.conn = Some(conn.clone());
        st.writers += 1;
        Some(conn)
    }

    /// A writer task ends: its connection closes, and a shutdown waiting
    /// for the last writer goes on.
    pub(super) fn writer_done(&self, conn: &Conn<B::Stream>) {
        conn.close();
        let mut st = self.st.borrow_mut();
        st.writers -= 1;
        if st.writers == 0 {
            self.drained.notify_one();
        }
    }

    pub(super) async fn run_connection(self: Rc<Self>, stream: B::Stream, tls: TlsConn, slot: u32) {
        let Some(conn) = self.open_conn(stream, tls, slot) else {
            return;
        };
        B::spawn(self.clone().writer(conn.clone(), slot));
        conn.wake.notify_one(); // send the 101 and whatever waits
        let mut reader = Reader::new();
        // The reader's side of the pump: plaintext waiting for the session.
        let mut pump = Pump::new();
        loop {
            if !reader.read_into_tls(&conn).await {
                break;
            }
            let tls_ok = {
                let mut tls = conn.tls.borrow_mut();
                match pump.decrypt(&mut *tls) {
                    Ok(closed) => !closed,
                    Err(e) => {
                        debug!("TLS error on a session: {e}");
                        false
                    }
                }
            };
            if !pump.plaintext().is_empty() && !self.process_input(slot, &conn, &mut pump) {
                break;
            }
            if reader.is_light() {
                // Light traffic: keep no buffers between reads.
                pump.shrink_input();
                conn.tls.borrow_mut().shrink_idle_input();
            }
            if !tls_ok {
                break;
            }
            // TLS may want to answer (key updates).
            if conn.tls.borrow().wants_write() {
                conn.wake.notify_one();
            }
        }
        self.connection_lost(slot, &conn);
    }

    /// Runs the session's input through switch-core and forwards frames.
    /// Returns false when the connection must end.
    fn process_input(&self, slot: u32, conn: &Rc<Conn<B::Stream>>, pump: &mut Pump) -> bool {
        let now = Instant::now();
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(s) = st.slots.get_mut(slot as usize) else {
            return false;
        };
        if !is_current(s, conn) {
            return false; // replaced by a resumed connection
        }
        let (hub, port) = (s.hub, s.port);
        let mut session = s.take_session().expect("session present");
        // The frames of this chunk, as spans of the plaintext: switched
        // after the whole chunk is decoded, so the fabric's lock is taken
        // once. They stay valid until the pump's next decrypt.
        let plain = pump.plaintext();
        let mut spans = std::mem::take(&mut st.spans);
        let base = plain.as_ptr() as usize;
        let result = session.handle_input(now, plain, |frame| {
            // `handle_input` hands out frames borrowed from `plain`
            // (its contract); the spans index back into it, bounds-checked.
            let at = frame.as_ptr() as usize - base;
            debug_assert!(at + frame.len() <= plain.len());
            spans.push((at as u32, frame.len() as u32));
        });
        let from = super::deliver::Ingress {
            hub,
            slot,
            port,
            form: Form::of(session.offload()),
        };
        self.switch_frames(st, from, now, plain, &spans);
        spans.clear();
        st.spans = spans;
        let keep = match result {
            Ok(used) => {
                pump.consume(used);
                true
            }
            Err(e) => {
                info!(session = %session.token().map(|t| t.short()).unwrap_or_default(), "protocol error: {e}");
                st.counters.protocol_errors += 1;
                pump.discard_input();
                true // the CLOSE is queued; the writer sends it and ends
            }
        };
        // Also wake the writer when the input set a timer it is not
        // sleeping for (an ACK due in `ack_delay`), or that ACK would wait
        // for the next keep-alive.
        let sooner = match (session.poll_timeout(), conn.sleep_until.get()) {
            (Some(t), Some(d)) => t < d,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let wants = session.wants_transmit() || session.state() == State::Closed || sooner;
        // ACKs in the input freed buffer space.
        let s = &mut st.slots[slot as usize];
        super::deliver::recount(&mut st.buffered, s, &session);
        s.put_session(session);
        if wants {
            conn.wake.notify_one();
        }
        self.finish_round(st);
        self.handle_events(st, slot);
        keep
    }

    async fn writer(self: Rc<Self>, conn: Rc<Conn<B::Stream>>, slot: u32) {
        self.write_until_closed(&conn, slot).await;
        self.writer_done(&conn);
    }

    /// The writer's loop: the session's output through TLS to the socket
    /// until the connection closes or the session ends.
    async fn write_until_closed(&self, conn: &Rc<Conn<B::Stream>>, slot: u32) {
        // The writer's side of the pump and its ciphertext: allocated on
        // demand and given back when the session goes quiet.
        let mut pump = Pump::new();
        let mut out: Vec<u8> = Vec::new();
        let mut last_busy = Instant::now();
        // Ciphertext written since the writer last slept.
        let mut written = 0usize;
        loop {
            let now = Instant::now();
            let (deadline, finished) = {
                let mut st = self.st.borrow_mut();
                let st = &mut *st;
                let Some(s) = st.slots.get_mut(slot as usize) else {
                    break;
                };
                if !is_current(s, conn) {
                    break;
                }
                let session = s.session_mut().expect("session present");
                session.handle_timeout(now);
                if pump.output_capacity() == 0 && session.wants_transmit() {
                    pump.reserve_output(16 * 1024);
                }
                let mut tls = conn.tls.borrow_mut();
                if pump
                    .output(now, &mut *tls, session, WRITE_CHUNK, &mut out)
                    .is_err()
                {
                    break;
                }
                let finished = session.state() == State::Closed;
                if finished {
                    tls.shutdown();
                    tls.take_ciphertext(&mut out);
                }
                drop(tls);
                let deadline = session.poll_timeout();
                self.handle_events(st, slot);
                (deadline, finished)
            };
            if !out.is_empty() {
                last_busy = now;
                written += out.len();
                let (res, b) = conn.stream.write_all(std::mem::take(&mut out)).await;
                out = b;
                out.clear();
                if res.is_err() {
                    break;
                }
                // More may have been queued while the write was in flight.
                continue;
            }
            if finished || conn.closed.get() {
                break;
            }
            // Going to sleep. A busy connection sleeps between every two
            // batches: it keeps its buffers (freeing and regrowing them
            // cost a tenth of the hub's time at 3 Gbit/s). One that has
            // been quiet for a while gives them back, and so does one that
            // only wrote a little (a keep-alive, an ACK): otherwise every
            // idle session would hold 16 KiB from one keep-alive to the
            // next.
            let light = written < LIGHT_WRITE;
            written = 0;
            if light || now.saturating_duration_since(last_busy) >= KEEP_BUFFERS_IDLE {
                if pump.shrink_output() + out.capacity() >= TRIM_AFTER_FREEING {
                    self.trim.set(true);
                }
                out = Vec::new();
                conn.tls.borrow_mut().shrink_idle();
            }
            match deadline {
                Some(d) => {
                    conn.sleep_until.set(Some(d));
                    tokio::select! {
                        _ = conn.wake.notified() => {}
                        _ = tokio::time::sleep_until(d.into()) => {}
                    }
                }
                None => {
                    conn.sleep_until.set(None);
                    conn.wake.notified().await
                }
            }
            if conn.closed.get() {
                break;
            }
        }
    }
}
