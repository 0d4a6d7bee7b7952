//! What an http probe may require of the answer besides its status: a
//! body that matches a regex (`body = "ok|up"`), or a JSON body whose
//! field, named by a JSON pointer (RFC 6901), equals a value
//! (`json = { path = "/status", equals = "up" }`). A `/health` that
//! answers 200 with `{"status":"down"}` then fails, and says why.
//!
//! Bounds: a pattern is at most [`MAX_PATTERN`] bytes and compiles to at
//! most [`MAX_COMPILED`]; at most [`MAX_BODY`] bytes of the body are read,
//! and a longer body fails the check (a health answer is small; reading
//! on would let a service make the daemon hold what it sends).

use serde_json::Value;

/// The most bytes of a body read for a check.
pub const MAX_BODY: usize = 64 * 1024;
/// The longest `body` pattern accepted.
pub const MAX_PATTERN: usize = 4 * 1024;
/// The most memory a compiled pattern may take (the regex crate's
/// `size_limit`), so a short pattern cannot blow up either.
pub const MAX_COMPILED: usize = 1 << 20;

/// A requirement on the body of an http probe's answer.
#[derive(Debug, Clone)]
pub enum BodyCheck {
    /// `body = "regex"`: the body (as UTF-8, lossily) has a match.
    Regex(regex::Regex),
    /// `json = { path, equals }`: the body is JSON and the value at
    /// `path` equals `equals`, compared as JSON (numbers by value).
    Json {
        /// A JSON pointer, RFC 6901 (`/status`, `/checks/0/ok`).
        path: String,
        /// The value required there.
        equals: Value,
    },
}

/// Two checks are the same when they say the same (a compiled regex has
/// no equality of its own): a reload compares specs.
impl PartialEq for BodyCheck {
    fn eq(&self, other: &BodyCheck) -> bool {
        match (self, other) {
            (BodyCheck::Regex(a), BodyCheck::Regex(b)) => a.as_str() == b.as_str(),
            (BodyCheck::Json { path: p, equals: e }, BodyCheck::Json { path: q, equals: f }) => p == q && e == f,
            _ => false,
        }
    }
}

impl BodyCheck {
    /// `body = "…"`, checked and compiled within the bounds; the error is
    /// one line for a person.
    pub fn regex(pattern: &str) -> Result<BodyCheck, String> {
        if pattern.len() > MAX_PATTERN {
            return Err(format!("the pattern is {} bytes, over {MAX_PATTERN}", pattern.len()));
        }
        regex::RegexBuilder::new(pattern).size_limit(MAX_COMPILED).build().map(BodyCheck::Regex).map_err(|e| {
            let e = e.to_string();
            let last = e.lines().last().unwrap_or_default().trim().trim_start_matches("error: ").to_string();
            format!("invalid regex: {last}")
        })
    }

    /// `json = { path, equals }`, with the pointer checked.
    pub fn json(path: &str, equals: Value) -> Result<BodyCheck, String> {
        pointer_syntax(path)?;
        Ok(BodyCheck::Json { path: path.to_string(), equals })
    }

    /// Whether `body` passes; `Err` says why not, in a few words.
    pub fn check(&self, body: &[u8]) -> Result<(), String> {
        match self {
            BodyCheck::Regex(re) => {
                let text = String::from_utf8_lossy(body);
                if re.is_match(&text) {
                    Ok(())
                } else {
                    Err(format!("the body does not match `{}`: {}", re.as_str(), excerpt(&text)))
                }
            }
            BodyCheck::Json { path, equals } => {
                let doc: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
                match doc.pointer(path) {
                    None => Err(format!("the body has no {}", shown(path))),
                    Some(v) if same(v, equals) => Ok(()),
                    Some(v) => Err(format!("{} is {}, not {}", shown(path), excerpt(&v.to_string()), equals)),
                }
            }
        }
    }
}

/// An empty pointer is the whole document; say so.
fn shown(path: &str) -> String {
    if path.is_empty() {
        "the document".into()
    } else {
        format!("`{path}`")
    }
}

/// Equal as JSON; numbers by value, so `1` in the config equals `1.0` in
/// the body.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y),
        _ => a == b,
    }
}

/// At most 80 characters of what was seen, for a failure text.
fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// RFC 6901: empty (the whole document), or `/`-separated tokens in which
/// `~` is only ever `~0` or `~1`.
fn pointer_syntax(path: &str) -> Result<(), String> {
    if !path.is_empty() && !path.starts_with('/') {
        return Err(format!("invalid JSON pointer `{path}`: it starts with `/` (RFC 6901), like \"/status\""));
    }
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!("invalid JSON pointer `{path}`: `~` is written `~0` and `/` inside a name `~1`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_json_field_must_equal_the_value() {
        let up = BodyCheck::json("/status", json!("up")).unwrap();
        assert!(up.check(br#"{"status":"up"}"#).is_ok());
        let e = up.check(br#"{"status":"down"}"#).unwrap_err();
        assert_eq!(e, r#"`/status` is "down", not "up""#);
        assert_eq!(up.check(br#"{"state":"up"}"#).unwrap_err(), "the body has no `/status`");
        assert!(up.check(b"up").unwrap_err().starts_with("the body is not JSON"));
        // Compared as JSON: the string "1" is not the number 1.
        let one = BodyCheck::json("/checks/0/n", json!(1)).unwrap();
        assert!(one.check(br#"{"checks":[{"n":1.0}]}"#).is_ok());
        assert!(one.check(br#"{"checks":[{"n":"1"}]}"#).is_err());
        // RFC 6901 escapes: `~1` is `/`, `~0` is `~`.
        let esc = BodyCheck::json("/a~1b/c~0d", json!(true)).unwrap();
        assert!(esc.check(br#"{"a/b":{"c~d":true}}"#).is_ok());
        let whole = BodyCheck::json("", json!({"ok": true})).unwrap();
        assert!(whole.check(br#"{ "ok" : true }"#).is_ok());
    }

    #[test]
    fn bad_pointers_are_refused() {
        assert!(BodyCheck::json("status", json!("up")).unwrap_err().contains("starts with `/`"));
        assert!(BodyCheck::json("/a~2", json!(1)).unwrap_err().contains("`~0`"));
        assert!(BodyCheck::json("/a~", json!(1)).is_err());
    }

    #[test]
    fn a_regex_must_match_and_is_bounded() {
        let re = BodyCheck::regex(r#""status"\s*:\s*"up""#).unwrap();
        assert!(re.check(br#"{"status": "up"}"#).is_ok());
        let e = re.check(br#"{"status":"down"}"#).unwrap_err();
        assert!(e.starts_with("the body does not match") && e.contains("down"), "{e}");
        assert!(BodyCheck::regex("(unclosed").unwrap_err().starts_with("invalid regex"));
        assert!(BodyCheck::regex(&"a".repeat(MAX_PATTERN + 1)).unwrap_err().contains("over 4096"));
        // Short, but it would compile to far more than the bound.
        assert!(BodyCheck::regex(r"\w{1000}\w{1000}\w{1000}").is_err());
    }

    #[test]
    fn equal_specs_compare_equal() {
        assert_eq!(BodyCheck::regex("up").unwrap(), BodyCheck::regex("up").unwrap());
        assert_ne!(BodyCheck::regex("up").unwrap(), BodyCheck::regex("ok").unwrap());
        assert_ne!(BodyCheck::regex("up").unwrap(), BodyCheck::json("/up", json!(1)).unwrap());
    }
}
