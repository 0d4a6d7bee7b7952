//! `schedule`, `every`, `schedule_tz`, `max_concurrent`, `on_overlap` and
//! `cron_restart` of one service, read from the document so that each
//! error carries its own place: a cron field at fault is pointed at
//! inside the string.

use super::diagnostic::{did_you_mean, Sink};
use super::raw::RawRestart;
use super::validate::{key_span, Span};
use crate::schedule::{CronSpec, NamedZone, Overlap, ScheduleSpec, When, Zone};
use toml_edit::TableLike;

/// What a service's schedule keys say.
#[derive(Default)]
pub(super) struct Scheduled {
    pub schedule: Option<ScheduleSpec>,
    pub cron_restart: Option<CronSpec>,
}

/// The keys this file reads.
pub(super) const KEYS: [&str; 6] = ["schedule", "every", "schedule_tz", "max_concurrent", "on_overlap", "cron_restart"];

pub(super) fn read(
    sink: &mut Sink<'_>,
    what: &str,
    table: &dyn TableLike,
    instances_given: bool,
    restart: Option<RawRestart>,
) -> Scheduled {
    let mut out = Scheduled::default();
    if !KEYS.iter().any(|k| table.contains_key(k)) {
        return out;
    }
    let mut bad = |key: &str, span: Span, msg: String, expected: &str| {
        let span = span.or_else(|| key_span(table, key));
        sink.push(span, format!("{what}: {msg}"), Some(expected.to_string()), None);
    };
    let zone = match table.get("schedule_tz").map(|i| i.as_str()) {
        None => Zone::Local,
        Some(Some(name)) => match NamedZone::get(name) {
            Some(tz) => Zone::Named(tz),
            None => {
                let known = NamedZone::known();
                let hint = did_you_mean(name, known.iter().map(String::as_str));
                let span = key_span(table, "schedule_tz");
                let expected = Some("an IANA time zone like \"Europe/Paris\" or \"UTC\"".to_string());
                sink.push(span, format!("{what}: unknown time zone `{name}`"), expected, hint);
                Zone::Local
            }
        },
        Some(None) => {
            bad("schedule_tz", None, "`schedule_tz` must be a string".into(), "a time zone like \"Europe/Paris\"");
            Zone::Local
        }
    };
    let cron = |sink: &mut Sink<'_>, key: &str| -> Option<CronSpec> {
        let item = table.get(key)?;
        let span = key_span(table, key);
        let Some(expr) = item.as_str() else {
            let expected = Some("a cron expression like \"*/5 * * * *\"".to_string());
            sink.push(span, format!("{what}: `{key}` must be a string"), expected, None);
            return None;
        };
        CronSpec::parse(expr, zone.clone())
            .map_err(|e| {
                // Inside the quotes, at the field at fault.
                let at = span.map(|s| s.start + 1 + e.offset);
                let expected = Some(
                    "5 fields \"minute hour day-of-month month day-of-week\" (or 6, seconds first), like \"*/5 * * * *\""
                        .to_string(),
                );
                sink.push(at.map(|a| a..a + 1), format!("{what}: `{key}`: {}", e.message), expected, None);
            })
            .ok()
    };
    let schedule = cron(sink, "schedule");
    out.cron_restart = cron(sink, "cron_restart");
    let mut bad = |key: &str, msg: String, expected: &str| {
        sink.push(key_span(table, key), format!("{what}: {msg}"), Some(expected.to_string()), None);
    };
    let every = table.get("every").and_then(|i| {
        let d = match (i.as_str(), i.as_integer()) {
            (Some(s), _) => corral::units::parse_duration(s).ok(),
            (None, Some(n)) if n > 0 => Some(std::time::Duration::from_secs(n as u64)),
            _ => None,
        };
        let (lo, hi) = ScheduleSpec::EVERY_RANGE;
        let fmt = corral::units::format_duration;
        match d {
            Some(d) if (lo..=hi).contains(&d) => Some(d),
            _ => {
                let expected = format!("a duration from {} to {}, like \"10m\"", fmt(lo), fmt(hi));
                bad("every", "`every` is not a duration in range".into(), &expected);
                None
            }
        }
    });
    let max_concurrent = match table.get("max_concurrent").map(|i| i.as_integer()) {
        None => 1,
        Some(Some(n)) if (1..=i64::from(ScheduleSpec::MAX_CONCURRENT)).contains(&n) => n as u32,
        Some(_) => {
            let expected = format!("a whole number from 1 to {}", ScheduleSpec::MAX_CONCURRENT);
            bad("max_concurrent", "`max_concurrent` is out of range".into(), &expected);
            1
        }
    };
    let on_overlap = match table.get("on_overlap").map(|i| i.as_str()) {
        None => Overlap::Skip,
        Some(Some("skip")) => Overlap::Skip,
        Some(Some("queue")) => Overlap::Queue,
        Some(Some("replace")) => Overlap::Replace,
        Some(other) => {
            let word = other.unwrap_or_default();
            let hint = did_you_mean(word, ["skip", "queue", "replace"]);
            let span = key_span(table, "on_overlap");
            let expected = Some("\"skip\", \"queue\" or \"replace\"".to_string());
            sink.push(span, format!("{what}: unknown `on_overlap` value `{word}`"), expected, hint);
            Overlap::Skip
        }
    };
    let mut bad = |key: &str, msg: &str, expected: &str| {
        sink.push(key_span(table, key), format!("{what}: {msg}"), Some(expected.to_string()), None);
    };
    let scheduled = table.contains_key("schedule") || table.contains_key("every");
    if table.contains_key("schedule") && table.contains_key("every") {
        bad("every", "`schedule` and `every` together", "one of them");
    }
    if scheduled && instances_given {
        bad("instances", "a scheduled service starts one instance per run", "`max_concurrent` instead of `instances`");
    }
    if scheduled && matches!(restart, Some(RawRestart::Always)) {
        bad(
            "restart",
            "a scheduled run that is always restarted never ends",
            "restart = \"no\" (the default here) or \"on-failure\"",
        );
    }
    if scheduled && table.contains_key("cron_restart") {
        bad(
            "cron_restart",
            "`cron_restart` is for long-running services, not scheduled runs",
            "`schedule` or `cron_restart`, not both",
        );
    }
    for key in ["max_concurrent", "on_overlap"] {
        if !scheduled && table.contains_key(key) {
            bad(key, &format!("`{key}` without `schedule` or `every`"), "a `schedule` or `every` too");
        }
    }
    if table.contains_key("schedule_tz") && !table.contains_key("schedule") && !table.contains_key("cron_restart") {
        bad("schedule_tz", "`schedule_tz` without a cron expression", "`schedule` or `cron_restart` too");
    }
    let when = match (schedule, every) {
        (Some(c), _) => Some(When::Cron(c)),
        (None, Some(d)) => Some(When::Every(d)),
        _ => None,
    };
    out.schedule = when.map(|when| ScheduleSpec { when, max_concurrent, on_overlap });
    out
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::policy::RestartPolicy;
    use crate::schedule::{Overlap, When};
    use std::path::Path;

    fn errors(toml: &str) -> Vec<String> {
        parse(toml, Path::new("/tmp/c.toml")).unwrap_err().0.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn a_job_defaults_to_one_slot_no_restart_and_skip() {
        let c = parse("[services.j]\ncommand = [\"x\"]\nevery = \"10m\"\n", Path::new("/tmp/c.toml")).unwrap();
        let j = &c.services["j"];
        let s = j.schedule.as_ref().unwrap();
        assert_eq!(
            (s.when.clone(), s.max_concurrent, s.on_overlap),
            (When::Every(std::time::Duration::from_secs(600)), 1, Overlap::Skip)
        );
        assert_eq!((j.instances, j.restart), (1, RestartPolicy::No));
        let c = parse(
            "[services.j]\ncommand = [\"x\"]\nschedule = \"0 3 * * *\"\nmax_concurrent = 3\non_overlap = \"queue\"\nrestart = \"on-failure\"\n",
            Path::new("/tmp/c.toml"),
        )
        .unwrap();
        assert_eq!((c.services["j"].instances, c.services["j"].restart), (3, RestartPolicy::OnFailure));
    }

    #[test]
    fn keys_that_contradict_each_other_are_each_reported_at_their_place() {
        let e = errors(
            "[services.j]\ncommand = [\"x\"]\nschedule = \"* * * * *\"\nevery = \"1s\"\ninstances = 2\nrestart = \"always\"\ncron_restart = \"0 3 * * *\"\n",
        );
        assert!(e.iter().any(|e| e.contains("c.toml:4:9: service `j`: `schedule` and `every` together")), "{e:#?}");
        assert!(
            e.iter().any(|e| e.contains(":5:13: service `j`: a scheduled service starts one instance per run")),
            "{e:#?}"
        );
        assert!(e.iter().any(|e| e.contains(":6:11: service `j`: a scheduled run that is always restarted")), "{e:#?}");
        assert!(
            e.iter().any(|e| e.contains(":7:16: service `j`: `cron_restart` is for long-running services")),
            "{e:#?}"
        );
        let e = errors("[services.j]\ncommand = [\"x\"]\nmax_concurrent = 0\non_overlap = \"wait\"\nevery = \"0s\"\n");
        assert!(e.iter().any(|e| e.contains("`max_concurrent` is out of range")), "{e:#?}");
        assert!(e.iter().any(|e| e.contains("unknown `on_overlap` value `wait`")), "{e:#?}");
        assert!(e.iter().any(|e| e.contains("`every` is not a duration in range")), "{e:#?}");
        let e = errors("[services.j]\ncommand = [\"x\"]\nschedule_tz = \"UTC\"\n");
        assert!(e[0].contains("`schedule_tz` without a cron expression"), "{e:#?}");
    }
}
