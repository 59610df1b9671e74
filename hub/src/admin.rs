//! The local admin API behind `vhub ctl`: one JSON request per line on a
//! Unix socket, one JSON answer per line.
//!
//! ```text
//!  vhub ctl ──► admin.sock (0600) ──► admin thread ──► Control::Snapshot ──► shard N
//!                                          │          ◄── Vec<SessionInfo> ──┘
//!                                          ├─► hub fabric lock (MAC table, briefly)
//!                                          └─► Reloader (config + users file)
//! ```
//!
//! Off the public port by construction: a Unix socket is reachable only
//! from this host, and its mode (0600, made under a umask so it is never
//! wider) leaves it to the hub's own user and root. The API runs on its
//! own thread; it reads sessions by asking each shard through its control
//! queue (the shard answers between rounds of frames), so it takes no lock
//! that the frame path holds, except each hub's fabric lock, once, for the
//! MAC table.
//!
//! Requests: `{"cmd":"sessions"}`, `{"cmd":"macs"}`, `{"cmd":"hubs"}`,
//! `{"cmd":"kick","session":"ID"}`, `{"cmd":"reload"}`. Answers:
//! `{"ok":true,…}` or `{"ok":false,"error":"…"}`.
//!
//! `{"cmd":"capture","hub":"H"[,"session":"ID","count":N,"snaplen":N,"filter":"BPF"]}`
//! answers one line, then (if ok) streams pcapng on the same connection
//! until the count is reached or the client hangs up ([`crate::capture`]).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switch_core::fabric::PortKind;
use switch_core::wire::http::SessionToken;
use switch_core::wire::CloseCode;
use tracing::{info, warn};

use crate::capture;
use crate::switchboard::{Control, SessionEntry, Switchboard};

/// One session, as `vhub ctl sessions` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionInfo {
    /// The first 4 bytes of the session token in hex: enough to name a
    /// session, useless for resuming it (the token is 16 bytes).
    pub id: String,
    pub hub: String,
    /// Empty for an anonymous session.
    pub user: String,
    /// What the client speaks: `vhub` (`vhub/1`) or `softether`.
    #[serde(default)]
    pub protocol: String,
    pub remote: String,
    pub shard: u16,
    pub slot: u32,
    /// `attached`, `detached` (waiting for a resume) or `closing`.
    pub state: String,
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub macs: usize,
}

/// One MAC table entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MacInfo {
    pub hub: String,
    pub mac: String,
    /// The session behind the port, `bridge:<interface>` for a MAC behind
    /// the hub's local bridge, or `?` if its port ended a moment ago.
    pub session: String,
    pub age_seconds: u32,
}

/// One virtual hub.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HubInfo {
    pub name: String,
    /// False after a reload removed it from the config.
    pub enabled: bool,
    pub anonymous: bool,
    pub sessions: i64,
    pub detached: i64,
    pub macs: usize,
    /// The hub's local bridge to a host network, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<BridgeInfo>,
}

/// A virtual hub's local bridge, as `vhub ctl hubs` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BridgeInfo {
    /// The Linux bridge.
    pub interface: String,
    /// The hub's TAP device on it (empty in packet mode).
    pub tap: String,
    pub mode: String,
    /// `up`, `waiting: …` (the Linux bridge is missing), `down: …`.
    pub state: String,
    pub shard: u16,
    /// MACs learned behind the bridge, and its cap.
    pub macs: usize,
    pub max_macs: u32,
    /// Frames from the host network, to it, and dropped on the way to it.
    pub frames_in: u64,
    pub frames_out: u64,
    pub dropped: u64,
}

/// What a reload did, or why it was refused.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadReport {
    /// False: nothing was applied; `errors` says why.
    pub ok: bool,
    pub errors: Vec<String>,
    /// What changed and took effect.
    pub applied: Vec<String>,
    /// Changes in the file that the running hub cannot take: they wait
    /// for a restart.
    pub needs_restart: Vec<String>,
    /// Sessions closed because their user or hub is no longer allowed.
    pub closed_sessions: usize,
}

/// A request, as the socket receives it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    Sessions,
    Macs,
    Hubs,
    Kick {
        session: String,
    },
    Reload,
    /// Streams pcapng after a one-line answer (see [`crate::capture`]).
    Capture {
        hub: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snaplen: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<String>,
    },
}

/// Runs a reload (owned by `main`, which knows the config file and flags).
pub type ReloadFn = Arc<dyn Fn() -> ReloadReport + Send + Sync>;

/// How long the API waits for a shard to answer a snapshot.
const SHARD_ANSWER: Duration = Duration::from_secs(5);

/// Every session of every shard, sorted by hub, user, id.
pub fn sessions(sb: &Switchboard) -> Vec<SessionInfo> {
    let (tx, rx) = std::sync::mpsc::channel();
    for mb in &sb.mailboxes {
        mb.control.push(Control::Snapshot(tx.clone()));
        mb.wake();
    }
    drop(tx);
    let deadline = Instant::now() + SHARD_ANSWER;
    let mut all = Vec::new();
    for _ in 0..sb.mailboxes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) => all.extend(v),
            Err(_) => break, // a shard that is stopping does not answer
        }
    }
    all.sort_by(|a, b| (&a.hub, &a.user, &a.id).cmp(&(&b.hub, &b.user, &b.id)));
    all
}

/// The MAC tables of every hub, sorted by hub and MAC.
pub fn macs(sb: &Switchboard) -> Vec<MacInfo> {
    // (shard, slot) → session id, from the registry (not the frame path).
    let ids: HashMap<(u16, u32), String> = sb
        .sessions
        .lock()
        .iter()
        .map(|(t, e)| ((e.shard, e.slot), t.short()))
        .collect();
    let now = Instant::now();
    let mut out = Vec::new();
    for h in &sb.hubs {
        let fabric = h.fabric.lock();
        let bridge = h
            .bridge
            .lock()
            .as_ref()
            .map(|b| b.settings.interface.clone());
        for (mac, port, age) in fabric.entries(now) {
            let session = match fabric.port(port) {
                Some(p) if p.kind == PortKind::Bridge => {
                    format!("bridge:{}", bridge.as_deref().unwrap_or("?"))
                }
                p => p
                    .and_then(|p| ids.get(&(p.loc.shard, p.loc.slot)))
                    .cloned()
                    .unwrap_or_else(|| "?".into()),
            };
            out.push(MacInfo {
                hub: h.name().to_owned(),
                mac: mac.to_string(),
                session,
                age_seconds: age,
            });
        }
    }
    out.sort_by(|a, b| (&a.hub, &a.mac).cmp(&(&b.hub, &b.mac)));
    out
}

/// The virtual hubs with their session and MAC counts.
pub fn hubs(sb: &Switchboard) -> Vec<HubInfo> {
    sb.hubs
        .iter()
        .filter(|h| h.in_use())
        .map(|h| {
            // Before the MAC count: both take the fabric lock, one at a time.
            let bridge = bridge_info(h);
            let macs = h.fabric.lock().mac_count();
            HubInfo {
                name: h.name().to_owned(),
                enabled: h.enabled.load(Ordering::Acquire),
                anonymous: h.anonymous.load(Ordering::Relaxed),
                sessions: sb.metrics.sessions_by_hub[h.index].load(Ordering::Relaxed),
                detached: sb.metrics.detached_by_hub[h.index].load(Ordering::Relaxed),
                macs,
                bridge,
            }
        })
        .collect()
}

/// A hub's local bridge: settings, state, counters, and the MACs behind
/// its port (one look at the fabric, under its lock).
fn bridge_info(h: &crate::switchboard::VirtualHub) -> Option<BridgeInfo> {
    let b = h.bridge.lock().clone()?;
    let macs = {
        let fabric = h.fabric.lock();
        fabric
            .ports()
            .filter(|(_, p)| p.kind == PortKind::Bridge)
            .map(|(id, _)| fabric.port_mac_count(id))
            .sum()
    };
    let (frames_in, frames_out, dropped) = b.counters();
    let state = b.state.lock().clone();
    let s = &b.settings;
    Some(BridgeInfo {
        interface: s.interface.clone(),
        tap: match s.mode {
            crate::config::BridgeMode::Tap => s.tap.clone(),
            crate::config::BridgeMode::Packet => String::new(),
        },
        mode: s.mode.as_str().into(),
        state,
        shard: b.shard,
        macs,
        max_macs: s.max_macs,
        frames_in,
        frames_out,
        dropped,
    })
}

/// Ends the session whose id (or a longer hex prefix of its token) is
/// `id`, with a CLOSE "kicked by an administrator". Returns the full
/// short id of the session.
pub fn kick(sb: &Switchboard, id: &str) -> Result<String, String> {
    let (token, _) = find_session(sb, id, None)?;
    if sb.kick(&token, CloseCode::Kicked, "kicked by an administrator") {
        Ok(token.short())
    } else {
        Err(format!(
            "session {} ended before it could be kicked",
            token.short()
        ))
    }
}

/// The one session whose token starts with the hex digits `id` (the ID
/// column of `vhub ctl sessions`, or more of the token), on virtual hub
/// `hub` if given; a clear error for a malformed, unknown or ambiguous id.
pub fn find_session(
    sb: &Switchboard,
    id: &str,
    hub: Option<usize>,
) -> Result<(SessionToken, SessionEntry), String> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{id:?} is not a session id: use the ID column of `vhub ctl sessions` (8 hex digits)"
        ));
    }
    let mut matches: Vec<_> = sb
        .sessions
        .lock()
        .iter()
        .filter(|(t, e)| hub.is_none_or(|h| e.hub == h) && hex(&t.0).starts_with(&id))
        .map(|(t, e)| (*t, e.clone()))
        .collect();
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(format!("no session {id} (see `vhub ctl sessions`)")),
        n => Err(format!(
            "{n} sessions start with {id}: give more hex digits"
        )),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Answers one request line.
pub fn handle(sb: &Switchboard, reload: &ReloadFn, line: &str) -> serde_json::Value {
    use serde_json::json;
    let req: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => {
            return json!({"ok": false, "error": format!("bad request: {e}; expected e.g. {{\"cmd\":\"sessions\"}}")})
        }
    };
    match req {
        Request::Sessions => json!({"ok": true, "sessions": sessions(sb)}),
        Request::Macs => json!({"ok": true, "macs": macs(sb)}),
        Request::Hubs => json!({"ok": true, "hubs": hubs(sb)}),
        Request::Kick { session } => match kick(sb, &session) {
            Ok(id) => json!({"ok": true, "kicked": id}),
            Err(e) => json!({"ok": false, "error": e}),
        },
        Request::Capture { .. } => {
            json!({"ok": false, "error": "a capture streams: it needs a connection of its own"})
        }
        Request::Reload => {
            let r = reload();
            let mut v = serde_json::to_value(&r).unwrap_or_default();
            if !r.ok {
                v["error"] = json!(format!("reload refused: {}", r.errors.join("; ")));
            }
            v
        }
    }
}

/// The running admin API; [`AdminServer::shutdown`] stops it and removes
/// the socket file.
pub struct AdminServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_now();
        }
    }
}

/// Binds `path` (mode 0600) and serves the API on a thread of its own.
/// A socket file left by a hub that died is replaced; one that a running
/// hub answers on is an error (two hubs on one state directory).
pub fn serve(path: &Path, sb: Arc<Switchboard>, reload: ReloadFn) -> std::io::Result<AdminServer> {
    use std::io::{Error, ErrorKind};
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(Error::new(
                ErrorKind::AddrInUse,
                format!(
                    "{}: another vhub answers on this admin socket (set admin_socket to another path, or \"off\")",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path).map_err(|e| {
            Error::new(
                e.kind(),
                format!(
                    "{}: cannot remove a stale admin socket: {e}",
                    path.display()
                ),
            )
        })?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // The socket is created with the umask's mode: make it 0600 from the
    // start (no window where it is wider). The umask is process-wide; at
    // this point nothing else in the hub creates files.
    // SAFETY: umask(2) only swaps the process's file-creation mask.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener =
        bound.map_err(|e| Error::new(e.kind(), format!("admin socket {}: {e}", path.display())))?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    match conn {
                        Ok(c) => {
                            let (sb, reload) = (sb.clone(), reload.clone());
                            // One thread per client: a stuck client must not block `ctl`.
                            let _ = std::thread::Builder::new()
                                .name("admin-conn".into())
                                .spawn(move || serve_conn(c, &sb, &reload));
                        }
                        Err(e) => {
                            warn!("admin socket accept failed: {e}");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })?
    };
    info!(socket = %path.display(), "admin API listening (vhub ctl)");
    Ok(AdminServer {
        path: path.to_owned(),
        stop,
        thread: Some(thread),
    })
}

/// Longest request line accepted.
const MAX_REQUEST: u64 = 4096;

fn serve_conn(conn: UnixStream, sb: &Switchboard, reload: &ReloadFn) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(std::io::Read::take(conn, MAX_REQUEST * 64));
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let answer = if line.len() as u64 > MAX_REQUEST {
            serde_json::json!({"ok": false, "error": "request too long"})
        } else if let Ok(Request::Capture {
            hub,
            session,
            count,
            snaplen,
            filter,
        }) = serde_json::from_str(line.trim())
        {
            let req = capture::Request {
                hub,
                session,
                count,
                snaplen,
                filter,
            };
            return serve_capture(sb, &req, out);
        } else {
            handle(sb, reload, line.trim())
        };
        let mut text = answer.to_string();
        text.push('\n');
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

/// `{"cmd":"capture",…}`: one answer line, then pcapng until the count is
/// reached or the reader hangs up.
fn serve_capture(sb: &Switchboard, req: &capture::Request, mut out: UnixStream) {
    let mut running = match capture::start(sb, req) {
        Ok(r) => r,
        Err(e) => {
            let answer = serde_json::json!({"ok": false, "error": e});
            let _ = writeln!(out, "{answer}");
            return;
        }
    };
    if writeln!(out, "{}", serde_json::json!({"ok": true})).is_err() {
        return;
    }
    info!(hub = %req.hub, session = ?req.session, filter = ?req.filter, "capture started");
    let end = running.stream(sb, out);
    info!(
        hub = %req.hub,
        frames = running.written,
        dropped = running.dropped(),
        "capture ended ({})",
        match end {
            capture::End::Count => "count reached",
            capture::End::Reader => "the reader went away",
        }
    );
}

/// Client side: sends one request and reads one answer line.
pub fn request(path: &Path, req: &Request) -> Result<serde_json::Value, ClientError> {
    // A reload reads the users file and may take a moment; sessions wait
    // for every shard.
    let (answer, _) = send(path, req, Some(Duration::from_secs(60)))?;
    Ok(answer)
}

/// Client side of a capture: sends the request, reads the answer line and,
/// if it says ok, copies the stream that follows into `sink` (flushed after
/// each read, so a pipe reader sees frames at once) until the hub ends it.
pub fn request_stream(
    path: &Path,
    req: &Request,
    sink: &mut dyn Write,
) -> Result<serde_json::Value, ClientError> {
    let (answer, mut reader) = send(path, req, None)?;
    if answer["ok"].as_bool() != Some(true) {
        return Ok(answer);
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match std::io::Read::read(&mut reader, &mut buf) {
            Ok(0) => return Ok(answer),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ClientError::Io(path.to_owned(), e)),
        };
        if let Err(e) = sink.write_all(&buf[..n]).and_then(|()| sink.flush()) {
            // The reader of our output went away (tcpdump -c, a closed
            // pipe): that ends the capture, not an error.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(answer);
            }
            return Err(ClientError::Output(e));
        }
    }
}

/// Connects, sends `req` and reads the answer line; returns it with the
/// reader (positioned after the line).
fn send(
    path: &Path,
    req: &Request,
    timeout: Option<Duration>,
) -> Result<(serde_json::Value, BufReader<UnixStream>), ClientError> {
    use std::io::ErrorKind;
    let mut s = UnixStream::connect(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => ClientError::NoSocket(path.to_owned()),
        ErrorKind::ConnectionRefused => ClientError::NotRunning(path.to_owned()),
        ErrorKind::PermissionDenied => ClientError::Permission(path.to_owned()),
        _ => ClientError::Io(path.to_owned(), e),
    })?;
    s.set_read_timeout(timeout)
        .map_err(|e| ClientError::Io(path.to_owned(), e))?;
    let mut text = serde_json::to_string(req).expect("a request serializes");
    text.push('\n');
    s.write_all(text.as_bytes())
        .map_err(|e| ClientError::Io(path.to_owned(), e))?;
    let mut line = String::new();
    let mut reader = BufReader::new(s);
    reader
        .read_line(&mut line)
        .map_err(|e| ClientError::Io(path.to_owned(), e))?;
    if line.is_empty() {
        return Err(ClientError::Io(
            path.to_owned(),
            std::io::Error::new(ErrorKind::UnexpectedEof, "the hub closed the connection"),
        ));
    }
    let answer = serde_json::from_str(&line).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
    Ok((answer, reader))
}

/// Why `vhub ctl` could not talk to the hub.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no admin socket at {0}: is vhub running? (its admin_socket setting, or pass --socket PATH)")]
    NoSocket(PathBuf),
    #[error(
        "nothing answers on {0}: vhub is not running (the socket file is left from an earlier run)"
    )]
    NotRunning(PathBuf),
    #[error("permission denied on {0}: run vhub ctl as the hub's user (e.g. `sudo -u vhub vhub ctl …`) or as root")]
    Permission(PathBuf),
    #[error("admin socket {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("the hub sent an answer that is not JSON: {0}")]
    BadAnswer(String),
    #[error("writing the capture: {0}")]
    Output(std::io::Error),
}
