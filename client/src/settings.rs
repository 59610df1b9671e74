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

use crate::addr::{HubUrl, Ipv4Cidr};
use crate::cli::ConnectArgs;
use crate::relay::Relay;
use crate::trust::{default_known_hubs, Trust};
use crate::units::serde_opt_duration;

pub const DEFAULT_TAP: &str = "vnic0";
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(5);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
pub const DEFAULT_ICMP_INTERVAL: Duration = Duration::from_secs(5);

/// The TOML config file: the same settings as the flags, all optional.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub url: Option<String>,
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
    pub url: HubUrl,
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

    pub fn resolve_with(
        args: &ConnectArgs,
        file: FileConfig,
        env: impl Fn(&str) -> Option<OsString>,
        uid: u32,
    ) -> Result<Settings, Vec<String>> {
        let mut problems = Vec::new();
        let mut check = |r: Result<(), String>| {
            if let Err(e) = r {
                problems.push(e);
            }
        };

        let url = match args.url.clone().or(file.url) {
            Some(u) => u.parse::<HubUrl>().map_err(|e| check(Err(e))).ok(),
            None => {
                check(Err(
                    "no hub given: vnic connect https://HOST:PORT/HUB (or url = \"…\" in the config file)"
                        .into(),
                ));
                None
            }
        };

        let user = args.user.clone().or(file.user);
        let password_file = args.password_file.clone().or(file.password_file);
        let client_cert = match (
            args.cert.clone().or(file.cert),
            args.key.clone().or(file.key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                check(Err("--cert and --key go together".into()));
                None
            }
        };
        let credentials = match (user, password_file) {
            (Some(user), Some(pf)) => match read_password(&pf) {
                Ok(password) => Some(Credentials { user, password }),
                Err(e) => {
                    check(Err(e));
                    None
                }
            },
            // A certificate login naming its user: no password.
            (Some(user), None) if client_cert.is_some() => Some(Credentials {
                user,
                password: String::new(),
            }),
            (Some(user), None) => {
                check(Err(format!(
                    "--user {user} needs --password-file FILE (the password never goes on the command line)"
                )));
                None
            }
            (None, Some(_)) => {
                check(Err("--password-file without --user".into()));
                None
            }
            (None, None) => None,
        };

        let tap = args
            .tap
            .clone()
            .or(file.tap)
            .unwrap_or_else(|| DEFAULT_TAP.to_owned());
        if tap.is_empty() || tap.len() > 15 || tap.contains(['/', ' ']) {
            check(Err(format!(
                "TAP name {tap:?}: 1-15 characters, no '/' or spaces"
            )));
        }

        let ip = match args.ip.clone().or(file.ip) {
            Some(s) => s.parse::<Ipv4Cidr>().map_err(|e| check(Err(e))).ok(),
            None => None,
        };

        // Trust: exactly one of CA, pin, insecure; TOFU otherwise.
        let ca = args.ca.clone().or(file.ca);
        let pin = args.pin.clone().or(file.pin);
        let insecure = args.insecure || file.insecure.unwrap_or(false);
        let chosen = [ca.is_some(), pin.is_some(), insecure]
            .iter()
            .filter(|b| **b)
            .count();
        if chosen > 1 {
            check(Err(
                "choose one way to trust the hub: --ca, --pin or --insecure".into(),
            ));
        }
        let trust = if let Some(ca) = ca {
            Trust::Ca(ca)
        } else if let Some(p) = pin {
            match p.parse() {
                Ok(fp) => Trust::Pin(fp),
                Err(e) => {
                    check(Err(format!("--pin: {e}")));
                    Trust::Insecure
                }
            }
        } else if insecure {
            Trust::Insecure
        } else {
            Trust::Tofu(
                args.known_hubs
                    .clone()
                    .or(file.known_hubs)
                    .unwrap_or_else(|| default_known_hubs(&env)),
            )
        };

        let mut tls = TlsOptions {
            allow_legacy: args.allow_legacy_ciphers || file.allow_legacy_ciphers.unwrap_or(false),
            ..TlsOptions::default()
        };
        if let Some(c) = args.ciphers.clone().or(file.ciphers) {
            match c.parse::<CipherSpec>() {
                Ok(spec) => tls.ciphers = spec,
                Err(e) => check(Err(format!("--ciphers: {e}"))),
            }
        }

        let mut relay = match args.proxy.clone().or(file.proxy) {
            Some(p) if !p.is_empty() => p
                .parse::<Relay>()
                .map_err(|e| check(Err(format!("--proxy: {e}"))))
                .unwrap_or(Relay::Direct),
            _ => Relay::Direct,
        };
        let ssh_options = if args.ssh_options.is_empty() {
            file.ssh_options.unwrap_or_default()
        } else {
            args.ssh_options.clone()
        };
        if !ssh_options.is_empty() {
            match &mut relay {
                Relay::Ssh { extra_args, .. } => {
                    for o in ssh_options {
                        if o.starts_with('-') || !o.contains('=') {
                            check(Err(format!(
                                "--ssh-option {o:?}: write it as KEY=VALUE (what follows ssh -o)"
                            )));
                        }
                        extra_args.push("-o".into());
                        extra_args.push(o);
                    }
                }
                _ => check(Err("--ssh-option needs an ssh:// relay (--proxy)".into())),
            }
        }

        let keepalive = args
            .keepalive
            .or(file.keepalive)
            .unwrap_or(DEFAULT_KEEPALIVE);
        let timeout = args.timeout.or(file.timeout).unwrap_or(DEFAULT_TIMEOUT);
        if keepalive < Duration::from_millis(100) {
            check(Err("--keepalive must be at least 100ms".into()));
        }
        if timeout <= keepalive {
            check(Err(format!(
                "--timeout ({}) must be longer than --keepalive ({})",
                crate::units::fmt_duration(timeout),
                crate::units::fmt_duration(keepalive)
            )));
        }
        let connect_timeout = args
            .connect_timeout
            .or(file.connect_timeout)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if connect_timeout < Duration::from_millis(100) {
            check(Err("--connect-timeout must be at least 100ms".into()));
        }
        let max_backoff = args
            .max_backoff
            .or(file.max_backoff)
            .unwrap_or(DEFAULT_MAX_BACKOFF);
        if max_backoff.is_zero() {
            check(Err("--max-backoff must be more than 0s".into()));
        }
        let max_retries = match (&args.max_retries, file.max_retries) {
            (Some(s), _) => parse_max_retries(s)
                .map_err(|e| check(Err(e)))
                .unwrap_or(None),
            (None, Some(MaxRetries::Count(n))) => Some(n),
            (None, Some(MaxRetries::Text(s))) => parse_max_retries(&s)
                .map_err(|e| check(Err(e)))
                .unwrap_or(None),
            (None, None) => None,
        };

        let icmp = match args.icmp_keepalive.clone().or(file.icmp_keepalive) {
            Some(h) => match h.parse::<Ipv4Addr>() {
                Ok(target) => Some(IcmpSettings {
                    target,
                    interval: args
                        .icmp_interval
                        .or(file.icmp_interval)
                        .unwrap_or(DEFAULT_ICMP_INTERVAL),
                }),
                Err(_) => {
                    check(Err(format!(
                        "--icmp-keepalive {h:?}: an IPv4 address on the virtual LAN"
                    )));
                    None
                }
            },
            None => None,
        };
        if let Some(i) = &icmp {
            if i.interval < Duration::from_millis(100) {
                check(Err("--icmp-interval must be at least 100ms".into()));
            }
        }

        let status_file = args
            .status_file
            .clone()
            .or(file.status_file)
            .unwrap_or_else(|| default_status_dir(&env, uid).join(format!("{tap}.json")));

        match url {
            Some(url) if problems.is_empty() => Ok(Settings {
                url,
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
                offload: !args.no_offload && file.offload.unwrap_or(true),
            }),
            _ => Err(problems),
        }
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
            url: Some(url.into()),
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
    fn every_problem_is_reported() {
        let a = ConnectArgs {
            url: Some("http://h/A".into()),
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
            "only https",
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
