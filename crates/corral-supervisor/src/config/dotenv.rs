//! The dotenv syntax of `env_file`, parsed by hand: `KEY=VALUE` lines,
//! `# comments`, an optional `export ` prefix, 'single quotes' taken
//! literally, "double quotes" with backslash escapes, and quoted values
//! that span lines.
//!
//! Why not the `dotenvy` crate: it expands `$VAR` and `${VAR}` from the
//! process environment, which here is the daemon's own (often root's, with
//! its tokens): an env file would hand a service variables the config
//! never meant to pass. It also reports an error as a line's text and an
//! offset, not a line and a column. This parser expands nothing (`$HOME`
//! stays `$HOME`, as in systemd's `EnvironmentFile=`) and says where every
//! error is.

/// Where and why an env file does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DotenvError {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// The variables of an env file, in file order (a later one of the same
/// name wins when they are applied).
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, DotenvError> {
    let mut p = Parser { chars: text.chars().collect(), at: 0, line: 1, column: 1 };
    let mut out = Vec::new();
    loop {
        p.skip_blanks();
        match p.peek() {
            None => return Ok(out),
            Some('\n') => {
                p.bump();
                continue;
            }
            Some('#') => {
                p.skip_to_eol();
                continue;
            }
            Some(_) => {}
        }
        let (line, column) = (p.line, p.column);
        let mut key = p.word();
        if key == "export" && matches!(p.peek(), Some(' ' | '\t')) {
            p.skip_blanks();
            key = p.word();
        }
        if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
            let at = if key.is_empty() { p.here() } else { (line, column) };
            return Err(p.error_at(at, "expected a variable name (letters, digits, `_`, `.`), like KEY=value"));
        }
        p.skip_blanks();
        if p.peek() != Some('=') {
            return Err(p.error(format!("expected `=` after `{key}`, like {key}=value")));
        }
        p.bump();
        p.skip_blanks();
        let value = match p.peek() {
            Some('\'') => p.single_quoted()?,
            Some('"') => p.double_quoted()?,
            _ => p.unquoted(),
        };
        p.skip_blanks();
        match p.peek() {
            None | Some('\n') => {}
            Some('#') => p.skip_to_eol(),
            Some(_) => return Err(p.error("unexpected text after the closing quote; quote the whole value")),
        }
        if value.contains('\0') {
            return Err(p.error_at((line, column), format!("the value of `{key}` holds a NUL byte")));
        }
        out.push((key, value));
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    line: usize,
    column: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn here(&self) -> (usize, usize) {
        (self.line, self.column)
    }

    fn error(&self, message: impl Into<String>) -> DotenvError {
        self.error_at(self.here(), message)
    }

    fn error_at(&self, (line, column): (usize, usize), message: impl Into<String>) -> DotenvError {
        DotenvError { line, column, message: message.into() }
    }

    /// Spaces, tabs, and the `\r` of CRLF line ends.
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
        }
    }

    fn skip_to_eol(&mut self) {
        while !matches!(self.peek(), None | Some('\n')) {
            self.bump();
        }
    }

    fn word(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self.peek().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.')) {
            w.push(c);
            self.bump();
        }
        w
    }

    /// To the end of the line or a ` #` comment, trailing blanks trimmed.
    fn unquoted(&mut self) -> String {
        let mut v = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' || (c == '#' && v.ends_with([' ', '\t'])) {
                break;
            }
            v.push(c);
            self.bump();
        }
        v.truncate(v.trim_end_matches([' ', '\t', '\r']).len());
        v
    }

    fn single_quoted(&mut self) -> Result<String, DotenvError> {
        let open = self.here();
        self.bump();
        let mut v = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error_at(open, "this single quote is never closed")),
                Some('\'') => return Ok(v),
                Some(c) => v.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, DotenvError> {
        let open = self.here();
        self.bump();
        let mut v = String::new();
        loop {
            let at = self.here();
            match self.bump() {
                None => return Err(self.error_at(open, "this double quote is never closed")),
                Some('"') => return Ok(v),
                Some('\\') => match self.bump() {
                    Some('n') => v.push('\n'),
                    Some('t') => v.push('\t'),
                    Some('r') => v.push('\r'),
                    Some(c @ ('\\' | '"' | '\'' | '$' | '`')) => v.push(c),
                    // A backslash at the end of a line joins the next one.
                    Some('\n') => {}
                    Some(c) => {
                        return Err(self.error_at(
                            at,
                            format!("unknown escape `\\{c}` in double quotes: use \\n, \\t, \\r, \\\\, \\\" or \\$"),
                        ))
                    }
                    None => return Err(self.error_at(open, "this double quote is never closed")),
                },
                Some(c) => v.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn err(text: &str) -> (usize, usize, String) {
        let e = parse(text).unwrap_err();
        (e.line, e.column, e.message)
    }

    #[test]
    fn plain_lines_comments_and_export() {
        let text = "# a comment\n\nA=1\nexport B = two words  \n  C=x # trailing comment\nD=a#b\nE=\n";
        assert_eq!(ok(text), pairs(&[("A", "1"), ("B", "two words"), ("C", "x"), ("D", "a#b"), ("E", "")]));
        // `export` alone is a name, like any other.
        assert_eq!(ok("export=1"), pairs(&[("export", "1")]));
        assert_eq!(ok("A=1\r\nB=2\r\n"), pairs(&[("A", "1"), ("B", "2")]));
    }

    #[test]
    fn quotes_single_literal_double_with_escapes() {
        assert_eq!(ok(r#"A='$HOME \n "x"'"#), pairs(&[("A", r#"$HOME \n "x""#)]));
        assert_eq!(ok(r#"A="a\tb\n\"c\" \\ \$HOME""#), pairs(&[("A", "a\tb\n\"c\" \\ $HOME")]));
        assert_eq!(ok("A=\"line one\nline two\" # c\nB=2"), pairs(&[("A", "line one\nline two"), ("B", "2")]));
        assert_eq!(ok("A=\"joined \\\nhere\""), pairs(&[("A", "joined here")]));
    }

    #[test]
    fn nothing_is_expanded() {
        assert_eq!(ok("A=$HOME\nB=${PATH}"), pairs(&[("A", "$HOME"), ("B", "${PATH}")]));
    }

    #[test]
    fn errors_say_where() {
        assert_eq!(err("A=1\nB\n").0, 2);
        assert!(err("A=1\nB\n").2.contains("expected `=` after `B`"));
        let (l, c, _) = err("A=1\n  =2\n");
        assert_eq!((l, c), (2, 3));
        let (l, c, m) = err("A=1\nB=\"open\nC=3\n");
        assert_eq!((l, c), (2, 3));
        assert!(m.contains("never closed"), "{m}");
        let (l, c, m) = err("A='x");
        assert_eq!((l, c), (1, 3));
        assert!(m.contains("single quote"), "{m}");
        let (l, c, m) = err("A=\"a\\qb\"");
        assert_eq!((l, c), (1, 5));
        assert!(m.contains("unknown escape `\\q`"), "{m}");
        let (l, c, m) = err("A=\"x\" y");
        assert_eq!((l, c), (1, 7));
        assert!(m.contains("after the closing quote"), "{m}");
        let (l, c, _) = err("1A=x");
        assert_eq!((l, c), (1, 1));
        assert!(err("A=\"\\0\"").2.contains("unknown escape"));
    }
}
