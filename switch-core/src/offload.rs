//! Segmentation offload: frames that carry a `virtio_net_hdr`.
//!
//! A TAP device opened with `IFF_VNET_HDR` and TSO enabled hands the
//! client TCP "super frames" of up to 64 KiB, each behind a 10-byte
//! `virtio_net_hdr` saying how the kernel would have cut it into
//! MTU-sized frames (`gso_type`, `gso_size`) and where a checksum is still
//! to be filled in (`csum_start`, `csum_offset`). When both ends of a path
//! speak this form (negotiated with `Vhub-Offload: vnet` in the upgrade,
//! see `docs/PROTOCOL.md`), a 64 KiB TCP segment crosses the tunnel as one
//! record and the receiving kernel takes it as one unit: per-frame costs
//! are paid once per 40-odd frames.
//!
//! This module is the fallback for a receiver that does not speak it:
//! [`to_plain`] cuts a super frame into ordinary Ethernet frames in
//! software (IPv4 and IPv6 TCP, VLAN tags allowed) and completes partial
//! checksums, exactly as the kernel's own GSO would. Everything is checked
//! before use: a header that lies about offsets or sizes is an
//! [`OffloadError`], never a panic or an out-of-bounds read.
//!
//! On the wire the header is the 10-byte legacy `struct virtio_net_hdr`,
//! little-endian (the layout a TAP device uses on every little-endian host).

/// Length of the header in front of every frame of an offload session.
pub const VNET_HDR_LEN: usize = 10;

/// Largest record of an offload session: header + 14-byte Ethernet header
/// + 4-byte VLAN tag + a 65,535-byte IP packet, rounded up.
pub const MAX_VNET_FRAME: u32 = 65_600;

/// Retransmit buffer of an offload session, either end (a few dozen
/// super frames; the 1 MiB default would hold 16).
pub const OFFLOAD_BUFFER_BYTES: usize = 4 << 20;

/// The form of a port's frames: plain Ethernet, or each behind a
/// `virtio_net_hdr` (an offload session, a TAP device with `IFF_VNET_HDR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    Plain,
    Vnet,
}

impl Form {
    /// `Vnet` when `offload` is on.
    #[inline]
    pub const fn of(offload: bool) -> Form {
        if offload {
            Form::Vnet
        } else {
            Form::Plain
        }
    }

    /// Bytes in front of the Ethernet header.
    #[inline]
    pub const fn header_len(self) -> usize {
        match self {
            Form::Plain => 0,
            Form::Vnet => VNET_HDR_LEN,
        }
    }
}

/// What [`convert`] handed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Converted {
    /// Frames given to `emit`.
    pub frames: usize,
    /// A super frame was cut (or a partial checksum completed) in software.
    pub cut: bool,
}

/// Puts `frame`, in form `from`, into form `to`, handing the result to
/// `emit` — the one place where frames change form, for the hub and the
/// client alike:
///
/// - same form: as it is, no copy;
/// - plain → vnet: behind an all-zero header, built in `scratch`;
/// - vnet → plain, a header that asks for nothing: without the header, no
///   copy;
/// - vnet → plain, a super frame or a partial checksum: cut by
///   [`to_plain`] in `scratch`, no segment over `max_frame`.
pub fn convert(
    frame: &[u8],
    from: Form,
    to: Form,
    max_frame: usize,
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<Converted, OffloadError> {
    let one = Converted {
        frames: 1,
        cut: false,
    };
    match (from, to) {
        (Form::Plain, Form::Plain) | (Form::Vnet, Form::Vnet) => emit(frame),
        (Form::Plain, Form::Vnet) => emit(with_plain_header(scratch, frame)),
        (Form::Vnet, Form::Plain) => match VnetHdr::parse(frame) {
            Some(h) if h.is_plain() => emit(&frame[VNET_HDR_LEN..]),
            _ => {
                let frames = to_plain(frame, max_frame, scratch, emit)?;
                return Ok(Converted { frames, cut: true });
            }
        },
    }
    Ok(one)
}

/// Writes `frame` behind an all-zero header into `out` (cleared first):
/// a plain frame in an offload session's form.
pub fn with_plain_header<'a>(out: &'a mut Vec<u8>, frame: &[u8]) -> &'a [u8] {
    out.clear();
    out.extend_from_slice(&VnetHdr::PLAIN.to_bytes());
    out.extend_from_slice(frame);
    out
}

/// `flags`: the checksum at `csum_start + csum_offset` holds only the
/// pseudo-header sum; the rest is to be added.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum has been verified (receive side hint).
pub const F_DATA_VALID: u8 = 2;

/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_TCPV6: u8 = 4;
/// Bit or'ed into `gso_type`: the segment carries ECN (CWR on the first).
pub const GSO_ECN: u8 = 0x80;

/// The segments of one super frame may not exceed this many (a 64 KiB
/// segment at the smallest sensible MSS of 536 bytes is 123 segments); a
/// header asking for more is refused so one record cannot turn into
/// thousands of frames.
pub const MAX_SEGMENTS: usize = 128;

/// The `virtio_net_hdr` of one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers (Ethernet + IP + TCP). Not trusted: a TAP
    /// device reports the linear part of its buffer here, which may be
    /// longer; the segmenter works it out from the TCP header itself.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Offset of the transport header from the start of the Ethernet frame.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// A header that says "an ordinary frame, checksums complete".
    pub const PLAIN: VnetHdr = VnetHdr {
        flags: 0,
        gso_type: GSO_NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Reads the header at the start of `b`.
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; VNET_HDR_LEN] = b.get(..VNET_HDR_LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// The header's 10 bytes.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// Whether the frame behind this header can go out as it is.
    pub fn is_plain(&self) -> bool {
        self.gso_type & !GSO_ECN == GSO_NONE && self.flags & F_NEEDS_CSUM == 0
    }
}

/// Why a frame with a header could not be made plain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("frame shorter than its virtio_net_hdr")]
    Short,
    #[error("unsupported gso_type {0:#x}")]
    UnsupportedGso(u8),
    #[error("checksum offsets outside the frame")]
    BadChecksumOffsets,
    #[error("not an IPv4/IPv6 TCP frame as the header says")]
    NotTcp,
    #[error("gso_size is zero")]
    ZeroGsoSize,
    #[error("{0} segments (more than {MAX_SEGMENTS})")]
    TooManySegments(usize),
    #[error("a segment of {0} bytes is larger than the receiver accepts")]
    SegmentTooLarge(usize),
}

/// Turns one offload record (header + Ethernet frame) into ordinary frames,
/// handing each to `emit`, in order. Returns how many frames were emitted.
///
/// - an already plain frame is passed on without a copy;
/// - a frame whose checksum is partial is copied to `scratch` and completed;
/// - a TCP super frame is cut into `gso_size` segments in `scratch`, each
///   with its own IP length, IPv4 ID and header checksum, TCP sequence
///   number, flags (FIN/PSH on the last only, CWR on the first only) and
///   TCP checksum. No segment may exceed `max_frame`.
///
/// `scratch` is the caller's buffer, reused across calls (no allocation
/// once it has grown to the largest segment).
pub fn to_plain(
    record: &[u8],
    max_frame: usize,
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    let hdr = VnetHdr::parse(record).ok_or(OffloadError::Short)?;
    let frame = &record[VNET_HDR_LEN..];
    let gso = hdr.gso_type & !GSO_ECN;
    if gso == GSO_NONE {
        if hdr.flags & F_NEEDS_CSUM == 0 {
            emit(frame);
            return Ok(1);
        }
        let start = usize::from(hdr.csum_start);
        let at = start + usize::from(hdr.csum_offset);
        if at + 2 > frame.len() || start > frame.len() {
            return Err(OffloadError::BadChecksumOffsets);
        }
        scratch.clear();
        scratch.extend_from_slice(frame);
        // The field holds the folded pseudo-header sum: add the rest.
        let partial = u16::from_be_bytes([scratch[at], scratch[at + 1]]);
        scratch[at] = 0;
        scratch[at + 1] = 0;
        let sum = fold(sum_words(&scratch[start..], u64::from(partial)));
        scratch[at..at + 2].copy_from_slice(&(!sum).to_be_bytes());
        emit(scratch);
        return Ok(1);
    }
    let v6 = match gso {
        GSO_TCPV4 => false,
        GSO_TCPV6 => true,
        other => return Err(OffloadError::UnsupportedGso(other)),
    };
    segment_tcp(frame, &hdr, v6, max_frame, scratch, &mut emit)
}

/// Where the IP header starts: after the Ethernet header and any VLAN tags.
fn l3_offset(frame: &[u8]) -> Option<(usize, u16)> {
    let mut off = 12;
    loop {
        let ty = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
        match ty {
            0x8100 | 0x88a8 => off += 4,
            _ => return Some((off + 2, ty)),
        }
        if off > 12 + 8 {
            return None;
        }
    }
}

fn segment_tcp(
    frame: &[u8],
    hdr: &VnetHdr,
    v6: bool,
    max_frame: usize,
    scratch: &mut Vec<u8>,
    emit: &mut impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    let (ip, ethertype) = l3_offset(frame).ok_or(OffloadError::NotTcp)?;
    let tcp = usize::from(hdr.csum_start);
    let ok_type = if v6 { 0x86dd } else { 0x0800 };
    if ethertype != ok_type || hdr.csum_offset != 16 || tcp < ip + if v6 { 40 } else { 20 } {
        return Err(OffloadError::NotTcp);
    }
    let doff = usize::from(*frame.get(tcp + 12).ok_or(OffloadError::NotTcp)? >> 4) * 4;
    let headers = tcp + doff;
    if doff < 20 || headers > frame.len() {
        return Err(OffloadError::NotTcp);
    }
    // IPv4: the header length must reach the TCP header exactly.
    if !v6 && usize::from(frame[ip] & 0x0f) * 4 != tcp - ip {
        return Err(OffloadError::NotTcp);
    }
    let mss = usize::from(hdr.gso_size);
    if mss == 0 {
        return Err(OffloadError::ZeroGsoSize);
    }
    let payload = frame.len() - headers;
    let count = payload.div_ceil(mss).max(1);
    if count > MAX_SEGMENTS {
        return Err(OffloadError::TooManySegments(count));
    }
    let biggest = headers + mss.min(payload);
    if biggest > max_frame {
        return Err(OffloadError::SegmentTooLarge(biggest));
    }
    let (src, addr_len) = if v6 { (ip + 8, 16) } else { (ip + 12, 4) };
    let addrs = sum_words(&frame[src..src + 2 * addr_len], 0);
    let seq0 = u32::from_be_bytes(frame[tcp + 4..tcp + 8].try_into().expect("4 bytes"));
    let id0 = u16::from_be_bytes([frame[ip + 4], frame[ip + 5]]);
    let flags0 = frame[tcp + 13];
    for i in 0..count {
        let from = headers + i * mss;
        let to = (from + mss).min(frame.len());
        let last = i + 1 == count;
        scratch.clear();
        scratch.extend_from_slice(&frame[..headers]);
        scratch.extend_from_slice(&frame[from..to]);
        let seg = &mut scratch[..];
        let l4_len = seg.len() - tcp;
        if v6 {
            // Payload length: everything after the fixed header (extension
            // headers included).
            let plen = (seg.len() - ip - 40) as u16;
            seg[ip + 4..ip + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let total = (seg.len() - ip) as u16;
            seg[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
            seg[ip + 4..ip + 6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            seg[ip + 10] = 0;
            seg[ip + 11] = 0;
            let c = !fold(sum_words(&seg[ip..tcp], 0));
            seg[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        }
        let seq = seq0.wrapping_add((i * mss) as u32);
        seg[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = flags0;
        if !last {
            flags &= !(0x01 | 0x08); // FIN, PSH
        }
        if i > 0 {
            flags &= !0x80; // CWR
        }
        seg[tcp + 13] = flags;
        seg[tcp + 16] = 0;
        seg[tcp + 17] = 0;
        let pseudo = addrs + 6 + l4_len as u64;
        let c = !fold(sum_words(&seg[tcp..], pseudo));
        seg[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
        emit(seg);
    }
    Ok(count)
}

/// Ones' complement sum of big-endian 16-bit words (an odd last byte is
/// padded with zero), added to `acc`, not yet folded.
pub fn sum_words(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    acc
}

/// Folds a sum into 16 bits (end-around carry).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests;
