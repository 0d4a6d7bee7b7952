//! The indented table.

use super::{cut, usage, Tree};
use crate::tree::Placement;
use std::fmt::Write;

pub(super) fn render(t: &Tree) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:>7} {:>7} {:>7} {:>7} {:>8} {:>9}  COMMAND", "PID", "PPID", "PGID", "SID", "CPU", "MEM");
    let kids = t.kids();
    for r in t.roots() {
        row(t, &kids, r, "", true, true, &mut out);
    }
    let _ = writeln!(out, "# {}", t.note);
    out
}

fn row(t: &Tree, kids: &[Vec<usize>], i: usize, prefix: &str, last: bool, root: bool, out: &mut String) {
    let m = &t.members[i];
    let branch = match (root, last) {
        (true, _) => "",
        (false, true) => "└─ ",
        (false, false) => "├─ ",
    };
    let (cpu, mem) = usage(m);
    let dash = |v: u32| if v == 0 { "-".to_string() } else { v.to_string() };
    let mut note = String::new();
    if let Some(end) = m.ending() {
        note.push_str(&format!("  [{end}]"));
    }
    match m.placement {
        Placement::Reparented => note.push_str("  (re-parented)"),
        Placement::Lineage if m.alive && m.ppid != m.parent.unwrap_or(0) => {
            note.push_str(&format!("  (started by {}, now under {})", m.parent.unwrap_or(0), dash(m.ppid)))
        }
        _ => {}
    }
    let _ = writeln!(
        out,
        "{:>7} {:>7} {:>7} {:>7} {:>8} {:>9}  {prefix}{branch}{}{note}",
        m.pid,
        dash(m.ppid),
        dash(m.pgid),
        dash(m.sid),
        cpu,
        mem,
        cut(&m.cmd, 120),
    );
    let mine = &kids[i];
    let child_prefix =
        if root { prefix.to_string() } else { format!("{prefix}{}", if last { "   " } else { "│  " }) };
    for (k, c) in mine.iter().enumerate() {
        row(t, kids, *c, &child_prefix, k + 1 == mine.len(), false, out);
    }
}
