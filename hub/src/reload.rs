//! Config reload (SIGHUP or `vhub ctl reload`): read the config and the
//! users file again, validate both, and apply what a running hub can take.
//!
//! All or nothing for errors: a file with any problem is refused with the
//! validator's messages and the running config stays. A valid file is
//! applied:
//!
//! - users (users file and inline `[[hub.user]]`): added, removed and
//!   changed passwords count for the next login; sessions of removed users
//!   are closed (CLOSE `auth-revoked`);
//! - virtual hubs: `anonymous` and `max_sessions` change in place; a hub
//!   missing from the file stops taking sessions and its sessions are
//!   closed; a hub removed earlier and written back is enabled again; a
//!   new hub takes one of the spare slots sized at start
//!   ([`SPARE_HUBS`](crate::switchboard::SPARE_HUBS)) and takes sessions
//!   at once;
//! - local bridges (`[[hub]] bridge`): added, changed (detached, then
//!   attached again) and removed, through the owning shard's control
//!   queue ([`apply_bridges`]);
//! - every other session keeps running untouched.
//!
//! What needs a restart is listed, never silently ignored: the listeners
//! (`listen`, `metrics_listen`, `admin_socket`), `shards`, `io_backend`,
//! `log_format`, `cert_dir` and the certificate files, `[tls]`,
//! `[session]`, `[limits]`, `[fabric]`, `name`, a hub's `max_macs` (an
//! added hub gets the default MAC table size), and a new hub when every
//! spare slot is used.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;
use switch_core::wire::CloseCode;
use tracing::{info, warn};

use crate::admin::ReloadReport;
use crate::auth::SharedAuth;
use crate::config::{fmt_duration, Config, HubConfig};
use crate::switchboard::{SessionEntry, Switchboard, VirtualHub};
use crate::users::UserDb;

/// Loads and validates the config as the hub did at start (file + flags).
pub type LoadFn = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

pub struct Reloader {
    load: LoadFn,
    /// The config the hub started with: what needs a restart is measured
    /// against it.
    started: Config,
    /// The certificate being served (a changed file needs a restart).
    cert_pem: Vec<u8>,
    /// The last applied config and user list (hub, name): to say what changed.
    current: Mutex<(Config, BTreeSet<(String, String)>)>,
    sb: Arc<Switchboard>,
    auth: Arc<SharedAuth>,
}

fn user_set(db: &UserDb) -> BTreeSet<(String, String)> {
    db.list()
        .map(|u| (u.hub().to_owned(), u.name().to_owned()))
        .collect()
}

impl Reloader {
    pub fn new(
        load: LoadFn,
        started: Config,
        users: &UserDb,
        cert_pem: Vec<u8>,
        sb: Arc<Switchboard>,
        auth: Arc<SharedAuth>,
    ) -> Self {
        Self {
            load,
            current: Mutex::new((started.clone(), user_set(users))),
            started,
            cert_pem,
            sb,
            auth,
        }
    }

    /// Reloads; the report says what happened. Logs it too.
    pub fn reload(&self) -> ReloadReport {
        // One reload at a time (SIGHUP and ctl may race).
        let mut current = self.current.lock();
        let report = self.try_reload(&mut current);
        let m = &self.sb.metrics;
        if report.ok {
            m.reloads[0].fetch_add(1, Ordering::Relaxed);
            info!(
                applied = ?report.applied,
                closed_sessions = report.closed_sessions,
                "config reloaded"
            );
            for r in &report.needs_restart {
                warn!("config reload: not applied, needs a restart: {r}");
            }
        } else {
            m.reloads[1].fetch_add(1, Ordering::Relaxed);
            warn!(
                "config reload refused, the running config stays:\n{}",
                report.errors.join("\n")
            );
        }
        report
    }

    /// Reads and applies the config in steps: hubs, then users, then the
    /// sessions the new config no longer allows (judged against the hubs
    /// and users just applied). `current` is replaced only when the new
    /// config loaded.
    fn try_reload(&self, current: &mut (Config, BTreeSet<(String, String)>)) -> ReloadReport {
        let (config, users) = match self.load_files() {
            Ok(loaded) => loaded,
            Err(errors) => {
                return ReloadReport {
                    ok: false,
                    errors,
                    ..ReloadReport::default()
                }
            }
        };
        let mut r = ReloadReport {
            ok: true,
            needs_restart: self.needs_restart(&config),
            ..ReloadReport::default()
        };
        self.apply_hubs(&config.hubs(), &mut r);
        r.applied.extend(apply_bridges(&self.sb, &config.hubs()));
        let new_users = user_set(&users);
        report_user_changes(&current.1, &new_users, &mut r);
        let users: Arc<UserDb> = Arc::new(users);
        self.auth.set(users.clone());
        self.close_disallowed(&users, &mut r);
        if r.applied.is_empty() {
            r.applied.push("no changes".into());
        }
        *current = (config, new_users);
        r
    }

    /// The config and the users file, both valid, or every problem (one
    /// line each) of the first that is not.
    fn load_files(&self) -> Result<(Config, UserDb), Vec<String>> {
        let config = (self.load)().map_err(|e| e.lines().map(str::to_owned).collect::<Vec<_>>())?;
        let users = UserDb::load_with_config(&config)
            .map_err(|e| e.to_string().lines().map(str::to_owned).collect::<Vec<_>>())?;
        Ok((config, users))
    }

    /// Adds new hubs, updates the ones that stay, then disables the hubs
    /// missing from `hubs` (their sessions are closed afterwards by
    /// [`Self::close_disallowed`]).
    fn apply_hubs(&self, hubs: &[HubConfig], r: &mut ReloadReport) {
        for cfg in hubs {
            match self.sb.hub_index(&cfg.name) {
                Some(i) => update_hub(&self.sb.hubs[i], cfg, r),
                None => self.add_hub(cfg, r),
            }
        }
        for h in &self.sb.hubs {
            if !hubs.iter().any(|c| c.name == h.name()) && h.enabled.swap(false, Ordering::AcqRel) {
                r.applied.push(format!(
                    "virtual hub {} removed: no new sessions, its sessions are closed",
                    h.name()
                ));
            }
        }
    }

    /// A hub new to the switchboard takes a spare slot; with none left it
    /// is listed as needing a restart.
    fn add_hub(&self, cfg: &HubConfig, r: &mut ReloadReport) {
        let settings = crate::server::HubSettings {
            name: cfg.name.clone(),
            anonymous: cfg.anonymous,
            softether: cfg.softether,
            max_sessions: cfg.max_sessions,
            max_macs: cfg.max_macs as u32,
        };
        match self.sb.add_hub(&settings) {
            Some(_) => r.applied.push(format!("virtual hub {} added", cfg.name)),
            None => r.needs_restart.push(format!(
                "virtual hub {} is new and all {} spare hub slots are used: adding it needs a restart",
                cfg.name,
                crate::switchboard::SPARE_HUBS
            )),
        }
    }

    /// Closes (CLOSE `auth-revoked`) every session the applied hubs and
    /// `users` no longer allow. The session table is copied first so that
    /// its lock is not held while sessions are kicked.
    fn close_disallowed(&self, users: &UserDb, r: &mut ReloadReport) {
        let entries: Vec<_> = self
            .sb
            .sessions
            .lock()
            .iter()
            .map(|(t, e)| (*t, e.clone()))
            .collect();
        for (token, e) in entries {
            let Some(why) = why_disallowed(&self.sb.hubs[e.hub], &e, users) else {
                continue;
            };
            if self.sb.kick(&token, CloseCode::AuthRevoked, &why) {
                r.closed_sessions += 1;
            }
        }
    }

    /// Differences from the started config that a running hub cannot take.
    fn needs_restart(&self, new: &Config) -> Vec<String> {
        let old = &self.started;
        let mut out = Vec::new();
        let mut diff = |key: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{key}: {a} → {b}"));
            }
        };
        diff("name", format!("{:?}", old.name), format!("{:?}", new.name));
        diff("listen", old.listen.to_string(), new.listen.to_string());
        let opt = |a: Option<std::net::SocketAddr>| a.map_or("off".into(), |a| a.to_string());
        diff(
            "metrics_listen",
            opt(old.metrics_listen),
            opt(new.metrics_listen),
        );
        let path =
            |p: Option<std::path::PathBuf>| p.map_or("off".into(), |p| p.display().to_string());
        diff(
            "admin_socket",
            path(old.effective_admin_socket()),
            path(new.effective_admin_socket()),
        );
        diff(
            "cert_dir",
            old.effective_cert_dir().display().to_string(),
            new.effective_cert_dir().display().to_string(),
        );
        diff("shards", old.shards.to_string(), new.shards.to_string());
        diff(
            "io_backend",
            old.io_backend.as_str().into(),
            new.io_backend.as_str().into(),
        );
        diff(
            "busy_poll",
            fmt_duration(old.busy_poll),
            fmt_duration(new.busy_poll),
        );
        diff(
            "log_format",
            old.log_format.to_string(),
            new.log_format.to_string(),
        );
        for (key, same) in [
            ("[tls]", old.tls == new.tls),
            ("[session]", old.session == new.session),
            ("[limits]", old.limits == new.limits),
            ("[fabric]", old.fabric == new.fabric),
        ] {
            if !same {
                out.push(format!("{key} changed"));
            }
        }
        let old_hubs = old.hubs();
        for h in new.hubs().iter() {
            match old_hubs.iter().find(|o| o.name == h.name) {
                // Added by a reload with the default MAC table size.
                None if h.max_macs != 0 => out.push(format!(
                    "hub {} (added): max_macs {} applies after a restart",
                    h.name, h.max_macs
                )),
                None => {}
                Some(o) if o.max_macs != h.max_macs => out.push(format!(
                    "hub {}: max_macs {} → {}",
                    h.name, o.max_macs, h.max_macs
                )),
                Some(_) => {}
            }
        }
        let cert = new.effective_cert_dir().join("ca.crt");
        let fp = |pem: &[u8]| {
            openssl::x509::X509::from_pem(pem)
                .and_then(|c| c.digest(openssl::hash::MessageDigest::sha256()))
                .map(|d| d.to_vec())
                .ok()
        };
        if let Ok(pem) = std::fs::read(&cert) {
            if fp(&pem) != fp(&self.cert_pem) {
                out.push(format!(
                    "{} changed: the new certificate is served after a restart",
                    cert.display()
                ));
            }
        }
        out
    }
}

/// Attaches, changes and detaches the hubs' local bridges to match
/// `hubs` (at start and on reload): a hub without `bridge`, or no longer
/// configured, has none. Sessions are not touched. Returns what changed,
/// one line each.
pub fn apply_bridges(sb: &Switchboard, hubs: &[HubConfig]) -> Vec<String> {
    let mut changed = Vec::new();
    for h in sb.hubs.iter().filter(|h| h.in_use()) {
        let cfg = hubs.iter().find(|c| c.name == h.name());
        let want = cfg.and_then(|c| {
            c.bridge
                .as_ref()
                .map(|b| crate::bridge::BridgeSettings::from_config(&c.name, b))
        });
        let had = h.bridge.lock().as_ref().map(|b| b.settings.clone());
        if !sb.set_bridge(h.index, want.clone()) {
            continue;
        }
        let how = |b: &crate::bridge::BridgeSettings| match b.mode {
            crate::config::BridgeMode::Tap => format!("{} (TAP {})", b.interface, b.tap),
            crate::config::BridgeMode::Packet => format!("{} (packet socket)", b.interface),
        };
        changed.push(match (had, want) {
            (None, Some(w)) => format!("hub {}: bridged to {}", h.name(), how(&w)),
            (Some(o), None) => format!("hub {}: bridge to {} removed", h.name(), how(&o)),
            (_, Some(w)) => format!(
                "hub {}: bridge changed: {}, max_macs {}",
                h.name(),
                how(&w),
                w.max_macs
            ),
            (None, None) => continue,
        });
    }
    changed
}

/// Applies a kept hub's settings in place and reports what changed; a hub
/// removed by an earlier reload is enabled again.
fn update_hub(h: &VirtualHub, cfg: &HubConfig, r: &mut ReloadReport) {
    if !h.enabled.swap(true, Ordering::AcqRel) {
        r.applied
            .push(format!("virtual hub {} enabled again", cfg.name));
    }
    if h.anonymous.swap(cfg.anonymous, Ordering::Relaxed) != cfg.anonymous {
        r.applied
            .push(format!("hub {}: anonymous = {}", cfg.name, cfg.anonymous));
    }
    if h.softether.swap(cfg.softether, Ordering::Relaxed) != cfg.softether {
        r.applied
            .push(format!("hub {}: softether = {}", cfg.name, cfg.softether));
    }
    if h.max_sessions.swap(cfg.max_sessions, Ordering::Relaxed) != cfg.max_sessions {
        r.applied.push(format!(
            "hub {}: max_sessions = {}",
            cfg.name, cfg.max_sessions
        ));
    }
}

/// Reports users added, then users removed, as (hub, name) pairs.
fn report_user_changes(
    old: &BTreeSet<(String, String)>,
    new: &BTreeSet<(String, String)>,
    r: &mut ReloadReport,
) {
    for (hub, name) in new.difference(old) {
        r.applied.push(format!("user {name} on hub {hub} added"));
    }
    for (hub, name) in old.difference(new) {
        r.applied.push(format!("user {name} on hub {hub} removed"));
    }
}

/// Why session `e` on hub `h` may no longer run (its hub was removed, its
/// hub stopped admitting anonymous sessions, its user was removed), or
/// `None` when it may.
fn why_disallowed(h: &VirtualHub, e: &SessionEntry, users: &UserDb) -> Option<String> {
    if !h.enabled.load(Ordering::Acquire) {
        Some(format!(
            "virtual hub {} was removed from the configuration",
            h.name()
        ))
    } else if e.user.is_empty() {
        if h.anonymous.load(Ordering::Relaxed) {
            return None;
        }
        Some(format!(
            "virtual hub {} no longer admits anonymous sessions",
            h.name()
        ))
    } else if crate::auth::Authenticator::user_exists(users, h.name(), &e.user) {
        None
    } else {
        Some(format!("user {} was removed from hub {}", e.user, h.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::switchboard::Control;

    fn switchboard(config: &Config, shards: usize) -> Switchboard {
        let hubs: Vec<_> = config
            .hubs()
            .iter()
            .map(|h| crate::server::HubSettings {
                name: h.name.clone(),
                anonymous: h.anonymous,
                softether: h.softether,
                max_sessions: 0,
                max_macs: 0,
            })
            .collect();
        Switchboard::new(
            &hubs,
            &switch_core::fabric::FabricConfig::default(),
            shards,
            std::time::Instant::now(),
        )
    }

    /// The control messages queued for `shard`, as short strings.
    fn queued(sb: &Switchboard, shard: usize) -> Vec<String> {
        std::iter::from_fn(|| sb.mailboxes[shard].control.pop())
            .map(|c| match c {
                Control::AddBridge { hub, status } => {
                    format!("add {hub} {}", status.settings.interface)
                }
                Control::RemoveBridge { hub } => format!("remove {hub}"),
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn bridges_are_added_changed_and_removed_on_their_shard() {
        let toml = |bridge: &str| {
            Config::from_toml(&format!(
                "[[hub]]\nname = \"a\"\n[[hub]]\nname = \"b\"\n{bridge}\n"
            ))
            .unwrap()
        };
        let cfg = toml("bridge = \"br0\"");
        let sb = switchboard(&cfg, 2);
        // Hub b (index 1) lives on shard 1 % 2.
        let r = apply_bridges(&sb, &cfg.hubs());
        assert_eq!(r, ["hub b: bridged to br0 (TAP vh-b)"]);
        assert_eq!(queued(&sb, 1), ["add 1 br0"]);
        assert!(queued(&sb, 0).is_empty());
        // The same config again changes nothing.
        assert!(apply_bridges(&sb, &cfg.hubs()).is_empty());
        assert!(queued(&sb, 1).is_empty());
        // Another interface: removed, then added, in that order.
        let cfg = toml("[hub.bridge]\ninterface = \"br1\"\nmax_macs = 10");
        let r = apply_bridges(&sb, &cfg.hubs());
        assert_eq!(r, ["hub b: bridge changed: br1 (TAP vh-b), max_macs 10"]);
        assert_eq!(queued(&sb, 1), ["remove 1", "add 1 br1"]);
        // Gone from the config: removed; the hub's status says so too.
        let r = apply_bridges(&sb, &toml("").hubs());
        assert_eq!(r, ["hub b: bridge to br1 (TAP vh-b) removed"]);
        assert_eq!(queued(&sb, 1), ["remove 1"]);
        assert!(sb.hubs[1].bridge.lock().is_none());
    }
}
