//! When to try the hub again after a failed connection attempt.
//!
//! The first try after a link loss is immediate (most losses are one dead
//! TCP connection, and the hub keeps the session for a grace period). After
//! that the delay doubles from [`FIRST_DELAY`] up to the cap, with "equal
//! jitter" (half the delay fixed, half random) so that many clients cut off
//! by the same event do not come back in lockstep.

use std::time::Duration;

/// The delay before the second try.
pub const FIRST_DELAY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct Backoff {
    cap: Duration,
    /// Failed attempts since the last success.
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(cap: Duration) -> Self {
        Self::with_rng(cap, fastrand::Rng::new())
    }

    pub fn with_rng(cap: Duration, rng: fastrand::Rng) -> Self {
        Self {
            cap,
            failures: 0,
            rng,
        }
    }

    /// A connection worked: the next loss starts over with an immediate try.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Attempts that failed in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failed attempt and returns how long to wait before the
    /// next one.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.delay_after(self.failures)
    }

    /// The delay before the next try after `failures` failures (0 after a
    /// link loss with no failed attempt yet).
    fn delay_after(&mut self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let exp = (failures - 1).min(30);
        let full = FIRST_DELAY
            .saturating_mul(1u32 << exp)
            .min(self.cap)
            .max(Duration::from_millis(1));
        let half = full / 2;
        half + half.mul_f64(self.rng.f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::with_rng(Duration::from_secs(30), fastrand::Rng::with_seed(7));
        let mut prev_max = Duration::ZERO;
        for k in 1..=12u32 {
            let d = b.next_delay();
            let full = (FIRST_DELAY * 2u32.pow(k - 1)).min(Duration::from_secs(30));
            assert!(
                d >= full / 2 && d <= full,
                "try {k}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
            prev_max = prev_max.max(d);
        }
        assert!(prev_max <= Duration::from_secs(30));
        assert_eq!(b.failures(), 12);
        b.reset();
        assert_eq!(b.failures(), 0);
        let d = b.next_delay();
        assert!(d <= FIRST_DELAY);
    }

    #[test]
    fn a_small_cap_wins() {
        let mut b = Backoff::with_rng(Duration::from_millis(100), fastrand::Rng::with_seed(1));
        for _ in 0..5 {
            assert!(b.next_delay() <= Duration::from_millis(100));
        }
    }
}
