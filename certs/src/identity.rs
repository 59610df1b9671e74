//! A certificate with its private key: generating one, describing one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509NameRef, X509};

use crate::error::{crypto, CertError};
use crate::Fingerprint;

/// What [`Identity::generate`] puts into a new certificate.
#[derive(Clone, Debug)]
pub struct CertParams {
    /// Subject and issuer common name. Default `"vhub"`.
    pub common_name: String,
    /// DNS subject alternative names. Default `["localhost"]`: the hub does
    /// not guess its public name; add it (or pin the fingerprint instead).
    pub dns_names: Vec<String>,
    /// IP subject alternative names. Default `127.0.0.1` and `::1`.
    pub ip_addrs: Vec<IpAddr>,
    /// Validity in days from now. Default 3650.
    pub days: u32,
    /// Key algorithm. Default RSA 2048.
    pub key: KeyKind,
}

impl Default for CertParams {
    fn default() -> Self {
        CertParams {
            common_name: "vhub".into(),
            dns_names: vec!["localhost".into()],
            ip_addrs: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            days: 3650,
            key: KeyKind::default(),
        }
    }
}

/// Key algorithm of a generated certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with this many bits (2048 to 16384). RSA is the default because
    /// only an RSA certificate can serve the RSA key-exchange TLS suites
    /// (`AES256-SHA`, `RC4-*`) that old clients ask for.
    Rsa(u32),
    /// ECDSA on NIST P-256: small and fast, but ECDHE-ECDSA suites only.
    EcP256,
}

impl Default for KeyKind {
    fn default() -> Self {
        KeyKind::Rsa(2048)
    }
}

/// Smallest and largest RSA modulus [`Identity::generate`] accepts. Below
/// 2048 OpenSSL 3 at its default security level refuses the key in TLS;
/// above 16384 generation takes minutes and buys nothing.
const RSA_BITS: std::ops::RangeInclusive<u32> = 2048..=16384;

/// A certificate and its private key, checked to match.
///
/// Made by [`Identity::generate`] or loaded by [`load`](crate::load); the
/// fields are public so the hub can hand them to an `SslAcceptorBuilder`
/// (`set_certificate`, `set_private_key`, `add_extra_chain_cert`).
#[derive(Clone)]
pub struct Identity {
    /// The end-entity certificate, the first in the PEM file.
    pub cert: X509,
    /// Its private key.
    pub key: PKey<Private>,
    /// Further certificates after the first in the PEM file (intermediates
    /// from a CA), in file order. Empty for a generated certificate.
    pub chain: Vec<X509>,
}

impl fmt::Debug for Identity {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &name_to_string(self.cert.subject_name()))
            .field("fingerprint", &self.fingerprint())
            .field("key", &key_description(&self.key))
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Creates a key and a self-signed X.509 v3 certificate for it.
    ///
    /// The certificate has a random 128-bit serial, `notBefore` one hour ago
    /// (so a client whose clock is a little behind still accepts it), the
    /// SANs of `params`, and a SHA-256 signature. It is marked `CA:TRUE` with
    /// `keyCertSign`, so a client can use it directly as its trust anchor
    /// (`vnic --ca ca.crt`); `extendedKeyUsage` is `serverAuth`; `keyUsage`
    /// is `digitalSignature`, plus `keyEncipherment` for RSA (needed by the
    /// RSA key-exchange suites; meaningless for an EC key, so left out).
    pub fn generate(params: &CertParams) -> Result<Identity, CertError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        generate_at(params, now)
    }

    /// The certificate (without the chain) as PEM.
    pub fn cert_pem(&self) -> Vec<u8> {
        self.cert
            .to_pem()
            .expect("PEM-encoding a parsed certificate cannot fail")
    }

    /// SHA-256 fingerprint of the certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.cert)
    }

    /// A human-readable summary of the certificate, for logs and
    /// `vhub cert show`.
    pub fn info(&self) -> CertInfo {
        let cert = &self.cert;
        let not_before_unix = asn1_to_unix(cert.not_before());
        let not_after_unix = asn1_to_unix(cert.not_after());
        let time = |t: &Asn1TimeRef, unix: Option<i64>| match unix {
            Some(u) => rfc3339(u),
            None => t.to_string(),
        };
        CertInfo {
            subject: name_to_string(cert.subject_name()),
            issuer: name_to_string(cert.issuer_name()),
            serial: cert
                .serial_number()
                .to_bn()
                .and_then(|bn| bn.to_hex_str().map(|s| s.to_ascii_lowercase()))
                .unwrap_or_default(),
            sans: sans(cert),
            fingerprint: self.fingerprint(),
            not_before: time(cert.not_before(), not_before_unix),
            not_after: time(cert.not_after(), not_after_unix),
            not_after_unix: not_after_unix.unwrap_or(0),
            key: key_description(&self.key),
        }
    }
}

/// What a certificate says, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name, e.g. `CN=vhub`.
    pub subject: String,
    /// Issuer distinguished name; equal to `subject` when self-signed.
    pub issuer: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Subject alternative names as OpenSSL prints them: `DNS:localhost`,
    /// `IP:127.0.0.1`, `IP:::1`, `email:…`, `URI:…`.
    pub sans: Vec<String>,
    /// SHA-256 fingerprint.
    pub fingerprint: Fingerprint,
    /// Start of validity, RFC 3339 UTC (`2025-01-31T12:00:00Z`).
    pub not_before: String,
    /// End of validity, RFC 3339 UTC.
    pub not_after: String,
    /// End of validity, seconds since the Unix epoch (for expiry warnings
    /// and metrics).
    pub not_after_unix: i64,
    /// Key algorithm and size, e.g. `RSA 2048` or `EC P-256`.
    pub key: String,
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "subject:     {}", self.subject)?;
        writeln!(f, "issuer:      {}", self.issuer)?;
        writeln!(f, "serial:      {}", self.serial)?;
        writeln!(f, "names:       {}", self.sans.join(", "))?;
        writeln!(f, "not before:  {}", self.not_before)?;
        writeln!(f, "not after:   {}", self.not_after)?;
        writeln!(f, "key:         {}", self.key)?;
        write!(f, "fingerprint: {}", self.fingerprint)
    }
}

fn invalid(reason: impl Into<String>) -> CertError {
    CertError::InvalidParams {
        reason: reason.into(),
    }
}

fn validate(params: &CertParams) -> Result<(), CertError> {
    let cn = &params.common_name;
    // RFC 5280 ub-common-name; OpenSSL refuses longer ones with a less
    // helpful message.
    if cn.is_empty() || cn.chars().count() > 64 {
        return Err(invalid(format!(
            "common name {cn:?} must be 1 to 64 characters"
        )));
    }
    for d in &params.dns_names {
        if d.is_empty() || !d.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(format!(
                "DNS name {d:?} must be non-empty ASCII without spaces \
                 (write internationalised names in their xn-- form)"
            )));
        }
    }
    if params.days == 0 {
        return Err(invalid("validity must be at least 1 day"));
    }
    if let KeyKind::Rsa(bits) = params.key {
        if !RSA_BITS.contains(&bits) {
            return Err(invalid(format!(
                "RSA key size {bits} is not supported: use 2048, 3072 or 4096"
            )));
        }
    }
    Ok(())
}

/// [`Identity::generate`] with the clock as a parameter.
pub(crate) fn generate_at(params: &CertParams, now_unix: i64) -> Result<Identity, CertError> {
    validate(params)?;
    // X.509 times end at 9999-12-31T23:59:59Z (4-digit GeneralizedTime).
    if now_unix + i64::from(params.days) * 86_400 > 253_402_300_799 {
        return Err(invalid(format!(
            "{} days from now is after the year 9999, the last date a certificate can hold",
            params.days
        )));
    }

    let key = match params.key {
        KeyKind::Rsa(bits) => Rsa::generate(bits).and_then(PKey::from_rsa),
        KeyKind::EcP256 => EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
            .and_then(|g| EcKey::generate(&g))
            .and_then(PKey::from_ec_key),
    }
    .map_err(crypto("generate a private key"))?;

    let cert = build_cert(params, &key, now_unix).map_err(crypto("build the certificate"))?;
    Ok(Identity {
        cert,
        key,
        chain: Vec::new(),
    })
}

fn build_cert(
    params: &CertParams,
    key: &PKeyRef<Private>,
    now_unix: i64,
) -> Result<X509, openssl::error::ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, &params.common_name)?;
    let name = name.build();

    // Random 128-bit positive serial (RFC 5280 allows up to 20 octets).
    let mut serial = BigNum::new()?;
    loop {
        serial.rand(128, MsbOption::MAYBE_ZERO, false)?;
        if serial.num_bits() > 0 {
            break;
        }
    }

    let mut b = X509Builder::new()?;
    b.set_version(2)?; // X.509 v3
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(key)?;
    // `as _`: time_t is i64 on every 64-bit target we build for.
    let not_before = Asn1Time::from_unix((now_unix - 3600) as _)?;
    let not_after = Asn1Time::from_unix((now_unix + i64::from(params.days) * 86_400) as _)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;

    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    let mut ku = KeyUsage::new();
    ku.critical().digital_signature().key_cert_sign();
    if key.id() == Id::RSA {
        ku.key_encipherment();
    }
    b.append_extension(ku.build()?)?;
    b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    if !params.dns_names.is_empty() || !params.ip_addrs.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for d in &params.dns_names {
            san.dns(d);
        }
        for ip in &params.ip_addrs {
            san.ip(&ip.to_string());
        }
        let san = san.build(&b.x509v3_context(None, None))?;
        b.append_extension(san)?;
    }

    b.sign(key, MessageDigest::sha256())?;
    Ok(b.build())
}

/// `CN=vhub, O=Example` — short names, in certificate order.
fn name_to_string(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let field = e.object().nid().short_name().map_or_else(
                |_| e.object().to_string(), // unknown OID: print it dotted
                str::to_owned,
            );
            // Inherent `Asn1StringRef::to_string` (openssl >= 0.10.81):
            // converts BMPString etc. to UTF-8.
            let value = e
                .data()
                .to_string()
                .unwrap_or_else(|_| String::from_utf8_lossy(e.data().as_slice()).into_owned());
            format!("{field}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn sans(cert: &X509) -> Vec<String> {
    let Some(names) = cert.subject_alt_names() else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|n| {
            if let Some(d) = n.dnsname() {
                Some(format!("DNS:{d}"))
            } else if let Some(ip) = n.ipaddress() {
                let ip = match ip.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(ip).ok()?),
                    16 => IpAddr::from(<[u8; 16]>::try_from(ip).ok()?),
                    _ => return None,
                };
                Some(format!("IP:{ip}"))
            } else if let Some(e) = n.email() {
                Some(format!("email:{e}"))
            } else {
                n.uri().map(|u| format!("URI:{u}"))
            }
        })
        .collect()
}

/// `RSA 2048`, `EC P-256`, `Ed25519`, …
pub(crate) fn key_description<T: HasPublic>(key: &PKeyRef<T>) -> String {
    let id = key.id();
    if id == Id::RSA {
        format!("RSA {}", key.bits())
    } else if id == Id::RSA_PSS {
        format!("RSA-PSS {}", key.bits())
    } else if id == Id::EC {
        let curve = key
            .ec_key()
            .ok()
            .and_then(|k| k.group().curve_name())
            .map_or_else(|| format!("{} bits", key.bits()), curve_name);
        format!("EC {curve}")
    } else if id == Id::ED25519 {
        "Ed25519".into()
    } else if id == Id::ED448 {
        "Ed448".into()
    } else {
        let name = Nid::from_raw(id.as_raw())
            .short_name()
            .unwrap_or("unknown key type");
        format!("{name} {}", key.bits())
    }
}

fn curve_name(nid: Nid) -> String {
    match nid {
        Nid::X9_62_PRIME256V1 => "P-256".into(),
        Nid::SECP384R1 => "P-384".into(),
        Nid::SECP521R1 => "P-521".into(),
        other => other.short_name().unwrap_or("unknown curve").into(),
    }
}

/// Seconds since the epoch of an ASN.1 time.
fn asn1_to_unix(t: &Asn1TimeRef) -> Option<i64> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// `1970-01-01T00:00:00Z` from seconds since the epoch (proleptic Gregorian,
/// Howard Hinnant's `civil_from_days`).
pub(crate) fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::X509VerifyResult;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn default_params() {
        let p = CertParams::default();
        assert_eq!(p.common_name, "vhub");
        assert_eq!(p.dns_names, ["localhost"]);
        assert_eq!(p.ip_addrs.len(), 2);
        assert_eq!(p.days, 3650);
        assert_eq!(p.key, KeyKind::Rsa(2048));
    }

    #[test]
    fn generated_default_certificate() {
        let now = 1_700_000_000;
        let id = generate_at(&CertParams::default(), now).unwrap();
        let c = &id.cert;

        assert_eq!(c.version(), 2);
        assert!(c.verify(&id.key).unwrap(), "self-signature must verify");
        assert_eq!(c.issued(c), X509VerifyResult::OK);
        assert!(c.public_key().unwrap().public_eq(&id.key));
        assert_eq!(id.key.id(), Id::RSA);
        assert_eq!(id.key.bits(), 2048);
        assert_eq!(
            c.signature_algorithm().object().nid(),
            Nid::SHA256WITHRSAENCRYPTION
        );
        let serial = c.serial_number().to_bn().unwrap();
        assert!(serial.num_bits() > 64 && serial.num_bits() <= 128);
        assert!(!serial.is_negative());
        assert!(id.chain.is_empty());

        let info = id.info();
        assert_eq!(info.subject, "CN=vhub");
        assert_eq!(info.issuer, "CN=vhub");
        assert_eq!(info.sans, ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]);
        assert_eq!(info.fingerprint, id.fingerprint());
        assert_eq!(info.key, "RSA 2048");
        assert_eq!(info.not_before, rfc3339(now - 3600));
        assert_eq!(info.not_before, "2023-11-14T21:13:20Z");
        assert_eq!(info.not_after_unix, now + 3650 * 86_400);
        assert_eq!(info.not_after, rfc3339(now + 3650 * 86_400));
        assert!(!info.serial.is_empty());
        let shown = info.to_string();
        assert!(shown.contains("fingerprint: sha256:"), "{shown}");
    }

    #[test]
    fn two_generations_differ() {
        let p = CertParams {
            key: KeyKind::EcP256,
            ..CertParams::default()
        };
        let a = Identity::generate(&p).unwrap();
        let b = Identity::generate(&p).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(
            a.cert.serial_number().to_bn().unwrap(),
            b.cert.serial_number().to_bn().unwrap()
        );
    }

    #[test]
    fn ec_and_custom_names() {
        let p = CertParams {
            common_name: "hub.example".into(),
            dns_names: vec!["hub.example".into(), "*.hub.example".into()],
            ip_addrs: vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()],
            days: 1,
            key: KeyKind::EcP256,
        };
        let id = Identity::generate(&p).unwrap();
        assert!(id.cert.verify(&id.key).unwrap());
        let info = id.info();
        assert_eq!(info.key, "EC P-256");
        assert_eq!(info.subject, "CN=hub.example");
        assert_eq!(
            info.sans,
            [
                "DNS:hub.example",
                "DNS:*.hub.example",
                "IP:192.0.2.7",
                "IP:2001:db8::7"
            ]
        );
        assert_eq!(
            id.cert.signature_algorithm().object().nid(),
            Nid::ECDSA_WITH_SHA256
        );
    }

    #[test]
    fn no_sans_when_none_asked_for() {
        let p = CertParams {
            dns_names: vec![],
            ip_addrs: vec![],
            key: KeyKind::EcP256,
            ..CertParams::default()
        };
        let id = Identity::generate(&p).unwrap();
        assert!(id.cert.subject_alt_names().is_none());
        assert!(id.info().sans.is_empty());
    }

    #[test]
    fn bad_params_are_refused_with_a_reason() {
        let base = CertParams {
            key: KeyKind::EcP256,
            ..CertParams::default()
        };
        let cases = [
            (
                CertParams {
                    key: KeyKind::Rsa(1024),
                    ..base.clone()
                },
                "RSA key size 1024",
            ),
            (
                CertParams {
                    days: 0,
                    ..base.clone()
                },
                "at least 1 day",
            ),
            (
                CertParams {
                    days: u32::MAX,
                    ..base.clone()
                },
                "after the year 9999",
            ),
            (
                CertParams {
                    common_name: String::new(),
                    ..base.clone()
                },
                "common name",
            ),
            (
                CertParams {
                    common_name: "x".repeat(65),
                    ..base.clone()
                },
                "1 to 64",
            ),
            (
                CertParams {
                    dns_names: vec!["bad name".into()],
                    ..base.clone()
                },
                "DNS name \"bad name\"",
            ),
        ];
        for (p, want) in cases {
            let e = Identity::generate(&p).unwrap_err();
            assert!(matches!(e, CertError::InvalidParams { .. }), "{e:?}");
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let id = Identity::generate(&CertParams {
            key: KeyKind::EcP256,
            ..CertParams::default()
        })
        .unwrap();
        let dbg = format!("{id:?}");
        assert!(dbg.contains("sha256:"), "{dbg}");
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
    }
}
