//! Who a new session belongs to: anonymous, a password login, or a
//! certificate login, with failed logins slowed down and then refused per
//! address and per user (`throttle.rs`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use certs::tls::ClientCert;
use switch_core::admission::{Refuse, RefuseCode};
use switch_core::wire::http::Credentials;
use tracing::info;

use super::Shard;
use crate::auth::{AuthResult, CertLogin};
use crate::metrics::Limit;
use crate::net::Backend;
use crate::throttle::{Scope, Verdict};

/// The rate-limit slot of "authentication failed" log lines (after the
/// [`Limit`] ones).
const AUTH_LOG_SLOT: usize = 15;

impl<B: Backend> Shard<B> {
    /// Decides who a new session belongs to: anonymous, a password login,
    /// or a certificate login (a client certificate and no password; a
    /// user name, if given, says which user is bound to it). Failed logins
    /// are slowed down, then refused, per address and per user.
    pub(super) async fn login(
        &self,
        hub: &str,
        anonymous: bool,
        creds: Option<&Credentials>,
        cert: &ClientCert,
        peer: SocketAddr,
    ) -> Result<String, Refuse> {
        let realm = format!("vhub {hub}");
        let cert_login = *cert != ClientCert::None && creds.is_none_or(|c| c.password.is_empty());
        let Some(named) = creds.map(|c| c.user.as_str()).or(cert_login.then_some("")) else {
            if anonymous {
                return Ok(String::new());
            }
            let r = Refuse::new(
                RefuseCode::AuthRequired,
                "this hub needs a user name and password (or a client certificate)",
            );
            return Err(r.realm(realm));
        };
        // A password login is throttled by address and user; a certificate
        // login by address only.
        let throttle_user = (!cert_login).then_some((hub, named));
        self.throttle_gate(peer, throttle_user).await?;
        let outcome = if cert_login {
            self.check_cert(hub, (!named.is_empty()).then_some(named), cert)
        } else {
            let c = creds.expect("a password login has credentials");
            match self.ctx.auth.authenticate(hub, &c.user, &c.password).await {
                AuthResult::Ok => Ok(c.user.clone()),
                _ => Err(Refuse::new(
                    RefuseCode::AuthFailed,
                    "wrong user name or password",
                )),
            }
        };
        self.settle_login(outcome, peer, hub, named, throttle_user)
    }

    /// Books a login's outcome with the throttle (a success clears the
    /// address, a failure counts against it and the user) and logs a
    /// failure; the refusal gets the hub's realm. Shared by vhub's and
    /// SoftEther's logins.
    pub(super) fn settle_login(
        &self,
        outcome: Result<String, Refuse>,
        peer: SocketAddr,
        hub: &str,
        named: &str,
        throttle_user: Option<(&str, &str)>,
    ) -> Result<String, Refuse> {
        let ip = peer.ip();
        let mut throttle = self.ctx.admission.throttle.lock();
        match outcome {
            Ok(user) => {
                throttle.succeeded(ip);
                Ok(user)
            }
            Err(refuse) => {
                let before = throttle.untracked();
                throttle.failed(Instant::now(), ip, throttle_user);
                if throttle.untracked() > before {
                    self.sb
                        .metrics
                        .logins_untracked
                        .fetch_add(1, Ordering::Relaxed);
                }
                drop(throttle);
                // The name and the address, never the password or a hash.
                if self.ctx.admission.should_log(AUTH_LOG_SLOT) {
                    let code = refuse.code.as_str();
                    info!(%peer, hub, user = named, code, "authentication failed");
                }
                Err(refuse.realm(format!("vhub {hub}")))
            }
        }
    }

    /// Earlier failures from this address (or for this user) slow the
    /// login down, or refuse it without checking anything.
    pub(super) async fn throttle_gate(
        &self,
        peer: SocketAddr,
        user: Option<(&str, &str)>,
    ) -> Result<(), Refuse> {
        let verdict = self
            .ctx
            .admission
            .throttle
            .lock()
            .check(Instant::now(), peer.ip(), user);
        match verdict {
            Verdict::Go => Ok(()),
            Verdict::Delay(d) => {
                self.sb
                    .metrics
                    .logins_delayed
                    .fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(d).await;
                Ok(())
            }
            Verdict::Refuse { scope, retry_after } => {
                let limit = match scope {
                    Scope::Address => Limit::LoginFailuresPerAddress,
                    Scope::User => Limit::LoginFailuresPerUser,
                };
                self.limit_reached(limit, peer, "login refused without checking; 429");
                let secs = retry_after.as_secs().max(1);
                let r = Refuse::new(
                    RefuseCode::LoginThrottled,
                    format!(
                        "too many failed logins for this {}; try again in {secs} s",
                        scope.as_str()
                    ),
                );
                Err(r.retry_after(secs))
            }
        }
    }

    /// A certificate login: the user bound to the verified certificate
    /// (the one named `name`, if given).
    fn check_cert(
        &self,
        hub: &str,
        name: Option<&str>,
        cert: &ClientCert,
    ) -> Result<String, Refuse> {
        let (fingerprint, subject) = match cert {
            ClientCert::Verified {
                fingerprint,
                subject,
            } => (fingerprint, subject),
            ClientCert::Rejected { reason, .. } => {
                return Err(Refuse::new(
                    RefuseCode::CertRefused,
                    format!("the client certificate was not accepted: {reason}"),
                ))
            }
            ClientCert::None => unreachable!("a certificate login has a certificate"),
        };
        match self
            .ctx
            .auth
            .auth
            .authenticate_cert(hub, name, fingerprint, subject)
        {
            CertLogin::Ok(user) => Ok(user),
            CertLogin::NotBound => Err(Refuse::new(
                RefuseCode::CertNotBound,
                match name {
                    Some(n) => {
                        format!("this client certificate is not bound to user {n:?} on this hub")
                    }
                    None => "this client certificate is not bound to a user of this hub".into(),
                },
            )),
            CertLogin::Ambiguous => Err(Refuse::new(
                RefuseCode::CertAmbiguous,
                "several users of this hub are bound to this certificate; give the user name",
            )),
        }
    }
}
