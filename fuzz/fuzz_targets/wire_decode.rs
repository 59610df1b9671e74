//! The binary message decoder: any bytes, any limits — an error or a valid
//! message, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switch_core::wire::{decode, Limits, Message};

fuzz_target!(|data: &[u8]| {
    let (limits, data) = match data.split_first_chunk::<4>() {
        Some((l, rest)) => (
            Limits {
                max_frame: 14 + u32::from(u16::from_be_bytes([l[0], l[1]])),
                max_batch: 1 + u32::from(u16::from_be_bytes([l[2], l[3]])) % 4096,
            },
            rest,
        ),
        None => (Limits::default(), data),
    };
    let mut off = 0;
    while let Ok(Some((msg, used))) = decode(&data[off..], &limits) {
        assert!(used > 0 && off + used <= data.len());
        if let Message::Frames(f) = msg {
            assert_eq!(f.iter().count() as u32, f.count());
            for frame in f.iter() {
                assert!(frame.len() >= 14 && frame.len() <= limits.max_frame as usize);
            }
        }
        off += used;
    }
});
