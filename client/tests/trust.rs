//! Refusals that must stop `vnic` at once, with a clear message and a
//! non-zero exit, and never turn into a retry loop: a hub certificate that
//! changed (trust on first use), a pinned fingerprint that does not match,
//! a wrong password.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

fn opts<'a>(
    ns: &Ns,
    port: u16,
    pw: &'a std::path::Path,
    dir: &'a std::path::Path,
    extra: Vec<String>,
) -> VnicOpts<'a> {
    VnicOpts {
        hub_ip: ns.host_ip,
        port,
        hub: "DEFAULT",
        user: "alice",
        password_file: pw,
        tap: "vnic0",
        ip: None,
        dir,
        extra,
    }
}

#[test]
fn a_changed_certificate_and_a_wrong_pin_are_refused() {
    if !require_root("a_changed_certificate_and_a_wrong_pin_are_refused") {
        return;
    }
    let _lock = TestLock::take();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let a = Ns::new("trust", 'a', 6, 1);
    let known = dir.path().join("known_hubs");
    let tofu = || vec!["--known-hubs".to_string(), known.display().to_string()];

    // First contact: the fingerprint is printed and stored.
    let mut hub = Hub::start(dir.path(), &dir.path().join("certs-1"));
    let first_fp = hub.fingerprint();
    let mut v = Vnic::start(&a, opts(&a, hub.port, &pw, dir.path(), tofu()));
    v.wait_connected(T);
    assert!(v
        .proc
        .output()
        .contains(&format!("its certificate is {first_fp}")));
    let stored = std::fs::read_to_string(&known).unwrap();
    assert!(stored.contains(&first_fp), "known hubs: {stored}");
    // SIGTERM: a clean exit 0.
    let status = v.proc.stop().expect("vnic stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    drop(v);

    // The same address now presents another certificate.
    let port = hub.port;
    hub.crash();
    let hub2 = Hub::start_on(dir.path(), &dir.path().join("certs-2"), port);
    let second_fp = hub2.fingerprint();
    assert_ne!(first_fp, second_fp);
    let mut v = Vnic::start(&a, opts(&a, port, &pw, dir.path(), tofu()));
    let status = v.proc.wait_exit(T).expect("vnic gives up at once");
    let out = v.proc.output();
    eprintln!("{out}");
    assert_eq!(
        status.code(),
        Some(4),
        "exit code for an untrusted hub:\n{out}"
    );
    assert!(out.contains("has changed"), "{out}");
    assert!(
        out.contains(&first_fp) && out.contains(&second_fp),
        "both fingerprints:\n{out}"
    );
    assert!(
        out.contains("--pin"),
        "says how to accept it on purpose:\n{out}"
    );
    assert_eq!(
        out.matches("connecting to").count(),
        1,
        "a changed certificate is never retried:\n{out}"
    );
    drop(v);

    // A wrong pin is refused the same way; the right one works.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let mut v = Vnic::start(
        &a,
        opts(
            &a,
            port,
            &pw,
            dir.path(),
            vec!["--pin".into(), wrong.clone()],
        ),
    );
    let status = v.proc.wait_exit(T).expect("vnic gives up at once");
    let out = v.proc.output();
    eprintln!("{out}");
    assert_eq!(status.code(), Some(4), "{out}");
    assert!(
        out.contains("not the pinned one") && out.contains(&wrong) && out.contains(&second_fp),
        "{out}"
    );
    drop(v);
    let v = Vnic::start(
        &a,
        opts(&a, port, &pw, dir.path(), vec!["--pin".into(), second_fp]),
    );
    v.wait_connected(T);
}

#[test]
fn a_wrong_password_is_tried_exactly_once() {
    if !require_root("a_wrong_password_is_tried_exactly_once") {
        return;
    }
    let _lock = TestLock::take();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-pw");
    std::fs::write(&bad, "not the password\n").unwrap();
    let a = Ns::new("auth", 'a', 7, 1);
    let hub = Hub::start(dir.path(), &dir.path().join("certs"));
    let mut v = Vnic::start(&a, opts(&a, hub.port, &bad, dir.path(), vec![]));
    let status = v.proc.wait_exit(T).expect("vnic gives up");
    let out = v.proc.output();
    eprintln!("{out}");
    assert_eq!(status.code(), Some(3), "exit code for a refusal:\n{out}");
    assert!(out.contains("401") && out.contains("not retrying"), "{out}");
    // Give a stray second attempt time to show up, then count.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        hub.metric("vhub_handshakes_total{result=\"auth_failed\"}")
            .unwrap(),
        1.0,
        "the hub saw more than one attempt:\n{}",
        hub.log()
    );
}

#[test]
fn max_retries_bounds_the_attempts() {
    if !require_root("max_retries_bounds_the_attempts") {
        return;
    }
    let _lock = TestLock::take();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let a = Ns::new("retry", 'a', 12, 1);
    // Nothing listens there: every attempt is refused at once.
    let port = free_port();
    let extra = vec![
        "--max-retries".to_string(),
        "2".into(),
        "--max-backoff".into(),
        "300ms".into(),
    ];
    let mut v = Vnic::start(&a, opts(&a, port, &pw, dir.path(), extra));
    let status = v.proc.wait_exit(T).expect("vnic gives up");
    let out = v.proc.output();
    eprintln!("{out}");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("giving up after 3 failed attempt(s)"), "{out}");
    assert_eq!(out.matches("connection refused").count(), 3, "{out}");
}

/// A self-signed client certificate and its key (0600), made by the
/// `openssl` CLI.
fn client_cert(dir: &std::path::Path, name: &str, subject: &str) -> (String, String) {
    use std::os::unix::fs::PermissionsExt;
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", subject, "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (crt.display().to_string(), key.display().to_string())
}

#[test]
fn a_client_certificate_logs_in_and_a_foreign_one_is_refused() {
    if !require_root("a_client_certificate_logs_in_and_a_foreign_one_is_refused") {
        return;
    }
    require_tool("openssl", "openssl");
    let _lock = TestLock::take();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (carol_crt, carol_key) = client_cert(d, "carol", "/CN=carol");
    // Same subject, another key, not issued by the hub's client CA.
    let (mallory_crt, mallory_key) = client_cert(d, "mallory", "/CN=carol");
    let fp = certs::load(carol_crt.as_ref(), carol_key.as_ref())
        .unwrap()
        .fingerprint();
    // The hub trusts carol's (self-signed) certificate as its client CA,
    // and binds the user carol to its fingerprint.
    let hub = Hub::start_custom(
        d,
        &d.join("certs"),
        free_port(),
        "",
        &format!("[tls]\nclient_ca = \"{carol_crt}\"\n"),
        &format!("\n[[user]]\nname = \"carol\"\nhub = \"DEFAULT\"\ncert_fingerprint = \"{fp}\"\n"),
    );
    let a = Ns::new("ccert", 'a', 8, 1);
    let no_pw = d.join("unused");
    let with = |crt: &str, key: &str, tap: &'static str| VnicOpts {
        user: "",
        tap,
        ..opts(
            &a,
            hub.port,
            &no_pw,
            d,
            vec!["--cert".into(), crt.into(), "--key".into(), key.into()],
        )
    };
    // No password anywhere: the certificate is the login.
    let mut v = Vnic::start(&a, with(&carol_crt, &carol_key, "vnic0"));
    v.wait_connected(T);
    assert!(
        hub.log().contains("user=carol"),
        "the session is carol's:\n{}",
        hub.log()
    );
    v.proc.stop();
    // A certificate the client CA did not issue: refused once, for good.
    let mut m = Vnic::start(&a, with(&mallory_crt, &mallory_key, "vnic1"));
    let status = m.proc.wait_exit(T).expect("vnic gives up");
    let out = m.proc.output();
    assert_eq!(status.code(), Some(3), "exit code for a refusal:\n{out}");
    assert!(
        out.contains("401") && out.contains("client certificate was not accepted"),
        "{out}"
    );
    assert!(out.contains("check --cert and --key"), "{out}");
}
