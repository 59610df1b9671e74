//! Prometheus metrics: shard-local counters summed at scrape time, served as
//! text on a separate plain-HTTP listener with `/metrics`, `/healthz` and
//! `/readyz`.
//!
//! Shards never share a counter: each has its own cache-line-padded block
//! and adds to it once per processed chunk, not per frame. Labels are
//! bounded: `hub` (from the config), `reason`, `result`, `suite`,
//! `direction`, `shard`. Nothing per MAC or per session.
//!
//! Split by concern, one file each; everything public is re-exported here,
//! so callers name `crate::metrics::X` whatever file `X` lives in:
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`Metrics`], the process-wide counters and gauges the hub updates |
//! | `counters.rs` | [`Local`] and [`ShardCounters`]: a shard's plain counters and their atomic, padded form |
//! | `labels.rs` | [`Handshake`] and [`Limit`], the bounded `result` and `limit` labels |
//! | `collector.rs` | the scrape: what is read once, and the order the families are written in ([`registry`]) |
//! | `families.rs` | the hub's metric families, one function per group |
//! | `process.rs` | the `process_*` and heap families |
//! | `encode.rs` | how one family is written with `prometheus-client` |
//! | `text.rs` | the OpenMetrics and classic Prometheus text formats ([`render`], [`render_prometheus`]) |
//! | `server.rs` | the HTTP listener: `/metrics`, `/healthz`, `/readyz` ([`serve`]) |

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

mod collector;
mod counters;
mod encode;
mod families;
mod labels;
mod process;
mod server;
mod text;

pub use collector::registry;
pub use counters::{Local, ShardCounters};
pub use labels::{Handshake, Limit};
pub use server::serve;
pub use text::{render, render_prometheus};

/// All metrics of the process.
#[derive(Debug)]
pub struct Metrics {
    limits: [AtomicU64; 9],
    /// Login attempts made to wait by the failed-login throttle.
    pub logins_delayed: AtomicU64,
    /// Login failures not tracked because the throttle's table was full.
    pub logins_untracked: AtomicU64,
    /// `vhub ctl capture`: frames written to readers, and frames lost
    /// because a reader was behind (never hub frames).
    pub capture_written: AtomicU64,
    pub capture_dropped: AtomicU64,
    pub shards: Vec<ShardCounters>,
    pub sessions_by_hub: Vec<AtomicI64>,
    /// Sessions of SoftEther VPN clients (the rest of `sessions_by_hub`
    /// speak `vhub/1`).
    pub softether_sessions: AtomicI64,
    pub detached_by_hub: Vec<AtomicI64>,
    /// Per shard: bytes of frames its sessions hold (a gauge).
    pub buffered: Vec<AtomicU64>,
    handshakes: [AtomicU64; 12],
    suites: Mutex<BTreeMap<String, u64>>,
    pub ready: AtomicBool,
    pub backend: Mutex<String>,
    /// Config reloads: `[ok, error]`.
    pub reloads: [AtomicU64; 2],
    /// The served certificate's notAfter (Unix seconds); 0 = unknown.
    pub cert_not_after: AtomicI64,
}

impl Metrics {
    /// `hubs`: every hub slot (configured and spare).
    pub fn new(hubs: usize, shards: usize) -> Self {
        Self {
            limits: Default::default(),
            logins_delayed: AtomicU64::new(0),
            logins_untracked: AtomicU64::new(0),
            capture_written: AtomicU64::new(0),
            capture_dropped: AtomicU64::new(0),
            shards: (0..shards).map(|_| ShardCounters::default()).collect(),
            sessions_by_hub: (0..hubs).map(|_| AtomicI64::new(0)).collect(),
            softether_sessions: AtomicI64::new(0),
            detached_by_hub: (0..hubs).map(|_| AtomicI64::new(0)).collect(),
            buffered: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            handshakes: Default::default(),
            suites: Mutex::new(BTreeMap::new()),
            ready: AtomicBool::new(false),
            backend: Mutex::new(String::new()),
            reloads: Default::default(),
            cert_not_after: AtomicI64::new(0),
        }
    }

    pub fn handshake(&self, h: Handshake) {
        self.handshakes[h as usize].fetch_add(1, Relaxed);
    }

    /// Counts a refusal by `limit`.
    pub fn limit(&self, l: Limit) {
        self.limits[l as usize].fetch_add(1, Relaxed);
    }

    pub fn limit_count(&self, l: Limit) -> u64 {
        self.limits[l as usize].load(Relaxed)
    }

    pub fn handshake_count(&self, h: Handshake) -> u64 {
        self.handshakes[h as usize].load(Relaxed)
    }

    /// Counts a session established with this TLS suite.
    pub fn suite(&self, version: &str, cipher: &str) {
        *self
            .suites
            .lock()
            .entry(format!("{version}/{cipher}"))
            .or_default() += 1;
    }

    /// The sum over shards.
    pub fn totals(&self) -> Local {
        let mut t = Local::default();
        for s in &self.shards {
            t += s.snapshot();
        }
        t
    }
}
