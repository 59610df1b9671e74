//! Shared by the bench crate's integration tests.

use std::path::PathBuf;
use std::process::Command;

/// `vhub`, next to `vhub-bench` in the same target directory; built if missing.
pub fn vhub_bin() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_vhub-bench"));
    let dir = bench.parent().unwrap();
    let hub = dir.join("vhub");
    if !hub.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "hub"])
            .env("CARGO_TARGET_DIR", dir.parent().unwrap())
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("cargo build -p hub");
        assert!(status.success(), "cargo build -p hub failed");
    }
    hub
}
