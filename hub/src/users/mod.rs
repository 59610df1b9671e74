//! Users of the virtual hubs and their password hashes.
//!
//! Passwords are stored as scrypt hashes (OpenSSL's `EVP_PBE_scrypt`) in a
//! PHC-like string:
//!
//! ```text
//! $scrypt$ln=15,r=8,p=1$<salt, base64>$<hash, base64>
//! ```
//!
//! with N = 2^ln, a 16-byte random salt, a 32-byte output and base64 in the
//! standard alphabet without padding (as PHC strings write it).
//!
//! Users who may log in from a SoftEther client also have SoftEther's
//! `SHA0(password ‖ UPPER(name))` (`softether_hash`, 40 hex digits): opt-in
//! per user, since it is a fast unsalted hash (see `softether.rs`).
//!
//! The users live in their own TOML file (`users_file` in the config,
//! `<cert_dir>/users.toml` by default) so that `vhub user add` never rewrites
//! the operator's config. Hubs may also list users inline in the config
//! (`[[hub.user]]`); [`UserDb::load_with_config`] merges both, and
//! [`UserDb::save`] writes back only the users that came from the users file.
//!
//! Costs: one verification at the default cost takes 32 MiB and tens of
//! milliseconds of CPU. [`UserDb::authenticate`] blocks; run it off the
//! shard's event loop, with a bound on how many run at once.
//!
//! One concern per file:
//!
//! | file | holds |
//! |---|---|
//! | `hash.rs` | scrypt password hashes: the PHC string, cost bounds, verifying |
//! | `user.rs` | one user: name checks, how it logs in, where it is defined |
//! | `store.rs` | [`UserDb`] and the operations of `vhub user` (add, replace, remove) |
//! | `file.rs` | the users file: reading with positions, atomic writes, inline users |
//! | `authenticate.rs` | checking a password or a client certificate |
//! | `softether.rs` | SoftEther's password hash: its file form, checking a SoftEther login |
//!
//! Everything public is re-exported here: callers write `crate::users::X`.

mod authenticate;
mod file;
mod hash;
mod softether;
mod store;
mod user;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

/// The answer of [`UserDb::authenticate`] and
/// [`UserDb::authenticate_softether`] (`Ok`, `BadPassword`,
/// `UnknownUser`): the one type the hub's auth layer uses. Tell the client
/// only "denied"; the distinction is for logs and metrics.
pub use crate::auth::AuthResult;
pub use hash::{
    hash_password, hash_password_with_cost, verify_password, PasswordHash, DEFAULT_LN, DEFAULT_P,
    DEFAULT_R, HASH_LEN, MAX_LN, MAX_PASSWORD_LEN, MIN_LN, SALT_LEN,
};
pub use softether::{parse_softether_hash, softether_hash_hex, SOFTETHER_HASH_HEX_LEN};
pub use store::UserDb;
pub use user::{check_user_name, Login, User, UserSource};

/// What went wrong with users, hashes or the users file.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The users file has problems; each line is `FILE:LINE:COL: message`.
    #[error("{}", problems.join("\n"))]
    File {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidHub(String),
    #[error(
        "user {name:?} already exists in hub {hub:?}; replace it explicitly to change the password"
    )]
    Duplicate { hub: String, name: String },
    #[error("user {name:?} of hub {hub:?} is defined in the config file; change it there")]
    DefinedInConfig { hub: String, name: String },
    #[error(
        "user {name:?} of hub {hub:?} would have no way to log in: give a password, a client certificate or a certificate subject"
    )]
    NoLogin { hub: String, name: String },
    #[error(
        "user {name:?} of hub {hub:?}: SoftEther logins need the password (SoftEther's hash is made from it); give it again"
    )]
    SoftEtherNeedsPassword { hub: String, name: String },
    /// Never includes the hash string itself.
    #[error("malformed password hash: {0}; expected $scrypt$ln=N,r=N,p=N$<salt>$<hash>")]
    MalformedHash(&'static str),
    /// Never includes the hash itself (it is password-equivalent).
    #[error("malformed softether_hash: {0}; expected 40 hex digits (SHA-0 of the password and the upper-cased user name)")]
    MalformedSoftEtherHash(String),
    #[error("scrypt parameters out of range: {0}")]
    CostOutOfRange(String),
    #[error("{0}")]
    BadNewPassword(&'static str),
    #[error("{0}")]
    BadFingerprint(#[from] certs::ParseFingerprintError),
    #[error("OpenSSL failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    #[error("cannot encode the users file: {0}")]
    Encode(#[from] toml::ser::Error),
}
