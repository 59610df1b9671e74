//! Checking a login against the users: a password against its scrypt hash
//! (with the same cost for an unknown user, so that timing does not tell
//! which users exist), a client certificate against the users bound to it.
//! A SoftEther login's proof is checked in `softether.rs`.
//! The hub's auth layer sees [`UserDb`] through
//! [`crate::auth::Authenticator`].

use certs::Fingerprint;

use super::hash::DUMMY_HASH;
use super::store::UserDb;
use super::user::User;
use crate::auth::AuthResult;

impl crate::auth::Authenticator for UserDb {
    fn authenticate(&self, hub: &str, user: &str, password: &str) -> AuthResult {
        UserDb::authenticate(self, hub, user, password)
    }

    fn authenticate_softether(
        &self,
        hub: &str,
        user: &str,
        secure_password: &[u8; 20],
        server_random: &[u8; 20],
    ) -> AuthResult {
        UserDb::authenticate_softether(self, hub, user, secure_password, server_random)
    }

    fn user_exists(&self, hub: &str, user: &str) -> bool {
        self.get(hub, user).is_some()
    }

    fn authenticate_cert(
        &self,
        hub: &str,
        user: Option<&str>,
        fingerprint: &Fingerprint,
        subject: &str,
    ) -> crate::auth::CertLogin {
        UserDb::authenticate_cert(self, hub, user, fingerprint, subject)
    }
}

impl UserDb {
    /// Checks a password. Blocking and slow on purpose (one scrypt); an
    /// unknown user or a user without a password runs one scrypt against a
    /// dummy hash so that timing does not tell which users exist.
    pub fn authenticate(&self, hub: &str, name: &str, password: &str) -> AuthResult {
        let stored = self.get(hub, name);
        let hash = stored.and_then(|u| u.password.as_ref());
        let matched = match hash.unwrap_or(&DUMMY_HASH).verify(password) {
            Ok(m) => m && hash.is_some(),
            Err(e) => {
                tracing::error!(hub, user = name, error = %e, "password verification failed");
                false
            }
        };
        match (stored, matched) {
            (None, _) => AuthResult::UnknownUser,
            (Some(_), true) => AuthResult::Ok,
            (Some(_), false) => AuthResult::BadPassword,
        }
    }

    /// A certificate login on `hub`: the user bound to the certificate by
    /// `cert_fingerprint` (SHA-256) or `cert_subject` (compared in the form
    /// of [`certs::tls::subject_string`], spaces around `,` and `=`
    /// ignored). With `name`, only that user may match. The caller has
    /// verified the certificate against the hub's client CA.
    pub fn authenticate_cert(
        &self,
        hub: &str,
        name: Option<&str>,
        fingerprint: &Fingerprint,
        subject: &str,
    ) -> crate::auth::CertLogin {
        use crate::auth::CertLogin;
        let bound = |u: &&User| {
            u.cert_fingerprint.as_ref() == Some(fingerprint)
                || u.cert_subject
                    .as_deref()
                    .is_some_and(|s| certs::tls::normalize_subject(s) == subject)
        };
        match name {
            Some(n) => match self.get(hub, n).filter(|u| bound(u)) {
                Some(u) => CertLogin::Ok(u.name.clone()),
                None => CertLogin::NotBound,
            },
            None => {
                let mut users = self.hubs.get(hub).into_iter().flat_map(|m| m.values());
                let mut matched = users.by_ref().filter(|u| bound(u));
                match (matched.next(), matched.next()) {
                    (Some(u), None) => CertLogin::Ok(u.name.clone()),
                    (Some(_), Some(_)) => CertLogin::Ambiguous,
                    (None, _) => CertLogin::NotBound,
                }
            }
        }
    }
}
