//! SHA-0, the 1993 FIPS 180 hash that SoftEther still uses for passwords
//! (PROTOCOL-NOTES.md §5.2.1). OpenSSL 3 no longer has it and no
//! maintained crate carries it, so it lives here: SHA-1 without the one-bit
//! rotation in the message schedule, everything else (initial values,
//! padding, rounds, big-endian output) SHA-1's.
//!
//! SHA-0 is broken as a collision-resistant hash; SoftEther's protocol
//! fixes it, so a compatible implementation has no choice. Use it for
//! nothing else.

/// Length of a SHA-0 digest.
pub const DIGEST_LEN: usize = 20;

const BLOCK_LEN: usize = 64;
const INITIAL: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

/// An incremental SHA-0 computation.
#[derive(Clone)]
pub struct Sha0 {
    state: [u32; 5],
    block: [u8; BLOCK_LEN],
    block_len: usize,
    /// Message length so far, in bytes.
    total: u64,
}

impl Default for Sha0 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha0 {
    pub fn new() -> Self {
        Self {
            state: INITIAL,
            block: [0; BLOCK_LEN],
            block_len: 0,
            total: 0,
        }
    }

    /// Feeds more of the message.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.block_len > 0 {
            let n = (BLOCK_LEN - self.block_len).min(data.len());
            self.block[self.block_len..self.block_len + n].copy_from_slice(&data[..n]);
            self.block_len += n;
            data = &data[n..];
            if self.block_len < BLOCK_LEN {
                return;
            }
            let block = self.block;
            compress(&mut self.state, &block);
            self.block_len = 0;
        }
        let mut chunks = data.chunks_exact(BLOCK_LEN);
        for chunk in &mut chunks {
            compress(&mut self.state, chunk.try_into().expect("64-byte chunk"));
        }
        let rest = chunks.remainder();
        self.block[..rest.len()].copy_from_slice(rest);
        self.block_len = rest.len();
    }

    /// Pads the message and returns the digest.
    pub fn finalize(mut self) -> [u8; DIGEST_LEN] {
        let bits = self.total.wrapping_mul(8);
        self.update(&[0x80]);
        // Zeros until 8 bytes are left in the block for the length.
        while self.block_len != BLOCK_LEN - 8 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        debug_assert_eq!(self.block_len, 0);
        let mut out = [0u8; DIGEST_LEN];
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        out
    }
}

/// SHA-0 of one message.
pub fn sha0(data: &[u8]) -> [u8; DIGEST_LEN] {
    let mut h = Sha0::new();
    h.update(data);
    h.finalize()
}

fn compress(state: &mut [u32; 5], block: &[u8; BLOCK_LEN]) {
    let mut w = [0u32; 80];
    for (i, word) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    }
    for i in 16..80 {
        // SHA-1 rotates this left by one; SHA-0 does not. That is the whole
        // difference.
        w[i] = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
    }
    let [mut a, mut b, mut c, mut d, mut e] = *state;
    for (i, wi) in w.iter().enumerate() {
        let (f, k) = match i {
            0..=19 => ((b & c) | (!b & d), 0x5a82_7999),
            20..=39 => (b ^ c ^ d, 0x6ed9_eba1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc),
            _ => (b ^ c ^ d, 0xca62_c1d6),
        };
        let t = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(*wi);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = t;
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e]) {
        *s = s.wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: [u8; 20]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn published_vectors() {
        // FIPS 180 (1993), appendices A and B; "abc" and "" are also the
        // values PROTOCOL-NOTES.md §5.2.1 checked against the real binaries.
        assert_eq!(
            hex(sha0(b"abc")),
            "0164b8a914cd2a5e74c4f7ff082c4d97f1edf880"
        );
        assert_eq!(hex(sha0(b"")), "f96cea198ad1dd5617ac084a3d92c6107708c0ef");
        assert_eq!(
            hex(sha0(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "d2516ee1acfa5baf33dfc1c471e438449ef134c8"
        );
    }

    #[test]
    fn million_a() {
        // FIPS 180 (1993), appendix C; fed in uneven pieces.
        let mut h = Sha0::new();
        let a = [b'a'; 1000];
        let mut left = 1_000_000;
        let mut step = 1;
        while left > 0 {
            let n = step.min(left).min(a.len());
            h.update(&a[..n]);
            left -= n;
            step = step % 997 + 13;
        }
        assert_eq!(
            hex(h.finalize()),
            "3232affa48628a26653b5aaa44541fd90d690603"
        );
    }

    #[test]
    fn pieces_equal_whole_at_every_block_boundary() {
        let msg: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300] {
            let whole = sha0(&msg[..len]);
            for split in 0..=len {
                let mut h = Sha0::new();
                h.update(&msg[..split]);
                h.update(&msg[split..len]);
                assert_eq!(h.finalize(), whole, "len {len} split {split}");
            }
        }
    }
}
