//! [`SessionStats`]: the counters of one session. Every frame that is
//! dropped, evicted, lost or received twice is counted in one of them.

/// Counters of one session, for metrics and status lines.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct SessionStats {
    /// Frames accepted by `send_frame` (assigned a sequence number).
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames delivered to the shell (each exactly once).
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames transmitted a second time after a resume.
    pub resent: u64,
    /// New frames refused because the buffer was full of unsent frames.
    pub tail_drops: u64,
    /// Transmitted-but-unacked frames dropped from the buffer to make room.
    pub evicted: u64,
    /// Frames the peer missed at a resume that were no longer buffered.
    pub lost_on_resume: u64,
    /// Frames received twice (after a resume) and dropped.
    pub rx_duplicates: u64,
    /// Gaps in the received sequence (frames the peer could not re-send).
    pub rx_gaps: u64,
    /// Frames sent before a session expired whose delivery is unknown.
    pub unconfirmed: u64,
    /// Successful resumes.
    pub resumes: u64,
    /// Keep-alive timeouts.
    pub link_deaths: u64,
    pub pings_sent: u64,
    pub pongs_received: u64,
}
