//! `certs::tls` end to end in memory: a server `TlsConn` and a client
//! `TlsConn` pumped against each other with real OpenSSL on both sides.

use std::sync::OnceLock;

use certs::tls::{
    check_tofu, client_context, server_context, ReadStatus, TlsConn, TlsError, TlsInfo, TlsOptions,
    TofuOutcome, Verify,
};
use certs::{CertParams, Identity, KeyKind};

fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::generate(&CertParams::default()).unwrap())
}

/// Another hub: same names, different key.
fn other_identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::generate(&CertParams::default()).unwrap())
}

fn opts(spec: &str) -> TlsOptions {
    TlsOptions {
        ciphers: spec.parse().unwrap(),
        ..TlsOptions::default()
    }
}

fn server_with(id: &Identity, o: &TlsOptions) -> TlsConn {
    TlsConn::server(&server_context(id, o).unwrap()).unwrap()
}

fn server(o: &TlsOptions) -> TlsConn {
    server_with(identity(), o)
}

fn client(verify: &Verify, o: &TlsOptions, name: Option<&str>) -> TlsConn {
    TlsConn::client(&client_context(verify, o).unwrap(), name).unwrap()
}

/// Moves all ciphertext `from` → `to`; returns how many bytes.
fn transfer(from: &mut TlsConn, to: &mut TlsConn, buf: &mut Vec<u8>) -> usize {
    buf.clear();
    from.take_ciphertext(buf);
    to.feed(buf);
    buf.len()
}

type Outcome = Option<Result<(), TlsError>>;

/// Drives both handshakes until both ended (or nothing moves any more).
fn run_handshake(c: &mut TlsConn, s: &mut TlsConn) -> (Outcome, Outcome) {
    let step = |conn: &mut TlsConn, res: &mut Outcome| {
        if res.is_none() {
            match conn.handshake() {
                Ok(true) => *res = Some(Ok(())),
                Ok(false) => {}
                Err(e) => *res = Some(Err(e)),
            }
        }
    };
    let (mut cr, mut sr) = (None, None);
    let mut buf = Vec::new();
    for _ in 0..20 {
        step(c, &mut cr);
        let a = transfer(c, s, &mut buf);
        step(s, &mut sr);
        let b = transfer(s, c, &mut buf);
        if (cr.is_some() && sr.is_some()) || (a == 0 && b == 0 && (cr.is_some() || sr.is_some())) {
            break;
        }
    }
    (cr, sr)
}

fn connect(c: &mut TlsConn, s: &mut TlsConn) {
    match run_handshake(c, s) {
        (Some(Ok(())), Some(Ok(()))) => {}
        other => panic!("handshake did not complete: {other:?}"),
    }
    assert!(c.is_handshake_done() && s.is_handshake_done());
}

fn client_err(c: &mut TlsConn, s: &mut TlsConn) -> TlsError {
    match run_handshake(c, s) {
        (Some(Err(e)), _) => e,
        other => panic!("expected the client to fail: {other:?}"),
    }
}

/// Deterministic pseudo-random bytes (xorshift64).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn default_preset_moves_10_mb_each_way_over_tls13_aes256gcm() {
    let o = TlsOptions::default();
    let mut s = server(&o);
    let mut c = client(&Verify::Insecure, &o, Some("localhost"));
    assert!(!c.is_handshake_done());
    assert_eq!(c.info(), None);
    connect(&mut c, &mut s);

    let want = TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_256_GCM_SHA384".into(),
    };
    assert_eq!(c.info().as_ref(), Some(&want));
    assert_eq!(s.info().as_ref(), Some(&want));
    assert_eq!(want.to_string(), "TLSv1.3 TLS_AES_256_GCM_SHA384");
    assert_eq!(c.peer_fingerprint(), Some(identity().fingerprint()));
    assert_eq!(
        s.peer_certificate().map(|_| ()),
        None,
        "no client certificate"
    );

    const LEN: usize = 10 * 1024 * 1024;
    let up = pattern(LEN, 1);
    let down = pattern(LEN, 2);
    let (mut got_up, mut got_down) = (Vec::new(), Vec::new());
    let (mut sent_up, mut sent_down) = (0, 0);
    let chunks = [1, 100, 1514, 9000, 16384, 16385, 65536, 200_000, 1 << 20];
    let mut wire = Vec::new();
    let mut i = 0;
    while got_up.len() < LEN || got_down.len() < LEN {
        let n = chunks[i % chunks.len()];
        let m = chunks[(i + 3) % chunks.len()];
        i += 1;
        if sent_up < LEN {
            let n = n.min(LEN - sent_up);
            c.write_plaintext(&up[sent_up..sent_up + n]).unwrap();
            sent_up += n;
        }
        if sent_down < LEN {
            let m = m.min(LEN - sent_down);
            s.write_plaintext(&down[sent_down..sent_down + m]).unwrap();
            sent_down += m;
        }
        // Client → server in odd-sized pieces, decrypting in between, so
        // records arrive split across feeds.
        wire.clear();
        c.take_ciphertext(&mut wire);
        for piece in wire.chunks(7001) {
            s.feed(piece);
            let st = s.read_plaintext(&mut got_up).unwrap();
            assert!(!st.closed);
        }
        // Server → client through the zero-copy input buffer.
        wire.clear();
        s.take_ciphertext(&mut wire);
        c.incoming_mut().extend_from_slice(&wire);
        let st = c.read_plaintext(&mut got_down).unwrap();
        assert!(!st.closed);
        assert!(i < 10_000, "no progress");
    }
    assert!(got_up == up, "client → server bytes differ");
    assert!(got_down == down, "server → client bytes differ");
    assert!(!c.wants_write() && !s.wants_write());
}

#[test]
fn aes256_sha_preset_negotiates_tls12_aes256_sha() {
    let o = opts("aes256-sha");
    let mut s = server(&o);
    let mut c = client(&Verify::Insecure, &o, None);
    connect(&mut c, &mut s);
    let info = s.info().unwrap();
    assert_eq!(info.version, "TLSv1.2");
    // The server's order wins: its first suite.
    assert_eq!(info.cipher, "AES256-SHA");
    assert_eq!(c.info(), Some(info));

    // Data flows both ways.
    let mut buf = Vec::new();
    let mut got = Vec::new();
    c.write_plaintext(b"ping").unwrap();
    transfer(&mut c, &mut s, &mut buf);
    s.read_plaintext(&mut got).unwrap();
    assert_eq!(got, b"ping");
}

#[test]
fn client_restricted_to_a_suite_the_server_refuses_fails_clearly() {
    // The client offers only TLS 1.2 AES256-SHA*; the default hub allows
    // only forward-secret AEAD suites.
    let mut s = server(&TlsOptions::default());
    let mut c = client(&Verify::Insecure, &opts("aes256-sha"), None);
    let (cr, sr) = run_handshake(&mut c, &mut s);
    let se = sr.unwrap().unwrap_err();
    assert!(matches!(se, TlsError::Handshake { .. }), "{se:?}");
    let msg = se.to_string();
    assert!(msg.contains("no shared cipher"), "{msg}");
    assert!(msg.contains("compare the cipher settings"), "{msg}");
    println!("server: {msg}");

    let ce = cr.unwrap().unwrap_err();
    let msg = ce.to_string();
    assert!(matches!(ce, TlsError::Handshake { .. }), "{ce:?}");
    assert!(msg.contains("handshake failure"), "{msg}");
    println!("client: {msg}");
}

#[test]
fn tls13_suite_the_server_refuses() {
    let client_opts = TlsOptions {
        ciphers: "suites:TLS_AES_128_CCM_SHA256".parse().unwrap(),
        min_version: Some(openssl::ssl::SslVersion::TLS1_3),
        ..TlsOptions::default()
    };
    let mut s = server(&TlsOptions::default());
    let mut c = client(&Verify::Insecure, &client_opts, None);
    let (_, sr) = run_handshake(&mut c, &mut s);
    let msg = sr.unwrap().unwrap_err().to_string();
    assert!(msg.contains("no shared cipher"), "{msg}");
}

#[test]
fn pin_accepts_the_right_certificate_only() {
    let o = TlsOptions::default();
    let right = identity().fingerprint();
    let mut s = server(&o);
    // Any name: a pin ignores names and chains.
    let mut c = client(&Verify::Pin(right), &o, Some("not-in-the-cert.example"));
    connect(&mut c, &mut s);
    assert_eq!(c.peer_fingerprint(), Some(right));

    let wrong = other_identity().fingerprint();
    let mut s = server(&o);
    let mut c = client(&Verify::Pin(wrong), &o, Some("localhost"));
    let e = client_err(&mut c, &mut s);
    let msg = e.to_string();
    match e {
        TlsError::PinMismatch {
            expected,
            presented,
        } => {
            assert_eq!(expected, wrong);
            assert_eq!(presented, right);
        }
        other => panic!("{other:?}"),
    }
    assert!(msg.contains(&format!("expected {wrong}")), "{msg}");
    assert!(msg.contains(&format!("the hub presented {right}")), "{msg}");
    // The hub learns that the client refused its certificate.
    assert!(!s.is_handshake_done());
}

#[test]
fn ca_file_verifies_chain_and_host_name() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.crt");
    std::fs::write(&ca, identity().cert_pem()).unwrap();
    let o = TlsOptions::default();
    let verify = Verify::Ca(ca.clone());

    for name in ["localhost", "127.0.0.1", "::1", "[::1]"] {
        let mut s = server(&o);
        let mut c = client(&verify, &o, Some(name));
        connect(&mut c, &mut s);
    }

    let mut s = server(&o);
    let mut c = client(&verify, &o, Some("hub.example"));
    let e = client_err(&mut c, &mut s);
    assert!(matches!(e, TlsError::CertificateVerify { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("certificate verify failed: hostname mismatch"),
        "{msg}"
    );
    println!("{msg}");

    // The right name, but a hub whose certificate is not in the CA file.
    let mut s = server_with(other_identity(), &o);
    let mut c = client(&verify, &o, Some("localhost"));
    let e = client_err(&mut c, &mut s);
    let msg = e.to_string();
    assert!(
        msg.contains("certificate verify failed: self-signed certificate"),
        "{msg}"
    );

    // A CA file that is not one.
    let bad = tmp.path().join("bad.crt");
    std::fs::write(&bad, "hello").unwrap();
    let e = client_context(&Verify::Ca(bad), &o)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad.crt") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = client_context(&Verify::Ca(tmp.path().join("missing.crt")), &o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.crt: cannot read it"), "{e}");
}

#[test]
fn tofu_stores_then_knows_then_refuses_a_changed_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let kh = tmp.path().join("vnic/known_hubs");
    let verify = Verify::Tofu {
        known_hubs: kh.clone(),
        host_port: "hub.example:8443".into(),
    };
    let o = TlsOptions::default();

    let fp_of_session = |id: &Identity| {
        let mut s = server_with(id, &o);
        let mut c = client(&verify, &o, Some("hub.example"));
        connect(&mut c, &mut s);
        c.peer_fingerprint().unwrap()
    };

    let fp = fp_of_session(identity());
    assert_eq!(
        check_tofu(&kh, "hub.example:8443", fp).unwrap(),
        TofuOutcome::FirstUse
    );
    assert!(std::fs::read_to_string(&kh)
        .unwrap()
        .contains(&format!("hub.example:8443 {fp}")));
    let fp = fp_of_session(identity());
    assert_eq!(
        check_tofu(&kh, "hub.example:8443", fp).unwrap(),
        TofuOutcome::Known
    );

    let new = fp_of_session(other_identity());
    let e = check_tofu(&kh, "hub.example:8443", new).unwrap_err();
    assert!(matches!(e, TlsError::FingerprintChanged { .. }), "{e:?}");
    let msg = e.to_string();
    println!("{msg}");
    for want in [
        format!("{} records {fp}", kh.display()),
        format!("the hub presented {new}"),
        format!(
            "remove the line for hub.example:8443 from the known-hubs file at {}",
            kh.display()
        ),
        format!("or pass --pin {new}"),
    ] {
        assert!(msg.contains(&want), "{want:?} not in {msg}");
    }
    // The file is untouched by a refusal.
    assert_eq!(
        check_tofu(&kh, "hub.example:8443", fp).unwrap(),
        TofuOutcome::Known
    );
}

#[cfg(not(feature = "legacy-ciphers"))]
#[test]
fn rc4_without_the_feature_says_how_to_get_it() {
    const WANT: &str = "RC4 suites need a vhub built with `--features legacy-ciphers` \
        (vendored OpenSSL with weak-crypto and legacy) and the --allow-legacy-ciphers flag; \
        Debian's system OpenSSL has no RC4 TLS suites at all";
    for spec in ["rc4-sha", "rc4-md5", "list:RC4-MD5:@SECLEVEL=0"] {
        for allow_legacy in [false, true] {
            let o = TlsOptions {
                allow_legacy,
                ..opts(spec)
            };
            let e = server_context(identity(), &o).unwrap_err();
            assert!(matches!(e, TlsError::LegacyNotBuilt), "{e:?}");
            assert_eq!(e.to_string(), WANT);
            let e = client_context(&Verify::Insecure, &o).unwrap_err();
            assert_eq!(e.to_string(), WANT);
        }
    }
}

#[cfg(feature = "legacy-ciphers")]
#[test]
fn rc4_suites_negotiate_only_with_the_opt_in() {
    use certs::tls::{CipherSpec, Preset};

    for (preset, suite) in [(Preset::Rc4Md5, "RC4-MD5"), (Preset::Rc4Sha, "RC4-SHA")] {
        let mut o = TlsOptions {
            ciphers: CipherSpec::Preset(preset),
            ..TlsOptions::default()
        };
        let e = server_context(identity(), &o).unwrap_err();
        assert!(matches!(e, TlsError::LegacyNotAllowed { .. }), "{e:?}");
        assert!(e.to_string().contains("--allow-legacy-ciphers"), "{e}");
        assert!(client_context(&Verify::Insecure, &o).is_err());

        o.allow_legacy = true;
        let mut s = server(&o);
        let mut c = client(&Verify::Insecure, &o, None);
        connect(&mut c, &mut s);
        let info = s.info().unwrap();
        println!(
            "{preset}: negotiated {info} ({})",
            certs::tls::openssl_version()
        );
        assert_eq!(info.cipher, suite);
        assert_eq!(info.version, "TLSv1.2");
        assert_eq!(c.info(), Some(info));
        let mut buf = Vec::new();
        let mut got = Vec::new();
        s.write_plaintext(b"legacy").unwrap();
        transfer(&mut s, &mut c, &mut buf);
        c.read_plaintext(&mut got).unwrap();
        assert_eq!(got, b"legacy");

        // Raw OpenSSL strings that name RC4 need the opt-in too.
        let raw = |allow_legacy| TlsOptions {
            ciphers: format!("list:{suite}:@SECLEVEL=0").parse().unwrap(),
            max_version: Some(openssl::ssl::SslVersion::TLS1_2),
            allow_legacy,
            ..TlsOptions::default()
        };
        let e = server_context(identity(), &raw(false)).unwrap_err();
        assert!(matches!(e, TlsError::LegacyNotAllowed { .. }), "{e:?}");
        let mut s = server(&raw(true));
        let mut c = client(&Verify::Insecure, &o, None);
        connect(&mut c, &mut s);
        assert_eq!(s.info().unwrap().cipher, suite);

        // The legacy hub still refuses a modern-only client.
        let mut s = server(&o);
        let mut c = client(&Verify::Insecure, &TlsOptions::default(), None);
        let (_, sr) = run_handshake(&mut c, &mut s);
        assert!(sr.unwrap().is_err());
    }
}

#[test]
fn garbage_from_the_peer_is_an_error_not_a_panic() {
    let garbage: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: hub\r\n\r\n".to_vec(),
        b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
        pattern(4096, 7),
        vec![0; 100],
        // A TLS handshake record header claiming a huge length.
        vec![0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3],
        // A plausible header, then a ClientHello body of junk.
        [&[0x16, 0x03, 0x01, 0x00, 0x40][..], &pattern(0x40, 9)].concat(),
    ];
    for g in garbage {
        let mut s = server(&TlsOptions::default());
        s.feed(&g);
        let e = s.handshake().unwrap_err();
        println!("{:?} → {e}", String::from_utf8_lossy(&g[..g.len().min(12)]));
        assert!(
            matches!(e, TlsError::Protocol { .. } | TlsError::Handshake { .. }),
            "{e:?}"
        );
        // Once failed, it stays failed and keeps not panicking.
        s.feed(&g);
        assert!(matches!(s.handshake(), Err(TlsError::Failed)));
        let mut out = Vec::new();
        assert!(matches!(s.read_plaintext(&mut out), Err(TlsError::Failed)));
    }
    // The classic mistake: plain HTTP to the TLS port.
    let mut s = server(&TlsOptions::default());
    s.feed(b"GET / HTTP/1.1\r\n\r\n");
    let e = s.handshake().unwrap_err();
    assert!(matches!(e, TlsError::Protocol { .. }), "{e:?}");
    assert!(e.to_string().contains("not speaking TLS"), "{e}");
}

#[test]
fn garbage_after_the_handshake_is_a_protocol_error() {
    let o = TlsOptions::default();
    let mut s = server(&o);
    let mut c = client(&Verify::Insecure, &o, None);
    connect(&mut c, &mut s);
    // An application-data record whose contents do not authenticate.
    s.feed(&[&[0x17, 0x03, 0x03, 0x00, 0x40][..], &pattern(0x40, 3)].concat());
    let e = s.read_plaintext(&mut Vec::new()).unwrap_err();
    assert!(matches!(e, TlsError::Protocol { .. }), "{e:?}");
    // The alert for the peer is queued.
    assert!(s.wants_write());
}

#[test]
fn truncated_client_hello_needs_more() {
    let o = TlsOptions::default();
    let mut s = server(&o);
    let mut c = client(&Verify::Insecure, &o, Some("localhost"));
    assert!(!c.handshake().unwrap());
    assert!(c.wants_write());
    let mut hello = Vec::new();
    c.take_ciphertext(&mut hello);
    assert!(hello.len() > 100, "{}", hello.len());

    // One byte, the header, half the body: never done, never an error.
    for cut in [1, 5, hello.len() / 2, hello.len() - 1] {
        let mut s = server(&o);
        s.feed(&hello[..cut]);
        assert!(!s.handshake().unwrap(), "cut at {cut}");
        assert!(!s.wants_write());
        assert!(!s.is_handshake_done());
    }
    // Fed the rest, byte by byte, it goes on.
    s.feed(&hello[..10]);
    assert!(!s.handshake().unwrap());
    for b in &hello[10..] {
        s.feed(std::slice::from_ref(b));
    }
    assert!(
        !s.handshake().unwrap(),
        "TLS 1.3: waits for the client's Finished"
    );
    assert!(s.wants_write(), "ServerHello … Finished queued");
    let mut buf = Vec::new();
    transfer(&mut s, &mut c, &mut buf);
    assert!(c.handshake().unwrap());
    transfer(&mut c, &mut s, &mut buf);
    assert!(s.handshake().unwrap());
}

#[test]
fn close_notify_and_eof_end_the_stream() {
    let o = TlsOptions::default();
    let mut s = server(&o);
    let mut c = client(&Verify::Insecure, &o, None);
    connect(&mut c, &mut s);
    let mut buf = Vec::new();

    c.write_plaintext(b"last words").unwrap();
    c.shutdown();
    transfer(&mut c, &mut s, &mut buf);
    let mut got = Vec::new();
    let st = s.read_plaintext(&mut got).unwrap();
    assert_eq!(
        st,
        ReadStatus {
            bytes: 10,
            closed: true
        }
    );
    assert_eq!(got, b"last words");
    let e = c.write_plaintext(b"more").unwrap_err();
    assert!(matches!(e, TlsError::Closed), "{e:?}");

    // A peer that just drops the connection: EOF without close_notify.
    let mut s = server(&o);
    let mut c = client(&Verify::Insecure, &o, None);
    connect(&mut c, &mut s);
    s.write_plaintext(b"bye").unwrap();
    transfer(&mut s, &mut c, &mut buf);
    c.feed_eof();
    let mut got = Vec::new();
    let st = c.read_plaintext(&mut got).unwrap();
    assert_eq!(
        st,
        ReadStatus {
            bytes: 3,
            closed: true
        }
    );

    // EOF in the middle of the handshake is a handshake failure.
    let mut s = server(&o);
    s.feed(&[0x16, 0x03, 0x01]);
    assert!(!s.handshake().unwrap());
    s.feed_eof();
    let e = s.handshake().unwrap_err();
    assert!(matches!(e, TlsError::Handshake { .. }), "{e:?}");
    assert!(e.to_string().contains("closed the connection"), "{e}");
}

#[test]
fn take_ciphertext_swaps_into_an_empty_buffer() {
    let o = TlsOptions::default();
    let mut s = server(&o);
    let mut c = client(&Verify::Insecure, &o, None);
    connect(&mut c, &mut s);
    let data = pattern(100_000, 5);
    c.write_plaintext(&data).unwrap();
    let pending = c.pending_ciphertext();
    assert!(pending > data.len(), "{pending}");

    // Swapped, not copied: `out` now owns the session's buffer.
    let before = c.pending_ciphertext();
    let mut out = Vec::with_capacity(1 << 20);
    let spare_ptr = out.as_ptr();
    c.take_ciphertext(&mut out);
    assert_eq!(out.len(), before);
    assert_ne!(out.as_ptr(), spare_ptr);
    assert!(!c.wants_write());
    // … and the session writes into `out`'s old allocation next.
    c.write_plaintext(b"x").unwrap();
    let mut again = Vec::new();
    c.take_ciphertext(&mut again);
    assert_eq!(again.as_ptr(), spare_ptr);

    // Appended when `out` already holds bytes (keeping the wire order:
    // the records of `data`, then "x", then "y").
    out.extend_from_slice(&again);
    c.write_plaintext(b"y").unwrap();
    let n = c.pending_ciphertext();
    let len = out.len();
    c.take_ciphertext(&mut out);
    assert_eq!(out.len(), len + n);
    assert!(!c.wants_write());

    let mut got = Vec::new();
    s.feed(&out);
    s.read_plaintext(&mut got).unwrap();
    assert_eq!(got.len(), data.len() + 2);
    assert!(got.starts_with(&data) && got.ends_with(b"xy"));
}

#[test]
fn misuse_and_misconfiguration_are_reported() {
    let o = TlsOptions::default();
    let mut c = client(&Verify::Insecure, &o, None);
    let e = c.write_plaintext(b"early").unwrap_err();
    assert!(matches!(e, TlsError::Usage(_)), "{e:?}");

    // aes256-sha needs an RSA key.
    let ec = Identity::generate(&CertParams {
        key: KeyKind::EcP256,
        ..CertParams::default()
    })
    .unwrap();
    let e = server_context(&ec, &opts("aes256-sha")).unwrap_err();
    assert!(matches!(e, TlsError::Config { .. }), "{e:?}");
    assert!(e.to_string().contains("not RSA"), "{e}");
    // An EC hub does the default preset fine (ECDHE-ECDSA / TLS 1.3).
    let mut s = server_with(&ec, &o);
    let mut c = client(&Verify::Insecure, &o, None);
    connect(&mut c, &mut s);

    let e = server_context(identity(), &opts("list:NO-SUCH-CIPHER")).unwrap_err();
    assert!(matches!(e, TlsError::Config { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("NO-SUCH-CIPHER") && msg.contains("no cipher match"),
        "{msg}"
    );

    let e = client_context(&Verify::Insecure, &opts("suites:TLS_NOPE")).unwrap_err();
    assert!(e.to_string().contains("TLS_NOPE"), "{e}");
}

#[test]
fn custom_openssl_strings_negotiate() {
    let server_opts = opts("list:ECDHE-RSA-AES128-GCM-SHA256;suites:TLS_CHACHA20_POLY1305_SHA256");
    let mut s = server(&server_opts);
    let mut c = client(&Verify::Insecure, &TlsOptions::default(), None);
    connect(&mut c, &mut s);
    assert_eq!(s.info().unwrap().cipher, "TLS_CHACHA20_POLY1305_SHA256");

    let tls12 = TlsOptions {
        max_version: Some(openssl::ssl::SslVersion::TLS1_2),
        ..server_opts
    };
    let mut s = server(&tls12);
    let mut c = client(&Verify::Insecure, &TlsOptions::default(), None);
    connect(&mut c, &mut s);
    assert_eq!(
        s.info().unwrap(),
        TlsInfo {
            version: "TLSv1.2".into(),
            cipher: "ECDHE-RSA-AES128-GCM-SHA256".into()
        }
    );
}

/// The hub resumes sessions by its own token, never by TLS: its context
/// issues no TLS 1.3 tickets and keeps no session cache (OpenSSL would
/// keep up to 20,480 sessions per context, memory that grows with every
/// handshake until the cache is full).
#[test]
fn the_hub_issues_no_tls_tickets() {
    let ctx = server_context(identity(), &TlsOptions::default()).unwrap();
    assert_eq!(ctx.num_tickets(), 0);
    // A TLS 1.3 handshake step by step: after the client's Finished the
    // server would send its tickets; it sends nothing.
    let mut s = TlsConn::server(&ctx).unwrap();
    let mut c = client(&Verify::Insecure, &TlsOptions::default(), None);
    let mut buf = Vec::new();
    assert!(!c.handshake().unwrap());
    assert!(transfer(&mut c, &mut s, &mut buf) > 0, "ClientHello");
    assert!(!s.handshake().unwrap());
    assert!(
        transfer(&mut s, &mut c, &mut buf) > 0,
        "ServerHello .. Finished"
    );
    assert!(c.handshake().unwrap());
    assert!(transfer(&mut c, &mut s, &mut buf) > 0, "client Finished");
    assert!(s.handshake().unwrap());
    assert_eq!(s.pending_ciphertext(), 0, "the server sent tickets");
}
