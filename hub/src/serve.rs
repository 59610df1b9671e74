//! `vhub` with no subcommand: load the config, the certificate and the
//! users, start the shards and the admin socket, then wait for a signal
//! (SIGHUP reloads; SIGINT or SIGTERM stops).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use certs::tls::{self, CipherSpec, TlsOptions};
use certs::CertParams;
use hub::admin;
use hub::auth::SharedAuth;
use hub::config::Config;
use hub::reload::Reloader;
use hub::server;
use hub::users::UserDb;
use tracing::info;

use crate::cli::ServeArgs;
use crate::config_cmd::load_config;
use crate::settings::settings_from;
use crate::signals::{block_signals, wait_signal};

/// Runs the hub in the foreground until SIGINT or SIGTERM.
pub fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
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
    // Local bridges start on their shards (a missing Linux bridge is a
    // warning and a retry, never a failed start).
    for b in hub::reload::apply_bridges(&server.switchboard, &config.hubs()) {
        info!("{b}");
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
