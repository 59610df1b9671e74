//! How the client decides to trust the hub's certificate: a CA file, a
//! pinned fingerprint, trust on first use with a known-hubs file (the
//! default), or — loudly — nothing.

use std::path::{Path, PathBuf};

use certs::tls::{self, TlsConn, TlsError, TofuOutcome, Verify};
use certs::Fingerprint;

/// The user's choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// `--ca FILE`: chain and host name checked by OpenSSL.
    Ca(PathBuf),
    /// `--pin sha256:HEX`: exactly this certificate.
    Pin(Fingerprint),
    /// Trust on first use, remembered in this known-hubs file.
    Tofu(PathBuf),
    /// `--insecure`: anything goes.
    Insecure,
}

impl Trust {
    /// The verification mode of the TLS context for the hub at `host_port`.
    pub fn verify(&self, host_port: &str) -> Verify {
        match self {
            Trust::Ca(p) => Verify::Ca(p.clone()),
            Trust::Pin(fp) => Verify::Pin(*fp),
            Trust::Tofu(path) => Verify::Tofu {
                known_hubs: path.clone(),
                host_port: host_port.to_owned(),
            },
            Trust::Insecure => Verify::Insecure,
        }
    }

    /// One line for the log at start.
    pub fn describe(&self) -> String {
        match self {
            Trust::Ca(p) => format!("certificate checked against CA file {}", p.display()),
            Trust::Pin(fp) => format!("certificate pinned to {fp}"),
            Trust::Tofu(p) => format!("trust on first use, known hubs in {}", p.display()),
            Trust::Insecure => "NOT VERIFIED (--insecure): anyone on the path can read \
                                and change this traffic"
                .to_owned(),
        }
    }
}

/// What the trust check after a handshake found out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Verified by the TLS context (CA, pin), or not at all (insecure).
    Ok,
    /// Trust on first use: the hub is known with this certificate.
    Known,
    /// Trust on first use: the hub was new; its fingerprint is now stored.
    FirstUse {
        fingerprint: Fingerprint,
        file: PathBuf,
    },
}

/// After the TLS handshake: the TOFU check (the other modes were checked
/// by OpenSSL during the handshake). A changed certificate is
/// [`TlsError::FingerprintChanged`], which names both fingerprints and
/// how to accept the new one on purpose.
pub fn check_after_handshake(
    trust: &Trust,
    host_port: &str,
    tls: &TlsConn,
) -> Result<Checked, TlsError> {
    let Trust::Tofu(path) = trust else {
        return Ok(Checked::Ok);
    };
    let fp = tls.peer_fingerprint().ok_or_else(|| TlsError::Handshake {
        reason: "the hub presented no certificate".into(),
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|e| TlsError::Config {
            what: format!("known-hubs directory {}", dir.display()),
            reason: e.to_string(),
        })?;
    }
    Ok(match tls::check_tofu(path, host_port, fp)? {
        TofuOutcome::Known => Checked::Known,
        TofuOutcome::FirstUse => Checked::FirstUse {
            fingerprint: fp,
            file: path.clone(),
        },
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// `$XDG_CONFIG_HOME/vnic/known_hubs`, else `~/.config/vnic/known_hubs`.
pub fn default_known_hubs(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let non_empty = |k: &str| env(k).filter(|v| !v.is_empty());
    let base = non_empty("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"));
    base.join("vnic").join("known_hubs")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn known_hubs_location() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            default_known_hubs(env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])),
            PathBuf::from("/x/vnic/known_hubs")
        );
        assert_eq!(
            default_known_hubs(env(&[("XDG_CONFIG_HOME", ""), ("HOME", "/h")])),
            PathBuf::from("/h/.config/vnic/known_hubs")
        );
    }
}
