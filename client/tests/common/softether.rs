//! The real SoftEther VPN programs of Debian (5.01: `vpnserver`,
//! `vpnclient`, `vpncmd`) as peers of the end-to-end tests, and the
//! traffic checks these tests share (`ping`, `iperf3` between namespaces).
//!
//! The Debian packages keep their state in /var/lib/softether, their
//! logs in /var/log/softether and their PID and control files in
//! /run/softether (hard-coded), so each daemon runs under `unshare -m`
//! with the test's directories bound over /var/lib, /var/log and /run,
//! and an empty file over /etc/resolv.conf (no name lookups: the NAT-T,
//! DDNS and VPN Azure servers are found by name): nothing of the host's
//! is read or written (the daemons only probe that /tmp is writable, with
//! a file they delete at once), and nothing reaches the internet by name. Both daemons fork a watchdog: every process is stopped by its PID
//! ([`Daemon`]'s `Drop`).
//!
//! Accounts made by [`VpnClient::add_account`] turn UDP acceleration off
//! and leave the routing table alone (PROTOCOL-NOTES.md §9).

#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::*;

pub const VPNCMD: &str = "/usr/libexec/softether/vpncmd/vpncmd";
pub const VPNSERVER: &str = "/usr/libexec/softether/vpnserver/vpnserver";
pub const VPNCLIENT: &str = "/usr/libexec/softether/vpnclient/vpnclient";

/// How long a daemon may take to answer `vpncmd`, or an account to log in.
const T: Duration = Duration::from_secs(30);

/// A SoftEther daemon (`vpnserver` or `vpnclient`, `execsvc`) in a mount
/// namespace of its own; stopped with the watchdog's children by PID.
pub struct Daemon {
    pub proc: Proc,
}

impl Daemon {
    /// Runs `binary execsvc` with `state` bound over /var/lib, /var/log
    /// and /run, in `ns` (or the root namespace).
    pub fn start(label: &str, binary: &str, state: &Path, ns: Option<&Ns>) -> Daemon {
        // The watchdog's child, orphaned when the watchdog stops, comes
        // to this process to be reaped (not to a PID 1 that may not reap).
        // SAFETY: prctl with an integer argument; affects this process only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
        for d in ["lib/softether", "log/softether", "run/softether"] {
            std::fs::create_dir_all(state.join(d)).unwrap();
        }
        std::fs::write(state.join("resolv.conf"), "").unwrap();
        // /run/softether holds the daemon's PID, lock and control files:
        // of two vpnclients sharing it, one did not come up. An
        // /etc/resolv.conf that links into /run is gone after the /run
        // bind (glibc then asks 127.0.0.1 only).
        let script = format!(
            "set -e; mount --make-rprivate /; \
             mount --bind {s}/lib /var/lib; mount --bind {s}/log /var/log; \
             mount --bind {s}/run /run; \
             if [ -e /etc/resolv.conf ]; then mount --bind {s}/resolv.conf /etc/resolv.conf; fi; \
             exec {binary} execsvc",
            s = state.display()
        );
        let args = ["unshare", "-m", "sh", "-c", &script];
        let log = state.join(format!("{label}.out"));
        let proc = match ns {
            Some(ns) => ns.spawn(label, &args, &log),
            None => {
                let f = std::fs::File::create(&log).unwrap();
                let child = Command::new(args[0])
                    .args(&args[1..])
                    .stdin(std::process::Stdio::null())
                    .stdout(f.try_clone().unwrap())
                    .stderr(f)
                    .spawn()
                    .expect("unshare");
                Proc::new(label, child, &log)
            }
        };
        Daemon { proc }
    }

    /// The PIDs the daemon forked (its watchdog's child): the processes
    /// whose parent is the daemon's PID (field 4 of /proc/PID/stat).
    fn children(&self) -> Vec<i32> {
        let pid = self.proc.pid();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| {
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                // "PID (comm) STATE PPID …": comm may hold spaces, so
                // read after its closing parenthesis.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(pid)
            })
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let children = self.children();
        self.proc.stop();
        for pid in children {
            // SAFETY: kill(2) and waitpid(2) on a PID this test's daemon
            // forked, which is now this process's child (subreaper).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// A command's standard output and error, one after the other.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `vpncmd` against the server on `port` (in the root namespace).
pub fn server_cmd(port: u16, cmd: &[&str]) -> Output {
    let target = format!("localhost:{port}");
    let mut args = vec![VPNCMD, &target, "/SERVER", "/CMD"];
    args.extend_from_slice(cmd);
    run_any(&args)
}

/// One connection setting ("account") of the real `vpnclient`.
pub struct Account<'a> {
    pub name: &'a str,
    /// Its virtual network adapter: the TAP device is `vpn_<nic>`.
    pub nic: &'a str,
    /// `HOST:PORT`, with `/tcp` appended for no NAT-T race and no HTTPS
    /// probe (PROTOCOL-NOTES.md §3.2).
    pub server: String,
    pub hub: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    /// The account's number of TCP connections (`/MAXTCP`, 1..32); the
    /// server's welcome may lower it.
    pub max_tcp: u8,
}

/// The real `vpnclient` daemon in a namespace, driven by `vpncmd
/// localhost /CLIENT`. Its state and logs are under `state`.
pub struct VpnClient<'a> {
    pub ns: &'a Ns,
    pub state: PathBuf,
    pub daemon: Daemon,
}

impl<'a> VpnClient<'a> {
    /// Starts the daemon in `ns` and waits until it answers `vpncmd`.
    pub fn start(ns: &'a Ns, state: &Path) -> VpnClient<'a> {
        let daemon = Daemon::start("vpnclient", VPNCLIENT, state, Some(ns));
        let c = VpnClient {
            ns,
            state: state.to_owned(),
            daemon,
        };
        let up = wait_until(T, || c.cmd_any(&["AccountList"]).status.success());
        assert!(
            up,
            "vpnclient in {} did not answer:\n{}",
            ns.name,
            c.daemon.proc.output()
        );
        c
    }

    /// `vpncmd localhost /CLIENT /CMD …`, whatever its exit status.
    pub fn cmd_any(&self, cmd: &[&str]) -> Output {
        let mut args = vec![VPNCMD, "localhost", "/CLIENT", "/CMD"];
        args.extend_from_slice(cmd);
        self.ns.exec(&args)
    }

    /// `vpncmd localhost /CLIENT /CMD …`; panics with its output if it
    /// fails.
    pub fn cmd(&self, cmd: &[&str]) -> String {
        let out = self.cmd_any(cmd);
        let t = text(&out);
        assert!(
            out.status.success(),
            "vpncmd /CLIENT {cmd:?} in {}: {t}",
            self.ns.name
        );
        t
    }

    /// Creates the account's virtual adapter (if new) and the account
    /// with password authentication; UDP acceleration off, QoS off, no
    /// routing table changes. Does not connect.
    pub fn add_account(&self, a: &Account<'_>) {
        // NicList: one table per adapter, "Virtual Network Adapter Name|se0".
        let exists = self.cmd(&["NicList"]).lines().any(|l| {
            l.starts_with("Virtual Network Adapter Name")
                && l.rsplit('|').next().map(str::trim) == Some(a.nic)
        });
        if !exists {
            self.cmd(&["NicCreate", a.nic]);
        }
        self.cmd(&[
            "AccountCreate",
            a.name,
            &format!("/SERVER:{}", a.server),
            &format!("/HUB:{}", a.hub),
            &format!("/USERNAME:{}", a.user),
            &format!("/NICNAME:{}", a.nic),
        ]);
        self.cmd(&[
            "AccountPasswordSet",
            a.name,
            &format!("/PASSWORD:{}", a.password),
            "/TYPE:standard",
        ]);
        self.cmd(&[
            "AccountDetailSet",
            a.name,
            &format!("/MAXTCP:{}", a.max_tcp),
            "/INTERVAL:1",
            "/TTL:0",
            "/HALF:no",
            "/BRIDGE:no",
            "/MONITOR:no",
            "/NOTRACK:yes",
            "/NOQOS:yes",
            "/DISABLEUDP:yes",
        ]);
    }

    pub fn connect(&self, account: &str) {
        self.cmd(&["AccountConnect", account]);
    }

    pub fn disconnect(&self, account: &str) {
        self.cmd(&["AccountDisconnect", account]);
    }

    /// `AccountStatusGet`'s table (or its error).
    pub fn status(&self, account: &str) -> String {
        text(&self.cmd_any(&["AccountStatusGet", account]))
    }

    pub fn established(&self, account: &str) -> bool {
        self.status(account).contains("Session Established")
    }

    /// Waits until the account's session is established; panics with its
    /// status and the client's log if it is not within `timeout`.
    pub fn wait_established(&self, account: &str, timeout: Duration) {
        let ok = wait_until(timeout, || self.established(account));
        assert!(
            ok,
            "vpnclient account {account} in {} did not log in: {}\nits log:\n{}",
            self.ns.name,
            self.status(account),
            self.log()
        );
    }

    /// Gives the account's TAP device `vpn_<nic>` the address `ip` (CIDR)
    /// and brings it up.
    pub fn tap_up(&self, nic: &str, ip: &str) {
        let dev = format!("vpn_{nic}");
        self.ns.exec_ok(&["ip", "addr", "add", ip, "dev", &dev]);
        self.ns.exec_ok(&["ip", "link", "set", &dev, "up"]);
    }

    /// The client's own log (`log/softether/client_log/*.log`), all days.
    pub fn log(&self) -> String {
        let dir = self.state.join("log/softether/client_log");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap_or_default()).into_owned())
            .collect()
    }

    /// The lines of the client's log about `account` that end with a
    /// SoftEther error code, with the code: `… "NAME": The connection has
    /// been either disconnected or it failed. Cause: … (code 9)`.
    pub fn errors(&self, account: &str) -> Vec<(u32, String)> {
        let tag = format!("VPN Connection Setting \"{account}\":");
        self.log()
            .lines()
            .filter(|l| l.contains(&tag))
            .filter_map(|l| {
                let code = l.trim_end().strip_suffix(')')?.rsplit_once("(code ")?.1;
                Some((code.parse().ok()?, l.to_owned()))
            })
            .collect()
    }

    /// The lines of the client's log about `account`.
    pub fn log_lines(&self, account: &str) -> Vec<String> {
        let tag = format!("VPN Connection Setting \"{account}\"");
        self.log()
            .lines()
            .filter(|l| l.contains(&tag))
            .map(str::to_owned)
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Traffic between namespaces

/// Ten pings 0.2 s apart from `ns` to `target`.
pub fn ping_report(ns: &Ns, target: &str) -> PingReport {
    let out = ns.exec(&["ping", "-D", "-c", "10", "-i", "0.2", "-W", "2", target]);
    parse_ping(&String::from_utf8_lossy(&out.stdout))
}

/// Traffic between a vnic (in `a`, on `a_ip`) and a SoftEther client (in
/// `b`, on `b_ip`) on one LAN: ping both ways (some echoes must come
/// back), then iperf3 both ways (printed, never asserted on speed).
/// `through` names the server for the RESULT lines.
pub fn ping_and_iperf3_both_ways(
    a: &Ns,
    a_ip: &str,
    b: &Ns,
    b_ip: &str,
    dir: &Path,
    through: &str,
) {
    let ab = ping_report(a, b_ip);
    let ba = ping_report(b, a_ip);
    assert!(ab.received > 0 && ba.received > 0, "{ab:?} {ba:?}");
    println!(
        "RESULT ping vnic->vpnclient {}/{} rtt {:?} ms; vpnclient->vnic {}/{} rtt {:?} ms",
        ab.received, ab.transmitted, ab.rtt, ba.received, ba.transmitted, ba.rtt
    );
    let up = iperf3(b, b_ip, a, dir, false);
    let down = iperf3(b, b_ip, a, dir, true);
    println!(
        "RESULT iperf3 vnic->vpnclient {up:.2} Gbit/s, vpnclient->vnic {down:.2} Gbit/s \
         (through {through})"
    );
}
