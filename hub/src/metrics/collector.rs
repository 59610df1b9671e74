//! The scrape: a `prometheus-client` collector that reads the hub's state
//! when asked, and writes the families in a fixed order.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::families::{
    encode_bridges, encode_buffers, encode_config, encode_drops, encode_handoff, encode_handshakes,
    encode_hubs, encode_mac_learning, encode_runtime, encode_session_events, encode_tls_suites,
    encode_traffic,
};
use super::process::process_metrics;
use crate::switchboard::Switchboard;

/// The registry with everything the hub exports.
pub fn registry(sb: Arc<Switchboard>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(HubCollector(sb)));
    r
}

/// Reads the hub's state at scrape time.
struct HubCollector(Arc<Switchboard>);

impl std::fmt::Debug for HubCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubCollector")
    }
}

/// Every hub's fabric counters, read once per scrape (one lock per hub) and
/// summed per metric.
pub(super) struct FabricTotals(Vec<switch_core::fabric::FabricStats>);

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
    pub(super) fn sum(&self, f: fn(&switch_core::fabric::FabricStats) -> u64) -> u64 {
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
        encode_bridges(&mut enc, sb)?;
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
