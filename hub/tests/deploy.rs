//! The deployment files under `deploy/` are checked by the tools that will
//! read them: `systemd-analyze verify` for the units, `promtool` for the
//! Prometheus config and rules, and the Grafana dashboard against the
//! metrics a running hub really exports; the scale-out examples by FRR's
//! `vtysh --dryrun`, `ip -batch`/`bridge -batch` in a throw-away network
//! namespace, and vhub's config validator.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::start_hub;
use vhub_bench::client::{frame, mac, TestClient, BROADCAST};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `systemd-analyze verify` on `unit` (copied into a temp dir as
/// `name`, with the binaries' paths replaced); returns its stderr.
fn verify_unit(unit: &str, name: &str, replace: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(deploy().join("systemd").join(unit)).unwrap();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    assert!(
        out.status.success(),
        "systemd-analyze verify {unit} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn systemd_units_verify_without_warnings() {
    assert!(
        have("systemd-analyze"),
        "systemd-analyze missing: apt-get install systemd"
    );
    // The tool must complain about a broken unit, or its silence means nothing.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.service");
    std::fs::write(
        &bad,
        "[Service]\nExecStrat=/bin/true\nExecStart=/bin/true\n",
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ExecStrat"),
        "systemd-analyze does not report unknown keys here"
    );

    let vhub = env!("CARGO_BIN_EXE_vhub");
    let warnings = verify_unit("vhub.service", "vhub.service", &[("/usr/bin/vhub", vhub)]);
    assert!(warnings.trim().is_empty(), "vhub.service: {warnings}");
    // vnic is another package's binary: any executable stands in for it.
    let warnings = verify_unit(
        "vnic@.service",
        "vnic@office.service",
        &[("/usr/bin/vnic", "/bin/true")],
    );
    assert!(warnings.trim().is_empty(), "vnic@.service: {warnings}");
    for f in ["vhub.sysusers.conf", "vhub.tmpfiles.conf"] {
        assert!(deploy().join("systemd").join(f).exists());
    }
}

#[test]
fn prometheus_config_and_rules_pass_promtool() {
    assert!(
        have("promtool"),
        "promtool missing: apt-get install prometheus"
    );
    let dir = deploy().join("prometheus");
    for args in [
        &["check", "config", "prometheus.yml"][..],
        &["check", "rules", "vhub-rules.yml"][..],
        // Unit tests of the alerts (certificate expiry, refused reload).
        &["test", "rules", "vhub-rules.test.yml"][..],
    ] {
        let out = Command::new("promtool")
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Metric names (vhub_… and process_…) used in a PromQL text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if (rest.starts_with("vhub_") || rest.starts_with("process_"))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            names.insert(rest[..end].to_owned());
            i += end;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn every_metric_in_the_dashboard_and_the_alerts_exists() {
    let hub = start_hub(1, true, |_| {});
    // Some traffic, so labelled series exist.
    let mut a = TestClient::connect(hub.addr(), "DEFAULT", None).unwrap();
    let mut b = TestClient::connect(hub.addr(), "DEFAULT", None).unwrap();
    a.send(&frame(BROADCAST, mac(1), b"hello"));
    a.pump().unwrap();
    assert_eq!(b.recv_until(1, std::time::Duration::from_secs(5)), 1);
    let exported: BTreeSet<String> = hub
        .scrape()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/vhub-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            used.extend(metric_names(t["expr"].as_str().unwrap()));
        }
    }
    assert!(used.len() >= 10, "the dashboard uses few metrics: {used:?}");
    let rules = std::fs::read_to_string(deploy().join("prometheus/vhub-rules.yml")).unwrap();
    used.extend(metric_names(&rules));
    let missing: Vec<_> = used.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "named in deploy/ but not exported by the hub: {missing:?}\nexported: {exported:?}"
    );
}

// ---------------------------------------------------------------------------
// deploy/scale-out (docs/SCALE-OUT.md): each file checked by what reads it.

fn scale_out(file: &str) -> PathBuf {
    deploy().join("scale-out").join(file)
}

#[test]
fn scale_out_frr_config_passes_vtysh_dryrun() {
    assert!(have("vtysh"), "vtysh missing: apt-get install frr");
    let dryrun = |path: &Path| {
        Command::new("vtysh")
            .arg("--dryrun")
            .arg("-f")
            .arg(path)
            .output()
            .expect("vtysh runs")
    };
    let out = dryrun(&scale_out("frr.conf"));
    assert!(
        out.status.success(),
        "vtysh --dryrun -f deploy/scale-out/frr.conf: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The check must be able to fail: a misspelt command is refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("frr.conf");
    let text = std::fs::read_to_string(scale_out("frr.conf")).unwrap();
    assert!(text.contains("advertise-all-vni"), "{text}");
    std::fs::write(
        &bad,
        text.replace("advertise-all-vni", "advertise-all-vnis"),
    )
    .unwrap();
    assert!(
        !dryrun(&bad).status.success(),
        "vtysh --dryrun accepted a misspelt command: its silence means nothing"
    );
}

#[test]
fn scale_out_vhub_config_is_valid() {
    let text = std::fs::read_to_string(scale_out("vhub.toml")).unwrap();
    let c = hub::config::Config::from_toml_named(&text, "deploy/scale-out/vhub.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    let bridge = c.hub[0].bridge.as_ref().expect("hub DEFAULT is bridged");
    assert_eq!(bridge.interface, "br100", "the bridge of vxlan100.ip");
}

/// `ip -n NS ARGS…`; its output whatever the status.
fn ip_in(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("ip runs")
}

/// A throw-away namespace with an underlay `eth0` (10.99.0.1/24, MTU
/// `mtu`), deleted when dropped.
struct Scratch(String);

impl Scratch {
    fn new(name: &str, mtu: &str) -> Scratch {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let s = Scratch(name.to_owned());
        for args in [
            &["netns", "add", name][..],
            &[
                "-n", name, "link", "add", "eth0", "mtu", mtu, "type", "veth", "peer", "name",
                "eth0p",
            ],
            &["-n", name, "addr", "add", "10.99.0.1/24", "dev", "eth0"],
            &["-n", name, "link", "set", "eth0", "up"],
        ] {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        }
        s
    }

    /// Runs `tool -batch FILE` (ip or bridge) inside the namespace.
    fn batch(&self, tool: &str, file: &Path) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, tool, "-batch"])
            .arg(file)
            .output()
            .unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[test]
fn scale_out_network_batches_run_in_a_throwaway_namespace() {
    let name = "scale_out_network_batches_run_in_a_throwaway_namespace";
    if !test_support::require_root(name, "creates a network namespace to run the ip batches in") {
        return;
    }
    let ok = |o: &std::process::Output, what: &str| {
        assert!(
            o.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    // EVPN: vxlan100 without learning, on br100, with room for 1500 bytes.
    let ns = Scratch::new("vh-deploy-so-e", "1550");
    ok(
        &ns.batch("ip", &scale_out("vxlan100.ip")),
        "ip -batch vxlan100.ip",
    );
    let link = ip_in(&ns.0, &["-d", "link", "show", "vxlan100"]);
    let text = String::from_utf8_lossy(&link.stdout);
    for want in [
        "mtu 1500",
        "master br100",
        "vxlan id 100 local 10.99.0.1 dev eth0",
        "dstport 4789 nolearning",
        "learning off",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    drop(ns);
    // On a 1500-byte underlay the batch fails instead of making a segment
    // that drops full-size frames.
    let ns = Scratch::new("vh-deploy-so-m", "1500");
    assert!(
        !ns.batch("ip", &scale_out("vxlan100.ip")).status.success(),
        "vxlan100.ip ran on an underlay without room for VXLAN's 50 bytes"
    );
    drop(ns);
    // Static: a learning vxlan100 and the flood list to the two peers.
    let ns = Scratch::new("vh-deploy-so-s", "1550");
    ok(
        &ns.batch("ip", &scale_out("vxlan100-static.ip")),
        "ip -batch vxlan100-static.ip",
    );
    ok(
        &ns.batch("bridge", &scale_out("flood-list.bridge")),
        "bridge -batch flood-list.bridge",
    );
    let fdb = Command::new("ip")
        .args([
            "netns", "exec", &ns.0, "bridge", "fdb", "show", "dev", "vxlan100",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fdb.stdout);
    for peer in ["10.99.0.2", "10.99.0.3"] {
        assert!(
            text.contains(&format!("00:00:00:00:00:00 dst {peer} self permanent")),
            "no flood entry to {peer}:\n{text}"
        );
    }
}
