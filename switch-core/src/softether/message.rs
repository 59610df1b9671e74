//! The handshake's PACKs as types (PROTOCOL-NOTES.md §5, §6): hello,
//! login, welcome, `additional_connect` and its answer, NOOP, and the error
//! PACK. Each has `to_pack` (what this side sends) and `from_pack` (what it
//! accepts), so both roles share one definition of every field.

use super::error::ErrorCode;
use super::pack::Pack;
use super::padding::Padding;
use super::password::{verify_secure_password, HashedPassword, RANDOM_LEN};

/// Length of a session key (`session_key`, DATA 20).
pub const SESSION_KEY_LEN: usize = 20;
/// Length of a client's `unique_id` (DATA 20).
pub const UNIQUE_ID_LEN: usize = 20;
/// Most padding bytes in `pencore` (SoftEther draws `rand mod 1000`).
pub const MAX_PENCORE: usize = 999;
/// The welcome `timeout` range a real server sends (ms, §5.4).
pub const TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u32> = 5_000..=60_000;
/// Most TCP connections per session (`MAX_TCP_CONNECTION`).
pub const MAX_TCP_CONNECTIONS: u32 = 32;

/// A PACK lacks what its step needs. The peer's fault; a server answers
/// with [`ErrorCode::ProtocolError`] (or [`ErrorCode::AuthTypeNotSupported`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the PACK lacks {0} (or it has the wrong type)")]
    Missing(&'static str),
    #[error("the PACK's {0} is malformed")]
    Bad(&'static str),
    #[error("authtype {0} is not supported (only 0 anonymous, 1 password, 2 plain password)")]
    UnsupportedAuth(u32),
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
}

impl MessageError {
    /// The error code a server sends back for it.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnsupportedAuth(_) => ErrorCode::AuthTypeNotSupported,
            _ => ErrorCode::ProtocolError,
        }
    }
}

/// A product string with its version (`major*100 + minor`) and build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductInfo {
    pub name: String,
    pub version: u32,
    pub build: u32,
}

impl ProductInfo {
    /// What the Debian 5.01.9674 vpnserver says in its hello (§5.1).
    pub fn softether_server() -> Self {
        Self {
            name: "SoftEther VPN Server Developer Edition (64 bit) (Open Source)".into(),
            version: 501,
            build: 9674,
        }
    }

    /// What the Debian 5.01.9674 vpnclient says in its login (§5.2).
    pub fn softether_client() -> Self {
        Self {
            name: "SoftEther VPN Client Developer Edition".into(),
            version: 501,
            build: 9674,
        }
    }
}

fn str_field(p: &Pack, name: &'static str) -> Result<String, MessageError> {
    p.get_str(name)
        .map(str::to_owned)
        .ok_or(MessageError::Missing(name))
}

fn fixed<const N: usize>(p: &Pack, name: &'static str) -> Result<[u8; N], MessageError> {
    p.get_data(name)
        .ok_or(MessageError::Missing(name))?
        .try_into()
        .map_err(|_| MessageError::Bad(name))
}

/// Adds the `pencore` padding element (0..=999 filler bytes), as both
/// SoftEther ends do before sending a PACK. Setting replaces, so it is
/// never there twice.
pub fn add_pencore(p: &mut Pack, padding: &mut Padding) {
    let len = padding.below(MAX_PENCORE + 1);
    let bytes = padding.bytes(len);
    p.add_data("pencore", &bytes);
}

/// The `error` of a PACK, if non-zero: any step's answer may carry one.
pub fn pack_error(p: &Pack) -> Option<ErrorCode> {
    p.get_int("error").and_then(ErrorCode::from_u32)
}

/// The error PACK `{error, no_save_password: 0}` that refuses a login or an
/// additional connection (§4.5).
pub fn error_pack(code: ErrorCode) -> Pack {
    let mut p = Pack::new();
    p.add_int("error", code.to_u32())
        .add_int("no_save_password", 0);
    p
}

/// Whether a PACK is a NOOP (`noop` non-zero), sent by a client that waits
/// on a slow local step (§5.3).
pub fn is_noop(p: &Pack) -> bool {
    p.get_bool("noop").unwrap_or(false)
}

/// The answer to a NOOP: `{error: 0, noop: 1}` (safe for 5.01 and master
/// clients, §5.3).
pub fn noop_reply() -> Pack {
    let mut p = Pack::new();
    p.add_int("error", 0).add_int("noop", 1);
    p
}

/// The server's hello, the answer to the watermark POST (§5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub server: ProductInfo,
    /// The challenge for password authentication, new per TCP connection.
    pub random: [u8; RANDOM_LEN],
}

impl Hello {
    pub fn to_pack(&self) -> Pack {
        let mut p = Pack::new();
        p.add_str("hello", &self.server.name)
            .add_int("version", self.server.version)
            .add_int("build", self.server.build)
            .add_data("random", &self.random);
        p
    }

    /// `hello` and a 20-byte `random` are required (the real client fails
    /// with [`ErrorCode::ServerIsNotVpn`] without them); version and build
    /// are informational.
    pub fn from_pack(p: &Pack) -> Result<Self, MessageError> {
        Ok(Self {
            server: ProductInfo {
                name: str_field(p, "hello")?,
                version: p.get_int("version").unwrap_or(0),
                build: p.get_int("build").unwrap_or(0),
            },
            random: fixed(p, "random")?,
        })
    }
}

/// How a login authenticates (`authtype` and its fields, §5.2).
#[derive(Clone, PartialEq, Eq)]
pub enum LoginAuth {
    /// authtype 0.
    Anonymous,
    /// authtype 1: `secure_password` = SHA0(HashedPassword ‖ hello random).
    Password { secure_password: [u8; RANDOM_LEN] },
    /// authtype 2 (RADIUS / NT domain accounts): the password in clear
    /// (inside TLS).
    PlainPassword { password: String },
}

impl std::fmt::Debug for LoginAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Password { .. } => f.write_str("Password { .. }"),
            Self::PlainPassword { .. } => f.write_str("PlainPassword { .. }"),
        }
    }
}

/// The session options a client asks for in its login (§5.2). A hub of
/// one TCP connection per session answers with its own values in the
/// welcome whatever these say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    pub max_connection: u32,
    pub use_encrypt: bool,
    pub use_compress: bool,
    pub half_connection: bool,
    pub qos: bool,
    /// A bridge or router behind the client (a server grants bridged and
    /// routed traffic only when asked, §11).
    pub require_bridge_routing_mode: bool,
    pub require_monitor_mode: bool,
}

impl Default for SessionOptions {
    /// One TCP connection, encrypted, uncompressed, no QoS (§11).
    fn default() -> Self {
        Self {
            max_connection: 1,
            use_encrypt: true,
            use_compress: false,
            half_connection: false,
            qos: false,
            require_bridge_routing_mode: false,
            require_monitor_mode: false,
        }
    }
}

/// A `login` PACK (§5.2), and on the server side the decision it asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// `hubname`, as typed by the user (a real server matches it
    /// case-insensitively).
    pub hub: String,
    /// `username`, as typed (a real server matches it case-insensitively).
    pub user: String,
    pub auth: LoginAuth,
    /// `client_str`, `client_ver`, `client_build`.
    pub client: ProductInfo,
    /// `unique_id`: stable per client machine, if sent with 20 bytes.
    pub unique_id: Option<[u8; UNIQUE_ID_LEN]>,
    pub options: SessionOptions,
    /// Not on the wire: the hello random of this connection, which a
    /// password proof must be made with. Filled in by the server; a client
    /// sets it to the random of the hello it answers.
    pub hello_random: [u8; RANDOM_LEN],
}

impl Login {
    /// Whether the login proves knowledge of `stored` (the user's
    /// [`HashedPassword`]): authtype 1 by the proof over this connection's
    /// random, authtype 2 by hashing the clear password with the user name
    /// (§5.2.1). Always false for an anonymous login. Constant-time in the
    /// compared bytes.
    pub fn check_password(&self, stored: &HashedPassword) -> bool {
        match &self.auth {
            LoginAuth::Anonymous => false,
            LoginAuth::Password { secure_password } => {
                verify_secure_password(stored, &self.hello_random, secure_password)
            }
            LoginAuth::PlainPassword { password } => super::password::constant_time_eq(
                &HashedPassword::new(&self.user, password).0,
                &stored.0,
            ),
        }
    }

    /// The login PACK: the fields a real vpnserver needs (§11), without
    /// UDP acceleration (so none is negotiated) and without `pencore`.
    pub fn to_pack(&self) -> Pack {
        let mut p = Pack::new();
        p.add_str("method", "login")
            .add_str("hubname", &self.hub)
            .add_str("username", &self.user);
        match &self.auth {
            LoginAuth::Anonymous => {
                p.add_int("authtype", 0);
            }
            LoginAuth::Password { secure_password } => {
                p.add_int("authtype", 1)
                    .add_data("secure_password", secure_password);
            }
            LoginAuth::PlainPassword { password } => {
                p.add_int("authtype", 2).add_str("plain_password", password);
            }
        }
        let o = &self.options;
        p.add_str("client_str", &self.client.name)
            .add_int("client_ver", self.client.version)
            .add_int("client_build", self.client.build)
            .add_int("protocol", 0)
            .add_str("hello", &self.client.name)
            .add_int("version", self.client.version)
            .add_int("build", self.client.build)
            .add_int("client_id", 0)
            .add_int("max_connection", o.max_connection)
            .add_bool("use_encrypt", o.use_encrypt)
            .add_bool("use_compress", o.use_compress)
            .add_bool("half_connection", o.half_connection)
            .add_bool("require_bridge_routing_mode", o.require_bridge_routing_mode)
            .add_bool("require_monitor_mode", o.require_monitor_mode)
            .add_bool("qos", o.qos);
        if let Some(id) = &self.unique_id {
            p.add_data("unique_id", id);
        }
        p
    }

    /// Reads a `login` PACK (its `method` already checked). `hubname`,
    /// `username` and `authtype` are required, with the authtype's field;
    /// the options default as a real server reads absent ones (0).
    pub fn from_pack(p: &Pack, hello_random: [u8; RANDOM_LEN]) -> Result<Self, MessageError> {
        let auth = match p
            .get_int("authtype")
            .ok_or(MessageError::Missing("authtype"))?
        {
            0 => LoginAuth::Anonymous,
            1 => LoginAuth::Password {
                secure_password: fixed(p, "secure_password")?,
            },
            2 => LoginAuth::PlainPassword {
                password: str_field(p, "plain_password")?,
            },
            t => return Err(MessageError::UnsupportedAuth(t)),
        };
        let flag = |name| p.get_bool(name).unwrap_or(false);
        Ok(Self {
            hub: str_field(p, "hubname")?,
            user: str_field(p, "username")?,
            auth,
            client: ProductInfo {
                name: p.get_str("client_str").unwrap_or("").to_owned(),
                version: p.get_int("client_ver").unwrap_or(0),
                build: p.get_int("client_build").unwrap_or(0),
            },
            unique_id: p.get_data("unique_id").and_then(|d| d.try_into().ok()),
            options: SessionOptions {
                max_connection: p.get_int("max_connection").unwrap_or(0),
                use_encrypt: flag("use_encrypt"),
                use_compress: flag("use_compress"),
                half_connection: flag("half_connection"),
                qos: flag("qos"),
                require_bridge_routing_mode: flag("require_bridge_routing_mode"),
                require_monitor_mode: flag("require_monitor_mode"),
            },
            hello_random,
        })
    }
}

/// The server's welcome: the session is established (§5.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// `session_name`, e.g. `SID-ALICE-1` (required by the client).
    pub session_name: String,
    /// `connection_name`, e.g. `CID-1` (required by the client).
    pub connection_name: String,
    /// 20 random bytes naming the session for additional connections.
    pub session_key: [u8; SESSION_KEY_LEN],
    /// Random; stored by the client, unused over TCP.
    pub session_key_32: u32,
    /// Idle timeout and keep-alive basis, ms. A real server sends
    /// 5000..=60000; 0 would make the client divide by zero.
    pub timeout_ms: u32,
    pub max_connection: u32,
    /// The client obeys this, not its own setting: with `false` it moves
    /// the data stream *outside* TLS. A hub always sends `true`.
    pub use_encrypt: bool,
    /// `true` means zlib per frame (§7.4), which this crate does not do.
    pub use_compress: bool,
    pub half_connection: bool,
    /// `true` makes the client open at least two TCP connections.
    pub qos: bool,
    pub vlan_id: u32,
    /// `policy:<Name>` INTs, names without the prefix. The client acts on
    /// `NoSavePassword` (wipes its saved password) and `AutoDisconnect`.
    pub policies: Vec<(String, u32)>,
    /// `Redirect` non-zero: a cluster redirect, which this crate does not follow.
    pub redirect: bool,
}

impl Welcome {
    /// The welcome of a single-connection session, as PROTOCOL-NOTES.md
    /// §5.5 recommends: `max_connection` 1, `use_encrypt` 1, `use_compress`
    /// 0, `half_connection` 0, `qos` 0, `timeout` 20000, and the policies
    /// Access=1, MaxConnection=32, TimeOut=20, Ver3=1.
    pub fn new(
        session_name: String,
        connection_name: String,
        session_key: [u8; SESSION_KEY_LEN],
        session_key_32: u32,
    ) -> Self {
        Self {
            session_name,
            connection_name,
            session_key,
            session_key_32,
            timeout_ms: 20_000,
            max_connection: 1,
            use_encrypt: true,
            use_compress: false,
            half_connection: false,
            qos: false,
            vlan_id: 0,
            policies: vec![
                ("Access".into(), 1),
                ("MaxConnection".into(), MAX_TCP_CONNECTIONS),
                ("TimeOut".into(), 20),
                ("Ver3".into(), 1),
            ],
            redirect: false,
        }
    }

    /// A policy value by name (case-insensitive); absent reads as 0 on the
    /// client, so `None` means 0.
    pub fn policy(&self, name: &str) -> Option<u32> {
        self.policies
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// Sets a policy (replacing one of the same name).
    pub fn set_policy(&mut self, name: &str, value: u32) {
        match self
            .policies
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(p) => p.1 = value,
            None => self.policies.push((name.to_owned(), value)),
        }
    }

    /// The welcome PACK, without UDP acceleration, R-UDP or a redirect
    /// (§5.5's right-hand column).
    pub fn to_pack(&self) -> Pack {
        let mut p = Pack::new();
        p.add_str("session_name", &self.session_name)
            .add_str("connection_name", &self.connection_name)
            .add_data("session_key", &self.session_key)
            .add_int("session_key_32", self.session_key_32)
            .add_int("max_connection", self.max_connection)
            .add_bool("use_encrypt", self.use_encrypt)
            .add_bool("use_compress", self.use_compress)
            .add_bool("half_connection", self.half_connection)
            .add_int("timeout", self.timeout_ms)
            .add_bool("qos", self.qos)
            .add_int("is_azure_session", 0)
            .add_int("vlan_id", self.vlan_id)
            .add_int("enable_udp_recovery", 0);
        for (name, v) in &self.policies {
            p.add_int(&format!("policy:{name}"), *v);
        }
        if self.redirect {
            p.add_int("Redirect", 1);
        }
        p
    }

    /// Reads a welcome as the real client does: `session_name`,
    /// `connection_name` and a 20-byte `session_key` are required (else
    /// [`ErrorCode::ProtocolError`]); so is a `timeout` of at least 2 ms
    /// (the real client would divide by zero). Whether the values are
    /// acceptable is the caller's decision.
    pub fn from_pack(p: &Pack) -> Result<Self, MessageError> {
        let timeout_ms = p
            .get_int("timeout")
            .ok_or(MessageError::Missing("timeout"))?;
        if timeout_ms < 2 {
            return Err(MessageError::Bad("timeout"));
        }
        let policies = p
            .elements()
            .iter()
            .filter_map(|e| {
                let name = e.name();
                let rest = name
                    .get(..7)
                    .filter(|pre| pre.eq_ignore_ascii_case("policy:"))
                    .map(|_| &name[7..])?;
                match e.values() {
                    super::pack::Values::Int(v) => Some((rest.to_owned(), v[0])),
                    _ => None,
                }
            })
            .collect();
        let flag = |name| p.get_bool(name).unwrap_or(false);
        Ok(Self {
            session_name: str_field(p, "session_name")?,
            connection_name: str_field(p, "connection_name")?,
            session_key: fixed(p, "session_key")?,
            session_key_32: p.get_int("session_key_32").unwrap_or(0),
            timeout_ms,
            max_connection: p.get_int("max_connection").unwrap_or(0),
            use_encrypt: flag("use_encrypt"),
            use_compress: flag("use_compress"),
            half_connection: flag("half_connection"),
            qos: flag("qos"),
            vlan_id: p.get_int("vlan_id").unwrap_or(0),
            policies,
            redirect: flag("Redirect"),
        })
    }
}

/// Which way an additional connection carries data (`direction`, §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// 0: both ways (`TCP_BOTH`), the only value without half-duplex.
    Both,
    /// 1: server to client only.
    ServerToClient,
    /// 2: client to server only.
    ClientToServer,
}

impl Direction {
    pub fn to_u32(self) -> u32 {
        match self {
            Self::Both => 0,
            Self::ServerToClient => 1,
            Self::ClientToServer => 2,
        }
    }

    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Both,
            1 => Self::ServerToClient,
            2 => Self::ClientToServer,
            _ => return None,
        })
    }
}

/// An `additional_connect` PACK: a further TCP connection for a session,
/// or a re-attach after the session's only one dropped (§6, §8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdditionalConnect {
    pub session_key: [u8; SESSION_KEY_LEN],
    pub client: ProductInfo,
}

impl AdditionalConnect {
    pub fn to_pack(&self) -> Pack {
        let mut p = Pack::new();
        p.add_str("method", "additional_connect")
            .add_data("session_key", &self.session_key)
            .add_str("client_str", &self.client.name)
            .add_int("client_ver", self.client.version)
            .add_int("client_build", self.client.build);
        p
    }

    /// Reads it (its `method` already checked); `session_key` must be 20 bytes.
    pub fn from_pack(p: &Pack) -> Result<Self, MessageError> {
        Ok(Self {
            session_key: fixed(p, "session_key")?,
            client: ProductInfo {
                name: p.get_str("client_str").unwrap_or("").to_owned(),
                version: p.get_int("client_ver").unwrap_or(0),
                build: p.get_int("client_build").unwrap_or(0),
            },
        })
    }
}

/// The answer that attaches an additional connection: `{error: 0, direction}`.
pub fn attach_reply(direction: Direction) -> Pack {
    let mut p = Pack::new();
    p.add_int("error", 0)
        .add_int("direction", direction.to_u32());
    p
}

/// What a PACK POST asks for, by its `method` (§5.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Login,
    AdditionalConnect,
    /// Any other method (`enum_hub`, `password`, `admin`, …), or none.
    Other(String),
}

impl Method {
    pub fn of(p: &Pack) -> Self {
        match p.get_str("method") {
            Some(m) if m.eq_ignore_ascii_case("login") => Self::Login,
            Some(m) if m.eq_ignore_ascii_case("additional_connect") => Self::AdditionalConnect,
            m => Self::Other(m.unwrap_or("").chars().take(32).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(auth: LoginAuth) -> Login {
        Login {
            hub: "VPN".into(),
            user: "alice".into(),
            auth,
            client: ProductInfo::softether_client(),
            unique_id: Some([3; 20]),
            options: SessionOptions::default(),
            hello_random: std::array::from_fn(|i| i as u8),
        }
    }

    #[test]
    fn login_round_trip_and_password_checks() {
        let stored = HashedPassword::new("alice", "secret");
        let random: [u8; 20] = std::array::from_fn(|i| i as u8);
        let l = login(LoginAuth::Password {
            secure_password: stored.secure_password(&random),
        });
        let p = l.to_pack();
        assert_eq!(Method::of(&p), Method::Login);
        let back = Login::from_pack(&Pack::decode(&p.to_bytes()).unwrap(), random).unwrap();
        assert_eq!(back, l);
        assert!(back.check_password(&stored));
        assert!(!back.check_password(&HashedPassword::new("alice", "Secret")));
        let mut other_random = back.clone();
        other_random.hello_random[0] ^= 1;
        assert!(!other_random.check_password(&stored));

        let plain = login(LoginAuth::PlainPassword {
            password: "secret".into(),
        });
        let back = Login::from_pack(&plain.to_pack(), random).unwrap();
        assert!(back.check_password(&stored));
        assert!(!login(LoginAuth::Anonymous).check_password(&stored));
        assert_eq!(
            format!("{:?}", plain.auth),
            "PlainPassword { .. }",
            "no password in logs"
        );
    }

    #[test]
    fn login_refusals() {
        let random = [0; 20];
        let mut p = login(LoginAuth::Anonymous).to_pack();
        p.add_int("authtype", 3);
        let e = Login::from_pack(&p, random).unwrap_err();
        assert_eq!(e, MessageError::UnsupportedAuth(3));
        assert_eq!(e.code(), ErrorCode::AuthTypeNotSupported);
        p.add_int("authtype", 1)
            .add_data("secure_password", &[1; 19]);
        assert_eq!(
            Login::from_pack(&p, random),
            Err(MessageError::Bad("secure_password"))
        );
        p.remove("hubname");
        p.add_data("secure_password", &[1; 20]);
        assert_eq!(
            Login::from_pack(&p, random),
            Err(MessageError::Missing("hubname"))
        );
    }

    #[test]
    fn welcome_round_trip_and_notes_fields() {
        let mut w = Welcome::new("SID-ALICE-1".into(), "CID-1".into(), [5; 20], 77);
        w.set_policy("NoBridge", 1);
        let p = w.to_pack();
        // The minimum of §10 step 6.
        for (name, v) in [
            ("max_connection", 1),
            ("use_encrypt", 1),
            ("use_compress", 0),
            ("half_connection", 0),
            ("timeout", 20_000),
            ("qos", 0),
            ("policy:Access", 1),
            ("policy:MaxConnection", 32),
            ("policy:TimeOut", 20),
            ("policy:Ver3", 1),
        ] {
            assert_eq!(p.get_int(name), Some(v), "{name}");
        }
        assert_eq!(p.get_str("session_name"), Some("SID-ALICE-1"));
        assert!(p.get("use_udp_acceleration").is_none());
        assert!(p.get("Redirect").is_none());
        let back = Welcome::from_pack(&Pack::decode(&p.to_bytes()).unwrap()).unwrap();
        assert_eq!(back, w);
        assert_eq!(back.policy("nobridge"), Some(1));
    }

    #[test]
    fn welcome_requirements_of_the_client() {
        let full = Welcome::new("S".into(), "C".into(), [5; 20], 0).to_pack();
        for (field, err) in [
            ("session_name", MessageError::Missing("session_name")),
            ("connection_name", MessageError::Missing("connection_name")),
            ("session_key", MessageError::Missing("session_key")),
            ("timeout", MessageError::Missing("timeout")),
        ] {
            let mut p = full.clone();
            p.remove(field);
            assert_eq!(Welcome::from_pack(&p), Err(err));
        }
        let mut p = full.clone();
        p.add_data("session_key", &[1; 21]);
        assert_eq!(
            Welcome::from_pack(&p),
            Err(MessageError::Bad("session_key"))
        );
        let mut p = full;
        p.add_int("timeout", 0);
        assert_eq!(Welcome::from_pack(&p), Err(MessageError::Bad("timeout")));
    }

    #[test]
    fn small_packs() {
        // §4.3: the refusal of a bad password, byte for byte.
        let p = error_pack(ErrorCode::AuthFailed);
        assert_eq!(p.to_bytes()[..8], [0, 0, 0, 2, 0, 0, 0, 6]);
        assert_eq!(pack_error(&p), Some(ErrorCode::AuthFailed));
        assert_eq!(pack_error(&noop_reply()), None);
        assert!(is_noop(&noop_reply()));
        let a = attach_reply(Direction::Both);
        assert_eq!((pack_error(&a), a.get_int("direction")), (None, Some(0)));
        let ac = AdditionalConnect {
            session_key: [9; 20],
            client: ProductInfo::softether_client(),
        };
        let p = ac.to_pack();
        assert_eq!(Method::of(&p), Method::AdditionalConnect);
        assert_eq!(AdditionalConnect::from_pack(&p).unwrap(), ac);
        let mut p = Pack::new();
        p.add_str("method", "enum_hub");
        assert_eq!(Method::of(&p), Method::Other("enum_hub".into()));
        let h = Hello {
            server: ProductInfo::softether_server(),
            random: [1; 20],
        };
        let mut p = h.to_pack();
        let mut pad = Padding::new(1);
        add_pencore(&mut p, &mut pad);
        add_pencore(&mut p, &mut pad);
        assert_eq!(p.elements().len(), 5, "pencore is never there twice");
        assert_eq!(Hello::from_pack(&p).unwrap(), h);
    }
}
