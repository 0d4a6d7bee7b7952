//! Durations and sizes written the human way: `30s`, `1m30s`, `1.5h`,
//! `500ms`, `512MiB`, `1.5G`.
//!
//! Sizes: a bare number is bytes. `K`, `M`, `G`, `T` and `KiB` … `TiB` are
//! powers of 1024 (as systemd and docker read `-m 512m`); `KB`, `MB`, `GB`,
//! `TB` are powers of 1000. Case does not matter.
//!
//! Durations: a bare number is seconds (as GNU `timeout` reads it). Units are
//! `ms`, `s`, `m`, `h`, `d`, and may be chained: `1h2m3.5s`.
//!
//! Both are bounded here, at parse time, so that no caller ever does
//! arithmetic on a value that overflows a clock or a kernel counter: a
//! duration is at most [`MAX_DURATION`] (100 years), a size at most
//! [`MAX_SIZE`] (1 PiB).

use std::time::Duration;

/// The longest duration corral accepts anywhere: 36525 days (100 years).
/// Long enough for "never" in practice, short enough that `now + it` fits
/// every platform's monotonic clock.
pub const MAX_DURATION: Duration = Duration::from_secs(36_525 * 86_400);

/// The largest size corral accepts anywhere: 1 PiB. Above any machine's
/// memory, and far below `u64::MAX`, which `setrlimit` reads as "no limit".
pub const MAX_SIZE: u64 = 1 << 50;

const MAX_DURATION_TEXT: &str = "at most 36525d (100 years)";
const MAX_SIZE_TEXT: &str = "at most 1 PiB";

/// Why a duration or a size did not parse. `Display` is one line with the
/// expected form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    what: &'static str,
    input: String,
    expected: &'static str,
}

impl ParseError {
    fn new(what: &'static str, input: &str, expected: &'static str) -> Self {
        ParseError { what, input: input.to_string(), expected }
    }
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
    let err = || ParseError::new("size", input, SIZE_FORM);
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
    if !bytes.is_finite() || bytes < 0.0 {
        return Err(err());
    }
    if bytes.round() > MAX_SIZE as f64 {
        return Err(ParseError::new("size", input, MAX_SIZE_TEXT));
    }
    Ok(bytes.round() as u64)
}

/// Parses a duration: `30s`, `1m30s`, `500ms`, `1.5h`, `10` (seconds).
pub fn parse_duration(input: &str) -> Result<Duration, ParseError> {
    let err = || ParseError::new("duration", input, DURATION_FORM);
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
    if !total.is_finite() || total < 0.0 {
        return Err(err());
    }
    duration_from_secs(total).ok_or_else(|| ParseError::new("duration", input, MAX_DURATION_TEXT))
}

/// Seconds as a [`Duration`] when they are a number from 0 to
/// [`MAX_DURATION`]; `None` for NaN, infinities, negatives and anything
/// longer (where `Duration::from_secs_f64` would panic or a deadline
/// would overflow).
pub fn duration_from_secs(secs: f64) -> Option<Duration> {
    if !(0.0..=MAX_DURATION.as_secs_f64()).contains(&secs) {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// Why a number of seconds is not a duration, in the one-line form of a
/// [`ParseError`]: `invalid duration '1e300': expected at most 36525d (100 years)`.
pub fn duration_range_error(input: &str) -> ParseError {
    let in_range = input.trim().parse::<f64>().is_ok_and(|f| f.is_finite() && f >= 0.0);
    ParseError::new("duration", input, if in_range { MAX_DURATION_TEXT } else { DURATION_FORM })
}

/// Why a number of bytes is not a size (see [`duration_range_error`]).
pub fn size_range_error(input: &str) -> ParseError {
    let in_range = input.trim().parse::<f64>().is_ok_and(|f| f.is_finite() && f >= 0.0);
    ParseError::new("size", input, if in_range { MAX_SIZE_TEXT } else { SIZE_FORM })
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
    fn huge_durations_are_refused_with_the_maximum() {
        for bad in ["99999999999999999999", "36526d", "9223372036854775807", "3155760001"] {
            let e = parse_duration(bad).unwrap_err().to_string();
            assert!(e.contains("at most 36525d (100 years)"), "{bad}: {e}");
        }
        for bad in ["1e300", "nan", "inf", "-5"] {
            let e = parse_duration(bad).unwrap_err().to_string();
            assert!(e.contains("expected a number"), "{bad}: {e}");
        }
        assert_eq!(parse_duration("36525d").unwrap(), MAX_DURATION);
    }

    #[test]
    fn seconds_become_durations_only_in_range() {
        assert_eq!(duration_from_secs(1.5), Some(Duration::from_millis(1500)));
        assert_eq!(duration_from_secs(0.0), Some(Duration::ZERO));
        assert_eq!(duration_from_secs(MAX_DURATION.as_secs_f64()), Some(MAX_DURATION));
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e300, i64::MAX as f64, MAX_DURATION.as_secs_f64() + 1.0] {
            assert_eq!(duration_from_secs(bad), None, "{bad}");
        }
        assert!(duration_range_error("1e300").to_string().contains("at most 36525d"));
        assert!(duration_range_error("nan").to_string().contains("expected a number"));
    }

    #[test]
    fn huge_sizes_are_refused_with_the_maximum() {
        assert_eq!(parse_size("1PiB").ok(), None, "no PiB unit: the form is named");
        assert_eq!(parse_size("1024T").unwrap(), MAX_SIZE);
        for bad in ["1025T", "18446744073709551615", "99999999999999999999999"] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains("at most 1 PiB"), "{bad}: {e}");
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
