//! SoftEther's numeric error codes (`ERR_*` in `src/Cedar/Cedar.h`,
//! PROTOCOL-NOTES.md §5.6) as they travel in the `error` INT of a PACK, and
//! how the real client reacts to each.

use std::fmt;
use std::time::Duration;

/// An `error` value of a PACK. The codes a hub or vnic meets are named;
/// any other is kept as [`ErrorCode::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: client-side "connection to the server failed" (a failed probe).
    ConnectFailed,
    /// 2: client-side: the hello was missing or invalid.
    ServerIsNotVpn,
    /// 3
    Disconnected,
    /// 4: a bad PACK, a missing field, an unknown `method`.
    ProtocolError,
    /// 7: unknown or forbidden `authtype`.
    AuthTypeNotSupported,
    /// 8: no virtual hub of that name.
    HubNotFound,
    /// 9: wrong user name or password. The client retries after its
    /// RetryInterval (15 s by default) forever.
    AuthFailed,
    /// 10: the hub is stopping; the client retries after 60 s.
    HubStopping,
    /// 12: policy Access=0, expired user, ….
    AccessDenied,
    /// 13: `additional_connect` to an unknown or ended session. The client
    /// ends its session at once and logs in again from scratch: the fast
    /// way back after a lost connection (§8).
    SessionTimeout,
    /// 14: `additional_connect` to a non-TCP session; the client reacts as to 13.
    InvalidProtocol,
    /// 15: too many TCP connections for the session.
    TooManyConnection,
    /// 16: session limits; the client retries after 60 s.
    HubIsBusy,
    /// 20: the user's multi-login limit; the client retries after 60 s.
    TooManyUserSession,
    /// 51: an empty password from a remote address.
    NullPasswordLocalOnly,
    /// 85: client-side: the server certificate is not trusted (no retry).
    CertNotTrusted,
    /// 87: the client is too old for a hub option.
    VersionInvalid,
    /// 105: the hub does not accept connections.
    ServerCantAccept,
    /// 109: the client's address is denied.
    IpAddressDenied,
    /// 124: branding mismatch, client to server.
    BrandedCToS,
    /// 125: branding mismatch, server to client.
    BrandedCFromS,
    /// Any other non-zero code.
    Other(u32),
}

impl ErrorCode {
    /// The code for a non-zero `error` value; `None` for 0 (no error).
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => return None,
            1 => Self::ConnectFailed,
            2 => Self::ServerIsNotVpn,
            3 => Self::Disconnected,
            4 => Self::ProtocolError,
            7 => Self::AuthTypeNotSupported,
            8 => Self::HubNotFound,
            9 => Self::AuthFailed,
            10 => Self::HubStopping,
            12 => Self::AccessDenied,
            13 => Self::SessionTimeout,
            14 => Self::InvalidProtocol,
            15 => Self::TooManyConnection,
            16 => Self::HubIsBusy,
            20 => Self::TooManyUserSession,
            51 => Self::NullPasswordLocalOnly,
            85 => Self::CertNotTrusted,
            87 => Self::VersionInvalid,
            105 => Self::ServerCantAccept,
            109 => Self::IpAddressDenied,
            124 => Self::BrandedCToS,
            125 => Self::BrandedCFromS,
            v => Self::Other(v),
        })
    }

    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::ConnectFailed => 1,
            Self::ServerIsNotVpn => 2,
            Self::Disconnected => 3,
            Self::ProtocolError => 4,
            Self::AuthTypeNotSupported => 7,
            Self::HubNotFound => 8,
            Self::AuthFailed => 9,
            Self::HubStopping => 10,
            Self::AccessDenied => 12,
            Self::SessionTimeout => 13,
            Self::InvalidProtocol => 14,
            Self::TooManyConnection => 15,
            Self::HubIsBusy => 16,
            Self::TooManyUserSession => 20,
            Self::NullPasswordLocalOnly => 51,
            Self::CertNotTrusted => 85,
            Self::VersionInvalid => 87,
            Self::ServerCantAccept => 105,
            Self::IpAddressDenied => 109,
            Self::BrandedCToS => 124,
            Self::BrandedCFromS => 125,
            Self::Other(v) => v,
        }
    }

    /// Whether a client should give up on the session and log in again
    /// from scratch (13, 14: the server no longer knows the session).
    pub fn session_gone(self) -> bool {
        matches!(self, Self::SessionTimeout | Self::InvalidProtocol)
    }

    /// How long the real client waits before its next attempt: 60 s for
    /// 10, 16, 20, 21, otherwise its RetryInterval (15 s by default);
    /// `None` for 85, which it does not retry (§5.6).
    pub fn retry_after(self) -> Option<Duration> {
        match self.to_u32() {
            85 => None,
            10 | 16 | 20 | 21 => Some(Duration::from_secs(60)),
            _ => Some(Duration::from_secs(15)),
        }
    }

    /// What the code means, for a person reading a log.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ConnectFailed => "connection to the server failed",
            Self::ServerIsNotVpn => "the server is not a SoftEther VPN server",
            Self::Disconnected => "disconnected",
            Self::ProtocolError => "protocol error",
            Self::AuthTypeNotSupported => "authentication type not supported",
            Self::HubNotFound => "no virtual hub of that name",
            Self::AuthFailed => "wrong user name or password",
            Self::HubStopping => "the virtual hub is stopping",
            Self::AccessDenied => "access denied",
            Self::SessionTimeout => "the session is gone (log in again)",
            Self::InvalidProtocol => "the session does not take TCP connections",
            Self::TooManyConnection => "too many TCP connections for the session",
            Self::HubIsBusy => "the virtual hub is at its session limit",
            Self::TooManyUserSession => "the user is at its session limit",
            Self::NullPasswordLocalOnly => "an empty password is refused from remote addresses",
            Self::CertNotTrusted => "the server certificate is not trusted",
            Self::VersionInvalid => "the client version is not accepted",
            Self::ServerCantAccept => "the server does not accept connections",
            Self::IpAddressDenied => "the client address is denied",
            Self::BrandedCToS | Self::BrandedCFromS => "branding mismatch",
            Self::Other(_) => "SoftEther error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SoftEther error {})", self.describe(), self.to_u32())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_with_the_notes_values() {
        let named = [
            (1, ErrorCode::ConnectFailed),
            (4, ErrorCode::ProtocolError),
            (7, ErrorCode::AuthTypeNotSupported),
            (8, ErrorCode::HubNotFound),
            (9, ErrorCode::AuthFailed),
            (13, ErrorCode::SessionTimeout),
            (14, ErrorCode::InvalidProtocol),
            (15, ErrorCode::TooManyConnection),
            (85, ErrorCode::CertNotTrusted),
            (125, ErrorCode::BrandedCFromS),
        ];
        for (v, c) in named {
            assert_eq!(ErrorCode::from_u32(v), Some(c));
            assert_eq!(c.to_u32(), v);
        }
        for v in 1..300 {
            assert_eq!(ErrorCode::from_u32(v).unwrap().to_u32(), v);
        }
        assert_eq!(ErrorCode::from_u32(0), None);
        assert_eq!(ErrorCode::from_u32(21), Some(ErrorCode::Other(21)));
        assert_eq!(
            ErrorCode::Other(21).retry_after(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(ErrorCode::CertNotTrusted.retry_after(), None);
        assert!(ErrorCode::SessionTimeout.session_gone());
        assert!(!ErrorCode::AuthFailed.session_gone());
        assert_eq!(
            ErrorCode::AuthFailed.to_string(),
            "wrong user name or password (SoftEther error 9)"
        );
    }
}
