//! SoftEther logins: the hash a user needs for them, as the users file
//! writes it, and checking a login's proof against it.
//!
//! A SoftEther client proves its password with
//! `secure_password = SHA0(SHA0(password ‖ UPPER(name)) ‖ server random)`
//! (switch-core's `softether::password`), so the hub must keep
//! `SHA0(password ‖ UPPER(name))` itself: the scrypt hash cannot answer
//! that proof. That hash is fast and unsalted, and whoever holds it can log
//! in from SoftEther without the password, so it is stored only for the
//! users an operator opts in (`vhub user add NAME --password-file F
//! --softether`); docs/SECURITY.md says what it costs.
//!
//! Names: the lookup is by the exact name the client sends, as for vhub's
//! own logins. SoftEther folds `a`–`z` into the hash, but vhub names are
//! case-sensitive (`alice` and `Alice` may be two users, whose SoftEther
//! hashes are equal when their passwords are), and a case-insensitive
//! fallback would let a guesser spread failures over `alice`, `Alice`,
//! `aLice`… past the per-user throttle. A SoftEther user types the name
//! as `vhub user list` shows it.

use switch_core::softether::password::{verify_secure_password, RANDOM_LEN};
use switch_core::softether::HashedPassword;

use super::store::UserDb;
use super::UserError;
use crate::auth::AuthResult;

/// Hex digits of a stored SoftEther hash (20 bytes).
pub const SOFTETHER_HASH_HEX_LEN: usize = 40;

/// Parses the users file's `softether_hash`: exactly 40 hex digits, either
/// case. The error never repeats the value (it is password-equivalent).
pub fn parse_softether_hash(text: &str) -> Result<HashedPassword, UserError> {
    if !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(UserError::MalformedSoftEtherHash(
            "it has a character that is not a hex digit".to_owned(),
        ));
    }
    if text.len() != SOFTETHER_HASH_HEX_LEN {
        return Err(UserError::MalformedSoftEtherHash(format!(
            "it has {} digits",
            text.len()
        )));
    }
    let mut out = [0u8; 20];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        *byte = digit(pair[0]) << 4 | digit(pair[1]);
    }
    Ok(HashedPassword(out))
}

/// The users file's form of a SoftEther hash: 40 lower-case hex digits.
pub fn softether_hash_hex(hash: &HashedPassword) -> String {
    hash.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checked when the user has no SoftEther hash (or does not exist), so
/// that such a login does the same work as a wrong password. Its result
/// is never trusted: a client can compute the proof for it.
const DUMMY: HashedPassword = HashedPassword([0x5a; 20]);

impl UserDb {
    /// Checks a SoftEther password login: `secure_password` from the
    /// client's login PACK against `SHA0(stored hash ‖ server_random)`,
    /// the hello random this hub sent on that connection, compared in
    /// constant time. `name` is matched exactly (see the module doc).
    ///
    /// A user without a SoftEther hash gets [`AuthResult::BadPassword`],
    /// exactly like a wrong proof; an unknown user gets
    /// [`AuthResult::UnknownUser`], as [`UserDb::authenticate`] answers
    /// (the client is told only "denied"; the throttle counts both alike).
    /// Two SHA-0 blocks: cheap enough for the caller's thread.
    pub fn authenticate_softether(
        &self,
        hub: &str,
        name: &str,
        secure_password: &[u8; RANDOM_LEN],
        server_random: &[u8; RANDOM_LEN],
    ) -> AuthResult {
        let stored = self.get(hub, name);
        let hash = stored.and_then(|u| u.softether.as_ref());
        let proved = verify_secure_password(hash.unwrap_or(&DUMMY), server_random, secure_password);
        match (stored, hash.is_some() && proved) {
            (None, _) => AuthResult::UnknownUser,
            (Some(_), true) => AuthResult::Ok,
            (Some(_), false) => AuthResult::BadPassword,
        }
    }
}
