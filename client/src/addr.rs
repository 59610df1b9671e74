//! The addresses a user types: the hub's URL and the TAP's IPv4 address.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use switch_core::wire::http::MAX_HUB_NAME;

/// The port of an `https://` URL without one.
pub const HTTPS_PORT: u16 = 443;
/// The virtual hub of a URL without a path.
pub const DEFAULT_HUB: &str = "DEFAULT";

/// What is spoken after TLS: the scheme of the URL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// `https://`: a vhub hub, the `vhub/1` upgrade (resume, offload).
    #[default]
    Vhub,
    /// `softether://`: a SoftEther VPN server, its own login and framing
    /// (no resume, no offload).
    SoftEther,
}

impl Dialect {
    pub fn scheme(self) -> &'static str {
        match self {
            Dialect::Vhub => "https",
            Dialect::SoftEther => "softether",
        }
    }
}

/// `https://HOST[:PORT]/HUB` (or `softether://…`): where the hub is, which
/// virtual hub to join, and which protocol it speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubUrl {
    pub dialect: Dialect,
    /// A DNS name or an IP address; IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// The virtual hub.
    pub hub: String,
}

impl HubUrl {
    /// `host:port` as dialled (IPv6 in brackets): the key of the
    /// known-hubs file and the `Host` header.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for HubUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}/{}",
            self.dialect.scheme(),
            self.host_port(),
            self.hub
        )
    }
}

impl FromStr for HubUrl {
    type Err = String;

    /// Accepts `https://host[:port][/HUB]` and `https://host[:port]/vhub/HUB`
    /// (the path the hub's own page shows), and `softether://host[:port]/HUB`
    /// for a SoftEther VPN server. The scheme may be left out (https).
    fn from_str(s: &str) -> Result<Self, String> {
        let err = |why: &str| {
            format!(
                "hub URL {s:?}: {why} (expected https://HOST[:PORT]/HUB, or \
                 softether://HOST[:PORT]/HUB for a SoftEther VPN server)"
            )
        };
        let (dialect, rest) = match s.split_once("://") {
            Some(("https", rest)) => (Dialect::Vhub, rest),
            Some(("softether", rest)) => (Dialect::SoftEther, rest),
            Some((scheme, _)) => {
                return Err(err(&format!(
                    "scheme {scheme:?}: vnic speaks https (vhub) and softether"
                )))
            }
            None => (Dialect::Vhub, s),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(err(
                "credentials do not go in the URL: use --user and --password-file",
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| err("unclosed '['"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| err("junk after ']'"))?),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        let port = match port {
            None => HTTPS_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| err(&format!("bad port {p:?}")))?,
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = path.trim_matches('/');
        let hub = path.strip_prefix("vhub/").unwrap_or(path);
        let hub = if hub.is_empty() { DEFAULT_HUB } else { hub };
        let valid = hub.len() <= MAX_HUB_NAME
            && hub
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return Err(err(&format!(
                "virtual hub name {hub:?}: 1-{MAX_HUB_NAME} characters of A-Z a-z 0-9 . _ -"
            )));
        }
        Ok(HubUrl {
            dialect,
            host: host.to_owned(),
            port,
            hub: hub.to_owned(),
        })
    }
}

/// An IPv4 address with its prefix length: `10.77.0.10/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.trim().split_once('/').unwrap_or((s.trim(), "24"));
        let addr = a
            .parse()
            .map_err(|_| format!("{s:?}: {a:?} is not an IPv4 address"))?;
        let prefix = p
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(|| format!("{s:?}: prefix length {p:?} is not 1-32"))?;
        Ok(Ipv4Cidr { addr, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> HubUrl {
        s.parse().unwrap()
    }

    #[test]
    fn hub_urls() {
        assert_eq!(
            url("https://hub.example:8443/LAB"),
            HubUrl {
                dialect: Dialect::Vhub,
                host: "hub.example".into(),
                port: 8443,
                hub: "LAB".into()
            }
        );
        assert_eq!(url("https://hub.example").port, 443);
        assert_eq!(url("https://hub.example/").hub, "DEFAULT");
        assert_eq!(url("hub.example:9/vhub/X").hub, "X");
        assert_eq!(url("https://10.0.0.1:8443/A?x=1").hub, "A");
        let v6 = url("https://[fd00::1]:8443/A");
        assert_eq!(v6.host, "fd00::1");
        assert_eq!(v6.host_port(), "[fd00::1]:8443");
        assert_eq!(v6.to_string(), "https://[fd00::1]:8443/A");
        let se = url("softether://10.0.0.1:5555/TEST");
        assert_eq!(se.dialect, Dialect::SoftEther);
        assert_eq!((se.port, se.hub.as_str()), (5555, "TEST"));
        assert_eq!(se.to_string(), "softether://10.0.0.1:5555/TEST");
        assert_eq!(url("softether://h").port, 443);
    }

    #[test]
    fn bad_hub_urls_say_why() {
        let e = |s: &str| s.parse::<HubUrl>().unwrap_err();
        assert!(e("http://h/A").contains("https (vhub) and softether"));
        assert!(e("https://u:p@h/A").contains("--password-file"));
        assert!(e("https://h:0/A").contains("bad port"));
        assert!(e("https://h:x/A").contains("bad port"));
        assert!(e("https:///A").contains("no host"));
        assert!(e("https://h/a/b").contains("virtual hub name"));
    }

    #[test]
    fn cidrs() {
        let c: Ipv4Cidr = "10.77.0.10/24".parse().unwrap();
        assert_eq!((c.addr, c.prefix), (Ipv4Addr::new(10, 77, 0, 10), 24));
        assert_eq!("10.0.0.1".parse::<Ipv4Cidr>().unwrap().prefix, 24);
        assert!("10.0.0.1/33".parse::<Ipv4Cidr>().is_err());
        assert!("fd00::1/64".parse::<Ipv4Cidr>().is_err());
    }
}
