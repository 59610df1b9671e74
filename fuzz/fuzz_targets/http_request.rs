//! The HTTP front parser on the TLS port.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switch_core::wire::http;

fuzz_target!(|data: &[u8]| {
    match http::parse_request(data, 8192) {
        Ok(Some((_, used))) => assert!(used <= data.len()),
        Ok(None) => assert!(data.len() < 8192),
        Err(e) => {
            let mut out = Vec::new();
            http::emit_http_error(&mut out, &e);
            assert!(out.starts_with(b"HTTP/1.1 "));
        }
    }
});
