//! SOCKS5 (RFC 1928) CONNECT with optional user/password auth (RFC 1929).
//!
//! ```text
//! greeting   05 NMETHODS METHODS…          →  05 METHOD
//! auth       01 ULEN USER PLEN PASS         →  01 STATUS         (METHOD = 02)
//! request    05 01 00 ATYP ADDR PORT        →  05 REP 00 ATYP BND.ADDR BND.PORT
//! ```
//!
//! Host names go as `ATYP=03` (domain), so the proxy resolves the hub's name;
//! IP literals as `ATYP=01`/`04`.

use std::io;
use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{RelayError, Target};

const VERSION: u8 = 0x05;
const METHOD_NONE: u8 = 0x00;
const METHOD_USER_PASS: u8 = 0x02;
const METHOD_NO_ACCEPTABLE: u8 = 0xFF;
const CMD_CONNECT: u8 = 0x01;
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;
const REPLY_SUCCEEDED: u8 = 0x00;
/// What an I/O error while reading the CONNECT reply happened during.
const REPLY: &str = "while reading the SOCKS5 reply to CONNECT";

/// Negotiates a CONNECT to `target` on `stream`. On `Ok`, the next byte read
/// from `stream` comes from the hub.
pub(crate) async fn handshake<S>(
    stream: &mut S,
    proxy: &str,
    target: &Target,
    auth: Option<&(String, String)>,
) -> Result<(), RelayError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    negotiate_method(stream, proxy, auth).await?;
    connect(stream, proxy, target).await
}

/// The proxy broke SOCKS5 (as opposed to refusing us).
fn protocol(proxy: &str, problem: String) -> RelayError {
    RelayError::SocksProtocol {
        proxy: proxy.to_owned(),
        problem,
    }
}

/// The greeting: offers our methods and carries out the one the proxy
/// chooses. A method we did not offer is the proxy's fault; "none
/// acceptable" is reported with whether we offered a password, since that
/// is usually what the operator has to fix.
async fn negotiate_method<S>(
    stream: &mut S,
    proxy: &str,
    auth: Option<&(String, String)>,
) -> Result<(), RelayError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    const GREETING: &str = "during the SOCKS5 greeting";
    send(stream, &greeting(auth.is_some()))
        .await
        .map_err(RelayError::handshake_io(proxy, GREETING))?;
    let mut choice = [0u8; 2];
    stream
        .read_exact(&mut choice)
        .await
        .map_err(RelayError::handshake_io(proxy, GREETING))?;
    if choice[0] != VERSION {
        return Err(protocol(
            proxy,
            format!(
                "answered the greeting with version {:#04x}, not 0x05 (is this a SOCKS5 server?)",
                choice[0]
            ),
        ));
    }
    match (choice[1], auth) {
        (METHOD_NONE, _) => Ok(()),
        (METHOD_USER_PASS, Some((user, pass))) => authenticate(stream, proxy, user, pass).await,
        (METHOD_NO_ACCEPTABLE, _) => Err(RelayError::SocksNoAcceptableMethod {
            proxy: proxy.to_owned(),
            offered_auth: auth.is_some(),
        }),
        (method, _) => Err(protocol(
            proxy,
            format!("chose authentication method {method:#04x}, which was not offered"),
        )),
    }
}

/// RFC 1929 user/password sub-negotiation.
async fn authenticate<S>(
    stream: &mut S,
    proxy: &str,
    user: &str,
    pass: &str,
) -> Result<(), RelayError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    const AUTH: &str = "during SOCKS5 user/password authentication";
    send(stream, &auth_request(user, pass))
        .await
        .map_err(RelayError::handshake_io(proxy, AUTH))?;
    let mut status = [0u8; 2];
    stream
        .read_exact(&mut status)
        .await
        .map_err(RelayError::handshake_io(proxy, AUTH))?;
    // RFC 1929 says the first byte is 0x01; some servers send 0x05.
    // Only the status matters.
    if status[1] != 0x00 {
        return Err(RelayError::SocksAuthFailed {
            proxy: proxy.to_owned(),
            user: user.to_owned(),
        });
    }
    Ok(())
}

/// Sends CONNECT and reads the whole reply, so that the stream is left
/// at the first byte from the hub.
async fn connect<S>(stream: &mut S, proxy: &str, target: &Target) -> Result<(), RelayError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send(stream, &connect_request(target))
        .await
        .map_err(RelayError::handshake_io(
            proxy,
            "while sending the SOCKS5 CONNECT request",
        ))?;
    let mut reply = [0u8; 4];
    stream
        .read_exact(&mut reply)
        .await
        .map_err(RelayError::handshake_io(proxy, REPLY))?;
    if reply[0] != VERSION {
        return Err(protocol(
            proxy,
            format!("replied with version {:#04x}, not 0x05", reply[0]),
        ));
    }
    if reply[1] != REPLY_SUCCEEDED {
        return Err(RelayError::Socks5Refused {
            proxy: proxy.to_owned(),
            target: target.to_string(),
            code: reply[1],
        });
    }
    skip_bound_address(stream, proxy, reply[3]).await
}

/// Consumes the reply's bound address (of type `atyp`) and port exactly:
/// what follows is the hub's. We have no use for the address itself.
async fn skip_bound_address<S>(stream: &mut S, proxy: &str, atyp: u8) -> Result<(), RelayError>
where
    S: AsyncRead + Unpin,
{
    let addr_len = match atyp {
        ATYP_IPV4 => 4,
        ATYP_IPV6 => 16,
        ATYP_DOMAIN => {
            let mut len = [0u8; 1];
            stream
                .read_exact(&mut len)
                .await
                .map_err(RelayError::handshake_io(proxy, REPLY))?;
            usize::from(len[0])
        }
        other => {
            return Err(protocol(
                proxy,
                format!("reply has unknown address type {other:#04x}"),
            ))
        }
    };
    let mut bound = [0u8; 255 + 2];
    stream
        .read_exact(&mut bound[..addr_len + 2])
        .await
        .map_err(RelayError::handshake_io(proxy, REPLY))?;
    Ok(())
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Offers "no authentication", plus "user/password" when we have credentials.
pub(crate) fn greeting(with_auth: bool) -> Vec<u8> {
    if with_auth {
        vec![VERSION, 2, METHOD_NONE, METHOD_USER_PASS]
    } else {
        vec![VERSION, 1, METHOD_NONE]
    }
}

/// RFC 1929 request. Lengths were checked (at most 255 bytes) when the relay
/// URL was parsed; longer values are cut rather than sent with a wrong length.
pub(crate) fn auth_request(user: &str, pass: &str) -> Vec<u8> {
    let user = &user.as_bytes()[..user.len().min(255)];
    let pass = &pass.as_bytes()[..pass.len().min(255)];
    let mut out = Vec::with_capacity(3 + user.len() + pass.len());
    out.push(0x01);
    out.push(user.len() as u8);
    out.extend_from_slice(user);
    out.push(pass.len() as u8);
    out.extend_from_slice(pass);
    out
}

/// CONNECT request; `Target` guarantees a name of at most 255 bytes.
pub(crate) fn connect_request(target: &Target) -> Vec<u8> {
    let mut out = vec![VERSION, CMD_CONNECT, 0x00];
    match target.ip() {
        Some(IpAddr::V4(ip)) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&ip.octets());
        }
        Some(IpAddr::V6(ip)) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&ip.octets());
        }
        None => {
            out.push(ATYP_DOMAIN);
            out.push(target.host.len() as u8);
            out.extend_from_slice(target.host.as_bytes());
        }
    }
    out.extend_from_slice(&target.port.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes() {
        assert_eq!(greeting(false), [5, 1, 0]);
        assert_eq!(greeting(true), [5, 2, 0, 2]);
        assert_eq!(auth_request("al", "pw!"), b"\x01\x02al\x03pw!");
        assert_eq!(
            connect_request(&Target::new("hub", 443).unwrap()),
            b"\x05\x01\x00\x03\x03hub\x01\xbb"
        );
        assert_eq!(
            connect_request(&Target::new("10.1.2.3", 8443).unwrap()),
            b"\x05\x01\x00\x01\x0a\x01\x02\x03\x20\xfb"
        );
        let mut v6 = b"\x05\x01\x00\x04".to_vec();
        v6.extend_from_slice(&[0; 15]);
        v6.extend_from_slice(b"\x01\x00\x50");
        assert_eq!(connect_request(&Target::new("[::1]", 80).unwrap()), v6);
    }

    /// Runs the handshake against a scripted server: `script` is a list of
    /// (bytes expected from the client, bytes answered).
    async fn run(
        auth: Option<(&str, &str)>,
        script: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> (Result<(), RelayError>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            for (expect, answer) in script {
                let mut got = vec![0u8; expect.len()];
                server.read_exact(&mut got).await.unwrap();
                assert_eq!(got, expect);
                server.write_all(&answer).await.unwrap();
            }
            server.write_all(b"from hub").await.unwrap();
        });
        let auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let target = Target::new("hub", 443).unwrap();
        let result = handshake(&mut client, "SOCKS5 proxy p:1080", &target, auth.as_ref()).await;
        server.await.unwrap();
        let mut rest = vec![0u8; 8];
        if result.is_ok() {
            client.read_exact(&mut rest).await.unwrap();
        }
        (result, rest)
    }

    const REQUEST: &[u8] = b"\x05\x01\x00\x03\x03hub\x01\xbb";

    #[tokio::test]
    async fn no_auth_and_domain_reply_leave_the_stream_at_hub_data() {
        let (result, rest) = run(
            None,
            vec![
                (vec![5, 1, 0], vec![5, 0]),
                (
                    REQUEST.to_vec(),
                    b"\x05\x00\x00\x03\x04host\x12\x34".to_vec(),
                ),
            ],
        )
        .await;
        result.unwrap();
        assert_eq!(rest, b"from hub");
    }

    #[tokio::test]
    async fn user_password_auth() {
        let (result, rest) = run(
            Some(("alice", "pw")),
            vec![
                (vec![5, 2, 0, 2], vec![5, 2]),
                (b"\x01\x05alice\x02pw".to_vec(), vec![1, 0]),
                (
                    REQUEST.to_vec(),
                    b"\x05\x00\x00\x01\x7f\x00\x00\x01\x12\x34".to_vec(),
                ),
            ],
        )
        .await;
        result.unwrap();
        assert_eq!(rest, b"from hub");
    }

    #[tokio::test]
    async fn auth_rejected() {
        let (result, _) = run(
            Some(("alice", "bad")),
            vec![
                (vec![5, 2, 0, 2], vec![5, 2]),
                (b"\x01\x05alice\x03bad".to_vec(), vec![1, 1]),
            ],
        )
        .await;
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "SOCKS5 proxy p:1080: authentication failed (user alice)"
        );
        assert!(err.is_auth_failure());
    }

    #[tokio::test]
    async fn no_acceptable_method_says_credentials_are_wanted() {
        let (result, _) = run(None, vec![(vec![5, 1, 0], vec![5, 0xff])]).await;
        let err = result.unwrap_err();
        assert!(
            err.to_string().contains("wants a user name and password"),
            "{err}"
        );
        assert!(err.is_auth_failure());
    }

    #[tokio::test]
    async fn every_reply_code_is_named() {
        for (code, meaning) in [
            (1, "general SOCKS server failure"),
            (2, "connection not allowed by ruleset"),
            (3, "network unreachable"),
            (4, "host unreachable"),
            (5, "connection refused by the target"),
            (6, "TTL expired"),
            (7, "command not supported"),
            (8, "address type not supported"),
            (9, "unassigned reply code"),
        ] {
            let (result, _) = run(
                None,
                vec![
                    (vec![5, 1, 0], vec![5, 0]),
                    (REQUEST.to_vec(), vec![5, code, 0, 1, 0, 0, 0, 0, 0, 0]),
                ],
            )
            .await;
            let err = result.unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("SOCKS5 proxy p:1080 could not connect to hub:443: {meaning} (SOCKS5 reply {code:#04x})")
            );
            assert!(!err.is_auth_failure());
        }
    }

    #[tokio::test]
    async fn not_a_socks5_server() {
        let (result, _) = run(None, vec![(vec![5, 1, 0], b"HT".to_vec())]).await;
        assert!(matches!(result, Err(RelayError::SocksProtocol { .. })));
    }
}
