//! vnic's relay URL parser (`--proxy`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = text.parse::<client::relay::Relay>() {
            // Display must never show a password.
            let shown = r.to_string();
            if let Some(at) = text.find('@') {
                if let Some(colon) = text[..at].rfind(':') {
                    let pw = &text[colon + 1..at];
                    if pw.len() > 3 && !pw.contains('%') {
                        assert!(!shown.contains(pw) || pw == "***", "{shown}");
                    }
                }
            }
        }
    }
});
