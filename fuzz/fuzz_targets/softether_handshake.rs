//! The SoftEther handshakes fed a hostile peer: the server side any
//! client bytes, the client side any server bytes, in any pieces, with
//! time passing. Nothing panics; bytes used never exceed the input; an
//! error closes the handshake; whatever the server sends is well-formed
//! HTTP responses; an established handshake uses no more input.
//!
//! Input: byte 0 bit 0 picks the side, bit 1 the hub's answer to a login
//! (accept or refuse), bit 2 the client's probe; byte 1 is the size of the
//! pieces (1-256); the rest is the peer's bytes.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switch_core::softether::http::parse_response_head;
use switch_core::softether::{
    ClientAuth, ClientConfig, ClientHandshake, ClientState, Direction, ErrorCode, HashedPassword,
    ServerConfig, ServerEvent, ServerHandshake, ServerState, Welcome,
};

fn check_responses(mut out: &[u8]) {
    while !out.is_empty() {
        let head = parse_response_head(out).unwrap().expect("a whole response");
        out = &out[head.len + head.body_len()..];
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, piece], input)) = data.split_first_chunk::<2>() else {
        return;
    };
    let piece = usize::from(piece) + 1;
    #[allow(clippy::disallowed_methods)] // the run's epoch
    let mut now = Instant::now();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    if flags & 1 == 0 {
        let mut s = ServerHandshake::new(now, ServerConfig::default(), [3; 20], 1);
        for chunk in input.chunks(piece) {
            buf.extend_from_slice(chunk);
            now += Duration::from_millis(500);
            let before = s.state();
            match s.handle_input(now, &buf) {
                Ok(used) => {
                    assert!(used <= buf.len());
                    if before == ServerState::Established {
                        assert_eq!(used, 0);
                    }
                    buf.drain(..used);
                }
                Err(_) => {
                    assert_eq!(s.state(), ServerState::Closed);
                    break;
                }
            }
            match s.poll_event() {
                Some(ServerEvent::Login(l)) => {
                    let _ = l.check_password(&HashedPassword::new(&l.user, "pw"));
                    if flags & 2 == 0 {
                        let w = Welcome::new("SID-X-1".into(), "CID-1".into(), [5; 20], 1);
                        s.accept(&w).unwrap();
                    } else {
                        s.refuse(ErrorCode::AuthFailed).unwrap();
                    }
                }
                Some(ServerEvent::AdditionalConnect(_)) if flags & 2 == 0 => {
                    s.attach(Direction::Both).unwrap()
                }
                Some(ServerEvent::AdditionalConnect(_)) => {
                    s.refuse(ErrorCode::SessionTimeout).unwrap()
                }
                None => {}
            }
            s.poll_transmit(&mut out);
            if s.handle_timeout(now).is_err() {
                break;
            }
        }
        s.poll_transmit(&mut out);
        check_responses(&out);
    } else {
        let mut config = ClientConfig::new(
            "vpn.example",
            "VPN",
            "alice",
            ClientAuth::Password(HashedPassword::new("alice", "pw")),
            [1; 20],
        );
        config.probe = flags & 4 != 0;
        let mut c = ClientHandshake::login(now, config, 2);
        for chunk in input.chunks(piece) {
            buf.extend_from_slice(chunk);
            now += Duration::from_millis(500);
            let before = c.state();
            match c.handle_input(now, &buf) {
                Ok(used) => {
                    assert!(used <= buf.len());
                    if before == ClientState::Established {
                        assert_eq!(used, 0);
                    }
                    buf.drain(..used);
                }
                Err(_) => {
                    assert_eq!(c.state(), ClientState::Closed);
                    break;
                }
            }
            while c.poll_event().is_some() {}
            c.poll_transmit(&mut out);
            if c.handle_timeout(now).is_err() {
                break;
            }
        }
    }
});
