//! corral-bench: corral measured side by side with the tools users would
//! pick instead, in the same run, on the same machine, with ratios.
//!
//! ```text
//! cargo run --release -p corral-bench -- all            # everything; writes BENCHMARKS.md
//! cargo run --release -p corral-bench -- kill --quick   # one part, quick (under a minute)
//! cargo run --release -p corral-bench -- soak --minutes 10   # the soak (9), never part of `all`
//! ```
//!
//! Parts: `spawn` (1), `kill` (2), `footprint` (3, 4, 5), `restart` (6),
//! `stop` (7), `crashloop` (7b), `logs` (8), `soak` (9), `fleet` (12, needs etcd), `dashboard` (13),
//! `activation` (16). The benchmarks are Linux-only: the peers
//! and the measuring tools (pidfds, smaps_rollup, cgroups) are.

#[cfg(target_os = "linux")]
mod activation;
#[cfg(target_os = "linux")]
mod daemons;
#[cfg(target_os = "linux")]
mod dashboard;
#[cfg(target_os = "linux")]
mod fleet;
#[cfg(target_os = "linux")]
mod kill;
#[cfg(target_os = "linux")]
mod logs;
#[cfg(target_os = "linux")]
mod probes_on;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod smaps;
#[cfg(target_os = "linux")]
mod soak;
#[cfg(target_os = "linux")]
mod spawn;
#[cfg(target_os = "linux")]
mod spawn_floor;
#[cfg(target_os = "linux")]
mod stats;
#[cfg(target_os = "linux")]
mod supervise;
#[cfg(target_os = "linux")]
mod svg;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod tools;

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("corral-bench: benchmarks run on Linux only");
    std::process::exit(1);
}

#[cfg(target_os = "linux")]
fn main() {
    std::process::exit(linux::main());
}

#[cfg(target_os = "linux")]
pub struct Opts {
    pub quick: bool,
    pub bins: tools::Bins,
    pub peers: tools::Peers,
}

#[cfg(target_os = "linux")]
mod linux {
    use crate::report::{self, Section};
    use crate::{activation, dashboard, fleet, kill, logs, soak, spawn, supervise, sys, tools, Opts};
    use std::path::PathBuf;
    use std::time::Instant;

    const USAGE: &str = "\
usage: corral-bench PART [--quick] [--out FILE] [--minutes N]
  PART is one of:
    all         every part below; writes BENCHMARKS.md at the workspace root (or --out)
    spawn       1   spawn+wait of /bin/true in a contained group
    kill        2   kill latency for trees of 10/100/1000, three variants
    footprint   3-5 supervisor daemon memory, idle CPU, start of 100 services
    restart     6   restart latency after an external SIGKILL
    stop        7   tree cleanup when a service is stopped
    crashloop   7b  crash loop: daemon CPU and number of starts
    logs        8   log capture throughput and lines lost
    soak        9   100 services, one crash-looping, a log follower, for --minutes
                    (default 10); prints the daemon's RSS and fd curves and a verdict
                    on flatness; updates its section of BENCHMARKS.md (or --out).
                    Not part of `all`.
    fleet       12  etcd + 5 daemons: apply to running, steady-state writes (needs etcd; not part
                    of `all`)
    dashboard   13  100 services: daemon CPU per minute with one open dashboard (the page's
                    requests, its event stream and a followed log) against none, and the
                    page's weight; updates its section of BENCHMARKS.md. Not part of `all`.
    activation  16  20 restarts under load: a socket-activated service against one that binds
                    its own port (refused/reset requests); updates its section of
                    BENCHMARKS.md (or --out). Not part of `all`.
  --quick       fewer rounds and shorter windows: each part within a minute
  --out FILE    also write the report (of any part) to FILE
Peers (supervisord, PM2) are installed when missing by scripts/install-peers.sh
into $CORRAL_BENCH_PEERS (default ~/.cache/corral-bench).
";

    const PARTS: [&str; 7] = ["spawn", "kill", "footprint", "restart", "stop", "crashloop", "logs"];
    /// Parts that run only when named.
    const ALONE: [&str; 4] = ["soak", "fleet", "dashboard", "activation"];

    pub fn main() -> i32 {
        let mut part = None;
        let mut quick = false;
        let mut out: Option<PathBuf> = None;
        let mut minutes = 10u64;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => quick = true,
                "--out" => out = args.next().map(PathBuf::from),
                "--minutes" => match args.next().and_then(|m| m.parse::<u64>().ok()) {
                    Some(m) if (1..=soak::MAX_MINUTES).contains(&m) => minutes = m,
                    _ => {
                        eprintln!("corral-bench: --minutes takes a whole number from 1 to {}", soak::MAX_MINUTES);
                        return 2;
                    }
                },
                "-h" | "--help" => {
                    print!("{USAGE}");
                    return 0;
                }
                p if part.is_none() && (p == "all" || PARTS.contains(&p) || ALONE.contains(&p)) => {
                    part = Some(p.to_string())
                }
                other => {
                    eprintln!("corral-bench: unknown argument {other:?}\n{USAGE}");
                    return 2;
                }
            }
        }
        let Some(part) = part else {
            eprint!("{USAGE}");
            return 2;
        };
        sys::become_subreaper();
        sys::raise_nofile();
        let bins = match tools::bins() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("corral-bench: {e}");
                return 1;
            }
        };
        let needs_peers =
            part == "all" || ["footprint", "restart", "stop", "crashloop", "logs"].contains(&part.as_str());
        let peers = if needs_peers { tools::peers() } else { tools::Peers::default() };
        let opts = Opts { quick, bins, peers };
        if part == "soak" {
            return run_soak(&opts, minutes, out);
        }
        if part == "dashboard" {
            return match dashboard::run(&opts) {
                Ok(sec) => write_alone(sec, out),
                Err(e) => {
                    eprintln!("corral-bench: dashboard failed: {e}");
                    1
                }
            };
        }
        if part == "activation" {
            return run_activation(&opts, out);
        }

        let parts: Vec<&str> = if part == "all" { PARTS.to_vec() } else { vec![part.as_str()] };
        let started = Instant::now();
        let mut sections = Vec::new();
        let mut failed = false;
        for p in parts {
            let t = Instant::now();
            let r = match p {
                "spawn" => spawn::run(&opts),
                "kill" => kill::run(&opts),
                "footprint" => supervise::footprint(&opts),
                "restart" => supervise::restart(&opts),
                "stop" => supervise::stop(&opts),
                "logs" => logs::run(&opts),
                "fleet" => fleet::run(&opts),
                _ => supervise::crashloop(&opts),
            };
            match r {
                Ok(s) => {
                    eprintln!("corral-bench: {p} done in {:.1} s", t.elapsed().as_secs_f64());
                    println!("{}", s.markdown());
                    sections.push(s);
                }
                Err(e) => {
                    eprintln!("corral-bench: {p} failed: {e}");
                    let mut s = Section::new(&format!("{p}: failed"));
                    s.para(&format!("This part failed in this run: `{e}`"));
                    sections.push(s);
                    failed = true;
                }
            }
            // Nothing of ours that a library expects to reap is alive
            // between parts.
            sys::reap_zombie_children();
        }
        let verdicts: Vec<report::Verdict> = sections.iter().flat_map(|s| s.verdicts.clone()).collect();
        println!("{}", report::verdict_table(&verdicts));

        let target = match (&out, part == "all") {
            (Some(o), _) => Some(o.clone()),
            (None, true) => Some(tools::workspace().join("BENCHMARKS.md")),
            (None, false) => None,
        };
        if let Some(path) = target {
            let doc = document(&opts, &sections, &verdicts, started.elapsed().as_secs_f64());
            let dir = path.parent().map(PathBuf::from).unwrap_or_default();
            for s in &sections {
                for (name, text) in &s.files {
                    let f = dir.join(name);
                    if let Some(d) = f.parent() {
                        let _ = std::fs::create_dir_all(d);
                    }
                    if let Err(e) = std::fs::write(&f, text) {
                        eprintln!("corral-bench: writing {}: {e}", f.display());
                    }
                }
            }
            match std::fs::write(&path, doc) {
                Ok(()) => eprintln!("corral-bench: wrote {}", path.display()),
                Err(e) => {
                    eprintln!("corral-bench: writing {}: {e}", path.display());
                    failed = true;
                }
            }
        }
        i32::from(failed)
    }

    /// Socket activation alone: its section replaces its own in
    /// BENCHMARKS.md (or `out`).
    fn run_activation(opts: &Opts, out: Option<PathBuf>) -> i32 {
        let sec = match activation::run(opts) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("corral-bench: activation failed: {e}");
                return 1;
            }
        };
        sys::reap_zombie_children();
        println!("{}", sec.markdown());
        println!("{}", report::verdict_table(&sec.verdicts));
        match activation::write(&sec, out) {
            Ok(p) => eprintln!("corral-bench: wrote its section into {}", p.display()),
            Err(e) => {
                eprintln!("corral-bench: {e}");
                return 1;
            }
        }
        i32::from(sec.verdicts.iter().any(|v| v.met != Some(true)))
    }

    /// The soak alone: its section replaces its own in BENCHMARKS.md (or
    /// `out`); the rest of the file stays as `all` wrote it.
    fn run_soak(opts: &Opts, minutes: u64, out: Option<PathBuf>) -> i32 {
        let sec = match soak::run(opts, minutes) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("corral-bench: soak failed: {e}");
                return 1;
            }
        };
        sys::reap_zombie_children();
        write_alone(sec, out)
    }

    /// A part run alone (the soak, the dashboard): its section replaces its
    /// own in BENCHMARKS.md (or `out`); the rest of the file stays.
    fn write_alone(sec: Section, out: Option<PathBuf>) -> i32 {
        println!("{}", sec.markdown());
        println!("{}", report::verdict_table(&sec.verdicts));
        let path = out.unwrap_or_else(|| tools::workspace().join("BENCHMARKS.md"));
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        for (name, text) in &sec.files {
            let f = dir.join(name);
            if let Some(d) = f.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            if let Err(e) = std::fs::write(&f, text) {
                eprintln!("corral-bench: writing {}: {e}", f.display());
            }
        }
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        match std::fs::write(&path, soak::splice(&doc, &sec)) {
            Ok(()) => eprintln!("corral-bench: wrote its section into {}", path.display()),
            Err(e) => {
                eprintln!("corral-bench: writing {}: {e}", path.display());
                return 1;
            }
        }
        i32::from(sec.verdicts.iter().any(|v| v.met != Some(true)))
    }

    fn document(opts: &Opts, sections: &[Section], verdicts: &[report::Verdict], took: f64) -> String {
        let mode = if opts.quick {
            "**quick mode** (`--quick`: fewer rounds, shorter windows; indicative only)"
        } else {
            "full mode"
        };
        let mut s = String::new();
        s.push_str("# corral benchmarks\n\n");
        s.push_str(&format!(
            "Generated by `cargo run --release -p corral-bench -- all{}` in {mode}, in {:.0} s. \
             Every figure is measured in the same run as the peers it is compared with, contenders \
             interleaved across rounds, so the **ratios** are what carry over between machines; the \
             absolute figures hold for this machine only. Spread is p10–p90 (or min–max where there are \
             few samples).\n\n",
            if opts.quick { " --quick" } else { "" },
            took
        ));
        s.push_str("## Machine and versions\n\n");
        s.push_str(&tools::environment(&opts.peers));
        s.push('\n');
        s.push_str("## Goals (issue 6)\n\n");
        s.push_str(&report::verdict_table(verdicts));
        s.push('\n');
        s.push_str(include_str!("../notes.md"));
        s.push('\n');
        for sec in sections {
            s.push_str(&sec.markdown());
        }
        // The soak is not part of `all`: its last results stay.
        let old = std::fs::read_to_string(tools::workspace().join("BENCHMARKS.md")).unwrap_or_default();
        for heading in ["## 9. soak".to_string(), dashboard::HEADING.to_string(), activation::heading()] {
            if let Some(kept) = soak::kept_section(&old, &heading) {
                s.push_str(&kept);
            }
        }
        s
    }
}
