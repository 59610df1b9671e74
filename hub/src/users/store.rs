//! The users of all hubs in memory ([`UserDb`]) and the operations of
//! `vhub user`: add, replace, remove, list. Reading and writing the users
//! file is in `file.rs`, checking a login in `authenticate.rs`.

use std::collections::BTreeMap;

use switch_core::softether::HashedPassword;

use super::hash::{check_params, PasswordHash, DEFAULT_LN, DEFAULT_P, DEFAULT_R};
use super::user::{check_hub, check_user_name, Login, User, UserSource};
use super::UserError;

/// The users of all hubs, keyed by hub then name.
#[derive(Clone, Debug)]
pub struct UserDb {
    pub(super) hubs: BTreeMap<String, BTreeMap<String, User>>,
    cost: u8,
}

impl Default for UserDb {
    fn default() -> Self {
        Self {
            hubs: BTreeMap::new(),
            cost: DEFAULT_LN,
        }
    }
}

impl UserDb {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the cost (ln) of hashes made by [`UserDb::add`] from now on.
    pub fn set_hash_cost(&mut self, ln: u8) -> Result<(), UserError> {
        check_params(ln, DEFAULT_R, DEFAULT_P)?;
        self.cost = ln;
        Ok(())
    }

    /// Adds a user with a new password hash; refuses an existing user.
    pub fn add(&mut self, hub: &str, name: &str, password: &str) -> Result<(), UserError> {
        self.put(hub, name, Login::password(password), false)
            .map(|_| ())
    }

    /// Adds a user or replaces the password of an existing one (keeping its
    /// certificate settings). Returns whether a user was replaced.
    pub fn add_or_replace(
        &mut self,
        hub: &str,
        name: &str,
        password: &str,
    ) -> Result<bool, UserError> {
        self.put(hub, name, Login::password(password), true)
    }

    /// Adds a user who logs in as `login` says. With `replace`, an existing
    /// user of the users file is updated instead: what `login` names
    /// replaces the old value, the rest is kept. A user with no way to log
    /// in is refused. Returns whether a user was replaced.
    pub fn put(
        &mut self,
        hub: &str,
        name: &str,
        login: Login<'_>,
        replace: bool,
    ) -> Result<bool, UserError> {
        check_hub(hub)?;
        check_user_name(name)?;
        let old = self.get(hub, name);
        if let Some(u) = old {
            if u.source == UserSource::Config {
                return Err(UserError::DefinedInConfig {
                    hub: hub.to_owned(),
                    name: name.to_owned(),
                });
            }
        }
        let kept = old.filter(|_| replace);
        let password = match login.password {
            Some(pw) => Some(PasswordHash::new(pw, self.cost)?),
            None => kept.and_then(|u| u.password.clone()),
        };
        // SoftEther's hash is made from the password, so it follows it: a
        // new password replaces a kept hash too (the old password must not
        // stay valid for SoftEther logins).
        let softether = match (login.softether, login.password) {
            (Some(false), _) => None,
            (Some(true), None) => {
                return Err(UserError::SoftEtherNeedsPassword {
                    hub: hub.to_owned(),
                    name: name.to_owned(),
                })
            }
            (Some(true), Some(pw)) => Some(HashedPassword::new(name, pw)),
            (None, Some(pw)) => kept
                .filter(|u| u.softether.is_some())
                .map(|_| HashedPassword::new(name, pw)),
            (None, None) => kept.and_then(|u| u.softether),
        };
        let cert_subject = login
            .cert_subject
            .map(|s| s.trim().to_owned())
            .or_else(|| kept.and_then(|u| u.cert_subject.clone()));
        let user = User {
            hub: hub.to_owned(),
            name: name.to_owned(),
            password,
            cert_fingerprint: login
                .cert_fingerprint
                .or_else(|| kept.and_then(|u| u.cert_fingerprint)),
            cert_subject,
            softether,
            source: UserSource::File,
        };
        if !user.can_log_in() {
            return Err(UserError::NoLogin {
                hub: hub.to_owned(),
                name: name.to_owned(),
            });
        }
        self.insert(user, replace)
    }

    /// Removes a user of the users file. `Ok(false)` if there is none;
    /// an error for a user defined in the config.
    pub fn remove(&mut self, hub: &str, name: &str) -> Result<bool, UserError> {
        let Some(users) = self.hubs.get_mut(hub) else {
            return Ok(false);
        };
        match users.get(name) {
            None => Ok(false),
            Some(u) if u.source == UserSource::Config => Err(UserError::DefinedInConfig {
                hub: hub.to_owned(),
                name: name.to_owned(),
            }),
            Some(_) => {
                users.remove(name);
                if users.is_empty() {
                    self.hubs.remove(hub);
                }
                Ok(true)
            }
        }
    }

    pub fn get(&self, hub: &str, name: &str) -> Option<&User> {
        self.hubs.get(hub)?.get(name)
    }

    /// All users, ordered by hub then name.
    pub fn list(&self) -> impl Iterator<Item = &User> + '_ {
        self.hubs.values().flat_map(BTreeMap::values)
    }

    pub fn len(&self) -> usize {
        self.hubs.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.hubs.is_empty()
    }

    /// Inserts; with `replace`, overwrites (returns true if it did).
    pub(super) fn insert(&mut self, user: User, replace: bool) -> Result<bool, UserError> {
        let users = self.hubs.entry(user.hub.clone()).or_default();
        match users.get(&user.name) {
            Some(old) if old.source == UserSource::Config || user.source == UserSource::Config => {
                Err(UserError::DefinedInConfig {
                    hub: user.hub,
                    name: user.name,
                })
            }
            Some(_) if !replace => Err(UserError::Duplicate {
                hub: user.hub,
                name: user.name,
            }),
            existing => {
                let replaced = existing.is_some();
                users.insert(user.name.clone(), user);
                Ok(replaced)
            }
        }
    }
}
