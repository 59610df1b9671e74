//! Shared setup for the hub's integration tests: a real hub on loopback
//! with a freshly generated certificate.

#![allow(dead_code)]

use std::sync::Arc;

use certs::tls::{self, TlsOptions};
use certs::{CertParams, Identity};
use hub::auth::{AuthResult, Authenticator};
pub use hub::net::IoBackend;
use hub::server::{self, HubSettings, Server, Settings};

/// Runs each test `fn NAME(backend: IoBackend)` named in the list on the
/// epoll and the io_uring backend, as `epoll::NAME` and `uring::NAME`;
/// where io_uring is blocked (containers' default seccomp profile) the
/// io_uring ones skip, saying why — or fail under `VHUB_TEST_STRICT=1`
/// (see the `test-support` crate). `IoBackend` must be in scope.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod epoll {
            $( #[test] fn $name() { super::$name(super::IoBackend::Epoll) } )*
        }
        mod uring {
            $(
                #[test]
                fn $name() {
                    if let Err(e) = hub::net::uring::probe() {
                        test_support::skip_or_fail(
                            concat!("uring::", stringify!($name)),
                            &format!(
                                "io_uring is not available here ({e}): a container's default \
                                 seccomp profile blocks it; CI runs with it"
                            ),
                        );
                        return;
                    }
                    super::$name(super::IoBackend::Uring)
                }
            )*
        }
    };
}

/// Users for tests: alice/secret on DEFAULT, bob/hunter2 on OTHER.
pub struct TestUsers;

impl Authenticator for TestUsers {
    fn authenticate(&self, hub: &str, user: &str, password: &str) -> AuthResult {
        match (hub, user, password) {
            ("DEFAULT", "alice", "secret") | ("OTHER", "bob", "hunter2") => AuthResult::Ok,
            ("DEFAULT", "alice", _) | ("OTHER", "bob", _) => AuthResult::BadPassword,
            _ => AuthResult::UnknownUser,
        }
    }
    /// alice and bob log in from SoftEther with the same passwords.
    fn authenticate_softether(
        &self,
        hub: &str,
        user: &str,
        secure_password: &[u8; 20],
        server_random: &[u8; 20],
    ) -> AuthResult {
        use switch_core::softether::password::verify_secure_password;
        use switch_core::softether::HashedPassword;
        let password = match (hub, user) {
            ("DEFAULT", "alice") => "secret",
            ("OTHER", "bob") => "hunter2",
            _ => return AuthResult::UnknownUser,
        };
        let stored = HashedPassword::new(user, password);
        if verify_secure_password(&stored, server_random, secure_password) {
            AuthResult::Ok
        } else {
            AuthResult::BadPassword
        }
    }
    fn user_exists(&self, hub: &str, user: &str) -> bool {
        matches!((hub, user), ("DEFAULT", "alice") | ("OTHER", "bob"))
    }
}

pub struct TestHub {
    pub server: Option<Server>,
    pub identity: Identity,
}

impl TestHub {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }
    pub fn shard_addr(&self, i: usize) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().shard_addrs()[i]
    }
    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

/// Two hubs: DEFAULT (password: alice/secret, or anonymous when
/// `anonymous`) and OTHER (bob/hunter2). Each shard on its own port.
/// Runs on the epoll backend; see [`start_hub_on`] and [`start_hub_spec`].
pub fn start_hub(shards: usize, anonymous: bool, tweak: impl FnOnce(&mut Settings)) -> TestHub {
    start_hub_on(IoBackend::Epoll, shards, anonymous, tweak)
}

/// As [`start_hub`], on the given I/O backend.
pub fn start_hub_on(
    backend: IoBackend,
    shards: usize,
    anonymous: bool,
    tweak: impl FnOnce(&mut Settings),
) -> TestHub {
    start_hub_spec(
        HubSpec {
            backend,
            shards,
            anonymous,
            ..HubSpec::default()
        },
        tweak,
    )
}

/// Everything about a test hub that is not a [`Settings`] field.
pub struct HubSpec {
    pub backend: IoBackend,
    pub shards: usize,
    pub anonymous: bool,
    /// The hub's cipher settings.
    pub tls: TlsOptions,
    /// The hub's certificate; a fresh one when `None`.
    pub identity: Option<Identity>,
    /// Ask clients for a certificate issued by the CAs in this PEM file.
    pub client_ca: Option<std::path::PathBuf>,
    /// The user store; [`TestUsers`] when `None`.
    pub auth: Option<Arc<dyn Authenticator>>,
}

impl Default for HubSpec {
    fn default() -> Self {
        Self {
            backend: IoBackend::Epoll,
            shards: 1,
            anonymous: false,
            tls: TlsOptions::default(),
            identity: None,
            client_ca: None,
            auth: None,
        }
    }
}

/// Starts a hub as [`start_hub`] does, with every choice in `spec`.
pub fn start_hub_spec(spec: HubSpec, tweak: impl FnOnce(&mut Settings)) -> TestHub {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("hub=debug")
        .try_init();
    let identity = match spec.identity {
        Some(id) => id,
        None => Identity::generate(&CertParams::default()).expect("certificate"),
    };
    let mut settings = Settings::for_tests(spec.shards);
    settings.backend = spec.backend;
    settings.distinct_ports = true;
    settings.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    settings.hubs = vec![
        HubSettings {
            name: "DEFAULT".into(),
            anonymous: spec.anonymous,
            softether: true,
            max_sessions: 0,
            max_macs: 0,
        },
        HubSettings {
            name: "OTHER".into(),
            anonymous: false,
            softether: true,
            max_sessions: 0,
            max_macs: 0,
        },
    ];
    tweak(&mut settings);
    let ctx = tls::server_context_with_client_ca(&identity, &spec.tls, spec.client_ca.as_deref())
        .expect("TLS context");
    let page = server::front_page(
        &settings.name,
        &identity.fingerprint().to_string(),
        &settings.hubs,
    );
    let server = server::start(
        settings,
        ctx,
        identity.cert_pem(),
        page,
        spec.auth.unwrap_or_else(|| Arc::new(TestUsers)),
    )
    .expect("hub starts");
    TestHub {
        server: Some(server),
        identity,
    }
}

// ----------------------------------------------------------------------
// Metrics: a plain-HTTP GET and a reader for single series.
// ----------------------------------------------------------------------

impl TestHub {
    /// The metrics listener (always on in tests).
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.server().metrics_addr().expect("metrics listener")
    }

    /// `GET /metrics` in the classic text format.
    pub fn scrape(&self) -> String {
        let (status, _, body) = http_get(self.metrics_addr(), "/metrics", &[]);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// One series of the current metrics, e.g. `vhub_frames_total{direction="in"}`.
    pub fn metric(&self, series: &str) -> f64 {
        metric(&self.scrape(), series)
    }
}

/// A plain-HTTP/1.1 GET (the metrics listener): status, head, body.
pub fn http_get(addr: std::net::SocketAddr, path: &str, headers: &[&str]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (status, head.to_owned(), body.to_owned())
}

/// The value of one series (name with its labels exactly as exported) in
/// a text exposition; panics, showing the text, when it is absent.
pub fn metric(text: &str, series: &str) -> f64 {
    try_metric(text, series).unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

pub fn try_metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// Runs `promtool check metrics` on `text`; Err with its complaints.
pub fn promtool_check(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Waits until `f` holds, up to `timeout`; returns whether it did.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

use std::time::Duration;

// ----------------------------------------------------------------------
// A healthy pair of sessions that must keep working through a test.
// ----------------------------------------------------------------------

/// Two sessions of alice on DEFAULT that have learned each other's MAC.
pub struct Pair {
    pub a: TestClient,
    pub b: TestClient,
    round: u32,
}

pub const PAIR_A: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
pub const PAIR_B: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 2];

impl Pair {
    pub fn new(addr: std::net::SocketAddr) -> Pair {
        Self::on(addr, "DEFAULT", ("alice", "secret"))
    }

    /// A pair on virtual hub `hub`, logged in as `user`.
    pub fn on(addr: std::net::SocketAddr, hub: &str, user: (&str, &str)) -> Pair {
        let mut p = Pair {
            a: TestClient::connect(addr, hub, Some(user)).expect("a connects"),
            b: TestClient::connect(addr, hub, Some(user)).expect("b connects"),
            round: 0,
        };
        p.check("at the start");
        p
    }

    /// A unicast each way; panics saying `when` if one does not arrive.
    pub fn check(&mut self, when: &str) {
        const T: Duration = Duration::from_secs(10);
        self.round += 1;
        let payload = format!("round {}", self.round);
        let to_b = frame(PAIR_B, PAIR_A, payload.as_bytes());
        let to_a = frame(PAIR_A, PAIR_B, payload.as_bytes());
        let (na, nb) = (self.a.received.len(), self.b.received.len());
        self.a.send(&to_b);
        self.a.pump().expect("healthy a pumps");
        assert!(receives(&mut self.b, nb, &to_b, T), "a → b {when}");
        self.b.send(&to_a);
        self.b.pump().expect("healthy b pumps");
        assert!(receives(&mut self.a, na, &to_a, T), "b → a {when}");
    }

    /// Pumps both (answers keep-alives, reads what waits).
    pub fn pump(&mut self) {
        self.a.pump().expect("healthy a pumps");
        self.b.pump().expect("healthy b pumps");
    }
}

/// Pumps `c` until `f` is among the frames it received after the first
/// `from` (other frames, such as floods, may come first).
pub fn receives(c: &mut TestClient, from: usize, f: &[u8], timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if c.received[from..].iter().any(|r| r == f) {
            return true;
        }
        if std::time::Instant::now() > deadline || c.pump().is_err() {
            return c.received[from..].iter().any(|r| r == f);
        }
    }
}

/// Queues many frames on `c`, pumping whenever its retransmit buffer is
/// half full (in frames or bytes), so none is refused; returns how many
/// were sent.
pub fn send_many(c: &mut TestClient, frames: impl IntoIterator<Item = Vec<u8>>) -> usize {
    let cfg = c.session.config().clone();
    let mut n = 0;
    for f in frames {
        let per_frame = f.len() as u64 + 4;
        let max = (cfg.max_buffered_frames as u64 / 2)
            .min(cfg.max_buffered_bytes as u64 / 2 / per_frame)
            .max(1);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while c.session.buffered_frames() >= max {
            c.pump().expect("sender pumps");
            assert!(
                std::time::Instant::now() < deadline,
                "the hub stopped acknowledging"
            );
        }
        c.send(&f);
        n += 1;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.session.buffered_frames() > 0 {
        c.pump().expect("sender pumps");
        assert!(
            std::time::Instant::now() < deadline,
            "the hub stopped acknowledging"
        );
    }
    n
}

use vhub_bench::client::{frame, TestClient};

// ----------------------------------------------------------------------
// A raw TLS client: real TLS, but bytes chosen by the test.
// ----------------------------------------------------------------------

/// A TCP connection with client-side TLS (no verification) through which a
/// test sends exactly the plaintext it wants — or broken ciphertext.
pub struct RawTls {
    pub stream: std::net::TcpStream,
    pub tls: certs::tls::TlsConn,
    /// Plaintext received and not yet consumed by the test.
    pub plain: Vec<u8>,
    /// The peer closed (EOF, reset, or TLS close_notify).
    pub closed: bool,
}

impl RawTls {
    /// TCP connect and a complete TLS handshake.
    pub fn connect(addr: std::net::SocketAddr) -> std::io::Result<RawTls> {
        Self::connect_with(addr, &TlsOptions::default())
    }

    pub fn connect_with(addr: std::net::SocketAddr, opts: &TlsOptions) -> std::io::Result<RawTls> {
        use std::io::{Read, Write};
        let ctx = tls::client_context(&tls::Verify::Insecure, opts).expect("client context");
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_millis(20)))?;
        let mut tls = certs::tls::TlsConn::client(&ctx, None).expect("TLS client");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let done = tls.handshake().map_err(std::io::Error::other)?;
            let mut out = Vec::new();
            tls.take_ciphertext(&mut out);
            stream.write_all(&out)?;
            if done {
                break;
            }
            match stream.read(&mut buf) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => tls.feed(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
            if std::time::Instant::now() > deadline {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
        }
        Ok(RawTls {
            stream,
            tls,
            plain: Vec::new(),
            closed: false,
        })
    }

    /// The ciphertext of `plain`, not yet sent.
    pub fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        self.tls.write_plaintext(plain).expect("encrypt");
        let mut out = Vec::new();
        self.tls.take_ciphertext(&mut out);
        out
    }

    /// Encrypts and sends `plain`.
    pub fn send(&mut self, plain: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let c = self.seal(plain);
        self.stream.write_all(&c)
    }

    /// Reads what arrives within ~20 ms into `self.plain`. Returns false
    /// once the hub has closed the connection.
    pub fn pump(&mut self) -> bool {
        use std::io::Read;
        if self.closed {
            return false;
        }
        let mut buf = vec![0u8; 256 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.tls.feed_eof();
                self.closed = true;
            }
            Ok(n) => self.tls.feed(&buf[..n]),
            Err(e) if is_timeout(&e) => return true,
            Err(_) => {
                self.tls.feed_eof();
                self.closed = true;
            }
        }
        match self.tls.read_plaintext(&mut self.plain) {
            Ok(st) if st.closed => self.closed = true,
            Ok(_) => {}
            Err(_) => self.closed = true,
        }
        !self.closed
    }

    /// Reads until the hub closes the connection or `timeout` passes;
    /// returns whether it closed.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.pump() {
            if std::time::Instant::now() > deadline {
                return false;
            }
        }
        true
    }

    /// Sends an HTTP request head and reads the whole answer: the hub
    /// closes the connection after every answer but a `101`.
    pub fn request(&mut self, head: &str) -> HttpAnswer {
        self.send(head.as_bytes()).expect("send the request");
        self.read_answer()
    }

    /// Reads one HTTP answer (head and `Content-Length` body).
    pub fn read_answer(&mut self) -> HttpAnswer {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(a) = HttpAnswer::parse(&self.plain) {
                self.plain.drain(..a.len);
                return a;
            }
            if !self.pump() && HttpAnswer::parse(&self.plain).is_none() {
                panic!(
                    "connection closed before a complete answer: {:?}",
                    String::from_utf8_lossy(&self.plain)
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no answer within 10 s: {:?}",
                String::from_utf8_lossy(&self.plain)
            );
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// An HTTP answer read by [`RawTls::read_answer`].
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
    /// Bytes of head and body.
    pub len: usize,
}

impl HttpAnswer {
    fn parse(buf: &[u8]) -> Option<HttpAnswer> {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let body_len = if status == 101 {
            0
        } else {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0)
        };
        let body = buf.get(end..end + body_len)?;
        Some(HttpAnswer {
            status,
            head,
            body: String::from_utf8_lossy(body).into_owned(),
            len: end + body_len,
        })
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// An upgrade request head for `hub` with alice's credentials and `extra`
/// header lines (each without CRLF).
pub fn upgrade_head(hub: &str, upgrade: &str, extra: &[&str]) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:secret");
    let mut h = format!(
        "GET /vhub/{hub} HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: {upgrade}\r\nAuthorization: Basic {auth}\r\n"
    );
    for e in extra {
        h.push_str(e);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h
}

// ----------------------------------------------------------------------
// The real `vhub` binary.
// ----------------------------------------------------------------------

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// `vhub` running as a child process; killed when dropped.
pub struct Vhub {
    pub child: std::process::Child,
    pub listen: std::net::SocketAddr,
    pub metrics: std::net::SocketAddr,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Vhub {
    /// Starts `vhub ARGS --listen … --metrics-listen …` on free ports.
    /// Does not wait: see [`Vhub::wait_ready`].
    pub fn spawn(args: &[&str]) -> Vhub {
        Self::spawn_via(&[], args)
    }

    /// As [`Vhub::spawn`], started through `wrapper` (e.g. `taskset -c 1`).
    pub fn spawn_via(wrapper: &[&str], args: &[&str]) -> Vhub {
        use std::io::BufRead;
        let (listen, metrics) = (free_addr(), free_addr());
        let bin = env!("CARGO_BIN_EXE_vhub");
        let mut cmd = match wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = std::process::Command::new(prog);
                c.args(rest).arg(bin);
                c
            }
            None => std::process::Command::new(bin),
        };
        let mut child = cmd
            .args(args)
            .args(["--listen", &listen.to_string()])
            .args(["--metrics-listen", &metrics.to_string()])
            .env("NO_COLOR", "1")
            .env_remove("VHUB_CONFIG")
            .env_remove("VHUB_CERT_DIR")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start vhub");
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let (pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                println!("vhub: {line}");
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Vhub {
            child,
            listen,
            metrics,
            stderr,
        }
    }

    /// Waits until `/readyz` answers 200; panics with the log if vhub
    /// exits or does not get ready within 20 s.
    pub fn wait_ready(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("vhub exited with {status}:\n{}", self.log());
            }
            if std::net::TcpStream::connect(self.metrics).is_ok()
                && http_get(self.metrics, "/readyz", &[]).0 == 200
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "vhub not ready in 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What vhub logged so far (ANSI colours removed).
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends a signal (SIGTERM, SIGINT).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Vhub {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `vhub ARGS` to completion (subcommands): exit code, stdout, stderr.
pub fn vhub(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vhub"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("VHUB_CONFIG")
        .env_remove("VHUB_CERT_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run vhub");
    let (o, e) = (
        strip_ansi(&String::from_utf8_lossy(&out.stdout)),
        strip_ansi(&String::from_utf8_lossy(&out.stderr)),
    );
    println!("$ vhub {}\n{o}{e}", args.join(" "));
    (out.status.code().unwrap_or(-1), o, e)
}

/// Removes ANSI colour sequences (tracing colours its output).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ params letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs a command with a time limit; stdout and stderr together.
pub fn run_with_timeout(
    cmd: &mut std::process::Command,
    timeout: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    use std::io::Read;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let (mut o, mut e) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let to = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = o.read_to_end(&mut s);
        s
    });
    let te = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = e.read_to_end(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::from_utf8_lossy(&to.join().unwrap()).into_owned();
    out.push_str(&String::from_utf8_lossy(&te.join().unwrap()));
    (status, out)
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}
