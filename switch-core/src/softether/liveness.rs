//! Keep-alives and the idle timeout of one data-phase connection
//! (PROTOCOL-NOTES.md §7.3, §7.5), with `T` the welcome's `timeout`:
//!
//! - the first keep-alive goes out as the data phase starts; the next one
//!   `max(rand mod T/2, T/5)` later, and sending a batch of frames pushes
//!   it back the same way, so keep-alives flow only on an idle link (with
//!   T = 20 s: every 4–10 s);
//! - a connection on which nothing complete arrived for T is dead.
//!
//! Time is a parameter, as everywhere in switch-core.

use std::time::{Duration, Instant};

use super::data::encode_filler_keepalive;
use super::padding::Padding;

/// Nothing arrived on the connection for the timeout: close it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("peer sent nothing for {0:?} (the session timeout): the connection is dead")]
pub struct IdleTimeout(pub Duration);

/// The timers of one data-phase connection.
#[derive(Clone, Debug)]
pub struct Liveness {
    timeout: Duration,
    next_keepalive: Instant,
    last_rx: Instant,
    padding: Padding,
}

impl Liveness {
    /// Timers for a connection that enters the data phase at `now`;
    /// `timeout` is the welcome's. The first keep-alive is due at once.
    pub fn new(now: Instant, timeout: Duration, padding_seed: u64) -> Self {
        Self {
            timeout,
            next_keepalive: now,
            last_rx: now,
            padding: Padding::new(padding_seed),
        }
    }

    /// The delay before the next keep-alive: `max(rand mod T/2, T/5)`.
    fn interval(&mut self) -> Duration {
        let t = self.timeout.as_millis().min(u128::from(u32::MAX)) as usize;
        let ms = self.padding.below(t / 2).max(t / 5).max(1);
        Duration::from_millis(ms as u64)
    }

    /// A complete item (frame, keep-alive, empty batch) arrived.
    pub fn on_receive(&mut self, now: Instant) {
        self.last_rx = self.last_rx.max(now);
    }

    /// A batch of frames was sent: the next keep-alive waits a new interval.
    pub fn on_send(&mut self, now: Instant) {
        self.next_keepalive = now + self.interval();
    }

    /// When [`Liveness::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Instant {
        self.next_keepalive.min(self.last_rx + self.timeout)
    }

    /// Appends a keep-alive to `out` when one is due (returns whether it
    /// did); `Err` when nothing arrived for the timeout.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<u8>) -> Result<bool, IdleTimeout> {
        if now >= self.last_rx + self.timeout {
            return Err(IdleTimeout(self.timeout));
        }
        if now < self.next_keepalive {
            return Ok(false);
        }
        encode_filler_keepalive(out, &mut self.padding);
        self.next_keepalive = now + self.interval();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::softether::data::{Decoder, Item};

    #[allow(clippy::disallowed_methods)] // the test's one clock read: its epoch
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn keepalives_every_t5_to_t2_when_idle_and_death_after_t() {
        let t0 = t0();
        let t = Duration::from_secs(20);
        let mut l = Liveness::new(t0, t, 1);
        let mut out = Vec::new();
        assert_eq!(l.poll_timeout(), t0, "the first one at once");
        assert_eq!(l.handle_timeout(t0, &mut out), Ok(true));
        let (item, used) = Decoder::default().decode(&out).unwrap().unwrap();
        assert!(matches!(item, Item::KeepAlive(_)));
        assert_eq!(used, out.len());
        let mut now = t0;
        for _ in 0..50 {
            let next = l.poll_timeout();
            let gap = next - now;
            assert!(
                gap >= Duration::from_secs(4) && gap < Duration::from_secs(10),
                "{gap:?}"
            );
            now = next;
            l.on_receive(now);
            assert_eq!(l.handle_timeout(now, &mut out), Ok(true));
        }
        // Sending frames postpones the keep-alive.
        let before = l.poll_timeout();
        l.on_send(before - Duration::from_secs(1));
        assert!(l.poll_timeout() > before - Duration::from_secs(1));
        assert_eq!(
            l.handle_timeout(before - Duration::from_millis(999), &mut out),
            Ok(false)
        );
        // Silence for T kills it.
        let dead = now + t;
        assert_eq!(l.handle_timeout(dead, &mut out), Err(IdleTimeout(t)));
        assert!(l.poll_timeout() <= dead);
    }
}
