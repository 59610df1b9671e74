//! The TOML config of `vhub`: typed structs with defaults, one validator.
//!
//! Every key is optional; an empty file gives [`Config::default()`]. Unknown
//! keys are refused (`deny_unknown_fields`) so that a typo never passes as a
//! silently ignored setting.
//!
//! [`Config::from_toml`] and [`Config::load`] report *every* problem of a file
//! at once — syntax errors, wrong types, unknown keys and the semantic checks
//! of [`Config::validate`] — each as `FILE:LINE:COL: key: message`. The same
//! path serves the start and a reload.
//!
//! What this module does not do: it never writes a file (the daemon never
//! rewrites its config; `vhub user add` writes the separate users file, see
//! [`crate::users`]), it does not parse cipher strings (the TLS module does)
//! and it does not create the certificate directory.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::Deserialize;
use toml::de::{DeTable, DeValue};

// ---------------------------------------------------------------------------
// Defaults: every default value of the config lives here.

pub const DEFAULT_NAME: &str = "vhub";
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8443";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9750";
/// The admin socket's file name in the certificate (state) directory.
pub const DEFAULT_ADMIN_SOCKET_NAME: &str = "admin.sock";
/// `sockaddr_un.sun_path` holds 108 bytes including the final NUL.
pub const MAX_SOCKET_PATH: usize = 107;
/// Name of the users file inside the certificate directory.
pub const DEFAULT_USERS_FILE_NAME: &str = "users.toml";
/// The one hub that exists when the config names none.
pub const DEFAULT_HUB: &str = "DEFAULT";
pub const DEFAULT_CIPHERS: &str = "default";
/// Cipher presets a user can name (the TLS module maps them to OpenSSL
/// strings); `list:…` and `suites:…` pass raw OpenSSL strings instead.
pub const CIPHER_PRESETS: &[&str] = &["default", "aes256-sha", "rc4-sha", "rc4-md5"];

pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(5);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_DETACH_GRACE: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_FRAME: usize = 1518;
pub const DEFAULT_MAX_BATCH: usize = 256;
pub const DEFAULT_MAX_BUFFERED_FRAMES: usize = 4096;
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 1 << 20;

pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8192;
pub const DEFAULT_MAX_HANDSHAKES_PER_SHARD: usize = 256;
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;
pub const DEFAULT_MAX_HANDSHAKES_PER_ADDRESS: usize = 32;
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 256;
/// Frames buffered for all sessions together (retransmit rings).
pub const DEFAULT_MAX_BUFFER_MEMORY: usize = 1 << 30;

pub const DEFAULT_AUTH_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_AUTH_SLOW_AFTER: u32 = 3;
pub const DEFAULT_AUTH_BASE_DELAY: Duration = Duration::from_millis(250);
pub const DEFAULT_AUTH_MAX_DELAY: Duration = Duration::from_secs(4);
pub const DEFAULT_AUTH_REFUSE_AFTER_PER_ADDRESS: u32 = 20;
pub const DEFAULT_AUTH_REFUSE_AFTER_PER_USER: u32 = 100;
pub const DEFAULT_AUTH_LOCKOUT: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_AUTH_MAX_TRACKED: usize = 65_536;

pub const DEFAULT_AGING: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_MACS_PER_PORT: usize = 1024;
pub const DEFAULT_MAX_MACS_PER_HUB: usize = 65536;

// Bounds enforced by the validator.
pub const MAX_FRAME_RANGE: std::ops::RangeInclusive<usize> = 14..=65600;
pub const MAX_BATCH_RANGE: std::ops::RangeInclusive<usize> = 1..=4096;
pub const MAX_HEADER_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=1 << 20;
pub const MAX_SHARDS: usize = 1024;
const MAX_NAME_CHARS: usize = 128;

// ---------------------------------------------------------------------------
// The typed config.

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
    /// 0 = unlimited (the global `limits.max_sessions` still applies).
    pub max_sessions: usize,
    /// 0 = `fabric.max_macs_per_hub`.
    pub max_macs: usize,
    /// Users listed inline (`[[hub.user]]`), besides those in the users file.
    #[serde(rename = "user")]
    pub users: Vec<InlineUser>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            name: DEFAULT_HUB.to_owned(),
            anonymous: false,
            max_sessions: 0,
            max_macs: 0,
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

impl Config {
    /// Parses and validates a config given as text. Errors name the origin
    /// `<config>`; use [`Config::load`] for a file or
    /// [`Config::from_toml_named`] to name the origin.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        Self::from_toml_named(text, "<config>")
    }

    /// As [`Config::from_toml`], with `origin` (usually the file's path)
    /// used in the error lines.
    pub fn from_toml_named(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
        parse_and_validate(text).map_err(|problems| ConfigErrors {
            origin: origin.to_owned(),
            problems,
        })
    }

    /// Reads, parses and validates a config file. Relative `cert_dir` and
    /// `users_file` are taken relative to the file's directory (a daemon's
    /// working directory is usually `/`). Never writes anything.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            origin: origin.clone(),
            problems: vec![LocatedProblem {
                position: None,
                key: None,
                message: format!("cannot read the config file: {e}"),
            }],
        })?;
        let mut config = Self::from_toml_named(&text, &origin)?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [
            &mut config.cert_dir,
            &mut config.users_file,
            &mut config.admin_socket,
            &mut config.tls.client_ca,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() && !is_off(p) {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// The hubs this server runs: the `[[hub]]` tables, or the single hub
    /// `DEFAULT` (not anonymous) when there are none.
    pub fn hubs(&self) -> Cow<'_, [HubConfig]> {
        if self.hub.is_empty() {
            Cow::Owned(vec![HubConfig::default()])
        } else {
            Cow::Borrowed(&self.hub)
        }
    }

    /// `cert_dir`, or its default: `$STATE_DIRECTORY` (systemd), else
    /// `/var/lib/vhub` when running as root, else `$XDG_DATA_HOME/vhub` or
    /// `~/.local/share/vhub`.
    pub fn effective_cert_dir(&self) -> PathBuf {
        match &self.cert_dir {
            Some(dir) => dir.clone(),
            None => default_cert_dir(
                |k| std::env::var_os(k),
                // SAFETY: geteuid has no preconditions and cannot fail.
                unsafe { libc::geteuid() } == 0,
            ),
        }
    }

    /// The admin API's socket: `admin_socket`, `<cert_dir>/admin.sock` when
    /// unset, `None` when it is `"off"`.
    pub fn effective_admin_socket(&self) -> Option<PathBuf> {
        match &self.admin_socket {
            Some(p) if is_off(p) => None,
            Some(p) => Some(p.clone()),
            None => Some(self.effective_cert_dir().join(DEFAULT_ADMIN_SOCKET_NAME)),
        }
    }

    /// `users_file`, or `<cert_dir>/users.toml`.
    pub fn effective_users_file(&self) -> PathBuf {
        match &self.users_file {
            Some(f) => f.clone(),
            None => self.effective_cert_dir().join(DEFAULT_USERS_FILE_NAME),
        }
    }

    /// Every semantic problem of this config (types and unknown keys are
    /// already checked by parsing). Empty when the config is good. Use this
    /// after applying command-line overrides; [`Config::from_toml`] and
    /// [`Config::load`] call it and add file positions.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut v = Validator::default();
        v.check(self);
        v.problems
    }
}

/// `"off"` or `""`: a path setting that disables its feature.
fn is_off(p: &Path) -> bool {
    p.as_os_str().is_empty() || p.as_os_str() == "off"
}

/// The default certificate directory, from an environment lookup and
/// whether we run as root (both passed in so that tests need no real env).
pub fn default_cert_dir(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    is_root: bool,
) -> PathBuf {
    let non_empty = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(dirs) = non_empty("STATE_DIRECTORY") {
        // systemd passes a colon-separated list when several are configured.
        let dirs = dirs.to_string_lossy().into_owned();
        if let Some(first) = dirs.split(':').find(|d| !d.is_empty()) {
            return PathBuf::from(first);
        }
    }
    if is_root {
        return PathBuf::from("/var/lib/vhub");
    }
    if let Some(xdg) = non_empty("XDG_DATA_HOME").map(PathBuf::from) {
        // The XDG spec says to ignore a relative value.
        if xdg.is_absolute() {
            return xdg.join("vhub");
        }
    }
    match non_empty("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/vhub"),
        None => PathBuf::from("/var/lib/vhub"),
    }
}

/// Checks a hub name: `[A-Za-z0-9._-]{1,64}`. The error says what is wrong.
pub fn check_hub_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("hub name {name:?} must be 1 to 64 characters long"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "hub name {name:?} has the character {c:?}; use only A-Z a-z 0-9 . _ -"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Problems and their positions.

/// One step of a key path: `session`, `hub[1]`, …
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A key in the config, e.g. `session.timeout` or `hub[1].name`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyPath(pub Vec<PathSeg>);

impl KeyPath {
    fn key(mut self, k: &str) -> Self {
        self.0.push(PathSeg::Key(k.to_owned()));
        self
    }
    fn index(mut self, i: usize) -> Self {
        self.0.push(PathSeg::Index(i));
        self
    }
    fn starts_with(&self, other: &KeyPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

fn path(k: &str) -> KeyPath {
    KeyPath::default().key(k)
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A semantic problem found by [`Config::validate`], without a file position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key at fault.
    pub key: KeyPath,
    /// Another key involved (e.g. `session.keepalive` for a timeout that is
    /// too short); used for the position when `key` is not in the file.
    pub related: Option<KeyPath>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Line and column, both counted from 1 (columns in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// A problem with its position in the file, when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedProblem {
    pub position: Option<Position>,
    pub key: Option<String>,
    pub message: String,
}

/// Everything wrong with a config; displays one `FILE:LINE:COL: key: message`
/// line per problem, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file (or `<config>`) the problems are in.
    pub origin: String,
    pub problems: Vec<LocatedProblem>,
}

impl ConfigErrors {
    /// Wraps problems of a config that has no source text (e.g. after
    /// command-line overrides).
    pub fn from_problems(origin: &str, problems: Vec<ConfigProblem>) -> Self {
        Self {
            origin: origin.to_owned(),
            problems: problems
                .into_iter()
                .map(|p| LocatedProblem {
                    position: None,
                    key: Some(p.key.to_string()),
                    message: p.message,
                })
                .collect(),
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:", self.origin)?;
            if let Some(pos) = p.position {
                write!(f, "{}:{}:", pos.line, pos.column)?;
            }
            match &p.key {
                Some(k) if !k.is_empty() => write!(f, " {k}: {}", p.message)?,
                _ => write!(f, " {}", p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

// ---------------------------------------------------------------------------
// Parsing with recovery: report every problem, not just the first.

/// Bound on recovery rounds (each round removes one bad key).
const MAX_RECOVERY_ROUNDS: usize = 256;

fn parse_and_validate(text: &str) -> Result<Config, Vec<LocatedProblem>> {
    let lines = LineIndex::new(text);
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // The tree after a syntax error is a guess; report only the syntax.
        let mut out: Vec<LocatedProblem> = syntax
            .iter()
            .map(|e| LocatedProblem {
                position: e.span().map(|s| lines.position(s.start)),
                key: None,
                message: e.message().to_owned(),
            })
            .collect();
        sort_problems(&mut out);
        return Err(out);
    }

    // serde stops at the first error: record it, drop the key it points at
    // and try again, so that all bad keys are reported in one go.
    let mut tree = root;
    let mut problems = Vec::new();
    let mut removed: Vec<KeyPath> = Vec::new();
    let mut config = None;
    for _ in 0..MAX_RECOVERY_ROUNDS {
        match Config::deserialize(toml::de::Deserializer::from(tree.clone())) {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => {
                let at = e.span().map(|s| s.start);
                let key = at.and_then(|pos| entry_at(tree.get_ref(), pos));
                problems.push(LocatedProblem {
                    position: at.map(|p| lines.position(p)),
                    key: key.as_ref().map(|k| k.to_string()),
                    message: e.message().to_owned(),
                });
                match key {
                    Some(k) if remove_entry(tree.get_mut(), &k.0) => removed.push(k),
                    _ => break, // cannot recover: report what we have
                }
            }
        }
    }

    if let Some(config) = &config {
        for p in config.validate() {
            // A key that was dropped for a type error is at its default
            // now; problems about it would only be noise.
            let touches_removed =
                |k: &KeyPath| removed.iter().any(|r| k.starts_with(r) || r.starts_with(k));
            if touches_removed(&p.key) || p.related.as_ref().is_some_and(touches_removed) {
                continue;
            }
            let span = find_span(tree.get_ref(), &p.key.0, true)
                .or_else(|| {
                    p.related
                        .as_ref()
                        .and_then(|r| find_span(tree.get_ref(), &r.0, true))
                })
                .or_else(|| find_span(tree.get_ref(), &p.key.0, false));
            problems.push(LocatedProblem {
                position: span.map(|s| lines.position(s.start)),
                key: Some(p.key.to_string()),
                message: p.message,
            });
        }
    }

    match config {
        Some(c) if problems.is_empty() => Ok(c),
        _ => {
            sort_problems(&mut problems);
            Err(problems)
        }
    }
}

fn sort_problems(p: &mut [LocatedProblem]) {
    // Positioned problems in file order, then the others; stable otherwise.
    p.sort_by_key(|p| (p.position.is_none(), p.position));
}

/// The deepest table entry whose key or value contains byte `pos`.
fn entry_at(table: &DeTable<'_>, pos: usize) -> Option<KeyPath> {
    fn walk_value(v: &DeValue<'_>, pos: usize, here: &KeyPath) -> Option<KeyPath> {
        match v {
            DeValue::Table(t) => walk_table(t, pos, here),
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk_value(item.get_ref(), pos, &here.clone().index(i))),
            _ => None,
        }
    }
    fn walk_table(t: &DeTable<'_>, pos: usize, here: &KeyPath) -> Option<KeyPath> {
        for (k, v) in t.iter() {
            let p = here.clone().key(k.get_ref());
            if let Some(deeper) = walk_value(v.get_ref(), pos, &p) {
                return Some(deeper);
            }
            if k.span().contains(&pos) || v.span().contains(&pos) {
                return Some(p);
            }
        }
        None
    }
    walk_table(table, pos, &KeyPath::default())
}

/// Removes the table entry at `path` (which ends in a key). True if removed.
fn remove_entry(table: &mut DeTable<'_>, path: &[PathSeg]) -> bool {
    let Some((PathSeg::Key(last), parents)) = path.split_last() else {
        return false;
    };
    let mut t = table;
    let mut segs = parents.iter().peekable();
    while let Some(seg) = segs.next() {
        let PathSeg::Key(k) = seg else { return false };
        let Some(mut v) = t.get_mut(k.as_str()).map(|v| v.get_mut()) else {
            return false;
        };
        while let Some(PathSeg::Index(i)) = segs.peek() {
            let DeValue::Array(a) = v else { return false };
            let Some(item) = a.get_mut(*i) else {
                return false;
            };
            v = item.get_mut();
            segs.next();
        }
        let DeValue::Table(inner) = v else {
            return false;
        };
        t = inner;
    }
    t.remove(last.as_str()).is_some()
}

/// The span of the key at `path` (of the array element for an index). With
/// `exact == false`, the span of the deepest part of the path that exists.
fn find_span(table: &DeTable<'_>, path: &[PathSeg], exact: bool) -> Option<Range<usize>> {
    let mut best: Option<Range<usize>> = None;
    let mut cur: Option<&DeValue<'_>> = None;
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                let t = match cur {
                    None => table,
                    Some(DeValue::Table(t)) => t,
                    _ => return if exact { None } else { best },
                };
                let Some((key, value)) = t.iter().find(|(key, _)| key.get_ref() == k) else {
                    return if exact { None } else { best };
                };
                best = Some(key.span());
                cur = Some(value.get_ref());
            }
            PathSeg::Index(i) => {
                let Some(DeValue::Array(a)) = cur else {
                    return if exact { None } else { best };
                };
                let Some(item) = a.get(*i) else {
                    return if exact { None } else { best };
                };
                best = Some(item.span());
                cur = Some(item.get_ref());
            }
        }
    }
    best
}

/// Byte offset → line and column.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, starts }
    }

    pub(crate) fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        // Count characters, not bytes; `offset` may sit inside a character.
        let column = self.text[start..]
            .char_indices()
            .take_while(|(i, _)| start + i < offset)
            .count()
            + 1;
        Position {
            line: line + 1,
            column,
        }
    }
}

// ---------------------------------------------------------------------------
// Semantic checks.

#[derive(Default)]
struct Validator {
    problems: Vec<ConfigProblem>,
}

impl Validator {
    fn add(&mut self, key: KeyPath, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            key,
            related: None,
            message: message.into(),
        });
    }

    fn add_related(&mut self, key: KeyPath, related: KeyPath, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            key,
            related: Some(related),
            message: message.into(),
        });
    }

    fn nonzero(&mut self, key: KeyPath, value: usize) {
        if value == 0 {
            self.add(key, "must be greater than 0");
        }
    }

    fn nonzero_duration(&mut self, key: KeyPath, value: Duration) {
        if value.is_zero() {
            self.add(key, "must be longer than 0s");
        }
    }

    fn in_range(&mut self, key: KeyPath, value: usize, range: std::ops::RangeInclusive<usize>) {
        if !range.contains(&value) {
            self.add(
                key,
                format!(
                    "{value} is out of range; allowed: {} to {}",
                    range.start(),
                    range.end()
                ),
            );
        }
    }

    fn check(&mut self, c: &Config) {
        if c.name.is_empty() || c.name.chars().count() > MAX_NAME_CHARS {
            self.add(
                path("name"),
                format!("must be 1 to {MAX_NAME_CHARS} characters long"),
            );
        } else if c.name.chars().any(char::is_control) {
            self.add(path("name"), "must not contain control characters");
        }
        if c.shards > MAX_SHARDS {
            self.add(
                path("shards"),
                format!(
                    "{} is too many; at most {MAX_SHARDS} (0 = one per core)",
                    c.shards
                ),
            );
        }
        self.check_addresses(c);
        self.check_tls(&c.tls);
        self.check_session(&c.session);
        self.check_limits(&c.limits);
        self.check_auth(&c.auth);
        self.check_fabric(&c.fabric);
        self.check_hubs(c);
    }

    fn check_addresses(&mut self, c: &Config) {
        let clash = |a: &SocketAddr, b: &SocketAddr| {
            a.port() == b.port()
                && a.port() != 0
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        };
        if let Some(m) = &c.metrics_listen {
            if clash(m, &c.listen) {
                self.add_related(
                    path("metrics_listen"),
                    path("listen"),
                    format!("{m} collides with listen = {}", c.listen),
                );
            }
        }
        if let Some(p) = &c.admin_socket {
            if !is_off(p) && p.as_os_str().len() > MAX_SOCKET_PATH {
                self.add(
                    path("admin_socket"),
                    format!(
                        "{} is {} bytes long; a Unix socket path holds at most {MAX_SOCKET_PATH}",
                        p.display(),
                        p.as_os_str().len()
                    ),
                );
            }
        }
    }

    fn check_tls(&mut self, t: &TlsConfig) {
        let key = path("tls").key("ciphers");
        let c = t.ciphers.as_str();
        if let Some(rest) = c
            .strip_prefix("list:")
            .or_else(|| c.strip_prefix("suites:"))
        {
            if rest.trim().is_empty() {
                self.add(key, "the OpenSSL cipher string after the prefix is empty");
            }
        } else if !CIPHER_PRESETS.contains(&c) {
            self.add(
                key,
                format!(
                    "unknown preset {c:?}; use one of {} or an OpenSSL string as \"list:…\" (TLS 1.2) or \"suites:…\" (TLS 1.3)",
                    CIPHER_PRESETS.join(", ")
                ),
            );
        } else if c.starts_with("rc4") && !t.allow_legacy {
            self.add_related(
                key,
                path("tls").key("allow_legacy"),
                format!("the legacy preset {c:?} needs tls.allow_legacy = true (and a build with the `legacy-ciphers` feature)"),
            );
        }
    }

    fn check_session(&mut self, s: &SessionConfig) {
        let k = |name: &str| path("session").key(name);
        self.nonzero_duration(k("keepalive"), s.keepalive);
        if s.timeout <= s.keepalive {
            self.add_related(
                k("timeout"),
                k("keepalive"),
                format!(
                    "timeout ({}) must be longer than keepalive ({}), or a quiet but healthy link is declared dead",
                    fmt_duration(s.timeout),
                    fmt_duration(s.keepalive)
                ),
            );
        }
        self.in_range(k("max_frame"), s.max_frame, MAX_FRAME_RANGE);
        self.in_range(k("max_batch"), s.max_batch, MAX_BATCH_RANGE);
        self.nonzero(k("max_buffered_frames"), s.max_buffered_frames);
        if s.max_buffered_bytes == 0 {
            self.add(k("max_buffered_bytes"), "must be greater than 0");
        } else if s.max_buffered_bytes < s.max_frame {
            self.add_related(
                k("max_buffered_bytes"),
                k("max_frame"),
                format!(
                    "{} bytes cannot hold one frame of max_frame = {} bytes",
                    s.max_buffered_bytes, s.max_frame
                ),
            );
        }
    }

    fn check_limits(&mut self, l: &LimitsConfig) {
        let k = |name: &str| path("limits").key(name);
        self.nonzero_duration(k("handshake_timeout"), l.handshake_timeout);
        self.in_range(
            k("max_header_bytes"),
            l.max_header_bytes,
            MAX_HEADER_BYTES_RANGE,
        );
        self.nonzero(k("max_handshakes_per_shard"), l.max_handshakes_per_shard);
        self.nonzero(k("max_sessions"), l.max_sessions);
        self.nonzero(
            k("max_handshakes_per_address"),
            l.max_handshakes_per_address,
        );
        if l.max_buffer_memory < (1 << 20) {
            self.add(
                k("max_buffer_memory"),
                format!("{} bytes is too small; at least 1MiB", l.max_buffer_memory),
            );
        }
        if l.max_handshakes_per_address > l.max_handshakes_per_shard * MAX_SHARDS {
            self.add_related(
                k("max_handshakes_per_address"),
                k("max_handshakes_per_shard"),
                "is more than all shards together can hold",
            );
        }
    }

    fn check_auth(&mut self, a: &AuthConfig) {
        let k = |name: &str| path("auth").key(name);
        self.nonzero_duration(k("failure_window"), a.failure_window);
        self.nonzero_duration(k("lockout"), a.lockout);
        self.nonzero(k("max_tracked"), a.max_tracked);
        self.nonzero(
            k("refuse_after_per_address"),
            a.refuse_after_per_address as usize,
        );
        self.nonzero(k("refuse_after_per_user"), a.refuse_after_per_user as usize);
        if a.max_delay < a.base_delay {
            self.add_related(
                k("max_delay"),
                k("base_delay"),
                "must not be shorter than base_delay",
            );
        }
        if a.max_delay > Duration::from_secs(60) {
            self.add(
                k("max_delay"),
                "at most 60s: a longer wait only holds a connection open",
            );
        }
        for (name, v) in [
            ("refuse_after_per_address", a.refuse_after_per_address),
            ("refuse_after_per_user", a.refuse_after_per_user),
        ] {
            if v != 0 && v <= a.slow_after {
                self.add_related(
                    k(name),
                    k("slow_after"),
                    format!(
                        "{v} must be more than slow_after = {}: failures are slowed down before they are refused",
                        a.slow_after
                    ),
                );
            }
        }
    }

    fn check_fabric(&mut self, f: &FabricConfig) {
        let k = |name: &str| path("fabric").key(name);
        self.nonzero_duration(k("aging"), f.aging);
        self.nonzero(k("max_macs_per_port"), f.max_macs_per_port);
        self.nonzero(k("max_macs_per_hub"), f.max_macs_per_hub);
        if f.max_macs_per_hub != 0 && f.max_macs_per_port > f.max_macs_per_hub {
            self.add_related(
                k("max_macs_per_port"),
                k("max_macs_per_hub"),
                format!(
                    "{} is more than max_macs_per_hub = {}",
                    f.max_macs_per_port, f.max_macs_per_hub
                ),
            );
        }
    }

    fn check_hubs(&mut self, c: &Config) {
        let mut seen: std::collections::HashMap<&str, usize> = Default::default();
        for (i, hub) in c.hub.iter().enumerate() {
            let at = path("hub").index(i);
            if let Err(e) = check_hub_name(&hub.name) {
                self.add(at.clone().key("name"), e);
            } else if let Some(first) = seen.insert(&hub.name, i) {
                seen.insert(&hub.name, first);
                self.add(
                    at.clone().key("name"),
                    format!(
                        "duplicate hub name {:?}; hub[{first}] has it already",
                        hub.name
                    ),
                );
            }
            self.check_inline_users(&at, hub);
        }
    }

    fn check_inline_users(&mut self, hub_at: &KeyPath, hub: &HubConfig) {
        let mut seen: std::collections::HashMap<&str, usize> = Default::default();
        for (i, u) in hub.users.iter().enumerate() {
            let at = hub_at.clone().key("user").index(i);
            if let Err(e) = crate::users::check_user_name(&u.name) {
                self.add(at.clone().key("name"), e.to_string());
            } else if let Some(first) = seen.insert(&u.name, i) {
                seen.insert(&u.name, first);
                self.add(
                    at.clone().key("name"),
                    format!(
                        "duplicate user {:?} in hub {:?}; user[{first}] has it already",
                        u.name, hub.name
                    ),
                );
            }
            if let Some(pw) = &u.password {
                if let Err(e) = crate::users::PasswordHash::parse(pw) {
                    self.add(at.clone().key("password"), e.to_string());
                }
            }
            if let Some(fp) = &u.cert_fingerprint {
                if let Err(e) = fp.parse::<certs::Fingerprint>() {
                    self.add(at.clone().key("cert_fingerprint"), e.to_string());
                }
            }
            if u.password.is_none() && u.cert_fingerprint.is_none() && u.cert_subject.is_none() {
                self.add(
                    at.clone().key("name"),
                    "this user has no password, cert_fingerprint or cert_subject and can never log in",
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Value parsers: addresses, durations, sizes.

fn de_addr<'de, D: de::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    parse_addr(&s).map_err(de::Error::custom)
}

fn de_opt_addr<'de, D: de::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() || s == "off" {
        return Ok(None);
    }
    parse_addr(&s).map(Some).map_err(de::Error::custom)
}

/// Parses `IP:PORT` (`[v6]:PORT` for IPv6).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not an address; write IP:PORT, e.g. \"0.0.0.0:8443\" or \"[::]:8443\"")
    })
}

fn de_duration<'de, D: de::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"5s\", \"300ms\" or \"2m\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            parse_duration(s).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "a duration needs a unit: write \"{n}s\" or \"{n}ms\""
            )))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
            self.visit_i64(n as i64)
        }
    }
    d.deserialize_any(V)
}

fn de_size<'de, D: de::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size in bytes, such as 8192 or \"4MiB\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<usize, E> {
            parse_size(s).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<usize, E> {
            usize::try_from(n).map_err(|_| E::custom(format!("{n} is not a size in bytes")))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<usize, E> {
            usize::try_from(n).map_err(|_| E::custom(format!("{n} bytes is too large")))
        }
    }
    d.deserialize_any(V)
}

/// Parses a duration: one or more `<number><unit>` parts, units `ms`, `s`,
/// `m`, `h`, `d`; e.g. `"5s"`, `"300ms"`, `"1m30s"`, `"1.5s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("{s:?} is not a duration; write e.g. \"5s\", \"300ms\", \"2m\" or \"1m30s\"");
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0; // nanoseconds
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "" => {
                return Err(format!(
                    "{s:?} needs a unit: ms, s, m, h or d (e.g. \"5s\")"
                ))
            }
            _ => {
                return Err(format!(
                    "{s:?} has the unknown unit {unit:?}; use ms, s, m, h or d"
                ))
            }
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty() || frac.contains('.') {
            return Err(bad());
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut part = int.checked_mul(unit_ns).ok_or_else(bad)?;
        let mut scale = unit_ns;
        for d in frac.chars().take(18) {
            scale /= 10;
            part += u128::from(d.to_digit(10).ok_or_else(bad)?) * scale;
        }
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = tail.trim_start();
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Parses a size: a plain number of bytes, or a number with `B`, `KiB`,
/// `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of 1000); units
/// are case-insensitive and may follow a space: `"4MiB"`, `"64 KiB"`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let text = s.trim();
    let num_len = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(num_len);
    if num.is_empty() {
        return Err(format!(
            "{s:?} is not a size; write a number of bytes or e.g. \"64KiB\", \"4MiB\""
        ));
    }
    let mult: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "{s:?} has the unknown unit {other:?}; use B, KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Formats a duration the way the config writes it (`"5s"`, `"300ms"`).
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() != d.subsec_millis() * 1_000_000 {
        format!("{}ns", d.as_nanos())
    } else if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        Config::from_toml_named(text, "vhub.toml")
            .expect_err("config should be refused")
            .to_string()
    }

    const SAMPLE_HASH: &str =
        "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn empty_file_is_default() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
        assert_eq!(
            Config::from_toml("# only a comment\n").unwrap(),
            Config::default()
        );
        assert!(Config::default().validate().is_empty());
    }

    #[test]
    fn documented_defaults_written_out_equal_default() {
        let text = r#"
name = "vhub"
listen = "0.0.0.0:8443"
metrics_listen = "127.0.0.1:9750"
shards = 0
io_backend = "auto"
[tls]
ciphers = "default"
allow_legacy = false
[session]
keepalive = "5s"
timeout = "15s"
detach_grace = "60s"
max_frame = 1518
max_batch = 256
max_buffered_frames = 4096
max_buffered_bytes = "1MiB"
[limits]
handshake_timeout = "10s"
max_header_bytes = 8192
max_handshakes_per_shard = 256
max_sessions = 100000
[fabric]
aging = "300s"
max_macs_per_port = 1024
max_macs_per_hub = 65536
"#;
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }

    #[test]
    fn hubs_defaults_to_one_default_hub() {
        let c = Config::default();
        let hubs = c.hubs();
        assert_eq!(hubs.len(), 1);
        assert_eq!(hubs[0].name, "DEFAULT");
        assert!(!hubs[0].anonymous);

        let c =
            Config::from_toml("[[hub]]\nname = \"a\"\nanonymous = true\n[[hub]]\nname = \"b\"\n")
                .unwrap();
        let names: Vec<_> = c.hubs().iter().map(|h| h.name.clone()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(c.hubs()[0].anonymous);
        assert_eq!(
            c.hubs()[1].effective_max_macs(&c.fabric),
            DEFAULT_MAX_MACS_PER_HUB
        );
    }

    #[test]
    fn full_config_parses() {
        let text = format!(
            r#"
name = "lab hub"
listen = "[::]:443"
metrics_listen = "off"
admin_socket = "off"
cert_dir = "/etc/vhub"
shards = 4
io_backend = "epoll"
[tls]
ciphers = "rc4-md5"
allow_legacy = true
[session]
keepalive = "2s"
timeout = "1m30s"
detach_grace = "0s"
max_frame = 9018
max_buffered_bytes = 16777216
[limits]
max_header_bytes = "16 KiB"
[[hub]]
name = "office"
max_sessions = 10
max_macs = 100
[[hub.user]]
name = "alice@example.org"
password = "{SAMPLE_HASH}"
[[hub.user]]
name = "bob"
cert_fingerprint = "sha256:{}"
"#,
            "ab".repeat(32)
        );
        let c = Config::from_toml(&text).unwrap();
        assert_eq!(c.listen, "[::]:443".parse().unwrap());
        assert_eq!(c.metrics_listen, None);
        assert_eq!(c.effective_admin_socket(), None);
        assert_eq!(c.effective_cert_dir(), PathBuf::from("/etc/vhub"));
        assert_eq!(
            c.effective_users_file(),
            PathBuf::from("/etc/vhub/users.toml")
        );
        assert_eq!(c.io_backend, IoBackendSetting::Epoll);
        assert_eq!(c.session.timeout, Duration::from_secs(90));
        assert_eq!(c.session.detach_grace, Duration::ZERO);
        assert_eq!(c.limits.max_header_bytes, 16 * 1024);
        assert_eq!(c.hub[0].users.len(), 2);
        assert!(!format!("{:?}", c.hub[0].users[0]).contains("AAAA"));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1..5s").is_err());
        assert!(parse_duration("99999999999999999999999d").is_err());
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("64 kib"), Ok(64 << 10));
        assert_eq!(parse_size("2KB"), Ok(2000));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100B"), Ok(100));
        assert!(parse_size("4M").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999GiB").is_err());
        assert_eq!(fmt_duration(Duration::from_secs(5)), "5s");
        assert_eq!(fmt_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(fmt_duration(Duration::from_nanos(1_000_001)), "1000001ns");
    }

    #[test]
    fn hub_names() {
        assert!(check_hub_name("DEFAULT").is_ok());
        assert!(check_hub_name("a.b_c-9").is_ok());
        assert!(check_hub_name(&"x".repeat(64)).is_ok());
        assert!(check_hub_name(&"x".repeat(65)).is_err());
        assert!(check_hub_name("").is_err());
        assert!(check_hub_name("a b").is_err());
        assert!(check_hub_name("a/b").is_err());
        assert!(check_hub_name("é").is_err());
    }

    #[test]
    fn default_cert_dir_rules() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert_eq!(
            default_cert_dir(env(&[("STATE_DIRECTORY", "/var/lib/x:/var/lib/y")]), false),
            PathBuf::from("/var/lib/x")
        );
        assert_eq!(
            default_cert_dir(env(&[("HOME", "/root")]), true),
            PathBuf::from("/var/lib/vhub")
        );
        assert_eq!(
            default_cert_dir(env(&[("XDG_DATA_HOME", "/d"), ("HOME", "/h")]), false),
            PathBuf::from("/d/vhub")
        );
        assert_eq!(
            default_cert_dir(env(&[("XDG_DATA_HOME", "rel"), ("HOME", "/h")]), false),
            PathBuf::from("/h/.local/share/vhub")
        );
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = errors("name = \"x\"\nlisten = \n");
        assert!(e.starts_with("vhub.toml:2:"), "{e}");
    }

    #[test]
    fn unknown_fields_all_reported_with_lines() {
        let e = errors(
            "nmae = \"x\"\n[session]\nkeepalive = \"1s\"\nkeepalvie = \"2s\"\n[limits]\nfoo = 1\n",
        );
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(
            lines[0].starts_with("vhub.toml:1:1: nmae: unknown field `nmae`"),
            "{e}"
        );
        assert!(
            lines[1].starts_with("vhub.toml:4:1: session.keepalvie: unknown field `keepalvie`"),
            "{e}"
        );
        assert!(
            lines[2].starts_with("vhub.toml:6:1: limits.foo: unknown field `foo`"),
            "{e}"
        );
    }

    #[test]
    fn type_errors_and_semantic_problems_together() {
        let text = "\
listen = \"nowhere\"
io_backend = \"kqueue\"
[session]
keepalive = \"10s\"
timeout = \"10s\"
max_frame = 10
max_batch = 0
max_buffered_frames = 0
[fabric]
aging = 300
[[hub]]
name = \"a\"
[[hub]]
name = \"a\"
[[hub]]
name = \"bad name\"
";
        let e = errors(text);
        let expect = [
            "vhub.toml:1:10: listen: \"nowhere\" is not an address",
            "vhub.toml:2:14: io_backend: unknown variant `kqueue`, expected one of `auto`, `uring`, `epoll`",
            "vhub.toml:5:1: session.timeout: timeout (10s) must be longer than keepalive (10s)",
            "vhub.toml:6:1: session.max_frame: 10 is out of range; allowed: 14 to 65600",
            "vhub.toml:7:1: session.max_batch: 0 is out of range; allowed: 1 to 4096",
            "vhub.toml:8:1: session.max_buffered_frames: must be greater than 0",
            "vhub.toml:10:9: fabric.aging: a duration needs a unit: write \"300s\" or \"300ms\"",
            "vhub.toml:14:1: hub[1].name: duplicate hub name \"a\"; hub[0] has it already",
            "vhub.toml:16:1: hub[2].name: hub name \"bad name\" has the character ' '",
        ];
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), expect.len(), "{e}");
        for (line, want) in lines.iter().zip(expect) {
            assert!(
                line.starts_with(want),
                "got  {line}\nwant {want}\nall:\n{e}"
            );
        }
    }

    #[test]
    fn problem_on_defaulted_key_points_at_related_or_section() {
        // keepalive is not in the file: the problem points at timeout.
        let e = errors("[session]\ntimeout = \"3s\"\n");
        assert!(e.starts_with("vhub.toml:2:1: session.timeout:"), "{e}");
        // timeout is not in the file: point at keepalive, the key written.
        let e = errors("[session]\nkeepalive = \"30s\"\n");
        assert!(e.starts_with("vhub.toml:2:1: session.timeout:"), "{e}");
        // dotted keys work too
        let e = errors("session.max_batch = 5000\n");
        assert!(e.starts_with("vhub.toml:1:9: session.max_batch:"), "{e}");
    }

    #[test]
    fn addresses_must_not_collide() {
        let e = errors("listen = \"127.0.0.1:9750\"\n");
        assert!(
            e.contains("metrics_listen: 127.0.0.1:9750 collides with listen"),
            "{e}"
        );
        assert!(
            Config::from_toml("listen = \"0.0.0.0:0\"\nmetrics_listen = \"0.0.0.0:0\"\n").is_ok()
        );
    }

    #[test]
    fn tls_ciphers_checked() {
        assert!(errors("[tls]\nciphers = \"rc4-md5\"\n").contains("tls.allow_legacy = true"));
        assert!(errors("[tls]\nciphers = \"aes128\"\n").contains("unknown preset"));
        assert!(errors("[tls]\nciphers = \"list:\"\n").contains("empty"));
        assert!(Config::from_toml("[tls]\nciphers = \"suites:TLS_AES_256_GCM_SHA384\"\n").is_ok());
    }

    #[test]
    fn inline_users_checked() {
        let text = format!(
            "[[hub]]\nname = \"h\"\n[[hub.user]]\nname = \"a b\"\npassword = \"{SAMPLE_HASH}\"\n[[hub.user]]\nname = \"c\"\npassword = \"hunter2\"\n[[hub.user]]\nname = \"d\"\n"
        );
        let e = errors(&text);
        assert!(e.contains("vhub.toml:4:1: hub[0].user[0].name:"), "{e}");
        assert!(e.contains("vhub.toml:8:1: hub[0].user[1].password:"), "{e}");
        assert!(
            e.contains("vhub.toml:10:1: hub[0].user[2].name: this user has no password"),
            "{e}"
        );
        assert!(
            !e.contains("hunter2"),
            "a plain password must not be echoed: {e}"
        );
    }

    #[test]
    fn sizes_and_negative_numbers() {
        let e = errors("[session]\nmax_buffered_bytes = \"4 lots\"\n[limits]\nmax_sessions = -1\nmax_header_bytes = 100\n");
        assert!(
            e.contains("vhub.toml:2:22: session.max_buffered_bytes:"),
            "{e}"
        );
        assert!(e.contains("vhub.toml:4:16: limits.max_sessions:"), "{e}");
        assert!(
            e.contains("vhub.toml:5:1: limits.max_header_bytes: 100 is out of range"),
            "{e}"
        );
    }

    #[test]
    fn load_resolves_relative_paths_and_reports_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vhub.toml");
        std::fs::write(
            &file,
            "cert_dir = \"certs\"\nusers_file = \"/abs/users.toml\"\n",
        )
        .unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.cert_dir, Some(dir.path().join("certs")));
        assert_eq!(c.users_file, Some(PathBuf::from("/abs/users.toml")));
        // The admin socket defaults to the certificate directory…
        assert_eq!(
            c.effective_admin_socket(),
            Some(dir.path().join("certs/admin.sock"))
        );
        // …and a relative one is relative to the file too; "off" stays off.
        std::fs::write(&file, "admin_socket = \"run/a.sock\"\n").unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(
            c.effective_admin_socket(),
            Some(dir.path().join("run/a.sock"))
        );
        std::fs::write(&file, "admin_socket = \"off\"\n").unwrap();
        assert_eq!(Config::load(&file).unwrap().effective_admin_socket(), None);

        let missing = dir.path().join("nope.toml");
        let e = Config::load(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}: cannot read the config file",
                missing.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn columns_count_characters() {
        let idx = LineIndex::new("ä = 1\nxy");
        assert_eq!(idx.position(0), Position { line: 1, column: 1 });
        assert_eq!(idx.position(3), Position { line: 1, column: 3 });
        assert_eq!(idx.position(8), Position { line: 2, column: 2 });
    }
}
