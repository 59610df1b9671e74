//! Filler bytes: SoftEther pads its messages with random lengths of random
//! bytes (the `pencore` PACK element, the bytes after the watermark, the
//! keep-alive payload) that every receiver ignores. They hide lengths, not
//! secrets, so a small seeded generator (SplitMix64) is enough here; the
//! seed comes from the caller, as switch-core never draws randomness of
//! its own. Never use it for the hello random or session keys.

/// A deterministic filler generator, seeded by the caller.
#[derive(Clone, Debug)]
pub struct Padding {
    state: u64,
}

impl Padding {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A length in `0..bound` (SoftEther's `rand mod bound`); 0 if `bound` is 0.
    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next_u64() % bound as u64) as usize
        }
    }

    /// Appends `len` filler bytes to `out`.
    pub fn append(&mut self, out: &mut Vec<u8>, len: usize) {
        out.reserve(len);
        let mut left = len;
        while left > 0 {
            let word = self.next_u64().to_le_bytes();
            let n = left.min(8);
            out.extend_from_slice(&word[..n]);
            left -= n;
        }
    }

    /// `len` filler bytes as a vector.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        self.append(&mut v, len);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_in_range_and_deterministic() {
        let mut a = Padding::new(7);
        let mut b = Padding::new(7);
        for bound in [0, 1, 2, 1000, 2000] {
            let x = a.below(bound);
            assert_eq!(x, b.below(bound));
            assert!(x < bound.max(1));
        }
        let mut out = vec![1];
        a.append(&mut out, 13);
        assert_eq!(out.len(), 14);
        assert_eq!(&out[1..], &b.bytes(13)[..]);
    }
}
