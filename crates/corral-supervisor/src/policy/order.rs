//! Dependency order. Starts wait for their dependencies and stops wait for
//! their dependants, so independent services run in parallel by
//! construction; these functions only check and invert the graph.

use std::collections::BTreeMap;

/// A dependency cycle, as the list of services around it (first repeated
/// at the end), or `None`.
pub fn find_cycle(deps: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit<'a>(
        n: &'a str,
        deps: &'a BTreeMap<String, Vec<String>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(n).copied().unwrap_or(Mark::New) {
            Mark::Done => return None,
            Mark::Open => {
                let at = path.iter().position(|p| *p == n).unwrap_or(0);
                let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            Mark::New => {}
        }
        marks.insert(n, Mark::Open);
        path.push(n);
        for d in deps.get(n).into_iter().flatten() {
            if deps.contains_key(d) {
                if let Some(c) = visit(d, deps, marks, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        marks.insert(n, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in deps.keys() {
        if let Some(c) = visit(n, deps, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// The services that must be stopped before `name` is: those that depend
/// on it.
pub fn stop_waits_for(name: &str, deps: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    deps.iter().filter(|(_, ds)| ds.iter().any(|d| d == name)).map(|(n, _)| n.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges.iter().map(|(n, ds)| (n.to_string(), ds.iter().map(|d| d.to_string()).collect())).collect()
    }

    #[test]
    fn finds_a_cycle_and_names_it() {
        let g = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &[])]);
        assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
        assert_eq!(find_cycle(&graph(&[("a", &["a"])])).unwrap(), ["a", "a"]);
    }

    #[test]
    fn a_dag_has_none() {
        let g = graph(&[("web", &["db", "cache"]), ("db", &[]), ("cache", &["db"])]);
        assert_eq!(find_cycle(&g), None);
    }

    #[test]
    fn dependants_stop_first() {
        let g = graph(&[("web", &["db"]), ("job", &["db", "web"]), ("db", &[])]);
        assert_eq!(stop_waits_for("db", &g), ["job", "web"]);
        assert!(stop_waits_for("job", &g).is_empty());
    }
}
