//! A [`Tree`] as text, JSON, DOT (Graphviz), mermaid or SVG. Every format
//! draws the same edges, parent to child; an edge placed by the
//! re-parented fallback is dashed (and labelled where the format allows),
//! and the lineage note travels with the picture.

mod dot;
mod layout;
mod mermaid;
mod svg;
mod text;

use super::Tree;

/// An output format of `corral tree` and `corral trace show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An indented table.
    Text,
    /// The [`Tree`] as JSON.
    Json,
    /// Graphviz DOT.
    Dot,
    /// A mermaid `graph TD`.
    Mermaid,
    /// An SVG picture, laid out by corral.
    Svg,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "dot" => Ok(Format::Dot),
            "mermaid" => Ok(Format::Mermaid),
            "svg" => Ok(Format::Svg),
            other => Err(format!("unknown format `{other}`: expected text, json, dot, mermaid or svg")),
        }
    }
}

/// `tree` in `format`, ending with a newline.
pub fn render(tree: &Tree, format: Format) -> String {
    match format {
        Format::Text => text::render(tree),
        Format::Json => serde_json::to_string_pretty(tree).unwrap_or_default() + "\n",
        Format::Dot => dot::render(tree),
        Format::Mermaid => mermaid::render(tree),
        Format::Svg => svg::render(tree),
    }
}

/// Node ids every format can use: `p<pid>`, or `p<pid>_<index>` for a
/// pid that names several members (a trace that saw it reused).
fn node_ids(tree: &Tree) -> Vec<String> {
    let mut count: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for m in &tree.members {
        *count.entry(m.pid).or_default() += 1;
    }
    let ids = tree.members.iter().enumerate();
    ids.map(|(i, m)| if count[&m.pid] > 1 { format!("p{}_{i}", m.pid) } else { format!("p{}", m.pid) }).collect()
}

/// CPU and memory in a few characters each, `-` when unknown.
fn usage(m: &super::Member) -> (String, String) {
    let cpu = m.cpu_ms.map_or("-".into(), |ms| corral::units::format_duration(std::time::Duration::from_millis(ms)));
    let mem = m.rss_bytes.map_or("-".into(), corral::units::format_size);
    (cpu, mem)
}

/// The first `n` characters of `s`, with `…` when cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// A command for a picture's label: the program by its file name (a
/// long path says little in a box), then its arguments.
fn short_cmd(cmd: &str) -> String {
    let (prog, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
    let name = if prog.starts_with('[') { prog } else { prog.rsplit('/').next().unwrap_or(prog) };
    if rest.is_empty() {
        name.to_string()
    } else {
        format!("{name} {rest}")
    }
}

/// What a member is, in a line: pid, what became of it, usage.
fn caption(tree: &Tree, i: usize) -> String {
    let m = &tree.members[i];
    let (cpu, mem) = usage(m);
    let mut s = format!("pid {}", m.pid);
    if let Some(end) = m.ending() {
        s.push_str(&format!(" · {end}"));
    } else if m.cpu_ms.is_some() || m.rss_bytes.is_some() {
        s.push_str(&format!(" · {cpu} · {mem}"));
    }
    match m.placement {
        super::Placement::Reparented => s.push_str(" · re-parented"),
        super::Placement::Lineage if m.alive && m.ppid != 0 && Some(m.ppid) != m.parent => {
            s.push_str(&format!(" · now under {}", m.ppid))
        }
        _ => {}
    }
    s
}

#[cfg(test)]
mod tests;
