//! The metrics listener: plain HTTP/1.1 on a thread of its own, one short
//! thread per connection, answering `/metrics`, `/healthz` and `/readyz`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus_client::registry::Registry;

use super::{registry, render, render_prometheus};
use crate::switchboard::Switchboard;

/// Serves `/metrics`, `/healthz`, `/readyz` on `listener` (plain HTTP) on a
/// thread of its own, until the process exits.
pub fn serve(
    listener: std::net::TcpListener,
    sb: Arc<Switchboard>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let reg = Arc::new(registry(sb.clone()));
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let _ = conn.set_write_timeout(Some(std::time::Duration::from_secs(5)));
                let (reg, sb) = (reg.clone(), sb.clone());
                // Scrapes are rare and short: one thread each, bounded by the timeouts.
                let _ = std::thread::Builder::new()
                    .name("metrics-conn".into())
                    .spawn(move || {
                        let _ = answer(&mut conn, &reg, &sb);
                    });
            }
        })
}

fn answer(conn: &mut std::net::TcpStream, reg: &Registry, sb: &Switchboard) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    let (path, openmetrics) = loop {
        let n = conn.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                // Prometheus asks for OpenMetrics in `Accept`; everyone else
                // gets the classic text format.
                let openmetrics = req.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("accept")
                        && String::from_utf8_lossy(h.value).contains("application/openmetrics-text")
                });
                break (req.path.unwrap_or("/").to_owned(), openmetrics);
            }
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            _ => {
                conn.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )?;
                return Ok(());
            }
        }
    };
    let (status, ctype, body) = match path.split('?').next().unwrap_or("") {
        "/metrics" if openmetrics => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(reg),
        ),
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render_prometheus(reg),
        ),
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        "/readyz" => {
            if sb.metrics.ready.load(Relaxed) && !sb.is_shutting_down() {
                ("200 OK", "text/plain", "ready\n".to_string())
            } else {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    "not ready\n".to_string(),
                )
            }
        }
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    let mut out = String::new();
    let _ = write!(out, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    conn.write_all(out.as_bytes())?;
    conn.write_all(body.as_bytes())
}
