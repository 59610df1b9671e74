//! Starting and stopping the hub: shards, listeners, metrics.
//!
//! `start` is what `main` and the integration tests call (bind port 0 in
//! tests); it returns a handle with the bound address and a `shutdown`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openssl::ssl::SslContext;
use switch_core::fabric::FabricConfig;
use switch_core::session::SessionConfig;
use tracing::info;

use crate::auth::{AuthPool, Authenticator};
use crate::net::{self, IoBackend};
use crate::shard::Shard;
use crate::switchboard::{Control, Switchboard};

/// One virtual hub.
#[derive(Clone, Debug)]
pub struct HubSettings {
    pub name: String,
    /// Admit sessions without credentials.
    pub anonymous: bool,
    /// Admit SoftEther VPN clients.
    pub softether: bool,
    /// 0 = no limit of its own.
    pub max_sessions: usize,
    /// 0 = the fabric default.
    pub max_macs: u32,
}

/// Everything the running hub needs, resolved from config and flags.
#[derive(Clone, Debug)]
pub struct Settings {
    pub name: String,
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub shards: usize,
    pub backend: IoBackend,
    pub hubs: Vec<HubSettings>,
    pub session: SessionConfig,
    pub fabric: FabricConfig,
    pub handshake_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_handshakes_per_shard: usize,
    pub max_sessions: usize,
    /// Concurrent handshakes from one source address (IPv6: /64).
    pub max_handshakes_per_address: usize,
    /// Sessions of one user on one hub; 0 = no limit.
    pub max_sessions_per_user: usize,
    /// Bytes buffered for all sessions together (`limits.max_buffer_memory`).
    pub max_buffer_memory: usize,
    /// Failed-login throttling.
    pub auth: crate::config::AuthConfig,
    /// Tests only: every shard listens on a port of its own (instead of
    /// sharing one with `SO_REUSEPORT`), so a test can pick the shard.
    pub distinct_ports: bool,
    /// How long a shard keeps polling after traffic before it sleeps
    /// (`busy_poll` in the config; zero = never).
    pub busy_poll: Duration,
}

impl Settings {
    /// Defaults for tests: loopback, port 0, one anonymous hub `DEFAULT`.
    pub fn for_tests(shards: usize) -> Self {
        Self {
            name: "vhub-test".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: None,
            shards,
            backend: IoBackend::Epoll,
            hubs: vec![HubSettings {
                name: "DEFAULT".into(),
                anonymous: true,
                softether: true,
                max_sessions: 0,
                max_macs: 0,
            }],
            session: SessionConfig {
                offload: true,
                ..SessionConfig::default()
            },
            fabric: FabricConfig::default(),
            handshake_timeout: Duration::from_secs(10),
            max_header_bytes: switch_core::wire::http::DEFAULT_MAX_HEAD,
            max_handshakes_per_shard: 256,
            max_sessions: 100_000,
            max_handshakes_per_address: crate::config::DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
            max_sessions_per_user: crate::config::DEFAULT_MAX_SESSIONS_PER_USER,
            max_buffer_memory: crate::config::DEFAULT_MAX_BUFFER_MEMORY,
            auth: crate::config::AuthConfig::default(),
            distinct_ports: false,
            busy_poll: Duration::ZERO,
        }
    }
}

/// What every shard shares, read-only.
pub struct ServerContext {
    pub settings: Settings,
    pub tls: SslContext,
    pub page: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub auth: AuthPool,
    /// Handshakes per address, sessions per user, failed-login throttle.
    pub admission: crate::throttle::Admission,
}

/// A running hub.
pub struct Server {
    pub switchboard: Arc<Switchboard>,
    local_addr: SocketAddr,
    shard_addrs: Vec<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    shards: Vec<JoinHandle<()>>,
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address each shard listens on (all equal unless `distinct_ports`).
    pub fn shard_addrs(&self) -> &[SocketAddr] {
        &self.shard_addrs
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops accepting, closes every session with a reason (CLOSE code 2,
    /// "shutting down"), and returns when all shards have stopped.
    pub fn shutdown(self) {
        self.switchboard
            .shutting_down
            .store(true, Ordering::Release);
        for mb in &self.switchboard.mailboxes {
            mb.control.push(Control::Shutdown);
            mb.sleeping.store(true, Ordering::Release);
            mb.wake();
        }
        for t in self.shards {
            let _ = t.join();
        }
    }
}

/// Starts the shards (one thread each) and the metrics listener.
pub fn start(
    settings: Settings,
    tls: SslContext,
    cert_pem: Vec<u8>,
    page: Vec<u8>,
    auth: Arc<dyn Authenticator>,
) -> std::io::Result<Server> {
    let shards = settings.shards.max(1);
    let sb = Arc::new(Switchboard::new(
        &settings.hubs,
        &settings.fabric,
        shards,
        Instant::now(),
    ));
    if let Some(t) = cert_not_after(&cert_pem) {
        sb.metrics.cert_not_after.store(t, Ordering::Relaxed);
    }
    *sb.metrics.backend.lock() = match settings.backend {
        IoBackend::Uring => "io_uring".into(),
        IoBackend::Epoll => "epoll".into(),
    };
    // Bind the first listener to learn the real port (port 0 in tests),
    // then the others on the same port with SO_REUSEPORT.
    let first = net::reuseport_listener(settings.listen)?;
    let local_addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..shards {
        let addr = if settings.distinct_ports {
            settings.listen
        } else {
            local_addr
        };
        listeners.push(net::reuseport_listener(addr)?);
    }
    let shard_addrs = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<std::io::Result<Vec<_>>>()?;
    let metrics_addr = match settings.metrics_listen {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr).map_err(|e| {
                std::io::Error::new(e.kind(), format!("metrics listener {addr}: {e}"))
            })?;
            let a = l.local_addr()?;
            crate::metrics::serve(l, sb.clone())?;
            Some(a)
        }
        None => None,
    };
    let backend = settings.backend;
    let ctx = Arc::new(ServerContext {
        admission: crate::throttle::Admission::new(settings.auth.clone()),
        settings,
        tls,
        page,
        cert_pem,
        auth: AuthPool::new(auth, 2),
    });
    let mut handles = Vec::new();
    let cpus = allowed_cpus();
    for (i, l) in listeners.into_iter().enumerate() {
        let (sb, ctx) = (sb.clone(), ctx.clone());
        let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
        let h = std::thread::Builder::new()
            .name(format!("shard-{i}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    pin_to_cpu(cpu);
                }
                match backend {
                    IoBackend::Uring => Shard::<net::uring::Uring>::run(i as u16, sb, ctx, l),
                    IoBackend::Epoll => Shard::<net::epoll::Epoll>::run(i as u16, sb, ctx, l),
                }
            })?;
        handles.push(h);
    }
    sb.metrics.ready.store(true, Ordering::Release);
    info!(%local_addr, shards, backend = ?backend, "hub listening");
    Ok(Server {
        switchboard: sb,
        local_addr,
        shard_addrs,
        metrics_addr,
        shards: handles,
    })
}

/// The notAfter of a PEM certificate as Unix seconds.
pub fn cert_not_after(pem: &[u8]) -> Option<i64> {
    let cert = openssl::x509::X509::from_pem(pem).ok()?;
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(cert.not_after()).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// The CPUs this process may run on, in order: its affinity mask, which
/// `taskset`, systemd's `CPUAffinity=` or a cpuset narrow. Shard `i` is
/// pinned to the `i`-th of them (round robin), never to a CPU outside
/// them. Empty if the mask cannot be read (then nothing is pinned).
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most its size; CPU_ISSET reads within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpu` (best effort).
fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes within it;
    // sched_setaffinity(0, …) affects only this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The HTML page at `/`: what this is, the hub's name and version, and how
/// to connect.
pub fn front_page(name: &str, fingerprint: &str, hubs: &[HubSettings]) -> Vec<u8> {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let example_hub = hubs.first().map(|h| h.name.as_str()).unwrap_or("DEFAULT");
    format!(
        r#"<!doctype html>
<!-- {marker} (SoftEther VPN clients look for this) -->
<html lang="en"><head><meta charset="utf-8"><title>{name} — vhub</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46em;margin:3em auto;padding:0 1em}}code,pre{{background:#f3f3f3;padding:.1em .3em}}</style>
</head><body>
<h1 id="name">{name}</h1>
<p>This is a <strong>vhub</strong> virtual hub, version <span id="version">{version}</span>: a layer-2 (Ethernet) switch that
virtual LAN cards join over HTTPS.</p>
<h2>Connect</h2>
<pre>vnic connect https://THIS-HOST:PORT/{hub} --user NAME --password-file FILE --tap vnic0</pre>
<p>Verify the hub's certificate by its fingerprint (<code>--pin</code>), or download it: <a href="/ca.crt">ca.crt</a>.</p>
<p>Certificate fingerprint: <code id="fingerprint">{fingerprint}</code></p>
</body></html>
"#,
        name = esc(name),
        marker = switch_core::softether::probe::MARKER,
        version = env!("CARGO_PKG_VERSION"),
        hub = esc(example_hub),
        fingerprint = esc(fingerprint),
    )
    .into_bytes()
}
