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

/// One column of a spread plot: a contender's p50 and p90 and its range.
/// Values are in the plot's unit and must be > 0 to be drawn (NaN: none).
pub struct Spread {
    pub label: String,
    pub color: String,
    pub p50: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
}

/// A value as its text label: three significant digits at most.
fn num(v: f64) -> String {
    let digits = 2i32.saturating_sub(v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A dot plot on a log y axis, one column per contender: a dot at p50, a
/// bar from p50 up to p90, a thin line from min to max, each value written
/// beside its mark so the figure reads without the table.
pub fn spread_plot(title: &str, ylabel: &str, unit: &str, rows: &[Spread]) -> String {
    let (w, h) = (760.0, 460.0);
    let (left, right, top, bottom) = (80.0, 20.0, 56.0, 56.0);
    let drawn = |v: f64| v.is_finite() && v > 0.0;
    let vals = rows.iter().flat_map(|r| [r.p50, r.p90, r.min, r.max]).filter(|&v| drawn(v));
    let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (y0, y1) = if lo > hi { (0.0, 1.0) } else { decades(lo, hi) };
    let pw = w - left - right;
    let ph = h - top - bottom;
    let sy = |y: f64| top + ph - (y.log10() - y0) / (y1 - y0) * ph;
    let col = pw / rows.len().max(1) as f64;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#, w / 2.0, esc(title));
    let _ = writeln!(
        s,
        r##"<text x="{}" y="40" text-anchor="middle" fill="#555">dot: p50 · bar: p50 to p90 · thin line: min to max</text>"##,
        w / 2.0
    );
    let mut e = y0;
    while e <= y1 + 1e-9 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powf(e);
            if v.log10() > y1 + 1e-9 {
                break;
            }
            let y = sy(v);
            let _ = writeln!(s, r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##, left + pw);
            let _ =
                writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, left - 6.0, y + 4.0, num(v));
        }
        e += 1.0;
    }
    let _ = writeln!(s, r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#);
    let mid = top + ph / 2.0;
    let _ = writeln!(
        s,
        r#"<text x="18" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 18 {mid:.1})">{}</text>"#,
        esc(ylabel)
    );
    for (i, r) in rows.iter().enumerate() {
        let cx = left + (i as f64 + 0.5) * col;
        let c = &r.color;
        let _ = writeln!(
            s,
            r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="13">{}</text>"#,
            top + ph + 22.0,
            esc(&r.label)
        );
        if !drawn(r.p50) {
            let _ =
                writeln!(s, r##"<text x="{cx:.1}" y="{mid:.1}" text-anchor="middle" fill="#555">no samples</text>"##);
            continue;
        }
        if drawn(r.min) && drawn(r.max) {
            let _ = writeln!(
                s,
                r#"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="{c}" stroke-width="1.5"/>"#,
                sy(r.min),
                sy(r.max)
            );
        }
        let y50 = sy(r.p50);
        let tx = cx + 14.0;
        if drawn(r.p90) {
            let y90 = sy(r.p90);
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="12" height="{:.1}" fill="{c}" fill-opacity="0.35" stroke="{c}"/>"#,
                cx - 6.0,
                y90.min(y50),
                (y50 - y90).abs()
            );
            // Keep the p90 label clear of the p50 label when they are close.
            let ly = (y90 + 4.0).min(y50 - 10.0);
            let _ = writeln!(s, r#"<text x="{tx:.1}" y="{ly:.1}">p90 {} {unit}</text>"#, num(r.p90));
        }
        let _ = writeln!(s, r#"<circle cx="{cx:.1}" cy="{y50:.1}" r="5" fill="{c}"/>"#);
        let _ = writeln!(s, r#"<text x="{tx:.1}" y="{:.1}">p50 {} {unit}</text>"#, y50 + 14.0, num(r.p50));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that every tag is closed in order and every attribute quoted;
    /// returns the contents of the `<text>` elements.
    fn well_formed(svg: &str) -> Vec<String> {
        let mut open: Vec<String> = Vec::new();
        let mut texts = Vec::new();
        let mut rest = svg;
        while let Some(at) = rest.find('<') {
            let between = &rest[..at];
            assert!(!between.contains('>'), "a stray '>' in {between:?}");
            if open.last().is_some_and(|t| t == "text") {
                texts.push(between.to_string());
            }
            let end = rest[at..].find('>').expect("a tag is not closed") + at;
            let tag = &rest[at + 1..end];
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop().as_deref(), Some(name), "</{name}> closes nothing open");
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().unwrap_or_default().to_string());
            }
            rest = &rest[end + 1..];
        }
        assert!(open.is_empty(), "left open: {open:?}");
        assert!(svg.trim_start().starts_with("<svg ") && rest.trim().is_empty());
        texts
    }

    /// The number after `prefix` in the text element that starts with it.
    fn value(texts: &[String], prefix: &str) -> Vec<f64> {
        texts
            .iter()
            .filter_map(|t| t.strip_prefix(prefix))
            .map(|t| t.trim().trim_end_matches("ms").trim().parse::<f64>().expect(t))
            .collect()
    }

    #[test]
    fn spread_plot_is_well_formed_and_carries_every_label_and_value() {
        let row = |label: &str, p50: f64, p90: f64, min: f64, max: f64| Spread {
            label: label.into(),
            color: "#123456".into(),
            p50,
            p90,
            min,
            max,
        };
        let rows = [
            row("corral <&>", 18.53, 25.1, 12.02, 40.7),
            row("supervisord", 153.0, 170.4, 101.0, 250.0),
            row("PM2", 0.812, 8.1, 0.5, 9.0),
            row("missing", f64::NAN, f64::NAN, f64::NAN, f64::NAN),
        ];
        let svg = spread_plot("Restart latency", "ms until restarted", "ms", &rows);
        let texts = well_formed(&svg);
        assert!(texts.contains(&"Restart latency".to_string()));
        assert!(texts.contains(&"ms until restarted".to_string()));
        assert!(texts.contains(&"corral &lt;&amp;&gt;".to_string()), "{texts:?}");
        for l in ["supervisord", "PM2", "missing"] {
            assert!(texts.contains(&l.to_string()), "{l} not in {texts:?}");
        }
        assert!(texts.contains(&"no samples".to_string()));
        let p50s = value(&texts, "p50 ");
        let p90s = value(&texts, "p90 ");
        assert_eq!(p50s.len(), 3);
        assert_eq!(p90s.len(), 3);
        for (r, (p50, p90)) in rows.iter().zip(p50s.iter().zip(&p90s)) {
            // Three significant digits.
            assert!((p50 - r.p50).abs() <= r.p50 * 0.005, "{p50} for {}", r.p50);
            assert!((p90 - r.p90).abs() <= r.p90 * 0.005, "{p90} for {}", r.p90);
        }
        // The axis spans every value: from 0.1 ms to 1000 ms.
        let ticks: Vec<f64> = texts.iter().filter_map(|t| t.parse::<f64>().ok()).collect();
        assert_eq!(ticks.first(), Some(&0.1), "{ticks:?}");
        assert_eq!(ticks.last(), Some(&1000.0), "{ticks:?}");
    }

    #[test]
    fn numbers_keep_three_significant_digits() {
        assert_eq!(num(18.53), "18.5");
        assert_eq!(num(0.812), "0.812");
        assert_eq!(num(153.0), "153");
        assert_eq!(num(2000.0), "2000");
        assert_eq!(num(0.5), "0.5");
    }
}
