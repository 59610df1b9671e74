//! Who gets a session: the hub's decisions on an upgrade request, without
//! sockets, clocks or locks, and the typed refusal both ends share.
//!
//! ```text
//!   UpgradeRequest + Facts ──► decide ──► Decision::New           (then: log in, check_capacity)
//!   (gathered by the shell)               Decision::Resume { shard, slot }
//!                                         Decision::Refuse(Refuse) ──► Refuse::emit ──► HTTP answer
//!                                                                       client: Refusal::refuse
//! ```
//!
//! The shell gathers the [`Facts`] (is the hub there, what does the
//! registry know of the token, does the user still exist), asks
//! [`decide`], and acts: a new session goes on to authentication and
//! [`check_capacity`]; a resume attaches to the named slot (moving the
//! connection to that shard if needed) where [`Session::resume`]'s answer
//! is mapped by [`resume_refusal`]. `sim.rs` runs the same functions, so
//! the resume property tests exercise the hub's own admission.
//!
//! What it does not do: check passwords or certificates (slow, on the
//! hub's auth threads), count failed logins (`hub::throttle`), or make
//! tokens (randomness is the caller's).
//!
//! [`Session::resume`]: crate::session::Session::resume

use std::fmt;

use crate::session::ResumeError;
use crate::wire::http::{self, Refusal, Status, UpgradeRequest};

/// Why the hub refused an upgrade: the `Vhub-Error` code of its answer.
/// Each has one status and says whether trying again can succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefuseCode {
    /// 401: the hub needs credentials and none were given.
    AuthRequired,
    /// 401: wrong user name or password.
    AuthFailed,
    /// 401: the client certificate is bound to no user (of that name).
    CertNotBound,
    /// 401: several users are bound to the certificate; name one.
    CertAmbiguous,
    /// 401: the client certificate did not verify.
    CertRefused,
    /// 429: too many failed logins from this address or for this user.
    LoginThrottled,
    /// 404: no virtual hub of that name takes sessions here.
    UnknownHub,
    /// 410: the resume token names no session (expired, or the hub
    /// restarted): start a new one.
    SessionUnknown,
    /// 409: the resume claims frames the hub never sent.
    BadResume,
    /// 429: the hub (or the virtual hub) is at its session limit.
    LimitSessions,
    /// 429: the user is at its session limit on this hub.
    LimitSessionsUser,
    /// 503: the hub is stopping.
    ShuttingDown,
}

impl RefuseCode {
    pub const ALL: [RefuseCode; 12] = [
        RefuseCode::AuthRequired,
        RefuseCode::AuthFailed,
        RefuseCode::CertNotBound,
        RefuseCode::CertAmbiguous,
        RefuseCode::CertRefused,
        RefuseCode::LoginThrottled,
        RefuseCode::UnknownHub,
        RefuseCode::SessionUnknown,
        RefuseCode::BadResume,
        RefuseCode::LimitSessions,
        RefuseCode::LimitSessionsUser,
        RefuseCode::ShuttingDown,
    ];

    /// The `Vhub-Error` value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefuseCode::AuthRequired => "auth-required",
            RefuseCode::AuthFailed => "auth-failed",
            RefuseCode::CertNotBound => "cert-not-bound",
            RefuseCode::CertAmbiguous => "cert-ambiguous",
            RefuseCode::CertRefused => "cert-refused",
            RefuseCode::LoginThrottled => "login-throttled",
            RefuseCode::UnknownHub => "unknown-hub",
            RefuseCode::SessionUnknown => "session-unknown",
            RefuseCode::BadResume => "bad-resume",
            RefuseCode::LimitSessions => "limit-sessions",
            RefuseCode::LimitSessionsUser => "limit-sessions-user",
            RefuseCode::ShuttingDown => "shutting-down",
        }
    }

    /// The code named by a `Vhub-Error` value; `None` for one this build
    /// does not know (a newer hub, or an HTTP error of the front).
    pub fn parse(s: &str) -> Option<RefuseCode> {
        RefuseCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The HTTP status that carries it.
    pub fn status(self) -> Status {
        match self {
            RefuseCode::AuthRequired
            | RefuseCode::AuthFailed
            | RefuseCode::CertNotBound
            | RefuseCode::CertAmbiguous
            | RefuseCode::CertRefused => Status::UNAUTHORIZED,
            RefuseCode::LoginThrottled
            | RefuseCode::LimitSessions
            | RefuseCode::LimitSessionsUser => Status::TOO_MANY_REQUESTS,
            RefuseCode::UnknownHub => Status::NOT_FOUND,
            RefuseCode::SessionUnknown => Status::GONE,
            RefuseCode::BadResume => Status::CONFLICT,
            RefuseCode::ShuttingDown => Status::SERVICE_UNAVAILABLE,
        }
    }

    /// Whether the same request can succeed later. Authentication
    /// failures and unknown hubs are final: retrying them in a loop would
    /// only lock accounts. A 410 is final for the session, not for the
    /// client: it starts a new one at once.
    pub fn is_retryable(self) -> bool {
        status_is_retryable(self.status())
    }
}

impl fmt::Display for RefuseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The retry rule by status, for answers with or without a known code.
pub(crate) fn status_is_retryable(status: Status) -> bool {
    matches!(status.0, 410 | 429 | 503) || status.0 >= 500
}

/// A refused upgrade as the hub sends it and the client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refuse {
    pub code: RefuseCode,
    /// For a person: what happened and what to do.
    pub reason: String,
    /// `Retry-After`, seconds.
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate: Basic realm="…"` (401s).
    pub realm: Option<String>,
}

impl Refuse {
    pub fn new(code: RefuseCode, reason: impl Into<String>) -> Self {
        Refuse {
            code,
            reason: reason.into(),
            retry_after: None,
            realm: None,
        }
    }

    /// With a `Retry-After` of `secs` seconds.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// With a `WWW-Authenticate` challenge for `realm`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    pub fn status(&self) -> Status {
        self.code.status()
    }

    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }

    /// Appends the HTTP answer (status, `Vhub-Error`, the extra headers,
    /// the reason as the body).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let retry = self.retry_after.map(|s| format!("Retry-After: {s}"));
        let realm = self
            .realm
            .as_ref()
            .map(|r| format!("WWW-Authenticate: Basic realm=\"{r}\""));
        let extra: Vec<&str> = retry
            .iter()
            .chain(realm.iter())
            .map(String::as_str)
            .collect();
        http::emit_error(out, self.status(), self.code.as_str(), &self.reason, &extra);
    }

    /// Reads a refusal the client received; `None` when its `Vhub-Error`
    /// is not a known code (an HTTP error of the front, a proxy's answer,
    /// a newer hub) or does not match its status.
    pub fn parse(r: &Refusal) -> Option<Refuse> {
        let code = RefuseCode::parse(&r.code).filter(|c| c.status() == r.status)?;
        Some(Refuse {
            code,
            reason: r.reason.clone(),
            retry_after: r.retry_after,
            realm: None,
        })
    }
}

impl fmt::Display for Refuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.status().0, self.code, self.reason)
    }
}

/// A virtual hub as [`decide`] needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubFacts {
    /// The hub's index (the shell's own numbering).
    pub index: usize,
    /// Sessions without credentials are admitted.
    pub anonymous: bool,
}

/// What the session registry knows of a resume token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownSession<'a> {
    pub hub: usize,
    /// "" for an anonymous session.
    pub user: &'a str,
    pub shard: u16,
    pub slot: u32,
    /// The user is still configured on that hub (the users file may have
    /// changed since the session began).
    pub user_exists: bool,
}

/// What the shell knows when an upgrade request arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts<'a> {
    pub shutting_down: bool,
    /// The hub named in the request, if it exists and takes sessions.
    pub hub: Option<HubFacts>,
    /// The registry's entry for the resume token, if any.
    pub session: Option<KnownSession<'a>>,
}

/// What to do with an upgrade request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// A new session: authenticate, then [`check_capacity`].
    New {
        hub: usize,
    },
    /// Attach to the existing session at `(shard, slot)` (on another shard:
    /// move the connection there first).
    Resume {
        hub: usize,
        shard: u16,
        slot: u32,
    },
    Refuse(Refuse),
}

/// Decides an upgrade request from the facts. A resume is admitted only
/// for a session of the same hub whose user (if the request names one) is
/// the same and still exists — or, for an anonymous session, whose hub is
/// still anonymous.
pub fn decide(req: &UpgradeRequest, facts: &Facts<'_>) -> Decision {
    if facts.shutting_down {
        return Decision::Refuse(
            Refuse::new(
                RefuseCode::ShuttingDown,
                "the hub is shutting down; try again shortly",
            )
            .retry_after(5),
        );
    }
    let Some(hub) = facts.hub else {
        return Decision::Refuse(Refuse::new(
            RefuseCode::UnknownHub,
            format!("no virtual hub named {:?} here", req.hub),
        ));
    };
    let Some(_) = req.resume else {
        return Decision::New { hub: hub.index };
    };
    let same_user = |known: &KnownSession<'_>| {
        req.credentials
            .as_ref()
            .is_none_or(|c| c.user == known.user)
    };
    match facts.session {
        Some(k)
            if k.hub == hub.index
                && same_user(&k)
                && if k.user.is_empty() {
                    hub.anonymous
                } else {
                    k.user_exists
                } =>
        {
            Decision::Resume {
                hub: hub.index,
                shard: k.shard,
                slot: k.slot,
            }
        }
        _ => Decision::Refuse(Refuse::new(
            RefuseCode::SessionUnknown,
            "this hub does not know that session (restarted or expired); start a new one",
        )),
    }
}

/// Session counts for [`check_capacity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Sessions of the requested virtual hub, and its own limit (0 = none).
    pub hub_sessions: usize,
    pub hub_max: usize,
    /// Sessions of the whole hub, and its limit.
    pub total: usize,
    pub total_max: usize,
}

/// Which session limit a new session would pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The virtual hub's `max_sessions`.
    Hub,
    /// The hub's `limits.max_sessions`.
    Total,
}

/// Whether a new session fits; the refusal names the limit it would pass.
pub fn check_capacity(c: Capacity) -> Result<(), (Full, Refuse)> {
    let full = if c.hub_max > 0 && c.hub_sessions >= c.hub_max {
        Full::Hub
    } else if c.total >= c.total_max {
        Full::Total
    } else {
        return Ok(());
    };
    Err((
        full,
        Refuse::new(
            RefuseCode::LimitSessions,
            "the hub has reached its session limit",
        )
        .retry_after(30),
    ))
}

/// The refusal for a user at its session limit on a hub.
pub fn user_limit_refusal(user: &str, limit: usize) -> Refuse {
    Refuse::new(
        RefuseCode::LimitSessionsUser,
        format!(
            "user {user:?} has reached its limit of {limit} sessions on this hub; end one first"
        ),
    )
    .retry_after(30)
}

/// The answer to a resume that reached its slot: `None` to attach, or the
/// refusal. `found`: the slot still holds the session the token names.
pub fn resume_refusal(found: Option<Result<(), ResumeError>>) -> Option<Refuse> {
    match found {
        Some(Ok(())) => None,
        Some(Err(e @ ResumeError::RxFromTheFuture { .. })) => {
            Some(Refuse::new(RefuseCode::BadResume, e.to_string()))
        }
        Some(Err(ResumeError::Closed)) => Some(Refuse::new(
            RefuseCode::SessionUnknown,
            "that session has ended; start a new one",
        )),
        None => Some(Refuse::new(
            RefuseCode::SessionUnknown,
            "this hub does not know that session; start a new one",
        )),
    }
}

#[cfg(test)]
mod tests;
