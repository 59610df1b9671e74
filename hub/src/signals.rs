//! The signals that stop (SIGINT, SIGTERM) and reload (SIGHUP) the hub.
//! They are blocked before any thread starts, so only the main thread's
//! `sigwait` sees them.

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and every thread it
/// starts afterwards); returns the set for [`wait_signal`].
pub fn block_signals() -> libc::sigset_t {
    // SAFETY: plain signal-mask manipulation on a local, zero-initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one of the signals in `set`; returns its name.
pub fn wait_signal(set: &libc::sigset_t) -> &'static str {
    let mut sig: libc::c_int = 0;
    // SAFETY: sigwait on a set of signals this thread has blocked.
    unsafe { libc::sigwait(set, &mut sig) };
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}
