//! A server `TlsConn` on a real socket against Debian's `openssl s_client`
//! (the system OpenSSL 3.0): the presets negotiate what they promise with
//! a TLS stack that is not ours, and refuse what they exclude.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use certs::tls::{server_context, TlsConn, TlsError, TlsInfo, TlsOptions};
use certs::{CertParams, Identity};

fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::generate(&CertParams::default()).unwrap())
}

/// Sends whatever ciphertext the session has.
fn flush(conn: &mut TlsConn, tcp: &mut TcpStream, buf: &mut Vec<u8>) {
    buf.clear();
    conn.take_ciphertext(buf);
    if !buf.is_empty() {
        // The peer may already be gone after a failed handshake.
        let _ = tcp.write_all(buf);
    }
}

/// Serves one connection with a blocking read/write loop around a server
/// `TlsConn`: handshake, a greeting, then read until the client closes.
fn serve_one(listener: TcpListener, opts: TlsOptions) -> Result<TlsInfo, TlsError> {
    let ctx = server_context(identity(), &opts).unwrap();
    let (mut tcp, _) = listener.accept().unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut conn = TlsConn::server(&ctx).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match conn.handshake() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                flush(&mut conn, &mut tcp, &mut out); // the alert
                return Err(e);
            }
        }
        flush(&mut conn, &mut tcp, &mut out);
        let n = tcp.read(&mut buf).unwrap_or(0);
        if n == 0 {
            conn.feed_eof();
        } else {
            conn.feed(&buf[..n]);
        }
    }
    flush(&mut conn, &mut tcp, &mut out);
    let info = conn.info().unwrap();
    // A greeting and close_notify: s_client (-ign_eof) prints the first
    // and exits on the second.
    conn.write_plaintext(b"hello from vhub\n")?;
    conn.shutdown();
    flush(&mut conn, &mut tcp, &mut out);
    let mut plain = Vec::new();
    loop {
        let n = tcp.read(&mut buf).unwrap_or(0);
        if n == 0 {
            conn.feed_eof();
        } else {
            conn.feed(&buf[..n]);
        }
        let st = conn.read_plaintext(&mut plain)?;
        flush(&mut conn, &mut tcp, &mut out);
        if st.closed || n == 0 {
            break;
        }
    }
    Ok(info)
}

struct Run {
    server: Result<TlsInfo, TlsError>,
    /// s_client's stdout and stderr.
    output: String,
    success: bool,
}

/// `openssl s_client -connect 127.0.0.1:PORT <args>` against `serve_one`.
fn s_client(opts: TlsOptions, args: &[&str]) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || serve_one(listener, opts));
    let connect = format!("127.0.0.1:{port}");
    let mut child = Command::new("/usr/bin/openssl")
        .args(["s_client", "-connect", &connect, "-ign_eof"])
        .args(args)
        // With -ign_eof, EOF on stdin does not end the session: s_client
        // reads until the hub closes it.
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Debian's openssl command-line tool (/usr/bin/openssl) is needed");
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    // Bounded: a hung s_client is killed (through its own handle, so never
    // another process) instead of hanging the test run.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        thread::sleep(Duration::from_millis(10));
    };
    let output = stdout.join().unwrap() + &stderr.join().unwrap();
    let success = status.success();
    Run {
        server: server.join().unwrap(),
        output,
        success,
    }
}

/// The suite s_client reports: "New, TLSv1.2, Cipher is AES256-SHA" or
/// "    Cipher    : AES256-SHA".
fn s_client_cipher(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let l = l.trim();
        l.split_once("Cipher is ")
            .map(|(_, c)| c)
            .or_else(|| l.strip_prefix("Cipher    :"))
            .map(|c| c.trim().to_owned())
            .filter(|c| c != "(NONE)" && c != "0000")
    })
}

fn system_openssl_version() -> String {
    let out = Command::new("/usr/bin/openssl")
        .arg("version")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn aes256_sha_preset_negotiates_aes256_sha_with_s_client() {
    let opts = TlsOptions {
        ciphers: "aes256-sha".parse().unwrap(),
        ..TlsOptions::default()
    };
    let run = s_client(opts, &["-tls1_2", "-cipher", "AES256-SHA"]);
    let info = run.server.unwrap_or_else(|e| panic!("{e}\n{}", run.output));
    println!("{}: negotiated {info}", system_openssl_version());
    assert_eq!(info.version, "TLSv1.2");
    assert_eq!(info.cipher, "AES256-SHA");
    assert_eq!(
        s_client_cipher(&run.output).as_deref(),
        Some("AES256-SHA"),
        "{}",
        run.output
    );
    assert!(run.output.contains("hello from vhub"), "{}", run.output);
}

#[test]
fn default_preset_refuses_s_client_asking_for_aes256_sha() {
    let run = s_client(TlsOptions::default(), &["-tls1_2", "-cipher", "AES256-SHA"]);
    let e = run.server.unwrap_err();
    assert!(matches!(e, TlsError::Handshake { .. }), "{e:?}");
    assert!(e.to_string().contains("no shared cipher"), "{e}");
    assert!(!run.success, "{}", run.output);
    assert_eq!(s_client_cipher(&run.output), None, "{}", run.output);
    assert!(
        run.output.contains("handshake failure"),
        "s_client should report the alert:\n{}",
        run.output
    );
}

#[test]
fn default_preset_negotiates_tls13_aes256_gcm_with_s_client() {
    let run = s_client(TlsOptions::default(), &["-tls1_3"]);
    let info = run.server.unwrap_or_else(|e| panic!("{e}\n{}", run.output));
    assert_eq!(
        info,
        TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS_AES_256_GCM_SHA384".into()
        }
    );
    assert_eq!(
        s_client_cipher(&run.output).as_deref(),
        Some("TLS_AES_256_GCM_SHA384"),
        "{}",
        run.output
    );
}

#[test]
fn default_preset_prefers_aes256_gcm_over_tls12_too() {
    // s_client's own order puts other suites first; the hub's order wins.
    let run = s_client(TlsOptions::default(), &["-tls1_2"]);
    let info = run.server.unwrap_or_else(|e| panic!("{e}\n{}", run.output));
    assert_eq!(info.version, "TLSv1.2");
    assert_eq!(info.cipher, "ECDHE-RSA-AES256-GCM-SHA384");
    assert_eq!(
        s_client_cipher(&run.output).as_deref(),
        Some("ECDHE-RSA-AES256-GCM-SHA384")
    );
}
