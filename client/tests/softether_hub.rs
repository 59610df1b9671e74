//! The hub side of SoftEther compatibility: real Debian SoftEther VPN
//! clients (`vpnclient` 5.01) log in to a vhub hub on its normal TLS port,
//! beside a `vnic` speaking vhub's own protocol.
//!
//! - `real_softether_clients_and_vnic_share_a_vhub_hub`: two vpnclients
//!   and a vnic on one hub. Ping and iperf3 between vnic and a vpnclient
//!   both ways (speeds printed as "RESULT", never asserted), ping between
//!   the two vpnclients; `vhub ctl sessions` and the metrics name the
//!   protocol. Then one vpnclient's TCP connection is killed (`ss -K`):
//!   the hub ends the session at once and refuses the client's re-attach
//!   with error 13, and the client logs in again by itself after its 15 s
//!   RetryInterval (the time is printed, capped at 60 s). Whether traffic
//!   flows on that new session is printed, not asserted: the Debian 5.01
//!   client drops the socket of every session after it lost one (with
//!   the real vpnserver too, PROTOCOL-NOTES.md §8.3). A restarted
//!   vpnclient logging in as the same user then reaches the others.
//! - `a_real_softether_client_gets_login_errors_and_does_not_loop`: a
//!   wrong password (error 9), an unknown hub (8) and a hub with
//!   `softether = false` (12), as the client's own log reports them; the
//!   hub counts at most a few failed handshakes in 20 s (the client
//!   retries every 15 s).
//!
//! ```text
//!   root namespace: vhub on 0.0.0.0:PORT; hubs DEFAULT, OTHER (softether = false), lab
//!     vh45a ── veth ── namespace vh-seh-a: vnic https://10.245.1.1:PORT/lab (user vn), TAP vnic0 10.61.0.1/24
//!     vh45b ── veth ── namespace vh-seh-b: vpnclient, 10.245.2.1:PORT hub LAB (user sea), TAP vpn_se0 10.61.0.2/24
//!     vh45c ── veth ── namespace vh-seh-c: vpnclient, 10.245.3.1:PORT hub LAB (user seb), TAP vpn_se0 10.61.0.3/24
//!   (the login errors: vh46a ── veth ── namespace vh-sehe-a: one vpnclient, three accounts)
//! ```
//!
//! The clients connect to the hub's veth address, not to loopback, and
//! without `/tcp` after it: their first connection makes the HTTPS probe
//! (`GET /` with `X-VPN: 1`, PROTOCOL-NOTES.md §3.2) before the login
//! (a probe the client did not like would fail the login, error 1).
//! They type the hub's name in upper case (`LAB`): the hub matches it
//! without case. The daemons keep their state in the test's directory and
//! reach nothing outside it (see `common/softether.rs`); the namespaces
//! have no default route.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::softether::*;
use common::*;

const T: Duration = Duration::from_secs(30);
/// The SoftEther users' password (no spaces: vpncmd splits `/CMD` lines).
const SE_PASSWORD: &str = "se-secret-1";
/// The longest a killed client may take to come back (expected ~15 s).
const RECOVERY_CAP: Duration = Duration::from_secs(60);

/// Appended to the harness's config, after `[[hub]] name = "OTHER"`:
/// OTHER refuses SoftEther logins; hub `lab` (lower case) takes them.
const EXTRA_CONFIG: &str = "softether = false\n\n[[hub]]\nname = \"lab\"\n";

/// Users made with `vhub user add` before the hub starts: name, hub, and
/// whether they may log in from SoftEther (`--softether`).
const USERS: [(&str, &str, bool); 4] = [
    ("vn", "lab", false),
    ("sea", "lab", true),
    ("seb", "lab", true),
    ("seoff", "OTHER", true),
];

fn handshakes(hub: &Hub, result: &str) -> f64 {
    hub.metric(&format!("vhub_handshakes_total{{result=\"{result}\"}}"))
        .unwrap()
}

fn sessions_by_protocol(hub: &Hub, protocol: &str) -> f64 {
    hub.metric(&format!(
        "vhub_sessions_by_protocol{{protocol=\"{protocol}\"}}"
    ))
    .unwrap()
}

/// The hub with [`USERS`] (password [`SE_PASSWORD`]) and [`EXTRA_CONFIG`].
fn start_hub(dir: &Path) -> Hub {
    let cert_dir = dir.join("certs");
    std::fs::create_dir_all(&cert_dir).unwrap();
    let pw = dir.join("se-pw");
    std::fs::write(&pw, format!("{SE_PASSWORD}\n")).unwrap();
    // The users file the hub's config will name (`<cert_dir>/users.toml`);
    // the harness adds its own users to it.
    for (user, hub, softether) in USERS {
        let mut args = vec![
            "--cert-dir".to_owned(),
            cert_dir.display().to_string(),
            "user".into(),
            "add".into(),
            user.into(),
            "--hub".into(),
            hub.into(),
            "--password-file".into(),
            pw.display().to_string(),
        ];
        if softether {
            args.push("--softether".into());
        }
        let out = std::process::Command::new(vhub_bin())
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "vhub user add {user}: {}", text(&out));
    }
    Hub::start_custom(dir, &cert_dir, free_port(), "", EXTRA_CONFIG, "")
}

/// `vhub ctl --json sessions`: the list.
fn ctl_sessions(hub: &Hub) -> Vec<serde_json::Value> {
    let out = hub.ctl(&["--json", "sessions"]);
    assert!(out.status.success(), "vhub ctl sessions: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ctl JSON");
    v["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions list: {v}"))
        .clone()
}

fn sessions_of<'a>(list: &'a [serde_json::Value], user: &str) -> Vec<&'a serde_json::Value> {
    list.iter().filter(|s| s["user"] == user).collect()
}

/// The hub's log lines that mention SoftEther, and its failed logins
/// (for the report).
fn hub_softether_lines(hub: &Hub) -> String {
    let log = hub.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("softether") || l.contains("authentication failed")
        })
        .collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn require_tools() {
    for (tool, package) in [
        ("vpnclient", "softether-vpnclient"),
        ("vpncmd", "softether-vpncmd"),
        ("iperf3", "iperf3"),
        ("ping", "iputils-ping"),
        ("ss", "iproute2"),
        ("unshare", "util-linux"),
    ] {
        require_tool(tool, package);
    }
}

/// A SoftEther account to the hub's address as `ns` sees it (no `/tcp`:
/// with the HTTPS probe).
fn account<'a>(
    name: &'a str,
    nic: &'a str,
    ns: &Ns,
    port: u16,
    hub: &'a str,
    user: &'a str,
    password: &'a str,
) -> Account<'a> {
    Account {
        name,
        nic,
        server: format!("{}:{port}", ns.host_ip),
        hub,
        user,
        password,
        max_tcp: 1,
    }
}

#[test]
fn real_softether_clients_and_vnic_share_a_vhub_hub() {
    if !require_root("real_softether_clients_and_vnic_share_a_vhub_hub") {
        return;
    }
    require_tools();
    let _lock = TestLock::take();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub = start_hub(d);
    let port = hub.port;
    let a = Ns::new("seh", 'a', 45, 1);
    let b = Ns::new("seh", 'b', 45, 2);
    let c = Ns::new("seh", 'c', 45, 3);

    let pw = d.join("se-pw");
    let vnic = Vnic::start(
        &a,
        VnicOpts {
            hub_ip: a.host_ip,
            port,
            hub: "lab",
            user: "vn",
            password_file: &pw,
            tap: "vnic0",
            ip: Some("10.61.0.1/24"),
            dir: d,
            extra: vec![],
        },
    );
    let cb = VpnClient::start(&b, &d.join("client-b"));
    let cc = VpnClient::start(&c, &d.join("client-c"));
    // b asks for 8 TCP connections: the hub's welcome (max_connection 1)
    // must bring it down to one, or its extra connections are refused.
    cb.add_account(&Account {
        max_tcp: 8,
        ..account("lab", "se0", &b, port, "LAB", "sea", SE_PASSWORD)
    });
    cc.add_account(&account("lab", "se0", &c, port, "LAB", "seb", SE_PASSWORD));
    let t0 = Instant::now();
    cb.connect("lab");
    cc.connect("lab");
    cb.wait_established("lab", T);
    cc.wait_established("lab", T);
    println!(
        "RESULT two vpnclients logged in (HTTPS probe, password) after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    cb.tap_up("se0", "10.61.0.2/24");
    cc.tap_up("se0", "10.61.0.3/24");
    vnic.wait_connected(T);

    // 1. vnic <-> the real client b: ping and iperf3, both ways.
    assert!(
        ping_works(&a, "10.61.0.2", T),
        "vnic cannot ping the SoftEther client:\n{}\n{}",
        hub.log(),
        cb.log()
    );
    assert!(
        ping_works(&b, "10.61.0.1", T),
        "the SoftEther client cannot ping vnic"
    );
    ping_and_iperf3_both_ways(&a, "10.61.0.1", &b, "10.61.0.2", d, "vhub");
    assert!(
        cb.established("lab"),
        "b's session ended under load: {}\n{}",
        cb.status("lab"),
        cb.log()
    );

    // The hub's view: the sessions with their protocol, the gauges.
    let list = ctl_sessions(&hub);
    for user in ["sea", "seb"] {
        let s = sessions_of(&list, user);
        assert_eq!(s.len(), 1, "one session of {user}: {list:#?}");
        assert_eq!(s[0]["protocol"], "softether", "{:#}", s[0]);
        assert_eq!(s[0]["hub"], "lab", "LAB matched hub lab: {:#}", s[0]);
    }
    let sea = sessions_of(&list, "sea")[0];
    assert!(
        sea["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with(&format!("{}:", b.ns_ip))),
        "sea came over the veth from {}: {sea:#}",
        b.ns_ip
    );
    let vn = sessions_of(&list, "vn");
    assert_eq!(vn.len(), 1, "{list:#?}");
    assert_eq!(vn[0]["protocol"], "vhub", "{:#}", vn[0]);
    let table = hub.ctl(&["sessions"]);
    println!("vhub ctl sessions:\n{}", text(&table));
    assert!(
        text(&table).contains("softether"),
        "the table names the protocol"
    );
    assert_eq!(sessions_by_protocol(&hub, "softether"), 2.0);
    assert_eq!(sessions_by_protocol(&hub, "vhub"), 1.0);

    // 2. The two real clients reach each other through the hub.
    assert!(ping_works(&b, "10.61.0.3", T), "b cannot ping c");
    assert!(ping_works(&c, "10.61.0.2", T), "c cannot ping b");
    let bc = ping_report(&b, "10.61.0.3");
    let cb_ping = ping_report(&c, "10.61.0.2");
    assert!(
        bc.received > 0 && cb_ping.received > 0,
        "{bc:?} {cb_ping:?}"
    );
    println!(
        "RESULT ping vpnclient b->c {}/{} rtt {:?} ms; c->b {}/{} rtt {:?} ms",
        bc.received, bc.transmitted, bc.rtt, cb_ping.received, cb_ping.transmitted, cb_ping.rtt
    );

    // 4. Kill b's TCP connection (an RST, as from a middlebox). The hub
    // ends the session, refuses the client's re-attach (its
    // additional_connect with the old key) with error 13, and the client
    // logs in again by itself after its RetryInterval (15 s).
    let new_before = handshakes(&hub, "new");
    let reattach_before = handshakes(&hub, "resume_unknown");
    let old = sessions_of(&ctl_sessions(&hub), "sea")[0]["id"].clone();
    let host = b.host_ip.to_string();
    let port_s = port.to_string();
    let killed = b.exec_ok(&["ss", "-K", "dst", &host, "dport", "=", &port_s]);
    let cut = Instant::now();
    let killed = String::from_utf8_lossy(&killed.stdout).into_owned();
    assert!(
        killed.lines().count() >= 2,
        "ss -K killed no connection of b's client: {killed}"
    );
    let mut list = Vec::new();
    let gone = wait_until(T, || {
        list = ctl_sessions(&hub);
        sessions_of(&list, "sea").iter().all(|s| s["id"] != old)
    });
    assert!(gone, "the hub kept the cut session {old}: {list:#?}");
    let stale_gone = cut.elapsed();
    let refused = wait_until(T, || cb.errors("lab").iter().any(|(c, _)| *c == 13));
    assert!(
        refused,
        "the client did not report error 13 after the cut:\n{}\nhub:\n{}",
        cb.log_lines("lab").join("\n"),
        hub_softether_lines(&hub)
    );
    let refused_after = cut.elapsed();
    // The hub counts the refused re-attach as a resume of an unknown session.
    assert!(
        handshakes(&hub, "resume_unknown") > reattach_before,
        "the refused additional_connect was not counted"
    );
    let relogin = wait_until(RECOVERY_CAP, || handshakes(&hub, "new") > new_before);
    let relogin_after = cut.elapsed();
    assert!(
        relogin,
        "b did not log in again within {RECOVERY_CAP:?}: {}\nits log:\n{}\nhub: {}\n{}",
        cb.status("lab"),
        cb.log_lines("lab").join("\n"),
        text(&hub.ctl(&["sessions"])),
        hub_softether_lines(&hub)
    );
    // Traffic on the new session: not asserted. The Debian 5.01 client
    // drops the socket of every session after its first was lost (~0.1 s
    // after the welcome), also with the real vpnserver, and also after a
    // server-side disconnect; only a restart of the daemon helps
    // (PROTOCOL-NOTES.md §8.3).
    let flows = wait_until(Duration::from_secs(5), || {
        b.exec(&["ping", "-c", "1", "-W", "1", "10.61.0.1"])
            .status
            .success()
    });
    println!(
        "RESULT softether reconnect after {:.1} s (ss -K of the client's TCP connection; \
         stale session gone after {:.1} s, error 13 seen by the client after {:.1} s); \
         ping on the new session: {}",
        relogin_after.as_secs_f64(),
        stale_gone.as_secs_f64(),
        refused_after.as_secs_f64(),
        if flows {
            "flows"
        } else {
            "none (the client dropped it: its 5.01 defect)"
        }
    );
    println!(
        "vpnclient b's lines about the account:\n{}",
        cb.log_lines("lab").join("\n")
    );
    // Never two sessions of sea, and the gauge agrees with the list.
    for _ in 0..10 {
        let list = ctl_sessions(&hub);
        let se = list.iter().filter(|s| s["protocol"] == "softether").count();
        assert!(sessions_of(&list, "sea").len() <= 1, "{list:#?}");
        let gauge = sessions_by_protocol(&hub, "softether");
        // A session may end between the two reads: allow one apart.
        assert!(
            (gauge - se as f64).abs() <= 1.0,
            "gauge {gauge} with {se} SoftEther sessions listed: {list:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // A new client process for b (a fresh adapter, so a new MAC) logs in
    // as sea again: the hub takes it and the traffic flows to it.
    drop(cb);
    let cb = VpnClient::start(&b, &d.join("client-b2"));
    cb.add_account(&account("lab", "se1", &b, port, "LAB", "sea", SE_PASSWORD));
    let t1 = Instant::now();
    cb.connect("lab");
    cb.wait_established("lab", T);
    cb.tap_up("se1", "10.61.0.2/24");
    assert!(
        ping_works(&b, "10.61.0.1", T),
        "b's new client cannot ping vnic:\n{}\n{}",
        cb.log(),
        hub_softether_lines(&hub)
    );
    assert!(
        ping_works(&c, "10.61.0.2", T),
        "c cannot ping b's new client"
    );
    println!(
        "RESULT a restarted vpnclient as sea: ping flows after {:.1} s",
        t1.elapsed().as_secs_f64()
    );
    let one = wait_until(T, || {
        list = ctl_sessions(&hub);
        sessions_of(&list, "sea").len() == 1 && sessions_by_protocol(&hub, "softether") == 2.0
    });
    assert!(one, "sea has one session: {list:#?}");
    println!(
        "RESULT {} new SoftEther session(s) counted since the cut",
        handshakes(&hub, "new") - new_before
    );
    println!("hub log (SoftEther lines):\n{}", hub_softether_lines(&hub));
}

#[test]
fn a_real_softether_client_gets_login_errors_and_does_not_loop() {
    if !require_root("a_real_softether_client_gets_login_errors_and_does_not_loop") {
        return;
    }
    require_tools();
    let _lock = TestLock::take();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub = start_hub(d);
    let port = hub.port;
    let a = Ns::new("sehe", 'a', 46, 1);
    let client = VpnClient::start(&a, &d.join("client"));
    // One adapter per account: vpnclient refuses two connected accounts
    // on one adapter (its error 43).
    client.add_account(&account(
        "badpw",
        "se0",
        &a,
        port,
        "LAB",
        "sea",
        "not-the-password",
    ));
    client.add_account(&account(
        "nohub",
        "se1",
        &a,
        port,
        "NOPE",
        "sea",
        SE_PASSWORD,
    ));
    client.add_account(&account(
        "off",
        "se2",
        &a,
        port,
        "OTHER",
        "seoff",
        SE_PASSWORD,
    ));

    // A wrong password and an unknown hub, side by side for 20 s.
    let auth_before = handshakes(&hub, "auth_failed");
    let unknown_before = handshakes(&hub, "unknown_hub");
    let t0 = Instant::now();
    client.connect("badpw");
    client.connect("nohub");
    let code = |account: &str, want: u32| {
        client
            .errors(account)
            .iter()
            .find(|(c, _)| *c == want)
            .map(|(_, l)| l.clone())
    };
    let mut seen = (None, None);
    let reported = wait_until(T, || {
        seen = (code("badpw", 9), code("nohub", 8));
        seen.0.is_some() && seen.1.is_some()
    });
    assert!(
        reported,
        "the client did not report error 9 (wrong password) and 8 (unknown hub): {:?}\n\
         its log:\n{}\nhub:\n{}",
        (client.errors("badpw"), client.errors("nohub")),
        client.log(),
        hub.log()
    );
    println!(
        "RESULT the client reported after {:.1} s:\n  {}\n  {}",
        t0.elapsed().as_secs_f64(),
        seen.0.unwrap_or_default(),
        seen.1.unwrap_or_default()
    );
    let window = Duration::from_secs(20);
    std::thread::sleep(window.saturating_sub(t0.elapsed()));
    let auth_failed = handshakes(&hub, "auth_failed") - auth_before;
    let unknown_hub = handshakes(&hub, "unknown_hub") - unknown_before;
    let attempts = |account: &str| {
        client
            .log_lines(account)
            .iter()
            .filter(|l| l.contains("Connection operation starting"))
            .count()
    };
    println!(
        "RESULT in {:.1} s: hub counted {auth_failed} auth_failed, {unknown_hub} unknown_hub; \
         the client made {} wrong-password and {} unknown-hub attempt(s)",
        t0.elapsed().as_secs_f64(),
        attempts("badpw"),
        attempts("nohub")
    );
    assert!(
        (1.0..=3.0).contains(&auth_failed) && (1.0..=3.0).contains(&unknown_hub),
        "a client retrying every 15 s: 1 to 3 failed handshakes of each kind in 20 s, \
         not {auth_failed} and {unknown_hub}; the client's log:\n{}",
        client.log()
    );
    client.disconnect("badpw");
    client.disconnect("nohub");

    // A hub with `softether = false`: access denied (12).
    let t1 = Instant::now();
    client.connect("off");
    let mut denied = None;
    let reported = wait_until(T, || {
        denied = code("off", 12);
        denied.is_some()
    });
    assert!(
        reported,
        "the client did not report error 12 for hub OTHER (softether = false): {:?}\n{}",
        client.errors("off"),
        client.log()
    );
    println!(
        "RESULT softether = false: after {:.1} s {}",
        t1.elapsed().as_secs_f64(),
        denied.unwrap_or_default()
    );
    client.disconnect("off");
    println!(
        "RESULT after the refused logins: auth_failed {}, unknown_hub {} (since the start)",
        handshakes(&hub, "auth_failed") - auth_before,
        handshakes(&hub, "unknown_hub") - unknown_before
    );
    for account in ["badpw", "nohub", "off"] {
        println!(
            "the client's lines about {account}:\n{}",
            client.log_lines(account).join("\n")
        );
    }
    assert!(
        ctl_sessions(&hub).is_empty(),
        "no session from a refused login"
    );
    assert_eq!(sessions_by_protocol(&hub, "softether"), 0.0);
    println!("hub log (SoftEther lines):\n{}", hub_softether_lines(&hub));
}
