//! Trust on first use, checked after the handshake.

use std::path::Path;

use super::error::TlsError;
use crate::{Fingerprint, KnownHubs, TrustDecision};

/// What [`check_tofu`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TofuOutcome {
    /// The hub is recorded with this certificate.
    Known,
    /// The hub was not recorded; it now is (the file was written).
    FirstUse,
}

/// Checks the fingerprint a hub presented (from
/// [`TlsConn::peer_fingerprint`](super::TlsConn::peer_fingerprint)) against
/// the known-hubs file at `known_hubs_path`: a hub seen before must show
/// the same certificate; a new hub is recorded. A changed certificate is
/// [`TlsError::FingerprintChanged`], whose message tells the user how to
/// accept the new one on purpose.
pub fn check_tofu(
    known_hubs_path: &Path,
    host_port: &str,
    fp: Fingerprint,
) -> Result<TofuOutcome, TlsError> {
    let mut known = KnownHubs::load(known_hubs_path)?;
    match known.check(host_port, &fp) {
        TrustDecision::Known => Ok(TofuOutcome::Known),
        TrustDecision::Unknown => {
            known.add(host_port, fp);
            known.save(known_hubs_path)?;
            Ok(TofuOutcome::FirstUse)
        }
        TrustDecision::Changed { stored } => Err(TlsError::FingerprintChanged {
            host_port: host_port.to_owned(),
            path: known_hubs_path.to_path_buf(),
            stored,
            presented: fp,
        }),
    }
}
