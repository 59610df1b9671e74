//! The data phase: Ethernet frames in batches, and keep-alives, on the
//! TLS stream right after the welcome (PROTOCOL-NOTES.md §7).
//!
//! ```text
//! batch      := u32 N (N ≠ 0xFFFFFFFF), then N × { u32 L, L bytes of frame }
//! keep-alive := u32 0xFFFFFFFF, u32 L (≤ 512), L bytes (ignored)
//! ```
//!
//! A frame is destination MAC first, no FCS. [`Decoder`] is incremental: it
//! takes the received bytes, returns one [`Item`] borrowed from them with
//! the bytes it used, or `None` when more are needed (nothing used), and
//! remembers how many frames of the current batch are still to come. Every
//! length is checked before the bytes are waited for: a frame over 3200
//! bytes or a keep-alive over 512 ends the connection, as in SoftEther;
//! frames of 1601..=3200 bytes are skipped, as SoftEther's receiver skips
//! them. [`BatchWriter`] appends frames to the caller's buffer with no
//! allocation of its own. Compression (`use_compress`) is not implemented:
//! a hub sends `use_compress` 0, which the client obeys.

use super::padding::Padding;

/// The count that marks a keep-alive (`KEEP_ALIVE_MAGIC`).
pub const KEEPALIVE_MAGIC: u32 = 0xFFFF_FFFF;
/// Largest keep-alive payload (`MAX_KEEPALIVE_SIZE`).
pub const MAX_KEEPALIVE: u32 = 512;
/// Largest frame delivered or sent (`MAX_PACKET_SIZE`). A real Linux
/// client drops larger frames before its TAP device.
pub const MAX_FRAME: u32 = 1600;
/// A frame length above this ends the connection (`MAX_PACKET_SIZE * 2`).
pub const HARD_MAX_FRAME: u32 = 2 * MAX_FRAME;
/// The shortest frame delivered: an Ethernet header.
pub const MIN_FRAME: u32 = 14;
/// Default most frames in one batch. SoftEther's receiver has no limit;
/// its sender puts every queued frame in one batch (about 1024 at most
/// seen, per-session queues of 1024 frames), so 8192 refuses no real peer.
pub const DEFAULT_MAX_BATCH: u32 = 8192;

/// What the decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Frames longer than this (up to `hard_max_frame`) are skipped.
    pub max_frame: u32,
    /// Frames longer than this end the connection.
    pub hard_max_frame: u32,
    /// Batches of more frames end the connection.
    pub max_batch: u32,
    /// Keep-alives longer than this end the connection.
    pub max_keepalive: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: MAX_FRAME,
            hard_max_frame: HARD_MAX_FRAME,
            max_batch: DEFAULT_MAX_BATCH,
            max_keepalive: MAX_KEEPALIVE,
        }
    }
}

/// The peer broke the framing; the connection must close (SoftEther's
/// receiver disconnects on the same input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("peer sent a frame of {len} bytes; more than {max} ends the connection")]
    FrameTooLong { len: u32, max: u32 },
    #[error("peer sent a keep-alive of {len} bytes; more than {max} ends the connection")]
    KeepAliveTooLong { len: u32, max: u32 },
    #[error("peer sent a batch of {count} frames; more than {max} ends the connection")]
    BatchTooLarge { count: u32, max: u32 },
}

/// Bytes that carried nothing to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A batch of 0 frames (a legal no-op).
    EmptyBatch,
    /// A frame shorter than an Ethernet header (SoftEther skips `L = 0`).
    Runt(u32),
    /// A frame longer than `max_frame` but not than `hard_max_frame`.
    Oversize(u32),
}

/// One decoded unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    Frame(&'a [u8]),
    /// A keep-alive's payload (random filler; ignore it).
    KeepAlive(&'a [u8]),
    Skipped(Skip),
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The incremental data-phase decoder of one TCP connection.
#[derive(Clone, Debug)]
pub struct Decoder {
    limits: Limits,
    /// Frames of the current batch still to come.
    remaining: u32,
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            remaining: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the decoder is in the middle of a batch.
    pub fn in_batch(&self) -> bool {
        self.remaining > 0
    }

    /// Decodes one item at the start of `buf`: `Ok(Some((item, used)))`, or
    /// `Ok(None)` when `buf` does not hold a complete item yet (nothing was
    /// used; call again with more bytes appended). A batch's count is used
    /// together with its first frame, so every byte used belongs to an item.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Item<'a>, usize)>, DataError> {
        if self.remaining > 0 {
            let Some((item, used)) = self.frame(buf)? else {
                return Ok(None);
            };
            self.remaining -= 1;
            return Ok(Some((item, used)));
        }
        let Some(count) = read_u32(buf, 0) else {
            return Ok(None);
        };
        match count {
            KEEPALIVE_MAGIC => {
                let Some(len) = read_u32(buf, 4) else {
                    return Ok(None);
                };
                if len > self.limits.max_keepalive {
                    return Err(DataError::KeepAliveTooLong {
                        len,
                        max: self.limits.max_keepalive,
                    });
                }
                let end = 8 + len as usize;
                Ok(buf.get(8..end).map(|p| (Item::KeepAlive(p), end)))
            }
            0 => Ok(Some((Item::Skipped(Skip::EmptyBatch), 4))),
            count if count > self.limits.max_batch => Err(DataError::BatchTooLarge {
                count,
                max: self.limits.max_batch,
            }),
            count => {
                let Some((item, used)) = self.frame(&buf[4..])? else {
                    return Ok(None);
                };
                self.remaining = count - 1;
                Ok(Some((item, 4 + used)))
            }
        }
    }

    fn frame<'a>(&self, buf: &'a [u8]) -> Result<Option<(Item<'a>, usize)>, DataError> {
        let Some(len) = read_u32(buf, 0) else {
            return Ok(None);
        };
        if len > self.limits.hard_max_frame {
            return Err(DataError::FrameTooLong {
                len,
                max: self.limits.hard_max_frame,
            });
        }
        let end = 4 + len as usize;
        let Some(frame) = buf.get(4..end) else {
            return Ok(None);
        };
        let item = if len > self.limits.max_frame {
            Item::Skipped(Skip::Oversize(len))
        } else if len < MIN_FRAME {
            Item::Skipped(Skip::Runt(len))
        } else {
            Item::Frame(frame)
        };
        Ok(Some((item, end)))
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// A frame or keep-alive this side must not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("a frame of {0} bytes is longer than the {MAX_FRAME} a SoftEther peer takes; drop it")]
    FrameTooLong(usize),
    #[error("a keep-alive of {0} bytes is longer than the {MAX_KEEPALIVE} a SoftEther peer takes")]
    KeepAliveTooLong(usize),
}

/// Appends one batch to a buffer the caller owns: the count is written
/// first and updated with every frame, so the buffer always holds a valid
/// batch.
#[derive(Debug)]
pub struct BatchWriter<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    count: u32,
}

impl<'a> BatchWriter<'a> {
    /// Starts a batch at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        let start = out.len();
        out.extend_from_slice(&0u32.to_be_bytes());
        Self {
            out,
            start,
            count: 0,
        }
    }

    /// Reopens the batch a writer started at `start` in `out` (and which
    /// is still the last thing in it) to append more frames: a sender
    /// that queues frames one at a time keeps them in one batch until it
    /// transmits. `None` if no batch count is at `start`.
    pub fn reopen(out: &'a mut Vec<u8>, start: usize) -> Option<Self> {
        let count = read_u32(out, start).filter(|&c| c != KEEPALIVE_MAGIC)?;
        Some(Self { out, start, count })
    }

    /// Appends a frame (at most [`MAX_FRAME`] bytes).
    pub fn push(&mut self, frame: &[u8]) -> Result<(), EncodeError> {
        if frame.len() > MAX_FRAME as usize {
            return Err(EncodeError::FrameTooLong(frame.len()));
        }
        self.out
            .extend_from_slice(&(frame.len() as u32).to_be_bytes());
        self.out.extend_from_slice(frame);
        self.count += 1;
        self.out[self.start..self.start + 4].copy_from_slice(&self.count.to_be_bytes());
        Ok(())
    }

    /// Frames so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of the batch so far.
    pub fn len(&self) -> usize {
        self.out.len() - self.start
    }

    /// Whether no frame has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Ends the batch; an empty one is removed. Returns the frame count.
    pub fn finish(self) -> u32 {
        if self.count == 0 {
            self.out.truncate(self.start);
        }
        self.count
    }
}

/// Appends a batch of the given frames; returns how many were written.
/// Stops at the first frame that is too long (frames before it stay).
pub fn encode_batch<'f>(
    out: &mut Vec<u8>,
    frames: impl IntoIterator<Item = &'f [u8]>,
) -> Result<u32, EncodeError> {
    let mut w = BatchWriter::new(out);
    for f in frames {
        if let Err(e) = w.push(f) {
            w.finish();
            return Err(e);
        }
    }
    Ok(w.finish())
}

/// Appends a keep-alive carrying `payload`.
pub fn encode_keepalive(out: &mut Vec<u8>, payload: &[u8]) -> Result<(), EncodeError> {
    if payload.len() > MAX_KEEPALIVE as usize {
        return Err(EncodeError::KeepAliveTooLong(payload.len()));
    }
    out.extend_from_slice(&KEEPALIVE_MAGIC.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends a keep-alive as SoftEther makes them: 0..=511 filler bytes.
pub fn encode_filler_keepalive(out: &mut Vec<u8>, padding: &mut Padding) {
    let len = padding.below(MAX_KEEPALIVE as usize);
    out.extend_from_slice(&KEEPALIVE_MAGIC.to_be_bytes());
    out.extend_from_slice(&(len as u32).to_be_bytes());
    padding.append(out, len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arp() -> Vec<u8> {
        (0..42u8).collect()
    }

    #[test]
    fn notes_examples() {
        // §7.1: one 42-byte ARP frame, and a keep-alive with 3 bytes.
        let mut out = Vec::new();
        assert_eq!(encode_batch(&mut out, [&arp()[..]]), Ok(1));
        let mut expect = vec![0, 0, 0, 1, 0, 0, 0, 0x2a];
        expect.extend_from_slice(&arp());
        assert_eq!(out, expect);
        let mut d = Decoder::default();
        assert_eq!(d.decode(&out), Ok(Some((Item::Frame(&arp()), 50))));
        assert!(!d.in_batch());

        let ka = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 3, 0xa, 0xb, 0xc];
        let mut out = Vec::new();
        encode_keepalive(&mut out, &[0xa, 0xb, 0xc]).unwrap();
        assert_eq!(out, ka);
        assert_eq!(
            d.decode(&ka),
            Ok(Some((Item::KeepAlive(&[0xa, 0xb, 0xc]), 11)))
        );
    }

    #[test]
    fn partial_input_uses_nothing_until_an_item_is_whole() {
        let mut out = Vec::new();
        encode_batch(&mut out, [&arp()[..], &arp()[..20]]).unwrap();
        let mut d = Decoder::default();
        for cut in 0..50 {
            assert_eq!(d.decode(&out[..cut]), Ok(None), "cut {cut}");
            assert!(!d.in_batch());
        }
        let (item, used) = d.decode(&out).unwrap().unwrap();
        assert_eq!((item, used), (Item::Frame(&arp()), 50));
        assert!(d.in_batch());
        let rest = &out[used..];
        for cut in 0..24 {
            assert_eq!(d.decode(&rest[..cut]), Ok(None));
        }
        assert_eq!(d.decode(rest), Ok(Some((Item::Frame(&arp()[..20]), 24))));
        assert!(!d.in_batch());
    }

    #[test]
    fn skips_like_softether() {
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(&[0, 0, 0, 0]),
            Ok(Some((Item::Skipped(Skip::EmptyBatch), 4)))
        );
        // A batch of 2: an empty frame, then an oversize one.
        let mut b = vec![0, 0, 0, 2, 0, 0, 0, 0];
        b.extend_from_slice(&1601u32.to_be_bytes());
        b.extend_from_slice(&[0; 1601]);
        assert_eq!(d.decode(&b), Ok(Some((Item::Skipped(Skip::Runt(0)), 8))));
        assert_eq!(
            d.decode(&b[8..]),
            Ok(Some((Item::Skipped(Skip::Oversize(1601)), 1605)))
        );
        // A keep-alive of 0 bytes.
        assert_eq!(
            d.decode(&[0xff; 4].iter().chain(&[0; 4]).copied().collect::<Vec<_>>()),
            Ok(Some((Item::KeepAlive(&[]), 8)))
        );
        // 1600 is delivered, 13 is a runt.
        let mut out = Vec::new();
        encode_batch(&mut out, [&[7u8; 1600][..], &[7u8; 13][..]]).unwrap();
        assert_eq!(d.decode(&out), Ok(Some((Item::Frame(&[7; 1600]), 1608))));
        assert_eq!(
            d.decode(&out[1608..]),
            Ok(Some((Item::Skipped(Skip::Runt(13)), 17)))
        );
    }

    #[test]
    fn hostile_lengths_end_the_connection_before_their_bytes_arrive() {
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(&[0, 0, 0, 1, 0, 0, 0x0c, 0x81]),
            Err(DataError::FrameTooLong {
                len: 3201,
                max: 3200
            })
        );
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]),
            Err(DataError::FrameTooLong {
                len: u32::MAX,
                max: 3200
            })
        );
        assert_eq!(
            d.decode(&[0xff, 0xff, 0xff, 0xff, 0, 0, 2, 1]),
            Err(DataError::KeepAliveTooLong { len: 513, max: 512 })
        );
        assert_eq!(
            d.decode(&[0xff, 0xff, 0xff, 0xfe]),
            Err(DataError::BatchTooLarge {
                count: 0xffff_fffe,
                max: DEFAULT_MAX_BATCH
            })
        );
        // 3200 is within the hard limit: waited for, then skipped.
        let mut b = vec![0, 0, 0, 1];
        b.extend_from_slice(&3200u32.to_be_bytes());
        assert_eq!(d.decode(&b), Ok(None));
        b.resize(8 + 3200, 0);
        assert_eq!(
            d.decode(&b),
            Ok(Some((Item::Skipped(Skip::Oversize(3200)), 3208)))
        );
    }

    #[test]
    fn writer_refuses_what_peers_drop_and_cleans_up() {
        let mut out = vec![9];
        let mut w = BatchWriter::new(&mut out);
        assert!(w.is_empty());
        assert_eq!(w.push(&[0; 1601]), Err(EncodeError::FrameTooLong(1601)));
        assert_eq!(w.finish(), 0);
        assert_eq!(out, [9], "an empty batch leaves nothing");
        assert_eq!(
            encode_keepalive(&mut out, &[0; 513]),
            Err(EncodeError::KeepAliveTooLong(513))
        );
        let mut p = Padding::new(3);
        for _ in 0..100 {
            let mut out = Vec::new();
            encode_filler_keepalive(&mut out, &mut p);
            let (item, used) = Decoder::default().decode(&out).unwrap().unwrap();
            assert!(matches!(item, Item::KeepAlive(x) if x.len() < 512));
            assert_eq!(used, out.len());
        }
    }

    #[test]
    fn a_reopened_batch_keeps_growing() {
        let mut out = Vec::new();
        let mut w = BatchWriter::new(&mut out);
        w.push(&arp()).unwrap();
        let mut w = BatchWriter::reopen(&mut out, 0).unwrap();
        assert_eq!(w.count(), 1);
        w.push(&arp()[..20]).unwrap();
        let mut d = Decoder::default();
        assert_eq!(d.decode(&out), Ok(Some((Item::Frame(&arp()), 50))));
        assert_eq!(
            d.decode(&out[50..]),
            Ok(Some((Item::Frame(&arp()[..20]), 24)))
        );
        encode_keepalive(&mut out, &[]).unwrap();
        assert!(BatchWriter::reopen(&mut out, 74).is_none());
    }

    #[derive(Clone, Debug)]
    enum Unit {
        Batch(Vec<Vec<u8>>),
        KeepAlive(Vec<u8>),
    }

    fn unit() -> impl Strategy<Value = Unit> {
        prop_oneof![
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 14..80), 0..5)
                .prop_map(Unit::Batch),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Unit::KeepAlive),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_in_any_pieces(units in proptest::collection::vec(unit(), 0..8), piece in 1usize..64) {
            let mut wire = Vec::new();
            let mut expect = Vec::new();
            for u in &units {
                match u {
                    Unit::Batch(frames) => {
                        let n = encode_batch(&mut wire, frames.iter().map(Vec::as_slice)).unwrap();
                        prop_assert_eq!(n as usize, frames.len());
                        expect.extend(frames.iter().map(|f| (true, f.clone())));
                    }
                    Unit::KeepAlive(p) => {
                        encode_keepalive(&mut wire, p).unwrap();
                        expect.push((false, p.clone()));
                    }
                }
            }
            // Feed the bytes as they might arrive: `piece` at a time into a
            // receive buffer that keeps what was not used.
            let mut d = Decoder::default();
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(piece) {
                buf.extend_from_slice(chunk);
                let mut off = 0;
                while let Some((item, used)) = d.decode(&buf[off..]).unwrap() {
                    prop_assert!(used > 0);
                    off += used;
                    match item {
                        Item::Frame(f) => got.push((true, f.to_vec())),
                        Item::KeepAlive(p) => got.push((false, p.to_vec())),
                        Item::Skipped(s) => prop_assert_eq!(s, Skip::EmptyBatch),
                    }
                }
                buf.drain(..off);
            }
            prop_assert!(buf.is_empty());
            prop_assert!(!d.in_batch());
            prop_assert_eq!(got, expect);
        }
    }
}
