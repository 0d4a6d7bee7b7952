//! What a daemon's resident memory is made of: `/proc/PID/smaps` summed by
//! kind of mapping, so that the footprint section can say how much is the
//! program's own code and data, how much is the C library, and how much
//! is memory it allocated.
//!
//! File-backed pages (code, read-only data) are counted in RSS as soon as
//! they are mapped, and a page fault on a file maps up to
//! `fault_around_bytes` (64 KiB by default) of neighbours already in the
//! page cache: code touched here and there across a large binary makes
//! most of its text resident. Anonymous pages are what the process wrote:
//! its heap, its stacks, and the relocated part of its read-only data
//! (a position-independent binary's `.data.rel.ro` is written once by
//! the dynamic loader, so it is private and dirty).

use crate::report::Table;
use crate::stats::mib;
use std::io;

/// What the breakdown below the footprint table shows, and what was found
/// when it was first taken apart (issue 11, goal 3).
pub const ABOUT: &str =
    "**What corral's RSS with 100 services is made of** (`/proc/PID/smaps` of this run's last corral round, \
summed by mapping). File-backed pages count in RSS once mapped, and a fault on a file maps up to 64 KiB of \
neighbours already in the page cache (`fault_around_bytes`): code run here and there across a large binary makes \
most of its text resident. Anonymous pages are what the daemon wrote. It was taken apart on a 2-core VM under a \
load of 8 to 20 (absolute figures a few hundred KiB above an idle run's), the `fleet` build as this bench builds \
it. **With the release profile of `148f46f`** (16 codegen units, no LTO): **22.2 MiB**. The binary's code: \
10.1 MiB of 13.2 MB of `.text` (165 of its 202 64-KiB windows touched; `h2`, `tonic` and `ratatui` code, \
never run by the daemon, was as resident as `tokio`'s). Its read-only data: 4.1 MiB, 1.5 MiB of it anonymous \
(`.data.rel.ro`, which the loader writes when it applies the 58,570 relative relocations of a \
position-independent binary, reading their 1.4 MB table). The heap: 4.7 MiB, 47 KiB per service (each \
instance's task was an 11 KiB future, 8 KiB of it the hook runner's two 4 KiB tail buffers kept inline for the \
daemon's life; two 4 KiB log read buffers; a 4.6 KiB block of the health channel), plus a 565 KiB event ring \
(1024 slots of 552 bytes) and the config and its specs (about 0.5 MiB, each spec held twice). libc and libm: \
2.4 MiB, shared with every process (their PSS is small). Stacks and other anonymous memory: 1 MiB. \
**Now** (one codegen unit, `lto = \"fat\"`, `opt-level = \"s\"`, and the tail buffers on the heap while they \
read): **16.4 MiB**, `.text` 6.9 MB with 5.8 MiB of it resident, read-only data 3.1 MiB (1.3 anonymous), heap \
4.1 MiB. With `opt-level = 3` instead: 18.3 MiB (`.text` 10.4 MB), but 14 % fewer instructions per byte of \
captured log (callgrind: 59 M against 68 M for 20 MB of lines; starting and stopping 100 services: 263 M \
against 285 M, and 293 M before). **The floor.** A minimal tokio daemon doing the same work (two workers, a \
Unix-socket listener, 100 `sh -c 'exec sleep 300'` children whose pipes it reads into two 4 KiB buffers each, \
in release) measures 3.9 MiB the same way: 2.1 MiB libc, libm and the loader, 0.5 MiB its own code, 1.2 MiB \
anonymous. corral ran about 1,400 distinct functions of its own (callgrind) to start 100 services and stop \
them, spread over the whole text, and linked in the order that profile gave, the same binary's resident code \
dropped from 6.1 to 1.9 MiB. **Now that is in the build** (`crates/corral-cli/build.rs`, README's \
\"The daemon's footprint\"): a linker script puts the functions the daemon runs (`link/hot-code.txt`, a callgrind and perf \
profile of both builds that matter, by exact name and then by name without its hash) ahead of the rest, and \
the binary's resident code is 1.8 MiB instead of 4.6; the relative relocations are packed (`-z \
pack-relative-relocs`, which glibc 2.36 and later load), so their 1 MB table is no longer resident; the binary \
defines `pow`, the one function it took from libm (tokio's scheduler), so libm.so.6 is not loaded (0.5 MiB); \
and the daemon gives malloc's free pages back a second after it starts its services (`malloc_trim`: heap 3.4 \
→ 2.7 MiB). By hand, 100 sleepers, 6 s after the start: 14.0 MiB before these four, 8.8 to 9.3 MiB after. \
**Then the rest, the stop after:** the relocated `.data.rel.ro` was not what any position-independent \
binary pays but one table: `chrono-tz`'s zones, their abbreviations as `&str`, 1 MiB of pointers the loader \
wrote at every start of every corral process, of which the daemon read 68 KiB (smaps' `Referenced` after the \
start). `schedule_tz`'s zones now come from the host's time zone database through `jiff` (its built-in copy, for \
a host without one, is plain TZif bytes in `.rodata`): `.data.rel.ro` 1.31 → 0.30 MB. The heap: each spec held \
once (the config's map holds the `Arc` its service holds), the event stream's ring made by its first subscriber, \
and each instance's task 1.4 KiB instead of 4.6 (the futures of its hooks and of its spawn, 3.4 and 3.7 KiB, are \
boxed while they run; inline they sized the task for its whole life): 2.9 → 2.2 MiB. **7.6 MiB** in the \
bench at `0062caa`, 7.2 by hand. What is left: libc and the loader (1.8 MiB, shared with every process), the code the \
daemon runs (2.0 MiB), the binary's read-only data (1.2 MiB, 0.3 of it relocated), the heap (2.2 MiB) and the \
threads' stacks (0.4 MiB). \
The log holder (`corral __holder`, a second process) is not counted here; its code is the same file's, \
shared with the daemon.";

/// The kinds a mapping is counted under, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The executable's code (`r-xp`).
    ExeText,
    /// The executable's read-only data: `.rodata`, `.eh_frame`, the
    /// relocation tables the loader reads, and `.data.rel.ro` (anonymous
    /// once relocated).
    ExeReadOnly,
    /// The executable's writable data and `.bss`.
    ExeData,
    /// Shared libraries and the dynamic loader, every segment.
    Libraries,
    /// `[heap]`: malloc's main arena.
    Heap,
    /// Thread stacks (an anonymous mapping right after its guard page) and
    /// the main thread's `[stack]`.
    Stacks,
    /// Every other anonymous mapping: malloc's large blocks and other
    /// arenas, and whatever a library mapped for itself.
    OtherAnon,
    /// `[vdso]`, `[vvar]` and the like.
    Kernel,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::ExeText => "the binary's code (`.text`, file-backed)",
            Kind::ExeReadOnly => {
                "the binary's read-only data (`.rodata`, `.eh_frame`, relocations; `.data.rel.ro` once relocated)"
            }
            Kind::ExeData => "the binary's `.data` / `.bss`",
            Kind::Libraries => "shared libraries (libc, libm, libgcc_s, ld.so)",
            Kind::Heap => "`[heap]` (malloc's main arena)",
            Kind::Stacks => "thread stacks (the main one and each thread's)",
            Kind::OtherAnon => "other anonymous mappings (large malloc blocks, other arenas)",
            Kind::Kernel => "`[vdso]` / `[vvar]`",
        }
    }
}

/// What one kind of mapping holds, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Part {
    pub rss: u64,
    /// Of `rss`, the pages that are anonymous (written by the process).
    pub anonymous: u64,
    pub mappings: u32,
}

/// `/proc/PID/smaps` of process `pid`, summed by [`Kind`].
pub fn breakdown(pid: u32) -> io::Result<Vec<(Kind, Part)>> {
    // As the maps name it (a replaced binary is "… (deleted)" in both).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?;
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    Ok(sum(&text, &exe.to_string_lossy()))
}

/// MiB, or KiB below one MiB (a binary's `.data` is a few pages).
fn size(b: u64) -> String {
    if b >= 1 << 20 {
        mib(b as f64)
    } else {
        format!("{} KiB", b / 1024)
    }
}

/// The breakdown as a table: each kind's RSS, the anonymous part of it,
/// and its share of the whole.
pub fn table(parts: &[(Kind, Part)]) -> Table {
    let total: u64 = parts.iter().map(|(_, p)| p.rss).sum();
    let mut t = Table::new(&["mapping", "RSS", "of which anonymous", "share"]);
    for (k, p) in parts.iter().filter(|(_, p)| p.rss > 0) {
        let share = if total > 0 { 100.0 * p.rss as f64 / total as f64 } else { 0.0 };
        t.row(vec![k.label().into(), size(p.rss), size(p.anonymous), format!("{share:.0} %")]);
    }
    let anon: u64 = parts.iter().map(|(_, p)| p.anonymous).sum();
    t.row(vec!["**total**".into(), size(total), size(anon), "100 %".into()]);
    t
}

/// One mapping's header line: its range, permissions and path.
struct Header<'a> {
    start: u64,
    end: u64,
    perms: &'a str,
    path: &'a str,
}

fn header(line: &str) -> Option<Header<'_>> {
    let mut w = line.splitn(6, ' ');
    let (range, perms) = (w.next()?, w.next()?);
    let (start, end) = range.split_once('-')?;
    let (start, end) = (u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?);
    // Offset, device and inode, then the path (padded with spaces).
    let path = w.nth(3).unwrap_or("").trim();
    Some(Header { start, end, perms, path })
}

fn kind(h: &Header, exe: &str, after_guard: bool) -> Kind {
    match h.path {
        p if p == exe => match h.perms {
            p if p.contains('x') => Kind::ExeText,
            p if p.contains('w') => Kind::ExeData,
            _ => Kind::ExeReadOnly,
        },
        "[heap]" => Kind::Heap,
        "[stack]" => Kind::Stacks,
        p if p.starts_with('/') => Kind::Libraries,
        p if p.starts_with('[') => Kind::Kernel,
        _ if after_guard && h.perms.starts_with("rw") => Kind::Stacks,
        _ => Kind::OtherAnon,
    }
}

/// Sums the text of an smaps file by kind; kinds with no mapping are left
/// out.
pub fn sum(smaps: &str, exe: &str) -> Vec<(Kind, Part)> {
    let mut parts: Vec<(Kind, Part)> = Vec::new();
    let mut current: Option<usize> = None;
    // The end of the previous mapping when it was an anonymous guard
    // (`---p`, no path): a thread's stack starts right there.
    let mut guard_end: Option<u64> = None;
    for line in smaps.lines() {
        if let Some(h) = header(line) {
            let k = kind(&h, exe, guard_end == Some(h.start));
            guard_end = (h.perms.starts_with("---") && h.path.is_empty()).then_some(h.end);
            let i = match parts.iter().position(|(pk, _)| *pk == k) {
                Some(i) => i,
                None => {
                    parts.push((k, Part::default()));
                    parts.len() - 1
                }
            };
            parts[i].1.mappings += 1;
            current = Some(i);
            continue;
        }
        let (Some(i), Some((key, value))) = (current, line.split_once(':')) else { continue };
        let kib: u64 = value.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
        match key {
            "Rss" => parts[i].1.rss += kib * 1024,
            "Anonymous" => parts[i].1.anonymous += kib * 1024,
            _ => {}
        }
    }
    parts.sort_by_key(|(k, _)| *k);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXE: &str = "/opt/corral/bin/corral";

    fn mapping(range: &str, perms: &str, path: &str, rss: u64, anon: u64) -> String {
        format!("{range} {perms} 00000000 fe:01 42        {path}\nSize: 8 kB\nRss: {rss} kB\nAnonymous: {anon} kB\nVmFlags: rd\n")
    }

    #[test]
    fn mappings_are_summed_by_kind() {
        let smaps = [
            mapping("1000-2000", "r--p", EXE, 100, 0),
            mapping("2000-3000", "r-xp", EXE, 4000, 0),
            mapping("3000-4000", "r--p", EXE, 300, 200),
            mapping("4000-5000", "rw-p", EXE, 16, 16),
            mapping("5000-6000", "rw-p", "[heap]", 2000, 2000),
            // A guard page, then the thread's stack right after it.
            mapping("7000-8000", "---p", "", 0, 0),
            mapping("8000-9000", "rw-p", "", 24, 24),
            // An anonymous mapping after a gap: malloc's, not a stack.
            mapping("a000-b000", "rw-p", "", 500, 500),
            mapping("c000-d000", "r-xp", "/usr/lib/x86_64-linux-gnu/libc.so.6", 1100, 0),
            mapping("e000-f000", "rw-p", "[stack]", 132, 132),
            mapping("f000-f100", "r-xp", "[vdso]", 4, 0),
        ]
        .concat();
        let parts = sum(&smaps, EXE);
        let get = |k: Kind| parts.iter().find(|(pk, _)| *pk == k).map(|(_, p)| *p).unwrap_or_default();
        assert_eq!(get(Kind::ExeText), Part { rss: 4000 * 1024, anonymous: 0, mappings: 1 });
        assert_eq!(get(Kind::ExeReadOnly), Part { rss: 400 * 1024, anonymous: 200 * 1024, mappings: 2 });
        assert_eq!(get(Kind::ExeData).rss, 16 * 1024);
        assert_eq!(get(Kind::Heap).anonymous, 2000 * 1024);
        assert_eq!(get(Kind::Stacks), Part { rss: 156 * 1024, anonymous: 156 * 1024, mappings: 2 });
        // The guard page itself holds nothing and counts as "other".
        assert_eq!(get(Kind::OtherAnon), Part { rss: 500 * 1024, anonymous: 500 * 1024, mappings: 2 });
        assert_eq!(get(Kind::Libraries).rss, 1100 * 1024);
        assert_eq!(get(Kind::Kernel).rss, 4 * 1024);
        let total: u64 = parts.iter().map(|(_, p)| p.rss).sum();
        assert_eq!(total, (100 + 4000 + 300 + 16 + 2000 + 24 + 500 + 1100 + 132 + 4) * 1024);
        // Reported in a fixed order, code first.
        assert_eq!(parts.first().map(|(k, _)| *k), Some(Kind::ExeText));
    }

    #[test]
    fn the_breakdown_of_this_process_adds_up_to_its_rss() {
        let parts = breakdown(std::process::id()).unwrap();
        let text = parts.iter().find(|(k, _)| *k == Kind::ExeText).map(|(_, p)| p.rss).unwrap_or(0);
        assert!(text > 0, "this test's own code is resident: {parts:?}");
        let total: u64 = parts.iter().map(|(_, p)| p.rss).sum();
        let rollup = crate::sys::memory(std::process::id()).unwrap().rss;
        // Both read the same counters moments apart; a page or two may move.
        assert!(total.abs_diff(rollup) < 1 << 20, "smaps {total} vs smaps_rollup {rollup}");
    }
}
