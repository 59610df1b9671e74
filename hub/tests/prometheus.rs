//! A real Prometheus server (Debian's `prometheus`) scrapes a running hub
//! with the scrape config and alert rules from `deploy/prometheus/`, and
//! its HTTP API answers the session count and a rate of frames while test
//! traffic flows.

mod common;

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_addr, start_hub};
use vhub_bench::client::{frame, mac, TestClient, BROADCAST};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The Prometheus server, killed (by its pid) when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// GET over HTTP/1.0 (no chunked bodies, the server closes).
    fn get(&self, path: &str) -> Option<serde_json::Value> {
        let mut s = std::net::TcpStream::connect(self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        let (_, body) = raw.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    }

    /// An instant query; the value of its single sample.
    fn query_one(&self, promql: &str) -> Option<f64> {
        let v = self.get(&format!("/api/v1/query?query={}", urlencode(promql)))?;
        if v["status"] != "success" {
            return None;
        }
        let result = v["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_hub_and_answers_sessions_and_frame_rate() {
    let bin = Path::new("/usr/bin/prometheus");
    assert!(
        bin.exists(),
        "the Prometheus server is missing: apt-get install prometheus"
    );
    let hub = start_hub(2, true, |_| {});
    let metrics = hub.metrics_addr();
    // The expiry the hub exports is its certificate's notAfter.
    assert_eq!(
        hub.metric("vhub_certificate_expiry_timestamp_seconds"),
        hub.identity.info().not_after_unix as f64
    );

    // The shipped config and rules, pointed at this hub, scraping every second.
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(deploy().join("prometheus/prometheus.yml")).unwrap();
    assert!(shipped.contains("127.0.0.1:9750") && shipped.contains("scrape_interval: 15s"));
    let config = shipped
        .replace("127.0.0.1:9750", &metrics.to_string())
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    std::fs::copy(
        deploy().join("prometheus/vhub-rules.yml"),
        dir.path().join("vhub-rules.yml"),
    )
    .unwrap();
    let addr = free_addr();
    let log = dir.path().join("prometheus.log");
    let child = Command::new(bin)
        .current_dir(dir.path())
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start prometheus");
    let prom = Prometheus { child, addr, log };

    // Three sessions; one keeps broadcasting, the others keep reading.
    const SESSIONS: usize = 3;
    let mut clients: Vec<TestClient> = (0..SESSIONS)
        .map(|_| TestClient::connect(hub.addr(), "DEFAULT", None).unwrap())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                clients[0].send(&frame(BROADCAST, mac(1), &n.to_be_bytes()));
                for c in clients.iter_mut() {
                    c.pump().expect("session alive");
                    c.received.clear();
                }
            }
            n
        })
    };

    // Eventual answers only: a busy machine may take a while to get there.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last;
    let ok = loop {
        last = (
            prom.query_one("up{job=\"vhub\"}"),
            prom.query_one("sum(vhub_sessions)"),
            prom.query_one("sum(rate(vhub_frames_total{direction=\"in\"}[5s]))"),
        );
        if matches!(last, (Some(up), Some(s), Some(r)) if up == 1.0 && s == SESSIONS as f64 && r > 0.0)
        {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    stop.store(true, Ordering::Relaxed);
    let sent = traffic.join().expect("traffic thread");
    assert!(
        ok,
        "Prometheus did not answer up=1, sum(vhub_sessions)={SESSIONS}, a frame rate > 0 \
         (last: up, sessions, rate = {last:?}; {sent} frames sent)\n{}",
        std::fs::read_to_string(&prom.log).unwrap_or_default()
    );
    // The shipped alert rules loaded and evaluate.
    let rules = prom.get("/api/v1/rules").expect("rules API answers");
    let names: Vec<&str> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"VhubDown"), "{rules}");
    assert!(names.contains(&"VhubCertificateExpiresSoon"), "{rules}");
    // A fresh certificate is not close to expiry: Prometheus sees the metric
    // and the alert expression is empty.
    let left = prom
        .query_one("vhub_certificate_expiry_timestamp_seconds - time()")
        .expect("certificate expiry scraped");
    assert!(left > 30.0 * 86400.0, "{left}");
}
