//! How `corral fleet status` and `nodes` print: aligned columns, or the
//! JSON of `corral_supervisor::fleet::ops` with `--json` (stable).

use corral_supervisor::fleet::ops::{FleetStatus, NodeRow};
use corral_supervisor::fleet::rollout::Rollout;

pub(super) fn status(s: &FleetStatus, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
        return;
    }
    let mut rows =
        vec![["NODE", "SERVICE", "INST", "STATE", "READY", "REVISION", "PID", "RESTARTS"].map(String::from).to_vec()];
    for i in &s.instances {
        let want = s.services.get(&i.service).map_or("-".into(), |d| d.revision.to_string());
        rows.push(vec![
            i.node.clone(),
            i.service.clone(),
            i.instance.to_string(),
            i.value.state.clone(),
            if i.value.ready { "yes" } else { "no" }.into(),
            format!("{} (desired {want})", i.value.revision),
            i.value.pid.map_or("-".into(), |p| p.to_string()),
            i.value.restarts.to_string(),
        ]);
    }
    table(rows);
    let nodes: Vec<&str> = s.nodes.iter().map(|n| n.node.as_str()).collect();
    println!("{} node(s): {}", nodes.len(), nodes.join(", "));
    for (name, d) in &s.services {
        println!("service {name}: revision {} by {} at {}", d.revision, d.by, d.at);
    }
}

pub(super) fn nodes(n: &[NodeRow], json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(n).unwrap_or_default());
        return;
    }
    let mut rows = vec![["NODE", "LABELS", "VERSION", "STARTED", "PID"].map(String::from).to_vec()];
    for r in n {
        let labels: Vec<String> = r.value.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rows.push(vec![
            r.node.clone(),
            if labels.is_empty() { "-".into() } else { labels.join(",") },
            r.value.version.clone(),
            r.value.started.clone(),
            r.value.pid.to_string(),
        ]);
    }
    table(rows);
}

fn table(rows: Vec<Vec<String>>) {
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(s, w)| format!("{s:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

pub(super) fn rollout(service: &str, r: &Rollout, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
        return;
    }
    let state = serde_json::to_value(r.state).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let step = r.steps.get(r.step).copied().unwrap_or(100);
    println!(
        "{service}: revision {} -> {}: {state}, step {} of {} ({step}%), driver {}",
        r.from,
        r.to,
        r.step + 1,
        r.steps.len(),
        r.driver.as_deref().unwrap_or("-")
    );
    if let Some(why) = &r.reason {
        println!("reason: {why}");
    }
    for e in &r.history {
        println!("  {}  {}: {}", e.at, e.by, e.what);
    }
}
