//! Durations as people write them ("5s", "300ms", "1.5s", "2m") and as
//! people read them ("1.2 ms", "3 s", "1h 02m").

use std::time::Duration;

/// Parses a duration: a number (integer or decimal) followed by a unit,
/// `us`, `ms`, `s`, `m` or `h`. A bare number is refused: "5" could mean
/// seconds or milliseconds, so the unit is required.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "{s:?} is not a duration: write a number and a unit, e.g. \"5s\" or \"300ms\""
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: {num:?} is not a number"))?;
    let unit_secs = match unit.trim() {
        "us" => 1e-6,
        "ms" => 0.001,
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "" => {
            return Err(format!(
                "{s:?} needs a unit: write \"{num}s\" or \"{num}ms\""
            ))
        }
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use us, ms, s, m or h)"
            ))
        }
    };
    let secs = value * unit_secs;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("{s:?} is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration for a person: milliseconds with one decimal below 10 s
/// ("0.4 ms", "850.0 ms", "2.5 s"), then seconds, minutes, hours.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else if d < Duration::from_secs(60) {
        format!("{:.1} s", d.as_secs_f64())
    } else if d < Duration::from_secs(3600) {
        format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{}h {:02}m", d.as_secs() / 3600, (d.as_secs() / 60) % 60)
    }
}

/// Bytes for a person: "812 B", "1.5 KiB", "12.0 MiB", "3.2 GiB".
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

/// serde helper: an optional duration written as a string ("5s").
pub mod serde_opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(i64),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Text(s)) => super::parse_duration(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
            Some(Raw::Number(n)) => Err(serde::de::Error::custom(format!(
                "a duration needs a unit: write \"{n}s\" or \"{n}ms\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration(" 1h ").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_what_is_ambiguous_or_wrong() {
        assert!(parse_duration("5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(fmt_duration(Duration::from_micros(420)), "0.4 ms");
        assert_eq!(fmt_duration(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(fmt_duration(Duration::from_secs(125)), "2m 05s");
        assert_eq!(fmt_duration(Duration::from_secs(3720)), "1h 02m");
        assert_eq!(fmt_bytes(812), "812 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(12 << 20), "12.0 MiB");
    }
}
