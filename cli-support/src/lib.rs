//! What `vhub` and `vnic` share as command-line tools, written once:
//!
//! - [`log`]: where the `tracing` events go: human text on standard error
//!   (coloured only on a terminal) or, with `--log-format json`, one JSON
//!   object per line for log pipelines (Loki, Elasticsearch, journald).
//! - [`version`]: the long `--version` text: the program's version, the
//!   OpenSSL library in use and the build features.
//! - [`generate`]: the hidden `generate man|completions --out DIR`
//!   subcommand, with the man pages and shell completions made from the
//!   binary's own clap definitions (so they never drift from `--help`).
//!
//! [`command`] puts the last two on a binary's clap `Command`; a binary's
//! `main` then reads:
//!
//! ```ignore
//! let matches = cli_support::command(Cli::command(), &[("io_uring", true)]).get_matches();
//! if let Some(code) = cli_support::generate::run_if_asked(&matches, Cli::command()) {
//!     return code;
//! }
//! let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
//! cli_support::log::init(format, "VHUB_LOG", "info");
//! ```
//!
//! `generate` is added to the parser at run time instead of being a variant
//! of each binary's subcommand enum: the pages and completions are made from
//! `Cli::command()`, which then does not list it (clap_complete would
//! complete even a hidden subcommand).
//!
//! What this crate does not do: it parses no flag of the binaries (their
//! `cli.rs` does), it knows nothing of the protocol, and it never writes
//! outside the directory given to `generate`.

pub mod generate;
pub mod log;
pub mod version;

pub use log::LogFormat;

/// `cmd` with the long `--version` text of [`version::long_version`] and
/// the hidden `generate` subcommand. `features` are the binary's own
/// (`("io_uring", true)` for the hub); OpenSSL's are added.
pub fn command(cmd: clap::Command, features: &[(&str, bool)]) -> clap::Command {
    let long = version::long_version(cmd.get_version().unwrap_or_default(), features);
    generate::attach(cmd.long_version(long))
}
