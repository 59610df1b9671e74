//! Property tests of the `vhub/1` codec: round trips, and arbitrary bytes
//! never panic the decoder nor make it allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use switch_core::wire::http::{
    self, Credentials, FrontRequest, Resume, SessionToken, UpgradeRequest,
};
use switch_core::wire::{self, CloseCode, FramesWriter, Limits, Message, WireError};

/// Counts allocations made by the current thread, so a test can assert that
/// decoding allocates nothing at all.
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

fn limits() -> impl Strategy<Value = Limits> {
    (14u32..3000, 1u32..300).prop_map(|(max_frame, max_batch)| Limits {
        max_frame,
        max_batch,
    })
}

/// Decodes every message in `buf`; counts messages; never allocates.
fn decode_all(buf: &[u8], limits: &Limits) -> Result<usize, WireError> {
    let mut off = 0;
    let mut n = 0;
    while let Some((msg, used)) = wire::decode(&buf[off..], limits)? {
        if let Message::Frames(f) = msg {
            assert_eq!(f.iter().count() as u32, f.count());
        }
        off += used;
        n += 1;
    }
    Ok(n)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_nor_allocate(bytes in proptest::collection::vec(any::<u8>(), 0..4096), limits in limits()) {
        let before = allocs();
        let _ = decode_all(&bytes, &limits);
        prop_assert_eq!(allocs(), before, "the decoder allocated");
    }

    #[test]
    fn mutated_valid_batches_never_panic(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 14..200), 1..20),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut buf = Vec::new();
        let mut w = FramesWriter::begin(&mut buf, 1);
        for f in &frames { w.push(f); }
        w.finish();
        for (pos, val) in flips {
            let i = pos % buf.len();
            buf[i] = val;
        }
        let before = allocs();
        let _ = decode_all(&buf, &Limits::default());
        prop_assert_eq!(allocs(), before);
    }

    #[test]
    fn frames_round_trip(
        first_seq in 1u64..u64::MAX / 2,
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 14..1519), 1..64),
    ) {
        let mut buf = vec![0xEE; 3]; // the writer appends after existing bytes
        let mut w = FramesWriter::begin(&mut buf, first_seq);
        for f in &frames { w.push(f); }
        prop_assert_eq!(w.finish() as usize, frames.len());
        let (msg, used) = wire::decode(&buf[3..], &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(used, buf.len() - 3);
        let Message::Frames(f) = msg else { panic!("not frames") };
        prop_assert_eq!(f.first_seq(), first_seq);
        let got: Vec<&[u8]> = f.iter().collect();
        let want: Vec<&[u8]> = frames.iter().map(|v| v.as_slice()).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn control_messages_round_trip(v in any::<u64>(), code in any::<u16>(), reason in "\\PC{0,300}") {
        let mut buf = Vec::new();
        wire::encode_ack(&mut buf, v);
        wire::encode_ping(&mut buf, v);
        wire::encode_pong(&mut buf, v);
        wire::encode_close(&mut buf, CloseCode::from_u16(code), &reason);
        let l = Limits::default();
        let mut off = 0;
        let mut out = Vec::new();
        while let Some((m, n)) = wire::decode(&buf[off..], &l).unwrap() {
            off += n;
            out.push(format!("{m:?}"));
            if let Message::Close { code: c, reason: r } = m {
                prop_assert_eq!(c.to_u16(), code);
                prop_assert!(reason.starts_with(r));
            }
        }
        prop_assert_eq!(off, buf.len());
        prop_assert_eq!(out.len(), 4);
        prop_assert_eq!(&out[0], &format!("Ack({v})"));
        prop_assert_eq!(&out[1], &format!("Ping({v})"));
        prop_assert_eq!(&out[2], &format!("Pong({v})"));
    }

    #[test]
    fn upgrade_request_round_trips(
        hub in "[A-Za-z0-9._-]{1,64}",
        user in "[a-z]{1,16}",
        password in "\\PC{0,40}",
        resume in proptest::option::of((any::<[u8; 16]>(), any::<u64>())),
        keepalive in proptest::option::of(1u64..100_000),
        max_frame in proptest::option::of(14u32..65_000),
    ) {
        let mut req = UpgradeRequest::new(&hub, "host:1");
        req.credentials = Some(Credentials { user, password });
        req.resume = resume.map(|(t, rx)| Resume { token: SessionToken(t), rx });
        req.keepalive = keepalive.map(std::time::Duration::from_millis);
        req.max_frame = max_frame;
        let mut buf = Vec::new();
        req.emit(&mut buf);
        let (got, n) = http::parse_request(&buf, 8192).unwrap().unwrap();
        prop_assert_eq!(n, buf.len());
        prop_assert_eq!(got, FrontRequest::Upgrade(req));
    }

    #[test]
    fn http_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = http::parse_request(&bytes, 1024);
        let _ = http::parse_response(&bytes, 1024);
    }
}
