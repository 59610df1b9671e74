//! `vhub user add` as an operator runs it: the real binary, a config and a
//! users file on disk. Certificate users are bound from the certificate
//! file (its SHA-256 fingerprint), by fingerprint or by subject; a user
//! with no way to log in is refused; `--replace` changes one thing and
//! keeps the rest. `--softether` stores SoftEther's password hash for that
//! user only, and `vhub user list` shows who has it.

use std::path::Path;
use std::process::{Command, Output};

use certs::{CertParams, Fingerprint, Identity};

fn vhub(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vhub"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run vhub")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn user_add_binds_client_certificates_and_refuses_users_without_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vhub.toml");
    let users = dir.path().join("users.toml");
    std::fs::write(
        &config,
        format!(
            "cert_dir = \"{}\"\nusers_file = \"{}\"\n\n[[hub]]\nname = \"DEFAULT\"\n",
            dir.path().join("certs").display(),
            users.display()
        ),
    )
    .unwrap();
    let id = Identity::generate(&CertParams::default()).unwrap();
    let pem = dir.path().join("bob.crt");
    std::fs::write(&pem, id.cert.to_pem().unwrap()).unwrap();
    let der = dir.path().join("carol.der");
    std::fs::write(&der, id.cert.to_der().unwrap()).unwrap();
    let fp = Fingerprint::of(&id.cert).to_string();

    // From the certificate file, PEM or DER: its fingerprint.
    let out = vhub(
        &config,
        &["user", "add", "bob", "--cert", pem.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("certificate {fp}")),
        "{}",
        text(&out)
    );
    // The hub asks for no client certificate yet: said so.
    assert!(text(&out).contains("tls.client_ca"), "{}", text(&out));
    let out = vhub(
        &config,
        &["user", "add", "carol", "--cert", der.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    // By subject.
    let out = vhub(
        &config,
        &[
            "user",
            "add",
            "dave",
            "--cert-subject",
            "CN=dave, O=Example",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let file = std::fs::read_to_string(&users).unwrap();
    assert_eq!(
        file.matches(&format!("cert_fingerprint = \"{fp}\""))
            .count(),
        2,
        "{file}"
    );
    assert!(
        file.contains("cert_subject = \"CN=dave, O=Example\""),
        "{file}"
    );
    assert!(
        !file.contains("password = \"$scrypt"),
        "no password was given: {file}"
    );

    // No way to log in: refused, nothing written.
    let out = vhub(&config, &["user", "add", "erin"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("needs a way to log in"),
        "{}",
        text(&out)
    );
    // Not a certificate: refused with what it should be.
    let out = vhub(
        &config,
        &["user", "add", "erin", "--cert", config.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not a certificate"),
        "{}",
        text(&out)
    );
    // A bad fingerprint: refused.
    let out = vhub(
        &config,
        &["user", "add", "erin", "--cert-fingerprint", "sha256:12"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!std::fs::read_to_string(&users).unwrap().contains("erin"));

    // --replace adds a password to bob and keeps his certificate.
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "correct horse battery staple\n").unwrap();
    let out = vhub(
        &config,
        &[
            "user",
            "add",
            "bob",
            "--replace",
            "--password-file",
            pw.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("password, certificate {fp}")),
        "{}",
        text(&out)
    );
    let db = hub::users::UserDb::load(&users).unwrap();
    let bob = db.get("DEFAULT", "bob").unwrap();
    assert!(bob.has_password());
    assert_eq!(
        bob.cert_fingerprint().map(|f| f.to_string()),
        Some(fp.clone())
    );
    assert_eq!(
        db.authenticate("DEFAULT", "bob", "correct horse battery staple"),
        hub::users::AuthResult::Ok
    );
    // Without --replace an existing user is not touched.
    let out = vhub(
        &config,
        &["user", "add", "dave", "--cert", pem.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("already exists"), "{}", text(&out));
}

#[test]
fn user_add_softether_stores_softethers_hash_on_request_and_list_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vhub.toml");
    let users = dir.path().join("users.toml");
    std::fs::write(
        &config,
        format!(
            "cert_dir = \"{}\"\nusers_file = \"{}\"\n\n[[hub]]\nname = \"DEFAULT\"\n",
            dir.path().join("certs").display(),
            users.display()
        ),
    )
    .unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    let pw = pw.to_str().unwrap();
    let ok = |args: &[&str]| {
        let out = vhub(&config, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        text(&out)
    };
    let list = || -> Vec<Vec<String>> {
        ok(&["user", "list"])
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    };
    // SHA0("secret" ‖ "ALICE"), PROTOCOL-NOTES.md §5.2.1.
    let alice_hash = "softether_hash = \"0e782dacdb78918d73007999da81bc408906d451\"";

    let said = ok(&["user", "add", "alice", "--password-file", pw, "--softether"]);
    assert!(said.contains("password, SoftEther password"), "{said}");
    // Opt-in: bob, added without it, has none.
    ok(&["user", "add", "bob", "--password-file", pw]);
    let file = std::fs::read_to_string(&users).unwrap();
    assert!(file.contains(alice_hash), "{file}");
    assert_eq!(file.matches("softether_hash = \"").count(), 1, "{file}");
    assert!(
        !file.contains("secret\""),
        "the password was stored: {file}"
    );
    assert_eq!(
        list(),
        [
            vec!["HUB", "USER", "LOGINS"],
            vec!["DEFAULT", "alice", "password,softether"],
            vec!["DEFAULT", "bob", "password"],
        ]
    );

    // The hash is made from the password: --softether needs it.
    for args in [
        &["user", "add", "carol", "--softether"][..],
        &["user", "add", "bob", "--replace", "--softether"][..],
    ] {
        let out = vhub(&config, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out).contains("--softether needs --password-file"),
            "{}",
            text(&out)
        );
    }
    // --replace turns it on for bob, with his password.
    ok(&[
        "user",
        "add",
        "bob",
        "--replace",
        "--password-file",
        pw,
        "--softether",
    ]);
    let db = hub::users::UserDb::load(&users).unwrap();
    let random = [4u8; 20];
    let bob_proof =
        switch_core::softether::HashedPassword::new("bob", "secret").secure_password(&random);
    assert_eq!(
        db.authenticate_softether("DEFAULT", "bob", &bob_proof, &random),
        hub::users::AuthResult::Ok
    );
    // ... and --no-softether off for alice, her password kept.
    ok(&["user", "add", "alice", "--replace", "--no-softether"]);
    assert_eq!(
        list()[1..],
        [
            vec!["DEFAULT", "alice", "password"],
            vec!["DEFAULT", "bob", "password,softether"],
        ]
    );
    let file = std::fs::read_to_string(&users).unwrap();
    assert!(!file.contains(alice_hash), "{file}");
    // Both at once make no sense.
    let out = vhub(
        &config,
        &[
            "user",
            "add",
            "dave",
            "--password-file",
            pw,
            "--softether",
            "--no-softether",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
}
