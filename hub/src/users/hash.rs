//! Password hashes: scrypt in a PHC-like string, parsed with every cost
//! range-checked before any work is done.
//!
//! ```text
//! $scrypt$ln=15,r=8,p=1$<salt, base64>$<hash, base64>
//! ```
//!
//! N = 2^ln, a 16-byte random salt, a 32-byte output, base64 in the
//! standard alphabet without padding. A hostile users file cannot make one
//! verification take unbounded time or memory (`MAX_LN`, `MAX_SCRYPT_MEM`),
//! and no error or `Debug` output ever shows a salt or a hash.

use std::fmt;
use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine as _;

use super::UserError;

/// Default cost: N = 2^15 (32 MiB with r = 8).
pub const DEFAULT_LN: u8 = 15;
/// Lowest cost accepted, in hashes made and hashes read.
pub const MIN_LN: u8 = 10;
/// Highest cost accepted: a hostile users file must not make one
/// verification take unbounded time or memory.
pub const MAX_LN: u8 = 20;
pub const DEFAULT_R: u32 = 8;
pub const DEFAULT_P: u32 = 1;
pub const SALT_LEN: usize = 16;
pub const HASH_LEN: usize = 32;
/// Memory one verification may use (scrypt needs 128·r·N bytes).
const MAX_SCRYPT_MEM: u64 = 1 << 30;
const MAX_R: u32 = 32;
const MAX_P: u32 = 4;
const MIN_SALT_LEN: usize = 8;
const MAX_SALT_LEN: usize = 64;
/// Longest password accepted (bytes).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A parsed, range-checked scrypt hash. `Debug` shows only the cost, never
/// the salt or the hash; [`PasswordHash::to_phc`] gives the stored string.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    ln: u8,
    r: u32,
    p: u32,
    salt: Vec<u8>,
    hash: [u8; HASH_LEN],
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PasswordHash(scrypt ln={},r={},p={})",
            self.ln, self.r, self.p
        )
    }
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt at cost `ln`.
    pub fn new(password: &str, ln: u8) -> Result<Self, UserError> {
        check_new_password(password)?;
        check_params(ln, DEFAULT_R, DEFAULT_P)?;
        let mut salt = vec![0u8; SALT_LEN];
        openssl::rand::rand_bytes(&mut salt)?;
        let mut h = PasswordHash {
            ln,
            r: DEFAULT_R,
            p: DEFAULT_P,
            salt,
            hash: [0; HASH_LEN],
        };
        h.hash = h.derive(password.as_bytes())?;
        Ok(h)
    }

    /// Parses a `$scrypt$ln=…,r=…,p=…$salt$hash` string, refusing costs out
    /// of range before any work is done. Errors never echo the input.
    pub fn parse(phc: &str) -> Result<Self, UserError> {
        let bad = UserError::MalformedHash;
        let rest = phc
            .strip_prefix("$scrypt$")
            .ok_or(bad("not a `$scrypt$` hash"))?;
        let mut parts = rest.split('$');
        let (Some(params), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("wrong number of `$`-separated fields"));
        };
        let (ln, r, p) = parse_params(params)?;
        let salt = B64
            .decode(salt)
            .map_err(|_| bad("the salt is not base64 (standard alphabet, no padding)"))?;
        if !(MIN_SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()) {
            return Err(bad("the salt has the wrong length"));
        }
        let hash = B64
            .decode(hash)
            .map_err(|_| bad("the hash is not base64 (standard alphabet, no padding)"))?;
        let hash: [u8; HASH_LEN] = hash
            .try_into()
            .map_err(|_| bad("the hash is not 32 bytes long"))?;
        Ok(PasswordHash {
            ln,
            r,
            p,
            salt,
            hash,
        })
    }

    /// The stored form, `$scrypt$ln=15,r=8,p=1$<salt>$<hash>`.
    pub fn to_phc(&self) -> String {
        format!(
            "$scrypt$ln={},r={},p={}${}${}",
            self.ln,
            self.r,
            self.p,
            B64.encode(&self.salt),
            B64.encode(self.hash)
        )
    }

    /// The cost parameter (N = 2^ln).
    pub fn ln(&self) -> u8 {
        self.ln
    }

    /// Whether `password` matches, compared in constant time.
    pub fn verify(&self, password: &str) -> Result<bool, UserError> {
        let derived = self.derive(password.as_bytes())?;
        Ok(openssl::memcmp::eq(&derived, &self.hash))
    }

    fn derive(&self, password: &[u8]) -> Result<[u8; HASH_LEN], UserError> {
        let n = 1u64 << self.ln;
        let (r, p) = (u64::from(self.r), u64::from(self.p));
        // OpenSSL refuses when 128·r·(N+2) + 128·r·p exceeds maxmem; allow
        // exactly that plus slack (the parameters were range-checked).
        let maxmem = 128 * r * (n + 2) + 128 * r * p + (1 << 20);
        let mut out = [0u8; HASH_LEN];
        openssl::pkcs5::scrypt(password, &self.salt, n, r, p, maxmem, &mut out)?;
        Ok(out)
    }
}

/// Parses and range-checks `ln=…,r=…,p=…` (in this order), before any
/// work is done. Errors never echo the input.
fn parse_params(params: &str) -> Result<(u8, u32, u32), UserError> {
    let bad = UserError::MalformedHash;
    let mut kv = params.split(',');
    let (Some(ln), Some(r), Some(p), None) = (kv.next(), kv.next(), kv.next(), kv.next()) else {
        return Err(bad("parameters must be ln=…,r=…,p=…"));
    };
    let num = |field: &str, name: &str| -> Result<u64, UserError> {
        let v = field
            .strip_prefix(name)
            .and_then(|f| f.strip_prefix('='))
            .ok_or(bad("parameters must be ln=…,r=…,p=… in this order"))?;
        if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("a parameter is not a decimal number"));
        }
        Ok(v.parse().expect("checked digits"))
    };
    let (ln, r, p) = (num(ln, "ln")?, num(r, "r")?, num(p, "p")?);
    let out_of_range = || {
        UserError::CostOutOfRange(format!(
            "ln={ln}, r={r}, p={p}; allowed ln {MIN_LN} to {MAX_LN}, r 1 to {MAX_R}, p 1 to {MAX_P}"
        ))
    };
    let ln = u8::try_from(ln).map_err(|_| out_of_range())?;
    let r = u32::try_from(r).map_err(|_| out_of_range())?;
    let p = u32::try_from(p).map_err(|_| out_of_range())?;
    check_params(ln, r, p)?;
    Ok((ln, r, p))
}

pub(super) fn check_params(ln: u8, r: u32, p: u32) -> Result<(), UserError> {
    if !(MIN_LN..=MAX_LN).contains(&ln) {
        return Err(UserError::CostOutOfRange(format!(
            "ln={ln}; allowed {MIN_LN} to {MAX_LN}"
        )));
    }
    if !(1..=MAX_R).contains(&r) || !(1..=MAX_P).contains(&p) {
        return Err(UserError::CostOutOfRange(format!(
            "r={r}, p={p}; allowed r 1 to {MAX_R}, p 1 to {MAX_P}"
        )));
    }
    let mem = (128 * u64::from(r)) << ln;
    if mem > MAX_SCRYPT_MEM {
        return Err(UserError::CostOutOfRange(format!(
            "ln={ln}, r={r} needs {} MiB; at most {} MiB",
            mem >> 20,
            MAX_SCRYPT_MEM >> 20
        )));
    }
    Ok(())
}

fn check_new_password(password: &str) -> Result<(), UserError> {
    if password.is_empty() {
        return Err(UserError::BadNewPassword("the password is empty"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(UserError::BadNewPassword(
            "the password is longer than 1024 bytes",
        ));
    }
    Ok(())
}

/// Hashes a password at the default cost (ln = 15, r = 8, p = 1).
pub fn hash_password(password: &str) -> Result<String, UserError> {
    hash_password_with_cost(password, DEFAULT_LN)
}

/// Hashes a password at cost N = 2^ln (`MIN_LN..=MAX_LN`); for tests and
/// for operators who want a different cost.
pub fn hash_password_with_cost(password: &str, ln: u8) -> Result<String, UserError> {
    Ok(PasswordHash::new(password, ln)?.to_phc())
}

/// Checks `password` against a stored PHC string. `Err` when the string is
/// malformed or its cost is out of range (no scrypt is run then).
pub fn verify_password(password: &str, phc: &str) -> Result<bool, UserError> {
    PasswordHash::parse(phc)?.verify(password)
}

/// A fixed hash to verify against when the user does not exist, so that an
/// unknown user costs the same time as a wrong password (no user
/// enumeration by timing). Same cost as the default hashes.
pub(super) static DUMMY_HASH: LazyLock<PasswordHash> = LazyLock::new(|| PasswordHash {
    ln: DEFAULT_LN,
    r: DEFAULT_R,
    p: DEFAULT_P,
    salt: b"vhub-dummy-salt!".to_vec(),
    hash: [0x5a; HASH_LEN],
});
