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
