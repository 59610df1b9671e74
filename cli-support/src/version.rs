//! The long `--version` text: what a bug report or a packager needs to
//! know about a build.
//!
//! ```text
//! vhub 0.1.0
//! OpenSSL 3.5.4 30 Sep 2025 (vendored: built into this binary)
//! features: +io_uring +vendored-openssl -legacy-ciphers
//! ```
//!
//! clap prints the program's name and a space before it; `-V` stays the
//! short `vhub 0.1.0`.

/// The text after `NAME ` for `--version`: `version`, then the OpenSSL
/// library in use, then every feature as `+name` (built in) or `-name`:
/// the binary's own `features`, then `vendored-openssl` and
/// `legacy-ciphers` (from the `certs` crate, which links OpenSSL).
pub fn long_version(version: &str, features: &[(&str, bool)]) -> String {
    let vendored = certs::tls::openssl_vendored();
    let openssl = format!(
        "{} ({})",
        certs::tls::openssl_version(),
        if vendored {
            "vendored: built into this binary"
        } else {
            "the system library"
        }
    );
    let mut all: Vec<(&str, bool)> = features.to_vec();
    all.push(("vendored-openssl", vendored));
    all.push(("legacy-ciphers", certs::tls::legacy_ciphers_built()));
    format!("{version}\n{openssl}\n{}", feature_line(&all))
}

/// `features: +a -b`, in the order given.
fn feature_line(features: &[(&str, bool)]) -> String {
    let list: Vec<String> = features
        .iter()
        .map(|(name, on)| format!("{}{name}", if *on { '+' } else { '-' }))
        .collect();
    format!("features: {}", list.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_marked_on_and_off_in_order() {
        assert_eq!(
            feature_line(&[("io_uring", true), ("legacy-ciphers", false)]),
            "features: +io_uring -legacy-ciphers"
        );
    }

    #[test]
    fn the_long_version_names_the_version_openssl_and_every_feature() {
        let v = long_version("1.2.3", &[("io_uring", true)]);
        let lines: Vec<&str> = v.lines().collect();
        assert_eq!(lines.len(), 3, "{v}");
        assert_eq!(lines[0], "1.2.3");
        assert!(lines[1].starts_with("OpenSSL "), "{v}");
        assert!(lines[2].starts_with("features: +io_uring "), "{v}");
        for f in ["vendored-openssl", "legacy-ciphers"] {
            assert!(
                lines[2].contains(&format!("+{f}")) || lines[2].contains(&format!("-{f}")),
                "{v}"
            );
        }
    }
}
