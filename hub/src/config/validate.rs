//! The semantic checks: one validator for the start and for a reload.
//!
//! Parsing has checked types and unknown keys; this checks ranges and the
//! relations between keys (a timeout longer than the keep-alive, a metrics
//! listener that does not collide with the main one, hub and user names,
//! the inline users' hashes and fingerprints). It reports every problem,
//! each at the [`KeyPath`] at fault, and never stops at the first.

use std::net::SocketAddr;
use std::time::Duration;

use super::bridge::{check_ifname, BridgeMode};
use super::defaults::{
    CIPHER_PRESETS, MAX_BATCH_RANGE, MAX_BUSY_POLL, MAX_FRAME_RANGE, MAX_HEADER_BYTES_RANGE,
    MAX_SHARDS, MAX_SOCKET_PATH,
};
use super::paths::is_off;
use super::problems::{path, ConfigProblem, KeyPath};
use super::types::{
    AuthConfig, Config, FabricConfig, HubConfig, LimitsConfig, SessionConfig, TlsConfig,
};
use super::values::fmt_duration;

/// Longest `name` (shown on the hub's page), in characters.
const MAX_NAME_CHARS: usize = 128;

impl Config {
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
        if c.busy_poll > MAX_BUSY_POLL {
            self.add(
                path("busy_poll"),
                format!(
                    "{} is longer than {}: a shard would spin through pauses in the traffic that sleeping costs nothing in",
                    fmt_duration(c.busy_poll),
                    fmt_duration(MAX_BUSY_POLL)
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
        self.check_bridges(c);
    }

    /// Each hub's bridge, then across hubs: one Linux bridge for two hubs
    /// would join two broadcast domains into one, and one TAP name cannot
    /// be two devices.
    fn check_bridges(&mut self, c: &Config) {
        let mut interfaces: std::collections::HashMap<&str, usize> = Default::default();
        let mut taps: std::collections::HashMap<String, usize> = Default::default();
        for (i, hub) in c.hub.iter().enumerate() {
            let Some(b) = &hub.bridge else { continue };
            let at = path("hub").index(i).key("bridge");
            if let Err(e) = check_ifname(&b.interface) {
                self.add(at.clone().key("interface"), e);
            } else if let Some(first) = interfaces.insert(&b.interface, i) {
                interfaces.insert(&b.interface, first);
                self.add(
                    at.clone().key("interface"),
                    format!(
                        "hub[{first}] is bridged to {:?} already: two virtual hubs on one LAN would be one broadcast domain",
                        b.interface
                    ),
                );
            }
            if b.mode == BridgeMode::Packet {
                // A packet socket on the interface itself: no TAP device.
                if b.tap.is_some() {
                    self.add(
                        at.clone().key("tap"),
                        "mode \"packet\" makes no TAP device; remove tap, or use mode = \"tap\"",
                    );
                }
            } else if let Some(problem) = tap_problem(b, &hub.name, &taps) {
                self.add(at.clone().key("tap"), problem);
            } else {
                taps.insert(b.tap_name(&hub.name), i);
            }
            let hub_cap = hub.effective_max_macs(&c.fabric);
            if b.max_macs == 0 {
                self.add(at.clone().key("max_macs"), "must be greater than 0");
            } else if b.max_macs > hub_cap {
                self.add(
                    at.clone().key("max_macs"),
                    format!(
                        "{} is more than the hub's own cap of {hub_cap} MACs",
                        b.max_macs
                    ),
                );
            }
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

/// What is wrong with the TAP name of bridge `b` of hub `hub`, if
/// anything (`taps`: the names earlier hubs use, and which hub).
fn tap_problem(
    b: &super::bridge::BridgeConfig,
    hub: &str,
    taps: &std::collections::HashMap<String, usize>,
) -> Option<String> {
    let tap = b.tap_name(hub);
    let problem = if let Err(e) = check_ifname(&tap) {
        e
    } else if tap == b.interface {
        format!("the TAP device cannot have the bridge's own name {tap:?}")
    } else if let Some(first) = taps.get(&tap) {
        format!(
            "hub[{first}] uses the TAP name {tap:?} already; set tap = \"…\" to tell them apart"
        )
    } else {
        return None;
    };
    Some(problem)
}
