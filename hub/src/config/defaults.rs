//! Every default value and every fixed bound of the config, in one place.
//!
//! The typed structs (`types.rs`) take their defaults from here and
//! the validator (`validate.rs`) its ranges; the rest of the hub reads
//! a few of them (`crate::config::DEFAULT_…`) for settings it builds
//! without a file.

use std::time::Duration;

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
/// A flood names the shards it crosses to in a fixed-size set.
pub const MAX_SHARDS: usize = switch_core::fabric::MAX_SHARDS;
/// Longest `busy_poll`: longer spins only burn CPU through real pauses.
pub const MAX_BUSY_POLL: std::time::Duration = std::time::Duration::from_millis(10);
