//! Scale-out (docs/SCALE-OUT.md): three vhub nodes serve one virtual hub
//! (DEFAULT) by bridging it into the same VXLAN segment (VNI 100). vhub
//! adds no protocol of its own: each node's hub is bridged (`bridge =
//! "br100"`) to a Linux bridge whose other port is a kernel `vxlan100`;
//! who is where comes from BGP EVPN (FRR's zebra and bgpd, one router per
//! node namespace, as FRR's topotests run them) or, without a control
//! plane, from a static flood list and the VXLAN device's own learning.
//!
//! ```text
//!   namespace so?-u: Linux bridge "ul" (the underlay)
//!      │ veth                 │ veth                 │ veth
//!   so?-n1 10.99.0.1       so?-n2 10.99.0.2       so?-n3 10.99.0.3      (node namespaces)
//!     vxlan100 (VNI 100, local 10.99.0.N, dstport 4789) ─ br100 ─ vh-DEFAULT (TAP) ─ vhub :PORT
//!     [zebra + bgpd: iBGP full mesh, address-family l2vpn evpn, advertise-all-vni]
//!      │ veth 10.98.C.1/24 (routed: every node reaches every client's net)
//!   so?-cC eth0 10.98.C.2/24, vnic0 10.77.0.1C/24: vnic https://10.98.C.1:PORT/DEFAULT  (client namespaces)
//!
//!   clients 1, 2, 3 on nodes 1, 2, 3; client 4 on node 1 as well
//! ```
//!
//! Checked: ping between clients on different nodes; a broadcast from one
//! client reaches every other client exactly once and never comes back to
//! its sender (counted by tcpdump on each client's TAP); iperf3 across
//! nodes. With EVPN also: a client moving from node 1 to node 2 (same MAC)
//! and node 1's hub killed, its two clients failing over by themselves
//! (`vnic connect URL1 URL2`: one to node 2, one to node 3) while the
//! clients of nodes 2 and 3 lose no ping.
//! Times and throughput are printed ("RESULT"), never asserted.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);
/// vhub's TLS listener on every node (each node is its own namespace).
const PORT: u16 = 18600;
const METRICS_PORT: u16 = 18601;
const NODES: u8 = 3;
/// The node (0-based) of each client: one per node, and a second on node
/// 1, so that a broadcast also has a receiver on its sender's node.
const CLIENT_NODE: [usize; 4] = [0, 1, 2, 0];

/// How the VXLAN segment learns where MACs are.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Plane {
    /// A static flood list (`bridge fdb append 00:00:00:00:00:00 dst
    /// PEER`), the VXLAN device learning remote MACs from traffic.
    Static,
    /// BGP EVPN (FRR): remote MACs and the flood list from type-2 and
    /// type-3 routes, no data-plane learning on vxlan100.
    Evpn,
}

impl Plane {
    fn tag(self) -> &'static str {
        match self {
            Plane::Static => "sos",
            Plane::Evpn => "soe",
        }
    }
}

/// A namespace of this test with no veth to the root namespace.
fn netns(name: &str) -> Ns {
    Ns::bare(name)
}

/// `ip -n NS ARGS…`, which must succeed.
fn ip(ns: &Ns, args: &str) {
    let mut argv = vec!["ip"];
    argv.extend(args.split_whitespace());
    ns.exec_ok(&argv);
}

/// One hub node. Fields drop in order: the hub and the routers (stopped
/// by PID), then the namespace.
struct Node {
    hub: Option<Proc>,
    frr: Vec<Proc>,
    ns: Ns,
    n: u8,
    /// This node's files: config, certificates, admin socket, FRR's
    /// sockets and logs (owned by the frr user).
    dir: PathBuf,
}

impl Node {
    fn underlay_ip(&self) -> String {
        format!("10.99.0.{}", self.n)
    }

    fn url(&self) -> String {
        format!("https://{}:{PORT}/DEFAULT", self.underlay_ip())
    }

    fn vtysh(&self, cmd: &str) -> String {
        let dir = self.dir.display().to_string();
        let out = self.ns.exec(&["vtysh", "--vty_socket", &dir, "-c", cmd]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `vhub ctl --json ARGS` on this node's hub.
    fn ctl(&self, args: &[&str]) -> Option<serde_json::Value> {
        let out = std::process::Command::new(vhub_bin())
            .arg("ctl")
            .arg("--socket")
            .arg(self.dir.join("admin.sock"))
            .arg("--json")
            .args(args)
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    fn bridge_up(&self) -> bool {
        self.ctl(&["hubs"]).is_some_and(|v| {
            v["hubs"]
                .as_array()
                .is_some_and(|h| h.iter().any(|h| h["bridge"]["state"] == "up"))
        })
    }
}

/// The whole topology; everything is removed when it drops (clients,
/// their namespaces, the nodes' processes and namespaces, the underlay,
/// the directory last).
struct Fabric {
    vnics: Vec<Option<Vnic>>,
    clients: Vec<Ns>,
    nodes: Vec<Node>,
    /// Held for its drop: the underlay namespace goes last.
    _underlay: Ns,
    plane: Plane,
    dir: tempfile::TempDir,
}

impl Fabric {
    fn build(plane: Plane) -> Fabric {
        let tag = plane.tag();
        let dir = tempfile::tempdir().unwrap();
        // FRR's daemons run as the frr user: they must reach their own
        // directory inside this one.
        chmod(dir.path(), 0o755);
        let underlay = netns(&format!("vh-{tag}-u"));
        ip(
            &underlay,
            "link add ul type bridge stp_state 0 forward_delay 0",
        );
        ip(&underlay, "link set ul up");
        let mut nodes = Vec::new();
        let mut clients = Vec::new();
        for n in 1..=NODES {
            let node_name = format!("vh-{tag}-n{n}");
            let ns = netns(&node_name);
            // Underlay: node eth0 ── veth ── ul in the underlay namespace.
            ip(
                &underlay,
                // 1550: room for VXLAN's 50 bytes around a 1500-byte frame.
                &format!(
                    "link add ul{n} mtu 1550 type veth peer name eth0 mtu 1550 netns {node_name}"
                ),
            );
            ip(&underlay, &format!("link set ul{n} master ul up"));
            ip(&ns, &format!("addr add 10.99.0.{n}/24 dev eth0"));
            ip(&ns, "link set eth0 up");
            ns.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
            // The VXLAN segment and the Linux bridge the hub joins.
            let learning = match plane {
                Plane::Static => "learning",
                Plane::Evpn => "nolearning",
            };
            ip(
                &ns,
                &format!(
                    "link add vxlan100 mtu 1500 type vxlan id 100 local 10.99.0.{n} dstport 4789 dev eth0 {learning}"
                ),
            );
            ip(
                &ns,
                "link add br100 type bridge stp_state 0 forward_delay 0",
            );
            ip(&ns, "link set vxlan100 master br100");
            if plane == Plane::Evpn {
                // Remote MACs come from BGP, not from the bridge's learning.
                ip(&ns, "link set vxlan100 type bridge_slave learning off");
            }
            ip(&ns, "link set vxlan100 up");
            ip(&ns, "link set br100 up");
            if plane == Plane::Static {
                for m in (1..=NODES).filter(|m| *m != n) {
                    ns.exec_ok(&[
                        "bridge",
                        "fdb",
                        "append",
                        "00:00:00:00:00:00",
                        "dev",
                        "vxlan100",
                        "dst",
                        &format!("10.99.0.{m}"),
                    ]);
                }
            }
            let node_dir = dir.path().join(format!("n{n}"));
            std::fs::create_dir(&node_dir).unwrap();
            nodes.push(Node {
                hub: None,
                frr: Vec::new(),
                ns,
                n,
                dir: node_dir,
            });
        }
        // Each client's access link, routed: its node forwards between
        // the client (10.98.C.2, C = client index + 1) and the underlay,
        // and every node has a route to every client's net (so a client
        // can fail over to another node).
        for (i, home) in CLIENT_NODE.iter().enumerate() {
            let c = i + 1;
            let client_name = format!("vh-{tag}-c{c}");
            let cns = netns(&client_name);
            let node = &nodes[*home];
            ip(
                &node.ns,
                &format!("link add cl{c} type veth peer name eth0 netns {client_name}"),
            );
            ip(&node.ns, &format!("addr add 10.98.{c}.1/24 dev cl{c}"));
            ip(&node.ns, &format!("link set cl{c} up"));
            for other in nodes.iter().filter(|o| o.n != node.n) {
                ip(
                    &other.ns,
                    &format!("route add 10.98.{c}.0/24 via {}", node.underlay_ip()),
                );
            }
            ip(&cns, &format!("addr add 10.98.{c}.2/24 dev eth0"));
            ip(&cns, "link set eth0 up");
            ip(&cns, &format!("route add default via 10.98.{c}.1"));
            clients.push(cns);
        }
        let mut f = Fabric {
            vnics: Vec::new(),
            clients,
            nodes,
            _underlay: underlay,
            plane,
            dir,
        };
        if plane == Plane::Evpn {
            for i in 0..f.nodes.len() {
                f.start_frr(i);
            }
        }
        for i in 0..f.nodes.len() {
            f.start_hub(i);
        }
        f
    }

    /// zebra and bgpd in node `i`'s namespace, with every path (config,
    /// pid files, vty sockets, the zserv socket, logs) in the node's own
    /// directory: nothing of the host's /etc/frr or /var/run/frr.
    fn start_frr(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let n = node.n;
        let d = &node.dir;
        let neighbours: String = (1..=NODES)
            .filter(|m| *m != n)
            .map(|m| format!(" neighbor 10.99.0.{m} peer-group fabric\n"))
            .collect();
        std::fs::write(d.join("zebra.conf"), "!\n").unwrap();
        std::fs::write(
            d.join("bgpd.conf"),
            format!(
                "router bgp 65000\n bgp router-id 10.99.0.{n}\n no bgp default ipv4-unicast\n \
                 neighbor fabric peer-group\n neighbor fabric remote-as internal\n \
                 neighbor fabric timers 1 3\n neighbor fabric timers connect 1\n{neighbours} \
                 address-family l2vpn evpn\n  neighbor fabric activate\n  advertise-all-vni\n \
                 exit-address-family\n"
            ),
        )
        .unwrap();
        let (uid, gid) = frr_ids();
        for p in [d.clone(), d.join("zebra.conf"), d.join("bgpd.conf")] {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        }
        let s = |p: &str| d.join(p).display().to_string();
        let (dir_s, zserv) = (d.display().to_string(), s("zserv.api"));
        for daemon in ["zebra", "bgpd"] {
            let (conf, pid, log) = (
                s(&format!("{daemon}.conf")),
                s(&format!("{daemon}.pid")),
                format!("file:{}", s(&format!("{daemon}.log"))),
            );
            let bin = format!("/usr/lib/frr/{daemon}");
            let p = node.ns.spawn(
                &format!("{daemon} in node {n}"),
                &[
                    &bin,
                    "-u",
                    "frr",
                    "-g",
                    "frr",
                    "-f",
                    &conf,
                    "-i",
                    &pid,
                    "-z",
                    &zserv,
                    "--vty_socket",
                    &dir_s,
                    "--log",
                    &log,
                ],
                &d.join(format!("{daemon}.out")),
            );
            node.frr.push(p);
            if daemon == "zebra" {
                // bgpd connects to zebra's socket.
                let up = wait_until(T, || d.join("zserv.api").exists());
                assert!(up, "zebra in node {n} did not start");
            }
        }
    }

    fn start_hub(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let d = &node.dir;
        let config = d.join("vhub.toml");
        std::fs::write(
            &config,
            format!(
                r#"listen = "0.0.0.0:{PORT}"
metrics_listen = "127.0.0.1:{METRICS_PORT}"
admin_socket = "{admin}"
cert_dir = "{certs}"
shards = 1

[session]
keepalive = "1s"
timeout = "3s"

[[hub]]
name = "DEFAULT"
anonymous = true
bridge = "br100"
"#,
                admin = d.join("admin.sock").display(),
                certs = d.join("certs").display(),
            ),
        )
        .unwrap();
        let vhub = vhub_bin().display().to_string();
        let config = config.display().to_string();
        node.hub = Some(node.ns.spawn(
            &format!("vhub in node {}", node.n),
            &[&vhub, "--config", &config],
            &d.join("vhub.log"),
        ));
        let node = &self.nodes[i];
        assert!(
            wait_until(T, || node.bridge_up()),
            "node {}'s hub did not bridge to br100:\n{}",
            node.n,
            node.hub.as_ref().unwrap().output()
        );
    }

    /// Client `i` (0-based) on the hubs `urls` (the first is its node's),
    /// with a persistent TAP whose MAC stays the same across restarts.
    fn start_client(&mut self, i: usize, urls: &[String]) {
        let ns = &self.clients[i];
        if !ns.exec(&["ip", "link", "show", "vnic0"]).status.success() {
            ip(ns, "tuntap add dev vnic0 mode tap vnet_hdr");
            ip(
                ns,
                &format!("link set vnic0 address 02:5c:00:00:00:{:02x}", i + 1),
            );
            ip(ns, &format!("addr add 10.77.0.1{}/24 dev vnic0", i + 1));
        }
        let mut extra: Vec<String> = urls[1..].to_vec();
        extra.extend(["--failback".into(), "off".into()]);
        let (hub_ip, port) = url_addr(&urls[0]);
        let v = Vnic::start(
            ns,
            VnicOpts {
                hub_ip,
                port,
                hub: "DEFAULT",
                user: "",
                password_file: Path::new("/nonexistent"),
                tap: "vnic0",
                ip: None,
                dir: self.dir.path(),
                extra,
            },
        );
        v.wait_connected(T);
        if self.vnics.len() <= i {
            self.vnics.resize_with(i + 1, || None);
        }
        self.vnics[i] = Some(v);
    }

    /// The URL of node `i`'s hub as client `c` reaches it: its access
    /// address for its own node, the underlay address for another.
    fn url_for(&self, c: usize, i: usize) -> String {
        if CLIENT_NODE[c] == i {
            format!("https://10.98.{}.1:{PORT}/DEFAULT", c + 1)
        } else {
            self.nodes[i].url()
        }
    }

    /// Waits until every node's EVPN has the other VTEPs as flood targets.
    fn wait_evpn(&self) {
        for node in &self.nodes {
            let others: Vec<String> = self
                .nodes
                .iter()
                .filter(|o| o.n != node.n)
                .map(Node::underlay_ip)
                .collect();
            let ok = wait_until(Duration::from_secs(60), || {
                let vni = node.vtysh("show evpn vni 100");
                others
                    .iter()
                    .all(|o| vni.contains(&format!("{o} flood: HER")))
            });
            assert!(
                ok,
                "node {}: EVPN did not list the other VTEPs:\n{}\n{}",
                node.n,
                node.vtysh("show evpn vni 100"),
                node.vtysh("show bgp l2vpn evpn summary")
            );
        }
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                for f in ["zebra.log", "bgpd.log"] {
                    if let Ok(t) = std::fs::read_to_string(node.dir.join(f)) {
                        let tail: Vec<&str> = t.lines().rev().take(20).collect();
                        eprintln!("----- node {} {f} (last lines) -----", node.n);
                        for l in tail.iter().rev() {
                            eprintln!("{l}");
                        }
                    }
                }
            }
        }
        // Clients first (they would reconnect), then the rest by field order.
        self.vnics.clear();
    }
}

fn url_addr(url: &str) -> (std::net::Ipv4Addr, u16) {
    let host = url
        .strip_prefix("https://")
        .and_then(|r| r.split('/').next())
        .unwrap();
    let (h, p) = host.split_once(':').unwrap();
    (h.parse().unwrap(), p.parse().unwrap())
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The frr user's uid and gid (the Debian package makes them).
fn frr_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = run(&["id", flag, "frr"]);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

fn client_ip(i: usize) -> String {
    format!("10.77.0.1{}", i + 1)
}

/// Pings every other client from every client.
fn ping_mesh(f: &Fabric) {
    for (i, ns) in f.clients.iter().enumerate() {
        for j in (0..f.clients.len()).filter(|j| *j != i) {
            assert!(
                ping_works(ns, &client_ip(j), T),
                "client {} cannot ping client {}",
                i + 1,
                j + 1
            );
        }
    }
    let out = f.clients[0].exec_ok(&["ping", "-c", "20", "-i", "0.05", &client_ip(2)]);
    let r = parse_ping(&String::from_utf8_lossy(&out.stdout));
    assert!(r.received >= 19, "pings lost node 1 -> node 3: {r:?}");
    // Full-size frames cross (the underlay's MTU leaves room for VXLAN).
    let big = f.clients[0].exec(&["ping", "-c", "3", "-s", "1472", "-M", "do", &client_ip(2)]);
    assert!(
        big.status.success(),
        "1500-byte packets do not cross: {}",
        String::from_utf8_lossy(&big.stdout)
    );
    eprintln!(
        "RESULT {:?}: ping client 1 (node 1) -> client 3 (node 3): {}/20, rtt min/avg/max {:?} ms",
        f.plane,
        r.received,
        r.rtt.unwrap()
    );
}

/// Client 1 sends `COUNT` broadcasts (ICMP echo to 10.77.0.255); tcpdump
/// on every client's TAP counts the ones it receives: every other client
/// exactly `COUNT`, the sender none back (no loop, no duplicate).
fn broadcast_once(f: &Fabric) {
    const COUNT: usize = 5;
    let d = f.dir.path();
    let mut dumps: Vec<Proc> = f
        .clients
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            ns.spawn(
                "tcpdump",
                &[
                    "tcpdump",
                    "-n",
                    "-l",
                    "-i",
                    "vnic0",
                    "-Q",
                    "in",
                    "icmp and dst host 10.77.0.255",
                ],
                &d.join(format!("tcpdump-{i}.log")),
            )
        })
        .collect();
    for p in &dumps {
        assert!(
            wait_until(T, || p.output().contains("listening on")),
            "tcpdump did not start: {}",
            p.output()
        );
    }
    f.clients[0].exec(&[
        "ping",
        "-b",
        "-c",
        &COUNT.to_string(),
        "-i",
        "0.2",
        "-W",
        "1",
        "10.77.0.255",
    ]);
    // Late copies (a loop would go on) have time to show up.
    std::thread::sleep(Duration::from_secs(2));
    let mut counts = Vec::new();
    for p in &mut dumps {
        p.signal(libc::SIGINT);
        p.wait_exit(Duration::from_secs(5));
        let text = p.output();
        // Its summary proves it ran to the end: a count of 0 is read, not assumed.
        assert!(
            text.contains("packets captured"),
            "tcpdump did not finish: {text}"
        );
        counts.push(
            text.lines()
                .filter(|l| l.contains(" > 10.77.0.255"))
                .count(),
        );
    }
    eprintln!(
        "RESULT {:?}: {COUNT} broadcasts from client 1, received per client {counts:?}",
        f.plane
    );
    assert_eq!(counts[0], 0, "the broadcast came back to its sender");
    for (i, c) in counts.iter().enumerate().skip(1) {
        assert_eq!(
            *c,
            COUNT,
            "client {} received {c} of {COUNT} broadcasts",
            i + 1
        );
    }
}

/// iperf3 for 3 s from client 1 (node 1) to client 3 (node 3); printed.
fn iperf3_across(f: &Fabric) {
    let gbit = iperf3(
        &f.clients[2],
        &client_ip(2),
        &f.clients[0],
        f.dir.path(),
        false,
    );
    eprintln!(
        "RESULT {:?}: iperf3 client 1 (node 1) -> client 3 (node 3): {gbit:.2} Gbit/s",
        f.plane
    );
}

fn prerequisites(name: &str, plane: Plane) -> bool {
    if !require_root(name) {
        return false;
    }
    for (tool, pkg) in [
        ("ping", "iputils-ping"),
        ("iperf3", "iperf3"),
        ("tcpdump", "tcpdump"),
        ("bridge", "iproute2"),
    ] {
        require_tool(tool, pkg);
    }
    if !Path::new("/dev/net/tun").exists() {
        test_support::skip_or_fail(name, "no /dev/net/tun (the tun module) for TAP devices");
        return false;
    }
    // VXLAN devices: tried in a throw-away namespace.
    let probe = netns(&format!("vh-{}-probe", plane.tag()));
    let vxlan = probe
        .exec(&[
            "ip", "link", "add", "vx", "type", "vxlan", "id", "1", "dstport", "4789",
        ])
        .status
        .success();
    drop(probe);
    if !vxlan {
        test_support::skip_or_fail(name, "the kernel makes no vxlan device (the vxlan module)");
        return false;
    }
    if plane == Plane::Evpn {
        assert!(
            Path::new("/usr/lib/frr/bgpd").exists() && Path::new("/usr/lib/frr/zebra").exists(),
            "FRR is missing: install the Debian package frr"
        );
        require_tool("vtysh", "frr");
    }
    true
}

#[test]
fn three_nodes_with_a_static_flood_list_ping_broadcast_once_and_iperf3() {
    let name = "three_nodes_with_a_static_flood_list_ping_broadcast_once_and_iperf3";
    if !prerequisites(name, Plane::Static) {
        return;
    }
    let _lock = TestLock::take();
    let mut f = Fabric::build(Plane::Static);
    for (i, home) in CLIENT_NODE.iter().enumerate() {
        let url = f.url_for(i, *home);
        f.start_client(i, &[url]);
    }
    ping_mesh(&f);
    broadcast_once(&f);
    iperf3_across(&f);
}

/// Seconds from `t` to the first reply after the gap an outage made in
/// the replies of `r` (pinging every `interval` s), or to the first reply
/// after `t` when there was no gap (the outage cost no reply).
fn back_after(r: &PingReport, t: f64, interval: f64) -> f64 {
    let ts: Vec<f64> = r.replies.iter().map(|(ts, _)| *ts).collect();
    ts.windows(2)
        .find(|w| w[1] > t && w[1] - w[0] > 1.5 * interval)
        .map(|w| w[1])
        .or_else(|| ts.iter().copied().find(|x| *x > t))
        .map_or(f64::INFINITY, |x| x - t)
}

/// A `ping -D` running in the background, for a number of seconds.
fn ping_bg(ns: &Ns, to: &str, interval: &str, secs: u32, log: &Path) -> Proc {
    let count = (secs as f64 / interval.parse::<f64>().unwrap()).ceil() as u32;
    ns.spawn(
        "ping",
        &[
            "ping",
            "-D",
            "-n",
            "-i",
            interval,
            "-c",
            &count.to_string(),
            "-W",
            "1",
            to,
        ],
        log,
    )
}

#[test]
fn three_nodes_with_bgp_evpn_survive_a_move_and_the_loss_of_a_node() {
    let name = "three_nodes_with_bgp_evpn_survive_a_move_and_the_loss_of_a_node";
    if !prerequisites(name, Plane::Evpn) {
        return;
    }
    let _lock = TestLock::take();
    let mut f = Fabric::build(Plane::Evpn);
    f.wait_evpn();
    // Client 1 lists node 1 then node 2, client 4 node 1 then node 3;
    // clients 2 and 3 their own node.
    let urls1 = vec![f.url_for(0, 0), f.url_for(0, 1)];
    f.start_client(0, &urls1);
    for i in 1..3 {
        let url = f.url_for(i, i);
        f.start_client(i, &[url]);
    }
    let urls4 = vec![f.url_for(3, 0), f.url_for(3, 2)];
    f.start_client(3, &urls4);
    ping_mesh(&f);
    // The clients' MACs are EVPN routes now: node 3 has client 1's MAC
    // behind node 1's VTEP.
    let macs = f.nodes[2].vtysh("show evpn mac vni 100");
    assert!(
        macs.contains("02:5c:00:00:00:01") && macs.contains("10.99.0.1"),
        "node 3 does not have client 1's MAC from EVPN:\n{macs}"
    );
    broadcast_once(&f);
    iperf3_across(&f);

    // A move: client 1 leaves node 1 and joins node 2 with the same MAC
    // (its persistent TAP). It pings client 3 all along; the time from
    // its new start to the first reply is printed.
    let d = f.dir.path().to_owned();
    let mut ping = ping_bg(
        &f.clients[0],
        &client_ip(2),
        "0.1",
        25,
        &d.join("move-ping.log"),
    );
    std::thread::sleep(Duration::from_secs(1));
    if let Some(mut v) = f.vnics[0].take() {
        v.proc.stop();
    }
    let t_move = unix_now();
    let started = Instant::now();
    let url = f.url_for(0, 1);
    f.start_client(0, &[url]);
    let connected = started.elapsed();
    let moved = wait_until(T, || {
        f.nodes[2]
            .vtysh("show evpn mac vni 100 mac 02:5c:00:00:00:01")
            .contains("10.99.0.2")
    });
    assert!(moved, "node 3 still has client 1 behind node 1");
    // When node 3's EVPN had the MAC behind node 2 (polled: an upper bound).
    let route = unix_now() - t_move;
    ping.wait_exit(Duration::from_secs(40));
    let r = parse_ping(&ping.output());
    let back = back_after(&r, t_move, 0.1);
    let around: Vec<(f64, u64)> = r
        .replies
        .iter()
        .filter(|(ts, _)| (ts - t_move).abs() < 2.0)
        .map(|(ts, seq)| (((ts - t_move) * 1000.0).round() / 1000.0, *seq))
        .collect();
    eprintln!("RESULT Evpn: move: replies (s after the old vnic stopped, icmp_seq) {around:?}");
    assert!(
        back.is_finite(),
        "client 1 never reached client 3 after moving: {r:?}"
    );
    eprintln!(
        "RESULT Evpn: client 1 moved node 1 -> node 2: connected after {:.2} s, node 3's EVPN has it behind node 2 after {route:.2} s, ping to client 3 again after {back:.2} s ({} of {} pings lost)",
        connected.as_secs_f64(),
        r.transmitted - r.received,
        r.transmitted
    );
    assert!(
        ping_works(&f.clients[2], &client_ip(0), T),
        "client 3 cannot reach the moved client 1"
    );
    // Back to node 1, listing node 2 second, for the node loss.
    if let Some(mut v) = f.vnics[0].take() {
        v.proc.stop();
    }
    f.start_client(0, &urls1);
    assert!(
        ping_works(&f.clients[0], &client_ip(2), T),
        "client 1 is not back on node 1"
    );

    // Node loss: node 1's hub is killed (SIGKILL, by its PID). Its
    // clients fail over by themselves, client 1 to node 2 and client 4 to
    // node 3; clients 2 and 3 keep pinging each other through it all and
    // lose nothing.
    let mut steady = ping_bg(
        &f.clients[1],
        &client_ip(2),
        "0.2",
        15,
        &d.join("steady-ping.log"),
    );
    let mut lost = ping_bg(
        &f.clients[0],
        &client_ip(2),
        "0.1",
        12,
        &d.join("loss-ping.log"),
    );
    let mut lost4 = ping_bg(
        &f.clients[3],
        &client_ip(1),
        "0.1",
        12,
        &d.join("loss-ping-4.log"),
    );
    std::thread::sleep(Duration::from_secs(2));
    let t_kill = unix_now();
    if let Some(mut hub) = f.nodes[0].hub.take() {
        hub.kill();
    }
    lost.wait_exit(Duration::from_secs(30));
    lost4.wait_exit(Duration::from_secs(30));
    steady.wait_exit(Duration::from_secs(30));
    let r = parse_ping(&lost.output());
    let back = back_after(&r, t_kill, 0.1);
    let r4 = parse_ping(&lost4.output());
    let back4 = back_after(&r4, t_kill, 0.1);
    let s = parse_ping(&steady.output());
    for (c, to) in [(0, 1), (3, 2)] {
        let status = f.vnics[c].as_ref().unwrap().status().unwrap_or_default();
        assert_eq!(
            status["hub"].as_str(),
            Some(f.url_for(c, to).as_str()),
            "client {} is not on node {}: {status}",
            c + 1,
            to + 1
        );
    }
    assert!(
        back.is_finite() && back4.is_finite(),
        "a client of node 1 never came back after node 1 died: {r:?} {r4:?}"
    );
    eprintln!(
        "RESULT Evpn: node 1's hub killed: client 1 on node 2 pings client 3 again after {back:.2} s ({} of {} pings lost), client 4 on node 3 pings client 2 again after {back4:.2} s ({} of {} lost); clients 2<->3 meanwhile {}/{} replies",
        r.transmitted - r.received,
        r.transmitted,
        r4.transmitted - r4.received,
        r4.transmitted,
        s.received,
        s.transmitted
    );
    assert!(s.transmitted > 0, "no steady ping ran: {}", steady.output());
    assert_eq!(
        s.received, s.transmitted,
        "clients of nodes 2 and 3 lost pings while node 1 died"
    );
    assert!(
        ping_works(&f.clients[2], &client_ip(0), T),
        "client 3 cannot reach client 1 after the failover"
    );
    assert!(
        ping_works(&f.clients[0], &client_ip(3), T),
        "client 1 (now on node 2) cannot reach client 4 (now on node 3)"
    );
}
