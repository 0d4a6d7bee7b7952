//! `limits.on_limit`: what a hit of a limit does. `"kill"` (the default)
//! ends the group; `"notify"` lets the kernel throttle or refuse and makes
//! the hit an event and an alert. Written for all of a service's
//! memory, max_procs and cpus at once (`on_limit = "notify"`), or per
//! limit (`on_limit = { memory = "notify", max_procs = "kill" }`).

use super::diagnostic::Sink;
use super::validate::Span;
use corral::{LimitKind, Limits};
use serde::{de, Deserialize, Deserializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnLimit {
    Kill,
    Notify,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PerLimit {
    memory: Option<OnLimit>,
    max_procs: Option<OnLimit>,
    cpus: Option<OnLimit>,
}

/// `on_limit = "notify"` or `on_limit = { memory = "notify" }`.
#[derive(Debug)]
pub(crate) enum RawOnLimit {
    All(OnLimit),
    Each(PerLimit),
}

impl<'de> Deserialize<'de> for RawOnLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = RawOnLimit;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"kill\", \"notify\", or a table like { memory = \"notify\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawOnLimit, E> {
                OnLimit::deserialize(de::value::StrDeserializer::<E>::new(v)).map(RawOnLimit::All)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawOnLimit, A::Error> {
                PerLimit::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawOnLimit::Each)
            }
        }
        d.deserialize_any(V)
    }
}

/// `limits` with the notify-only kinds of `raw`; a notify for a limit
/// that is not set is an error (it would silently mean nothing).
pub(super) fn apply(sink: &mut Sink<'_>, what: &str, span: Span, limits: Limits, raw: Option<RawOnLimit>) -> Limits {
    let Some(raw) = raw else { return limits };
    let kinds = [
        (LimitKind::Memory, "memory", limits.memory.is_some()),
        (LimitKind::Processes, "max_procs", limits.max_procs.is_some()),
        (LimitKind::CpuRate, "cpus", limits.cpus.is_some()),
    ];
    let mut out = limits.clone();
    for (kind, key, set) in kinds {
        let wanted = match &raw {
            RawOnLimit::All(o) => *o == OnLimit::Notify && set,
            RawOnLimit::Each(p) => {
                let o = match kind {
                    LimitKind::Memory => p.memory,
                    LimitKind::Processes => p.max_procs,
                    _ => p.cpus,
                };
                if o == Some(OnLimit::Notify) && !set {
                    sink.push(
                        span.clone(),
                        format!("{what}: limits.on_limit.{key} is \"notify\", but there is no {key} limit"),
                        Some(format!("set limits.{key}, or drop on_limit.{key}")),
                        None,
                    );
                }
                o == Some(OnLimit::Notify)
            }
        };
        if wanted {
            out = out.notify_on(kind);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use corral::LimitKind;

    fn limits(src: &str) -> Result<corral::Limits, String> {
        crate::config::parse(&format!("[services.a]\ncommand = [\"a\"]\n{src}"), std::path::Path::new("corral.toml"))
            .map(|c| c.services["a"].limits.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn notify_for_all_applies_to_the_limits_that_can_only_notify() {
        let l = limits("limits = { memory = \"64MiB\", max_procs = 10, cpu_time = \"1m\", on_limit = \"notify\" }\n")
            .unwrap();
        assert!(l.notifies(LimitKind::Memory) && l.notifies(LimitKind::Processes));
        assert!(!l.notifies(LimitKind::CpuTime) && !l.notifies(LimitKind::CpuRate));
    }

    #[test]
    fn notify_per_limit_and_kill_by_default() {
        let l = limits("limits = { memory = \"64MiB\", cpus = 0.5, on_limit = { cpus = \"notify\" } }\n").unwrap();
        assert!(l.notifies(LimitKind::CpuRate) && !l.notifies(LimitKind::Memory));
        let l = limits("limits = { memory = \"64MiB\" }\n").unwrap();
        assert!(l.notify.is_empty());
    }

    #[test]
    fn bad_on_limit_values_are_errors_with_their_place() {
        let e = limits("limits = { memory = \"64MiB\", on_limit = \"warn\" }\n").unwrap_err();
        assert!(e.contains("corral.toml:3:"), "{e}");
        assert!(e.contains("unknown variant `warn`") || e.contains("warn"), "{e}");
        let e = limits("limits = { on_limit = { max_procs = \"notify\" } }\n").unwrap_err();
        assert!(e.contains("limits.on_limit.max_procs is \"notify\", but there is no max_procs limit"), "{e}");
        let e = limits("limits = { memory = \"1G\", on_limit = { cpu_time = \"notify\" } }\n").unwrap_err();
        assert!(e.contains("cpu_time"), "{e}");
    }
}
