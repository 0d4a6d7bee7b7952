//! Graphviz DOT: one node per member, one edge per parent → child.

use super::{caption, cut, node_ids, short_cmd, Tree};
use crate::tree::Placement;
use std::fmt::Write;

pub(super) fn render(t: &Tree) -> String {
    let ids = node_ids(t);
    let mut out = String::from("digraph corral {\n");
    out.push_str("  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef4ff\", fontname=\"monospace\", fontsize=10];\n");
    let _ = writeln!(out, "  label=\"{}\";\n  labelloc=b;\n  fontsize=9;", esc(&t.note));
    for (i, (m, id)) in t.members.iter().zip(&ids).enumerate() {
        let fill = if m.alive { "" } else { ", fillcolor=\"#e5e5e5\", fontcolor=\"#555555\"" };
        let _ = writeln!(
            out,
            "  {} [label=\"{}\\n{}\"{fill}];",
            id,
            esc(&caption(t, i)),
            esc(&cut(&short_cmd(&m.cmd), 48))
        );
    }
    for (i, up) in t.ups().into_iter().enumerate() {
        if let Some(u) = up {
            let style = match t.members[i].placement {
                Placement::Reparented => " [style=dashed, label=\"re-parented\", fontsize=8]",
                _ => "",
            };
            let _ = writeln!(out, "  {} -> {}{style};", ids[u], ids[i]);
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
