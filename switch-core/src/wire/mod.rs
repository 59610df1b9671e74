//! The `vhub/1` wire format: the HTTP/1.1 upgrade ([`http`]) and the binary
//! messages that follow it ([`message`]). Pure functions over byte slices;
//! `docs/PROTOCOL.md` is the byte-by-byte description.

pub mod http;
pub mod message;

pub use message::{
    decode, encode_ack, encode_close, encode_ping, encode_pong, CloseCode, FrameIter, Frames,
    FramesWriter, Limits, Message, MessageType, HEADER_LEN, MIN_FRAME_LEN,
};

/// A binary message the peer sent is malformed. Every variant is the peer's
/// fault; the session answers with CLOSE(protocol error) and drops the link.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum WireError {
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    #[error("reserved header bits set")]
    ReservedBits,
    #[error("message body of {len} bytes exceeds the limit of {max}")]
    BodyTooLong { len: usize, max: usize },
    #[error("{ty:?} message with a body of {len} bytes")]
    BadBodyLength { ty: MessageType, len: usize },
    #[error("frame batch with no frames")]
    EmptyBatch,
    #[error("frame batch of {count} frames exceeds the limit of {max}")]
    TooManyFrames { count: u32, max: u32 },
    #[error("invalid first sequence number {0}")]
    BadSequence(u64),
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLong { len: u32, max: u32 },
    #[error("frame of {0} bytes is shorter than an Ethernet header")]
    FrameTooShort(u32),
    #[error("frame batch shorter than its count and lengths say")]
    Truncated,
    #[error("{0} bytes after the last frame of a batch")]
    TrailingBytes(usize),
    #[error("close reason is not UTF-8")]
    ReasonNotUtf8,
}
