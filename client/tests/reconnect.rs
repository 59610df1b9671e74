//! Links that die, and come back: the session resumes (or, when the hub
//! forgot it, starts over) without anyone restarting `vnic`, and no frame
//! is lost on the way.
//!
//! Each test runs `ping -i 0.05` from namespace a to namespace b through
//! the hub while the link of a is cut, then checks the counters of both
//! clients (status files) and of the hub (metrics): nothing lost, nothing
//! tail-dropped. It prints ping's numbers and the time from the link
//! being back to the first reply ("RESULT" lines).

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

impl Lan {
    /// Runs `ping -D -i 0.05` from a to b for `secs` seconds; after 2 s
    /// calls `cut`, which breaks the link and returns (as Unix time) when
    /// the link is back. Returns the report and that time.
    fn ping_through(&self, secs: u32, cut: impl FnOnce() -> f64) -> (PingReport, f64, f64) {
        let count = (secs * 20).to_string();
        let mut ping = self.a.spawn(
            "ping",
            &["ping", "-D", "-i", "0.05", "-c", &count, "10.77.0.12"],
            &self.dir.path().join("ping.log"),
        );
        std::thread::sleep(Duration::from_secs(2));
        let t_cut = unix_now();
        let t_up = cut();
        ping.wait_exit(Duration::from_secs(u64::from(secs) + 30))
            .expect("ping ends");
        (parse_ping(&ping.output()), t_cut, t_up)
    }

    /// Nothing lost on either client or on the hub.
    fn assert_nothing_lost(&self) {
        eprintln!("----- vnic a -----\n{}", self.va().proc.output());
        for v in [self.va(), self.vb()] {
            let s = v.status().expect("status file");
            for key in ["lost_on_resume", "rx_gaps", "tail_drops", "evicted"] {
                assert_eq!(s[key].as_u64(), Some(0), "{key} of {}: {s:#}", v.proc.label);
            }
        }
        assert_eq!(
            self.hub.metric("vhub_lost_on_resume_frames_total").unwrap(),
            0.0
        );
        assert_eq!(
            self.hub
                .metric("vhub_frames_dropped_total{reason=\"queue_full\"}")
                .unwrap(),
            0.0
        );
    }
}

/// Seconds from `t_up` to the first reply that arrived after it.
fn recovery(r: &PingReport, t_up: f64) -> f64 {
    r.replies
        .iter()
        .find(|(ts, _)| *ts >= t_up)
        .map(|(ts, _)| ts - t_up)
        .unwrap_or(f64::INFINITY)
}

/// The longest time without a reply (the outage as ping saw it).
fn longest_gap(r: &PingReport) -> f64 {
    r.replies
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .fold(0.0, f64::max)
}

fn report(what: &str, r: &PingReport, t_cut: f64, t_up: f64, lan: &Lan) {
    let a = lan.va().status().unwrap();
    eprintln!(
        "RESULT {what}: link down {:.2} s; first reply {:.3} s after the link was back; \
         longest gap between replies {:.3} s; ping {} sent / {} received; \
         vnic a: resumes {}, re-sent {}, lost {}, tail drops {}; hub: resumes {}, re-sent {}, lost on resume {}",
        t_up - t_cut,
        recovery(r, t_up),
        longest_gap(r),
        r.transmitted,
        r.received,
        a["resumes"],
        a["resent"],
        a["lost_on_resume"],
        a["tail_drops"],
        lan.hub.metric("vhub_resumes_total").unwrap(),
        lan.hub.metric("vhub_resent_frames_total").unwrap(),
        lan.hub.metric("vhub_lost_on_resume_frames_total").unwrap(),
    );
}

#[test]
fn tcp_connection_killed_with_ss_resumes_without_loss() {
    if !require_root("tcp_connection_killed_with_ss_resumes_without_loss") {
        return;
    }
    require_tool("ss", "iproute2");
    let _lock = TestLock::take();
    let lan = Lan::new("cut", 2, "");
    let port = lan.hub.port.to_string();
    let host = lan.a.host_ip.to_string();
    let (r, t_cut, t_up) = lan.ping_through(8, || {
        lan.a
            .exec_ok(&["ss", "-K", "dst", &host, "dport", "=", &port]);
        unix_now()
    });
    report("ss -K", &r, t_cut, t_up, &lan);
    assert!(
        wait_until(T, || lan.va().counter("resumes").is_ok_and(|n| n >= 1)),
        "no resume:\n{}",
        lan.va().proc.output()
    );
    assert!(recovery(&r, t_up) < 5.0, "ping did not come back: {r:?}");
    assert_eq!(r.received, r.transmitted, "pings lost: {r:?}");
    lan.assert_nothing_lost();
}

#[test]
fn veth_down_for_3s_resumes_without_loss() {
    if !require_root("veth_down_for_3s_resumes_without_loss") {
        return;
    }
    let _lock = TestLock::take();
    let lan = Lan::new("down", 3, "");
    // 3 s as the issue asks; 1.5 s is shorter than the keep-alive timeout
    // (the link comes back before vnic gives up on the old connection),
    // 6 s is longer (vnic is already retrying with backoff).
    for (n, outage) in [3000u64, 1500, 6000].into_iter().enumerate() {
        let (r, t_cut, t_up) = lan.ping_through(8 + outage as u32 / 1000, || {
            lan.a.link(false);
            std::thread::sleep(Duration::from_millis(outage));
            lan.a.link(true);
            unix_now()
        });
        report(
            &format!("veth down {} s", outage as f64 / 1000.0),
            &r,
            t_cut,
            t_up,
            &lan,
        );
        assert!(
            wait_until(T, || lan
                .va()
                .counter("resumes")
                .is_ok_and(|r| r > n as u64)),
            "no resume:\n{}",
            lan.va().proc.output()
        );
        assert!(recovery(&r, t_up) < 5.0, "ping did not come back: {r:?}");
        // End to end, every echo request sent during the outage was
        // delivered and answered: the requests vnic a kept and re-sent,
        // and the replies the hub kept for a and re-sent at the resume,
        // which arrive right behind (often in the same read as) the
        // handshake response.
        assert_eq!(r.received, r.transmitted, "ping lost replies: {r:?}");
        lan.assert_nothing_lost();
    }
}

#[test]
fn silent_link_is_detected_by_keepalive_and_recovered() {
    if !require_root("silent_link_is_detected_by_keepalive_and_recovered") {
        return;
    }
    require_tool("nft", "nftables");
    let _lock = TestLock::take();
    let lan = Lan::new("silent", 4, "");
    let rules = format!(
        "table inet vnictest {{\n\
           chain in {{ type filter hook input priority 0; ip saddr {h} tcp sport {p} drop; }}\n\
           chain out {{ type filter hook output priority 0; ip daddr {h} tcp dport {p} drop; }}\n\
         }}\n",
        h = lan.a.host_ip,
        p = lan.hub.port
    );
    let rules_file = lan.dir.path().join("blackhole.nft");
    std::fs::write(&rules_file, rules).unwrap();
    let deaths_before = lan.va().counter("link_deaths").unwrap();
    let (r, t_cut, t_up) = lan.ping_through(14, || {
        // Traffic to and from the hub vanishes; the TCP connection stays
        // "established" as far as the kernel knows.
        lan.a.exec_ok(&["nft", "-f", rules_file.to_str().unwrap()]);
        let t0 = std::time::Instant::now();
        let detected = wait_until(Duration::from_secs(10), || {
            lan.va()
                .counter("link_deaths")
                .is_ok_and(|n| n > deaths_before)
        });
        let detection = t0.elapsed();
        eprintln!("RESULT silent link detected by keep-alive after {detection:?} (timeout 3 s)");
        assert!(
            detected,
            "keep-alive did not notice:\n{}",
            lan.va().proc.output()
        );
        std::thread::sleep(Duration::from_secs(2));
        lan.a
            .exec_ok(&["nft", "delete", "table", "inet", "vnictest"]);
        unix_now()
    });
    report("blackhole", &r, t_cut, t_up, &lan);
    assert!(
        wait_until(T, || lan.va().counter("resumes").is_ok_and(|n| n >= 1)
            && lan.va().state() == "connected"),
        "not recovered:\n{}",
        lan.va().proc.output()
    );
    assert!(ping_works(&lan.a, "10.77.0.12", T));
    lan.assert_nothing_lost();
}

#[test]
fn hub_restart_gives_a_new_session_and_traffic_flows_again() {
    if !require_root("hub_restart_gives_a_new_session_and_traffic_flows_again") {
        return;
    }
    let _lock = TestLock::take();
    let mut lan = Lan::new("restart", 5, "");
    let (pid_a, pid_b) = (lan.va().proc.pid(), lan.vb().proc.pid());

    // A crash: the clients see the connection die, try to resume, get 410
    // from the new hub, and open new sessions by themselves.
    let t0 = std::time::Instant::now();
    lan.hub.restart();
    let back = wait_until(T, || {
        [lan.va(), lan.vb()]
            .iter()
            .all(|v| v.counter("new_sessions").is_ok_and(|n| n >= 1) && v.state() == "connected")
    });
    assert!(
        back,
        "no new session:\n{}\n{}",
        lan.va().proc.output(),
        lan.vb().proc.output()
    );
    assert!(
        ping_works(&lan.a, "10.77.0.12", T),
        "no traffic after the restart"
    );
    eprintln!(
        "RESULT hub crash + restart: both clients on new sessions and ping through after {:?}",
        t0.elapsed()
    );
    assert!(lan
        .va()
        .proc
        .output()
        .contains("new session: the hub no longer knows the old one"));
    assert!(
        lan.hub
            .metric("vhub_handshakes_total{result=\"resume_unknown\"}")
            .unwrap()
            >= 1.0
    );

    // A clean stop: the hub says CLOSE(shutdown); the clients start over too.
    if let Some(p) = lan.hub.proc.as_mut() {
        p.stop();
    }
    lan.hub.restart();
    let back = wait_until(T, || {
        [lan.va(), lan.vb()]
            .iter()
            .all(|v| v.counter("new_sessions").is_ok_and(|n| n >= 2) && v.state() == "connected")
    });
    assert!(
        back,
        "no new session after a clean restart:\n{}",
        lan.va().proc.output()
    );
    assert!(ping_works(&lan.b, "10.77.0.11", T));
    assert!(lan.va().proc.output().contains("hub shutting down"));

    // The same processes all along.
    let va = lan.va.as_mut().unwrap();
    assert!(va.proc.try_exit().is_none());
    assert_eq!((va.proc.pid(), lan.vb().proc.pid()), (pid_a, pid_b));
}

#[test]
fn kicked_with_vhub_ctl_the_client_reconnects_by_itself() {
    if !require_root("kicked_with_vhub_ctl_the_client_reconnects_by_itself") {
        return;
    }
    let _lock = TestLock::take();
    let mut lan = Lan::new("kick", 20, "");
    let sessions = || -> Vec<serde_json::Value> {
        let out = lan.hub.ctl(&["--json", "sessions"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["sessions"].as_array().unwrap().clone()
    };
    // a's session, found by the address it connects from.
    let a_ip = format!("{}:", lan.a.ns_ip);
    let of_a = |list: &[serde_json::Value]| -> Vec<String> {
        list.iter()
            .filter(|s| s["remote"].as_str().unwrap().starts_with(&a_ip))
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = sessions();
    assert_eq!(before.len(), 2, "{before:?}");
    let [old] = of_a(&before).try_into().expect("one session of a");

    let out = lan.hub.ctl(&["kick", &old]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The client is told, opens a new session by itself, traffic flows.
    let back = wait_until(T, || {
        lan.va().counter("new_sessions").is_ok_and(|n| n >= 1) && lan.va().state() == "connected"
    });
    assert!(back, "vnic did not come back:\n{}", lan.va().proc.output());
    assert!(
        lan.va()
            .proc
            .output()
            .contains("kicked by an administrator"),
        "{}",
        lan.va().proc.output()
    );
    assert!(
        ping_works(&lan.a, "10.77.0.12", T),
        "no traffic after the kick"
    );
    let after = sessions();
    let now = of_a(&after);
    assert_eq!(now.len(), 1, "{after:?}");
    assert_ne!(now[0], old, "the kicked session is still there");
    // b was not touched.
    assert_eq!(lan.vb().counter("new_sessions").unwrap(), 0);
    assert!(
        lan.va.as_mut().unwrap().proc.try_exit().is_none(),
        "vnic exited"
    );
}
