#!/usr/bin/env python3
"""Latency budget of one ping through the hub, hop by hop.

    sudo bench/e2e/latency.py [--count 200] [--interval 0.01] [--no-build] [--debug]
                              [--io-backend auto] [--hub-arg ARG]... [--json FILE]

The same namespaces as bench/e2e/e2e.py (prefix "lat"): vnic a in lat-a,
the hub in lat-h, vnic b in lat-b, TAP devices named ta and tb so that the
kernel's events name them apart. While `ping -i INTERVAL` runs from a to b,
`perf record -a` takes the scheduler's wake-ups and switches and the
network stack's per-device events (net_dev_queue: a packet handed to a
device; netif_rx / netif_receive_skb: a packet received from one). Every
echo is then followed along its path, each step the first matching event
after the previous one:

  request  queue ta (ping's packet into a's TAP) -> wake vnic a -> vnic a runs
           -> queue lat-ah (its TLS record leaves a) -> wake hub -> hub runs
           -> queue lat-hb -> wake vnic b -> vnic b runs -> rx tb (into b's TAP)
  reply    queue tb -> wake vnic b -> runs -> queue lat-bh -> wake hub -> runs
           -> queue lat-ha -> wake vnic a -> runs -> rx ta -> wake ping -> ping runs

A wake-up of a thread that is already on a CPU is not waited for: that
step takes 0. The table gives each step's median, p90 and max over the
echoes, grouped into hops, next to ping's own RTT figures of the same run.
Tracing adds a few microseconds per event; the sum is an upper bound of
the untraced path. Nothing is asserted: this is a measurement.
"""
import argparse, json, os, re, statistics, subprocess, sys, tempfile, time

sys.dont_write_bytecode = True
import e2e  # noqa: E402

EVENTS = ["sched:sched_wakeup", "sched:sched_switch", "net:net_dev_queue", "net:netif_rx",
          "net:netif_receive_skb", "net:netif_receive_skb_list_entry"]
RX = ("netif_rx", "netif_receive_skb", "netif_receive_skb_list_entry")


def tids(pid):
    """The thread ids of a process."""
    try:
        return {int(t) for t in os.listdir(f"/proc/{pid}/task")}
    except FileNotFoundError:
        return set()


LINE = re.compile(r"^\s*(?P<comm>.+?)\s+(?P<tid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<ts>[\d.]+):\s+(?P<ev>[\w:]+):\s*(?P<rest>.*)$")


def parse(text):
    """perf script lines -> (time in us, event, fields dict)."""
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        ev = m["ev"].split(":")[-1]
        rest = m["rest"]
        f = {"tid": int(m["tid"])}
        if ev == "sched_switch":
            nm = re.search(r"next_pid=(\d+)", rest)
            pm = re.search(r"prev_pid=(\d+)", rest)
            sm = re.search(r"prev_state=(\S+)", rest)
            if not nm or not pm:
                continue
            # A thread switched out in state R was preempted: it stays
            # runnable and gets no wake-up.
            f.update(next=int(nm[1]), prev=int(pm[1]), preempted=bool(sm and sm[1].startswith("R")))
        elif ev == "sched_wakeup":
            pm = re.search(r"pid=(\d+)", rest)
            if not pm:
                continue
            f.update(pid=int(pm[1]))
        else:
            dm = re.search(r"dev=(\S+)", rest)
            lm = re.search(r"len=(\d+)", rest)
            if not dm:
                continue
            f.update(dev=dm[1], len=int(lm[1]) if lm else 0)
        out.append((float(m["ts"]) * 1e6, ev, f))
    return out


def steps(who):
    """The path of one echo: (label, kind, argument) per step; `who` maps
    roles to thread-id sets."""
    def proc(role):
        return [(f"wake {role}", "wake", who.get(role)), (f"{role} runs", "run", who.get(role))]
    return ([("queue ta (request)", "queue", ("ta", 98))] + proc("vnic a")
            + [(f"queue {e2e.dev('ah')}", "queue", (e2e.dev("ah"), 0))] + proc("hub")
            + [(f"queue {e2e.dev('hb')}", "queue", (e2e.dev("hb"), 0))] + proc("vnic b")
            + [("rx tb", "rx", "tb"), ("queue tb (reply)", "queue", ("tb", 98))] + proc("vnic b")
            + [(f"queue {e2e.dev('bh')}", "queue", (e2e.dev("bh"), 0))] + proc("hub")
            + [(f"queue {e2e.dev('ha')}", "queue", (e2e.dev("ha"), 0))] + proc("vnic a")
            + [("rx ta", "rx", "ta")] + proc("ping"))


class Threads:
    """Which threads are on a CPU, and which are runnable without one
    (woken, or preempted): neither needs a wake-up."""

    def __init__(self, other=None):
        self.on = set(other.on) if other else set()
        self.ready = set(other.ready) if other else set()

    def see(self, ev, f):
        if ev == "sched_switch":
            self.on.discard(f["prev"])
            if f["preempted"]:
                self.ready.add(f["prev"])
            self.on.add(f["next"])
            self.ready.discard(f["next"])
        elif ev == "sched_wakeup":
            self.ready.add(f["pid"])


def matches(kind, arg, ev, f):
    """Whether event (ev, f) is what a step of `kind` waits for."""
    if kind == "wake":
        return ev == "sched_wakeup" and f["pid"] in arg
    if kind == "run":
        return ev == "sched_switch" and f["next"] in arg
    if kind == "queue":
        return ev == "net_dev_queue" and f["dev"] == arg[0] and (arg[1] == 0 or f["len"] == arg[1])
    return ev in RX and f["dev"] == arg


def is_echo(ev, f):
    return ev == "net_dev_queue" and f["dev"] == "ta" and f["len"] == 98


def follow(events, path):
    """Each echo's time at every step, and the thread that made each
    step's event (echoes the trace lost are left out), and where the lost
    ones were lost.

    The packet steps (queue, rx) must all be found, in order, before the
    next echo begins. A wake-up or a switch-in is taken only if it comes
    before the next packet step's event; otherwise (the thread was already
    runnable or on a CPU, or the trace did not show it) it takes 0 and its
    time counts in the next step.
    """
    state = Threads()
    echoes, lost = [], {}
    n = len(events)
    for i, (t, ev, f) in enumerate(events):
        state.see(ev, f)
        if not is_echo(ev, f):
            continue
        times, threads, j, ok = [t], [f["tid"]], i + 1, True
        run = Threads(state)
        for k, (label, kind, arg) in enumerate(path[1:], 1):
            if arg is None:
                arg = {threads[0]}  # ping: the thread that sent the echo
            soft = kind in ("wake", "run")
            if soft and ((kind == "wake" and (run.on | run.ready) & arg) or (kind == "run" and run.on & arg)):
                times.append(times[-1])  # already runnable / on a CPU
                threads.append(threads[-1])
                continue
            hard = next(((kk, aa) for _, kk, aa in path[k:] if kk in ("queue", "rx")), None)
            found = None
            jj = j
            while jj < n:
                tj, evj, fj = events[jj]
                if is_echo(evj, fj) or (soft and hard and matches(hard[0], hard[1], evj, fj)):
                    break
                if soft and not hard and tj - times[-1] > 2000:
                    break  # ping's own wake-up, last: at most 2 ms after its packet
                if matches(kind, arg, evj, fj):
                    found = jj
                    break
                jj += 1
            if found is None:
                if soft:
                    times.append(times[-1])  # not in the trace before the next packet step
                    threads.append(threads[-1])
                    continue
                lost[label] = lost.get(label, 0) + 1
                ok = False
                break
            for _, evx, fx in events[j:found + 1]:
                run.see(evx, fx)
            j = found + 1
            tj, evj, fj = events[found]
            times.append(tj)
            threads.append(fj["tid"] if kind in ("queue", "rx") else
                           fj.get("pid") if kind == "wake" else fj["next"])
        if ok:
            echoes.append((times, threads))
    return echoes, lost


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--io-backend", default="auto")
    ap.add_argument("--hub-config", default="", help="extra top-level lines for the hub's config")
    ap.add_argument("--vhub", help="the hub binary (default: target/PROFILE/vhub)")
    ap.add_argument("--vnic", help="the client binary (default: target/PROFILE/vnic)")
    ap.add_argument("--pin", action="store_true", help="hub on CPU 1; vnics and ping on CPU 0")
    ap.add_argument("--json")
    args = ap.parse_args()
    hub_cpus, client_cpus = (["taskset", "-c", "1"], ["taskset", "-c", "0"]) if args.pin else ([], [])
    if os.geteuid() != 0:
        sys.exit("needs root (namespaces, TAP devices, perf)")
    e2e.set_prefix("lat")
    profile = "debug" if args.debug else "release"
    if not args.no_build:
        subprocess.run(["cargo", "build", "-p", "hub", "-p", "client"] + ([] if args.debug else ["--release"]),
                       check=True, cwd=e2e.ROOT)
    vhub = args.vhub or os.path.join(e2e.ROOT, "target", profile, "vhub")
    vnic = args.vnic or os.path.join(e2e.ROOT, "target", profile, "vnic")
    tmp = tempfile.mkdtemp(prefix="vhub-latency-")
    try:
        e2e.setup_net()
        cfg = os.path.join(tmp, "vhub.toml")
        with open(cfg, "w") as f:
            f.write(f'listen = "0.0.0.0:{e2e.PORT}"\nmetrics_listen = "127.0.0.1:9750"\ncert_dir = "{tmp}/certs"\n'
                    f'io_backend = "{args.io_backend}"\n{args.hub_config}\n[[hub]]\nname = "DEFAULT"\nanonymous = true\n')
        subprocess.run([vhub, "cert", "generate", "--cert-dir", f"{tmp}/certs", "--ip", "10.99.1.1",
                        "--ip", "10.99.2.1"], check=True, capture_output=True)
        hub = e2e.spawn(hub_cpus + [vhub, "--config", cfg], ns=e2e.NS["h"], log=open(f"{tmp}/hub.log", "w"))
        e2e.wait_for(lambda: os.path.exists(f"{tmp}/certs/ca.crt"), "the hub's certificate")
        time.sleep(0.5)
        vnics = {}
        for side, net, ip in (("a", 1, "10.77.0.1/24"), ("b", 2, "10.77.0.2/24")):
            vnics[side] = e2e.spawn(client_cpus + [vnic, "connect", f"https://10.99.{net}.1:{e2e.PORT}/DEFAULT",
                                     "--tap", f"t{side}", "--ip", ip, "--ca", f"{tmp}/certs/ca.crt"],
                                    ns=e2e.NS[side], log=open(f"{tmp}/vnic-{side}.log", "w"))
        e2e.wait_for(lambda: e2e.sh(["ping", "-c", "1", "-W", "1", "10.77.0.2"], ns=e2e.NS["a"], check=False,
                                    capture=True).returncode == 0, "ping through the hub", timeout=30)
        # Warm: ARP resolved both ways, buffers allocated.
        e2e.sh(["ping", "-c", "20", "-i", "0.01", "-q", "10.77.0.2"], ns=e2e.NS["a"], capture=True)
        data = f"{tmp}/perf.data"
        ping_out = f"{tmp}/ping.txt"
        cmd = ["perf", "record", "-q", "-a", "-m", "4096", "-o", data]
        for e in EVENTS + [e for e in os.environ.get("LATENCY_EXTRA_EVENTS", "").split(",") if e]:
            cmd += ["-e", e]
        cmd += ["--", "sh", "-c", f"ip netns exec {e2e.NS['a']} {' '.join(client_cpus)} ping -c {args.count} -i {args.interval} "
                f"10.77.0.2 > {ping_out}"]
        who = {"vnic a": tids(vnics["a"].pid), "vnic b": tids(vnics["b"].pid), "hub": tids(hub.pid)}
        subprocess.run(cmd, check=True, capture_output=True)
        script = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,cpu,time,event,trace"],
                                check=True, capture_output=True, text=True).stdout
        ping_text = open(ping_out).read()
        events = parse(script)
        path = steps(who)
        echoes, lost = follow(events, path)
        if not echoes:
            sys.exit(f"no echo could be followed in the trace ({len(events)} events); see {tmp}")
        # Which shard read each TLS record and which wrote it on: the
        # hub thread that woke, and the one that queued on the far veth.
        labels = [p[0] for p in path]
        hops = [(labels.index("hub runs"), labels.index(f"queue {e2e.dev('hb')}")),
                (len(labels) - 1 - labels[::-1].index("hub runs"), labels.index(f"queue {e2e.dev('ha')}"))]
        crossed = [sum(1 for _, th in echoes if th[r] in who["hub"] and th[r] != th[w]) for r, w in hops]
        rows = []
        for k in range(1, len(path)):
            d = [e[k] - e[k - 1] for e, _ in echoes]
            rows.append((path[k][0], statistics.median(d), pct(d, 90), max(d)))
        total = [e[-1] - e[0] for e, _ in echoes]
        rtt = re.search(r"rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)", ping_text)
        print(f"{len(echoes)} of {args.count} echoes followed; {len(events)} events; logs in {tmp}")
        if lost:
            print("not followed past: " + ", ".join(f"{k} ({v})" for k, v in lost.items()))
        print(f"{'step (time since the previous one)':<34} {'median us':>10} {'p90 us':>8} {'max us':>8}")
        for label, med, p90, mx in rows:
            print(f"{label:<34} {med:>10.1f} {p90:>8.1f} {mx:>8.1f}")
        print(f"{'sum: ta queue -> ping runs':<34} {statistics.median(total):>10.1f} {pct(total, 90):>8.1f} "
              f"{max(total):>8.1f}")
        print(f"cross-shard hand-offs: request {crossed[0]} of {len(echoes)}, reply {crossed[1]} of {len(echoes)}")
        if rtt:
            print(f"ping's own RTT (traced run): min/avg/max/mdev {rtt[1]}/{rtt[2]}/{rtt[3]}/{rtt[4]} ms")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"steps": rows, "total": [statistics.median(total), pct(total, 90), max(total)],
                           "rtt": rtt.groups() if rtt else None, "echoes": len(echoes),
                           "cross_shard": crossed}, f, indent=1)
    finally:
        e2e.cleanup()


if __name__ == "__main__":
    main()
