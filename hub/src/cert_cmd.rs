//! `vhub cert generate|info`: the hub's certificate and key (ca.crt,
//! ca.key) in the certificate directory.

use std::process::ExitCode;

use certs::{CertParams, Identity, KeyKind};

use crate::cli::{CertCmd, ServeArgs};
use crate::config_cmd::load_config;

/// Runs one `vhub cert` command in the certificate directory the config
/// (or `--cert-dir`) names.
pub fn cert(args: &ServeArgs, cmd: CertCmd) -> anyhow::Result<ExitCode> {
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
    Ok(ExitCode::SUCCESS)
}
