//! The lines `GET /v1/logs` answers with, whatever the format of the
//! files they come from: `<label> | <ts> <tag> <text>`, or with `json=true`
//! one JSON object per line (the `json` file format, see `logs/record.rs`),
//! so `corral logs --json` reads the same from text and JSON files.

use crate::logs::{Batch, LogLine};

/// One instance's log, as the answer names it.
#[derive(Debug, Clone)]
pub(super) struct Source {
    /// `web`, or `web.1` when the service has several instances.
    pub label: String,
    pub service: String,
    pub instance: u32,
}

impl Source {
    /// A file line as the answer shows it (with its newline). A line of
    /// neither format (cut by a crash) is passed on as its text.
    pub fn render(&self, line: &str, json: bool) -> String {
        match (LogLine::parse(line), json) {
            (Some(l), true) => format!("{}\n", l.to_json(&self.service, self.instance)),
            (Some(l), false) => format!("{} | {}\n", self.label, l.to_text()),
            (None, true) => {
                let v = serde_json::json!({ "service": self.service, "instance": self.instance, "line": line });
                format!("{v}\n")
            }
            (None, false) => format!("{} | {line}\n", self.label),
        }
    }

    /// A followed batch: the marker of what was skipped, then the lines.
    pub fn batch(&self, batch: &Batch, json: bool) -> String {
        let mut text = String::new();
        if batch.skipped > 0 {
            if json {
                let v =
                    serde_json::json!({ "service": self.service, "instance": self.instance, "skipped": batch.skipped });
                text.push_str(&format!("{v}\n"));
            } else {
                text.push_str(&format!(
                    "{} | -- skipped {} bytes: this reader fell behind --\n",
                    self.label, batch.skipped
                ));
            }
        }
        for l in &batch.lines {
            text.push_str(&self.render(l, json));
        }
        text
    }
}

/// The key that merges the tails of several files in time order: a line's
/// timestamp, in either format.
pub(super) fn when(line: &str) -> String {
    LogLine::parse(line).map(|l| l.ts).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_render_alike() {
        let s = Source { label: "web.1".into(), service: "web".into(), instance: 1 };
        let text = "2026-01-02T03:04:05.678Z err boom";
        let json =
            r#"{"ts":"2026-01-02T03:04:05.678Z","service":"web","instance":1,"stream":"stderr","pid":7,"line":"boom"}"#;
        assert_eq!(s.render(text, false), "web.1 | 2026-01-02T03:04:05.678Z err boom\n");
        assert_eq!(s.render(json, false), "web.1 | 2026-01-02T03:04:05.678Z err boom\n");
        assert_eq!(s.render(json, true), format!("{json}\n"));
        assert_eq!(s.render(text, true), format!("{}\n", json.replace(r#""pid":7"#, r#""pid":null"#)));
        assert_eq!(s.render("torn", true), "{\"instance\":1,\"line\":\"torn\",\"service\":\"web\"}\n");
        assert_eq!(when(json), when(text));
        let b = Batch { skipped: 5, lines: vec![text.into()] };
        assert!(s.batch(&b, true).starts_with("{\"instance\":1,\"service\":\"web\",\"skipped\":5}\n"));
    }
}
