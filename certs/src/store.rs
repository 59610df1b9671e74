//! `ca.crt` + `ca.key` on disk: loading, creating, writing.
//!
//! Files are written to a temporary file in the same directory (created
//! with its final mode, so a key is never readable by others even for an
//! instant), synced, and then moved into place; the directory is synced
//! afterwards. "Moved into place" is a `rename` when overwriting is wanted,
//! and a hard link when it is not, so that two processes creating the same
//! files at once cannot overwrite each other's key.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use openssl::pkey::PKey;
use openssl::x509::X509;

use crate::error::{crypto, io_err, openssl_reason, CertError};
use crate::identity::Identity;
use crate::{CertParams, CERT_FILE, KEY_FILE};

/// Loads `dir/ca.crt` and `dir/ca.key`, creating them first when both are
/// missing. Returns the identity and whether it was created.
///
/// When creating, `dir` is created with mode 0700 if it does not exist, and
/// the key is written with mode 0600. When exactly one of the two files
/// exists this fails and touches nothing: a lone certificate or key is
/// something a person put there, and generating a new pair over it would
/// silently change the hub's identity.
pub fn load_or_create(dir: &Path, params: &CertParams) -> Result<(Identity, bool), CertError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    match settled_state(&cert_path, &key_path)? {
        (true, true) => Ok((load(&cert_path, &key_path)?, false)),
        (true, false) => Err(CertError::MissingKey {
            cert: cert_path,
            key: key_path,
        }),
        (false, true) => Err(CertError::MissingCert {
            cert: cert_path,
            key: key_path,
        }),
        (false, false) => {
            let id = Identity::generate(params)?;
            match write_pair(dir, &id, false) {
                // Read back what is on disk, so the caller serves exactly that.
                Ok(()) => Ok((load(&cert_path, &key_path)?, true)),
                Err(CertError::AlreadyExists { .. }) => {
                    // Another process (a second hub on the same directory)
                    // created the pair between our check and our write. The
                    // key is installed first and never clobbered, so exactly
                    // one of us won: use the winner's pair.
                    match settled_state(&cert_path, &key_path)? {
                        (true, true) => Ok((load(&cert_path, &key_path)?, false)),
                        (_, false) => Err(CertError::MissingKey {
                            cert: cert_path,
                            key: key_path,
                        }),
                        (false, true) => Err(CertError::MissingCert {
                            cert: cert_path,
                            key: key_path,
                        }),
                    }
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// Which of the two files exist. When exactly one does, it may be another
/// process half way through creating the pair (it installs the key, then
/// the certificate, microseconds apart), so look again a few times before
/// reporting the half state as the user's doing.
fn settled_state(cert: &Path, key: &Path) -> Result<(bool, bool), CertError> {
    let mut state = (present(cert)?, present(key)?);
    for _ in 0..5 {
        if state.0 == state.1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        state = (present(cert)?, present(key)?);
    }
    Ok(state)
}

/// Loads a PEM certificate (optionally followed by its chain) and its PEM
/// private key, and checks that they belong together.
///
/// The key may be PKCS#8 (`BEGIN PRIVATE KEY`, as `openssl genpkey` and
/// `openssl req -newkey` write) or traditional (`BEGIN RSA PRIVATE KEY`,
/// `BEGIN EC PRIVATE KEY`). An encrypted key is refused rather than
/// prompted for. On Unix a key file with any group or other permission
/// bits is refused, as OpenSSH refuses one.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<Identity, CertError> {
    let cert_pem = fs::read(cert_path).map_err(io_err("read", cert_path))?;
    let (cert, chain) = parse_certs(cert_path, &cert_pem)?;

    let key_pem = read_private(key_path)?;
    let key = parse_key(key_path, &key_pem)?;

    let public = cert.public_key().map_err(|e| CertError::NotCertificate {
        path: cert_path.to_path_buf(),
        reason: format!("its public key cannot be read: {}", openssl_reason(&e)),
    })?;
    if !public.public_eq(&key) {
        return Err(CertError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    Ok(Identity { cert, key, chain })
}

/// Writes `dir/ca.crt` (certificate then chain) and `dir/ca.key` (PKCS#8,
/// mode 0600), for `vhub cert generate`.
///
/// Without `overwrite`, fails before writing anything if either file
/// exists. `dir` is created with mode 0700 if it does not exist.
pub fn write(dir: &Path, id: &Identity, overwrite: bool) -> Result<(), CertError> {
    write_pair(dir, id, overwrite)
}

fn write_pair(dir: &Path, id: &Identity, overwrite: bool) -> Result<(), CertError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);

    let public = id
        .cert
        .public_key()
        .map_err(crypto("read the public key"))?;
    if !public.public_eq(&id.key) {
        return Err(CertError::IdentityMismatch);
    }
    if !overwrite {
        for p in [&cert_path, &key_path] {
            if present(p)? {
                return Err(CertError::AlreadyExists { path: p.clone() });
            }
        }
    }

    let mut cert_pem = id.cert_pem();
    for c in &id.chain {
        cert_pem.extend(c.to_pem().map_err(crypto("encode the chain"))?);
    }
    let key_pem = id
        .key
        .private_key_to_pem_pkcs8()
        .map_err(crypto("encode the private key"))?;

    create_dir(dir)?;
    // Both temporary files first, so that a failure (disk full) leaves
    // neither final file behind.
    let key_tmp = TempFile::create(&key_path, &key_pem, 0o600)?;
    let cert_tmp = TempFile::create(&cert_path, &cert_pem, 0o644)?;
    key_tmp.install(overwrite)?;
    if let Err(e) = cert_tmp.install(overwrite) {
        if !overwrite {
            // The key we just linked is ours; without its certificate it
            // would block the next start. Best effort.
            let _ = fs::remove_file(&key_path);
        }
        return Err(e);
    }
    sync_dir(dir)
}

/// Whether something (even a dangling symlink) is at `path`.
fn present(path: &Path) -> Result<bool, CertError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("look for", path)(e)),
    }
}

/// The first certificate and the rest, from a PEM file.
fn parse_certs(path: &Path, pem: &[u8]) -> Result<(X509, Vec<X509>), CertError> {
    let not_cert = |reason: String| CertError::NotCertificate {
        path: path.to_path_buf(),
        reason,
    };
    let mut certs = X509::stack_from_pem(pem).map_err(|e| {
        not_cert(format!(
            "a CERTIFICATE block is damaged or is not X.509 (OpenSSL: {})",
            openssl_reason(&e)
        ))
    })?;
    if certs.is_empty() {
        return Err(not_cert(no_pem_block_reason(
            path,
            pem,
            "CERTIFICATE",
            "x509",
        )));
    }
    let cert = certs.remove(0);
    Ok((cert, certs))
}

fn parse_key(path: &Path, pem: &[u8]) -> Result<PKey<openssl::pkey::Private>, CertError> {
    // With no callback, OpenSSL would prompt on the terminal for the
    // passphrase of an encrypted key, hanging a daemon. Answer "no
    // passphrase" and remember that one was asked for.
    let mut asked = false;
    let parsed = PKey::private_key_from_pem_callback(pem, |_buf| {
        asked = true;
        Ok(0)
    });
    match parsed {
        Ok(k) => Ok(k),
        Err(_) if asked => Err(CertError::EncryptedKey {
            path: path.to_path_buf(),
        }),
        Err(e) => {
            let reason = if contains(pem, b"-----BEGIN") && contains(pem, b"PRIVATE KEY-----") {
                format!(
                    "the PRIVATE KEY block is damaged or of an unsupported type (OpenSSL: {})",
                    openssl_reason(&e)
                )
            } else {
                no_pem_block_reason(path, pem, "PRIVATE KEY", "pkey")
            };
            Err(CertError::NotPrivateKey {
                path: path.to_path_buf(),
                reason,
            })
        }
    }
}

/// Explains a file with no `-----BEGIN <label>-----` block, recognising the
/// usual mix-ups.
fn no_pem_block_reason(path: &Path, data: &[u8], label: &str, tool: &str) -> String {
    if data.iter().all(u8::is_ascii_whitespace) {
        "the file is empty".into()
    } else if data.first() == Some(&0x30) {
        // An ASN.1 SEQUENCE: almost certainly DER.
        format!(
            "it looks like binary DER; convert it with \
             `openssl {tool} -inform DER -in {p} -out {p}.pem`",
            p = path.display()
        )
    } else if label == "CERTIFICATE" && contains(data, b"PRIVATE KEY-----") {
        "it holds a private key but no certificate (are the two files swapped?)".into()
    } else if label != "CERTIFICATE" && contains(data, b"-----BEGIN CERTIFICATE-----") {
        "it holds a certificate but no private key (are the two files swapped?)".into()
    } else {
        format!("no \"-----BEGIN {label}-----\" block found")
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads a private key file, refusing it (on Unix) if its mode lets group
/// or others at it. The mode is taken from the opened file, so it is the
/// mode of what is read even if the path is swapped meanwhile.
fn read_private(path: &Path) -> Result<Vec<u8>, CertError> {
    let mut f = File::open(path).map_err(io_err("read", path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = f
            .metadata()
            .map_err(io_err("read", path))?
            .permissions()
            .mode()
            & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CertError::KeyPermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(io_err("read", path))?;
    Ok(buf)
}

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist.
pub(crate) fn create_dir(dir: &Path) -> Result<(), CertError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(io_err("create directory", dir))
}

/// Makes a rename or link in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CertError> {
    #[cfg(unix)]
    {
        let d = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(io_err("sync directory", d))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A fully written, synced temporary file next to its final path; removed on
/// drop unless installed.
pub(crate) struct TempFile {
    tmp: PathBuf,
    dest: PathBuf,
    installed: bool,
}

impl TempFile {
    /// Writes `contents` to a new file beside `dest`, created with `mode`
    /// (Unix; the umask may only remove bits), and syncs it.
    pub(crate) fn create(dest: &Path, contents: &[u8], mode: u32) -> Result<TempFile, CertError> {
        let dir = dest.parent().unwrap_or(Path::new(""));
        let name = dest
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let mut rnd = [0u8; 6];
        openssl::rand::rand_bytes(&mut rnd).map_err(crypto("make a random file name"))?;
        let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".{name}.tmp-{}-{suffix}", std::process::id()));

        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = opts.open(&tmp).map_err(io_err("create", &tmp))?;
        // From here on the drop guard removes the file on any failure.
        let t = TempFile {
            tmp,
            dest: dest.to_path_buf(),
            installed: false,
        };
        f.write_all(contents)
            .and_then(|()| f.sync_all())
            .map_err(io_err("write", &t.tmp))?;
        Ok(t)
    }

    /// Moves the file to its destination: replacing what is there when
    /// `overwrite`, else failing with `AlreadyExists` if anything is.
    pub(crate) fn install(mut self, overwrite: bool) -> Result<(), CertError> {
        if overwrite {
            fs::rename(&self.tmp, &self.dest).map_err(io_err("replace", &self.dest))?;
            self.installed = true;
            return Ok(());
        }
        // link(2) never replaces an existing file, unlike rename(2).
        match fs::hard_link(&self.tmp, &self.dest) {
            Ok(()) => Ok(()), // drop removes the temporary name
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(CertError::AlreadyExists {
                path: self.dest.clone(),
            }),
            // Some file systems (FAT, some FUSE and network mounts) have no
            // hard links: fall back to check-then-rename.
            Err(_) => {
                if present(&self.dest)? {
                    return Err(CertError::AlreadyExists {
                        path: self.dest.clone(),
                    });
                }
                fs::rename(&self.tmp, &self.dest).map_err(io_err("create", &self.dest))?;
                self.installed = true;
                Ok(())
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::KeyKind;
    use std::os::unix::fs::PermissionsExt;

    fn ec() -> CertParams {
        CertParams {
            key: KeyKind::EcP256,
            ..CertParams::default()
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(p: &Path, m: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    }

    /// Only the expected names, no leftover temporary files.
    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn load_or_create_creates_then_loads() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        let (a, created) = load_or_create(&dir, &CertParams::default()).unwrap();
        assert!(created);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(listing(&dir), [CERT_FILE, KEY_FILE]);
        assert_eq!(a.info().key, "RSA 2048");

        let (b, created) = load_or_create(&dir, &CertParams::default()).unwrap();
        assert!(!created);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert!(a.key.public_eq(&b.key));
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_pair() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        let results: Vec<(crate::Fingerprint, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        let (id, created) = load_or_create(&dir, &ec()).unwrap();
                        (id.fingerprint(), created)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let on_disk = load(&dir.join(CERT_FILE), &dir.join(KEY_FILE)).unwrap();
        assert!(results.iter().all(|(fp, _)| *fp == on_disk.fingerprint()));
        assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
        assert_eq!(listing(&dir), [CERT_FILE, KEY_FILE]);
    }

    #[test]
    fn existing_dir_keeps_its_mode() {
        let tmp = tempfile::tempdir().unwrap();
        chmod(tmp.path(), 0o755);
        let (_, created) = load_or_create(tmp.path(), &ec()).unwrap();
        assert!(created);
        assert_eq!(mode(tmp.path()), 0o755);
        assert_eq!(mode(&tmp.path().join(KEY_FILE)), 0o600);
    }

    #[test]
    fn only_cert_present_is_an_error_naming_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        load_or_create(tmp.path(), &ec()).unwrap();
        let key = tmp.path().join(KEY_FILE);
        fs::remove_file(&key).unwrap();
        let before = fs::read(tmp.path().join(CERT_FILE)).unwrap();

        let e = load_or_create(tmp.path(), &ec()).unwrap_err();
        assert!(matches!(e, CertError::MissingKey { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("key file {} is missing", key.display())),
            "{msg}"
        );
        assert!(msg.contains("remove both files"), "{msg}");
        // Nothing was regenerated or touched.
        assert_eq!(fs::read(tmp.path().join(CERT_FILE)).unwrap(), before);
        assert_eq!(listing(tmp.path()), [CERT_FILE]);
    }

    #[test]
    fn only_key_present_is_an_error_naming_the_cert() {
        let tmp = tempfile::tempdir().unwrap();
        load_or_create(tmp.path(), &ec()).unwrap();
        let cert = tmp.path().join(CERT_FILE);
        fs::remove_file(&cert).unwrap();
        let e = load_or_create(tmp.path(), &ec()).unwrap_err();
        assert!(matches!(e, CertError::MissingCert { .. }), "{e:?}");
        assert!(e
            .to_string()
            .contains(&format!("certificate file {} is missing", cert.display())));
        assert_eq!(listing(tmp.path()), [KEY_FILE]);
    }

    #[test]
    fn dangling_symlink_counts_as_present() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nonexistent/vhub-key", tmp.path().join(KEY_FILE)).unwrap();
        let e = load_or_create(tmp.path(), &ec()).unwrap_err();
        assert!(matches!(e, CertError::MissingCert { .. }), "{e:?}");
    }

    #[test]
    fn mismatched_pair_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        load_or_create(&a, &ec()).unwrap();
        load_or_create(&b, &ec()).unwrap();
        let e = load(&a.join(CERT_FILE), &b.join(KEY_FILE)).unwrap_err();
        assert!(matches!(e, CertError::KeyMismatch { .. }), "{e:?}");
        assert_eq!(
            e.to_string().split(" (").next().unwrap(),
            format!(
                "private key {} does not match certificate {}",
                b.join(KEY_FILE).display(),
                a.join(CERT_FILE).display()
            )
        );
    }

    #[test]
    fn group_readable_key_is_refused_with_chmod_advice() {
        let tmp = tempfile::tempdir().unwrap();
        load_or_create(tmp.path(), &ec()).unwrap();
        let key = tmp.path().join(KEY_FILE);
        for (m, word) in [
            (0o644, "readable"),
            (0o640, "readable"),
            (0o620, "writable"),
        ] {
            chmod(&key, m);
            let e = load_or_create(tmp.path(), &ec()).unwrap_err();
            assert!(matches!(e, CertError::KeyPermissions { .. }), "{e:?}");
            assert_eq!(
                e.to_string(),
                format!(
                    "private key {k} is {word} by group or others (mode {m:04o}): run chmod 600 {k}",
                    k = key.display()
                )
            );
        }
        chmod(&key, 0o400);
        load_or_create(tmp.path(), &ec()).unwrap();
    }

    #[test]
    fn garbage_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        load_or_create(tmp.path(), &ec()).unwrap();
        let cert = tmp.path().join(CERT_FILE);
        let key = tmp.path().join(KEY_FILE);
        let good_cert = fs::read(&cert).unwrap();
        let good_key = fs::read(&key).unwrap();

        let cases: [(&[u8], &str); 4] = [
            (
                b"hello world\n",
                "no \"-----BEGIN CERTIFICATE-----\" block found",
            ),
            (b"", "the file is empty"),
            (b"\x30\x82\x01\x00garbage", "binary DER"),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "a CERTIFICATE block is damaged",
            ),
        ];
        for (bytes, want) in cases {
            fs::write(&cert, bytes).unwrap();
            let e = load(&cert, &key).unwrap_err();
            assert!(matches!(e, CertError::NotCertificate { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("{} is not a PEM certificate: ", cert.display())),
                "{msg}"
            );
            assert!(msg.contains(want), "{msg}");
        }
        // The key where the certificate should be.
        fs::write(&cert, &good_key).unwrap();
        let e = load(&cert, &key).unwrap_err();
        assert!(e.to_string().contains("swapped"), "{e}");
        fs::write(&cert, &good_cert).unwrap();

        for (bytes, want) in [
            (
                &b"not a key"[..],
                "no \"-----BEGIN PRIVATE KEY-----\" block found",
            ),
            (
                &b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"[..],
                "the PRIVATE KEY block is damaged",
            ),
            (&good_cert[..], "swapped"),
        ] {
            fs::write(&key, bytes).unwrap();
            let e = load(&cert, &key).unwrap_err();
            assert!(matches!(e, CertError::NotPrivateKey { .. }), "{e:?}");
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    #[test]
    fn encrypted_key_is_refused_without_prompting() {
        let tmp = tempfile::tempdir().unwrap();
        let (id, _) = load_or_create(tmp.path(), &ec()).unwrap();
        let key = tmp.path().join(KEY_FILE);
        let enc = id
            .key
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_128_cbc(), b"secret")
            .unwrap();
        fs::write(&key, enc).unwrap();
        let e = load(&tmp.path().join(CERT_FILE), &key).unwrap_err();
        assert!(matches!(e, CertError::EncryptedKey { .. }), "{e:?}");
        assert!(e.to_string().contains("openssl pkey -in"), "{e}");
    }

    #[test]
    fn missing_and_unreadable_files_name_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let cert = tmp.path().join("nope.crt");
        let e = load(&cert, &tmp.path().join("nope.key")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot read {}: no such file or directory", cert.display())
        );

        // Permission bits do not stop root, so only check as a normal user.
        load_or_create(tmp.path(), &ec()).unwrap();
        let key = tmp.path().join(KEY_FILE);
        chmod(&key, 0o000);
        if File::open(&key).is_err() {
            let e = load_or_create(tmp.path(), &ec()).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("cannot read {}: permission denied", key.display())
            );
        } else {
            eprintln!("skipping the permission-denied check: running as root");
        }
    }

    #[test]
    fn write_refuses_to_overwrite_unless_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, _) = load_or_create(tmp.path(), &ec()).unwrap();
        let new = Identity::generate(&ec()).unwrap();

        let e = write(tmp.path(), &new, false).unwrap_err();
        assert!(matches!(e, CertError::AlreadyExists { .. }), "{e:?}");
        assert!(e.to_string().contains("refusing to overwrite"), "{e}");
        let (still, _) = load_or_create(tmp.path(), &ec()).unwrap();
        assert_eq!(still.fingerprint(), old.fingerprint());

        // Only the key left: still refused, still nothing written.
        fs::remove_file(tmp.path().join(CERT_FILE)).unwrap();
        assert!(matches!(
            write(tmp.path(), &new, false),
            Err(CertError::AlreadyExists { .. })
        ));
        assert_eq!(listing(tmp.path()), [KEY_FILE]);

        write(tmp.path(), &new, true).unwrap();
        let (now, created) = load_or_create(tmp.path(), &ec()).unwrap();
        assert!(!created);
        assert_eq!(now.fingerprint(), new.fingerprint());
        assert_eq!(mode(&tmp.path().join(KEY_FILE)), 0o600);
        assert_eq!(listing(tmp.path()), [CERT_FILE, KEY_FILE]);
    }

    #[test]
    fn write_keeps_the_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let mut id = Identity::generate(&ec()).unwrap();
        let extra = Identity::generate(&ec()).unwrap();
        id.chain.push(extra.cert.clone());
        write(&tmp.path().join("new"), &id, false).unwrap();
        let dir = tmp.path().join("new");
        assert_eq!(mode(&dir), 0o700);
        let back = load(&dir.join(CERT_FILE), &dir.join(KEY_FILE)).unwrap();
        assert_eq!(back.fingerprint(), id.fingerprint());
        assert_eq!(back.chain.len(), 1);
        assert_eq!(crate::Fingerprint::of(&back.chain[0]), extra.fingerprint());
    }

    #[test]
    fn write_refuses_a_mismatched_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let mut id = Identity::generate(&ec()).unwrap();
        id.key = Identity::generate(&ec()).unwrap().key;
        let e = write(tmp.path(), &id, true).unwrap_err();
        assert!(matches!(e, CertError::IdentityMismatch), "{e:?}");
        assert!(listing(tmp.path()).is_empty());
    }

    #[test]
    fn traditional_rsa_key_pem_loads() {
        // `BEGIN RSA PRIVATE KEY`, as OpenSSL 1.x `genrsa` and many tools write.
        let tmp = tempfile::tempdir().unwrap();
        let id = Identity::generate(&CertParams::default()).unwrap();
        let cert = tmp.path().join("c.pem");
        let key = tmp.path().join("k.pem");
        fs::write(&cert, id.cert_pem()).unwrap();
        let trad = id.key.rsa().unwrap().private_key_to_pem().unwrap();
        assert!(trad.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
        fs::write(&key, trad).unwrap();
        chmod(&key, 0o600);
        let back = load(&cert, &key).unwrap();
        assert_eq!(back.fingerprint(), id.fingerprint());
    }
}
