//! TLS errors. Each variant says who is at fault — the peer, the
//! negotiation between both ends, the certificate the peer presented, or
//! this end's configuration — and the message says what to do next.

use std::path::PathBuf;

use openssl::error::ErrorStack;

use crate::error::openssl_reason;
use crate::{CertError, Fingerprint};

/// Everything that can go wrong building a TLS context or running a
/// [`TlsConn`](super::TlsConn).
///
/// After an error from a [`TlsConn`](super::TlsConn) the connection is
/// dead, but it may still hold ciphertext — the alert that tells the peer
/// why: send [`pending_ciphertext`](super::TlsConn::pending_ciphertext)
/// bytes before closing the socket.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer sent bytes that are not TLS (an HTTP request on the TLS
    /// port, a port scanner, a proxy speaking something else), or TLS
    /// records that do not parse or do not authenticate. The peer's fault,
    /// or that of something between the two ends.
    #[error(
        "the peer sent data that is not valid TLS ({reason}): it is not speaking TLS \
         to this port, or something between the two ends corrupts the stream"
    )]
    Protocol {
        /// OpenSSL's reasons, e.g. `wrong version number`.
        reason: String,
    },

    /// Both ends speak TLS but could not agree: no protocol version or
    /// cipher suite in common, the peer refused with an alert, or the peer
    /// closed the connection in the middle of the handshake.
    #[error("TLS handshake failed: {reason}{}", handshake_hint(reason))]
    Handshake {
        /// OpenSSL's reasons, e.g. `no shared cipher` or
        /// `sslv3 alert handshake failure` (the peer's alert).
        reason: String,
    },

    /// The peer's certificate did not verify against the CA file or the
    /// host name (client with [`Verify::Ca`](super::Verify::Ca)).
    #[error(
        "TLS handshake failed: certificate verify failed: {reason}: check the CA file \
         (--ca) and the host name you connect to, or pin the certificate's fingerprint"
    )]
    CertificateVerify {
        /// OpenSSL's verification result, e.g. `hostname mismatch` or
        /// `self-signed certificate`.
        reason: String,
    },

    /// The peer's certificate is not the pinned one
    /// ([`Verify::Pin`](super::Verify::Pin)).
    #[error(
        "TLS handshake failed: the hub's certificate is not the pinned one: expected \
         {expected}, the hub presented {presented}; if you know the hub's certificate \
         was replaced, pin the new one (--pin {presented})"
    )]
    PinMismatch {
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// What the hub sent.
        presented: Fingerprint,
    },

    /// Trust on first use: the hub is recorded in the known-hubs file
    /// with another certificate.
    #[error(
        "the certificate of hub {host_port} has changed: {} records {stored}, the hub \
         presented {presented}. Either the hub's certificate was replaced, or someone \
         is intercepting the connection. If you know it was replaced, accept the new \
         one on purpose: remove the line for {host_port} from the known-hubs file at \
         {}, or pass --pin {presented}",
        path.display(),
        path.display()
    )]
    FingerprintChanged {
        /// `host:port` as dialled.
        host_port: String,
        /// The known-hubs file.
        path: PathBuf,
        /// The fingerprint on record.
        stored: Fingerprint,
        /// The fingerprint the hub presented now.
        presented: Fingerprint,
    },

    /// This end's TLS settings are unusable: a cipher string OpenSSL
    /// rejects, contradictory versions, an unreadable CA file, a key that
    /// cannot serve the chosen suites.
    #[error("TLS configuration: {what}: {reason}")]
    Config {
        /// What was being configured, e.g. `cipher list "FOO"`.
        what: String,
        /// Why it failed, and what to do.
        reason: String,
    },

    /// An RC4 suite was asked for, but this binary cannot do RC4 at all.
    #[error(
        "RC4 suites need a vhub built with `--features legacy-ciphers` (vendored \
         OpenSSL with weak-crypto and legacy) and the --allow-legacy-ciphers flag; \
         Debian's system OpenSSL has no RC4 TLS suites at all"
    )]
    LegacyNotBuilt,

    /// An RC4 suite was asked for without the explicit opt-in.
    #[error(
        "{what} uses RC4, which is broken and off unless asked for explicitly: pass \
         --allow-legacy-ciphers to use it anyway"
    )]
    LegacyNotAllowed {
        /// The cipher setting that asked for it, e.g. `preset rc4-md5`.
        what: String,
    },

    /// Reading or writing the known-hubs file failed.
    #[error(transparent)]
    Cert(#[from] CertError),

    /// The session is closed (close_notify sent or received); nothing more
    /// can be written.
    #[error("the TLS session is closed (close_notify was sent or received)")]
    Closed,

    /// The session failed before (an error was returned already); it
    /// cannot go on. Send what is pending and close the connection.
    #[error("the TLS session already failed; close the connection")]
    Failed,

    /// The caller used a [`TlsConn`](super::TlsConn) out of order (a bug in
    /// the caller).
    #[error("TLS connection used out of order: {0}")]
    Usage(&'static str),

    /// OpenSSL failed at something that should not fail (out of memory, a
    /// broken OpenSSL installation).
    #[error("OpenSSL failed to {op}: {reason}")]
    Internal {
        /// What was being done.
        op: &'static str,
        /// OpenSSL's reasons.
        reason: String,
    },
}

/// What a handshake failure most often means, for a person reading logs.
fn handshake_hint(reason: &str) -> &'static str {
    if reason.contains("no shared cipher") {
        " (the peer offered no cipher suite that this end allows: compare the cipher \
         settings of both ends)"
    } else if reason.contains("alert handshake failure") {
        " (the peer refused the handshake, most often because no cipher suite is \
         allowed by both ends: compare the cipher settings of both ends)"
    } else if reason.contains("unsupported protocol")
        || reason.contains("alert protocol version")
        || reason.contains("no protocols available")
        || reason.contains("wrong ssl version")
    {
        " (no TLS version is allowed by both ends: compare their minimum and maximum \
         versions and cipher presets)"
    } else {
        ""
    }
}

/// OpenSSL reasons that mean "these bytes are not (valid) TLS records", as
/// opposed to a negotiation that failed. Matched on OpenSSL's reason text,
/// which is stable across 3.x.
const GARBAGE_REASONS: &[&str] = &[
    "wrong version number",
    "packet length too long",
    "http request",
    "https proxy request",
    "record length mismatch",
    "record layer failure",
    "bad record type",
    "unexpected record",
    "unexpected message",
    "decryption failed or bad record mac",
    "bad record mac",
    "bad packet length",
    "length mismatch",
    "length too short",
    "bad length",
    "excessive message size",
    "unknown protocol",
    "unsupported record version",
    "invalid ct",
    "bad decompression",
    "record too large",
    "encrypted length too long",
    "data length too long",
    "unknown record type",
];

pub(crate) fn is_garbage(reason: &str) -> bool {
    GARBAGE_REASONS.iter().any(|g| reason.contains(g))
}

/// `map_err` adapter for configuration steps that fail because of what
/// the user asked for.
pub(crate) fn config(what: impl Into<String>) -> impl FnOnce(ErrorStack) -> TlsError {
    let what = what.into();
    move |stack| TlsError::Config {
        what,
        reason: openssl_reason(&stack),
    }
}

/// `map_err` adapter for OpenSSL failures that are nobody's fault.
pub(crate) fn internal(op: &'static str) -> impl FnOnce(ErrorStack) -> TlsError {
    move |stack| TlsError::Internal {
        op,
        reason: openssl_reason(&stack),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_messages_carry_a_hint() {
        let e = TlsError::Handshake {
            reason: "no shared cipher".into(),
        };
        let m = e.to_string();
        assert!(
            m.starts_with("TLS handshake failed: no shared cipher (the peer offered"),
            "{m}"
        );
        let e = TlsError::Handshake {
            reason: "tlsv1 alert protocol version".into(),
        };
        assert!(e.to_string().contains("no TLS version"), "{e}");
        let e = TlsError::Handshake {
            reason: "something else".into(),
        };
        assert_eq!(e.to_string(), "TLS handshake failed: something else");
    }

    #[test]
    fn garbage_reasons() {
        assert!(is_garbage("wrong version number"));
        assert!(is_garbage("http request"));
        assert!(!is_garbage("no shared cipher"));
        assert!(!is_garbage("sslv3 alert handshake failure"));
    }
}
