//! SHA-256 certificate fingerprints.

use std::fmt;
use std::str::FromStr;

use openssl::x509::X509Ref;

use crate::error::ParseFingerprintError;

/// SHA-256 of a certificate's DER encoding — what `openssl x509 -noout
/// -fingerprint -sha256` prints and what a client pins.
///
/// Displayed as `sha256:` followed by 64 lowercase hex digits. `Debug`
/// shows the same hex (`Fingerprint(sha256:…)`) rather than 32 decimal
/// bytes, so it can be compared by eye with `openssl` output.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Fingerprint {
    /// The fingerprint of a parsed certificate.
    pub fn of(cert: &X509Ref) -> Fingerprint {
        // Re-encoding a certificate OpenSSL parsed or built only fails when
        // memory runs out.
        let der = cert
            .to_der()
            .expect("DER-encoding a parsed certificate cannot fail");
        Fingerprint::of_der(&der)
    }

    /// The fingerprint of a DER-encoded certificate (e.g. what a TLS peer sent).
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(openssl::sha::sha256(der))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    /// Accepts, case-insensitively and ignoring surrounding white space:
    ///
    /// - `sha256:` + 64 hex digits (our own [`Display`](fmt::Display) form),
    /// - 64 hex digits,
    /// - 32 colon-separated hex pairs, optionally behind `sha256:` or
    ///   `sha256 Fingerprint=` (the whole line `openssl x509 -noout
    ///   -fingerprint -sha256` prints).
    fn from_str(s: &str) -> Result<Fingerprint, ParseFingerprintError> {
        let err = |reason| ParseFingerprintError {
            input: shorten(s),
            reason,
        };
        let mut rest = s.trim();
        for prefix in ["sha256 fingerprint=", "sha256:"] {
            // `get` rather than indexing: the input may hold multi-byte
            // characters, and a slice must not split one.
            if let Some(head) = rest.get(..prefix.len()) {
                if head.eq_ignore_ascii_case(prefix) {
                    rest = &rest[prefix.len()..];
                    break;
                }
            }
        }
        if rest.is_empty() {
            return Err(err("no hex digits"));
        }

        let mut out = [0u8; 32];
        if rest.contains(':') {
            let mut n = 0;
            for pair in rest.split(':') {
                if n == 32 {
                    return Err(err("more than 32 bytes"));
                }
                if pair.len() != 2 {
                    return Err(err("each colon-separated group must be 2 hex digits"));
                }
                out[n] = hex_byte(pair.as_bytes()).ok_or_else(|| err("not a hex digit"))?;
                n += 1;
            }
            if n != 32 {
                return Err(err("fewer than 32 bytes (is it a SHA-1 fingerprint?)"));
            }
        } else {
            let bytes = rest.as_bytes();
            if bytes.len() != 64 {
                return Err(if bytes.len() == 40 {
                    err("40 hex digits is a SHA-1 fingerprint, not SHA-256")
                } else {
                    err("wrong length, need 64 hex digits")
                });
            }
            for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = hex_byte(pair).ok_or_else(|| err("not a hex digit"))?;
            }
        }
        Ok(Fingerprint(out))
    }
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    Some(digit(pair[0])? << 4 | digit(pair[1])?)
}

/// Keeps error messages readable when someone pastes a whole file.
fn shorten(s: &str) -> String {
    const MAX: usize = 120;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f900112233445566778899aabbccddeeff0";

    fn expected() -> Fingerprint {
        let mut b = [0u8; 32];
        for (i, o) in b.iter_mut().enumerate() {
            *o = u8::from_str_radix(&HEX[2 * i..2 * i + 2], 16).unwrap();
        }
        Fingerprint(b)
    }

    fn colon_upper() -> String {
        HEX.as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":")
    }

    #[test]
    fn display_is_prefixed_lowercase_hex() {
        assert_eq!(expected().to_string(), format!("sha256:{HEX}"));
    }

    #[test]
    fn debug_shows_hex() {
        assert_eq!(
            format!("{:?}", expected()),
            format!("Fingerprint(sha256:{HEX})")
        );
    }

    #[test]
    fn display_from_str_round_trip() {
        let fp = expected();
        assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
        let zero = Fingerprint([0; 32]);
        assert_eq!(zero.to_string().parse::<Fingerprint>().unwrap(), zero);
    }

    #[test]
    fn accepts_the_three_forms_case_insensitively() {
        let fp = expected();
        let forms = [
            format!("sha256:{HEX}"),
            format!("SHA256:{}", HEX.to_ascii_uppercase()),
            HEX.to_string(),
            HEX.to_ascii_uppercase(),
            colon_upper(),
            colon_upper().to_ascii_lowercase(),
            format!("sha256 Fingerprint={}", colon_upper()),
            format!("SHA256 Fingerprint={}\n", colon_upper()),
            format!("  sha256:{}  ", colon_upper()),
        ];
        for f in forms {
            assert_eq!(f.parse::<Fingerprint>(), Ok(fp), "{f:?}");
        }
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        let cases = [
            ("", "no hex digits"),
            ("sha256:", "no hex digits"),
            (&HEX[..62], "wrong length"),
            (&format!("{HEX}00"), "wrong length"),
            (&HEX[..40], "SHA-1"),
            (&format!("{}zz", &HEX[..62]), "not a hex digit"),
            (&format!("{}+f", &HEX[..62]), "not a hex digit"),
            (&colon_upper()[..colon_upper().len() - 3], "fewer than 32"),
            (&format!("{}:00", colon_upper()), "more than 32"),
            ("AB:C:DE", "2 hex digits"),
            ("md5:00", "2 hex digits"),
            ("héllo wörld", "wrong length"),
        ];
        for (input, want) in cases {
            let e = input.parse::<Fingerprint>().unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(want), "{input:?}: {msg}");
            assert!(msg.contains("expected sha256:"), "{msg}");
        }
    }

    #[test]
    fn multibyte_input_does_not_panic() {
        // 64 bytes, but not 64 ASCII hex digits; and a prefix-length slice
        // that would fall inside a multi-byte character.
        let s = "é".repeat(32);
        assert!(s.parse::<Fingerprint>().is_err());
        assert!("ééééééé".parse::<Fingerprint>().is_err());
        assert!("sha256 fingerprint".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn of_der_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            Fingerprint::of_der(b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
