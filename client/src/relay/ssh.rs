//! OpenSSH as a relay: `ssh … -W HUBHOST:HUBPORT HOST`, the stream on its
//! stdin/stdout.
//!
//! Running the user's `ssh` (rather than an SSH library) means their
//! `~/.ssh/config`, keys, agent, `known_hosts` and jump hosts all apply.
//!
//! How success is known: ssh prints nothing on stdout until the hub speaks,
//! and in TLS the client speaks first. So ssh runs with `-v`, and [`connect`]
//! returns when stderr shows one of two lines:
//! - `Authenticated to HOST (…)`: a new connection, the relay accepted the
//!   user;
//! - `mux_client_request_stdio_fwd: master session id: N`: the user's ssh
//!   config multiplexes (`ControlMaster`/`ControlPath`) and an existing master
//!   opened the forward (no authentication happens, so no first line).
//!
//! If ssh exits first, its last non-debug stderr lines become a
//! [`RelayError::SshExited`]. If the relay then fails to open the forward
//! ("channel 0: open failed: connect failed: …"), ssh exits and the first
//! read returns that error (an `io::Error` wrapping `SshExited`). When the
//! user's own arguments silence ssh (`-q`, `-E`, `LogLevel`), `connect`
//! cannot see the markers and returns once ssh has started; failures then
//! surface on the first read the same way.
//!
//! The child is killed when the transport (or an unfinished `connect`) is
//! dropped.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{oneshot, watch};

use super::{RelayError, Target};

/// The program run; found on `PATH`.
const SSH: &str = "ssh";
/// Stderr lines kept for error messages.
const TAIL_LINES: usize = 6;
/// Characters kept of one stderr line.
const LINE_CHARS: usize = 300;
/// After ssh's stdout ends, how long a read waits for ssh's exit status (to
/// tell a clean end from a failure) before it reports a plain end of file.
const EXIT_WAIT: Duration = Duration::from_secs(2);
/// After ssh exits, how long to wait for the rest of its stderr.
const STDERR_DRAIN: Duration = Duration::from_secs(1);

pub(crate) struct SshSpec<'a> {
    pub(crate) host: &'a str,
    pub(crate) port: Option<u16>,
    pub(crate) user: Option<&'a str>,
    pub(crate) extra_args: &'a [String],
}

/// The command line, without the program name, and whether ssh will print
/// the success markers that `connect` waits for.
pub(crate) fn command_args(spec: &SshSpec<'_>, target: &Target) -> (Vec<String>, bool) {
    let mentions = |needle: &str| {
        spec.extra_args
            .iter()
            .any(|a| a.to_ascii_lowercase().contains(needle))
    };
    let mut args = Vec::new();
    // vnic runs unattended: a password or host-key prompt would hang until
    // the timeout, so fail at once unless the user decided otherwise.
    if !mentions("batchmode") {
        args.extend(["-o".to_owned(), "BatchMode=yes".to_owned()]);
    }
    let silenced = mentions("loglevel")
        || spec
            .extra_args
            .iter()
            .any(|a| a == "-q" || a.starts_with("-E"));
    if !silenced {
        // Debug level: the mux marker is a debug line. The noise stays in
        // our pipe (and in `tracing` at debug level).
        args.push("-v".to_owned());
    }
    if let Some(port) = spec.port {
        args.extend(["-p".to_owned(), port.to_string()]);
    }
    if let Some(user) = spec.user {
        args.extend(["-l".to_owned(), user.to_owned()]);
    }
    args.extend(spec.extra_args.iter().cloned());
    args.extend(["-W".to_owned(), target.to_string()]);
    // "--": a host can never be taken for an option.
    args.extend(["--".to_owned(), spec.host.to_owned()]);
    (args, !silenced)
}

/// What the ssh child is doing, as seen from its stderr and exit.
#[derive(Clone, Debug)]
enum Phase {
    Starting,
    /// A success marker was seen: authenticated, or the mux master opened
    /// the forward.
    Ready,
    Exited {
        status: String,
        success: bool,
    },
}

/// Spawns ssh and waits for a success marker on its stderr (or its exit).
pub(crate) async fn connect(
    spec: &SshSpec<'_>,
    relay: &str,
    target: &Target,
) -> Result<SshTransport, RelayError> {
    let (args, wait_for_marker) = command_args(spec, target);
    tracing::debug!(?args, "relay: running ssh");
    let mut child = Command::new(SSH)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Backstop: if the reaper task is dropped with the runtime, the
        // child dies with it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| RelayError::SshSpawn {
            relay: relay.to_owned(),
            error,
        })?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        unreachable!("all three pipes were requested");
    };

    let (phase_tx, mut phase) = watch::channel(Phase::Starting);
    let phase_tx = Arc::new(phase_tx);
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let stderr_task = tokio::spawn(read_stderr(stderr, phase_tx.clone(), tail.clone()));
    let (kill, kill_rx) = oneshot::channel::<()>();
    // The reaper owns the child: it waits for the exit (publishing it), or
    // kills ssh when `kill` is dropped with the transport.
    tokio::spawn(async move {
        let status = tokio::select! {
            status = child.wait() => status,
            _ = kill_rx => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        let _ = tokio::time::timeout(STDERR_DRAIN, stderr_task).await;
        phase_tx.send_replace(exited(status));
    });

    let transport = SshTransport {
        stdout,
        stdin: Some(stdin),
        phase: phase.clone(),
        tail,
        relay: relay.to_owned(),
        eof: Eof::NotYet,
        _kill: kill,
    };
    if !wait_for_marker {
        return Ok(transport);
    }
    loop {
        // Cloned: the guard must not be held while `exit_error` borrows too.
        let current = phase.borrow_and_update().clone();
        match current {
            Phase::Starting => {}
            Phase::Ready => return Ok(transport),
            // Even a clean exit is a failure here: there is no stream.
            Phase::Exited { .. } => return Err(transport.exit_error(false).expect("exited")),
        }
        if phase.changed().await.is_err() {
            // Unreachable in practice: the reaper publishes an exit before
            // it drops its sender.
            return Err(RelayError::SshExited {
                relay: relay.to_owned(),
                status: "an unknown status".to_owned(),
                messages: String::new(),
            });
        }
    }
}

fn exited(status: io::Result<ExitStatus>) -> Phase {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => Phase::Exited {
            status: match (status.code(), status.signal()) {
                (Some(code), _) => format!("status {code}"),
                (None, Some(signal)) => format!("signal {signal}"),
                (None, None) => status.to_string(),
            },
            success: status.success(),
        },
        Err(e) => Phase::Exited {
            status: format!("an unknown status ({e})"),
            success: false,
        },
    }
}

/// Keeps the last meaningful stderr lines and spots the success markers.
/// Debug lines (ssh runs with `-v`), the version banner and the known-hosts
/// notice are traced but not kept for error messages.
async fn read_stderr(
    stderr: ChildStderr,
    phase: Arc<watch::Sender<Phase>>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(stderr);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match lines.read_until(b'\n', &mut raw).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end();
        if line.starts_with("debug") {
            tracing::trace!(target: "vnic::relay::ssh", "{line}");
        } else {
            tracing::debug!(target: "vnic::relay::ssh", "{line}");
        }
        // "Authenticated to HOST ([ADDR]:PORT) using "publickey"." (OpenSSH
        // ≥ 7.7); older releases: "debug1: Authentication succeeded (…)".
        // Through a multiplexing master: "debug1:
        // mux_client_request_stdio_fwd: master session id: 2".
        if line.starts_with("Authenticated to ")
            || line.contains("Authentication succeeded")
            || line.contains("mux_client_request_stdio_fwd: master session id")
        {
            phase.send_if_modified(|p| match p {
                Phase::Starting => {
                    *p = Phase::Ready;
                    true
                }
                _ => false,
            });
            continue;
        }
        if line.is_empty()
            || line.starts_with("debug")
            || line.starts_with("OpenSSH_")
            || line.starts_with("Warning: Permanently added")
        {
            continue;
        }
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.chars().take(LINE_CHARS).collect());
    }
}

enum Eof {
    NotYet,
    /// stdout ended: waiting (bounded) for the exit status.
    Waiting(Pin<Box<dyn Future<Output = ()> + Send>>),
    Done,
}

/// ssh's stdout and stdin as one stream.
pub(crate) struct SshTransport {
    stdout: ChildStdout,
    /// `None` after `shutdown`: closing the pipe makes ssh send EOF upstream.
    stdin: Option<ChildStdin>,
    phase: watch::Receiver<Phase>,
    tail: Arc<Mutex<VecDeque<String>>>,
    relay: String,
    eof: Eof,
    /// Dropping it tells the reaper to kill ssh.
    _kill: oneshot::Sender<()>,
}

impl SshTransport {
    /// `SshExited` if ssh has exited (with a failure, if `only_failure`).
    fn exit_error(&self, only_failure: bool) -> Option<RelayError> {
        match &*self.phase.borrow() {
            Phase::Exited { status, success } if !(only_failure && *success) => {
                Some(RelayError::SshExited {
                    relay: self.relay.clone(),
                    status: status.clone(),
                    messages: self
                        .tail
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join("; "),
                })
            }
            _ => None,
        }
    }
}

impl AsyncRead for SshTransport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Eof::NotYet = this.eof {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.stdout).poll_read(cx, buf))?;
            if buf.filled().len() > before || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let mut phase = this.phase.clone();
            this.eof = Eof::Waiting(Box::pin(async move {
                let _ = tokio::time::timeout(
                    EXIT_WAIT,
                    phase.wait_for(|p| matches!(p, Phase::Exited { .. })),
                )
                .await;
            }));
        }
        if let Eof::Waiting(wait) = &mut this.eof {
            ready!(wait.as_mut().poll(cx));
            this.eof = Eof::Done;
        }
        match this.exit_error(true) {
            Some(error) => Poll::Ready(Err(io::Error::other(error))),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for SshTransport {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some(stdin) = this.stdin.as_mut() else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "write after shutdown",
            )));
        };
        match ready!(Pin::new(stdin).poll_write(cx, buf)) {
            // A broken pipe means ssh is gone: say why, if it said.
            Err(e) => Poll::Ready(Err(this.exit_error(true).map_or(e, io::Error::other))),
            ok => Poll::Ready(ok),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(stdin) = self.stdin.as_mut() {
            ready!(Pin::new(stdin).poll_flush(cx))?;
        }
        self.stdin = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str], port: Option<u16>, user: Option<&str>) -> (Vec<String>, bool) {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let spec = SshSpec {
            host: "relay.example",
            port,
            user,
            extra_args: &extra,
        };
        command_args(&spec, &Target::new("hub", 8443).unwrap())
    }

    #[test]
    fn default_command_line() {
        let (args, wait) = args(&[], Some(2222), Some("alice"));
        assert_eq!(
            args.join(" "),
            "-o BatchMode=yes -v -p 2222 -l alice -W hub:8443 -- relay.example"
        );
        assert!(wait);
    }

    #[test]
    fn user_choices_win() {
        let (a, wait) = args(&["-o", "batchmode=no", "-i", "/k"], None, None);
        assert_eq!(
            a.join(" "),
            "-v -o batchmode=no -i /k -W hub:8443 -- relay.example"
        );
        assert!(wait);
        for quiet in [&["-q"][..], &["-o", "LogLevel=ERROR"], &["-E", "/tmp/log"]] {
            let (a, wait) = args(quiet, None, None);
            assert!(!a.iter().any(|x| x == "-v"), "{a:?}");
            assert!(!wait);
        }
        let (a, _) = args(&[], None, None);
        let w = a.iter().position(|x| x == "-W").unwrap();
        assert_eq!(a[w + 1], "hub:8443");
        let spec = SshSpec {
            host: "r",
            port: None,
            user: None,
            extra_args: &[],
        };
        let (a, _) = command_args(&spec, &Target::new("::1", 443).unwrap());
        assert!(a.contains(&"[::1]:443".to_owned()));
    }
}
