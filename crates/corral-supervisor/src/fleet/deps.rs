//! Dependencies of fleet services, resolved on each node.
//!
//! A fleet service may depend on another fleet service or on one of a
//! node's local services. Whether that dependency runs is only known on
//! the node (placement, local files), so `corral fleet apply` cannot check
//! it. A node holds back, with a reason, every fleet service whose
//! dependency it does not run, or that sits in a dependency cycle (two
//! specs applied at different times can close one); the rest run. Pure:
//! the overlay reports what this decides.

use crate::config::Specs;
use crate::policy::find_cycle;
use std::collections::{BTreeMap, BTreeSet};

/// Removes from `services` the fleet services (names in `fleet`) that
/// cannot run here, transitively, and says why for each.
pub(crate) fn hold_back(services: &mut Specs, fleet: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut held = BTreeMap::new();
    loop {
        let missing = services.iter().filter(|(n, _)| fleet.contains(*n)).find_map(|(n, s)| {
            let dep = s.depends_on.keys().find(|d| !services.contains_key(*d))?;
            let why = match held.contains_key(dep) {
                true => format!("it depends on `{dep}`, which is held back here"),
                false => format!("it depends on `{dep}`, which this node does not run"),
            };
            Some((n.clone(), why))
        });
        if let Some((name, why)) = missing {
            services.remove(&name);
            held.insert(name, why);
            continue;
        }
        let deps = services.iter().map(|(n, s)| (n.clone(), s.depends_on.keys().cloned().collect())).collect();
        let Some(cycle) = find_cycle(&deps) else { return held };
        let why = format!("dependency cycle: {}", cycle.join(" -> "));
        let in_cycle: Vec<String> = cycle.into_iter().filter(|n| fleet.contains(n)).collect();
        if in_cycle.is_empty() {
            // Local services are checked as one file: they close no cycle alone.
            return held;
        }
        for n in in_cycle {
            services.remove(&n);
            held.insert(n, why.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Arc;

    fn specs(src: &str) -> Specs {
        crate::config::parse_fleet_spec(src, Path::new("s.toml")).unwrap().0
    }

    #[test]
    fn a_dependency_this_node_runs_keeps_the_service() {
        let mut s = specs(
            "[services.db]\ncommand = [\"d\"]\n[services.web]\ncommand = [\"w\"]\ndepends_on = { db = \"healthy\" }\n",
        );
        let fleet = s.keys().cloned().collect();
        assert!(hold_back(&mut s, &fleet).is_empty());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_missing_dependency_holds_back_the_service_and_what_depends_on_it() {
        let mut s = specs(
            "[services.web]\ncommand = [\"w\"]\ndepends_on = { db = \"started\" }\n\
             [services.edge]\ncommand = [\"e\"]\ndepends_on = { web = \"started\" }\n\
             [services.alone]\ncommand = [\"a\"]\n",
        );
        let fleet = s.keys().cloned().collect();
        let held = hold_back(&mut s, &fleet);
        assert_eq!(held["web"], "it depends on `db`, which this node does not run");
        assert_eq!(held["edge"], "it depends on `web`, which is held back here");
        assert_eq!(s.keys().collect::<Vec<_>>(), ["alone"]);
    }

    #[test]
    fn a_local_dependency_counts_and_local_services_are_never_held() {
        let mut s = specs(
            "[services.web]\ncommand = [\"w\"]\ndepends_on = { db = \"started\" }\n[services.db]\ncommand = [\"d\"]\n",
        );
        let fleet = BTreeSet::from(["web".to_string()]);
        assert!(hold_back(&mut s, &fleet).is_empty());
        let mut s = specs("[services.lonely]\ncommand = [\"l\"]\n");
        Arc::make_mut(s.get_mut("lonely").unwrap()).depends_on.insert("gone".into(), crate::policy::Condition::Started);
        assert!(hold_back(&mut s, &BTreeSet::new()).is_empty(), "a local service is the file's business");
    }

    #[test]
    fn a_cycle_closed_by_two_applies_holds_back_both() {
        let mut s = specs(
            "[services.a]\ncommand = [\"a\"]\ndepends_on = { b = \"started\" }\n[services.b]\ncommand = [\"b\"]\n",
        );
        Arc::make_mut(s.get_mut("b").unwrap()).depends_on.insert("a".into(), crate::policy::Condition::Started);
        let fleet = s.keys().cloned().collect();
        let held = hold_back(&mut s, &fleet);
        assert!(held["a"].starts_with("dependency cycle: "), "{held:?}");
        assert!(held.contains_key("b") && s.is_empty());
    }
}
