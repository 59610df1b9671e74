//! The cipher presets through the real binaries, in the `legacy-ciphers`
//! build (vendored OpenSSL with weak-crypto and the legacy provider):
//! `vhub --ciphers P --allow-legacy-ciphers` for P in `rc4-md5`, `rc4-sha`
//! and `aes256-sha`
//!
//! - negotiates the preset's suite with an independent OpenSSL client and
//!   serves a request over it;
//! - carries the kernel's ping between two `vnic --ciphers P
//!   --allow-legacy-ciphers` in network namespaces, each vnic and the hub
//!   naming the suite they use (needs root).
//!
//! The independent client is libssl driven through the `openssl` crate,
//! not `openssl s_client`: Debian's OpenSSL 3.0 has no RC4 suites at all,
//! and the vendored OpenSSL (`openssl-src`) builds only the libraries
//! (`build_libs`, `install_dev`), no `openssl` program. This test binary
//! links that same RC4-capable library, and the client here shares no code
//! with vhub's or vnic's TLS setup (`certs::tls`).
//!
//! Run by `scripts/test.sh` as
//! `cargo test -p client --features legacy-ciphers --test legacy_ciphers`;
//! it builds `vhub` with the feature itself (one `cargo build`, a no-op
//! when it is up to date).

#![cfg(feature = "legacy-ciphers")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};

const T: Duration = Duration::from_secs(30);

/// Each preset, the suites the hub may choose for it, and the OpenSSL
/// cipher list an independent client offers for it.
const PRESETS: [(&str, &[&str], &str); 3] = [
    ("rc4-md5", &["RC4-MD5"], "RC4-MD5:@SECLEVEL=0"),
    ("rc4-sha", &["RC4-SHA"], "RC4-SHA:@SECLEVEL=0"),
    (
        "aes256-sha",
        &["AES256-SHA", "AES256-SHA256", "ECDHE-RSA-AES256-SHA384"],
        "AES256-SHA",
    ),
];

/// `vhub` built with `--features legacy-ciphers`, next to this build's
/// `vnic` (cargo rebuilds it only when it is out of date).
fn legacy_vhub() -> PathBuf {
    let vnic = vnic_bin();
    let dir = vnic.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "hub", "--features", "legacy-ciphers"])
        .env("CARGO_TARGET_DIR", dir.parent().unwrap())
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("cargo build -p hub --features legacy-ciphers");
    assert!(
        status.success(),
        "cargo build -p hub --features legacy-ciphers failed"
    );
    let hub = vhub_bin();
    assert_eq!(hub.parent(), Some(dir));
    hub
}

/// OpenSSL 3 keeps RC4 in the legacy provider; load it (and keep the
/// default one) for this process's own client, once.
fn load_legacy_provider() {
    use std::sync::OnceLock;
    static PROVIDERS: OnceLock<(openssl::provider::Provider, openssl::provider::Provider)> =
        OnceLock::new();
    PROVIDERS.get_or_init(|| {
        (
            openssl::provider::Provider::try_load(None, "legacy", true)
                .expect("the legacy provider of the vendored OpenSSL"),
            openssl::provider::Provider::try_load(None, "default", true)
                .expect("the default provider"),
        )
    });
}

/// An independent TLS 1.2 client offering only `cipher_list`: the suite
/// negotiated with the hub at `port`, and the status line of its answer
/// to `GET /` over that suite.
fn openssl_client(port: u16, cipher_list: &str) -> Result<(String, String), String> {
    load_legacy_provider();
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    b.set_cipher_list(cipher_list).map_err(|e| e.to_string())?;
    b.set_max_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| e.to_string())?;
    b.set_verify(SslVerifyMode::NONE);
    let connector = b.build();
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(T)).unwrap();
    let mut tls = connector
        .configure()
        .map_err(|e| e.to_string())?
        .verify_hostname(false)
        .connect("localhost", tcp)
        .map_err(|e| format!("handshake: {e}"))?;
    let suite = tls
        .ssl()
        .current_cipher()
        .map(|c| c.name().to_owned())
        .ok_or("no cipher after the handshake")?;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // The hub closes after its answer; a missing close_notify is fine.
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default().to_owned();
    Ok((suite, status))
}

fn vhub_args(preset: &str) -> [&str; 3] {
    ["--ciphers", preset, "--allow-legacy-ciphers"]
}

#[test]
fn an_independent_openssl_client_negotiates_each_preset_with_vhub() {
    let _vhub = legacy_vhub();
    for (preset, suites, cipher_list) in PRESETS {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::start_with_args(dir.path(), &dir.path().join("certs"), &vhub_args(preset));
        let (suite, status) = openssl_client(hub.port, cipher_list)
            .unwrap_or_else(|e| panic!("vhub --ciphers {preset}: {e}\n{}", hub.log()));
        eprintln!(
            "RESULT vhub --ciphers {preset}: OpenSSL client negotiated {suite}, GET / -> {status}"
        );
        assert!(
            suites.contains(&suite.as_str()),
            "{preset}: negotiated {suite}"
        );
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "{preset}: GET / answered {status:?}"
        );
        // The hub served its page over that suite.
        assert!(
            hub.metric(r#"vhub_handshakes_total{result="page"}"#)
                .unwrap()
                >= 1.0,
            "{}",
            hub.log()
        );
        // A client offering only the modern suites is refused by an RC4
        // hub (and the other way round: RC4 is not offered by default).
        if preset.starts_with("rc4") {
            let modern = openssl_client(hub.port, "ECDHE-RSA-AES256-GCM-SHA384");
            assert!(
                modern.is_err(),
                "{preset} hub accepted a modern-only client: {modern:?}"
            );
        }
    }
}

#[test]
fn vnics_with_each_preset_ping_each_other_through_vhub() {
    if !require_root("vnics_with_each_preset_ping_each_other_through_vhub") {
        return;
    }
    require_tool("ping", "iputils-ping");
    let _vhub = legacy_vhub();
    let _lock = TestLock::take();
    for (i, (preset, suites, _)) in PRESETS.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        let hub = Hub::start_with_args(dir.path(), &dir.path().join("certs"), &vhub_args(preset));
        let id = 50 + i as u8;
        let a = Ns::new(&format!("rc{i}"), 'a', id, 1);
        let b = Ns::new(&format!("rc{i}"), 'b', id, 2);
        let vnic = |ns: &Ns, ip: &str| {
            Vnic::start(
                ns,
                VnicOpts {
                    hub_ip: ns.host_ip,
                    port: hub.port,
                    hub: "DEFAULT",
                    user: "alice",
                    password_file: &pw,
                    tap: "vnic0",
                    ip: Some(ip),
                    dir: dir.path(),
                    extra: vhub_args(preset).map(str::to_owned).to_vec(),
                },
            )
        };
        let va = vnic(&a, "10.77.0.11/24");
        let vb = vnic(&b, "10.77.0.12/24");
        va.wait_connected(T);
        vb.wait_connected(T);
        assert!(
            ping_works(&a, "10.77.0.12", T),
            "{preset}: a cannot ping b through the hub\n{}",
            hub.log()
        );
        assert!(ping_works(&b, "10.77.0.11", T), "{preset}: b cannot ping a");
        // Both clients say which suite carries them; the hub counts both
        // sessions under it.
        let mut suite = String::new();
        for v in [&va, &vb] {
            let status = v.read_status().unwrap();
            let tls = status["tls"].as_str().unwrap_or_default().to_owned();
            assert!(
                tls.starts_with("TLSv1.2 ") && suites.iter().any(|s| tls.ends_with(s)),
                "{preset}: {} reports TLS {tls:?}",
                v.proc.label
            );
            suite = tls.replacen(' ', "/", 1);
        }
        let series = format!(r#"vhub_tls_sessions_total{{suite="{suite}"}}"#);
        assert!(hub.metric(&series).unwrap() >= 2.0, "{series}");
        eprintln!("RESULT vnic --ciphers {preset}: both vnics on {suite}, ping both ways");
        assert_eq!(va.counter("lost_on_resume").unwrap(), 0);
    }
}

#[test]
fn vnic_refuses_an_rc4_preset_without_the_opt_in() {
    // No root, no hub: the cipher settings are checked before anything
    // is opened.
    let out = Command::new(vnic_bin())
        .args([
            "connect",
            "https://127.0.0.1:9/DEFAULT",
            "--insecure",
            "--tap",
            "vnic-rc4",
        ])
        .args(["--ciphers", "rc4-md5"])
        .output()
        .expect("run vnic");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--allow-legacy-ciphers"), "{err}");
}
