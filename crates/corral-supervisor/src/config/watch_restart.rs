//! `watch = { paths = ["src"], ignore = ["*.log"], debounce = "300ms",
//! action = "restart" }` of one service, read from the document so that
//! each error carries its own place (a missing path points at itself).

use super::diagnostic::{did_you_mean, Sink};
use super::paths::anchor;
use super::validate::key_span;
use crate::watch_restart::{WatchAction, WatchSpec};
use std::path::Path;
use toml_edit::{TableLike, Value};

const KEYS: [&str; 4] = ["paths", "ignore", "debounce", "action"];
const ACTION: &str =
    "\"restart\", \"reload\" (the service's `reload_signal` or `reload`), or \"signal:NAME\" like \"signal:HUP\"";

pub(super) fn read(sink: &mut Sink<'_>, what: &str, table: &dyn TableLike, base: &Path) -> Option<WatchSpec> {
    let item = table.get("watch")?;
    let wspan = key_span(table, "watch");
    let Some(w) = item.as_table_like() else {
        let expected = Some("watch = { paths = [\"src\"], debounce = \"300ms\" }".to_string());
        sink.push(wspan, format!("{what}: `watch` must be a table"), expected, None);
        return None;
    };
    let before = sink.out.len();
    for (key, _) in w.iter() {
        if !KEYS.contains(&key) {
            let span = w.get_key_value(key).and_then(|(k, _)| k.span());
            let expected = Some("`paths`, `ignore`, `debounce` or `action`".to_string());
            sink.push(span, format!("{what}: unknown key `{key}` in `watch`"), expected, did_you_mean(key, KEYS));
        }
    }
    let strings = |sink: &mut Sink<'_>, key: &str| -> Vec<(String, super::validate::Span)> {
        let Some(item) = w.get(key) else { return Vec::new() };
        let span = key_span(w, key);
        let Some(array) = item.as_array() else {
            sink.push(span, format!("{what}: `watch.{key}` must be an array of strings"), None, None);
            return Vec::new();
        };
        if array.len() > WatchSpec::MAX_PATHS {
            let expected = Some(format!("at most {} entries", WatchSpec::MAX_PATHS));
            sink.push(span, format!("{what}: `watch.{key}` has {} entries", array.len()), expected, None);
            return Vec::new();
        }
        let mut out = Vec::new();
        for v in array.iter() {
            match v {
                Value::String(s) => out.push((s.value().clone(), v.span())),
                _ => sink.push(
                    v.span().or(span.clone()),
                    format!("{what}: `watch.{key}` holds a non-string"),
                    None,
                    None,
                ),
            }
        }
        out
    };
    let paths = strings(sink, "paths");
    if paths.is_empty() && !w.contains_key("paths") {
        sink.push(
            wspan.clone(),
            format!("{what}: `watch` has no `paths`"),
            Some("paths = [\"src\", \"config.yml\"]".into()),
            None,
        );
    }
    let mut abs = Vec::new();
    for (p, span) in paths {
        let full = anchor(base, Path::new(&p));
        if !full.exists() {
            let expected = Some("an existing file or folder (relative paths start at the config's folder)".into());
            sink.push(span, format!("{what}: the watched path {} does not exist", full.display()), expected, None);
        }
        abs.push(full);
    }
    let mut ignore = Vec::new();
    for (g, span) in strings(sink, "ignore") {
        match globset::Glob::new(&g) {
            Ok(_) => ignore.push(g),
            Err(e) => sink.push(
                span,
                format!("{what}: `{g}` is not a valid glob: {}", e.kind()),
                Some("a glob like \"*.log\" or \"target/**\"".into()),
                None,
            ),
        }
    }
    let (lo, hi) = WatchSpec::DEBOUNCE_RANGE;
    let debounce = match w.get("debounce").map(|i| i.as_str().map(corral::units::parse_duration)) {
        None => WatchSpec::DEBOUNCE_DEFAULT,
        Some(Some(Ok(d))) if (lo..=hi).contains(&d) => d,
        Some(_) => {
            let fmt = corral::units::format_duration;
            let expected = Some(format!("a duration from {} to {}, like \"300ms\"", fmt(lo), fmt(hi)));
            sink.push(
                key_span(w, "debounce"),
                format!("{what}: `watch.debounce` is not a duration in range"),
                expected,
                None,
            );
            WatchSpec::DEBOUNCE_DEFAULT
        }
    };
    let action = match w.get("action").map(|i| i.as_str()) {
        None | Some(Some("restart")) => WatchAction::Restart,
        Some(Some("reload")) if table.contains_key("reload_signal") || table.contains_key("reload") => {
            WatchAction::Reload
        }
        Some(Some("reload")) => {
            let expected = Some(
                "reload_signal = \"HUP\" or reload = [\"cmd\", ...] in the service, or action = \"restart\"".into(),
            );
            let msg = format!("{what}: `watch.action = \"reload\"` needs the service's `reload_signal` or `reload`");
            sink.push(key_span(w, "action"), msg, expected, None);
            WatchAction::Restart
        }
        Some(Some(a)) if a.starts_with("signal:") => match a["signal:".len()..].parse::<corral::Signal>() {
            Ok(s) => WatchAction::Signal(s),
            Err(e) => {
                sink.push(key_span(w, "action"), format!("{what}: `watch.action`: {e}"), Some(ACTION.into()), None);
                WatchAction::Restart
            }
        },
        Some(other) => {
            let word = other.unwrap_or_default();
            let hint = did_you_mean(word, ["restart", "reload"]);
            sink.push(
                key_span(w, "action"),
                format!("{what}: unknown `watch.action` `{word}`"),
                Some(ACTION.into()),
                hint,
            );
            WatchAction::Restart
        }
    };
    if sink.out.len() > before {
        return None;
    }
    Some(WatchSpec { paths: abs, ignore, debounce, action, base: base.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::watch_restart::WatchAction;

    #[test]
    fn paths_are_anchored_at_the_config_and_the_action_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        let path = dir.path().join("corral.toml");
        let c = parse(
            "[services.w]\ncommand = [\"x\"]\nwatch = { paths = [\"src\"], ignore = [\"*.log\"], action = \"signal:HUP\" }\n",
            &path,
        )
        .unwrap();
        let w = c.services["w"].watch.clone().unwrap();
        assert_eq!(w.paths, [dir.path().join("src")]);
        assert_eq!(w.action, WatchAction::Signal(corral::Signal::HUP));
        assert_eq!(w.debounce, crate::watch_restart::WatchSpec::DEBOUNCE_DEFAULT);
    }

    #[test]
    fn a_bad_glob_action_or_key_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corral.toml");
        let e = parse(
            "[services.w]\ncommand = [\"x\"]\nwatch = { paths = [\".\"], ignore = [\"a[\"], action = \"reloa\", debounc = \"1s\" }\n",
            &path,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`a[` is not a valid glob"), "{e}");
        assert!(e.contains("unknown `watch.action` `reloa`") && e.contains("did you mean `reload`"), "{e}");
        assert!(e.contains("unknown key `debounc` in `watch`") && e.contains("did you mean `debounce`"), "{e}");
        let reload =
            parse("[services.w]\ncommand = [\"x\"]\nwatch = { paths = [\".\"], action = \"reload\" }\n", &path);
        assert!(reload.unwrap_err().to_string().contains("needs the service's `reload_signal` or `reload`"));
    }
}
