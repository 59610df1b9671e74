//! The hub's front as outside tools see it: `curl` and headless Chromium on
//! the HTML page, `openssl s_client` on the cipher suites, a certificate
//! made with `openssl req`, and `promtool` on the metrics. All real TLS on
//! loopback.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use certs::tls::{CipherSpec, Preset, TlsOptions};
use common::{
    have, http_get, metric, promtool_check, run_with_timeout, start_hub, start_hub_spec, wait_for,
    HubSpec, Vhub,
};
use vhub_bench::client::{frame, mac, TestClient, BROADCAST};

const T: Duration = Duration::from_secs(10);

/// `curl -sk` with extra arguments: (HTTP status, headers, body).
fn curl(hub: std::net::SocketAddr, path: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let body = dir.path().join("body");
    let (status, out) = run_with_timeout(
        Command::new("curl")
            .args(["-sk", "--max-time", "10", "-D"])
            .arg(&head)
            .arg("-o")
            .arg(&body)
            .args(["-w", "%{http_code}"])
            .args(extra)
            .arg(format!("https://{hub}{path}")),
        Duration::from_secs(15),
    );
    assert!(status.is_some_and(|s| s.success()), "curl failed: {out}");
    let code = out.trim().parse().expect("curl printed the status");
    let head = std::fs::read_to_string(&head).unwrap_or_default();
    let body = std::fs::read(&body).unwrap_or_default();
    (code, head, body)
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn curl_gets_the_page_the_certificate_and_the_right_errors() {
    let hub = start_hub(1, false, |s| s.name = "lab-hub-7".into());
    let addr = hub.addr();

    let (code, head, body) = curl(addr, "/", &[]);
    let page = String::from_utf8(body).unwrap();
    assert_eq!(code, 200, "{head}");
    assert!(
        header(&head, "content-type").is_some_and(|v| v.starts_with("text/html")),
        "{head}"
    );
    assert!(page.contains("lab-hub-7"), "hub name missing:\n{page}");
    assert!(
        page.contains(env!("CARGO_PKG_VERSION")),
        "version missing:\n{page}"
    );
    let fp = hub.identity.fingerprint().to_string();
    assert!(page.contains(&fp), "fingerprint {fp} missing:\n{page}");
    assert!(page.contains("vnic connect"), "how to connect:\n{page}");

    let (code, head, body) = curl(addr, "/ca.crt", &[]);
    assert_eq!(code, 200, "{head}");
    assert_eq!(
        body,
        hub.identity.cert_pem(),
        "/ca.crt is the hub's certificate"
    );
    assert_eq!(
        header(&head, "content-type"),
        Some("application/x-x509-ca-cert")
    );

    // HEAD: the same head, no body.
    let (code, head, body) = curl(addr, "/", &["-I"]);
    assert_eq!(code, 200, "{head}");
    assert!(
        body.is_empty() || body.starts_with(b"HTTP/1.1 200"),
        "HEAD sent a body"
    );
    assert_eq!(
        header(&head, "content-length"),
        Some(page.len().to_string().as_str())
    );
    let (code, _, _) = curl(addr, "/ca.crt", &["-I"]);
    assert_eq!(code, 200);

    let (code, head, body) = curl(addr, "/nope", &[]);
    assert_eq!(code, 404, "{head}");
    assert_eq!(header(&head, "vhub-error"), Some("not-found"));
    assert!(String::from_utf8_lossy(&body).contains("/nope"));

    let (code, head, _) = curl(addr, "/", &["-X", "POST", "-d", "x=1"]);
    assert_eq!(code, 405, "{head}");
    assert_eq!(header(&head, "allow"), Some("GET, HEAD"));

    // Every one of those was counted as a page or an HTTP error, not a session.
    let m = hub.scrape();
    assert_eq!(metric(&m, r#"vhub_handshakes_total{result="page"}"#), 4.0);
    assert_eq!(
        metric(&m, r#"vhub_handshakes_total{result="http_error"}"#),
        2.0
    );
    assert_eq!(metric(&m, r#"vhub_handshakes_total{result="new"}"#), 0.0);
}

#[test]
fn ca_crt_matches_the_file_in_the_certificate_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (created, _) = certs::load_or_create(dir.path(), &certs::CertParams::default()).unwrap();
    // Load it back as a restarted hub would: the identity served is the file's.
    let (identity, fresh) =
        certs::load_or_create(dir.path(), &certs::CertParams::default()).unwrap();
    assert!(!fresh, "second start loads, does not create");
    assert_eq!(identity.fingerprint(), created.fingerprint());
    let hub = start_hub_spec(
        HubSpec {
            identity: Some(identity),
            ..HubSpec::default()
        },
        |_| {},
    );
    let on_disk = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let (code, _, body) = curl(hub.addr(), "/ca.crt", &[]);
    assert_eq!(code, 200);
    assert_eq!(body, on_disk);
    // …and it is the certificate the TLS handshake presents.
    let served = openssl::x509::X509::from_pem(&body).unwrap();
    let presented = s_client_certificate(hub.addr());
    assert_eq!(
        certs::Fingerprint::of(&served),
        certs::Fingerprint::of(&presented)
    );
}

#[test]
fn headless_chromium_renders_the_page() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|p| have(p))
    else {
        test_support::skip_or_fail(
            "headless_chromium_renders_the_page",
            "chromium is not installed (Debian package chromium)",
        );
        return;
    };
    let hub = start_hub(1, false, |s| s.name = "browser-hub".into());
    let profile = tempfile::tempdir().unwrap();
    let (status, out) = run_with_timeout(
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--ignore-certificate-errors",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(format!("https://{}/", hub.addr())),
        Duration::from_secs(60),
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "chromium failed:\n{out}"
    );
    assert!(
        out.contains(r#"<h1 id="name">browser-hub</h1>"#),
        "the DOM has no hub name:\n{out}"
    );
    assert!(out.contains(r#"<span id="version">"#), "{out}");
    assert!(hub.metric(r#"vhub_handshakes_total{result="page"}"#) >= 1.0);
}

/// `openssl s_client` against `addr` with `args`: the negotiated suite
/// (`None` when the handshake was refused) and the whole output.
fn s_client(addr: std::net::SocketAddr, args: &[&str]) -> (Option<String>, String) {
    let (status, out) = run_with_timeout(
        Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string()])
            .args(args),
        Duration::from_secs(15),
    );
    assert!(status.is_some(), "s_client hung:\n{out}");
    // "New, TLSv1.2, Cipher is AES256-SHA" or "New, (NONE), Cipher is (NONE)".
    let suite = out
        .lines()
        .find_map(|l| l.strip_prefix("New, "))
        .and_then(|l| l.split_once("Cipher is "))
        .map(|(_, c)| c.trim().to_owned())
        .filter(|c| c != "(NONE)");
    (suite, out)
}

/// The certificate the hub presents, as `openssl s_client -showcerts` saw it.
fn s_client_certificate(addr: std::net::SocketAddr) -> openssl::x509::X509 {
    let (suite, out) = s_client(addr, &["-showcerts"]);
    assert!(suite.is_some(), "{out}");
    let start = out.find("-----BEGIN CERTIFICATE-----").expect(&out);
    let end = out.find("-----END CERTIFICATE-----").expect(&out) + 25;
    openssl::x509::X509::from_pem(&out.as_bytes()[start..end]).unwrap()
}

fn aes256_sha() -> TlsOptions {
    TlsOptions {
        ciphers: CipherSpec::Preset(Preset::Aes256Sha),
        ..TlsOptions::default()
    }
}

#[test]
fn s_client_gets_exactly_the_named_suite_or_a_refusal() {
    let legacy = start_hub_spec(
        HubSpec {
            tls: aes256_sha(),
            ..HubSpec::default()
        },
        |_| {},
    );
    let default = start_hub(1, false, |_| {});

    let (suite, out) = s_client(legacy.addr(), &["-tls1_2", "-cipher", "AES256-SHA"]);
    assert_eq!(suite.as_deref(), Some("AES256-SHA"), "{out}");
    assert!(out.contains("Protocol  : TLSv1.2"), "{out}");
    let (suite, out) = s_client(legacy.addr(), &["-tls1_2", "-cipher", "AES256-SHA256"]);
    assert_eq!(suite.as_deref(), Some("AES256-SHA256"), "{out}");
    // The aes256-sha preset is TLS 1.2 only.
    let (suite, out) = s_client(legacy.addr(), &["-tls1_3"]);
    assert_eq!(suite, None, "TLS 1.3 accepted by an aes256-sha hub:\n{out}");

    // The default hub refuses a non-forward-secret CBC suite…
    let (suite, out) = s_client(default.addr(), &["-tls1_2", "-cipher", "AES256-SHA"]);
    assert_eq!(suite, None, "default hub accepted AES256-SHA:\n{out}");
    assert!(out.contains("alert handshake failure"), "{out}");
    // …and speaks TLS 1.3 with AES-256-GCM first.
    let (suite, out) = s_client(default.addr(), &["-tls1_3"]);
    assert_eq!(suite.as_deref(), Some("TLS_AES_256_GCM_SHA384"), "{out}");
    let (suite, out) = s_client(default.addr(), &["-tls1_2"]);
    assert_eq!(
        suite.as_deref(),
        Some("ECDHE-RSA-AES256-GCM-SHA384"),
        "{out}"
    );
    let refused = default.metric(r#"vhub_handshakes_total{result="tls_failed"}"#);
    assert!(refused >= 1.0, "refused handshake counted: {refused}");

    // A real session with a named suite is counted under that suite.
    let mut a = TestClient::connect_with(
        legacy.addr(),
        "DEFAULT",
        Some(("alice", "secret")),
        Default::default(),
        &aes256_sha(),
    )
    .expect("aes256-sha session");
    let info = a.tls_info().unwrap();
    assert_eq!(info.version, "TLSv1.2");
    assert!(info.cipher.contains("AES256-SHA"), "{info:?}");
    let series = format!(
        r#"vhub_tls_sessions_total{{suite="{}/{}"}}"#,
        info.version, info.cipher
    );
    assert_eq!(legacy.metric(&series), 1.0, "{series}");
    // Frames flow over it.
    let mut b = TestClient::connect_with(
        legacy.addr(),
        "DEFAULT",
        Some(("alice", "secret")),
        Default::default(),
        &aes256_sha(),
    )
    .unwrap();
    a.send(&frame(BROADCAST, mac(1), b"over AES256-SHA"));
    a.pump().unwrap();
    assert_eq!(b.recv_until(1, T), 1);
    assert_eq!(legacy.metric(&series), 2.0);

    // The default hub counts its TLS 1.3 session under its suite.
    let _c = TestClient::connect(default.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    assert_eq!(
        default.metric(r#"vhub_tls_sessions_total{suite="TLSv1.3/TLS_AES_256_GCM_SHA384"}"#),
        1.0
    );
    // An aes256-sha client cannot reach the default hub at all.
    assert!(TestClient::connect_with(
        default.addr(),
        "DEFAULT",
        Some(("alice", "secret")),
        Default::default(),
        &aes256_sha(),
    )
    .is_err());
}

/// `openssl req` makes a self-signed RSA certificate in `dir`.
fn openssl_req(dir: &Path, cn: &str) {
    let (status, out) = run_with_timeout(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            ])
            .args(["-subj", &format!("/CN={cn}")])
            .args(["-addext", &format!("subjectAltName=DNS:{cn},IP:127.0.0.1")])
            .arg("-keyout")
            .arg(dir.join("ca.key"))
            .arg("-out")
            .arg(dir.join("ca.crt")),
        Duration::from_secs(60),
    );
    assert!(status.is_some_and(|s| s.success()), "openssl req: {out}");
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_certificate_made_with_openssl_req_replaces_the_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    openssl_req(&certs, "hub.test.example");
    chmod(&certs.join("ca.key"), 0o600);
    let cert_dir = certs.to_str().unwrap();
    let mut vhub = Vhub::spawn(&[
        "--cert-dir",
        cert_dir,
        "--shards",
        "1",
        "--io-backend",
        "epoll",
    ]);
    vhub.wait_ready();
    let on_disk = std::fs::read(certs.join("ca.crt")).unwrap();
    let file_cert = openssl::x509::X509::from_pem(&on_disk).unwrap();
    let fp = certs::Fingerprint::of(&file_cert);

    let (code, _, body) = curl(vhub.listen, "/ca.crt", &[]);
    assert_eq!(code, 200);
    assert_eq!(body, on_disk, "/ca.crt is the openssl-made file");
    let presented = s_client_certificate(vhub.listen);
    assert_eq!(certs::Fingerprint::of(&presented), fp);
    let (_, _, page) = curl(vhub.listen, "/", &[]);
    assert!(String::from_utf8_lossy(&page).contains(&fp.to_string()));
    assert!(vhub.log().contains(&fp.to_string()), "{}", vhub.log());
    assert!(!vhub.log().contains("created a new certificate"));
    // The files were left as they were.
    assert_eq!(std::fs::read(certs.join("ca.crt")).unwrap(), on_disk);
    drop(vhub);

    // A key others can read: refused, saying how to fix it.
    chmod(&certs.join("ca.key"), 0o644);
    let mut vhub = Vhub::spawn(&["--cert-dir", cert_dir, "--shards", "1"]);
    let status = vhub.wait_exit(T).expect("vhub exits");
    assert!(!status.success());
    assert!(
        wait_for(Duration::from_secs(2), || vhub.log().contains("chmod 600")),
        "{}",
        vhub.log()
    );

    // A certificate without its key: refused, naming the missing file.
    std::fs::remove_file(certs.join("ca.key")).unwrap();
    let mut vhub = Vhub::spawn(&["--cert-dir", cert_dir, "--shards", "1"]);
    let status = vhub.wait_exit(T).expect("vhub exits");
    assert!(!status.success());
    assert!(
        wait_for(Duration::from_secs(2), || {
            let log = vhub.log();
            log.contains("ca.key is missing") && log.contains("ca.crt exists")
        }),
        "{}",
        vhub.log()
    );
    // …and did not generate a new key over the user's certificate.
    assert!(!certs.join("ca.key").exists());
    assert_eq!(std::fs::read(certs.join("ca.crt")).unwrap(), on_disk);
}

#[test]
fn metrics_pass_promtool_and_move_with_traffic() {
    let hub = start_hub(1, false, |_| {});
    let before = hub.scrape();
    promtool_check(&before).unwrap_or_else(|e| panic!("promtool: {e}\n{before}"));

    let mut a = TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    let mut b = TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "secret"))).unwrap();
    let mut c = TestClient::connect(hub.addr(), "OTHER", Some(("bob", "hunter2"))).unwrap();
    a.send(&frame(BROADCAST, mac(1), b"hello"));
    a.pump().unwrap();
    assert_eq!(b.recv_until(1, T), 1);
    b.send(&frame(BROADCAST, mac(2), b"hello"));
    b.pump().unwrap();
    assert_eq!(a.recv_until(1, T), 1);
    const N: usize = 500;
    for i in 0..N as u32 {
        a.send(&frame(mac(2), mac(1), &i.to_be_bytes()));
        if i % 100 == 99 {
            a.pump().unwrap();
        }
    }
    a.pump().unwrap();
    assert_eq!(b.recv_until(N + 1, T), N + 1);
    c.send(&frame(BROADCAST, mac(9), b"other hub"));
    c.pump().unwrap();

    // Every frame sent (N + 1 by a, 1 by b, 1 by c) was counted in.
    let frames_in = r#"vhub_frames_total{direction="in"}"#;
    let sent = (N + 3) as f64;
    assert!(
        wait_for(T, || hub.metric(frames_in) - metric(&before, frames_in)
            >= sent),
        "frames in: {}",
        hub.scrape()
    );
    let m = hub.scrape();
    promtool_check(&m).unwrap_or_else(|e| panic!("promtool: {e}\n{m}"));
    let grew = |series: &str| metric(&m, series) - metric(&before, series);
    assert!(grew(frames_in) >= sent);
    // b received N + 1 of them, a 1.
    assert!(grew(r#"vhub_frames_total{direction="out"}"#) >= (N + 2) as f64);
    assert_eq!(metric(&m, r#"vhub_sessions{hub="DEFAULT"}"#), 2.0);
    assert_eq!(metric(&m, r#"vhub_sessions{hub="OTHER"}"#), 1.0);
    assert_eq!(metric(&m, r#"vhub_handshakes_total{result="new"}"#), 3.0);
    assert_eq!(metric(&m, r#"vhub_mac_entries{hub="DEFAULT"}"#), 2.0);
    assert_eq!(grew("vhub_frames_unicast_total"), N as f64);
    assert_eq!(grew("vhub_frames_flooded_total"), 3.0);
    assert!(metric(&m, "process_resident_memory_bytes") > 0.0);
    assert_eq!(metric(&m, r#"vhub_io_backend{backend="epoll"}"#), 1.0);

    // A failed login is a handshake result, not a session.
    assert!(TestClient::connect(hub.addr(), "DEFAULT", Some(("alice", "nope"))).is_err());
    let m2 = hub.scrape();
    assert_eq!(
        metric(&m2, r#"vhub_handshakes_total{result="auth_failed"}"#),
        1.0
    );
    assert_eq!(metric(&m2, r#"vhub_sessions{hub="DEFAULT"}"#), 2.0);

    // A session that ends leaves the gauge.
    b.close();
    assert!(
        wait_for(T, || hub.metric(r#"vhub_sessions{hub="DEFAULT"}"#) == 1.0),
        "{}",
        hub.scrape()
    );

    // Prometheus asks for OpenMetrics and gets it.
    let (status, head, body) = http_get(
        hub.metrics_addr(),
        "/metrics",
        &["Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"],
    );
    assert_eq!(status, 200);
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("# TYPE vhub_frames counter"), "{body}");
    let (_, head, body) = http_get(hub.metrics_addr(), "/metrics", &[]);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(body.contains("# TYPE vhub_frames_total counter"), "{body}");
    assert!(!body.contains("# EOF"));

    assert_eq!(http_get(hub.metrics_addr(), "/healthz", &[]).0, 200);
    assert_eq!(http_get(hub.metrics_addr(), "/readyz", &[]).0, 200);
    assert_eq!(http_get(hub.metrics_addr(), "/nope", &[]).0, 404);

    // Once shutdown has started the hub is no longer ready.
    let mut hub = hub;
    let server = hub.server.take().unwrap();
    let maddr = server.metrics_addr().unwrap();
    drop(a);
    drop(c);
    server.shutdown();
    assert_eq!(http_get(maddr, "/readyz", &[]).0, 503);
    assert_eq!(http_get(maddr, "/healthz", &[]).0, 200);
}
