//! Certificates for vhub: the hub's own certificate and key, and the
//! client's record of which hubs it trusts.
//!
//! Shared by the hub (`vhub`) and the client (`vnic`). All cryptography is
//! OpenSSL's, through the `openssl` crate; this crate works with the system
//! OpenSSL 3.0 and with a vendored 3.x.
//!
//! What it does:
//!
//! - **Creates** a self-signed X.509 v3 certificate and key for the hub
//!   ([`Identity::generate`]): RSA 2048 by default, so the RSA key-exchange
//!   TLS suites still work, or ECDSA P-256; SANs for `localhost`, `127.0.0.1`
//!   and `::1` unless told otherwise.
//! - **Stores and loads** it as `ca.crt` + `ca.key` in a certificate directory
//!   ([`load_or_create`], [`load`], [`write()`]). A key is written with mode
//!   0600 through a temporary file and a rename, so a crash never leaves a
//!   half-written key; a key readable by group or others is refused, as
//!   OpenSSH refuses one. A user may drop in their own pair made by `openssl`
//!   or by a CA (PKCS#8 or traditional RSA/EC PEM, with a chain after the
//!   certificate); it is checked to match before it is used.
//! - **Fingerprints** a certificate as SHA-256 of its DER encoding
//!   ([`Fingerprint`]), printed as `sha256:<hex>` and parsed from what people
//!   paste, including `openssl x509 -fingerprint -sha256` output.
//! - **Remembers hubs** for trust on first use ([`KnownHubs`]), like SSH's
//!   `known_hosts`: a text file of `host:port sha256:HEX` lines.
//!
//! What it does not do:
//!
//! - It opens no sockets and builds no TLS contexts: the hub and the client
//!   put [`Identity::cert`] and [`Identity::key`] into their own
//!   `SslAcceptor`/`SslConnector` and do the verification there (a CA file,
//!   a pinned fingerprint, or [`KnownHubs::check`]).
//! - It is not a CA: it issues no certificates for clients, keeps no
//!   revocation lists and never renews a certificate by itself. An expired
//!   certificate is reported by [`Identity::info`], not replaced.
//! - It never silently regenerates or overwrites a user's files: if only one
//!   of `ca.crt`/`ca.key` exists, or they do not match, loading fails with a
//!   message that says which file is wrong and what to do.
//! - It does not prompt for passphrases; an encrypted key is refused with
//!   the command that decrypts it.
//!
//! ```no_run
//! # fn main() -> Result<(), certs::CertError> {
//! let (id, created) = certs::load_or_create(
//!     std::path::Path::new("/var/lib/vhub/certs"),
//!     &certs::CertParams::default(),
//! )?;
//! if created {
//!     println!("created a new certificate {}", id.fingerprint());
//! }
//! # Ok(()) }
//! ```

mod error;
mod fingerprint;
mod identity;
mod known_hubs;
mod store;

pub use error::{CertError, ParseFingerprintError};
pub use fingerprint::Fingerprint;
pub use identity::{CertInfo, CertParams, Identity, KeyKind};
pub use known_hubs::{KnownHubs, TrustDecision};
pub use store::{load, load_or_create, write};

/// File name of the hub certificate (PEM, optionally followed by a chain)
/// inside the certificate directory.
pub const CERT_FILE: &str = "ca.crt";

/// File name of the hub private key (PEM, unencrypted, mode 0600) inside the
/// certificate directory.
pub const KEY_FILE: &str = "ca.key";
