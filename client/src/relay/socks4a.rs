//! SOCKS4a CONNECT: SOCKS4 with the host name resolved by the proxy.
//!
//! ```text
//! request  04 01 PORT 0.0.0.1 USERID 00 HOST 00   →  00 CD PORT IP   (CD 5A = granted)
//! ```
//!
//! An IPv4 literal goes in the address field as plain SOCKS4 does; every other
//! host (names, IPv6 literals) goes as a SOCKS4a name for the proxy to resolve.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{RelayError, Target};

const GRANTED: u8 = 0x5A;
const IDENTD_MISMATCH: u8 = 0x5D;

/// Negotiates a CONNECT to `target` on `stream`. On `Ok`, the next byte read
/// from `stream` comes from the hub.
pub(crate) async fn handshake<S>(
    stream: &mut S,
    proxy: &str,
    target: &Target,
    user: Option<&str>,
) -> Result<(), RelayError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    const SEND: &str = "while sending the SOCKS4a CONNECT request";
    stream
        .write_all(&connect_request(target, user))
        .await
        .map_err(RelayError::handshake_io(proxy, SEND))?;
    stream
        .flush()
        .await
        .map_err(RelayError::handshake_io(proxy, SEND))?;
    let mut reply = [0u8; 8];
    stream
        .read_exact(&mut reply)
        .await
        .map_err(RelayError::handshake_io(
            proxy,
            "while reading the SOCKS4a reply",
        ))?;
    // The reply version is 0 by the protocol; some servers echo 4.
    if reply[0] != 0 && reply[0] != 4 {
        return Err(RelayError::SocksProtocol {
            proxy: proxy.to_owned(),
            problem: format!(
                "reply version {:#04x}, not 0x00 (is this a SOCKS4 server?)",
                reply[0]
            ),
        });
    }
    match reply[1] {
        GRANTED => Ok(()),
        IDENTD_MISMATCH => Err(RelayError::SocksAuthFailed {
            proxy: proxy.to_owned(),
            user: user.unwrap_or("(none)").to_owned(),
        }),
        code => Err(RelayError::Socks4Refused {
            proxy: proxy.to_owned(),
            target: target.to_string(),
            code,
        }),
    }
}

pub(crate) fn connect_request(target: &Target, user: Option<&str>) -> Vec<u8> {
    let mut out = vec![0x04, 0x01];
    out.extend_from_slice(&target.port.to_be_bytes());
    let ipv4 = match target.ip() {
        Some(std::net::IpAddr::V4(ip)) => Some(ip),
        _ => None,
    };
    match ipv4 {
        Some(ip) => out.extend_from_slice(&ip.octets()),
        // 0.0.0.x with x != 0 means "the name follows".
        None => out.extend_from_slice(&[0, 0, 0, 1]),
    }
    // The parser refuses NUL in user ids.
    out.extend_from_slice(user.unwrap_or("").as_bytes());
    out.push(0);
    if ipv4.is_none() {
        out.extend_from_slice(target.host.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes() {
        let hub = Target::new("hub", 443).unwrap();
        assert_eq!(
            connect_request(&hub, Some("bob")),
            b"\x04\x01\x01\xbb\x00\x00\x00\x01bob\x00hub\x00"
        );
        assert_eq!(
            connect_request(&Target::new("10.0.0.2", 80).unwrap(), None),
            b"\x04\x01\x00\x50\x0a\x00\x00\x02\x00"
        );
    }

    async fn reply(answer: &'static [u8]) -> Result<Vec<u8>, RelayError> {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let mut request = [0u8; 13];
            server.read_exact(&mut request).await.unwrap();
            server.write_all(answer).await.unwrap();
        });
        let target = Target::new("hub", 443).unwrap();
        let result = handshake(&mut client, "SOCKS4a proxy p:1080", &target, None).await;
        server.await.unwrap();
        result?;
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        Ok(rest)
    }

    #[tokio::test]
    async fn granted_leaves_hub_bytes() {
        assert_eq!(
            reply(b"\x00\x5a\x00\x00\x00\x00\x00\x00TLS").await.unwrap(),
            b"TLS"
        );
    }

    #[tokio::test]
    async fn refusals() {
        let err = reply(b"\x00\x5b\x00\x00\x00\x00\x00\x00")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "SOCKS4a proxy p:1080 could not connect to hub:443: request rejected or failed (SOCKS4 reply 0x5b)"
        );
        assert!(!err.is_auth_failure());
        let err = reply(b"\x00\x5d\x00\x00\x00\x00\x00\x00")
            .await
            .unwrap_err();
        assert!(err.is_auth_failure());
        let err = reply(b"HTTP/1.1").await.unwrap_err();
        assert!(matches!(err, RelayError::SocksProtocol { .. }), "{err}");
    }
}
