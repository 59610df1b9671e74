//! `vnic`: a virtual LAN card. It creates a TAP device and joins it to a
//! virtual hub of a `vhub` server over HTTPS (TLS by OpenSSL, then the
//! `vhub/1` upgrade), or to a SoftEther VPN server's (`softether://`:
//! SoftEther's login and framing after TLS), directly or through an HTTP,
//! SOCKS or SSH relay.
//!
//! Exit codes: 0 stopped by the user; 1 failed (gave up reconnecting, the
//! hub ended the session for good, the TAP device failed); 2 bad settings;
//! 3 refused by the hub or a relay (authentication, unknown hub); 4 the
//! hub's certificate is not trusted (changed, wrong pin, CA check).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod addr;
mod backoff;
mod bridge;
mod cli;
mod lan;
mod link;
mod netwatch;
mod report;
mod settings;
mod softether;
mod status;
mod supervisor;
mod suppress;
mod tap;
mod trust;
mod units;

// The relay module lives in the library target (its tests use it too).
use client::relay;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use cli_support::LogFormat;

use crate::bridge::Bridge;
use crate::cli::{Cli, Command, ConnectArgs, StatusArgs};
use crate::report::{fail, say, warn};
use crate::settings::Settings;
use crate::tap::{TapIo, TunTap};
use crate::trust::Trust;

fn main() -> ExitCode {
    // The long --version and the hidden `generate man|completions` (for
    // packagers) come from cli_support, shared with vhub.
    let matches = cli_support::command(Cli::command(), &[]).get_matches();
    if let Some(code) = cli_support::generate::run_if_asked(&matches, Cli::command()) {
        return code;
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Text: the lines of `report` are the output, tracing's only with
    // VNIC_LOG. JSON: tracing's events are the output, from INFO up.
    let json = cli.log_format == LogFormat::Json;
    report::human_lines(!json);
    let default_filter = if json { "info" } else { "off" };
    cli_support::log::init(cli.log_format, "VNIC_LOG", default_filter);
    match cli.command {
        Command::Connect(args) => connect(&args),
        Command::Status(args) => status(&args),
    }
}

fn connect(args: &ConnectArgs) -> ExitCode {
    let settings = match Settings::resolve(args) {
        Ok(s) => s,
        Err(problems) => {
            for p in problems {
                fail(p);
            }
            return ExitCode::from(2);
        }
    };
    // Every event from here on carries the hub, user, TAP and session.
    let span = report::connect_span(&settings);
    let _in_span = span.enter();
    let verify = settings.trust.verify(&settings.url.host_port());
    let identity = match &settings.client_cert {
        None => None,
        Some((cert, key)) => match certs::load(cert, key) {
            Ok(id) => Some(id),
            Err(e) => {
                fail(format!("client certificate: {e}"));
                return ExitCode::from(2);
            }
        },
    };
    let ctx = match certs::tls::client_context_with_cert(&verify, &settings.tls, identity.as_ref())
    {
        Ok(c) => c,
        Err(e) => {
            fail(format!("TLS setup: {e}"));
            return ExitCode::from(2);
        }
    };
    if settings.trust == Trust::Insecure {
        warn(format!(
            "WARNING: --insecure: the hub's certificate is {}",
            settings.trust.describe()
        ));
    } else {
        tracing::info!("trust: {}", settings.trust.describe());
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            fail(format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(async {
        let tap = match TunTap::open(&settings.tap, settings.ip, settings.offload) {
            Ok(t) => t,
            Err(e) => {
                warn(format!("stopped: {e}"));
                return bridge::Outcome::Failed(e.to_string());
            }
        };
        let mac = tap.mac();
        say(format!(
            "TAP device {} is up ({}{})",
            tap.name(),
            mac.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            settings.ip.map(|c| format!(", {c}")).unwrap_or_default()
        ));
        Bridge::new(settings, ctx, tap).run().await
    });
    ExitCode::from(outcome.exit_code())
}

fn status(args: &StatusArgs) -> ExitCode {
    let dir = settings::default_status_dir(|k| std::env::var_os(k), settings::uid());
    let files = status::find(&dir, args.tap.as_deref(), args.status_file.as_deref());
    if files.is_empty() {
        eprintln!(
            "vnic: no status files in {} (is a vnic running? `vnic connect` writes one; \
             --status-file names another place)",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let mut code = ExitCode::SUCCESS;
    for (i, f) in files.iter().enumerate() {
        match status::Status::read(f) {
            Ok(s) => {
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                } else {
                    if i > 0 {
                        println!();
                    }
                    print!("{}", s.table(status::pid_alive(s.pid)));
                }
            }
            Err(e) => {
                eprintln!("vnic: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}
