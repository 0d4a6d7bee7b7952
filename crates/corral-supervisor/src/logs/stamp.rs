//! The timestamp in front of every captured line, formatted once per clock
//! tick instead of once per line or per read: a burst of thousands of
//! lines in one millisecond costs one clock read per read and one
//! formatting per millisecond, the date part only when the second changes.

use std::time::{SystemTime, UNIX_EPOCH};

/// The RFC 3339 text of the last millisecond asked for.
#[derive(Debug)]
pub(crate) struct Stamp {
    /// Milliseconds since the epoch that `text` says.
    ms: i64,
    /// Like `2024-05-01T12:00:00.123Z`.
    text: String,
}

impl Stamp {
    pub fn new() -> Stamp {
        Stamp { ms: i64::MIN, text: String::new() }
    }

    /// Now, from the clock.
    pub fn now(&mut self) -> &str {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        self.at(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// The text of `ms`: the one already formatted when `ms` has not
    /// changed, three digits rewritten when only the millisecond has.
    pub fn at(&mut self, ms: i64) -> &str {
        if ms != self.ms {
            if ms.div_euclid(1000) == self.ms.div_euclid(1000) && self.text.len() >= 5 {
                // `….SSSZ`: the millisecond is the 3 digits before the `Z`.
                let at = self.text.len() - 4;
                let m = ms.rem_euclid(1000) as u32;
                let digits = [b'0' + (m / 100) as u8, b'0' + (m / 10 % 10) as u8, b'0' + (m % 10) as u8];
                self.text.replace_range(at..at + 3, std::str::from_utf8(&digits).unwrap_or("000"));
            } else {
                self.text = crate::time::format_millis(ms);
            }
            self.ms = ms;
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::format_millis;

    #[test]
    fn every_millisecond_reads_as_the_full_formatter_says() {
        let mut s = Stamp::new();
        // Across second, minute, day and year boundaries, forwards, with
        // repeats, and backwards (a clock set back).
        let base = 1_704_067_198_990; // 2023-12-31T23:59:58.990Z
        let mut seq: Vec<i64> = (0..2100).map(|k| base + k).collect();
        seq.extend([base + 5, base + 5, base, 0, 999, 1000, -1, base + 1010]);
        for ms in seq {
            assert_eq!(s.at(ms), format_millis(ms), "at {ms}");
        }
    }

    #[test]
    fn now_is_today() {
        let mut s = Stamp::new();
        let before = crate::time::now_rfc3339();
        let got = s.now().to_string();
        let after = crate::time::now_rfc3339();
        assert!(before <= got && got <= after, "{before} <= {got} <= {after}");
    }
}
