//! Authentication decisions, off the shard threads: a password check is a
//! deliberately slow scrypt (tens of milliseconds), which must never stall
//! the frames of every other session on the shard.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// What the hub asks of its user store.
pub trait Authenticator: Send + Sync + 'static {
    /// Checks a password for `user` on virtual hub `hub`.
    fn authenticate(&self, hub: &str, user: &str, password: &str) -> AuthResult;
    /// A SoftEther password login: `secure_password` from the client's
    /// login PACK, checked against the user's SoftEther hash and the hello
    /// random this hub sent on that connection (`server_random`). The name
    /// is matched exactly. A user without a SoftEther hash gets
    /// `BadPassword`, like a wrong proof, so the client and the throttle
    /// see the same as for vhub's password logins. Fast (two SHA-0
    /// blocks): no need for the pool. The default knows no SoftEther users.
    fn authenticate_softether(
        &self,
        hub: &str,
        user: &str,
        secure_password: &[u8; 20],
        server_random: &[u8; 20],
    ) -> AuthResult {
        let _ = (hub, user, secure_password, server_random);
        AuthResult::UnknownUser
    }
    /// Whether `user` may still use `hub` (checked on resume: the session
    /// token is the proof of the earlier login, but a removed user must not
    /// come back with it).
    fn user_exists(&self, hub: &str, user: &str) -> bool;
    /// A certificate login: the user of `hub` bound to this certificate (by
    /// SHA-256 fingerprint or subject). `user` is the name the client gave,
    /// if any: then that user must be the one bound. The certificate was
    /// already verified against the hub's client CA.
    fn authenticate_cert(
        &self,
        hub: &str,
        user: Option<&str>,
        fingerprint: &certs::Fingerprint,
        subject: &str,
    ) -> CertLogin {
        let _ = (hub, user, fingerprint, subject);
        CertLogin::NotBound
    }
}

/// The answer to a certificate login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertLogin {
    /// Logs in as this user.
    Ok(String),
    /// No user of the hub is bound to the certificate (or not the named one).
    NotBound,
    /// Several users are bound to it and the client named none.
    Ambiguous,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthResult {
    Ok,
    BadPassword,
    UnknownUser,
}

type Job = Box<dyn FnOnce() + Send>;

/// A small pool of threads for slow checks; results come back through a
/// oneshot channel the shard awaits.
pub struct AuthPool {
    tx: Mutex<mpsc::Sender<Job>>,
    pub auth: Arc<dyn Authenticator>,
}

impl AuthPool {
    pub fn new(auth: Arc<dyn Authenticator>, threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("auth-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
                .expect("spawning an auth thread");
        }
        Self {
            tx: Mutex::new(tx),
            auth,
        }
    }

    /// Runs the password check on the pool.
    pub async fn authenticate(&self, hub: &str, user: &str, password: &str) -> AuthResult {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let auth = self.auth.clone();
        let (hub, user, password) = (hub.to_owned(), user.to_owned(), password.to_owned());
        let job: Job = Box::new(move || {
            let _ = tx.send(auth.authenticate(&hub, &user, &password));
        });
        if self.tx.lock().map(|t| t.send(job)).is_err() {
            return AuthResult::BadPassword;
        }
        rx.await.unwrap_or(AuthResult::BadPassword)
    }

    /// Checks a SoftEther password login on the caller's thread: two SHA-0
    /// blocks, nothing to offload (see
    /// [`Authenticator::authenticate_softether`]).
    pub fn authenticate_softether(
        &self,
        hub: &str,
        user: &str,
        secure_password: &[u8; 20],
        server_random: &[u8; 20],
    ) -> AuthResult {
        self.auth
            .authenticate_softether(hub, user, secure_password, server_random)
    }
}

/// Accepts nobody with a password; for hubs that are anonymous-only and for
/// tests.
pub struct NoUsers;

impl Authenticator for NoUsers {
    fn authenticate(&self, _: &str, _: &str, _: &str) -> AuthResult {
        AuthResult::UnknownUser
    }
    fn user_exists(&self, _: &str, _: &str) -> bool {
        false
    }
}

/// An authenticator that can be replaced while the hub runs (config
/// reload): each check reads the current one under a read lock held for
/// the call, never on the frame path (logins and resumes only).
pub struct SharedAuth(parking_lot::RwLock<Arc<dyn Authenticator>>);

impl SharedAuth {
    pub fn new(auth: Arc<dyn Authenticator>) -> Self {
        Self(parking_lot::RwLock::new(auth))
    }

    /// Replaces the user store; checks already running finish with the old one.
    pub fn set(&self, auth: Arc<dyn Authenticator>) {
        *self.0.write() = auth;
    }

    pub fn current(&self) -> Arc<dyn Authenticator> {
        self.0.read().clone()
    }
}

impl Authenticator for SharedAuth {
    fn authenticate(&self, hub: &str, user: &str, password: &str) -> AuthResult {
        // Clone out first: a slow scrypt must not hold the lock a reload waits for.
        self.current().authenticate(hub, user, password)
    }
    fn authenticate_softether(
        &self,
        hub: &str,
        user: &str,
        secure_password: &[u8; 20],
        server_random: &[u8; 20],
    ) -> AuthResult {
        self.current()
            .authenticate_softether(hub, user, secure_password, server_random)
    }
    fn user_exists(&self, hub: &str, user: &str) -> bool {
        self.current().user_exists(hub, user)
    }
    fn authenticate_cert(
        &self,
        hub: &str,
        user: Option<&str>,
        fingerprint: &certs::Fingerprint,
        subject: &str,
    ) -> CertLogin {
        self.current()
            .authenticate_cert(hub, user, fingerprint, subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binds every certificate to "carol", knows no passwords but accepts
    /// any SoftEther proof for her.
    struct CertsOnly;

    impl Authenticator for CertsOnly {
        fn authenticate(&self, _: &str, _: &str, _: &str) -> AuthResult {
            AuthResult::UnknownUser
        }
        fn authenticate_softether(
            &self,
            _: &str,
            user: &str,
            _: &[u8; 20],
            _: &[u8; 20],
        ) -> AuthResult {
            if user == "carol" {
                AuthResult::Ok
            } else {
                AuthResult::UnknownUser
            }
        }
        fn user_exists(&self, _: &str, user: &str) -> bool {
            user == "carol"
        }
        fn authenticate_cert(
            &self,
            _: &str,
            _: Option<&str>,
            _: &certs::Fingerprint,
            _: &str,
        ) -> CertLogin {
            CertLogin::Ok("carol".into())
        }
    }

    #[test]
    fn the_reloadable_store_forwards_every_check() {
        // The daemon always authenticates through SharedAuth: a method it
        // does not forward would silently fall back to the trait default.
        let shared = SharedAuth::new(Arc::new(CertsOnly));
        let fp = certs::Fingerprint([7; 32]);
        assert_eq!(
            shared.authenticate_cert("DEFAULT", None, &fp, "CN=carol"),
            CertLogin::Ok("carol".into())
        );
        assert!(shared.user_exists("DEFAULT", "carol"));
        assert_eq!(
            shared.authenticate("DEFAULT", "carol", "x"),
            AuthResult::UnknownUser
        );
        assert_eq!(
            shared.authenticate_softether("DEFAULT", "carol", &[1; 20], &[2; 20]),
            AuthResult::Ok
        );
        shared.set(Arc::new(NoUsers));
        assert_eq!(
            shared.authenticate_softether("DEFAULT", "carol", &[1; 20], &[2; 20]),
            AuthResult::UnknownUser,
            "a reload replaces the SoftEther hashes too"
        );
        assert_eq!(
            shared.authenticate_cert("DEFAULT", None, &fp, "CN=carol"),
            CertLogin::NotBound,
            "a reload replaces the certificate bindings too"
        );
    }
}
