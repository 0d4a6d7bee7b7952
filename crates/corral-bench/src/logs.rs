//! Measure 8: log capture throughput. One service writes N numbered lines
//! (`corral-testkit --lines N`: `line <i> <pid>`) to stdout as fast as it
//! can; the supervisor captures them into a log file that does not rotate
//! in the run. Timed from the service's announcement until it has exited
//! and its log has stopped growing; then every log file is read back and
//! each line checked: every `i` in 1..=N exactly once, with the writer's
//! pid and nothing else after it, so a lost, duplicated or torn line shows.

use crate::daemons::{self, CatFloor, CorralUp, Fifo, Policy, Service, Supervisor, Supervisord};
use crate::report::{Section, Table, Verdict};
use crate::stats::{balanced_order, ratio, secs, Samples};
use crate::sys::{self, Pidfd};
use crate::Opts;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The payload of `line <i> <pid>\n` for i in 1..=n, in bytes.
pub fn payload_bytes(n: u64, pid_digits: u64) -> u64 {
    let mut total = 0;
    let mut lo = 1u64;
    let mut digits = 1u64;
    while lo <= n {
        let hi = (lo * 10 - 1).min(n);
        total += (hi - lo + 1) * (5 + digits + 1 + pid_digits + 1);
        lo *= 10;
        digits += 1;
    }
    total
}

/// The number of lines whose payload is closest to `bytes` from below
/// (assuming a 6-digit pid; the real figure is computed from the real pid).
pub fn lines_for(bytes: u64) -> u64 {
    let (mut lo, mut hi) = (0u64, bytes);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if payload_bytes(mid, 6) <= bytes {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// What the log files held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Check {
    /// Distinct `i` in 1..=N seen.
    pub seen: u64,
    /// Lines of ours seen more than once.
    pub duplicates: u64,
    /// Lines that are neither one of ours whole nor the testkit's ready line.
    pub torn: u64,
}

/// Checks one log line (with or without the supervisor's own prefix).
pub fn check_line(line: &[u8], n: u64, pid: &[u8], bits: &mut [u64], c: &mut Check) {
    let Some(at) = find(line, b"line ") else {
        if find(line, b"\"ready\":true").is_none() && !line.iter().all(u8::is_ascii_whitespace) {
            c.torn += 1;
        }
        return;
    };
    let rest = &line[at + 5..];
    let mut parts = rest.split(|&b| b == b' ');
    let (Some(num), Some(p), None) = (parts.next(), parts.next(), parts.next()) else {
        c.torn += 1;
        return;
    };
    let p = p.strip_suffix(b"\r").unwrap_or(p);
    let i = std::str::from_utf8(num).ok().and_then(|s| s.parse::<u64>().ok());
    match i {
        Some(i) if p == pid && (1..=n).contains(&i) => {
            let (w, b) = ((i / 64) as usize, i % 64);
            if bits[w] & (1 << b) != 0 {
                c.duplicates += 1;
            } else {
                bits[w] |= 1 << b;
                c.seen += 1;
            }
        }
        _ => c.torn += 1,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads every file and checks every line.
fn check_files(files: &[PathBuf], n: u64, pid: u32) -> Result<Check, String> {
    let mut bits = vec![0u64; (n / 64 + 1) as usize];
    let pid = pid.to_string();
    let mut c = Check::default();
    let mut line = Vec::with_capacity(256);
    for f in files {
        let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        loop {
            line.clear();
            let k = r.read_until(b'\n', &mut line).map_err(|e| format!("{}: {e}", f.display()))?;
            if k == 0 {
                break;
            }
            let l = line.strip_suffix(b"\n").unwrap_or(&line);
            check_line(l, n, pid.as_bytes(), &mut bits, &mut c);
        }
    }
    Ok(c)
}

fn total_size(files: &[PathBuf]) -> u64 {
    files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum()
}

#[derive(Default, Clone)]
struct Result8 {
    mb_s: Samples,
    secs: Samples,
    cpu: Samples,
    lost: Vec<u64>,
    dups: Vec<u64>,
    torn: Vec<u64>,
    file_bytes: Samples,
}

/// Measure 8: corral against supervisord.
pub fn run(opts: &Opts) -> Result<Section, String> {
    let mut names = vec!["corral", "cat"];
    let mut missing = None;
    if opts.peers.supervisord.is_some() {
        names.push("supervisord");
    } else {
        missing = Some("supervisord could not be installed (PyPI or apt), so it is not measured");
    }
    let (rounds, target) = if opts.quick { (2, 48u64 << 20) } else { (3, 1u64 << 30) };
    let n = lines_for(target);
    let mut res = vec![Result8::default(); names.len()];
    for round in 0..rounds {
        for i in balanced_order(names.len(), round) {
            eprintln!("corral-bench logs: round {}, {}", round + 1, names[i]);
            let dir = daemons::temp_dir(&format!("logs-{}", names[i]))?;
            let mut fifo = Fifo::create(&dir)?;
            let mut sup: Box<dyn Supervisor> = match names[i] {
                "corral" => Box::new(CorralUp::new(opts.bins.corral.clone(), dir)),
                "cat" => Box::new(CatFloor::new(dir)),
                _ => Box::new(Supervisord::new(
                    opts.peers.supervisord.clone().unwrap_or_default(),
                    opts.peers.supervisorctl.clone().unwrap_or_default(),
                    dir,
                )),
            };
            let rest = format!("exec {} --sleep 0 --lines {n}", opts.bins.testkit.display());
            let mut svc = Service::shell("w0", "/bin/sh", &fifo.path, &rest, Policy::Once);
            // Room for the payload and any prefix a tool adds, several times over.
            svc.log_max = Some(target * 8 + (64 << 20));
            sup.launch(&[svc])?;
            let s = fifo.next(Duration::from_secs(30)).ok_or("the writer never started")?;
            let fd = Pidfd::open(s.pid).map_err(|e| e.to_string())?;
            let daemon = sup.daemon_pid().ok_or("no daemon pid")?;
            let cpu0 = sys::cpu_time(daemon).map_err(|e| e.to_string())?;
            if !fd.wait_exit(Duration::from_secs(280)) {
                let _ = fd.signal(libc::SIGKILL);
                return Err(format!("{}: the writer did not finish within 280 s", names[i]));
            }
            // The writer is gone; what it wrote may still be in the pipe or
            // the daemon's buffers. Done when the log stops growing.
            let exited = Instant::now();
            let mut last = exited;
            let mut size = total_size(&sup.log_files("w0"));
            while last.elapsed() < Duration::from_millis(500) {
                std::thread::sleep(Duration::from_millis(1));
                let now = total_size(&sup.log_files("w0"));
                if now != size {
                    size = now;
                    last = Instant::now();
                }
            }
            let took = last - s.at;
            let cpu1 = sys::cpu_time(daemon).map_err(|e| e.to_string())?;
            let files = sup.log_files("w0");
            let c = check_files(&files, n, s.pid)?;
            let bytes = payload_bytes(n, s.pid.to_string().len() as u64);
            let r = &mut res[i];
            r.secs.push_duration(took);
            r.mb_s.push(bytes as f64 / 1e6 / took.as_secs_f64());
            r.cpu.push((cpu1 - cpu0).as_secs_f64());
            r.lost.push(n - c.seen);
            r.dups.push(c.duplicates);
            r.torn.push(c.torn);
            r.file_bytes.push(total_size(&files) as f64);
            eprintln!(
                "corral-bench logs: {}: {:.1} MB/s, {} lost, {} duplicated, {} torn",
                names[i],
                bytes as f64 / 1e6 / took.as_secs_f64(),
                n - c.seen,
                c.duplicates,
                c.torn
            );
            sup.shutdown();
            fifo.kill_leftovers();
        }
    }

    let mib = target >> 20;
    let mut sec = Section::new("8. log capture throughput");
    sec.para(&format!(
        "One service, `sh -c 'echo … > fifo; exec corral-testkit --sleep 0 --lines {n}'`, writes {n} lines \
         `line <i> <pid>` ({mib} MiB) to stdout as fast as it can (64 KiB writes of whole lines, counted in place: about 0.45 s of CPU per GiB, so the writer is not what is measured) and exits; run once, never \
         restarted (corral: `restart = \"no\"`, `logs = {{ max_size = {}, keep = 1 }}`; supervisord: \
         `autorestart=false`, `startsecs=0`, `stdout_logfile` with `stdout_logfile_maxbytes=0`, no rotation). Both \
         daemons run in the foreground with their own stdout in a file (corral as `corral up -d` runs it, `--quiet`: \
         no `name | line` echo, the lines go to the service's log only). The reference is the same writer piped into \
         `cat > file`, timed the same way: no daemon, nothing added to the lines. Timed \
         from the service's announcement on the FIFO until it has exited (pidfd) and its log file has not grown for \
         500 ms (the time of the last growth, sampled every 1 ms). **MB/s** is the writer's payload (10⁶ bytes) \
         over that time. Then every log file is read back: **lost** = numbers in 1..=N never seen, **duplicated** = \
         seen twice, **torn** = lines that are not one whole `line <i> <pid>` (after the tool's own prefix). \
         **daemon CPU** is the daemon process's (or `cat`'s) CPU time over the run. {rounds} round(s), contenders \
         interleaved.",
        target * 8 + (64 << 20)
    ));
    if let Some(m) = missing {
        sec.para(&format!("**Not measured:** {m}."));
    }
    let mut t = Table::new(&[
        "daemon",
        "MB/s (median)",
        "MB/s (min–max)",
        "time (median)",
        "lines lost (max)",
        "duplicated (max)",
        "torn (max)",
        "log file size",
        "daemon CPU (median)",
        "throughput × corral",
    ]);
    let base = res[0].mb_s.median();
    for (i, r) in res.iter().enumerate() {
        let label = match names[i] {
            "corral" => "**corral** (`corral up`)".to_string(),
            "cat" => "`cat > file` (reference: no daemon, no stamp, no tag)".to_string(),
            other => other.to_string(),
        };
        t.row(vec![
            label,
            format!("{:.1}", r.mb_s.median()),
            format!("{:.1}–{:.1}", r.mb_s.min(), r.mb_s.max()),
            secs(r.secs.median()),
            r.lost.iter().max().copied().unwrap_or(0).to_string(),
            r.dups.iter().max().copied().unwrap_or(0).to_string(),
            r.torn.iter().max().copied().unwrap_or(0).to_string(),
            format!("{:.0} MiB", r.file_bytes.median() / (1024.0 * 1024.0)),
            secs(r.cpu.median()),
            ratio(r.mb_s.median(), base),
        ]);
    }
    sec.table(&t);
    let (floor, sv) = (names.iter().position(|&x| x == "cat"), names.iter().position(|&x| x == "supervisord"));
    if let (Some(f), Some(k)) = (floor, sv) {
        let mb = |i: usize| res[i].mb_s.median();
        let size = |i: usize| res[i].file_bytes.median();
        sec.para(&format!(
            "**What differs.** supervisord writes the bytes it reads as they are (it adds no timestamp unless the \
             program does); corral puts a timestamp and a stream tag in front of every line (`2026-…T…Z out line 7 \
             4242`), so its file is {:.1}× as large as supervisord's ({:.0} vs {:.0} MiB). Neither fsyncs; neither \
             rotates in the run. supervisord reads 128 KiB at a time from a default 64 KiB pipe; corral reads up to \
             256 KiB at a time from a pipe it grows to 1 MiB once a read finds a default pipe full (`logs/read_buf.rs`), and \
             writes each read's lines with one `write`. In this run `cat` alone reached {:.1} MB/s, supervisord {} \
             of that, corral {} of it: 2 × supervisord's figure is {} what `cat` reached copying the raw bytes.",
            size(0) / size(k).max(1.0),
            size(0) / (1024.0 * 1024.0),
            size(k) / (1024.0 * 1024.0),
            mb(f),
            ratio(mb(k), mb(f)),
            ratio(mb(0), mb(f)),
            ratio(2.0 * mb(k), mb(f)),
        ));
    }
    sec.para(LOGS_PROFILE);
    let lost = res[0].lost.iter().max().copied().unwrap_or(0);
    let bad = lost + res[0].dups.iter().max().copied().unwrap_or(0) + res[0].torn.iter().max().copied().unwrap_or(0);
    sec.verdicts.push(Verdict::new(
        "8",
        "log capture: 0 lines lost, throughput ≥ 2 × supervisord's",
        match sv {
            Some(k) => format!(
                "{lost} lost; {:.1} vs {:.1} MB/s ({} supervisord's; `cat > file` alone {:.1} MB/s)",
                base,
                res[k].mb_s.median(),
                ratio(base, res[k].mb_s.median()),
                floor.map_or(0.0, |f| res[f].mb_s.median()),
            ),
            None => format!("{lost} lost; {base:.1} MB/s; supervisord missing"),
        },
        sv.map(|k| bad == 0 && base >= 2.0 * res[k].mb_s.median()),
    ));
    Ok(sec)
}

/// Where the daemon's time goes, from a profile taken by hand (the bench
/// does not profile): kept with the section so the figures can be read
/// against it.
const LOGS_PROFILE: &str = "**Where corral's time goes**, from a profile taken by hand (`perf record -p` of the \
    daemon and `/proc/PID/task/*/schedstat` while it captured 1 GiB of these lines, release build, the 2-core machine \
    shared with other builds at a load of 3 to 7): 1.2 to 1.8 s of daemon CPU per GiB, of which 60 to 70 % is the \
    kernel and 27 to 36 % corral's own code. In the kernel the write path of the 2.4 GiB it puts in ext4's page cache \
    dominates: the copy into the page cache (`copy_folio_from_iter_atomic`) 13 to 36 % of the daemon's CPU (more when \
    memory is short and fresh pages come cold), ext4's delayed allocation and extent bookkeeping about 10 %, page and \
    slab accounting 5 to 8 %, reading the pipe 4 to 5 %, wakeups and scheduling about 7 %. corral's own part is one \
    pass over each read (`logs::batch::prefixed_lines`: find each newline, copy the line behind its 29-byte prefix, \
    about 8 ns a line) and zeroing the room it writes into (3 %). Nothing is allocated per line or per read, and \
    nothing is fsynced. For comparison, supervisord spends about 0.7 s and `cat` 0.57 s of CPU on the same GiB, which \
    is about what the kernel alone spends writing corral's 2.5 × larger file: 2 × supervisord's throughput would need \
    corral to stamp and write 2.5 × the bytes with about half the CPU that `cat` needs to copy them once. \
    What was cut (same harness, daemon CPU per GiB, load 5 to 8): the bench's writer first, from 1.9 to 0.45 s of \
    CPU (it was the ceiling for both daemons: supervisord measured about as fast as corral because both waited for \
    it; with the fast writer supervisord went to twice corral's figure); the per-line pass from 11 to 7.5 ns a line \
    (newlines found eight bytes at a time, the prefix and the line copied in fixed-size steps, no call per line); \
    then a 1 MiB pipe read 256 KiB at a time (the writer runs ahead instead of blocking every 64 KiB, the daemon \
    rarely waits on an empty pipe: 14,000 wakeups per GiB became about 4,000). In all about 2.0 s became 1.2 s. \
    Reading the whole 1 MiB pipe at once was slower (2.1 to 2.4 s): a read and its 2.4 × larger lines no longer \
    stay in the CPU's cache until they are written.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_counts_digits() {
        // "line 1 42\n" .. "line 9 42\n": 10 bytes each; "line 10 42\n": 11.
        assert_eq!(payload_bytes(9, 2), 90);
        assert_eq!(payload_bytes(10, 2), 101);
        let n = lines_for(1 << 30);
        assert!(payload_bytes(n, 6) <= 1 << 30 && payload_bytes(n + 1, 6) > 1 << 30);
    }

    #[test]
    fn lines_are_checked() {
        let mut bits = vec![0u64; 1];
        let mut c = Check::default();
        for l in [
            &b"2026-01-01T00:00:00.000Z out line 1 42"[..],
            b"line 2 42",
            b"line 2 42",
            b"line 3 4",
            b"line 3 42 x",
            b"2026-01-01T00:00:00.000Z out {\"ready\":true,\"pid\":42}",
            b"ne 4 42",
        ] {
            check_line(l, 3, b"42", &mut bits, &mut c);
        }
        assert_eq!(c, Check { seen: 2, duplicates: 1, torn: 3 });
    }
}
