//! `vhub`: the hub server. With no arguments it serves virtual hub DEFAULT
//! on 0.0.0.0:8443 with a certificate created on first start.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use certs::tls::{self, CipherSpec, TlsOptions};
use certs::{CertParams, Identity, KeyKind};
use clap::{Args, Parser, Subcommand};
use hub::config::{Config, IoBackendSetting};
use hub::net;
use hub::server::{self, HubSettings, Settings};
use hub::users::UserDb;
use switch_core::fabric::FabricConfig;
use switch_core::session::SessionConfig;
use switch_core::wire::Limits;
use tracing::{info, warn};

/// vhub — a virtual Ethernet hub that virtual LAN cards (vnic) join over HTTPS.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Args, Debug, Clone, Default)]
struct ServeArgs {
    /// TOML configuration file (see deploy/vhub.example.toml).
    #[arg(long, short = 'c', env = "VHUB_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address for the HTTPS port (default 0.0.0.0:8443).
    #[arg(long, env = "VHUB_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address for the plain-HTTP metrics listener, or "off" (default 127.0.0.1:9750).
    #[arg(long, env = "VHUB_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Directory holding ca.crt and ca.key (created on first start).
    #[arg(long, env = "VHUB_CERT_DIR", global = true)]
    cert_dir: Option<PathBuf>,
    /// Shards (threads); 0 = one per core.
    #[arg(long, env = "VHUB_SHARDS")]
    shards: Option<usize>,
    /// Socket I/O: auto (io_uring when the kernel and sandbox allow it), uring, epoll.
    #[arg(long, env = "VHUB_IO_BACKEND")]
    io_backend: Option<String>,
    /// Cipher suites: a preset (default, aes256-sha, rc4-sha, rc4-md5) or
    /// "list:<OpenSSL TLS1.2 cipher list>" / "suites:<TLS1.3 ciphersuites>".
    #[arg(long, env = "VHUB_CIPHERS")]
    ciphers: Option<String>,
    /// Allow the legacy RC4 presets (needs a build with --features legacy-ciphers).
    #[arg(long)]
    allow_legacy_ciphers: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a configuration file and report every problem with its line.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Manage users (written to the users file, never to the config).
    #[command(subcommand)]
    User(UserCmd),
    /// Manage the hub's certificate.
    #[command(subcommand)]
    Cert(CertCmd),
}

#[derive(Subcommand, Debug)]
enum UserCmd {
    /// Add a user (or replace its password with --replace).
    Add {
        name: String,
        /// Virtual hub the user may join.
        #[arg(long, default_value = "DEFAULT")]
        hub: String,
        /// File whose first line is the password; "-" reads standard input.
        #[arg(long)]
        password_file: PathBuf,
        /// Replace the password of an existing user.
        #[arg(long)]
        replace: bool,
    },
    /// Remove a user.
    Remove {
        name: String,
        #[arg(long, default_value = "DEFAULT")]
        hub: String,
    },
    /// List users (names and hubs; never hashes).
    List,
}

#[derive(Subcommand, Debug)]
enum CertCmd {
    /// Create ca.crt and ca.key in the certificate directory.
    Generate {
        /// DNS names for the certificate (default: localhost).
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// IP addresses for the certificate (default: 127.0.0.1, ::1).
        #[arg(long = "ip")]
        ip: Vec<std::net::IpAddr>,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// An EC P-256 key instead of RSA 2048 (no RSA key-exchange suites then).
        #[arg(long)]
        ec: bool,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Show subject, SANs, fingerprint and expiry of the hub's certificate.
    Info,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VHUB_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(&cli.serve),
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::User(cmd)) => user(&cli.serve, cmd),
        Some(Command::Cert(cmd)) => cert(&cli.serve, cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vhub: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the config file (or the embedded defaults) and applies the flags.
fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(m) = &args.metrics_listen {
        config.metrics_listen = match m.as_str() {
            "" | "off" => None,
            s => Some(
                s.parse()
                    .with_context(|| format!("--metrics-listen {s:?}: not IP:PORT"))?,
            ),
        };
    }
    if let Some(d) = &args.cert_dir {
        config.cert_dir = Some(d.clone());
    }
    if let Some(s) = args.shards {
        config.shards = s;
    }
    if let Some(b) = &args.io_backend {
        config.io_backend = match b.as_str() {
            "auto" => IoBackendSetting::Auto,
            "uring" => IoBackendSetting::Uring,
            "epoll" => IoBackendSetting::Epoll,
            other => bail!("--io-backend {other:?}: use auto, uring or epoll"),
        };
    }
    if let Some(c) = &args.ciphers {
        config.tls.ciphers = c.clone();
    }
    if args.allow_legacy_ciphers {
        config.tls.allow_legacy = true;
    }
    let problems = config.validate();
    if !problems.is_empty() {
        let origin = args
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "flags".into());
        bail!(
            "{}",
            hub::config::ConfigErrors::from_problems(&origin, problems)
        );
    }
    Ok(config)
}

fn check_config(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    match Config::load(file) {
        Ok(c) => {
            let hubs: Vec<String> = c.hubs().iter().map(|h| h.name.clone()).collect();
            println!(
                "{}: OK ({} virtual hub(s): {})",
                file.display(),
                hubs.len(),
                hubs.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn settings_from(config: &Config) -> anyhow::Result<Settings> {
    let (backend, why) =
        net::choose_backend(config.io_backend.as_str()).map_err(anyhow::Error::msg)?;
    info!("I/O backend: {why}");
    let shards = match config.shards {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
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
            ..SessionConfig::default()
        },
        fabric,
        handshake_timeout: config.limits.handshake_timeout,
        max_header_bytes: config.limits.max_header_bytes,
        max_handshakes_per_shard: config.limits.max_handshakes_per_shard,
        max_sessions: config.limits.max_sessions,
        max_handshakes_per_address: config.limits.max_handshakes_per_address,
        max_sessions_per_user: config.limits.max_sessions_per_user,
        auth: config.auth.clone(),
        distinct_ports: false,
    })
}

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args)?;
    raise_nofile();
    let settings = settings_from(&config)?;
    let cert_dir = config.effective_cert_dir();
    let (identity, created) = certs::load_or_create(&cert_dir, &cert_params(&config))
        .with_context(|| format!("certificate directory {}", cert_dir.display()))?;
    let fp = identity.fingerprint();
    if created {
        info!(dir = %cert_dir.display(), "created a new certificate (ca.crt, ca.key); replace both files to use your own");
    }
    info!(fingerprint = %fp, dir = %cert_dir.display(), "certificate loaded; clients can pin it with --pin {fp}");
    let spec: CipherSpec = config
        .tls
        .ciphers
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let opts = TlsOptions {
        ciphers: spec,
        allow_legacy: config.tls.allow_legacy,
        ..TlsOptions::default()
    };
    let client_ca = config.tls.client_ca.as_deref();
    let ctx =
        tls::server_context_with_client_ca(&identity, &opts, client_ca).context("TLS setup")?;
    if let Some(ca) = client_ca {
        info!(client_ca = %ca.display(), "client certificates requested (certificate logins)");
    }
    info!(ciphers = %config.tls.ciphers, openssl = tls::openssl_version(), "TLS ready");
    let users = UserDb::load_with_config(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if users.is_empty() && settings.hubs.iter().any(|h| !h.anonymous) {
        info!(
            "no users yet: add one with `vhub user add --hub {} NAME --password-file FILE`",
            settings
                .hubs
                .iter()
                .find(|h| !h.anonymous)
                .map(|h| h.name.as_str())
                .unwrap_or("DEFAULT")
        );
    }
    let page = server::front_page(&settings.name, &fp.to_string(), &settings.hubs);
    // Block the stop signals before any thread starts, so only sigwait sees them.
    let signals = block_signals();
    let server = server::start(settings, ctx, identity.cert_pem(), page, Arc::new(users))
        .with_context(|| format!("listening on {}", config.listen))?;
    if let Some(m) = server.metrics_addr() {
        info!(metrics = %format!("http://{m}/metrics"), "metrics listening");
    }
    let sig = wait_signal(&signals);
    info!(signal = sig, "stopping: closing sessions");
    server.shutdown();
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Names for a certificate created on first start: localhost, this host's
/// name, loopback, and the listen address when it is a specific one.
fn cert_params(config: &Config) -> CertParams {
    let mut p = CertParams::default();
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Ok(h) = std::str::from_utf8(&buf[..end]) {
            if !h.is_empty() && h != "localhost" && h.is_ascii() && !h.contains(' ') {
                p.dns_names.push(h.to_owned());
            }
        }
    }
    let ip = config.listen.ip();
    if !ip.is_unspecified() && !p.ip_addrs.contains(&ip) {
        p.ip_addrs.push(ip);
    }
    p
}

/// A hub holds one descriptor per session: lift the soft limit to the hard one.
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: plain signal-mask manipulation on a local, zero-initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_signal(set: &libc::sigset_t) -> &'static str {
    let mut sig: libc::c_int = 0;
    // SAFETY: sigwait on a set of signals this thread has blocked.
    unsafe { libc::sigwait(set, &mut sig) };
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

fn read_password(path: &std::path::Path) -> anyhow::Result<String> {
    let mut s = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut s)?;
    } else {
        s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    let pw = s.lines().next().unwrap_or("").to_owned();
    if pw.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(pw)
}

fn user(args: &ServeArgs, cmd: UserCmd) -> anyhow::Result<ExitCode> {
    let config = load_config(args)?;
    let path = config.effective_users_file();
    let mut db = UserDb::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    match cmd {
        UserCmd::Add {
            name,
            hub,
            password_file,
            replace,
        } => {
            if !config.hubs().iter().any(|h| h.name == hub) {
                warn!("virtual hub {hub:?} is not in the configuration; the user cannot log in until it is");
            }
            let pw = read_password(&password_file)?;
            if replace {
                db.add_or_replace(&hub, &name, &pw)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            } else {
                db.add(&hub, &name, &pw)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            db.save(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("user {name} on hub {hub} saved to {}", path.display());
        }
        UserCmd::Remove { name, hub } => {
            if !db.remove(&hub, &name).map_err(|e| anyhow::anyhow!("{e}"))? {
                bail!("no user {name:?} on hub {hub:?} in {}", path.display());
            }
            db.save(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("user {name} removed from hub {hub}");
        }
        UserCmd::List => {
            println!("{:<24} {:<24}", "HUB", "USER");
            for u in db.list() {
                println!("{:<24} {:<24}", u.hub(), u.name());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cert(args: &ServeArgs, cmd: CertCmd) -> anyhow::Result<ExitCode> {
    let config = load_config(args)?;
    let dir = config.effective_cert_dir();
    match cmd {
        CertCmd::Generate {
            dns,
            ip,
            days,
            ec,
            force,
        } => {
            let mut params = CertParams::default();
            if !dns.is_empty() {
                params.dns_names = dns;
            }
            if !ip.is_empty() {
                params.ip_addrs = ip;
            }
            params.days = days;
            if ec {
                params.key = KeyKind::EcP256;
            }
            let id = Identity::generate(&params)?;
            certs::write(&dir, &id, force)?;
            println!(
                "wrote {}/ca.crt and ca.key\nfingerprint: {}",
                dir.display(),
                id.fingerprint()
            );
        }
        CertCmd::Info => {
            let id = certs::load(&dir.join(certs::CERT_FILE), &dir.join(certs::KEY_FILE))?;
            println!("{}", id.info());
        }
    }
    let _ = Duration::ZERO;
    Ok(ExitCode::SUCCESS)
}
