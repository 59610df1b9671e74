//! The watermark: the body of the `POST /vpnsvc/connect.cgi` that opens
//! every SoftEther TCP connection (PROTOCOL-NOTES.md §3.3).
//!
//! A client sends the 1411-byte [`WATERMARK`] followed by 0–1999 random
//! bytes; a server accepts a body that *starts with* the watermark, or that
//! is exactly [`ALT_BODY`] (`VPNCONNECT`). The bytes are SoftEther's
//! (Apache-2.0, SoftEther Project): see `WATERMARK.md` beside this file for
//! their provenance and hash.

/// SoftEther's `WaterMark[]`: a 200×51 GIF89a image, a protocol constant.
pub const WATERMARK: &[u8; WATERMARK_LEN] = include_bytes!("watermark.bin");
/// Length of [`WATERMARK`].
pub const WATERMARK_LEN: usize = 1411;
/// The other body a server accepts instead of the watermark.
pub const ALT_BODY: &[u8] = b"VPNCONNECT";
/// Most random bytes a client appends (SoftEther draws `rand mod 2000`).
pub const MAX_PADDING: usize = 1999;
/// Largest body a server reads (`MAX_WATERMARK_SIZE`).
pub const MAX_CONNECT_BODY: usize = WATERMARK_LEN + 2000;

/// Whether a `Content-Length` of a POST is one the real server reads at
/// all: 10 (`VPNCONNECT`) or 1411..=3411. Anything else is answered with a
/// 403 page and the connection closed (§3.3).
pub fn connect_length_ok(len: usize) -> bool {
    len == ALT_BODY.len() || (WATERMARK_LEN..=MAX_CONNECT_BODY).contains(&len)
}

/// Whether a received `connect.cgi` body is what a SoftEther client sends:
/// the watermark then any padding, or exactly `VPNCONNECT`.
pub fn is_connect_body(body: &[u8]) -> bool {
    body.starts_with(WATERMARK) || body == ALT_BODY
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn watermark_is_the_published_constant() {
        let digest: String = Sha256::digest(WATERMARK)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            digest,
            "96a706bbab378ec37dfef21e02b1a3c177fbebeffa039eb0efac918630df12a0"
        );
        assert_eq!(&WATERMARK[..10], b"GIF89a\xc8\x003\x00");
        assert_eq!(
            &WATERMARK[WATERMARK_LEN - 16..],
            b"\x17\xc9\xc8\x46\x3a\xf2\x91\x90\x8c\xa4\x24\x75\x95\x00\x00\x3b"
        );
    }

    #[test]
    fn bodies() {
        let mut body = WATERMARK.to_vec();
        assert!(is_connect_body(&body));
        body.extend_from_slice(&[0x5a; MAX_PADDING]);
        assert!(is_connect_body(&body));
        assert!(connect_length_ok(body.len()));
        assert!(is_connect_body(b"VPNCONNECT"));
        assert!(!is_connect_body(b"VPNCONNECT!"));
        assert!(!is_connect_body(&WATERMARK[..WATERMARK_LEN - 1]));
        let mut wrong = WATERMARK.to_vec();
        wrong[700] ^= 1;
        assert!(!is_connect_body(&wrong));
        for (len, ok) in [
            (0, false),
            (10, true),
            (11, false),
            (1410, false),
            (1411, true),
        ] {
            assert_eq!(connect_length_ok(len), ok, "{len}");
        }
        assert!(connect_length_ok(3411));
        assert!(!connect_length_ok(3412));
    }
}
