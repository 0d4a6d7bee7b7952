//! A small layered layout for trees: one layer per depth, leaves side by
//! side in drawing order, each parent centred over its children. Pure
//! arithmetic, so the picture needs no tool at run time.

use super::Tree;

/// Where each member goes, in slots: `x` in node widths, `y` in layers.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Layout {
    pub x: Vec<f64>,
    pub y: Vec<usize>,
    /// Slots across (the widest layer's extent).
    pub width: f64,
    /// Layers down.
    pub depth: usize,
}

pub(super) fn layout(t: &Tree) -> Layout {
    let n = t.members.len();
    let mut x = vec![0.0; n];
    let mut y = vec![0usize; n];
    let kids = t.kids();
    let mut next_leaf = 0.0;
    for r in t.roots() {
        place(r, 0, &kids, &mut x, &mut y, &mut next_leaf);
    }
    Layout { x, y: y.clone(), width: next_leaf, depth: y.iter().max().map_or(0, |d| d + 1) }
}

/// Post-order without recursion (a deep chain must not overflow the stack).
fn place(root: usize, depth: usize, kids: &[Vec<usize>], x: &mut [f64], y: &mut [usize], next_leaf: &mut f64) {
    let mut stack = vec![(root, depth, false)];
    while let Some((i, d, done)) = stack.pop() {
        if done {
            x[i] = match (kids[i].first(), kids[i].last()) {
                (Some(&a), Some(&b)) => (x[a] + x[b]) / 2.0,
                _ => {
                    let at = *next_leaf;
                    *next_leaf += 1.0;
                    at
                }
            };
            continue;
        }
        y[i] = d;
        stack.push((i, d, true));
        for &c in kids[i].iter().rev() {
            stack.push((c, d + 1, false));
        }
    }
}
