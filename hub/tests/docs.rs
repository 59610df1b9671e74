//! What the docs say about the tests, checked against the tests: every
//! fuzz target (`fuzz/Cargo.toml`) is named in docs/SECURITY.md's fuzzing
//! section, in fuzz/README.md's table and in `scripts/fuzz-short.sh`'s
//! times, and has a non-empty seed corpus. Counts that drift (how many
//! scenarios, how many tests) are not written in the docs at all.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `name = "…"` of every `[[bin]]` of fuzz/Cargo.toml.
fn fuzz_targets() -> Vec<String> {
    let manifest = read("fuzz/Cargo.toml");
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if let Some(v) = line.strip_prefix("name = ").filter(|_| in_bin) {
            names.push(v.trim_matches('"').to_owned());
        }
    }
    assert!(!names.is_empty(), "no [[bin]] in fuzz/Cargo.toml");
    names
}

#[test]
fn every_fuzz_target_is_documented_timed_and_seeded() {
    let security = read("docs/SECURITY.md");
    let fuzzing = security
        .split("## Fuzzing")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/SECURITY.md has a Fuzzing section");
    let readme = read("fuzz/README.md");
    let short = read("scripts/fuzz-short.sh");
    let mut problems = Vec::new();
    for t in fuzz_targets() {
        if !fuzzing.contains(&format!("`{t}`")) {
            problems.push(format!(
                "docs/SECURITY.md's Fuzzing section does not name `{t}`"
            ));
        }
        if !readme.contains(&format!("| `{t}` |")) {
            problems.push(format!("fuzz/README.md's table has no row for `{t}`"));
        }
        if !short.contains(&format!("[{t}]=")) {
            problems.push(format!("scripts/fuzz-short.sh gives {t} no time"));
        }
        let seeds = std::fs::read_dir(root().join("fuzz/corpus").join(&t))
            .map(|d| d.count())
            .unwrap_or(0);
        if seeds == 0 {
            problems.push(format!("fuzz/corpus/{t} has no seed"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_docs_do_not_count_tests_by_hand() {
    // "16 scenarios, 32 tests" was true once; the list in the code is the
    // count. A number followed by one of these words is a count that
    // nobody updates.
    let mut docs: Vec<String> = [
        "README.md",
        "client/README.md",
        "fuzz/README.md",
        "bench/RESULTS.md",
    ]
    .map(String::from)
    .to_vec();
    for e in std::fs::read_dir(root().join("docs")).expect("docs/") {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            docs.push(format!("docs/{name}"));
        }
    }
    for doc in &docs {
        let text = read(doc);
        let words: Vec<&str> = text.split_whitespace().collect();
        for w in words.windows(2) {
            let n = w[0].trim_start_matches(['(', '~']);
            let unit = w[1].trim_end_matches([',', '.', ')', ';', ':']);
            if !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && matches!(unit, "tests" | "scenarios" | "targets")
            {
                panic!(
                    "{doc} counts {} {unit} by hand: name what, or point at the code",
                    w[0]
                );
            }
        }
    }
}
