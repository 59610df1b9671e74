//! Errors. Every message names the file involved and says what to do next.

use std::fmt;
use std::io;
use std::path::PathBuf;

use openssl::error::ErrorStack;

/// Everything that can go wrong creating, loading, storing or checking
/// certificates.
///
/// The variants say who is at fault: a file on disk the user controls
/// (`MissingKey`, `KeyMismatch`, `KeyPermissions`, …), the operating system
/// (`Io`), the caller (`InvalidParams`), or OpenSSL itself (`Crypto`).
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum CertError {
    /// A file-system operation failed; `op` names it ("read", "create", …).
    #[error("cannot {op} {}: {}", path.display(), describe_io(err))]
    Io {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },

    /// The certificate exists but its key does not.
    #[error(
        "certificate file {} exists but key file {} is missing: restore the key, \
         or remove both files to generate a new pair",
        cert.display(),
        key.display()
    )]
    MissingKey { cert: PathBuf, key: PathBuf },

    /// The key exists but its certificate does not.
    #[error(
        "key file {} exists but certificate file {} is missing: restore the certificate, \
         or remove both files to generate a new pair",
        key.display(),
        cert.display()
    )]
    MissingCert { cert: PathBuf, key: PathBuf },

    /// The certificate file holds no usable certificate.
    #[error("{} is not a PEM certificate: {reason}", path.display())]
    NotCertificate { path: PathBuf, reason: String },

    /// The key file holds no usable private key.
    #[error("{} is not a PEM private key: {reason}", path.display())]
    NotPrivateKey { path: PathBuf, reason: String },

    /// The key is protected by a passphrase, which we cannot prompt for.
    #[error(
        "private key {p} is encrypted with a passphrase, which vhub cannot ask for: \
         decrypt it with `openssl pkey -in {p} -out {p}.plain`, check it, then \
         `chmod 600 {p}.plain && mv {p}.plain {p}`",
        p = path.display()
    )]
    EncryptedKey { path: PathBuf },

    /// Certificate and key are both valid but do not belong together.
    #[error(
        "private key {} does not match certificate {} (their public keys differ): \
         install the key the certificate was issued for, or remove both files to \
         generate a new pair",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },

    /// The key file may be read or written by someone other than its owner.
    #[error(
        "private key {p} is {what} by group or others (mode {mode:04o}): run chmod 600 {p}",
        p = path.display(),
        what = if mode & 0o044 != 0 { "readable" } else { "writable" }
    )]
    KeyPermissions { path: PathBuf, mode: u32 },

    /// [`write()`](crate::write()) was asked not to overwrite, and the file exists.
    #[error(
        "{} already exists; refusing to overwrite it: move it away first, \
         or ask for the existing files to be overwritten",
        path.display()
    )]
    AlreadyExists { path: PathBuf },

    /// The [`Identity`](crate::Identity) given to [`write()`](crate::write()) has a
    /// key that is not the certificate's.
    #[error(
        "the certificate and private key to be written do not belong together; \
         nothing was written"
    )]
    IdentityMismatch,

    /// The caller's [`CertParams`](crate::CertParams) cannot make a certificate.
    #[error("invalid certificate parameters: {reason}")]
    InvalidParams { reason: String },

    /// A line of a known-hubs file cannot be parsed.
    #[error(
        "{} line {line}: {reason}; expected \"host:port sha256:HEX\": fix or delete that line",
        path.display()
    )]
    KnownHubsSyntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// A hub address given to [`KnownHubs::add`](crate::KnownHubs::add)
    /// cannot be written as one field of a line.
    #[error("cannot record hub address {host_port:?}: expected host:port without spaces or '#'")]
    InvalidHostPort { host_port: String },

    /// OpenSSL failed at something that should not fail (out of memory, a
    /// broken OpenSSL configuration or provider).
    #[error("OpenSSL failed to {op}: {reason}")]
    Crypto { op: &'static str, reason: String },
}

/// A string is not a certificate fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFingerprintError {
    pub(crate) input: String,
    pub(crate) reason: &'static str,
}

impl fmt::Display for ParseFingerprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid certificate fingerprint {:?}: {}; expected sha256:<64 hex digits>, \
             64 hex digits, or 32 colon-separated hex pairs as printed by \
             `openssl x509 -noout -fingerprint -sha256`",
            self.input, self.reason
        )
    }
}

impl std::error::Error for ParseFingerprintError {}

/// `io::Error`'s own text ("Permission denied (os error 13)") with the os
/// error number dropped for the common, self-explanatory kinds.
fn describe_io(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::AlreadyExists => "file exists".into(),
        _ => err.to_string(),
    }
}

/// The short reasons of an OpenSSL error stack ("no start line; bad
/// decrypt"), without the library/function/file noise.
pub(crate) fn openssl_reason(stack: &ErrorStack) -> String {
    let mut reasons: Vec<String> = Vec::new();
    for e in stack.errors() {
        let mut r = e
            .reason()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("error code {:#x}", e.code()));
        if let Some(data) = e.data() {
            r = format!("{r} ({data})");
        }
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    if reasons.is_empty() {
        "unknown OpenSSL error".into()
    } else {
        reasons.join("; ")
    }
}

/// `map_err` adapter for OpenSSL failures that are not the user's fault.
pub(crate) fn crypto(op: &'static str) -> impl FnOnce(ErrorStack) -> CertError {
    move |stack| CertError::Crypto {
        op,
        reason: openssl_reason(&stack),
    }
}

/// `map_err` adapter for file-system failures.
pub(crate) fn io_err(
    op: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(io::Error) -> CertError {
    let path = path.to_path_buf();
    move |err| CertError::Io { op, path, err }
}
