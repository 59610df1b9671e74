//! The hub's TOML config parser and validator.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = hub::config::Config::from_toml(text) {
            let _ = c.validate();
            let _ = c.hubs();
        }
    }
});
