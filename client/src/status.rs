//! The status file: a running client writes a small JSON document every
//! second and on every state change; `vnic status` reads it and prints a
//! table. The same numbers make the line logged on SIGUSR1.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lan::IcmpStats;
use crate::suppress::SuppressStats;
use crate::units::{fmt_bytes, fmt_duration};

/// What a client tells about itself. Counters add up over every session
/// of the client's life (a new session after the hub forgot the old one
/// does not reset them).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Status {
    pub pid: u32,
    pub tap: String,
    /// The hub the client is on (or trying to get back to).
    pub hub: String,
    /// Every hub it may use, in the order it tries them.
    pub hubs: Vec<String>,
    /// Sessions established on another hub than the one before (failover
    /// and failback).
    pub failovers: u64,
    /// When the last of them was (seconds since the Unix epoch), and the
    /// hub it left.
    pub failed_over_at: Option<u64>,
    pub failed_over_from: Option<String>,
    pub relay: String,
    /// `connecting`, `connected`, `reconnecting`, `closed`.
    pub state: String,
    /// The last state line, as printed.
    pub detail: String,
    /// The session's short id (first 8 hex digits of the token).
    pub session: Option<String>,
    /// TLS version and suite of the current connection.
    pub tls: Option<String>,
    pub rtt_ms: Option<f64>,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    pub updated_at: u64,
    /// Seconds since the current connection was established.
    pub connected_for_s: Option<u64>,
    pub uptime_s: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames sent again after a resume.
    pub resent: u64,
    /// Frames the hub missed at a resume that were no longer buffered.
    pub lost_on_resume: u64,
    /// Frames from the hub that never arrived (gaps in its sequence).
    pub rx_gaps: u64,
    /// Frames read from the TAP and dropped because the buffer was full.
    pub tail_drops: u64,
    /// Sent-but-unacknowledged frames given up to make room.
    pub evicted: u64,
    /// Frames sent on a session the hub forgot, delivery unknown.
    pub unconfirmed: u64,
    pub rx_duplicates: u64,
    /// Frames from the hub the TAP device did not take.
    pub tap_write_errors: u64,
    /// Frames from the TAP larger than the session allows (MTU too big).
    pub oversize: u64,
    /// Segmentation offload in use (TAP and session both have it).
    pub offload: bool,
    /// TAP super frames that could not be cut for a hub without offload.
    pub bad_offload: u64,
    /// Frames cut from TAP super frames because the hub did not grant
    /// offload (vnic segments them as the kernel's GSO would).
    pub segments_cut: u64,
    /// Connections opened after the first one.
    pub reconnects: u64,
    pub resumes: u64,
    /// Sessions opened because the hub no longer knew ours.
    pub new_sessions: u64,
    pub link_deaths: u64,
    pub icmp: Option<IcmpStats>,
    /// ARP suppression (none when turned off).
    pub neighbours: Option<SuppressStats>,
}

impl Status {
    /// Every frame lost, whichever the cause.
    pub fn lost(&self) -> u64 {
        self.lost_on_resume + self.rx_gaps
    }

    /// One line for the log (SIGUSR1).
    pub fn line(&self) -> String {
        let mut s = format!("{} {} ({}): {}", self.tap, self.state, self.relay, self.hub);
        if let Some(id) = &self.session {
            let _ = write!(s, ", session {id}");
        }
        if let Some(r) = self.rtt_ms {
            let _ = write!(s, ", rtt {r:.1} ms");
        }
        if self.failovers > 0 {
            let _ = write!(s, ", failovers {}", self.failovers);
        }
        let _ = write!(
            s,
            ", tx {} frames/{}, rx {} frames/{}, re-sent {}, lost {}, tail drops {}, reconnects {}, up {}",
            self.tx_frames,
            fmt_bytes(self.tx_bytes),
            self.rx_frames,
            fmt_bytes(self.rx_bytes),
            self.resent,
            self.lost(),
            self.tail_drops,
            self.reconnects,
            fmt_duration(Duration::from_secs(self.uptime_s))
        );
        s
    }

    /// A table for a person: who and where, then the counters, then how
    /// long it has run.
    pub fn table(&self, running: bool) -> String {
        let mut rows = self.connection_rows(running);
        rows.extend(self.traffic_rows());
        if let Some(n) = &self.neighbours {
            rows.push((
                "neighbours",
                format!(
                    "{} known; answered while down: {} ARP, {} ND, {} unknown \
                     (evicted {}, aged out {})",
                    n.entries, n.arp_answered, n.nd_answered, n.unknown, n.evicted, n.aged_out
                ),
            ));
        }
        if let Some(i) = &self.icmp {
            rows.push((
                "icmp keep-alive",
                format!(
                    "{} echo requests, {} replies, {} ARP requests",
                    i.echo_requests, i.echo_replies, i.arp_requests
                ),
            ));
        }
        rows.push(("uptime", self.uptime_text()));
        render_rows(rows)
    }

    /// The device, its state (saying so when the client that wrote the
    /// file is gone, since the file then describes the past), and the
    /// connection: hub, relay, session, TLS, offload.
    fn connection_rows(&self, running: bool) -> Vec<(&'static str, String)> {
        let state = if running {
            self.state.clone()
        } else {
            format!("{} (not running: pid {} is gone)", self.state, self.pid)
        };
        let mut rows = vec![
            ("device", self.tap.clone()),
            ("state", state),
            ("", self.detail.clone()),
            ("hub", self.hub.clone()),
        ];
        if self.hubs.len() > 1 {
            rows.push(("failover", self.failover_text()));
        }
        rows.extend([
            ("relay", self.relay.clone()),
            (
                "session",
                self.session.clone().unwrap_or_else(|| "-".into()),
            ),
            ("tls", self.tls.clone().unwrap_or_else(|| "-".into())),
            ("offload", self.offload_text()),
        ]);
        rows
    }

    /// Which of the hubs, and when it last moved (with several hubs).
    fn failover_text(&self) -> String {
        let k = self
            .hubs
            .iter()
            .position(|h| *h == self.hub)
            .map_or(0, |k| k + 1);
        let mut s = format!("hub {k} of {} ({})", self.hubs.len(), self.hubs.join(", "));
        match (self.failed_over_at, &self.failed_over_from) {
            (Some(at), Some(from)) => {
                let ago = Duration::from_secs(self.updated_at.saturating_sub(at));
                let _ = write!(
                    s,
                    "; {} failover(s), the last {} ago, from {from}",
                    self.failovers,
                    fmt_duration(ago)
                );
            }
            _ => s.push_str("; no failover yet"),
        }
        s
    }

    /// Offload on, or off with the frames vnic had to cut itself (the cost
    /// of a hub that did not grant it).
    fn offload_text(&self) -> String {
        if self.offload {
            "on (TSO super frames)".into()
        } else if self.segments_cut > 0 {
            format!(
                "off at the hub; {} frames cut here from super frames",
                self.segments_cut
            )
        } else {
            "off".into()
        }
    }

    /// Round trip, frames both ways, and every way a frame was re-sent,
    /// lost or dropped, with the causes beside each total.
    fn traffic_rows(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "rtt",
                self.rtt_ms
                    .map(|r| format!("{r:.1} ms"))
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "frames out",
                format!("{} ({})", self.tx_frames, fmt_bytes(self.tx_bytes)),
            ),
            (
                "frames in",
                format!("{} ({})", self.rx_frames, fmt_bytes(self.rx_bytes)),
            ),
            ("re-sent", self.resent.to_string()),
            (
                "lost",
                format!(
                    "{} (on resume {}, gaps from the hub {}; unconfirmed {})",
                    self.lost(),
                    self.lost_on_resume,
                    self.rx_gaps,
                    self.unconfirmed
                ),
            ),
            (
                "tail drops",
                format!(
                    "{} (evicted {}, too large {}, not taken by the TAP {}, bad offload {})",
                    self.tail_drops,
                    self.evicted,
                    self.oversize,
                    self.tap_write_errors,
                    self.bad_offload
                ),
            ),
            (
                "reconnects",
                format!(
                    "{} (resumed {}, new sessions {}, keep-alive timeouts {})",
                    self.reconnects, self.resumes, self.new_sessions, self.link_deaths
                ),
            ),
        ]
    }

    /// The client's uptime, and the current connection's when connected.
    fn uptime_text(&self) -> String {
        format!(
            "{}{}",
            fmt_duration(Duration::from_secs(self.uptime_s)),
            self.connected_for_s
                .map(|c| format!(
                    " (this connection {})",
                    fmt_duration(Duration::from_secs(c))
                ))
                .unwrap_or_default()
        )
    }

    /// Writes the file atomically (a temporary file renamed over it), so a
    /// reader never sees half of it.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("json.tmp{}", self.pid));
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }

    pub fn read(path: &Path) -> Result<Status, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Right-aligns the names; a row with neither name nor value (an empty
/// detail line) is left out.
fn render_rows(rows: Vec<(&str, String)>) -> String {
    let mut out = String::new();
    for (k, v) in rows {
        if k.is_empty() && v.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{k:>16}  {v}");
    }
    out
}

/// Whether process `pid` is alive.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The status files `vnic status` shows: the one given, the one of `tap`,
/// or every `*.json` in `dir`.
pub fn find(dir: &Path, tap: Option<&str>, file: Option<&Path>) -> Vec<PathBuf> {
    if let Some(f) = file {
        return vec![f.to_path_buf()];
    }
    if let Some(t) = tap {
        return vec![dir.join(format!("{t}.json"))];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/vnic0.json");
        let s = Status {
            pid: std::process::id(),
            tap: "vnic0".into(),
            hub: "https://h:8443/A".into(),
            relay: "direct".into(),
            state: "connected".into(),
            session: Some("0f1e2d3c".into()),
            rtt_ms: Some(0.42),
            tx_frames: 10,
            tx_bytes: 1500,
            lost_on_resume: 1,
            rx_gaps: 2,
            uptime_s: 65,
            ..Status::default()
        };
        s.write(&path).unwrap();
        let back = Status::read(&path).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.lost(), 3);
        let t = back.table(true);
        assert!(t.contains("state  connected"), "{t}");
        assert!(t.contains("rtt  0.4 ms"), "{t}");
        assert!(t.contains("frames out  10 (1.5 KiB)"), "{t}");
        assert!(
            t.contains("lost  3 (on resume 1, gaps from the hub 2"),
            "{t}"
        );
        assert!(back.table(false).contains("not running"));
        assert!(!t.contains("failover"), "one hub: {t}");
        // Several hubs: which one, and the last move.
        let moved = Status {
            hubs: vec!["https://h:8443/A".into(), "https://h2:8443/A".into()],
            hub: "https://h2:8443/A".into(),
            failovers: 1,
            failed_over_at: Some(1_000),
            failed_over_from: Some("https://h:8443/A".into()),
            updated_at: 1_012,
            neighbours: Some(SuppressStats {
                entries: 3,
                arp_answered: 4,
                ..SuppressStats::default()
            }),
            ..s.clone()
        };
        let t = moved.table(true);
        assert!(
            t.contains("failover  hub 2 of 2 (https://h:8443/A, https://h2:8443/A); 1 failover(s), the last 12.0 s ago, from https://h:8443/A"),
            "{t}"
        );
        assert!(
            t.contains("neighbours  3 known; answered while down: 4 ARP"),
            "{t}"
        );
        assert!(moved.line().contains(", failovers 1"), "{}", moved.line());
        let l = back.line();
        assert!(
            l.contains("session 0f1e2d3c") && l.contains("up 1m 05s"),
            "{l}"
        );
        assert_eq!(
            find(&dir.path().join("sub"), None, None),
            vec![path.clone()]
        );
        assert!(pid_alive(std::process::id()));
    }
}
