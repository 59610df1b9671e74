//! The SoftEther data-phase decoder: any bytes, in any pieces. Nothing
//! panics; every item is used whole and respects the limits; decoding the
//! bytes in pieces (kept in a receive buffer, as a shell does) gives the
//! same items and the same error as decoding them all at once.
//!
//! Input: byte 0 is the size of the pieces (1-256); bytes 1-2 a batch
//! limit; the rest is the stream.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switch_core::softether::data::{Decoder, Item, Limits, Skip, MIN_FRAME};

#[derive(Debug, PartialEq)]
enum Got {
    Frame(Vec<u8>),
    KeepAlive(Vec<u8>),
    Skipped(Skip),
}

/// Decodes what `buf` holds; returns the bytes used and the error, if any.
fn drain(d: &mut Decoder, buf: &[u8], got: &mut Vec<Got>) -> (usize, Option<String>) {
    let limits = *d.limits();
    let mut off = 0;
    loop {
        match d.decode(&buf[off..]) {
            Ok(Some((item, used))) => {
                assert!(used >= 4 && off + used <= buf.len());
                off += used;
                got.push(match item {
                    Item::Frame(f) => {
                        assert!(
                            f.len() >= MIN_FRAME as usize && f.len() <= limits.max_frame as usize
                        );
                        Got::Frame(f.to_vec())
                    }
                    Item::KeepAlive(p) => {
                        assert!(p.len() <= limits.max_keepalive as usize);
                        Got::KeepAlive(p.to_vec())
                    }
                    Item::Skipped(s) => Got::Skipped(s),
                });
            }
            Ok(None) => return (off, None),
            Err(e) => return (off, Some(e.to_string())),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[piece, b1, b2], stream)) = data.split_first_chunk::<3>() else {
        return;
    };
    let piece = usize::from(piece) + 1;
    let limits = Limits {
        max_batch: 1 + u32::from(u16::from_be_bytes([b1, b2])),
        ..Limits::default()
    };

    let mut whole = Vec::new();
    let (_, whole_err) = drain(&mut Decoder::new(limits), stream, &mut whole);

    let mut pieces = Vec::new();
    let mut d = Decoder::new(limits);
    let mut buf = Vec::new();
    let mut err = None;
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        let (used, e) = drain(&mut d, &buf, &mut pieces);
        buf.drain(..used);
        if e.is_some() {
            err = e;
            break;
        }
    }
    assert_eq!(pieces, whole);
    assert_eq!(err, whole_err);
});
