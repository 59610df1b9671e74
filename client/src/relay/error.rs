//! What went wrong on the way to the hub, and at which hop.

use std::io;
use std::time::Duration;

/// Why [`connect`](super::connect) could not open a stream to the hub.
///
/// Every message names the hop that failed (`HTTP proxy 127.0.0.1:3128`,
/// `ssh to relay.example`, …) and, where the relay answered, what it said.
/// Messages already contain the underlying I/O error's text, so
/// [`source`](std::error::Error::source) is not set (printing the chain would
/// repeat it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The hub address given to `connect` cannot be sent to a relay.
    #[error("cannot connect to hub {target}: {problem}")]
    BadTarget { target: String, problem: String },

    /// No TCP connection to the first hop (the proxy, or the hub when direct).
    #[error("cannot reach {hop}: {}", describe_io(.error))]
    Unreachable { hop: String, error: io::Error },

    /// The first hop answered, then the connection failed during the relay's
    /// handshake (`during` says which step: "while reading the CONNECT response").
    #[error("{}", handshake_message(.hop, .during, .error))]
    Handshake {
        hop: String,
        during: &'static str,
        error: io::Error,
    },

    /// The HTTP proxy answered CONNECT with a status other than 2xx.
    #[error(
        "{proxy} refused CONNECT {target}: {status} {reason}{}{}",
        http_hint(*.status, .user.as_deref()),
        excerpt_suffix(.body_excerpt)
    )]
    HttpRefused {
        proxy: String,
        target: String,
        status: u16,
        reason: String,
        /// Readable text from the start of the proxy's error page (HTML tags
        /// removed), at most a few hundred characters; may be empty.
        body_excerpt: String,
        /// The user name sent in `Proxy-Authorization`, if any.
        user: Option<String>,
    },

    /// The HTTP proxy's answer is not HTTP.
    #[error("{proxy} sent an invalid answer to CONNECT: {problem}")]
    HttpProtocol { proxy: String, problem: String },

    /// The SOCKS server does not accept any authentication method offered.
    #[error("{proxy} accepts none of the offered authentication methods ({}){}",
        if *.offered_auth { "none, username/password" } else { "none" },
        if *.offered_auth { "" } else {
            "; it probably wants a user name and password: socks5://USER:PASSWORD@host:port"
        })]
    SocksNoAcceptableMethod { proxy: String, offered_auth: bool },

    /// The SOCKS server rejected the user name and password (RFC 1929), or,
    /// for SOCKS4a, the user id did not match what identd reported.
    #[error("{proxy}: authentication failed (user {user})")]
    SocksAuthFailed { proxy: String, user: String },

    /// The SOCKS5 server could not or would not connect to the hub.
    #[error("{proxy} could not connect to {target}: {} (SOCKS5 reply {code:#04x})",
        socks5_reply_meaning(*.code))]
    Socks5Refused {
        proxy: String,
        target: String,
        code: u8,
    },

    /// The SOCKS4a server could not or would not connect to the hub.
    #[error("{proxy} could not connect to {target}: {} (SOCKS4 reply {code:#04x})",
        socks4_reply_meaning(*.code))]
    Socks4Refused {
        proxy: String,
        target: String,
        code: u8,
    },

    /// The SOCKS server's answer does not follow the protocol.
    #[error("{proxy} broke the SOCKS protocol: {problem}")]
    SocksProtocol { proxy: String, problem: String },

    /// The `ssh` program could not be started.
    #[error("{relay}: cannot run the ssh program: {}{}", describe_io(.error),
        if .error.kind() == io::ErrorKind::NotFound {
            "; install OpenSSH's client (Debian: openssh-client) or put ssh on PATH"
        } else { "" })]
    SshSpawn { relay: String, error: io::Error },

    /// `ssh` exited (before or after the stream was up). `messages` holds
    /// ssh's last non-debug stderr lines, joined with "; ".
    #[error("{relay} exited with {status}: {}",
        if .messages.is_empty() { "(ssh printed no message)" } else { .messages.as_str() })]
    SshExited {
        relay: String,
        /// "status 255" or "signal 9".
        status: String,
        messages: String,
    },

    /// `connect` did not finish within its time limit.
    #[error("no connection to hub {target} {relay} within {after:?}")]
    Timeout {
        /// "directly" or "through HTTP proxy 127.0.0.1:3128".
        relay: String,
        target: String,
        after: Duration,
    },
}

impl RelayError {
    /// For `map_err`: an I/O error on the relay hop `hop` while doing `during`.
    pub(crate) fn handshake_io<'a>(
        hop: &'a str,
        during: &'static str,
    ) -> impl FnOnce(io::Error) -> RelayError + 'a {
        move |error| RelayError::Handshake {
            hop: hop.to_owned(),
            during,
            error,
        }
    }

    /// Whether the relay refused our credentials (or demanded some we do not
    /// have): HTTP 407, SOCKS authentication rejected or no acceptable
    /// method, ssh "Permission denied". Retrying with the same settings fails
    /// the same way and may lock the account, so the client must not retry
    /// these in a loop.
    pub fn is_auth_failure(&self) -> bool {
        match self {
            RelayError::HttpRefused { status, .. } => *status == 407,
            RelayError::SocksNoAcceptableMethod { .. } | RelayError::SocksAuthFailed { .. } => true,
            RelayError::SshExited { messages, .. } => {
                messages.contains("Permission denied")
                    || messages.contains("Too many authentication failures")
            }
            _ => false,
        }
    }
}

/// An I/O error's text without the "(os error N)" suffix, starting lower case:
/// "connection refused".
pub(crate) fn describe_io(error: &io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error ") {
        Some(i) if error.raw_os_error().is_some() => &text[..i],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn handshake_message(hop: &str, during: &str, error: &io::Error) -> String {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        format!("{hop} closed the connection {during}")
    } else {
        format!("{hop}: I/O error {during}: {}", describe_io(error))
    }
}

fn http_hint(status: u16, user: Option<&str>) -> String {
    match (status, user) {
        (407, None) => " (the proxy wants credentials: give them in the relay URL as \
                        http://USER:PASSWORD@host:port)"
            .to_owned(),
        (407, Some(user)) => format!(" (the proxy rejected the credentials of user {user})"),
        _ => String::new(),
    }
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!("; the proxy said: {excerpt}")
    }
}

/// RFC 1928 section 6.
pub(crate) fn socks5_reply_meaning(code: u8) -> &'static str {
    match code {
        0x01 => "general SOCKS server failure",
        0x02 => "connection not allowed by ruleset",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused by the target",
        0x06 => "TTL expired",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        _ => "unassigned reply code",
    }
}

/// The SOCKS4 protocol document, "CD" field of the reply.
pub(crate) fn socks4_reply_meaning(code: u8) -> &'static str {
    match code {
        0x5B => "request rejected or failed",
        0x5C => "the proxy could not reach identd on this host",
        0x5D => "identd reported a different user id",
        _ => "unassigned reply code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_hop_and_the_answer() {
        let e = RelayError::HttpRefused {
            proxy: "HTTP proxy 127.0.0.1:3128".into(),
            target: "hub:8443".into(),
            status: 407,
            reason: "Proxy Authentication Required".into(),
            body_excerpt: String::new(),
            user: None,
        };
        assert!(e.to_string().starts_with(
            "HTTP proxy 127.0.0.1:3128 refused CONNECT hub:8443: 407 Proxy Authentication Required (the proxy wants credentials"
        ), "{e}");
        assert!(e.is_auth_failure());

        let e = RelayError::Unreachable {
            hop: "HTTP proxy 127.0.0.1:3128".into(),
            error: io::Error::from_raw_os_error(libc::ECONNREFUSED),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach HTTP proxy 127.0.0.1:3128: connection refused"
        );
        assert!(!e.is_auth_failure());

        let e = RelayError::Socks5Refused {
            proxy: "SOCKS5 proxy 127.0.0.1:1080".into(),
            target: "hub:443".into(),
            code: 5,
        };
        assert_eq!(
            e.to_string(),
            "SOCKS5 proxy 127.0.0.1:1080 could not connect to hub:443: connection refused by the target (SOCKS5 reply 0x05)"
        );

        let e = RelayError::SshExited {
            relay: "ssh to relay.example".into(),
            status: "status 255".into(),
            messages: "root@relay.example: Permission denied (publickey).".into(),
        };
        assert_eq!(
            e.to_string(),
            "ssh to relay.example exited with status 255: root@relay.example: Permission denied (publickey)."
        );
        assert!(e.is_auth_failure());

        let e = RelayError::Handshake {
            hop: "SOCKS5 proxy 127.0.0.1:1080".into(),
            during: "while reading the SOCKS5 reply",
            error: io::ErrorKind::UnexpectedEof.into(),
        };
        assert_eq!(
            e.to_string(),
            "SOCKS5 proxy 127.0.0.1:1080 closed the connection while reading the SOCKS5 reply"
        );
    }
}
