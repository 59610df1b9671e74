//! Failed-login throttling: per source address and per user, failures are
//! first slowed down (an increasing wait before the next check), then
//! refused outright (429 with `Retry-After`) until a lockout passes.
//!
//! Attackers choose both keys — any number of addresses (an IPv6 /64 is
//! 2^64 of them) and any user names — so memory is bounded: addresses are
//! folded to their /64 for IPv6, user names are kept only as a keyed hash,
//! and each table holds at most `max_tracked` entries. When a table is
//! full, expired entries go first, then those below the slow-down
//! threshold (they have cost the attacker little); if it is full of
//! entries that matter, the newcomer is not tracked (counted, so that an
//! operator sees it), never an old offender forgotten.
//!
//! Only the login decision is throttled, never a running session; a
//! certificate login is not slowed by password failures of the same user
//! (it proves possession of a key, which guessing cannot).
//!
//! Sans-IO in the switch-core sense: time is a parameter.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::AuthConfig;

/// The address an attacker cannot cheaply multiply: IPv4 as is, IPv6 by
/// its /64 (one customer's subnet); IPv4-mapped IPv6 as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrKey(u128);

impl AddrKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddrKey(u32::from(v4) as u128),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey(u32::from(v4) as u128),
                None => AddrKey((u128::from(v6) & !((1u128 << 64) - 1)) | 1 << 32),
            },
        }
    }
}

/// What to do with a login attempt before its credentials are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Check at once.
    Go,
    /// Wait this long, then check.
    Delay(Duration),
    /// Refuse without checking; retry after this long.
    Refuse { scope: Scope, retry_after: Duration },
}

/// Which key a decision was made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Address,
    User,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Address => "address",
            Scope::User => "user",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    /// Start of the current window.
    since: Instant,
    locked_until: Option<Instant>,
}

/// One bounded table of failure records.
struct Table<K> {
    map: HashMap<K, Record>,
    untracked: u64,
}

impl<K: Hash + Eq + Copy> Table<K> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
            untracked: 0,
        }
    }

    /// The live record of `k` (expired windows and lockouts forgotten).
    fn get(&mut self, k: &K, now: Instant, cfg: &AuthConfig) -> Option<Record> {
        let r = self.map.get(k).copied()?;
        if is_expired(&r, now, cfg) {
            self.map.remove(k);
            return None;
        }
        Some(r)
    }

    fn fail(&mut self, k: K, now: Instant, cfg: &AuthConfig, refuse_after: u32) {
        let live = self.get(&k, now, cfg);
        if live.is_none() && self.map.len() >= cfg.max_tracked && !self.make_room(now, cfg) {
            self.untracked += 1;
            return;
        }
        let r = self.map.entry(k).or_insert(Record {
            failures: 0,
            since: now,
            locked_until: None,
        });
        if live.is_none() {
            *r = Record {
                failures: 0,
                since: now,
                locked_until: None,
            };
        }
        r.failures = r.failures.saturating_add(1);
        if r.failures >= refuse_after && r.locked_until.is_none() {
            r.locked_until = Some(now + cfg.lockout);
        }
    }

    /// Frees at least one entry if it can: expired ones, then those still
    /// below the slow-down threshold.
    fn make_room(&mut self, now: Instant, cfg: &AuthConfig) -> bool {
        let before = self.map.len();
        self.map.retain(|_, r| !is_expired(r, now, cfg));
        if self.map.len() == before {
            self.map
                .retain(|_, r| r.failures > cfg.slow_after || r.locked_until.is_some());
        }
        self.map.len() < before
    }
}

fn is_expired(r: &Record, now: Instant, cfg: &AuthConfig) -> bool {
    match r.locked_until {
        Some(t) => now >= t,
        None => now.saturating_duration_since(r.since) >= cfg.failure_window,
    }
}

/// The throttle of one hub process (all shards share it behind a lock; it
/// is touched once per login attempt, never per frame).
pub struct Throttle {
    cfg: AuthConfig,
    addrs: Table<AddrKey>,
    users: Table<u64>,
    /// Keys the user-name hash (attackers choose names; a keyed hash makes
    /// collisions unpredictable) — std's RandomState is seeded per process.
    hasher: std::collections::hash_map::RandomState,
}

impl Throttle {
    pub fn new(cfg: AuthConfig) -> Self {
        Self {
            cfg,
            addrs: Table::new(),
            users: Table::new(),
            hasher: Default::default(),
        }
    }

    fn user_key(&self, hub: &str, user: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        hub.hash(&mut h);
        user.hash(&mut h);
        h.finish()
    }

    /// Before a login check: go, wait, or refuse. `user` is `(hub, name)`
    /// for a password login (the user's record counts too), `None` for a
    /// certificate login (only the address's does).
    pub fn check(&mut self, now: Instant, addr: IpAddr, user: Option<(&str, &str)>) -> Verdict {
        let a = self.addrs.get(&AddrKey::of(addr), now, &self.cfg);
        let u = match user {
            Some((hub, name)) => {
                let uk = self.user_key(hub, name);
                self.users.get(&uk, now, &self.cfg)
            }
            None => None,
        };
        for (r, scope) in [(a, Scope::Address), (u, Scope::User)] {
            if let Some(Record {
                locked_until: Some(t),
                ..
            }) = r
            {
                return Verdict::Refuse {
                    scope,
                    retry_after: t.saturating_duration_since(now).max(Duration::from_secs(1)),
                };
            }
        }
        let failures = a.map_or(0, |r| r.failures).max(u.map_or(0, |r| r.failures));
        match failures.checked_sub(self.cfg.slow_after) {
            None => Verdict::Go,
            Some(extra) => {
                let factor = 1u32 << extra.min(16);
                Verdict::Delay(
                    self.cfg
                        .base_delay
                        .saturating_mul(factor)
                        .min(self.cfg.max_delay),
                )
            }
        }
    }

    /// After a failed check; `user` as for [`Throttle::check`] (a failed
    /// certificate login charges the address only: guessing a certificate
    /// is not a way to attack an account).
    pub fn failed(&mut self, now: Instant, addr: IpAddr, user: Option<(&str, &str)>) {
        let uk = user.map(|(hub, name)| self.user_key(hub, name));
        let cfg = &self.cfg;
        self.addrs
            .fail(AddrKey::of(addr), now, cfg, cfg.refuse_after_per_address);
        if let Some(uk) = uk {
            self.users.fail(uk, now, cfg, cfg.refuse_after_per_user);
        }
    }

    /// After a successful login: the address's record is cleared (a user
    /// who mistyped twice is not slowed the next day). The user's record is
    /// kept: a guessing campaign against that user from elsewhere goes on.
    pub fn succeeded(&mut self, addr: IpAddr) {
        self.addrs.map.remove(&AddrKey::of(addr));
    }

    /// Entries held (addresses, users), for tests and metrics.
    pub fn tracked(&self) -> (usize, usize) {
        (self.addrs.map.len(), self.users.map.len())
    }

    /// Failures that could not be tracked because the table was full.
    pub fn untracked(&self) -> u64 {
        self.addrs.untracked + self.users.untracked
    }
}

/// What admits a connection or a login, shared by all shards: concurrent
/// handshakes per source address, sessions per user, the failed-login
/// throttle. Touched once per connection or login, never per frame.
pub struct Admission {
    pub throttle: parking_lot::Mutex<Throttle>,
    /// Handshakes in progress per address; an entry exists only while one
    /// does (bounded by the shards' handshake limits).
    handshakes: parking_lot::Mutex<HashMap<AddrKey, u32>>,
    /// Live sessions per (hub, user) for named users (bounded by sessions).
    user_sessions: parking_lot::Mutex<HashMap<(usize, String), u32>>,
    /// Per limit label: the second (since `epoch`) of the last log line,
    /// so that a flood of refusals logs once a second per limit.
    last_log: [std::sync::atomic::AtomicU64; 16],
    epoch: Instant,
}

impl Admission {
    pub fn new(cfg: AuthConfig) -> Self {
        Self {
            throttle: parking_lot::Mutex::new(Throttle::new(cfg)),
            handshakes: Default::default(),
            user_sessions: Default::default(),
            last_log: Default::default(),
            epoch: Instant::now(),
        }
    }

    /// Counts a handshake from `addr` if fewer than `max` are running.
    pub fn begin_handshake(&self, addr: AddrKey, max: usize) -> bool {
        let mut m = self.handshakes.lock();
        let n = m.entry(addr).or_insert(0);
        if *n as usize >= max {
            if *n == 0 {
                m.remove(&addr);
            }
            return false;
        }
        *n += 1;
        true
    }

    pub fn end_handshake(&self, addr: AddrKey) {
        let mut m = self.handshakes.lock();
        if let Some(n) = m.get_mut(&addr) {
            *n -= 1;
            if *n == 0 {
                m.remove(&addr);
            }
        }
    }

    /// Handshakes in progress from `addr`.
    pub fn handshakes_from(&self, addr: AddrKey) -> u32 {
        self.handshakes.lock().get(&addr).copied().unwrap_or(0)
    }

    /// Counts a session of `user` on `hub` if it has fewer than `max`
    /// (0 = no limit). Anonymous sessions (empty user) are not counted.
    pub fn add_user_session(&self, hub: usize, user: &str, max: usize) -> bool {
        if user.is_empty() {
            return true;
        }
        let mut m = self.user_sessions.lock();
        let n = m.entry((hub, user.to_owned())).or_insert(0);
        if max > 0 && *n as usize >= max {
            if *n == 0 {
                m.remove(&(hub, user.to_owned()));
            }
            return false;
        }
        *n += 1;
        true
    }

    pub fn remove_user_session(&self, hub: usize, user: &str) {
        if user.is_empty() {
            return;
        }
        let mut m = self.user_sessions.lock();
        let key = (hub, user.to_owned());
        if let Some(n) = m.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&key);
            }
        }
    }

    /// Whether a refusal by limit number `which` may be logged now (at most
    /// one line per second per limit; the counters count them all).
    pub fn should_log(&self, which: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(slot) = self.last_log.get(which) else {
            return true;
        };
        let sec = self.epoch.elapsed().as_secs() + 1;
        let last = slot.load(Relaxed);
        last != sec && slot.compare_exchange(last, sec, Relaxed, Relaxed).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        AuthConfig {
            failure_window: Duration::from_secs(60),
            slow_after: 2,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            refuse_after_per_address: 6,
            refuse_after_per_user: 10,
            lockout: Duration::from_secs(300),
            max_tracked: 4,
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn slows_down_doubling_then_refuses_then_forgives() {
        let mut t = Throttle::new(cfg());
        let now = Instant::now();
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(t.check(now, A, Some(("h", "u"))));
            t.failed(now, A, Some(("h", "u")));
        }
        let ms = Duration::from_millis;
        assert_eq!(
            seen,
            [
                Verdict::Go,
                Verdict::Go,
                Verdict::Delay(ms(100)),
                Verdict::Delay(ms(200)),
                Verdict::Delay(ms(400)),
                Verdict::Delay(ms(800)),
            ]
        );
        // The sixth failure locked the address for 300 s.
        assert_eq!(
            t.check(now, A, Some(("h", "other"))),
            Verdict::Refuse {
                scope: Scope::Address,
                retry_after: Duration::from_secs(300)
            }
        );
        // Another address, same user: slowed (6 user failures) but not refused.
        assert_eq!(t.check(now, B, Some(("h", "u"))), Verdict::Delay(ms(1000)));
        assert_eq!(t.check(now, B, Some(("h", "v"))), Verdict::Go);
        // After the lockout everything is forgotten.
        let later = now + Duration::from_secs(301);
        assert_eq!(t.check(later, A, Some(("h", "u"))), Verdict::Go);
    }

    #[test]
    fn a_user_is_locked_by_failures_from_many_addresses() {
        let mut t = Throttle::new(AuthConfig {
            max_tracked: 100,
            ..cfg()
        });
        let now = Instant::now();
        for i in 0..10u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i));
            t.failed(now, ip, Some(("h", "victim")));
        }
        assert!(matches!(
            t.check(now, B, Some(("h", "victim"))),
            Verdict::Refuse {
                scope: Scope::User,
                ..
            }
        ));
        assert_eq!(t.check(now, B, Some(("h", "someone-else"))), Verdict::Go);
        // Same name on another hub is another user.
        assert_eq!(t.check(now, B, Some(("h2", "victim"))), Verdict::Go);
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_record() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddrKey::of(a), AddrKey::of(b));
        assert_ne!(AddrKey::of(a), AddrKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(AddrKey::of(mapped), AddrKey::of(A));
        // A v6 key never equals a v4 key.
        let low: IpAddr = "::c000:201".parse().unwrap();
        assert_ne!(AddrKey::of(low), AddrKey::of(A));
    }

    #[test]
    fn memory_is_bounded_and_offenders_are_not_evicted() {
        let mut t = Throttle::new(cfg());
        let now = Instant::now();
        // One serious offender…
        for _ in 0..6 {
            t.failed(now, A, Some(("h", "u")));
        }
        // …then a million one-off addresses and user names.
        for i in 0..1_000_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.failed(now, ip, Some(("h", &format!("n{i}"))));
        }
        let (a, u) = t.tracked();
        assert!(a <= 4 && u <= 4, "tracked {a} addresses, {u} users");
        assert!(matches!(
            t.check(now, A, Some(("h", "x"))),
            Verdict::Refuse {
                scope: Scope::Address,
                ..
            }
        ));
    }

    #[test]
    fn success_clears_the_address_only() {
        let mut t = Throttle::new(cfg());
        let now = Instant::now();
        for _ in 0..3 {
            t.failed(now, A, Some(("h", "u")));
        }
        t.succeeded(A);
        assert_eq!(t.check(now, A, Some(("h", "x"))), Verdict::Go);
        assert_eq!(
            t.check(now, B, Some(("h", "u"))),
            Verdict::Delay(Duration::from_millis(200))
        );
    }
}
