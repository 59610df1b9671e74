//! The users file: its TOML format, reading it with every problem at its
//! `FILE:LINE:COL`, writing it atomically (mode 0600), and merging the
//! users a config lists inline (`[[hub.user]]`) with those of the file.
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! hub = "DEFAULT"
//! password = "$scrypt$ln=15,r=8,p=1$…$…"
//! cert_fingerprint = "sha256:…"
//! cert_subject = "CN=alice"
//! softether_hash = "0e782dacdb78918d73007999da81bc408906d451"
//! ```
//!
//! A user needs at least one of `password`, `softether_hash`,
//! `cert_fingerprint` and `cert_subject`. `softether_hash` is SoftEther's
//! `SHA0(password ‖ UPPER(name))` in hex, only for users who log in from
//! SoftEther clients (`vhub user add --softether`); `vhub user add` keeps
//! it in step with `password`. A user with a `softether_hash` and no
//! `password` (say, moved from a SoftEther server) can log in from
//! SoftEther only.
//!
//! Only the users that came from the file are written back: the daemon
//! never writes the operator's config.

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine as _;
use certs::Fingerprint;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::hash::PasswordHash;
use super::softether::{parse_softether_hash, softether_hash_hex};
use super::store::UserDb;
use super::user::{check_hub, check_user_name, User, UserSource};
use super::UserError;
use crate::config::{Config, HubConfig, InlineUser, LineIndex};

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
    #[serde(default)]
    softether_hash: Option<Spanned<String>>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    softether_hash: Option<String>,
}

const FILE_HEADER: &str = "\
# vhub users, managed by `vhub user add` / `vhub user remove` (hand edits
# are fine). Keep this file readable by the hub's user only.
# password = scrypt hash: $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>
# softether_hash = SHA-0(password + upper-cased name), hex: SoftEther logins.
#   Fast and unsalted, and enough to log in from SoftEther: as secret as a
#   password (docs/SECURITY.md).
";

impl RawUser {
    /// Checks one `[[user]]` of the file, reporting each problem at the
    /// value at fault; `None` when there was any.
    fn into_user(self, report: &mut impl FnMut(Range<usize>, String)) -> Option<User> {
        let mut ok = true;
        let mut report = |span: Range<usize>, msg: String| {
            report(span, msg);
            ok = false;
        };
        if let Err(e) = check_user_name(self.name.get_ref()) {
            report(self.name.span(), e.to_string());
        }
        if let Err(e) = check_hub(self.hub.get_ref()) {
            report(self.hub.span(), e.to_string());
        }
        let password = match &self.password {
            Some(p) => match PasswordHash::parse(p.get_ref()) {
                Ok(h) => Some(h),
                Err(e) => {
                    report(p.span(), e.to_string());
                    None
                }
            },
            None => None,
        };
        let softether = match &self.softether_hash {
            Some(h) => match parse_softether_hash(h.get_ref()) {
                Ok(h) => Some(h),
                Err(e) => {
                    report(h.span(), e.to_string());
                    None
                }
            },
            None => None,
        };
        let cert_fingerprint = match &self.cert_fingerprint {
            Some(f) => match f.get_ref().parse::<Fingerprint>() {
                Ok(fp) => Some(fp),
                Err(e) => {
                    report(f.span(), e.to_string());
                    None
                }
            },
            None => None,
        };
        if self.password.is_none()
            && self.softether_hash.is_none()
            && self.cert_fingerprint.is_none()
            && self.cert_subject.is_none()
        {
            report(
                self.name.span(),
                "this user has no password, softether_hash, cert_fingerprint or cert_subject and can never log in"
                    .to_owned(),
            );
        }
        if !ok {
            return None;
        }
        Some(User {
            hub: self.hub.get_ref().clone(),
            name: self.name.get_ref().clone(),
            password,
            cert_fingerprint,
            cert_subject: self.cert_subject.map(Spanned::into_inner),
            softether,
            source: UserSource::File,
        })
    }
}

impl UserDb {
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
        let at = |span: Range<usize>| {
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
            let name_span = r.name.span();
            let checked =
                r.into_user(&mut |span, msg| problems.push(format!("{}: {msg}", at(span))));
            let Some(user) = checked else {
                continue;
            };
            if let Err(e) = db.insert(user, false) {
                problems.push(format!("{}: {e}", at(name_span)));
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
                    softether_hash: u.softether.as_ref().map(softether_hash_hex),
                })
                .collect(),
        };
        let body = toml::to_string(&out)?;
        let text = format!("{FILE_HEADER}\n{body}");
        write_atomic(path, text.as_bytes())
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
        // `[[hub.user]]` has no SoftEther hash (yet): such users log in
        // with vhub's protocol only.
        softether: None,
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
