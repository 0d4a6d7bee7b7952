//! `limits.working_set = { min = "16MiB", max = "256MiB" }`: the resident
//! memory each process of the service keeps (Windows jobs'
//! `JOB_OBJECT_LIMIT_WORKINGSET`; see `corral::WorkingSet`). Refused at
//! load, at its key, where the host has no such limit or the values do
//! not fit.

use super::diagnostic::Sink;
use super::raw::Size;
use super::validate::key_span;
use corral::{Limits, WorkingSet};
use serde::Deserialize;
use toml_edit::TableLike;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkingSet {
    min: Size,
    max: Size,
}

/// `limits` with the working set of `raw`, checked for this host.
pub(super) fn apply(
    sink: &mut Sink<'_>,
    what: &str,
    service: &dyn TableLike,
    limits: Limits,
    raw: Option<RawWorkingSet>,
) -> Limits {
    let Some(raw) = raw else { return limits };
    let ws = WorkingSet::new(raw.min.0, raw.max.0);
    if let Err(e) = ws.check() {
        let lt = service.get("limits").and_then(|l| l.as_table_like());
        let span = lt.and_then(|t| key_span(t, "working_set")).or_else(|| key_span(service, "limits"));
        sink.push(span, format!("{what}: limits.working_set: {}", e.context()), e.hint_text().map(String::from), None);
        return limits;
    }
    limits.working_set(ws)
}

#[cfg(test)]
mod tests {
    use crate::config::test_errors::errors;

    #[test]
    #[cfg(not(windows))]
    fn a_working_set_is_refused_off_windows_at_its_key() {
        let e = errors(
            "[services.a]\ncommand = [\"a\"]\n[services.a.limits]\nworking_set = { min = \"1MiB\", max = \"64MiB\" }\n",
        );
        assert!(
            e.contains(
                "corral.toml:4:15: service `a`: limits.working_set: a working-set limit is a limit of Windows jobs"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_min_above_the_max_is_refused_at_its_key() {
        let e =
            errors("[services.a]\ncommand = [\"a\"]\nlimits = { working_set = { min = \"64MiB\", max = \"1MiB\" } }\n");
        assert!(e.contains("corral.toml:3:"), "{e}");
        assert!(
            e.contains("limits.working_set: invalid limit: the working set's min (67108864 bytes) is above its max"),
            "{e}"
        );
    }

    #[test]
    fn a_working_set_needs_both_ends() {
        let e = errors("[services.a]\ncommand = [\"a\"]\nlimits = { working_set = { max = \"64MiB\" } }\n");
        assert!(e.contains("missing field `min`"), "{e}");
    }

    #[test]
    #[cfg(windows)]
    fn a_working_set_reaches_the_limits() {
        let c = crate::config::parse(
            "[services.a]\ncommand = [\"a\"]\nlimits = { working_set = { min = \"1MiB\", max = \"64MiB\" } }\n",
            std::path::Path::new("corral.toml"),
        )
        .unwrap();
        assert_eq!(c.services["a"].limits.working_set, Some(corral::WorkingSet::new(1 << 20, 64 << 20)));
    }
}
