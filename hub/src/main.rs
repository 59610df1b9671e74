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
//! Exit codes: 0 success; 1 failed (the error is printed as `vhub: …`, or
//! the hub refused a `ctl` request); 2 `check-config` found problems, or
//! the command line is wrong (clap's usage error).

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

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VHUB_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve::serve(&cli.serve),
        Some(Command::CheckConfig { file }) => config_cmd::check_config(&file),
        Some(Command::User(cmd)) => user_cmd::user(&cli.serve, cmd),
        Some(Command::Cert(cmd)) => cert_cmd::cert(&cli.serve, cmd),
        Some(Command::Ctl(cmd)) => ctl::ctl(&cli.serve, cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vhub: {e:#}");
            ExitCode::FAILURE
        }
    }
}
