//! The bounded label values the hub counts by: how a handshake ended
//! ([`Handshake`], the `result` label) and which limit refused a connection
//! ([`Limit`], the `limit` label). Each enum indexes an array in
//! [`Metrics`](super::Metrics), so a label costs no lock and no allocation.

/// Handshake outcomes (the `result` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Handshake {
    New,
    Resumed,
    TlsFailed,
    HttpError,
    Page,
    AuthFailed,
    UnknownHub,
    UnsupportedVersion,
    ResumeUnknown,
    Limited,
    Timeout,
    ShuttingDown,
}

/// The `result` label of each [`Handshake`], in declaration order.
pub(super) const HANDSHAKE_LABELS: [&str; 12] = [
    "new",
    "resumed",
    "tls_failed",
    "http_error",
    "page",
    "auth_failed",
    "unknown_hub",
    "unsupported_version",
    "resume_unknown",
    "limited",
    "timeout",
    "shutting_down",
];

/// Limits that refuse or cut a connection (the `limit` label of
/// `vhub_limit_refusals_total`). Frame-level limits have their own
/// counters (`vhub_frames_dropped_total`, `vhub_mac_refused_total`,
/// `vhub_protocol_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Limit {
    HandshakeTimeout,
    HeaderBytes,
    HandshakesPerShard,
    HandshakesPerAddress,
    Sessions,
    SessionsPerHub,
    SessionsPerUser,
    LoginFailuresPerAddress,
    LoginFailuresPerUser,
}

impl Limit {
    pub const ALL: [Limit; 9] = [
        Limit::HandshakeTimeout,
        Limit::HeaderBytes,
        Limit::HandshakesPerShard,
        Limit::HandshakesPerAddress,
        Limit::Sessions,
        Limit::SessionsPerHub,
        Limit::SessionsPerUser,
        Limit::LoginFailuresPerAddress,
        Limit::LoginFailuresPerUser,
    ];

    /// The label, also the name used in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::HandshakeTimeout => "handshake_timeout",
            Limit::HeaderBytes => "header_bytes",
            Limit::HandshakesPerShard => "handshakes_per_shard",
            Limit::HandshakesPerAddress => "handshakes_per_address",
            Limit::Sessions => "sessions",
            Limit::SessionsPerHub => "sessions_per_hub",
            Limit::SessionsPerUser => "sessions_per_user",
            Limit::LoginFailuresPerAddress => "login_failures_per_address",
            Limit::LoginFailuresPerUser => "login_failures_per_user",
        }
    }
}
