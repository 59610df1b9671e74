//! `vhub`: the hub server. With no arguments it serves virtual hub DEFAULT
//! on 0.0.0.0:8443 with a certificate created on first start.

#[global_allocator]
static GLOBAL: hub::memory::Counting = hub::memory::Counting::new();

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
use hub::admin::{self, Request};
use hub::auth::SharedAuth;
use hub::config::{Config, IoBackendSetting};
use hub::net;
use hub::reload::Reloader;
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
    /// Inspect and control a running hub through its admin socket.
    Ctl(CtlArgs),
}

#[derive(Args, Debug)]
struct CtlArgs {
    /// The hub's admin socket (default: admin_socket from --config, else
    /// <cert_dir>/admin.sock).
    #[arg(long, env = "VHUB_ADMIN_SOCKET")]
    socket: Option<PathBuf>,
    /// Print JSON (for scripts) instead of tables.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    cmd: CtlCmd,
}

#[derive(Subcommand, Debug)]
enum CtlCmd {
    /// Sessions: id, hub, user, remote address, shard, state, traffic, MACs.
    Sessions,
    /// The MAC tables: hub, MAC, session, age.
    Macs,
    /// Virtual hubs with their session and MAC counts.
    Hubs,
    /// End a session (its client gets a CLOSE "kicked" and may reconnect).
    Kick {
        /// The session's ID from `vhub ctl sessions`.
        session: String,
    },
    /// Re-read the config and users file; refused (nothing changes) if
    /// either has errors. Same as SIGHUP.
    Reload,
}

#[derive(Subcommand, Debug)]
enum UserCmd {
    /// Add a user who logs in with a password, a client certificate, or
    /// both (or change one with --replace).
    Add {
        name: String,
        /// Virtual hub the user may join.
        #[arg(long, default_value = "DEFAULT")]
        hub: String,
        /// File whose first line is the password; "-" reads standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The user's client certificate (PEM or DER): binds the user to
        /// its SHA-256 fingerprint (the hub needs `tls.client_ca`).
        #[arg(long, conflicts_with = "cert_fingerprint")]
        cert: Option<PathBuf>,
        /// Bind the user to a client certificate by fingerprint
        /// (sha256:…, or `openssl x509 -fingerprint -sha256` output).
        #[arg(long)]
        cert_fingerprint: Option<String>,
        /// Bind the user to a client certificate subject (e.g.
        /// "CN=alice,O=Example"): any certificate the CA issues with it.
        #[arg(long)]
        cert_subject: Option<String>,
        /// Change an existing user: what is given replaces the old value,
        /// the rest is kept.
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
        Some(Command::Ctl(cmd)) => ctl(&cli.serve, cmd),
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
    let user_list = users.clone();
    let auth = Arc::new(SharedAuth::new(Arc::new(users)));
    let page = server::front_page(&settings.name, &fp.to_string(), &settings.hubs);
    // Block the stop signals before any thread starts, so only sigwait sees them.
    let signals = block_signals();
    let server = server::start(settings, ctx, identity.cert_pem(), page, auth.clone())
        .with_context(|| format!("listening on {}", config.listen))?;
    if let Some(m) = server.metrics_addr() {
        info!(metrics = %format!("http://{m}/metrics"), "metrics listening");
    }
    let reloader = {
        let args = args.clone();
        Arc::new(Reloader::new(
            Box::new(move || load_config(&args).map_err(|e| format!("{e:#}"))),
            config.clone(),
            &user_list,
            identity.cert_pem(),
            server.switchboard.clone(),
            auth,
        ))
    };
    let admin = match config.effective_admin_socket() {
        Some(path) => {
            let r = reloader.clone();
            let admin = admin::serve(
                &path,
                server.switchboard.clone(),
                Arc::new(move || r.reload()),
            );
            match admin {
                Ok(a) => Some(a),
                Err(e) => {
                    server.shutdown();
                    bail!("{e}");
                }
            }
        }
        None => None,
    };
    let sig = loop {
        match wait_signal(&signals) {
            "SIGHUP" => {
                info!("SIGHUP: reloading the config");
                reloader.reload();
            }
            sig => break sig,
        }
    };
    info!(signal = sig, "stopping: closing sessions");
    if let Some(a) = admin {
        a.shutdown();
    }
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
        libc::sigaddset(&mut set, libc::SIGHUP);
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
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

/// The SHA-256 fingerprint of a certificate file, PEM (the first
/// certificate) or DER.
fn cert_file_fingerprint(path: &std::path::Path) -> anyhow::Result<certs::Fingerprint> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let cert = openssl::x509::X509::from_pem(&bytes)
        .or_else(|_| openssl::x509::X509::from_der(&bytes))
        .map_err(|_| {
            anyhow::anyhow!(
                "{} is not a certificate (PEM or DER); for a key or a request, give the certificate the CA issued",
                path.display()
            )
        })?;
    Ok(certs::Fingerprint::of(&cert))
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
            cert,
            cert_fingerprint,
            cert_subject,
            replace,
        } => {
            if !config.hubs().iter().any(|h| h.name == hub) {
                warn!("virtual hub {hub:?} is not in the configuration; the user cannot log in until it is");
            }
            let pw = password_file.as_deref().map(read_password).transpose()?;
            let fingerprint = match (&cert, &cert_fingerprint) {
                (Some(file), _) => Some(cert_file_fingerprint(file)?),
                (None, Some(fp)) => Some(
                    fp.parse::<certs::Fingerprint>()
                        .map_err(|e| anyhow::anyhow!("--cert-fingerprint: {e}"))?,
                ),
                (None, None) => None,
            };
            let login = hub::users::Login {
                password: pw.as_deref(),
                cert_fingerprint: fingerprint,
                cert_subject,
            };
            match db.put(&hub, &name, login, replace) {
                Ok(_) => {}
                // The rule is the store's; the flags are the CLI's to name.
                Err(hub::users::UserError::NoLogin { .. }) => bail!(
                    "user {name:?} needs a way to log in: --password-file, --cert, \
                     --cert-fingerprint or --cert-subject"
                ),
                Err(e) => bail!("{e}"),
            }
            db.save(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
            let u = db.get(&hub, &name).expect("just saved");
            let mut how = Vec::new();
            if u.has_password() {
                how.push("password".to_owned());
            }
            if let Some(fp) = u.cert_fingerprint() {
                how.push(format!("certificate {fp}"));
            }
            if let Some(subj) = u.cert_subject() {
                how.push(format!("certificate subject {subj:?}"));
            }
            println!(
                "user {name} on hub {hub} saved to {} (logs in with: {})",
                path.display(),
                how.join(", ")
            );
            if (u.cert_fingerprint().is_some() || u.cert_subject().is_some())
                && config.tls.client_ca.is_none()
            {
                warn!("tls.client_ca is not set: the hub asks for no client certificate, so this user's certificate cannot log in until it is");
            }
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

/// Where `vhub ctl` finds the admin socket: --socket, else the config's
/// `admin_socket` (relative to the file), else `<cert_dir>/admin.sock`.
/// A config that does not load (the reason for a reload, perhaps) does not
/// stop ctl: it warns and falls back to the default path.
fn ctl_socket(args: &ServeArgs, ctl: &CtlArgs) -> anyhow::Result<PathBuf> {
    if let Some(p) = &ctl.socket {
        return Ok(p.clone());
    }
    let mut config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("vhub ctl: warning: {} does not load ({} problem(s)); trying the default admin socket", path.display(), e.problems.len());
                Config::default()
            }
        },
        None => Config::default(),
    };
    if let Some(d) = &args.cert_dir {
        config.cert_dir = Some(d.clone());
    }
    match config.effective_admin_socket() {
        Some(p) => Ok(p),
        None => bail!("the admin API is off in this config (admin_socket = \"off\"); pass --socket PATH if the running hub has one"),
    }
}

/// `vhub ctl`: one request to the running hub's admin socket, its answer
/// printed as JSON (`--json`) or as a table. Exits with failure when the
/// hub refused the request.
fn ctl(args: &ServeArgs, ctl: CtlArgs) -> anyhow::Result<ExitCode> {
    let path = ctl_socket(args, &ctl)?;
    let answer = admin::request(&path, &ctl_request(&ctl.cmd))?;
    let ok = answer["ok"].as_bool() == Some(true);
    if ctl.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if !ok {
        print_ctl_refusal(&ctl.cmd, &answer);
        return Ok(ExitCode::FAILURE);
    }
    let parse = |key: &str| answer[key].clone();
    match ctl.cmd {
        CtlCmd::Sessions => print_sessions(&serde_json::from_value::<Vec<_>>(parse("sessions"))?),
        CtlCmd::Macs => print_macs(&serde_json::from_value::<Vec<_>>(parse("macs"))?),
        CtlCmd::Hubs => print_hubs(&serde_json::from_value::<Vec<_>>(parse("hubs"))?),
        CtlCmd::Kick { .. } => {
            println!(
                "session {} kicked",
                answer["kicked"].as_str().unwrap_or("?")
            );
        }
        CtlCmd::Reload => print_reload(&serde_json::from_value(answer)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// The admin API request a `vhub ctl` command sends.
fn ctl_request(cmd: &CtlCmd) -> Request {
    match cmd {
        CtlCmd::Sessions => Request::Sessions,
        CtlCmd::Macs => Request::Macs,
        CtlCmd::Hubs => Request::Hubs,
        CtlCmd::Kick { session } => Request::Kick {
            session: session.clone(),
        },
        CtlCmd::Reload => Request::Reload,
    }
}

/// Says on stderr why the hub refused. A refused reload lists every
/// problem of the new config and says the running one stays, so the
/// operator knows nothing changed.
fn print_ctl_refusal(cmd: &CtlCmd, answer: &serde_json::Value) {
    if let CtlCmd::Reload = cmd {
        eprintln!("reload refused; the running config stays. Problems:");
        for e in answer["errors"].as_array().into_iter().flatten() {
            eprintln!("  {}", e.as_str().unwrap_or_default());
        }
    } else {
        eprintln!("vhub ctl: {}", answer["error"].as_str().unwrap_or("failed"));
    }
}

/// `vhub ctl sessions`: one line per session, then the count.
fn print_sessions(list: &[admin::SessionInfo]) {
    println!(
        "{:<9} {:<12} {:<16} {:<22} {:>5} {:<9} {:>10} {:>10} {:>12} {:>12} {:>5}",
        "ID",
        "HUB",
        "USER",
        "REMOTE",
        "SHARD",
        "STATE",
        "FRAMES_IN",
        "FRAMES_OUT",
        "BYTES_IN",
        "BYTES_OUT",
        "MACS"
    );
    for s in list {
        let user = if s.user.is_empty() {
            "(anonymous)"
        } else {
            &s.user
        };
        println!(
            "{:<9} {:<12} {:<16} {:<22} {:>5} {:<9} {:>10} {:>10} {:>12} {:>12} {:>5}",
            s.id,
            s.hub,
            user,
            s.remote,
            s.shard,
            s.state,
            s.frames_in,
            s.frames_out,
            s.bytes_in,
            s.bytes_out,
            s.macs
        );
    }
    println!("{} session(s)", list.len());
}

/// `vhub ctl macs`: one line per learned MAC address, then the count.
fn print_macs(list: &[admin::MacInfo]) {
    println!(
        "{:<12} {:<17} {:<9} {:>6}",
        "HUB", "MAC", "SESSION", "AGE_S"
    );
    for m in list {
        println!(
            "{:<12} {:<17} {:<9} {:>6}",
            m.hub, m.mac, m.session, m.age_seconds
        );
    }
    println!("{} MAC address(es)", list.len());
}

/// `vhub ctl hubs`: one line per virtual hub.
fn print_hubs(list: &[admin::HubInfo]) {
    println!(
        "{:<16} {:<8} {:<9} {:>8} {:>8} {:>6}",
        "HUB", "ENABLED", "ANONYMOUS", "SESSIONS", "DETACHED", "MACS"
    );
    for h in list {
        let yn = |b: bool| if b { "yes" } else { "no" };
        println!(
            "{:<16} {:<8} {:<9} {:>8} {:>8} {:>6}",
            h.name,
            yn(h.enabled),
            yn(h.anonymous),
            h.sessions,
            h.detached,
            h.macs
        );
    }
}

/// `vhub ctl reload`: what was applied, what it closed, and what only a
/// restart can apply (said plainly, so nobody believes it took effect).
fn print_reload(r: &admin::ReloadReport) {
    println!("config reloaded");
    for a in &r.applied {
        println!("  applied: {a}");
    }
    if r.closed_sessions > 0 {
        println!(
            "  closed {} session(s) no longer allowed",
            r.closed_sessions
        );
    }
    for n in &r.needs_restart {
        println!("  NOT applied, needs a restart: {n}");
    }
}
