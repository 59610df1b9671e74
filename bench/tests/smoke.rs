//! CI smoke test of the harness: a real hub in-process, `vhub-bench` for a
//! second with a few sessions, JSON parsed. It asserts that the harness
//! works, that at full speed every frame lost is one the hub dropped and
//! counted (a full queue), and that a window-limited closed loop, which
//! cannot overrun a queue, loses nothing at all — never how fast (shared
//! machines).

use std::process::Command;
use std::sync::Arc;

use certs::tls::{self, TlsOptions};
use certs::{CertParams, Identity};
use hub::auth::NoUsers;
use hub::server::{self, Settings};

/// Frames the hub dropped and counted (tail drops at a full session queue or
/// a full cross-shard queue).
fn hub_drops(server: &server::Server) -> i64 {
    let t = server.switchboard.metrics.totals();
    (t.drop_queue_full + t.handoff_queue_full) as i64
}

fn run_bench(addr: std::net::SocketAddr, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_vhub-bench"))
        .args(["--hub", &addr.to_string(), "--duration", "1", "--json"])
        .args(extra)
        .output()
        .expect("vhub-bench runs");
    assert!(
        out.status.success(),
        "vhub-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// A hub in this process, two shards, anonymous.
fn start_hub(tweak: impl FnOnce(&mut Settings)) -> server::Server {
    let id = Identity::generate(&CertParams::default()).unwrap();
    let ctx = tls::server_context(&id, &TlsOptions::default()).unwrap();
    let mut settings = Settings::for_tests(2);
    tweak(&mut settings);
    server::start(settings, ctx, id.cert_pem(), Vec::new(), Arc::new(NoUsers)).unwrap()
}

/// At full speed a receiver's queue may fill: the hub tail-drops and
/// counts it. The bench's `lost` must be exactly those counted drops.
#[test]
fn pairs_mesh_broadcast_and_idle_run_and_every_loss_is_a_counted_hub_drop() {
    let server = start_hub(|_| {});
    let addr = server.local_addr();

    // Nothing is lost silently: whatever the clients miss, the hub counted.
    let drops = hub_drops(&server);
    let r = run_bench(addr, &["-n", "4", "--size", "imix"]);
    let hub = &r["hub"];
    assert!(hub["frames_received"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(
        hub["lost"].as_i64(),
        Some(hub_drops(&server) - drops),
        "{r}"
    );
    assert_eq!(hub["flooded_to_others"].as_u64(), Some(0), "{r}");
    let base = &r["baseline"];
    assert!(
        base["frames_received"].as_u64().unwrap() > 0,
        "baseline ran: {r}"
    );
    assert!(r["hub_vs_baseline_throughput"].as_f64().unwrap() > 0.0);
    assert!(hub["latency_us_p99"].as_u64().unwrap() >= hub["latency_us_p50"].as_u64().unwrap());

    let drops = hub_drops(&server);
    let r = run_bench(addr, &["-n", "4", "--pattern", "mesh", "--size", "64"]);
    assert!(r["hub"]["frames_received"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(
        r["hub"]["lost"].as_i64(),
        Some(hub_drops(&server) - drops),
        "{r}"
    );

    // Broadcast at a fixed rate: every receiver gets every frame.
    let r = run_bench(
        addr,
        &[
            "-n",
            "3",
            "--pattern",
            "broadcast",
            "--rate",
            "2000",
            "--size",
            "100",
        ],
    );
    let hub = &r["hub"];
    let sent = hub["frames_sent"].as_u64().unwrap();
    assert!(sent > 0);
    assert_eq!(hub["frames_expected"].as_u64(), Some(sent * 2), "{r}");
    assert_eq!(hub["frames_received"].as_u64(), Some(sent * 2), "{r}");

    let r = run_bench(addr, &["-n", "50", "--pattern", "idle"]);
    assert_eq!(r["hub"]["frames_sent"].as_u64(), Some(0));
    assert_eq!(r["hub"]["sessions"].as_u64(), Some(50));
    server.shutdown();
}

/// Each sender keeps at most `WINDOW` frames in flight (closed loop: a new
/// frame only when one was delivered), far below what any queue holds
/// (4096 frames / 1 MiB per session, 256 batches per cross-shard queue),
/// so nothing may be lost or dropped however slow the machine is: no
/// frame missing at a receiver, no drop counted by the hub, none refused
/// by a sender.
#[test]
fn a_window_limited_closed_loop_loses_nothing() {
    const WINDOW: &str = "32";
    let server = start_hub(|_| {});
    let addr = server.local_addr();
    let drops = hub_drops(&server);
    for pattern in ["pairs", "mesh"] {
        let r = run_bench(
            addr,
            &[
                "-n",
                "4",
                "--pattern",
                pattern,
                "--size",
                "1514",
                "--rate",
                "0",
                "--window",
                WINDOW,
                "--baseline",
                "false",
            ],
        );
        let hub = &r["hub"];
        let sent = hub["frames_sent"].as_u64().unwrap();
        assert!(sent > 0, "{pattern}: nothing sent: {r}");
        assert_eq!(
            hub["frames_expected"].as_u64(),
            Some(sent),
            "{pattern}: {r}"
        );
        assert_eq!(
            hub["frames_received"].as_u64(),
            Some(sent),
            "{pattern}: {r}"
        );
        assert_eq!(hub["lost"].as_i64(), Some(0), "{pattern}: {r}");
        assert_eq!(hub["client_drops"].as_u64(), Some(0), "{pattern}: {r}");
        assert_eq!(
            hub_drops(&server) - drops,
            0,
            "{pattern}: the hub dropped frames: {r}"
        );
    }
    server.shutdown();
}
