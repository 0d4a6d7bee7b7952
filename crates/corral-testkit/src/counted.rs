//! `--lines N`: the lines `line <i> <pid>` for i in 1..=N, as fast as a
//! pipe takes them.
//!
//! The log-capture bench measures how fast a supervisor takes a flood of
//! lines, so the writer must not be what it measures: `writeln!` per line
//! cost about as much CPU as the daemon it fed. Here the number is kept as
//! decimal text and incremented in place, each line is three short copies
//! into a block, and a block goes out in one `write` once it holds
//! [`BLOCK`] bytes (whole lines only, so no line is split between writes).

use std::io::{self, Write};

/// Bytes per `write`: a default Linux pipe's whole capacity.
pub const BLOCK: usize = 64 * 1024;

/// A decimal counter kept as its text: incremented without formatting.
struct Counter {
    /// Right-aligned digits; `digits[start..]` is the number.
    digits: [u8; 20],
    start: usize,
}

impl Counter {
    fn one() -> Counter {
        let mut digits = [b'0'; 20];
        digits[19] = b'1';
        Counter { digits, start: 19 }
    }

    fn text(&self) -> &[u8] {
        &self.digits[self.start..]
    }

    fn increment(&mut self) {
        let mut at = self.digits.len();
        while at > 0 {
            at -= 1;
            if self.digits[at] == b'9' {
                self.digits[at] = b'0';
            } else {
                self.digits[at] += 1;
                self.start = self.start.min(at);
                return;
            }
        }
    }
}

/// Writes `line <i> <pid>\n` for i in 1..=n to `out`, in blocks of about
/// [`BLOCK`] bytes that end at a line's end.
pub fn write_lines(out: &mut impl Write, n: u64, pid: u32) -> io::Result<()> {
    let tail = format!(" {pid}\n").into_bytes();
    let longest = b"line ".len() + 20 + tail.len();
    let mut block = Vec::with_capacity(BLOCK + longest);
    let mut i = Counter::one();
    for _ in 0..n {
        block.extend_from_slice(b"line ");
        block.extend_from_slice(i.text());
        block.extend_from_slice(&tail);
        if block.len() >= BLOCK {
            out.write_all(&block)?;
            block.clear();
        }
        i.increment();
    }
    out.write_all(&block)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_read_as_format_writes_them_across_every_carry_and_block() {
        let n = 123_457;
        let mut got = Vec::new();
        write_lines(&mut got, n, 4242).unwrap();
        let want: String = (1..=n).map(|i| format!("line {i} 4242\n")).collect();
        assert!(got == want.as_bytes(), "the fast writer differs from format!");
    }

    /// Counts the writes and checks each ends a line.
    struct Writes(Vec<usize>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            assert!(buf.is_empty() || buf.ends_with(b"\n"), "a write ends mid-line");
            self.0.push(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_are_whole_lines_of_about_one_block() {
        let mut w = Writes(Vec::new());
        write_lines(&mut w, 100_000, 7).unwrap();
        let (last, full) = w.0.split_last().unwrap();
        assert!(full.len() > 10, "{} writes", full.len());
        assert!(full.iter().all(|&k| (BLOCK..BLOCK + 32).contains(&k)), "{full:?}");
        assert!(*last < BLOCK + 32);
    }

    #[test]
    fn no_lines_is_no_bytes() {
        let mut got = Vec::new();
        write_lines(&mut got, 0, 1).unwrap();
        assert!(got.is_empty());
    }
}
