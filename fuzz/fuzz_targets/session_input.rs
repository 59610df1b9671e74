//! A hub-side session fed arbitrary plaintext in arbitrary pieces: errors
//! close the session, nothing panics, delivered frames respect the limits.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switch_core::session::{Accept, Session, SessionConfig};
use switch_core::wire::http::SessionToken;

fuzz_target!(|data: &[u8]| {
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let mut s = Session::accept(now, SessionConfig::default(), Accept { token: SessionToken([7; 16]), version: 1 });
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in data.chunks(97) {
        buf.extend_from_slice(chunk);
        match s.handle_input(now, &buf, |f| assert!(f.len() >= 14 && f.len() <= 1518)) {
            Ok(used) => {
                buf.drain(..used);
            }
            Err(_) => break,
        }
        out.clear();
        s.poll_transmit(now, &mut out, 1 << 16);
        now += Duration::from_millis(u64::from(chunk[0]));
        s.handle_timeout(now);
        while s.poll_event().is_some() {}
    }
});
