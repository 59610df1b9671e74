//! The client's parser of the hub's answer to an upgrade.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switch_core::wire::http;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, used))) = http::parse_response(data, 8192) {
        assert!(used <= data.len());
    }
});
