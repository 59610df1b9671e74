//! vnic's parsers of what a relay answers: the HTTP CONNECT response head,
//! the SOCKS5 method choice, authentication status and CONNECT reply, and
//! the SOCKS4a reply. A proxy is as untrusted as the network behind it.
//!
//! Input: byte 0 picks the protocol (bits 0-1: HTTP, SOCKS5, SOCKS4a,
//! HTTP) and whether credentials are offered (bit 2); byte 1 the size of
//! the pieces the answer arrives in (1-256 bytes); the rest is the proxy's
//! whole answer. Oracle, besides never panicking or hanging: the handshake
//! succeeds exactly when an independent reading of the protocol says it
//! must, and then it has consumed exactly the proxy's reply — every byte
//! after it is the hub's and reaches the tunnel unchanged.
#![no_main]
use client::relay::fuzzing::{http_connect, socks4a, socks5, MAX_HTTP_HEAD};
use libfuzzer_sys::fuzz_target;

/// How many bytes a SOCKS5 server's answers take when they grant the
/// CONNECT (RFC 1928, RFC 1929), or None when they do not.
fn socks5_granted(r: &[u8], auth: bool) -> Option<usize> {
    let at = match r.get(..2)? {
        [5, 0] => 2,
        // User/password: only the status byte matters (RFC 1929 says the
        // version is 1; some servers send 5).
        [5, 2] if auth => (*r.get(3)? == 0).then_some(4)?,
        _ => return None,
    };
    let reply = r.get(at..at + 4)?;
    if reply[0] != 5 || reply[1] != 0 {
        return None;
    }
    let addr = match reply[3] {
        1 => 4,
        4 => 16,
        3 => 1 + usize::from(*r.get(at + 4)?),
        _ => return None,
    };
    let end = at + 4 + addr + 2;
    (r.len() >= end).then_some(end)
}

fuzz_target!(|data: &[u8]| {
    let [mode, chunk, reply @ ..] = data else {
        return;
    };
    let auth = mode & 4 != 0;
    let chunk = usize::from(*chunk) + 1;
    match mode & 3 {
        1 => {
            let (r, rest) = socks5(reply, chunk, auth);
            let granted = socks5_granted(reply, auth);
            assert_eq!(r.is_ok(), granted.is_some(), "{r:?}");
            if let Some(end) = granted {
                assert_eq!(
                    rest,
                    &reply[end..],
                    "the tunnel does not start after the reply"
                );
            }
            if let Err(e) = r {
                let _ = e.to_string();
            }
        }
        2 => {
            let (r, rest) = socks4a(reply, chunk, auth);
            let granted = reply.len() >= 8 && matches!(reply[0], 0 | 4) && reply[1] == 0x5a;
            assert_eq!(r.is_ok(), granted, "{r:?}");
            if granted {
                assert_eq!(rest, &reply[8..]);
            }
            if let Err(e) = r {
                let _ = e.to_string();
            }
        }
        _ => {
            let (r, rest) = http_connect(reply, chunk, auth);
            match r {
                Ok(()) => {
                    // A 2xx status line (after empty lines, which HTTP/1.1
                    // parsers skip: RFC 9112 §2.2), a head that ends with a
                    // blank line within the limit, and everything after it
                    // tunneled.
                    assert!(reply.ends_with(&rest));
                    let head = &reply[..reply.len() - rest.len()];
                    assert!(
                        head.len() <= MAX_HTTP_HEAD,
                        "a head of {} bytes",
                        head.len()
                    );
                    let start = head
                        .iter()
                        .position(|&b| b != b'\r' && b != b'\n')
                        .unwrap_or(0);
                    let status_line = &head[start..];
                    assert!(status_line.starts_with(b"HTTP/1."), "{head:?}");
                    assert_eq!(status_line.get(9), Some(&b'2'), "not a 2xx: {head:?}");
                    assert!(
                        head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"),
                        "{head:?}"
                    );
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
});
