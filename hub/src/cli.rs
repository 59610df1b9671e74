//! The command line of `vhub`: every flag, subcommand and `VHUB_…`
//! environment fallback, with its help text. Parsing only; each
//! subcommand's work lives in its own module.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// vhub — a virtual Ethernet hub that virtual LAN cards (vnic) join over HTTPS.
#[derive(Parser, Debug)]
#[command(name = "vhub", version, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

// The server's settings as flags. `--config` and `--cert-dir` are global:
// the subcommands read the same config file and certificate directory (and
// log as `--log-format` says). (A
// plain comment: a doc comment here would become clap help text.)
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// TOML configuration file (see deploy/vhub.example.toml).
    #[arg(long, short = 'c', env = "VHUB_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address for the HTTPS port (default 0.0.0.0:8443).
    #[arg(long, env = "VHUB_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address for the plain-HTTP metrics listener, or "off" (default 127.0.0.1:9750).
    #[arg(long, env = "VHUB_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Directory holding ca.crt and ca.key (created on first start).
    #[arg(long, env = "VHUB_CERT_DIR", global = true)]
    pub cert_dir: Option<PathBuf>,
    /// Shards (threads); 0 = one per core.
    #[arg(long, env = "VHUB_SHARDS")]
    pub shards: Option<usize>,
    /// Socket I/O: auto (io_uring when the kernel and sandbox allow it), uring, epoll.
    #[arg(long, env = "VHUB_IO_BACKEND")]
    pub io_backend: Option<String>,
    /// Cipher suites: a preset (default, aes256-sha, rc4-sha, rc4-md5) or
    /// "list:<OpenSSL TLS1.2 cipher list>" / "suites:<TLS1.3 ciphersuites>".
    #[arg(long, env = "VHUB_CIPHERS")]
    pub ciphers: Option<String>,
    /// Allow the legacy RC4 presets (needs a build with --features legacy-ciphers).
    #[arg(long)]
    pub allow_legacy_ciphers: bool,
    /// Log format on standard error: text (for people) or json (one object
    /// per line, for log pipelines) [default: log_format from --config, else text].
    #[arg(long, env = "VHUB_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<cli_support::LogFormat>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a configuration file and report every problem with its line.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Manage users (written to the users file, never to the config).
    #[command(subcommand)]
    User(UserCmd),
    /// Manage the hub's certificate.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Inspect and control a running hub through its admin socket.
    Ctl(CtlArgs),
}

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The hub's admin socket (default: admin_socket from --config, else
    /// <cert_dir>/admin.sock).
    #[arg(long, env = "VHUB_ADMIN_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Print JSON (for scripts) instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: CtlCmd,
}

#[derive(Subcommand, Debug)]
pub enum CtlCmd {
    /// Sessions: id, hub, user, remote address, shard, state, traffic, MACs.
    Sessions,
    /// The MAC tables: hub, MAC, session, age.
    Macs,
    /// Virtual hubs with their session and MAC counts.
    Hubs,
    /// End a session (its client gets a CLOSE "kicked" and may reconnect).
    Kick {
        /// The session's ID from `vhub ctl sessions`.
        session: String,
    },
    /// Re-read the config and users file; refused (nothing changes) if
    /// either has errors. Same as SIGHUP.
    Reload,
    /// Stream the frames of a virtual hub as pcapng to standard output:
    /// `vhub ctl capture DEFAULT | tcpdump -r - -n`, or
    /// `| wireshark -k -i -`. One pcapng interface per session (named by
    /// its ID). A reader that falls behind loses capture frames (counted
    /// in vhub_capture_frames_total{result="dropped"}), never hub frames.
    Capture {
        /// The virtual hub.
        hub: String,
        /// Only what this session sends or receives (its ID from
        /// `vhub ctl sessions`).
        #[arg(long)]
        session: Option<String>,
        /// Stop after this many frames (`-c` is `--config` here).
        #[arg(long)]
        count: Option<u64>,
        /// Bytes kept of each frame (64 to 262144).
        #[arg(long, short = 's', default_value_t = 262_144,
              value_parser = clap::value_parser!(u32).range(64..=262_144))]
        snaplen: u32,
        /// A pcap-filter(7) expression, as tcpdump takes it (e.g. "icmp or
        /// arp"), compiled by libpcap.
        #[arg(long, short = 'f')]
        filter: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user who logs in with a password, a client certificate, or
    /// both (or change one with --replace).
    Add {
        name: String,
        /// Virtual hub the user may join.
        #[arg(long, default_value = "DEFAULT")]
        hub: String,
        /// File whose first line is the password; "-" reads standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The user's client certificate (PEM or DER): binds the user to
        /// its SHA-256 fingerprint (the hub needs `tls.client_ca`).
        #[arg(long, conflicts_with = "cert_fingerprint")]
        cert: Option<PathBuf>,
        /// Bind the user to a client certificate by fingerprint
        /// (sha256:…, or `openssl x509 -fingerprint -sha256` output).
        #[arg(long)]
        cert_fingerprint: Option<String>,
        /// Bind the user to a client certificate subject (e.g.
        /// "CN=alice,O=Example"): any certificate the CA issues with it.
        #[arg(long)]
        cert_subject: Option<String>,
        /// Also let the user log in from SoftEther VPN clients: stores
        /// SoftEther's hash of the password (SHA-0 over the password and
        /// the upper-cased name; fast and unsalted, so opt-in: see
        /// docs/SECURITY.md). Needs --password-file. Once on, a new
        /// password (with --replace) updates it.
        #[arg(long, conflicts_with = "no_softether")]
        softether: bool,
        /// With --replace: remove the user's SoftEther hash (no more
        /// SoftEther logins).
        #[arg(long)]
        no_softether: bool,
        /// Change an existing user: what is given replaces the old value,
        /// the rest is kept.
        #[arg(long)]
        replace: bool,
    },
    /// Remove a user.
    Remove {
        name: String,
        #[arg(long, default_value = "DEFAULT")]
        hub: String,
    },
    /// List users (names and hubs; never hashes).
    List,
}

#[derive(Subcommand, Debug)]
pub enum CertCmd {
    /// Create ca.crt and ca.key in the certificate directory.
    Generate {
        /// DNS names for the certificate (default: localhost).
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// IP addresses for the certificate (default: 127.0.0.1, ::1).
        #[arg(long = "ip")]
        ip: Vec<IpAddr>,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// An EC P-256 key instead of RSA 2048 (no RSA key-exchange suites then).
        #[arg(long)]
        ec: bool,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Show subject, SANs, fingerprint and expiry of the hub's certificate.
    Info,
}

#[cfg(test)]
mod tests {
    /// clap's own checks of the definitions (duplicate flags, bad
    /// defaults), which otherwise panic only when the subcommand is used.
    #[test]
    fn cli_definitions_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
