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
//! The users live in their own TOML file (`users_file` in the config,
//! `<cert_dir>/users.toml` by default) so that `vhub user add` never rewrites
//! the operator's config. Hubs may also list users inline in the config
//! (`[[hub.user]]`); [`UserDb::load_with_config`] merges both, and
//! [`UserDb::save`] writes back only the users that came from the users file.
//!
//! Costs: one verification at the default cost takes 32 MiB and tens of
//! milliseconds of CPU. [`UserDb::authenticate`] blocks; run it off the
//! shard's event loop, with a bound on how many run at once.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine as _;
use certs::Fingerprint;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::{check_hub_name, Config, HubConfig, InlineUser, LineIndex};

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
    /// Never includes the hash string itself.
    #[error("malformed password hash: {0}; expected $scrypt$ln=N,r=N,p=N$<salt>$<hash>")]
    MalformedHash(&'static str),
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

// ---------------------------------------------------------------------------
// Password hashes.

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
        let mut kv = params.split(',');
        let (Some(ln), Some(r), Some(p), None) = (kv.next(), kv.next(), kv.next(), kv.next())
        else {
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

fn check_params(ln: u8, r: u32, p: u32) -> Result<(), UserError> {
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

/// Checks a user name: 1 to 64 characters of `[A-Za-z0-9._@-]`.
pub fn check_user_name(name: &str) -> Result<(), UserError> {
    if name.is_empty() || name.len() > 64 {
        return Err(UserError::InvalidName(format!(
            "user name {name:?} must be 1 to 64 characters long"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')))
    {
        return Err(UserError::InvalidName(format!(
            "user name {name:?} has the character {c:?}; use only A-Z a-z 0-9 . _ @ -"
        )));
    }
    Ok(())
}

fn check_hub(hub: &str) -> Result<(), UserError> {
    check_hub_name(hub).map_err(UserError::InvalidHub)
}

// ---------------------------------------------------------------------------
// Users.

/// Where a user is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserSource {
    /// The users file: `vhub user add/remove` manage these.
    File,
    /// A `[[hub.user]]` in the config: read-only here.
    Config,
}

/// How a user logs in, for [`UserDb::put`]: a password, a client
/// certificate (bound by its SHA-256 fingerprint, or by its subject for
/// certificates that are reissued), or more than one.
#[derive(Clone, Debug, Default)]
pub struct Login<'a> {
    pub password: Option<&'a str>,
    pub cert_fingerprint: Option<Fingerprint>,
    pub cert_subject: Option<String>,
}

impl<'a> Login<'a> {
    pub fn password(password: &'a str) -> Self {
        Login {
            password: Some(password),
            ..Login::default()
        }
    }
}

/// One user of one hub. `Debug` and `Display` never show the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    hub: String,
    name: String,
    password: Option<PasswordHash>,
    cert_fingerprint: Option<Fingerprint>,
    cert_subject: Option<String>,
    source: UserSource,
}

impl User {
    pub fn hub(&self) -> &str {
        &self.hub
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }
    /// The cost of the stored hash, if the user has a password.
    pub fn password_cost(&self) -> Option<u8> {
        self.password.as_ref().map(PasswordHash::ln)
    }
    pub fn cert_fingerprint(&self) -> Option<&Fingerprint> {
        self.cert_fingerprint.as_ref()
    }
    pub fn cert_subject(&self) -> Option<&str> {
        self.cert_subject.as_deref()
    }
    pub fn source(&self) -> UserSource {
        self.source
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("hub", &self.hub)
            .field("name", &self.name)
            .field("password", &self.password) // PasswordHash's Debug shows the cost only
            .field("cert_fingerprint", &self.cert_fingerprint)
            .field("cert_subject", &self.cert_subject)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for User {
    /// `hub/name (password, certificate sha256:…)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.hub, self.name)?;
        let mut how = Vec::new();
        if self.password.is_some() {
            how.push("password".to_owned());
        }
        if let Some(fp) = &self.cert_fingerprint {
            how.push(format!("certificate {fp}"));
        }
        if let Some(s) = &self.cert_subject {
            how.push(format!("certificate subject {s:?}"));
        }
        if self.source == UserSource::Config {
            how.push("from the config".to_owned());
        }
        if !how.is_empty() {
            write!(f, " ({})", how.join(", "))?;
        }
        Ok(())
    }
}

/// The answer of [`UserDb::authenticate`] (`Ok`, `BadPassword`,
/// `UnknownUser`): the one type the hub's auth layer uses. Tell the client
/// only "denied"; the distinction is for logs and metrics.
pub use crate::auth::AuthResult;

impl crate::auth::Authenticator for UserDb {
    fn authenticate(&self, hub: &str, user: &str, password: &str) -> AuthResult {
        UserDb::authenticate(self, hub, user, password)
    }

    fn user_exists(&self, hub: &str, user: &str) -> bool {
        self.get(hub, user).is_some()
    }

    fn authenticate_cert(
        &self,
        hub: &str,
        user: Option<&str>,
        fingerprint: &Fingerprint,
        subject: &str,
    ) -> crate::auth::CertLogin {
        UserDb::authenticate_cert(self, hub, user, fingerprint, subject)
    }
}

/// A fixed hash to verify against when the user does not exist, so that an
/// unknown user costs the same time as a wrong password (no user
/// enumeration by timing). Same cost as the default hashes.
static DUMMY_HASH: LazyLock<PasswordHash> = LazyLock::new(|| PasswordHash {
    ln: DEFAULT_LN,
    r: DEFAULT_R,
    p: DEFAULT_P,
    salt: b"vhub-dummy-salt!".to_vec(),
    hash: [0x5a; HASH_LEN],
});

/// The users of all hubs, keyed by hub then name.
#[derive(Clone, Debug)]
pub struct UserDb {
    hubs: BTreeMap<String, BTreeMap<String, User>>,
    cost: u8,
}

impl Default for UserDb {
    fn default() -> Self {
        Self {
            hubs: BTreeMap::new(),
            cost: DEFAULT_LN,
        }
    }
}

// The users file as stored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    user: Vec<RawUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: Spanned<String>,
    hub: Spanned<String>,
    #[serde(default)]
    password: Option<Spanned<String>>,
    #[serde(default)]
    cert_fingerprint: Option<Spanned<String>>,
    #[serde(default)]
    cert_subject: Option<Spanned<String>>,
}

#[derive(Serialize)]
struct OutFile<'a> {
    user: Vec<OutUser<'a>>,
}

#[derive(Serialize)]
struct OutUser<'a> {
    name: &'a str,
    hub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_subject: Option<&'a str>,
}

const FILE_HEADER: &str = "\
# vhub users, managed by `vhub user add` / `vhub user remove` (hand edits
# are fine). Keep this file readable by the hub's user only.
# password = scrypt hash: $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>
";

impl UserDb {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the cost (ln) of hashes made by [`UserDb::add`] from now on.
    pub fn set_hash_cost(&mut self, ln: u8) -> Result<(), UserError> {
        check_params(ln, DEFAULT_R, DEFAULT_P)?;
        self.cost = ln;
        Ok(())
    }

    /// Reads a users file; a missing file is an empty database. Reports
    /// every problem of the file with its line.
    pub fn load(path: &Path) -> Result<UserDb, UserError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UserDb::new()),
            Err(source) => {
                return Err(UserError::Io {
                    op: "read the users file",
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Self::from_toml(&text, path)
    }

    /// Parses the text of a users file; `path` names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<UserDb, UserError> {
        let lines = LineIndex::new(text);
        let at = |span: std::ops::Range<usize>| {
            let p = lines.position(span.start);
            format!("{}:{}:{}", path.display(), p.line, p.column)
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| UserError::File {
            path: path.to_owned(),
            problems: vec![match e.span() {
                Some(s) => format!("{}: {}", at(s), e.message()),
                None => format!("{}: {}", path.display(), e.message()),
            }],
        })?;

        let mut db = UserDb::new();
        let mut problems = Vec::new();
        for r in raw.user {
            let mut ok = true;
            let mut report = |span: std::ops::Range<usize>, msg: String| {
                problems.push(format!("{}: {msg}", at(span)));
                ok = false;
            };
            if let Err(e) = check_user_name(r.name.get_ref()) {
                report(r.name.span(), e.to_string());
            }
            if let Err(e) = check_hub(r.hub.get_ref()) {
                report(r.hub.span(), e.to_string());
            }
            let password = match &r.password {
                Some(p) => match PasswordHash::parse(p.get_ref()) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        report(p.span(), e.to_string());
                        None
                    }
                },
                None => None,
            };
            let cert_fingerprint = match &r.cert_fingerprint {
                Some(f) => match f.get_ref().parse::<Fingerprint>() {
                    Ok(fp) => Some(fp),
                    Err(e) => {
                        report(f.span(), e.to_string());
                        None
                    }
                },
                None => None,
            };
            if r.password.is_none() && r.cert_fingerprint.is_none() && r.cert_subject.is_none() {
                report(
                    r.name.span(),
                    "this user has no password, cert_fingerprint or cert_subject and can never log in"
                        .to_owned(),
                );
            }
            if !ok {
                continue;
            }
            let user = User {
                hub: r.hub.get_ref().clone(),
                name: r.name.get_ref().clone(),
                password,
                cert_fingerprint,
                cert_subject: r.cert_subject.map(Spanned::into_inner),
                source: UserSource::File,
            };
            if let Err(e) = db.insert(user, false) {
                problems.push(format!("{}: {e}", at(r.name.span())));
            }
        }
        if problems.is_empty() {
            Ok(db)
        } else {
            Err(UserError::File {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// The users of a running hub: the config's users file plus the users
    /// listed inline in the config's hubs. A user defined in both places is
    /// an error.
    pub fn load_with_config(config: &Config) -> Result<UserDb, UserError> {
        let mut db = Self::load(&config.effective_users_file())?;
        for hub in config.hubs().iter() {
            db.add_inline(hub)?;
        }
        Ok(db)
    }

    /// Adds the `[[hub.user]]` entries of one hub (source: config).
    pub fn add_inline(&mut self, hub: &HubConfig) -> Result<(), UserError> {
        for u in &hub.users {
            let user = inline_user(&hub.name, u)?;
            self.insert(user, false)?;
        }
        Ok(())
    }

    /// Writes the users that came from the users file (not the config's),
    /// atomically: a temporary file of mode 0600 in the same directory,
    /// fsync, rename, fsync of the directory. Creates the directory (0700)
    /// if it is missing.
    pub fn save(&self, path: &Path) -> Result<(), UserError> {
        let out = OutFile {
            user: self
                .list()
                .filter(|u| u.source == UserSource::File)
                .map(|u| OutUser {
                    name: &u.name,
                    hub: &u.hub,
                    password: u.password.as_ref().map(PasswordHash::to_phc),
                    cert_fingerprint: u.cert_fingerprint.as_ref().map(|f| f.to_string()),
                    cert_subject: u.cert_subject.as_deref(),
                })
                .collect(),
        };
        let body = toml::to_string(&out)?;
        let text = format!("{FILE_HEADER}\n{body}");
        write_atomic(path, text.as_bytes())
    }

    /// Adds a user with a new password hash; refuses an existing user.
    pub fn add(&mut self, hub: &str, name: &str, password: &str) -> Result<(), UserError> {
        self.put(hub, name, Login::password(password), false)
            .map(|_| ())
    }

    /// Adds a user or replaces the password of an existing one (keeping its
    /// certificate settings). Returns whether a user was replaced.
    pub fn add_or_replace(
        &mut self,
        hub: &str,
        name: &str,
        password: &str,
    ) -> Result<bool, UserError> {
        self.put(hub, name, Login::password(password), true)
    }

    /// Adds a user who logs in as `login` says. With `replace`, an existing
    /// user of the users file is updated instead: what `login` names
    /// replaces the old value, the rest is kept. A user with no way to log
    /// in is refused. Returns whether a user was replaced.
    pub fn put(
        &mut self,
        hub: &str,
        name: &str,
        login: Login<'_>,
        replace: bool,
    ) -> Result<bool, UserError> {
        check_hub(hub)?;
        check_user_name(name)?;
        let old = self.get(hub, name);
        if let Some(u) = old {
            if u.source == UserSource::Config {
                return Err(UserError::DefinedInConfig {
                    hub: hub.to_owned(),
                    name: name.to_owned(),
                });
            }
        }
        let kept = old.filter(|_| replace);
        let password = match login.password {
            Some(pw) => Some(PasswordHash::new(pw, self.cost)?),
            None => kept.and_then(|u| u.password.clone()),
        };
        let cert_subject = login
            .cert_subject
            .map(|s| s.trim().to_owned())
            .or_else(|| kept.and_then(|u| u.cert_subject.clone()));
        let user = User {
            hub: hub.to_owned(),
            name: name.to_owned(),
            password,
            cert_fingerprint: login
                .cert_fingerprint
                .or_else(|| kept.and_then(|u| u.cert_fingerprint)),
            cert_subject,
            source: UserSource::File,
        };
        if user.password.is_none() && user.cert_fingerprint.is_none() && user.cert_subject.is_none()
        {
            return Err(UserError::NoLogin {
                hub: hub.to_owned(),
                name: name.to_owned(),
            });
        }
        self.insert(user, replace)
    }

    /// Removes a user of the users file. `Ok(false)` if there is none;
    /// an error for a user defined in the config.
    pub fn remove(&mut self, hub: &str, name: &str) -> Result<bool, UserError> {
        let Some(users) = self.hubs.get_mut(hub) else {
            return Ok(false);
        };
        match users.get(name) {
            None => Ok(false),
            Some(u) if u.source == UserSource::Config => Err(UserError::DefinedInConfig {
                hub: hub.to_owned(),
                name: name.to_owned(),
            }),
            Some(_) => {
                users.remove(name);
                if users.is_empty() {
                    self.hubs.remove(hub);
                }
                Ok(true)
            }
        }
    }

    pub fn get(&self, hub: &str, name: &str) -> Option<&User> {
        self.hubs.get(hub)?.get(name)
    }

    /// All users, ordered by hub then name.
    pub fn list(&self) -> impl Iterator<Item = &User> + '_ {
        self.hubs.values().flat_map(BTreeMap::values)
    }

    pub fn len(&self) -> usize {
        self.hubs.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.hubs.is_empty()
    }

    /// Checks a password. Blocking and slow on purpose (one scrypt); an
    /// unknown user or a user without a password runs one scrypt against a
    /// dummy hash so that timing does not tell which users exist.
    pub fn authenticate(&self, hub: &str, name: &str, password: &str) -> AuthResult {
        let stored = self.get(hub, name);
        let hash = stored.and_then(|u| u.password.as_ref());
        let matched = match hash.unwrap_or(&DUMMY_HASH).verify(password) {
            Ok(m) => m && hash.is_some(),
            Err(e) => {
                tracing::error!(hub, user = name, error = %e, "password verification failed");
                false
            }
        };
        match (stored, matched) {
            (None, _) => AuthResult::UnknownUser,
            (Some(_), true) => AuthResult::Ok,
            (Some(_), false) => AuthResult::BadPassword,
        }
    }

    /// A certificate login on `hub`: the user bound to the certificate by
    /// `cert_fingerprint` (SHA-256) or `cert_subject` (compared in the form
    /// of [`certs::tls::subject_string`], spaces around `,` and `=`
    /// ignored). With `name`, only that user may match. The caller has
    /// verified the certificate against the hub's client CA.
    pub fn authenticate_cert(
        &self,
        hub: &str,
        name: Option<&str>,
        fingerprint: &Fingerprint,
        subject: &str,
    ) -> crate::auth::CertLogin {
        use crate::auth::CertLogin;
        let bound = |u: &&User| {
            u.cert_fingerprint.as_ref() == Some(fingerprint)
                || u.cert_subject
                    .as_deref()
                    .is_some_and(|s| certs::tls::normalize_subject(s) == subject)
        };
        match name {
            Some(n) => match self.get(hub, n).filter(|u| bound(u)) {
                Some(u) => CertLogin::Ok(u.name.clone()),
                None => CertLogin::NotBound,
            },
            None => {
                let mut users = self.hubs.get(hub).into_iter().flat_map(|m| m.values());
                let mut matched = users.by_ref().filter(|u| bound(u));
                match (matched.next(), matched.next()) {
                    (Some(u), None) => CertLogin::Ok(u.name.clone()),
                    (Some(_), Some(_)) => CertLogin::Ambiguous,
                    (None, _) => CertLogin::NotBound,
                }
            }
        }
    }

    /// Inserts; with `replace`, overwrites (returns true if it did).
    fn insert(&mut self, user: User, replace: bool) -> Result<bool, UserError> {
        let users = self.hubs.entry(user.hub.clone()).or_default();
        match users.get(&user.name) {
            Some(old) if old.source == UserSource::Config || user.source == UserSource::Config => {
                Err(UserError::DefinedInConfig {
                    hub: user.hub,
                    name: user.name,
                })
            }
            Some(_) if !replace => Err(UserError::Duplicate {
                hub: user.hub,
                name: user.name,
            }),
            existing => {
                let replaced = existing.is_some();
                users.insert(user.name.clone(), user);
                Ok(replaced)
            }
        }
    }
}

fn inline_user(hub: &str, u: &InlineUser) -> Result<User, UserError> {
    check_hub(hub)?;
    check_user_name(&u.name)?;
    Ok(User {
        hub: hub.to_owned(),
        name: u.name.clone(),
        password: u.password.as_deref().map(PasswordHash::parse).transpose()?,
        cert_fingerprint: u
            .cert_fingerprint
            .as_deref()
            .map(str::parse::<Fingerprint>)
            .transpose()?,
        cert_subject: u.cert_subject.clone(),
        source: UserSource::Config,
    })
}

/// Writes `data` to `path` atomically with mode 0600.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), UserError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |op: &'static str, p: &Path| {
        let p = p.to_owned();
        move |source| UserError::Io {
            op,
            path: p,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create the directory", dir))?;
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| UserError::Io {
            op: "write",
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        })?
        .to_string_lossy();
    let mut nonce = [0u8; 6];
    openssl::rand::rand_bytes(&mut nonce)?;
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        B64.encode(nonce).replace('/', "_")
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        f.write_all(data).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io("rename the new users file to", path))?;
        // Make the rename itself durable.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync the directory", dir))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The cheapest allowed cost keeps the tests fast.
    const LN: u8 = MIN_LN;

    fn cheap_db() -> UserDb {
        let mut db = UserDb::new();
        db.set_hash_cost(LN).unwrap();
        db
    }

    #[test]
    fn hash_verify_round_trip() {
        let phc = hash_password_with_cost("correct horse", LN).unwrap();
        assert!(verify_password("correct horse", &phc).unwrap());
        assert!(!verify_password("correct horsf", &phc).unwrap());
        assert!(!verify_password("", &phc).unwrap());
        // a new salt each time
        assert_ne!(phc, hash_password_with_cost("correct horse", LN).unwrap());
    }

    #[test]
    fn default_cost_hash_works() {
        let phc = hash_password("pw").unwrap();
        assert!(phc.starts_with("$scrypt$ln=15,r=8,p=1$"), "{phc}");
        assert!(verify_password("pw", &phc).unwrap());
    }

    #[test]
    fn phc_format_is_exactly_as_documented() {
        let phc = hash_password_with_cost("pw", LN).unwrap();
        let fields: Vec<&str> = phc.split('$').collect();
        assert_eq!(fields.len(), 5, "{phc}");
        assert_eq!(fields[0], "");
        assert_eq!(fields[1], "scrypt");
        assert_eq!(fields[2], "ln=10,r=8,p=1");
        assert_eq!(B64.decode(fields[3]).unwrap().len(), SALT_LEN);
        assert_eq!(B64.decode(fields[4]).unwrap().len(), HASH_LEN);
        assert_eq!(fields[3].len(), 22, "16 bytes, base64 without padding");
        assert_eq!(fields[4].len(), 43, "32 bytes, base64 without padding");
        // parse → to_phc is the identity
        assert_eq!(PasswordHash::parse(&phc).unwrap().to_phc(), phc);
    }

    #[test]
    fn known_answer_rfc7914() {
        // RFC 7914 §12, third vector: P = "pleaseletmein", S = "SodiumChloride",
        // N = 16384, r = 8, p = 1. Its 64-byte output starts with our 32 bytes
        // (PBKDF2 output blocks do not depend on the length asked for).
        let expect: [u8; 32] = [
            0x70, 0x23, 0xbd, 0xcb, 0x3a, 0xfd, 0x73, 0x48, 0x46, 0x1c, 0x06, 0xcd, 0x81, 0xfd,
            0x38, 0xeb, 0xfd, 0xa8, 0xfb, 0xba, 0x90, 0x4f, 0x8e, 0x3e, 0xa9, 0xb5, 0x43, 0xf6,
            0x54, 0x5d, 0xa1, 0xf2,
        ];
        let phc = format!(
            "$scrypt$ln=14,r=8,p=1${}${}",
            B64.encode(b"SodiumChloride"),
            B64.encode(expect)
        );
        assert!(verify_password("pleaseletmein", &phc).unwrap());
        assert!(!verify_password("pleaseletmeout", &phc).unwrap());
    }

    #[test]
    fn tampered_hash_strings_are_errors() {
        let phc = hash_password_with_cost("pw", LN).unwrap();
        let (head, hash) = phc.rsplit_once('$').unwrap();
        let salt = head.rsplit_once('$').unwrap().1;
        let bad = [
            phc.replacen("$scrypt$", "$argon2$", 1),
            phc.replacen("ln=10", "ln=1O", 1),
            phc.replacen("ln=10,r=8", "r=8,ln=10", 1),
            phc.replacen("ln=10", "ln=+10", 1),
            phc.replacen("ln=10", "ln=", 1),
            phc.replacen(",p=1", "", 1),
            phc.replacen(",p=1", ",p=1,x=2", 1),
            format!("{head}${}", &hash[..hash.len() - 2]), // truncated hash
            format!("{head}${hash}A"),                     // longer hash
            format!("{head}${hash}="),                     // padding
            format!("{head}$!{}", &hash[1..]),             // not base64
            phc.replacen(salt, "", 1),                     // no salt
            format!("{phc}$extra"),
            String::new(),
            "$scrypt$".to_owned(),
        ];
        for b in &bad {
            let e = verify_password("pw", b);
            assert!(e.is_err(), "accepted tampered {b:?}");
            if let Err(e) = e {
                assert!(!e.to_string().contains(hash), "error echoes the hash: {e}");
            }
        }
        // A changed hash byte is well-formed: it just does not match.
        let flipped = if hash.starts_with('A') { 'B' } else { 'A' };
        let other = format!("{head}${flipped}{}", &hash[1..]);
        assert!(!verify_password("pw", &other).unwrap());
    }

    #[test]
    fn cost_out_of_range_is_refused() {
        assert!(matches!(
            hash_password_with_cost("pw", 9),
            Err(UserError::CostOutOfRange(_))
        ));
        assert!(matches!(
            hash_password_with_cost("pw", 21),
            Err(UserError::CostOutOfRange(_))
        ));
        let phc = hash_password_with_cost("pw", LN).unwrap();
        for (from, to) in [
            ("ln=10", "ln=9"),
            ("ln=10", "ln=21"),
            ("ln=10", "ln=255"),
            ("ln=10", "ln=4294967295"),
            ("ln=10", "ln=9999999999999999999"),
            ("r=8", "r=4294967296"),
            ("r=8", "r=0"),
            ("r=8", "r=1000"),
            ("p=1", "p=0"),
            ("p=1", "p=99"),
        ] {
            let hostile = phc.replacen(from, to, 1);
            let started = std::time::Instant::now();
            assert!(
                matches!(
                    verify_password("pw", &hostile),
                    Err(UserError::CostOutOfRange(_))
                ),
                "{to}"
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }
        // ln=20 with r=32 needs 4 GiB: refused by the memory bound.
        assert!(matches!(
            verify_password("pw", &phc.replacen("ln=10,r=8", "ln=20,r=32", 1)),
            Err(UserError::CostOutOfRange(_))
        ));
        assert!(check_params(MAX_LN, DEFAULT_R, DEFAULT_P).is_ok());
    }

    #[test]
    fn new_passwords_are_checked() {
        assert!(matches!(
            hash_password_with_cost("", LN),
            Err(UserError::BadNewPassword(_))
        ));
        let long = "x".repeat(MAX_PASSWORD_LEN + 1);
        assert!(matches!(
            hash_password_with_cost(&long, LN),
            Err(UserError::BadNewPassword(_))
        ));
    }

    #[test]
    fn user_names() {
        for ok in ["alice", "a.b_c-d@example.org", &"x".repeat(64)] {
            assert!(check_user_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "a:b", "ä", &"x".repeat(65)] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_remove_list_save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/users.toml");
        // missing file = empty
        let mut db = UserDb::load(&path).unwrap();
        assert!(db.is_empty());
        db.set_hash_cost(LN).unwrap();
        db.add("DEFAULT", "alice", "pw-a").unwrap();
        db.add("DEFAULT", "bob", "pw-b").unwrap();
        db.add("lab", "alice", "pw-lab").unwrap();
        assert_eq!(db.len(), 3);
        db.save(&path).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "users file mode {mode:o}");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["users.toml"], "temp files left behind");

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[[user]]"), "{text}");
        assert!(
            text.contains("password = \"$scrypt$ln=10,r=8,p=1$"),
            "{text}"
        );

        let mut back = UserDb::load(&path).unwrap();
        let listed: Vec<String> = back
            .list()
            .map(|u| format!("{}/{}", u.hub(), u.name()))
            .collect();
        assert_eq!(listed, ["DEFAULT/alice", "DEFAULT/bob", "lab/alice"]);
        assert_eq!(
            back.authenticate("DEFAULT", "alice", "pw-a"),
            AuthResult::Ok
        );
        assert_eq!(
            back.authenticate("lab", "alice", "pw-a"),
            AuthResult::BadPassword
        );
        assert_eq!(back.authenticate("lab", "alice", "pw-lab"), AuthResult::Ok);

        assert!(back.remove("DEFAULT", "bob").unwrap());
        assert!(!back.remove("DEFAULT", "bob").unwrap());
        assert!(!back.remove("nohub", "bob").unwrap());
        back.save(&path).unwrap();
        let again = UserDb::load(&path).unwrap();
        assert_eq!(again.len(), 2);
        assert!(again.get("DEFAULT", "bob").is_none());
        // Saving over an existing file keeps mode 0600.
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn duplicates_refused_unless_replaced() {
        let mut db = cheap_db();
        db.add("DEFAULT", "alice", "one").unwrap();
        assert!(matches!(
            db.add("DEFAULT", "alice", "two"),
            Err(UserError::Duplicate { .. })
        ));
        assert_eq!(db.authenticate("DEFAULT", "alice", "one"), AuthResult::Ok);
        assert!(db.add_or_replace("DEFAULT", "alice", "two").unwrap());
        assert!(!db.add_or_replace("DEFAULT", "carol", "three").unwrap());
        assert_eq!(db.authenticate("DEFAULT", "alice", "two"), AuthResult::Ok);
        assert_eq!(
            db.authenticate("DEFAULT", "alice", "one"),
            AuthResult::BadPassword
        );
    }

    #[test]
    fn put_binds_certificates_and_replace_keeps_what_is_not_given() {
        let mut db = cheap_db();
        let fp: Fingerprint = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let cert_only = Login {
            cert_fingerprint: Some(fp),
            ..Login::default()
        };
        assert!(!db.put("DEFAULT", "bob", cert_only, false).unwrap());
        let bob = db.get("DEFAULT", "bob").unwrap();
        assert!(!bob.has_password());
        assert_eq!(bob.cert_fingerprint(), Some(&fp));
        // A user with no way to log in is refused.
        assert!(matches!(
            db.put("DEFAULT", "carol", Login::default(), false),
            Err(UserError::NoLogin { .. })
        ));
        assert!(db.get("DEFAULT", "carol").is_none());
        // Replace: a password added, the certificate kept; then a subject.
        assert!(db
            .put("DEFAULT", "bob", Login::password("pw"), true)
            .unwrap());
        let subject = Login {
            cert_subject: Some(" CN=bob ".into()),
            ..Login::default()
        };
        assert!(db.put("DEFAULT", "bob", subject, true).unwrap());
        let bob = db.get("DEFAULT", "bob").unwrap();
        assert_eq!(db.authenticate("DEFAULT", "bob", "pw"), AuthResult::Ok);
        assert_eq!(bob.cert_fingerprint(), Some(&fp));
        assert_eq!(bob.cert_subject(), Some("CN=bob"));
    }

    #[test]
    fn bad_names_refused_by_add() {
        let mut db = cheap_db();
        assert!(matches!(
            db.add("DEFAULT", "a b", "pw"),
            Err(UserError::InvalidName(_))
        ));
        assert!(matches!(
            db.add("bad hub", "a", "pw"),
            Err(UserError::InvalidHub(_))
        ));
        assert!(db.is_empty());
    }

    #[test]
    fn unknown_user_costs_a_scrypt_too() {
        let db = cheap_db();
        let started = std::time::Instant::now();
        assert_eq!(
            db.authenticate("DEFAULT", "nobody", "pw"),
            AuthResult::UnknownUser
        );
        // The dummy hash has the default cost: about as slow as a real check.
        let unknown = started.elapsed();
        let phc = hash_password("pw").unwrap();
        let started = std::time::Instant::now();
        verify_password("pw", &phc).unwrap();
        let real = started.elapsed();
        assert!(
            unknown * 3 > real,
            "unknown user {unknown:?} vs real check {real:?}"
        );
    }

    #[test]
    fn debug_and_display_never_show_the_hash() {
        let mut db = cheap_db();
        db.add("DEFAULT", "alice", "pw").unwrap();
        let u = db.get("DEFAULT", "alice").unwrap();
        let phc = u.password.as_ref().unwrap().to_phc();
        let (_, hash) = phc.rsplit_once('$').unwrap();
        let (head, _) = phc.rsplit_once('$').unwrap();
        let salt = head.rsplit_once('$').unwrap().1;
        for shown in [
            format!("{u:?}"),
            format!("{u}"),
            format!("{db:?}"),
            format!("{u:#?}"),
        ] {
            assert!(!shown.contains(hash), "{shown}");
            assert!(!shown.contains(salt), "{shown}");
            assert!(!shown.contains("$scrypt$"), "{shown}");
        }
        assert_eq!(format!("{u}"), "DEFAULT/alice (password)");
    }

    #[test]
    fn users_file_problems_have_lines() {
        let phc = hash_password_with_cost("pw", LN).unwrap();
        let text = format!(
            "[[user]]\nname = \"ok\"\nhub = \"DEFAULT\"\npassword = \"{phc}\"\n\
             [[user]]\nname = \"bad name\"\nhub = \"DEFAULT\"\npassword = \"{phc}\"\n\
             [[user]]\nname = \"x\"\nhub = \"DEFAULT\"\npassword = \"$scrypt$ln=30,r=8,p=1$AAAA$AAAA\"\n\
             [[user]]\nname = \"ok\"\nhub = \"DEFAULT\"\npassword = \"{phc}\"\n"
        );
        let e = UserDb::from_toml(&text, Path::new("users.toml"))
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(
            lines[0].starts_with("users.toml:6:8: user name \"bad name\""),
            "{e}"
        );
        assert!(
            lines[1].starts_with("users.toml:12:12: scrypt parameters out of range: ln=30"),
            "{e}"
        );
        assert!(
            lines[2].starts_with("users.toml:14:8: user \"ok\" already exists"),
            "{e}"
        );

        let e = UserDb::from_toml(
            "[[user]]\nname = \"a\"\nhub = \"h\"\npasswd = \"x\"\n",
            Path::new("u.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("u.toml:4:1: unknown field `passwd`"), "{e}");
    }

    #[test]
    fn config_users_are_merged_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let users_file = dir.path().join("users.toml");
        let mut file_db = cheap_db();
        file_db.add("lab", "alice", "file-pw").unwrap();
        file_db.save(&users_file).unwrap();

        let phc = hash_password_with_cost("config-pw", LN).unwrap();
        let text = format!(
            "users_file = {:?}\n[[hub]]\nname = \"lab\"\n[[hub.user]]\nname = \"bob\"\npassword = \"{phc}\"\n",
            users_file.display().to_string()
        );
        let config = Config::from_toml(&text).unwrap();
        let mut db = UserDb::load_with_config(&config).unwrap();
        db.set_hash_cost(LN).unwrap();
        assert_eq!(db.authenticate("lab", "alice", "file-pw"), AuthResult::Ok);
        assert_eq!(db.authenticate("lab", "bob", "config-pw"), AuthResult::Ok);
        assert_eq!(db.get("lab", "bob").unwrap().source(), UserSource::Config);
        assert!(matches!(
            db.remove("lab", "bob"),
            Err(UserError::DefinedInConfig { .. })
        ));
        assert!(matches!(
            db.add_or_replace("lab", "bob", "x"),
            Err(UserError::DefinedInConfig { .. })
        ));
        // Saving writes the file users only.
        db.add("lab", "carol", "pw").unwrap();
        db.save(&users_file).unwrap();
        let saved = UserDb::load(&users_file).unwrap();
        let names: Vec<&str> = saved.list().map(User::name).collect();
        assert_eq!(names, ["alice", "carol"]);

        // The same user in both places is an error.
        let text = format!(
            "users_file = {:?}\n[[hub]]\nname = \"lab\"\n[[hub.user]]\nname = \"alice\"\npassword = \"{phc}\"\n",
            users_file.display().to_string()
        );
        let config = Config::from_toml(&text).unwrap();
        assert!(matches!(
            UserDb::load_with_config(&config),
            Err(UserError::DefinedInConfig { .. })
        ));
    }

    #[test]
    fn certificate_only_user_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let fp = format!("sha256:{}", "0f".repeat(32));
        let text = format!("[[user]]\nname = \"dev\"\nhub = \"DEFAULT\"\ncert_fingerprint = \"{fp}\"\ncert_subject = \"CN=dev\"\n");
        std::fs::write(&path, text).unwrap();
        let db = UserDb::load(&path).unwrap();
        let u = db.get("DEFAULT", "dev").unwrap();
        assert_eq!(u.cert_fingerprint().unwrap().to_string(), fp);
        assert!(!u.has_password());
        // no password: refused after a dummy scrypt
        assert_eq!(
            db.authenticate("DEFAULT", "dev", ""),
            AuthResult::BadPassword
        );
        db.save(&path).unwrap();
        let back = UserDb::load(&path).unwrap();
        assert_eq!(back.get("DEFAULT", "dev"), db.get("DEFAULT", "dev"));
    }
}
