//! A growable byte ring that holds frame records in wire form
//! (`len: u32` + bytes), so that a batch of them can be copied into a FRAMES
//! message with one or two `memcpy`s.
//!
//! It starts empty (an idle session costs no buffer), grows by doubling up
//! to the limit the session enforces, and can be shrunk back when idle.

#[derive(Default, Debug)]
pub(crate) struct ByteRing {
    buf: Vec<u8>,
    head: usize,
    len: usize,
}

const INITIAL: usize = 16 * 1024;

impl ByteRing {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Appends the concatenation of `parts`.
    pub(crate) fn push(&mut self, parts: &[&[u8]]) {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if n == 0 {
            return;
        }
        if self.len + n > self.buf.len() {
            self.grow(self.len + n);
        }
        let cap = self.buf.len();
        let mut tail = (self.head + self.len) % cap;
        for p in parts {
            let first = p.len().min(cap - tail);
            self.buf[tail..tail + first].copy_from_slice(&p[..first]);
            self.buf[..p.len() - first].copy_from_slice(&p[first..]);
            tail = (tail + p.len()) % cap;
        }
        self.len += n;
    }

    fn grow(&mut self, needed: usize) {
        let new_cap = needed.max(self.buf.len() * 2).max(INITIAL);
        let mut new = vec![0u8; new_cap];
        let (a, b) = self.slices(0, self.len);
        new[..a.len()].copy_from_slice(a);
        new[a.len()..a.len() + b.len()].copy_from_slice(b);
        self.buf = new;
        self.head = 0;
    }

    /// The bytes at `[off, off + n)` from the front, as up to two slices.
    pub(crate) fn slices(&self, off: usize, n: usize) -> (&[u8], &[u8]) {
        debug_assert!(off + n <= self.len);
        if n == 0 {
            return (&[], &[]);
        }
        let cap = self.buf.len();
        let start = (self.head + off) % cap;
        let first = n.min(cap - start);
        (&self.buf[start..start + first], &self.buf[..n - first])
    }

    /// Reads the big-endian u32 at `off` from the front.
    pub(crate) fn read_u32(&self, off: usize) -> u32 {
        let (a, b) = self.slices(off, 4);
        let mut x = [0u8; 4];
        x[..a.len()].copy_from_slice(a);
        x[a.len()..].copy_from_slice(b);
        u32::from_be_bytes(x)
    }

    /// Removes `n` bytes from the front.
    pub(crate) fn pop_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.len -= n;
        self.head = if self.len == 0 {
            0
        } else {
            (self.head + n) % self.buf.len()
        };
    }

    /// Gives the memory back when the ring is empty.
    pub(crate) fn shrink_if_empty(&mut self) {
        if self.len == 0 && !self.buf.is_empty() {
            self.buf = Vec::new();
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_grows_preserving_order() {
        let mut r = ByteRing::default();
        let mut model = std::collections::VecDeque::new();
        let mut next = 0u8;
        for round in 0..2000usize {
            let n = (round * 7919) % 3000;
            let chunk: Vec<u8> = (0..n)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            r.push(&[&chunk[..n / 2], &chunk[n / 2..]]);
            model.extend(chunk.iter().copied());
            let pop = (round * 104_729) % (r.len() + 1);
            r.pop_front(pop);
            model.drain(..pop);
            assert_eq!(r.len(), model.len());
            let (a, b) = r.slices(0, r.len());
            let got: Vec<u8> = a.iter().chain(b).copied().collect();
            assert!(got.iter().eq(model.iter()), "round {round}");
        }
        r.pop_front(r.len());
        r.shrink_if_empty();
        assert_eq!(r.capacity(), 0);
    }

    #[test]
    fn read_u32_across_the_wrap() {
        let mut r = ByteRing::default();
        r.push(&[&vec![0u8; INITIAL - 2]]);
        r.pop_front(INITIAL - 2);
        // head is 0 again after emptying; fill to place a u32 across the end.
        r.push(&[&vec![0u8; INITIAL - 2]]);
        r.pop_front(INITIAL - 4);
        r.push(&[&[1, 2, 3, 4]]);
        assert_eq!(r.read_u32(2), 0x0102_0304);
        assert_eq!(r.capacity(), INITIAL);
    }
}
