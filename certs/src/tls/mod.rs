//! OpenSSL plumbing shared by the hub `vhub` and the client `vnic`.
//!
//! - [`TlsConn`]: one TLS session over in-memory buffers. It never touches
//!   a socket: the hub moves ciphertext with io_uring or epoll, the client
//!   with whatever relay it uses, and both feed and drain the session.
//! - [`server_context`] / [`client_context`]: OpenSSL contexts built from
//!   [`TlsOptions`] — a cipher [`Preset`] or raw OpenSSL strings
//!   ([`CipherSpec`]), protocol versions, the legacy RC4 opt-in — and, on
//!   the client, how the hub is trusted ([`Verify`]: a CA file, a pinned
//!   fingerprint, trust on first use with [`check_tofu`], or nothing).
//!
//! Legacy suites: `rc4-sha` and `rc4-md5` need both the cargo feature
//! `legacy-ciphers` (a vendored OpenSSL configured with
//! `enable-weak-ssl-ciphers` and its legacy provider) and
//! [`TlsOptions::allow_legacy`]; they then load OpenSSL's `legacy` and
//! `default` providers for the life of the process and lower the security
//! level to 0. Without either, building a context says what is missing.
//!
//! What it does not do: open sockets, keep time (idle and handshake
//! timeouts are the caller's), speak HTTP, or decide what a client
//! certificate entitles its holder to.
//!
//! A hub and a client in one process, moving the bytes by hand where a
//! real program reads and writes sockets:
//!
//! ```
//! use certs::tls::{client_context, server_context, TlsConn, TlsOptions, Verify};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let id = certs::Identity::generate(&certs::CertParams::default())?;
//! let opts = TlsOptions::default();
//! let mut hub = TlsConn::server(&server_context(&id, &opts)?)?;
//! let verify = Verify::Pin(id.fingerprint());
//! let mut vnic = TlsConn::client(&client_context(&verify, &opts)?, Some("localhost"))?;
//!
//! let mut wire = Vec::new(); // a socket, in each direction in turn
//! loop {
//!     let client_done = vnic.handshake()?;
//!     vnic.take_ciphertext(&mut wire);
//!     hub.feed(&wire);
//!     wire.clear();
//!     let hub_done = hub.handshake()?;
//!     hub.take_ciphertext(&mut wire);
//!     vnic.feed(&wire);
//!     wire.clear();
//!     if client_done && hub_done {
//!         break;
//!     }
//! }
//! println!("{}", hub.info().unwrap()); // TLSv1.3 TLS_AES_256_GCM_SHA384
//!
//! vnic.write_plaintext(b"many frames in one record")?;
//! vnic.take_ciphertext(&mut wire);
//! hub.feed(&wire);
//! let mut plain = Vec::new();
//! let status = hub.read_plaintext(&mut plain)?;
//! assert_eq!(plain, b"many frames in one record");
//! assert!(!status.closed);
//! # Ok(()) }
//! ```

mod conn;
mod context;
mod error;
mod tofu;

pub use conn::{normalize_subject, subject_string, ClientCert, ReadStatus, TlsConn, TlsInfo};
pub use context::{
    client_context, client_context_with_cert, legacy_ciphers_built, openssl_vendored,
    openssl_version, server_context, server_context_with_client_ca, CipherSpec,
    ParseCipherSpecError, Preset, TlsOptions, Verify, AES256_SHA_CIPHER_LIST, DEFAULT_CIPHERSUITES,
    DEFAULT_CIPHER_LIST,
};
pub use error::TlsError;
pub use tofu::{check_tofu, TofuOutcome};
