//! A desired service as etcd holds it: the service's TOML table (the same
//! schema as `[services.*]`, plus `placement`) with its revision and who
//! wrote it, as one JSON value under `services/<name>`.
//!
//! The TOML text is what the operator wrote, so the daemon checks it with
//! the very code that checks `corral.toml`, and an error names the key.

use super::placement::Placement;
use crate::config::{ConfigErrors, ServiceSpec};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// At most this much TOML per service: a value is read whole.
pub const MAX_SPEC_BYTES: usize = 64 << 10;

/// The value under `services/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// Bumped by every change of `spec`; instances report the one they run.
    pub revision: u64,
    /// `[services.<name>]` and its keys, as TOML.
    pub spec: String,
    /// Who wrote it (etcd user, client certificate, or OS user).
    pub by: String,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// During a gray release: the revision being replaced, which the
    /// nodes not in `canary` keep running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Previous>,
    /// During a gray release: the nodes that run `revision`; the others
    /// run `previous`. Set by the rollout's driver, step by step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Vec<String>>,
}

/// The revision a gray release replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous {
    /// Its revision.
    pub revision: u64,
    /// Its TOML.
    pub spec: String,
}

impl Desired {
    /// A plain value: every node runs `spec`.
    pub fn new(revision: u64, spec: String, by: String) -> Desired {
        Desired { revision, spec, by, at: crate::time::now_rfc3339(), previous: None, canary: None }
    }
}

/// A desired service, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Its revision.
    pub revision: u64,
    /// The spec, as a local one.
    pub spec: Arc<ServiceSpec>,
    /// Which nodes run it.
    pub placement: Placement,
    /// Who wrote it.
    pub by: String,
}

/// Checks the value found under `services/<name>`, as `node` runs it
/// (during a gray release, the previous revision unless it is a canary).
/// One line when it is malformed: someone wrote it by hand.
pub fn check(name: &str, value: &[u8], node: &str) -> Result<Checked, String> {
    if value.len() > MAX_SPEC_BYTES {
        return Err(format!("service `{name}`: the value is {} bytes, over {MAX_SPEC_BYTES}", value.len()));
    }
    let d: Desired = serde_json::from_slice(value).map_err(|e| format!("service `{name}`: not a corral spec: {e}"))?;
    match (&d.previous, &d.canary) {
        (Some(p), Some(on)) if !on.iter().any(|n| n == node) => {
            let (revision, spec) = (p.revision, p.spec.clone());
            check_text(name, Desired { revision, spec, ..d })
        }
        _ => check_text(name, d),
    }
}

fn check_text(name: &str, d: Desired) -> Result<Checked, String> {
    let shown = format!("etcd:services/{name}");
    let (mut services, mut placements) = crate::config::parse_fleet_spec(&d.spec, Path::new(&shown)).map_err(|e| {
        e.0.iter().map(|d| d.to_string().lines().next().unwrap_or_default().to_string()).collect::<Vec<_>>().join("; ")
    })?;
    match (services.remove(name), services.is_empty()) {
        (Some(spec), true) => {
            Ok(Checked { revision: d.revision, spec, placement: placements.remove(name).unwrap_or_default(), by: d.by })
        }
        _ => Err(format!("service `{name}`: the spec must hold [services.{name}] and nothing else")),
    }
}

/// Splits a checked spec file into one TOML text per service (what
/// `apply` writes): every error of the file first, with file:line:column.
pub fn split(src: &str, path: &Path) -> Result<Vec<(String, String)>, ConfigErrors> {
    crate::config::parse_fleet_spec(src, path)?;
    let doc: toml_edit::DocumentMut = src.parse().expect("checked above");
    let Some(services) = doc.get("services").and_then(|s| s.as_table_like()) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (name, item) in services.iter() {
        let mut one = toml_edit::DocumentMut::new();
        let mut table = toml_edit::Table::new();
        table.set_implicit(true);
        let item = match item.clone() {
            toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => toml_edit::Item::Table(t.into_table()),
            other => other,
        };
        table.insert(name, item);
        one.insert("services", toml_edit::Item::Table(table));
        out.push((name.to_string(), one.to_string().trim().to_string() + "\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_splits_into_values_that_check_back() {
        let src = "[services.web]\ncommand = [\"srv\"]\ninstances = 2\nplacement = { labels = { zone = \"a\" } }\n\n[services.job]\ncommand = [\"j\"]\n";
        let parts = split(src, Path::new("s.toml")).unwrap();
        assert_eq!(parts.len(), 2);
        for (name, text) in parts {
            let v = serde_json::to_vec(&Desired::new(3, text, "t".into())).unwrap();
            let c = check(&name, &v, "n1").unwrap();
            assert_eq!(c.revision, 3);
            if name == "web" {
                assert_eq!(c.spec.instances, 2);
                assert_eq!(c.placement.labels["zone"], "a");
            }
        }
    }

    #[test]
    fn malformed_values_are_one_line() {
        let e = check("web", b"{nope", "n1").unwrap_err();
        assert!(e.starts_with("service `web`: not a corral spec"), "{e}");
        let v = serde_json::to_vec(&Desired::new(1, "[services.web]\ncomand = [\"x\"]\n".into(), "t".into())).unwrap();
        let e = check("web", &v, "n1").unwrap_err();
        assert!(e.contains("etcd:services/web:2:1: service `web`: unknown key `comand`"), "{e}");
        assert!(!e.contains('\n'));
        let other =
            serde_json::to_vec(&Desired::new(1, "[services.api]\ncommand = [\"x\"]\n".into(), "t".into())).unwrap();
        assert!(check("web", &other, "n1").unwrap_err().contains("must hold [services.web]"));
    }

    #[test]
    fn errors_in_a_file_keep_their_place_and_nothing_splits() {
        let src = "[services.web]\ncommand = [\"srv\"]\ndepends_on = { db = \"started\", web = \"started\" }\n[services.db]\ncommand = [\"d\"]\n[daemon]\n";
        let e = split(src, Path::new("s.toml")).unwrap_err().to_string();
        assert!(e.contains("s.toml:3:14: dependency cycle: web -> web"), "{e}");
        assert!(e.contains("s.toml:6:2: a fleet spec holds only services, not [daemon]"), "{e}");
        // A dependency the spec does not hold may be another fleet
        // service or a node's local one: each node resolves it.
        let src = "[services.web]\ncommand = [\"srv\"]\ndepends_on = { cache = \"healthy\" }\n";
        assert_eq!(split(src, Path::new("s.toml")).unwrap().len(), 1);
    }

    #[test]
    fn during_a_gray_release_only_canaries_run_the_new_revision() {
        let mut d = Desired::new(2, "[services.web]\ncommand = [\"new\"]\n".into(), "t".into());
        d.previous = Some(Previous { revision: 1, spec: "[services.web]\ncommand = [\"old\"]\n".into() });
        d.canary = Some(vec!["n2".into()]);
        let v = serde_json::to_vec(&d).unwrap();
        let on = check("web", &v, "n2").unwrap();
        assert_eq!((on.revision, on.spec.command.clone()), (2, vec!["new".to_string()]));
        let off = check("web", &v, "n1").unwrap();
        assert_eq!((off.revision, off.spec.command.clone()), (1, vec!["old".to_string()]));
    }
}
