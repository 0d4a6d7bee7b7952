use super::*;
use crate::tree::lineage::{Lineage, TraceLine};
use crate::tree::Tree;
use corral::ProcessInfo;

fn tree() -> Tree {
    let mut l = Lineage::new();
    l.apply(&TraceLine::Run { leader: 10, lineage: true, note: "why \"so\"".into(), backend: "b".into(), at_ms: 0 });
    for (pid, parent) in [(10, 5), (11, 10), (12, 10), (20, 12)] {
        l.apply(&TraceLine::Start { pid, parent: Some(parent), exe: None, argv: vec![], at_ms: 1 });
    }
    l.apply(&TraceLine::Exit { pid: 12, code: Some(0), signal: None, at_ms: 2 });
    let p = |pid, ppid| ProcessInfo::new(pid, ppid, pid, pid, None, format!("sh -c \"x<{pid}>\""));
    Tree::live(vec![p(10, 5), p(11, 10), p(20, 1), p(30, 1)], 10, Some(&l))
}

fn edges(t: &Tree) -> Vec<(u32, u32)> {
    (0..t.members.len()).filter_map(|i| t.up(i).map(|u| (t.members[u].pid, t.members[i].pid))).collect()
}

#[test]
fn dot_has_every_node_and_every_edge() {
    let t = tree();
    let d = render(&t, Format::Dot);
    for m in &t.members {
        assert!(d.contains(&format!("  p{} [label=", m.pid)), "{d}");
    }
    for (a, b) in edges(&t) {
        assert!(d.contains(&format!("  p{a} -> p{b}")), "{a}->{b} in {d}");
    }
    assert!(d.contains("p10 -> p30 [style=dashed"), "{d}");
    assert!(d.contains("why \\\"so\\\""), "quotes escaped: {d}");
}

#[test]
fn mermaid_has_every_edge_and_escapes_labels() {
    let t = tree();
    let m = render(&t, Format::Mermaid);
    assert!(m.starts_with("graph TD\n"));
    for (a, b) in edges(&t) {
        assert!(m.contains(&format!("p{a} --> p{b}")) || m.contains(&format!("p{a} -.->|re-parented| p{b}")), "{m}");
    }
    assert!(m.contains("#quot;x#lt;10#gt;#quot;"), "{m}");
}

#[test]
fn svg_is_well_formed_and_readable_back() {
    let t = tree();
    let s = render(&t, Format::Svg);
    assert!(s.starts_with("<svg ") && s.trim_end().ends_with("</svg>"));
    assert_eq!(s.matches("<g class=\"node\"").count(), t.members.len());
    for (a, b) in edges(&t) {
        assert!(s.contains(&format!("data-from=\"{a}\" data-to=\"{b}\"")), "{s}");
    }
    assert!(!s.contains("x<10>"), "escaped");
    assert_eq!(s.matches("<g").count(), s.matches("</g>").count());
}

#[test]
fn json_round_trips() {
    let t = tree();
    let back: Tree = serde_json::from_str(&render(&t, Format::Json)).unwrap();
    assert_eq!(back, t);
}

#[test]
fn text_marks_the_gone_and_the_re_parented() {
    let s = render(&tree(), Format::Text);
    assert!(s.contains("[exit 0]"), "{s}");
    assert!(s.contains("(re-parented)"), "{s}");
    assert!(s.contains("(started by 12, now under 1)"), "{s}");
    assert!(s.lines().last().unwrap().starts_with("# "), "{s}");
}

#[test]
fn layout_centres_parents_and_keeps_layers() {
    let t = tree();
    let l = layout::layout(&t);
    for i in 0..t.members.len() {
        if let Some(u) = t.up(i) {
            assert_eq!(l.y[i], l.y[u] + 1);
        }
    }
    let xs: Vec<(usize, f64)> = (0..t.members.len()).map(|i| (l.y[i], l.x[i])).collect();
    for (a, pa) in xs.iter().enumerate() {
        for pb in xs.iter().skip(a + 1) {
            assert!(pa != pb, "two nodes in one place: {xs:?}");
        }
    }
}

#[test]
fn formats_parse_and_refuse_in_one_line() {
    assert_eq!("svg".parse::<Format>(), Ok(Format::Svg));
    let e = "png".parse::<Format>().unwrap_err();
    assert!(e.contains("expected text, json, dot, mermaid or svg"), "{e}");
}
