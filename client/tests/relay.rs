//! Relays against real servers on loopback.
//!
//! Each test starts what it needs on free ports with its own temporary
//! config, and stops it (by the PID it started) at the end:
//!
//! - a tokio TCP echo server stands in for the hub; every successful path
//!   echoes 1 MiB through the relay and compares it;
//! - squid (Debian `squid`) for HTTP CONNECT with Basic auth;
//! - dante (Debian `dante-server`, `danted`) for SOCKS5 with and without
//!   user/password, and SOCKS4a; the user/password tests create a system user
//!   (dante checks passwords against the system) and delete it afterwards;
//! - OpenSSH's sshd (Debian `openssh-server`) and ssh (`openssh-client`) for
//!   `ssh -W`.
//!
//! Tests that need root (sshd logging in as root, useradd) or a server that
//! is not installed skip with a printed reason; under `VHUB_TEST_STRICT=1`
//! (CI: root, every package installed) that is a failure.

use std::io::Write as _;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use client::relay::{connect, Relay, RelayError, Transport};
use test_support::{is_root, skip_or_fail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(20);
const ECHO_BYTES: usize = 1 << 20;

// ---------------------------------------------------------------- helpers --

/// Skips the calling test (returns false) when not root; a failure under
/// `VHUB_TEST_STRICT=1`.
fn need_root(test: &str) -> bool {
    test_support::require_root(test, "starts sshd or creates a system user")
}

/// The path of `name`; when it is missing, the test skips (a failure under
/// `VHUB_TEST_STRICT=1`, which CI sets: it installs every package).
fn need_binary(test: &str, name: &str, package: &str) -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return Some(path);
        }
    }
    skip_or_fail(
        test,
        &format!("{name} is missing (Debian package {package})"),
    );
    None
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temporary directory that daemons dropping privileges (squid as `proxy`,
/// dante as `nobody`) can enter and read.
fn temp_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("vhub-relay-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn write_file(path: &Path, contents: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A server process this test started; stopped (SIGTERM, then SIGKILL) by
/// its PID when dropped. Its stdout and stderr go to `log`, printed when the
/// test fails.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(name: &'static str, command: &mut Command, log: PathBuf) -> Daemon {
        let out = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon { name, child, log }
    }

    /// Waits until `port` accepts connections.
    async fn ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before listening:\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} does not listen on {port}:\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on the PID of our own child, not yet reaped.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ---\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// The stand-in hub: echoes every connection. Returns its port.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// Sends 1 MiB through `transport` while reading it back; checks every byte.
async fn echo_1mib(transport: Box<dyn Transport>) {
    let data: Vec<u8> = (0..ECHO_BYTES as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (mut r, mut w) = tokio::io::split(transport);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(16 * 1024) {
            w.write_all(chunk).await.unwrap();
        }
        w.flush().await.unwrap();
        w
    });
    let mut back = vec![0u8; ECHO_BYTES];
    tokio::time::timeout(TIMEOUT, r.read_exact(&mut back))
        .await
        .expect("1 MiB did not come back in time")
        .unwrap();
    let _w = writer.await.unwrap();
    assert!(back == data, "echoed bytes differ");
}

async fn relay_connect(relay: &Relay, port: u16) -> Result<Box<dyn Transport>, RelayError> {
    connect(relay, "127.0.0.1", port, TIMEOUT).await
}

fn parse(s: &str) -> Relay {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

// ------------------------------------------------------------ direct etc. --

#[tokio::test]
async fn direct_echoes() {
    let echo = echo_server().await;
    echo_1mib(relay_connect(&Relay::Direct, echo).await.unwrap()).await;
    let transport = connect(&Relay::Direct, "localhost", echo, TIMEOUT).await;
    // localhost may resolve to ::1 first; any address that works will do.
    if let Ok(t) = transport {
        echo_1mib(t).await;
    }
}

#[tokio::test]
async fn unreachable_proxy_is_named() {
    let port = free_port();
    let relay = parse(&format!("http://127.0.0.1:{port}"));
    let err = relay_connect(&relay, 443).await.err().unwrap();
    assert_eq!(
        err.to_string(),
        format!("cannot reach HTTP proxy 127.0.0.1:{port}: connection refused")
    );
    assert!(!err.is_auth_failure());
    let err = relay_connect(&Relay::Direct, port).await.err().unwrap();
    assert_eq!(
        err.to_string(),
        format!("cannot reach hub 127.0.0.1:{port}: connection refused")
    );
}

#[tokio::test]
async fn a_silent_relay_times_out() {
    // Accepts, reads, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    for relay in [
        format!("http://127.0.0.1:{port}"),
        format!("socks5://127.0.0.1:{port}"),
        format!("socks4a://127.0.0.1:{port}"),
    ] {
        let relay = parse(&relay);
        let started = Instant::now();
        let err = connect(&relay, "hub", 443, Duration::from_millis(300))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, RelayError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(
            err.to_string()
                .starts_with("no connection to hub hub:443 through "),
            "{err}"
        );
    }
}

// ------------------------------------------------------------------ squid --

const SQUID_USER: &str = "alice";
const SQUID_PASS: &str = "wonder:land@1";

struct Squid {
    port: u16,
    _daemon: Daemon,
    _dir: tempfile::TempDir,
}

async fn squid(test: &str) -> Option<Squid> {
    let squid = need_binary(test, "squid", "squid")?;
    let helper = Path::new("/usr/lib/squid/basic_ncsa_auth");
    if !helper.exists() {
        skip_or_fail(
            test,
            &format!("{} is missing (Debian package squid)", helper.display()),
        );
        return None;
    }
    let dir = temp_dir();
    let hash = Command::new("openssl")
        .args(["passwd", "-apr1", SQUID_PASS])
        .output()
        .expect("openssl (Debian package openssl) makes the htpasswd entry");
    assert!(hash.status.success());
    let hash = String::from_utf8(hash.stdout).unwrap();
    let passwd = dir.path().join("passwd");
    write_file(&passwd, &format!("{SQUID_USER}:{}\n", hash.trim()), 0o644);
    let port = free_port();
    let conf = dir.path().join("squid.conf");
    let d = dir.path().display();
    // Squid's stock config allows CONNECT to port 443 only (SSL_ports): this
    // one allows any unprivileged port, for authenticated users only.
    write_file(
        &conf,
        &format!(
            "http_port 127.0.0.1:{port}
pid_filename none
cache_log /dev/stderr
access_log none
cache deny all
cache_mem 0 MB
coredump_dir {d}
pinger_enable off
shutdown_lifetime 0 seconds
auth_param basic program {helper} {passwd}
auth_param basic realm vhub-relay-test
acl authed proxy_auth REQUIRED
acl CONNECT method CONNECT
acl test_ports port 1024-65535
http_access deny !CONNECT
http_access deny !test_ports
http_access allow authed
http_access deny all
",
            helper = helper.display(),
            passwd = passwd.display()
        ),
        0o644,
    );
    let mut daemon = Daemon::spawn(
        "squid",
        Command::new(squid).arg("-N").arg("-f").arg(&conf),
        dir.path().join("squid.log"),
    );
    daemon.ready(port).await;
    Some(Squid {
        port,
        _daemon: daemon,
        _dir: dir,
    })
}

fn squid_url(squid: &Squid, userinfo: &str) -> Relay {
    parse(&format!("http://{userinfo}127.0.0.1:{}", squid.port))
}

/// `wonder:land@1` percent-encoded: the parser must decode it.
const SQUID_USERINFO: &str = "alice:wonder%3Aland%401@";

#[tokio::test]
async fn http_connect_with_credentials_echoes() {
    let Some(squid) = squid("http_connect_with_credentials_echoes").await else {
        return;
    };
    let echo = echo_server().await;
    let relay = squid_url(&squid, SQUID_USERINFO);
    echo_1mib(relay_connect(&relay, echo).await.unwrap()).await;
}

#[tokio::test]
async fn http_connect_without_credentials_is_407() {
    let Some(squid) = squid("http_connect_without_credentials_is_407").await else {
        return;
    };
    let echo = echo_server().await;
    let err = relay_connect(&squid_url(&squid, ""), echo)
        .await
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        matches!(err, RelayError::HttpRefused { status: 407, .. }),
        "{text}"
    );
    assert!(err.is_auth_failure());
    assert!(
        text.starts_with(&format!(
            "HTTP proxy 127.0.0.1:{} refused CONNECT 127.0.0.1:{echo}: 407 Proxy Authentication Required (the proxy wants credentials",
            squid.port
        )),
        "{text}"
    );
    eprintln!("{text}");
}

#[tokio::test]
async fn http_connect_with_wrong_password_is_407() {
    let Some(squid) = squid("http_connect_with_wrong_password_is_407").await else {
        return;
    };
    let echo = echo_server().await;
    let err = relay_connect(&squid_url(&squid, "alice:wrong@"), echo)
        .await
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        matches!(err, RelayError::HttpRefused { status: 407, .. }),
        "{text}"
    );
    assert!(err.is_auth_failure());
    assert!(
        text.contains("(the proxy rejected the credentials of user alice)"),
        "{text}"
    );
    assert!(!text.contains("wrong"), "password leaked: {text}");
}

#[tokio::test]
async fn http_connect_to_a_closed_port_carries_the_proxy_status() {
    let Some(squid) = squid("http_connect_to_a_closed_port_carries_the_proxy_status").await else {
        return;
    };
    let closed = free_port();
    let err = relay_connect(&squid_url(&squid, SQUID_USERINFO), closed)
        .await
        .err()
        .unwrap();
    let text = err.to_string();
    let RelayError::HttpRefused {
        status,
        body_excerpt,
        ..
    } = &err
    else {
        panic!("{text}")
    };
    assert!(matches!(status, 502 | 503), "{text}");
    assert!(body_excerpt.contains("Connection refused"), "{text}");
    assert!(!err.is_auth_failure());
    eprintln!("{text}");
}

// ------------------------------------------------------------------ dante --

enum SocksAuth {
    None,
    Username,
}

async fn dante(test: &str, auth: SocksAuth) -> Option<(u16, Daemon, tempfile::TempDir)> {
    let danted = need_binary(test, "danted", "dante-server")?;
    let dir = temp_dir();
    let port = free_port();
    let method = match auth {
        SocksAuth::None => "none",
        SocksAuth::Username => "username",
    };
    // As root, dante needs a privileged user to read /etc/shadow for
    // "username" and an unprivileged one for the rest.
    let users = if is_root() {
        "user.privileged: root\nuser.unprivileged: nobody\n"
    } else {
        ""
    };
    let conf = dir.path().join("danted.conf");
    write_file(
        &conf,
        &format!(
            "logoutput: stderr
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
socksmethod: {method}
clientmethod: none
{users}client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
"
        ),
        0o644,
    );
    let mut daemon = Daemon::spawn(
        "danted",
        Command::new(danted)
            .arg("-f")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path().join("danted.pid")),
        dir.path().join("danted.log"),
    );
    daemon.ready(port).await;
    Some((port, daemon, dir))
}

/// A system user for dante's "username" method; deleted when dropped.
struct SystemUser {
    name: String,
}

/// useradd/userdel lock /etc/passwd: one at a time within this binary.
static USERS: Mutex<()> = Mutex::new(());

impl SystemUser {
    fn create(password: &str) -> SystemUser {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "vhubrelay{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let _lock = USERS.lock().unwrap_or_else(|e| e.into_inner());
        let useradd = need_binary("SystemUser", "useradd", "passwd").unwrap();
        let status = Command::new(useradd)
            .args([
                "-M",
                "-N",
                "-s",
                "/usr/sbin/nologin",
                "-c",
                "vhub relay test",
            ])
            .arg(&name)
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name}");
        let user = SystemUser { name };
        let mut chpasswd = Command::new(need_binary("SystemUser", "chpasswd", "passwd").unwrap())
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(chpasswd.stdin.take().unwrap(), "{}:{password}", user.name).unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd");
        user
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _lock = USERS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// Has ':', '@' and a space: the URL must percent-encode them.
const SOCKS_PASS: &str = "s3cret:@ pw";
const SOCKS_PASS_ENCODED: &str = "s3cret%3A%40%20pw";

#[tokio::test]
async fn socks5_without_auth_echoes_and_passes_the_name() {
    let test = "socks5_without_auth_echoes_and_passes_the_name";
    let Some((port, _daemon, _dir)) = dante(test, SocksAuth::None).await else {
        return;
    };
    let echo = echo_server().await;
    let relay = parse(&format!("socks5h://127.0.0.1:{port}"));
    echo_1mib(relay_connect(&relay, echo).await.unwrap()).await;
    // A host name goes as ATYP=domain; dante (external 127.0.0.1) resolves it.
    echo_1mib(connect(&relay, "localhost", echo, TIMEOUT).await.unwrap()).await;
}

#[tokio::test]
async fn socks5_target_refused_is_reply_5() {
    let test = "socks5_target_refused_is_reply_5";
    let Some((port, _daemon, _dir)) = dante(test, SocksAuth::None).await else {
        return;
    };
    let closed = free_port();
    let relay = parse(&format!("socks5://127.0.0.1:{port}"));
    let err = relay_connect(&relay, closed).await.err().unwrap();
    assert!(
        matches!(err, RelayError::Socks5Refused { code: 5, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("SOCKS5 proxy 127.0.0.1:{port} could not connect to 127.0.0.1:{closed}: connection refused by the target (SOCKS5 reply 0x05)")
    );
    assert!(!err.is_auth_failure());
}

#[tokio::test]
async fn socks5_user_password_echoes() {
    let test = "socks5_user_password_echoes";
    if !need_root(test) {
        return;
    }
    let user = SystemUser::create(SOCKS_PASS);
    let Some((port, _daemon, _dir)) = dante(test, SocksAuth::Username).await else {
        return;
    };
    let echo = echo_server().await;
    let relay = parse(&format!(
        "socks5://{}:{SOCKS_PASS_ENCODED}@127.0.0.1:{port}",
        user.name
    ));
    echo_1mib(relay_connect(&relay, echo).await.unwrap()).await;

    // The same server without credentials: no acceptable method.
    let relay = parse(&format!("socks5://127.0.0.1:{port}"));
    let err = relay_connect(&relay, echo).await.err().unwrap();
    assert!(
        matches!(err, RelayError::SocksNoAcceptableMethod { .. }),
        "{err}"
    );
    assert!(err.is_auth_failure());
}

#[tokio::test]
async fn socks5_wrong_password_is_auth_failure() {
    let test = "socks5_wrong_password_is_auth_failure";
    if !need_root(test) {
        return;
    }
    let user = SystemUser::create(SOCKS_PASS);
    let Some((port, _daemon, _dir)) = dante(test, SocksAuth::Username).await else {
        return;
    };
    let echo = echo_server().await;
    let relay = parse(&format!("socks5://{}:nope@127.0.0.1:{port}", user.name));
    let err = relay_connect(&relay, echo).await.err().unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "SOCKS5 proxy 127.0.0.1:{port}: authentication failed (user {})",
            user.name
        )
    );
    assert!(err.is_auth_failure());
}

/// Dante speaks SOCKS4 but not 4a (it takes 0.0.0.1 literally): this covers
/// the IPv4-literal path and refusals; `ssh_dynamic_forward_speaks_socks4a_and_socks5`
/// covers host names.
#[tokio::test]
async fn socks4_via_dante_echoes_and_reports_refusal() {
    let test = "socks4_via_dante_echoes_and_reports_refusal";
    let Some((port, _daemon, _dir)) = dante(test, SocksAuth::None).await else {
        return;
    };
    let echo = echo_server().await;
    let relay = parse(&format!("socks4a://someone@127.0.0.1:{port}"));
    echo_1mib(relay_connect(&relay, echo).await.unwrap()).await;
    let closed = free_port();
    let err = relay_connect(&relay, closed).await.err().unwrap();
    assert!(
        matches!(err, RelayError::Socks4Refused { code: 0x5B, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("SOCKS4a proxy 127.0.0.1:{port} could not connect to 127.0.0.1:{closed}: request rejected or failed (SOCKS4 reply 0x5b)")
    );
}

// -------------------------------------------------------------------- ssh --

struct Sshd {
    port: u16,
    dir: tempfile::TempDir,
    _daemon: Daemon,
}

impl Sshd {
    fn key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A relay that logs in as root with `key`, ignoring host keys.
    fn relay(&self, key: &Path) -> Relay {
        let mut relay = parse(&format!("ssh://root@127.0.0.1:{}", self.port));
        let Relay::Ssh { extra_args, .. } = &mut relay else {
            unreachable!()
        };
        extra_args.extend(
            [
                "-i",
                key.to_str().unwrap(),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-F",
                "/dev/null",
            ]
            .map(String::from),
        );
        relay
    }
}

fn ssh_keygen(path: &Path) {
    let keygen = need_binary("ssh_keygen", "ssh-keygen", "openssh-client").unwrap();
    let status = Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen {}", path.display());
}

async fn sshd(test: &str) -> Option<Sshd> {
    if !need_root(test) {
        return None;
    }
    let sshd = need_binary(test, "sshd", "openssh-server")?;
    need_binary(test, "ssh", "openssh-client")?;
    // sshd refuses to start without its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let dir = temp_dir();
    let p = |name: &str| dir.path().join(name);
    ssh_keygen(&p("host_key"));
    ssh_keygen(&p("client_key"));
    ssh_keygen(&p("wrong_key"));
    std::fs::copy(p("client_key.pub"), p("authorized_keys")).unwrap();
    let port = free_port();
    // StrictModes off: the files live under /tmp (world-writable).
    write_file(
        &p("sshd_config"),
        &format!(
            "ListenAddress 127.0.0.1:{port}
HostKey {host_key}
AuthorizedKeysFile {authorized}
PidFile {pid}
PermitRootLogin prohibit-password
AllowTcpForwarding yes
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
",
            host_key = p("host_key").display(),
            authorized = p("authorized_keys").display(),
            pid = p("sshd.pid").display(),
        ),
        0o600,
    );
    let mut daemon = Daemon::spawn(
        "sshd",
        Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(p("sshd_config")),
        p("sshd.log"),
    );
    daemon.ready(port).await;
    Some(Sshd {
        port,
        dir,
        _daemon: daemon,
    })
}

#[tokio::test]
async fn ssh_relay_echoes() {
    let Some(sshd) = sshd("ssh_relay_echoes").await else {
        return;
    };
    let echo = echo_server().await;
    let relay = sshd.relay(&sshd.key());
    echo_1mib(relay_connect(&relay, echo).await.unwrap()).await;
}

#[tokio::test]
async fn ssh_wrong_key_is_permission_denied() {
    let Some(sshd) = sshd("ssh_wrong_key_is_permission_denied").await else {
        return;
    };
    let echo = echo_server().await;
    let relay = sshd.relay(&sshd.dir.path().join("wrong_key"));
    let err = relay_connect(&relay, echo).await.err().unwrap();
    let text = err.to_string();
    assert!(matches!(err, RelayError::SshExited { .. }), "{text}");
    assert!(
        text.starts_with("ssh to 127.0.0.1 exited with status 255: ")
            && text.contains("Permission denied (publickey)"),
        "{text}"
    );
    assert!(err.is_auth_failure());
    eprintln!("{text}");
}

#[tokio::test]
async fn ssh_forward_refused_surfaces_on_first_read() {
    let Some(sshd) = sshd("ssh_forward_refused_surfaces_on_first_read").await else {
        return;
    };
    let relay = sshd.relay(&sshd.key());
    // Authentication succeeds, so connect returns; the relay's refusal to
    // open the forward then ends ssh, and the read says why.
    let text = match relay_connect(&relay, free_port()).await {
        Err(err) => err.to_string(),
        Ok(mut transport) => {
            let _ = transport.write_all(b"\x16\x03\x01").await;
            let mut buf = [0u8; 16];
            match tokio::time::timeout(TIMEOUT, transport.read(&mut buf))
                .await
                .expect("read did not end")
            {
                Ok(n) => panic!("read returned {n} bytes instead of an error"),
                Err(e) => {
                    assert!(
                        e.get_ref().is_some_and(|inner| inner.is::<RelayError>()),
                        "{e:?}"
                    );
                    e.to_string()
                }
            }
        }
    };
    assert!(
        text.contains("exited with status 255") && text.contains("Connection refused"),
        "{text}"
    );
    eprintln!("{text}");
}

/// PIDs of our own `ssh` children whose command line contains `needle`.
fn our_ssh_children(needle: &str) -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces, so split after ')'.
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let ppid = after.split_whitespace().nth(1);
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if ppid == Some(me.as_str()) && cmdline.starts_with("ssh ") && cmdline.contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test]
async fn ssh_exiting_mid_stream_ends_the_read() {
    let Some(sshd) = sshd("ssh_exiting_mid_stream_ends_the_read").await else {
        return;
    };
    let echo = echo_server().await;
    let relay = sshd.relay(&sshd.key());
    let mut transport = relay_connect(&relay, echo).await.unwrap();
    transport.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    transport.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");

    let pids = our_ssh_children(&format!("127.0.0.1:{echo}"));
    assert_eq!(pids.len(), 1, "our ssh child: {pids:?}");
    // SAFETY: kill(2) on the ssh process this test's connect started.
    assert_eq!(unsafe { libc::kill(pids[0], libc::SIGKILL) }, 0);

    let ended = tokio::time::timeout(Duration::from_secs(10), transport.read(&mut buf))
        .await
        .expect("read still blocked after ssh died");
    match ended {
        Ok(0) => {}
        Ok(n) => panic!("read {n} bytes after ssh died"),
        Err(e) => {
            assert!(e.to_string().contains("exited with signal 9"), "{e}");
            eprintln!("{e}");
        }
    }
}

#[tokio::test]
async fn dropping_the_ssh_transport_kills_ssh() {
    let Some(sshd) = sshd("dropping_the_ssh_transport_kills_ssh").await else {
        return;
    };
    let echo = echo_server().await;
    let relay = sshd.relay(&sshd.key());
    let transport = relay_connect(&relay, echo).await.unwrap();
    let needle = format!("127.0.0.1:{echo}");
    assert_eq!(our_ssh_children(&needle).len(), 1);
    drop(transport);
    let deadline = Instant::now() + Duration::from_secs(5);
    // Killed and reaped by the transport's reaper task.
    while !our_ssh_children(&needle).is_empty() {
        assert!(Instant::now() < deadline, "ssh still running after drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With the user's ssh config multiplexing (ControlMaster/ControlPath), ssh
/// does not authenticate, so `connect` must recognise the mux client's own
/// success line instead.
#[tokio::test]
async fn ssh_through_a_multiplexing_master() {
    let test = "ssh_through_a_multiplexing_master";
    let Some(sshd) = sshd(test).await else {
        return;
    };
    let ssh = need_binary(test, "ssh", "openssh-client").unwrap();
    let socket = sshd.dir.path().join("mux");
    let mut master = Daemon::spawn(
        "ssh -M",
        Command::new(ssh)
            .args(["-M", "-N", "-S"])
            .arg(&socket)
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
            .args([
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-F",
                "/dev/null",
                "-i",
            ])
            .arg(sshd.key())
            .args(["-p", &sshd.port.to_string(), "-l", "root", "127.0.0.1"]),
        sshd.dir.path().join("ssh-M.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "no mux socket");
        assert!(master.child.try_wait().unwrap().is_none(), "ssh -M exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No key given: only the master can get us through.
    let mut relay = parse(&format!("ssh://root@127.0.0.1:{}", sshd.port));
    let Relay::Ssh { extra_args, .. } = &mut relay else {
        unreachable!()
    };
    extra_args.extend(
        [
            "-o",
            "ControlMaster=no",
            "-S",
            socket.to_str().unwrap(),
            "-F",
            "/dev/null",
        ]
        .map(String::from),
    );
    let echo = echo_server().await;
    echo_1mib(relay_connect(&relay, echo).await.unwrap()).await;
    // A refused forward through the master ends ssh before its marker.
    let err = relay_connect(&relay, free_port()).await.err().unwrap();
    assert!(
        err.to_string().contains("Stdio forwarding request failed"),
        "{err}"
    );
    eprintln!("{err}");
}

/// OpenSSH's `ssh -D` is a second SOCKS implementation, and unlike dante it
/// resolves SOCKS4a names.
#[tokio::test]
async fn ssh_dynamic_forward_speaks_socks4a_and_socks5() {
    let test = "ssh_dynamic_forward_speaks_socks4a_and_socks5";
    let Some(sshd) = sshd(test).await else {
        return;
    };
    let ssh = need_binary(test, "ssh", "openssh-client").unwrap();
    let port = free_port();
    let mut daemon = Daemon::spawn(
        "ssh -D",
        Command::new(ssh)
            .args([
                "-N",
                "-o",
                "BatchMode=yes",
                "-o",
                "ExitOnForwardFailure=yes",
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-F", "/dev/null", "-i"])
            .arg(sshd.key())
            .args(["-p", &sshd.port.to_string(), "-l", "root"])
            .args(["-D", &format!("127.0.0.1:{port}"), "127.0.0.1"]),
        sshd.dir.path().join("ssh-D.log"),
    );
    daemon.ready(port).await;
    let echo = echo_server().await;
    for relay in [
        format!("socks4a://127.0.0.1:{port}"),
        format!("socks5://127.0.0.1:{port}"),
    ] {
        let relay = parse(&relay);
        echo_1mib(connect(&relay, "localhost", echo, TIMEOUT).await.unwrap()).await;
        echo_1mib(relay_connect(&relay, echo).await.unwrap()).await;
    }
}

// ---------------------------------------------------------------- parsing --

#[test]
fn parses_every_form() {
    let some = |u: &str, p: &str| Some((u.to_owned(), p.to_owned()));
    let cases: Vec<(&str, Relay)> = vec![
        ("direct", Relay::Direct),
        (" DIRECT ", Relay::Direct),
        (
            "http://proxy.example:3128",
            Relay::Http {
                host: "proxy.example".into(),
                port: 3128,
                auth: None,
            },
        ),
        (
            "http://alice:s%40cr%3At%25@10.0.0.1:8080/",
            Relay::Http {
                host: "10.0.0.1".into(),
                port: 8080,
                auth: some("alice", "s@cr:t%"),
            },
        ),
        (
            "http://bob@[2001:db8::7]:3128",
            Relay::Http {
                host: "2001:db8::7".into(),
                port: 3128,
                auth: some("bob", ""),
            },
        ),
        (
            // An unencoded '@' in the password: the last '@' ends the user part.
            "socks5://carol:p@ss@socks.example:1080",
            Relay::Socks5 {
                host: "socks.example".into(),
                port: 1080,
                auth: some("carol", "p@ss"),
            },
        ),
        (
            "socks5h://[::1]:1080",
            Relay::Socks5 {
                host: "::1".into(),
                port: 1080,
                auth: None,
            },
        ),
        (
            "SOCKS5://d%C3%A9ja:vu@h:1",
            Relay::Socks5 {
                host: "h".into(),
                port: 1,
                auth: some("déja", "vu"),
            },
        ),
        (
            "socks4a://me@s4.example:1080",
            Relay::Socks4a {
                host: "s4.example".into(),
                port: 1080,
                user: Some("me".into()),
            },
        ),
        (
            "socks4a://127.0.0.1:9050",
            Relay::Socks4a {
                host: "127.0.0.1".into(),
                port: 9050,
                user: None,
            },
        ),
        (
            "ssh://relay.example",
            Relay::Ssh {
                host: "relay.example".into(),
                port: None,
                user: None,
                extra_args: vec![],
            },
        ),
        (
            "ssh://root@[fe80::1]:2222",
            Relay::Ssh {
                host: "fe80::1".into(),
                port: Some(2222),
                user: Some("root".into()),
                extra_args: vec![],
            },
        ),
        (
            "ssh://my_jump-host",
            Relay::Ssh {
                host: "my_jump-host".into(),
                port: None,
                user: None,
                extra_args: vec![],
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(parse(input), want, "{input}");
    }
}

#[test]
fn bad_inputs_name_the_accepted_forms() {
    for (input, problem) in [
        ("", "no scheme"),
        ("proxy:3128", "no scheme"),
        ("ftp://h:21", "unknown scheme \"ftp\""),
        ("https://h:443", "(https://) are not supported"),
        ("socks4://h:1080", "use socks4a://"),
        ("http://h", "has no port"),
        ("socks5://h", "has no port"),
        ("http://h:0", "is not a port"),
        ("http://h:65536", "is not a port"),
        ("http://h:port", "is not a port"),
        ("http://:3128", "the host is empty"),
        ("http://::1:3128", "put IPv6 addresses in brackets"),
        ("http://[::1:3128", "without ']'"),
        ("http://[nothost]:3128", "is not an IPv6 address"),
        ("http://[::1]x:3128", "after ']'"),
        ("http://h:3128/path", "no path"),
        ("http://h:3128?x", "no path"),
        ("http://h st:3128", "is not a host name"),
        ("ssh://-relay", "must not start with '-'"),
        ("ssh://-oProxyCommand=x", "is not a host name"),
        ("http://@h:3128", "user name before '@' is empty"),
        ("http://a:b%zz@h:3128", "password: '%' must be followed"),
        (
            "http://a%ff:b@h:3128",
            "user name: percent-encoded bytes are not UTF-8",
        ),
        ("http://a:b%00@h:3128", "NUL"),
        ("socks4a://a:b@h:1", "SOCKS4a has a user id but no password"),
        ("ssh://a:b@h", "ssh:// takes no password"),
    ] {
        let err = input.parse::<Relay>().unwrap_err();
        let text = err.to_string();
        assert!(err.problem().contains(problem), "{input}: {text}");
        assert!(text.contains("accepted forms: direct, http://"), "{text}");
        assert!(text.contains("ssh://[USER@]HOST[:PORT]"), "{text}");
    }
    let long = "x".repeat(256);
    let err = format!("socks5://{long}:pw@h:1")
        .parse::<Relay>()
        .unwrap_err();
    assert!(err.problem().contains("at most 255 bytes"), "{err}");
}

#[test]
fn errors_never_quote_the_password() {
    let err = "http://alice:hunter2@h:3128/x"
        .parse::<Relay>()
        .unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("http://alice:***@h:3128/x"), "{text}");
    assert!(!format!("{err:?}").contains("hunter2"));
}

#[test]
fn display_and_debug_redact_passwords() {
    let relay = parse("http://alice:hunter2@proxy:3128");
    assert_eq!(relay.to_string(), "http://alice:***@proxy:3128");
    let debug = format!("{relay:?}");
    assert_eq!(
        debug,
        "Http { host: \"proxy\", port: 3128, auth: Some((\"alice\", \"***\")) }"
    );
    let relay = parse("socks5://a%3Ab:p%40ss@[::1]:1080");
    assert_eq!(relay.to_string(), "socks5://a%3Ab:***@[::1]:1080");
    assert!(!format!("{relay:?}").contains("p@ss"));
    assert!(!format!("{relay:#?}").contains("p@ss"));
    for (input, shown) in [
        ("direct", "direct"),
        ("http://proxy:3128", "http://proxy:3128"),
        ("http://bob@proxy:3128", "http://bob@proxy:3128"),
        ("socks5h://u:p@h:1", "socks5://u:***@h:1"),
        ("socks4a://me@h:1080", "socks4a://me@h:1080"),
        ("ssh://root@relay:2222", "ssh://root@relay:2222"),
        ("ssh://[::1]", "ssh://[::1]"),
    ] {
        assert_eq!(parse(input).to_string(), shown, "{input}");
    }
    // What Display prints parses back to the same relay (password aside).
    for input in ["socks4a://m%40e@[::1]:1080", "ssh://u@relay", "http://h:1"] {
        let relay = parse(input);
        assert_eq!(parse(&relay.to_string()), relay);
    }
}
