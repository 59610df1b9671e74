//! The two handshakes against each other, and the server against the
//! requests of PROTOCOL-NOTES.md §3.3's table, byte by byte where it
//! matters.

use std::time::{Duration, Instant};

use super::data::{encode_batch, Decoder, Item};
use super::http::{emit_pack_request, parse_response_head};
use super::message::{add_pencore, error_pack, pack_error};
use super::probe::MARKER;
use super::watermark::WATERMARK;
use super::*;

#[allow(clippy::disallowed_methods)] // the test's one clock read: its epoch
fn t0() -> Instant {
    Instant::now()
}

const RANDOM: [u8; 20] = [0x42; 20];

fn client_config(password: &str) -> ClientConfig {
    ClientConfig::new(
        "127.0.0.1",
        "VPN",
        "alice",
        ClientAuth::Password(HashedPassword::new("alice", password)),
        [7; 20],
    )
}

/// Moves bytes between the two ends, `piece` bytes at a time, until
/// neither has anything to send or to read. Returns the last error of
/// each side, if any.
struct Link {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    piece: usize,
}

impl Link {
    fn new(piece: usize) -> Self {
        Self {
            to_server: Vec::new(),
            to_client: Vec::new(),
            piece,
        }
    }

    fn run(
        &mut self,
        now: Instant,
        c: &mut ClientHandshake,
        s: &mut ServerHandshake,
    ) -> (Result<(), ClientError>, Result<(), ServerError>) {
        let (mut cr, mut sr) = (Ok(()), Ok(()));
        let mut c_rx = Vec::new();
        let mut s_rx = Vec::new();
        loop {
            c.poll_transmit(&mut self.to_server);
            s.poll_transmit(&mut self.to_client);
            if self.to_server.is_empty() && self.to_client.is_empty() {
                return (cr, sr);
            }
            let n = self.piece.min(self.to_server.len());
            s_rx.extend(self.to_server.drain(..n));
            if s.state() != ServerState::Closed {
                match s.handle_input(now, &s_rx) {
                    Ok(used) => drop(s_rx.drain(..used)),
                    Err(e) => sr = Err(e),
                }
            }
            let n = self.piece.min(self.to_client.len());
            c_rx.extend(self.to_client.drain(..n));
            if c.state() != ClientState::Closed {
                match c.handle_input(now, &c_rx) {
                    Ok(used) => drop(c_rx.drain(..used)),
                    Err(e) => cr = Err(e),
                }
            }
        }
    }
}

fn login_to_decision(
    config: ClientConfig,
    piece: usize,
) -> (ClientHandshake, ServerHandshake, Login) {
    let now = t0();
    let mut c = ClientHandshake::login(now, config, 1);
    let mut s = ServerHandshake::new(now, ServerConfig::default(), RANDOM, 2);
    let (cr, sr) = Link::new(piece).run(now, &mut c, &mut s);
    assert_eq!((cr, sr), (Ok(()), Ok(())));
    assert_eq!(s.state(), ServerState::Deciding);
    assert_eq!(c.state(), ClientState::AwaitingWelcome);
    let Some(ClientEvent::Hello(hello)) = c.poll_event() else {
        panic!("no hello event")
    };
    assert_eq!(hello.random, RANDOM);
    assert_eq!(hello.server, ProductInfo::softether_server());
    let Some(ServerEvent::Login(login)) = s.poll_event() else {
        panic!("no login event")
    };
    (c, s, login)
}

#[test]
fn login_welcome_and_data_both_ways_in_any_pieces() {
    for (piece, probe) in [(1, true), (7, false), (1500, true), (1 << 20, false)] {
        let mut config = client_config("secret");
        config.probe = probe;
        let (mut c, mut s, login) = login_to_decision(config, piece);
        assert_eq!((login.hub.as_str(), login.user.as_str()), ("VPN", "alice"));
        assert_eq!(login.hello_random, RANDOM);
        assert_eq!(login.unique_id, Some([7; 20]));
        assert_eq!(login.options, SessionOptions::default());
        assert!(login.check_password(&HashedPassword::new("ALICE", "secret")));
        assert!(!login.check_password(&HashedPassword::new("alice", "wrong")));

        let welcome = Welcome::new("SID-ALICE-1".into(), "CID-1".into(), [9; 20], 5);
        s.accept(&welcome).unwrap();
        assert_eq!(s.state(), ServerState::Established);
        assert_eq!(s.poll_timeout(), None);
        // The welcome and the first data travel together.
        let mut wire = Vec::new();
        s.poll_transmit(&mut wire);
        let frame: Vec<u8> = (0..60).collect();
        encode_batch(&mut wire, [&frame[..]]).unwrap();
        let now = t0();
        let mut used = 0;
        for end in (0..=wire.len()).step_by(piece.min(wire.len())) {
            used += c.handle_input(now, &wire[used..end]).unwrap();
        }
        used += c.handle_input(now, &wire[used..]).unwrap();
        assert_eq!(c.state(), ClientState::Established);
        assert_eq!(
            c.poll_event(),
            Some(ClientEvent::Established(welcome.clone()))
        );
        let rest = &wire[used..];
        assert_eq!(
            Decoder::default().decode(rest).unwrap(),
            Some((Item::Frame(&frame), rest.len()))
        );
        // Once established the client uses nothing more.
        assert_eq!(c.handle_input(now, rest), Ok(0));
        assert_eq!(c.poll_timeout(), None);
    }
}

#[test]
fn wrong_password_refused_with_error_9() {
    let (mut c, mut s, login) = login_to_decision(client_config("wrong"), 64);
    assert!(!login.check_password(&HashedPassword::new("alice", "secret")));
    s.refuse(ErrorCode::AuthFailed).unwrap();
    assert_eq!(s.state(), ServerState::Refused);
    let mut wire = Vec::new();
    s.poll_transmit(&mut wire);
    // The answer is {error: 9, no_save_password: 0, pencore}.
    let head = parse_response_head(&wire).unwrap().unwrap();
    let p = Pack::decode(&wire[head.len..]).unwrap();
    assert_eq!(
        (p.get_int("error"), p.get_int("no_save_password")),
        (Some(9), Some(0))
    );
    assert_eq!(
        c.handle_input(t0(), &wire),
        Err(ClientError::Refused(ErrorCode::AuthFailed))
    );
    assert_eq!(c.state(), ClientState::Closed);
    // After a refusal the server ignores whatever arrives.
    assert_eq!(s.handle_input(t0(), b"junk"), Ok(4));
    assert_eq!(
        s.accept(&Welcome::new("S".into(), "C".into(), [0; 20], 0)),
        Err(ServerError::NotDeciding(ServerState::Refused))
    );
}

#[test]
fn additional_connect_refused_with_13_makes_the_client_start_over() {
    let now = t0();
    let mut c = ClientHandshake::additional(now, client_config("secret"), [9; 20], 3);
    let mut s = ServerHandshake::new(now, ServerConfig::default(), RANDOM, 4);
    let (cr, sr) = Link::new(100).run(now, &mut c, &mut s);
    assert_eq!((cr, sr), (Ok(()), Ok(())));
    let Some(ServerEvent::AdditionalConnect(a)) = s.poll_event() else {
        panic!("no additional_connect")
    };
    assert_eq!(a.session_key, [9; 20]);
    assert_eq!(
        s.accept(&Welcome::new("S".into(), "C".into(), [0; 20], 0)),
        Err(ServerError::NotDeciding(ServerState::Deciding))
    );
    s.refuse(ErrorCode::SessionTimeout).unwrap();
    let (cr, _) = Link::new(100).run(now, &mut c, &mut s);
    let Err(ClientError::Refused(code)) = cr else {
        panic!("{cr:?}")
    };
    assert!(code.session_gone());
}

#[test]
fn additional_connect_attached() {
    let now = t0();
    let mut c = ClientHandshake::additional(now, client_config("secret"), [9; 20], 3);
    let mut s = ServerHandshake::new(now, ServerConfig::default(), RANDOM, 4);
    let (cr, sr) = Link::new(100).run(now, &mut c, &mut s);
    assert_eq!((cr, sr), (Ok(()), Ok(())));
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::AdditionalConnect(_))
    ));
    s.attach(Direction::Both).unwrap();
    let (cr, sr) = Link::new(100).run(now, &mut c, &mut s);
    assert_eq!((cr, sr), (Ok(()), Ok(())));
    assert!(matches!(c.poll_event(), Some(ClientEvent::Hello(_))));
    assert_eq!(c.poll_event(), Some(ClientEvent::Attached(Direction::Both)));
    assert_eq!(c.state(), ClientState::Established);
}

#[test]
fn anonymous_and_plain_logins_reach_the_hub() {
    let mut config = client_config("x");
    config.auth = ClientAuth::Anonymous;
    let (_, _, login) = login_to_decision(config, 500);
    assert_eq!(login.auth, LoginAuth::Anonymous);
    let mut config = client_config("x");
    config.auth = ClientAuth::PlainPassword("secret".into());
    let (_, _, login) = login_to_decision(config, 500);
    assert!(login.check_password(&HashedPassword::new("alice", "secret")));
}

// ---- the server against single requests ----

fn server() -> ServerHandshake {
    ServerHandshake::new(t0(), ServerConfig::default(), RANDOM, 5)
}

fn post(target: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {target} HTTP/1.1\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn watermark_post(padding: usize) -> Vec<u8> {
    let mut body = WATERMARK.to_vec();
    body.resize(WATERMARK.len() + padding, 0xaa);
    post("/vpnsvc/connect.cgi", "image/jpeg", &body)
}

/// The status and body of every response in `out`.
fn responses(out: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut v = Vec::new();
    let mut off = 0;
    while off < out.len() {
        let head = parse_response_head(&out[off..]).unwrap().unwrap();
        let body = out[off + head.len..off + head.len + head.body_len()].to_vec();
        v.push((head.status, body));
        off += head.len + head.body_len();
    }
    v
}

fn sent(s: &mut ServerHandshake) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    responses(&out)
}

#[test]
fn probe_pages_then_watermark_on_one_connection() {
    let mut s = server();
    let mut input = b"GET / HTTP/1.1\r\nX-VPN: 1\r\nHost: a\r\n\r\n".to_vec();
    input.extend_from_slice(b"GET /foo HTTP/1.1\r\n\r\n");
    input.extend_from_slice(b"HEAD / HTTP/1.1\r\n\r\n");
    input.extend_from_slice(b"PUT / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    input.extend_from_slice(&post("/other.cgi", "image/jpeg", &[0; 1500]));
    let mut bad = watermark_post(5);
    let at = bad.len() - 100;
    bad[at] ^= 1;
    input.extend_from_slice(&bad);
    input.extend_from_slice(&post("/vpnsvc/connect.cgi", "x", b"VPNCONNECT"));
    assert_eq!(s.handle_input(t0(), &input), Ok(input.len()));
    let r = sent(&mut s);
    let statuses: Vec<u16> = r.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 404, 200, 501, 404, 403, 200]);
    assert!(probe::is_softether_page(&r[0].1));
    assert!(String::from_utf8_lossy(&r[0].1).contains(MARKER));
    assert!(probe::is_softether_page(&r[5].1), "SoftEther's 403 page");
    let hello = Pack::decode(&r[6].1).unwrap();
    assert_eq!(hello.get_data("random"), Some(&RANDOM[..]));
    assert_eq!(hello.get_int("version"), Some(501));
    assert_eq!(hello.get_int("build"), Some(9674));
    assert!(hello.get_data("pencore").is_some_and(|p| p.len() < 1000));
    assert_eq!(s.state(), ServerState::AwaitingLogin);
}

#[test]
fn watermark_lengths_outside_the_range_get_403_and_close() {
    for len in [0usize, 9, 11, 1410, 3412] {
        let mut s = server();
        let r = post("/vpnsvc/connect.cgi", "image/jpeg", &vec![0; len]);
        assert_eq!(
            s.handle_input(t0(), &r),
            Err(ServerError::ConnectLength(len))
        );
        assert_eq!(sent(&mut s)[0].0, 403);
        assert_eq!(s.state(), ServerState::Closed);
        assert_eq!(s.handle_input(t0(), b""), Err(ServerError::Closed));
    }
    // A complete head is enough to refuse: the body is not waited for.
    let mut s = server();
    let head = b"POST /vpnsvc/connect.cgi HTTP/1.1\r\nContent-Length: 999999\r\n\r\n";
    assert_eq!(
        s.handle_input(t0(), head),
        Err(ServerError::ConnectLength(999_999))
    );
}

#[test]
fn the_twentieth_request_is_dropped() {
    let mut s = server();
    let get = b"GET /x HTTP/1.1\r\n\r\n";
    for _ in 0..19 {
        assert_eq!(s.handle_input(t0(), get), Ok(get.len()));
    }
    assert_eq!(
        s.handle_input(t0(), get),
        Err(ServerError::TooManyRequests(19))
    );
}

fn pack_post(p: &Pack) -> Vec<u8> {
    let mut out = Vec::new();
    emit_pack_request(&mut out, "h", p);
    out
}

fn after_hello() -> ServerHandshake {
    let mut s = server();
    s.handle_input(t0(), &watermark_post(0)).unwrap();
    sent(&mut s);
    s
}

#[test]
fn noops_answered_until_the_limit() {
    let mut s = after_hello();
    let mut noop = Pack::new();
    noop.add_int("error", 0).add_int("noop", 1);
    add_pencore(&mut noop, &mut Padding::new(9));
    let req = pack_post(&noop);
    for _ in 0..30 {
        assert_eq!(s.handle_input(t0(), &req), Ok(req.len()));
        let r = sent(&mut s);
        let p = Pack::decode(&r[0].1).unwrap();
        assert_eq!((p.get_int("error"), p.get_int("noop")), (Some(0), Some(1)));
    }
    assert_eq!(
        s.handle_input(t0(), &req),
        Err(ServerError::TooManyNoops(30))
    );
}

#[test]
fn bad_packs_get_error_packs() {
    let cases: Vec<(Vec<u8>, u32)> = {
        let mut unknown = Pack::new();
        unknown.add_str("method", "enum_hub");
        let mut cert = Login {
            hub: "VPN".into(),
            user: "u".into(),
            auth: LoginAuth::Anonymous,
            client: ProductInfo::softether_client(),
            unique_id: None,
            options: SessionOptions::default(),
            hello_random: RANDOM,
        }
        .to_pack();
        cert.add_int("authtype", 3);
        let mut no_hub = cert.clone();
        no_hub.add_int("authtype", 0).remove("hubname");
        vec![
            (pack_post(&unknown), 4),
            (pack_post(&cert), 7),
            (pack_post(&no_hub), 4),
            (
                post("/vpnsvc/vpn.cgi", "application/octet-stream", &[0, 0, 0, 9]),
                4,
            ),
        ]
    };
    for (req, code) in cases {
        let mut s = after_hello();
        assert!(s.handle_input(t0(), &req).is_err());
        let r = sent(&mut s);
        let p = Pack::decode(&r[0].1).unwrap();
        assert_eq!(pack_error(&p).map(ErrorCode::to_u32), Some(code));
        assert_eq!(s.state(), ServerState::Closed);
    }
}

#[test]
fn after_the_hello_only_pack_posts() {
    let login = pack_post(&Pack::new());
    let cases = [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        post("/vpnsvc/vpn.cgi", "text/plain", &[0; 4]),
        post("/vpnsvc/connect.cgi", "application/octet-stream", &[0; 4]),
        login.replace_http10(),
        post("/vpnsvc/vpn.cgi", "application/octet-stream", &[]),
        b"POST /vpnsvc/vpn.cgi HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 65537\r\n\r\n".to_vec(),
    ];
    for req in cases {
        let mut s = after_hello();
        assert!(
            matches!(s.handle_input(t0(), &req), Err(ServerError::BadRequest(_))),
            "{}",
            String::from_utf8_lossy(&req[..20])
        );
        assert!(
            !s.wants_transmit(),
            "dropped without an answer, as the real server does"
        );
    }
}

trait Http10 {
    fn replace_http10(self) -> Vec<u8>;
}

impl Http10 for Vec<u8> {
    fn replace_http10(self) -> Vec<u8> {
        let s = String::from_utf8(self).unwrap();
        s.replacen("HTTP/1.1", "HTTP/1.0", 1).into_bytes()
    }
}

#[test]
fn unsafe_welcomes_are_not_sent() {
    let (_, mut s, _) = login_to_decision(client_config("secret"), 4096);
    let ok = Welcome::new("S".into(), "C".into(), [1; 20], 0);
    let mut w = ok.clone();
    w.use_encrypt = false;
    assert!(matches!(s.accept(&w), Err(ServerError::BadWelcome(_))));
    let mut w = ok.clone();
    w.timeout_ms = 0;
    assert!(matches!(s.accept(&w), Err(ServerError::BadWelcome(_))));
    let mut w = ok.clone();
    w.half_connection = true;
    assert!(matches!(s.accept(&w), Err(ServerError::BadWelcome(_))));
    let mut w = ok.clone();
    w.max_connection = 0;
    assert!(matches!(s.accept(&w), Err(ServerError::BadWelcome(_))));
    assert_eq!(
        s.state(),
        ServerState::Deciding,
        "still waiting for a good answer"
    );
    assert!(!s.wants_transmit());
    s.accept(&ok).unwrap();
}

#[test]
fn handshake_timeouts() {
    let now = t0();
    let mut s = ServerHandshake::new(now, ServerConfig::default(), RANDOM, 0);
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(20));
    // Progress moves the deadline.
    let later = now + Duration::from_secs(19);
    s.handle_input(later, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(20)));
    assert_eq!(s.handle_timeout(later + Duration::from_secs(1)), Ok(()));
    assert!(s.handle_timeout(later + Duration::from_secs(20)).is_err());
    assert_eq!(s.state(), ServerState::Closed);

    let mut c = ClientHandshake::login(now, client_config("x"), 0);
    assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(15)));
    assert_eq!(
        c.handle_timeout(now + Duration::from_secs(15)),
        Err(ClientError::TimedOut(Duration::from_secs(15)))
    );
}

// ---- the client against odd servers ----

fn pack_response(p: &Pack) -> Vec<u8> {
    let mut out = Vec::new();
    http::emit_pack_response(&mut out, p);
    out
}

fn client() -> ClientHandshake {
    let mut c = ClientHandshake::login(t0(), client_config("secret"), 0);
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    // What it sent first: the watermark POST, with 0..=1999 filler bytes.
    let head = super::http::parse_request_head(&out).unwrap().unwrap();
    assert_eq!(head.target, "/vpnsvc/connect.cgi");
    assert!(super::watermark::is_connect_body(&out[head.len..]));
    assert!(super::watermark::connect_length_ok(head.body_len()));
    assert_eq!(out.len(), head.len + head.body_len());
    c
}

fn hello() -> Pack {
    Hello {
        server: ProductInfo::softether_server(),
        random: RANDOM,
    }
    .to_pack()
}

#[test]
fn client_refuses_what_is_not_softether() {
    let mut c = client();
    let page = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi";
    assert!(matches!(
        c.handle_input(t0(), page),
        Err(ClientError::NotSoftEther(_))
    ));
    let mut c = client();
    let mut h = hello();
    h.remove("random");
    assert_eq!(
        c.handle_input(t0(), &pack_response(&h)),
        Err(ClientError::Message(message::MessageError::Missing(
            "random"
        )))
    );
    let mut c = client();
    assert_eq!(
        c.handle_input(t0(), &pack_response(&error_pack(ErrorCode::HubIsBusy))),
        Err(ClientError::Refused(ErrorCode::HubIsBusy))
    );
    let mut c = client();
    let big = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 99999999\r\n\r\n";
    assert_eq!(
        c.handle_input(t0(), big),
        Err(ClientError::TooLarge(99_999_999))
    );
    // A probe answered by a page without the marker.
    let mut config = client_config("x");
    config.probe = true;
    let mut c = ClientHandshake::login(t0(), config, 0);
    let page = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    assert!(matches!(
        c.handle_input(t0(), page),
        Err(ClientError::NotSoftEther(_))
    ));
}

#[test]
fn client_refuses_welcomes_it_cannot_follow_and_skips_noops() {
    let welcome = Welcome::new("S".into(), "C".into(), [1; 20], 0);
    type Spoil = fn(&mut Welcome);
    let spoilers: [Spoil; 4] = [
        |w| w.use_encrypt = false,
        |w| w.use_compress = true,
        |w| w.half_connection = true,
        |w| w.redirect = true,
    ];
    for spoil in spoilers {
        let mut c = client();
        c.handle_input(t0(), &pack_response(&hello())).unwrap();
        let mut w = welcome.clone();
        spoil(&mut w);
        assert!(matches!(
            c.handle_input(t0(), &pack_response(&w.to_pack())),
            Err(ClientError::Unsupported(_))
        ));
    }
    // max_connection 2 with qos (a real server's answer to qos 1) is fine:
    // one connection still works.
    let mut c = client();
    c.handle_input(t0(), &pack_response(&hello())).unwrap();
    let mut noop = Pack::new();
    noop.add_int("error", 0).add_int("noop", 2);
    let mut w = welcome.clone();
    w.max_connection = 2;
    w.qos = true;
    let mut wire = pack_response(&noop);
    wire.extend_from_slice(&pack_response(&w.to_pack()));
    assert_eq!(c.handle_input(t0(), &wire), Ok(wire.len()));
    assert!(matches!(c.poll_event(), Some(ClientEvent::Hello(_))));
    assert!(matches!(c.poll_event(), Some(ClientEvent::Established(x)) if x == w));
    assert_eq!(c.poll_event(), None);
}

#[test]
fn client_login_pack_has_what_a_real_server_needs() {
    let mut c = client();
    c.handle_input(t0(), &pack_response(&hello())).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    let head = super::http::parse_request_head(&out).unwrap().unwrap();
    assert_eq!(head.target, "/vpnsvc/vpn.cgi");
    assert_eq!(head.content_type, Some("application/octet-stream"));
    let p = Pack::decode(&out[head.len..]).unwrap();
    // §11's minimal login.
    for name in [
        "method",
        "hubname",
        "username",
        "authtype",
        "secure_password",
        "client_str",
        "client_ver",
        "client_build",
        "protocol",
        "hello",
        "version",
        "build",
        "client_id",
        "max_connection",
        "use_encrypt",
        "use_compress",
        "half_connection",
        "require_bridge_routing_mode",
        "require_monitor_mode",
        "qos",
        "unique_id",
        "pencore",
    ] {
        assert!(p.get(name).is_some(), "{name}");
    }
    assert_eq!(p.get_int("authtype"), Some(1));
    assert_eq!(p.get_int("qos"), Some(0));
    assert_eq!(p.get_int("max_connection"), Some(1));
    assert!(p.get("use_udp_acceleration").is_none());
    assert_eq!(
        p.get_data("secure_password"),
        Some(&HashedPassword::new("alice", "secret").secure_password(&RANDOM)[..])
    );
}
