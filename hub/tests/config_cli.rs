//! The config and users files as the `vhub` binary's start-up and
//! `vhub config check` see them: through the library's public API, from
//! files on disk.

use std::path::Path;

use hub::config::Config;
use hub::users::{hash_password_with_cost, AuthResult, UserDb, MIN_LN};

const BAD: &str = r#"# a config with many mistakes
name = "lab"
listen = "0.0.0.0:443x"
io_backend = "kqueue"
shards = 2

[tls]
ciphers = "rc4-md5"

[session]
keepalive = "20s"
timeout = "15s"
max_frame = 9
max_batch = 10000
max_bufferd_frames = 100

[limits]
handshake_timeout = 10
max_sessions = 0

[[hub]]
name = "office"

[[hub]]
name = "office"

[[hub]]
name = "a/b"
"#;

#[test]
fn bad_config_reports_every_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vhub.toml");
    std::fs::write(&path, BAD).unwrap();
    let shown = Config::load(&path).unwrap_err().to_string();
    println!("{shown}");
    let f = path.display();
    let expect = [
        format!("{f}:3:10: listen: \"0.0.0.0:443x\" is not an address; write IP:PORT, e.g. \"0.0.0.0:8443\" or \"[::]:8443\""),
        format!("{f}:4:14: io_backend: unknown variant `kqueue`, expected one of `auto`, `uring`, `epoll`"),
        format!("{f}:8:1: tls.ciphers: the legacy preset \"rc4-md5\" needs tls.allow_legacy = true (and a build with the `legacy-ciphers` feature)"),
        format!("{f}:12:1: session.timeout: timeout (15s) must be longer than keepalive (20s), or a quiet but healthy link is declared dead"),
        format!("{f}:13:1: session.max_frame: 9 is out of range; allowed: 14 to 65600"),
        format!("{f}:14:1: session.max_batch: 10000 is out of range; allowed: 1 to 4096"),
        format!("{f}:15:1: session.max_bufferd_frames: unknown field `max_bufferd_frames`, expected one of `keepalive`, `timeout`, `detach_grace`, `max_frame`, `max_batch`, `max_buffered_frames`, `max_buffered_bytes`, `offload`"),
        format!("{f}:18:21: limits.handshake_timeout: a duration needs a unit: write \"10s\" or \"10ms\""),
        format!("{f}:19:1: limits.max_sessions: must be greater than 0"),
        format!("{f}:25:1: hub[1].name: duplicate hub name \"office\"; hub[0] has it already"),
        format!("{f}:28:1: hub[2].name: hub name \"a/b\" has the character '/'; use only A-Z a-z 0-9 . _ -"),
    ];
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines, expect, "\n{shown}");
}

#[test]
fn syntax_errors_are_reported_alone_with_positions() {
    let shown = Config::from_toml_named("name = \"x\n[session\nkeepalive = 5s\n", "v.toml")
        .unwrap_err()
        .to_string();
    println!("{shown}");
    assert!(shown.lines().count() >= 2, "{shown}");
    assert!(shown.lines().all(|l| l.starts_with("v.toml:")), "{shown}");
    assert!(shown.starts_with("v.toml:1:"), "{shown}");
}

#[test]
fn good_config_and_users_file_work_together() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("vhub.toml");
    std::fs::write(
        &config_path,
        "cert_dir = \"state\"\n[[hub]]\nname = \"DEFAULT\"\n[[hub]]\nname = \"guests\"\nanonymous = true\n",
    )
    .unwrap();
    let config = Config::load(&config_path).unwrap();
    assert_eq!(
        config.effective_users_file(),
        dir.path().join("state/users.toml")
    );

    // What `vhub user add` does: load, add, save (the config is untouched).
    let before = std::fs::read(&config_path).unwrap();
    let mut db = UserDb::load(&config.effective_users_file()).unwrap();
    db.set_hash_cost(MIN_LN).unwrap();
    db.add("DEFAULT", "alice", "s3cret").unwrap();
    db.save(&config.effective_users_file()).unwrap();
    assert_eq!(std::fs::read(&config_path).unwrap(), before);

    let db = UserDb::load_with_config(&config).unwrap();
    assert_eq!(
        db.authenticate("DEFAULT", "alice", "s3cret"),
        AuthResult::Ok
    );
    assert_eq!(
        db.authenticate("guests", "alice", "s3cret"),
        AuthResult::UnknownUser
    );
    assert!(Path::new(&config.effective_users_file()).exists());
    let _ = hash_password_with_cost; // part of the public API used by tools
}
