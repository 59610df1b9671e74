//! A generated identity works in a real OpenSSL TLS handshake, verified the
//! three ways the client will verify it: as a CA file with host-name
//! checking, by pinned fingerprint, and through the known-hubs file.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use certs::{CertParams, Fingerprint, Identity, KeyKind, KnownHubs, TrustDecision};
use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;

/// Client-side knobs for one handshake.
struct Client<'a> {
    /// Trust this certificate as a CA and check `host` against it; `None`
    /// disables chain verification (the fingerprint is checked instead).
    ca: Option<&'a Identity>,
    host: &'a str,
    cipher: Option<&'a str>,
}

/// Serves one connection with `id`, connects with `client`, exchanges a
/// byte, and returns the server certificate's fingerprint as the client
/// saw it, plus the negotiated cipher.
fn handshake(id: &Identity, client: Client<'_>) -> Result<(Fingerprint, String), String> {
    let mut acc = SslAcceptor::mozilla_intermediate(SslMethod::tls()).unwrap();
    acc.set_certificate(&id.cert).unwrap();
    acc.set_private_key(&id.key).unwrap();
    acc.check_private_key().unwrap();
    if let Some(c) = client.cipher {
        acc.set_cipher_list(c).unwrap();
        acc.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    }
    let acc = acc.build();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        if let Ok(mut s) = acc.accept(tcp) {
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).is_ok() {
                let _ = s.write_all(&b);
            }
        }
    });

    let mut con = SslConnector::builder(SslMethod::tls()).unwrap();
    match client.ca {
        Some(ca) => {
            let mut store = X509StoreBuilder::new().unwrap();
            store.add_cert(ca.cert.clone()).unwrap();
            con.set_verify_cert_store(store.build()).unwrap();
            con.set_verify(SslVerifyMode::PEER);
        }
        None => con.set_verify(SslVerifyMode::NONE),
    }
    if let Some(c) = client.cipher {
        con.set_cipher_list(c).unwrap();
        con.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    }
    let con = con.build();
    let mut cfg = con.configure().unwrap();
    if client.ca.is_none() {
        cfg = cfg.verify_hostname(false).use_server_name_indication(true);
    }
    let tcp = TcpStream::connect(addr).unwrap();
    let result = match cfg.connect(client.host, tcp) {
        Ok(mut s) => {
            s.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            let der = s.ssl().peer_certificate().unwrap().to_der().unwrap();
            let cipher = s.ssl().current_cipher().unwrap().name().to_owned();
            Ok((Fingerprint::of_der(&der), cipher))
        }
        Err(e) => Err(e.to_string()),
    };
    server.join().unwrap();
    result
}

#[test]
fn ca_file_verification_with_host_names() {
    let id = Identity::generate(&CertParams::default()).unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let (fp, _) = handshake(
            &id,
            Client {
                ca: Some(&id),
                host,
                cipher: None,
            },
        )
        .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(fp, id.fingerprint());
    }
    // A name the certificate does not carry is refused.
    let e = handshake(
        &id,
        Client {
            ca: Some(&id),
            host: "hub.example",
            cipher: None,
        },
    )
    .unwrap_err();
    assert!(e.contains("certificate verify failed"), "{e}");

    // So is a different hub's certificate.
    let other = Identity::generate(&CertParams::default()).unwrap();
    let e = handshake(
        &other,
        Client {
            ca: Some(&id),
            host: "localhost",
            cipher: None,
        },
    )
    .unwrap_err();
    assert!(e.contains("certificate verify failed"), "{e}");
}

#[test]
fn rsa_key_exchange_suite_works_with_the_default_rsa_key() {
    let id = Identity::generate(&CertParams::default()).unwrap();
    let (_, cipher) = handshake(
        &id,
        Client {
            ca: Some(&id),
            host: "localhost",
            cipher: Some("AES256-SHA"),
        },
    )
    .unwrap();
    assert_eq!(cipher, "AES256-SHA");
}

#[test]
fn ec_identity_handshakes() {
    let id = Identity::generate(&CertParams {
        key: KeyKind::EcP256,
        ..CertParams::default()
    })
    .unwrap();
    let (fp, _) = handshake(
        &id,
        Client {
            ca: Some(&id),
            host: "localhost",
            cipher: None,
        },
    )
    .unwrap();
    assert_eq!(fp, id.fingerprint());
}

#[test]
fn trust_on_first_use_then_refuse_a_changed_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let known = tmp.path().join("known_hubs");
    let id = Identity::generate(&CertParams {
        key: KeyKind::EcP256,
        ..CertParams::default()
    })
    .unwrap();
    let client = || Client {
        ca: None,
        host: "localhost",
        cipher: None,
    };

    let (seen, _) = handshake(&id, client()).unwrap();
    let mut k = KnownHubs::load(&known).unwrap();
    assert_eq!(k.check("localhost:443", &seen), TrustDecision::Unknown);
    k.add("localhost:443", seen);
    k.save(&known).unwrap();

    let (seen, _) = handshake(&id, client()).unwrap();
    let k = KnownHubs::load(&known).unwrap();
    assert_eq!(k.check("localhost:443", &seen), TrustDecision::Known);

    let replaced = Identity::generate(&CertParams {
        key: KeyKind::EcP256,
        ..CertParams::default()
    })
    .unwrap();
    let (seen, _) = handshake(&replaced, client()).unwrap();
    assert_eq!(
        k.check("localhost:443", &seen),
        TrustDecision::Changed {
            stored: id.fingerprint()
        }
    );
}
