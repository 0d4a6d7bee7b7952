//! One log line as data, in either of the two file formats, and back.
//!
//! - `text` (the default): `<ts> <tag> <text>`, the tag `out` or `err`
//!   (`out+`/`err+` for the pieces after the first of an overlong line).
//! - `json`: one object per line, keys in this order:
//!   `{"ts":"2026-01-02T03:04:05.678Z","service":"web","instance":0,
//!   "stream":"stdout","pid":4242,"line":"…"}`, plus `"continued":true` on
//!   the pieces after the first of an overlong line. `pid` is the group
//!   leader's (null when unknown).
//!
//! Non-UTF-8 output is kept losslessly in JSON: `line` holds the text with
//! each invalid byte replaced by U+FFFD (so every JSON reader can show
//! it), and `line_base64` the exact bytes (standard alphabet, padded). The
//! key is present only when the bytes are not UTF-8. A text file holds the
//! raw bytes; reading it back as text replaces invalid bytes.

use super::Stream;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The formats of the instance files (`logs.format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `<ts> <out|err> <text>`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// One line of one instance's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When it was read, RFC 3339 UTC with milliseconds.
    pub ts: String,
    /// Which pipe it came from.
    pub stream: Stream,
    /// A piece after the first of an overlong line.
    pub continued: bool,
    /// The leader's pid, when known.
    pub pid: Option<u32>,
    /// The line's bytes, without its newline.
    pub bytes: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Json<'a> {
    ts: std::borrow::Cow<'a, str>,
    service: std::borrow::Cow<'a, str>,
    instance: u32,
    stream: Stream,
    pid: Option<u32>,
    line: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_false")]
    continued: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line_base64: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Out => "stdout",
            Stream::Err => "stderr",
        }
    }

    /// The tag of the text format.
    pub(crate) fn tag(self, continued: bool) -> &'static str {
        match (self, continued) {
            (Stream::Out, false) => "out",
            (Stream::Out, true) => "out+",
            (Stream::Err, false) => "err",
            (Stream::Err, true) => "err+",
        }
    }
}

impl Serialize for Stream {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Stream {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "stdout" => Ok(Stream::Out),
            "stderr" => Ok(Stream::Err),
            other => Err(serde::de::Error::custom(format!("unknown stream `{other}`"))),
        }
    }
}

impl LogLine {
    /// The JSON object (no newline) of this line of `service`'s
    /// instance `instance`.
    pub fn to_json(&self, service: &str, instance: u32) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        let exact = matches!(text, std::borrow::Cow::Owned(_))
            .then(|| base64::engine::general_purpose::STANDARD.encode(&self.bytes));
        let j = Json {
            ts: self.ts.as_str().into(),
            service: service.into(),
            instance,
            stream: self.stream,
            pid: self.pid,
            line: text,
            continued: self.continued,
            line_base64: exact,
        };
        serde_json::to_string(&j).unwrap_or_default()
    }

    /// The line in the text format: `<ts> <tag> <text>`.
    pub fn to_text(&self) -> String {
        format!("{} {} {}", self.ts, self.stream.tag(self.continued), String::from_utf8_lossy(&self.bytes))
    }

    /// Reads a line of either format; `None` for what is neither (a line
    /// cut by a crash, or a marker).
    pub fn parse(line: &str) -> Option<LogLine> {
        if line.starts_with('{') {
            let j: Json<'_> = serde_json::from_str(line).ok()?;
            let bytes = match j.line_base64.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok()) {
                Some(exact) => exact,
                None => j.line.into_owned().into_bytes(),
            };
            return Some(LogLine {
                ts: j.ts.into_owned(),
                stream: j.stream,
                continued: j.continued,
                pid: j.pid,
                bytes,
            });
        }
        let mut parts = line.splitn(3, ' ');
        let ts = parts.next()?;
        let (stream, continued) = match parts.next()? {
            "out" => (Stream::Out, false),
            "out+" => (Stream::Out, true),
            "err" => (Stream::Err, false),
            "err+" => (Stream::Err, true),
            _ => return None,
        };
        let text = parts.next().unwrap_or("");
        Some(LogLine { ts: ts.to_string(), stream, continued, pid: None, bytes: text.as_bytes().to_vec() })
    }
}

/// What a person or a pattern reads of a file line of either format: the
/// output's text alone (a log probe's regex sees only this).
pub fn text_of(line: &str) -> std::borrow::Cow<'_, str> {
    if line.starts_with('{') {
        if let Some(l) = LogLine::parse(line) {
            return String::from_utf8_lossy(&l.bytes).into_owned().into();
        }
    }
    let mut parts = line.splitn(3, ' ');
    let _ts = parts.next();
    let _tag = parts.next();
    parts.next().unwrap_or("").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(bytes: &[u8], stream: Stream, continued: bool) -> LogLine {
        LogLine { ts: "2026-01-02T03:04:05.678Z".into(), stream, continued, pid: Some(42), bytes: bytes.to_vec() }
    }

    #[test]
    fn json_lines_have_the_documented_keys_in_order() {
        let l = line(b"hello \"world\"", Stream::Err, false);
        assert_eq!(
            l.to_json("web", 1),
            r#"{"ts":"2026-01-02T03:04:05.678Z","service":"web","instance":1,"stream":"stderr","pid":42,"line":"hello \"world\""}"#
        );
        let c = line(b"rest", Stream::Out, true);
        assert!(c.to_json("web", 0).ends_with(r#""line":"rest","continued":true}"#));
    }

    #[test]
    fn non_utf8_bytes_come_back_exactly_from_json() {
        let l = line(b"caf\xe9 \xff\x00end", Stream::Out, false);
        let j = l.to_json("web", 0);
        assert!(j.contains(r#""line":"caf� �\u0000end""#), "{j}");
        assert!(j.contains(r#""line_base64":"Y2Fm6SD/AGVuZA==""#), "{j}");
        let back = LogLine::parse(&j).unwrap();
        assert_eq!(back, l);
        assert_eq!(text_of(&j), "caf� �\u{0}end");
    }

    #[test]
    fn both_formats_read_back_into_the_same_line() {
        let l = line("été".as_bytes(), Stream::Err, true);
        let mut from_text = LogLine::parse(&l.to_text()).unwrap();
        assert_eq!(from_text.pid, None, "the text format has no pid");
        from_text.pid = l.pid;
        assert_eq!(from_text, l);
        assert_eq!(LogLine::parse(&l.to_json("s", 0)).unwrap(), l);
        assert_eq!(l.to_text(), "2026-01-02T03:04:05.678Z err+ été");
        assert_eq!(
            LogLine::parse("2026-01-02T03:04:05.678Z out"),
            Some(line(b"", Stream::Out, false)).map(|mut l| {
                l.pid = None;
                l
            })
        );
        assert_eq!(LogLine::parse("-- skipped 10 bytes --"), None);
        assert_eq!(LogLine::parse("{\"ts\":"), None);
    }

    #[test]
    fn patterns_see_the_text_only() {
        assert_eq!(text_of("2024-05-01T12:00:00.000Z out listening on 8080"), "listening on 8080");
        assert_eq!(text_of("2024-05-01T12:00:00.000Z err"), "");
        let j = line(b"listening on 8080", Stream::Out, false).to_json("web", 0);
        assert_eq!(text_of(&j), "listening on 8080");
    }
}
