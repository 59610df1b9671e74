//! `vhub user add|remove|list`: the users file, edited offline. It is
//! never the config file; a running hub picks changes up on reload.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use hub::users::{Login, User, UserDb, UserError};
use tracing::warn;

use crate::cli::{ServeArgs, UserCmd};
use crate::config_cmd::load_config;

/// Runs one `vhub user` command against the users file the config names.
pub fn user(args: &ServeArgs, cmd: UserCmd) -> anyhow::Result<ExitCode> {
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
            softether,
            no_softether,
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
            let login = Login {
                password: pw.as_deref(),
                cert_fingerprint: fingerprint,
                cert_subject,
                softether: match (softether, no_softether) {
                    (true, _) => Some(true),
                    (false, true) => Some(false),
                    (false, false) => None,
                },
            };
            match db.put(&hub, &name, login, replace) {
                Ok(_) => {}
                // The rule is the store's; the flags are the CLI's to name.
                Err(UserError::NoLogin { .. }) => bail!(
                    "user {name:?} needs a way to log in: --password-file, --cert, \
                     --cert-fingerprint or --cert-subject"
                ),
                Err(UserError::SoftEtherNeedsPassword { .. }) => bail!(
                    "--softether needs --password-file: SoftEther's hash is made from the password"
                ),
                Err(e) => bail!("{e}"),
            }
            db.save(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
            let u = db.get(&hub, &name).expect("just saved");
            let mut how = Vec::new();
            if u.has_password() {
                how.push("password".to_owned());
            }
            if u.has_softether() {
                how.push("SoftEther password".to_owned());
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
            println!("{:<24} {:<24} LOGINS", "HUB", "USER");
            for u in db.list() {
                println!("{:<24} {:<24} {}", u.hub(), u.name(), logins(u));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How a user can log in, for `vhub user list`: `password`, `softether`
/// (from a SoftEther client), `cert` (by fingerprint), `cert-subject`,
/// joined by commas.
fn logins(u: &User) -> String {
    let mut how = Vec::new();
    if u.has_password() {
        how.push("password");
    }
    if u.has_softether() {
        how.push("softether");
    }
    if u.cert_fingerprint().is_some() {
        how.push("cert");
    }
    if u.cert_subject().is_some() {
        how.push("cert-subject");
    }
    how.join(",")
}

/// The SHA-256 fingerprint of a certificate file, PEM (the first
/// certificate) or DER.
fn cert_file_fingerprint(path: &Path) -> anyhow::Result<certs::Fingerprint> {
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

/// The first line of `path` ("-": standard input); an empty one is refused.
fn read_password(path: &Path) -> anyhow::Result<String> {
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
