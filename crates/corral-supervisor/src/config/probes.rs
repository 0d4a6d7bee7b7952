//! `health` and `alerts` of a service: read key by key like the rest of
//! the file, so that every bad setting is reported with its place, then
//! checked as a whole (one check per probe, a URL that parses, thresholds
//! of 1 or more, `log` only where it means something).

use super::diagnostic::{did_you_mean, Sink};
use super::paths::anchor;
use super::raw::{Dur, Size};
use super::validate::{key_span, read_table, Span};
use super::MAX_THRESHOLD;
use crate::alerts::{AlertAction, AlertSpec, Threshold};
use crate::health::{validate as check, Check, HealthSpec, Probe, ProbeKind};
use crate::tls::Trust;
use serde::{de, Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml_edit::{Item, TableLike};

/// `health = { startup, readiness, liveness }`. The probes are read on
/// their own so that an error inside one is reported once, at its place.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[allow(dead_code)]
    startup: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    readiness: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    liveness: Option<de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    http: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    status: Option<Status>,
    ca: Option<PathBuf>,
    insecure: Option<bool>,
    tcp: Option<String>,
    exec: Option<Vec<String>>,
    log: Option<String>,
    initial_delay: Option<Dur>,
    period: Option<Dur>,
    timeout: Option<Dur>,
    success_threshold: Option<Count>,
    failure_threshold: Option<Count>,
    body: Option<String>,
    json: Option<RawJsonBody>,
}

/// `json = { path = "/status", equals = "up" }` of an http probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJsonBody {
    path: String,
    equals: serde_json::Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    memory: Option<Size>,
    cpu: Option<f64>,
    #[serde(rename = "for")]
    hold: Option<Dur>,
    action: Option<AlertAction>,
}

const KINDS: [&str; 4] = ["http", "tcp", "exec", "log"];

/// The health probes of service `what`; empty when there are errors (which
/// are in the sink). `base` anchors relative paths (an https probe's `ca`).
pub(super) fn health(sink: &mut Sink<'_>, what: &str, table: &dyn TableLike, base: &Path) -> HealthSpec {
    let mut spec = HealthSpec::default();
    let Some((key, item)) = table.get_key_value("health") else { return spec };
    let hwhat = format!("{what}: health");
    if read_table::<RawHealth>(sink, item, key.span(), &hwhat).is_none() {
        return spec;
    }
    let Some(ht) = item.as_table_like() else { return spec };
    for kind in [ProbeKind::Startup, ProbeKind::Readiness, ProbeKind::Liveness] {
        let Some((k, pitem)) = ht.get_key_value(kind.as_str()) else { continue };
        let p = probe(sink, &format!("{what}: health.{kind}"), kind, pitem, k.span(), base);
        match kind {
            ProbeKind::Startup => spec.startup = p,
            ProbeKind::Readiness => spec.readiness = p,
            ProbeKind::Liveness => spec.liveness = p,
        }
    }
    spec
}

fn probe(sink: &mut Sink<'_>, what: &str, kind: ProbeKind, item: &Item, span: Span, base: &Path) -> Option<Probe> {
    let before = sink.out.len();
    let raw: RawProbe = read_table(sink, item, span.clone(), what)?;
    let pt = item.as_table_like()?;
    let at = |key: &str| key_span(pt, key).or(span.clone());
    let given: Vec<&str> = KINDS
        .into_iter()
        .filter(|k| match *k {
            "http" => raw.http.is_some(),
            "tcp" => raw.tcp.is_some(),
            "exec" => raw.exec.is_some(),
            _ => raw.log.is_some(),
        })
        .collect();
    let expected_kinds = || Some("one of `http`, `tcp`, `exec`, `log`".to_string());
    match given.len() {
        0 => {
            // A probe with only a misspelt kind already has its error.
            if sink.out.len() == before {
                sink.push(span.clone(), format!("{what} has no check"), expected_kinds(), None);
            }
            return None;
        }
        1 => {}
        _ => {
            let shown: Vec<String> = given.iter().map(|k| format!("`{k}`")).collect();
            sink.push(
                at(given[1]),
                format!("{what} has more than one check: {}", shown.join(" and ")),
                Some("exactly one of `http`, `tcp`, `exec`, `log` per probe".into()),
                None,
            );
        }
    }
    let check = if let Some(url) = raw.http {
        if let Err(e) = check::http_url(&url) {
            sink.push(
                at("http"),
                format!("{what}: {e}"),
                Some("a URL like \"http://127.0.0.1:8080/health\"".into()),
                None,
            );
        }
        let trust = trust(sink, what, &url, raw.ca, raw.insecure, &at, base);
        let body = super::probe_body::body_check(sink, what, raw.body, raw.json.map(|j| (j.path, j.equals)), &at);
        Check::Http {
            url,
            headers: raw.headers.unwrap_or_default(),
            status: raw.status.map_or_else(|| vec![(200, 299)], |s| s.0),
            trust,
            body,
        }
    } else if let Some(addr) = raw.tcp {
        if let Err(e) = check::tcp_addr(&addr) {
            sink.push(at("tcp"), format!("{what}: {e}"), Some("host:port like \"127.0.0.1:5432\"".into()), None);
        }
        Check::Tcp { addr }
    } else if let Some(argv) = raw.exec {
        if argv.first().is_none_or(|p| p.trim().is_empty()) {
            sink.push(at("exec"), format!("{what}: `exec` is empty"), Some("[\"program\", \"arg\", ...]".into()), None);
        }
        Check::Exec { argv }
    } else {
        let pattern = raw.log.unwrap_or_default();
        if let Err(e) = regex::Regex::new(&pattern) {
            let e = e.to_string().lines().last().unwrap_or_default().trim().trim_start_matches("error: ").to_string();
            sink.push(
                at("log"),
                format!("{what}: invalid regex: {e}"),
                Some("a regular expression like \"listening on\"".into()),
                None,
            );
        }
        if kind == ProbeKind::Liveness {
            sink.push(
                at("log"),
                format!("{what}: a `log` probe cannot decide liveness (a line once printed stays printed)"),
                Some("`log` under health.readiness or health.startup; for liveness use http, tcp or exec".into()),
                None,
            );
        }
        Check::Log { pattern }
    };
    if !matches!(check, Check::Http { .. }) {
        for key in ["headers", "status", "body", "json"] {
            if pt.contains_key(key) {
                sink.push(at(key), format!("{what}: `{key}` applies to http probes only"), None, None);
            }
        }
        for key in ["ca", "insecure"] {
            if pt.contains_key(key) {
                sink.push(at(key), format!("{what}: `{key}` applies to https probes only"), None, None);
            }
        }
    }
    let mut p = Probe::new(check);
    p.initial_delay = raw.initial_delay.map_or(p.initial_delay, |d| d.0);
    p.period = raw.period.map_or(p.period, |d| d.0);
    p.timeout = raw.timeout.map_or(p.timeout, |d| d.0);
    p.success_threshold = raw.success_threshold.map_or(p.success_threshold, |c| c.0);
    p.failure_threshold = raw.failure_threshold.map_or(p.failure_threshold, |c| c.0);
    for (key, d) in [("period", p.period), ("timeout", p.timeout)] {
        if d.is_zero() {
            sink.push(
                at(key),
                format!("{what}: `{key}` is 0"),
                Some("a duration like \"10s\" or \"500ms\"".into()),
                None,
            );
        }
    }
    if kind != ProbeKind::Readiness && p.success_threshold != 1 {
        sink.push(
            at("success_threshold"),
            format!("{what}: success_threshold must be 1 for {kind} probes"),
            Some("1 (only readiness may ask for several passes in a row, as in Kubernetes)".into()),
            None,
        );
    }
    (sink.out.len() == before).then_some(p)
}

/// Whom an http probe trusts. `ca` and `insecure` only mean something
/// for https; the CA file is read now, so a bad one stops the load with
/// its place, and a renewed one is seen by the next reload.
fn trust(
    sink: &mut Sink<'_>,
    what: &str,
    url: &str,
    ca: Option<PathBuf>,
    insecure: Option<bool>,
    at: &dyn Fn(&str) -> Span,
    base: &Path,
) -> Trust {
    if !check::is_https(url) {
        for (key, given) in [("ca", ca.is_some()), ("insecure", insecure.is_some())] {
            if given {
                sink.push(
                    at(key),
                    format!("{what}: `{key}` applies to https probes only"),
                    Some("an https URL like \"https://127.0.0.1:8443/health\"".into()),
                    None,
                );
            }
        }
        return Trust::Roots;
    }
    match (ca, insecure.unwrap_or(false)) {
        (Some(_), true) => {
            sink.push(
                at("insecure"),
                format!("{what}: `ca` and `insecure = true` contradict each other"),
                Some(
                    "`ca` to trust a private CA, or `insecure = true` to check nothing (dev certificates only)".into(),
                ),
                None,
            );
            Trust::Insecure
        }
        (Some(ca), false) => match Trust::ca_file(&anchor(base, &ca)) {
            Ok(t) => t,
            Err(e) => {
                sink.push(
                    at("ca"),
                    format!("{what}: {e}"),
                    Some("a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)".into()),
                    None,
                );
                Trust::Roots
            }
        },
        (None, true) => Trust::Insecure,
        (None, false) => Trust::Roots,
    }
}

/// The alerts of service `what`; empty when there are errors.
pub(super) fn alerts(sink: &mut Sink<'_>, what: &str, table: &dyn TableLike) -> Vec<AlertSpec> {
    let Some((key, item)) = table.get_key_value("alerts") else { return Vec::new() };
    let entries: Vec<(Item, Span)> = if let Some(a) = item.as_array() {
        a.iter().map(|v| (Item::Value(v.clone()), v.span())).collect()
    } else if let Some(a) = item.as_array_of_tables() {
        a.iter().map(|t| (Item::Table(t.clone()), t.span())).collect()
    } else {
        sink.push(
            key.span(),
            format!("{what}: `alerts` must be an array of tables"),
            Some("alerts = [{ memory = \"400MiB\", for = \"30s\", action = \"restart\" }]".into()),
            None,
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, (entry, span)) in entries.iter().enumerate() {
        let span = span.clone().or(key.span());
        let awhat = format!("{what}: alerts[{i}]");
        let before = sink.out.len();
        let Some(raw) = read_table::<RawAlert>(sink, entry, span.clone(), &awhat) else { continue };
        let at = |k: &str| entry.as_table_like().and_then(|t| key_span(t, k)).or(span.clone());
        let threshold = match (raw.memory, raw.cpu) {
            (Some(m), None) => {
                if m.0 == 0 {
                    sink.push(
                        at("memory"),
                        format!("{awhat}: memory is 0"),
                        Some("a size like \"400MiB\"".into()),
                        None,
                    );
                }
                Threshold::Memory(m.0)
            }
            (None, Some(c)) => {
                if !(c.is_finite() && c > 0.0 && c <= corral::MAX_CPUS) {
                    sink.push(
                        at("cpu"),
                        format!("{awhat}: cpu must be above 0 and at most 1024"),
                        Some("cores like 0.9 or 2".into()),
                        None,
                    );
                }
                Threshold::Cpu(c)
            }
            (Some(_), Some(_)) => {
                sink.push(
                    at("cpu"),
                    format!("{awhat} has both `memory` and `cpu`"),
                    Some("one alert per metric: two entries".into()),
                    None,
                );
                continue;
            }
            (None, None) => {
                if sink.out.len() == before {
                    let hint = entry
                        .as_table_like()
                        .and_then(|t| t.iter().next().map(|(k, _)| k.to_string()))
                        .and_then(|k| did_you_mean(&k, ["memory", "cpu"]));
                    sink.push(
                        span,
                        format!("{awhat} measures nothing"),
                        Some("`memory = \"400MiB\"` or `cpu = 0.9`".into()),
                        hint,
                    );
                }
                continue;
            }
        };
        if sink.out.len() > before {
            continue;
        }
        out.push(AlertSpec {
            threshold,
            hold: raw.hold.map_or(std::time::Duration::ZERO, |d| d.0),
            action: raw.action.unwrap_or(AlertAction::Log),
        });
    }
    out
}

/// A threshold: a whole number from 1 to [`MAX_THRESHOLD`].
#[derive(Debug, Clone, Copy)]
struct Count(u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a whole number from 1 to {MAX_THRESHOLD}")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                match u32::try_from(v) {
                    Ok(n) if (1..=MAX_THRESHOLD).contains(&n) => Ok(Count(n)),
                    _ => Err(E::custom(format!(
                        "invalid threshold {v}: expected a whole number from 1 to {MAX_THRESHOLD}"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

/// Accepted HTTP statuses: `200`, `[200, 204]`, `"2xx"` or `"200-399"`.
#[derive(Debug, Clone)]
struct Status(Vec<(u16, u16)>);

const STATUS: &str = "a code like 200, a list like [200, 204], or a class like \"2xx\"";

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum One {
            Code(i64),
            Text(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Many {
            One(One),
            List(Vec<One>),
        }
        fn range<E: de::Error>(o: One) -> Result<(u16, u16), E> {
            let bad = |s: String| E::custom(format!("invalid status {s}: expected {STATUS}"));
            let r = match o {
                One::Code(c) => (c, c),
                One::Text(t) => {
                    let s = t.trim().to_ascii_lowercase();
                    if let Some(class) = s.strip_suffix("xx").and_then(|c| c.parse::<i64>().ok()) {
                        (class * 100, class * 100 + 99)
                    } else if let Some((a, b)) = s.split_once('-') {
                        match (a.trim().parse(), b.trim().parse()) {
                            (Ok(a), Ok(b)) => (a, b),
                            _ => return Err(bad(format!("`{t}`"))),
                        }
                    } else {
                        s.parse().map(|c| (c, c)).map_err(|_| bad(format!("`{t}`")))?
                    }
                }
            };
            if (100..=599).contains(&r.0) && (100..=599).contains(&r.1) && r.0 <= r.1 {
                Ok((r.0 as u16, r.1 as u16))
            } else {
                Err(bad(if r.0 == r.1 { r.0.to_string() } else { format!("{}-{}", r.0, r.1) }))
            }
        }
        let many = Many::deserialize(d).map_err(|_| de::Error::custom(format!("invalid status: expected {STATUS}")))?;
        let list = match many {
            Many::One(o) => vec![range(o)?],
            Many::List(l) if !l.is_empty() => l.into_iter().map(range).collect::<Result<_, _>>()?,
            Many::List(_) => return Err(de::Error::custom(format!("an empty status list: expected {STATUS}"))),
        };
        Ok(Status(list))
    }
}

#[cfg(test)]
mod tests {
    use crate::alerts::{AlertAction, Threshold};
    use crate::config::parse;
    use crate::health::{Check, ProbeKind};
    use crate::tls::Trust;
    use std::path::Path;
    use std::time::Duration;

    fn errors(src: &str) -> String {
        parse(src, Path::new("corral.toml")).unwrap_err().to_string()
    }

    #[test]
    fn probes_take_kubernetes_defaults_and_every_form() {
        let c = parse(
            r#"
[services.web]
command = ["web"]
health.startup = { log = "listening on \\d+" }
health.readiness = { http = "http://127.0.0.1:8080/ready", headers = { X-Probe = "1" }, status = [200, "3xx"], success_threshold = 2 }
health.liveness = { exec = ["check", "--quick"], period = "5s", timeout = "500ms", initial_delay = "2s", failure_threshold = 5 }

[[services.web.alerts]]
memory = "400MiB"
for = "30s"
action = "restart"

[[services.web.alerts]]
cpu = 1

[services.db]
command = ["db"]
health.liveness = { tcp = "localhost:5432" }
health.readiness = { http = "http://[::1]/", status = "200-204" }
"#,
            Path::new("corral.toml"),
        )
        .unwrap();
        let web = &c.services["web"];
        let s = web.health.startup.as_ref().unwrap();
        assert_eq!(s.check, Check::Log { pattern: "listening on \\d+".into() });
        assert_eq!(
            (s.initial_delay, s.period, s.timeout),
            (Duration::ZERO, Duration::from_secs(10), Duration::from_secs(1))
        );
        assert_eq!((s.success_threshold, s.failure_threshold), (1, 3));
        let r = web.health.readiness.as_ref().unwrap();
        match &r.check {
            Check::Http { url, headers, status, .. } => {
                assert_eq!(url, "http://127.0.0.1:8080/ready");
                assert_eq!(headers["X-Probe"], "1");
                assert_eq!(status, &[(200, 200), (300, 399)]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.success_threshold, 2);
        let l = web.health.liveness.as_ref().unwrap();
        assert_eq!(l.check, Check::Exec { argv: vec!["check".into(), "--quick".into()] });
        assert_eq!(
            (l.initial_delay, l.period, l.timeout),
            (Duration::from_secs(2), Duration::from_secs(5), Duration::from_millis(500))
        );
        assert_eq!(l.failure_threshold, 5);
        assert_eq!(
            web.health.probes().map(|(k, _)| k).collect::<Vec<_>>(),
            [ProbeKind::Startup, ProbeKind::Readiness, ProbeKind::Liveness]
        );
        assert_eq!(web.alerts.len(), 2);
        assert_eq!(web.alerts[0].threshold, Threshold::Memory(400 << 20));
        assert_eq!((web.alerts[0].hold, web.alerts[0].action), (Duration::from_secs(30), AlertAction::Restart));
        assert_eq!(web.alerts[1].threshold, Threshold::Cpu(1.0));
        assert_eq!((web.alerts[1].hold, web.alerts[1].action), (Duration::ZERO, AlertAction::Log));
        let db = &c.services["db"];
        assert_eq!(db.health.liveness.as_ref().unwrap().check, Check::Tcp { addr: "localhost:5432".into() });
        match &db.health.readiness.as_ref().unwrap().check {
            Check::Http { status, .. } => assert_eq!(status, &[(200, 204)]),
            other => panic!("{other:?}"),
        }
        assert!(!db.health.gates_ready() || db.health.readiness.is_some());
    }

    #[test]
    fn a_probe_needs_exactly_one_check_and_sane_settings() {
        let e = errors(
            r#"
[services.a]
command = ["a"]
health.liveness = { period = "1s" }
health.readiness = { http = "http://x/", tcp = "x:1" }
health.startup = { tcp = "x:1", success_threshold = 2, timeout = 0, headers = { A = "b" } }

[services.b]
command = ["b"]
health.readiness = { http = "https://x/", status = 99 }
health.liveness = { exec = [], failure_threshold = 0 }
alerts = [{ memory = "1GiB", cpu = 1.0 }, { action = "log" }, { memory = 0 }]
"#,
        );
        for want in [
            "corral.toml:4:8: service `a`: health.liveness has no check",
            "corral.toml:5:48: service `a`: health.readiness has more than one check: `http` and `tcp`",
            "corral.toml:6:66: service `a`: health.startup: `timeout` is 0",
            "corral.toml:6:53: service `a`: health.startup: success_threshold must be 1 for startup probes",
            "corral.toml:6:79: service `a`: health.startup: `headers` applies to http probes only",
            "corral.toml:10:52: service `b`: health.readiness: invalid status 99",
            "corral.toml:11:28: service `b`: health.liveness: `exec` is empty",
            "corral.toml:11:52: service `b`: health.liveness: invalid threshold 0",
            "corral.toml:12:36: service `b`: alerts[0] has both `memory` and `cpu`",
            "corral.toml:12:43: service `b`: alerts[1] measures nothing",
            "service `b`: alerts[2]: memory is 0",
        ] {
            assert!(e.contains(want), "missing {want:?} in\n{e}");
        }
    }

    #[test]
    fn https_probes_take_a_ca_file_or_insecure_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let ck = test_ca_pem();
        std::fs::write(dir.path().join("ca.pem"), ck).unwrap();
        std::fs::write(dir.path().join("junk.pem"), "not a certificate\n").unwrap();
        let path = dir.path().join("corral.toml");
        let c = parse(
            r#"
[services.a]
command = ["a"]
health.readiness = { http = "https://localhost:8443/ready", ca = "ca.pem" }
health.liveness = { http = "https://127.0.0.1:8443/health", insecure = true }
health.startup = { http = "https://127.0.0.1:8443/health", insecure = false }
"#,
            &path,
        )
        .unwrap();
        let trust = |p: &Option<crate::health::Probe>| match &p.as_ref().unwrap().check {
            Check::Http { trust, .. } => trust.clone(),
            other => panic!("{other:?}"),
        };
        let a = &c.services["a"].health;
        match trust(&a.readiness) {
            Trust::Ca { path, certs } => assert_eq!((path, certs.len()), (dir.path().join("ca.pem"), 1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(trust(&a.liveness), Trust::Insecure);
        assert_eq!(trust(&a.startup), Trust::Roots);

        let e = parse(
            r#"
[services.b]
command = ["b"]
health.readiness = { http = "http://localhost/", ca = "ca.pem" }
health.liveness = { tcp = "localhost:1", insecure = true }
health.startup = { http = "https://localhost/", ca = "missing.pem" }
[services.c]
command = ["c"]
health.readiness = { http = "https://localhost/", ca = "junk.pem" }
health.liveness = { http = "https://localhost/", ca = "ca.pem", insecure = true }
"#,
            &path,
        )
        .unwrap_err()
        .to_string();
        let shown = path.display().to_string();
        for want in [
            format!("{shown}:4:55: service `b`: health.readiness: `ca` applies to https probes only"),
            format!("{shown}:5:53: service `b`: health.liveness: `insecure` applies to https probes only"),
            format!("{shown}:6:54: service `b`: health.startup: cannot read the CA file {}", dir.path().join("missing.pem").display()),
            format!("{shown}:9:56: service `c`: health.readiness: no certificate (-----BEGIN CERTIFICATE-----) in the CA file"),
            format!("{shown}:10:76: service `c`: health.liveness: `ca` and `insecure = true` contradict each other"),
        ] {
            assert!(e.contains(&want), "missing {want:?} in\n{e}");
        }
    }

    /// A real self-signed CA certificate (P-256, valid for a century),
    /// made once with openssl: this crate has no certificate generator.
    fn test_ca_pem() -> &'static str {
        include_str!("../../tests/data/ca.pem")
    }

    #[test]
    fn alerts_must_be_an_array() {
        let e = errors("[services.a]\ncommand = [\"a\"]\nalerts = { memory = \"1GiB\" }\n");
        assert!(e.contains("corral.toml:3:1: service `a`: `alerts` must be an array of tables"), "{e}");
    }
}
