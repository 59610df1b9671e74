//! Tests of the whole module: hashes (with a known answer from RFC 7914),
//! names, the store's operations, the users file and the config's inline
//! users. Most run at the cheapest cost (`MIN_LN`) to stay fast.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine as _;
use certs::Fingerprint;

use super::hash::check_params;
use super::*;
use crate::config::Config;

/// The cheapest allowed cost keeps the tests fast.
const LN: u8 = MIN_LN;

fn cheap_db() -> UserDb {
    let mut db = UserDb::new();
    db.set_hash_cost(LN).unwrap();
    db
}

#[test]
fn hash_verify_round_trip() {
    let phc = hash_password_with_cost("correct horse", LN).unwrap();
    assert!(verify_password("correct horse", &phc).unwrap());
    assert!(!verify_password("correct horsf", &phc).unwrap());
    assert!(!verify_password("", &phc).unwrap());
    // a new salt each time
    assert_ne!(phc, hash_password_with_cost("correct horse", LN).unwrap());
}

#[test]
fn default_cost_hash_works() {
    let phc = hash_password("pw").unwrap();
    assert!(phc.starts_with("$scrypt$ln=15,r=8,p=1$"), "{phc}");
    assert!(verify_password("pw", &phc).unwrap());
}

#[test]
fn phc_format_is_exactly_as_documented() {
    let phc = hash_password_with_cost("pw", LN).unwrap();
    let fields: Vec<&str> = phc.split('$').collect();
    assert_eq!(fields.len(), 5, "{phc}");
    assert_eq!(fields[0], "");
    assert_eq!(fields[1], "scrypt");
    assert_eq!(fields[2], "ln=10,r=8,p=1");
    assert_eq!(B64.decode(fields[3]).unwrap().len(), SALT_LEN);
    assert_eq!(B64.decode(fields[4]).unwrap().len(), HASH_LEN);
    assert_eq!(fields[3].len(), 22, "16 bytes, base64 without padding");
    assert_eq!(fields[4].len(), 43, "32 bytes, base64 without padding");
    // parse → to_phc is the identity
    assert_eq!(PasswordHash::parse(&phc).unwrap().to_phc(), phc);
}

#[test]
fn known_answer_rfc7914() {
    // RFC 7914 §12, third vector: P = "pleaseletmein", S = "SodiumChloride",
    // N = 16384, r = 8, p = 1. Its 64-byte output starts with our 32 bytes
    // (PBKDF2 output blocks do not depend on the length asked for).
    let expect: [u8; 32] = [
        0x70, 0x23, 0xbd, 0xcb, 0x3a, 0xfd, 0x73, 0x48, 0x46, 0x1c, 0x06, 0xcd, 0x81, 0xfd, 0x38,
        0xeb, 0xfd, 0xa8, 0xfb, 0xba, 0x90, 0x4f, 0x8e, 0x3e, 0xa9, 0xb5, 0x43, 0xf6, 0x54, 0x5d,
        0xa1, 0xf2,
    ];
    let phc = format!(
        "$scrypt$ln=14,r=8,p=1${}${}",
        B64.encode(b"SodiumChloride"),
        B64.encode(expect)
    );
    assert!(verify_password("pleaseletmein", &phc).unwrap());
    assert!(!verify_password("pleaseletmeout", &phc).unwrap());
}

#[test]
fn tampered_hash_strings_are_errors() {
    let phc = hash_password_with_cost("pw", LN).unwrap();
    let (head, hash) = phc.rsplit_once('$').unwrap();
    let salt = head.rsplit_once('$').unwrap().1;
    let bad = [
        phc.replacen("$scrypt$", "$argon2$", 1),
        phc.replacen("ln=10", "ln=1O", 1),
        phc.replacen("ln=10,r=8", "r=8,ln=10", 1),
        phc.replacen("ln=10", "ln=+10", 1),
        phc.replacen("ln=10", "ln=", 1),
        phc.replacen(",p=1", "", 1),
        phc.replacen(",p=1", ",p=1,x=2", 1),
        format!("{head}${}", &hash[..hash.len() - 2]), // truncated hash
        format!("{head}${hash}A"),                     // longer hash
        format!("{head}${hash}="),                     // padding
        format!("{head}$!{}", &hash[1..]),             // not base64
        phc.replacen(salt, "", 1),                     // no salt
        format!("{phc}$extra"),
        String::new(),
        "$scrypt$".to_owned(),
    ];
    for b in &bad {
        let e = verify_password("pw", b);
        assert!(e.is_err(), "accepted tampered {b:?}");
        if let Err(e) = e {
            assert!(!e.to_string().contains(hash), "error echoes the hash: {e}");
        }
    }
    // A changed hash byte is well-formed: it just does not match.
    let flipped = if hash.starts_with('A') { 'B' } else { 'A' };
    let other = format!("{head}${flipped}{}", &hash[1..]);
    assert!(!verify_password("pw", &other).unwrap());
}

#[test]
fn cost_out_of_range_is_refused() {
    assert!(matches!(
        hash_password_with_cost("pw", 9),
        Err(UserError::CostOutOfRange(_))
    ));
    assert!(matches!(
        hash_password_with_cost("pw", 21),
        Err(UserError::CostOutOfRange(_))
    ));
    let phc = hash_password_with_cost("pw", LN).unwrap();
    for (from, to) in [
        ("ln=10", "ln=9"),
        ("ln=10", "ln=21"),
        ("ln=10", "ln=255"),
        ("ln=10", "ln=4294967295"),
        ("ln=10", "ln=9999999999999999999"),
        ("r=8", "r=4294967296"),
        ("r=8", "r=0"),
        ("r=8", "r=1000"),
        ("p=1", "p=0"),
        ("p=1", "p=99"),
    ] {
        let hostile = phc.replacen(from, to, 1);
        let started = std::time::Instant::now();
        assert!(
            matches!(
                verify_password("pw", &hostile),
                Err(UserError::CostOutOfRange(_))
            ),
            "{to}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
    // ln=20 with r=32 needs 4 GiB: refused by the memory bound.
    assert!(matches!(
        verify_password("pw", &phc.replacen("ln=10,r=8", "ln=20,r=32", 1)),
        Err(UserError::CostOutOfRange(_))
    ));
    assert!(check_params(MAX_LN, DEFAULT_R, DEFAULT_P).is_ok());
}

#[test]
fn new_passwords_are_checked() {
    assert!(matches!(
        hash_password_with_cost("", LN),
        Err(UserError::BadNewPassword(_))
    ));
    let long = "x".repeat(MAX_PASSWORD_LEN + 1);
    assert!(matches!(
        hash_password_with_cost(&long, LN),
        Err(UserError::BadNewPassword(_))
    ));
}

#[test]
fn user_names() {
    for ok in ["alice", "a.b_c-d@example.org", &"x".repeat(64)] {
        assert!(check_user_name(ok).is_ok(), "{ok}");
    }
    for bad in ["", "a b", "a/b", "a:b", "ä", &"x".repeat(65)] {
        assert!(check_user_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn add_remove_list_save_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/users.toml");
    // missing file = empty
    let mut db = UserDb::load(&path).unwrap();
    assert!(db.is_empty());
    db.set_hash_cost(LN).unwrap();
    db.add("DEFAULT", "alice", "pw-a").unwrap();
    db.add("DEFAULT", "bob", "pw-b").unwrap();
    db.add("lab", "alice", "pw-lab").unwrap();
    assert_eq!(db.len(), 3);
    db.save(&path).unwrap();

    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "users file mode {mode:o}");
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["users.toml"], "temp files left behind");

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("[[user]]"), "{text}");
    assert!(
        text.contains("password = \"$scrypt$ln=10,r=8,p=1$"),
        "{text}"
    );

    let mut back = UserDb::load(&path).unwrap();
    let listed: Vec<String> = back
        .list()
        .map(|u| format!("{}/{}", u.hub(), u.name()))
        .collect();
    assert_eq!(listed, ["DEFAULT/alice", "DEFAULT/bob", "lab/alice"]);
    assert_eq!(
        back.authenticate("DEFAULT", "alice", "pw-a"),
        AuthResult::Ok
    );
    assert_eq!(
        back.authenticate("lab", "alice", "pw-a"),
        AuthResult::BadPassword
    );
    assert_eq!(back.authenticate("lab", "alice", "pw-lab"), AuthResult::Ok);

    assert!(back.remove("DEFAULT", "bob").unwrap());
    assert!(!back.remove("DEFAULT", "bob").unwrap());
    assert!(!back.remove("nohub", "bob").unwrap());
    back.save(&path).unwrap();
    let again = UserDb::load(&path).unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.get("DEFAULT", "bob").is_none());
    // Saving over an existing file keeps mode 0600.
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn duplicates_refused_unless_replaced() {
    let mut db = cheap_db();
    db.add("DEFAULT", "alice", "one").unwrap();
    assert!(matches!(
        db.add("DEFAULT", "alice", "two"),
        Err(UserError::Duplicate { .. })
    ));
    assert_eq!(db.authenticate("DEFAULT", "alice", "one"), AuthResult::Ok);
    assert!(db.add_or_replace("DEFAULT", "alice", "two").unwrap());
    assert!(!db.add_or_replace("DEFAULT", "carol", "three").unwrap());
    assert_eq!(db.authenticate("DEFAULT", "alice", "two"), AuthResult::Ok);
    assert_eq!(
        db.authenticate("DEFAULT", "alice", "one"),
        AuthResult::BadPassword
    );
}

#[test]
fn put_binds_certificates_and_replace_keeps_what_is_not_given() {
    let mut db = cheap_db();
    let fp: Fingerprint = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
    let cert_only = Login {
        cert_fingerprint: Some(fp),
        ..Login::default()
    };
    assert!(!db.put("DEFAULT", "bob", cert_only, false).unwrap());
    let bob = db.get("DEFAULT", "bob").unwrap();
    assert!(!bob.has_password());
    assert_eq!(bob.cert_fingerprint(), Some(&fp));
    // A user with no way to log in is refused.
    assert!(matches!(
        db.put("DEFAULT", "carol", Login::default(), false),
        Err(UserError::NoLogin { .. })
    ));
    assert!(db.get("DEFAULT", "carol").is_none());
    // Replace: a password added, the certificate kept; then a subject.
    assert!(db
        .put("DEFAULT", "bob", Login::password("pw"), true)
        .unwrap());
    let subject = Login {
        cert_subject: Some(" CN=bob ".into()),
        ..Login::default()
    };
    assert!(db.put("DEFAULT", "bob", subject, true).unwrap());
    let bob = db.get("DEFAULT", "bob").unwrap();
    assert_eq!(db.authenticate("DEFAULT", "bob", "pw"), AuthResult::Ok);
    assert_eq!(bob.cert_fingerprint(), Some(&fp));
    assert_eq!(bob.cert_subject(), Some("CN=bob"));
}

#[test]
fn bad_names_refused_by_add() {
    let mut db = cheap_db();
    assert!(matches!(
        db.add("DEFAULT", "a b", "pw"),
        Err(UserError::InvalidName(_))
    ));
    assert!(matches!(
        db.add("bad hub", "a", "pw"),
        Err(UserError::InvalidHub(_))
    ));
    assert!(db.is_empty());
}

#[test]
fn unknown_user_costs_a_scrypt_too() {
    let db = cheap_db();
    let started = std::time::Instant::now();
    assert_eq!(
        db.authenticate("DEFAULT", "nobody", "pw"),
        AuthResult::UnknownUser
    );
    // The dummy hash has the default cost: about as slow as a real check.
    let unknown = started.elapsed();
    let phc = hash_password("pw").unwrap();
    let started = std::time::Instant::now();
    verify_password("pw", &phc).unwrap();
    let real = started.elapsed();
    assert!(
        unknown * 3 > real,
        "unknown user {unknown:?} vs real check {real:?}"
    );
}

#[test]
fn debug_and_display_never_show_the_hash() {
    let mut db = cheap_db();
    db.add("DEFAULT", "alice", "pw").unwrap();
    let u = db.get("DEFAULT", "alice").unwrap();
    let phc = u.password.as_ref().unwrap().to_phc();
    let (_, hash) = phc.rsplit_once('$').unwrap();
    let (head, _) = phc.rsplit_once('$').unwrap();
    let salt = head.rsplit_once('$').unwrap().1;
    for shown in [
        format!("{u:?}"),
        format!("{u}"),
        format!("{db:?}"),
        format!("{u:#?}"),
    ] {
        assert!(!shown.contains(hash), "{shown}");
        assert!(!shown.contains(salt), "{shown}");
        assert!(!shown.contains("$scrypt$"), "{shown}");
    }
    assert_eq!(format!("{u}"), "DEFAULT/alice (password)");
}

#[test]
fn users_file_problems_have_lines() {
    let phc = hash_password_with_cost("pw", LN).unwrap();
    let text = format!(
        "[[user]]\nname = \"ok\"\nhub = \"DEFAULT\"\npassword = \"{phc}\"\n\
         [[user]]\nname = \"bad name\"\nhub = \"DEFAULT\"\npassword = \"{phc}\"\n\
         [[user]]\nname = \"x\"\nhub = \"DEFAULT\"\npassword = \"$scrypt$ln=30,r=8,p=1$AAAA$AAAA\"\n\
         [[user]]\nname = \"ok\"\nhub = \"DEFAULT\"\npassword = \"{phc}\"\n"
    );
    let e = UserDb::from_toml(&text, Path::new("users.toml"))
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 3, "{e}");
    assert!(
        lines[0].starts_with("users.toml:6:8: user name \"bad name\""),
        "{e}"
    );
    assert!(
        lines[1].starts_with("users.toml:12:12: scrypt parameters out of range: ln=30"),
        "{e}"
    );
    assert!(
        lines[2].starts_with("users.toml:14:8: user \"ok\" already exists"),
        "{e}"
    );

    let e = UserDb::from_toml(
        "[[user]]\nname = \"a\"\nhub = \"h\"\npasswd = \"x\"\n",
        Path::new("u.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("u.toml:4:1: unknown field `passwd`"), "{e}");
}

#[test]
fn config_users_are_merged_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let users_file = dir.path().join("users.toml");
    let mut file_db = cheap_db();
    file_db.add("lab", "alice", "file-pw").unwrap();
    file_db.save(&users_file).unwrap();

    let phc = hash_password_with_cost("config-pw", LN).unwrap();
    let text = format!(
        "users_file = {:?}\n[[hub]]\nname = \"lab\"\n[[hub.user]]\nname = \"bob\"\npassword = \"{phc}\"\n",
        users_file.display().to_string()
    );
    let config = Config::from_toml(&text).unwrap();
    let mut db = UserDb::load_with_config(&config).unwrap();
    db.set_hash_cost(LN).unwrap();
    assert_eq!(db.authenticate("lab", "alice", "file-pw"), AuthResult::Ok);
    assert_eq!(db.authenticate("lab", "bob", "config-pw"), AuthResult::Ok);
    assert_eq!(db.get("lab", "bob").unwrap().source(), UserSource::Config);
    assert!(matches!(
        db.remove("lab", "bob"),
        Err(UserError::DefinedInConfig { .. })
    ));
    assert!(matches!(
        db.add_or_replace("lab", "bob", "x"),
        Err(UserError::DefinedInConfig { .. })
    ));
    // Saving writes the file users only.
    db.add("lab", "carol", "pw").unwrap();
    db.save(&users_file).unwrap();
    let saved = UserDb::load(&users_file).unwrap();
    let names: Vec<&str> = saved.list().map(User::name).collect();
    assert_eq!(names, ["alice", "carol"]);

    // The same user in both places is an error.
    let text = format!(
        "users_file = {:?}\n[[hub]]\nname = \"lab\"\n[[hub.user]]\nname = \"alice\"\npassword = \"{phc}\"\n",
        users_file.display().to_string()
    );
    let config = Config::from_toml(&text).unwrap();
    assert!(matches!(
        UserDb::load_with_config(&config),
        Err(UserError::DefinedInConfig { .. })
    ));
}

#[test]
fn certificate_only_user_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let fp = format!("sha256:{}", "0f".repeat(32));
    let text = format!("[[user]]\nname = \"dev\"\nhub = \"DEFAULT\"\ncert_fingerprint = \"{fp}\"\ncert_subject = \"CN=dev\"\n");
    std::fs::write(&path, text).unwrap();
    let db = UserDb::load(&path).unwrap();
    let u = db.get("DEFAULT", "dev").unwrap();
    assert_eq!(u.cert_fingerprint().unwrap().to_string(), fp);
    assert!(!u.has_password());
    // no password: refused after a dummy scrypt
    assert_eq!(
        db.authenticate("DEFAULT", "dev", ""),
        AuthResult::BadPassword
    );
    db.save(&path).unwrap();
    let back = UserDb::load(&path).unwrap();
    assert_eq!(back.get("DEFAULT", "dev"), db.get("DEFAULT", "dev"));
}

// SoftEther logins. The known answers are PROTOCOL-NOTES.md §5.2.1's, as
// switch-core's softether::password tests check them.

/// SHA0("secret" ‖ "ALICE").
const ALICE_SECRET: &str = "0e782dacdb78918d73007999da81bc408906d451";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn with_softether(password: &str) -> Login<'_> {
    Login {
        softether: Some(true),
        ..Login::password(password)
    }
}

/// The proof a SoftEther client sends for `name`/`password` and `random`.
fn proof(name: &str, password: &str, random: &[u8; 20]) -> [u8; 20] {
    switch_core::softether::HashedPassword::new(name, password).secure_password(random)
}

#[test]
fn softether_hash_is_softethers_and_only_stored_on_request() {
    let mut db = cheap_db();
    db.put("DEFAULT", "alice", with_softether("secret"), false)
        .unwrap();
    db.add("DEFAULT", "bob", "secret").unwrap();
    let alice = db.get("DEFAULT", "alice").unwrap();
    assert!(alice.has_softether() && alice.has_password());
    let stored = alice.softether.unwrap();
    assert_eq!(
        stored,
        switch_core::softether::HashedPassword::new("alice", "secret")
    );
    assert_eq!(hex(&stored.0), ALICE_SECRET);
    assert_eq!(softether_hash_hex(&stored), ALICE_SECRET);
    // Opt-in: a plain `add` stores none.
    assert!(!db.get("DEFAULT", "bob").unwrap().has_softether());
    // The scrypt password works as before.
    assert_eq!(
        db.authenticate("DEFAULT", "alice", "secret"),
        AuthResult::Ok
    );
}

#[test]
fn softether_login_checks_the_proof_for_this_random() {
    let mut db = cheap_db();
    db.put("DEFAULT", "alice", with_softether("secret"), false)
        .unwrap();
    let random: [u8; 20] = std::array::from_fn(|i| i as u8);
    let good = proof("alice", "secret", &random);
    assert_eq!(hex(&good), "1394b82845bfb7a2711c4963f2b62978cb2c6ce3");
    assert_eq!(
        db.authenticate_softether("DEFAULT", "alice", &good, &random),
        AuthResult::Ok
    );
    // Through the trait the hub uses.
    let auth: &dyn crate::auth::Authenticator = &db;
    assert_eq!(
        auth.authenticate_softether("DEFAULT", "alice", &good, &random),
        AuthResult::Ok
    );
    // A wrong password, a flipped bit, another connection's random, another hub.
    let wrong = proof("alice", "Secret", &random);
    let mut flipped = good;
    flipped[19] ^= 1;
    for (p, r, hub) in [
        (wrong, random, "DEFAULT"),
        (flipped, random, "DEFAULT"),
        (good, [7; 20], "DEFAULT"),
    ] {
        assert_eq!(
            db.authenticate_softether(hub, "alice", &p, &r),
            AuthResult::BadPassword
        );
    }
    assert_eq!(
        db.authenticate_softether("lab", "alice", &good, &random),
        AuthResult::UnknownUser
    );
}

#[test]
fn softether_login_without_the_hash_fails_like_a_wrong_password() {
    let mut db = cheap_db();
    db.put("DEFAULT", "alice", with_softether("secret"), false)
        .unwrap();
    db.add("DEFAULT", "bob", "secret").unwrap();
    let random = [3u8; 20];
    let wrong_for_alice =
        db.authenticate_softether("DEFAULT", "alice", &proof("alice", "x", &random), &random);
    // bob's right password, but he has no SoftEther hash.
    let bob =
        db.authenticate_softether("DEFAULT", "bob", &proof("bob", "secret", &random), &random);
    assert_eq!(wrong_for_alice, AuthResult::BadPassword);
    assert_eq!(bob, wrong_for_alice);
    // The dummy the check runs against for bob is never accepted, whatever
    // the client sends: try every proof a client could compute for a
    // stored value it might guess (zeros, the dummy's 0x5a bytes).
    for guess in [[0u8; 20], [0x5a; 20], [0xff; 20]] {
        let p = switch_core::softether::HashedPassword(guess).secure_password(&random);
        assert_eq!(
            db.authenticate_softether("DEFAULT", "bob", &p, &random),
            AuthResult::BadPassword
        );
    }
    // A certificate-only user: the same.
    let cert_only = Login {
        cert_subject: Some("CN=carol".into()),
        ..Login::default()
    };
    db.put("DEFAULT", "carol", cert_only, false).unwrap();
    assert_eq!(
        db.authenticate_softether("DEFAULT", "carol", &[0; 20], &random),
        AuthResult::BadPassword
    );
    assert_eq!(
        db.authenticate_softether("DEFAULT", "nobody", &[0; 20], &random),
        AuthResult::UnknownUser
    );
}

#[test]
fn softether_names_match_exactly() {
    // SoftEther folds the name into the hash, so "ALICE" proves the same
    // as "alice": the lookup, not the hash, decides, and it is exact.
    let mut db = cheap_db();
    db.put("DEFAULT", "alice", with_softether("secret"), false)
        .unwrap();
    let random = [1u8; 20];
    let p = proof("ALICE", "secret", &random);
    assert_eq!(
        db.authenticate_softether("DEFAULT", "alice", &p, &random),
        AuthResult::Ok
    );
    for other in ["ALICE", "Alice"] {
        assert_eq!(
            db.authenticate_softether("DEFAULT", other, &p, &random),
            AuthResult::UnknownUser,
            "{other}"
        );
    }
}

#[test]
fn softether_hash_follows_the_password_on_replace() {
    let mut db = cheap_db();
    db.put("DEFAULT", "alice", with_softether("old"), false)
        .unwrap();
    let random = [5u8; 20];
    let se = |db: &UserDb, pw: &str| {
        db.authenticate_softether("DEFAULT", "alice", &proof("alice", pw, &random), &random)
    };
    // A new password, --softether not repeated: the hash is made again.
    db.put("DEFAULT", "alice", Login::password("new"), true)
        .unwrap();
    assert_eq!(se(&db, "new"), AuthResult::Ok);
    assert_eq!(se(&db, "old"), AuthResult::BadPassword);
    // A certificate added: the hash is kept.
    let subject = Login {
        cert_subject: Some("CN=alice".into()),
        ..Login::default()
    };
    db.put("DEFAULT", "alice", subject, true).unwrap();
    assert_eq!(se(&db, "new"), AuthResult::Ok);
    // Turned off: gone, the rest kept.
    let off = Login {
        softether: Some(false),
        ..Login::default()
    };
    db.put("DEFAULT", "alice", off, true).unwrap();
    let alice = db.get("DEFAULT", "alice").unwrap();
    assert!(!alice.has_softether());
    assert_eq!(alice.cert_subject(), Some("CN=alice"));
    assert_eq!(se(&db, "new"), AuthResult::BadPassword);
    assert_eq!(db.authenticate("DEFAULT", "alice", "new"), AuthResult::Ok);
    // Turning it on needs the password: the hash is made from it.
    let on = Login {
        softether: Some(true),
        ..Login::default()
    };
    assert!(matches!(
        db.put("DEFAULT", "alice", on, true),
        Err(UserError::SoftEtherNeedsPassword { .. })
    ));
    assert!(!db.get("DEFAULT", "alice").unwrap().has_softether());
}

#[test]
fn softether_hash_round_trips_through_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let mut db = cheap_db();
    db.put("DEFAULT", "alice", with_softether("secret"), false)
        .unwrap();
    db.add("DEFAULT", "bob", "pw").unwrap();
    db.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.matches(&format!("softether_hash = \"{ALICE_SECRET}\""))
            .count(),
        1,
        "alice's only: {text}"
    );
    let back = UserDb::load(&path).unwrap();
    assert_eq!(back.get("DEFAULT", "alice"), db.get("DEFAULT", "alice"));
    assert!(!back.get("DEFAULT", "bob").unwrap().has_softether());
    let random = [9u8; 20];
    assert_eq!(
        back.authenticate_softether(
            "DEFAULT",
            "alice",
            &proof("alice", "secret", &random),
            &random
        ),
        AuthResult::Ok
    );

    // A SoftEther-only user (say, moved from a SoftEther server), the hash
    // in upper case: read, written back in lower case.
    let upper = ALICE_SECRET.to_ascii_uppercase();
    std::fs::write(
        &path,
        format!("[[user]]\nname = \"alice\"\nhub = \"DEFAULT\"\nsoftether_hash = \"{upper}\"\n"),
    )
    .unwrap();
    let only = UserDb::load(&path).unwrap();
    let alice = only.get("DEFAULT", "alice").unwrap();
    assert!(alice.has_softether() && !alice.has_password());
    assert_eq!(
        only.authenticate_softether(
            "DEFAULT",
            "alice",
            &proof("alice", "secret", &random),
            &random
        ),
        AuthResult::Ok
    );
    assert_eq!(
        only.authenticate("DEFAULT", "alice", "secret"),
        AuthResult::BadPassword
    );
    only.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&format!("softether_hash = \"{ALICE_SECRET}\"")),
        "{text}"
    );
}

#[test]
fn softether_hash_problems_have_lines_and_never_echo_the_value() {
    let short = &ALICE_SECRET[..38];
    let not_hex = format!("{}zz", &ALICE_SECRET[..38]);
    let long = format!("{ALICE_SECRET}00");
    let text = format!(
        "[[user]]\nname = \"a\"\nhub = \"DEFAULT\"\nsoftether_hash = \"{short}\"\n\
         [[user]]\nname = \"b\"\nhub = \"DEFAULT\"\nsoftether_hash = \"{not_hex}\"\n\
         [[user]]\nname = \"c\"\nhub = \"DEFAULT\"\nsoftether_hash = \"{long}\"\n\
         [[user]]\nname = \"d\"\nhub = \"DEFAULT\"\nsoftether_hash = \"\"\n\
         [[user]]\nname = \"e\"\nhub = \"DEFAULT\"\nsoftether_hash = \"{ALICE_SECRET}\"\n"
    );
    let e = UserDb::from_toml(&text, Path::new("users.toml"))
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 4, "{e}");
    for (line, (at, what)) in lines.iter().zip([
        ("users.toml:4:18:", "it has 38 digits"),
        ("users.toml:8:18:", "not a hex digit"),
        ("users.toml:12:18:", "it has 42 digits"),
        ("users.toml:16:18:", "it has 0 digits"),
    ]) {
        assert!(
            line.starts_with(&format!("{at} malformed softether_hash")),
            "{e}"
        );
        assert!(line.contains(what), "{e}");
        assert!(line.contains("40 hex digits"), "{e}");
    }
    for value in [short, &not_hex[..], &long[..]] {
        assert!(!e.contains(value), "the error echoes a hash: {e}");
    }
    // Parsed directly too.
    assert!(parse_softether_hash(ALICE_SECRET).is_ok());
    assert!(parse_softether_hash(&format!("+{}", &ALICE_SECRET[1..])).is_err());
    assert!(parse_softether_hash(&"é".repeat(20)).is_err());
}

#[test]
fn debug_and_display_never_show_the_softether_hash() {
    let mut db = cheap_db();
    db.put("DEFAULT", "alice", with_softether("secret"), false)
        .unwrap();
    let u = db.get("DEFAULT", "alice").unwrap();
    for shown in [format!("{u:?}"), format!("{u:#?}"), format!("{db:?}")] {
        assert!(!shown.contains(ALICE_SECRET), "{shown}");
        assert!(!shown.contains("0e, 78"), "{shown}");
    }
    assert_eq!(
        format!("{u}"),
        "DEFAULT/alice (password, SoftEther password)"
    );
}
