//! The typed config: one struct per TOML table, each with its defaults.
//!
//! Every struct is `#[serde(default, deny_unknown_fields)]`: a missing key
//! takes the value of the struct's `Default`, an unknown key is an error.
//! Durations, sizes and addresses are read by the value parsers of
//! `values.rs`; nothing here checks ranges or relations between keys (the
//! validator does, in `validate.rs`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use cli_support::LogFormat;
use serde::Deserialize;

use super::defaults::*;
use super::values::{de_addr, de_duration, de_opt_addr, de_size};

/// The whole config file. `Config::default()` is what an empty file gives.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Shown on the hub's HTML page.
    pub name: String,
    /// The HTTPS listener (TLS, then the `vhub/1` upgrade).
    #[serde(deserialize_with = "de_addr")]
    pub listen: SocketAddr,
    /// Plain-HTTP `/metrics`, `/healthz`, `/readyz`; `None` (`""`/`"off"`) disables it.
    #[serde(deserialize_with = "de_opt_addr")]
    pub metrics_listen: Option<SocketAddr>,
    /// The local admin API's Unix socket (`vhub ctl`). As written: `None`
    /// means `<cert_dir>/admin.sock`, `"off"` (or `""`) disables it; see
    /// [`Config::effective_admin_socket`].
    pub admin_socket: Option<PathBuf>,
    /// As written; `None` means the default, see [`Config::effective_cert_dir`].
    /// [`Config::load`] makes a relative path relative to the config file.
    pub cert_dir: Option<PathBuf>,
    /// Number of shards; 0 = one per core.
    pub shards: usize,
    pub io_backend: IoBackendSetting,
    /// After traffic, a shard keeps polling for this long before it sleeps
    /// (0 = never): the next frame finds it awake. Costs CPU while it
    /// polls; see docs/ARCHITECTURE.md, "Busy-poll".
    #[serde(deserialize_with = "de_duration")]
    pub busy_poll: Duration,
    /// How the log on standard error is written: `text` or `json` (one
    /// object per line). `--log-format` / `VHUB_LOG_FORMAT` win over it.
    pub log_format: LogFormat,
    /// As written; `None` means `<cert_dir>/users.toml`, see
    /// [`Config::effective_users_file`].
    pub users_file: Option<PathBuf>,
    pub tls: TlsConfig,
    pub session: SessionConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub fabric: FabricConfig,
    /// The `[[hub]]` tables as written (may be empty); use [`Config::hubs`]
    /// for the effective list.
    pub hub: Vec<HubConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            listen: DEFAULT_LISTEN.parse().expect("default listen address"),
            metrics_listen: Some(
                DEFAULT_METRICS_LISTEN
                    .parse()
                    .expect("default metrics address"),
            ),
            admin_socket: None,
            cert_dir: None,
            shards: 0,
            io_backend: IoBackendSetting::Auto,
            busy_poll: Duration::ZERO,
            log_format: LogFormat::Text,
            users_file: None,
            tls: TlsConfig::default(),
            session: SessionConfig::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            fabric: FabricConfig::default(),
            hub: Vec::new(),
        }
    }
}

/// `io_backend`: which socket backend the shards use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoBackendSetting {
    /// Probe io_uring at start, fall back to epoll (containers often block io_uring).
    #[default]
    Auto,
    Uring,
    Epoll,
}

impl IoBackendSetting {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Uring => "uring",
            Self::Epoll => "epoll",
        }
    }
}

/// `[tls]`
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// A preset name ([`CIPHER_PRESETS`]) or `list:<TLS1.2 cipher_list>` /
    /// `suites:<TLS1.3 ciphersuites>`; parsed by the TLS module.
    pub ciphers: String,
    /// Explicit opt-in for the legacy RC4/MD5 suites (needs a build with the
    /// `legacy-ciphers` feature as well).
    pub allow_legacy: bool,
    /// A PEM file of CA certificates: when set, the hub asks every client
    /// for a certificate issued by one of them (certificate logins, see the
    /// users' `cert_fingerprint`/`cert_subject`). Relative to the config file.
    pub client_ca: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            ciphers: DEFAULT_CIPHERS.to_owned(),
            allow_legacy: false,
            client_ca: None,
        }
    }
}

/// `[session]`
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Send a keep-alive after this long without sending anything.
    #[serde(deserialize_with = "de_duration")]
    pub keepalive: Duration,
    /// Declare the link dead after this long with nothing received.
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// How long a detached session waits for its client to resume.
    #[serde(deserialize_with = "de_duration")]
    pub detach_grace: Duration,
    /// Largest Ethernet frame in bytes (without FCS).
    pub max_frame: usize,
    /// Most frames in one batch message.
    pub max_batch: usize,
    /// Unacknowledged/buffered frames kept per session for resume.
    pub max_buffered_frames: usize,
    /// Bytes of those frames.
    #[serde(deserialize_with = "de_size")]
    pub max_buffered_bytes: usize,
    /// Grant segmentation offload (`Vhub-Offload: vnet`) to clients that
    /// ask: 64 KiB TCP super frames cross as one record. Frames are cut in
    /// software for sessions without it.
    pub offload: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            keepalive: DEFAULT_KEEPALIVE,
            timeout: DEFAULT_TIMEOUT,
            detach_grace: DEFAULT_DETACH_GRACE,
            max_frame: DEFAULT_MAX_FRAME,
            max_batch: DEFAULT_MAX_BATCH,
            max_buffered_frames: DEFAULT_MAX_BUFFERED_FRAMES,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            offload: true,
        }
    }
}

/// `[limits]`
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// From TCP accept to the end of the HTTP upgrade.
    #[serde(deserialize_with = "de_duration")]
    pub handshake_timeout: Duration,
    /// Largest HTTP request head accepted.
    #[serde(deserialize_with = "de_size")]
    pub max_header_bytes: usize,
    /// Concurrent TLS/HTTP handshakes per shard.
    pub max_handshakes_per_shard: usize,
    /// Sessions on the whole server.
    pub max_sessions: usize,
    /// Concurrent TLS/HTTP handshakes (until the login is decided) from one
    /// source address (IPv6: one /64), over all shards.
    pub max_handshakes_per_address: usize,
    /// Sessions of one user on one hub; 0 = no limit of its own.
    pub max_sessions_per_user: usize,
    /// Bytes of frames buffered for all sessions together (each session
    /// also has its own `session.max_buffered_bytes`). Past it, frames to
    /// sessions holding more than 64 KiB are dropped (counted
    /// `reason="memory"`): a broadcast storm to 10,000 sessions cannot take
    /// 10 GiB.
    #[serde(deserialize_with = "de_size")]
    pub max_buffer_memory: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_handshakes_per_shard: DEFAULT_MAX_HANDSHAKES_PER_SHARD,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_handshakes_per_address: DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
            max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
            max_buffer_memory: DEFAULT_MAX_BUFFER_MEMORY,
        }
    }
}

/// `[auth]`: failed logins are slowed down, then refused for a while, per
/// source address (IPv6: per /64) and per user.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Failures older than this are forgotten.
    #[serde(deserialize_with = "de_duration")]
    pub failure_window: Duration,
    /// Failures (of an address or a user) before each further attempt waits.
    pub slow_after: u32,
    /// The first wait; it doubles with each further failure…
    #[serde(deserialize_with = "de_duration")]
    pub base_delay: Duration,
    /// …up to this.
    #[serde(deserialize_with = "de_duration")]
    pub max_delay: Duration,
    /// Failures from one address before it is refused (429) for `lockout`.
    pub refuse_after_per_address: u32,
    /// Failures for one user (from any address) before password logins of
    /// that user are refused (429) for `lockout`.
    pub refuse_after_per_user: u32,
    #[serde(deserialize_with = "de_duration")]
    pub lockout: Duration,
    /// Addresses and users remembered at most (memory stays bounded
    /// whatever names and addresses an attacker uses).
    pub max_tracked: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            failure_window: DEFAULT_AUTH_WINDOW,
            slow_after: DEFAULT_AUTH_SLOW_AFTER,
            base_delay: DEFAULT_AUTH_BASE_DELAY,
            max_delay: DEFAULT_AUTH_MAX_DELAY,
            refuse_after_per_address: DEFAULT_AUTH_REFUSE_AFTER_PER_ADDRESS,
            refuse_after_per_user: DEFAULT_AUTH_REFUSE_AFTER_PER_USER,
            lockout: DEFAULT_AUTH_LOCKOUT,
            max_tracked: DEFAULT_AUTH_MAX_TRACKED,
        }
    }
}

/// `[fabric]`
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FabricConfig {
    /// A MAC entry not seen for this long is forgotten.
    #[serde(deserialize_with = "de_duration")]
    pub aging: Duration,
    pub max_macs_per_port: usize,
    /// Default per-hub cap; a hub's `max_macs` overrides it.
    pub max_macs_per_hub: usize,
}

impl Default for FabricConfig {
    fn default() -> Self {
        Self {
            aging: DEFAULT_AGING,
            max_macs_per_port: DEFAULT_MAX_MACS_PER_PORT,
            max_macs_per_hub: DEFAULT_MAX_MACS_PER_HUB,
        }
    }
}

/// One `[[hub]]`: a virtual hub, its own broadcast domain.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// `[A-Za-z0-9._-]{1,64}`, case-sensitive; the path of the hub's URL.
    pub name: String,
    /// Admit clients without credentials.
    pub anonymous: bool,
    /// Admit SoftEther VPN clients (users with a SoftEther hash, or anyone
    /// where the hub is anonymous). On by default: a user can only log in
    /// from SoftEther once an operator gave them a hash.
    pub softether: bool,
    /// 0 = unlimited (the global `limits.max_sessions` still applies).
    pub max_sessions: usize,
    /// 0 = `fabric.max_macs_per_hub`.
    pub max_macs: usize,
    /// Attach the hub to a host network (a local bridge):
    /// `bridge = "br-lan"` or a `[hub.bridge]` table (see `bridge.rs`).
    #[serde(deserialize_with = "super::bridge::de_bridge")]
    pub bridge: Option<super::bridge::BridgeConfig>,
    /// Users listed inline (`[[hub.user]]`), besides those in the users file.
    #[serde(rename = "user")]
    pub users: Vec<InlineUser>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            name: DEFAULT_HUB.to_owned(),
            anonymous: false,
            softether: true,
            max_sessions: 0,
            max_macs: 0,
            bridge: None,
            users: Vec::new(),
        }
    }
}

impl HubConfig {
    /// The MAC cap of this hub, with the fabric default applied.
    pub fn effective_max_macs(&self, fabric: &FabricConfig) -> usize {
        if self.max_macs == 0 {
            fabric.max_macs_per_hub
        } else {
            self.max_macs
        }
    }
}

/// A `[[hub.user]]` in the config. The password is a `$scrypt$…` hash, never
/// a plain password. Debug never shows the hash.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineUser {
    pub name: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub cert_fingerprint: Option<String>,
    #[serde(default)]
    pub cert_subject: Option<String>,
}

impl fmt::Debug for InlineUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InlineUser")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<hash>"))
            .field("cert_fingerprint", &self.cert_fingerprint)
            .field("cert_subject", &self.cert_subject)
            .finish()
    }
}
