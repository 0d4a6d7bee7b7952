//! A mermaid `graph TD`.

use super::{caption, cut, node_id, short_cmd, Tree};
use crate::tree::Placement;
use std::fmt::Write;

pub(super) fn render(t: &Tree) -> String {
    let mut out = String::from("graph TD\n");
    let _ = writeln!(out, "  %% {}", t.note.replace('\n', " "));
    for i in 0..t.members.len() {
        let m = &t.members[i];
        let _ =
            writeln!(out, "  {}[\"{}<br/>{}\"]", node_id(t, i), esc(&caption(t, i)), esc(&cut(&short_cmd(&m.cmd), 48)));
        if !m.alive {
            let _ = writeln!(out, "  class {} gone", node_id(t, i));
        }
    }
    for i in 0..t.members.len() {
        if let Some(u) = t.up(i) {
            let arrow = match t.members[i].placement {
                Placement::Reparented => "-.->|re-parented|",
                _ => "-->",
            };
            let _ = writeln!(out, "  {} {arrow} {}", node_id(t, u), node_id(t, i));
        }
    }
    out.push_str("  classDef gone fill:#e5e5e5,color:#555555\n");
    out
}

/// Mermaid labels in quotes take HTML entities, not backslashes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
