#!/usr/bin/env python3
"""Ping through the hub for several hub configs (or binaries), alternating.

    sudo bench/e2e/pingab.py --variant 'off=busy_poll = "0s"' --variant 'on=busy_poll = "1ms"' \\
                             [--rounds 3] [--count 200] [--slow-count 50] [--seconds 5] [--no-build]

The e2e namespaces (prefix "pab"): vnic a → hub → vnic b. A variant is
LABEL=LINES: LINES go into the top level of the hub's config (`;` separates
lines), except a line `vnic: ARGS`, whose ARGS are added to both vnics'
command lines; `LABEL=LINES@/path/to/vhub` also swaps the hub binary. Each round
starts every variant afresh, in order, and measures:

- ping every 10 ms (`--count` echoes) and every 200 ms (`--slow-count`):
  average, p99 and maximum from ping's per-echo times;
- the CPU time the hub and both vnics spent during those pings (what a
  busy-poll costs an idle-ish link), per second of wall time;
- one TCP stream for `--seconds` (iperf3): Gbit/s and CPU-seconds per GB.

`--pin` puts the hub on CPU 1 and everything else it starts (vnics, ping,
iperf3) on CPU 0, as a hub on a server of its own would be: a hub that
polls then takes no CPU time from the clients. (The kernel's softirq work
for the veths runs where it is raised.) Without it, everything shares the
machine's cores.

The bare routed path between the same namespaces is pinged once per round
for reference. Nothing is asserted: this is a measurement.
"""
import argparse, json, os, re, statistics, subprocess, sys, tempfile, time

sys.dont_write_bytecode = True
import e2e  # noqa: E402


CLIENT_CPUS = []  # ["taskset", "-c", "0"] with --pin
HUB_CPUS = []


def pings(ns, dst, count, interval):
    """ping's per-echo times (ms) and how many were lost."""
    r = e2e.sh(CLIENT_CPUS + ["ping", "-c", str(count), "-i", str(interval), dst], ns=ns, capture=True, check=False,
               timeout=count * interval + 30)
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms", r.stdout)]
    return times, count - len(times)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def summary(times, lost):
    if not times:
        return {"lost": lost}
    return {"avg": statistics.mean(times), "p99": pct(times, 99), "max": max(times), "lost": lost}


def run_variant(label, lines, vhub, vnic, tmp, args):
    cfg = os.path.join(tmp, f"vhub-{label}.toml")
    parts = [s.strip() for s in lines.split(";")]
    body = "\n".join(p for p in parts if not p.startswith("vnic:"))
    vnic_extra = [a for p in parts if p.startswith("vnic:") for a in p[5:].split()]
    with open(cfg, "w") as f:
        f.write(f'listen = "0.0.0.0:{e2e.PORT}"\nmetrics_listen = "off"\nadmin_socket = "off"\n'
                f'cert_dir = "{tmp}/certs"\n{body}\n[[hub]]\nname = "DEFAULT"\nanonymous = true\n')
    hub = e2e.spawn(HUB_CPUS + [vhub, "--config", cfg], ns=e2e.NS["h"], log=open(f"{tmp}/hub-{label}.log", "w"))
    procs = [hub]
    try:
        time.sleep(0.5)
        if hub.poll() is not None:
            raise RuntimeError(f"the hub ({label}) did not start: see {tmp}/hub-{label}.log")
        for side, net, ip in (("a", 1, "10.77.0.1/24"), ("b", 2, "10.77.0.2/24")):
            procs.append(e2e.spawn(CLIENT_CPUS + [vnic, "connect", f"https://10.99.{net}.1:{e2e.PORT}/DEFAULT", "--tap",
                                    f"t{side}", "--ip", ip, "--ca", f"{tmp}/certs/ca.crt"] + vnic_extra, ns=e2e.NS[side],
                                   log=open(f"{tmp}/vnic-{side}-{label}.log", "w")))
        e2e.wait_for(lambda: e2e.sh(["ping", "-c", "1", "-W", "1", "10.77.0.2"], ns=e2e.NS["a"], check=False,
                                    capture=True).returncode == 0, "ping through the hub", timeout=30)
        e2e.sh(["ping", "-c", "20", "-i", "0.01", "-q", "10.77.0.2"], ns=e2e.NS["a"], capture=True)
        roles = {"hub": [hub.pid], "vnics": [p.pid for p in procs[1:]]}
        res = {"variant": label}
        for key, count, interval in (("ping10", args.count, 0.01), ("ping200", args.slow_count, 0.2)):
            before, t0 = e2e.cpu_by_role(roles), time.time()
            times, lost = pings(e2e.NS["a"], "10.77.0.2", count, interval)
            after, wall = e2e.cpu_by_role(roles), time.time() - t0
            res[key] = summary(times, lost)
            res[key]["cpu_per_s"] = {r: (after[r] - before[r]) / wall for r in roles}
        before = e2e.cpu_by_role(roles)
        j = e2e.iperf(e2e.NS["a"], e2e.NS["b"], "10.77.0.2", args.seconds, [], wrap=CLIENT_CPUS)
        after = e2e.cpu_by_role(roles)
        got = j["end"]["sum_received"]
        gb = got["bytes"] / 1e9
        res["tcp_gbit"] = got["bits_per_second"] / 1e9
        res["tcp_cpu_s_per_gb"] = {r: (after[r] - before[r]) / gb for r in roles}
        return res
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", required=True, help="LABEL=TOML_LINES[@VHUB_BINARY]")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--slow-count", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--vnic", help="the client binary (default: target/release/vnic)")
    ap.add_argument("--pin", action="store_true", help="hub on CPU 1, clients on CPU 0")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.pin:
        CLIENT_CPUS.extend(["taskset", "-c", "0"])
        HUB_CPUS.extend(["taskset", "-c", "1"])
    if os.geteuid() != 0:
        sys.exit("needs root (namespaces, TAP devices)")
    variants = []
    for v in args.variant:
        label, _, rest = v.partition("=")
        lines, _, binary = rest.partition("@")
        variants.append((label, lines, binary or os.path.join(e2e.ROOT, "target", "release", "vhub")))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "hub", "-p", "client"], check=True, cwd=e2e.ROOT)
    vnic = args.vnic or os.path.join(e2e.ROOT, "target", "release", "vnic")
    e2e.set_prefix("pab")
    tmp = tempfile.mkdtemp(prefix="vhub-pingab-")
    results = []
    try:
        e2e.setup_net()
        subprocess.run([variants[0][2], "cert", "generate", "--cert-dir", f"{tmp}/certs", "--ip", "10.99.1.1",
                        "--ip", "10.99.2.1"], check=True, capture_output=True)
        for rnd in range(args.rounds):
            times, lost = pings(e2e.NS["a"], "10.99.2.2", args.count, 0.01)
            results.append({"round": rnd, "variant": "bare path", "ping10": summary(times, lost)})
            for label, lines, vhub in variants:
                r = run_variant(label, lines, vhub, vnic, tmp, args)
                r["round"] = rnd
                results.append(r)
                p, s = r["ping10"], r["ping200"]
                print(f"round {rnd} {label:>10}: 10ms avg/p99/max {p['avg']:.3f}/{p['p99']:.3f}/{p['max']:.3f}"
                      f"  200ms {s['avg']:.3f}/{s['p99']:.3f}/{s['max']:.3f} ms"
                      f"  cpu/s hub {p['cpu_per_s']['hub']:.3f} vnics {p['cpu_per_s']['vnics']:.3f}"
                      f" (200ms: {s['cpu_per_s']['hub']:.3f}/{s['cpu_per_s']['vnics']:.3f})"
                      f"  tcp {r['tcp_gbit']:.2f} Gbit/s {sum(r['tcp_cpu_s_per_gb'].values()):.2f} CPU-s/GB"
                      f" (hub {r['tcp_cpu_s_per_gb']['hub']:.2f})", flush=True)
            b = results[-len(variants) - 1]["ping10"]
            print(f"round {rnd} {'bare path':>10}: 10ms avg/p99/max {b['avg']:.3f}/{b['p99']:.3f}/{b['max']:.3f}",
                  flush=True)
    finally:
        e2e.cleanup()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
