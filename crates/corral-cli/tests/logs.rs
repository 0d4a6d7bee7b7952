//! Log capture under load, end to end: a real `corral up` captures the
//! testkit's `numbered` writer, which fills stdout and stderr at once with
//! numbered lines, some longer than a capture reads at once, while the
//! log rotates. Every line must come back once, in order per stream,
//! whole (its pieces joined), with its tag and a timestamp, in both file
//! formats.
//!
//! The test waits on the files' content with a deadline, never on a
//! fixed sleep, and proves at the end that the writer is gone.

#![cfg(unix)]

mod daemon;

use corral_testkit::numbered::{line, Plan, Which};
use daemon::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// The capture's piece size (`corral_supervisor::logs::MAX_LINE`).
const PIECE: usize = 16 * 1024;

/// 20 000 lines per stream; every 997th is 100 KiB, longer than the 64 KiB
/// a capture reads at most, so it crosses reads and goes out in pieces.
const PLAN: Plan = Plan { lines: 20_000, long_every: 997, long_bytes: 100 * 1024 };

/// One piece of a line as a file holds it.
struct Piece {
    ts: String,
    stream: Which,
    continued: bool,
    bytes: Vec<u8>,
}

/// `<ts> <out|err>[+] <bytes>`.
fn text_piece(l: &[u8]) -> Piece {
    let mut parts = l.splitn(3, |&b| b == b' ');
    let ts = String::from_utf8(parts.next().unwrap().to_vec()).unwrap();
    let (stream, continued) = match parts.next().unwrap() {
        b"out" => (Which::Out, false),
        b"out+" => (Which::Out, true),
        b"err" => (Which::Err, false),
        b"err+" => (Which::Err, true),
        t => panic!("bad tag {:?} in {:?}", String::from_utf8_lossy(t), head(l)),
    };
    Piece { ts, stream, continued, bytes: parts.next().unwrap_or_default().to_vec() }
}

/// One JSON object (`logs.format = "json"`).
fn json_piece(l: &[u8]) -> Piece {
    let v: serde_json::Value = serde_json::from_slice(l).unwrap_or_else(|e| panic!("{e}: {:?}", head(l)));
    let stream = match v["stream"].as_str() {
        Some("stdout") => Which::Out,
        Some("stderr") => Which::Err,
        s => panic!("bad stream {s:?}"),
    };
    assert_eq!(v["service"], "json");
    Piece {
        ts: v["ts"].as_str().unwrap().to_string(),
        stream,
        continued: v["continued"] == true,
        bytes: v["line"].as_str().unwrap().as_bytes().to_vec(),
    }
}

fn head(l: &[u8]) -> String {
    String::from_utf8_lossy(&l[..l.len().min(80)]).into_owned()
}

/// The instance's files, oldest first: `0.log.N` … `0.log.1`, `0.log`.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut numbered: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let n = if name == "0.log" { 0 } else { name.strip_prefix("0.log.")?.parse().ok()? };
            Some((n, p))
        })
        .collect();
    numbered.sort_by_key(|f| std::cmp::Reverse(f.0));
    numbered.into_iter().map(|(_, p)| p).collect()
}

/// Waits until both streams' last line is in the files.
fn wait_both_ends(dir: &Path, json: bool) {
    let end = |w: &str| {
        let l = line(&PLAN, if w == "out" { Which::Out } else { Which::Err }, PLAN.lines);
        let text = String::from_utf8(l).unwrap();
        if json {
            format!("\"line\":\"{text}\"")
        } else {
            format!(" {w} {text}\n")
        }
    };
    let (out, err) = (end("out"), end("err"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let all: String = files(dir).iter().map(|f| std::fs::read_to_string(f).unwrap_or_default()).collect();
        if all.contains(&out) && all.contains(&err) {
            return;
        }
        assert!(Instant::now() < deadline, "the last lines never reached {}", dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Joins each stream's pieces back into lines and checks every piece's
/// timestamp, cap and order.
fn lines_of(dir: &Path, json: bool, window: (&str, &str)) -> [Vec<Vec<u8>>; 2] {
    let mut streams: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    let mut last_ts = String::new();
    for f in files(dir) {
        let data = std::fs::read(&f).unwrap();
        assert!(data.is_empty() || data.ends_with(b"\n"), "{} ends in the middle of a line", f.display());
        for l in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let p = if json { json_piece(l) } else { text_piece(l) };
            assert!(is_rfc3339_ms(&p.ts), "bad timestamp {:?} in {:?}", p.ts, head(l));
            assert!(window.0 <= p.ts.as_str() && p.ts.as_str() <= window.1, "{} outside {window:?}", p.ts);
            assert!(p.ts >= last_ts, "time went back: {} after {last_ts}", p.ts);
            last_ts = p.ts;
            assert!(p.bytes.len() <= PIECE, "a piece of {} bytes, over the cap", p.bytes.len());
            let s = &mut streams[p.stream as usize];
            match (p.continued, s.last_mut()) {
                (true, Some(prev)) => prev.extend_from_slice(&p.bytes),
                (true, None) => panic!("a continued piece with nothing before it: {:?}", head(l)),
                (false, _) => s.push(p.bytes),
            }
        }
    }
    streams
}

fn is_rfc3339_ms(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn assert_every_line_once_in_order(got: &[Vec<u8>], which: Which, what: &str) {
    for (k, l) in got.iter().enumerate() {
        let want = line(&PLAN, which, k as u32 + 1);
        assert!(
            *l == want,
            "{what} {which:?}: line {} is {} bytes {:?}…, want {} bytes {:?}…",
            k + 1,
            l.len(),
            head(l),
            want.len(),
            head(&want)
        );
    }
    assert_eq!(got.len(), PLAN.lines as usize, "{what} {which:?}: every line, once");
}

#[test]
fn both_streams_at_full_speed_with_overlong_lines_arrive_whole_once_in_order_with_tag_and_timestamp() {
    let before = corral_supervisor::time::now_rfc3339();
    let args = format!(
        "{tk}, \"numbered\", \"{}\", \"--long-every\", \"{}\", \"--long-bytes\", \"{}\"",
        PLAN.lines,
        PLAN.long_every,
        PLAN.long_bytes,
        tk = tk()
    );
    // Rotation under way too: about 4 files of text, 6 of JSON, all kept.
    let dir = Daemon::dir();
    let toml = format!(
        r#"
        [services.text]
        command = [{args}]
        restart = "no"
        logs = {{ max_size = "2MiB", keep = 50 }}

        [services.json]
        command = [{args}]
        restart = "no"
        logs = {{ max_size = "2MiB", keep = 50, format = "json" }}
        "#
    );
    std::fs::write(dir.path().join("corral.toml"), toml).unwrap();
    // `--quiet`, as `corral up -d` runs: no echo, so the text file's lines
    // take capture's fast path, and the JSON file's the general one.
    let mut d = Daemon::restart_in_with(dir, |c| {
        c.arg("--quiet");
    });
    for (service, json) in [("text", false), ("json", true)] {
        let exited = d.wait_transition(service, "exited");
        assert_eq!(exited["exit"]["code"], 0, "{exited}");
        let dir = d.path(&format!(".corral/logs/{service}"));
        wait_both_ends(&dir, json);
        let after = corral_supervisor::time::now_rfc3339();
        let [out, err] = lines_of(&dir, json, (&before, &after));
        assert_every_line_once_in_order(&out, Which::Out, service);
        assert_every_line_once_in_order(&err, Which::Err, service);
        assert!(files(&dir).len() > 2, "the log rotated under the load");
    }
    d.down();
}
