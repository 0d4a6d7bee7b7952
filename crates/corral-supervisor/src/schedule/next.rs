//! The next tick of a cron expression after a given instant, in the
//! expression's zone: pure (the caller gives "now"), so daylight saving
//! transitions are tested with fixed dates.
//!
//! Parsing and matching are `croner`'s, which follows Vixie cron across
//! DST: a fixed time that falls into a spring-forward gap runs once, at
//! the first instant after the gap; a fixed time in a fall-back overlap
//! runs once, at its first occurrence; interval patterns (`*/15`) keep
//! ticking through both.

use chrono::{DateTime, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// The zone a cron expression is read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    /// The host's local zone (`TZ`, else `/etc/localtime`), as cron and
    /// systemd timers read schedules: `0 3 * * *` is 3 am where the
    /// machine is.
    Local,
    /// An IANA zone from `schedule_tz`, like `Europe/Paris` or `UTC`.
    Named(NamedZone),
}

/// An IANA zone and its rules, read once when the config is loaded: from
/// the host's time zone database (`/usr/share/zoneinfo`, or `TZDIR`) as
/// cron reads it, else from the copy built into corral (a host without
/// one: Windows, a minimal container image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedZone(jiff::tz::TimeZone);

impl NamedZone {
    /// The zone called `name` (IANA's spelling; the case does not matter),
    /// or `None` if neither database knows it.
    pub fn get(name: &str) -> Option<NamedZone> {
        jiff::tz::db().get(name).ok().map(NamedZone)
    }

    /// Every zone name the database knows, for a "did you mean".
    pub fn known() -> Vec<String> {
        jiff::tz::db().available().map(|n| n.as_str().to_string()).collect()
    }
}

/// A checked cron expression and its zone.
#[derive(Debug, Clone)]
pub struct CronSpec {
    /// As written.
    pub source: String,
    /// The zone.
    pub zone: Zone,
    /// Boxed: a parsed pattern is a few hundred bytes, carried in every spec.
    cron: Box<Cron>,
}

impl PartialEq for CronSpec {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.zone == other.zone
    }
}

/// Why an expression does not parse: a byte offset in it (the field at
/// fault) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    /// Where the field at fault begins in the expression.
    pub offset: usize,
    /// What is wrong, naming the field.
    pub message: String,
}

const FIVE: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const SIX: [&str; 6] = ["second", "minute", "hour", "day-of-month", "month", "day-of-week"];

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build()
}

impl CronSpec {
    /// Parses 5 fields (minute hour day-of-month month day-of-week), 6
    /// with seconds first, or a nickname (`@daily`); an expression that
    /// never fires (`0 0 30 2 *`) is refused too.
    pub fn parse(source: &str, zone: Zone) -> Result<CronSpec, CronError> {
        let fields: Vec<(usize, &str)> =
            source.split_whitespace().map(|f| (f.as_ptr() as usize - source.as_ptr() as usize, f)).collect();
        let nickname = fields.len() == 1 && fields[0].1.starts_with('@');
        let names: &[&str] = match fields.len() {
            5 => &FIVE,
            6 => &SIX,
            _ if nickname => &[],
            n => {
                return Err(CronError {
                    offset: 0,
                    message: format!(
                        "a cron expression has 5 fields (minute hour day-of-month month day-of-week), \
                         or 6 with seconds first; this one has {n}"
                    ),
                })
            }
        };
        let cron = parser().parse(source).map_err(|e| {
            // Each field alone, the others `*`: the first that fails alone
            // is the one to name.
            for (i, (offset, field)) in fields.iter().enumerate().filter(|_| !nickname) {
                let alone: Vec<&str> = (0..fields.len()).map(|j| if j == i { *field } else { "*" }).collect();
                if let Err(e) = parser().parse(&alone.join(" ")) {
                    return CronError {
                        offset: *offset,
                        message: format!("the {} field `{field}` is not valid: {}", names[i], plain(&e)),
                    };
                }
            }
            CronError { offset: 0, message: format!("not a valid cron expression: {}", plain(&e)) }
        })?;
        let spec = CronSpec { source: source.to_string(), zone, cron: Box::new(cron) };
        if spec.next_after(Utc::now()).is_none() {
            return Err(CronError { offset: 0, message: "this cron expression never fires".into() });
        }
        Ok(spec)
    }

    /// The first tick strictly after `now`, or `None` if there is none.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.zone {
            Zone::Local => {
                let next = self.cron.find_next_occurrence(&now.with_timezone(&chrono::Local), false).ok()?;
                Some(next.with_timezone(&Utc))
            }
            Zone::Named(NamedZone(tz)) => {
                let nanos = i32::try_from(now.timestamp_subsec_nanos()).ok()?;
                let start = jiff::Timestamp::new(now.timestamp(), nanos).ok()?.to_zoned(tz.clone());
                let next = self.cron.find_next_occurrence(&start, false).ok()?.timestamp();
                let nanos = u32::try_from(next.subsec_nanosecond()).ok()?;
                Utc.timestamp_opt(next.as_second(), nanos).single()
            }
        }
    }
}

/// croner's message without its own prefixes.
fn plain(e: &croner::errors::CronError) -> String {
    let s = e.to_string();
    let s = s.trim_start_matches("Component error: ").trim_start_matches("Invalid pattern: ");
    s.trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Zone {
        Zone::Named(NamedZone::get(name).unwrap())
    }

    fn paris(expr: &str) -> CronSpec {
        CronSpec::parse(expr, named("Europe/Paris")).unwrap()
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    /// The next `n` ticks after `from`, in UTC.
    fn ticks(spec: &CronSpec, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..n {
            t = spec.next_after(t).unwrap();
            out.push(t);
        }
        out
    }

    #[test]
    fn five_fields_tick_on_minutes_and_six_on_seconds() {
        let every5 = CronSpec::parse("*/5 * * * *", named("UTC")).unwrap();
        assert_eq!(every5.next_after(at(2026, 1, 1, 10, 3)), Some(at(2026, 1, 1, 10, 5)));
        assert_eq!(every5.next_after(at(2026, 1, 1, 10, 5)), Some(at(2026, 1, 1, 10, 10)), "strictly after");
        let secs = CronSpec::parse("*/2 * * * * *", named("UTC")).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 1).unwrap();
        assert_eq!(secs.next_after(t), Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 2).unwrap()));
    }

    #[test]
    fn a_time_in_the_zone_is_that_time_there() {
        // 03:00 in Paris is 02:00 UTC in winter, 01:00 UTC in summer.
        let s = paris("0 3 * * *");
        assert_eq!(s.next_after(at(2026, 1, 10, 12, 0)), Some(at(2026, 1, 11, 2, 0)));
        assert_eq!(s.next_after(at(2026, 7, 10, 12, 0)), Some(at(2026, 7, 11, 1, 0)));
    }

    #[test]
    fn a_fixed_time_in_the_spring_forward_gap_runs_once_right_after_it() {
        // 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let s = paris("30 2 * * *");
        let got = ticks(&s, at(2026, 3, 28, 12, 0), 2);
        assert_eq!(got, [at(2026, 3, 29, 1, 0), at(2026, 3, 30, 0, 30)]);
    }

    #[test]
    fn a_fixed_time_in_the_fall_back_overlap_runs_once() {
        // 2026-10-25 in Paris: 03:00 CEST goes back to 02:00 CET; 02:30
        // happens at 00:30 UTC and again at 01:30 UTC.
        let s = paris("30 2 * * *");
        let got = ticks(&s, at(2026, 10, 24, 12, 0), 2);
        assert_eq!(got, [at(2026, 10, 25, 0, 30), at(2026, 10, 26, 1, 30)]);
    }

    #[test]
    fn an_interval_keeps_ticking_through_both_transitions() {
        // Every 30 minutes across the fall-back hour: real time keeps its
        // pace, 02:00 and 02:30 come twice.
        let s = paris("*/30 * * * *");
        let got = ticks(&s, at(2026, 10, 24, 23, 45), 5);
        let want = [
            at(2026, 10, 25, 0, 0),
            at(2026, 10, 25, 0, 30),
            at(2026, 10, 25, 1, 0),
            at(2026, 10, 25, 1, 30),
            at(2026, 10, 25, 2, 0),
        ];
        assert_eq!(got, want);
        // And across the spring gap: from 01:30 CET straight to 03:00 CEST.
        let got = ticks(&s, at(2026, 3, 29, 0, 15), 2);
        assert_eq!(got, [at(2026, 3, 29, 0, 30), at(2026, 3, 29, 1, 0)]);
    }

    #[test]
    fn the_copy_built_in_knows_the_zones_and_agrees_with_the_host() {
        // A host without a database (Windows, a minimal image) is answered
        // from the copy built in: it must be there and say what the host's
        // says (2026-09-21, summer time in Paris; 2026-12-20, winter).
        let built_in = jiff::tz::TimeZoneDatabase::bundled();
        let tz = built_in.get("Europe/Paris").unwrap();
        let host = NamedZone::get("europe/paris").expect("any case");
        for t in [1_790_000_000, 1_798_000_000] {
            let t = jiff::Timestamp::from_second(t).unwrap();
            assert_eq!(tz.to_offset(t), host.0.to_offset(t));
        }
        assert!(NamedZone::get("Europe/Pariss").is_none());
        // A reload that reads the same zone again changes nothing.
        let again = CronSpec::parse("0 3 * * *", named("Europe/Paris")).unwrap();
        assert_eq!(again, CronSpec::parse("0 3 * * *", named("europe/paris")).unwrap());
        assert_ne!(again, CronSpec::parse("0 3 * * *", named("Europe/Berlin")).unwrap());
        assert!(NamedZone::known().iter().any(|n| n == "America/New_York"));
    }

    #[test]
    fn a_bad_field_is_named_with_its_place() {
        let e = CronSpec::parse("*/5 25 * * *", Zone::Local).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.starts_with("the hour field `25` is not valid"), "{}", e.message);
        let e = CronSpec::parse("0 0 * * * * *", Zone::Local).unwrap_err();
        assert!(e.message.contains("this one has 7"), "{}", e.message);
        let e = CronSpec::parse("0 0 1 1 1 funday", Zone::Local).unwrap_err();
        assert_eq!((e.offset, e.message.starts_with("the day-of-week field")), (10, true), "{}", e.message);
        assert!(CronSpec::parse("0 0 30 2 *", Zone::Local).unwrap_err().message.contains("never fires"));
        assert!(CronSpec::parse("@daily", Zone::Local).is_ok());
    }
}
