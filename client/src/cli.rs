//! The command line of `vnic`. Every `connect` setting can also come from
//! the environment (`VNIC_…`) or from a TOML file (`--config`); a flag wins
//! over the environment, which wins over the file.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::units::parse_duration;

/// vnic — a virtual LAN card: a TAP device joined to a vhub virtual hub over HTTPS.
#[derive(Parser, Debug)]
#[command(name = "vnic", version, long_about = None, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format on standard error: text (lines for people) or json (one
    /// object per line, every state change and log event, for log pipelines).
    #[arg(
        long,
        env = "VNIC_LOG_FORMAT",
        value_enum,
        default_value_t,
        global = true
    )]
    pub log_format: cli_support::LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Join a virtual hub: create the TAP device and bridge it to the hub
    /// until Ctrl-C (or SIGTERM), reconnecting and resuming on link loss.
    Connect(Box<ConnectArgs>),
    /// Show what running vnic clients are doing (from their status files).
    Status(StatusArgs),
}

/// Settings of `vnic connect`. Defaults are applied after the config file
/// is read (see `settings.rs`), so none is given to clap here.
#[derive(Args, Debug, Default, Clone)]
pub struct ConnectArgs {
    /// The hub: https://HOST[:PORT]/HUB (port 443 if left out; virtual hub
    /// DEFAULT if no path), or softether://HOST[:PORT]/HUB for a SoftEther
    /// VPN server (password login; no resume, no offload). Several, for
    /// failover: `vnic connect URL1 URL2` (in VNIC_URL: separated by
    /// commas); see --hub-order and --failback.
    #[arg(env = "VNIC_URL", value_name = "URL", value_delimiter = ',')]
    pub urls: Vec<String>,

    /// TOML file with the same settings as the flags (keys as the long flag
    /// names with '_' for '-', e.g. password_file = "/etc/vnic/pw").
    #[arg(long, short = 'c', env = "VNIC_CONFIG")]
    pub config: Option<PathBuf>,

    /// User name on the hub. Without it the client connects anonymously
    /// (only hubs configured for that accept it).
    #[arg(long, short = 'u', env = "VNIC_USER")]
    pub user: Option<String>,

    /// File whose first line is the password ("-" reads standard input).
    #[arg(long, env = "VNIC_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,

    /// Log in with this client certificate (PEM) instead of a password, on
    /// hubs with a client CA: the hub finds the user bound to it (name it
    /// with --user if several are). Needs --key.
    #[arg(long, env = "VNIC_CERT", requires = "key")]
    pub cert: Option<PathBuf>,

    /// The client certificate's private key (PEM, mode 0600 or stricter).
    #[arg(long, env = "VNIC_KEY", requires = "cert")]
    pub key: Option<PathBuf>,

    /// TAP device to create, or to attach to if it exists [default: vnic0].
    #[arg(long, env = "VNIC_TAP")]
    pub tap: Option<String>,

    /// IPv4 address for the TAP device, with prefix length (10.77.0.10/24).
    /// Without it the device comes up with no address (use DHCP, or `ip addr`).
    #[arg(long, env = "VNIC_IP")]
    pub ip: Option<String>,

    // --- trust ---
    /// Verify the hub's certificate against this CA file (PEM): the chain
    /// and the host name of the URL are checked.
    #[arg(long, env = "VNIC_CA", help_heading = "Trust")]
    pub ca: Option<PathBuf>,

    /// Accept exactly the hub certificate with this SHA-256 fingerprint
    /// (sha256:HEX, as `vhub` logs it at start).
    #[arg(long, env = "VNIC_PIN", help_heading = "Trust")]
    pub pin: Option<String>,

    /// Known-hubs file for trust on first use (the default trust mode)
    /// [default: $XDG_CONFIG_HOME/vnic/known_hubs or ~/.config/vnic/known_hubs].
    #[arg(long, env = "VNIC_KNOWN_HUBS", help_heading = "Trust")]
    pub known_hubs: Option<PathBuf>,

    /// Do not verify the hub at all. Anyone on the path can then read and
    /// change the traffic: for tests only.
    #[arg(long, env = "VNIC_INSECURE", help_heading = "Trust")]
    pub insecure: bool,

    /// Cipher suites: a preset (default, aes256-sha, rc4-sha, rc4-md5) or
    /// "list:<OpenSSL TLS1.2 cipher list>" / "suites:<TLS1.3 ciphersuites>".
    #[arg(long, env = "VNIC_CIPHERS", help_heading = "Trust")]
    pub ciphers: Option<String>,

    /// Allow the legacy RC4 presets (needs a build with --features legacy-ciphers).
    #[arg(long, help_heading = "Trust")]
    pub allow_legacy_ciphers: bool,

    // --- relay ---
    /// Reach the hub through a relay: http://[user:pass@]host:port (HTTP
    /// CONNECT), socks5://[user:pass@]host:port, socks4a://host:port, or
    /// ssh://[user@]host[:port] (runs `ssh -W`, so your ssh config and keys apply).
    #[arg(long, env = "VNIC_PROXY", help_heading = "Relay")]
    pub proxy: Option<String>,

    /// An option for `ssh` when the relay is ssh://, as in `ssh -o`
    /// (repeatable): --ssh-option IdentityFile=~/.ssh/vpn_key.
    #[arg(long = "ssh-option", value_name = "KEY=VALUE", help_heading = "Relay")]
    pub ssh_options: Vec<String>,

    /// Give up on one connection attempt (relay, TCP, TLS) after this long
    /// [default: 10s].
    #[arg(long, env = "VNIC_CONNECT_TIMEOUT", value_parser = parse_duration, help_heading = "Relay")]
    pub connect_timeout: Option<Duration>,

    /// Open the TAP without segmentation offload (IFF_VNET_HDR/TSO) and
    /// do not ask the hub for it: every frame crosses at the MTU. Offload
    /// is on by default; hubs that do not grant it get plain frames.
    #[arg(long, env = "VNIC_NO_OFFLOAD", help_heading = "Performance")]
    pub no_offload: bool,

    /// After traffic, keep polling the TAP and the link for this long
    /// before sleeping (at most 10ms) [default: 0, never]: a reply that
    /// comes back within it finds the client awake, at the cost of the CPU
    /// time spent polling.
    #[arg(long, env = "VNIC_BUSY_POLL", value_parser = parse_duration, help_heading = "Performance")]
    pub busy_poll: Option<Duration>,

    // --- keep-alive and reconnect ---
    /// Send a keep-alive after this long without traffic [default: 5s]. The
    /// hub's value wins in the handshake.
    #[arg(long, env = "VNIC_KEEPALIVE", value_parser = parse_duration, help_heading = "Keep-alive and reconnect")]
    pub keepalive: Option<Duration>,

    /// Declare the link dead after this long with nothing received
    /// [default: 15s]. The hub's value wins in the handshake.
    #[arg(long, env = "VNIC_TIMEOUT", value_parser = parse_duration, help_heading = "Keep-alive and reconnect")]
    pub timeout: Option<Duration>,

    /// Longest wait between reconnection attempts [default: 30s]. The first
    /// attempt after a link loss is immediate, then the wait doubles (with jitter).
    #[arg(long, env = "VNIC_MAX_BACKOFF", value_parser = parse_duration, help_heading = "Keep-alive and reconnect")]
    pub max_backoff: Option<Duration>,

    /// Failed connection attempts in a row before giving up: a number, or
    /// "unlimited" [default: unlimited]. Authentication failures and
    /// certificate changes are never retried.
    #[arg(
        long,
        env = "VNIC_MAX_RETRIES",
        help_heading = "Keep-alive and reconnect"
    )]
    pub max_retries: Option<String>,

    /// With several hubs: try them in the order given (ordered: the first
    /// is the primary, every client lands on the same hub) or in an order
    /// shuffled once at start (random: spreads clients and a reconnect
    /// storm over the hubs) [default: ordered].
    #[arg(
        long,
        env = "VNIC_HUB_ORDER",
        value_enum,
        help_heading = "Keep-alive and reconnect"
    )]
    pub hub_order: Option<crate::settings::HubOrder>,

    /// With several hubs: while on another than the first, try the first
    /// again this often and move back (a new session) when it answers;
    /// "off" stays where it is [default: 60s].
    #[arg(
        long,
        env = "VNIC_FAILBACK",
        value_name = "DURATION|off",
        help_heading = "Keep-alive and reconnect"
    )]
    pub failback: Option<String>,

    /// Do not answer the host's ARP requests and IPv6 neighbour
    /// solicitations from vnic's table while the link is down (they then
    /// wait for the hub, and the host's neighbour entries may fail).
    #[arg(
        long,
        env = "VNIC_NO_ARP_SUPPRESSION",
        help_heading = "Keep-alive and reconnect"
    )]
    pub no_arp_suppression: bool,

    // --- ICMP keep-alive ---
    /// Ping this IPv4 host on the virtual LAN at an interval, so an idle
    /// route through the TAP is not dropped. Off by default.
    #[arg(
        long,
        env = "VNIC_ICMP_KEEPALIVE",
        value_name = "HOST",
        help_heading = "ICMP keep-alive"
    )]
    pub icmp_keepalive: Option<String>,

    /// Interval of the ICMP keep-alive [default: 5s].
    #[arg(long, env = "VNIC_ICMP_INTERVAL", value_parser = parse_duration, help_heading = "ICMP keep-alive")]
    pub icmp_interval: Option<Duration>,

    // --- status ---
    /// Where to write the status file that `vnic status` reads
    /// [default: /run/vnic/TAP.json as root, else $XDG_RUNTIME_DIR/vnic/TAP.json].
    #[arg(long, env = "VNIC_STATUS_FILE", help_heading = "Status")]
    pub status_file: Option<PathBuf>,
}

#[derive(Args, Debug, Default)]
pub struct StatusArgs {
    /// Only this TAP device (default: every client that has a status file).
    #[arg(long, env = "VNIC_TAP")]
    pub tap: Option<String>,

    /// Read this status file instead of looking in the default directory.
    #[arg(long, env = "VNIC_STATUS_FILE")]
    pub status_file: Option<PathBuf>,

    /// Print the raw JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_are_typed() {
        let cli = Cli::try_parse_from([
            "vnic",
            "connect",
            "https://h/A",
            "--keepalive",
            "1s",
            "--timeout",
            "3s",
        ])
        .unwrap();
        let Command::Connect(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.keepalive, Some(Duration::from_secs(1)));
        assert_eq!(a.timeout, Some(Duration::from_secs(3)));
        let e = Cli::try_parse_from(["vnic", "connect", "https://h/A", "--keepalive", "5"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a unit"), "{e}");
    }

    #[test]
    fn a_repeated_flag_wins_and_lists_append() {
        let cli = Cli::try_parse_from([
            "vnic",
            "connect",
            "https://h/A",
            "--tap",
            "x0",
            "--tap",
            "y0",
            "--ssh-option",
            "A=1",
            "--ssh-option",
            "B=2",
        ])
        .unwrap();
        let Command::Connect(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.tap.as_deref(), Some("y0"));
        assert_eq!(a.ssh_options, ["A=1", "B=2"]);
    }

    #[test]
    fn several_hubs_as_arguments_or_with_commas() {
        let urls = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Connect(a) = cli.command else {
                panic!()
            };
            a.urls
        };
        assert_eq!(urls(&["vnic", "connect", "https://h/A"]), ["https://h/A"]);
        assert_eq!(
            urls(&["vnic", "connect", "https://h1/A", "https://h2/A"]),
            ["https://h1/A", "https://h2/A"]
        );
        assert_eq!(
            urls(&["vnic", "connect", "https://h1/A,https://h2/A"]),
            ["https://h1/A", "https://h2/A"]
        );
        let cli = Cli::try_parse_from(["vnic", "connect", "h", "--hub-order", "random"]).unwrap();
        let Command::Connect(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.hub_order, Some(crate::settings::HubOrder::Random));
    }
}
