"""The SoftEther side of bench/e2e/e2e.py (--softether, --vnic-on-softether,
--softether-client): the real Debian `vpnserver` and `vpnclient` 5.01 run
in the benchmark's namespaces and are driven with `vpncmd`, the same way
as client/tests/softether.rs.

The Debian daemons keep their state in hard-coded places (/var/lib/softether,
/var/log/softether, and their instance lock and PID files in /run/softether,
a cache in /tmp), so each runs under `unshare -m` with directories of the
benchmark's own bound over those: nothing of the host's is read or written,
and two vpnclients do not share one instance lock (the second one would
otherwise find the first's /run/softether/.VPN-* lock). Each daemon forks a
watchdog child; this process makes itself a child subreaper so that the
child, orphaned when its parent is stopped, is reaped here; both are stopped
by PID. The daemons run inside the benchmark's namespaces, which have no
route out of the machine (the server's dynamic DNS and NAT-T clients find
no route; VPN Azure and the "keep alive Internet connection" are off by
default in both daemons, as VpnAzureGetStatus and KeepGet show), and the
client accounts are made with `/tcp` (no NAT-T race, no HTTPS probe), UDP
acceleration off and one TCP connection (PROTOCOL-NOTES §8, §9).
"""
import ctypes, os, signal, subprocess, time

VPNCMD = "/usr/libexec/softether/vpncmd/vpncmd"
VPNSERVER = "/usr/libexec/softether/vpnserver/vpnserver"
VPNCLIENT = "/usr/libexec/softether/vpnclient/vpnclient"
HUB = "BENCH"
USER = "u"
PASSWORD = "se-bench-secret"
# The server's default listeners, deleted once our own port is up.
DEFAULT_LISTENERS = ("443", "992", "1194", "5555")
daemons = []


def available():
    """None if the SoftEther binaries are here, else what is missing."""
    missing = [p for p in (VPNCMD, VPNSERVER, VPNCLIENT) if not os.access(p, os.X_OK)]
    if missing:
        return ("missing " + ", ".join(missing) +
                " (apt-get install softether-vpnserver softether-vpnclient softether-vpncmd)")
    return None


def _in_ns(cmd, ns):
    return ["ip", "netns", "exec", ns] + cmd if ns else cmd


def _run(cmd, ns=None, timeout=60):
    r = subprocess.run(_in_ns(cmd, ns), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def _ppid(pid):
    """The parent PID from /proc/PID/stat (after the comm's closing
    parenthesis: comm may hold spaces), or None if PID is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


class Daemon:
    """`BINARY execsvc` in namespace `ns` (its own mount namespace, with
    `state`'s directories bound over /var/lib, /var/log, /run/softether and
    /tmp). `pid` is the watchdog itself: `ip netns exec`, `unshare` and
    `sh -c 'exec …'` all exec."""

    def __init__(self, label, binary, state, ns):
        # The watchdog's child, orphaned when the watchdog stops, comes to
        # this process to be reaped. PR_SET_CHILD_SUBREAPER = 36.
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(36, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        self.label, self.state, self.ns = label, state, ns
        for d in ("lib/softether", "log/softether", "run", "tmp"):
            os.makedirs(os.path.join(state, d), exist_ok=True)
        # /run/softether exists where the Debian packages are installed;
        # without it a tmpfs over all of /run does the same in this mount
        # namespace (the daemon needs nothing else from /run).
        run = (f"mount --bind {state}/run /run/softether" if os.path.isdir("/run/softether")
               else "mount -t tmpfs tmpfs /run && mkdir /run/softether")
        script = (f"mount --make-rprivate / && mount --bind {state}/lib /var/lib && "
                  f"mount --bind {state}/log /var/log && {run} && mount --bind {state}/tmp /tmp && "
                  f"exec {binary} execsvc")
        self.log = open(os.path.join(state, f"{label}.out"), "w")
        self.proc = subprocess.Popen(_in_ns(["unshare", "-m", "sh", "-c", script], ns),
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        daemons.append(self)

    def children(self):
        """The processes the watchdog forked (parent = its PID)."""
        out = []
        for name in os.listdir("/proc"):
            if name.isdigit() and _ppid(int(name)) == self.proc.pid:
                out.append(int(name))
        return out

    def pids(self):
        """The watchdog and its child, for CPU accounting; an error if the
        child is not there (a daemon that lost its worker is not measured
        as cheap)."""
        kids = self.children()
        if self.proc.poll() is not None or not kids:
            raise RuntimeError(f"{self.label}: the daemon or its worker is gone (log: {self.log.name})")
        return [self.proc.pid] + kids

    def stop(self):
        kids = self.children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in kids:
            # Ours now (subreaper): SIGKILL and reap, by PID.
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if self in daemons:
            daemons.remove(self)
        self.log.close()


def stop_all():
    for d in list(daemons):
        d.stop()


def _wait(pred, what, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


class Server:
    """The real vpnserver in namespace `ns`, listening only on `port`, with
    hub BENCH and password user u."""

    def __init__(self, state, ns, port):
        self.ns, self.port = ns, port
        self.daemon = Daemon("vpnserver", VPNSERVER, state, ns)
        _wait(lambda: self.cmd(["ListenerCreate", str(port)], target_port=5555, check=False)[0] == 0,
              f"vpnserver to answer vpncmd on 5555 (log {self.daemon.log.name})")
        for p in DEFAULT_LISTENERS:
            self.cmd(["ListenerDelete", p])
        self.cmd(["HubCreate", HUB, "/PASSWORD:hubadmin"])
        self.hub_cmd(["UserCreate", USER, "/GROUP:none", "/REALNAME:none", "/NOTE:none"])
        self.hub_cmd(["UserPasswordSet", USER, f"/PASSWORD:{PASSWORD}"])

    def cmd(self, args, target_port=None, check=True):
        rc, out = _run([VPNCMD, f"localhost:{target_port or self.port}", "/SERVER", "/CMD"] + args, ns=self.ns)
        if check and (rc != 0 or "Error occurred" in out):
            raise RuntimeError(f"vpncmd /SERVER {' '.join(args)} failed ({rc}): {out[-800:]}")
        return rc, out

    def hub_cmd(self, args):
        """A command on hub BENCH, as the server's administrator (empty
        password): `Hub BENCH` first in a batch, as /HUB: would log in as
        the hub's administrator instead."""
        batch = os.path.join(self.daemon.state, "hub.vpncmd")
        with open(batch, "w") as f:
            f.write(f"Hub {HUB}\n{' '.join(args)}\n")
        rc, out = _run([VPNCMD, f"localhost:{self.port}", "/SERVER", f"/IN:{batch}"], ns=self.ns)
        if rc != 0 or "Error occurred" in out:
            raise RuntimeError(f"vpncmd Hub {HUB}, {' '.join(args)} failed ({rc}): {out[-800:]}")
        return out

    def pids(self):
        return self.daemon.pids()

    def stop(self):
        self.daemon.stop()


class Client:
    """The real vpnclient in namespace `ns`: NIC se0 (TAP vpn_se0), account
    t1 to `host:port` hub `hub` as `user`, TCP only (`/tcp`: no NAT-T race,
    no HTTPS probe), one TCP connection, no UDP acceleration, no QoS, no
    routing-table tracking; `ip` on the TAP once the session is up."""

    TAP = "vpn_se0"

    def __init__(self, state, ns, host, port, hub, user, password, ip, label="vpnclient"):
        self.ns, self.state = ns, state
        self.daemon = Daemon(label, VPNCLIENT, state, ns)
        _wait(lambda: self.cmd(["AccountList"], check=False)[0] == 0,
              f"{label} to answer vpncmd (log {self.daemon.log.name})")
        self.cmd(["NicCreate", "se0"])
        self.cmd(["AccountCreate", "t1", f"/SERVER:{host}:{port}/tcp", f"/HUB:{hub}", f"/USERNAME:{user}",
                  "/NICNAME:se0"])
        self.cmd(["AccountPasswordSet", "t1", f"/PASSWORD:{password}", "/TYPE:standard"])
        # /MAXTCP:1: one TCP connection, as vnic uses; the Debian 5.01
        # client also drops every additional socket (PROTOCOL-NOTES §8).
        self.cmd(["AccountDetailSet", "t1", "/MAXTCP:1", "/INTERVAL:1", "/TTL:0", "/HALF:no", "/BRIDGE:no",
                  "/MONITOR:no", "/NOTRACK:yes", "/NOQOS:yes", "/DISABLEUDP:yes"])
        self.cmd(["AccountConnect", "t1"])
        self.status = ""

        def established():
            self.status = self.cmd(["AccountStatusGet", "t1"], check=False)[1]
            return "Session Established" in self.status
        try:
            _wait(established, f"{label} in {ns} to log in to {host}:{port}/{hub}")
        except RuntimeError as e:
            raise RuntimeError(f"{e}; AccountStatusGet: {'; '.join(table(self.status))}; "
                               f"its log: {' / '.join(self.log_tail())}")
        _run(["ip", "addr", "add", ip, "dev", self.TAP], ns=ns)
        _run(["ip", "link", "set", self.TAP, "up"], ns=ns)

    def log_tail(self, n=4):
        """The client's last lines about its connection (its log is in
        state/log/softether/client_log/)."""
        d = os.path.join(self.state, "log/softether/client_log")
        lines = []
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else ():
            with open(os.path.join(d, name), errors="replace") as f:
                lines += [l.strip() for l in f if "VPN Connection Setting" in l]
        return lines[-n:]

    def cmd(self, args, check=True):
        rc, out = _run([VPNCMD, "localhost", "/CLIENT", "/CMD"] + args, ns=self.ns)
        if check and (rc != 0 or "Error occurred" in out):
            raise RuntimeError(f"vpncmd /CLIENT {' '.join(args)} in {self.ns} failed ({rc}): {out[-800:]}")
        return rc, out

    def pids(self):
        return self.daemon.pids()

    def stop(self):
        # Disconnect first so that the server sees a clean logout.
        self.cmd(["AccountDisconnect", "t1"], check=False)
        self.daemon.stop()


def table(out):
    """The rows of a vpncmd answer ("Item |Value"), without its banner."""
    return [" ".join(l.split()) for l in out.splitlines()
            if "|" in l and not l.startswith(("Item", "-"))]


def status_fields(status, keys=("Encryption", "UDP Acceleration", "Number of TCP", "Physical")):
    """The rows of AccountStatusGet worth keeping with a result."""
    return [r for r in table(status) if any(k in r for k in keys)]
