//! Prometheus metrics: shard-local counters summed at scrape time, served as
//! text on a separate plain-HTTP listener with `/metrics`, `/healthz` and
//! `/readyz`.
//!
//! Shards never share a counter: each has its own cache-line-padded block
//! and adds to it once per processed chunk, not per frame. Labels are
//! bounded: `hub` (from the config), `reason`, `result`, `suite`,
//! `direction`, `shard`. Nothing per MAC or per session.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::switchboard::Switchboard;

macro_rules! counters {
    ($name:ident { $($field:ident),* $(,)? }) => {
        /// Plain counters a shard accumulates while it works…
        #[derive(Default, Debug, Clone, Copy)]
        pub struct $name { $(pub $field: u64,)* }
        paste_atomic!($name { $($field),* });
    };
}

macro_rules! paste_atomic {
    ($name:ident { $($field:ident),* }) => {
        /// …and their published, atomic form (one per shard, padded).
        #[derive(Default, Debug)]
        #[repr(align(128))]
        pub struct ShardCounters { $(pub $field: AtomicU64,)* }
        impl ShardCounters {
            /// Adds `local` and zeroes it.
            pub fn publish(&self, local: &mut $name) {
                $( if local.$field != 0 { self.$field.fetch_add(local.$field, Relaxed); } )*
                *local = $name::default();
            }
            pub fn snapshot(&self) -> $name {
                $name { $($field: self.$field.load(Relaxed),)* }
            }
        }
        impl std::ops::AddAssign for $name {
            fn add_assign(&mut self, o: Self) { $( self.$field += o.$field; )* }
        }
    };
}

counters!(Local {
    frames_in,
    bytes_in,
    frames_out,
    bytes_out,
    drop_runt,
    drop_queue_full,
    drop_stale_port,
    drop_bad_offload,
    drop_memory,
    gso_segments,
    handoff_batches,
    handoff_frames,
    handoff_queue_full,
    keepalive_timeouts,
    resumes,
    resend_frames,
    lost_on_resume,
    protocol_errors,
    migrations,
    wakeups,
});

/// Handshake outcomes (the `result` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Handshake {
    New,
    Resumed,
    TlsFailed,
    HttpError,
    Page,
    AuthFailed,
    UnknownHub,
    UnsupportedVersion,
    ResumeUnknown,
    Limited,
    Timeout,
    ShuttingDown,
}

const HANDSHAKE_LABELS: [&str; 12] = [
    "new",
    "resumed",
    "tls_failed",
    "http_error",
    "page",
    "auth_failed",
    "unknown_hub",
    "unsupported_version",
    "resume_unknown",
    "limited",
    "timeout",
    "shutting_down",
];

/// Limits that refuse or cut a connection (the `limit` label of
/// `vhub_limit_refusals_total`). Frame-level limits have their own
/// counters (`vhub_frames_dropped_total`, `vhub_mac_refused_total`,
/// `vhub_protocol_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Limit {
    HandshakeTimeout,
    HeaderBytes,
    HandshakesPerShard,
    HandshakesPerAddress,
    Sessions,
    SessionsPerHub,
    SessionsPerUser,
    LoginFailuresPerAddress,
    LoginFailuresPerUser,
}

impl Limit {
    pub const ALL: [Limit; 9] = [
        Limit::HandshakeTimeout,
        Limit::HeaderBytes,
        Limit::HandshakesPerShard,
        Limit::HandshakesPerAddress,
        Limit::Sessions,
        Limit::SessionsPerHub,
        Limit::SessionsPerUser,
        Limit::LoginFailuresPerAddress,
        Limit::LoginFailuresPerUser,
    ];

    /// The label, also the name used in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::HandshakeTimeout => "handshake_timeout",
            Limit::HeaderBytes => "header_bytes",
            Limit::HandshakesPerShard => "handshakes_per_shard",
            Limit::HandshakesPerAddress => "handshakes_per_address",
            Limit::Sessions => "sessions",
            Limit::SessionsPerHub => "sessions_per_hub",
            Limit::SessionsPerUser => "sessions_per_user",
            Limit::LoginFailuresPerAddress => "login_failures_per_address",
            Limit::LoginFailuresPerUser => "login_failures_per_user",
        }
    }
}

/// All metrics of the process.
#[derive(Debug)]
pub struct Metrics {
    limits: [AtomicU64; 9],
    /// Login attempts made to wait by the failed-login throttle.
    pub logins_delayed: AtomicU64,
    /// Login failures not tracked because the throttle's table was full.
    pub logins_untracked: AtomicU64,
    pub shards: Vec<ShardCounters>,
    pub sessions_by_hub: Vec<AtomicI64>,
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
            shards: (0..shards).map(|_| ShardCounters::default()).collect(),
            sessions_by_hub: (0..hubs).map(|_| AtomicI64::new(0)).collect(),
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

/// Reads the hub's state at scrape time.
struct HubCollector(Arc<Switchboard>);

impl std::fmt::Debug for HubCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubCollector")
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(enc.encode_descriptor(
        name,
        help,
        None,
        ConstCounter::<u64>::new(0).metric_type(),
    )?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    ConstGauge::new(v).encode(enc.encode_descriptor(
        name,
        help,
        None,
        ConstGauge::<i64>::new(0).metric_type(),
    )?)
}

fn labelled<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (String, M)>,
    ty: prometheus_client::metrics::MetricType,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, ty)?;
    for (l, v) in values {
        let labels = [(label.to_owned(), l)];
        v.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Every hub's fabric counters, read once per scrape (one lock per hub) and
/// summed per metric.
struct FabricTotals(Vec<switch_core::fabric::FabricStats>);

impl FabricTotals {
    /// Locks each hub's fabric in turn: every slot, spare ones included
    /// (unlike the per-hub gauges, which skip slots not in use).
    fn collect(sb: &Switchboard) -> Self {
        Self(
            sb.hubs
                .iter()
                .map(|h| h.fabric.lock().stats().clone())
                .collect(),
        )
    }

    /// The sum of one counter over all hubs.
    fn sum(&self, f: fn(&switch_core::fabric::FabricStats) -> u64) -> u64 {
        self.0.iter().map(f).sum::<u64>()
    }
}

impl Collector for HubCollector {
    /// Writes the families in a fixed order (dashboards and the tests diff
    /// the output); each step below writes one group. The shard totals and
    /// the fabric counters are read once, where the groups that use them
    /// first need them, so every scrape takes its locks in the same order.
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let sb = &self.0;
        let m = &sb.metrics;
        let t = m.totals();
        encode_hubs(&mut enc, sb)?;
        let fabric = FabricTotals::collect(sb);
        encode_handshakes(&mut enc, m)?;
        encode_tls_suites(&mut enc, m)?;
        encode_traffic(&mut enc, &t, &fabric)?;
        encode_buffers(&mut enc, m, &t)?;
        encode_drops(&mut enc, &t, &fabric)?;
        encode_handoff(&mut enc, &t)?;
        encode_session_events(&mut enc, &t)?;
        encode_config(&mut enc, m)?;
        encode_mac_learning(&mut enc, &fabric)?;
        encode_runtime(&mut enc, m)?;
        process_metrics(&mut enc)
    }
}

/// Per-hub gauges: sessions, detached sessions, MAC entries. Only hubs in
/// use (configured, or added by a reload) are exported; spare slots are
/// not, so a label never names a hub nobody configured.
fn encode_hubs(enc: &mut DescriptorEncoder, sb: &Switchboard) -> std::fmt::Result {
    use prometheus_client::metrics::MetricType;
    let m = &sb.metrics;
    let in_use = || sb.hubs.iter().filter(|h| h.in_use());
    let per_hub = |v: &[AtomicI64]| -> Vec<(String, ConstGauge<i64>)> {
        in_use()
            .map(|h| {
                (
                    h.name().to_owned(),
                    ConstGauge::new(v[h.index].load(Relaxed)),
                )
            })
            .collect()
    };
    labelled(
        enc,
        "vhub_sessions",
        "Sessions by virtual hub (attached or detached).",
        "hub",
        per_hub(&m.sessions_by_hub),
        MetricType::Gauge,
    )?;
    labelled(
        enc,
        "vhub_sessions_detached",
        "Sessions waiting for their client to resume, by virtual hub.",
        "hub",
        per_hub(&m.detached_by_hub),
        MetricType::Gauge,
    )?;
    let macs: Vec<(String, ConstGauge<i64>)> = in_use()
        .map(|h| {
            let n = h.fabric.lock().mac_count();
            (h.name().to_owned(), ConstGauge::new(n as i64))
        })
        .collect();
    labelled(
        enc,
        "vhub_mac_entries",
        "MAC table entries by virtual hub.",
        "hub",
        macs,
        MetricType::Gauge,
    )
}

/// How connections ended their handshake, which limits refused them, and
/// what the failed-login throttle did.
fn encode_handshakes(enc: &mut DescriptorEncoder, m: &Metrics) -> std::fmt::Result {
    use prometheus_client::metrics::MetricType;
    labelled(
        enc,
        "vhub_handshakes",
        "Connections by how their handshake ended.",
        "result",
        HANDSHAKE_LABELS
            .iter()
            .zip(&m.handshakes)
            .map(|(l, v)| (l.to_string(), ConstCounter::new(v.load(Relaxed)))),
        MetricType::Counter,
    )?;
    labelled(
        enc,
        "vhub_limit_refusals",
        "Connections or logins refused (or cut) because a limit was reached, by limit.",
        "limit",
        Limit::ALL
            .iter()
            .map(|l| (l.as_str().to_string(), ConstCounter::new(m.limit_count(*l)))),
        MetricType::Counter,
    )?;
    counter(
        enc,
        "vhub_logins_delayed",
        "Login attempts made to wait after earlier failures (address or user).",
        m.logins_delayed.load(Relaxed),
    )?;
    counter(
        enc,
        "vhub_logins_untracked",
        "Failed logins the throttle could not remember (its table was full).",
        m.logins_untracked.load(Relaxed),
    )
}

/// Sessions by TLS version/cipher suite. The map is copied under its lock
/// and encoded after the lock is released.
fn encode_tls_suites(enc: &mut DescriptorEncoder, m: &Metrics) -> std::fmt::Result {
    let suites: Vec<(String, ConstCounter<u64>)> = m
        .suites
        .lock()
        .iter()
        .map(|(k, v)| (k.clone(), ConstCounter::new(*v)))
        .collect();
    labelled(
        enc,
        "vhub_tls_sessions",
        "Sessions established, by TLS version/cipher suite.",
        "suite",
        suites,
        prometheus_client::metrics::MetricType::Counter,
    )
}

/// Frames and bytes in and out (from the shards), and how the fabric
/// routed them.
fn encode_traffic(
    enc: &mut DescriptorEncoder,
    t: &Local,
    fabric: &FabricTotals,
) -> std::fmt::Result {
    use prometheus_client::metrics::MetricType;
    labelled(
        enc,
        "vhub_frames",
        "Ethernet frames received from and sent to sessions.",
        "direction",
        [
            ("in".to_string(), ConstCounter::new(t.frames_in)),
            ("out".to_string(), ConstCounter::new(t.frames_out)),
        ],
        MetricType::Counter,
    )?;
    labelled(
        enc,
        "vhub_frame_bytes",
        "Bytes of Ethernet frames received from and sent to sessions.",
        "direction",
        [
            ("in".to_string(), ConstCounter::new(t.bytes_in)),
            ("out".to_string(), ConstCounter::new(t.bytes_out)),
        ],
        MetricType::Counter,
    )?;
    counter(
        enc,
        "vhub_frames_unicast",
        "Frames forwarded to one known port.",
        fabric.sum(|s| s.unicast),
    )?;
    counter(
        enc,
        "vhub_frames_flooded",
        "Frames flooded (broadcast, multicast, unknown unicast).",
        fabric.sum(|s| s.flooded),
    )
}

/// Bytes held in session buffers (summed over shards) and frames cut in
/// software for sessions without offload.
fn encode_buffers(enc: &mut DescriptorEncoder, m: &Metrics, t: &Local) -> std::fmt::Result {
    gauge(
        enc,
        "vhub_buffered_bytes",
        "Bytes of frames held in session buffers (unacknowledged or not yet sent), all sessions; limits.max_buffer_memory bounds it.",
        m.buffered.iter().map(|b| b.load(Relaxed) as i64).sum(),
    )?;
    counter(
        enc,
        "vhub_gso_segments",
        "Frames cut in software from offload super frames for sessions without offload.",
        t.gso_segments,
    )
}

/// Dropped frames by reason: the fabric counts routing drops, the shards
/// the rest, and both count runts.
fn encode_drops(enc: &mut DescriptorEncoder, t: &Local, fabric: &FabricTotals) -> std::fmt::Result {
    labelled(
        enc,
        "vhub_frames_dropped",
        "Frames dropped, by reason.",
        "reason",
        [
            // Routes are counted by the fabric; a runt is also a frame
            // a session refused to take (too short for its limits).
            ("runt", fabric.sum(|s| s.dropped_runt) + t.drop_runt),
            ("invalid_source", fabric.sum(|s| s.dropped_invalid_source)),
            ("same_segment", fabric.sum(|s| s.dropped_same_segment)),
            ("unknown_port", fabric.sum(|s| s.dropped_unknown_port)),
            ("queue_full", t.drop_queue_full),
            ("stale_port", t.drop_stale_port),
            ("bad_offload", t.drop_bad_offload),
            ("memory", t.drop_memory),
            ("handoff_full", t.handoff_queue_full),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ConstCounter::new(v))),
        prometheus_client::metrics::MetricType::Counter,
    )
}

/// Frames handed between shards, and the wake-ups that cost.
fn encode_handoff(enc: &mut DescriptorEncoder, t: &Local) -> std::fmt::Result {
    counter(
        enc,
        "vhub_handoff_batches",
        "Frame batches handed to another shard.",
        t.handoff_batches,
    )?;
    counter(
        enc,
        "vhub_handoff_frames",
        "Frames handed to another shard.",
        t.handoff_frames,
    )?;
    counter(
        enc,
        "vhub_shard_wakeups",
        "Times a shard was woken by another shard's batch.",
        t.wakeups,
    )
}

/// What happened to sessions: dead links, resumes and what they cost,
/// protocol errors, migrations between shards.
fn encode_session_events(enc: &mut DescriptorEncoder, t: &Local) -> std::fmt::Result {
    counter(
        enc,
        "vhub_keepalive_timeouts",
        "Links declared dead after the keep-alive timeout.",
        t.keepalive_timeouts,
    )?;
    counter(
        enc,
        "vhub_resumes",
        "Sessions resumed on a new connection.",
        t.resumes,
    )?;
    counter(
        enc,
        "vhub_resent_frames",
        "Frames sent again after a resume.",
        t.resend_frames,
    )?;
    counter(
        enc,
        "vhub_lost_on_resume_frames",
        "Frames a resuming client missed that were no longer buffered.",
        t.lost_on_resume,
    )?;
    counter(
        enc,
        "vhub_protocol_errors",
        "Sessions closed because the client broke the protocol.",
        t.protocol_errors,
    )?;
    counter(
        enc,
        "vhub_migrations",
        "Resumed connections moved to the shard that owns the session.",
        t.migrations,
    )
}

/// Config reloads by result, and the served certificate's expiry (only
/// once it is known: a 0 would read as "expired in 1970" on a dashboard).
fn encode_config(enc: &mut DescriptorEncoder, m: &Metrics) -> std::fmt::Result {
    labelled(
        enc,
        "vhub_config_reloads",
        "Config reloads (SIGHUP or vhub ctl reload), by result.",
        "result",
        [("ok", &m.reloads[0]), ("error", &m.reloads[1])]
            .into_iter()
            .map(|(k, v)| (k.to_string(), ConstCounter::new(v.load(Relaxed)))),
        prometheus_client::metrics::MetricType::Counter,
    )?;
    let not_after = m.cert_not_after.load(Relaxed);
    if not_after > 0 {
        gauge(
            enc,
            "vhub_certificate_expiry_timestamp_seconds",
            "When the served TLS certificate expires (notAfter, Unix time).",
            not_after,
        )?;
    }
    Ok(())
}

/// The fabric's MAC learning: learned, moved, aged out, refused by cap.
fn encode_mac_learning(enc: &mut DescriptorEncoder, fabric: &FabricTotals) -> std::fmt::Result {
    counter(
        enc,
        "vhub_mac_learned",
        "MAC addresses learned.",
        fabric.sum(|s| s.learned),
    )?;
    counter(
        enc,
        "vhub_mac_moves",
        "MAC addresses that moved to another port.",
        fabric.sum(|s| s.moves),
    )?;
    counter(
        enc,
        "vhub_mac_aged_out",
        "MAC entries removed by aging.",
        fabric.sum(|s| s.aged_out),
    )?;
    labelled(
        enc,
        "vhub_mac_refused",
        "MAC addresses not learned because a cap was reached.",
        "reason",
        [
            ("port_cap", fabric.sum(|s| s.refused_port_cap)),
            ("hub_cap", fabric.sum(|s| s.refused_hub_cap)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ConstCounter::new(v))),
        prometheus_client::metrics::MetricType::Counter,
    )
}

/// How the process runs: the number of shards and the I/O backend.
fn encode_runtime(enc: &mut DescriptorEncoder, m: &Metrics) -> std::fmt::Result {
    gauge(
        enc,
        "vhub_shards",
        "Shards (threads) serving sessions.",
        m.shards.len() as i64,
    )?;
    let backend = m.backend.lock().clone();
    labelled(
        enc,
        "vhub_io_backend",
        "The socket I/O backend in use (value is always 1).",
        "backend",
        [(backend, ConstGauge::new(1i64))],
        prometheus_client::metrics::MetricType::Gauge,
    )
}

fn process_metrics(enc: &mut DescriptorEncoder) -> std::fmt::Result {
    // /proc/self/stat fields 14,15 (utime, stime, in clock ticks), 24 (rss pages).
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        if let Some(rest) = stat.rsplit(')').next() {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // rest starts at field 3 (state): field n is f[n - 3].
            let ticks = 100.0; // sysconf(_SC_CLK_TCK) on Linux
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let cpu = (num(14 - 3) + num(15 - 3)) as f64 / ticks;
            ConstCounter::new(cpu).encode(enc.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?)?;
            let page = 4096i64;
            gauge(
                enc,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                num(24 - 3) as i64 * page,
            )?;
        }
    }
    let heap = crate::memory::heap_in_use();
    gauge(
        enc,
        "vhub_heap_in_use_bytes",
        "Bytes allocated and not freed (Rust's heap and OpenSSL's): unlike RSS, not inflated by free memory the allocators keep for reuse.",
        heap.total() as i64,
    )?;
    gauge(
        enc,
        "vhub_heap_in_use_libc_bytes",
        "The part of vhub_heap_in_use_bytes allocated through the C library's malloc (OpenSSL).",
        heap.libc as i64,
    )?;
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            enc,
            "process_open_fds",
            "Number of open file descriptors.",
            dir.count() as i64,
        )?;
    }
    Ok(())
}

/// The registry with everything the hub exports.
pub fn registry(sb: Arc<Switchboard>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(HubCollector(sb)));
    r
}

/// Renders the OpenMetrics text format (what `prometheus-client` writes).
pub fn render(r: &Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, r).expect("writing to a String");
    s
}

/// Renders the classic Prometheus text format (0.0.4), for clients that do
/// not ask for OpenMetrics: `curl`, `promtool check metrics`, older
/// scrapers. It differs from OpenMetrics in what matters to them: a
/// counter's `# HELP`/`# TYPE` lines carry the sample name with `_total`
/// (OpenMetrics names the family without it, which the classic parser reads
/// as a second, untyped metric without help), and there is no `# EOF`.
pub fn render_prometheus(r: &Registry) -> String {
    to_prometheus_text(&render(r))
}

fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    let _ = writeln!(out, "{prefix}{name}_total {tail}");
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Serves `/metrics`, `/healthz`, `/readyz` on `listener` (plain HTTP) on a
/// thread of its own, until the process exits.
pub fn serve(
    listener: std::net::TcpListener,
    sb: Arc<Switchboard>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let reg = Arc::new(registry(sb.clone()));
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let _ = conn.set_write_timeout(Some(std::time::Duration::from_secs(5)));
                let (reg, sb) = (reg.clone(), sb.clone());
                // Scrapes are rare and short: one thread each, bounded by the timeouts.
                let _ = std::thread::Builder::new()
                    .name("metrics-conn".into())
                    .spawn(move || {
                        let _ = answer(&mut conn, &reg, &sb);
                    });
            }
        })
}

fn answer(conn: &mut std::net::TcpStream, reg: &Registry, sb: &Switchboard) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    let (path, openmetrics) = loop {
        let n = conn.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                // Prometheus asks for OpenMetrics in `Accept`; everyone else
                // gets the classic text format.
                let openmetrics = req.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("accept")
                        && String::from_utf8_lossy(h.value).contains("application/openmetrics-text")
                });
                break (req.path.unwrap_or("/").to_owned(), openmetrics);
            }
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            _ => {
                conn.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )?;
                return Ok(());
            }
        }
    };
    let (status, ctype, body) = match path.split('?').next().unwrap_or("") {
        "/metrics" if openmetrics => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(reg),
        ),
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render_prometheus(reg),
        ),
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        "/readyz" => {
            if sb.metrics.ready.load(Relaxed) && !sb.is_shutting_down() {
                ("200 OK", "text/plain", "ready\n".to_string())
            } else {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    "not ready\n".to_string(),
                )
            }
        }
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    let mut out = String::new();
    let _ = write!(out, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    conn.write_all(out.as_bytes())?;
    conn.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::to_prometheus_text;

    #[test]
    fn classic_text_names_counters_with_total_and_has_no_eof() {
        let om = "# HELP vhub_frames Frames.\n# TYPE vhub_frames counter\n\
                  vhub_frames_total{direction=\"in\"} 3\n\
                  # HELP vhub_shards Shards.\n# TYPE vhub_shards gauge\nvhub_shards 2\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP vhub_frames_total Frames.\n# TYPE vhub_frames_total counter\n\
             vhub_frames_total{direction=\"in\"} 3\n\
             # HELP vhub_shards Shards.\n# TYPE vhub_shards gauge\nvhub_shards 2\n"
        );
    }
}
