//! The TOML config of `vhub`: typed structs with defaults, one validator.
//!
//! Every key is optional; an empty file gives [`Config::default()`]. Unknown
//! keys are refused (`deny_unknown_fields`) so that a typo never passes as a
//! silently ignored setting.
//!
//! [`Config::from_toml`] and [`Config::load`] report *every* problem of a file
//! at once — syntax errors, wrong types, unknown keys and the semantic checks
//! of [`Config::validate`] — each as `FILE:LINE:COL: key: message`. The same
//! path serves the start and a reload.
//!
//! What this module does not do: it never writes a file (the daemon never
//! rewrites its config; `vhub user add` writes the separate users file, see
//! [`crate::users`]), it does not parse cipher strings (the TLS module does)
//! and it does not create the certificate directory.
//!
//! One concern per file:
//!
//! | file | holds |
//! |---|---|
//! | `defaults.rs` | every default value and fixed bound |
//! | `types.rs` | the typed structs, one per TOML table, and their `Default`s |
//! | `bridge.rs` | a hub's `bridge` (string or table), interface names |
//! | `values.rs` | parsers for addresses, durations and sizes |
//! | `paths.rs` | the effective certificate directory, admin socket, users file |
//! | `problems.rs` | key paths, problems, `FILE:LINE:COL` positions |
//! | `parse.rs` | parsing that recovers to report every problem of a file |
//! | `validate.rs` | the semantic checks, for the start and a reload |
//!
//! Everything public is re-exported here: callers write `crate::config::X`.

mod bridge;
mod defaults;
mod parse;
mod paths;
mod problems;
mod types;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::path::Path;

pub use bridge::{check_ifname, BridgeConfig, BridgeMode, DEFAULT_BRIDGE_MAX_MACS};
pub use defaults::*;
pub use paths::default_cert_dir;
pub(crate) use problems::LineIndex;
pub use problems::{ConfigErrors, ConfigProblem, KeyPath, LocatedProblem, PathSeg, Position};
pub use types::{
    AuthConfig, Config, FabricConfig, HubConfig, InlineUser, IoBackendSetting, LimitsConfig,
    LogFormat, SessionConfig, TlsConfig,
};
pub use validate::check_hub_name;
pub use values::{fmt_duration, parse_addr, parse_duration, parse_size};

impl Config {
    /// Parses and validates a config given as text. Errors name the origin
    /// `<config>`; use [`Config::load`] for a file or
    /// [`Config::from_toml_named`] to name the origin.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        Self::from_toml_named(text, "<config>")
    }

    /// As [`Config::from_toml`], with `origin` (usually the file's path)
    /// used in the error lines.
    pub fn from_toml_named(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
        parse::parse_and_validate(text).map_err(|problems| ConfigErrors {
            origin: origin.to_owned(),
            problems,
        })
    }

    /// Reads, parses and validates a config file. Relative `cert_dir` and
    /// `users_file` are taken relative to the file's directory (a daemon's
    /// working directory is usually `/`). Never writes anything.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            origin: origin.clone(),
            problems: vec![LocatedProblem {
                position: None,
                key: None,
                message: format!("cannot read the config file: {e}"),
            }],
        })?;
        let mut config = Self::from_toml_named(&text, &origin)?;
        config.resolve_relative_paths(path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// The hubs this server runs: the `[[hub]]` tables, or the single hub
    /// `DEFAULT` (not anonymous) when there are none.
    pub fn hubs(&self) -> Cow<'_, [HubConfig]> {
        if self.hub.is_empty() {
            Cow::Owned(vec![HubConfig::default()])
        } else {
            Cow::Borrowed(&self.hub)
        }
    }
}
