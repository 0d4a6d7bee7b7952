//! `corral doctor`: what this host can enforce with each backend, and why not.

use clap::Parser;
use corral::{HostReport, Support};
use serde_json::{json, Map, Value};

#[derive(Debug, Parser)]
pub struct Args {
    /// Print the report as one JSON object (stable; see README).
    #[arg(long)]
    json: bool,
}

pub fn main(a: Args) -> u8 {
    let r = corral::host_report();
    if a.json {
        crate::exit::print(&format!("{}\n", to_json(&r)))
    } else {
        crate::exit::print(&to_text(&r))
    }
}

pub fn to_json(r: &HostReport) -> Value {
    let backends: Vec<Value> = r
        .backends
        .iter()
        .map(|b| {
            let mut caps = Map::new();
            for (c, s) in &b.capabilities {
                caps.insert(c.key().to_string(), json!({ "support": s.word(), "detail": s.detail() }));
            }
            json!({
                "name": b.kind.as_str(),
                "available": b.available.is_ok(),
                "reason": b.available.as_ref().err(),
                "capabilities": caps,
            })
        })
        .collect();
    json!({
        "os": r.os,
        "chosen": r.chosen.map(|k| k.as_str()),
        "backends": backends,
        "notes": r.notes,
    })
}

fn mark(s: &Support) -> &'static str {
    match s {
        Support::Yes(_) => "yes",
        Support::Weaker(_) => "weaker",
        Support::No(_) => "no",
        _ => "?",
    }
}

pub fn to_text(r: &HostReport) -> String {
    let mut out = String::new();
    let chosen = r.chosen.map(|k| k.as_str()).unwrap_or("none");
    out.push_str(&format!("corral doctor: {} host; a new group gets the `{chosen}` backend\n\n", r.os));
    let width = 40;
    out.push_str(&format!("{:<width$}", ""));
    for b in &r.backends {
        out.push_str(&format!("{:<10}", b.kind.as_str()));
    }
    out.push('\n');
    out.push_str(&format!("{:<width$}", "usable here"));
    for b in &r.backends {
        out.push_str(&format!("{:<10}", if b.available.is_ok() { "yes" } else { "no" }));
    }
    out.push('\n');
    if let Some(first) = r.backends.first() {
        for (i, (cap, _)) in first.capabilities.iter().enumerate() {
            out.push_str(&format!("{:<width$}", cap.describe()));
            for b in &r.backends {
                out.push_str(&format!("{:<10}", b.capabilities.get(i).map(|(_, s)| mark(s)).unwrap_or("-")));
            }
            out.push('\n');
        }
    }
    out.push_str("\nWhy:\n");
    for b in &r.backends {
        match &b.available {
            Err(why) => out.push_str(&format!("  {}: not usable: {why}\n", b.kind)),
            Ok(()) => {
                for (cap, s) in &b.capabilities {
                    if !matches!(s, Support::Yes(_)) {
                        out.push_str(&format!("  {}: {} {}: {}\n", b.kind, cap.describe(), mark(s), s.detail()));
                    }
                }
            }
        }
    }
    out.push_str("\nHost:\n");
    for n in &r.notes {
        out.push_str(&format!("  {n}\n"));
    }
    out
}
