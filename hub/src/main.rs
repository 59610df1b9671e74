//! `vhub`: the hub server. With no arguments it serves virtual hub DEFAULT
//! on 0.0.0.0:8443 with a certificate created on first start.
//!
//! This file parses the command line and dispatches; each subcommand lives
//! in its own module:
//!
//! | module       | what                                                   |
//! |--------------|--------------------------------------------------------|
//! | `cli`        | the clap definitions: flags, env vars, help text       |
//! | `config_cmd` | config file + flags, validated; `vhub check-config`    |
//! | `serve`      | the server in the foreground (no subcommand)           |
//! | `settings`   | the config turned into `server::Settings`              |
//! | `signals`    | SIGHUP reloads, SIGINT/SIGTERM stop, taken by sigwait  |
//! | `user_cmd`   | `vhub user add/remove/list`                            |
//! | `cert_cmd`   | `vhub cert generate/info`                              |
//! | `ctl`        | `vhub ctl`: the admin-socket client and its tables     |
//!
//! Logging (`--log-format`, `VHUB_LOG`), the long `--version` and the
//! hidden `vhub generate man|completions --out DIR` are the `cli-support`
//! crate's, shared with `vnic`.
//!
//! Exit codes: 0 success; 1 failed (the error is printed as `vhub: …`, an
//! ERROR event with `--log-format json`, or the hub refused a `ctl`
//! request); 2 `check-config` found problems, or the command line is wrong
//! (clap's usage error).

#[global_allocator]
static GLOBAL: hub::memory::Counting = hub::memory::Counting::new();

mod cert_cmd;
mod cli;
mod config_cmd;
mod ctl;
mod serve;
mod settings;
mod signals;
mod user_cmd;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use cli_support::LogFormat;

use crate::cli::{Cli, Command};

/// Built-in features named by `--version` (OpenSSL's are added).
const FEATURES: &[(&str, bool)] = &[("io_uring", true)];

fn main() -> ExitCode {
    // The long --version and the hidden `generate man|completions` (for
    // packagers) come from cli_support, shared with vnic.
    let matches = cli_support::command(Cli::command(), FEATURES).get_matches();
    if let Some(code) = cli_support::generate::run_if_asked(&matches, Cli::command()) {
        return code;
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let log_format = config_cmd::log_format(&cli.serve);
    cli_support::log::init(log_format, "VHUB_LOG", "info");
    let result = match cli.command {
        None => serve::serve(&cli.serve),
        Some(Command::CheckConfig { file }) => config_cmd::check_config(&file),
        Some(Command::User(cmd)) => user_cmd::user(&cli.serve, cmd),
        Some(Command::Cert(cmd)) => cert_cmd::cert(&cli.serve, cmd),
        Some(Command::Ctl(cmd)) => ctl::ctl(&cli.serve, cmd),
    };
    match result {
        Ok(code) => code,
        // In JSON, as the last log line (a pipeline reads nothing else).
        Err(e) if log_format == LogFormat::Json => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("vhub: {e:#}");
            ExitCode::FAILURE
        }
    }
}
