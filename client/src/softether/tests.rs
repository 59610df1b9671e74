//! vnic's SoftEther session against switch-core's server role, in
//! memory: login, frames both ways in batches, keep-alives, refusals.

use std::time::{Duration, Instant};

use switch_core::softether::data::{encode_batch, Decoder, Item};
use switch_core::softether::{
    ErrorCode, HashedPassword, ServerConfig, ServerEvent, ServerHandshake, Welcome,
};

use super::*;

#[allow(clippy::disallowed_methods)] // the tests' one clock read: their epoch
fn t0() -> Instant {
    Instant::now()
}

fn creds(pw: &str) -> Credentials {
    Credentials {
        user: "alice".into(),
        password: pw.into(),
    }
}

/// Runs the handshake between `c` and a server that checks the password
/// "secret" for alice on hub TEST. Returns the server's bytes left over.
fn login(now: Instant, c: &mut SoftEther) -> Result<(), ErrorCode> {
    let mut s = ServerHandshake::new(now, ServerConfig::default(), [7; 20], 1);
    c.reconnect(now);
    assert_eq!(c.state(), State::Handshaking);
    for _ in 0..10 {
        let mut wire = Vec::new();
        c.poll_transmit(now, &mut wire, usize::MAX);
        let used = s.handle_input(now, &wire).unwrap();
        assert_eq!(used, wire.len());
        if let Some(ServerEvent::Login(l)) = s.poll_event() {
            let ok = l.hub == "TEST" && l.check_password(&HashedPassword::new("alice", "secret"));
            if ok {
                s.accept(&Welcome::new(
                    "SID-ALICE-1".into(),
                    "CID-1".into(),
                    [1; 20],
                    2,
                ))
                .unwrap();
            } else {
                s.refuse(ErrorCode::AuthFailed).unwrap();
            }
        }
        let mut back = Vec::new();
        s.poll_transmit(&mut back);
        if !back.is_empty() {
            let r = c.handle_input(now, &back, |_| panic!("no frames in the handshake"));
            match r {
                Ok(n) => assert_eq!(n, back.len()),
                Err(SeError::Handshake(ClientError::Refused(code))) => return Err(code),
                Err(e) => panic!("{e}"),
            }
        }
        if c.state() == State::Established {
            return Ok(());
        }
    }
    panic!("no login after 10 rounds")
}

#[test]
fn logs_in_and_moves_frames_in_batches() {
    let now = t0();
    let mut c = SoftEther::new("10.0.0.1:5555", "TEST", Some(&creds("secret")));
    login(now, &mut c).unwrap();
    assert_eq!(
        c.poll_event(),
        Some(SeEvent::Established {
            session: "SID-ALICE-1".into(),
            server: "SoftEther VPN Server Developer Edition (64 bit) (Open Source)".into()
        })
    );
    assert_eq!(c.name(), Some("SID-ALICE-1"));
    assert_eq!(c.config().timeout, Duration::from_secs(20));
    // Three frames queued one at a time leave as one batch.
    let frames: Vec<Vec<u8>> = (0..3u8).map(|n| vec![n; 60 + n as usize]).collect();
    for f in &frames {
        c.send_frame(f).unwrap();
    }
    assert_eq!(c.buffered_frames(), 3);
    let mut wire = Vec::new();
    c.poll_transmit(now, &mut wire, usize::MAX);
    assert_eq!(&wire[..4], &3u32.to_be_bytes(), "one batch of three");
    let mut d = Decoder::default();
    let mut off = 0;
    let mut got = Vec::new();
    while let Some((item, n)) = d.decode(&wire[off..]).unwrap() {
        off += n;
        if let Item::Frame(f) = item {
            got.push(f.to_vec());
        }
    }
    assert_eq!(got, frames);
    assert_eq!(c.buffered_frames(), 0);
    // Frames from the server, split anywhere, reach `deliver`.
    let mut down = Vec::new();
    encode_batch(&mut down, frames.iter().map(Vec::as_slice)).unwrap();
    let mut buf = Vec::new();
    let mut delivered = Vec::new();
    for piece in down.chunks(7) {
        buf.extend_from_slice(piece);
        let n = c
            .handle_input(now, &buf, |f| delivered.push(f.to_vec()))
            .unwrap();
        buf.drain(..n);
    }
    assert_eq!(delivered, frames);
    assert_eq!((c.stats().tx_frames, c.stats().rx_frames), (3, 3));
    assert_eq!(c.send_frame(&[0; 1601]), Err(SendError::BadLength(1601)));
}

#[test]
fn keepalives_when_idle_then_dead_after_the_timeout() {
    let now = t0();
    let mut c = SoftEther::new("h:443", "TEST", Some(&creds("secret")));
    login(now, &mut c).unwrap();
    // The first keep-alive is due at once and goes after an open batch.
    c.send_frame(&[1; 60]).unwrap();
    assert_eq!(c.poll_timeout(), Some(now));
    c.handle_timeout(now);
    let mut wire = Vec::new();
    c.poll_transmit(now, &mut wire, usize::MAX);
    let mut d = Decoder::default();
    let (a, n) = d.decode(&wire).unwrap().unwrap();
    assert!(matches!(a, Item::Frame(_)));
    let (b, m) = d.decode(&wire[n..]).unwrap().unwrap();
    assert!(matches!(b, Item::KeepAlive(_)));
    assert_eq!(n + m, wire.len());
    // Silence for the welcome's 20 s: dead, no session left.
    let _ = c.poll_event();
    let later = now + Duration::from_secs(20);
    c.handle_timeout(later);
    assert_eq!(
        c.poll_event(),
        Some(SeEvent::LinkDead(Duration::from_secs(20)))
    );
    assert_eq!(c.state(), State::Detached);
    // Frames from the TAP meanwhile are dropped, not kept for a resume.
    assert_eq!(c.send_frame(&[1; 60]), Err(SendError::Closed));
    assert_eq!(c.stats().tail_drops, 1);
}

#[test]
fn a_wrong_password_is_refused_with_error_9() {
    let now = t0();
    let mut c = SoftEther::new("h:443", "TEST", Some(&creds("wrong")));
    assert_eq!(login(now, &mut c), Err(ErrorCode::AuthFailed));
    assert_eq!(
        c.poll_event(),
        Some(SeEvent::HandshakeFailed(ClientError::Refused(
            ErrorCode::AuthFailed
        )))
    );
    assert_eq!(c.state(), State::Detached);
}

#[test]
fn bad_framing_breaks_the_link() {
    let now = t0();
    let mut c = SoftEther::new("h:443", "TEST", Some(&creds("secret")));
    login(now, &mut c).unwrap();
    let _ = c.poll_event();
    let r = c.handle_input(now, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0x10, 0], |_| {});
    assert!(matches!(r, Err(SeError::Data(_))));
    assert!(matches!(c.poll_event(), Some(SeEvent::Broken(_))));
    assert_eq!(c.state(), State::Detached);
}
