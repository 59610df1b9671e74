//! Two `vnic`s in two network namespaces join one virtual hub: the kernel's
//! `ping` crosses the hub both ways (ARP resolved through the hub), `iperf3`
//! runs between the TAP addresses, and a third namespace on another virtual
//! hub sees none of it. Plus the ICMP keep-alive and `vnic status`.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn two_vnics_share_a_lan_and_another_hub_sees_nothing() {
    if !require_root("two_vnics_share_a_lan_and_another_hub_sees_nothing") {
        return;
    }
    require_tool("ping", "iputils-ping");
    require_tool("iperf3", "iperf3");
    let _lock = TestLock::take();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let hub = Hub::start(dir.path(), &dir.path().join("certs"));
    let a = Ns::new("lan", 'a', 1, 1);
    let b = Ns::new("lan", 'b', 1, 2);
    let c = Ns::new("lan", 'c', 1, 3);
    let start = |ns: &Ns, hubname: &str, user: &str, ip: &str, extra: Vec<String>| {
        Vnic::start(
            ns,
            VnicOpts {
                hub_ip: ns.host_ip,
                port: hub.port,
                hub: hubname,
                user,
                password_file: &pw,
                tap: "vnic0",
                ip: Some(ip),
                dir: dir.path(),
                extra,
            },
        )
    };
    // a polls after traffic (`--busy-poll`): pings and iperf3 must cross
    // with its event loop polling instead of sleeping.
    let va = start(
        &a,
        "DEFAULT",
        "alice",
        "10.77.0.11/24",
        vec!["--busy-poll".into(), "1ms".into()],
    );
    let vb = start(
        &b,
        "DEFAULT",
        "alice",
        "10.77.0.12/24",
        // The ICMP keep-alive rides along: b pings a through the LAN.
        vec![
            "--icmp-keepalive".into(),
            "10.77.0.11".into(),
            "--icmp-interval".into(),
            "300ms".into(),
        ],
    );
    let vc = start(&c, "OTHER", "bob", "10.77.0.13/24", vec![]);
    for v in [&va, &vb, &vc] {
        v.wait_connected(T);
    }

    // ping both ways through the hub (ARP included).
    assert!(ping_works(&a, "10.77.0.12", T), "a cannot ping b");
    let out = a.exec_ok(&["ping", "-c", "20", "-i", "0.05", "10.77.0.12"]);
    let ab = parse_ping(&String::from_utf8_lossy(&out.stdout));
    let out = b.exec_ok(&["ping", "-c", "20", "-i", "0.05", "10.77.0.11"]);
    let ba = parse_ping(&String::from_utf8_lossy(&out.stdout));
    assert_eq!((ab.received, ba.received), (20, 20));
    eprintln!(
        "RESULT ping a->b rtt min/avg/max {:?} ms, b->a {:?} ms",
        ab.rtt.unwrap(),
        ba.rtt.unwrap()
    );

    // iperf3 TCP for about 3 s.
    let mut server = iperf3_server(&b, "10.77.0.12", &dir.path().join("iperf3-s.log"));
    let out = a.exec_ok(&["iperf3", "-c", "10.77.0.12", "-t", "3", "-J"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    let retr = report["end"]["sum_sent"]["retransmits"]
        .as_u64()
        .unwrap_or(0);
    eprintln!(
        "RESULT iperf3 a->b over the hub: {:.0} Mbit/s received ({retr} TCP retransmits)",
        bps / 1e6
    );
    assert!(bps > 0.0, "iperf3 moved nothing: {report}");
    server.wait_exit(Duration::from_secs(10));

    // The third namespace, on hub OTHER, cannot reach them ...
    let out = c.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.77.0.11"]);
    assert!(
        !out.status.success(),
        "c (hub OTHER) reached a (hub DEFAULT)"
    );
    // ... and sees none of their broadcasts: a floods broadcast pings, b's
    // TAP receives them, c's does not.
    let c_before = c.rx_packets("vnic0");
    let b_before = b.rx_packets("vnic0");
    let _ = a.exec(&[
        "ping",
        "-b",
        "-c",
        "30",
        "-i",
        "0.02",
        "-W",
        "1",
        "10.77.0.255",
    ]);
    assert!(
        wait_until(T, || b.rx_packets("vnic0") >= b_before + 30),
        "b did not receive a's 30 broadcasts"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        c.rx_packets("vnic0"),
        c_before,
        "frames crossed from hub DEFAULT to hub OTHER"
    );

    // The ICMP keep-alive of b got answers from a.
    let replies = wait_until(T, || {
        vb.status()
            .and_then(|s| s["icmp"]["echo_replies"].as_u64())
            .is_some_and(|n| n >= 2)
    });
    let st = vb.status().unwrap();
    eprintln!("RESULT icmp keep-alive of b: {}", st["icmp"]);
    assert!(replies, "no ICMP keep-alive replies: {}", st["icmp"]);

    // `vnic status` shows a table with the counters.
    let out = run(&[
        vnic_bin().to_str().unwrap(),
        "status",
        "--status-file",
        va.status_file.to_str().unwrap(),
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    for row in [
        "state  connected",
        "frames out",
        "frames in",
        "re-sent",
        "lost  0",
        "tail drops  0",
        "reconnects  0",
    ] {
        assert!(table.contains(row), "{row:?} missing from:\n{table}");
    }
    eprintln!("{table}");

    // SIGUSR1 logs the same line.
    va.proc.signal(libc::SIGUSR1);
    assert!(wait_until(T, || va
        .proc
        .output()
        .contains("vnic0 connected (direct)")));

    // Ctrl-C: a CLOSE(normal) to the hub, exit 0.
    let mut va = va;
    va.proc.signal(libc::SIGINT);
    let status = va.proc.wait_exit(T).expect("vnic exits on SIGINT");
    assert!(status.success(), "exit status {status:?}");
    assert!(va.proc.output().contains("the hub was told (CLOSE normal)"));
    assert!(
        wait_until(T, || hub
            .log()
            .contains("vnic stopped: interrupted (SIGINT)")),
        "hub log:\n{}",
        hub.log()
    );
    drop(vc);
    drop(vb);
}

/// A hub that does not grant offload (`[session] offload = false`): both
/// vnics still open their TAPs with TSO, so the kernel hands them 64 KiB
/// super frames, which each vnic must cut into plain frames itself (and
/// give its TAP frames behind a zero header). If it did not, the hub would
/// refuse every super frame as too large and TCP would stall.
#[test]
fn vnic_cuts_super_frames_for_a_hub_without_offload() {
    if !require_root("vnic_cuts_super_frames_for_a_hub_without_offload") {
        return;
    }
    require_tool("iperf3", "iperf3");
    let _lock = TestLock::take();
    let lan = Lan::new("nooff", 44, "offload = false");
    for v in [lan.va(), lan.vb()] {
        let status = v.status().expect("vnic status");
        assert_eq!(status["offload"], false, "the hub refused offload");
    }
    let mut server = lan.iperf3_server();
    let out = lan
        .a
        .exec_ok(&["iperf3", "-c", "10.77.0.12", "-t", "2", "-J"]);
    server.wait_exit(T);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let received = report["end"]["sum_received"]["bytes"]
        .as_f64()
        .unwrap_or(0.0);
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    // The status file is written once a second.
    std::thread::sleep(Duration::from_millis(1200));
    let cut = lan.va().counter("segments_cut").unwrap();
    let tx = lan.va().counter("tx_frames").unwrap();
    eprintln!(
        "RESULT no offload at the hub: iperf3 a->b {:.0} Mbit/s, {received} bytes; vnic a cut {cut} frames from super frames ({tx} frames sent)",
        bps / 1e6
    );
    // More than a few MB crossed, and most of it came cut by vnic a: with
    // TSO the kernel sends nearly all bulk data as super frames.
    assert!(received > 10e6, "iperf3 moved {received} bytes: {report}");
    assert!(
        cut as f64 * 1448.0 > received / 2.0,
        "vnic a cut {cut} frames for {received} bytes"
    );
    // Nothing refused or dropped on the way, and the session held (a super
    // frame sent uncut would end it: larger than the session allows).
    for key in ["bad_offload", "oversize", "tail_drops", "reconnects"] {
        assert_eq!(lan.va().counter(key).unwrap(), 0, "{key} of vnic a");
    }
    // The hub had nothing to cut: every frame arrived plain.
    assert_eq!(lan.hub.metric("vhub_gso_segments_total").unwrap(), 0.0);
}
