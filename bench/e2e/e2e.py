#!/usr/bin/env python3
"""End-to-end benchmark: two vnic clients in two network namespaces joined
through a vhub in a third, with the kernel's ping and iperf3 between the two
TAP addresses — and, in the same run, the bare routed veth path between the
same namespaces (no VPN) as the baseline.

    sudo bench/e2e/e2e.py [--seconds 5] [--json FILE] [--no-build] [--io-backend auto] [--bridge]
                          [--two-node] [--softether] [--vnic-on-softether] [--softether-client]
                          [--prefix e2e]

Every path is measured the same way, from namespace a to b: ping avg/max
every 20 ms (50) and every 200 ms (10), iperf3 TCP one stream a -> b and
b -> a (-R), four streams and 64-byte UDP a -> b, and the CPU time of the
VPN's own processes (utime + stime from /proc/PID/stat, all threads) per
GB received during each one-stream TCP run.

With --bridge, two more paths: vnic a to namespace b as a host on a LAN
that the hub is bridged to ([[hub]] bridge), through a TAP device on a
Linux bridge (mode tap) and through a packet socket (mode packet).

With --two-node, one more path: vnic a on hub node 1 to vnic b on hub node
2 (docs/SCALE-OUT.md with the static flood list): each node a namespace
(e2e-n1, e2e-n2) with its own vhub whose DEFAULT is bridged (bridge =
"br100") to a Linux bridge br100 whose other port is vxlan100 (VNI 100,
dstport 4789), the two nodes joined by an underlay veth pair (10.99.0.1-2,
MTU 1550 so that 1500-byte frames fit), a and b on access links of their
own node (10.98.1.0/24, 10.98.2.0/24). No BGP: each node floods to the
other (bridge fdb append 00:00:00:00:00:00 ... dst PEER) and vxlan100
learns.

The SoftEther modes (the Debian 5.01 binaries, driven by vpncmd; see
bench/e2e/softether.py for how they are kept inside the namespaces) each
add one path, on the same namespaces and veths as the vhub path:
  --softether          vpnclient in a and in b, both on a real vpnserver
                       in h (hub BENCH, a password user): SoftEther alone.
  --vnic-on-softether  vnic connect softether://... in a, vpnclient in b,
                       on the same real vpnserver.
  --softether-client   vnic (https://, password user) in a, vpnclient in
                       b, on vhub's hub SE (SoftEther on vhub's TLS port).
The CPU column then counts vpnserver and vpnclient (each daemon's watchdog
and worker), vnic and vhub, whichever the path runs.

Builds release binaries (unless --no-build), creates namespaces e2e-h, e2e-a,
e2e-b, runs everything, prints a table (and JSON), and removes what it made.
Only the processes it started are stopped. --prefix renames the namespaces
and the interfaces made in the root namespace (PREFIX-h, PREFIX-ha, ...), so
that a run cannot collide with another one on the same machine (e.g. the CI
smoke test's, which uses the default).
"""
import argparse, json, os, re, signal, subprocess, sys, tempfile, time

sys.dont_write_bytecode = True  # no __pycache__ beside the script
import softether  # noqa: E402 (after the line above)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = "e2e"
NS = {}
# The namespaces of every path (h, a, b) and of --two-node (n1, n2).
BASE = ("h", "a", "b")
NODES = ("n1", "n2")


def set_prefix(prefix):
    global PREFIX
    PREFIX = prefix
    NS.clear()
    NS.update({k: f"{prefix}-{k}" for k in BASE + NODES})


def dev(suffix):
    """An interface name made in the root namespace (or e2e-h's bridge)."""
    return f"{PREFIX}-{suffix}"


set_prefix(PREFIX)
PORT = 8443
# The real vpnserver's only listener (in namespace h, beside vhub's PORT).
SE_PORT = 8444
procs = []


def sh(cmd, check=True, capture=False, ns=None, timeout=None):
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, check=False, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr if capture else ''}")
    return r


def spawn(cmd, ns=None, log=None):
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    p = subprocess.Popen(cmd, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def cleanup():
    softether.stop_all()
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    for ns in NS.values():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def setup_net():
    cleanup()
    for k in BASE:
        sh(["ip", "netns", "add", NS[k]])
        sh(["ip", "link", "set", "lo", "up"], ns=NS[k])
    for side, net in (("a", 1), ("b", 2)):
        hv, cv = dev(f"h{side}"), dev(f"{side}h")
        sh(["ip", "link", "add", hv, "type", "veth", "peer", "name", cv])
        sh(["ip", "link", "set", hv, "netns", NS["h"]])
        sh(["ip", "link", "set", cv, "netns", NS[side]])
        sh(["ip", "addr", "add", f"10.99.{net}.1/24", "dev", hv], ns=NS["h"])
        sh(["ip", "link", "set", hv, "up"], ns=NS["h"])
        sh(["ip", "addr", "add", f"10.99.{net}.2/24", "dev", cv], ns=NS[side])
        sh(["ip", "link", "set", cv, "up"], ns=NS[side])
        other = 2 if net == 1 else 1
        # The bare path: routed through the hub's namespace, no VPN.
        sh(["ip", "route", "add", f"10.99.{other}.0/24", "via", f"10.99.{net}.1"], ns=NS[side])
    sh(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=NS["h"])


def setup_lans():
    """Namespace b as a host on two LANs of the hub's namespace: 10.78.0.2
    behind the Linux bridge e2e-br (hub LANTAP's TAP joins it), 10.79.0.2
    behind e2e-hp (hub LANPKT's packet socket)."""
    br = dev("br")
    sh(["ip", "link", "add", br, "type", "bridge"], ns=NS["h"])
    sh(["ip", "link", "set", br, "type", "bridge", "stp_state", "0", "forward_delay", "0"], ns=NS["h"])
    sh(["ip", "link", "set", br, "up"], ns=NS["h"])
    for hv, bv, net in ((dev("hl"), dev("bl"), 78), (dev("hp"), dev("bp"), 79)):
        sh(["ip", "link", "add", hv, "type", "veth", "peer", "name", bv])
        sh(["ip", "link", "set", hv, "netns", NS["h"]])
        sh(["ip", "link", "set", bv, "netns", NS["b"]])
        sh(["ip", "link", "set", hv, "up"], ns=NS["h"])
        sh(["ip", "addr", "add", f"10.{net}.0.2/24", "dev", bv], ns=NS["b"])
        sh(["ip", "link", "set", bv, "up"], ns=NS["b"])
    sh(["ip", "link", "set", dev("hl"), "master", br], ns=NS["h"])


def setup_two_nodes():
    """Two hub nodes (namespaces n1, n2) sharing virtual hub DEFAULT over a
    VXLAN segment with a static flood list (docs/SCALE-OUT.md,
    deploy/scale-out/vxlan100-static.ip and flood-list.bridge; the same
    as client/tests/scale_out.rs without BGP). Every link is made inside
    the namespaces, none in the root namespace. Client a reaches node 1
    at 10.98.1.1, client b node 2 at 10.98.2.1."""
    for k in NODES:
        sh(["ip", "netns", "add", NS[k]])
        sh(["ip", "link", "set", "lo", "up"], ns=NS[k])
    # Underlay: one veth pair between the nodes. 1550: room for VXLAN's 50
    # bytes around a 1500-byte frame.
    sh(["ip", "-n", NS["n1"], "link", "add", "ul", "mtu", "1550", "type", "veth",
        "peer", "name", "ul", "mtu", "1550", "netns", NS["n2"]])
    for n in (1, 2):
        ns, peer = NS[f"n{n}"], 3 - n
        sh(["ip", "addr", "add", f"10.99.0.{n}/24", "dev", "ul"], ns=ns)
        sh(["ip", "link", "set", "ul", "up"], ns=ns)
        # The segment: vxlan100 learns remote MACs from what it decaps.
        sh(["ip", "link", "add", "vxlan100", "type", "vxlan", "id", "100", "local", f"10.99.0.{n}",
            "dstport", "4789", "dev", "ul", "learning"], ns=ns)
        # Fails (rather than being cut to 1450) if the underlay has no room.
        sh(["ip", "link", "set", "vxlan100", "mtu", "1500"], ns=ns)
        sh(["ip", "link", "add", "br100", "type", "bridge", "stp_state", "0", "forward_delay", "0"], ns=ns)
        sh(["ip", "link", "set", "vxlan100", "master", "br100"], ns=ns)
        sh(["ip", "link", "set", "vxlan100", "up"], ns=ns)
        sh(["ip", "link", "set", "br100", "up"], ns=ns)
        # Head-end replication to the other node.
        sh(["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vxlan100", "dst", f"10.99.0.{peer}"], ns=ns)
    # Access links: a to node 1, b to node 2.
    for side, n in (("a", 1), ("b", 2)):
        node = NS[f"n{n}"]
        sh(["ip", "-n", NS[side], "link", "add", "to-node", "type", "veth", "peer", "name", "to-client",
            "netns", node])
        sh(["ip", "addr", "add", f"10.98.{n}.2/24", "dev", "to-node"], ns=NS[side])
        sh(["ip", "link", "set", "to-node", "up"], ns=NS[side])
        sh(["ip", "addr", "add", f"10.98.{n}.1/24", "dev", "to-client"], ns=node)
        sh(["ip", "link", "set", "to-client", "up"], ns=node)


def two_nodes(vhub, vnic, tmp, io_backend, seconds):
    """Starts the two nodes' hubs and a vnic on each, measures a -> b."""
    setup_two_nodes()
    certs = f"{tmp}/certs-2n"
    # One certificate naming both nodes' access addresses; each hub has
    # its own admin socket (the default would be in the shared cert_dir).
    subprocess.run([vhub, "cert", "generate", "--cert-dir", certs, "--ip", "10.98.1.1", "--ip", "10.98.2.1"],
                   check=True, capture_output=True)
    hubs = []
    for n in (1, 2):
        cfg = os.path.join(tmp, f"vhub-n{n}.toml")
        with open(cfg, "w") as f:
            f.write(f'listen = "0.0.0.0:{PORT}"\nmetrics_listen = "127.0.0.1:9750"\ncert_dir = "{certs}"\n'
                    f'admin_socket = "{tmp}/admin-n{n}.sock"\nio_backend = "{io_backend}"\n'
                    '[[hub]]\nname = "DEFAULT"\nanonymous = true\nbridge = "br100"\n')
        log = open(os.path.join(tmp, f"hub-n{n}.log"), "w")
        hubs.append(spawn([vhub, "--config", cfg], ns=NS[f"n{n}"], log=log))

    def bridged(n):
        r = subprocess.run([vhub, "ctl", "--socket", f"{tmp}/admin-n{n}.sock", "--json", "hubs"],
                           capture_output=True, text=True)
        try:
            return any(h.get("bridge", {}).get("state") == "up" for h in json.loads(r.stdout)["hubs"])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            return False
    for n in (1, 2):
        wait_for(lambda: bridged(n), f"node {n}'s hub bridged to br100")
    vnics = []
    for side, n, ip in (("a", 1, "10.76.0.1/24"), ("b", 2, "10.76.0.2/24")):
        log = open(os.path.join(tmp, f"vnic-{side}-2n.log"), "w")
        vnics.append(spawn([vnic, "connect", f"https://10.98.{n}.1:{PORT}/DEFAULT", "--tap", "vnic2",
                            "--ip", ip, "--ca", f"{certs}/ca.crt",
                            "--status-file", f"{tmp}/status-{side}-2n.json"], ns=NS[side], log=log))
    wait_for(lambda: sh(["ping", "-c", "1", "-W", "1", "10.76.0.2"], ns=NS["a"], check=False,
                        capture=True).returncode == 0, "ping across the two nodes", timeout=30)
    # Full-size frames cross (the underlay's MTU leaves room for VXLAN).
    r = sh(["ping", "-c", "3", "-s", "1472", "-M", "do", "10.76.0.2"], ns=NS["a"], check=False, capture=True)
    if r.returncode != 0:
        raise RuntimeError(f"1500-byte packets do not cross the two nodes: {r.stdout}")
    res = measure("vhub two nodes, VXLAN", "10.76.0.1", "10.76.0.2", seconds,
                  pids={"vhub n1": [hubs[0].pid], "vhub n2": [hubs[1].pid], "vnic a": [vnics[0].pid],
                        "vnic b": [vnics[1].pid]})
    for p in vnics + hubs:
        p.terminate()
        p.wait(timeout=10)
    return res


def pinged(dst, what, log=None):
    """Waits for a ping from a to `dst`; on a timeout the error carries
    the end of `log` (vnic's)."""
    try:
        wait_for(lambda: sh(["ping", "-c", "1", "-W", "1", dst], ns=NS["a"], check=False,
                            capture=True).returncode == 0, what, timeout=30)
    except RuntimeError as e:
        if log:
            log.flush()
            with open(log.name) as f:
                raise RuntimeError(f"{e}; {log.name} ends:\n" + "".join(f.readlines()[-15:]))
        raise


def se_pure(server, tmp, seconds):
    """--softether: a vpnclient in a and in b on the real vpnserver."""
    clients = []
    try:
        for side, net, ip in (("a", 1, "10.75.0.1/24"), ("b", 2, "10.75.0.2/24")):
            clients.append(softether.Client(f"{tmp}/se-client-{side}", NS[side], f"10.99.{net}.1", SE_PORT,
                                            softether.HUB, softether.USER, softether.PASSWORD, ip,
                                            label=f"vpnclient-{side}"))
        pinged("10.75.0.2", "ping between the two vpnclients through vpnserver")
        res = measure("SoftEther: vpnclient <-> vpnserver <-> vpnclient", "10.75.0.1", "10.75.0.2", seconds,
                      pids={"vpnserver": server.pids(), "vpnclient a": clients[0].pids(),
                            "vpnclient b": clients[1].pids()})
        res["softether_session_a"] = softether.status_fields(clients[0].status)
        return res
    finally:
        for c in clients:
            c.stop()


def vnic_args(vnic, url, tap, ip, tmp, side, extra):
    return [vnic, "connect", url, "--tap", tap, "--ip", ip, "--status-file", f"{tmp}/status-{side}-{tap}.json",
            "--user", softether.USER, "--password-file", f"{tmp}/se-password"] + extra


def se_vnic_on_softether(server, vnic, tmp, seconds):
    """--vnic-on-softether: vnic (softether://) in a, vpnclient in b, on
    the real vpnserver."""
    log = open(os.path.join(tmp, "vnic-a-softether.log"), "w")
    p = spawn(vnic_args(vnic, f"softether://10.99.1.1:{SE_PORT}/{softether.HUB}", "vse0", "10.74.0.1/24", tmp,
                        "a", ["--known-hubs", f"{tmp}/known_hubs"]), ns=NS["a"], log=log)
    client = None
    try:
        client = softether.Client(f"{tmp}/se-client-b-mixed", NS["b"], "10.99.2.1", SE_PORT, softether.HUB,
                                  softether.USER, softether.PASSWORD, "10.74.0.2/24", label="vpnclient-b")
        pinged("10.74.0.2", "ping from vnic to vpnclient through vpnserver", log)
        return measure("vnic (softether://) <-> vpnserver <-> vpnclient", "10.74.0.1", "10.74.0.2", seconds,
                       pids={"vpnserver": server.pids(), "vnic a": [p.pid], "vpnclient b": client.pids()})
    finally:
        if client:
            client.stop()
        p.terminate()
        p.wait(timeout=10)


def hub_counters():
    """The hub's drop, protocol-error and keep-alive-timeout counters
    (what the hub lost, and why), from its metrics listener in namespace h."""
    # python3 rather than curl: nothing the CI smoke test does not have.
    r = sh([sys.executable, "-c", "import urllib.request, sys; sys.stdout.write(urllib.request.urlopen("
            "'http://127.0.0.1:9750/metrics', timeout=5).read().decode())"], ns=NS["h"], check=False, capture=True)
    if r.returncode != 0:
        raise RuntimeError(f"vhub's metrics cannot be read: {r.stderr[-300:]}")
    return {name: float(val) for name, val in (l.rsplit(" ", 1) for l in r.stdout.splitlines() if l.startswith(
        ("vhub_frames_dropped", "vhub_protocol_errors", "vhub_keepalive_timeouts")))}


def se_client_on_vhub(hub, vnic, tmp, seconds):
    """--softether-client: vnic (https://, password) in a, vpnclient in b,
    both on vhub's hub SE."""
    log = open(os.path.join(tmp, "vnic-a-SE.log"), "w")
    p = spawn(vnic_args(vnic, f"https://10.99.1.1:{PORT}/SE", "vnic3", "10.73.0.1/24", tmp, "a",
                        ["--ca", f"{tmp}/certs/ca.crt"]), ns=NS["a"], log=log)
    client = None
    try:
        client = softether.Client(f"{tmp}/se-client-b-vhub", NS["b"], "10.99.2.1", PORT, "SE", softether.USER,
                                  softether.PASSWORD, "10.73.0.2/24", label="vpnclient-b")
        pinged("10.73.0.2", "ping from vnic to vpnclient through vhub", log)
        res = measure("vnic <-> vhub <-> vpnclient (SoftEther)", "10.73.0.1", "10.73.0.2", seconds,
                      pids={"vhub": [hub.pid], "vnic a": [p.pid], "vpnclient b": client.pids()},
                      counters=hub_counters)
        res["softether_session_b"] = softether.status_fields(client.status)
        return res
    finally:
        if client:
            client.stop()
        p.terminate()
        p.wait(timeout=10)


def wait_for(pred, what, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def ping(ns, dst, count=50, interval=0.02):
    r = sh(["ping", "-q", "-c", str(count), "-i", str(interval), dst], ns=ns, capture=True, check=False, timeout=60)
    m = re.search(r"= [\d.]+/([\d.]+)/([\d.]+)/", r.stdout)
    loss = re.search(r"([\d.]+)% packet loss", r.stdout)
    return {"rtt_avg_ms": float(m.group(1)) if m else None, "rtt_max_ms": float(m.group(2)) if m else None,
            "loss_percent": float(loss.group(1)) if loss else None}


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of all of PID's threads, in seconds; an error (never
    0) if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        raise RuntimeError(f"process {pid} is gone: its CPU time cannot be read")
    # After the comm: state is field 3, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_by_role(pids):
    return {role: sum(cpu_seconds(p) for p in ps) for role, ps in pids.items()}


def iperf(client_ns, server_ns, server_ip, seconds, extra, wrap=()):
    """`wrap`: a command prefix for both ends (e.g. taskset)."""
    srv = spawn([*wrap, "iperf3", "-s", "-1", "-B", server_ip], ns=server_ns)
    time.sleep(0.5)
    r = sh([*wrap, "iperf3", "-c", server_ip, "-J", "-t", str(seconds)] + extra, ns=client_ns, capture=True, check=False, timeout=seconds + 30)
    srv.wait(timeout=10)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"iperf3 failed: {r.stdout[-500:]} {r.stderr[-500:]}")


def measure(path, a_ip, b_ip, seconds, pids=None, counters=None):
    """`pids`: the VPN's processes, {role: [PID, ...]} (None for the bare
    path), whose CPU time per GB moved is reported for the one-stream TCP
    runs. `counters`: a function returning the hub's counters (see
    hub_counters); what moved is recorded per test."""
    res = {"path": path}
    last = counters() if counters else None

    def counted(test):
        nonlocal last
        if counters:
            now = counters()
            moved = {k: v - last.get(k, 0) for k, v in now.items() if v != last.get(k, 0)}
            if moved:
                res.setdefault("vhub_counters_moved", {})[test] = moved
            last = now
    res.update(ping(NS["a"], b_ip))
    res.update({f"ping200_{k}": v for k, v in ping(NS["a"], b_ip, count=10, interval=0.2).items()})
    counted("ping")
    for key, extra in (("tcp_1", []), ("tcp_1_rev", ["-R"])):
        before = cpu_by_role(pids) if pids else None
        j = iperf(NS["a"], NS["b"], b_ip, seconds, extra)
        got = j["end"]["sum_received"]
        res[f"{key}_gbit"] = got["bits_per_second"] / 1e9
        if pids:
            after = cpu_by_role(pids)
            gb = got["bytes"] / 1e9
            by = {role: (after[role] - before[role]) / gb for role in pids}
            res[f"{key}_cpu_s_per_gb"] = sum(by.values())
            res[f"{key}_cpu_s_per_gb_by"] = by
        counted(key)
    j = iperf(NS["a"], NS["b"], b_ip, seconds, ["-P", "4"])
    res["tcp_4_gbit"] = j["end"]["sum_received"]["bits_per_second"] / 1e9
    counted("tcp_4")
    j = iperf(NS["a"], NS["b"], b_ip, seconds, ["-u", "-l", "64", "-b", "0"])
    s = j["end"]["sum"]
    secs = s.get("seconds") or seconds
    res["udp64_sent_pps"] = s["packets"] / secs
    res["udp64_delivered_pps"] = (s["packets"] - s["lost_packets"]) / secs
    res["udp64_loss_percent"] = s["lost_percent"]
    counted("udp64")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--debug", action="store_true", help="use debug binaries (CI smoke test)")
    ap.add_argument("--io-backend", default="auto")
    ap.add_argument("--bridge", action="store_true", help="also measure the local bridge (TAP and packet modes)")
    ap.add_argument("--two-node", action="store_true",
                    help="also measure vnic a on hub node 1 to vnic b on hub node 2, the nodes joined by VXLAN")
    ap.add_argument("--softether", action="store_true",
                    help="also measure SoftEther alone: two real vpnclients on a real vpnserver")
    ap.add_argument("--vnic-on-softether", action="store_true",
                    help="also measure vnic (softether://) to a real vpnclient on a real vpnserver")
    ap.add_argument("--softether-client", action="store_true",
                    help="also measure vnic to a real vpnclient on vhub (hub SE, SoftEther on vhub's port)")
    ap.add_argument("--prefix", default="e2e", help="of the namespaces and root-namespace interfaces (default e2e)")
    args = ap.parse_args()
    if not re.fullmatch(r"[a-z0-9]{1,12}", args.prefix):
        sys.exit("--prefix: 1 to 12 lowercase letters or digits (interface names are at most 15 bytes)")
    set_prefix(args.prefix)
    if os.geteuid() != 0:
        sys.exit("bench/e2e/e2e.py needs root (network namespaces, TAP devices)")
    se_modes = args.softether or args.vnic_on_softether or args.softether_client
    if se_modes and softether.available():
        sys.exit(f"the SoftEther modes need the Debian SoftEther binaries: {softether.available()}")
    profile = "debug" if args.debug else "release"
    if not args.no_build:
        cmd = ["cargo", "build", "-p", "hub", "-p", "client"] + ([] if args.debug else ["--release"])
        subprocess.run(cmd, check=True, cwd=ROOT)
    vhub = os.path.join(ROOT, "target", profile, "vhub")
    vnic = os.path.join(ROOT, "target", profile, "vnic")
    tmp = tempfile.mkdtemp(prefix="vhub-e2e-")
    notes, failed = {"logs": tmp}, []
    try:
        setup_net()
        results = [measure("bare routed veth (no VPN)", "10.99.1.2", "10.99.2.2", args.seconds)]
        cfg = os.path.join(tmp, "vhub.toml")
        with open(cfg, "w") as f:
            f.write(f'listen = "0.0.0.0:{PORT}"\nmetrics_listen = "127.0.0.1:9750"\ncert_dir = "{tmp}/certs"\n'
                    f'io_backend = "{args.io_backend}"\n[[hub]]\nname = "DEFAULT"\nanonymous = true\n')
            if args.bridge:
                setup_lans()
                f.write(f'[[hub]]\nname = "LANTAP"\nanonymous = true\nbridge = "{dev("br")}"\n'
                        '[[hub]]\nname = "LANPKT"\nanonymous = true\n'
                        f'[hub.bridge]\ninterface = "{dev("hp")}"\nmode = "packet"\n')
            if args.softether_client:
                # SoftEther clients log in on the same TLS port (softether
                # = true is the default; said here so the run shows it).
                f.write('[[hub]]\nname = "SE"\nanonymous = false\nsoftether = true\n')
        # A certificate naming the hub's two addresses, so --ca verifies.
        subprocess.run([vhub, "cert", "generate", "--cert-dir", f"{tmp}/certs", "--ip", "10.99.1.1",
                        "--ip", "10.99.2.1"], check=True, capture_output=True)
        if se_modes:
            # The password of user u, for vnic and vpnclient alike.
            with open(f"{tmp}/se-password", "w") as f:
                f.write(softether.PASSWORD + "\n")
        if args.softether_client:
            # A password user who may also log in from SoftEther clients.
            subprocess.run([vhub, "user", "add", softether.USER, "--hub", "SE", "--password-file",
                            f"{tmp}/se-password", "--softether", "--config", cfg], check=True, capture_output=True)
        hub_log = open(os.path.join(tmp, "hub.log"), "w")
        hub = spawn([vhub, "--config", cfg], ns=NS["h"], log=hub_log)
        wait_for(lambda: os.path.exists(f"{tmp}/certs/ca.crt"), "the hub's certificate")
        time.sleep(0.5)
        # The same hub, the clients with segmentation offload (the default),
        # then a sending with it to b without it (the hub cuts a's super
        # frames in software for b's kernel, which checks every checksum),
        # then both without (--no-offload): what TSO super frames give.
        off = ["--no-offload"]
        for label, extras in (("vhub (TLS, TAP, virtual hub)", ([], [])),
                              ("vhub, offload a -> plain b", ([], off)),
                              ("vhub, vnic --no-offload", (off, off))):
            vnics = []
            for extra, (side, net, ip) in zip(extras, (("a", 1, "10.77.0.1/24"), ("b", 2, "10.77.0.2/24"))):
                log = open(os.path.join(tmp, f"vnic-{side}-{len(results)}.log"), "w")
                vnics.append(spawn([vnic, "connect", f"https://10.99.{net}.1:{PORT}/DEFAULT", "--tap", "vnic0",
                                    "--ip", ip, "--ca", f"{tmp}/certs/ca.crt",
                                    "--status-file", f"{tmp}/status-{side}.json"] + extra, ns=NS[side], log=log))
            wait_for(lambda: sh(["ping", "-c", "1", "-W", "1", "10.77.0.2"], ns=NS["a"], check=False,
                                capture=True).returncode == 0, "ping through the hub", timeout=30)
            results.append(measure(label, "10.77.0.1", "10.77.0.2", args.seconds,
                                   pids={"vhub": [hub.pid], "vnic a": [vnics[0].pid], "vnic b": [vnics[1].pid]},
                                   counters=hub_counters))
            for p in vnics:
                p.terminate()
                p.wait(timeout=10)
        # vnic a to namespace b as a host on the bridged LAN.
        for label, name, net in ((("vhub local bridge, TAP", "LANTAP", 78), ("vhub local bridge, packet", "LANPKT", 79))
                                 if args.bridge else ()):
            log = open(os.path.join(tmp, f"vnic-a-{name}.log"), "w")
            p = spawn([vnic, "connect", f"https://10.99.1.1:{PORT}/{name}", "--tap", "vnic1",
                       "--ip", f"10.{net}.0.1/24", "--ca", f"{tmp}/certs/ca.crt",
                       "--status-file", f"{tmp}/status-a-{name}.json"], ns=NS["a"], log=log)
            wait_for(lambda: sh(["ping", "-c", "1", "-W", "1", f"10.{net}.0.2"], ns=NS["a"], check=False,
                                capture=True).returncode == 0, f"ping through the {name} bridge", timeout=30)
            results.append(measure(label, f"10.{net}.0.1", f"10.{net}.0.2", args.seconds,
                                   pids={"vhub": [hub.pid], "vnic a": [p.pid]}))
            p.terminate()
            p.wait(timeout=10)
        if args.two_node:
            results.append(two_nodes(vhub, vnic, tmp, args.io_backend, args.seconds))
        # The SoftEther paths. A mode that fails is reported as a row with
        # its error, and the others still run.
        server = None
        modes = ((args.softether, "SoftEther: vpnclient <-> vpnserver <-> vpnclient", True,
                  lambda: se_pure(server, tmp, args.seconds)),
                 (args.vnic_on_softether, "vnic (softether://) <-> vpnserver <-> vpnclient", True,
                  lambda: se_vnic_on_softether(server, vnic, tmp, args.seconds)),
                 (args.softether_client, "vnic <-> vhub <-> vpnclient (SoftEther)", False,
                  lambda: se_client_on_vhub(hub, vnic, tmp, args.seconds)))
        for wanted, label, on_vpnserver, run in modes:
            if not wanted:
                continue
            try:
                if on_vpnserver and server is None:
                    server = softether.Server(f"{tmp}/se-server", NS["h"], SE_PORT)
                results.append(run())
            except (RuntimeError, subprocess.TimeoutExpired, KeyError, json.JSONDecodeError) as e:
                failed.append(label)
                print(f"{label}: FAILED: {e}", file=sys.stderr)
                results.append({"path": label, "error": str(e)})
                if not on_vpnserver:
                    hub_log.flush()
                    with open(os.path.join(tmp, "hub.log")) as f:
                        lines = f.read().splitlines()
                    print("vhub's log (last 40 lines):\n" + "\n".join(lines[-40:]), file=sys.stderr)
    finally:
        cleanup()

    def num(r, key, fmt, width):
        v = r.get(key)
        return f"{v:{width}{fmt}}" if v is not None else f"{'-':>{width}}"
    hdr = (f"{'path':<48} {'TCP 1 a->b':>11} {'TCP 1 b->a':>11} {'TCP 4 a->b':>11} {'ping 20ms avg/max':>18} "
           f"{'ping 200ms avg/max':>19} {'64 B UDP':>9} {'UDP loss':>8} {'CPU-s/GB a->b/b->a':>19}")
    print(hdr)
    for r in results:
        if "error" in r:
            print(f"{r['path']:<48} FAILED: {r['error'].splitlines()[0][:300]}")
            continue
        print(f"{r['path']:<48} {num(r, 'tcp_1_gbit', '.2f', 6)} Gb/s {num(r, 'tcp_1_rev_gbit', '.2f', 6)} Gb/s "
              f"{num(r, 'tcp_4_gbit', '.2f', 6)} Gb/s {num(r, 'rtt_avg_ms', '.3f', 7)}/{num(r, 'rtt_max_ms', '.2f', 6)} ms "
              f"{num(r, 'ping200_rtt_avg_ms', '.3f', 7)}/{num(r, 'ping200_rtt_max_ms', '.2f', 6)} ms "
              f"{r['udp64_delivered_pps'] / 1000:>5.0f} k/s {r['udp64_loss_percent']:>7.1f}% "
              f"{num(r, 'tcp_1_cpu_s_per_gb', '.2f', 9)}/{num(r, 'tcp_1_rev_cpu_s_per_gb', '.2f', 9)}")
    ok = [r for r in results if "error" not in r]
    if len(ok) >= 2 and ok[0]["tcp_1_gbit"]:
        print(f"vhub / bare veth, TCP 1 stream: {ok[1]['tcp_1_gbit'] / ok[0]['tcp_1_gbit']:.2f}")
    if args.two_node and ok[1]["tcp_1_gbit"]:
        two = next(r for r in ok if r["path"].startswith("vhub two nodes"))
        print(f"two nodes / one hub, TCP 1 stream: {two['tcp_1_gbit'] / ok[1]['tcp_1_gbit']:.2f}")
    for r in ok:
        # Each SoftEther path beside the vnic <-> vhub path of this run.
        if "vpnclient" in r["path"] and ok[1]["tcp_1_gbit"]:
            print(f"{r['path']} / vhub, TCP 1 stream a->b {r['tcp_1_gbit'] / ok[1]['tcp_1_gbit']:.2f}, "
                  f"b->a {r['tcp_1_rev_gbit'] / ok[1]['tcp_1_rev_gbit']:.2f}")
    for key, val in notes.items():
        print(f"{key}: {val}")
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": args.seconds,
              "results": results, "notes": notes}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    print(json.dumps(report))
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
