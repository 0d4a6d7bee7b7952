//! Graphviz DOT: one node per member, one edge per parent → child.

use super::{caption, cut, node_id, short_cmd, Tree};
use crate::tree::Placement;
use std::fmt::Write;

pub(super) fn render(t: &Tree) -> String {
    let mut out = String::from("digraph corral {\n");
    out.push_str("  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef4ff\", fontname=\"monospace\", fontsize=10];\n");
    let _ = writeln!(out, "  label=\"{}\";\n  labelloc=b;\n  fontsize=9;", esc(&t.note));
    for i in 0..t.members.len() {
        let m = &t.members[i];
        let fill = if m.alive { "" } else { ", fillcolor=\"#e5e5e5\", fontcolor=\"#555555\"" };
        let _ = writeln!(
            out,
            "  {} [label=\"{}\\n{}\"{fill}];",
            node_id(t, i),
            esc(&caption(t, i)),
            esc(&cut(&short_cmd(&m.cmd), 48))
        );
    }
    for i in 0..t.members.len() {
        if let Some(u) = t.up(i) {
            let style = match t.members[i].placement {
                Placement::Reparented => " [style=dashed, label=\"re-parented\", fontsize=8]",
                _ => "",
            };
            let _ = writeln!(out, "  {} -> {}{style};", node_id(t, u), node_id(t, i));
        }
    }
    out.push_str("}\n");
    out
}

/// A DOT string body: quotes and backslashes escaped, controls dropped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
