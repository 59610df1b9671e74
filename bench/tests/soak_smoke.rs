//! The short form of the soak (issue 6, item 6) for CI: `scripts/soak.sh`
//! with 200 sessions, a 10 s warm-up, then two halves of 15 s of load
//! with an idle point between. It asserts what the script checks: with
//! every session gone, the hub's open fds are back to the baseline
//! exactly (at the middle and at the end), its heap in use at the end is
//! within `SESSIONS × LEAK_KIB_PER_SESSION` of the middle (the exact leak
//! check, sized to this form: the second half opens and closes each of
//! its 200 sessions once, so a leak of 4 KiB per session — a tenth of
//! what an idle session holds — fails it; the script's default of 8 MiB,
//! sized for its long form, would let 41 KiB per session through here),
//! and its RSS at the
//! end is within 16 MiB plus 10% of the load's peak (what the allocator may
//! keep) of the middle (no growth) and of the baseline. About 70 s. The long
//! form is run by hand (`scripts/soak.sh`: 1000 sessions, 10 min; numbers
//! in bench/RESULTS.md).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::vhub_bin;

/// The script's output directory, removed at the end unless the test failed.
struct OutDir(PathBuf);

impl OutDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Sessions of the short form.
const SESSIONS: u32 = 200;
/// Heap a session may leave behind (KiB): the leak bound is this times
/// the sessions of the second half. Measured growth from the middle to
/// the end in this form: under 1 KiB per session (capacity high-water
/// marks of tables and queues).
const LEAK_KIB_PER_SESSION: u32 = 4;

#[test]
fn short_soak_returns_to_the_baseline() {
    let out_dir =
        OutDir(std::env::temp_dir().join(format!("vhub-soak-smoke-{}", std::process::id())));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/soak.sh");
    let out = Command::new("bash")
        .arg(script)
        .args([
            "--duration",
            "30",
            "--round",
            "15",
            "--warmup",
            "10",
            "--sample",
            "1",
        ])
        .args(["--sessions", &SESSIONS.to_string()])
        .args([
            "--heap-bound-kib",
            &(SESSIONS * LEAK_KIB_PER_SESSION).to_string(),
        ])
        .arg("--out")
        .arg(out_dir.path())
        .env("VHUB", vhub_bin())
        .env("VHUB_BENCH", env!("CARGO_BIN_EXE_vhub-bench"))
        .output()
        .expect("bash scripts/soak.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    if !out.status.success() {
        let samples =
            std::fs::read_to_string(out_dir.path().join("samples.csv")).unwrap_or_default();
        let rounds = std::fs::read_to_string(out_dir.path().join("rounds.csv")).unwrap_or_default();
        let log = std::fs::read_to_string(out_dir.path().join("hub.log")).unwrap_or_default();
        panic!(
            "soak failed ({:?})\n--- samples.csv\n{samples}\n--- rounds.csv\n{rounds}\n--- hub.log (tail)\n{}",
            out.status,
            log.lines().rev().take(40).collect::<Vec<_>>().join("\n")
        );
    }
    assert!(stdout.contains("SOAK OK"), "{stdout}");
    // The sampler ran through every phase.
    let samples = std::fs::read_to_string(out_dir.path().join("samples.csv")).unwrap();
    for phase in ["warmup", "load", "middle", "after"] {
        assert!(
            samples.lines().any(|l| l.split(',').nth(1) == Some(phase)),
            "no {phase} sample:\n{samples}"
        );
    }
}
