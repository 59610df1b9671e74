//! The effective settings of `vnic connect`: flags and environment
//! (clap), over the TOML config file, over the defaults. Every problem is
//! reported at once.

use std::ffi::OsString;
use std::io::Read as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certs::tls::{CipherSpec, TlsOptions};
use serde::Deserialize;
use switch_core::wire::http::Credentials;

use crate::addr::{Dialect, HubUrl, Ipv4Cidr};
use crate::cli::ConnectArgs;
use crate::relay::Relay;
use crate::trust::{default_known_hubs, Trust};
use crate::units::serde_opt_duration;

pub const DEFAULT_TAP: &str = "vnic0";
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(5);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest `--busy-poll`.
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(10);
pub const DEFAULT_ICMP_INTERVAL: Duration = Duration::from_secs(5);
/// How often a client on another hub than the first tries the first again.
pub const DEFAULT_FAILBACK: Duration = Duration::from_secs(60);

/// In which order `vnic` tries several hubs (`--hub-order`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HubOrder {
    /// As given: the first is the primary, the others stand by. Every
    /// client with the same list lands on the same hub, which is what a
    /// LAN needs (a virtual hub is one broadcast domain in one process).
    #[default]
    Ordered,
    /// Shuffled once at start (then kept, failback included): clients
    /// spread over the hubs, and so does the reconnect storm when one
    /// dies. Only for clients that need not see each other (each hub
    /// has what they talk to).
    Random,
}

/// The TOML config file: the same settings as the flags, all optional.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// One URL, or a list (failover candidates).
    pub url: Option<Urls>,
    pub user: Option<String>,
    /// Relative to the config file's directory.
    pub password_file: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub tap: Option<String>,
    pub ip: Option<String>,
    pub ca: Option<PathBuf>,
    pub pin: Option<String>,
    pub known_hubs: Option<PathBuf>,
    pub insecure: Option<bool>,
    pub ciphers: Option<String>,
    pub allow_legacy_ciphers: Option<bool>,
    pub proxy: Option<String>,
    pub ssh_options: Option<Vec<String>>,
    #[serde(deserialize_with = "serde_opt_duration::deserialize")]
    pub connect_timeout: Option<Duration>,
    #[serde(deserialize_with = "serde_opt_duration::deserialize")]
    pub keepalive: Option<Duration>,
    #[serde(deserialize_with = "serde_opt_duration::deserialize")]
    pub timeout: Option<Duration>,
    #[serde(deserialize_with = "serde_opt_duration::deserialize")]
    pub max_backoff: Option<Duration>,
    pub max_retries: Option<MaxRetries>,
    pub icmp_keepalive: Option<String>,
    #[serde(deserialize_with = "serde_opt_duration::deserialize")]
    pub icmp_interval: Option<Duration>,
    pub status_file: Option<PathBuf>,
    pub offload: Option<bool>,
    #[serde(deserialize_with = "serde_opt_duration::deserialize")]
    pub busy_poll: Option<Duration>,
    pub hub_order: Option<HubOrder>,
    /// A duration or "off".
    pub failback: Option<String>,
    pub arp_suppression: Option<bool>,
}

/// `url` in the file: `url = "https://…"` or `url = ["https://…", …]`.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Urls {
    One(String),
    Many(Vec<String>),
}

/// `max_retries` in the file: a number or "unlimited".
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum MaxRetries {
    Count(u32),
    Text(String),
}

impl FileConfig {
    /// Reads and parses a config file; relative paths in it are made
    /// relative to the file's directory.
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        let mut c: FileConfig =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [
            &mut c.password_file,
            &mut c.cert,
            &mut c.key,
            &mut c.ca,
            &mut c.known_hubs,
            &mut c.status_file,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() && p.as_os_str() != "-" {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }
}

/// The ICMP keep-alive's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpSettings {
    pub target: Ipv4Addr,
    pub interval: Duration,
}

/// Everything `vnic connect` runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The first hub given (the primary with `--hub-order ordered`).
    pub url: HubUrl,
    /// More hubs to fail over to, in the order given.
    pub failover: Vec<HubUrl>,
    pub hub_order: HubOrder,
    /// On another hub than the first, try the first again this often;
    /// `None`: stay (`--failback off`).
    pub failback: Option<Duration>,
    /// Answer the host's neighbour requests from vnic's table while the
    /// link is down (`--no-arp-suppression` turns it off).
    pub arp_suppression: bool,
    pub credentials: Option<Credentials>,
    /// A client certificate and its key (PEM files) to log in with.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub tap: String,
    pub ip: Option<Ipv4Cidr>,
    pub trust: Trust,
    pub tls: TlsOptions,
    pub relay: Relay,
    pub connect_timeout: Duration,
    pub keepalive: Duration,
    pub timeout: Duration,
    pub max_backoff: Duration,
    /// `None`: unlimited.
    pub max_retries: Option<u32>,
    pub icmp: Option<IcmpSettings>,
    pub status_file: PathBuf,
    /// Segmentation offload on the TAP and in the session (`--no-offload`
    /// turns it off).
    pub offload: bool,
    /// How long the event loop keeps polling after traffic (`--busy-poll`).
    pub busy_poll: Duration,
}

impl Settings {
    /// Every hub, in the order given: [`url`](Self::url) first.
    pub fn hubs(&self) -> Vec<HubUrl> {
        std::iter::once(self.url.clone())
            .chain(self.failover.iter().cloned())
            .collect()
    }
}

fn parse_failback(s: &str) -> Result<Option<Duration>, String> {
    match s.trim() {
        "off" | "never" | "no" => Ok(None),
        d => match crate::units::parse_duration(d) {
            Ok(d) if d >= Duration::from_secs(1) => Ok(Some(d)),
            Ok(_) => Err(format!("--failback {s:?}: at least 1s, or \"off\"")),
            Err(e) => Err(format!("--failback: {e}, or \"off\"")),
        },
    }
}

fn parse_max_retries(s: &str) -> Result<Option<u32>, String> {
    match s.trim() {
        "unlimited" | "infinite" | "inf" => Ok(None),
        n => n
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("max retries {s:?}: a number of attempts, or \"unlimited\"")),
    }
}

/// Reads the password: the first line of the file ("-" = standard input).
pub fn read_password(path: &Path) -> Result<String, String> {
    let mut s = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("reading the password from standard input: {e}"))?;
    } else {
        s = std::fs::read_to_string(path)
            .map_err(|e| format!("password file {}: {e}", path.display()))?;
    }
    let pw = s.lines().next().unwrap_or("").to_owned();
    if pw.is_empty() {
        return Err(format!(
            "the password file {} is empty (its first line is the password)",
            path.display()
        ));
    }
    Ok(pw)
}

/// The default status file of the client on `tap`: `/run/vnic/TAP.json`
/// as root, else `$XDG_RUNTIME_DIR/vnic/TAP.json`, else
/// `/tmp/vnic-UID/TAP.json`.
pub fn default_status_dir(env: impl Fn(&str) -> Option<OsString>, uid: u32) -> PathBuf {
    if uid == 0 {
        return PathBuf::from("/run/vnic");
    }
    match env("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("vnic"),
        None => PathBuf::from(format!("/tmp/vnic-{uid}")),
    }
}

pub fn uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

impl Settings {
    /// Merges flags over the file over the defaults, and checks all of it.
    pub fn resolve(args: &ConnectArgs) -> Result<Settings, Vec<String>> {
        let file = match &args.config {
            Some(p) => FileConfig::load(p).map_err(|e| vec![e])?,
            None => FileConfig::default(),
        };
        Self::resolve_with(args, file, |k| std::env::var_os(k), uid())
    }

    /// Merges `args` over `file` over the defaults, one setting at a time
    /// in a fixed order (the order the problems are reported in). `env`
    /// and `uid` are parameters so that tests choose them.
    pub fn resolve_with(
        args: &ConnectArgs,
        file: FileConfig,
        env: impl Fn(&str) -> Option<OsString>,
        uid: u32,
    ) -> Result<Settings, Vec<String>> {
        let mut m = Merge {
            args,
            file,
            problems: Vec::new(),
        };
        let urls = m.urls();
        let client_cert = m.client_cert();
        let credentials = m.credentials(client_cert.is_some());
        let tap = m.tap();
        let ip = m.ip();
        let trust = m.trust(&env);
        let tls = m.tls();
        let relay = m.relay();
        let (keepalive, timeout) = m.keepalive_and_timeout();
        let connect_timeout = m.connect_timeout();
        let max_backoff = m.max_backoff();
        let max_retries = m.max_retries();
        let icmp = m.icmp();
        let status_file = m.status_file(&tap, &env, uid);
        let has_user = args.user.is_some() || credentials.is_some();
        let softether = m.softether(&urls, client_cert.is_some(), has_user);
        // virtio_net_hdr offload is vhub/1's: a SoftEther server takes
        // plain frames of at most 1514 bytes.
        let offload = !softether && !args.no_offload && m.file.offload.unwrap_or(true);
        let busy_poll = m.busy_poll();
        let hub_order = args.hub_order.or(m.file.hub_order).unwrap_or_default();
        let failback = m.failback();
        let arp_suppression = !args.no_arp_suppression && m.file.arp_suppression.unwrap_or(true);

        let mut urls = urls.into_iter();
        match urls.next() {
            Some(url) if m.problems.is_empty() => Ok(Settings {
                url,
                failover: urls.collect(),
                hub_order,
                failback,
                arp_suppression,
                credentials,
                client_cert,
                tap,
                ip,
                trust,
                tls,
                relay,
                connect_timeout,
                keepalive,
                timeout,
                max_backoff,
                max_retries,
                icmp,
                status_file,
                offload,
                busy_poll,
            }),
            _ => Err(m.problems),
        }
    }
}

/// One merge in progress: the flags, what is left of the file, and every
/// problem found so far. Each step takes its fields out of `file` (the
/// file is used once) and records a problem instead of returning early,
/// so that one run reports them all.
struct Merge<'a> {
    args: &'a ConnectArgs,
    file: FileConfig,
    problems: Vec<String>,
}

impl Merge<'_> {
    fn problem(&mut self, e: String) {
        self.problems.push(e);
    }

    /// The hubs' URLs, in the order given (the flags' replace the
    /// file's); the only setting with no default. Each is checked; the
    /// same hub twice is a mistake worth saying.
    fn urls(&mut self) -> Vec<HubUrl> {
        let given = if self.args.urls.is_empty() {
            match self.file.url.take() {
                Some(Urls::One(u)) => vec![u],
                Some(Urls::Many(v)) => v,
                None => Vec::new(),
            }
        } else {
            self.args.urls.clone()
        };
        let mut urls: Vec<HubUrl> = Vec::new();
        for u in given.iter().map(|u| u.trim()).filter(|u| !u.is_empty()) {
            match u.parse::<HubUrl>() {
                Ok(url) if urls.contains(&url) => {
                    self.problem(format!("hub {url} is given twice"));
                }
                Ok(url) => urls.push(url),
                Err(e) => self.problem(e),
            }
        }
        if given.is_empty() {
            self.problem(
                "no hub given: vnic connect https://HOST:PORT/HUB [more hubs to fail over to] \
                 (or url = \"…\" in the config file)"
                    .into(),
            );
        }
        urls
    }

    /// Whether the hubs are SoftEther servers (`softether://`): all or
    /// none, since a vhub session cannot fail over to a SoftEther one; a
    /// password login (SoftEther's certificate and anonymous logins are
    /// not done).
    fn softether(&mut self, urls: &[HubUrl], has_cert: bool, has_user: bool) -> bool {
        let se = urls
            .iter()
            .filter(|u| u.dialect == Dialect::SoftEther)
            .count();
        if se > 0 && se < urls.len() {
            self.problem(
                "softether:// and https:// hubs cannot be mixed: failover moves the session \
                 between hubs of one kind"
                    .into(),
            );
        }
        if se > 0 && has_cert {
            self.problem(
                "--cert: certificate login to a SoftEther server is not supported yet \
                 (use --user and --password-file)"
                    .into(),
            );
        }
        if se > 0 && !has_cert && !has_user {
            self.problem(
                "a SoftEther server needs --user and --password-file (anonymous login \
                 is not supported yet)"
                    .into(),
            );
        }
        se > 0
    }

    /// The failback interval, or `None` for "off".
    fn failback(&mut self) -> Option<Duration> {
        let s = self.args.failback.clone().or(self.file.failback.take());
        match s.as_deref().map(parse_failback) {
            None => Some(DEFAULT_FAILBACK),
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.problem(e);
                None
            }
        }
    }

    /// A client certificate and its key: both or neither.
    fn client_cert(&mut self) -> Option<(PathBuf, PathBuf)> {
        match (
            self.args.cert.clone().or(self.file.cert.take()),
            self.args.key.clone().or(self.file.key.take()),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                self.problem("--cert and --key go together".into());
                None
            }
        }
    }

    /// The user and the password, read now from its file (or standard
    /// input) so that a missing file is reported with the other problems.
    /// With a client certificate, a user needs no password.
    fn credentials(&mut self, has_cert: bool) -> Option<Credentials> {
        let user = self.args.user.clone().or(self.file.user.take());
        let password_file = self
            .args
            .password_file
            .clone()
            .or(self.file.password_file.take());
        match (user, password_file) {
            (Some(user), Some(pf)) => match read_password(&pf) {
                Ok(password) => Some(Credentials { user, password }),
                Err(e) => {
                    self.problem(e);
                    None
                }
            },
            // A certificate login naming its user: no password.
            (Some(user), None) if has_cert => Some(Credentials {
                user,
                password: String::new(),
            }),
            (Some(user), None) => {
                self.problem(format!(
                    "--user {user} needs --password-file FILE (the password never goes on the command line)"
                ));
                None
            }
            (None, Some(_)) => {
                self.problem("--password-file without --user".into());
                None
            }
            (None, None) => None,
        }
    }

    /// The TAP's name, checked against what the kernel accepts
    /// (IFNAMSIZ: 15 bytes and a NUL) before anything is created.
    fn tap(&mut self) -> String {
        let tap = self
            .args
            .tap
            .clone()
            .or(self.file.tap.take())
            .unwrap_or_else(|| DEFAULT_TAP.to_owned());
        if tap.is_empty() || tap.len() > 15 || tap.contains(['/', ' ']) {
            self.problem(format!(
                "TAP name {tap:?}: 1-15 characters, no '/' or spaces"
            ));
        }
        tap
    }

    /// The address to give the TAP, if any.
    fn ip(&mut self) -> Option<Ipv4Cidr> {
        match self.args.ip.clone().or(self.file.ip.take()) {
            Some(s) => s.parse::<Ipv4Cidr>().map_err(|e| self.problem(e)).ok(),
            None => None,
        }
    }

    /// Trust: exactly one of CA, pin, insecure; TOFU otherwise. A bad pin
    /// is reported and stands in as `Insecure`, which is never used since
    /// the merge then fails.
    fn trust(&mut self, env: &impl Fn(&str) -> Option<OsString>) -> Trust {
        let ca = self.args.ca.clone().or(self.file.ca.take());
        let pin = self.args.pin.clone().or(self.file.pin.take());
        let insecure = self.args.insecure || self.file.insecure.unwrap_or(false);
        let chosen = [ca.is_some(), pin.is_some(), insecure]
            .iter()
            .filter(|b| **b)
            .count();
        if chosen > 1 {
            self.problem("choose one way to trust the hub: --ca, --pin or --insecure".into());
        }
        if let Some(ca) = ca {
            Trust::Ca(ca)
        } else if let Some(p) = pin {
            match p.parse() {
                Ok(fp) => Trust::Pin(fp),
                Err(e) => {
                    self.problem(format!("--pin: {e}"));
                    Trust::Insecure
                }
            }
        } else if insecure {
            Trust::Insecure
        } else {
            Trust::Tofu(
                self.args
                    .known_hubs
                    .clone()
                    .or(self.file.known_hubs.take())
                    .unwrap_or_else(|| default_known_hubs(env)),
            )
        }
    }

    /// Cipher suites, and whether the legacy presets may be chosen.
    fn tls(&mut self) -> TlsOptions {
        let mut tls = TlsOptions {
            allow_legacy: self.args.allow_legacy_ciphers
                || self.file.allow_legacy_ciphers.unwrap_or(false),
            ..TlsOptions::default()
        };
        if let Some(c) = self.args.ciphers.clone().or(self.file.ciphers.take()) {
            match c.parse::<CipherSpec>() {
                Ok(spec) => tls.ciphers = spec,
                Err(e) => self.problem(format!("--ciphers: {e}")),
            }
        }
        tls
    }

    /// The relay (`--proxy`; an empty one means direct), with the
    /// `--ssh-option`s added to an ssh relay's command line. The flags'
    /// ssh options replace the file's, they are not added to them.
    fn relay(&mut self) -> Relay {
        let mut relay = match self.args.proxy.clone().or(self.file.proxy.take()) {
            Some(p) if !p.is_empty() => p
                .parse::<Relay>()
                .map_err(|e| self.problem(format!("--proxy: {e}")))
                .unwrap_or(Relay::Direct),
            _ => Relay::Direct,
        };
        let ssh_options = if self.args.ssh_options.is_empty() {
            self.file.ssh_options.take().unwrap_or_default()
        } else {
            self.args.ssh_options.clone()
        };
        if !ssh_options.is_empty() {
            match &mut relay {
                Relay::Ssh { extra_args, .. } => {
                    for o in ssh_options {
                        if o.starts_with('-') || !o.contains('=') {
                            self.problem(format!(
                                "--ssh-option {o:?}: write it as KEY=VALUE (what follows ssh -o)"
                            ));
                        }
                        extra_args.push("-o".into());
                        extra_args.push(o);
                    }
                }
                _ => self.problem("--ssh-option needs an ssh:// relay (--proxy)".into()),
            }
        }
        relay
    }

    /// The keep-alive interval and the silence after which the link is
    /// dead; the timeout must leave room for at least one keep-alive.
    fn keepalive_and_timeout(&mut self) -> (Duration, Duration) {
        let keepalive = self
            .args
            .keepalive
            .or(self.file.keepalive)
            .unwrap_or(DEFAULT_KEEPALIVE);
        let timeout = self
            .args
            .timeout
            .or(self.file.timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        if keepalive < Duration::from_millis(100) {
            self.problem("--keepalive must be at least 100ms".into());
        }
        if timeout <= keepalive {
            self.problem(format!(
                "--timeout ({}) must be longer than --keepalive ({})",
                crate::units::fmt_duration(timeout),
                crate::units::fmt_duration(keepalive)
            ));
        }
        (keepalive, timeout)
    }

    fn connect_timeout(&mut self) -> Duration {
        let connect_timeout = self
            .args
            .connect_timeout
            .or(self.file.connect_timeout)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if connect_timeout < Duration::from_millis(100) {
            self.problem("--connect-timeout must be at least 100ms".into());
        }
        connect_timeout
    }

    fn busy_poll(&mut self) -> Duration {
        let busy_poll = self
            .args
            .busy_poll
            .or(self.file.busy_poll)
            .unwrap_or(Duration::ZERO);
        if busy_poll > MAX_BUSY_POLL {
            self.problem(format!(
                "--busy-poll {} is longer than 10ms: the client would spin through pauses that sleeping costs nothing in",
                crate::units::fmt_duration(busy_poll)
            ));
        }
        busy_poll
    }

    fn max_backoff(&mut self) -> Duration {
        let max_backoff = self
            .args
            .max_backoff
            .or(self.file.max_backoff)
            .unwrap_or(DEFAULT_MAX_BACKOFF);
        if max_backoff.is_zero() {
            self.problem("--max-backoff must be more than 0s".into());
        }
        max_backoff
    }

    /// `None`: unlimited (also what a bad value stands in as, since the
    /// merge then fails). The file may give a number or a word.
    fn max_retries(&mut self) -> Option<u32> {
        match (&self.args.max_retries, self.file.max_retries.take()) {
            (Some(s), _) => parse_max_retries(s)
                .map_err(|e| self.problems.push(e))
                .unwrap_or(None),
            (None, Some(MaxRetries::Count(n))) => Some(n),
            (None, Some(MaxRetries::Text(s))) => parse_max_retries(&s)
                .map_err(|e| self.problems.push(e))
                .unwrap_or(None),
            (None, None) => None,
        }
    }

    /// The ICMP keep-alive: a target on the virtual LAN and an interval.
    fn icmp(&mut self) -> Option<IcmpSettings> {
        let icmp = match self
            .args
            .icmp_keepalive
            .clone()
            .or(self.file.icmp_keepalive.take())
        {
            Some(h) => match h.parse::<Ipv4Addr>() {
                Ok(target) => Some(IcmpSettings {
                    target,
                    interval: self
                        .args
                        .icmp_interval
                        .or(self.file.icmp_interval)
                        .unwrap_or(DEFAULT_ICMP_INTERVAL),
                }),
                Err(_) => {
                    self.problem(format!(
                        "--icmp-keepalive {h:?}: an IPv4 address on the virtual LAN"
                    ));
                    None
                }
            },
            None => None,
        };
        if let Some(i) = &icmp {
            if i.interval < Duration::from_millis(100) {
                self.problem("--icmp-interval must be at least 100ms".into());
            }
        }
        icmp
    }

    /// Where `vnic status` finds this client: named after the TAP, so two
    /// clients on one machine never share a file.
    fn status_file(
        &mut self,
        tap: &str,
        env: &impl Fn(&str) -> Option<OsString>,
        uid: u32,
    ) -> PathBuf {
        self.args
            .status_file
            .clone()
            .or(self.file.status_file.take())
            .unwrap_or_else(|| default_status_dir(env, uid).join(format!("{tap}.json")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn args(url: &str) -> ConnectArgs {
        ConnectArgs {
            urls: vec![url.into()],
            ..ConnectArgs::default()
        }
    }

    #[test]
    fn defaults() {
        let s = Settings::resolve_with(
            &args("https://h:8443/A"),
            FileConfig::default(),
            |k| (k == "HOME").then(|| OsString::from("/home/u")),
            1000,
        )
        .unwrap();
        assert_eq!(s.tap, "vnic0");
        assert!(s.offload, "offload is on by default");
        assert_eq!(s.keepalive, Duration::from_secs(5));
        assert_eq!(s.timeout, Duration::from_secs(15));
        assert_eq!(s.max_backoff, Duration::from_secs(30));
        assert_eq!(s.max_retries, None);
        assert_eq!(
            s.trust,
            Trust::Tofu(PathBuf::from("/home/u/.config/vnic/known_hubs"))
        );
        assert_eq!(s.status_file, PathBuf::from("/tmp/vnic-1000/vnic0.json"));
        assert!(s.credentials.is_none());
        assert!(s.icmp.is_none());
        assert!(s.failover.is_empty());
        assert_eq!(s.hub_order, HubOrder::Ordered);
        assert_eq!(s.failback, Some(Duration::from_secs(60)));
        assert!(s.arp_suppression);
        assert_eq!(s.busy_poll, Duration::ZERO, "busy-poll is off by default");
    }

    #[test]
    fn busy_poll_from_the_flag_or_the_file_at_most_10ms() {
        let resolve = |a: &ConnectArgs, f: FileConfig| Settings::resolve_with(a, f, no_env, 0);
        let mut a = args("https://h:8443/A");
        a.busy_poll = Some(Duration::from_micros(200));
        assert_eq!(
            resolve(&a, FileConfig::default()).unwrap().busy_poll,
            Duration::from_micros(200)
        );
        let file = FileConfig {
            busy_poll: Some(Duration::from_millis(1)),
            ..FileConfig::default()
        };
        let plain = args("https://h:8443/A");
        assert_eq!(
            resolve(&plain, file).unwrap().busy_poll,
            Duration::from_millis(1)
        );
        a.busy_poll = Some(Duration::from_millis(20));
        let e = resolve(&a, FileConfig::default()).unwrap_err();
        assert!(
            e.iter()
                .any(|p| p.contains("--busy-poll 20.0 ms is longer than 10ms")),
            "{e:?}"
        );
    }

    #[test]
    fn several_hubs_from_flags_or_the_file() {
        let a = ConnectArgs {
            urls: vec!["https://h1:8443/A".into(), "h2/A".into()],
            failback: Some("off".into()),
            no_arp_suppression: true,
            ..ConnectArgs::default()
        };
        let s = Settings::resolve_with(&a, FileConfig::default(), no_env, 0).unwrap();
        let hubs: Vec<String> = s.hubs().iter().map(|h| h.to_string()).collect();
        assert_eq!(hubs, ["https://h1:8443/A", "https://h2:443/A"]);
        assert_eq!(s.failback, None);
        assert!(!s.arp_suppression);
        let file: FileConfig = toml::from_str(
            r#"
url = ["https://h1/A", "https://h2/A"]
hub_order = "random"
failback = "5m"
arp_suppression = false
"#,
        )
        .unwrap();
        let s = Settings::resolve_with(&ConnectArgs::default(), file, no_env, 0).unwrap();
        assert_eq!(s.failover.len(), 1);
        assert_eq!(s.hub_order, HubOrder::Random);
        assert_eq!(s.failback, Some(Duration::from_secs(300)));
        assert!(!s.arp_suppression);
        // The flags' list replaces the file's.
        let file: FileConfig = toml::from_str(r#"url = ["https://h1/A", "https://h2/A"]"#).unwrap();
        let s = Settings::resolve_with(&args("https://h3/A"), file, no_env, 0).unwrap();
        assert_eq!((s.url.host.as_str(), s.failover.len()), ("h3", 0));
        // The same hub twice, a bad one, a bad failback: all reported.
        let a = ConnectArgs {
            urls: vec!["https://h1/A".into(), "h1:443/A".into(), "ftp://x".into()],
            failback: Some("5".into()),
            ..ConnectArgs::default()
        };
        let all = Settings::resolve_with(&a, FileConfig::default(), no_env, 0)
            .unwrap_err()
            .join("\n");
        for needle in ["given twice", "https (vhub) and softether", "--failback"] {
            assert!(all.contains(needle), "{needle:?} missing in:\n{all}");
        }
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\nignored\n").unwrap();
        let cfg = dir.path().join("vnic.toml");
        std::fs::write(
            &cfg,
            r#"
url = "https://hub.example:8443/LAB"
user = "alice"
password_file = "pw"
tap = "lab0"
ip = "10.77.0.10/24"
keepalive = "2s"
timeout = "6s"
max_retries = 5
icmp_keepalive = "10.77.0.1"
"#,
        )
        .unwrap();
        let file = FileConfig::load(&cfg).unwrap();
        let mut a = ConnectArgs {
            timeout: Some(Duration::from_secs(9)),
            ..ConnectArgs::default()
        };
        a.tap = Some("flag0".into());
        let s = Settings::resolve_with(&a, file, no_env, 0).unwrap();
        assert_eq!(s.url.hub, "LAB");
        let c = s.credentials.unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "s3cret"));
        assert_eq!(s.tap, "flag0", "the flag wins");
        assert_eq!(s.keepalive, Duration::from_secs(2));
        assert_eq!(s.timeout, Duration::from_secs(9));
        assert_eq!(s.max_retries, Some(5));
        assert_eq!(s.icmp.unwrap().interval, Duration::from_secs(5));
        assert_eq!(s.status_file, PathBuf::from("/run/vnic/flag0.json"));
    }

    #[test]
    fn softether_hubs_take_plain_frames_and_no_mixing() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret\n").unwrap();
        let mut a = args("softether://10.0.0.1:5555/TEST");
        a.user = Some("u".into());
        a.password_file = Some(pw);
        let s = Settings::resolve_with(&a, FileConfig::default(), no_env, 0).unwrap();
        assert_eq!(s.url.dialect, Dialect::SoftEther);
        assert!(!s.offload, "offload is vhub/1's");
        let a = ConnectArgs {
            urls: vec!["softether://h1/A".into(), "https://h2/A".into()],
            ..ConnectArgs::default()
        };
        let all = Settings::resolve_with(&a, FileConfig::default(), no_env, 0)
            .unwrap_err()
            .join("\n");
        assert!(all.contains("cannot be mixed"), "{all}");
        let all =
            Settings::resolve_with(&args("softether://h/A"), FileConfig::default(), no_env, 0)
                .unwrap_err()
                .join("\n");
        assert!(all.contains("needs --user"), "{all}");
    }

    #[test]
    fn every_problem_is_reported() {
        let a = ConnectArgs {
            urls: vec!["http://h/A".into()],
            user: Some("alice".into()),
            pin: Some("nope".into()),
            insecure: true,
            keepalive: Some(Duration::from_secs(20)),
            max_retries: Some("many".into()),
            ..ConnectArgs::default()
        };
        let p = Settings::resolve_with(&a, FileConfig::default(), no_env, 0).unwrap_err();
        let all = p.join("\n");
        for needle in [
            "https (vhub) and softether",
            "--password-file",
            "one way to trust",
            "--pin",
            "longer than --keepalive",
            "max retries",
        ] {
            assert!(all.contains(needle), "{needle:?} missing in:\n{all}");
        }
    }

    #[test]
    fn unknown_keys_and_untyped_durations_are_refused() {
        let e = toml::from_str::<FileConfig>("keepalve = \"5s\"").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = toml::from_str::<FileConfig>("keepalive = 5").unwrap_err();
        assert!(e.to_string().contains("needs a unit"), "{e}");
        let c: FileConfig = toml::from_str("max_retries = \"unlimited\"").unwrap();
        assert_eq!(c.max_retries, Some(MaxRetries::Text("unlimited".into())));
    }
}
