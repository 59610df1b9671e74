//! Logging of both binaries: `tracing` events to standard error, as text
//! for people or as JSON lines for log pipelines.
//!
//! - `text` (the default): tracing-subscriber's human format. ANSI colours
//!   only when standard error is a terminal and `NO_COLOR` is unset, so
//!   `vhub > hub.log 2>&1` and journald get plain text.
//! - `json`: one object per line, tracing-subscriber's JSON layout:
//!
//!   ```text
//!   {"timestamp":"2026-05-02T10:15:00.123456Z","level":"INFO",
//!    "fields":{"message":"session established","peer":"192.0.2.7:51234",
//!              "hub":"DEFAULT","user":"alice","session":"c674e57f",…},
//!    "target":"hub::shard::admit"}
//!   ```
//!
//!   (one line in the output). An event's fields stay under `"fields"`
//!   rather than beside `"level"` and `"target"`, so that a field named
//!   like one of those (vnic logs a relay's `target`) cannot clash with
//!   them. The fields of the spans an event is in come as `"span"` (the
//!   innermost) and `"spans"` (all, outermost first).
//!
//! Which events are written is chosen by an `EnvFilter` from the binary's
//! variable (`VHUB_LOG`, `VNIC_LOG`), with the binary's default.

use std::fmt;
use std::io::IsTerminal;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// `--log-format` (and the hub's `log_format` key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sends this process's `tracing` events to standard error in `format`,
/// filtered by the variable `filter_env` (e.g. `VHUB_LOG=debug`) or else
/// by `default_filter` (`"info"`, `"off"`). Call once, early in `main`.
pub fn init(format: LogFormat, filter_env: &str, default_filter: &str) {
    let filter =
        EnvFilter::try_from_env(filter_env).unwrap_or_else(|_| EnvFilter::new(default_filter));
    let subscriber = subscriber(format, filter, colours_wanted(), std::io::stderr);
    // Fails only if a subscriber is already set, which main never does.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Whether the text format may colour: standard error is a terminal and
/// `NO_COLOR` (https://no-color.org) is unset or empty.
fn colours_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The subscriber [`init`] installs, writing to `writer` (tests pass a buffer).
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(builder.with_ansi(false).json().finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    fn capture(format: LogFormat, ansi: bool, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let sub = subscriber(format, EnvFilter::new("info"), ansi, buf.clone());
        tracing::subscriber::with_default(sub, f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_is_one_object_per_line_with_the_fields_and_the_span() {
        let out = capture(LogFormat::Json, true, || {
            let span = tracing::error_span!("vnic", hub = "DEFAULT");
            let _g = span.enter();
            tracing::info!(target: "hub::x", session = "c674e57f", user = "alice", "session established");
            tracing::debug!("filtered out");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        assert!(!out.contains('\x1b'), "colour in JSON: {out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "hub::x");
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
        assert_eq!(v["fields"]["message"], "session established");
        assert_eq!(v["fields"]["session"], "c674e57f");
        assert_eq!(v["fields"]["user"], "alice");
        assert_eq!(v["span"]["hub"], "DEFAULT");
    }

    #[test]
    fn text_has_colours_only_when_asked() {
        let event = || tracing::warn!(user = "alice", "authentication failed");
        let plain = capture(LogFormat::Text, false, event);
        assert!(plain.contains("authentication failed"), "{plain}");
        assert!(!plain.contains("\x1b["), "{plain:?}");
        let coloured = capture(LogFormat::Text, true, event);
        assert!(coloured.contains("\x1b["), "{coloured:?}");
    }

    #[test]
    fn formats_are_read_and_printed_in_lowercase() {
        let f: LogFormat = serde_json::from_str("\"json\"").unwrap();
        assert_eq!(f, LogFormat::Json);
        assert!(serde_json::from_str::<LogFormat>("\"xml\"").is_err());
        assert_eq!(LogFormat::Json.to_string(), "json");
        assert_eq!(LogFormat::default(), LogFormat::Text);
    }
}
