//! `vhub ctl`: a client of a running hub's admin socket. One request per
//! run; the answer printed as JSON (`--json`) or as a table.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use hub::admin::{self, Request};
use hub::config::Config;

use crate::cli::{CtlArgs, CtlCmd, ServeArgs};

/// `vhub ctl`: one request to the running hub's admin socket, its answer
/// printed as JSON (`--json`) or as a table. Exits with failure when the
/// hub refused the request.
pub fn ctl(args: &ServeArgs, ctl: CtlArgs) -> anyhow::Result<ExitCode> {
    let path = ctl_socket(args, &ctl)?;
    if let CtlCmd::Capture { .. } = ctl.cmd {
        return capture(&path, &ctl.cmd);
    }
    let answer = admin::request(&path, &ctl_request(&ctl.cmd))?;
    let ok = answer["ok"].as_bool() == Some(true);
    if ctl.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if !ok {
        print_ctl_refusal(&ctl.cmd, &answer);
        return Ok(ExitCode::FAILURE);
    }
    let parse = |key: &str| answer[key].clone();
    match ctl.cmd {
        CtlCmd::Sessions => print_sessions(&serde_json::from_value::<Vec<_>>(parse("sessions"))?),
        CtlCmd::Macs => print_macs(&serde_json::from_value::<Vec<_>>(parse("macs"))?),
        CtlCmd::Hubs => print_hubs(&serde_json::from_value::<Vec<_>>(parse("hubs"))?),
        CtlCmd::Kick { .. } => {
            println!(
                "session {} kicked",
                answer["kicked"].as_str().unwrap_or("?")
            );
        }
        CtlCmd::Reload => print_reload(&serde_json::from_value(answer)?),
        CtlCmd::Capture { .. } => unreachable!("answered above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `vhub ctl` finds the admin socket: --socket, else the config's
/// `admin_socket` (relative to the file), else `<cert_dir>/admin.sock`.
/// A config that does not load (the reason for a reload, perhaps) does not
/// stop ctl: it warns and falls back to the default path.
fn ctl_socket(args: &ServeArgs, ctl: &CtlArgs) -> anyhow::Result<PathBuf> {
    if let Some(p) = &ctl.socket {
        return Ok(p.clone());
    }
    let mut config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("vhub ctl: warning: {} does not load ({} problem(s)); trying the default admin socket", path.display(), e.problems.len());
                Config::default()
            }
        },
        None => Config::default(),
    };
    if let Some(d) = &args.cert_dir {
        config.cert_dir = Some(d.clone());
    }
    match config.effective_admin_socket() {
        Some(p) => Ok(p),
        None => bail!("the admin API is off in this config (admin_socket = \"off\"); pass --socket PATH if the running hub has one"),
    }
}

/// The admin API request a `vhub ctl` command sends.
fn ctl_request(cmd: &CtlCmd) -> Request {
    match cmd {
        CtlCmd::Sessions => Request::Sessions,
        CtlCmd::Macs => Request::Macs,
        CtlCmd::Hubs => Request::Hubs,
        CtlCmd::Kick { session } => Request::Kick {
            session: session.clone(),
        },
        CtlCmd::Reload => Request::Reload,
        CtlCmd::Capture {
            hub,
            session,
            count,
            snaplen,
            filter,
        } => Request::Capture {
            hub: hub.clone(),
            session: session.clone(),
            count: *count,
            snaplen: Some(*snaplen),
            filter: filter.clone(),
        },
    }
}

/// `vhub ctl capture`: pcapng to standard output, which must not be a
/// terminal (binary on a terminal helps nobody).
fn capture(path: &std::path::Path, cmd: &CtlCmd) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        bail!("vhub ctl capture writes pcapng (binary): pipe it into `tcpdump -r - -n` or `wireshark -k -i -`, or redirect it to a file");
    }
    let mut out = std::io::stdout().lock();
    let answer = admin::request_stream(path, &ctl_request(cmd), &mut out)?;
    if answer["ok"].as_bool() != Some(true) {
        print_ctl_refusal(cmd, &answer);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Says on stderr why the hub refused. A refused reload lists every
/// problem of the new config and says the running one stays, so the
/// operator knows nothing changed.
fn print_ctl_refusal(cmd: &CtlCmd, answer: &serde_json::Value) {
    if let CtlCmd::Reload = cmd {
        eprintln!("reload refused; the running config stays. Problems:");
        for e in answer["errors"].as_array().into_iter().flatten() {
            eprintln!("  {}", e.as_str().unwrap_or_default());
        }
    } else {
        eprintln!("vhub ctl: {}", answer["error"].as_str().unwrap_or("failed"));
    }
}

/// `vhub ctl sessions`: one line per session, then the count.
fn print_sessions(list: &[admin::SessionInfo]) {
    println!(
        "{:<9} {:<12} {:<16} {:<9} {:<22} {:>5} {:<9} {:>10} {:>10} {:>12} {:>12} {:>5}",
        "ID",
        "HUB",
        "USER",
        "PROTOCOL",
        "REMOTE",
        "SHARD",
        "STATE",
        "FRAMES_IN",
        "FRAMES_OUT",
        "BYTES_IN",
        "BYTES_OUT",
        "MACS"
    );
    for s in list {
        let user = if s.user.is_empty() {
            "(anonymous)"
        } else {
            &s.user
        };
        println!(
            "{:<9} {:<12} {:<16} {:<9} {:<22} {:>5} {:<9} {:>10} {:>10} {:>12} {:>12} {:>5}",
            s.id,
            s.hub,
            user,
            s.protocol,
            s.remote,
            s.shard,
            s.state,
            s.frames_in,
            s.frames_out,
            s.bytes_in,
            s.bytes_out,
            s.macs
        );
    }
    println!("{} session(s)", list.len());
}

/// `vhub ctl macs`: one line per learned MAC address, then the count.
fn print_macs(list: &[admin::MacInfo]) {
    println!(
        "{:<12} {:<17} {:<9} {:>6}",
        "HUB", "MAC", "SESSION", "AGE_S"
    );
    for m in list {
        println!(
            "{:<12} {:<17} {:<9} {:>6}",
            m.hub, m.mac, m.session, m.age_seconds
        );
    }
    println!("{} MAC address(es)", list.len());
}

/// `vhub ctl hubs`: one line per virtual hub; a BRIDGE column and a line
/// per local bridge when any hub has one.
fn print_hubs(list: &[admin::HubInfo]) {
    let bridged = list.iter().any(|h| h.bridge.is_some());
    let head = format!(
        "{:<16} {:<8} {:<9} {:>8} {:>8} {:>6}",
        "HUB", "ENABLED", "ANONYMOUS", "SESSIONS", "DETACHED", "MACS"
    );
    println!("{head}{}", if bridged { "  BRIDGE" } else { "" });
    for h in list {
        let yn = |b: bool| if b { "yes" } else { "no" };
        let bridge = match &h.bridge {
            Some(b) if b.tap.is_empty() => {
                format!("  {} via a packet socket ({})", b.interface, b.state)
            }
            Some(b) => format!("  {} via {} ({})", b.interface, b.tap, b.state),
            None if bridged => "  -".to_owned(),
            None => String::new(),
        };
        println!(
            "{:<16} {:<8} {:<9} {:>8} {:>8} {:>6}{bridge}",
            h.name,
            yn(h.enabled),
            yn(h.anonymous),
            h.sessions,
            h.detached,
            h.macs
        );
    }
    for (h, b) in list.iter().filter_map(|h| Some((h, h.bridge.as_ref()?))) {
        println!(
            "bridge of {}: {} MAC(s) of at most {}, frames in {} out {} dropped {}, shard {}",
            h.name, b.macs, b.max_macs, b.frames_in, b.frames_out, b.dropped, b.shard
        );
    }
}

/// `vhub ctl reload`: what was applied, what it closed, and what only a
/// restart can apply (said plainly, so nobody believes it took effect).
fn print_reload(r: &admin::ReloadReport) {
    println!("config reloaded");
    for a in &r.applied {
        println!("  applied: {a}");
    }
    if r.closed_sessions > 0 {
        println!(
            "  closed {} session(s) no longer allowed",
            r.closed_sessions
        );
    }
    for n in &r.needs_restart {
        println!("  NOT applied, needs a restart: {n}");
    }
}
