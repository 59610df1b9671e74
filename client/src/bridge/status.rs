//! The status file and the state lines: what `vnic status` and a person
//! watching standard error see of the bridge.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use switch_core::session::SessionStats;

use super::proto::Carrier;
use super::Bridge;
use crate::status::Status;
use crate::tap::TapIo;

pub(super) fn add_stats(a: &mut SessionStats, b: &SessionStats) {
    a.tx_frames += b.tx_frames;
    a.tx_bytes += b.tx_bytes;
    a.rx_frames += b.rx_frames;
    a.rx_bytes += b.rx_bytes;
    a.resent += b.resent;
    a.tail_drops += b.tail_drops;
    a.evicted += b.evicted;
    a.lost_on_resume += b.lost_on_resume;
    a.rx_duplicates += b.rx_duplicates;
    a.rx_gaps += b.rx_gaps;
    a.unconfirmed += b.unconfirmed;
    a.resumes += b.resumes;
    a.link_deaths += b.link_deaths;
    a.pings_sent += b.pings_sent;
    a.pongs_received += b.pongs_received;
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<T: TapIo> Bridge<T> {
    pub(super) fn set_state(&mut self, t: Instant, name: &'static str, line: String) {
        self.state_name = name;
        self.detail = line;
        self.write_status(t);
    }

    pub(super) fn status(&self, t: Instant) -> Status {
        let mut s = self.prior;
        add_stats(&mut s, self.session.stats());
        Status {
            pid: std::process::id(),
            tap: self.tap.name().to_owned(),
            hub: self.hubs[self.hub].to_string(),
            hubs: self.hubs.iter().map(|h| h.to_string()).collect(),
            failovers: self.shell.failovers,
            failed_over_at: self.shell.failed_over_at.map(unix_secs),
            failed_over_from: self.shell.failed_over_from.clone(),
            neighbours: self.neighbours.as_ref().map(|n| n.stats()),
            relay: self.relay_label(),
            state: self.state_name.to_owned(),
            detail: self.detail.clone(),
            session: self.session.short_id(),
            tls: self.tls_info.as_ref().map(|i| i.to_string()),
            rtt_ms: self.session.rtt().map(|r| r.as_secs_f64() * 1000.0),
            started_at: unix_secs(self.started_at),
            updated_at: unix_secs(SystemTime::now()),
            connected_for_s: self.established_at.map(|e| (t - e).as_secs()),
            uptime_s: (t - self.started).as_secs(),
            tx_frames: s.tx_frames,
            tx_bytes: s.tx_bytes,
            rx_frames: s.rx_frames,
            rx_bytes: s.rx_bytes,
            resent: s.resent,
            lost_on_resume: s.lost_on_resume,
            rx_gaps: s.rx_gaps,
            tail_drops: s.tail_drops,
            evicted: s.evicted,
            unconfirmed: s.unconfirmed + self.shell.dropped_with_session,
            rx_duplicates: s.rx_duplicates,
            tap_write_errors: self.shell.tap_write_errors,
            oversize: self.shell.oversize,
            offload: self.session.offload(),
            bad_offload: self.shell.bad_offload,
            segments_cut: self.shell.segments_cut,
            reconnects: self.shell.reconnects,
            resumes: s.resumes,
            new_sessions: self.shell.new_sessions,
            link_deaths: s.link_deaths,
            icmp: self.icmp.as_ref().map(|k| k.stats),
        }
    }

    pub(super) fn write_status(&mut self, t: Instant) {
        self.status_due = t + Duration::from_secs(1);
        let path: &PathBuf = &self.settings.status_file;
        if let Err(e) = self.status(t).write(path) {
            tracing::debug!("status file {}: {e}", path.display());
        }
    }
}
