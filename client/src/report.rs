//! State changes for a person: one line each on standard error, with the
//! local time, and the same line as a `tracing` event (target `vnic`) for
//! whoever collects logs.

use std::fmt::Display;

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
    eprintln!("{} vnic: {line}", clock());
    tracing::info!(target: "vnic", "{line}");
    line
}

/// Something went wrong (the client goes on or stops; the line says which).
pub fn warn(msg: impl Display) -> String {
    let line = msg.to_string();
    eprintln!("{} vnic: {line}", clock());
    tracing::warn!(target: "vnic", "{line}");
    line
}
