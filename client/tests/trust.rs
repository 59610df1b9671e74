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
        hub.metric("vhub_handshakes_total{result=\"auth_failed\"}"),
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
