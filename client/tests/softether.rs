//! `vnic` as a SoftEther VPN client: the real Debian `vpnserver`
//! (5.01), a hub and a password user made with `vpncmd`, one `vnic
//! connect softether://…` and one real `vpnclient` on the same hub, each
//! in a namespace of its own. Ping and iperf3 both ways between them
//! (speeds printed as "RESULT", never asserted); the server ends vnic's
//! session (`SessionDisconnect`) and vnic logs in again at once ("no
//! resume, new session"); then a wrong password: `vnic` exits 3 at once
//! and the server saw exactly one login.
//!
//! ```text
//!   root namespace: vpnserver on 0.0.0.0:PORT (its own mount namespace:
//!                   /var/lib and /var/log are the test's temp dirs)
//!     vh53a ── veth ── namespace vh-se-a: vnic softether://10.253.1.1:PORT/TEST, TAP vse0 10.60.0.2/24
//!     vh53b ── veth ── namespace vh-se-b: vpnclient (own mount namespace), TAP vpn_se0 10.60.0.3/24
//! ```
//!
//! The Debian packages keep their state in /var/lib/softether (hard-coded),
//! so each daemon runs under `unshare -m` with the test's directories bound
//! over /var/lib and /var/log: nothing of the host's is read or written
//! (`common/softether.rs`, shared with the hub's SoftEther test
//! `softether_hub.rs`). The server starts with its default listeners (443, 992, 1194, 5555);
//! the test adds PORT through 5555 and deletes the four defaults at once.
//! Both daemons fork a watchdog: every process is stopped by its PID.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::softether::*;
use common::*;

const T: Duration = Duration::from_secs(30);
const HUB: &str = "TEST";
const USER: &str = "u";
const PASSWORD: &str = "se-secret";

/// Starts the server, moves it to `port` and makes hub TEST with user u.
fn start_server(state: &Path, port: u16) -> Daemon {
    let server = Daemon::start("vpnserver", VPNSERVER, state, None);
    let up = wait_until(T, || {
        server_cmd(5555, &["ListenerCreate", &port.to_string()])
            .status
            .success()
    });
    assert!(
        up,
        "vpnserver did not answer on 5555:\n{}",
        server.proc.output()
    );
    for p in ["443", "992", "1194", "5555"] {
        let o = server_cmd(port, &["ListenerDelete", p]);
        assert!(o.status.success(), "ListenerDelete {p}: {}", text(&o));
    }
    let o = server_cmd(port, &["HubCreate", HUB, "/PASSWORD:hubadmin"]);
    assert!(o.status.success(), "HubCreate: {}", text(&o));
    let batch = state.join("user.vpncmd");
    std::fs::write(
        &batch,
        format!(
            "Hub {HUB}\nUserCreate {USER} /GROUP:none /REALNAME:none /NOTE:none\n\
             UserPasswordSet {USER} /PASSWORD:{PASSWORD}\n"
        ),
    )
    .unwrap();
    let target = format!("localhost:{port}");
    let input = format!("/IN:{}", batch.display());
    let o = run_any(&[VPNCMD, &target, "/SERVER", &input]);
    assert!(
        o.status.success() && !text(&o).contains("Error occurred"),
        "creating user {USER}: {}",
        text(&o)
    );
    server
}

/// The real `vpnclient` in `ns`, logged in to the hub, its TAP
/// `vpn_se0` with `ip`.
fn start_vpnclient<'a>(ns: &'a Ns, state: &Path, port: u16, ip: &str) -> VpnClient<'a> {
    let client = VpnClient::start(ns, state);
    client.add_account(&Account {
        name: "t1",
        nic: "se0",
        // "/tcp": no NAT-T race and no HTTPS probe (PROTOCOL-NOTES.md §9).
        server: format!("{}:{port}/tcp", ns.host_ip),
        hub: HUB,
        user: USER,
        password: PASSWORD,
        max_tcp: 1,
    });
    client.connect("t1");
    client.wait_established("t1", T);
    client.tap_up("se0", ip);
    client
}

/// `vnic connect softether://…` in `ns` (TOFU with a known-hubs file).
fn start_vnic(ns: &Ns, dir: &Path, port: u16, tap: &str, ip: Option<&str>, pw: &Path) -> Vnic {
    let status_file = dir.join(format!("{tap}.json"));
    let url = format!("softether://{}:{port}/{HUB}", ns.host_ip);
    let bin = vnic_bin();
    let known = dir.join("known_hubs");
    let mut args: Vec<String> = vec![
        bin.display().to_string(),
        "connect".into(),
        url,
        "--user".into(),
        USER.into(),
        "--password-file".into(),
        pw.display().to_string(),
        "--tap".into(),
        tap.into(),
        "--known-hubs".into(),
        known.display().to_string(),
        "--max-backoff".into(),
        "2s".into(),
        "--status-file".into(),
        status_file.display().to_string(),
    ];
    if let Some(ip) = ip {
        args.extend(["--ip".into(), ip.into()]);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let proc = ns.spawn(
        &format!("vnic {tap}"),
        &argv,
        &dir.join(format!("vnic-{tap}.log")),
    );
    Vnic {
        proc,
        status_file,
        tap: tap.into(),
    }
}

/// Lines of the server's security logs (`log/softether/security_log/`,
/// one line per event) with `needle`.
fn server_log_lines(state: &Path, needle: &str) -> Vec<String> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    let mut files = Vec::new();
    walk(&state.join("log/softether/security_log"), &mut files);
    files
        .iter()
        .flat_map(|f| {
            let text = String::from_utf8_lossy(&std::fs::read(f).unwrap_or_default()).into_owned();
            let name = f.strip_prefix(state).unwrap_or(f).display().to_string();
            text.lines()
                .filter(|l| l.contains(needle))
                .map(|l| format!("{name}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn vnic_and_a_real_softether_client_share_a_real_vpnserver_hub() {
    if !require_root("vnic_and_a_real_softether_client_share_a_real_vpnserver_hub") {
        return;
    }
    for (tool, package) in [
        ("vpnserver", "softether-vpnserver"),
        ("vpnclient", "softether-vpnclient"),
        ("vpncmd", "softether-vpncmd"),
        ("iperf3", "iperf3"),
        ("unshare", "util-linux"),
    ] {
        require_tool(tool, package);
    }
    let _lock = TestLock::take();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let server_state = d.join("server");
    let server = start_server(&server_state, port);

    let a = Ns::new("se", 'a', 53, 1);
    let b = Ns::new("se", 'b', 53, 2);
    let pw = d.join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let vnic = start_vnic(&a, d, port, "vse0", Some("10.60.0.2/24"), &pw);
    let _vpnclient = start_vpnclient(&b, &d.join("client"), port, "10.60.0.3/24");
    vnic.wait_connected(T);
    let out = vnic.proc.output();
    assert!(out.contains("SoftEther session"), "{out}");
    assert!(
        out.contains("first contact"),
        "TOFU remembers the server: {out}"
    );

    // Ping both ways through the SoftEther hub.
    assert!(
        ping_works(&a, "10.60.0.3", T),
        "vnic cannot ping the SoftEther client:\n{}\n{}",
        vnic.proc.output(),
        server.proc.output()
    );
    assert!(
        ping_works(&b, "10.60.0.2", T),
        "the SoftEther client cannot ping vnic"
    );
    ping_and_iperf3_both_ways(&a, "10.60.0.2", &b, "10.60.0.3", d, "the real vpnserver");
    let st = vnic.read_status().unwrap();
    assert_eq!(st["offload"], false, "{st}");
    assert!(status_counter(&st, "rx_frames").unwrap() > 0, "{st}");

    // The server ends vnic's session (an administrator's
    // SessionDisconnect): no resume, a new session at once.
    let sid = st["session"].as_str().expect("session name").to_owned();
    let batch = d.join("disconnect.vpncmd");
    std::fs::write(&batch, format!("Hub {HUB}\nSessionDisconnect {sid}\n")).unwrap();
    let target = format!("localhost:{port}");
    let o = run_any(&[
        VPNCMD,
        &target,
        "/SERVER",
        &format!("/IN:{}", batch.display()),
    ]);
    assert!(o.status.success(), "SessionDisconnect {sid}: {}", text(&o));
    let cut = Instant::now();
    let renewed = wait_until(T, || {
        vnic.proc
            .output()
            .contains("SoftEther: no resume, new session")
            && vnic.state() == "connected"
            && vnic
                .status()
                .and_then(|s| s["session"].as_str().map(|n| n != sid))
                .unwrap_or(false)
    });
    assert!(
        renewed,
        "no new session after the server ended the old one:\n{}",
        vnic.proc.output()
    );
    assert!(ping_works(&a, "10.60.0.3", T), "no ping on the new session");
    println!(
        "RESULT server ended session {sid}: new session and ping again after {:?}",
        cut.elapsed()
    );
    assert!(vnic.counter("new_sessions").unwrap() >= 1);
    println!("vnic's lines so far:\n{}", vnic.proc.output());

    // A wrong password: exit 3 at once, one login seen by the server.
    const FAILED: &str = "User authentication failed";
    let failed_before = server_log_lines(&server_state, FAILED).len();
    let bad = d.join("bad-pw");
    std::fs::write(&bad, "not the password\n").unwrap();
    let mut wrong = start_vnic(&a, d, port, "vse1", None, &bad);
    let started = Instant::now();
    let status = wrong.proc.wait_exit(T);
    let took = started.elapsed();
    let out = wrong.proc.output();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(3),
        "a wrong password must end vnic with exit 3:\n{out}"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}:\n{out}");
    assert!(out.contains("wrong user name or password"), "{out}");
    assert!(out.contains("not retrying"), "{out}");
    assert_eq!(
        out.matches("connecting to").count(),
        1,
        "one attempt, no retry loop:\n{out}"
    );
    // The server's log, where it has one line per failed login.
    // The server's security log has one line per failed login (it may
    // write it a moment later).
    let mut lines = Vec::new();
    wait_until(Duration::from_secs(5), || {
        lines = server_log_lines(&server_state, FAILED);
        lines.len() > failed_before
    });
    let failed = lines.len() - failed_before;
    println!(
        "RESULT wrong password: exit 3 after {took:?}; server logged {failed} failed login(s)"
    );
    assert_eq!(
        failed,
        1,
        "one login attempt, no retry loop:\n{}",
        lines.join("\n")
    );

    // The good client is still there.
    assert!(ping_works(&a, "10.60.0.3", T));
}
