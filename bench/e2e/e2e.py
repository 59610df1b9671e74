#!/usr/bin/env python3
"""End-to-end benchmark: two vnic clients in two network namespaces joined
through a vhub in a third, with the kernel's ping and iperf3 between the two
TAP addresses — and, in the same run, the bare routed veth path between the
same namespaces (no VPN) as the baseline.

    sudo bench/e2e/e2e.py [--seconds 5] [--json FILE] [--no-build] [--io-backend auto] [--bridge]
                          [--two-node] [--prefix e2e]

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

Builds release binaries (unless --no-build), creates namespaces e2e-h, e2e-a,
e2e-b, runs everything, prints a table (and JSON), and removes what it made.
Only the processes it started are stopped. --prefix renames the namespaces
and the interfaces made in the root namespace (PREFIX-h, PREFIX-ha, ...), so
that a run cannot collide with another one on the same machine (e.g. the CI
smoke test's, which uses the default).
"""
import argparse, json, os, re, signal, subprocess, sys, tempfile, time

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
    res = measure("vhub two nodes, VXLAN", "10.76.0.1", "10.76.0.2", seconds)
    for p in vnics + hubs:
        p.terminate()
        p.wait(timeout=10)
    return res


def wait_for(pred, what, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def ping(ns, dst, count=50, interval=0.02):
    r = sh(["ping", "-q", "-c", str(count), "-i", str(interval), dst], ns=ns, capture=True, check=False, timeout=60)
    m = re.search(r"= [\d.]+/([\d.]+)/", r.stdout)
    loss = re.search(r"([\d.]+)% packet loss", r.stdout)
    return {"rtt_avg_ms": float(m.group(1)) if m else None, "loss_percent": float(loss.group(1)) if loss else None}


def iperf(client_ns, server_ns, server_ip, seconds, extra):
    srv = spawn(["iperf3", "-s", "-1", "-B", server_ip], ns=server_ns)
    time.sleep(0.5)
    r = sh(["iperf3", "-c", server_ip, "-J", "-t", str(seconds)] + extra, ns=client_ns, capture=True, check=False, timeout=seconds + 30)
    srv.wait(timeout=10)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"iperf3 failed: {r.stdout[-500:]} {r.stderr[-500:]}")


def measure(path, a_ip, b_ip, seconds):
    res = {"path": path}
    res.update(ping(NS["a"], b_ip))
    j = iperf(NS["a"], NS["b"], b_ip, seconds, [])
    res["tcp_1_gbit"] = j["end"]["sum_received"]["bits_per_second"] / 1e9
    j = iperf(NS["a"], NS["b"], b_ip, seconds, ["-P", "4"])
    res["tcp_4_gbit"] = j["end"]["sum_received"]["bits_per_second"] / 1e9
    j = iperf(NS["a"], NS["b"], b_ip, seconds, ["-u", "-l", "64", "-b", "0"])
    s = j["end"]["sum"]
    secs = s.get("seconds") or seconds
    res["udp64_sent_pps"] = s["packets"] / secs
    res["udp64_delivered_pps"] = (s["packets"] - s["lost_packets"]) / secs
    res["udp64_loss_percent"] = s["lost_percent"]
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
    ap.add_argument("--prefix", default="e2e", help="of the namespaces and root-namespace interfaces (default e2e)")
    args = ap.parse_args()
    if not re.fullmatch(r"[a-z0-9]{1,12}", args.prefix):
        sys.exit("--prefix: 1 to 12 lowercase letters or digits (interface names are at most 15 bytes)")
    set_prefix(args.prefix)
    if os.geteuid() != 0:
        sys.exit("bench/e2e/e2e.py needs root (network namespaces, TAP devices)")
    profile = "debug" if args.debug else "release"
    if not args.no_build:
        cmd = ["cargo", "build", "-p", "hub", "-p", "client"] + ([] if args.debug else ["--release"])
        subprocess.run(cmd, check=True, cwd=ROOT)
    vhub = os.path.join(ROOT, "target", profile, "vhub")
    vnic = os.path.join(ROOT, "target", profile, "vnic")
    tmp = tempfile.mkdtemp(prefix="vhub-e2e-")
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
        # A certificate naming the hub's two addresses, so --ca verifies.
        subprocess.run([vhub, "cert", "generate", "--cert-dir", f"{tmp}/certs", "--ip", "10.99.1.1",
                        "--ip", "10.99.2.1"], check=True, capture_output=True)
        hub_log = open(os.path.join(tmp, "hub.log"), "w")
        spawn([vhub, "--config", cfg], ns=NS["h"], log=hub_log)
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
            results.append(measure(label, "10.77.0.1", "10.77.0.2", args.seconds))
            for p in vnics:
                p.terminate()
                p.wait(timeout=10)
        # vnic a to namespace b as a host on the bridged LAN.
        for label, hub, net in ((("vhub local bridge, TAP", "LANTAP", 78), ("vhub local bridge, packet", "LANPKT", 79))
                                if args.bridge else ()):
            log = open(os.path.join(tmp, f"vnic-a-{hub}.log"), "w")
            p = spawn([vnic, "connect", f"https://10.99.1.1:{PORT}/{hub}", "--tap", "vnic1",
                       "--ip", f"10.{net}.0.1/24", "--ca", f"{tmp}/certs/ca.crt",
                       "--status-file", f"{tmp}/status-a-{hub}.json"], ns=NS["a"], log=log)
            wait_for(lambda: sh(["ping", "-c", "1", "-W", "1", f"10.{net}.0.2"], ns=NS["a"], check=False,
                                capture=True).returncode == 0, f"ping through the {hub} bridge", timeout=30)
            results.append(measure(label, f"10.{net}.0.1", f"10.{net}.0.2", args.seconds))
            p.terminate()
            p.wait(timeout=10)
        if args.two_node:
            results.append(two_nodes(vhub, vnic, tmp, args.io_backend, args.seconds))
    finally:
        cleanup()
    hdr = f"{'path':<32} {'TCP 1 stream':>14} {'TCP 4 streams':>14} {'ping avg':>10} {'64 B UDP delivered':>20} {'UDP loss':>9}"
    print(hdr)
    for r in results:
        print(f"{r['path']:<32} {r['tcp_1_gbit']:>10.2f} Gb/s {r['tcp_4_gbit']:>10.2f} Gb/s {r['rtt_avg_ms'] or 0:>7.3f} ms "
              f"{r['udp64_delivered_pps'] / 1000:>14.0f} k/s {r['udp64_loss_percent']:>8.1f}%")
    if len(results) >= 2 and results[0]["tcp_1_gbit"]:
        print(f"vhub / bare veth, TCP 1 stream: {results[1]['tcp_1_gbit'] / results[0]['tcp_1_gbit']:.2f}")
    if args.two_node and results[1]["tcp_1_gbit"]:
        print(f"two nodes / one hub, TCP 1 stream: {results[-1]['tcp_1_gbit'] / results[1]['tcp_1_gbit']:.2f}")
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": args.seconds, "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
