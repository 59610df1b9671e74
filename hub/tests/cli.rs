//! The real `vhub` binary: its subcommands, its config and users files, a
//! running hub that admits the users it was given, SIGTERM, and the I/O
//! backends.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{metric, vhub, wait_for, Vhub};
use switch_core::session::Event;
use switch_core::wire::CloseCode;
use vhub_bench::client::{frame, mac, ClientError, TestClient, BROADCAST};

const T: Duration = Duration::from_secs(10);

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn help_lists_the_subcommands() {
    let (code, out, _) = vhub(&["--help"]);
    assert_eq!(code, 0);
    for sub in ["check-config", "user", "cert"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(sub)),
            "--help does not list {sub}:\n{out}"
        );
    }
    for flag in [
        "--config",
        "--listen",
        "--cert-dir",
        "--io-backend",
        "--ciphers",
    ] {
        assert!(out.contains(flag), "--help does not show {flag}:\n{out}");
    }
    let (code, out, _) = vhub(&["user", "--help"]);
    assert_eq!(code, 0);
    for sub in ["add", "remove", "list"] {
        assert!(out.contains(sub), "{out}");
    }
    let (code, out, _) = vhub(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn check_config_accepts_a_good_file_and_lists_every_problem_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    write(
        &good,
        "name = \"lab\"\nlisten = \"0.0.0.0:8443\"\n[[hub]]\nname = \"office\"\n[[hub]]\nname = \"guests\"\nanonymous = true\n",
    );
    let (code, out, err) = vhub(&["check-config", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("OK") && out.contains("office") && out.contains("guests"),
        "{out}"
    );

    let bad = dir.path().join("bad.toml");
    write(
        &bad,
        "name = \"lab\"\nlisten = \"nowhere\"\nshards = 2\n\n[session]\nmax_frame = 9\n\n[[hub]]\nname = \"a/b\"\n",
    );
    let (code, out, err) = vhub(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    let f = bad.display().to_string();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "one line per problem:\n{err}");
    for (line, (row, what)) in lines
        .iter()
        .zip([(2, "listen"), (6, "max_frame"), (9, "name")])
    {
        let rest = line
            .strip_prefix(&format!("{f}:{row}:"))
            .unwrap_or_else(|| panic!("not FILE:{row}:COL: {line}"));
        let (col, msg) = rest.split_once(": ").expect("FILE:LINE:COL: message");
        assert!(col.parse::<u32>().is_ok(), "column in {line}");
        assert!(msg.contains(what), "{line}");
    }
    // A file that is not there.
    let (code, _, err) = vhub(&["check-config", "/nonexistent/vhub.toml"]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/vhub.toml"), "{err}");
}

#[test]
fn users_added_on_the_command_line_can_log_in_to_the_running_hub() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vhub.toml");
    let config_text = "cert_dir = \"state\"\n[[hub]]\nname = \"DEFAULT\"\n";
    write(&config, config_text);
    let pwfile = dir.path().join("pw");
    write(&pwfile, "correct horse battery\n");
    let cfg = config.to_str().unwrap();

    let (code, out, err) = vhub(&[
        "user",
        "add",
        "alice",
        "--hub",
        "DEFAULT",
        "--password-file",
        pwfile.to_str().unwrap(),
        "--config",
        cfg,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // Adding her twice is refused.
    let (code, _, err) = vhub(&[
        "user",
        "add",
        "alice",
        "--password-file",
        pwfile.to_str().unwrap(),
        "--config",
        cfg,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("alice"), "{err}");

    let (code, out, err) = vhub(&["user", "list", "--config", cfg]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().eq(["DEFAULT", "alice", "password"])),
        "{out}"
    );
    assert!(
        !out.contains("$scrypt$") && !err.contains("$scrypt$"),
        "a hash was shown"
    );
    // The hash is in the users file, the password nowhere; the config is untouched.
    let users = std::fs::read_to_string(dir.path().join("state/users.toml")).unwrap();
    assert!(users.contains("$scrypt$"), "{users}");
    assert!(!users.contains("correct horse"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), config_text);

    let mut hub = Vhub::spawn(&["--config", cfg, "--shards", "1", "--io-backend", "epoll"]);
    hub.wait_ready();
    let mut a = TestClient::connect(
        hub.listen,
        "DEFAULT",
        Some(("alice", "correct horse battery")),
    )
    .expect("alice logs in with her password");
    match TestClient::connect(hub.listen, "DEFAULT", Some(("alice", "wrong horse"))) {
        Err(ClientError::Refused(r)) => {
            assert_eq!((r.status.0, r.code.as_str()), (401, "auth-failed"))
        }
        other => panic!("wrong password: {:?}", other.err()),
    }
    match TestClient::connect(hub.listen, "DEFAULT", None) {
        Err(ClientError::Refused(r)) => assert_eq!(r.status.0, 401),
        other => panic!("anonymous: {:?}", other.err()),
    }
    a.send(&frame(BROADCAST, mac(1), b"logged in"));
    a.pump().unwrap();
    // The hub created its certificate in the configured directory.
    assert!(dir.path().join("state/ca.crt").exists());
    assert!(
        !hub.log().contains("correct horse"),
        "the password was logged"
    );
    drop(hub);

    // Removed users are gone from the list.
    let (code, _, err) = vhub(&["user", "remove", "alice", "--config", cfg]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = vhub(&["user", "list", "--config", cfg]);
    assert!(!out.contains("alice"), "{out}");
}

#[test]
fn cert_generate_and_cert_info() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("certs");
    let ds = d.to_str().unwrap();
    let (code, out, err) = vhub(&["cert", "generate", "--cert-dir", ds, "--dns", "hub.example"]);
    assert_eq!(code, 0, "{out}{err}");
    let fp = out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no fingerprint printed:\n{out}"))
        .to_owned();
    let key_mode = std::fs::metadata(d.join("ca.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600, "ca.key mode {key_mode:o}");
    let pem = std::fs::read(d.join("ca.crt")).unwrap();
    let cert = openssl::x509::X509::from_pem(&pem).unwrap();
    assert_eq!(certs::Fingerprint::of(&cert).to_string(), fp);

    let (code, out, err) = vhub(&["cert", "info", "--cert-dir", ds]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hub.example"), "{out}");
    assert!(out.contains(&fp), "{out}");

    // Without --force nothing is overwritten.
    let (code, _, err) = vhub(&["cert", "generate", "--cert-dir", ds]);
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(d.join("ca.crt")).unwrap(), pem);
    // With --force a new pair replaces it.
    let (code, out, _) = vhub(&["cert", "generate", "--cert-dir", ds, "--force"]);
    assert_eq!(code, 0);
    assert!(!out.contains(&fp), "same fingerprint after --force");
}

/// A config with an anonymous DEFAULT hub, certificates in the temp dir.
fn anonymous_config(dir: &Path) -> String {
    let config = dir.join("vhub.toml");
    write(
        &config,
        "cert_dir = \"state\"\n[[hub]]\nname = \"DEFAULT\"\nanonymous = true\n",
    );
    config.to_str().unwrap().to_owned()
}

#[test]
fn sigterm_closes_sessions_with_a_reason_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = anonymous_config(dir.path());
    let mut hub = Vhub::spawn(&["--config", &cfg, "--shards", "2"]);
    hub.wait_ready();
    let mut a = TestClient::connect(hub.listen, "DEFAULT", None).unwrap();
    let mut b = TestClient::connect(hub.listen, "DEFAULT", None).unwrap();
    a.send(&frame(BROADCAST, mac(1), b"before"));
    a.pump().unwrap();
    assert_eq!(b.recv_until(1, T), 1);

    hub.signal(libc::SIGTERM);
    for c in [&mut a, &mut b] {
        let closed = |c: &TestClient| {
            c.events.iter().find_map(|e| match e {
                Event::Closed {
                    code,
                    reason,
                    by_peer: true,
                } => Some((*code, reason.clone())),
                _ => None,
            })
        };
        let deadline = std::time::Instant::now() + T;
        while closed(c).is_none() && std::time::Instant::now() < deadline {
            if c.pump().is_err() {
                break;
            }
        }
        let (code, reason) = closed(c).expect("the client was told why");
        assert_eq!(code, CloseCode::Shutdown);
        assert!(reason.contains("shutting down"), "{reason}");
    }
    let status = hub.wait_exit(T).expect("vhub exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", hub.log());
    assert!(hub.log().contains("SIGTERM"), "{}", hub.log());
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(hub.listen).is_err());
}

#[test]
fn both_io_backends_serve_sessions_and_auto_says_which_it_chose() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = anonymous_config(dir.path());
    let uring = hub::net::uring::probe();
    for (flag, name) in [("uring", "io_uring"), ("epoll", "epoll"), ("auto", "")] {
        if flag == "uring" {
            if let Err(e) = &uring {
                test_support::skip_or_fail(
                    "both_io_backends_serve_sessions_and_auto_says_which_it_chose (--io-backend uring)",
                    &format!("io_uring is not available here: {e}"),
                );
                continue;
            }
        }
        let mut hub = Vhub::spawn(&["--config", &cfg, "--shards", "2", "--io-backend", flag]);
        hub.wait_ready();
        let mut a = TestClient::connect(hub.listen, "DEFAULT", None).unwrap();
        let mut b = TestClient::connect(hub.listen, "DEFAULT", None).unwrap();
        a.send(&frame(BROADCAST, mac(1), flag.as_bytes()));
        a.pump().unwrap();
        assert_eq!(b.recv_until(1, T), 1, "--io-backend {flag}");
        b.send(&frame(mac(1), mac(2), flag.as_bytes()));
        b.pump().unwrap();
        assert_eq!(a.recv_until(1, T), 1, "--io-backend {flag}");

        let log = hub.log();
        let chosen = match flag {
            "auto" => match &uring {
                Ok(()) => {
                    assert!(log.contains("I/O backend: io_uring (probed)"), "{log}");
                    "io_uring"
                }
                Err(_) => {
                    assert!(
                        log.contains("I/O backend: epoll (io_uring unavailable"),
                        "{log}"
                    );
                    "epoll"
                }
            },
            _ => {
                assert!(
                    log.contains(&format!("I/O backend: {name} (asked for)")),
                    "{log}"
                );
                name
            }
        };
        let (_, _, m) = common::http_get(hub.metrics, "/metrics", &[]);
        assert_eq!(
            metric(&m, &format!(r#"vhub_io_backend{{backend="{chosen}"}}"#)),
            1.0
        );
        assert!(wait_for(T, || {
            let (_, _, m) = common::http_get(hub.metrics, "/metrics", &[]);
            metric(&m, r#"vhub_frames_total{direction="in"}"#) == 2.0
        }));
    }
}

#[test]
fn an_unknown_io_backend_is_refused_with_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let mut hub = Vhub::spawn(&[
        "--cert-dir",
        certs.to_str().unwrap(),
        "--io-backend",
        "kqueue",
    ]);
    let status = hub.wait_exit(T).expect("vhub exits");
    assert!(!status.success());
    assert!(
        wait_for(Duration::from_secs(2), || {
            let log = hub.log();
            log.contains("kqueue") && log.contains("auto") && log.contains("epoll")
        }),
        "{}",
        hub.log()
    );
}

/// Shards are pinned one per CPU, but only to CPUs the hub may use: under
/// `taskset` (or systemd's `CPUAffinity=`) every shard stays inside the
/// given set, however many shards there are.
#[test]
fn shards_stay_on_the_cpus_the_hub_was_given() {
    let allowed: Vec<usize> = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|l| parse_cpu_list(l.trim()))
        .unwrap();
    // The last CPU this test may use: on a machine with more than one, not
    // CPU 0, where a shard numbered 0 would go if the set were ignored.
    let cpu = *allowed.last().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = anonymous_config(dir.path());
    let mut hub = Vhub::spawn_via(
        &["taskset", "-c", &cpu.to_string()],
        &["--config", &cfg, "--shards", "2"],
    );
    hub.wait_ready();
    let pid = hub.child.id();
    let mut shards = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap();
        if !comm.starts_with("shard-") {
            continue;
        }
        shards += 1;
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim();
        assert_eq!(
            parse_cpu_list(list),
            vec![cpu],
            "{} runs on CPUs {list}, outside the set it was given ({cpu})",
            comm.trim()
        );
    }
    assert_eq!(shards, 2, "both shard threads were found");
}

/// "0-2,5" → [0, 1, 2, 5].
fn parse_cpu_list(s: &str) -> Vec<usize> {
    s.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

/// `busy_poll` in the config file reaches the shards: after traffic they
/// poll, and the time is counted (0 while it is off, the default).
#[test]
fn busy_poll_from_the_config_file_makes_shards_poll_after_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vhub.toml");
    write(
        &config,
        "cert_dir = \"state\"\nbusy_poll = \"1ms\"\n[[hub]]\nname = \"DEFAULT\"\nanonymous = true\n",
    );
    let mut hub = Vhub::spawn(&["--config", config.to_str().unwrap(), "--shards", "1"]);
    hub.wait_ready();
    let polled = || {
        let (_, _, m) = common::http_get(hub.metrics, "/metrics", &[]);
        metric(&m, "vhub_busy_poll_seconds_total")
    };
    assert_eq!(polled(), 0.0, "no traffic yet, no polling");
    let mut a = TestClient::connect(hub.listen, "DEFAULT", None).unwrap();
    let mut b = TestClient::connect(hub.listen, "DEFAULT", None).unwrap();
    a.send(&frame(BROADCAST, mac(1), b"poll"));
    a.pump().unwrap();
    assert_eq!(b.recv_until(1, T), 1);
    assert!(
        wait_for(T, || polled() > 0.0),
        "the shard never polled: busy_poll did not reach it"
    );
}
