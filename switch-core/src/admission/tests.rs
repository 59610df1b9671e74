//! The admission decisions with literal requests and facts.

use super::*;
use crate::wire::http::{Credentials, Resume, SessionToken};

const HUB: HubFacts = HubFacts {
    index: 2,
    anonymous: false,
};

fn request(resume: bool, user: Option<&str>) -> UpgradeRequest {
    let mut r = UpgradeRequest::new("DEFAULT", "hub");
    r.resume = resume.then_some(Resume {
        token: SessionToken([7; 16]),
        rx: 0,
    });
    r.credentials = user.map(|u| Credentials {
        user: u.into(),
        password: "pw".into(),
    });
    r
}

fn known(user: &str) -> KnownSession<'_> {
    KnownSession {
        hub: 2,
        user,
        shard: 1,
        slot: 9,
        user_exists: true,
    }
}

fn facts(session: Option<KnownSession<'_>>) -> Facts<'_> {
    Facts {
        shutting_down: false,
        hub: Some(HUB),
        session,
    }
}

fn refused(d: Decision) -> RefuseCode {
    match d {
        Decision::Refuse(r) => r.code,
        other => panic!("admitted: {other:?}"),
    }
}

#[test]
fn new_session_on_a_known_hub() {
    assert_eq!(
        decide(&request(false, Some("alice")), &facts(None)),
        Decision::New { hub: 2 }
    );
}

#[test]
fn shutting_down_comes_first_and_is_retryable() {
    let f = Facts {
        shutting_down: true,
        ..facts(Some(known("alice")))
    };
    let Decision::Refuse(r) = decide(&request(true, None), &f) else {
        panic!()
    };
    assert_eq!(r.code, RefuseCode::ShuttingDown);
    assert_eq!(r.status(), Status::SERVICE_UNAVAILABLE);
    assert_eq!(r.retry_after, Some(5));
    assert!(r.is_retryable());
}

#[test]
fn unknown_hub_is_final() {
    let f = Facts {
        hub: None,
        ..facts(None)
    };
    let code = refused(decide(&request(false, None), &f));
    assert_eq!(code, RefuseCode::UnknownHub);
    assert!(!code.is_retryable());
}

#[test]
fn resume_goes_to_the_owner_slot() {
    assert_eq!(
        decide(&request(true, Some("alice")), &facts(Some(known("alice")))),
        Decision::Resume {
            hub: 2,
            shard: 1,
            slot: 9
        }
    );
    // No credentials on a resume: the token is enough.
    assert!(matches!(
        decide(&request(true, None), &facts(Some(known("alice")))),
        Decision::Resume { .. }
    ));
}

#[test]
fn resume_is_refused_as_unknown_when_anything_differs() {
    let gone = |k: Option<KnownSession<'_>>, user: Option<&str>| {
        refused(decide(&request(true, user), &facts(k)))
    };
    // No such token.
    assert_eq!(gone(None, None), RefuseCode::SessionUnknown);
    // Another hub's session.
    let other_hub = KnownSession {
        hub: 3,
        ..known("alice")
    };
    assert_eq!(gone(Some(other_hub), None), RefuseCode::SessionUnknown);
    // Another user's session.
    assert_eq!(
        gone(Some(known("alice")), Some("mallory")),
        RefuseCode::SessionUnknown
    );
    // The user was removed since.
    let removed = KnownSession {
        user_exists: false,
        ..known("alice")
    };
    assert_eq!(gone(Some(removed), None), RefuseCode::SessionUnknown);
    // An anonymous session on a hub that is no longer anonymous.
    assert_eq!(gone(Some(known("")), None), RefuseCode::SessionUnknown);
    let anon = Facts {
        hub: Some(HubFacts {
            anonymous: true,
            ..HUB
        }),
        ..facts(Some(known("")))
    };
    assert!(matches!(
        decide(&request(true, None), &anon),
        Decision::Resume { .. }
    ));
}

#[test]
fn capacity_names_the_limit() {
    let c = Capacity {
        hub_sessions: 4,
        hub_max: 5,
        total: 10,
        total_max: 11,
    };
    assert_eq!(check_capacity(c), Ok(()));
    let (full, r) = check_capacity(Capacity {
        hub_sessions: 5,
        ..c
    })
    .unwrap_err();
    assert_eq!((full, r.code), (Full::Hub, RefuseCode::LimitSessions));
    assert_eq!(r.retry_after, Some(30));
    let (full, _) = check_capacity(Capacity { total: 11, ..c }).unwrap_err();
    assert_eq!(full, Full::Total);
    // hub_max 0: no limit of the hub's own.
    let c0 = Capacity {
        hub_sessions: 1000,
        hub_max: 0,
        ..c
    };
    assert_eq!(check_capacity(c0), Ok(()));
    assert!(user_limit_refusal("bob", 3).reason.contains("limit of 3"));
}

#[test]
fn resume_outcomes_map_to_409_and_410() {
    assert_eq!(resume_refusal(Some(Ok(()))), None);
    let r = resume_refusal(Some(Err(ResumeError::RxFromTheFuture {
        claimed: 9,
        sent: 3,
    })))
    .unwrap();
    assert_eq!(
        (r.code, r.status()),
        (RefuseCode::BadResume, Status::CONFLICT)
    );
    for found in [Some(Err(ResumeError::Closed)), None] {
        let r = resume_refusal(found).unwrap();
        assert_eq!(
            (r.code, r.status()),
            (RefuseCode::SessionUnknown, Status::GONE)
        );
    }
}

#[test]
fn codes_round_trip_and_keep_their_wire_names() {
    for c in RefuseCode::ALL {
        assert_eq!(RefuseCode::parse(c.as_str()), Some(c));
    }
    assert_eq!(RefuseCode::parse("no-such-code"), None);
    // The names are on the wire (PROTOCOL.md): they must not change.
    let names: Vec<&str> = RefuseCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "auth-required",
            "auth-failed",
            "cert-not-bound",
            "cert-ambiguous",
            "cert-refused",
            "login-throttled",
            "unknown-hub",
            "session-unknown",
            "bad-resume",
            "limit-sessions",
            "limit-sessions-user",
            "shutting-down"
        ]
    );
}

#[test]
fn emitted_refusals_parse_back_on_the_client() {
    let sent = Refuse::new(RefuseCode::LoginThrottled, "too many failed logins")
        .retry_after(7)
        .realm("vhub DEFAULT");
    let mut out = Vec::new();
    sent.emit(&mut out);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 429 "), "{text}");
    assert!(
        text.contains("\r\nVhub-Error: login-throttled\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nRetry-After: 7\r\n"), "{text}");
    assert!(text.contains("\r\nWWW-Authenticate: Basic realm=\"vhub DEFAULT\"\r\n"));
    let Ok(Some((Err(refusal), n))) = http::parse_response(&out, 8192) else {
        panic!("not a refusal: {text}")
    };
    assert_eq!(n, out.len());
    let got = Refuse::parse(&refusal).expect("a known code");
    assert_eq!(
        (got.code, got.reason.as_str(), got.retry_after),
        (sent.code, sent.reason.as_str(), sent.retry_after)
    );
    assert_eq!(
        refusal.refuse().map(|r| r.code),
        Some(RefuseCode::LoginThrottled)
    );
    // A code that does not match its status is not trusted.
    let mut odd = refusal.clone();
    odd.status = Status::NOT_FOUND;
    assert_eq!(Refuse::parse(&odd), None);
}
