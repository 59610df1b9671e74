//! Certificates and OpenSSL plumbing shared by the hub `vhub` and the
//! client `vnic`: the hub's own certificate and key, the client's record of
//! which hubs it trusts, and ([`tls`]) sans-IO TLS sessions with the
//! contexts, cipher presets and verification modes both ends use.
//!
//! All cryptography is OpenSSL's, through the `openssl` crate; this crate
//! works with the system OpenSSL 3.0 and with a vendored 3.x (feature
//! `vendored`, which the hub enables by default; feature `legacy-ciphers`
//! adds RC4, see [`tls`]).
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
//! - **Runs TLS without sockets** ([`tls::TlsConn`]): an OpenSSL session
//!   over two in-memory buffers that the caller fills from and drains to
//!   its sockets (io_uring, epoll, blocking), built for batching. The
//!   contexts ([`tls::server_context`], [`tls::client_context`]) pick
//!   suites by preset (`default`, `aes256-sha`, `rc4-sha`, `rc4-md5`) or
//!   raw OpenSSL strings, and verify the hub by CA file, pinned
//!   fingerprint, or trust on first use ([`tls::check_tofu`]).
//!
//! What it does not do:
//!
//! - It opens no sockets, reads no clock for TLS and spawns no threads: the
//!   caller moves every byte between a [`tls::TlsConn`] and the network,
//!   and decides when a session has been idle too long.
//! - It speaks no HTTP and knows nothing of the vhub protocol above TLS.
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
pub mod tls;

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
