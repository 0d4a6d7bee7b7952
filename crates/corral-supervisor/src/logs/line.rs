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
            if self.buf.is_empty() && line.len() <= self.max {
                // The common case: a whole line inside the chunk goes out
                // without a copy.
                emit(strip_cr(line), false);
            } else {
                self.buf.extend_from_slice(line);
                self.drain_full(emit);
                emit(strip_cr(&self.buf), self.continued);
                // Cleared, not taken: the capacity serves the next line.
                self.buf.clear();
            }
            self.continued = false;
        }
        self.buf.extend_from_slice(chunk);
        self.drain_full(emit);
    }

    /// Emits what is left at end of stream.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            emit(strip_cr(&line), self.continued);
        }
        self.continued = false;
    }

    fn drain_full(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        while self.buf.len() > self.max {
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
    fn utf8_is_not_cut() {
        let got = run(4, &["abcé".as_bytes(), b"\n"]);
        assert_eq!(got[0].0, "abc");
        assert_eq!(got[1].0, "é");
    }
}
