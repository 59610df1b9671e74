//! The real `vnic` binary as an operator's tool: JSON logs with the hub,
//! user and session, plain text without colour codes, `--version`, and the
//! hidden `generate man|completions` that the Debian package runs.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// Runs `vnic ARGS` to completion with no `VNIC_*` settings from the
/// environment: exit code, stdout, stderr (stderr a pipe, not a terminal).
fn vnic(args: &[&str]) -> (i32, String, String) {
    vnic_with(args, &[])
}

/// As [`vnic`], with `env` set.
fn vnic_with(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(vnic_bin());
    cmd.args(args).stdin(Stdio::null()).env_remove("NO_COLOR");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("VNIC_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run vnic");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    println!("$ vnic {}\n{o}{e}", args.join(" "));
    (out.status.code().unwrap_or(-1), o, e)
}

/// Every line of `log` as JSON, each with the fields every line has.
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    assert!(!log.trim().is_empty(), "no log at all");
    log.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nwhole log:\n{log}"));
            assert!(
                v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
                "{line}"
            );
            assert!(v["level"].is_string() && v["target"].is_string(), "{line}");
            assert!(v["fields"]["message"].is_string(), "{line}");
            v
        })
        .collect()
}

/// The first line whose message starts with `start`.
fn event<'a>(lines: &'a [serde_json::Value], start: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(start))
        })
        .unwrap_or_else(|| panic!("no {start:?} line in {lines:#?}"))
}

/// `vnic connect` that gets as far as opening its TAP device and fails
/// there, without root: `lo` exists and is no TAP device. With `VNIC_LOG`
/// at INFO: tracing's own lines too.
fn connect_to_lo(dir: &Path, format: &str) -> (i32, String) {
    let pw = dir.join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    let status = dir.join("status.json");
    let (code, _, err) = vnic_with(
        &[
            "connect",
            "https://127.0.0.1:9/DEFAULT",
            "--user",
            "alice",
            "--password-file",
            pw.to_str().unwrap(),
            "--tap",
            "lo",
            "--insecure",
            "--status-file",
            status.to_str().unwrap(),
            "--log-format",
            format,
        ],
        &[("VNIC_LOG", "info")],
    );
    (code, err)
}

#[test]
fn json_logs_of_a_failed_start_carry_the_hub_user_and_tap() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = connect_to_lo(dir.path(), "json");
    assert_eq!(code, 1, "{err}");
    let lines = json_lines(&err);
    let stopped = event(&lines, "stopped: ");
    assert_eq!(stopped["level"], "WARN", "{stopped}");
    assert_eq!(stopped["target"], "vnic", "{stopped}");
    let span = &stopped["span"];
    assert_eq!(span["name"], "vnic", "{stopped}");
    assert_eq!(span["hub"], "DEFAULT", "{stopped}");
    assert_eq!(span["url"], "https://127.0.0.1:9/DEFAULT", "{stopped}");
    assert_eq!(span["user"], "alice", "{stopped}");
    assert_eq!(span["tap"], "lo", "{stopped}");
    assert_eq!(span["relay"], "direct", "{stopped}");
    assert!(!err.contains("secret"), "the password was logged");
}

#[test]
fn bad_settings_are_json_too() {
    let (code, _, err) = vnic(&["--log-format", "json", "connect"]);
    assert_eq!(code, 2, "{err}");
    let lines = json_lines(&err);
    assert!(lines.iter().all(|v| v["level"] == "ERROR"), "{lines:#?}");
}

#[test]
fn the_text_log_to_a_pipe_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = connect_to_lo(dir.path(), "text");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("vnic: stopped: "), "{err}");
    // tracing's line of the same event (VNIC_LOG=info), not coloured either.
    assert!(
        err.lines()
            .any(|l| l.contains(" WARN ") && l.contains("stopped: ")),
        "{err}"
    );
    assert!(!err.contains("\x1b["), "{err:?}");
    assert!(
        err.lines().all(|l| !l.starts_with('{')),
        "JSON in text mode:\n{err}"
    );
}

#[test]
fn json_logs_of_a_session_carry_the_session_id_the_hub_logs() {
    if !require_root("json_logs_of_a_session_carry_the_session_id_the_hub_logs") {
        return;
    }
    let _lock = TestLock::take();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let a = Ns::new("jsonlog", 'a', 50, 1);
    let hub = Hub::start(dir.path(), &dir.path().join("certs"));
    let mut v = Vnic::start(
        &a,
        VnicOpts {
            hub_ip: a.host_ip,
            port: hub.port,
            hub: "DEFAULT",
            user: "alice",
            password_file: &pw,
            tap: "vnic0",
            ip: None,
            dir: dir.path(),
            extra: vec!["--log-format".into(), "json".into()],
        },
    );
    v.wait_connected(T);
    let status = v.proc.stop().expect("vnic stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    let log = v.proc.output();
    let lines = json_lines(&log);
    let url = format!("https://{}:{}/DEFAULT", a.host_ip, hub.port);
    let connecting = &event(&lines, "connecting to")["span"];
    assert_eq!(connecting["hub"], "DEFAULT", "{connecting}");
    assert_eq!(connecting["url"], url.as_str(), "{connecting}");
    assert_eq!(connecting["user"], "alice", "{connecting}");
    assert_eq!(connecting["tap"], "vnic0", "{connecting}");
    let connected = &event(&lines, "connected to")["span"];
    let session = connected["session"].as_str().expect("a session ID");
    assert!(
        session.len() == 8 && session.chars().all(|c| c.is_ascii_hexdigit()),
        "{connected}"
    );
    // The hub logged the same ID for this session.
    let hub_log = hub.log();
    assert!(
        hub_log
            .lines()
            .any(|l| l.contains("session established") && l.contains(session)),
        "{session} not in the hub's log:\n{hub_log}"
    );
    let closed = &event(&lines, "closed: ")["span"];
    assert_eq!(closed["session"], session, "{closed}");
}

#[test]
fn version_names_the_program_openssl_and_the_features() {
    let (code, out, err) = vnic(&["--version"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("vnic {}\n", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(out.contains("\nOpenSSL "), "{out}");
    let features = out
        .lines()
        .find(|l| l.starts_with("features: "))
        .unwrap_or_else(|| panic!("no features line:\n{out}"));
    for f in ["vendored-openssl", "legacy-ciphers"] {
        assert!(
            features.contains(&format!("+{f}")) || features.contains(&format!("-{f}")),
            "{f} not named:\n{out}"
        );
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn generate_man_pages_and_completions() {
    let (_, help, _) = vnic(&["--help"]);
    assert!(!help.contains("generate"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man/man1");
    let (code, _, err) = vnic(&["generate", "man", "--out", man.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let pages = names(&man);
    for page in ["vnic.1", "vnic-connect.1", "vnic-status.1"] {
        assert!(pages.iter().any(|p| p == page), "no {page} in {pages:?}");
    }
    assert!(
        pages
            .iter()
            .all(|p| p.starts_with("vnic") && p.ends_with(".1")),
        "{pages:?}"
    );
    assert!(
        !pages
            .iter()
            .any(|p| p.contains("generate") || p.contains("help")),
        "{pages:?}"
    );
    assert!(
        have("man"),
        "man is missing: install the Debian packages man-db and groff-base"
    );
    let out = std::process::Command::new("man")
        .arg("-l")
        .arg(man.join("vnic-connect.1"))
        .env("MANWIDTH", "80")
        .env_remove("MAN_KEEP_FORMATTING")
        .env_remove("MANPAGER")
        .env("PAGER", "cat")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in ["NAME", "SYNOPSIS", "OPTIONS", "--password-file", "VNIC_URL"] {
        assert!(text.contains(want), "no {want} in vnic-connect.1:\n{text}");
    }

    let comp = dir.path().join("completions");
    let (code, _, err) = vnic(&["generate", "completions", "--out", comp.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(names(&comp), ["_vnic", "vnic.bash", "vnic.fish"]);
    let bash = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p vnic",
            comp.join("vnic.bash").display()
        ))
        .output()
        .unwrap();
    assert!(
        bash.status.success(),
        "{}",
        String::from_utf8_lossy(&bash.stderr)
    );
    for file in ["_vnic", "vnic.fish"] {
        let text = std::fs::read_to_string(comp.join(file)).unwrap();
        for sub in ["connect", "status", "log-format"] {
            assert!(text.contains(sub), "{file} does not name {sub}");
        }
    }
}

/// Whether a program is on PATH.
fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}
