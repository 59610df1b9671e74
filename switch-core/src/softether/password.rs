//! SoftEther's password proof (PROTOCOL-NOTES.md §5.2.1):
//!
//! ```text
//! HashedPassword  = SHA0(password ‖ ASCII-uppercase(user name))     stored by both ends
//! secure_password = SHA0(HashedPassword ‖ hello.random)              sent in the login
//! ```
//!
//! The server keeps [`HashedPassword`] per user (never the plaintext) and
//! checks a login with [`verify_secure_password`], in constant time.

use std::fmt;

use super::sha0::{Sha0, DIGEST_LEN};

/// Length of the hello random, of a hashed password and of a
/// `secure_password`.
pub const RANDOM_LEN: usize = 20;

/// `SHA0(password ‖ USER)`: what a SoftEther client stores and what a hub
/// stores per user. A password equivalent (a client that knows it can log
/// in): keep it as secret as a password.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashedPassword(pub [u8; DIGEST_LEN]);

impl fmt::Debug for HashedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashedPassword(<redacted>)")
    }
}

impl HashedPassword {
    /// SoftEther's `HashPassword`: SHA-0 over the password bytes followed by
    /// the user name with only `a`–`z` upper-cased (no Unicode folding).
    pub fn new(user: &str, password: &str) -> Self {
        let mut h = Sha0::new();
        h.update(password.as_bytes());
        h.update(user.to_ascii_uppercase().as_bytes());
        Self(h.finalize())
    }

    /// The proof for one hello random (SoftEther's `SecurePassword`).
    pub fn secure_password(&self, random: &[u8; RANDOM_LEN]) -> [u8; DIGEST_LEN] {
        let mut h = Sha0::new();
        h.update(&self.0);
        h.update(random);
        h.finalize()
    }
}

/// Whether `received` (a login's `secure_password`) proves knowledge of
/// `stored` for this hello random. Constant-time in the bytes compared; a
/// value of the wrong length is simply false.
pub fn verify_secure_password(
    stored: &HashedPassword,
    random: &[u8; RANDOM_LEN],
    received: &[u8],
) -> bool {
    received.len() == DIGEST_LEN && constant_time_eq(&stored.secure_password(random), received)
}

/// Byte equality without an early exit at the first difference.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box: the optimizer must not turn the fold into memcmp.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: &[u8]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    // PROTOCOL-NOTES.md §5.2.1: checked against the live binaries' acceptance.
    #[test]
    fn notes_vectors() {
        let h = HashedPassword::new("alice", "secret");
        assert_eq!(hex(&h.0), "0e782dacdb78918d73007999da81bc408906d451");
        assert_eq!(
            hex(&HashedPassword::new("alice", "").0),
            "6a18e99e88f473726bc3b5e1e9d6836529c49a80"
        );
        let random: [u8; 20] = std::array::from_fn(|i| i as u8);
        let proof = h.secure_password(&random);
        assert_eq!(hex(&proof), "1394b82845bfb7a2711c4963f2b62978cb2c6ce3");
        assert!(verify_secure_password(&h, &random, &proof));
    }

    #[test]
    fn user_name_case_folds_ascii_only() {
        assert_eq!(
            HashedPassword::new("Alice", "secret"),
            HashedPassword::new("ALICE", "secret")
        );
        // Only a-z are mapped: "é" stays as it is in both.
        assert_ne!(
            HashedPassword::new("josé", "pw"),
            HashedPassword::new("JOSÉ", "pw")
        );
        assert_eq!(
            HashedPassword::new("josé", "pw"),
            HashedPassword::new("JOSé", "pw")
        );
        // The password is not folded.
        assert_ne!(
            HashedPassword::new("alice", "Secret"),
            HashedPassword::new("alice", "secret")
        );
    }

    #[test]
    fn wrong_proofs_fail() {
        let h = HashedPassword::new("alice", "secret");
        let random = [9u8; 20];
        let mut proof = h.secure_password(&random);
        assert!(!verify_secure_password(&h, &[8u8; 20], &proof));
        assert!(!verify_secure_password(&h, &random, &proof[..19]));
        proof[19] ^= 1;
        assert!(!verify_secure_password(&h, &random, &proof));
        assert_eq!(format!("{h:?}"), "HashedPassword(<redacted>)");
    }
}
