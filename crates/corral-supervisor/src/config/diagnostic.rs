//! Config errors as a person reads them: `file:line:column: message`, the
//! expected form, and a "did you mean" when a known name is close.

use std::fmt;
use std::ops::Range;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line, 0 when the problem has no place in the file.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The form that would be accepted.
    pub expected: Option<String>,
    /// A close known name.
    pub did_you_mean: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)?;
        } else {
            write!(f, "{}: {}", self.file, self.message)?;
        }
        if let Some(e) = &self.expected {
            write!(f, "\n    expected: {e}")?;
        }
        if let Some(d) = &self.did_you_mean {
            write!(f, "\n    help: did you mean `{d}`?")?;
        }
        Ok(())
    }
}

/// Every problem found in one config file. Nothing is started when there
/// is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects diagnostics against one source text, turning byte spans into
/// line and column.
pub(crate) struct Sink<'a> {
    file: &'a str,
    src: &'a str,
    pub(crate) out: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(file: &'a str, src: &'a str) -> Self {
        Sink { file, src, out: Vec::new() }
    }

    pub(crate) fn push(
        &mut self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        expected: Option<String>,
        did_you_mean: Option<String>,
    ) {
        let (line, column) = match span {
            Some(s) => line_col(self.src, s.start),
            None => (0, 0),
        };
        self.out.push(Diagnostic {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
            expected,
            did_you_mean,
        });
    }

    /// `file:line:col` of a span, for a message about another place.
    pub(crate) fn place(&self, span: &Option<Range<usize>>) -> String {
        match span {
            Some(s) => {
                let (line, column) = line_col(self.src, s.start);
                format!("{}:{line}:{column}", self.file)
            }
            None => self.file.to_string(),
        }
    }

    /// The file, and the 1-based line and column of `span` (0, 0 without).
    pub(crate) fn place_parts(&self, span: Option<Range<usize>>) -> (String, usize, usize) {
        let (line, column) = span.map_or((0, 0), |s| line_col(self.src, s.start));
        (self.file.to_string(), line, column)
    }

    /// Sorted by place so the output reads top to bottom.
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.out.sort_by_key(|d| (d.line == 0, d.line, d.column));
        self.out.dedup();
        self.out
    }
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..src.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    // `str::floor_char_boundary` is not stable on our MSRV.
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// The known name closest to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    // Edit distance catches swapped letters in short words ("wbe"), and
    // Jaro-Winkler catches longer words with a shared beginning.
    let limit = (word.chars().count() / 3).max(1);
    known
        .into_iter()
        .filter_map(|k| {
            let d = strsim::osa_distance(word, k);
            let jw = strsim::jaro_winkler(word, k);
            (d <= limit || jw >= 0.85).then_some((d, -jw, k))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(_, _, k)| k.to_string())
}

/// Serde's own messages for unknown names name the accepted ones:
/// "unknown field `comand`, expected one of `command`, `shell`". This pulls
/// out the word and the candidates so the message can carry a suggestion.
pub(crate) fn split_unknown(message: &str) -> Option<(&'static str, String, Vec<String>)> {
    let (what, rest) = if let Some(r) = message.strip_prefix("unknown field `") {
        ("key", r)
    } else if let Some(r) = message.strip_prefix("unknown variant `") {
        ("value", r)
    } else {
        return None;
    };
    let (word, tail) = rest.split_once('`')?;
    let known: Vec<String> = tail.split('`').skip(1).step_by(2).map(str::to_string).collect();
    Some((what, word.to_string(), known))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, src.find('=').unwrap()), (1, 3));
        assert_eq!(line_col(src, src.rfind('=').unwrap()), (2, 4));
    }

    #[test]
    fn suggestions_need_a_close_name() {
        assert_eq!(did_you_mean("comand", ["command", "cwd"]).as_deref(), Some("command"));
        assert_eq!(did_you_mean("zzz", ["command", "cwd"]), None);
    }

    #[test]
    fn serde_unknown_messages_split() {
        let (what, word, known) = split_unknown("unknown field `comand`, expected one of `command`, `shell`").unwrap();
        assert_eq!((what, word.as_str()), ("key", "comand"));
        assert_eq!(known, ["command", "shell"]);
        let (_, _, known) = split_unknown("unknown variant `x`, expected `a` or `b`").unwrap();
        assert_eq!(known, ["a", "b"]);
        assert!(split_unknown("invalid type").is_none());
    }
}
