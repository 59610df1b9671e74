//! Trust on first use: the client's `known_hubs` file.
//!
//! ```text
//! # vnic known hubs: host:port and the SHA-256 of the hub's certificate
//! hub.example:443 sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! [2001:db8::1]:8443 sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
//! ```
//!
//! One entry per line, `host:port` then the fingerprint, separated by white
//! space; `#` comments and blank lines are kept as they are when the file is
//! rewritten. Host names compare case-insensitively.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{io_err, CertError};
use crate::store::{create_dir, sync_dir, TempFile};
use crate::Fingerprint;

/// What [`KnownHubs::check`] concludes about a hub's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustDecision {
    /// This hub is recorded with this fingerprint: trust it.
    Known,
    /// This hub is not recorded: ask the user, or trust and [`add`](KnownHubs::add) it.
    Unknown,
    /// This hub is recorded with a different fingerprint: refuse, and tell
    /// the user — the hub's certificate was replaced, or someone is in the
    /// middle.
    Changed {
        /// The fingerprint on record.
        stored: Fingerprint,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Line {
    /// A comment or blank line, kept verbatim.
    Text(String),
    Entry {
        host_port: String,
        fp: Fingerprint,
    },
}

/// The contents of a known-hubs file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownHubs {
    lines: Vec<Line>,
}

impl KnownHubs {
    /// An empty list.
    pub fn new() -> KnownHubs {
        KnownHubs::default()
    }

    /// Reads a known-hubs file; a missing file is an empty list. Any line
    /// that is neither a comment nor a valid entry is an error naming its
    /// number: a silently skipped entry would turn into a trust prompt.
    pub fn load(path: &Path) -> Result<KnownHubs, CertError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(KnownHubs::new()),
            Err(e) => return Err(io_err("read", path)(e)),
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            syntax(path, line, "not UTF-8 text".into())
        })?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<KnownHubs, CertError> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                lines.push(Line::Text(raw.to_owned()));
                continue;
            }
            let mut fields = t.split_whitespace();
            let (Some(host_port), Some(fp), None) = (fields.next(), fields.next(), fields.next())
            else {
                let why = if t.split_whitespace().count() == 1 {
                    "no fingerprint after the address"
                } else {
                    "extra text after the fingerprint"
                };
                return Err(syntax(path, i + 1, why.into()));
            };
            if !valid_host_port(host_port) {
                return Err(syntax(
                    path,
                    i + 1,
                    format!("{host_port:?} is not host:port"),
                ));
            }
            let fp = fp.parse::<Fingerprint>().map_err(|e| {
                syntax(
                    path,
                    i + 1,
                    format!("bad fingerprint {:?}: {}", fp, e.reason),
                )
            })?;
            lines.push(Line::Entry {
                host_port: host_port.to_owned(),
                fp,
            });
        }
        Ok(KnownHubs { lines })
    }

    /// Compares `fp` with what is recorded for `host_port` (`host:port`, as
    /// the client dials it; IPv6 in brackets).
    pub fn check(&self, host_port: &str, fp: &Fingerprint) -> TrustDecision {
        let mut stored = None;
        for (h, f) in self.entries() {
            if h.eq_ignore_ascii_case(host_port) {
                if f == fp {
                    return TrustDecision::Known;
                }
                stored.get_or_insert(*f);
            }
        }
        match stored {
            Some(stored) => TrustDecision::Changed { stored },
            None => TrustDecision::Unknown,
        }
    }

    /// Records `fp` for `host_port`, replacing any entry for it (in place,
    /// so the file keeps its order). The address is checked by
    /// [`save`](KnownHubs::save).
    pub fn add(&mut self, host_port: &str, fp: Fingerprint) {
        let mut placed = false;
        self.lines.retain_mut(|l| match l {
            Line::Entry {
                host_port: h,
                fp: f,
            } if h.eq_ignore_ascii_case(host_port) => {
                if placed {
                    return false; // a duplicate
                }
                placed = true;
                *h = host_port.to_owned();
                *f = fp;
                true
            }
            _ => true,
        });
        if !placed {
            self.lines.push(Line::Entry {
                host_port: host_port.to_owned(),
                fp,
            });
        }
    }

    /// Forgets `host_port`; returns whether it was recorded.
    pub fn remove(&mut self, host_port: &str) -> bool {
        let before = self.lines.len();
        self.lines.retain(
            |l| !matches!(l, Line::Entry { host_port: h, .. } if h.eq_ignore_ascii_case(host_port)),
        );
        self.lines.len() != before
    }

    /// The recorded hubs, in file order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Fingerprint)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { host_port, fp } => Some((host_port.as_str(), fp)),
            Line::Text(_) => None,
        })
    }

    /// Writes the file atomically (temporary file, sync, rename), creating
    /// missing parent directories with mode 0700.
    pub fn save(&self, path: &Path) -> Result<(), CertError> {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Text(t) => out.push_str(t),
                Line::Entry { host_port, fp } => {
                    if !valid_host_port(host_port) {
                        return Err(CertError::InvalidHostPort {
                            host_port: host_port.clone(),
                        });
                    }
                    out.push_str(&format!("{host_port} {fp}"));
                }
            }
            out.push('\n');
        }
        let dir = path.parent().unwrap_or(Path::new(""));
        create_dir(dir)?;
        TempFile::create(path, out.as_bytes(), 0o644)?.install(true)?;
        sync_dir(dir)
    }
}

/// `host:port` with a non-empty host, a numeric port, and nothing that
/// would break the line format.
fn valid_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && port.parse::<u16>().is_ok()
        && !s.contains('#')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn syntax(path: &Path, line: usize, reason: String) -> CertError {
    CertError::KnownHubsSyntax {
        path: PathBuf::from(path),
        line,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(b: u8) -> Fingerprint {
        Fingerprint([b; 32])
    }

    #[test]
    fn unknown_add_save_load_known() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/known_hubs");
        let mut k = KnownHubs::load(&path).unwrap();
        assert_eq!(k.check("hub.example:443", &fp(1)), TrustDecision::Unknown);

        k.add("hub.example:443", fp(1));
        k.add("[2001:db8::1]:8443", fp(2));
        k.save(&path).unwrap();

        let k = KnownHubs::load(&path).unwrap();
        assert_eq!(k.check("hub.example:443", &fp(1)), TrustDecision::Known);
        assert_eq!(k.check("HUB.example:443", &fp(1)), TrustDecision::Known);
        assert_eq!(k.check("[2001:db8::1]:8443", &fp(2)), TrustDecision::Known);
        assert_eq!(k.check("hub.example:444", &fp(1)), TrustDecision::Unknown);
        assert_eq!(
            k.check("hub.example:443", &fp(9)),
            TrustDecision::Changed { stored: fp(1) }
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("hub.example:443 {}\n[2001:db8::1]:8443 {}\n", fp(1), fp(2))
        );
        let names: Vec<String> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["known_hubs"], "no temporary files left behind");
    }

    #[test]
    fn add_replaces_in_place_and_comments_survive() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("known_hubs");
        let original = format!(
            "# my hubs\n\none:1 {}\n  # indented comment\ntwo:2 {}\none:1 {}\n",
            fp(1),
            fp(2),
            fp(3)
        );
        fs::write(&path, &original).unwrap();
        let mut k = KnownHubs::load(&path).unwrap();
        // Any recorded fingerprint for the host is accepted, like ssh.
        assert_eq!(k.check("one:1", &fp(3)), TrustDecision::Known);
        assert_eq!(
            k.check("one:1", &fp(4)),
            TrustDecision::Changed { stored: fp(1) }
        );

        k.add("ONE:1", fp(5));
        k.save(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!(
                "# my hubs\n\nONE:1 {}\n  # indented comment\ntwo:2 {}\n",
                fp(5),
                fp(2)
            )
        );

        let mut k = KnownHubs::load(&path).unwrap();
        assert!(k.remove("two:2"));
        assert!(!k.remove("two:2"));
        assert_eq!(k.entries().count(), 1);
    }

    #[test]
    fn fingerprints_in_other_forms_are_read() {
        let hex: String = fp(0xab).0.iter().map(|b| format!("{b:02X}")).collect();
        let colons: Vec<String> = fp(0xab).0.iter().map(|b| format!("{b:02X}")).collect();
        let text = format!("a:1 {hex}\nb:2\t{}\r\n", colons.join(":"));
        let k = KnownHubs::parse(Path::new("kh"), &text).unwrap();
        assert_eq!(k.check("a:1", &fp(0xab)), TrustDecision::Known);
        assert_eq!(k.check("b:2", &fp(0xab)), TrustDecision::Known);
    }

    #[test]
    fn malformed_lines_name_the_line_number() {
        let good = format!("# c\nok:1 {}\n", fp(1));
        let cases = [
            ("hub.example:443\n", "no fingerprint"),
            (&format!("hub:443 {} extra\n", fp(1)) as &str, "extra text"),
            (&format!("hub {}\n", fp(1)), "\"hub\" is not host:port"),
            (&format!("hub:http {}\n", fp(1)), "is not host:port"),
            (&format!(":443 {}\n", fp(1)), "is not host:port"),
            ("hub:443 sha256:1234\n", "bad fingerprint \"sha256:1234\""),
        ];
        for (bad, want) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("known_hubs");
            fs::write(&path, format!("{good}{bad}")).unwrap();
            let e = KnownHubs::load(&path).unwrap_err();
            assert!(
                matches!(e, CertError::KnownHubsSyntax { line: 3, .. }),
                "{e:?}"
            );
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("{} line 3: ", path.display())),
                "{msg}"
            );
            assert!(msg.contains(want), "{msg}");
            assert!(msg.contains("fix or delete that line"), "{msg}");
        }
    }

    #[test]
    fn non_utf8_names_the_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("known_hubs");
        fs::write(&path, b"# ok\n# ok\nhub:1 \xff\n").unwrap();
        let e = KnownHubs::load(&path).unwrap_err();
        assert!(
            matches!(e, CertError::KnownHubsSyntax { line: 3, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn save_refuses_an_address_that_would_corrupt_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("known_hubs");
        for bad in ["two words:1", "hub:1#x", "noport", "hub:99999"] {
            let mut k = KnownHubs::new();
            k.add(bad, fp(1));
            let e = k.save(&path).unwrap_err();
            assert!(
                matches!(e, CertError::InvalidHostPort { .. }),
                "{bad}: {e:?}"
            );
        }
        assert!(!path.exists());
    }

    #[test]
    fn unreadable_file_is_an_error_not_empty() {
        let tmp = tempfile::tempdir().unwrap();
        // A directory where the file should be.
        let e = KnownHubs::load(tmp.path()).unwrap_err();
        assert!(matches!(e, CertError::Io { op: "read", .. }), "{e:?}");
    }
}
