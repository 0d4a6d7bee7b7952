//! A mermaid `graph TD`.

use super::{caption, cut, node_ids, short_cmd, Tree};
use crate::tree::Placement;
use std::fmt::Write;

pub(super) fn render(t: &Tree) -> String {
    let ids = node_ids(t);
    let mut out = String::from("graph TD\n");
    let _ = writeln!(out, "  %% {}", t.note.replace('\n', " "));
    for (i, (m, id)) in t.members.iter().zip(&ids).enumerate() {
        let _ = writeln!(out, "  {}[\"{}<br/>{}\"]", id, esc(&caption(t, i)), esc(&cut(&short_cmd(&m.cmd), 48)));
        if !m.alive {
            let _ = writeln!(out, "  class {id} gone");
        }
    }
    for (i, up) in t.ups().into_iter().enumerate() {
        if let Some(u) = up {
            let arrow = match t.members[i].placement {
                Placement::Reparented => "-.->|re-parented|",
                _ => "-->",
            };
            let _ = writeln!(out, "  {} {arrow} {}", ids[u], ids[i]);
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
