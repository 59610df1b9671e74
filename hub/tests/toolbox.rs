//! The real `vhub` binary as an operator's tool: JSON logs with the
//! session's fields, no colour codes in a file, `--version`, and the
//! hidden `generate man|completions` that the Debian package runs.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{free_addr, http_get, vhub, wait_for, Vhub};
use vhub_bench::client::{ClientError, TestClient};

const T: Duration = Duration::from_secs(10);

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A config with hub DEFAULT, certificates in `dir/state`, and alice's
/// password `correct horse` in the users file (added with `vhub user add`).
fn config_with_alice(dir: &Path, extra: &str) -> String {
    let config = dir.join("vhub.toml");
    write(
        &config,
        &format!("{extra}cert_dir = \"state\"\n[[hub]]\nname = \"DEFAULT\"\n"),
    );
    let pw = dir.join("pw");
    write(&pw, "correct horse\n");
    let cfg = config.to_str().unwrap().to_owned();
    let (code, out, err) = vhub(&[
        "user",
        "add",
        "alice",
        "--password-file",
        pw.to_str().unwrap(),
        "--config",
        &cfg,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    cfg
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
            assert!(
                ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                    .contains(&v["level"].as_str().unwrap_or("")),
                "{line}"
            );
            assert!(
                v["target"].as_str().is_some_and(|t| !t.is_empty()),
                "{line}"
            );
            assert!(v["fields"]["message"].is_string(), "{line}");
            v
        })
        .collect()
}

/// The one line whose message is `message`.
fn event<'a>(lines: &'a [serde_json::Value], message: &str) -> &'a serde_json::Value {
    let found: Vec<_> = lines
        .iter()
        .filter(|v| v["fields"]["message"] == message)
        .collect();
    assert_eq!(found.len(), 1, "{message:?} lines: {found:#?}");
    found[0]
}

#[test]
fn json_logs_carry_the_session_user_address_and_hub() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_alice(dir.path(), "");
    let mut hub = Vhub::spawn(&[
        "--config",
        &cfg,
        "--shards",
        "1",
        "--io-backend",
        "epoll",
        "--log-format",
        "json",
    ]);
    hub.wait_ready();
    let a = TestClient::connect(hub.listen, "DEFAULT", Some(("alice", "correct horse")))
        .expect("alice logs in");
    match TestClient::connect(hub.listen, "DEFAULT", Some(("alice", "wrong"))) {
        Err(ClientError::Refused(r)) => assert_eq!(r.status.0, 401),
        other => panic!("a wrong password: {:?}", other.err()),
    }
    a.close();
    assert!(
        wait_for(T, || hub.log().contains("\"session closed\"")),
        "no session closed line:\n{}",
        hub.log()
    );
    hub.signal(libc::SIGTERM);
    let status = hub.wait_exit(T).expect("vhub exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", hub.log());

    let lines = json_lines(&hub.log());
    let open = &event(&lines, "session established")["fields"];
    let session = open["session"].as_str().expect("session id");
    assert!(
        session.len() == 8 && session.chars().all(|c| c.is_ascii_hexdigit()),
        "{open}"
    );
    assert_eq!(open["user"], "alice", "{open}");
    assert_eq!(open["hub"], "DEFAULT", "{open}");
    let peer: SocketAddr = open["peer"].as_str().unwrap_or("").parse().expect("peer");
    assert!(peer.ip().is_loopback(), "{open}");

    let close = &event(&lines, "session closed")["fields"];
    assert_eq!(close["session"], session, "{close}");
    assert_eq!(close["user"], "alice", "{close}");
    assert_eq!(close["peer"], open["peer"], "{close}");

    let refused = &event(&lines, "authentication failed")["fields"];
    assert_eq!(refused["user"], "alice", "{refused}");
    assert_eq!(refused["hub"], "DEFAULT", "{refused}");
    assert!(refused["peer"].as_str().is_some(), "{refused}");
    assert!(
        !hub.log().contains("correct horse"),
        "the password was logged"
    );
}

#[test]
fn log_format_from_the_config_file_and_the_flag_wins() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_alice(dir.path(), "log_format = \"json\"\n");
    let (code, out, err) = vhub(&["check-config", &cfg]);
    assert_eq!(code, 0, "{out}{err}");

    let mut hub = Vhub::spawn(&["--config", &cfg, "--shards", "1", "--io-backend", "epoll"]);
    hub.wait_ready();
    let lines = json_lines(&hub.log());
    assert!(
        lines
            .iter()
            .any(|v| v["fields"]["message"] == "hub listening"),
        "{lines:#?}"
    );
    drop(hub);

    let mut hub = Vhub::spawn(&[
        "--config",
        &cfg,
        "--shards",
        "1",
        "--io-backend",
        "epoll",
        "--log-format",
        "text",
    ]);
    hub.wait_ready();
    let log = hub.log();
    assert!(log.contains("hub listening"), "{log}");
    assert!(
        log.lines().all(|l| !l.starts_with('{')),
        "--log-format text did not win over the file:\n{log}"
    );
}

#[test]
fn the_example_config_passes_with_and_without_log_format() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/vhub.example.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let line = "# log_format = \"text\"";
    assert!(text.contains(line), "the example does not show log_format");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("vhub.toml");
    write(&json, &text.replace(line, "log_format = \"json\""));
    for file in [Path::new(example), &json] {
        let (code, out, err) = vhub(&["check-config", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {out}{err}", file.display());
    }
}

#[test]
fn a_failed_start_is_a_json_line_too() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, metrics) = (free_addr(), free_addr());
    let (code, _, err) = vhub(&[
        "--log-format",
        "json",
        "--cert-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        &listen.to_string(),
        "--metrics-listen",
        &metrics.to_string(),
        "--io-backend",
        "kqueue",
    ]);
    assert_eq!(code, 1, "{err}");
    let lines = json_lines(&err);
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(
        last["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("kqueue")),
        "{last}"
    );
}

#[test]
fn an_unknown_log_format_is_refused_with_the_choices() {
    let (code, _, err) = vhub(&["--log-format", "xml", "check-config", "x.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("text") && err.contains("json"), "{err}");
}

#[test]
fn the_text_log_in_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_alice(dir.path(), "");
    let log_path = dir.path().join("hub.log");
    let (listen, metrics) = (free_addr(), free_addr());
    // As `vhub > hub.log 2>&1`: standard error is a file, NO_COLOR unset.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vhub"))
        .args(["--config", &cfg, "--shards", "1", "--io-backend", "epoll"])
        .args(["--listen", &listen.to_string()])
        .args(["--metrics-listen", &metrics.to_string()])
        .env_remove("NO_COLOR")
        .env_remove("VHUB_LOG_FORMAT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start vhub");
    let ready = wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect(metrics).is_ok() && http_get(metrics, "/readyz", &[]).0 == 200
    });
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(ready, "vhub did not get ready:\n{log}");
    assert!(
        log.contains("INFO") && log.contains("hub listening"),
        "{log}"
    );
    assert!(!log.contains("\x1b["), "colour codes in a file:\n{log:?}");
}

#[test]
fn version_names_the_program_openssl_and_the_features() {
    let (code, out, err) = vhub(&["--version"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("vhub {}\n", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(out.contains("\nOpenSSL "), "{out}");
    let features = out
        .lines()
        .find(|l| l.starts_with("features: "))
        .unwrap_or_else(|| panic!("no features line:\n{out}"));
    assert!(features.contains("+io_uring"), "{out}");
    for f in ["vendored-openssl", "legacy-ciphers"] {
        assert!(
            features.contains(&format!("+{f}")) || features.contains(&format!("-{f}")),
            "{f} not named:\n{out}"
        );
    }
    // -V stays short.
    let (_, out, _) = vhub(&["-V"]);
    assert_eq!(out, format!("vhub {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn generate_is_hidden_from_help() {
    let (code, out, _) = vhub(&["--help"]);
    assert_eq!(code, 0);
    assert!(!out.contains("generate"), "{out}");
}

fn page_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `man -l PAGE` as a person would read it (man-db, no man database needed).
fn render_man(page: &Path) -> String {
    assert!(
        common::have("man"),
        "man is missing: install the Debian packages man-db and groff-base"
    );
    let out = std::process::Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "80")
        .env_remove("MAN_KEEP_FORMATTING")
        .env_remove("MANPAGER")
        .env("PAGER", "cat")
        .output()
        .expect("run man");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "man -l {}: {}\n{text}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn generate_man_writes_a_page_per_subcommand_that_man_renders() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("not/yet/there");
    let (code, stdout, err) = vhub(&["generate", "man", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let names = page_names(&out);
    for page in [
        "vhub.1",
        "vhub-check-config.1",
        "vhub-user.1",
        "vhub-user-add.1",
        "vhub-cert-generate.1",
        "vhub-ctl.1",
        "vhub-ctl-sessions.1",
    ] {
        assert!(names.iter().any(|n| n == page), "no {page} in {names:?}");
    }
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("vhub") && n.ends_with(".1")),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains("generate.1") && !n.contains("cert")),
        "a page for the hidden subcommand: {names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
    // The paths written, one per line.
    assert_eq!(stdout.lines().count(), names.len(), "{stdout}");

    let text = render_man(&out.join("vhub.1"));
    for section in ["NAME", "SYNOPSIS", "OPTIONS"] {
        assert!(
            text.lines().any(|l| l.trim_end() == section),
            "no {section} section:\n{text}"
        );
    }
    for flag in ["--config", "--log-format", "VHUB_CONFIG"] {
        assert!(text.contains(flag), "{flag} not in vhub.1:\n{text}");
    }
    let add = render_man(&out.join("vhub-user-add.1"));
    assert!(add.contains("--password-file"), "{add}");
}

#[test]
fn generate_completions_for_bash_zsh_and_fish() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("completions");
    let (code, _, err) = vhub(&["generate", "completions", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(page_names(&out), ["_vhub", "vhub.bash", "vhub.fish"]);

    let bash = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p vhub",
            out.join("vhub.bash").display()
        ))
        .output()
        .expect("run bash");
    let said = String::from_utf8_lossy(&bash.stdout);
    assert!(
        bash.status.success() && said.contains("vhub"),
        "{said}{}",
        String::from_utf8_lossy(&bash.stderr)
    );
    for file in ["_vhub", "vhub.fish"] {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        for sub in ["check-config", "user", "cert", "ctl", "sessions"] {
            assert!(text.contains(sub), "{file} does not name {sub}");
        }
    }
    // Checked by the shells themselves where they are installed (not required).
    for (shell, args, file) in [
        ("zsh", ["-n"], "_vhub"),
        ("fish", ["--no-execute"], "vhub.fish"),
    ] {
        if common::have(shell) {
            let st = std::process::Command::new(shell)
                .args(args)
                .arg(out.join(file))
                .status()
                .unwrap();
            assert!(st.success(), "{shell} refuses {file}");
        }
    }
}

#[test]
fn generate_says_where_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    write(&file, "");
    let target = file.join("man");
    let (code, _, err) = vhub(&["generate", "man", "--out", target.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("vhub: cannot create the directory") && err.contains("a-file"),
        "{err}"
    );
}
