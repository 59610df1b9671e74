//! Shared setup for the hub's integration tests: a real hub on loopback
//! with a freshly generated certificate.

#![allow(dead_code)]

use std::sync::Arc;

use certs::tls::{self, TlsOptions};
use certs::{CertParams, Identity};
use hub::auth::{AuthResult, Authenticator};
use hub::server::{self, HubSettings, Server, Settings};

/// Users for tests: alice/secret on DEFAULT, bob/hunter2 on OTHER.
pub struct TestUsers;

impl Authenticator for TestUsers {
    fn authenticate(&self, hub: &str, user: &str, password: &str) -> AuthResult {
        match (hub, user, password) {
            ("DEFAULT", "alice", "secret") | ("OTHER", "bob", "hunter2") => AuthResult::Ok,
            ("DEFAULT", "alice", _) | ("OTHER", "bob", _) => AuthResult::BadPassword,
            _ => AuthResult::UnknownUser,
        }
    }
    fn user_exists(&self, hub: &str, user: &str) -> bool {
        matches!((hub, user), ("DEFAULT", "alice") | ("OTHER", "bob"))
    }
}

pub struct TestHub {
    pub server: Option<Server>,
    pub identity: Identity,
}

impl TestHub {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }
    pub fn shard_addr(&self, i: usize) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().shard_addrs()[i]
    }
    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

/// Two hubs: DEFAULT (password: alice/secret, or anonymous when
/// `anonymous`) and OTHER (bob/hunter2). Each shard on its own port.
pub fn start_hub(shards: usize, anonymous: bool, tweak: impl FnOnce(&mut Settings)) -> TestHub {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("hub=debug")
        .try_init();
    let identity = Identity::generate(&CertParams::default()).expect("certificate");
    let mut settings = Settings::for_tests(shards);
    settings.distinct_ports = true;
    settings.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    settings.hubs = vec![
        HubSettings {
            name: "DEFAULT".into(),
            anonymous,
            max_sessions: 0,
            max_macs: 0,
        },
        HubSettings {
            name: "OTHER".into(),
            anonymous: false,
            max_sessions: 0,
            max_macs: 0,
        },
    ];
    tweak(&mut settings);
    let ctx = tls::server_context(&identity, &TlsOptions::default()).expect("TLS context");
    let page = server::front_page(
        &settings.name,
        &identity.fingerprint().to_string(),
        &settings.hubs,
    );
    let server = server::start(
        settings,
        ctx,
        identity.cert_pem(),
        page,
        Arc::new(TestUsers),
    )
    .expect("hub starts");
    TestHub {
        server: Some(server),
        identity,
    }
}
