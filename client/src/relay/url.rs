//! The relay URL: parsing, and printing without passwords.
//!
//! ```text
//! direct
//! http://[USER[:PASSWORD]@]HOST:PORT
//! socks5://[USER[:PASSWORD]@]HOST:PORT      (socks5h:// is the same)
//! socks4a://[USER@]HOST:PORT
//! ssh://[USER@]HOST[:PORT]
//! ```
//!
//! User names and passwords are percent-decoded; IPv6 literals go in brackets.
//! A trailing `/` is accepted (as in `http_proxy` variables); any other path
//! is refused, and so is a missing port on a proxy: there is no default port
//! that all proxies share.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use super::{host_port, is_host_byte, Relay};

/// The relay forms accepted, quoted in every parse error.
pub const ACCEPTED_FORMS: &str = "accepted forms: direct, http://[USER:PASSWORD@]HOST:PORT, \
     socks5://[USER:PASSWORD@]HOST:PORT (or socks5h://), socks4a://[USER@]HOST:PORT, \
     ssh://[USER@]HOST[:PORT]; put IPv6 addresses in brackets ([::1]) and percent-encode \
     ':', '@' and '%' in user names and passwords";

/// A relay string that is not one of the [accepted forms](ACCEPTED_FORMS).
///
/// The input is quoted with its password replaced by `***`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid relay {input:?}: {problem} ({ACCEPTED_FORMS})")]
pub struct RelayParseError {
    input: String,
    problem: String,
}

impl RelayParseError {
    /// What is wrong, without the list of accepted forms.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Socks5,
    Socks4a,
    Ssh,
}

impl FromStr for Relay {
    type Err = RelayParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        parse(input.trim()).map_err(|problem| RelayParseError {
            input: redact_input(input),
            problem,
        })
    }
}

fn parse(s: &str) -> Result<Relay, String> {
    if s.eq_ignore_ascii_case("direct") {
        return Ok(Relay::Direct);
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err("no scheme (such as http://) and not \"direct\"".to_owned());
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "socks5" | "socks5h" => Scheme::Socks5,
        "socks4a" => Scheme::Socks4a,
        "ssh" => Scheme::Ssh,
        "https" => {
            return Err("proxies reached over TLS (https://) are not supported; \
                        the tunnel to the hub is TLS already: use http://"
                .to_owned())
        }
        "socks4" => return Err("plain SOCKS4 cannot pass host names; use socks4a://".to_owned()),
        "" => return Err("the scheme is empty".to_owned()),
        other => return Err(format!("unknown scheme {other:?}")),
    };

    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err("a relay URL has no path, query or fragment".to_owned());
    }
    // The last '@' ends the user part, so an unencoded '@' in a password still
    // parses as people expect.
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, rest),
    };
    let (host, port) = parse_host_port(hostport)?;
    let credentials = userinfo.map(parse_userinfo).transpose()?;

    let need_port = |port: Option<u16>| {
        port.ok_or_else(|| format!("{hostport:?} has no port; a proxy needs HOST:PORT"))
    };
    match scheme {
        Scheme::Http | Scheme::Socks5 => {
            let port = need_port(port)?;
            let auth = credentials.map(|(user, pass)| (user, pass.unwrap_or_default()));
            if scheme == Scheme::Socks5 {
                if let Some((user, pass)) = &auth {
                    // RFC 1929: one length byte each.
                    if user.len() > 255 || pass.len() > 255 {
                        return Err("SOCKS5 user names and passwords are at most 255 bytes".into());
                    }
                }
                Ok(Relay::Socks5 { host, port, auth })
            } else {
                Ok(Relay::Http { host, port, auth })
            }
        }
        Scheme::Socks4a => {
            let port = need_port(port)?;
            let user = match credentials {
                Some((_, Some(_))) => {
                    return Err("SOCKS4a has a user id but no password".to_owned())
                }
                Some((user, None)) => Some(user),
                None => None,
            };
            Ok(Relay::Socks4a { host, port, user })
        }
        Scheme::Ssh => {
            let user = match credentials {
                Some((_, Some(_))) => {
                    return Err("ssh:// takes no password: ssh uses your keys, agent \
                                and ~/.ssh/config"
                        .to_owned())
                }
                Some((user, None)) => Some(user),
                None => None,
            };
            Ok(Relay::Ssh {
                host,
                port,
                user,
                extra_args: Vec::new(),
            })
        }
    }
}

/// `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT`.
fn parse_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = s.strip_prefix('[') {
        let Some((inner, after)) = bracketed.split_once(']') else {
            return Err(format!("{s:?} has '[' without ']'"));
        };
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{inner:?} in brackets is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("unexpected {after:?} after ']'")),
            },
        };
        (inner, port)
    } else {
        match s.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(format!(
                    "{s:?}: put IPv6 addresses in brackets, as in [::1]:1080"
                ))
            }
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    let is_ip = host.parse::<IpAddr>().is_ok();
    if !is_ip && !host.bytes().all(is_host_byte) {
        return Err(format!(
            "{host:?} is not a host name (letters, digits, '-', '.', '_')"
        ));
    }
    if host.starts_with('-') {
        return Err(format!("{host:?}: a host name must not start with '-'"));
    }
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("{p:?} is not a port (1-65535)")),
            Ok(port) => Ok(port),
        })
        .transpose()?;
    Ok((host.to_owned(), port))
}

/// `USER` or `USER:PASSWORD`, percent-decoded.
fn parse_userinfo(s: &str) -> Result<(String, Option<String>), String> {
    let (user, pass) = match s.split_once(':') {
        Some((user, pass)) => (user, Some(pass)),
        None => (s, None),
    };
    let user = percent_decode(user).map_err(|e| format!("user name: {e}"))?;
    if user.is_empty() {
        return Err("the user name before '@' is empty".to_owned());
    }
    let pass = pass
        .map(|p| percent_decode(p).map_err(|e| format!("password: {e}")))
        .transpose()?;
    if user.contains('\0') || pass.as_deref().is_some_and(|p| p.contains('\0')) {
        return Err("user names and passwords must not contain NUL (%00)".to_owned());
    }
    Ok((user, pass))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("'%' must be followed by two hex digits (write %25 for '%')")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoded bytes are not UTF-8".to_owned())
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The input with the password in `scheme://user:PASSWORD@host` replaced by
/// `***`, for error messages.
fn redact_input(input: &str) -> String {
    let Some(start) = input.find("://").map(|i| i + 3) else {
        return input.to_owned();
    };
    let authority_end = input[start..]
        .find(['/', '?', '#'])
        .map_or(input.len(), |i| start + i);
    let authority = &input[start..authority_end];
    let Some(at) = authority.rfind('@') else {
        return input.to_owned();
    };
    match authority[..at].find(':') {
        Some(colon) => format!("{}***{}", &input[..start + colon + 1], &input[start + at..]),
        None => input.to_owned(),
    }
}

/// The password shown in `Display` and `Debug`.
const REDACTED: &str = "***";

impl fmt::Display for Relay {
    /// The relay in URL form, password shown as `***`. Ssh `extra_args` are
    /// not part of the URL and not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user_pass = |auth: &Option<(String, String)>| match auth {
            Some((user, pass)) if pass.is_empty() => format!("{}@", percent_encode(user)),
            Some((user, _)) => format!("{}:{REDACTED}@", percent_encode(user)),
            None => String::new(),
        };
        let user_only = |user: &Option<String>| match user {
            Some(user) => format!("{}@", percent_encode(user)),
            None => String::new(),
        };
        match self {
            Relay::Direct => f.write_str("direct"),
            Relay::Http { host, port, auth } => {
                write!(f, "http://{}{}", user_pass(auth), host_port(host, *port))
            }
            Relay::Socks5 { host, port, auth } => {
                write!(f, "socks5://{}{}", user_pass(auth), host_port(host, *port))
            }
            Relay::Socks4a { host, port, user } => {
                write!(f, "socks4a://{}{}", user_only(user), host_port(host, *port))
            }
            Relay::Ssh {
                host, port, user, ..
            } => {
                write!(f, "ssh://{}", user_only(user))?;
                match port {
                    Some(port) => f.write_str(&host_port(host, *port)),
                    None if host.contains(':') => write!(f, "[{host}]"),
                    None => f.write_str(host),
                }
            }
        }
    }
}

impl fmt::Debug for Relay {
    /// Like a derived `Debug`, with passwords as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |auth: &Option<(String, String)>| {
            auth.as_ref().map(|(user, _)| (user.clone(), REDACTED))
        };
        match self {
            Relay::Direct => f.write_str("Direct"),
            Relay::Http { host, port, auth } => f
                .debug_struct("Http")
                .field("host", host)
                .field("port", port)
                .field("auth", &redacted(auth))
                .finish(),
            Relay::Socks5 { host, port, auth } => f
                .debug_struct("Socks5")
                .field("host", host)
                .field("port", port)
                .field("auth", &redacted(auth))
                .finish(),
            Relay::Socks4a { host, port, user } => f
                .debug_struct("Socks4a")
                .field("host", host)
                .field("port", port)
                .field("user", user)
                .finish(),
            Relay::Ssh {
                host,
                port,
                user,
                extra_args,
            } => f
                .debug_struct("Ssh")
                .field("host", host)
                .field("port", port)
                .field("user", user)
                .field("extra_args", extra_args)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(user: &str, pass: &str) -> Option<(String, String)> {
        Some((user.to_owned(), pass.to_owned()))
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%3Ab%40c%25d").unwrap(), "a:b@c%d");
        assert_eq!(percent_decode("%C3%A9t%c3%a9").unwrap(), "été");
        assert!(percent_decode("%").is_err());
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%FF").is_err());
    }

    #[test]
    fn encoding_round_trips() {
        for s in ["alice", "a:b@c%d e", "été", "~x_y-z."] {
            assert_eq!(percent_decode(&percent_encode(s)).unwrap(), s);
        }
    }

    #[test]
    fn redacts_the_password_in_the_input() {
        assert_eq!(
            redact_input("http://alice:secret@host:3128/x"),
            "http://alice:***@host:3128/x"
        );
        assert_eq!(redact_input("socks5://a:p@ss@host"), "socks5://a:***@host");
        assert_eq!(redact_input("ssh://root@host"), "ssh://root@host");
        assert_eq!(redact_input("junk"), "junk");
    }

    #[test]
    fn parses_the_simple_forms() {
        assert_eq!("direct".parse::<Relay>().unwrap(), Relay::Direct);
        assert_eq!(
            "HTTP://proxy:3128/".parse::<Relay>().unwrap(),
            Relay::Http {
                host: "proxy".into(),
                port: 3128,
                auth: None
            }
        );
        assert_eq!(
            "socks5://alice@[2001:db8::1]:1080"
                .parse::<Relay>()
                .unwrap(),
            Relay::Socks5 {
                host: "2001:db8::1".into(),
                port: 1080,
                auth: auth("alice", "")
            }
        );
    }
}
