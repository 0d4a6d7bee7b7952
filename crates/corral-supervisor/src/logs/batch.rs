//! The text format's fast path: the whole lines of one read go into the
//! file's queue in one pass, each copied once behind the read's prefix
//! (`<ts> out `), with no call per line and no check per line beyond its
//! length. What the pass leaves (an overlong line, a line that would need
//! a rotation first, the unfinished last line) goes the general way,
//! through the `LineSplitter`, which then starts from a clean state: the
//! file reads exactly as if every line had gone that way. A line the last
//! read left unfinished is ended by the splitter at the read's first
//! newline; the rest of the read takes the fast path again.

/// Appends `prefix`, the line without its `\r\n` or `\n`, and `\n` for
/// each whole line at the front of `data`, while the line is at most
/// `max` bytes and what is appended stays within `room` bytes. Returns
/// how many bytes of `data` those lines took.
pub(crate) fn prefixed_lines(data: &[u8], prefix: &[u8], max: usize, room: u64, out: &mut Vec<u8>) -> usize {
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    let mut taken = 0;
    let mut used = 0usize;
    for nl in memchr::memchr_iter(b'\n', data) {
        let line = &data[taken..nl];
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        let len = prefix.len() + text.len() + 1;
        if text.len() > max || used.saturating_add(len) > room {
            break;
        }
        out.extend_from_slice(prefix);
        if text.len() == line.len() {
            // The line and its newline in one copy.
            out.extend_from_slice(&data[taken..=nl]);
        } else {
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        used += len;
        taken = nl + 1;
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LineSplitter;

    const PREFIX: &[u8] = b"2026-01-02T03:04:05.678Z out ";
    const MORE: &[u8] = b"2026-01-02T03:04:05.678Z out+ ";

    /// What the general path alone makes of `chunks`.
    fn general(max: usize, chunks: &[&[u8]]) -> Vec<u8> {
        let mut split = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut emit = |piece: &[u8], continued: bool| {
            out.extend_from_slice(if continued { MORE } else { PREFIX });
            out.extend_from_slice(piece);
            out.push(b'\n');
        };
        for c in chunks {
            split.push(c, &mut emit);
        }
        split.finish(&mut emit);
        out
    }

    /// The fast path first whenever the splitter is idle, as capture does.
    fn fast(max: usize, room: u64, chunks: &[&[u8]]) -> Vec<u8> {
        let mut split = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            let mut rest: &[u8] = c;
            if !split.is_idle() {
                if let Some(nl) = memchr::memchr(b'\n', rest) {
                    split.push(&rest[..=nl], &mut |piece: &[u8], continued: bool| {
                        out.extend_from_slice(if continued { MORE } else { PREFIX });
                        out.extend_from_slice(piece);
                        out.push(b'\n');
                    });
                    rest = &rest[nl + 1..];
                }
            }
            if split.is_idle() {
                let n = prefixed_lines(rest, PREFIX, max, room, &mut out);
                rest = &rest[n..];
            }
            split.push(rest, &mut |piece: &[u8], continued: bool| {
                out.extend_from_slice(if continued { MORE } else { PREFIX });
                out.extend_from_slice(piece);
                out.push(b'\n');
            });
        }
        split.finish(&mut |piece: &[u8], continued: bool| {
            out.extend_from_slice(if continued { MORE } else { PREFIX });
            out.extend_from_slice(piece);
            out.push(b'\n');
        });
        out
    }

    #[test]
    fn the_fast_path_writes_what_the_general_one_does_wherever_reads_cut() {
        let inputs: [&[u8]; 6] = [
            b"abc\ndef\r\n\nlonger line here\nx",
            b"abcdefghijklmnop\nab\r\r\ncd\n",
            "\u{e9}\u{e9}\u{e9}\u{e9}\r\n\u{20ac}x\n".as_bytes(),
            b"\n\n\r\n\r",
            b"12345678\r\n123456789\r\n1234567\n",
            b"no newline at all, and longer than max",
        ];
        for max in [4, 8, 9, 64] {
            for input in inputs {
                let want = general(max, &[input]);
                assert_eq!(fast(max, u64::MAX, &[input]), want, "max {max}, {input:?}");
                for cut in 0..=input.len() {
                    let (a, b) = input.split_at(cut);
                    assert_eq!(fast(max, u64::MAX, &[a, b]), want, "max {max}, {input:?} cut at {cut}");
                    for cut2 in cut..=input.len() {
                        let (b, c) = input[cut..].split_at(cut2 - cut);
                        assert_eq!(fast(max, u64::MAX, &[a, b, c]), want, "max {max}, {input:?} cut at {cut}, {cut2}");
                    }
                }
                // However little room is left, what is done is the same.
                for room in 0..80 {
                    assert_eq!(fast(max, room, &[input]), want, "max {max}, room {room}, {input:?}");
                }
            }
        }
    }

    #[test]
    fn room_and_length_stop_the_pass_at_a_line_boundary() {
        let mut out = Vec::new();
        let one = PREFIX.len() as u64 + 4; // "abc\n" behind the prefix
        assert_eq!(prefixed_lines(b"abc\nabc\nabc\n", PREFIX, 16, 2 * one, &mut out), 8);
        assert_eq!(out.len() as u64, 2 * one, "two lines fit, the third waits for a rotation");
        out.clear();
        assert_eq!(prefixed_lines(b"ab\nabcdef\nab\n", PREFIX, 4, u64::MAX, &mut out), 3, "an overlong line stops it");
        out.clear();
        assert_eq!(prefixed_lines(b"ab\ncd", PREFIX, 4, u64::MAX, &mut out), 3, "the unfinished line waits");
        assert_eq!(out, [PREFIX, b"ab\n"].concat());
    }
}
