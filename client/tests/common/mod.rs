//! Shared setup of the end-to-end tests of `vnic`: network namespaces with
//! veth pairs to the root namespace, a real `vhub` in the root namespace,
//! real `vnic` processes inside the namespaces, and the kernel's own tools
//! (`ping`, `iperf3`, `ss`, `nft`).
//!
//! Everything a test creates is removed when its guard is dropped
//! (namespaces, veths, processes — killed by the PID this code started,
//! never by name). Waiting is always "until a condition holds, or a
//! generous deadline passes"; nothing asserts on speed.
//!
//! Topology of a test with index `id` (distinct per test, so tests never
//! share addresses or names):
//!
//! ```text
//!   root namespace: vhub on 0.0.0.0:PORT
//!     vh<id>a ── 10.<200+id>.1.1/24 ──veth── 10.<200+id>.1.2/24 ── vh<id>a-p   (namespace vh-<test>-a)
//!     vh<id>b ── 10.<200+id>.2.1/24 ──veth── 10.<200+id>.2.2/24 ── vh<id>b-p   (namespace vh-<test>-b)
//!     …
//! ```
//!
//! Namespace tests take a file lock, so that only one runs at a time
//! across all test binaries: they are heavy (debug builds, iperf3) on a
//! small machine, and timing-sensitive ones must not starve.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
pub mod softether;

/// True when root; otherwise the test skips, saying why (a failure under
/// `VHUB_TEST_STRICT=1`: see the `test-support` crate).
pub fn require_root(test: &str) -> bool {
    test_support::require_root(test, "creates network namespaces and TAP devices")
}

/// Fails the test (as root, CI installs everything) if a tool is missing.
pub fn require_tool(name: &str, package: &str) {
    let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(name).exists());
    assert!(
        found,
        "{name} is missing: install the Debian package {package}"
    );
}

/// Serializes namespace tests across test binaries (see the module docs).
pub struct TestLock(File);

impl TestLock {
    pub fn take() -> TestLock {
        let path = std::env::temp_dir().join("vnic-netns-tests.lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("lock file");
        // SAFETY: flock on a descriptor we own; blocks until the lock is ours.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock {}", path.display());
        TestLock(f)
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command to completion; panics with its output if it fails.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command; returns its output whatever the exit status.
pub fn run_any(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

// ---------------------------------------------------------------------------
// Namespaces

/// One namespace with a veth pair to the root namespace.
pub struct Ns {
    pub name: String,
    /// The root namespace's end of the veth pair.
    pub host_if: String,
    /// The namespace's end.
    pub ns_if: String,
    /// Root side address (where the namespace reaches the hub).
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
}

impl Ns {
    /// A namespace without the veth to the root namespace that `Ns::new`
    /// makes (for topologies with links of their own): loopback up, IPv6
    /// off (no router solicitations in the test's traffic).
    #[allow(dead_code)] // not every test binary builds its own topology
    pub fn bare(name: &str) -> Ns {
        let _ = run_any(&["ip", "netns", "del", name]);
        run(&["ip", "netns", "add", name]);
        let ns = Ns {
            name: name.to_owned(),
            // No such link in the root namespace: Drop's `ip link del` of
            // it does nothing.
            host_if: "vh-bare-none".into(),
            ns_if: "eth0".into(),
            host_ip: [0, 0, 0, 0].into(),
            ns_ip: [0, 0, 0, 0].into(),
        };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns
    }
}

impl Ns {
    /// Creates namespace `vh-<test>-<tag>` with a veth pair; `id` and
    /// `k` choose the addresses `10.<200+id>.<k>.{1,2}/24`.
    pub fn new(test: &str, tag: char, id: u8, k: u8) -> Ns {
        let name = format!("vh-{test}-{tag}");
        let host_if = format!("vh{id}{tag}");
        let ns_if = format!("vh{id}{tag}-p");
        // Leftovers of a crashed run.
        let _ = run_any(&["ip", "netns", "del", &name]);
        let _ = run_any(&["ip", "link", "del", &host_if]);
        let host_ip = Ipv4Addr::new(10, 200 + id, k, 1);
        let ns_ip = Ipv4Addr::new(10, 200 + id, k, 2);
        run(&["ip", "netns", "add", &name]);
        let ns = Ns {
            name,
            host_if,
            ns_if,
            host_ip,
            ns_ip,
        };
        run(&[
            "ip",
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ]);
        run(&["ip", "link", "set", &ns.ns_if, "netns", &ns.name]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/24"),
            "dev",
            &ns.host_if,
        ]);
        run(&["ip", "link", "set", &ns.host_if, "up"]);
        ns.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{ns_ip}/24"),
            "dev",
            &ns.ns_if,
        ]);
        ns.exec_ok(&["ip", "link", "set", &ns.ns_if, "up"]);
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        // No IPv6 chatter (router solicitations, MLD) on the TAP devices.
        ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    /// Runs a command inside the namespace; returns its output.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("{args:?} in {}: {e}", self.name))
    }

    /// Runs a command inside the namespace; panics if it fails.
    pub fn exec_ok(&self, args: &[&str]) -> Output {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts a process inside the namespace (`ip netns exec` execs it, so
    /// the PID is the process itself), output to `log`.
    pub fn spawn(&self, label: &str, args: &[&str], log: &Path) -> Proc {
        let f = File::create(log).unwrap();
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?} in {}: {e}", self.name));
        Proc::new(label, child, log)
    }

    /// Receive counters (packets) of an interface in the namespace.
    pub fn rx_packets(&self, dev: &str) -> u64 {
        let out = self.exec_ok(&[
            "cat",
            &format!("/sys/class/net/{dev}/statistics/rx_packets"),
        ]);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// Takes the namespace's end of the veth down or up.
    pub fn link(&self, up: bool) {
        self.exec_ok(&[
            "ip",
            "link",
            "set",
            &self.ns_if,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the pair.
        let _ = run_any(&["ip", "netns", "del", &self.name]);
        let _ = run_any(&["ip", "link", "del", &self.host_if]);
    }
}

// ---------------------------------------------------------------------------
// Processes

/// A process this test started; killed (by its PID) when dropped.
pub struct Proc {
    pub label: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn new(label: &str, child: Child, log: &Path) -> Proc {
        Proc {
            label: label.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn signal(&self, sig: i32) {
        if self.child.is_some() {
            // SAFETY: kill(2) on the PID of a child we started and have not reaped.
            unsafe { libc::kill(self.pid(), sig) };
        }
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to end by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.try_exit();
            status.is_some()
        });
        status
    }

    /// SIGTERM, then SIGKILL if it does not end within a few seconds.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(s) = self.try_exit() {
            return Some(s);
        }
        self.signal(libc::SIGTERM);
        if let Some(s) = self.wait_exit(Duration::from_secs(5)) {
            return Some(s);
        }
        self.kill();
        None
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGTERM);
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                self.kill();
            }
            if std::thread::panicking() {
                eprintln!(
                    "----- {} ({}) -----\n{}",
                    self.label,
                    self.log.display(),
                    self.output()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Binaries

pub fn vnic_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vnic"))
}

/// `vhub`, next to `vnic` in the same target directory; built if missing.
pub fn vhub_bin() -> PathBuf {
    let vnic = vnic_bin();
    let dir = vnic.parent().unwrap();
    let hub = dir.join("vhub");
    if !hub.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target_dir = dir.parent().unwrap();
        let status = Command::new(cargo)
            .args(["build", "-p", "hub"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("cargo build -p hub");
        assert!(status.success(), "cargo build -p hub failed");
    }
    assert!(hub.exists(), "no vhub at {}", hub.display());
    hub
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------
// The hub

pub const PASSWORD: &str = "correct horse";

/// A `vhub` in the root namespace with two virtual hubs: DEFAULT (user
/// alice) and OTHER (user bob), both with password [`PASSWORD`];
/// keep-alive 1 s, timeout 3 s.
pub struct Hub {
    pub dir: PathBuf,
    pub port: u16,
    pub metrics_port: u16,
    pub cert_dir: PathBuf,
    pub proc: Option<Proc>,
    config: PathBuf,
    starts: u32,
    /// More arguments for `vhub` after `--config FILE` (e.g. `--ciphers`).
    args: Vec<String>,
}

impl Hub {
    /// Writes the config and users into `dir`, starts the hub.
    pub fn start(dir: &Path, cert_dir: &Path) -> Hub {
        Self::start_on(dir, cert_dir, free_port())
    }

    pub fn start_on(dir: &Path, cert_dir: &Path, port: u16) -> Hub {
        Self::start_custom(dir, cert_dir, port, "", "", "")
    }

    /// As [`Hub::start_on`], with `session_extra` (TOML lines) added to
    /// the `[session]` table, e.g. `detach_grace = "2s"`.
    pub fn start_with(dir: &Path, cert_dir: &Path, port: u16, session_extra: &str) -> Hub {
        Self::start_custom(dir, cert_dir, port, session_extra, "", "")
    }

    /// As [`Hub::start_with`], with `extra_config` appended to the config
    /// (e.g. a `[tls]` table) and `extra_users` to the users file.
    pub fn start_custom(
        dir: &Path,
        cert_dir: &Path,
        port: u16,
        session_extra: &str,
        extra_config: &str,
        extra_users: &str,
    ) -> Hub {
        let mut h = Self::prepare(
            dir,
            cert_dir,
            port,
            session_extra,
            extra_config,
            extra_users,
        );
        h.launch();
        h
    }

    /// As [`Hub::start`], with `args` after `--config FILE` on vhub's
    /// command line (every start and restart).
    pub fn start_with_args(dir: &Path, cert_dir: &Path, args: &[&str]) -> Hub {
        let mut h = Self::prepare(dir, cert_dir, free_port(), "", "", "");
        h.args = args.iter().map(|a| (*a).to_owned()).collect();
        h.launch();
        h
    }

    /// Writes the config and the users; does not start the hub.
    fn prepare(
        dir: &Path,
        cert_dir: &Path,
        port: u16,
        session_extra: &str,
        extra_config: &str,
        extra_users: &str,
    ) -> Hub {
        let metrics_port = free_port();
        let config = dir.join(format!("hub-{port}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"listen = "0.0.0.0:{port}"
metrics_listen = "127.0.0.1:{metrics_port}"
admin_socket = "{admin}"
cert_dir = "{cert}"
shards = 1

[session]
keepalive = "1s"
timeout = "3s"
{session_extra}

[[hub]]
name = "DEFAULT"

[[hub]]
name = "OTHER"
{extra_config}
"#,
                cert = cert_dir.display(),
                admin = dir.join(format!("admin-{port}.sock")).display(),
            ),
        )
        .unwrap();
        let pw = dir.join("hub-password");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        let vhub = vhub_bin();
        for (user, hub) in [("alice", "DEFAULT"), ("bob", "OTHER")] {
            let out = Command::new(&vhub)
                .arg("--config")
                .arg(&config)
                .args([
                    "user",
                    "add",
                    user,
                    "--hub",
                    hub,
                    "--replace",
                    "--password-file",
                ])
                .arg(&pw)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "vhub user add: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if !extra_users.is_empty() {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(cert_dir.join("users.toml"))
                .expect("the users file vhub user add wrote");
            f.write_all(extra_users.as_bytes()).unwrap();
        }
        Hub {
            dir: dir.to_owned(),
            port,
            metrics_port,
            cert_dir: cert_dir.to_owned(),
            proc: None,
            config,
            starts: 0,
            args: Vec::new(),
        }
    }

    fn launch(&mut self) {
        self.starts += 1;
        let log = self
            .dir
            .join(format!("vhub-{}-{}.log", self.port, self.starts));
        let f = File::create(&log).unwrap();
        let child = Command::new(vhub_bin())
            .arg("--config")
            .arg(&self.config)
            .args(&self.args)
            .env("VHUB_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("start vhub");
        self.proc = Some(Proc::new("vhub", child, &log));
        let port = self.port;
        let up = wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok() && self.metrics().is_some()
        });
        assert!(up, "vhub did not start:\n{}", self.log());
    }

    /// Runs `vhub ctl --socket <this hub's admin socket> ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(vhub_bin())
            .arg("ctl")
            .arg("--socket")
            .arg(self.dir.join(format!("admin-{}.sock", self.port)))
            .args(args)
            .output()
            .expect("run vhub ctl")
    }

    /// Kills the hub without warning (SIGKILL), like a crash.
    pub fn crash(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts the hub again with the same config, certificate and port.
    pub fn restart(&mut self) {
        self.crash();
        self.launch();
    }

    /// Starts the hub again after [`Hub::crash`] (the port was closed
    /// meanwhile: clients saw "connection refused").
    pub fn start_again(&mut self) {
        assert!(self.proc.is_none(), "the hub is still running");
        self.launch();
    }

    /// The hub's PID (0 when it is not running).
    pub fn pid(&self) -> i32 {
        self.proc.as_ref().map(Proc::pid).unwrap_or(0)
    }

    pub fn log(&self) -> String {
        self.proc.as_ref().map(|p| p.output()).unwrap_or_default()
    }

    /// The hub's certificate fingerprint (`sha256:…`), from `vhub cert info`.
    pub fn fingerprint(&self) -> String {
        let out = Command::new(vhub_bin())
            .arg("--config")
            .arg(&self.config)
            .args(["cert", "info"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find(|w| w.starts_with("sha256:"))
            .unwrap_or_else(|| panic!("no fingerprint in: {text}"))
            .to_owned()
    }

    /// The metrics text, if the listener answers.
    pub fn metrics(&self) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        body.contains("200 OK").then_some(body)
    }

    /// One sample of the metrics, e.g. `vhub_resumes_total` or
    /// `vhub_handshakes_total{result="auth_failed"}`: an error when the
    /// scrape fails or the series is not in it, never a default of 0 (a
    /// check that something is 0 must be able to fail on a failed read).
    pub fn metric(&self, series: &str) -> Result<f64, ReadError> {
        let text = self.metrics().ok_or_else(|| {
            ReadError(format!(
                "no metrics from vhub at 127.0.0.1:{} (reading {series}); its log:\n{}",
                self.metrics_port,
                self.log()
            ))
        })?;
        metric_in(&text, series)
    }
}

/// The value of `series` (name and labels exactly as exported) in a
/// Prometheus text exposition.
pub fn metric_in(text: &str, series: &str) -> Result<f64, ReadError> {
    let line = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == series).then_some(v)
        })
        .ok_or_else(|| ReadError(format!("no series {series} in the metrics:\n{text}")))?;
    line.parse()
        .map_err(|e| ReadError(format!("{series} has the value {line:?}: {e}")))
}

/// A metric or a status counter that could not be read: the message says
/// which and why. `Debug` is the message, so `.unwrap()` reads well.
pub struct ReadError(pub String);

impl std::fmt::Debug for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A counter of a vnic status (JSON) value: an error when it is missing or
/// not a number, never a default of 0.
pub fn status_counter(status: &serde_json::Value, key: &str) -> Result<u64, ReadError> {
    status
        .get(key)
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| ReadError(format!("no counter {key:?} in the vnic status: {status:#}")))
}

// ---------------------------------------------------------------------------
// vnic

/// A running `vnic connect` in a namespace, with its status file.
pub struct Vnic {
    pub proc: Proc,
    pub status_file: PathBuf,
    pub tap: String,
}

/// What `vnic connect` needs besides its extra flags.
pub struct VnicOpts<'a> {
    pub hub_ip: Ipv4Addr,
    pub port: u16,
    pub hub: &'a str,
    pub user: &'a str,
    pub password_file: &'a Path,
    pub tap: &'a str,
    pub ip: Option<&'a str>,
    pub dir: &'a Path,
    pub extra: Vec<String>,
}

impl Vnic {
    pub fn start(ns: &Ns, o: VnicOpts<'_>) -> Vnic {
        let status_file = o.dir.join(format!("{}-{}.json", ns.name, o.tap));
        let _ = std::fs::remove_file(&status_file);
        let known = o.dir.join(format!("known_hubs-{}", ns.name));
        let url = format!("https://{}:{}/{}", o.hub_ip, o.port, o.hub);
        let vnic = vnic_bin();
        let mut args: Vec<String> = vec![vnic.display().to_string(), "connect".into(), url];
        // An empty user: no --user/--password-file (anonymous, or a
        // certificate login through `extra`).
        if !o.user.is_empty() {
            args.extend([
                "--user".into(),
                o.user.into(),
                "--password-file".into(),
                o.password_file.display().to_string(),
            ]);
        }
        args.extend([
            "--tap".into(),
            o.tap.into(),
            "--keepalive".into(),
            "1s".into(),
            "--timeout".into(),
            "3s".into(),
            "--max-backoff".into(),
            "2s".into(),
            "--status-file".into(),
            status_file.display().to_string(),
        ]);
        if !o
            .extra
            .iter()
            .any(|a| a == "--pin" || a == "--insecure" || a == "--known-hubs")
        {
            args.push("--known-hubs".into());
            args.push(known.display().to_string());
        }
        if let Some(ip) = o.ip {
            args.push("--ip".into());
            args.push(ip.into());
        }
        args.extend(o.extra);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = o.dir.join(format!("vnic-{}-{}.log", ns.name, o.tap));
        let proc = ns.spawn(&format!("vnic in {}", ns.name), &argv, &log);
        Vnic {
            proc,
            status_file,
            tap: o.tap.to_owned(),
        }
    }

    /// The status file as JSON (None until the first write).
    pub fn status(&self) -> Option<serde_json::Value> {
        self.read_status().ok()
    }

    /// The status file as JSON, or why it could not be read.
    pub fn read_status(&self) -> Result<serde_json::Value, ReadError> {
        let text = std::fs::read(&self.status_file).map_err(|e| {
            ReadError(format!(
                "{}: cannot read its status file {}: {e}",
                self.proc.label,
                self.status_file.display()
            ))
        })?;
        serde_json::from_slice(&text).map_err(|e| {
            ReadError(format!(
                "{}: status file {} is not JSON ({e}): {:?}",
                self.proc.label,
                self.status_file.display(),
                String::from_utf8_lossy(&text)
            ))
        })
    }

    /// One counter of the status file (`resumes`, `tail_drops`, …): an
    /// error when the file cannot be read or has no such counter, never a
    /// default of 0.
    pub fn counter(&self, key: &str) -> Result<u64, ReadError> {
        status_counter(&self.read_status()?, key)
    }

    pub fn state(&self) -> String {
        self.status()
            .and_then(|s| s.get("state").and_then(|v| v.as_str().map(str::to_owned)))
            .unwrap_or_default()
    }

    /// Waits until the client says it is connected.
    pub fn wait_connected(&self, timeout: Duration) {
        let ok = wait_until(timeout, || self.state() == "connected");
        assert!(
            ok,
            "{} did not connect:\n{}",
            self.proc.label,
            self.proc.output()
        );
    }
}

// ---------------------------------------------------------------------------
// ping and iperf3

/// What `ping -D` said.
#[derive(Debug, Default)]
pub struct PingReport {
    pub transmitted: u64,
    pub received: u64,
    /// Arrival time (Unix seconds) and icmp_seq of every reply, in order.
    pub replies: Vec<(f64, u64)>,
    /// min/avg/max RTT in ms.
    pub rtt: Option<(f64, f64, f64)>,
}

pub fn parse_ping(text: &str) -> PingReport {
    let mut r = PingReport::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('[') {
            // [1700000000.123456] 64 bytes from …: icmp_seq=3 ttl=64 time=0.5 ms
            let (ts, tail) = rest.split_once(']').unwrap_or(("", ""));
            let seq = tail
                .split_whitespace()
                .find_map(|w| w.strip_prefix("icmp_seq="))
                .and_then(|s| s.parse().ok());
            if let (Ok(ts), Some(seq)) = (ts.parse::<f64>(), seq) {
                if tail.contains("bytes from") {
                    r.replies.push((ts, seq));
                }
            }
        } else if line.contains("packets transmitted") {
            let nums: Vec<u64> = line
                .split(',')
                .filter_map(|p| p.split_whitespace().next()?.parse().ok())
                .collect();
            if nums.len() >= 2 {
                r.transmitted = nums[0];
                r.received = nums[1];
            }
        } else if let Some(v) = line.split(" = ").nth(1).filter(|_| line.starts_with("rtt")) {
            let parts: Vec<f64> = v
                .trim_end_matches(" ms")
                .split('/')
                .filter_map(|p| p.parse().ok())
                .collect();
            if parts.len() >= 3 {
                r.rtt = Some((parts[0], parts[1], parts[2]));
            }
        }
    }
    r
}

/// Now as Unix seconds (to compare with `ping -D` timestamps).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Pings `target` from `ns` until one reply comes back (ARP through the
/// hub may take a moment the first time).
pub fn ping_works(ns: &Ns, target: &str, timeout: Duration) -> bool {
    wait_until(timeout, || {
        ns.exec(&["ping", "-c", "1", "-W", "1", target])
            .status
            .success()
    })
}

/// How long a [`Lan`] waits for its clients to connect and ping.
const LAN_T: Duration = Duration::from_secs(30);

/// A hub, two namespaces with a vnic each (10.77.0.11 in a, 10.77.0.12 in
/// b, user alice on DEFAULT), pinging works.
/// Fields drop in order: the clients, the hub, the namespaces, and the
/// directory last (a client still running would create it again).
pub struct Lan {
    pub va: Option<Vnic>,
    pub vb: Option<Vnic>,
    pub hub: Hub,
    pub a: Ns,
    pub b: Ns,
    pub pw: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Lan {
    /// `session_extra`: more `[session]` keys for the hub.
    pub fn new(test: &str, id: u8, session_extra: &str) -> Lan {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        let hub = Hub::start_with(
            dir.path(),
            &dir.path().join("certs"),
            free_port(),
            session_extra,
        );
        let a = Ns::new(test, 'a', id, 1);
        let b = Ns::new(test, 'b', id, 2);
        let mut lan = Lan {
            va: None,
            vb: None,
            hub,
            a,
            b,
            pw,
            dir,
        };
        lan.va = Some(lan.vnic('a'));
        lan.vb = Some(lan.vnic('b'));
        lan.va().wait_connected(LAN_T);
        lan.vb().wait_connected(LAN_T);
        assert!(ping_works(&lan.a, "10.77.0.12", LAN_T), "a cannot ping b");
        lan
    }

    /// Starts (another) vnic in namespace `a` or `b`.
    pub fn vnic(&self, which: char) -> Vnic {
        let (ns, ip) = match which {
            'a' => (&self.a, "10.77.0.11/24"),
            _ => (&self.b, "10.77.0.12/24"),
        };
        Vnic::start(
            ns,
            VnicOpts {
                hub_ip: ns.host_ip,
                port: self.hub.port,
                hub: "DEFAULT",
                user: "alice",
                password_file: &self.pw,
                tap: "vnic0",
                ip: Some(ip),
                dir: self.dir.path(),
                extra: vec![],
            },
        )
    }

    pub fn va(&self) -> &Vnic {
        self.va.as_ref().unwrap()
    }

    /// The iperf3 server in b (one client, then it exits), listening.
    pub fn iperf3_server(&self) -> Proc {
        iperf3_server(&self.b, "10.77.0.12", &self.dir.path().join("iperf3-s.log"))
    }

    pub fn vb(&self) -> &Vnic {
        self.vb.as_ref().unwrap()
    }
}

/// An iperf3 server in `ns` on `ip` (one client, then it exits),
/// listening when this returns.
pub fn iperf3_server(ns: &Ns, ip: &str, log: &Path) -> Proc {
    let server = ns.spawn("iperf3 -s", &["iperf3", "-s", "-1", "-B", ip], log);
    let ready = wait_until(LAN_T, || {
        ns.exec(&["ss", "-ltn", "sport = :5201"])
            .stdout
            .windows(4)
            .any(|w| w == b"5201")
    });
    assert!(ready, "iperf3 server did not start");
    server
}

/// iperf3 for 3 s from `cli` to a server on `srv_ip` in `srv`
/// (`reverse`: the other way); Gbit/s received, never 0 (asserted).
pub fn iperf3(srv: &Ns, srv_ip: &str, cli: &Ns, dir: &Path, reverse: bool) -> f64 {
    let mut server = iperf3_server(
        srv,
        srv_ip,
        &dir.join(format!("iperf3-s-{}-{reverse}.log", srv.name)),
    );
    let mut args = vec!["iperf3", "-c", srv_ip, "-t", "3", "-J"];
    if reverse {
        args.push("-R");
    }
    let out = cli.exec_ok(&args);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(bps > 0.0, "iperf3 moved nothing: {report}");
    server.wait_exit(Duration::from_secs(10));
    bps / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_output_is_understood() {
        let text = "PING 10.77.0.12 (10.77.0.12) 56(84) bytes of data.\n\
            [1700000000.100000] 64 bytes from 10.77.0.12: icmp_seq=1 ttl=64 time=0.9 ms\n\
            [1700000000.150000] 64 bytes from 10.77.0.12: icmp_seq=2 ttl=64 time=1.1 ms\n\
            \n--- 10.77.0.12 ping statistics ---\n\
            3 packets transmitted, 2 received, 33.3333% packet loss, time 101ms\n\
            rtt min/avg/max/mdev = 0.900/1.000/1.100/0.100 ms\n";
        let r = parse_ping(text);
        assert_eq!((r.transmitted, r.received), (3, 2));
        assert_eq!(r.replies, vec![(1700000000.1, 1), (1700000000.15, 2)]);
        assert_eq!(r.rtt, Some((0.9, 1.0, 1.1)));
    }
}
