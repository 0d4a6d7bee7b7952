//! What a reload changes: a pure comparison of two sets of services.

use crate::config::Specs;
use std::collections::BTreeMap;

/// Services by what a reload does to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Diff {
    /// New: created and started.
    pub added: Vec<String>,
    /// Gone: stopped and forgotten.
    pub removed: Vec<String>,
    /// Different: stopped and started again with the new spec.
    pub changed: Vec<String>,
    /// Only `instances` differs: instances are added or removed, the
    /// others keep running.
    pub scaled: Vec<String>,
    /// Only `health` and/or `alerts` differ: the running instances keep
    /// their groups and pids; their probes and alert watch are replaced.
    pub retuned: Vec<String>,
    /// Identical: not touched, same pids.
    pub unchanged: Vec<String>,
    /// Changed services with several instances that were up: replaced one
    /// instance at a time, each new one ready before the next old one
    /// stops. Also listed in `changed`. Filled in by the reload.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rolled: Vec<String>,
    /// Rollouts that stopped, with why: the instances not replaced yet keep
    /// the old spec until the next reload.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub halted: BTreeMap<String, String>,
}

/// Compares the running services with a new config's.
pub fn diff(old: &Specs, new: &Specs) -> Diff {
    let mut d = Diff::default();
    for (name, spec) in new {
        match old.get(name) {
            None => d.added.push(name.clone()),
            Some(o) if o == spec => d.unchanged.push(name.clone()),
            Some(o) if o.same_but_instances(spec) => d.scaled.push(name.clone()),
            Some(o) if o.same_but_health(spec) => d.retuned.push(name.clone()),
            Some(_) => d.changed.push(name.clone()),
        }
    }
    d.removed = old.keys().filter(|n| !new.contains_key(*n)).cloned().collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn services(toml: &str) -> Specs {
        crate::config::parse(toml, Path::new("/tmp/corral.toml")).unwrap().services
    }

    #[test]
    fn sorts_services_by_what_changes() {
        let old = services(
            r#"
            [services.a]
            command = ["a"]
            [services.b]
            command = ["b"]
            [services.c]
            command = ["c"]
            [services.d]
            command = ["d"]
            "#,
        );
        let new = services(
            r#"
            [services.a]
            command = ["a"]
            [services.b]
            command = ["b", "--new"]
            [services.d]
            command = ["d"]
            instances = 3
            [services.e]
            command = ["e"]
            "#,
        );
        let d = diff(&old, &new);
        assert_eq!(d.added, ["e"]);
        assert_eq!(d.removed, ["c"]);
        assert_eq!(d.changed, ["b"]);
        assert_eq!(d.scaled, ["d"]);
        assert_eq!(d.unchanged, ["a"]);
        assert!(d.retuned.is_empty());
    }

    #[test]
    fn probes_and_alerts_alone_are_retuned_and_anything_more_is_changed() {
        let svc = |name: &str, extra: &str| format!("[services.{name}]\ncommand = [\"{name}\"]\n{extra}\n");
        let live = "health.liveness = { tcp = \"127.0.0.1:1\" }";
        let ready = "health.readiness = { http = \"http://127.0.0.1:1/\" }";
        let alert = "alerts = [{ memory = \"1GiB\" }]";
        let old = services(
            &[
                svc("probe", live),
                svc("alert", alert),
                svc("both", ""),
                svc("gained", ""),
                svc("lost", live),
                svc("command", live),
                svc("count", live),
                svc("same", &format!("{live}\n{alert}")),
            ]
            .concat(),
        );
        let new = services(
            &[
                svc("probe", &live.replace("tcp = \"127.0.0.1:1\"", "tcp = \"127.0.0.1:2\", period = \"1s\"")),
                svc("alert", "alerts = [{ memory = \"2GiB\", action = \"restart\" }]"),
                svc("both", &format!("{ready}\n{alert}")),
                svc("gained", live),
                svc("lost", ""),
                svc("command", &format!("{live}\nenv = {{ A = \"1\" }}").replace("127.0.0.1:1", "127.0.0.1:2")),
                svc("count", &format!("{ready}\ninstances = 2")),
                svc("same", &format!("{live}\n{alert}")),
            ]
            .concat(),
        );
        let d = diff(&old, &new);
        // Probes added, removed or changed, alerts likewise, or both.
        assert_eq!(d.retuned, ["alert", "both", "gained", "lost", "probe"]);
        // With any other change, the instances restart (or scale) as before.
        assert_eq!(d.changed, ["command", "count"]);
        assert_eq!(d.unchanged, ["same"]);
        assert!(d.scaled.is_empty() && d.added.is_empty() && d.removed.is_empty());
    }
}
