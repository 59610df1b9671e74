//! Clients that fail over: two real hubs, two real `vnic`s that both list
//! hub 1 then hub 2. Hub 1 is killed (SIGKILL, by its PID): both clients
//! try to resume on it, are refused, move to hub 2 at once with a new
//! session, and ping flows again — the time from the kill to the first
//! reply is printed ("RESULT"), never asserted. Hub 1 then comes back and
//! the clients fail back to it (`--failback`).
//!
//! ```text
//!   root namespace: vhub 1 on :P1, vhub 2 on :P2 (separate certificates and users)
//!     vh30a ── veth ── namespace vh-failover-a: vnic https://10.230.1.1:P1/DEFAULT https://10.230.1.1:P2/DEFAULT
//!     vh30b ── veth ── namespace vh-failover-b: vnic https://10.230.2.1:P1/DEFAULT https://10.230.2.1:P2/DEFAULT
//! ```

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

fn start_vnic(ns: &Ns, ip: &str, hubs: (&Hub, &Hub), pw: &Path, dir: &Path) -> Vnic {
    let second = format!("https://{}:{}/DEFAULT", ns.host_ip, hubs.1.port);
    Vnic::start(
        ns,
        VnicOpts {
            hub_ip: ns.host_ip,
            port: hubs.0.port,
            hub: "DEFAULT",
            user: "alice",
            password_file: pw,
            tap: "vnic0",
            ip: Some(ip),
            dir,
            extra: vec![second, "--failback".into(), "2s".into()],
        },
    )
}

/// The hub a client says it is on (its status file), with its state.
fn on(v: &Vnic) -> (String, String) {
    let s = v.status().unwrap_or_default();
    let get = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    (get("hub"), get("state"))
}

fn on_hub(v: &Vnic, ns: &Ns, hub: &Hub) -> bool {
    let want = format!("https://{}:{}/DEFAULT", ns.host_ip, hub.port);
    on(v) == (want, "connected".to_owned())
}

/// Seconds from `t` to the first reply that came after the gap the
/// outage made (or to the first reply after `t`, if there was no gap).
fn back_after(r: &PingReport, t: f64, interval: f64) -> f64 {
    let ts: Vec<f64> = r.replies.iter().map(|(ts, _)| *ts).collect();
    ts.windows(2)
        .find(|w| w[1] > t && w[1] - w[0] > 1.5 * interval)
        .map(|w| w[1])
        .or_else(|| ts.iter().copied().find(|x| *x > t))
        .map_or(f64::INFINITY, |x| x - t)
}

#[test]
fn both_clients_fail_over_to_the_second_hub_and_back() {
    if !require_root("both_clients_fail_over_to_the_second_hub_and_back") {
        return;
    }
    let _lock = TestLock::take();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let mut hub1 = Hub::start_on(dir.path(), &dir.path().join("certs1"), free_port());
    let hub2 = Hub::start_on(dir.path(), &dir.path().join("certs2"), free_port());
    let a = Ns::new("failover", 'a', 30, 1);
    let b = Ns::new("failover", 'b', 30, 2);
    let va = start_vnic(&a, "10.77.0.11/24", (&hub1, &hub2), &pw, dir.path());
    let vb = start_vnic(&b, "10.77.0.12/24", (&hub1, &hub2), &pw, dir.path());
    va.wait_connected(T);
    vb.wait_connected(T);
    assert!(
        on_hub(&va, &a, &hub1) && on_hub(&vb, &b, &hub1),
        "{:?}",
        on(&va)
    );
    assert!(ping_works(&a, "10.77.0.12", T), "a cannot ping b");

    // Ping through the kill: -i 0.1 for 12 s.
    let mut ping = a.spawn(
        "ping",
        &["ping", "-D", "-i", "0.1", "-c", "120", "10.77.0.12"],
        &dir.path().join("ping.log"),
    );
    std::thread::sleep(Duration::from_secs(2));
    let t_kill = unix_now();
    let t0 = Instant::now();
    hub1.crash();
    let moved = wait_until(T, || on_hub(&va, &a, &hub2) && on_hub(&vb, &b, &hub2));
    let both_moved = t0.elapsed();
    assert!(
        moved,
        "the clients did not fail over:\n{}\n{}",
        va.proc.output(),
        vb.proc.output()
    );
    ping.wait_exit(Duration::from_secs(40)).expect("ping ends");
    let r = parse_ping(&ping.output());
    eprintln!(
        "RESULT failover: hub 1 killed; both clients on hub 2 after {:.3} s; ping flowing \
         again {:.3} s after the kill; ping {} sent / {} received (-i 0.1)",
        both_moved.as_secs_f64(),
        back_after(&r, t_kill, 0.1),
        r.transmitted,
        r.received
    );
    assert!(ping_works(&a, "10.77.0.12", T), "no ping on hub 2");
    for v in [&va, &vb] {
        assert!(v.counter("failovers").unwrap() >= 1);
        let log = v.proc.output();
        assert!(log.contains("trying https://"), "{log}");
        assert!(log.contains("failed over to https://"), "{log}");
    }
    // `vnic status` says where it is and when it moved.
    let out = run(&[
        vnic_bin().to_str().unwrap(),
        "status",
        "--status-file",
        va.status_file.to_str().unwrap(),
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("hub 2 of 2") && table.contains("1 failover(s), the last"),
        "{table}"
    );

    // Hub 1 comes back: within a failback interval or two both return.
    let t0 = Instant::now();
    hub1.start_again();
    let back = wait_until(T, || on_hub(&va, &a, &hub1) && on_hub(&vb, &b, &hub1));
    assert!(
        back,
        "the clients did not fail back:\n{}\n{}",
        va.proc.output(),
        vb.proc.output()
    );
    assert!(ping_works(&a, "10.77.0.12", T), "no ping after failback");
    eprintln!(
        "RESULT failback: both clients back on hub 1 and ping through {:.3} s after it restarted (--failback 2s)",
        t0.elapsed().as_secs_f64()
    );
    let log = va.proc.output();
    eprintln!("----- vnic a -----\n{log}");
    assert!(log.contains("answers again: moving back to it"), "{log}");
}
