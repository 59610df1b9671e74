//! CI smoke test of `bench/e2e/e2e.py`: three namespaces, a hub, two vnic,
//! ping + iperf3 for a second each. Asserts that it runs and that traffic
//! crossed the hub — not how fast.

use std::process::Command;

#[test]
fn e2e_script_runs_and_traffic_crosses_the_hub() {
    if !test_support::require_root(
        "e2e_script_runs_and_traffic_crosses_the_hub",
        "bench/e2e creates network namespaces and TAP devices",
    ) {
        return;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let json = std::env::temp_dir().join(format!("vhub-e2e-smoke-{}.json", std::process::id()));
    let out = Command::new("python3")
        .current_dir(root)
        .args(["bench/e2e/e2e.py", "--debug", "--seconds", "1", "--json"])
        .arg(&json)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "e2e.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let results = report["results"].as_array().unwrap();
    // Bare veth, then vhub with offload, offload to plain (segments cut by
    // the hub must pass the receiving kernel's checksums, or TCP stalls),
    // and without offload.
    assert_eq!(results.len(), 4, "{report}");
    for vhub in &results[1..] {
        assert!(vhub["path"].as_str().unwrap().starts_with("vhub"));
        assert!(vhub["tcp_1_gbit"].as_f64().unwrap() > 0.0, "{report}");
        assert_eq!(
            vhub["loss_percent"].as_f64(),
            Some(0.0),
            "ping through the hub lost packets: {report}"
        );
        assert!(vhub["udp64_delivered_pps"].as_f64().unwrap() > 0.0);
    }
}
