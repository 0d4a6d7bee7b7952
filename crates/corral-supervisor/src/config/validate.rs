//! From text to a checked [`Config`], collecting every error on the way.
//!
//! serde stops at the first error, so each key is deserialized on its own
//! first: one bad key never hides another. Checks that span several values
//! (a dependency on an unknown service, a cycle) come after.

use super::diagnostic::{did_you_mean, split_unknown, ConfigErrors, Sink};
use super::paths::{anchor, base_dir};
use super::raw::*;
use super::{Config, DaemonConfig, LogPolicy, ServiceSpec, Specs, TcpConfig};
use super::{MAX_BURST, MAX_FACTOR, MAX_INSTANCES, MAX_KEEP, MAX_NAME_LEN, MAX_PROCS, MAX_TOTAL_INSTANCES};
use crate::policy::{find_cycle, Backoff, Condition, RestartPolicy, StartLimit};
use serde::de::{DeserializeOwned, IntoDeserializer};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use toml_edit::{ImDocument, InlineTable, Item, TableLike, Value};

pub(super) type Span = Option<Range<usize>>;
use super::Placements;

pub(crate) fn parse(src: &str, path: &Path) -> Result<Config, ConfigErrors> {
    parse_as(src, path, false).map(|(c, _)| c)
}

/// A service as read, with the index of the file that defines it (0: the
/// main file, then the included files in order).
type Found<'d> = (String, Span, RawService, &'d dyn TableLike, usize);

/// With `fleet_spec`, the text is desired state for a fleet: only
/// `[services.*]`, each with an optional `placement`; a `depends_on` may name
/// services the spec does not hold.
pub(crate) fn parse_as(src: &str, path: &Path, fleet_spec: bool) -> Result<(Config, Placements), ConfigErrors> {
    let file = path.display().to_string();
    let mut sink = Sink::new(&file, src);
    let doc = match ImDocument::parse(src.to_string()) {
        Ok(d) => d,
        Err(e) => {
            let msg = e.message().trim().replace('\n', ", ");
            sink.push(e.span(), format!("invalid TOML: {msg}"), None, None);
            return Err(ConfigErrors(sink.finish()));
        }
    };
    let root = doc.as_table();
    let base = base_dir(path);
    let (sources, included) =
        if fleet_spec { (Vec::new(), Default::default()) } else { super::include::read(&mut sink, root, path, &base) };
    let mut daemon = RawDaemon::default();
    let (mut fleet, mut placements) = (None, Placements::new());
    let mut services: Vec<Found<'_>> = Vec::new();
    for (key, item) in root.iter() {
        let key_span = root.key(key).and_then(|k| k.span());
        match key {
            "daemon" | "fleet" | "include" if fleet_spec => {
                sink.push(key_span, format!("a fleet spec holds only services, not [{key}]"), None, None)
            }
            "include" => {}
            "fleet" => fleet = Some((item, key_span)),
            "daemon" => {
                if let Some(d) = read_table::<RawDaemon>(&mut sink, item, key_span, "[daemon]") {
                    daemon = d;
                }
            }
            "services" => read_services(&mut sink, item, key_span, 0, &mut services),
            other => sink.push(
                key_span,
                format!("unknown top-level key `{other}`"),
                Some("`daemon`, `services`, `include` or `fleet`".into()),
                did_you_mean(other, ["daemon", "services", "include", "fleet"]),
            ),
        }
    }
    let mut sinks = vec![sink];
    sinks.extend(sources.iter().map(|s| Sink::new(&s.shown, &s.text)));
    let docs: Vec<Option<ImDocument<String>>> = sources
        .iter()
        .zip(sinks.iter_mut().skip(1))
        .map(|(s, sink)| match ImDocument::parse(s.text.clone()) {
            Ok(d) => Some(d),
            Err(e) => {
                let msg = e.message().trim().replace('\n', ", ");
                sink.push(e.span(), format!("invalid TOML: {msg}"), None, None);
                None
            }
        })
        .collect();
    for (i, doc) in docs.iter().enumerate() {
        let Some(doc) = doc else { continue };
        let (root, sink) = (doc.as_table(), &mut sinks[i + 1]);
        for (key, item) in root.iter() {
            let key_span = root.key(key).and_then(|k| k.span());
            if key == "services" {
                read_services(sink, item, key_span, i + 1, &mut services);
            } else {
                let hint = Some(
                    "only [services.NAME] sections; `daemon`, `fleet` and `include` stay in the main config".into(),
                );
                sink.push(key_span, format!("an included file holds only services, not `{key}`"), hint, None);
            }
        }
    }
    let shown_at = |sinks: &[Sink<'_>], idx: usize, span: &Span| sinks[idx].place(span);
    let mut first_place: BTreeMap<String, String> = BTreeMap::new();
    let mut unique: Vec<Found<'_>> = Vec::new();
    for found in services {
        let place = shown_at(&sinks, found.4, &found.1);
        match first_place.get(&found.0) {
            Some(first) => {
                let msg = format!("service `{}` is defined twice: here and at {first}", found.0);
                let hint = Some("one definition per service name, across the main config and its includes".into());
                sinks[found.4].push(found.1.clone(), msg, hint, None);
            }
            None => {
                first_place.insert(found.0.clone(), place);
                unique.push(found);
            }
        }
    }
    let services = unique;
    let sink = &mut sinks[0];
    let daemon = daemon_config(sink, daemon, &base, root);
    let fleet = fleet.and_then(|(item, span)| super::fleet::fleet_config(sink, item, span, &base));
    let names: Vec<String> = services.iter().map(|s| s.0.clone()).collect();
    let mut specs = BTreeMap::new();
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut dep_spans: BTreeMap<String, (usize, Span)> = BTreeMap::new();
    let mut spans: BTreeMap<String, (usize, Span)> = BTreeMap::new();
    for (name, span, raw, table, idx) in services {
        let sink = &mut sinks[idx];
        spans.insert(name.clone(), (idx, span.clone()));
        deps.insert(name.clone(), raw.depends_on.iter().flatten().map(|(d, _)| d.clone()).collect());
        dep_spans.insert(name.clone(), (idx, key_span(table, "depends_on").or(span.clone())));
        let what = format!("service `{name}`");
        // A fleet service may depend on a service this spec does not hold:
        // another fleet service, or one of a node's local services. Each
        // node resolves it against what it runs (fleet::Overlay).
        let known: Vec<String> = if fleet_spec {
            names.iter().cloned().chain(raw.depends_on.iter().flatten().map(|(d, _)| d.clone())).collect()
        } else {
            names.clone()
        };
        if fleet_spec {
            placements.extend(super::fleet::placement(sink, &what, table).map(|p| (name.clone(), p)));
        } else if table.contains_key("placement") {
            let hint = Some("placement only in specs for `corral fleet apply`".into());
            sink.push(key_span(table, "placement"), format!("{what}: `placement` is for fleet services"), hint, None);
        }
        if let Some(spec) = service_spec(sink, &name, span, raw, table, &known, (&base, daemon.log_format)) {
            specs.insert(name, Arc::new(spec));
        }
    }
    total_instances(&mut sinks, &specs, &spans);
    if let Some(cycle) = find_cycle(&deps) {
        let (idx, span) = dep_spans.get(&cycle[0]).cloned().unwrap_or((0, None));
        sinks[idx].push(
            span,
            format!("dependency cycle: {}", cycle.join(" -> ")),
            Some("services that depend on each other in one direction only".into()),
            None,
        );
    }
    let errors: Vec<_> = sinks.into_iter().flat_map(Sink::finish).collect();
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let config = Config { path: path.to_path_buf(), daemon, fleet, services: specs, included };
    Ok((config, placements))
}

/// The `[services.NAME]` tables of one file.
fn read_services<'d>(sink: &mut Sink<'_>, item: &'d Item, key_span: Span, idx: usize, out: &mut Vec<Found<'d>>) {
    let Some(table) = item.as_table_like() else {
        sink.push(key_span, "`services` must be a table", Some("[services.NAME] sections".into()), None);
        return;
    };
    for (name, sitem) in table.iter() {
        let span = table.get_key_value(name).and_then(|(k, _)| k.span());
        let what = format!("service `{name}`");
        if let Some(raw) = read_table::<RawService>(sink, sitem, span.clone(), &what) {
            if let Some(t) = sitem.as_table_like() {
                out.push((name.to_string(), span, raw, t, idx));
            }
        }
    }
}

/// The daemon-wide bound on instances, reported at the service that
/// crosses it (in file order, the main file first).
fn total_instances(sinks: &mut [Sink<'_>], specs: &Specs, spans: &BTreeMap<String, (usize, Span)>) {
    let mut in_order: Vec<(usize, &Span, u32)> = specs
        .iter()
        .map(|(name, s)| spans.get(name).map_or((0, &None, s.instances), |(i, span)| (*i, span, s.instances)))
        .collect();
    in_order.sort_by_key(|(i, span, _)| (*i, span.as_ref().map_or(usize::MAX, |r| r.start)));
    let mut total = 0u32;
    for (idx, span, n) in in_order {
        total = total.saturating_add(n);
        if total > MAX_TOTAL_INSTANCES {
            sinks[idx].push(
                span.clone(),
                format!("more than {MAX_TOTAL_INSTANCES} instances in all services together"),
                Some("fewer services or instances; spread them over several daemons".into()),
                None,
            );
            return;
        }
    }
}

/// Deserializes a table key by key so that every bad key is reported,
/// then the good keys as a whole, so that checks across keys still run on
/// what could be read (and report their own errors too).
pub(super) fn read_table<T: DeserializeOwned>(sink: &mut Sink<'_>, item: &Item, span: Span, what: &str) -> Option<T> {
    let Some(table) = item.as_table_like() else {
        sink.push(
            span,
            format!("{what} must be a table"),
            Some(format!("a [section] or {{ key = value }} for {what}")),
            None,
        );
        return None;
    };
    let mut good = InlineTable::new();
    for (key, value) in table.iter() {
        let kspan = table.get_key_value(key).and_then(|(k, _)| k.span());
        let Ok(value) = value.clone().into_value() else { continue };
        let mut one = InlineTable::new();
        one.insert(key, value.clone());
        match T::deserialize(Value::InlineTable(one).into_deserializer()) {
            Ok(_) => {
                good.insert(key, value);
            }
            Err(e) => report(sink, &e, kspan, what),
        }
    }
    match T::deserialize(Value::InlineTable(good).into_deserializer()) {
        Ok(t) => Some(t),
        Err(e) => {
            report(sink, &e, span, what);
            None
        }
    }
}

/// serde names Rust types; people read TOML.
fn plain_type(expected: &str) -> String {
    match expected {
        "u32" | "u64" | "usize" => "a whole number, 0 or more".into(),
        "i32" | "i64" => "a whole number".into(),
        "f64" | "f32" => "a number, like 2.0".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "an array, like [\"a\", \"b\"]".into(),
        "a map" => "a table, like { key = \"value\" }".into(),
        other => other.to_string(),
    }
}

fn report(sink: &mut Sink<'_>, e: &toml_edit::de::Error, fallback: Span, what: &str) {
    let span = e.span().or(fallback);
    let msg = e.message().trim();
    match split_unknown(msg) {
        Some((kind, word, known)) => {
            let hint = did_you_mean(&word, known.iter().map(String::as_str));
            let expected = match known.len() {
                0 => None,
                1 => Some(format!("`{}`", known[0])),
                _ => Some(format!("one of {}", known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))),
            };
            sink.push(span, format!("{what}: unknown {kind} `{word}`"), expected, hint);
        }
        None => {
            // serde says "invalid type: string \"x\", expected u32"; keep
            // the expected part on its own line.
            let (m, exp) = match msg.split_once(", expected ") {
                Some((m, exp)) => (m.to_string(), Some(plain_type(exp))),
                None => match msg.split_once(": expected ") {
                    Some((m, exp)) => (m.to_string(), Some(exp.to_string())),
                    None => (msg.to_string(), None),
                },
            };
            sink.push(span, format!("{what}: {m}"), exp, None);
        }
    }
}

pub(super) fn key_span(table: &dyn TableLike, key: &str) -> Span {
    table.get_key_value(key).and_then(|(k, v)| v.span().or_else(|| k.span()))
}

fn daemon_config(sink: &mut Sink<'_>, raw: RawDaemon, base: &Path, root: &toml_edit::Table) -> DaemonConfig {
    let state_dir = raw.state_dir.map(|p| anchor(base, &p)).unwrap_or_else(|| base.join(".corral"));
    let log_dir = raw.log_dir.map(|p| anchor(base, &p)).unwrap_or_else(|| state_dir.join("logs"));
    let socket = raw.socket.map(|p| anchor(base, &p)).unwrap_or_else(|| state_dir.join("corral.sock"));
    let dspan = root.get("daemon").and_then(|d| d.as_table_like()).and_then(|t| key_span(t, "socket"));
    // sun_path holds 108 bytes with the terminating NUL.
    if cfg!(unix) && socket.as_os_str().len() > 107 {
        sink.push(
            dspan,
            format!("the socket path is {} bytes, longer than a Unix socket allows (107)", socket.as_os_str().len()),
            Some("a shorter path: set [daemon] socket, e.g. \"/tmp/myproject.sock\"".into()),
            None,
        );
    }
    let tcp = raw.tcp.map(|t| TcpConfig { listen: t.listen.0, cert: t.cert, key: t.key, token_file: t.token_file });
    if let Some(t) = &tcp {
        let missing: Vec<String> =
            [("cert", t.cert.is_none()), ("key", t.key.is_none()), ("token_file", t.token_file.is_none())]
                .into_iter()
                .filter(|&(_, gone)| gone)
                .map(|(k, _)| format!("`{k}`"))
                .collect();
        if !missing.is_empty() {
            let tspan = root
                .get("daemon")
                .and_then(|d| d.as_table_like())
                .and_then(|d| d.get_key_value("tcp"))
                .and_then(|(k, _)| k.span());
            sink.push(
                tspan,
                format!(
                    "[daemon.tcp] needs TLS and a bearer token; a plain TCP control port is refused (missing: {})",
                    missing.join(", ")
                ),
                Some("cert = \"cert.pem\", key = \"key.pem\" and token_file = \"token\" in [daemon.tcp]".into()),
                None,
            );
        }
    }
    let tcp = tcp.map(|t| TcpConfig {
        cert: t.cert.map(|p| anchor(base, &p)),
        key: t.key.map(|p| anchor(base, &p)),
        token_file: t.token_file.map(|p| anchor(base, &p)),
        ..t
    });
    let events = events_policy(sink, raw.events, root);
    let client_timeout = raw.client_timeout.map_or(DaemonConfig::CLIENT_TIMEOUT_DEFAULT, |d| d.0);
    let (shortest, longest) = DaemonConfig::CLIENT_TIMEOUT_RANGE;
    let fmt = corral::units::format_duration;
    if !(shortest..=longest).contains(&client_timeout) {
        let span = root.get("daemon").and_then(|d| d.as_table_like()).and_then(|t| key_span(t, "client_timeout"));
        sink.push(
            span,
            format!("[daemon] client_timeout is {}, out of range", fmt(client_timeout)),
            Some(format!("a duration from {} to {}, like \"10s\"", fmt(shortest), fmt(longest))),
            None,
        );
    }
    let dtable = root.get("daemon").and_then(|d| d.as_table_like());
    let web = super::web::web_config(sink, dtable, tcp.as_ref(), base);
    DaemonConfig {
        web,
        events,
        socket,
        state_dir,
        log_dir,
        tcp,
        metrics_listen: raw.metrics_listen.map(|a| a.0),
        watch_config: raw.watch_config.unwrap_or(true),
        client_timeout: client_timeout.clamp(shortest, longest),
        log_format: raw.logs.and_then(|l| l.format).unwrap_or_default(),
    }
}

/// `[daemon] events = { max_size, keep }`.
fn events_policy(sink: &mut Sink<'_>, raw: Option<RawLogs>, root: &toml_edit::Table) -> LogPolicy {
    let mut p = LogPolicy::default();
    let Some(l) = raw else { return p };
    let span = root.get("daemon").and_then(|d| d.as_table_like()).and_then(|t| key_span(t, "events"));
    p.max_size = l.max_size.map_or(p.max_size, |s| s.0);
    p.keep = l.keep.unwrap_or(p.keep);
    if p.max_size < 1024 {
        sink.push(
            span.clone(),
            "[daemon] events.max_size is below 1KiB",
            Some("a size like \"10MiB\"".to_string()),
            None,
        );
    }
    if p.keep > LogPolicy::MAX_KEEP {
        sink.push(
            span,
            format!("[daemon] events.keep is {}, more than {} files", p.keep, LogPolicy::MAX_KEEP),
            Some("a count like 5".into()),
            None,
        );
    }
    p
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[allow(clippy::too_many_arguments)]
fn service_spec(
    sink: &mut Sink<'_>,
    name: &str,
    span: Span,
    mut raw: RawService,
    table: &dyn TableLike,
    names: &[String],
    (base, log_format): (&Path, crate::logs::LogFormat),
) -> Option<ServiceSpec> {
    let errors_before = sink.out.len();
    let what = format!("service `{name}`");
    if !valid_name(name) {
        let shown: String = name.chars().take(MAX_NAME_LEN).collect();
        let why = match name.chars().count() {
            n if n > MAX_NAME_LEN => format!("`{shown}…` ({n} characters)"),
            _ => format!("`{name}`"),
        };
        sink.push(
            span.clone(),
            format!("invalid service name {why}"),
            Some(format!("at most {MAX_NAME_LEN} letters, digits, `-`, `_` and `.`")),
            None,
        );
    }
    let shell = raw.shell.unwrap_or(false);
    let cspan = key_span(table, "command");
    let has_command = raw.command.is_some();
    let command = match raw.command {
        None => {
            sink.push(
                span.clone(),
                format!("{what} has no `command`"),
                Some("command = [\"program\", \"arg\", ...]".into()),
                None,
            );
            Vec::new()
        }
        Some(RawCommand::Line(line)) if shell => shell_argv(&line),
        Some(RawCommand::Line(_)) => {
            sink.push(
                cspan.clone(),
                format!("{what}: `command` is a string, and it is never run through a shell unless `shell = true`"),
                Some("an array like [\"python3\", \"-m\", \"http.server\"], or `shell = true`".into()),
                None,
            );
            Vec::new()
        }
        Some(RawCommand::Argv(argv)) if shell => shell_argv(&argv.join(" ")),
        Some(RawCommand::Argv(argv)) => argv,
    };
    if has_command && command.first().is_none_or(|p| p.trim().is_empty()) && sink.out.len() == errors_before {
        sink.push(
            cspan,
            format!("{what}: `command` is empty"),
            Some("at least the program: [\"program\", ...]".into()),
            None,
        );
    }
    let instances = raw.instances.unwrap_or(1);
    if !(1..=MAX_INSTANCES).contains(&instances) {
        sink.push(
            key_span(table, "instances"),
            format!("{what}: `instances` is {instances}"),
            Some(format!("1 to {MAX_INSTANCES}")),
            None,
        );
    }
    let restart = match raw.restart.unwrap_or(RawRestart::OnFailure) {
        RawRestart::No => RestartPolicy::No,
        RawRestart::OnFailure => RestartPolicy::OnFailure,
        RawRestart::Always => RestartPolicy::Always,
    };
    let scheduled = super::schedule::read(sink, &what, table, raw.instances.is_some(), raw.restart);
    let instances = scheduled.schedule.as_ref().map_or(instances, |s| s.max_concurrent);
    // A scheduled run that fails waits for the next tick unless asked.
    let restart = if scheduled.schedule.is_some() && raw.restart.is_none() { RestartPolicy::No } else { restart };
    let mut backoff = Backoff::default();
    if let Some(b) = raw.backoff {
        let bspan = key_span(table, "backoff");
        backoff.initial = b.initial.map_or(backoff.initial, |d| d.0);
        backoff.max = b.max.map_or(backoff.max, |d| d.0);
        backoff.factor = b.factor.unwrap_or(backoff.factor);
        backoff.reset_after = b.reset_after.map_or(backoff.reset_after, |d| d.0);
        backoff.jitter = b.jitter.unwrap_or(backoff.jitter);
        if !(1.0..=MAX_FACTOR).contains(&backoff.factor) {
            sink.push(
                bspan.clone(),
                format!("{what}: backoff factor {} is out of range", short(backoff.factor)),
                Some(format!("a number from 1.0 to {MAX_FACTOR}, like 2.0")),
                None,
            );
        }
        if backoff.initial > backoff.max {
            sink.push(
                bspan.clone(),
                format!("{what}: backoff initial is longer than max"),
                Some("initial <= max".into()),
                None,
            );
        }
        if !(0.0..=1.0).contains(&backoff.jitter) {
            sink.push(
                bspan,
                format!("{what}: backoff jitter {} is out of range", backoff.jitter),
                Some("a fraction from 0.0 to 1.0".into()),
                None,
            );
        }
    }
    let mut start_limit = StartLimit::default();
    if let Some(s) = raw.start_limit {
        start_limit.burst = s.burst.unwrap_or(start_limit.burst);
        start_limit.interval = s.interval.map_or(start_limit.interval, |d| d.0);
        if !(1..=MAX_BURST).contains(&start_limit.burst) {
            sink.push(
                key_span(table, "start_limit"),
                format!("{what}: start_limit burst is {}", start_limit.burst),
                Some(format!("1 to {MAX_BURST}")),
                None,
            );
        }
    }
    let mut stop = corral::StopPolicy::default();
    if let Some(s) = raw.stop {
        stop.signal = s.signal.map_or(stop.signal, |s| s.0);
        stop.grace = s.grace.map_or(stop.grace, |d| d.0);
    }
    let mut limits = corral::Limits::new();
    let mut timeout = None;
    let mut on_limit = None;
    let mut io = None;
    let mut working_set = None;
    if let Some(l) = raw.limits {
        let lspan = key_span(table, "limits");
        let mut bad = |m: &str, e: &str| sink.push(lspan.clone(), format!("{what}: {m}"), Some(e.into()), None);
        if let Some(m) = l.memory {
            if m.0 == 0 {
                bad("limits.memory is 0", "a size like \"512MiB\"");
            }
            limits = limits.memory(m.0);
        }
        if let Some(m) = l.memory_per_process {
            if m.0 == 0 {
                bad("limits.memory_per_process is 0", "a size like \"512MiB\"");
            }
            limits = limits.memory_per_process(m.0);
        }
        if let Some(n) = l.max_procs {
            if !(1..=MAX_PROCS).contains(&n) {
                bad(&format!("limits.max_procs is {n}"), &format!("1 to {MAX_PROCS}"));
            }
            limits = limits.max_procs(n);
        }
        if let Some(c) = l.cpus {
            if !(c.is_finite() && c > 0.0 && c <= corral::MAX_CPUS) {
                bad("limits.cpus must be above 0 and at most 1024", "cores like 0.5 or 2");
            }
            limits = limits.cpus(c);
        }
        if let Some(d) = l.cpu_time {
            if d.0.is_zero() {
                bad("limits.cpu_time is 0", "a duration like \"1m\"");
            }
            limits = limits.cpu_time(d.0);
        }
        if let Some(d) = l.cpu_time_per_process {
            if d.0.is_zero() {
                bad("limits.cpu_time_per_process is 0", "a duration like \"10s\"");
            }
            limits = limits.cpu_time_per_process(d.0);
        }
        timeout = l.timeout.map(|d| d.0);
        on_limit = l.on_limit;
        io = l.io;
        working_set = l.working_set;
    }
    let limits = super::working_set::apply(sink, &what, table, limits, working_set);
    let limits = super::io_limits::apply(sink, &what, key_span(table, "limits"), base, limits, io);
    let limits = super::on_limit::apply(sink, &what, key_span(table, "limits"), limits, on_limit);
    let mut depends_on = BTreeMap::new();
    let dtable = table.get("depends_on").and_then(|i| i.as_table_like());
    for (dep, cond) in raw.depends_on.into_iter().flatten() {
        let dspan = dtable.and_then(|t| t.get_key_value(&dep)).and_then(|(k, _)| k.span());
        if !names.contains(&dep) {
            sink.push(
                dspan,
                format!("{what} depends on `{dep}`, which is not a service"),
                Some(format!(
                    "one of {}",
                    names.iter().filter(|n| *n != name).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                )),
                did_you_mean(&dep, names.iter().map(String::as_str).filter(|n| *n != name)),
            );
        }
        let cond = match cond {
            RawCondition::Started => Condition::Started,
            RawCondition::Healthy => Condition::Healthy,
            RawCondition::Completed => Condition::Completed,
        };
        depends_on.insert(dep, cond);
    }
    let log_output = super::log_output::output(sink, name, raw.logs.as_mut(), table, log_format, base);
    let mut logs = LogPolicy::default();
    if let Some(l) = raw.logs {
        logs.max_size = l.max_size.map_or(logs.max_size, |s| s.0);
        logs.keep = l.keep.unwrap_or(logs.keep);
        if logs.keep > MAX_KEEP {
            sink.push(
                key_span(table, "logs"),
                format!("{what}: logs.keep is {}", logs.keep),
                Some(format!("0 to {MAX_KEEP} rotated files")),
                None,
            );
        }
        if logs.max_size < 1024 {
            sink.push(
                key_span(table, "logs"),
                format!("{what}: logs.max_size is below 1KiB"),
                Some("a size like \"10MiB\"".into()),
                None,
            );
        }
    }
    if let Some(u) = &raw.user {
        if let Err(e) = crate::user::check(u) {
            sink.push(
                key_span(table, "user"),
                format!("{what}: {e}"),
                Some("an existing user name or numeric uid".into()),
                None,
            );
        }
    }
    let cwd = raw.cwd.map(|p| anchor(base, &p));
    if let Some(dir) = &cwd {
        // Checked now so that a typo is a config error with its place, not
        // a spawn failure at every restart.
        if !dir.is_dir() {
            let why = if dir.exists() { "is not a directory" } else { "does not exist" };
            sink.push(
                key_span(table, "cwd"),
                format!("{what}: the working directory {} {why}", dir.display()),
                Some("an existing directory (relative paths start at the config's folder)".into()),
                None,
            );
        }
    }
    let watch = super::watch_restart::read(sink, &what, table, base);
    let health = super::probes::health(sink, &what, table, base);
    let alerts = super::probes::alerts(sink, &what, table);
    let isolate = super::isolate::isolation(sink, &what, table, base);
    let env_files = super::env_file::env_files(sink, &what, table, base);
    let identity = super::identity::identity(sink, &what, table);
    let path_var = raw.env.as_ref().and_then(|e| e.get("PATH")).cloned();
    let (hooks, reload) = super::hooks::hooks(sink, &what, table, path_var.as_deref(), cwd.as_deref());
    let notify =
        super::protocols::notify(sink, &what, (raw.notify, raw.notify_fd, raw.watchdog, raw.start_timeout), table);
    let sockets = super::protocols::sockets(sink, &what, raw.sockets, table, &notify);
    if sink.out.len() > errors_before {
        return None;
    }
    Some(ServiceSpec {
        name: name.to_string(),
        command,
        env: raw.env.unwrap_or_default(),
        inherit_env: raw.inherit_env.unwrap_or_default(),
        cwd,
        instances,
        restart,
        success_exit_codes: raw.success_exit_codes.unwrap_or_else(|| vec![0]),
        backoff,
        start_limit,
        stop,
        limits,
        timeout,
        depends_on,
        logs,
        log_output,
        user: raw.user,
        health,
        alerts,
        trace: raw.trace.unwrap_or(false),
        isolate,
        schedule: scheduled.schedule,
        cron_restart: scheduled.cron_restart,
        watch,
        env_files,
        identity,
        hooks,
        reload,
        notify,
        sockets,
    })
}

fn shell_argv(line: &str) -> Vec<String> {
    if cfg!(windows) {
        vec!["cmd".into(), "/C".into(), line.into()]
    } else {
        vec!["sh".into(), "-c".into(), line.into()]
    }
}
