//! `vhub-bench`: N simulated sessions against a running hub, driving frames
//! in a chosen pattern; reports throughput, loss and latency, and the same
//! traffic through a bare TLS pipe (the baseline) in the same run.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use certs::tls::{self, TlsOptions, Verify};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;
use switch_core::session::SessionConfig;
use vhub_bench::driver::{self, Conn, Counters, Plan};
use vhub_bench::placement::{self, Placement};

/// Load test for a vhub hub.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Args {
    /// The hub, HOST:PORT (its TLS port).
    #[arg(long, default_value = "127.0.0.1:8443")]
    hub: SocketAddr,
    /// Virtual hub name.
    #[arg(long, default_value = "DEFAULT")]
    hub_name: String,
    /// User name (omit for anonymous hubs).
    #[arg(long)]
    user: Option<String>,
    /// Password for --user.
    #[arg(long, env = "VHUB_BENCH_PASSWORD")]
    password: Option<String>,
    /// Number of sessions.
    #[arg(long, short = 'n', default_value_t = 2)]
    sessions: u32,
    /// Traffic pattern.
    #[arg(long, value_enum, default_value_t = Pattern::Pairs)]
    pattern: Pattern,
    /// Frame size in bytes (14..1514), or "imix" (7×64, 4×594, 1×1514), or "mixed" (64..1514).
    #[arg(long, default_value = "1514")]
    size: String,
    /// Frames per second per sending session (0 = as fast as the window allows).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Frames in flight per sender (closed loop; with --rate 0); 0 = auto:
    /// 65536 / sessions, at most 512 KiB of frames, within 64..2048.
    #[arg(long, default_value_t = 0)]
    window: u64,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Sessions connecting at once. All come from one address, and a hub
    /// refuses more than `limits.max_handshakes_per_address` (32 by
    /// default) concurrent handshakes from one address with 429.
    #[arg(long, default_value_t = 16)]
    connect_parallel: usize,
    /// Also run the same traffic through a bare TLS pipe (pairs only).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    baseline: bool,
    /// Threads of the baseline pipe (give it what the hub has: its shards).
    #[arg(long, default_value_t = 2)]
    baseline_threads: usize,
    /// PID of the hub, to report its CPU time and RSS.
    #[arg(long)]
    hub_pid: Option<u32>,
    /// Worker threads for the bench's own runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The hub's admin socket (`admin_socket` in its config): the bench
    /// asks it which shard each session landed on, to report how many
    /// pairs cross shards and for --placement.
    #[arg(long)]
    admin_socket: Option<std::path::PathBuf>,
    /// Pattern `pairs`: put both ends of every pair on one shard (`same`:
    /// no cross-shard hand-offs) or on two (`cross`: every frame is handed
    /// over). The kernel spreads connections over the shards, so the bench
    /// connects more sessions until it can arrange the pairs and closes the
    /// ones left over. Needs --admin-socket and an even --sessions.
    #[arg(long, value_enum, default_value_t = Placement::Any)]
    placement: Placement,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Pattern {
    /// Session 2k talks to 2k+1 (both ways).
    Pairs,
    /// Every session sends to every other, round robin.
    Mesh,
    /// Session 0 broadcasts; everyone else receives.
    Broadcast,
    /// Sessions connect and stay idle (keep-alives only): memory per session.
    Idle,
}

#[derive(Serialize, Debug, Default, Clone)]
struct RunResult {
    target: String,
    sessions: u32,
    seconds: f64,
    frames_sent: u64,
    frames_received: u64,
    frames_expected: u64,
    lost: i64,
    reordered: u64,
    client_drops: u64,
    flooded_to_others: u64,
    frames_per_sec: f64,
    gbit_per_sec: f64,
    latency_us_p50: u64,
    latency_us_p99: u64,
    latency_us_p999: u64,
    latency_us_max: u64,
    hub_cpu_percent: Option<f64>,
    hub_rss_mib: Option<f64>,
    connect_seconds: f64,
    /// Pairs (2k, 2k+1) whose sessions are on different shards (with
    /// --admin-socket).
    cross_shard_pairs: Option<u32>,
    /// Sessions connected and closed again to arrange --placement.
    sessions_discarded: u32,
}

fn sizes(spec: &str) -> anyhow::Result<Vec<usize>> {
    Ok(match spec {
        "imix" => [64; 7].into_iter().chain([594; 4]).chain([1514]).collect(),
        "mixed" => (0..64).map(|i| 64 + i * (1514 - 64) / 63).collect(),
        n => {
            let n: usize = n.parse().context("--size: a number, imix or mixed")?;
            anyhow::ensure!((60..=1514).contains(&n), "--size must be 60..=1514");
            vec![n]
        }
    })
}

fn proc_stat(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0;
    let rss = f.get(21)?.parse::<f64>().ok()? * 4096.0 / (1024.0 * 1024.0);
    Some((cpu, rss))
}

fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

async fn run(
    args: &Args,
    target: SocketAddr,
    label: &str,
    hub_pid: Option<u32>,
) -> anyhow::Result<RunResult> {
    let ctx = tls::client_context(&Verify::Insecure, &TlsOptions::default())?;
    let n = args.sessions;
    let epoch = Instant::now();
    let t_connect = Instant::now();
    let mut conns = connect_many(args, target, &ctx, 0..n, epoch).await?;
    let mut cross_shard_pairs = None;
    let mut sessions_discarded = 0;
    if let Some(admin) = &args.admin_socket {
        let want = args.placement;
        anyhow::ensure!(
            want == Placement::Any || (args.pattern == Pattern::Pairs && n.is_multiple_of(2)),
            "--placement needs --pattern pairs and an even number of sessions"
        );
        // Connect more until the pairs can be arranged; a bounded number
        // of tries (one shard, or a hash that never spreads, cannot).
        let mut tries = 0;
        let order = loop {
            let by_port = placement::shards_by_port(admin).await?;
            let shards = conns
                .iter()
                .map(|c| {
                    let port = c.local_port()?;
                    by_port.get(&port).copied().with_context(|| {
                        format!("the hub's admin API does not list the session from port {port}")
                    })
                })
                .collect::<anyhow::Result<Vec<u16>>>()?;
            if want == Placement::Any {
                cross_shard_pairs = Some(placement::cross_pairs(&shards));
                break (0..conns.len()).collect::<Vec<_>>();
            }
            if let Some(order) = placement::arrange(&shards, want, n as usize / 2) {
                let placed: Vec<u16> = order.iter().map(|&i| shards[i]).collect();
                cross_shard_pairs = Some(placement::cross_pairs(&placed));
                break order;
            }
            tries += 1;
            anyhow::ensure!(
                tries <= 20,
                "could not arrange {} pairs as --placement {want:?} asks from {} sessions on shards {shards:?}",
                n / 2,
                conns.len()
            );
            let more = (n / 4).max(2);
            let next = conns.len() as u32;
            conns.extend(connect_many(args, target, &ctx, next..next + more, epoch).await?);
        };
        let mut all: Vec<Option<Conn>> = conns.into_iter().map(Some).collect();
        conns = order.iter().filter_map(|&i| all[i].take()).collect();
        for c in all.into_iter().flatten() {
            sessions_discarded += 1;
            c.close().await;
        }
    }
    let connect_seconds = t_connect.elapsed().as_secs_f64();
    let all: Arc<Vec<Counters>> = Arc::new((0..n).map(|_| Counters::default()).collect());
    let sizes = sizes(&args.size)?;
    // Frames in flight per sender: by default a total budget shared by all.
    // It stays below the hub's per-session buffer (bytes and frames), so a
    // closed-loop run measures forwarding, not tail drops at the hub.
    let biggest = *sizes.iter().max().unwrap_or(&1514) as u64;
    let window = if args.window > 0 {
        args.window
    } else {
        // In a mesh every receiver hears from n-1 senders: share its buffer.
        let fan_in = match args.pattern {
            Pattern::Mesh => u64::from(n.saturating_sub(1).max(1)),
            _ => 1,
        };
        ((65_536 / u64::from(n.max(1))).min((512 * 1024) / biggest) / fan_in).clamp(16, 2048)
    };
    let duration = Duration::from_secs_f64(args.duration);
    // Half a second (plus 0.5 ms per session) for every session to
    // announce its MAC before the measured traffic starts.
    let start = Instant::now() + Duration::from_millis(500 + u64::from(n) / 2);
    let until = start + duration;
    let mut tasks = Vec::new();
    for (i, c) in conns.into_iter().enumerate() {
        let i = i as u32;
        let dsts: Vec<[u8; 6]> = match args.pattern {
            Pattern::Pairs => vec![driver::mac_of(i ^ 1)],
            Pattern::Mesh => (0..n).filter(|&j| j != i).map(driver::mac_of).collect(),
            Pattern::Broadcast if i == 0 => vec![[0xff; 6]],
            Pattern::Broadcast | Pattern::Idle => vec![],
        };
        let plan = Plan {
            id: i,
            dsts,
            sizes: sizes.clone(),
            rate: args.rate,
            window,
            start,
            until,
            all: all.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let r = c.run(plan, &mut h).await;
            (r, h)
        }));
    }
    // Progress on a terminal.
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json {
        let b = indicatif::ProgressBar::new(duration.as_secs());
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}s").unwrap(),
        );
        b.set_message(label.to_owned());
        Some(b)
    } else {
        None
    };
    // The hub's CPU time over the measured seconds only.
    tokio::time::sleep_until(start.into()).await;
    let cpu0 = hub_pid.and_then(proc_stat);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(b) = &bar {
            b.set_position(Instant::now().saturating_duration_since(start).as_secs());
        }
    }
    let cpu1 = hub_pid.and_then(proc_stat);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for t in tasks {
        let (r, h) = t.await?;
        if let Err(e) = r {
            eprintln!("vhub-bench: a session ended with an error: {e:#}");
        }
        hist.add(&h).ok();
    }
    let sum = |f: fn(&Counters) -> u64| all.iter().map(f).sum::<u64>();
    let sent = sum(|c| c.sent.load(Relaxed));
    let received = sum(|c| c.received.load(Relaxed));
    let bytes = sum(|c| c.received_bytes.load(Relaxed));
    let expected = match args.pattern {
        Pattern::Broadcast => sent * u64::from(n.saturating_sub(1)),
        _ => sent,
    };
    let secs = duration.as_secs_f64();
    Ok(RunResult {
        target: label.to_owned(),
        sessions: n,
        seconds: secs,
        frames_sent: sent,
        frames_received: received,
        frames_expected: expected,
        lost: expected as i64 - received as i64,
        reordered: sum(|c| c.reordered.load(Relaxed)),
        client_drops: sum(|c| c.client_drops.load(Relaxed)),
        flooded_to_others: sum(|c| c.foreign.load(Relaxed)),
        frames_per_sec: received as f64 / secs,
        gbit_per_sec: bytes as f64 * 8.0 / secs / 1e9,
        latency_us_p50: hist.value_at_quantile(0.50),
        latency_us_p99: hist.value_at_quantile(0.99),
        latency_us_p999: hist.value_at_quantile(0.999),
        latency_us_max: hist.max(),
        hub_cpu_percent: match (cpu0, cpu1) {
            (Some(a), Some(b)) => Some((b.0 - a.0) / secs * 100.0),
            _ => None,
        },
        hub_rss_mib: cpu1.map(|c| c.1),
        connect_seconds,
        cross_shard_pairs,
        sessions_discarded,
    })
}

/// Connects sessions `ids` (a few at a time: the hub's handshake limits,
/// per shard and per source address); connected sessions keep themselves
/// alive until all are in.
async fn connect_many(
    args: &Args,
    target: SocketAddr,
    ctx: &openssl::ssl::SslContext,
    ids: std::ops::Range<u32>,
    epoch: Instant,
) -> anyhow::Result<Vec<Conn>> {
    let creds = args
        .user
        .clone()
        .map(|u| (u, args.password.clone().unwrap_or_default()));
    let cfg = SessionConfig::default();
    let parallel = args.connect_parallel.max(1);
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut pending = Vec::with_capacity(ids.len());
    for i in ids {
        // The baseline pipe pairs sessions by name: pair-K for 2K and 2K+1.
        let hub = if args.hub_name == "pipe" {
            format!("pair-{}", i / 2)
        } else {
            args.hub_name.clone()
        };
        let (ctx, creds, cfg) = (ctx.clone(), creds.clone(), cfg.clone());
        let permit = sem.clone().acquire_owned().await?;
        let mut go = go_rx.clone();
        pending.push(tokio::spawn(async move {
            let c = driver::connect(target, &hub, creds, &ctx, cfg, epoch).await;
            drop(permit);
            let mut c = c?;
            c.hold(&mut go).await?;
            anyhow::Ok(c)
        }));
    }
    // Every permit back: every connection attempt has finished.
    let _all = sem.acquire_many(parallel as u32).await?;
    let _ = go_tx.send(true);
    let mut conns = Vec::with_capacity(pending.len());
    for p in pending {
        conns.push(p.await??);
    }
    Ok(conns)
}

#[derive(Serialize)]
struct Report {
    pattern: Pattern,
    size: String,
    rate: u64,
    hub: RunResult,
    baseline: Option<RunResult>,
    hub_vs_baseline_throughput: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.placement == Placement::Any || args.admin_socket.is_some(),
        "--placement needs --admin-socket (the bench asks the hub where each session landed)"
    );
    raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async {
        let hub = run(&args, args.hub, "vhub", args.hub_pid).await?;
        let baseline = if args.baseline && args.pattern == Pattern::Pairs {
            let id = certs::Identity::generate(&certs::CertParams::default())?;
            let ctx = tls::server_context(&id, &TlsOptions::default())?;
            let addr = vhub_bench::pipe::start_threads(
                ctx,
                SessionConfig::default(),
                args.baseline_threads,
            )?;
            let pid = std::process::id();
            let mut a = args.clone();
            a.hub_name = "pipe".into();
            a.admin_socket = None;
            Some(run(&a, addr, "bare TLS pipe", Some(pid)).await?)
        } else {
            None
        };
        let ratio = baseline.as_ref().map(|b| {
            if b.gbit_per_sec > 0.0 {
                hub.gbit_per_sec / b.gbit_per_sec
            } else {
                0.0
            }
        });
        let report = Report {
            pattern: args.pattern,
            size: args.size.clone(),
            rate: args.rate,
            hub,
            baseline,
            hub_vs_baseline_throughput: ratio,
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_table(&report);
        }
        anyhow::Ok(())
    })
}

fn print_table(r: &Report) {
    println!(
        "pattern {:?}, frame size {}, rate {}",
        r.pattern,
        r.size,
        if r.rate == 0 {
            "unlimited (window)".into()
        } else {
            format!("{}/s per sender", r.rate)
        }
    );
    println!(
        "{:<14} {:>8} {:>12} {:>9} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "target",
        "sessions",
        "frames/s",
        "Gbit/s",
        "lost",
        "reorder",
        "p50 µs",
        "p99 µs",
        "p99.9",
        "max µs",
        "cpu %",
        "rss MiB"
    );
    for x in [Some(&r.hub), r.baseline.as_ref()].into_iter().flatten() {
        println!(
            "{:<14} {:>8} {:>12.0} {:>9.3} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            x.target,
            x.sessions,
            x.frames_per_sec,
            x.gbit_per_sec,
            x.lost,
            x.reordered,
            x.latency_us_p50,
            x.latency_us_p99,
            x.latency_us_p999,
            x.latency_us_max,
            x.hub_cpu_percent
                .map(|c| format!("{c:.0}"))
                .unwrap_or("-".into()),
            x.hub_rss_mib
                .map(|c| format!("{c:.1}"))
                .unwrap_or("-".into()),
        );
    }
    if let Some(cross) = r.hub.cross_shard_pairs {
        println!(
            "pairs across shards: {cross} of {} ({} sessions connected and closed to arrange them)",
            r.hub.sessions / 2,
            r.hub.sessions_discarded
        );
    }
    if let Some(ratio) = r.hub_vs_baseline_throughput {
        println!("hub / baseline throughput: {:.2}", ratio);
    }
}
