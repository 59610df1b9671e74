//! What an idle session costs the hub (issue 5: ≥ 20,000 idle sessions per
//! GiB): a real `vhub` and `vhub-bench --pattern idle` with 200 sessions
//! that only exchange keep-alives. The hub's `vhub_heap_in_use_bytes`
//! (bytes allocated and not freed, Rust's and OpenSSL's) grows by at most
//! 46 KiB per session. Measured: 38 KiB (OpenSSL 3.6 holds 28.6 of them:
//! record layers, the connection, the peer's ML-KEM key share). The bound
//! caught a writer that kept a 16 KiB buffer from one keep-alive to the
//! next (54 KiB per session). Counted bytes, not time: no noise from a
//! shared machine. About 10 s.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::vhub_bin;

const SESSIONS: usize = 200;
const BOUND_PER_SESSION: f64 = 46.0 * 1024.0;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One sample of the hub's metrics: an error saying why when the scrape
/// fails or the series is not in it, never a default of 0 (a bound on a
/// difference of two failed reads would always hold).
fn metric(port: u16, series: &str) -> Result<f64, String> {
    let scrape = || -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    };
    let text = scrape().map_err(|e| format!("scraping 127.0.0.1:{port}/metrics: {e}"))?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == series).then_some(v)
        })
        .ok_or_else(|| format!("no series {series} in the metrics:\n{text}"))?
        .parse()
        .map_err(|e| format!("{series}: {e}"))
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

#[test]
fn an_idle_session_costs_the_hub_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (port, mport) = (free_port(), free_port());
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
metrics_listen = "127.0.0.1:{mport}"
admin_socket = "off"
cert_dir = "{certs}"
shards = 2

[session]
keepalive = "1s"
timeout = "5s"

[limits]
max_handshakes_per_address = 256

[[hub]]
name = "DEFAULT"
anonymous = true
"#,
            certs = dir.path().join("certs").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
    let _hub = Killed(
        Command::new(vhub_bin())
            .arg("--config")
            .arg(&config)
            .env("VHUB_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vhub"),
    );
    let heap = || metric(mport, "vhub_heap_in_use_bytes");
    let sessions = || metric(mport, "vhub_sessions{hub=\"DEFAULT\"}");
    assert!(
        wait_until(Duration::from_secs(20), || heap().is_ok_and(|h| h > 0.0)),
        "the hub did not start: {}",
        std::fs::read_to_string(dir.path().join("hub.log")).unwrap_or_default()
    );
    let before = heap().unwrap();

    let _bench = Killed(
        Command::new(env!("CARGO_BIN_EXE_vhub-bench"))
            .args(["--hub", &format!("127.0.0.1:{port}")])
            .args(["-n", &SESSIONS.to_string(), "--pattern", "idle"])
            .args(["--duration", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vhub-bench"),
    );
    assert!(
        wait_until(Duration::from_secs(30), || sessions()
            .is_ok_and(|n| n == SESSIONS as f64)),
        "{:?} of {SESSIONS} sessions connected",
        sessions()
    );
    // Three keep-alive intervals: every session has pinged since its
    // first frame (each announces its MAC), so whatever an idle session
    // gives back has been given back.
    std::thread::sleep(Duration::from_millis(3500));
    let during = heap().unwrap();
    assert_eq!(sessions().unwrap(), SESSIONS as f64, "sessions held");
    let per_session = (during - before) / SESSIONS as f64;
    eprintln!(
        "RESULT idle sessions: heap in use {:.1} MiB before, {:.1} MiB with {SESSIONS} idle sessions: {:.1} KiB per session (OpenSSL's part: {:.1} MiB in all)",
        before / 1048576.0,
        during / 1048576.0,
        per_session / 1024.0,
        metric(mport, "vhub_heap_in_use_libc_bytes").unwrap() / 1048576.0
    );
    assert!(
        per_session <= BOUND_PER_SESSION,
        "an idle session costs the hub {:.1} KiB of heap (bound {:.0} KiB)",
        per_session / 1024.0,
        BOUND_PER_SESSION / 1024.0
    );
}
