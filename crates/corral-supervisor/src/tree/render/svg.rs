//! An SVG picture from the layered layout. Each node is a `<g
//! class="node">` with `data-pid` (and `data-parent`), each edge a `<path
//! class="edge">` with `data-from` and `data-to`, so tools (and tests) can
//! read the graph back without guessing from coordinates.

use super::layout::layout;
use super::{caption, cut, short_cmd, Tree};
use crate::tree::Placement;
use std::fmt::Write;

const W: f64 = 290.0;
const H: f64 = 44.0;
const GAP_X: f64 = 18.0;
const GAP_Y: f64 = 36.0;
const MARGIN: f64 = 16.0;
const FOOT: f64 = 28.0;
/// Characters of a label that fit in a box of width `W` at 11px monospace
/// (the bold caption a few less).
const LABEL: usize = 43;

pub(super) fn render(t: &Tree) -> String {
    let l = layout(t);
    let left = |i: usize| MARGIN + l.x[i] * (W + GAP_X);
    let top = |i: usize| MARGIN + l.y[i] as f64 * (H + GAP_Y);
    let width = (MARGIN * 2.0 + l.width.max(1.0) * (W + GAP_X) - GAP_X).max(W + 2.0 * MARGIN);
    let height = MARGIN * 2.0 + l.depth as f64 * (H + GAP_Y) - GAP_Y.min(l.depth as f64 * GAP_Y) + FOOT;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"monospace\" font-size=\"11\">"
    );
    out.push_str("<title>corral process tree</title>\n");
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
    for (i, up) in t.ups().into_iter().enumerate() {
        let Some(u) = up else { continue };
        let (x1, y1) = (left(u) + W / 2.0, top(u) + H);
        let (x2, y2) = (left(i) + W / 2.0, top(i));
        let mid = (y1 + y2) / 2.0;
        let dash = if t.members[i].placement == Placement::Reparented { " stroke-dasharray=\"5 4\"" } else { "" };
        let _ = writeln!(
            out,
            "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" d=\"M{x1:.1} {y1:.1} C{x1:.1} {mid:.1} {x2:.1} {mid:.1} {x2:.1} {y2:.1}\" fill=\"none\" stroke=\"#6b7a90\"{dash}/>",
            t.members[u].pid, t.members[i].pid
        );
    }
    for i in 0..t.members.len() {
        let m = &t.members[i];
        let (x, y) = (left(i), top(i));
        let (fill, ink) = if m.alive { ("#eef4ff", "#1b2a41") } else { ("#ececec", "#666666") };
        let parent = m.parent.map(|p| format!(" data-parent=\"{p}\"")).unwrap_or_default();
        let _ = writeln!(out, "<g class=\"node\" data-pid=\"{}\"{parent}>", m.pid);
        let _ = writeln!(
            out,
            "  <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{W}\" height=\"{H}\" rx=\"6\" fill=\"{fill}\" stroke=\"#8da2c0\"/>"
        );
        let _ = writeln!(
            out,
            "  <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{ink}\" font-weight=\"bold\">{}</text>",
            x + 8.0,
            y + 17.0,
            esc(&cut(&caption(t, i), LABEL - 3))
        );
        let _ = writeln!(
            out,
            "  <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{ink}\">{}</text>",
            x + 8.0,
            y + 34.0,
            esc(&cut(&short_cmd(&m.cmd), LABEL))
        );
        let _ = writeln!(out, "  <title>{}</title>", esc(&m.cmd));
        out.push_str("</g>\n");
    }
    let _ = writeln!(
        out,
        "<text class=\"note\" x=\"{MARGIN}\" y=\"{:.1}\" fill=\"#555555\" font-size=\"10\">{}</text>",
        height - 10.0,
        esc(&t.note)
    );
    out.push_str("</svg>\n");
    out
}

/// XML text: the five entities, controls dropped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
