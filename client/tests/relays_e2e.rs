//! `vnic` behind each kind of relay, with real TAP traffic: the kernel's
//! ping crosses the hub from a client that can reach the hub only through
//! squid (HTTP CONNECT with Basic auth), dante (SOCKS5, SOCKS4a) or
//! OpenSSH's sshd (`ssh -W`).
//!
//! ```text
//!   namespace a: vnic --proxy …://<root side of a's veth>:RELAYPORT  https://127.0.0.1:HUBPORT/DEFAULT
//!   root namespace: relay on a's veth address ──► vhub on 127.0.0.1:HUBPORT
//!   namespace b: vnic, direct to the hub
//! ```
//!
//! The hub's URL says 127.0.0.1, which inside namespace a is a's own
//! loopback: only the relay (in the root namespace) can reach it, so a
//! working ping proves the relay carried the session.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// A directory daemons that drop privileges (squid as `proxy`, dante as
/// `nobody`) can read.
fn open_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("vnic-relay-e2e-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn write(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn spawn_daemon(label: &str, cmd: &mut Command, log: &Path) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
    Proc::new(label, child, log)
}

fn wait_listening(p: &mut Proc, addr: (std::net::Ipv4Addr, u16)) {
    let ok = wait_until(T, || {
        std::net::TcpStream::connect(addr).is_ok() || p.try_exit().is_some()
    });
    assert!(
        ok && p.try_exit().is_none(),
        "{} is not listening on {addr:?}:\n{}",
        p.label,
        p.output()
    );
}

/// The setup shared by every relay test.
/// Fields drop in order: client, hub, namespaces, directory last.
struct Setup {
    _vb: Vnic,
    hub: Hub,
    a: Ns,
    b: Ns,
    pw: PathBuf,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(test: &str, id: u8) -> Setup {
        Self::with_users(test, id, |_, _| String::new())
    }

    /// As `new`, with `users(dir, password file)` appended to the hub's
    /// users file.
    fn with_users(test: &str, id: u8, users: impl FnOnce(&Path, &Path) -> String) -> Setup {
        let dir = open_dir();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        let extra = users(dir.path(), &pw);
        let d = dir.path();
        let hub = Hub::start_custom(d, &d.join("certs"), free_port(), "", "", &extra);
        let a = Ns::new(test, 'a', id, 1);
        let b = Ns::new(test, 'b', id, 2);
        let vb = Vnic::start(
            &b,
            VnicOpts {
                hub_ip: b.host_ip,
                port: hub.port,
                hub: "DEFAULT",
                user: "alice",
                password_file: &pw,
                tap: "vnic0",
                ip: Some("10.77.0.12/24"),
                dir: dir.path(),
                extra: vec![],
            },
        );
        vb.wait_connected(T);
        Setup {
            _vb: vb,
            hub,
            a,
            b,
            pw,
            dir,
        }
    }

    /// vnic in namespace a, reaching the hub (as 127.0.0.1) through `proxy`.
    fn vnic_via(&self, proxy: &str, mut extra: Vec<String>) -> Vnic {
        extra.extend(["--proxy".to_string(), proxy.to_string()]);
        Vnic::start(
            &self.a,
            VnicOpts {
                hub_ip: std::net::Ipv4Addr::LOCALHOST,
                port: self.hub.port,
                hub: "DEFAULT",
                user: "alice",
                password_file: &self.pw,
                tap: "vnic0",
                ip: Some("10.77.0.11/24"),
                dir: self.dir.path(),
                extra,
            },
        )
    }

    fn ping_both_ways(&self) {
        assert!(
            ping_works(&self.a, "10.77.0.12", T),
            "a (behind the relay) cannot ping b"
        );
        assert!(ping_works(&self.b, "10.77.0.11", T), "b cannot ping a");
        let out = self
            .a
            .exec_ok(&["ping", "-c", "10", "-i", "0.05", "10.77.0.12"]);
        let r = parse_ping(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(r.received, 10, "{r:?}");
        eprintln!(
            "RESULT ping through the relay: rtt min/avg/max {:?} ms",
            r.rtt.unwrap()
        );
    }
}

// ------------------------------------------------------------------ squid --

const SQUID_USER: &str = "proxyuser";
const SQUID_PASS: &str = "proxy pw";

fn squid(s: &Setup) -> (Proc, u16) {
    require_tool("squid", "squid");
    let helper = Path::new("/usr/lib/squid/basic_ncsa_auth");
    assert!(
        helper.exists(),
        "{} is missing (Debian package squid)",
        helper.display()
    );
    let hash = Command::new("openssl")
        .args(["passwd", "-apr1", SQUID_PASS])
        .output()
        .expect("openssl passwd");
    let passwd = s.dir.path().join("squid-passwd");
    write(
        &passwd,
        &format!(
            "{SQUID_USER}:{}\n",
            String::from_utf8_lossy(&hash.stdout).trim()
        ),
        0o644,
    );
    let port = free_port();
    let conf = s.dir.path().join("squid.conf");
    write(
        &conf,
        &format!(
            "http_port {ip}:{port}
pid_filename none
cache_log /dev/stderr
access_log none
cache deny all
cache_mem 0 MB
coredump_dir {d}
pinger_enable off
shutdown_lifetime 0 seconds
auth_param basic program {helper} {passwd}
auth_param basic realm vnic-test
acl authed proxy_auth REQUIRED
acl CONNECT method CONNECT
acl test_ports port 1024-65535
http_access deny !CONNECT
http_access deny !test_ports
http_access allow authed
http_access deny all
",
            ip = s.a.host_ip,
            d = s.dir.path().display(),
            helper = helper.display(),
            passwd = passwd.display()
        ),
        0o644,
    );
    let mut p = spawn_daemon(
        "squid",
        Command::new("squid").arg("-N").arg("-f").arg(&conf),
        &s.dir.path().join("squid.log"),
    );
    wait_listening(&mut p, (s.a.host_ip, port));
    (p, port)
}

#[test]
fn through_squid_http_connect_with_basic_auth() {
    if !require_root("through_squid_http_connect_with_basic_auth") {
        return;
    }
    let _lock = TestLock::take();
    let s = Setup::new("squid", 8);
    let (_squid, port) = squid(&s);
    let va = s.vnic_via(
        &format!("http://{SQUID_USER}:proxy%20pw@{}:{port}", s.a.host_ip),
        vec![],
    );
    va.wait_connected(T);
    s.ping_both_ways();
    let st = va.status().unwrap();
    assert_relay_shown_masked(&st);
}

#[test]
fn a_proxy_refusing_our_credentials_stops_vnic_after_one_attempt() {
    if !require_root("a_proxy_refusing_our_credentials_stops_vnic_after_one_attempt") {
        return;
    }
    let _lock = TestLock::take();
    let s = Setup::new("squid407", 9);
    let (_squid, port) = squid(&s);
    let mut va = s.vnic_via(
        &format!("http://{SQUID_USER}:wrong@{}:{port}", s.a.host_ip),
        vec![],
    );
    let status = va.proc.wait_exit(T).expect("vnic gives up");
    let out = va.proc.output();
    eprintln!("{out}");
    assert_eq!(status.code(), Some(3), "{out}");
    assert!(
        out.contains("407"),
        "the proxy's answer is reported:\n{out}"
    );
    assert_eq!(
        out.matches("connecting to").count(),
        1,
        "never retried:\n{out}"
    );
}

// ------------------------------------------------------------------ dante --

fn dante(s: &Setup) -> (Proc, u16) {
    let port = free_port();
    (dante_on(s, port), port)
}

fn dante_on(s: &Setup, port: u16) -> Proc {
    require_tool("danted", "dante-server");
    let conf = s.dir.path().join("danted.conf");
    write(
        &conf,
        &format!(
            "logoutput: stderr
internal: {ip} port = {port}
external: 127.0.0.1
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 10.0.0.0/8 to: 0.0.0.0/0 }}
socks pass {{ from: 10.0.0.0/8 to: 0.0.0.0/0 }}
",
            ip = s.a.host_ip
        ),
        0o644,
    );
    let mut p = spawn_daemon(
        "danted",
        Command::new("danted")
            .arg("-f")
            .arg(&conf)
            .arg("-p")
            .arg(s.dir.path().join("danted.pid")),
        &s.dir.path().join("danted.log"),
    );
    wait_listening(&mut p, (s.a.host_ip, port));
    p
}

#[test]
fn through_dante_socks5_and_socks4a() {
    if !require_root("through_dante_socks5_and_socks4a") {
        return;
    }
    let _lock = TestLock::take();
    let s = Setup::new("socks", 10);
    let (_dante, port) = dante(&s);
    for scheme in ["socks5", "socks4a"] {
        let mut va = s.vnic_via(&format!("{scheme}://{}:{port}", s.a.host_ip), vec![]);
        va.wait_connected(T);
        s.ping_both_ways();
        eprintln!("RESULT {scheme}: ok");
        let st = va.proc.stop();
        assert!(st.is_some_and(|s| s.success()));
    }
}

/// Issue 6 (faults): the relay dies (SIGKILL of dante and of the process
/// that carries the session) and comes back on the same port: vnic keeps
/// trying by itself, resumes the session, and ping works again.
#[test]
fn a_killed_and_restarted_socks_relay_is_survived() {
    if !require_root("a_killed_and_restarted_socks_relay_is_survived") {
        return;
    }
    let _lock = TestLock::take();
    let s = Setup::new("drelay", 43);
    let port = free_port();
    let mut relay = dante_on(&s, port);
    let mut va = s.vnic_via(&format!("socks5://{}:{port}", s.a.host_ip), vec![]);
    va.wait_connected(T);
    s.ping_both_ways();

    // dante forks a child per client; kill the whole relay: the children
    // first (they carry the session), then the parent. All started by us.
    let t0 = std::time::Instant::now();
    let kids = children(relay.pid());
    for k in &kids {
        // SAFETY: kill(2) on a child of the dante this test started.
        unsafe { libc::kill(*k, libc::SIGKILL) };
    }
    relay.kill();
    let noticed = wait_until(T, || va.state() != "connected");
    assert!(noticed, "vnic did not notice:\n{}", va.proc.output());
    let detect = t0.elapsed();
    // The relay stays away for 3 s: vnic retries (connection refused).
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        va.proc.try_exit().is_none(),
        "vnic gave up:\n{}",
        va.proc.output()
    );
    assert!(
        !ping_works(&s.a, "10.77.0.12", Duration::from_secs(1)),
        "ping through a dead relay"
    );

    let t1 = std::time::Instant::now();
    let _relay = dante_on(&s, port);
    let back = wait_until(T, || {
        va.counter("resumes").is_ok_and(|n| n >= 1) && va.state() == "connected"
    });
    assert!(
        back,
        "no resume after the relay came back:\n{}",
        va.proc.output()
    );
    s.ping_both_ways();
    eprintln!(
        "RESULT dante SIGKILL ({} children): noticed after {detect:?}, relay down {:.1} s, \
         resumed and ping through {:?} after it was back; resumes {}, new sessions {}, lost {}",
        kids.len(),
        t1.duration_since(t0).as_secs_f64(),
        t1.elapsed(),
        va.counter("resumes").unwrap(),
        va.counter("new_sessions").unwrap(),
        va.counter("lost_on_resume").unwrap() + va.counter("rx_gaps").unwrap(),
    );
    assert_eq!(
        va.counter("new_sessions").unwrap(),
        0,
        "the session was lost"
    );
    assert_eq!(va.counter("lost_on_resume").unwrap(), 0);
    assert_eq!(va.counter("rx_gaps").unwrap(), 0);
    assert_eq!(
        s.hub.metric("vhub_lost_on_resume_frames_total").unwrap(),
        0.0
    );
}

// -------------------------------------------------------------------- ssh --

struct Sshd {
    proc: Proc,
    port: u16,
    key: PathBuf,
}

fn sshd(s: &Setup) -> Sshd {
    require_tool("sshd", "openssh-server");
    require_tool("ssh", "openssh-client");
    std::fs::create_dir_all("/run/sshd").unwrap();
    let p = |n: &str| s.dir.path().join(n);
    for k in ["host_key", "client_key"] {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(p(k))
            .status()
            .unwrap();
        assert!(st.success());
    }
    std::fs::copy(p("client_key.pub"), p("authorized_keys")).unwrap();
    let port = free_port();
    write(
        &p("sshd_config"),
        &format!(
            "ListenAddress {ip}:{port}
HostKey {hk}
AuthorizedKeysFile {ak}
PidFile {pid}
PermitRootLogin prohibit-password
AllowTcpForwarding yes
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
",
            ip = s.a.host_ip,
            hk = p("host_key").display(),
            ak = p("authorized_keys").display(),
            pid = p("sshd.pid").display()
        ),
        0o600,
    );
    let mut proc = spawn_daemon(
        "sshd",
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(p("sshd_config")),
        &p("sshd.log"),
    );
    wait_listening(&mut proc, (s.a.host_ip, port));
    Sshd {
        proc,
        port,
        key: p("client_key"),
    }
}

fn ssh_options(sshd: &Sshd) -> Vec<String> {
    [
        format!("IdentityFile={}", sshd.key.display()),
        "IdentitiesOnly=yes".into(),
        "StrictHostKeyChecking=no".into(),
        "UserKnownHostsFile=/dev/null".into(),
    ]
    .into_iter()
    .flat_map(|o| ["--ssh-option".to_string(), o])
    .collect()
}

/// The PIDs of the children of `pid` (the `ssh -W` that vnic runs).
fn children(pid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            v.extend(
                text.split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    v
}

#[test]
fn through_ssh_and_an_ssh_that_exits_is_reconnected() {
    if !require_root("through_ssh_and_an_ssh_that_exits_is_reconnected") {
        return;
    }
    let _lock = TestLock::take();
    let s = Setup::new("ssh", 11);
    let sshd = sshd(&s);
    let va = s.vnic_via(
        &format!("ssh://root@{}:{}", s.a.host_ip, sshd.port),
        ssh_options(&sshd),
    );
    va.wait_connected(T);
    s.ping_both_ways();

    // The ssh that carries the session dies: vnic notices, runs a new one,
    // and resumes.
    let ssh = children(va.proc.pid());
    assert_eq!(ssh.len(), 1, "one ssh child: {ssh:?}");
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", ssh[0])).unwrap_or_default();
    assert_eq!(comm.trim(), "ssh");
    // SAFETY: kill(2) on the ssh process that our vnic started (checked above).
    unsafe { libc::kill(ssh[0], libc::SIGKILL) };
    let resumed = wait_until(T, || {
        va.counter("resumes").is_ok_and(|n| n >= 1) && va.state() == "connected"
    });
    assert!(resumed, "no resume after ssh died:\n{}", va.proc.output());
    s.ping_both_ways();
    assert_eq!(va.counter("lost_on_resume").unwrap(), 0);
    eprintln!("{}", va.proc.output());
    drop(sshd.proc);
}

// -------------------------------------------------------------- softether --

/// `vnic connect softether://` takes the same relays and trust options as
/// `https://`: through squid to a hub that speaks SoftEther on its TLS
/// port (vhub's own), first with a wrong `--pin` (refused, exit 4, one
/// attempt), then with the right one; ping both ways with a `vhub/1` vnic.
#[test]
fn softether_through_squid_with_a_pinned_certificate() {
    if !require_root("softether_through_squid_with_a_pinned_certificate") {
        return;
    }
    let _lock = TestLock::take();
    // carol may log in from SoftEther: `vhub user add --softether` in a
    // scratch config, its entry appended to the hub's users file.
    let s = Setup::with_users("serelay", 21, |d, pw| {
        let scratch = d.join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        let scratch_cfg = scratch.join("vhub.toml");
        let cfg = format!("cert_dir = \"{}\"\n", scratch.display());
        std::fs::write(&scratch_cfg, cfg).unwrap();
        let out = Command::new(vhub_bin())
            .arg("--config")
            .arg(&scratch_cfg)
            .args(["user", "add", "carol", "--softether", "--password-file"])
            .arg(pw)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let users = std::fs::read_to_string(scratch.join("users.toml")).unwrap();
        let carol = users[users.find("[[user]]").expect("a [[user]] entry")..].to_owned();
        assert!(carol.contains("softether_hash"), "{carol}");
        carol
    });
    let (_squid, port) = squid(&s);
    let proxy = format!("http://{SQUID_USER}:proxy%20pw@{}:{port}", s.a.host_ip);
    let start = |tap: &str, pin: &str| {
        let status_file = s.dir.path().join(format!("se-{tap}.json"));
        let url = format!("softether://127.0.0.1:{}/DEFAULT", s.hub.port);
        let bin = vnic_bin().display().to_string();
        let pw = s.pw.display().to_string();
        let status = status_file.display().to_string();
        let argv = [
            bin.as_str(),
            "connect",
            &url,
            "--user",
            "carol",
            "--password-file",
            &pw,
            "--tap",
            tap,
            "--ip",
            "10.77.0.11/24",
            "--proxy",
            &proxy,
            "--pin",
            pin,
            "--max-backoff",
            "2s",
            "--status-file",
            &status,
        ];
        let log = s.dir.path().join(format!("vnic-se-{tap}.log"));
        Vnic {
            proc: s.a.spawn(&format!("vnic softether {tap}"), &argv, &log),
            status_file,
            tap: tap.into(),
        }
    };
    let wrong = format!("sha256:{}", "0".repeat(64));
    let mut v = start("se0", &wrong);
    let status = v.proc.wait_exit(T).expect("vnic gives up at once");
    let out = v.proc.output();
    assert_eq!(status.code(), Some(4), "{out}");
    assert!(out.contains("not the pinned one"), "{out}");
    assert_eq!(out.matches("connecting to").count(), 1, "{out}");
    drop(v);

    let va = start("se1", &s.hub.fingerprint());
    va.wait_connected(T);
    let out = va.proc.output();
    assert!(out.contains("SoftEther session"), "{out}");
    let st = va.status().unwrap();
    assert_relay_shown_masked(&st);
    s.ping_both_ways();
    let sessions = s.hub.ctl(&["sessions"]);
    let text = String::from_utf8_lossy(&sessions.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("carol") && l.contains("softether")),
        "{text}"
    );
}

/// The status names the squid relay with its password masked.
fn assert_relay_shown_masked(st: &serde_json::Value) {
    assert!(
        st["relay"]
            .as_str()
            .unwrap()
            .starts_with("via http://proxyuser:***@"),
        "{st}"
    );
}
