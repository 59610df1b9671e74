//! Paths: the certificate directory, the admin socket and the users file
//! as the hub uses them, from what the file says (or does not say).
//!
//! A path setting that is not written has a default derived from the
//! environment (`cert_dir`) or from another setting (`<cert_dir>/…`);
//! [`Config::load`] makes a relative one relative to the config file's
//! directory; `"off"` (or `""`) disables the feature. Nothing here creates
//! a directory.

use std::path::{Path, PathBuf};

use super::defaults::{DEFAULT_ADMIN_SOCKET_NAME, DEFAULT_USERS_FILE_NAME};
use super::types::Config;

impl Config {
    /// `cert_dir`, or its default: `$STATE_DIRECTORY` (systemd), else
    /// `/var/lib/vhub` when running as root, else `$XDG_DATA_HOME/vhub` or
    /// `~/.local/share/vhub`.
    pub fn effective_cert_dir(&self) -> PathBuf {
        match &self.cert_dir {
            Some(dir) => dir.clone(),
            None => default_cert_dir(
                |k| std::env::var_os(k),
                // SAFETY: geteuid has no preconditions and cannot fail.
                unsafe { libc::geteuid() } == 0,
            ),
        }
    }

    /// The admin API's socket: `admin_socket`, `<cert_dir>/admin.sock` when
    /// unset, `None` when it is `"off"`.
    pub fn effective_admin_socket(&self) -> Option<PathBuf> {
        match &self.admin_socket {
            Some(p) if is_off(p) => None,
            Some(p) => Some(p.clone()),
            None => Some(self.effective_cert_dir().join(DEFAULT_ADMIN_SOCKET_NAME)),
        }
    }

    /// `users_file`, or `<cert_dir>/users.toml`.
    pub fn effective_users_file(&self) -> PathBuf {
        match &self.users_file {
            Some(f) => f.clone(),
            None => self.effective_cert_dir().join(DEFAULT_USERS_FILE_NAME),
        }
    }

    /// Makes the relative path settings relative to `base` (the config
    /// file's directory; a daemon's working directory is usually `/`).
    /// `"off"` stays as it is.
    pub(super) fn resolve_relative_paths(&mut self, base: &Path) {
        for p in [
            &mut self.cert_dir,
            &mut self.users_file,
            &mut self.admin_socket,
            &mut self.tls.client_ca,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() && !is_off(p) {
                *p = base.join(&*p);
            }
        }
    }
}

/// `"off"` or `""`: a path setting that disables its feature.
pub(super) fn is_off(p: &Path) -> bool {
    p.as_os_str().is_empty() || p.as_os_str() == "off"
}

/// The default certificate directory, from an environment lookup and
/// whether we run as root (both passed in so that tests need no real env).
pub fn default_cert_dir(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    is_root: bool,
) -> PathBuf {
    let non_empty = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(dirs) = non_empty("STATE_DIRECTORY") {
        // systemd passes a colon-separated list when several are configured.
        let dirs = dirs.to_string_lossy().into_owned();
        if let Some(first) = dirs.split(':').find(|d| !d.is_empty()) {
            return PathBuf::from(first);
        }
    }
    if is_root {
        return PathBuf::from("/var/lib/vhub");
    }
    if let Some(xdg) = non_empty("XDG_DATA_HOME").map(PathBuf::from) {
        // The XDG spec says to ignore a relative value.
        if xdg.is_absolute() {
            return xdg.join("vhub");
        }
    }
    match non_empty("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/vhub"),
        None => PathBuf::from("/var/lib/vhub"),
    }
}
