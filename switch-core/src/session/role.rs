//! Which end a session is: the parameters of [`Session::connect`] (client)
//! and [`Session::accept`] (hub).
//!
//! [`Session::connect`]: super::Session::connect
//! [`Session::accept`]: super::Session::accept

use crate::wire::http::{Credentials, SessionToken};

/// The hub's parameters for a new session (see [`Session::accept`](super::Session::accept)).
#[derive(Clone, Copy, Debug)]
pub struct Accept {
    pub token: SessionToken,
    pub version: u32,
}

/// Client-side identity for the upgrade request.
#[derive(Clone, Debug)]
pub struct Connect {
    pub hub: String,
    pub host: String,
    pub credentials: Option<Credentials>,
}

/// Which end this session is; a client keeps what it needs to reconnect.
#[derive(Debug)]
pub(super) enum Role {
    Client { connect: Connect },
    Hub,
}
