//! Interoperability with the `openssl` command-line tool: files it makes
//! load, files we make satisfy it, and both agree on fingerprints.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use certs::{CertError, CertParams, Fingerprint, KeyKind, CERT_FILE, KEY_FILE};

/// Runs `openssl args…`, returning stdout; panics with stderr on failure.
fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command-line tool must be installed to run these tests");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn chmod600(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// What `openssl x509 -noout -fingerprint -sha256` says, parsed.
fn cli_fingerprint(cert: &Path) -> Fingerprint {
    let line = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", p(cert)]);
    line.parse()
        .unwrap_or_else(|e| panic!("cannot parse {line:?}: {e}"))
}

/// `openssl req -x509 -newkey rsa:2048 -nodes` into `dir/ca.crt`, `dir/ca.key`.
fn cli_rsa_pair(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        p(&dir.join(KEY_FILE)),
        "-out",
        p(&dir.join(CERT_FILE)),
        "-subj",
        "/CN=test",
        "-days",
        "1",
    ]);
    // OpenSSL 3 already writes keys 0600; do not depend on it.
    chmod600(&dir.join(KEY_FILE));
}

#[test]
fn rsa_pair_from_openssl_req_loads_with_the_same_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    cli_rsa_pair(tmp.path());
    let cert = tmp.path().join(CERT_FILE);
    let key = tmp.path().join(KEY_FILE);

    let id = certs::load(&cert, &key).unwrap();
    assert_eq!(id.fingerprint(), cli_fingerprint(&cert));
    let info = id.info();
    assert_eq!(info.subject, "CN=test");
    assert_eq!(info.key, "RSA 2048");
    assert!(id.chain.is_empty());

    // The same files dropped into a certificate directory are used as they
    // are, not replaced.
    let (again, created) = certs::load_or_create(tmp.path(), &CertParams::default()).unwrap();
    assert!(!created);
    assert_eq!(again.fingerprint(), id.fingerprint());
}

#[test]
fn ec_pair_from_openssl_genpkey_loads_with_the_same_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("ec.key");
    let cert = tmp.path().join("ec.crt");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        p(&key),
    ]);
    openssl(&[
        "req",
        "-new",
        "-x509",
        "-key",
        p(&key),
        "-out",
        p(&cert),
        "-subj",
        "/CN=ec-test",
        "-days",
        "1",
    ]);
    chmod600(&key);
    assert!(fs::read_to_string(&key)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));

    let id = certs::load(&cert, &key).unwrap();
    assert_eq!(id.fingerprint(), cli_fingerprint(&cert));
    assert_eq!(id.info().key, "EC P-256");
    assert_eq!(id.info().subject, "CN=ec-test");

    // The same key in traditional `BEGIN EC PRIVATE KEY` form.
    let trad = tmp.path().join("ec-trad.key");
    openssl(&["ec", "-in", p(&key), "-out", p(&trad)]);
    chmod600(&trad);
    assert!(fs::read_to_string(&trad)
        .unwrap()
        .starts_with("-----BEGIN EC PRIVATE KEY-----"));
    assert_eq!(
        certs::load(&cert, &trad).unwrap().fingerprint(),
        id.fingerprint()
    );
}

#[test]
fn traditional_rsa_key_from_openssl_loads() {
    let tmp = tempfile::tempdir().unwrap();
    cli_rsa_pair(tmp.path());
    let trad = tmp.path().join("trad.key");
    openssl(&[
        "rsa",
        "-in",
        p(&tmp.path().join(KEY_FILE)),
        "-traditional",
        "-out",
        p(&trad),
    ]);
    chmod600(&trad);
    assert!(fs::read_to_string(&trad)
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let cert = tmp.path().join(CERT_FILE);
    let id = certs::load(&cert, &trad).unwrap();
    assert_eq!(id.fingerprint(), cli_fingerprint(&cert));
}

#[test]
fn mismatched_openssl_pair_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    cli_rsa_pair(&a);
    cli_rsa_pair(&b);
    let e = certs::load(&a.join(CERT_FILE), &b.join(KEY_FILE)).unwrap_err();
    assert!(matches!(e, CertError::KeyMismatch { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "private key {} does not match certificate {}",
            b.join(KEY_FILE).display(),
            a.join(CERT_FILE).display()
        )),
        "{msg}"
    );
}

#[test]
fn openssl_chain_file_keeps_the_extra_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    cli_rsa_pair(&a);
    cli_rsa_pair(&b);
    let mut bundle = fs::read(a.join(CERT_FILE)).unwrap();
    bundle.extend(fs::read(b.join(CERT_FILE)).unwrap());
    let bundle_path = tmp.path().join("bundle.crt");
    fs::write(&bundle_path, bundle).unwrap();

    let id = certs::load(&bundle_path, &a.join(KEY_FILE)).unwrap();
    assert_eq!(id.fingerprint(), cli_fingerprint(&a.join(CERT_FILE)));
    assert_eq!(id.chain.len(), 1);
    assert_eq!(
        Fingerprint::of(&id.chain[0]),
        cli_fingerprint(&b.join(CERT_FILE))
    );
}

#[test]
fn generated_certificate_satisfies_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let (id, created) = certs::load_or_create(tmp.path(), &CertParams::default()).unwrap();
    assert!(created);
    let cert = tmp.path().join(CERT_FILE);
    let key = tmp.path().join(KEY_FILE);
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    assert_eq!(id.fingerprint(), cli_fingerprint(&cert));

    let text = openssl(&["x509", "-noout", "-text", "-in", p(&cert)]);
    for want in [
        "Version: 3 (0x2)",
        "Signature Algorithm: sha256WithRSAEncryption",
        "Subject: CN = vhub",
        "Issuer: CN = vhub",
        "Public-Key: (2048 bit)",
        "X509v3 Basic Constraints: critical",
        "CA:TRUE",
        "X509v3 Key Usage: critical",
        "Digital Signature, Key Encipherment, Certificate Sign",
        "X509v3 Extended Key Usage",
        "TLS Web Server Authentication",
        "X509v3 Subject Key Identifier",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    // Trusted as its own CA, it verifies as a TLS server certificate for
    // the names it claims.
    let verify = openssl(&[
        "verify",
        "-CAfile",
        p(&cert),
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "localhost",
        p(&cert),
    ]);
    assert!(verify.contains(": OK"), "{verify}");
    let verify = openssl(&[
        "verify",
        "-CAfile",
        p(&cert),
        "-verify_ip",
        "127.0.0.1",
        p(&cert),
    ]);
    assert!(verify.contains(": OK"), "{verify}");

    // The key file is a plain PKCS#8 key that openssl accepts and checks.
    let check = openssl(&["pkey", "-in", p(&key), "-check", "-noout"]);
    assert!(check.contains("valid"), "{check}");
    // …and it belongs to the certificate.
    assert_eq!(
        openssl(&["pkey", "-in", p(&key), "-pubout"]),
        openssl(&["x509", "-in", p(&cert), "-noout", "-pubkey"])
    );
}

#[test]
fn generated_ec_certificate_satisfies_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let params = CertParams {
        key: KeyKind::EcP256,
        ..CertParams::default()
    };
    let (id, _) = certs::load_or_create(tmp.path(), &params).unwrap();
    let cert = tmp.path().join(CERT_FILE);
    assert_eq!(id.fingerprint(), cli_fingerprint(&cert));
    let text = openssl(&["x509", "-noout", "-text", "-in", p(&cert)]);
    assert!(text.contains("ecdsa-with-SHA256"), "{text}");
    assert!(text.contains("NIST CURVE: P-256"), "{text}");
    assert!(
        text.contains("Digital Signature, Certificate Sign"),
        "{text}"
    );
    let verify = openssl(&[
        "verify",
        "-CAfile",
        p(&cert),
        "-purpose",
        "sslserver",
        p(&cert),
    ]);
    assert!(verify.contains(": OK"), "{verify}");
}
