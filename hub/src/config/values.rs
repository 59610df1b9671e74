//! Value parsers: addresses, durations and sizes as the config writes them.
//!
//! The `de_*` functions are serde's `deserialize_with` hooks of the typed
//! structs; the public `parse_*` functions behind them hold the rules, and
//! [`fmt_duration`] writes a duration back the way the file does (the
//! validator's messages use it). Every error says what to write instead.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::Deserialize;

pub(super) fn de_addr<'de, D: de::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    parse_addr(&s).map_err(de::Error::custom)
}

pub(super) fn de_opt_addr<'de, D: de::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() || s == "off" {
        return Ok(None);
    }
    parse_addr(&s).map(Some).map_err(de::Error::custom)
}

/// Parses `IP:PORT` (`[v6]:PORT` for IPv6).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not an address; write IP:PORT, e.g. \"0.0.0.0:8443\" or \"[::]:8443\"")
    })
}

pub(super) fn de_duration<'de, D: de::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"5s\", \"300ms\" or \"2m\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            parse_duration(s).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "a duration needs a unit: write \"{n}s\" or \"{n}ms\""
            )))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
            self.visit_i64(n as i64)
        }
    }
    d.deserialize_any(V)
}

pub(super) fn de_size<'de, D: de::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size in bytes, such as 8192 or \"4MiB\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<usize, E> {
            parse_size(s).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<usize, E> {
            usize::try_from(n).map_err(|_| E::custom(format!("{n} is not a size in bytes")))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<usize, E> {
            usize::try_from(n).map_err(|_| E::custom(format!("{n} bytes is too large")))
        }
    }
    d.deserialize_any(V)
}

/// Parses a duration: one or more `<number><unit>` parts, units `ms`, `s`,
/// `m`, `h`, `d`; e.g. `"5s"`, `"300ms"`, `"1m30s"`, `"1.5s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("{s:?} is not a duration; write e.g. \"5s\", \"300ms\", \"2m\" or \"1m30s\"");
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0; // nanoseconds
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "" => {
                return Err(format!(
                    "{s:?} needs a unit: us, ms, s, m, h or d (e.g. \"5s\")"
                ))
            }
            _ => {
                return Err(format!(
                    "{s:?} has the unknown unit {unit:?}; use us, ms, s, m, h or d"
                ))
            }
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty() || frac.contains('.') {
            return Err(bad());
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut part = int.checked_mul(unit_ns).ok_or_else(bad)?;
        let mut scale = unit_ns;
        for d in frac.chars().take(18) {
            scale /= 10;
            part += u128::from(d.to_digit(10).ok_or_else(bad)?) * scale;
        }
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = tail.trim_start();
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Parses a size: a plain number of bytes, or a number with `B`, `KiB`,
/// `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of 1000); units
/// are case-insensitive and may follow a space: `"4MiB"`, `"64 KiB"`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let text = s.trim();
    let num_len = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(num_len);
    if num.is_empty() {
        return Err(format!(
            "{s:?} is not a size; write a number of bytes or e.g. \"64KiB\", \"4MiB\""
        ));
    }
    let mult: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "{s:?} has the unknown unit {other:?}; use B, KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Formats a duration the way the config writes it (`"5s"`, `"300ms"`).
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() != d.subsec_micros() * 1_000 {
        format!("{}ns", d.as_nanos())
    } else if d.subsec_nanos() != d.subsec_millis() * 1_000_000 {
        format!("{}us", d.as_micros())
    } else if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}
