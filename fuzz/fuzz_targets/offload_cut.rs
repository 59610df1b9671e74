//! The hub cuts super frames from offload sessions for plain receivers:
//! any header and bytes, any receiver limit — an error or frames within
//! the limit, never a panic, never more than MAX_SEGMENTS frames.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switch_core::offload::{to_plain, MAX_SEGMENTS, VNET_HDR_LEN};

fuzz_target!(|data: &[u8]| {
    let (max, rec) = match data.split_first_chunk::<2>() {
        Some((m, rest)) => (14 + usize::from(u16::from_be_bytes(*m)), rest),
        None => (1518, data),
    };
    let mut scratch = Vec::new();
    let mut n = 0;
    let r = to_plain(rec, max, &mut scratch, |f| {
        n += 1;
        // A passed-through plain frame is as long as it came; cut or
        // completed frames respect the receiver's limit.
        if rec.get(1).is_some_and(|t| t & 0x7f != 0) {
            assert!(f.len() <= max, "segment of {} > {max}", f.len());
        }
        assert!(f.len() <= rec.len().saturating_sub(VNET_HDR_LEN).max(f.len()));
    });
    assert!(n <= MAX_SEGMENTS);
    if let Ok(k) = r {
        assert_eq!(k, n);
    }
});
