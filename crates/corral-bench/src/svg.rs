//! A small log-log line plot as SVG, with no dependency.

use std::fmt::Write as _;

pub struct Series {
    pub label: String,
    pub color: String,
    pub dashed: bool,
    /// (x, y), both > 0.
    pub points: Vec<(f64, f64)>,
}

fn decades(lo: f64, hi: f64) -> (f64, f64) {
    (lo.log10().floor(), hi.log10().ceil().max(lo.log10().floor() + 1.0))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub fn log_log_plot(title: &str, xlabel: &str, ylabel: &str, series: &[Series]) -> String {
    let (w, h) = (900.0, 520.0);
    let (left, right, top, bottom) = (80.0, 330.0, 40.0, 60.0);
    let pts = series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0 > 0.0 && p.1 > 0.0);
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if xmin > xmax {
        (xmin, xmax, ymin, ymax) = (1.0, 10.0, 1.0, 10.0);
    }
    let (x0, x1) = decades(xmin, xmax);
    let (y0, y1) = decades(ymin, ymax);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let sx = |x: f64| left + (x.log10() - x0) / (x1 - x0) * pw;
    let sy = |y: f64| top + ph - (y.log10() - y0) / (y1 - y0) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        esc(title)
    );
    // Grid and ticks, one per power of ten (and 2, 5 in between).
    let mut e = x0;
    while e <= x1 + 1e-9 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powf(e);
            if v.log10() > x1 + 1e-9 {
                break;
            }
            let x = sx(v);
            let _ = writeln!(s, r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##, top + ph);
            let _ = writeln!(s, r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, top + ph + 18.0, v);
        }
        e += 1.0;
    }
    let mut e = y0;
    while e <= y1 + 1e-9 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powf(e);
            if v.log10() > y1 + 1e-9 {
                break;
            }
            let y = sy(v);
            let _ = writeln!(s, r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##, left + pw);
            let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, left - 6.0, y + 4.0, v);
        }
        e += 1.0;
    }
    let _ = writeln!(s, r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        h - 15.0,
        esc(xlabel)
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
        top + ph / 2.0,
        top + ph / 2.0,
        esc(ylabel)
    );
    for (i, se) in series.iter().enumerate() {
        let dash = if se.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let path: Vec<String> = se.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
        if !path.is_empty() {
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                path.join(" "),
                se.color
            );
            for &(x, y) in &se.points {
                let _ = writeln!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#, sx(x), sy(y), se.color);
            }
        }
        let ly = top + 10.0 + i as f64 * 20.0;
        let lx = left + pw + 20.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/>"#,
            lx + 30.0,
            se.color
        );
        let _ = writeln!(s, r#"<text x="{}" y="{}">{}</text>"#, lx + 38.0, ly + 4.0, esc(&se.label));
    }
    s.push_str("</svg>\n");
    s
}
