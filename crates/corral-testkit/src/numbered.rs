//! `corral-testkit numbered N [--long-every K] [--long-bytes B]`: writes N
//! numbered lines to stdout and N to stderr at the same time (one thread
//! per stream, as fast as the pipes take them), then exits.
//!
//! Line `i` of a stream is [`line()`]: its stream, its number and a filler
//! whose length and bytes follow from `i`, so a reader can rebuild every
//! line it should have received and compare byte for byte. Every K-th line
//! is B bytes long, longer than a log capture reads at once, so it crosses
//! reads and comes back in pieces.
//!
//! The mode needs std only: it runs wherever the testkit does.

use std::io::{self, Write};

/// The most lines per stream, and the longest long line: a writer that
/// ends by itself in seconds, and never fills a disk.
pub const MAX_LINES: u32 = 1_000_000;
pub const MAX_LONG_BYTES: usize = 4 << 20;

/// The filler's alphabet; a line's filler starts at a place that depends
/// on its number, so a piece shifted between lines shows.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Which stream a line goes to, as the line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Out,
    Err,
}

impl Which {
    fn word(self) -> &'static str {
        match self {
            Which::Out => "out",
            Which::Err => "err",
        }
    }
}

/// The shape of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Lines per stream.
    pub lines: u32,
    /// Every `long_every`-th line is long (0: none).
    pub long_every: u32,
    /// The filler of a long line, in bytes.
    pub long_bytes: usize,
}

/// Line `i` (from 1) of `which`, without its newline:
/// `<out|err> <i> <filler>`.
pub fn line(plan: &Plan, which: Which, i: u32) -> Vec<u8> {
    // i is at least 1, so `--long-every 0` makes no line long.
    let long = i.is_multiple_of(plan.long_every);
    let len = if long { plan.long_bytes } else { (i % 40) as usize };
    let mut l = format!("{} {i} ", which.word()).into_bytes();
    let start = i as usize % ALPHABET.len();
    l.extend(ALPHABET.iter().cycle().skip(start).take(len));
    l
}

/// Runs the mode when the first word is `numbered`; `None` otherwise.
pub fn dispatch(words: &[String]) -> Option<i32> {
    let (mode, rest) = words.split_first()?;
    if mode != "numbered" {
        return None;
    }
    Some(match parse(rest) {
        Ok(plan) => run(plan),
        Err(e) => {
            eprintln!("corral-testkit numbered: {e}");
            2
        }
    })
}

fn parse(words: &[String]) -> Result<Plan, String> {
    let mut plan = Plan { lines: 0, long_every: 0, long_bytes: 0 };
    let mut it = words.iter();
    let number = |name: &str, v: Option<&String>, max: u64| -> Result<u64, String> {
        let v = v.ok_or_else(|| format!("{name} needs a value"))?;
        match v.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!("{name}: expected a whole number up to {max}, got {v:?}")),
        }
    };
    let mut lines = None;
    while let Some(w) = it.next() {
        match w.as_str() {
            "--long-every" => plan.long_every = number(w, it.next(), u32::MAX.into())? as u32,
            "--long-bytes" => plan.long_bytes = number(w, it.next(), MAX_LONG_BYTES as u64)? as usize,
            n if lines.is_none() => lines = Some(number("N", Some(&n.to_string()), MAX_LINES.into())? as u32),
            other => {
                return Err(format!("unknown argument {other:?}; usage: numbered N [--long-every K] [--long-bytes B]"))
            }
        }
    }
    plan.lines = lines.ok_or("usage: numbered N [--long-every K] [--long-bytes B]")?;
    Ok(plan)
}

fn run(plan: Plan) -> i32 {
    let err = std::thread::spawn(move || write_all(plan, Which::Err, &mut io::stderr().lock()));
    let out = write_all(plan, Which::Out, &mut io::stdout().lock());
    let err = err.join().unwrap_or(false);
    if out && err {
        0
    } else {
        1
    }
}

/// Writes every line of `which` through an 8 KiB buffer, so writes cut
/// lines anywhere; false when the reader went away.
fn write_all(plan: Plan, which: Which, to: &mut impl Write) -> bool {
    let mut w = io::BufWriter::with_capacity(8 * 1024, to);
    for i in 1..=plan.lines {
        let mut l = line(&plan, which, i);
        l.push(b'\n');
        if w.write_all(&l).is_err() {
            return false;
        }
    }
    w.flush().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_from_their_number() {
        let plan = Plan { lines: 10, long_every: 5, long_bytes: 50 };
        assert_eq!(line(&plan, Which::Out, 1), b"out 1 b");
        assert_eq!(line(&plan, Which::Err, 3), b"err 3 def");
        let long = line(&plan, Which::Out, 5);
        assert_eq!(long.len(), "out 5 ".len() + 50);
        assert!(long.starts_with(b"out 5 fghij"));
        assert_eq!(&long[6 + 31..6 + 33], b"ab", "the filler wraps around the alphabet");
        let words: Vec<String> = ["7", "--long-every", "3", "--long-bytes", "100"].map(String::from).into();
        assert_eq!(parse(&words), Ok(Plan { lines: 7, long_every: 3, long_bytes: 100 }));
        assert!(parse(&["--long-bytes".to_string(), "99999999".to_string()]).is_err());
        assert!(parse(&[]).is_err());
    }
}
