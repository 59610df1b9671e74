//! vnic's relay URL parser (`--proxy`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = text.parse::<client::relay::Relay>() {
            // Display must never show a password: where the input had one,
            // the output has `:***@` (a user name may contain anything).
            let shown = r.to_string();
            if let Some(rest) = text.split_once("://").map(|(_, r)| r) {
                if let Some((userinfo, _)) = rest.split_once('@') {
                    let has_pw = userinfo.split_once(":").is_some_and(|(_, pw)| !pw.is_empty());
                    if has_pw && !matches!(r, client::relay::Relay::Ssh { .. }) {
                        assert!(shown.contains(":***@"), "{shown}");
                    }
                }
            }
        }
    }
});
