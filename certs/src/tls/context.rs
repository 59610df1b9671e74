//! OpenSSL contexts for the hub and the client: cipher presets, protocol
//! versions, the hub's certificate, and the client's ways of trusting it.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use openssl::ex_data::Index;
use openssl::pkey::Id;
use openssl::ssl::{
    SslContext, SslContextBuilder, SslContextRef, SslMethod, SslMode, SslOptions, SslVerifyMode,
    SslVersion,
};
use openssl::x509::{X509StoreContextRef, X509VerifyResult, X509};

use super::error::{config, internal, TlsError};
use crate::{Fingerprint, Identity};

/// TLS 1.3 suites of the default preset, strongest first.
pub const DEFAULT_CIPHERSUITES: &str =
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";

/// TLS 1.2 suites of the default preset: forward secret AEAD only,
/// AES-256-GCM first.
pub const DEFAULT_CIPHER_LIST: &str = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
     ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
     ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";

/// TLS 1.2 suites of the `aes256-sha` preset: AES-256 with SHA-1/SHA-2
/// HMACs, as the original product offered.
pub const AES256_SHA_CIPHER_LIST: &str =
    "AES256-SHA:AES256-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES256-SHA";

/// A named choice of cipher suites (and the protocol versions they need).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Preset {
    /// `default`: TLS 1.3 and 1.2, strong suites only, AES-256-GCM first.
    #[default]
    Default,
    /// `aes256-sha`: TLS 1.2 only, AES-256-CBC with SHA-1/SHA-256/SHA-384.
    Aes256Sha,
    /// `rc4-sha`: legacy RC4 with SHA-1, TLS 1.2 at most.
    Rc4Sha,
    /// `rc4-md5`: legacy RC4 with MD5, TLS 1.2 at most.
    Rc4Md5,
}

impl Preset {
    /// Every preset, in the order `--help` lists them.
    pub const ALL: [Preset; 4] = [
        Preset::Default,
        Preset::Aes256Sha,
        Preset::Rc4Sha,
        Preset::Rc4Md5,
    ];

    /// The name users type: `default`, `aes256-sha`, `rc4-sha`, `rc4-md5`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Default => "default",
            Preset::Aes256Sha => "aes256-sha",
            Preset::Rc4Sha => "rc4-sha",
            Preset::Rc4Md5 => "rc4-md5",
        }
    }

    /// One line on what the preset negotiates.
    pub fn description(self) -> &'static str {
        match self {
            Preset::Default => {
                "TLS 1.3 and 1.2, strong suites only, AES-256-GCM first \
                 (TLS_AES_256_GCM_SHA384, ECDHE-*-AES256-GCM-SHA384, then ChaCha20 and AES-128-GCM)"
            }
            Preset::Aes256Sha => {
                "TLS 1.2 only: AES256-SHA, AES256-SHA256, ECDHE-RSA-AES256-SHA384, \
                 ECDHE-RSA-AES256-SHA (for old clients; needs an RSA certificate)"
            }
            Preset::Rc4Sha => {
                "legacy RC4-SHA, TLS 1.2 at most (needs a legacy-ciphers build and \
                 --allow-legacy-ciphers)"
            }
            Preset::Rc4Md5 => {
                "legacy RC4-MD5, TLS 1.2 at most (needs a legacy-ciphers build and \
                 --allow-legacy-ciphers)"
            }
        }
    }

    /// Whether the preset is one of the broken RC4 ones.
    pub fn is_legacy(self) -> bool {
        matches!(self, Preset::Rc4Sha | Preset::Rc4Md5)
    }

    /// The presets and the other forms a cipher setting takes, one per
    /// line, for `--help`.
    pub fn help() -> String {
        let mut s = String::new();
        for p in Preset::ALL {
            s.push_str(&format!("{:<11} {}\n", p.name(), p.description()));
        }
        s.push_str(
            "list:STR    an OpenSSL cipher list for TLS 1.2 and older (`openssl ciphers STR`)\n\
             suites:STR  OpenSSL TLS 1.3 ciphersuites, e.g. suites:TLS_AES_256_GCM_SHA384\n\
             list:A;suites:B  both",
        );
        if !legacy_ciphers_built() {
            s.push_str("\n(this build has no RC4: it was built without --features legacy-ciphers)");
        }
        s
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = ParseCipherSpecError;

    /// A preset name, case-insensitively; `_` may stand for `-`.
    fn from_str(s: &str) -> Result<Preset, ParseCipherSpecError> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == norm)
            .ok_or_else(|| ParseCipherSpecError {
                input: s.to_owned(),
                reason: "not a preset name",
            })
    }
}

/// Which cipher suites to offer or accept.
///
/// Parsed from text ([`FromStr`]) as:
///
/// - a [`Preset`] name: `default`, `aes256-sha`, `rc4-sha`, `rc4-md5`;
/// - `list:<OpenSSL cipher list>`: the TLS 1.2-and-older suites, in
///   OpenSSL's syntax (`list:ECDHE-RSA-AES256-GCM-SHA384:AES256-SHA`);
/// - `suites:<TLS 1.3 ciphersuites>`: the TLS 1.3 suites
///   (`suites:TLS_AES_256_GCM_SHA384`);
/// - both, separated by `;`: `list:AES256-SHA;suites:TLS_AES_256_GCM_SHA384`.
///
/// A part left out keeps OpenSSL's own default for it — so `list:` alone
/// still allows TLS 1.3 with its default suites; add a maximum version of
/// TLS 1.2 to rule that out. Custom strings allow TLS 1.2 and up unless
/// the versions say otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CipherSpec {
    /// A named preset.
    Preset(Preset),
    /// Raw OpenSSL strings.
    OpenSsl {
        /// For `SSL_CTX_set_cipher_list` (TLS 1.2 and older).
        cipher_list: Option<String>,
        /// For `SSL_CTX_set_ciphersuites` (TLS 1.3).
        ciphersuites: Option<String>,
    },
}

impl Default for CipherSpec {
    fn default() -> Self {
        CipherSpec::Preset(Preset::Default)
    }
}

impl fmt::Display for CipherSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CipherSpec::Preset(p) => f.write_str(p.name()),
            CipherSpec::OpenSsl {
                cipher_list,
                ciphersuites,
            } => {
                let mut parts = Vec::new();
                if let Some(l) = cipher_list {
                    parts.push(format!("list:{l}"));
                }
                if let Some(s) = ciphersuites {
                    parts.push(format!("suites:{s}"));
                }
                f.write_str(&parts.join(";"))
            }
        }
    }
}

impl FromStr for CipherSpec {
    type Err = ParseCipherSpecError;

    fn from_str(s: &str) -> Result<CipherSpec, ParseCipherSpecError> {
        let err = |reason| ParseCipherSpecError {
            input: s.to_owned(),
            reason,
        };
        let t = s.trim();
        if !t.contains(':') {
            return t
                .parse::<Preset>()
                .map(CipherSpec::Preset)
                .map_err(|_| err("not a preset name, and no list: or suites: prefix"));
        }
        let mut cipher_list = None;
        let mut ciphersuites = None;
        for part in t.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (slot, value) = if let Some(v) = part.strip_prefix("list:") {
                (&mut cipher_list, v)
            } else if let Some(v) = part.strip_prefix("suites:") {
                (&mut ciphersuites, v)
            } else {
                return Err(err("each part must start with list: or suites:"));
            };
            if value.trim().is_empty() {
                return Err(err("empty cipher string after the prefix"));
            }
            if slot.replace(value.trim().to_owned()).is_some() {
                return Err(err("list: or suites: given twice"));
            }
        }
        if cipher_list.is_none() && ciphersuites.is_none() {
            return Err(err("empty cipher string"));
        }
        Ok(CipherSpec::OpenSsl {
            cipher_list,
            ciphersuites,
        })
    }
}

/// A cipher setting that is neither a preset nor a prefixed OpenSSL string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseCipherSpecError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for ParseCipherSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
        write!(
            f,
            "invalid cipher setting {:?}: {}; expected one of {}, or \
             list:<OpenSSL cipher list>, suites:<TLS 1.3 ciphersuites>, or list:…;suites:…",
            self.input,
            self.reason,
            names.join(", ")
        )
    }
}

impl std::error::Error for ParseCipherSpecError {}

/// TLS settings shared by the hub and the client.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsOptions {
    /// Which suites to offer or accept.
    pub ciphers: CipherSpec,
    /// The explicit opt-in (`--allow-legacy-ciphers`) without which the
    /// RC4 presets are refused even by a `legacy-ciphers` build.
    pub allow_legacy: bool,
    /// Lowest protocol version; `None`: the preset's (TLS 1.2 for all but
    /// the RC4 presets, which take OpenSSL's lowest).
    pub min_version: Option<SslVersion>,
    /// Highest protocol version; `None`: the preset's (TLS 1.3, or TLS 1.2
    /// for `aes256-sha` and the RC4 presets).
    pub max_version: Option<SslVersion>,
}

/// How a client decides to trust the hub's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verify {
    /// The chain must lead to a certificate in this PEM file (the hub's own
    /// `ca.crt`, or a real CA's), and the certificate must name the host
    /// given to [`TlsConn::client`](super::TlsConn::client).
    Ca(PathBuf),
    /// Exactly the certificate with this SHA-256, whoever signed it and
    /// whatever names it holds.
    Pin(Fingerprint),
    /// Trust on first use: any certificate passes the handshake; the
    /// caller then checks [`TlsConn::peer_fingerprint`](super::TlsConn::peer_fingerprint)
    /// with [`check_tofu`](super::check_tofu) before sending anything.
    Tofu {
        /// The known-hubs file.
        known_hubs: PathBuf,
        /// `host:port` as dialled, the key in that file.
        host_port: String,
    },
    /// No verification at all (tests, or a user who said so).
    Insecure,
}

/// What a client context verifies, kept in the context's ex_data so that
/// [`TlsConn::client`](super::TlsConn::client) knows whether to check the
/// host name and whom to blame for a failure.
#[derive(Clone, Debug)]
pub(crate) enum VerifyMeta {
    Ca,
    Pin(Fingerprint),
    NoChain,
}

fn meta_index() -> Result<Index<SslContext, VerifyMeta>, TlsError> {
    if let Some(i) = META_INDEX.get() {
        return Ok(*i);
    }
    let i = SslContext::new_ex_index().map_err(internal("allocate an ex_data index"))?;
    // A thread that loses the race leaks one index slot, once.
    Ok(*META_INDEX.get_or_init(|| i))
}

static META_INDEX: OnceLock<Index<SslContext, VerifyMeta>> = OnceLock::new();

pub(crate) fn verify_meta(ctx: &SslContextRef) -> Option<&VerifyMeta> {
    META_INDEX.get().and_then(|i| ctx.ex_data(*i))
}

/// The verify callback of [`Verify::Pin`]: chain errors do not matter,
/// only the end-entity certificate's fingerprint does. `seen` gets that
/// fingerprint.
pub(crate) fn pin_verify(
    expected: Fingerprint,
    x509: &mut X509StoreContextRef,
    seen: impl FnOnce(Fingerprint),
) -> bool {
    if x509.error_depth() != 0 {
        return true;
    }
    let Some(cert) = x509.current_cert() else {
        return false;
    };
    let fp = Fingerprint::of(cert);
    seen(fp);
    if fp == expected {
        true
    } else {
        x509.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
        false
    }
}

/// Whether this binary was built with the `legacy-ciphers` feature (RC4
/// possible at all).
pub fn legacy_ciphers_built() -> bool {
    cfg!(feature = "legacy-ciphers")
}

/// The OpenSSL library in use, e.g. `OpenSSL 3.6.1 1 Oct 2026`, for logs.
pub fn openssl_version() -> &'static str {
    openssl::version::version()
}

/// Whether OpenSSL is built from source into this binary (feature
/// `vendored`, implied by `legacy-ciphers`) rather than the system library.
pub fn openssl_vendored() -> bool {
    cfg!(feature = "vendored")
}

/// The hub's context: its certificate and key (and chain), the chosen
/// suites, server preference for its own order, no renegotiation.
pub fn server_context(id: &Identity, opts: &TlsOptions) -> Result<SslContext, TlsError> {
    server_context_with_client_ca(id, opts, None)
}

/// As [`server_context`]; with `client_ca`, the hub also *requests* (never
/// requires) a client certificate and checks it against the CA
/// certificates in that PEM file. The handshake never fails for a missing
/// or bad client certificate: the verdict is read afterwards with
/// [`TlsConn::client_cert`](super::TlsConn::client_cert), so that the hub
/// can answer with an HTTP status that says what was wrong (and password
/// logins keep working on the same port).
pub fn server_context_with_client_ca(
    id: &Identity,
    opts: &TlsOptions,
    client_ca: Option<&Path>,
) -> Result<SslContext, TlsError> {
    let plan = Plan::new(opts)?;
    if plan.needs_rsa && id.key.id() != Id::RSA {
        return Err(TlsError::Config {
            what: plan.what.clone(),
            reason: "these suites use RSA key exchange or RSA signatures, but the hub's \
                     key is not RSA: generate an RSA certificate (the default) or choose \
                     another cipher setting"
                .into(),
        });
    }
    let mut b = plan.builder(SslMethod::tls_server())?;
    b.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
    // No TLS session resumption: a client that reconnects resumes its vhub
    // session by token (PROTOCOL.md), never its TLS session. So no session
    // cache (TLS 1.2 session IDs; OpenSSL's default keeps up to 20,480 per
    // context), no TLS 1.2 tickets, and no TLS 1.3 tickets (two per
    // handshake, sent and encrypted for nothing).
    b.set_session_cache_mode(openssl::ssl::SslSessionCacheMode::OFF);
    b.set_options(SslOptions::NO_TICKET);
    b.set_num_tickets(0)
        .map_err(config("the TLS ticket count"))?;
    b.set_certificate(&id.cert)
        .map_err(config("the hub certificate"))?;
    b.set_private_key(&id.key)
        .map_err(config("the hub private key"))?;
    for c in &id.chain {
        b.add_extra_chain_cert(c.clone())
            .map_err(config("the hub certificate chain"))?;
    }
    b.check_private_key()
        .map_err(config("the hub private key"))?;
    if let Some(path) = client_ca {
        let what = || format!("client CA file {}", path.display());
        for c in read_pem_certs(path, &what)? {
            b.add_client_ca(&c).map_err(config(what()))?;
            b.cert_store_mut().add_cert(c).map_err(config(what()))?;
        }
        // Verify, but let the handshake finish whatever the verdict: the
        // result stays in SSL_get_verify_result for the HTTP layer.
        b.set_verify_callback(SslVerifyMode::PEER, |_ok, _ctx| true);
        b.set_verify_depth(4);
        // Sessions resumed by ticket keep the verdict of the full handshake;
        // a context id is required for session reuse with client certs.
        b.set_session_id_context(b"vhub-client-ca")
            .map_err(config(what()))?;
    }
    Ok(b.build())
}

/// Every certificate of a PEM file; an error naming the file when it has
/// none or cannot be read.
fn read_pem_certs(path: &Path, what: &dyn Fn() -> String) -> Result<Vec<X509>, TlsError> {
    let pem = fs::read(path).map_err(|e| TlsError::Config {
        what: what(),
        reason: format!("cannot read it: {e}"),
    })?;
    let certs = X509::stack_from_pem(&pem).map_err(config(what()))?;
    if certs.is_empty() {
        return Err(TlsError::Config {
            what: what(),
            reason: "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(certs)
}

/// The client's context: the chosen suites and how the hub is trusted.
pub fn client_context(verify: &Verify, opts: &TlsOptions) -> Result<SslContext, TlsError> {
    client_context_with_cert(verify, opts, None)
}

/// As [`client_context`], presenting `cert` (certificate, key and chain)
/// when the hub asks for a client certificate.
pub fn client_context_with_cert(
    verify: &Verify,
    opts: &TlsOptions,
    cert: Option<&Identity>,
) -> Result<SslContext, TlsError> {
    let plan = Plan::new(opts)?;
    let mut b = plan.builder(SslMethod::tls_client())?;
    if let Some(id) = cert {
        b.set_certificate(&id.cert)
            .map_err(config("the client certificate"))?;
        b.set_private_key(&id.key)
            .map_err(config("the client private key"))?;
        for c in &id.chain {
            b.add_extra_chain_cert(c.clone())
                .map_err(config("the client certificate chain"))?;
        }
        b.check_private_key()
            .map_err(config("the client private key"))?;
    }
    let meta = match verify {
        Verify::Ca(path) => {
            let what = || format!("CA file {}", path.display());
            for c in read_pem_certs(path, &what)? {
                b.cert_store_mut().add_cert(c).map_err(config(what()))?;
            }
            b.set_verify(SslVerifyMode::PEER);
            VerifyMeta::Ca
        }
        Verify::Pin(fp) => {
            let fp = *fp;
            b.set_verify_callback(SslVerifyMode::PEER, move |_ok, x509| {
                pin_verify(fp, x509, |_| {})
            });
            VerifyMeta::Pin(fp)
        }
        Verify::Tofu { .. } | Verify::Insecure => {
            b.set_verify(SslVerifyMode::NONE);
            VerifyMeta::NoChain
        }
    };
    b.set_ex_data(meta_index()?, meta);
    Ok(b.build())
}

/// What a [`TlsOptions`] asks of OpenSSL, checked.
struct Plan {
    /// "preset aes256-sha", "cipher list \"…\"": for error messages.
    what: String,
    cipher_list: Option<String>,
    ciphersuites: Option<String>,
    min: Option<SslVersion>,
    max: Option<SslVersion>,
    /// Load the legacy provider (RC4 lives there in OpenSSL 3).
    legacy: bool,
    /// The server needs an RSA key for these suites.
    needs_rsa: bool,
}

impl Plan {
    fn new(opts: &TlsOptions) -> Result<Plan, TlsError> {
        let tls12 = Some(SslVersion::TLS1_2);
        let mut plan = match &opts.ciphers {
            CipherSpec::Preset(p) => {
                let what = format!("preset {p}");
                if p.is_legacy() {
                    legacy_gate(&what, opts.allow_legacy)?;
                }
                let (list, suites, min, max) = match p {
                    Preset::Default => {
                        (DEFAULT_CIPHER_LIST, Some(DEFAULT_CIPHERSUITES), tls12, None)
                    }
                    Preset::Aes256Sha => (AES256_SHA_CIPHER_LIST, None, tls12, tls12),
                    // RC4-MD5 is refused above security level 0, RC4-SHA
                    // above 1; neither exists in TLS 1.3.
                    Preset::Rc4Sha => ("RC4-SHA:@SECLEVEL=0", None, None, tls12),
                    Preset::Rc4Md5 => ("RC4-MD5:@SECLEVEL=0", None, None, tls12),
                };
                Plan {
                    what,
                    cipher_list: Some(list.to_owned()),
                    ciphersuites: suites.map(str::to_owned),
                    min,
                    max,
                    legacy: p.is_legacy(),
                    needs_rsa: matches!(p, Preset::Aes256Sha) || p.is_legacy(),
                }
            }
            CipherSpec::OpenSsl {
                cipher_list,
                ciphersuites,
            } => {
                let what = format!("cipher setting {:?}", opts.ciphers.to_string());
                let wants_rc4 = cipher_list
                    .as_deref()
                    .is_some_and(|l| l.to_ascii_uppercase().contains("RC4"));
                if wants_rc4 {
                    legacy_gate(&what, opts.allow_legacy)?;
                }
                Plan {
                    what,
                    cipher_list: cipher_list.clone(),
                    ciphersuites: ciphersuites.clone(),
                    min: tls12,
                    max: None,
                    // With the opt-in, make every legacy algorithm available
                    // to whatever the user's string names.
                    legacy: opts.allow_legacy && legacy_ciphers_built(),
                    needs_rsa: false,
                }
            }
        };
        if let Some(v) = opts.min_version {
            plan.min = Some(v);
        }
        if let Some(v) = opts.max_version {
            if plan.legacy && matches!(&opts.ciphers, CipherSpec::Preset(_)) && rank(v) > 3 {
                return Err(TlsError::Config {
                    what: plan.what,
                    reason: format!(
                        "RC4 suites exist only up to TLS 1.2, but the maximum version is {}",
                        version_name(v)
                    ),
                });
            }
            plan.max = Some(v);
        }
        if let (Some(min), Some(max)) = (plan.min, plan.max) {
            if rank(min) > rank(max) {
                return Err(TlsError::Config {
                    what: "protocol versions".into(),
                    reason: format!(
                        "the minimum {} is above the maximum {}",
                        version_name(min),
                        version_name(max)
                    ),
                });
            }
        }
        Ok(plan)
    }

    /// A context builder with everything but the certificates set up.
    fn builder(&self, method: SslMethod) -> Result<SslContextBuilder, TlsError> {
        // Before SSL_CTX_new: a context looks up which algorithms its
        // suites need when it is created, so RC4 must be loadable by then.
        if self.legacy {
            load_legacy_providers()?;
        }
        let mut b = SslContextBuilder::new(method).map_err(internal("create a TLS context"))?;
        self.apply(&mut b)?;
        Ok(b)
    }

    fn apply(&self, b: &mut SslContextBuilder) -> Result<(), TlsError> {
        b.set_options(SslOptions::NO_RENEGOTIATION | SslOptions::NO_COMPRESSION);
        // The in-memory sink never blocks, so neither mode changes what
        // reaches the peer; PARTIAL_WRITE lets SSL_write return after each
        // record and MOVING_WRITE_BUFFER keeps a retried write valid when
        // the caller's buffer moved (it may be a reallocated Vec).
        // RELEASE_BUFFERS: OpenSSL frees its record buffers (~34 KiB) while
        // a connection is idle — what makes 10,000 idle sessions cheap.
        b.set_mode(
            SslMode::ENABLE_PARTIAL_WRITE
                | SslMode::ACCEPT_MOVING_WRITE_BUFFER
                | SslMode::RELEASE_BUFFERS,
        );
        // Read as many records as the input holds in one go instead of a
        // 5-byte header and then a body per record.
        b.set_read_ahead(true);
        if let Some(list) = &self.cipher_list {
            b.set_cipher_list(list).map_err(|e| {
                let mut err = config(format!("{} (cipher list {list:?})", self.what))(e);
                if self.legacy {
                    if let TlsError::Config { reason, .. } = &mut err {
                        reason.push_str(
                            ": this build's OpenSSL has no such suite; the openssl-src \
                             features weak-crypto and legacy did not reach its build",
                        );
                    }
                }
                err
            })?;
        }
        if let Some(suites) = &self.ciphersuites {
            b.set_ciphersuites(suites).map_err(config(format!(
                "{} (TLS 1.3 ciphersuites {suites:?})",
                self.what
            )))?;
        }
        b.set_min_proto_version(self.min)
            .map_err(config("the minimum protocol version"))?;
        b.set_max_proto_version(self.max)
            .map_err(config("the maximum protocol version"))?;
        Ok(())
    }
}

/// RC4 needs the `legacy-ciphers` build *and* the opt-in.
fn legacy_gate(what: &str, allowed: bool) -> Result<(), TlsError> {
    if !legacy_ciphers_built() {
        Err(TlsError::LegacyNotBuilt)
    } else if !allowed {
        Err(TlsError::LegacyNotAllowed {
            what: what.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// Loads OpenSSL's `legacy` provider (RC4 lives there) and, since loading
/// any provider turns off the implicit one, the `default` provider, once
/// per process; they stay loaded for its lifetime.
#[cfg(feature = "legacy-ciphers")]
fn load_legacy_providers() -> Result<(), TlsError> {
    use openssl::provider::Provider;
    static PROVIDERS: OnceLock<Result<(Provider, Provider), String>> = OnceLock::new();
    let loaded = PROVIDERS.get_or_init(|| {
        let load = |name: &str| {
            Provider::try_load(None, name, true).map_err(|e| {
                format!(
                    "cannot load OpenSSL's {name} provider: {}",
                    crate::error::openssl_reason(&e)
                )
            })
        };
        Ok((load("legacy")?, load("default")?))
    });
    match loaded {
        Ok(_) => Ok(()),
        Err(reason) => Err(TlsError::Config {
            what: "legacy ciphers".into(),
            reason: reason.clone(),
        }),
    }
}

#[cfg(not(feature = "legacy-ciphers"))]
fn load_legacy_providers() -> Result<(), TlsError> {
    // `Plan::new` only asks for it in a legacy-ciphers build.
    Err(TlsError::LegacyNotBuilt)
}

fn rank(v: SslVersion) -> u8 {
    [
        SslVersion::SSL3,
        SslVersion::TLS1,
        SslVersion::TLS1_1,
        SslVersion::TLS1_2,
        SslVersion::TLS1_3,
    ]
    .iter()
    .position(|&k| k == v)
    .map_or(u8::MAX, |p| p as u8)
}

fn version_name(v: SslVersion) -> String {
    match rank(v) {
        0 => "SSLv3".into(),
        1 => "TLS 1.0".into(),
        2 => "TLS 1.1".into(),
        3 => "TLS 1.2".into(),
        4 => "TLS 1.3".into(),
        _ => format!("{v:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_names_round_trip() {
        for p in Preset::ALL {
            assert_eq!(p.name().parse::<Preset>(), Ok(p));
            assert_eq!(
                p.to_string().parse::<CipherSpec>(),
                Ok(CipherSpec::Preset(p))
            );
        }
        assert_eq!("AES256_SHA".parse::<Preset>(), Ok(Preset::Aes256Sha));
        assert_eq!(" RC4-md5 ".parse::<Preset>(), Ok(Preset::Rc4Md5));
    }

    #[test]
    fn openssl_strings_parse_and_display() {
        let spec: CipherSpec = "list:AES256-SHA:AES128-SHA".parse().unwrap();
        assert_eq!(
            spec,
            CipherSpec::OpenSsl {
                cipher_list: Some("AES256-SHA:AES128-SHA".into()),
                ciphersuites: None
            }
        );
        let both = "list:ECDHE+AESGCM;suites:TLS_AES_256_GCM_SHA384";
        let spec: CipherSpec = both.parse().unwrap();
        assert_eq!(spec.to_string(), both);
        assert_eq!(spec.to_string().parse::<CipherSpec>(), Ok(spec));
        let spec: CipherSpec = "suites:TLS_AES_128_GCM_SHA256".parse().unwrap();
        assert_eq!(spec.to_string(), "suites:TLS_AES_128_GCM_SHA256");
    }

    #[test]
    fn bad_specs_say_what_is_expected() {
        for (bad, why) in [
            ("rc5", "not a preset name"),
            ("list:", "empty cipher string"),
            ("foo:bar", "must start with list: or suites:"),
            ("list:A;list:B", "given twice"),
            (";", "not a preset name"),
        ] {
            let e = bad.parse::<CipherSpec>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("default, aes256-sha, rc4-sha, rc4-md5"), "{e}");
        }
    }

    #[test]
    fn help_lists_every_preset() {
        let h = Preset::help();
        for p in Preset::ALL {
            assert!(h.contains(p.name()), "{h}");
        }
        assert!(h.contains("list:") && h.contains("suites:"), "{h}");
    }

    #[test]
    fn versions_are_checked() {
        let opts = TlsOptions {
            min_version: Some(SslVersion::TLS1_3),
            max_version: Some(SslVersion::TLS1_2),
            ..TlsOptions::default()
        };
        let e = Plan::new(&opts).err().unwrap().to_string();
        assert!(
            e.contains("minimum TLS 1.3 is above the maximum TLS 1.2"),
            "{e}"
        );
    }
}
