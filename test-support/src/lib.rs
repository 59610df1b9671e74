//! What the test crates of vhub share: how a test that cannot run on this
//! machine says so.
//!
//! A test that needs something the machine may not have (root, io_uring,
//! a relay server, Chromium) calls [`skip_or_fail`] and returns. What
//! happens then depends on where it runs:
//!
//! - **Strict** (`VHUB_TEST_STRICT=1`, which `.ci/run` sets): the call
//!   panics, naming the test and what was missing. CI runs as root with
//!   every package installed; a test that cannot run there is a broken
//!   CI, not a pass.
//! - **Otherwise** (a developer's machine, a container): it prints
//!   `SKIP <binary> <test>: <why>` and, when `VHUB_SKIP_LOG` names a file,
//!   appends the same line to it. `scripts/test.sh` sets `VHUB_SKIP_LOG`
//!   and prints how many tests skipped, and which, at the end of the run:
//!   `cargo test` hides a passing test's output, so without the file a run
//!   with a third of the suite skipped would look like any green run.
//!
//! This crate does not decide *whether* a test can run: each test checks
//! what it needs ([`is_root`], a probe, a binary on disk) and says why.

use std::io::Write as _;

/// The environment variable that turns skips into failures.
pub const STRICT_VAR: &str = "VHUB_TEST_STRICT";
/// The environment variable naming the file skips are appended to.
pub const SKIP_LOG_VAR: &str = "VHUB_SKIP_LOG";

/// Whether skips are failures (`VHUB_TEST_STRICT` set to anything but
/// empty or `0`).
pub fn strict() -> bool {
    std::env::var_os(STRICT_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The test named `test` cannot run here because of `why` (what was
/// missing, and how to get it). Panics under [`strict`]; otherwise prints
/// and records the skip, and the caller returns.
#[track_caller]
pub fn skip_or_fail(test: &str, why: &str) {
    let binary = binary_name();
    if strict() {
        panic!(
            "{binary} {test} did not run: {why} \
             ({STRICT_VAR}=1: a test that cannot run is a failure, not a skip)"
        );
    }
    let line = format!("SKIP {binary} {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(SKIP_LOG_VAR).filter(|p| !p.is_empty()) {
        // One write of one line with O_APPEND: test binaries and threads
        // appending at once do not interleave their lines.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            panic!(
                "{binary} {test} skipped ({why}), and the skip could not be recorded in \
                 {SKIP_LOG_VAR}={}: {e}",
                std::path::Path::new(&path).display()
            );
        }
    }
}

/// Whether the test runs as root (namespaces, TAP devices, sshd).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when root; otherwise [`skip_or_fail`]s `test` with `why_root`
/// (what root is needed for) and returns false.
#[track_caller]
pub fn require_root(test: &str, why_root: &str) -> bool {
    let root = is_root();
    if !root {
        skip_or_fail(test, &format!("needs root ({why_root})"));
    }
    root
}

/// The test binary's name without cargo's hash: `relay` for
/// `target/debug/deps/relay-0123abcd`.
fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("test");
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name.to_owned()
        }
        _ => stem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_taken_off_the_binary_name() {
        // This very binary is `test_support-<16 hex digits>`.
        assert_eq!(binary_name(), "test_support");
    }
}
