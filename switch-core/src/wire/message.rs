//! The binary messages of `vhub/1`, exchanged after `101 Switching Protocols`.
//!
//! Every message starts with an 8-byte header:
//!
//! ```text
//!  0       1       2               4                               8
//! +-------+-------+---------------+-------------------------------+
//! | type  | flags | reserved (0)  | body length (u32, big-endian) |
//! +-------+-------+---------------+-------------------------------+
//! ```
//!
//! The bodies are described with each [`MessageType`]; `docs/PROTOCOL.md`
//! has the full layout. Decoding is a view over the caller's buffer: frame
//! bytes are never copied, and every length and count is checked against
//! [`Limits`] before it is trusted.

use crate::wire::WireError;

/// Size of the fixed message header.
pub const HEADER_LEN: usize = 8;
/// Size of a FRAMES body before its first frame record: `first_seq` + `count`.
pub const FRAMES_PREFIX_LEN: usize = 12;
/// Size of the length prefix of one frame record inside a FRAMES body.
pub const RECORD_PREFIX_LEN: usize = 4;
/// The shortest frame accepted: an Ethernet header (dst, src, ethertype).
pub const MIN_FRAME_LEN: usize = 14;
/// The longest CLOSE reason, in bytes of UTF-8.
pub const MAX_REASON_LEN: usize = 256;

/// Message type codes (byte 0 of the header).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum MessageType {
    /// `first_seq: u64, count: u32, count × (len: u32, frame: [u8; len])`.
    Frames = 0x01,
    /// `seq: u64`: every frame with a sequence number ≤ `seq` was received.
    Ack = 0x02,
    /// `payload: u64`: the peer answers with PONG carrying the same payload.
    Ping = 0x03,
    /// `payload: u64`, echoed from a PING.
    Pong = 0x04,
    /// `code: u16, reason: UTF-8 (rest of body, ≤ 256 bytes)`.
    Close = 0x05,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x01 => Self::Frames,
            0x02 => Self::Ack,
            0x03 => Self::Ping,
            0x04 => Self::Pong,
            0x05 => Self::Close,
            _ => return None,
        })
    }
}

/// Why a session was closed, carried by a CLOSE message.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum CloseCode {
    /// The peer asked for it (Ctrl-C on the client, for example).
    Normal,
    /// The peer broke the protocol; the reason says how.
    ProtocolError,
    /// The hub is shutting down or restarting: reconnecting later may work.
    Shutdown,
    /// An administrator ended the session.
    Kicked,
    /// Nothing was received for the keep-alive timeout.
    Timeout,
    /// The same session was resumed on another connection.
    Replaced,
    /// The user is no longer allowed on this hub (removed, password changed).
    AuthRevoked,
    /// A configured limit was exceeded.
    LimitExceeded,
    /// A code this implementation does not know (kept as is).
    Other(u16),
}

impl CloseCode {
    /// The wire value.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Normal => 0,
            Self::ProtocolError => 1,
            Self::Shutdown => 2,
            Self::Kicked => 3,
            Self::Timeout => 4,
            Self::Replaced => 5,
            Self::AuthRevoked => 6,
            Self::LimitExceeded => 7,
            Self::Other(v) => v,
        }
    }

    /// From the wire value; unknown codes are kept as [`CloseCode::Other`].
    pub fn from_u16(v: u16) -> Self {
        match v {
            0 => Self::Normal,
            1 => Self::ProtocolError,
            2 => Self::Shutdown,
            3 => Self::Kicked,
            4 => Self::Timeout,
            5 => Self::Replaced,
            6 => Self::AuthRevoked,
            7 => Self::LimitExceeded,
            v => Self::Other(v),
        }
    }

    /// Whether a client that sees this code should try again by itself.
    pub fn should_reconnect(self) -> bool {
        matches!(
            self,
            Self::Shutdown | Self::Kicked | Self::Timeout | Self::LimitExceeded
        )
    }
}

/// What a decoder accepts. Both ends agree on these in the handshake.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Largest frame, in bytes (Ethernet header + payload, no FCS).
    pub max_frame: u32,
    /// Most frames in one FRAMES message.
    pub max_batch: u32,
}

impl Limits {
    /// Default largest frame: 1500-byte payload, 14-byte header, one VLAN tag.
    pub const DEFAULT_MAX_FRAME: u32 = 1518;
    /// Default most frames per message.
    pub const DEFAULT_MAX_BATCH: u32 = 256;
    /// The hard upper bound on `max_frame` any peer may ask for (64 KiB
    /// segmentation-offload super frames plus headers).
    pub const MAX_FRAME_CEILING: u32 = 65_600;
    /// The hard upper bound on `max_batch`.
    pub const MAX_BATCH_CEILING: u32 = 4096;

    /// The largest body a message may have under these limits.
    pub fn max_body(&self) -> usize {
        FRAMES_PREFIX_LEN + self.max_batch as usize * (RECORD_PREFIX_LEN + self.max_frame as usize)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: Self::DEFAULT_MAX_FRAME,
            max_batch: Self::DEFAULT_MAX_BATCH,
        }
    }
}

/// A decoded message, borrowing from the input buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Message<'a> {
    /// A batch of frames with consecutive sequence numbers.
    Frames(Frames<'a>),
    /// Cumulative acknowledgement.
    Ack(u64),
    /// Keep-alive request.
    Ping(u64),
    /// Keep-alive answer.
    Pong(u64),
    /// The sender closes the session.
    Close { code: CloseCode, reason: &'a str },
}

/// A validated FRAMES body: `count` records, each checked against the limits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Frames<'a> {
    first_seq: u64,
    count: u32,
    records: &'a [u8],
}

impl<'a> Frames<'a> {
    /// Sequence number of the first frame; the others follow one by one.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Number of frames in the batch.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Sequence number of the last frame.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count) - 1
    }

    /// The frames, in order, borrowed from the input buffer.
    pub fn iter(&self) -> FrameIter<'a> {
        FrameIter { rest: self.records }
    }
}

/// Iterator over the frames of a validated batch.
#[derive(Clone, Debug)]
pub struct FrameIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        // The batch was validated at decode time: these reads stay in bounds.
        let (len, rest) = self.rest.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        let (frame, rest) = rest.split_at(len);
        self.rest = rest;
        Some(frame)
    }
}

impl<'a> IntoIterator for &Frames<'a> {
    type Item = &'a [u8];
    type IntoIter = FrameIter<'a>;
    fn into_iter(self) -> FrameIter<'a> {
        self.iter()
    }
}

#[inline]
fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// Decodes one message from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a message (read more and
/// call again), `Ok(Some((message, consumed)))` otherwise. The header is
/// checked as soon as it is complete: a body longer than the limits allow is
/// an error before any of it has arrived, so a peer cannot make the caller
/// buffer more than [`Limits::max_body`] bytes.
pub fn decode<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Option<(Message<'a>, usize)>, WireError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let ty = MessageType::from_u8(header[0]).ok_or(WireError::UnknownType(header[0]))?;
    if header[1] != 0 || header[2] != 0 || header[3] != 0 {
        return Err(WireError::ReservedBits);
    }
    let body_len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let max = match ty {
        MessageType::Frames => limits.max_body(),
        MessageType::Ack | MessageType::Ping | MessageType::Pong => 8,
        MessageType::Close => 2 + MAX_REASON_LEN,
    };
    if body_len > max {
        return Err(WireError::BodyTooLong { len: body_len, max });
    }
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + body_len) else {
        return Ok(None);
    };
    let msg = match ty {
        MessageType::Frames => Message::Frames(decode_frames(body, limits)?),
        MessageType::Ack | MessageType::Ping | MessageType::Pong => {
            if body_len != 8 {
                return Err(WireError::BadBodyLength { ty, len: body_len });
            }
            let v = be_u64(body);
            match ty {
                MessageType::Ack => Message::Ack(v),
                MessageType::Ping => Message::Ping(v),
                _ => Message::Pong(v),
            }
        }
        MessageType::Close => {
            let Some((code, reason)) = body.split_first_chunk::<2>() else {
                return Err(WireError::BadBodyLength { ty, len: body_len });
            };
            let reason = std::str::from_utf8(reason).map_err(|_| WireError::ReasonNotUtf8)?;
            Message::Close {
                code: CloseCode::from_u16(u16::from_be_bytes(*code)),
                reason,
            }
        }
    };
    Ok(Some((msg, HEADER_LEN + body_len)))
}

fn decode_frames<'a>(body: &'a [u8], limits: &Limits) -> Result<Frames<'a>, WireError> {
    let Some((prefix, records)) = body.split_first_chunk::<FRAMES_PREFIX_LEN>() else {
        return Err(WireError::BadBodyLength {
            ty: MessageType::Frames,
            len: body.len(),
        });
    };
    let first_seq = be_u64(prefix);
    let count = u32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    if count == 0 {
        return Err(WireError::EmptyBatch);
    }
    if count > limits.max_batch {
        return Err(WireError::TooManyFrames {
            count,
            max: limits.max_batch,
        });
    }
    if first_seq == 0 || first_seq.checked_add(u64::from(count)).is_none() {
        return Err(WireError::BadSequence(first_seq));
    }
    // Walk the records once: every length is bounded and the walk must end
    // exactly at the end of the body.
    let mut rest = records;
    for _ in 0..count {
        let Some((len, after)) = rest.split_first_chunk::<RECORD_PREFIX_LEN>() else {
            return Err(WireError::Truncated);
        };
        let len = u32::from_be_bytes(*len);
        if len > limits.max_frame {
            return Err(WireError::FrameTooLong {
                len,
                max: limits.max_frame,
            });
        }
        if (len as usize) < MIN_FRAME_LEN {
            return Err(WireError::FrameTooShort(len));
        }
        rest = after.get(len as usize..).ok_or(WireError::Truncated)?;
    }
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(Frames {
        first_seq,
        count,
        records,
    })
}

fn put_header(out: &mut Vec<u8>, ty: MessageType, body_len: u32) {
    let l = body_len.to_be_bytes();
    out.extend_from_slice(&[ty as u8, 0, 0, 0, l[0], l[1], l[2], l[3]]);
}

fn put_u64_message(out: &mut Vec<u8>, ty: MessageType, v: u64) {
    put_header(out, ty, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends an ACK message.
pub fn encode_ack(out: &mut Vec<u8>, seq: u64) {
    put_u64_message(out, MessageType::Ack, seq);
}

/// Appends a PING message.
pub fn encode_ping(out: &mut Vec<u8>, payload: u64) {
    put_u64_message(out, MessageType::Ping, payload);
}

/// Appends a PONG message.
pub fn encode_pong(out: &mut Vec<u8>, payload: u64) {
    put_u64_message(out, MessageType::Pong, payload);
}

/// Appends a CLOSE message; a reason longer than [`MAX_REASON_LEN`] bytes is
/// cut at a character boundary.
pub fn encode_close(out: &mut Vec<u8>, code: CloseCode, reason: &str) {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason[..end];
    put_header(out, MessageType::Close, 2 + reason.len() as u32);
    out.extend_from_slice(&code.to_u16().to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
}

/// Appends one FRAMES message, frame by frame, into a buffer the caller owns.
///
/// ```
/// use switch_core::wire::{FramesWriter, decode, Limits, Message};
/// let mut out = Vec::new();
/// let mut w = FramesWriter::begin(&mut out, 1);
/// w.push(&[0xff; 60]);
/// w.push(&[0xee; 60]);
/// assert_eq!(w.finish(), 2);
/// let (msg, used) = decode(&out, &Limits::default()).unwrap().unwrap();
/// assert_eq!(used, out.len());
/// let Message::Frames(f) = msg else { panic!() };
/// assert_eq!(f.iter().count(), 2);
/// ```
pub struct FramesWriter<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    count: u32,
}

impl<'a> FramesWriter<'a> {
    /// Starts a FRAMES message whose first frame has sequence number `first_seq`.
    pub fn begin(out: &'a mut Vec<u8>, first_seq: u64) -> Self {
        let start = out.len();
        put_header(out, MessageType::Frames, 0);
        out.extend_from_slice(&first_seq.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        Self {
            out,
            start,
            count: 0,
        }
    }

    /// Appends one frame record.
    #[inline]
    pub fn push(&mut self, frame: &[u8]) {
        self.out
            .extend_from_slice(&(frame.len() as u32).to_be_bytes());
        self.out.extend_from_slice(frame);
        self.count += 1;
    }

    /// Appends `count` records that are already in wire form
    /// (`len: u32` + bytes each), for example from a retransmit buffer.
    #[inline]
    pub fn push_records(&mut self, records: &[u8], count: u32) {
        self.out.extend_from_slice(records);
        self.count += count;
    }

    /// Frames pushed so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of the message so far, header included.
    pub fn len(&self) -> usize {
        self.out.len() - self.start
    }

    /// Whether no frame was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Writes the length and count into the header. An empty batch is not
    /// valid on the wire, so finishing one removes the message again.
    pub fn finish(self) -> u32 {
        if self.count == 0 {
            self.out.truncate(self.start);
            return 0;
        }
        let body_len = (self.out.len() - self.start - HEADER_LEN) as u32;
        let h = self.start;
        self.out[h + 4..h + 8].copy_from_slice(&body_len.to_be_bytes());
        let c = h + HEADER_LEN + 8;
        self.out[c..c + 4].copy_from_slice(&self.count.to_be_bytes());
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fill: u8, len: usize) -> Vec<u8> {
        vec![fill; len]
    }

    #[test]
    fn ack_bytes_are_as_documented() {
        let mut out = Vec::new();
        encode_ack(&mut out, 0x0102_0304_0506_0708);
        assert_eq!(out, [0x02, 0, 0, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        let (m, n) = decode(&out, &Limits::default()).unwrap().unwrap();
        assert_eq!(n, 16);
        assert_eq!(m, Message::Ack(0x0102_0304_0506_0708));
    }

    #[test]
    fn frames_bytes_are_as_documented() {
        let mut out = Vec::new();
        let mut w = FramesWriter::begin(&mut out, 7);
        w.push(&frame(0xaa, 14));
        w.finish();
        let mut expect = vec![0x01, 0, 0, 0, 0, 0, 0, 30];
        expect.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 14]);
        expect.extend_from_slice(&[0xaa; 14]);
        assert_eq!(out, expect);
    }

    #[test]
    fn close_bytes_and_truncated_reason() {
        let mut out = Vec::new();
        encode_close(&mut out, CloseCode::Kicked, "bye");
        assert_eq!(out, [0x05, 0, 0, 0, 0, 0, 0, 5, 0, 3, b'b', b'y', b'e']);
        let long = "é".repeat(200); // 400 bytes
        out.clear();
        encode_close(&mut out, CloseCode::Normal, &long);
        let (m, _) = decode(&out, &Limits::default()).unwrap().unwrap();
        let Message::Close { reason, .. } = m else {
            panic!()
        };
        assert_eq!(reason.len(), MAX_REASON_LEN);
    }

    #[test]
    fn partial_input_asks_for_more() {
        let mut out = Vec::new();
        encode_ping(&mut out, 9);
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut], &Limits::default()).unwrap(), None);
        }
    }

    #[test]
    fn oversized_body_rejected_from_header_alone() {
        let hdr = [0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode(&hdr, &Limits::default()),
            Err(WireError::BodyTooLong { .. })
        ));
    }

    #[test]
    fn lying_count_and_lengths_rejected() {
        let l = Limits::default();
        let mut out = Vec::new();
        let mut w = FramesWriter::begin(&mut out, 1);
        w.push(&frame(1, 60));
        w.finish();
        // count = 2^32 - 1
        let mut bad = out.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode(&bad, &l),
            Err(WireError::TooManyFrames { .. })
        ));
        // count = 2 but only one record
        let mut bad = out.clone();
        bad[16..20].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(decode(&bad, &l), Err(WireError::Truncated));
        // record length longer than the body
        let mut bad = out.clone();
        bad[20..24].copy_from_slice(&61u32.to_be_bytes());
        assert_eq!(decode(&bad, &l), Err(WireError::Truncated));
        // record shorter than the body: trailing bytes
        let mut bad = out.clone();
        bad[20..24].copy_from_slice(&59u32.to_be_bytes());
        assert_eq!(decode(&bad, &l), Err(WireError::TrailingBytes(1)));
        // frame longer than max_frame
        let mut big = Vec::new();
        let mut w = FramesWriter::begin(&mut big, 1);
        w.push(&frame(1, 1519));
        w.finish();
        assert!(matches!(
            decode(&big, &l),
            Err(WireError::FrameTooLong { len: 1519, .. })
        ));
        // runt frame
        let mut runt = Vec::new();
        let mut w = FramesWriter::begin(&mut runt, 1);
        w.push(&frame(1, 13));
        w.finish();
        assert_eq!(decode(&runt, &l), Err(WireError::FrameTooShort(13)));
        // sequence 0
        let mut bad = out.clone();
        bad[8..16].copy_from_slice(&0u64.to_be_bytes());
        assert_eq!(decode(&bad, &l), Err(WireError::BadSequence(0)));
        // sequence that would overflow
        let mut bad = out;
        bad[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(decode(&bad, &l), Err(WireError::BadSequence(u64::MAX)));
    }

    #[test]
    fn unknown_type_reserved_bits_and_bad_sizes() {
        let l = Limits::default();
        assert_eq!(
            decode(&[0x09, 0, 0, 0, 0, 0, 0, 0], &l),
            Err(WireError::UnknownType(9))
        );
        assert_eq!(
            decode(&[0x02, 1, 0, 0, 0, 0, 0, 8], &l),
            Err(WireError::ReservedBits)
        );
        assert!(matches!(
            decode(&[0x02, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0], &l),
            Err(WireError::BadBodyLength { .. })
        ));
        assert_eq!(
            decode(&[0x05, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0xff], &l),
            Err(WireError::ReasonNotUtf8)
        );
        assert_eq!(
            decode(
                &[0x01, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
                &l
            ),
            Err(WireError::EmptyBatch)
        );
    }

    #[test]
    fn empty_writer_leaves_no_message() {
        let mut out = vec![1, 2, 3];
        let w = FramesWriter::begin(&mut out, 5);
        assert_eq!(w.finish(), 0);
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn close_codes_round_trip() {
        for v in 0..10u16 {
            assert_eq!(CloseCode::from_u16(v).to_u16(), v);
        }
        assert!(CloseCode::Shutdown.should_reconnect());
        assert!(!CloseCode::AuthRevoked.should_reconnect());
    }
}
