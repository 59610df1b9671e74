//! How vnic reaches the hub: directly, or through a relay.
//!
//! ```text
//!   vnic ──TCP──────────────────────────────────────────▶ hub        Relay::Direct
//!   vnic ──TCP──▶ HTTP proxy ──"CONNECT hub:443"────────▶ hub        Relay::Http
//!   vnic ──TCP──▶ SOCKS5 / SOCKS4a server ──CONNECT─────▶ hub        Relay::Socks5 / Socks4a
//!   vnic ──pipes─▶ ssh -W hub:443 relay ──direct-tcpip──▶ hub        Relay::Ssh
//! ```
//!
//! [`connect`] returns a [`Transport`]: a plain byte stream that ends at the
//! hub. TLS, the HTTP upgrade and everything after run on top of it and do not
//! know which relay carries them.
//!
//! What this module does **not** do:
//! - no TLS to the relay itself (`https://` proxies are refused at parse time);
//! - no retry and no keep-alive: a relay that drops the session silently is
//!   noticed by vhub's own keep-alive; [`RelayError::is_auth_failure`] tells the
//!   reconnect loop which failures must not be retried;
//! - no local name resolution for proxied connections: HTTP, SOCKS5 and SOCKS4a
//!   hand the hub's host name to the relay (SOCKS5 `ATYP=domain`), ssh resolves
//!   it on the relay host.
//! - no password prompts: ssh runs with `BatchMode=yes` unless the user's
//!   extra arguments say otherwise, since vnic runs unattended.

mod error;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod socks4a;
mod socks5;
mod ssh;
mod url;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use error::RelayError;
pub use url::RelayParseError;

/// How to reach the hub.
///
/// Parsed from a URL-like string (see [`FromStr`](std::str::FromStr) on this
/// type); `Display` and `Debug` show passwords as `***`.
#[derive(Clone, PartialEq, Eq)]
pub enum Relay {
    /// A TCP connection straight to the hub.
    Direct,
    /// HTTP proxy, CONNECT method, optional Basic auth.
    Http {
        host: String,
        port: u16,
        auth: Option<(String, String)>,
    },
    /// SOCKS5 (RFC 1928), optional user/password auth (RFC 1929); the proxy
    /// resolves the hub's host name (ATYP=domain).
    Socks5 {
        host: String,
        port: u16,
        auth: Option<(String, String)>,
    },
    /// SOCKS4a (host name resolved by the proxy), optional user id.
    Socks4a {
        host: String,
        port: u16,
        user: Option<String>,
    },
    /// OpenSSH: runs `ssh [-p PORT] [-l USER] <extra args> -W HUBHOST:HUBPORT HOST`
    /// so the user's ssh config, keys and known_hosts apply.
    Ssh {
        host: String,
        port: Option<u16>,
        user: Option<String>,
        extra_args: Vec<String>,
    },
}

/// A byte stream to the hub (before TLS).
///
/// Reading returns end-of-file or an error when the relay drops the session;
/// an ssh relay that exited with a failure reports ssh's own last message as
/// an `io::Error` wrapping a [`RelayError::SshExited`].
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// Opens a byte stream to `hub_host:hub_port` through `relay`.
///
/// The whole attempt — reaching the relay, authenticating, and the relay's
/// connection to the hub — is bounded by `timeout`. `hub_host` is a DNS name or
/// an IP address (IPv6 with or without brackets); with a proxy or ssh relay the
/// relay resolves it, not this host.
pub async fn connect(
    relay: &Relay,
    hub_host: &str,
    hub_port: u16,
    timeout: Duration,
) -> Result<Box<dyn Transport>, RelayError> {
    let target = Target::new(hub_host, hub_port)?;
    match tokio::time::timeout(timeout, connect_unbounded(relay, &target, timeout)).await {
        Ok(result) => result,
        // Dropping the inner future closes the socket or, for ssh, kills the
        // child process (the kill signal travels through a dropped channel).
        Err(_) => Err(RelayError::Timeout {
            relay: relay.via(),
            target: target.to_string(),
            after: timeout,
        }),
    }
}

/// `timeout` bounds the whole attempt (the caller enforces it); here it
/// is shared among the addresses of a name.
async fn connect_unbounded(
    relay: &Relay,
    target: &Target,
    timeout: Duration,
) -> Result<Box<dyn Transport>, RelayError> {
    let hop = relay.hop(target);
    let transport: Box<dyn Transport> = match relay {
        Relay::Direct => Box::new(tcp(&target.host, target.port, &hop, timeout).await?),
        Relay::Http { host, port, auth } => {
            let stream = tcp(host, *port, &hop, timeout).await?;
            Box::new(http::handshake(stream, &hop, target, auth.as_ref()).await?)
        }
        Relay::Socks5 { host, port, auth } => {
            let mut stream = tcp(host, *port, &hop, timeout).await?;
            socks5::handshake(&mut stream, &hop, target, auth.as_ref()).await?;
            Box::new(stream)
        }
        Relay::Socks4a { host, port, user } => {
            let mut stream = tcp(host, *port, &hop, timeout).await?;
            socks4a::handshake(&mut stream, &hop, target, user.as_deref()).await?;
            Box::new(stream)
        }
        Relay::Ssh {
            host,
            port,
            user,
            extra_args,
        } => {
            let spec = ssh::SshSpec {
                host,
                port: *port,
                user: user.as_deref(),
                extra_args,
            };
            Box::new(ssh::connect(&spec, &hop, target).await?)
        }
    };
    tracing::debug!(relay = %relay, target = %target, "relay: connected");
    Ok(transport)
}

/// A TCP connection with Nagle off: vhub batches frames itself, and a
/// keep-alive or an ack must not wait for a delayed ACK.
///
/// A name with several addresses (IPv4 and IPv6, or several hubs behind
/// one name) is tried address by address, in the resolver's order, each
/// with an equal share of what is left of `timeout`: one address that
/// swallows SYNs does not use up the time of the others.
async fn tcp(host: &str, port: u16, hop: &str, timeout: Duration) -> Result<TcpStream, RelayError> {
    let unreachable = |error| RelayError::Unreachable {
        hop: hop.to_owned(),
        error,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(unreachable)?
        .collect();
    let stream = match &addrs[..] {
        [] => {
            return Err(unreachable(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{host} has no address"),
            )))
        }
        [one] => TcpStream::connect(one).await.map_err(unreachable)?,
        several => connect_each(several, timeout).await.map_err(unreachable)?,
    };
    stream.set_nodelay(true).map_err(unreachable)?;
    Ok(stream)
}

/// Tries `addrs` in turn (see [`tcp`]); the error names every failure.
async fn connect_each(addrs: &[SocketAddr], timeout: Duration) -> std::io::Result<TcpStream> {
    let start = tokio::time::Instant::now();
    let mut failures = Vec::new();
    let mut kind = std::io::ErrorKind::Other;
    for (i, addr) in addrs.iter().enumerate() {
        let left = timeout.saturating_sub(start.elapsed());
        let share = left / (addrs.len() - i) as u32;
        match tokio::time::timeout(share, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                tracing::debug!("connected to {addr} (address {} of {})", i + 1, addrs.len());
                return Ok(s);
            }
            Ok(Err(e)) => {
                kind = e.kind();
                failures.push(format!("{addr}: {e}"));
            }
            Err(_) => {
                kind = std::io::ErrorKind::TimedOut;
                failures.push(format!("{addr}: no answer within {share:?}"));
            }
        }
    }
    Err(std::io::Error::new(
        kind,
        format!(
            "none of its {} addresses answered ({})",
            addrs.len(),
            failures.join("; ")
        ),
    ))
}

impl Relay {
    /// The relay as error messages name it ("HTTP proxy 127.0.0.1:3128");
    /// `None` for a direct connection.
    fn name(&self) -> Option<String> {
        Some(match self {
            Relay::Direct => return None,
            Relay::Http { host, port, .. } => format!("HTTP proxy {}", host_port(host, *port)),
            Relay::Socks5 { host, port, .. } => {
                format!("SOCKS5 proxy {}", host_port(host, *port))
            }
            Relay::Socks4a { host, port, .. } => {
                format!("SOCKS4a proxy {}", host_port(host, *port))
            }
            Relay::Ssh { host, .. } => format!("ssh to {host}"),
        })
    }

    /// The first hop: the relay, or the hub itself.
    fn hop(&self, target: &Target) -> String {
        self.name().unwrap_or_else(|| format!("hub {target}"))
    }

    /// "directly" or "through HTTP proxy 127.0.0.1:3128".
    fn via(&self) -> String {
        match self.name() {
            Some(name) => format!("through {name}"),
            None => "directly".to_owned(),
        }
    }
}

/// The hub's address as handed to the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// A DNS name or an IP literal, IPv6 without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Target {
    /// Validates the hub address before any byte goes out: it is written into
    /// an HTTP request line, a SOCKS length-prefixed field and an ssh argument.
    pub(crate) fn new(host: &str, port: u16) -> Result<Self, RelayError> {
        let bad = |problem: &str| RelayError::BadTarget {
            target: format!("{host:?} port {port}"),
            problem: problem.to_owned(),
        };
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) if inner.parse::<std::net::Ipv6Addr>().is_ok() => inner,
            Some(_) => return Err(bad("brackets hold only an IPv6 address")),
            None => host,
        };
        if host.is_empty() {
            return Err(bad("the host name is empty"));
        }
        if host.len() > 255 {
            return Err(bad("the host name is longer than 255 bytes"));
        }
        if port == 0 {
            return Err(bad("port 0 is not a port to connect to"));
        }
        let is_ip = host.parse::<IpAddr>().is_ok();
        if !is_ip && !host.bytes().all(is_host_byte) {
            return Err(bad(
                "a host name may hold only letters, digits, '-', '.' and '_'",
            ));
        }
        if host.starts_with('-') {
            return Err(bad("a host name must not start with '-'"));
        }
        Ok(Target {
            host: host.to_owned(),
            port,
        })
    }

    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for Target {
    /// `host:port`, `[v6]:port`: the form of an HTTP CONNECT authority and of
    /// `ssh -W`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&host_port(&self.host, self.port))
    }
}

pub(crate) fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// `host:port` with IPv6 literals in brackets.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_accepts_names_and_literals() {
        let t = Target::new("hub.example", 443).unwrap();
        assert_eq!(t.to_string(), "hub.example:443");
        let t = Target::new("[::1]", 8443).unwrap();
        assert_eq!(
            (t.host.as_str(), t.to_string()),
            ("::1", "[::1]:8443".into())
        );
        let t = Target::new("fe80::1", 1).unwrap();
        assert_eq!(t.to_string(), "[fe80::1]:1");
        assert!(Target::new("10.0.0.1", 443).unwrap().ip().is_some());
    }

    #[test]
    fn target_refuses_what_could_inject() {
        for (host, port) in [
            ("", 443),
            ("hub\r\nX-Evil: 1", 443),
            ("hub example", 443),
            ("-oProxyCommand=x", 443),
            ("[hub]", 443),
            ("hub", 0),
        ] {
            let err = Target::new(host, port).unwrap_err();
            assert!(
                matches!(err, RelayError::BadTarget { .. }),
                "{host:?}: {err}"
            );
        }
        assert!(Target::new(&"a".repeat(256), 1).is_err());
    }

    #[tokio::test]
    async fn each_address_of_a_name_is_tried_in_turn() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        // A port that was just free: refused at once.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let t = Duration::from_secs(5);
        let s = connect_each(&[closed, open], t).await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), open);
        let e = connect_each(&[closed, closed], t).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        let msg = e.to_string();
        assert!(
            msg.starts_with("none of its 2 addresses answered (127.0.0.1:")
                && msg.matches("refused").count() == 2,
            "{msg}"
        );
    }

    #[test]
    fn hops_are_named() {
        let r: Relay = "http://alice:pw@127.0.0.1:3128".parse().unwrap();
        let hub = Target::new("hub", 443).unwrap();
        assert_eq!(r.hop(&hub), "HTTP proxy 127.0.0.1:3128");
        assert_eq!(Relay::Direct.hop(&hub), "hub hub:443");
        let r: Relay = "socks5://[::1]:1080".parse().unwrap();
        assert_eq!(r.via(), "through SOCKS5 proxy [::1]:1080");
        assert_eq!(Relay::Direct.via(), "directly");
    }
}
