//! Frames between the TAP and the session, in the form each side wants
//! (with a `virtio_net_hdr` or plain). The two directions are plain
//! functions over a [`TapIo`] and a [`Carrier`] (a `vhub/1` `Session` or
//! the bridge's [`Proto`](super::proto::Proto)), so they are tested with
//! the in-memory TAP of `crate::tap::fake` and no root.
//!
//! ARP suppression rides along: every frame the hub delivers is shown to
//! the neighbour table (`Neighbours::learn`, a few bytes read), and while
//! the link is down every frame from the TAP is first shown to the
//! responder, whose answers go straight back to the TAP. On a live link
//! the responder is not asked at all.

use std::io;
use std::time::Instant;

use switch_core::offload::{self, Form};
use switch_core::session::{SendError, State};

use super::proto::Carrier;
use super::{Bridge, Outcome, ShellStats, TAP_BATCH};
use crate::lan::IcmpKeepalive;
use crate::suppress::{Neighbours, Verdict};
use crate::tap::{FrameBatch, TapIo};

/// Queues a frame on the session; what it refuses is counted.
fn queue_frame(session: &mut impl Carrier, shell: &mut ShellStats, frame: &[u8]) {
    match session.send_frame(frame) {
        // Full: counted by the session as a tail drop; Closed: counted
        // when the session is replaced.
        Ok(()) | Err(SendError::Full) | Err(SendError::Closed) => {}
        Err(SendError::BadLength(_)) => shell.oversize += 1,
    }
}

/// ARP suppression while the link is down: the table that answers, the
/// time, and the buffer an answer is built in.
pub(super) struct Suppress<'a> {
    pub now: Instant,
    pub neighbours: &'a mut Neighbours,
    pub reply: &'a mut Vec<u8>,
}

/// Reads a batch of frames from the TAP and queues them on the session in
/// its form: a TAP with offload and a session without it (a hub that did
/// not grant it) has its super frames cut here. With `suppress` (the
/// link is down), neighbour requests the table can answer are answered
/// to the TAP instead. Returns the frames read.
pub(super) fn tap_to_session<T: TapIo, S: Carrier>(
    tap: &T,
    batch: &mut FrameBatch,
    session: &mut S,
    shell: &mut ShellStats,
    scratch: &mut Vec<u8>,
    mut suppress: Option<Suppress<'_>>,
) -> io::Result<usize> {
    batch.clear();
    let n = tap.recv_batch(batch, TAP_BATCH)?;
    if batch.is_empty() {
        return Ok(0);
    }
    tracing::trace!(frames = batch.len(), "from the TAP");
    let (from, to) = (Form::of(tap.vnet()), Form::of(session.offload()));
    let max = session.max_frame();
    for frame in batch.iter() {
        if let Some(s) = &mut suppress {
            let eth = match from {
                Form::Vnet => frame.get(offload::VNET_HDR_LEN..).unwrap_or(&[]),
                Form::Plain => frame,
            };
            if s.neighbours.answer(s.now, eth, s.reply) == Verdict::Answered {
                if tap.send_plain(s.reply).is_err() {
                    shell.tap_write_errors += 1;
                }
                continue;
            }
        }
        match offload::convert(frame, from, to, max, scratch, |f| {
            queue_frame(session, shell, f)
        }) {
            // Every frame a super frame became (or a plain one passed on).
            Ok(done) if (from, to) == (Form::Vnet, Form::Plain) => {
                shell.segments_cut += done.frames as u64
            }
            Ok(_) => {}
            Err(_) => shell.bad_offload += 1,
        }
    }
    Ok(n)
}

/// Where the frames a session delivers go.
pub(super) struct ToTap<'a, T> {
    pub tap: &'a T,
    /// Sees every frame (it waits for echo replies and ARP).
    pub icmp: &'a mut Option<IcmpKeepalive>,
    /// Sees every frame (it learns who is where).
    pub neighbours: &'a mut Option<Neighbours>,
    /// Frames the TAP did not take.
    pub errors: &'a mut u64,
    /// Frames that came with the handshake response, kept until the
    /// response settled their form.
    pub early: &'a mut Vec<Vec<u8>>,
}

/// Feeds `input` (plaintext from the hub) to the session and writes every
/// frame it delivers to the TAP, in the TAP's form. Returns the bytes the
/// session used.
pub(super) fn session_to_tap<T: TapIo, S: Carrier>(
    t: Instant,
    session: &mut S,
    input: &[u8],
    to: ToTap<'_, T>,
) -> Result<usize, S::Error> {
    let ToTap {
        tap,
        icmp,
        neighbours,
        errors,
        early,
    } = to;
    // The form of the frames (offload or not) is settled by the
    // handshake, which may arrive in this very input: frames that come
    // with it wait until it is known.
    let settled = session.state() != State::Handshaking;
    let path = TapPath {
        offload: session.offload(),
        vnet_tap: tap.vnet(),
    };
    let r = session.handle_input(t, input, |frame| {
        if settled {
            path.to_tap(t, tap, (icmp, neighbours), errors, frame);
        } else {
            early.push(frame.to_vec());
        }
    });
    if !early.is_empty() {
        let path = TapPath {
            offload: session.offload(),
            vnet_tap: tap.vnet(),
        };
        for frame in early.drain(..) {
            path.to_tap(t, tap, (icmp, neighbours), errors, &frame);
        }
    }
    r
}

/// How frames from the session reach the TAP.
#[derive(Clone, Copy)]
pub(super) struct TapPath {
    /// The session's frames carry a virtio_net_hdr.
    offload: bool,
    /// The TAP's frames do.
    vnet_tap: bool,
}

impl TapPath {
    /// Writes `frame` to the TAP and shows it to the observers (the ICMP
    /// keep-alive and the neighbour table).
    pub(super) fn to_tap<T: TapIo>(
        self,
        now: Instant,
        tap: &T,
        (icmp, neighbours): (&mut Option<IcmpKeepalive>, &mut Option<Neighbours>),
        errors: &mut u64,
        frame: &[u8],
    ) {
        let (r, eth) = if self.offload {
            // Only asked for with a vnet TAP: the same form on both sides.
            (
                tap.send(frame),
                frame.get(offload::VNET_HDR_LEN..).unwrap_or(&[]),
            )
        } else if self.vnet_tap {
            (tap.send_plain(frame), frame)
        } else {
            (tap.send(frame), frame)
        };
        if r.is_err() {
            *errors += 1;
        }
        if let Some(k) = icmp {
            k.observe(eth);
        }
        if let Some(n) = neighbours {
            n.learn(now, eth);
        }
    }
}

impl<T: TapIo> Bridge<T> {
    pub(super) fn on_tap(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            self.finish_with(Outcome::Failed(format!(
                "TAP device {} failed: {e}",
                self.tap.name()
            )));
            return;
        }
        // While the link is down the host's neighbour requests are
        // answered here (ARP suppression); on a live link the hub's LAN
        // answers them.
        let suppress = match (&mut self.neighbours, self.session.state()) {
            (Some(n), s) if s != State::Established => Some(Suppress {
                now: super::now(),
                neighbours: n,
                reply: &mut self.reply,
            }),
            _ => None,
        };
        let (tap, session, shell) = (&self.tap, &mut self.session, &mut self.shell);
        if let Err(e) = tap_to_session(
            tap,
            &mut self.batch,
            session,
            shell,
            &mut self.scratch,
            suppress,
        ) {
            self.finish_with(Outcome::Failed(format!(
                "reading TAP device {}: {e}",
                self.tap.name()
            )));
        }
    }

    /// Whether the session can take a whole TAP batch and still keep
    /// every frame for a resume: on a live link frames in flight are
    /// bounded by the retransmit buffer; when it is full the TAP queue
    /// fills instead (and the kernel drops, as a NIC would), so nothing
    /// sent is ever evicted and a link loss loses nothing.
    pub(super) fn room_for_a_batch(&self) -> bool {
        let c = self.session.config();
        let frame = if self.tap.vnet() {
            offload::MAX_VNET_FRAME as usize
        } else {
            crate::tap::MAX_FRAME
        } + 4;
        let batch_bytes = (TAP_BATCH * frame).min(crate::tap::BATCH_BYTES + frame);
        self.session.buffered_frames() as usize + TAP_BATCH <= c.max_buffered_frames
            && self.session.buffered_bytes() + batch_bytes <= c.max_buffered_bytes
    }

    /// Queues a frame the client made itself (a plain Ethernet frame) in
    /// the session's form.
    pub(super) fn send_own_frame(&mut self, frame: &[u8]) {
        let to = Form::of(self.session.offload());
        let max = self.session.max_frame();
        let (session, shell) = (&mut self.session, &mut self.shell);
        // Plain → plain or behind a plain header: never fails.
        let _ = offload::convert(frame, Form::Plain, to, max, &mut self.scratch, |f| {
            queue_frame(session, shell, f)
        });
    }
}

#[cfg(test)]
mod tests;
