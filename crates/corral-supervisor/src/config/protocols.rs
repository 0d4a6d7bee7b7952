//! `notify`, `notify_fd`, `watchdog`, `start_timeout` and `sockets` of a
//! service: each value checked with its place, then across them (a
//! watchdog needs the notification socket; the readiness fd must not sit
//! where the sockets go).

use super::diagnostic::Sink;
use super::raw::Dur;
use super::validate::key_span;
use crate::activation::{ListenAddr, ListenSpec, FORMS, MAX_SOCKETS};
use crate::sd_notify::NotifySpec;
use toml_edit::TableLike;

/// `notify`, `notify_fd`, `watchdog`, `start_timeout` as serde read them.
pub(super) type RawNotify = (Option<bool>, Option<i64>, Option<Dur>, Option<Dur>);

pub(super) fn notify(sink: &mut Sink<'_>, what: &str, raw: RawNotify, table: &dyn TableLike) -> NotifySpec {
    let (notify, fd, watchdog, start_timeout) = raw;
    let mut spec = NotifySpec { notify: notify.unwrap_or(false), ..NotifySpec::default() };
    if spec.notify && !cfg!(target_os = "linux") {
        sink.push(
            key_span(table, "notify"),
            format!("{what}: `notify = true` is supported on Linux only yet (it needs SCM_CREDENTIALS)"),
            Some("`notify_fd = 3` (a newline on that fd means ready), or a readiness probe".into()),
            None,
        );
    }
    if let Some(n) = fd {
        if cfg!(windows) {
            sink.push(
                key_span(table, "notify_fd"),
                format!("{what}: `notify_fd` is not supported on Windows yet"),
                Some("a readiness probe".into()),
                None,
            );
        }
        if !(3..=i64::from(NotifySpec::MAX_FD)).contains(&n) {
            sink.push(
                key_span(table, "notify_fd"),
                format!("{what}: `notify_fd` is {n}"),
                Some(format!("an fd number from 3 to {} (0, 1 and 2 are stdio)", NotifySpec::MAX_FD)),
                None,
            );
        }
        spec.fd = Some(n.clamp(3, i64::from(NotifySpec::MAX_FD)) as i32);
    }
    let (lo, hi) = NotifySpec::RANGE;
    let fmt = corral::units::format_duration;
    let in_range = |key: &str, d: std::time::Duration, sink: &mut Sink<'_>| {
        if !(lo..=hi).contains(&d) {
            sink.push(
                key_span(table, key),
                format!("{what}: `{key}` is {}, out of range", fmt(d)),
                Some(format!("a duration from {} to {}, like \"10s\"", fmt(lo), fmt(hi))),
                None,
            );
        }
    };
    if let Some(w) = watchdog {
        in_range("watchdog", w.0, sink);
        if !spec.notify {
            sink.push(
                key_span(table, "watchdog"),
                format!("{what}: `watchdog` needs `notify = true`: WATCHDOG=1 comes on the notification socket"),
                Some("notify = true".into()),
                None,
            );
        }
        spec.watchdog = Some(w.0.clamp(lo, hi));
    }
    if let Some(t) = start_timeout {
        in_range("start_timeout", t.0, sink);
        if !spec.gates_ready() {
            sink.push(
                key_span(table, "start_timeout"),
                format!("{what}: `start_timeout` is how long to wait for READY=1, and this service does not notify"),
                Some("notify = true or notify_fd = N, or no start_timeout".into()),
                None,
            );
        }
        spec.start_timeout = t.0.clamp(lo, hi);
    }
    spec
}

pub(super) fn sockets(
    sink: &mut Sink<'_>,
    what: &str,
    raw: Option<Vec<String>>,
    table: &dyn TableLike,
    notify: &NotifySpec,
) -> Vec<ListenSpec> {
    let Some(list) = raw else { return Vec::new() };
    let span = key_span(table, "sockets");
    if cfg!(windows) {
        sink.push(span, format!("{what}: socket activation is not supported on Windows yet"), None, None);
        return Vec::new();
    }
    if list.len() > MAX_SOCKETS {
        sink.push(
            span.clone(),
            format!("{what}: {} sockets, more than {MAX_SOCKETS}", list.len()),
            Some(format!("at most {MAX_SOCKETS} addresses")),
            None,
        );
    }
    let spans: Vec<_> = table
        .get("sockets")
        .and_then(|i| i.as_array())
        .map(|a| a.iter().map(|v| v.span()).collect())
        .unwrap_or_default();
    let mut out: Vec<ListenSpec> = Vec::new();
    for (i, text) in list.iter().enumerate() {
        let at = spans.get(i).cloned().flatten().or_else(|| span.clone());
        match text.parse::<ListenAddr>() {
            Ok(addr) if out.iter().any(|l| l.addr == addr) => {
                sink.push(at, format!("{what}: `{text}` is listed twice"), None, None);
            }
            Ok(addr) => {
                let (file, line, column) = sink.place_parts(at);
                out.push(ListenSpec { addr, file, line, column });
            }
            Err(e) => sink.push(at, format!("{what}: sockets: {e}"), Some(FORMS.into()), None),
        }
    }
    if let Some(fd) = notify.fd {
        let taken = 3..3 + list.len() as i32;
        if taken.contains(&fd) {
            sink.push(
                key_span(table, "notify_fd"),
                format!("{what}: `notify_fd = {fd}` is where a socket goes (sockets take fds 3 to {})", taken.end - 1),
                Some(format!("notify_fd = {} or above", taken.end)),
                None,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    use std::path::Path;

    #[cfg(unix)]
    fn errors(body: &str) -> String {
        let src = format!("[services.web]\ncommand = [\"true\"]\n{body}\n");
        match crate::config::parse(&src, Path::new("/x/corral.toml")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[cfg(unix)]
    fn spec(body: &str) -> crate::config::ServiceSpec {
        let src = format!("[services.web]\ncommand = [\"true\"]\n{body}\n");
        crate::config::parse(&src, Path::new("/x/corral.toml")).unwrap().services["web"].as_ref().clone()
    }

    // Unix paths and Unix-only keys; Windows refuses them at load.
    #[cfg(unix)]
    #[test]
    fn the_keys_are_read_with_their_defaults() {
        let s = spec("notify = true\nwatchdog = \"2s\"\nsockets = [\"tcp://127.0.0.1:8080\", \"unix:/run/x.sock\"]");
        assert!(s.notify.notify && s.notify.gates_ready());
        assert_eq!(s.notify.watchdog, Some(std::time::Duration::from_secs(2)));
        assert_eq!(s.notify.start_timeout, std::time::Duration::from_secs(90));
        assert_eq!(s.sockets.len(), 2);
        assert_eq!((s.sockets[1].line, s.sockets[1].column), (5, 36));
        assert!(!spec("").notify.is_active());
    }

    // Unix paths and Unix-only keys; Windows refuses them at load.
    #[cfg(unix)]
    #[test]
    fn bad_values_are_errors_at_their_place() {
        assert!(errors("notify_fd = 2").starts_with("/x/corral.toml:3:13: service `web`: `notify_fd` is 2"));
        assert!(errors("watchdog = \"1s\"").contains("`watchdog` needs `notify = true`"));
        assert!(errors("notify = true\nwatchdog = \"1ms\"").contains("out of range"));
        assert!(errors("start_timeout = \"5s\"").contains("does not notify"));
        let e = errors("sockets = [\"tcp://127.0.0.1:1\", \"tcp://nowhere:80\"]");
        assert!(
            e.starts_with("/x/corral.toml:3:33: service `web`: sockets: `tcp://nowhere:80` is not tcp://IP:PORT"),
            "{e}"
        );
        assert!(errors("sockets = [\"unix:/a.sock\", \"unix:/a.sock\"]").contains("listed twice"));
        assert!(errors("sockets = [\"unix:/a.sock\"]\nnotify_fd = 3").contains("is where a socket goes"));
        assert!(errors("sockets = [\"unix:/a.sock\"]\nnotify_fd = 4").is_empty());
    }
}
