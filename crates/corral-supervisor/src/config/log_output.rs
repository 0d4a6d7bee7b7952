//! `logs` of a service beyond rotation (`format`, `journald`, `syslog`,
//! `eventlog`) and `[daemon] logs = { format }`, read and checked with
//! their places like the rest of the file.

use super::diagnostic::Sink;
use super::paths::anchor;
use super::raw::Size;
use super::validate::{key_span, Span};
use crate::logs::output::{valid_app_name, SyslogAddress, SyslogTarget, FACILITIES, MAX_APP_NAME};
use crate::logs::{LogFormat, LogOutput};
use serde::{de, Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use toml_edit::TableLike;

/// A service's `logs` table as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServiceLogs {
    pub max_size: Option<Size>,
    pub keep: Option<u32>,
    pub format: Option<LogFormat>,
    pub journald: Option<RawJournald>,
    pub syslog: Option<RawSyslog>,
    pub eventlog: Option<bool>,
}

/// `[daemon] logs = { format }`: the default of every service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemonLogs {
    pub format: Option<LogFormat>,
}

/// `journald = true`, or `journald = { socket = "…" }`.
#[derive(Debug, Default)]
pub(crate) struct RawJournald {
    on: bool,
    socket: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for RawJournald {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = RawJournald;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, or { socket = \"/run/systemd/journal/socket\" }")
            }
            fn visit_bool<E: de::Error>(self, on: bool) -> Result<RawJournald, E> {
                Ok(RawJournald { on, socket: None })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<RawJournald, A::Error> {
                let mut socket = None;
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "socket" => socket = Some(m.next_value::<PathBuf>()?),
                        other => return Err(de::Error::unknown_field(other, &["socket"])),
                    }
                }
                Ok(RawJournald { on: true, socket })
            }
        }
        d.deserialize_any(V)
    }
}

/// `syslog = { address, facility, app_name }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyslog {
    address: String,
    facility: Option<String>,
    app_name: Option<String>,
}

/// The output of service `name` (`what` in errors); `format` is the
/// daemon's default. Errors go to the sink at their key.
pub(super) fn output(
    sink: &mut Sink<'_>,
    name: &str,
    raw: Option<&mut RawServiceLogs>,
    table: &dyn TableLike,
    format: LogFormat,
    base: &Path,
) -> LogOutput {
    let what = format!("service `{name}`");
    let mut out = LogOutput { format, ..LogOutput::default() };
    let Some(raw) = raw else { return out };
    let lt = table.get("logs").and_then(|i| i.as_table_like());
    let at = |key: &str| lt.and_then(|t| key_span(t, key)).or_else(|| key_span(table, "logs"));
    out.format = raw.format.take().unwrap_or(format);
    if let Some(j) = raw.journald.take().filter(|j| j.on) {
        if cfg!(unix) {
            let socket = j.socket.unwrap_or_else(|| LogOutput::JOURNALD_SOCKET.into());
            out.journald = Some(anchor(base, &socket));
        } else {
            refuse(sink, at("journald"), &what, "journald", "Linux (and Unix) only");
        }
    }
    if let Some(s) = raw.syslog.take() {
        out.syslog = syslog(sink, &what, name, s, at("syslog"), base);
    }
    if raw.eventlog.take() == Some(true) {
        if cfg!(windows) {
            out.eventlog = true;
        } else {
            refuse(sink, at("eventlog"), &what, "eventlog", "Windows only (journald or syslog elsewhere)");
        }
    }
    out
}

fn refuse(sink: &mut Sink<'_>, span: Span, what: &str, key: &str, only: &str) {
    sink.push(span, format!("{what}: logs.{key} is {only}"), None, None);
}

fn syslog(
    sink: &mut Sink<'_>,
    what: &str,
    name: &str,
    raw: RawSyslog,
    span: Span,
    base: &Path,
) -> Option<SyslogTarget> {
    let before = sink.out.len();
    let address = match SyslogAddress::parse(&raw.address) {
        Ok(SyslogAddress::Unix(_)) if !cfg!(unix) => {
            refuse(sink, span.clone(), what, "syslog address unix:", "Unix only: udp:// or tcp:// here");
            None
        }
        Ok(SyslogAddress::Unix(p)) => Some(SyslogAddress::Unix(anchor(base, &p))),
        Ok(a) => Some(a),
        Err(e) => {
            let hint = "\"unix:/dev/log\", \"udp://127.0.0.1:514\" or \"tcp://127.0.0.1:601\"";
            sink.push(span.clone(), format!("{what}: logs.{e}"), Some(hint.into()), None);
            None
        }
    };
    let facility = match raw.facility.as_deref() {
        None => 3,
        Some(f) => match FACILITIES.iter().find(|(n, _)| *n == f) {
            Some(&(_, code)) => code,
            None => {
                let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
                sink.push(
                    span.clone(),
                    format!("{what}: logs.syslog facility `{f}` is not a syslog facility"),
                    Some(names.join(", ")),
                    super::did_you_mean(f, names.iter().copied()),
                );
                0
            }
        },
    };
    // A service name may be longer than APP-NAME allows: cut, not refused.
    let app_name = raw.app_name.unwrap_or_else(|| name.chars().take(MAX_APP_NAME).collect());
    if !valid_app_name(&app_name) {
        sink.push(
            span,
            format!("{what}: logs.syslog app_name `{app_name}` is not 1 to {MAX_APP_NAME} visible ASCII characters"),
            Some("a name like \"web\" (RFC 5424 APP-NAME)".into()),
            None,
        );
    }
    (sink.out.len() == before).then_some(SyslogTarget { address: address?, facility, app_name })
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    use crate::logs::output::SyslogAddress;
    #[cfg(unix)]
    use crate::logs::LogFormat;
    use std::path::Path;

    fn parse(src: &str) -> Result<crate::config::Config, String> {
        crate::config::parse(src, Path::new("/etc/corral/corral.toml")).map_err(|e| e.to_string())
    }

    // Unix paths and Unix-only keys; Windows refuses them at load.
    #[cfg(unix)]
    #[test]
    fn format_and_sinks_are_read_with_the_daemons_default() {
        let c = parse(
            r#"[daemon]
logs = { format = "json" }

[services.web]
command = ["web"]
logs = { max_size = "1MiB", syslog = { address = "tcp://127.0.0.1:601", facility = "local3" }, journald = { socket = "j.sock" } }

[services.db]
command = ["db"]
logs = { format = "text", journald = true }
"#,
        )
        .unwrap();
        let web = &c.services["web"];
        assert_eq!(web.logs.max_size, 1 << 20);
        assert_eq!(web.log_output.format, LogFormat::Json);
        let s = web.log_output.syslog.as_ref().unwrap();
        assert_eq!((s.facility, s.app_name.as_str()), (19, "web"));
        assert_eq!(s.address, SyslogAddress::Tcp("127.0.0.1:601".into()));
        assert_eq!(web.log_output.journald.as_deref(), Some(Path::new("/etc/corral/j.sock")));
        let db = &c.services["db"];
        assert_eq!(db.log_output.format, LogFormat::Text);
        assert_eq!(db.log_output.journald.as_deref(), Some(Path::new("/run/systemd/journal/socket")));
        assert!(!db.log_output.eventlog);
    }

    #[test]
    fn bad_sinks_are_errors_at_their_place() {
        let e = parse(
            r#"[services.web]
command = ["web"]
logs = { format = "xml" }

[services.api]
command = ["api"]
logs.syslog = { address = "tcp://127.0.0.1", facility = "deamon" }

[services.db]
command = ["db"]
logs.journald = { path = "/x" }
"#,
        )
        .unwrap_err();
        for want in [
            "corral.toml:3:19: service `web`: unknown value `xml`",
            "expected: one of `text`, `json`",
            "corral.toml:7:15: service `api`: logs.syslog address: invalid address `127.0.0.1`",
            "corral.toml:7:15: service `api`: logs.syslog facility `deamon` is not a syslog facility",
            "did you mean `daemon`?",
            "corral.toml:11:17: service `db`: unknown key `path`",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        if cfg!(unix) {
            let e = parse("[services.web]\ncommand = [\"web\"]\nlogs.eventlog = true\n").unwrap_err();
            assert!(e.contains("corral.toml:3:17: service `web`: logs.eventlog is Windows only"), "{e}");
        }
    }
}
