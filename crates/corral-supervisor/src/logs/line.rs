//! Splits a byte stream into lines, and overlong lines into pieces.

/// Accumulates chunks and hands out complete lines (without `\n`).
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    continued: bool,
}

impl LineSplitter {
    /// Lines longer than `max` bytes come out in pieces of `max`.
    pub fn new(max: usize) -> Self {
        LineSplitter { buf: Vec::new(), max: max.max(1), continued: false }
    }

    /// Feeds a chunk; calls `emit(piece, continued)` for every complete line
    /// or full piece. `continued` is true for the pieces after the first of
    /// one long line.
    pub fn push(&mut self, mut chunk: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        while let Some(nl) = memchr::memchr(b'\n', chunk) {
            let line = &chunk[..nl];
            chunk = &chunk[nl + 1..];
            if self.buf.is_empty() && strip_cr(line).len() <= self.max {
                // The common case: a whole line inside the chunk goes out
                // without a copy.
                emit(strip_cr(line), false);
            } else {
                self.buf.extend_from_slice(line);
                // The line is whole: its CR goes before it is cut in
                // pieces, so a CRLF line of exactly `max` is one piece.
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                self.drain_full(emit, false);
                emit(&self.buf, self.continued);
                // Cleared, not taken: the capacity serves the next line.
                self.buf.clear();
            }
            self.continued = false;
        }
        self.buf.extend_from_slice(chunk);
        self.drain_full(emit, true);
    }

    /// True when no part of a line waits: the next chunk starts a line.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && !self.continued
    }

    /// Emits what is left at end of stream.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            emit(strip_cr(&line), self.continued);
        }
        self.continued = false;
    }

    /// Emits full pieces while more than `max` bytes wait. In a line that
    /// goes on (`partial`), a CR just past `max` may be the first half of
    /// a CRLF: it waits for the next chunk instead of becoming a piece.
    fn drain_full(&mut self, emit: &mut impl FnMut(&[u8], bool), partial: bool) {
        while self.buf.len() > self.max {
            if partial && self.buf.len() == self.max + 1 && self.buf.last() == Some(&b'\r') {
                break;
            }
            // Never cut a UTF-8 character in two.
            let mut cut = self.max;
            while cut > 0 && (self.buf[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            if cut == 0 {
                cut = self.max;
            }
            let rest = self.buf.split_off(cut);
            let piece = std::mem::replace(&mut self.buf, rest);
            emit(&piece, self.continued);
            self.continued = true;
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut emit = |l: &[u8], c: bool| out.push((String::from_utf8_lossy(l).into_owned(), c));
        for c in chunks {
            s.push(c, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    #[test]
    fn lines_across_chunks() {
        let got = run(100, &[b"ab", b"c\nde", b"f\n\ng"]);
        let want = [("abc", false), ("def", false), ("", false), ("g", false)];
        assert_eq!(got, want.map(|(s, c)| (s.to_string(), c)));
    }

    #[test]
    fn long_lines_are_split_not_dropped() {
        let got = run(4, &[b"abcdefghij\nxy\n"]);
        let want = [("abcd", false), ("efgh", true), ("ij", true), ("xy", false)];
        assert_eq!(got, want.map(|(s, c)| (s.to_string(), c)));
    }

    #[test]
    fn a_crlf_line_of_exactly_max_bytes_is_one_piece() {
        let want = [("abcd", false), ("xy", false)].map(|(s, c)| (s.to_string(), c));
        // In one chunk, and with the CR and the LF in different chunks.
        assert_eq!(run(4, &[b"abcd\r\nxy\r\n"]), want);
        assert_eq!(run(4, &[b"abcd\r", b"\nxy\r\n"]), want);
        assert_eq!(run(4, &[b"ab", b"cd\r", b"\nxy"]), want);
        // A longer one: the last piece is full, no empty piece follows.
        let want = [("abcd", false), ("efgh", true)].map(|(s, c)| (s.to_string(), c));
        assert_eq!(run(4, &[b"abcdefgh\r\n"]), want);
        assert_eq!(run(4, &[b"abcdefgh\r", b"\n"]), want);
        // A CR that is not before the LF is content.
        let got = run(4, &[b"ab\rcd\r\n"]);
        assert_eq!(got, [("ab\rc", false), ("d", true)].map(|(s, c)| (s.to_string(), c)));
    }

    #[test]
    fn chunk_boundaries_change_nothing() {
        let inputs: [&[u8]; 5] = [
            b"abcd\r\nefghi\r\n\r\nj",
            b"abcdefgh\nij\r\r\nk\r\n",
            "\u{e9}\u{e9}\u{e9}\r\n\u{20ac}x\n".as_bytes(),
            b"\n\n\r\n",
            b"abcd\r",
        ];
        for max in 4..9 {
            for input in inputs {
                let whole = run(max, &[input]);
                // Every line comes back whole once its pieces are joined,
                // without its CRLF, and no piece is longer than `max`.
                let mut lines: Vec<String> = Vec::new();
                for (piece, continued) in &whole {
                    assert!(piece.len() <= max, "{piece:?} longer than {max}");
                    match (continued, lines.last_mut()) {
                        (true, Some(l)) => l.push_str(piece),
                        _ => lines.push(piece.clone()),
                    }
                }
                let text = String::from_utf8_lossy(input);
                let want: Vec<&str> = text
                    .split_inclusive('\n')
                    .map(|l| l.trim_end_matches('\n'))
                    .map(|l| l.strip_suffix('\r').unwrap_or(l))
                    .collect();
                assert_eq!(lines, want, "max {max}, {text:?}");
                for cut in 0..=input.len() {
                    let (a, b) = input.split_at(cut);
                    assert_eq!(run(max, &[a, b]), whole, "max {max}, {text:?} cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn utf8_is_not_cut() {
        let got = run(4, &["abcé".as_bytes(), b"\n"]);
        assert_eq!(got[0].0, "abc");
        assert_eq!(got[1].0, "é");
    }
}
