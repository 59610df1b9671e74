//! Tests of the whole module, mostly through [`Config::from_toml`]: the
//! errors a person sees are the contract, so most tests check them whole,
//! positions included.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn errors(text: &str) -> String {
    Config::from_toml_named(text, "vhub.toml")
        .expect_err("config should be refused")
        .to_string()
}

const SAMPLE_HASH: &str =
    "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[test]
fn empty_file_is_default() {
    assert_eq!(Config::from_toml("").unwrap(), Config::default());
    assert_eq!(
        Config::from_toml("# only a comment\n").unwrap(),
        Config::default()
    );
    assert!(Config::default().validate().is_empty());
}

#[test]
fn documented_defaults_written_out_equal_default() {
    let text = r#"
name = "vhub"
listen = "0.0.0.0:8443"
metrics_listen = "127.0.0.1:9750"
shards = 0
io_backend = "auto"
log_format = "text"
[tls]
ciphers = "default"
allow_legacy = false
[session]
keepalive = "5s"
timeout = "15s"
detach_grace = "60s"
max_frame = 1518
max_batch = 256
max_buffered_frames = 4096
max_buffered_bytes = "1MiB"
[limits]
handshake_timeout = "10s"
max_header_bytes = 8192
max_handshakes_per_shard = 256
max_sessions = 100000
[fabric]
aging = "300s"
max_macs_per_port = 1024
max_macs_per_hub = 65536
"#;
    assert_eq!(Config::from_toml(text).unwrap(), Config::default());
}

#[test]
fn hubs_defaults_to_one_default_hub() {
    let c = Config::default();
    let hubs = c.hubs();
    assert_eq!(hubs.len(), 1);
    assert_eq!(hubs[0].name, "DEFAULT");
    assert!(!hubs[0].anonymous);

    let c = Config::from_toml("[[hub]]\nname = \"a\"\nanonymous = true\n[[hub]]\nname = \"b\"\n")
        .unwrap();
    let names: Vec<_> = c.hubs().iter().map(|h| h.name.clone()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(c.hubs()[0].anonymous);
    assert_eq!(
        c.hubs()[1].effective_max_macs(&c.fabric),
        DEFAULT_MAX_MACS_PER_HUB
    );
}

#[test]
fn full_config_parses() {
    let text = format!(
        r#"
name = "lab hub"
listen = "[::]:443"
metrics_listen = "off"
admin_socket = "off"
cert_dir = "/etc/vhub"
shards = 4
io_backend = "epoll"
log_format = "json"
[tls]
ciphers = "rc4-md5"
allow_legacy = true
[session]
keepalive = "2s"
timeout = "1m30s"
detach_grace = "0s"
max_frame = 9018
max_buffered_bytes = 16777216
[limits]
max_header_bytes = "16 KiB"
[[hub]]
name = "office"
max_sessions = 10
max_macs = 100
[[hub.user]]
name = "alice@example.org"
password = "{SAMPLE_HASH}"
[[hub.user]]
name = "bob"
cert_fingerprint = "sha256:{}"
"#,
        "ab".repeat(32)
    );
    let c = Config::from_toml(&text).unwrap();
    assert_eq!(c.listen, "[::]:443".parse().unwrap());
    assert_eq!(c.metrics_listen, None);
    assert_eq!(c.effective_admin_socket(), None);
    assert_eq!(c.effective_cert_dir(), PathBuf::from("/etc/vhub"));
    assert_eq!(
        c.effective_users_file(),
        PathBuf::from("/etc/vhub/users.toml")
    );
    assert_eq!(c.io_backend, IoBackendSetting::Epoll);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.session.timeout, Duration::from_secs(90));
    assert_eq!(c.session.detach_grace, Duration::ZERO);
    assert_eq!(c.limits.max_header_bytes, 16 * 1024);
    assert_eq!(c.hub[0].users.len(), 2);
    assert!(!format!("{:?}", c.hub[0].users[0]).contains("AAAA"));
}

#[test]
fn durations_and_sizes() {
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("200us"), Ok(Duration::from_micros(200)));
    assert_eq!(parse_duration("0.2ms"), Ok(Duration::from_micros(200)));
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("5x").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("1..5s").is_err());
    assert!(parse_duration("99999999999999999999999d").is_err());
    assert_eq!(parse_size("4MiB"), Ok(4 << 20));
    assert_eq!(parse_size("64 kib"), Ok(64 << 10));
    assert_eq!(parse_size("2KB"), Ok(2000));
    assert_eq!(parse_size("1MB"), Ok(1_000_000));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert_eq!(parse_size("100"), Ok(100));
    assert_eq!(parse_size("100B"), Ok(100));
    assert!(parse_size("4M").is_err());
    assert!(parse_size("MiB").is_err());
    assert!(parse_size("-1").is_err());
    assert!(parse_size("99999999999GiB").is_err());
    assert_eq!(fmt_duration(Duration::from_secs(5)), "5s");
    assert_eq!(fmt_duration(Duration::from_millis(300)), "300ms");
    assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
    assert_eq!(fmt_duration(Duration::from_nanos(1_000_001)), "1000001ns");
    assert_eq!(fmt_duration(Duration::from_micros(250)), "250us");
    // What it writes, it reads back.
    for d in [250_000, 1_000_001, 1_500_000_000] {
        let d = Duration::from_nanos(d);
        assert_eq!(parse_duration(&fmt_duration(d)), Ok(d));
    }
}

#[test]
fn busy_poll_is_off_by_default_and_at_most_10ms() {
    assert_eq!(Config::default().busy_poll, Duration::ZERO);
    let c = Config::from_toml("busy_poll = \"300us\"\n").unwrap();
    assert_eq!(c.busy_poll, Duration::from_micros(300));
    assert_eq!(
        errors("busy_poll = \"20ms\"\n"),
        "vhub.toml:1:1: busy_poll: 20ms is longer than 10ms: a shard would spin through pauses in the traffic that sleeping costs nothing in"
    );
}

#[test]
fn hub_names() {
    assert!(check_hub_name("DEFAULT").is_ok());
    assert!(check_hub_name("a.b_c-9").is_ok());
    assert!(check_hub_name(&"x".repeat(64)).is_ok());
    assert!(check_hub_name(&"x".repeat(65)).is_err());
    assert!(check_hub_name("").is_err());
    assert!(check_hub_name("a b").is_err());
    assert!(check_hub_name("a/b").is_err());
    assert!(check_hub_name("é").is_err());
}

#[test]
fn default_cert_dir_rules() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| std::ffi::OsString::from(v))
        }
    };
    assert_eq!(
        default_cert_dir(env(&[("STATE_DIRECTORY", "/var/lib/x:/var/lib/y")]), false),
        PathBuf::from("/var/lib/x")
    );
    assert_eq!(
        default_cert_dir(env(&[("HOME", "/root")]), true),
        PathBuf::from("/var/lib/vhub")
    );
    assert_eq!(
        default_cert_dir(env(&[("XDG_DATA_HOME", "/d"), ("HOME", "/h")]), false),
        PathBuf::from("/d/vhub")
    );
    assert_eq!(
        default_cert_dir(env(&[("XDG_DATA_HOME", "rel"), ("HOME", "/h")]), false),
        PathBuf::from("/h/.local/share/vhub")
    );
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = errors("name = \"x\"\nlisten = \n");
    assert!(e.starts_with("vhub.toml:2:"), "{e}");
}

#[test]
fn unknown_fields_all_reported_with_lines() {
    let e = errors(
        "nmae = \"x\"\n[session]\nkeepalive = \"1s\"\nkeepalvie = \"2s\"\n[limits]\nfoo = 1\n",
    );
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 3, "{e}");
    assert!(
        lines[0].starts_with("vhub.toml:1:1: nmae: unknown field `nmae`"),
        "{e}"
    );
    assert!(
        lines[1].starts_with("vhub.toml:4:1: session.keepalvie: unknown field `keepalvie`"),
        "{e}"
    );
    assert!(
        lines[2].starts_with("vhub.toml:6:1: limits.foo: unknown field `foo`"),
        "{e}"
    );
}

#[test]
fn an_unknown_log_format_names_the_choices() {
    assert_eq!(
        errors("log_format = \"xml\"\n"),
        "vhub.toml:1:14: log_format: unknown variant `xml`, expected `text` or `json`"
    );
}

#[test]
fn type_errors_and_semantic_problems_together() {
    let text = "\
listen = \"nowhere\"
io_backend = \"kqueue\"
[session]
keepalive = \"10s\"
timeout = \"10s\"
max_frame = 10
max_batch = 0
max_buffered_frames = 0
[fabric]
aging = 300
[[hub]]
name = \"a\"
[[hub]]
name = \"a\"
[[hub]]
name = \"bad name\"
";
    let e = errors(text);
    let expect = [
        "vhub.toml:1:10: listen: \"nowhere\" is not an address",
        "vhub.toml:2:14: io_backend: unknown variant `kqueue`, expected one of `auto`, `uring`, `epoll`",
        "vhub.toml:5:1: session.timeout: timeout (10s) must be longer than keepalive (10s)",
        "vhub.toml:6:1: session.max_frame: 10 is out of range; allowed: 14 to 65600",
        "vhub.toml:7:1: session.max_batch: 0 is out of range; allowed: 1 to 4096",
        "vhub.toml:8:1: session.max_buffered_frames: must be greater than 0",
        "vhub.toml:10:9: fabric.aging: a duration needs a unit: write \"300s\" or \"300ms\"",
        "vhub.toml:14:1: hub[1].name: duplicate hub name \"a\"; hub[0] has it already",
        "vhub.toml:16:1: hub[2].name: hub name \"bad name\" has the character ' '",
    ];
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), expect.len(), "{e}");
    for (line, want) in lines.iter().zip(expect) {
        assert!(
            line.starts_with(want),
            "got  {line}\nwant {want}\nall:\n{e}"
        );
    }
}

#[test]
fn problem_on_defaulted_key_points_at_related_or_section() {
    // keepalive is not in the file: the problem points at timeout.
    let e = errors("[session]\ntimeout = \"3s\"\n");
    assert!(e.starts_with("vhub.toml:2:1: session.timeout:"), "{e}");
    // timeout is not in the file: point at keepalive, the key written.
    let e = errors("[session]\nkeepalive = \"30s\"\n");
    assert!(e.starts_with("vhub.toml:2:1: session.timeout:"), "{e}");
    // dotted keys work too
    let e = errors("session.max_batch = 5000\n");
    assert!(e.starts_with("vhub.toml:1:9: session.max_batch:"), "{e}");
}

#[test]
fn addresses_must_not_collide() {
    let e = errors("listen = \"127.0.0.1:9750\"\n");
    assert!(
        e.contains("metrics_listen: 127.0.0.1:9750 collides with listen"),
        "{e}"
    );
    assert!(Config::from_toml("listen = \"0.0.0.0:0\"\nmetrics_listen = \"0.0.0.0:0\"\n").is_ok());
}

#[test]
fn tls_ciphers_checked() {
    assert!(errors("[tls]\nciphers = \"rc4-md5\"\n").contains("tls.allow_legacy = true"));
    assert!(errors("[tls]\nciphers = \"aes128\"\n").contains("unknown preset"));
    assert!(errors("[tls]\nciphers = \"list:\"\n").contains("empty"));
    assert!(Config::from_toml("[tls]\nciphers = \"suites:TLS_AES_256_GCM_SHA384\"\n").is_ok());
}

#[test]
fn inline_users_checked() {
    let text = format!(
        "[[hub]]\nname = \"h\"\n[[hub.user]]\nname = \"a b\"\npassword = \"{SAMPLE_HASH}\"\n[[hub.user]]\nname = \"c\"\npassword = \"hunter2\"\n[[hub.user]]\nname = \"d\"\n"
    );
    let e = errors(&text);
    assert!(e.contains("vhub.toml:4:1: hub[0].user[0].name:"), "{e}");
    assert!(e.contains("vhub.toml:8:1: hub[0].user[1].password:"), "{e}");
    assert!(
        e.contains("vhub.toml:10:1: hub[0].user[2].name: this user has no password"),
        "{e}"
    );
    assert!(
        !e.contains("hunter2"),
        "a plain password must not be echoed: {e}"
    );
}

#[test]
fn sizes_and_negative_numbers() {
    let e = errors("[session]\nmax_buffered_bytes = \"4 lots\"\n[limits]\nmax_sessions = -1\nmax_header_bytes = 100\n");
    assert!(
        e.contains("vhub.toml:2:22: session.max_buffered_bytes:"),
        "{e}"
    );
    assert!(e.contains("vhub.toml:4:16: limits.max_sessions:"), "{e}");
    assert!(
        e.contains("vhub.toml:5:1: limits.max_header_bytes: 100 is out of range"),
        "{e}"
    );
}

#[test]
fn load_resolves_relative_paths_and_reports_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vhub.toml");
    std::fs::write(
        &file,
        "cert_dir = \"certs\"\nusers_file = \"/abs/users.toml\"\n",
    )
    .unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(c.cert_dir, Some(dir.path().join("certs")));
    assert_eq!(c.users_file, Some(PathBuf::from("/abs/users.toml")));
    // The admin socket defaults to the certificate directory…
    assert_eq!(
        c.effective_admin_socket(),
        Some(dir.path().join("certs/admin.sock"))
    );
    // …and a relative one is relative to the file too; "off" stays off.
    std::fs::write(&file, "admin_socket = \"run/a.sock\"\n").unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(
        c.effective_admin_socket(),
        Some(dir.path().join("run/a.sock"))
    );
    std::fs::write(&file, "admin_socket = \"off\"\n").unwrap();
    assert_eq!(Config::load(&file).unwrap().effective_admin_socket(), None);

    let missing = dir.path().join("nope.toml");
    let e = Config::load(&missing).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: cannot read the config file",
            missing.display()
        )),
        "{e}"
    );
}

#[test]
fn columns_count_characters() {
    let idx = LineIndex::new("ä = 1\nxy");
    assert_eq!(idx.position(0), Position { line: 1, column: 1 });
    assert_eq!(idx.position(3), Position { line: 1, column: 3 });
    assert_eq!(idx.position(8), Position { line: 2, column: 2 });
}
