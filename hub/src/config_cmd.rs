//! The configuration as the command line sees it: the file (or the
//! embedded defaults) with the flags applied and validated, shared by
//! every subcommand and by reload; and `vhub check-config`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use hub::config::{BridgeMode, Config, ConfigErrors, IoBackendSetting, LogFormat};

use crate::cli::ServeArgs;

/// Loads the config file (or the embedded defaults) and applies the flags.
pub fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(m) = &args.metrics_listen {
        config.metrics_listen = match m.as_str() {
            "" | "off" => None,
            s => Some(
                s.parse()
                    .with_context(|| format!("--metrics-listen {s:?}: not IP:PORT"))?,
            ),
        };
    }
    if let Some(d) = &args.cert_dir {
        config.cert_dir = Some(d.clone());
    }
    if let Some(s) = args.shards {
        config.shards = s;
    }
    if let Some(b) = &args.io_backend {
        config.io_backend = match b.as_str() {
            "auto" => IoBackendSetting::Auto,
            "uring" => IoBackendSetting::Uring,
            "epoll" => IoBackendSetting::Epoll,
            other => bail!("--io-backend {other:?}: use auto, uring or epoll"),
        };
    }
    if let Some(c) = &args.ciphers {
        config.tls.ciphers = c.clone();
    }
    if args.allow_legacy_ciphers {
        config.tls.allow_legacy = true;
    }
    if let Some(f) = args.log_format {
        config.log_format = f;
    }
    let problems = config.validate();
    if !problems.is_empty() {
        let origin = args
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "flags".into());
        bail!("{}", ConfigErrors::from_problems(&origin, problems));
    }
    Ok(config)
}

/// The log format, wanted before logging starts (and so before
/// [`load_config`]): `--log-format` (or `VHUB_LOG_FORMAT`), else the config
/// file's `log_format`, else text. A config file with problems gives text
/// here; `load_config` then reports them.
pub fn log_format(args: &ServeArgs) -> LogFormat {
    args.log_format
        .or_else(|| {
            let path = args.config.as_deref()?;
            Config::load(path).ok().map(|c| c.log_format)
        })
        .unwrap_or_default()
}

/// `vhub check-config FILE`: "OK" with the virtual hubs, or every problem
/// on stderr and exit code 2.
pub fn check_config(file: &Path) -> anyhow::Result<ExitCode> {
    match Config::load(file) {
        Ok(c) => {
            let hubs: Vec<String> = c
                .hubs()
                .iter()
                .map(|h| match &h.bridge {
                    Some(b) if b.mode == BridgeMode::Packet => {
                        format!("{} (bridged to {} by a packet socket)", h.name, b.interface)
                    }
                    Some(b) => format!(
                        "{} (bridged to {} via TAP {})",
                        h.name,
                        b.interface,
                        b.tap_name(&h.name)
                    ),
                    None => h.name.clone(),
                })
                .collect();
            println!(
                "{}: OK ({} virtual hub(s): {})",
                file.display(),
                hubs.len(),
                hubs.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}
