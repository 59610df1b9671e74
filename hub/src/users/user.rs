//! A user of a hub: its name, how it logs in (a password hash, SoftEther's
//! password hash, a certificate bound by fingerprint or subject) and where
//! it is defined (the users file or the config). Name checks live here too.

use std::fmt;

use certs::Fingerprint;
use switch_core::softether::HashedPassword;

use super::hash::PasswordHash;
use super::UserError;
use crate::config::check_hub_name;

/// Checks a user name: 1 to 64 characters of `[A-Za-z0-9._@-]`.
pub fn check_user_name(name: &str) -> Result<(), UserError> {
    if name.is_empty() || name.len() > 64 {
        return Err(UserError::InvalidName(format!(
            "user name {name:?} must be 1 to 64 characters long"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')))
    {
        return Err(UserError::InvalidName(format!(
            "user name {name:?} has the character {c:?}; use only A-Z a-z 0-9 . _ @ -"
        )));
    }
    Ok(())
}

pub(super) fn check_hub(hub: &str) -> Result<(), UserError> {
    check_hub_name(hub).map_err(UserError::InvalidHub)
}

/// Where a user is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserSource {
    /// The users file: `vhub user add/remove` manage these.
    File,
    /// A `[[hub.user]]` in the config: read-only here.
    Config,
}

/// How a user logs in, for [`UserDb::put`](super::UserDb::put): a
/// password, a client certificate (bound by its SHA-256 fingerprint, or by
/// its subject for certificates that are reissued), or more than one.
#[derive(Clone, Debug, Default)]
pub struct Login<'a> {
    pub password: Option<&'a str>,
    pub cert_fingerprint: Option<Fingerprint>,
    pub cert_subject: Option<String>,
    /// SoftEther logins (opt-in: the hash they need is fast and unsalted,
    /// docs/SECURITY.md). `Some(true)` stores SoftEther's hash of
    /// `password` (which must be given); `Some(false)` removes it; `None`
    /// keeps what a replaced user had, made again from a new `password`
    /// so that the old password does not stay valid for SoftEther.
    pub softether: Option<bool>,
}

impl<'a> Login<'a> {
    pub fn password(password: &'a str) -> Self {
        Login {
            password: Some(password),
            ..Login::default()
        }
    }
}

/// One user of one hub. `Debug` and `Display` never show the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub(super) hub: String,
    pub(super) name: String,
    pub(super) password: Option<PasswordHash>,
    pub(super) cert_fingerprint: Option<Fingerprint>,
    pub(super) cert_subject: Option<String>,
    /// SoftEther's `SHA0(password ‖ UPPER(name))`: lets SoftEther clients
    /// log in; password-equivalent for them.
    pub(super) softether: Option<HashedPassword>,
    pub(super) source: UserSource,
}

impl User {
    pub fn hub(&self) -> &str {
        &self.hub
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }
    /// The cost of the stored hash, if the user has a password.
    pub fn password_cost(&self) -> Option<u8> {
        self.password.as_ref().map(PasswordHash::ln)
    }
    /// Whether the user can log in from a SoftEther client (the users file
    /// holds SoftEther's hash of the password).
    pub fn has_softether(&self) -> bool {
        self.softether.is_some()
    }
    pub fn cert_fingerprint(&self) -> Option<&Fingerprint> {
        self.cert_fingerprint.as_ref()
    }
    pub fn cert_subject(&self) -> Option<&str> {
        self.cert_subject.as_deref()
    }
    pub fn source(&self) -> UserSource {
        self.source
    }
}

impl User {
    /// Whether the user has any way to log in.
    pub(super) fn can_log_in(&self) -> bool {
        self.password.is_some()
            || self.softether.is_some()
            || self.cert_fingerprint.is_some()
            || self.cert_subject.is_some()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("hub", &self.hub)
            .field("name", &self.name)
            .field("password", &self.password) // PasswordHash's Debug shows the cost only
            .field("cert_fingerprint", &self.cert_fingerprint)
            .field("cert_subject", &self.cert_subject)
            .field("softether", &self.softether) // redacted by HashedPassword's Debug
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for User {
    /// `hub/name (password, SoftEther password, certificate sha256:…)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.hub, self.name)?;
        let mut how = Vec::new();
        if self.password.is_some() {
            how.push("password".to_owned());
        }
        if self.softether.is_some() {
            how.push("SoftEther password".to_owned());
        }
        if let Some(fp) = &self.cert_fingerprint {
            how.push(format!("certificate {fp}"));
        }
        if let Some(s) = &self.cert_subject {
            how.push(format!("certificate subject {s:?}"));
        }
        if self.source == UserSource::Config {
            how.push("from the config".to_owned());
        }
        if !how.is_empty() {
            write!(f, " ({})", how.join(", "))?;
        }
        Ok(())
    }
}
