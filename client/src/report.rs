//! State changes for a person: one line each on standard error, with the
//! local time, and the same line as a `tracing` event (target `vnic`) for
//! whoever collects logs. With `--log-format json` the events are the
//! output (one JSON object per line), so the lines for a person are left
//! out: standard error then holds nothing but JSON.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::addr::HubUrl;
use crate::settings::Settings;

/// Whether the lines for a person are printed (text log format).
static HUMAN_LINES: AtomicBool = AtomicBool::new(true);

/// Prints the lines for a person (`true`, the default) or only the
/// `tracing` events (`false`, for `--log-format json`). Set once in `main`.
pub fn human_lines(on: bool) {
    HUMAN_LINES.store(on, Ordering::Relaxed);
}

fn human() -> bool {
    HUMAN_LINES.load(Ordering::Relaxed)
}

/// `HH:MM:SS.mmm` in local time.
fn clock() -> String {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: gettimeofday fills the struct we pass; a null timezone is allowed.
    unsafe { libc::gettimeofday(&mut tv, std::ptr::null_mut()) };
    // SAFETY: tm is plain old data; localtime_r fills it from tv_sec.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    unsafe { libc::localtime_r(&tv.tv_sec, &mut tm) };
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tv.tv_usec / 1000
    )
}

/// A state change: printed, and logged at INFO.
pub fn say(msg: impl Display) -> String {
    let line = msg.to_string();
    if human() {
        eprintln!("{} vnic: {line}", clock());
    }
    tracing::info!(target: "vnic", "{line}");
    line
}

/// Something went wrong (the client goes on or stops; the line says which).
pub fn warn(msg: impl Display) -> String {
    let line = msg.to_string();
    if human() {
        eprintln!("{} vnic: {line}", clock());
    }
    tracing::warn!(target: "vnic", "{line}");
    line
}

/// The client cannot start (bad settings, TLS setup): `vnic: …` for a
/// person, or an ERROR event.
pub fn fail(msg: impl Display) {
    if human() {
        eprintln!("vnic: {msg}");
    } else {
        tracing::error!(target: "vnic", "{msg}");
    }
}

/// The span `vnic connect` runs in: every event in it carries these fields
/// (under `"span"` in JSON logs). `hub` and `url` follow the hub being
/// tried ([`record_hub`]); `session` is filled in once a hub has given one
/// ([`record_session`]). At ERROR, the highest level, so that a filter that
/// lets any event through keeps the fields too (a span is filtered by its
/// own level).
pub fn connect_span(settings: &Settings) -> tracing::Span {
    tracing::error_span!(
        target: "vnic",
        "vnic",
        hub = %settings.url.hub,
        url = %settings.url,
        user = settings.credentials.as_ref().map(|c| c.user.as_str()),
        tap = %settings.tap,
        relay = %settings.relay,
        session = tracing::field::Empty,
    )
}

/// The hub of the current connection attempt, on the span of [`connect_span`].
pub fn record_hub(url: &HubUrl) {
    let span = tracing::Span::current();
    span.record("hub", url.hub.as_str());
    span.record("url", tracing::field::display(url));
}

/// The hub of the session now established and the session's short ID (as
/// the hub logs it), on the span of [`connect_span`]. The hub is recorded
/// again: a failback probe may have tried another one meanwhile.
pub fn record_session(url: &HubUrl, id: &str) {
    record_hub(url);
    tracing::Span::current().record("session", id);
}
