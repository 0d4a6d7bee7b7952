//! Durations and sizes written the human way: `30s`, `1m30s`, `1.5h`,
//! `500ms`, `512MiB`, `1.5G`.
//!
//! Sizes: a bare number is bytes. `K`, `M`, `G`, `T` and `KiB` … `TiB` are
//! powers of 1024 (as systemd and docker read `-m 512m`); `KB`, `MB`, `GB`,
//! `TB` are powers of 1000. Case does not matter.
//!
//! Durations: a bare number is seconds (as GNU `timeout` reads it). Units are
//! `ms`, `s`, `m`, `h`, `d`, and may be chained: `1h2m3.5s`.

use std::time::Duration;

/// Why a duration or a size did not parse. `Display` is one line with the
/// expected form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    what: &'static str,
    input: String,
    expected: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {} '{}': expected {}", self.what, self.input, self.expected)
    }
}

impl std::error::Error for ParseError {}

const SIZE_FORM: &str = "a number with an optional unit, like 512MiB, 1.5G, 64M or 4096";
const DURATION_FORM: &str = "a number with an optional unit, like 30s, 1m30s, 500ms or 1.5h";

/// Parses a size in bytes: `512MiB`, `1.5G`, `64m`, `4096`.
pub fn parse_size(input: &str) -> Result<u64, ParseError> {
    let err = || ParseError { what: "size", input: input.to_string(), expected: SIZE_FORM };
    let s = input.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(err());
    }
    let value: f64 = num.parse().map_err(|_| err())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(err()),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes.round() as u64)
}

/// Parses a duration: `30s`, `1m30s`, `500ms`, `1.5h`, `10` (seconds).
pub fn parse_duration(input: &str) -> Result<Duration, ParseError> {
    let err = || ParseError { what: "duration", input: input.to_string(), expected: DURATION_FORM };
    let s = input.trim();
    if s.is_empty() {
        return Err(err());
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(split);
        if num.is_empty() {
            return Err(err());
        }
        let value: f64 = num.parse().map_err(|_| err())?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            // A bare number is only allowed alone: "1m30" is ambiguous.
            "" if rest.len() == s.len() => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(err()),
        };
        total += value * secs;
        rest = next;
    }
    if !total.is_finite() || total < 0.0 || total > u32::MAX as f64 {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats bytes for people: `64.0 MiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats a limit size without a fraction when it is exact: `64 MiB`.
pub fn format_size_exact(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, mult) in UNITS {
        if bytes >= mult && bytes.is_multiple_of(mult) {
            return format!("{} {name}", bytes / mult);
        }
    }
    format_size(bytes)
}

/// Formats a duration for people: `1.5s`, `250ms`, `2m30s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let s = format!("{secs:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return format!("{s}s");
    }
    let whole = d.as_secs();
    let (h, m, s) = (whole / 3600, (whole / 60) % 60, whole % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_the_human_way() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("2KB").unwrap(), 2000);
        assert_eq!(parse_size(" 1 GiB ").unwrap(), 1 << 30);
    }

    #[test]
    fn bad_sizes_name_the_expected_form() {
        for bad in ["12XB", "", "MiB", "-5M", "1..2M", "5 M B"] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains("expected a number"), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_parse_the_human_way() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("0.25").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in ["", "abc", "10x", "1m30", "s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formatting_is_short() {
        assert_eq!(format_size(64 << 20), "64.0 MiB");
        assert_eq!(format_size_exact(64 << 20), "64 MiB");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(150)), "2m30s");
    }
}
