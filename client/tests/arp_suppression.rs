//! ARP suppression through a real outage: namespace a pings b (IPv4 and
//! IPv6) through the hub, so vnic a learns b's addresses; then the hub's
//! traffic to and from a is blackholed (nft) for longer than a's
//! neighbour timers, which the test shortens to fractions of a second.
//! While a pings b through the outage, at most 1 ping in 20 may be lost
//! and vnic a must have answered ARP and NS itself (its counters); the
//! neighbour entries' states are printed. An address nobody on the LAN ever used gets no answer. After
//! the blackhole lifts, ping works.
//!
//! The same outage with `--no-arp-suppression` is the control: there the
//! entries do fail (which shows the timers are short enough for the first
//! half to mean something). Both halves print the pings lost ("RESULT").

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);
/// How long the test pings and watches the neighbour entries once vnic
/// has noticed the outage.
const WATCH: Duration = Duration::from_secs(8);

const B4: &str = "10.77.0.12";
const B6: &str = "fd77::12";
/// On the subnet, never used by anyone.
const NOBODY: &str = "10.77.0.99";

/// IPv6 on the TAP (the namespaces start with it off) with a ULA address.
fn ipv6_on(ns: &Ns, addr: &str) {
    ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.vnic0.disable_ipv6=0"]);
    ns.exec_ok(&["ip", "-6", "addr", "add", addr, "dev", "vnic0", "nodad"]);
}

/// Neighbour timers of a's TAP short enough that a few seconds without
/// answers fail an entry: reachable for ~0.5 s, then one second of
/// DELAY, then two probes 200 ms apart.
fn short_neighbour_timers(ns: &Ns) {
    for fam in ["ipv4", "ipv6"] {
        for (k, v) in [
            ("base_reachable_time_ms", "500"),
            ("delay_first_probe_time", "1"),
            ("retrans_time_ms", "200"),
            ("ucast_solicit", "2"),
            ("mcast_solicit", "2"),
        ] {
            ns.exec_ok(&["sysctl", "-qw", &format!("net.{fam}.neigh.vnic0.{k}={v}")]);
        }
    }
}

/// The state of the neighbour entry for `ip` on a's TAP ("" if none).
fn neigh_state(ns: &Ns, ip: &str) -> String {
    let out = ns.exec(&["ip", "neigh", "show", ip, "dev", "vnic0"]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .unwrap_or("")
        .to_owned()
}

/// Sets up a's side of the LAN (IPv6, short timers) on a fresh TAP.
fn prepare_a(lan: &Lan) {
    ipv6_on(&lan.a, "fd77::11/64");
    short_neighbour_timers(&lan.a);
    // An entry made before keeps the timer it was armed with: start over.
    lan.a.exec_ok(&["ip", "neigh", "flush", "dev", "vnic0"]);
    assert!(ping_works(&lan.a, B4, T), "a cannot ping b");
    assert!(
        wait_until(T, || lan
            .a
            .exec(&["ping", "-6", "-c", "1", "-W", "1", B6])
            .status
            .success()),
        "a cannot ping b over IPv6"
    );
}

/// What one outage showed.
struct Outage {
    /// Every state a's entries for b were seen in, per family.
    seen4: BTreeSet<String>,
    seen6: BTreeSet<String>,
    /// The entry for an address nobody uses, after pinging it.
    nobody: String,
    ping4: PingReport,
    ping6: PingReport,
}

/// Blackholes the hub for namespace a; once vnic a noticed, pings b for
/// [`WATCH`] while watching the neighbour entries, then lifts the
/// blackhole and lets ping run until the link is back.
fn outage(lan: &Lan, label: &str) -> Outage {
    let rules = format!(
        "table inet vnicarp {{\n\
           chain in {{ type filter hook input priority 0; ip saddr {h} tcp sport {p} drop; }}\n\
           chain out {{ type filter hook output priority 0; ip daddr {h} tcp dport {p} drop; }}\n\
         }}\n",
        h = lan.a.host_ip,
        p = lan.hub.port
    );
    let rules_file = lan.dir.path().join("blackhole.nft");
    std::fs::write(&rules_file, rules).unwrap();
    // Fresh entries before the cut.
    assert!(ping_works(&lan.a, B4, T));
    lan.a.exec_ok(&["nft", "-f", rules_file.to_str().unwrap()]);
    let noticed = wait_until(Duration::from_secs(15), || {
        lan.va().state() == "reconnecting"
    });
    assert!(
        noticed,
        "vnic a did not notice the outage:\n{}",
        lan.va().proc.output()
    );
    // Pings for 20 s: WATCH seconds of outage, then the way back.
    let ping = |args: &[&str], log: &str| {
        let mut argv = vec!["ping"];
        argv.extend_from_slice(args);
        // A count, not a deadline: with -w, ping stops at the first
        // "host unreachable", which is what the control half measures.
        argv.extend_from_slice(&["-D", "-i", "0.2", "-c", "100"]);
        lan.a.spawn(
            log,
            &argv,
            &lan.dir.path().join(format!("{label}-{log}.log")),
        )
    };
    let mut p4 = ping(&[B4], "ping4");
    let mut p6 = ping(&["-6", B6], "ping6");
    let (mut seen4, mut seen6) = (BTreeSet::new(), BTreeSet::new());
    let start = Instant::now();
    let mut nobody = String::new();
    while start.elapsed() < WATCH {
        seen4.insert(neigh_state(&lan.a, B4));
        seen6.insert(neigh_state(&lan.a, B6));
        if nobody.is_empty() && start.elapsed() > WATCH / 2 {
            // Nobody ever used this address: nothing can answer for it.
            let r = lan.a.exec(&["ping", "-c", "2", "-W", "1", NOBODY]);
            assert!(!r.status.success(), "{NOBODY} answered?");
            nobody = neigh_state(&lan.a, NOBODY);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    lan.a
        .exec_ok(&["nft", "delete", "table", "inet", "vnicarp"]);
    let back = wait_until(T, || lan.va().state() == "connected");
    assert!(
        back,
        "vnic a did not come back:\n{}",
        lan.va().proc.output()
    );
    p4.wait_exit(T).expect("ping ends");
    p6.wait_exit(T).expect("ping -6 ends");
    Outage {
        seen4,
        seen6,
        nobody,
        ping4: parse_ping(&p4.output()),
        ping6: parse_ping(&p6.output()),
    }
}

fn report(label: &str, o: &Outage) {
    eprintln!(
        "RESULT {label}: IPv4 entry for b seen as {:?}, IPv6 as {:?}; {NOBODY}: {}; \
         ping {} sent / {} received ({} lost), ping -6 {} sent / {} received ({} lost) \
         over a {} s outage and the way back",
        o.seen4,
        o.seen6,
        o.nobody,
        o.ping4.transmitted,
        o.ping4.received,
        o.ping4.transmitted - o.ping4.received,
        o.ping6.transmitted,
        o.ping6.received,
        o.ping6.transmitted - o.ping6.received,
        WATCH.as_secs()
    );
}

fn failed(seen: &BTreeSet<String>) -> bool {
    seen.contains("FAILED") || seen.contains("INCOMPLETE")
}

#[test]
fn neighbour_entries_survive_an_outage_and_unknown_addresses_get_no_answer() {
    if !require_root("neighbour_entries_survive_an_outage_and_unknown_addresses_get_no_answer") {
        return;
    }
    require_tool("nft", "nftables");
    let _lock = TestLock::take();
    let mut lan = Lan::new("arpsup", 31, "");
    ipv6_on(&lan.b, "fd77::12/64");
    prepare_a(&lan);

    // With suppression (the default).
    let o = outage(&lan, "suppression");
    report("ARP suppression on", &o);
    let status = lan.va().read_status().unwrap();
    let n = &status["neighbours"];
    eprintln!("neighbours of vnic a: {n}");
    // What the host must not see is pings lost to failed entries (the
    // control below loses about half). The entries' states are printed,
    // not asserted: with the timers shortened to ~1.5 s, a loaded machine
    // can answer after the kernel's last probe, and a sample then catches
    // a brief FAILED or INCOMPLETE while no ping is lost (seen in CI runs:
    // 100 of 100 answered both times).
    for (what, p) in [("ping", &o.ping4), ("ping -6", &o.ping6)] {
        let lost = p.transmitted - p.received;
        assert!(
            lost * 20 <= p.transmitted,
            "{what}: {lost} of {} lost with suppression",
            p.transmitted
        );
    }
    // The timers did run out meanwhile (the kernel asked, vnic answered).
    let probed = |seen: &BTreeSet<String>| {
        ["STALE", "DELAY", "PROBE"]
            .iter()
            .any(|s| seen.contains(*s))
    };
    assert!(
        probed(&o.seen4) && probed(&o.seen6),
        "{:?} {:?}",
        o.seen4,
        o.seen6
    );
    assert!(
        status_counter(n, "arp_answered").unwrap() >= 1,
        "no ARP answered: {n}"
    );
    assert!(
        status_counter(n, "nd_answered").unwrap() >= 1,
        "no NS answered: {n}"
    );
    // Nothing answered for an address nobody used.
    assert!(
        o.nobody == "FAILED" || o.nobody == "INCOMPLETE",
        "{NOBODY} is {:?}",
        o.nobody
    );
    assert!(status_counter(n, "unknown").unwrap() >= 1, "{n}");
    let log = lan.va().proc.output();
    assert!(
        log.contains("neighbour request(s) of the host answered here meanwhile"),
        "{log}"
    );
    assert!(ping_works(&lan.a, B4, T), "no ping after the outage");

    // The control: the same without suppression.
    drop(lan.va.take());
    let va = Vnic::start(
        &lan.a,
        VnicOpts {
            hub_ip: lan.a.host_ip,
            port: lan.hub.port,
            hub: "DEFAULT",
            user: "alice",
            password_file: &lan.pw,
            tap: "vnic0",
            ip: Some("10.77.0.11/24"),
            dir: lan.dir.path(),
            extra: vec!["--no-arp-suppression".into()],
        },
    );
    va.wait_connected(T);
    lan.va = Some(va);
    prepare_a(&lan);
    let o = outage(&lan, "control");
    report("ARP suppression off", &o);
    assert!(
        failed(&o.seen4) && failed(&o.seen6),
        "without suppression the entries should fail (are the timers short \
         enough?): {:?} {:?}",
        o.seen4,
        o.seen6
    );
    assert!(lan.va().read_status().unwrap()["neighbours"].is_null());
    assert!(ping_works(&lan.a, B4, T), "no ping after the outage");
}
