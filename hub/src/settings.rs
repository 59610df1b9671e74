//! From the typed config to the server's settings: the I/O backend chosen
//! for this kernel, the shard count resolved, and the session and fabric
//! sections turned into switch-core's types.

use hub::config::Config;
use hub::net;
use hub::server::{HubSettings, Settings};
use switch_core::fabric::FabricConfig;
use switch_core::session::SessionConfig;
use switch_core::wire::Limits;
use tracing::info;

/// The settings `server::start` runs with, for a validated `config`.
/// Fails when the configured I/O backend cannot run here.
pub fn settings_from(config: &Config) -> anyhow::Result<Settings> {
    let (backend, why) =
        net::choose_backend(config.io_backend.as_str()).map_err(anyhow::Error::msg)?;
    info!("I/O backend: {why}");
    let shards = match config.shards {
        // One per core, up to the most a flood can name.
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(hub::config::MAX_SHARDS),
        n => n,
    };
    let s = &config.session;
    let fabric = FabricConfig {
        max_macs_per_port: config.fabric.max_macs_per_port as u32,
        max_macs_per_hub: config.fabric.max_macs_per_hub as u32,
        aging: config.fabric.aging,
    };
    Ok(Settings {
        name: config.name.clone(),
        listen: config.listen,
        metrics_listen: config.metrics_listen,
        shards,
        backend,
        hubs: config
            .hubs()
            .iter()
            .map(|h| HubSettings {
                name: h.name.clone(),
                anonymous: h.anonymous,
                softether: h.softether,
                max_sessions: h.max_sessions,
                max_macs: h.max_macs as u32,
            })
            .collect(),
        session: SessionConfig {
            keepalive: s.keepalive,
            timeout: s.timeout,
            detach_grace: s.detach_grace,
            limits: Limits {
                max_frame: s.max_frame as u32,
                max_batch: s.max_batch as u32,
            },
            max_buffered_frames: s.max_buffered_frames,
            max_buffered_bytes: s.max_buffered_bytes,
            offload: s.offload,
            ..SessionConfig::default()
        },
        fabric,
        handshake_timeout: config.limits.handshake_timeout,
        max_header_bytes: config.limits.max_header_bytes,
        max_handshakes_per_shard: config.limits.max_handshakes_per_shard,
        max_sessions: config.limits.max_sessions,
        max_handshakes_per_address: config.limits.max_handshakes_per_address,
        max_sessions_per_user: config.limits.max_sessions_per_user,
        max_buffer_memory: config.limits.max_buffer_memory,
        auth: config.auth.clone(),
        distinct_ports: false,
        busy_poll: config.busy_poll,
    })
}
