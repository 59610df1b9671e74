//! `vhub ctl` against a running `vhub` process: the admin socket lists the
//! sessions and MACs that real TLS clients made, `kick` ends a session with
//! a reason, and a reload (ctl or SIGHUP) adds and removes users while a
//! bad config is refused and traffic keeps flowing.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{metric, vhub, Vhub};
use switch_core::session::Event;
use switch_core::wire::CloseCode;
use vhub_bench::client::{frame, mac, ClientError, TestClient, BROADCAST};

const T: Duration = Duration::from_secs(20);

/// A client that tolerates being left unpumped for a while (busy machine).
fn connect(
    addr: std::net::SocketAddr,
    hub: &str,
    creds: Option<(&str, &str)>,
) -> Result<TestClient, ClientError> {
    let config = switch_core::session::SessionConfig {
        timeout: Duration::from_secs(300),
        ..Default::default()
    };
    TestClient::connect_with(addr, hub, creds, config, &certs::tls::TlsOptions::default())
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Pumps `c` until the hub closes its session; the CLOSE's code and reason.
fn closed_by_hub(c: &mut TestClient) -> Option<(CloseCode, String)> {
    let deadline = Instant::now() + T;
    loop {
        let found = c.events.iter().find_map(|e| match e {
            Event::Closed {
                code,
                reason,
                by_peer: true,
            } => Some((*code, reason.clone())),
            _ => None,
        });
        if found.is_some() || Instant::now() > deadline {
            return found;
        }
        if c.pump().is_err() {
            // The connection is gone: whatever arrived before is in `events`.
            return c.events.iter().find_map(|e| match e {
                Event::Closed { code, reason, .. } => Some((*code, reason.clone())),
                _ => None,
            });
        }
    }
}

/// `from` sends a frame carrying `what` to `dst`; `to` must receive it.
fn passes(from: &mut TestClient, to: &mut TestClient, src: u8, dst: [u8; 6], what: &str) {
    let before = to.received.len();
    from.send(&frame(dst, mac(src), what.as_bytes()));
    from.pump().unwrap();
    let got = |to: &TestClient| {
        to.received[before..]
            .iter()
            .any(|f| f.windows(what.len()).any(|w| w == what.as_bytes()))
    };
    let deadline = Instant::now() + T;
    while !got(to) && Instant::now() < deadline {
        to.pump().unwrap();
    }
    assert!(got(to), "{what}: not received");
}

fn ctl_json(socket: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["ctl", "--socket", socket, "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = vhub(&all);
    assert_eq!(code, 0, "vhub ctl {args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn user_add(cfg: &str, dir: &Path, hub: &str, name: &str, password: &str) {
    let pw = dir.join(format!("pw-{name}"));
    write(&pw, password);
    let (code, out, err) = vhub(&[
        "user",
        "add",
        name,
        "--hub",
        hub,
        "--password-file",
        pw.to_str().unwrap(),
        "--config",
        cfg,
    ]);
    assert_eq!(code, 0, "{out}{err}");
}

/// The clients here sit idle (unpumped) for a while on a busy machine:
/// a long keep-alive timeout keeps the hub from declaring them dead.
const CONFIG: &str = "cert_dir = \"state\"\n\
    [session]\ntimeout = \"300s\"\n\
    [[hub]]\nname = \"DEFAULT\"\n\
    [[hub]]\nname = \"lab\"\nanonymous = true\n\
    [[hub]]\nname = \"tmp\"\nanonymous = true\n";

#[test]
fn ctl_lists_kicks_and_reloads_a_running_hub() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vhub.toml");
    write(&config, CONFIG);
    let cfg = config.to_str().unwrap();
    user_add(cfg, dir.path(), "DEFAULT", "alice", "alice-pw");

    let mut hub = Vhub::spawn(&["--config", cfg, "--shards", "2", "--io-backend", "epoll"]);
    hub.wait_ready();
    let sock_path = dir.path().join("state/admin.sock");
    let socket = sock_path.to_str().unwrap();
    let mode = std::fs::metadata(&sock_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "admin socket mode {mode:o}");

    // Sessions with known users and MACs.
    let mut a = connect(hub.listen, "DEFAULT", Some(("alice", "alice-pw"))).unwrap();
    let mut a2 = connect(hub.listen, "DEFAULT", Some(("alice", "alice-pw"))).unwrap();
    let mut b = connect(hub.listen, "lab", None).unwrap();
    let mut c = connect(hub.listen, "lab", None).unwrap();
    let mut t = connect(hub.listen, "tmp", None).unwrap();
    passes(&mut a, &mut a2, 0x11, BROADCAST, "a to all");
    passes(&mut b, &mut c, 0x22, BROADCAST, "b to all");
    passes(&mut c, &mut b, 0x33, mac(0x22), "c to b");

    let v = ctl_json(socket, &["sessions"]);
    let sessions = v["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 5, "{v}");
    let alice: Vec<_> = sessions.iter().filter(|s| s["user"] == "alice").collect();
    assert_eq!(alice.len(), 2, "{v}");
    assert!(alice
        .iter()
        .all(|s| s["hub"] == "DEFAULT" && s["state"] == "attached"));
    assert_eq!(sessions.iter().filter(|s| s["hub"] == "tmp").count(), 1);
    let lab: Vec<_> = sessions.iter().filter(|s| s["hub"] == "lab").collect();
    assert_eq!(lab.len(), 2, "{v}");
    assert!(lab.iter().all(|s| s["user"] == ""));
    // The session that sent one frame and learned one MAC.
    let sender = alice
        .iter()
        .find(|s| s["frames_in"] == 1)
        .unwrap_or_else(|| panic!("no alice session with frames_in 1: {v}"));
    assert_eq!(sender["macs"], 1, "{v}");
    assert!(sender["remote"].as_str().unwrap().starts_with("127.0.0.1:"));

    let v = ctl_json(socket, &["macs"]);
    let macs: Vec<(String, String, String)> = v["macs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap().to_owned();
            (s("hub"), s("mac"), s("session"))
        })
        .collect();
    let id_of = |hub: &str, mac: &str| {
        macs.iter()
            .find(|m| m.0 == hub && m.1 == mac)
            .unwrap_or_else(|| panic!("{mac} on {hub} missing: {macs:?}"))
            .2
            .clone()
    };
    assert_eq!(
        id_of("DEFAULT", "02:00:00:00:00:11"),
        sender["id"].as_str().unwrap()
    );
    let b_id = id_of("lab", "02:00:00:00:00:22");
    let c_id = id_of("lab", "02:00:00:00:00:33");
    assert_ne!(b_id, c_id);
    assert_eq!(macs.len(), 3, "{macs:?}");

    // Tables for people; the socket found through --config.
    let (code, out, err) = vhub(&["ctl", "--config", cfg, "sessions"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("alice") && out.contains("(anonymous)"),
        "{out}"
    );
    assert!(out.contains("5 session(s)"), "{out}");
    let (code, out, _) = vhub(&["ctl", "--socket", socket, "hubs"]);
    assert_eq!(code, 0);
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no row {name}: {out}"))
    };
    assert_eq!(row("DEFAULT"), ["DEFAULT", "yes", "no", "2", "0", "1"]);
    assert_eq!(row("lab"), ["lab", "yes", "yes", "2", "0", "2"]);
    let (code, out, _) = vhub(&["ctl", "--socket", socket, "macs"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("02:00:00:00:00:33") && out.contains(&c_id),
        "{out}"
    );

    // Kick: the client is told why; a new session works; the id is gone.
    let (code, out, err) = vhub(&["ctl", "--socket", socket, "kick", &b_id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&b_id), "{out}");
    let (code, reason) = closed_by_hub(&mut b).expect("b was closed by the hub");
    assert_eq!(code, CloseCode::Kicked);
    assert!(reason.contains("administrator"), "{reason}");
    let mut b = connect(hub.listen, "lab", None).expect("a new session after a kick");
    passes(&mut c, &mut b, 0x33, BROADCAST, "c to the new b");
    let v = ctl_json(socket, &["sessions"]);
    assert!(
        v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["id"] != b_id.as_str()),
        "{v}"
    );
    let (code, _, err) = vhub(&["ctl", "--socket", socket, "kick", "deadbeef"]);
    assert_eq!(code, 1);
    assert!(err.contains("no session deadbeef"), "{err}");
    let (code, _, err) = vhub(&["ctl", "--socket", socket, "kick", "nothex!"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a session id"), "{err}");

    // Reload adds a user who can then log in.
    user_add(cfg, dir.path(), "DEFAULT", "bob", "bob-pw");
    match connect(hub.listen, "DEFAULT", Some(("bob", "bob-pw"))) {
        Err(ClientError::Refused(r)) => assert_eq!(r.status.0, 401),
        other => panic!("bob before the reload: {:?}", other.err()),
    }
    let (code, out, err) = vhub(&["ctl", "--socket", socket, "reload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("user bob on hub DEFAULT added"), "{out}");
    let mut bob = connect(hub.listen, "DEFAULT", Some(("bob", "bob-pw")))
        .expect("bob logs in after the reload");
    passes(&mut a, &mut bob, 0x11, BROADCAST, "alice to bob");

    // A bad config is refused with its line; nothing changes, frames flow.
    write(&config, &format!("shards = \"many\"\n{CONFIG}"));
    let (code, out, err) = vhub(&["ctl", "--socket", socket, "reload"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("reload refused"), "{err}");
    assert!(
        err.contains("vhub.toml:1:") && err.contains("shards"),
        "{err}"
    );
    let (code, out, _) = vhub(&["ctl", "--socket", socket, "--json", "reload"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["errors"][0].as_str().unwrap().contains("shards"), "{v}");
    passes(
        &mut a,
        &mut bob,
        0x11,
        BROADCAST,
        "alice to bob after a bad reload",
    );
    passes(
        &mut bob,
        &mut a,
        0x44,
        mac(0x11),
        "bob to alice after a bad reload",
    );
    let scrape = common::http_get(hub.metrics, "/metrics", &[]).2;
    assert_eq!(
        metric(&scrape, "vhub_config_reloads_total{result=\"error\"}"),
        2.0
    );
    assert_eq!(
        metric(&scrape, "vhub_config_reloads_total{result=\"ok\"}"),
        1.0
    );

    // SIGHUP: bob removed, lab no longer anonymous, hub tmp removed, a
    // [session] change that needs a restart. Sessions no longer allowed get
    // CLOSE auth-revoked; alice keeps going.
    write(&config, CONFIG);
    let (code, _, err) = vhub(&["user", "remove", "bob", "--config", cfg]);
    assert_eq!(code, 0, "{err}");
    write(
        &config,
        "cert_dir = \"state\"\n[session]\ntimeout = \"300s\"\nkeepalive = \"4s\"\n\
         [[hub]]\nname = \"DEFAULT\"\n[[hub]]\nname = \"lab\"\n",
    );
    hub.signal(libc::SIGHUP);
    let (code, reason) = closed_by_hub(&mut bob).expect("bob's session was closed");
    assert_eq!(code, CloseCode::AuthRevoked);
    assert!(reason.contains("bob"), "{reason}");
    for s in [&mut b, &mut c] {
        let (code, reason) = closed_by_hub(s).expect("anonymous lab session closed");
        assert_eq!(code, CloseCode::AuthRevoked);
        assert!(reason.contains("anonymous"), "{reason}");
    }
    let (code, reason) = closed_by_hub(&mut t).expect("the session on the removed hub closed");
    assert_eq!(code, CloseCode::AuthRevoked);
    assert!(reason.contains("tmp was removed"), "{reason}");
    match connect(hub.listen, "tmp", None) {
        Err(ClientError::Refused(r)) => {
            assert_eq!((r.status.0, r.code.as_str()), (404, "unknown-hub"))
        }
        other => panic!("a removed hub: {:?}", other.err()),
    }
    passes(&mut a, &mut a2, 0x11, BROADCAST, "alice after SIGHUP");
    assert!(common::wait_for(T, || hub
        .log()
        .contains("needs a restart: [session] changed")));
    let (code, out, _) = vhub(&["ctl", "--socket", socket, "hubs"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().take(3).eq(["tmp", "no", "yes"])),
        "tmp shown as disabled: {out}"
    );
    let v = ctl_json(socket, &["sessions"]);
    let users: Vec<&str> = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice", "alice"], "{v}");
    match connect(hub.listen, "lab", None) {
        Err(ClientError::Refused(r)) => assert_eq!(r.status.0, 401),
        other => panic!("anonymous on lab after SIGHUP: {:?}", other.err()),
    }

    // A reload that adds a virtual hub: it takes sessions at once (a spare
    // slot), shows in ctl and metrics; alice is untouched.
    write(
        &config,
        "cert_dir = \"state\"\n[session]\ntimeout = \"300s\"\nkeepalive = \"4s\"\n\
         [[hub]]\nname = \"DEFAULT\"\n[[hub]]\nname = \"lab\"\n\
         [[hub]]\nname = \"fresh\"\nanonymous = true\n",
    );
    let (code, out, err) = vhub(&["ctl", "--socket", socket, "reload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("virtual hub fresh added"), "{out}");
    let mut f1 = connect(hub.listen, "fresh", None).expect("a session on the added hub");
    let mut f2 = connect(hub.listen, "fresh", None).expect("a second one");
    passes(&mut f1, &mut f2, 0x31, BROADCAST, "on the added hub");
    passes(&mut a, &mut a2, 0x11, BROADCAST, "alice after adding a hub");
    let scrape = common::http_get(hub.metrics, "/metrics", &[]).2;
    assert_eq!(metric(&scrape, "vhub_sessions{hub=\"fresh\"}"), 2.0);
    let (code, out, _) = vhub(&["ctl", "--socket", socket, "hubs"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().take(3).eq(["fresh", "yes", "yes"])),
        "fresh listed as enabled and anonymous: {out}"
    );

    // Stopping removes the socket; ctl then says the hub is not running.
    hub.signal(libc::SIGTERM);
    assert_eq!(
        hub.wait_exit(T).and_then(|s| s.code()),
        Some(0),
        "{}",
        hub.log()
    );
    assert!(!sock_path.exists(), "admin socket left behind");
    let (code, _, err) = vhub(&["ctl", "--socket", socket, "sessions"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no admin socket") && err.contains("is vhub running"),
        "{err}"
    );
}

#[test]
fn ctl_errors_are_clear_without_a_hub() {
    let dir = tempfile::tempdir().unwrap();
    // A socket file nobody answers on (a hub that was killed).
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (code, _, err) = vhub(&["ctl", "--socket", stale.to_str().unwrap(), "hubs"]);
    assert_eq!(code, 1);
    assert!(err.contains("vhub is not running"), "{err}");
    // The admin API switched off in the config.
    let config = dir.path().join("vhub.toml");
    write(&config, "admin_socket = \"off\"\n");
    let (code, _, err) = vhub(&["ctl", "--config", config.to_str().unwrap(), "hubs"]);
    assert_eq!(code, 1);
    assert!(err.contains("admin API is off"), "{err}");
    // A socket path too long for sun_path is a config error with its line.
    write(
        &config,
        &format!("name = \"x\"\nadmin_socket = \"/{}\"\n", "a".repeat(120)),
    );
    let (code, _, err) = vhub(&["check-config", config.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains(":2:") && err.contains("admin_socket"), "{err}");
}
