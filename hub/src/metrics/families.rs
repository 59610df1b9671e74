//! The hub's metric families, one function per group (sessions per hub,
//! handshakes, TLS suites, traffic, buffers, drops, hand-off, session
//! events, config, MAC learning, runtime). The order they are written in is
//! [`collector`](super::collector)'s.

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::collector::FabricTotals;
use super::encode::{counter, gauge, labelled};
use super::labels::{Limit, HANDSHAKE_LABELS};
use super::{Local, Metrics};
use crate::switchboard::Switchboard;

/// Per-hub gauges: sessions, detached sessions, MAC entries. Only hubs in
/// use (configured, or added by a reload) are exported; spare slots are
/// not, so a label never names a hub nobody configured.
pub(super) fn encode_hubs(enc: &mut DescriptorEncoder, sb: &Switchboard) -> std::fmt::Result {
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
    let softether = m.softether_sessions.load(Relaxed);
    let all: i64 = m.sessions_by_hub.iter().map(|v| v.load(Relaxed)).sum();
    labelled(
        enc,
        "vhub_sessions_by_protocol",
        "Sessions by the protocol their client speaks: vhub (vhub/1) or softether.",
        "protocol",
        [
            ("vhub".to_owned(), ConstGauge::new(all - softether)),
            ("softether".to_owned(), ConstGauge::new(softether)),
        ],
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
pub(super) fn encode_handshakes(enc: &mut DescriptorEncoder, m: &Metrics) -> std::fmt::Result {
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
    )?;
    labelled(
        enc,
        "vhub_capture_frames",
        "Frames of `vhub ctl capture`: written to a reader, or dropped because the reader was behind (the hub's own frames are never dropped for it).",
        "result",
        [
            ("written", &m.capture_written),
            ("dropped", &m.capture_dropped),
        ]
        .into_iter()
        .map(|(l, v)| (l.to_string(), ConstCounter::new(v.load(Relaxed)))),
        MetricType::Counter,
    )
}

/// Sessions by TLS version/cipher suite. The map is copied under its lock
/// and encoded after the lock is released.
pub(super) fn encode_tls_suites(enc: &mut DescriptorEncoder, m: &Metrics) -> std::fmt::Result {
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
pub(super) fn encode_traffic(
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
pub(super) fn encode_buffers(
    enc: &mut DescriptorEncoder,
    m: &Metrics,
    t: &Local,
) -> std::fmt::Result {
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
pub(super) fn encode_drops(
    enc: &mut DescriptorEncoder,
    t: &Local,
    fabric: &FabricTotals,
) -> std::fmt::Result {
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
            // Longer than the receiver takes: a SoftEther client, 1600 bytes.
            ("too_long", t.drop_too_long),
            ("handoff_full", t.handoff_queue_full),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ConstCounter::new(v))),
        prometheus_client::metrics::MetricType::Counter,
    )
}

/// Frames handed between shards, and the wake-ups that cost.
pub(super) fn encode_handoff(enc: &mut DescriptorEncoder, t: &Local) -> std::fmt::Result {
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
    )?;
    counter(
        enc,
        "vhub_busy_poll_seconds",
        "Time shards spent polling after traffic instead of sleeping (busy_poll).",
        t.busy_poll_ns as f64 / 1e9,
    )?;
    counter(
        enc,
        "vhub_busy_poll_hits",
        "Traffic that found its shard polling (busy_poll): each a wake-up saved.",
        t.busy_poll_hits,
    )
}

/// What happened to sessions: dead links, resumes and what they cost,
/// protocol errors, migrations between shards.
pub(super) fn encode_session_events(enc: &mut DescriptorEncoder, t: &Local) -> std::fmt::Result {
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
pub(super) fn encode_config(enc: &mut DescriptorEncoder, m: &Metrics) -> std::fmt::Result {
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
pub(super) fn encode_mac_learning(
    enc: &mut DescriptorEncoder,
    fabric: &FabricTotals,
) -> std::fmt::Result {
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
pub(super) fn encode_runtime(enc: &mut DescriptorEncoder, m: &Metrics) -> std::fmt::Result {
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

/// Local bridges, by hub (only hubs that have one): whether the TAP is a
/// port of its Linux bridge, and frames from the host network (`in`), to
/// it (`out`) and dropped on the way to it (`dropped`: its queue full, or
/// the bridge away). Their frames are also in `vhub_frames_total`.
pub(super) fn encode_bridges(enc: &mut DescriptorEncoder, sb: &Switchboard) -> std::fmt::Result {
    use prometheus_client::encoding::EncodeMetric;
    use prometheus_client::metrics::MetricType;
    let bridges: Vec<(String, std::sync::Arc<crate::bridge::BridgeStatus>)> = sb
        .hubs
        .iter()
        .filter_map(|h| Some((h.name().to_owned(), h.bridge.lock().clone()?)))
        .collect();
    labelled(
        enc,
        "vhub_bridge_up",
        "1 when the hub's local bridge is attached (its TAP device a port of the Linux bridge, the bridge up), else 0.",
        "hub",
        bridges
            .iter()
            .map(|(h, b)| (h.clone(), ConstGauge::new(i64::from(b.up.load(Relaxed))))),
        MetricType::Gauge,
    )?;
    let mut m = enc.encode_descriptor(
        "vhub_bridge_frames",
        "Frames of local bridges, by hub and direction: in from the host network, out to it, dropped on the way out.",
        None,
        MetricType::Counter,
    )?;
    for (hub, b) in &bridges {
        let (frames_in, frames_out, dropped) = b.counters();
        for (direction, v) in [("in", frames_in), ("out", frames_out), ("dropped", dropped)] {
            let labels = [
                ("hub".to_owned(), hub.clone()),
                ("direction".to_owned(), direction.to_owned()),
            ];
            ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}
