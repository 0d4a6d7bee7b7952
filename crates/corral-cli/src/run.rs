//! `corral run`: GNU `timeout`, but for the whole tree, with limits and a
//! report.

mod io;
mod isolate;

use crate::exit;
use crate::report::Report;
use clap::Parser;
use corral::{
    units, Command, Error, ErrorKind, Group, LimitKind, Limits, Outcome, Reason, Signal, StopPolicy, Support,
};
use std::ffi::OsString;
use std::time::Duration;

#[derive(Debug, Parser)]
pub struct Args {
    /// Stop the group after this long (30s, 1m30s, 500ms; a bare number is seconds; 0: no limit).
    #[arg(short = 't', long, value_name = "DUR", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Grace period between the stop signal and the kill (0: never kill, as GNU timeout).
    #[arg(short = 'k', long = "kill-after", value_name = "DUR", value_parser = parse_duration, default_value = "10s")]
    kill_after: Duration,
    /// Memory limit for the whole group (512MiB, 1.5G, 64M).
    #[arg(short = 'm', long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Address-space limit for each process (RLIMIT_AS).
    #[arg(long = "memory-per-process", value_name = "SIZE", value_parser = parse_size)]
    memory_per_process: Option<u64>,
    /// CPU time limit for the whole group (user + system).
    #[arg(long = "cpu-time", value_name = "DUR", value_parser = parse_duration)]
    cpu_time: Option<Duration>,
    /// CPU time limit for each process (RLIMIT_CPU; the kernel kills a process past it).
    #[arg(long = "cpu-time-per-process", value_name = "DUR", value_parser = parse_duration)]
    cpu_time_per_process: Option<Duration>,
    /// CPU rate in cores, like `docker --cpus` (0.5, 2).
    #[arg(long, value_name = "N", value_parser = parse_cpus, allow_negative_numbers = true)]
    cpus: Option<f64>,
    /// Most processes the group may hold at once.
    #[arg(short = 'p', long = "max-procs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=corral::MAX_PROCS as i64))]
    max_procs: Option<u32>,
    /// The stop signal sent to every member on timeout (TERM, INT, HUP, 15).
    #[arg(short = 's', long, value_name = "SIG", default_value = "TERM", value_parser = parse_signal)]
    signal: Signal,
    /// Write a JSON report of the run to PATH, or to stdout with `-`.
    #[arg(long, value_name = "PATH")]
    report: Option<String>,
    /// Exit with the command's status even on timeout (like GNU timeout).
    #[arg(long = "preserve-status")]
    preserve_status: bool,
    #[command(flatten)]
    isolate: isolate::IsolateArgs,
    #[command(flatten)]
    io: io::IoArgs,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    command: Vec<OsString>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    units::parse_duration(s).map_err(|e| e.to_string())
}
fn parse_size(s: &str) -> Result<u64, String> {
    match units::parse_size(s) {
        Ok(0) => Err(format!("invalid size '{s}': must be greater than 0")),
        r => r.map_err(|e| e.to_string()),
    }
}
fn parse_cpus(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= corral::MAX_CPUS => Ok(v),
        _ => {
            Err(format!("invalid CPU count '{s}': expected a number of cores above 0 and at most 1024, like 0.5 or 2"))
        }
    }
}
fn parse_signal(s: &str) -> Result<Signal, String> {
    s.parse()
}

pub fn main(a: Args) -> u8 {
    corral::reap_all_orphans(true);
    let mut limits = Limits::new();
    limits.memory = a.memory;
    limits.memory_per_process = a.memory_per_process;
    limits.cpu_time = a.cpu_time;
    limits.cpu_time_per_process = a.cpu_time_per_process;
    limits.cpus = a.cpus;
    limits.max_procs = a.max_procs;
    let limits = a.io.apply(limits);
    let mut cmd = Command::new(&a.command[0]);
    cmd.args(&a.command[1..]);
    // GNU timeout: a duration of 0 disables what it bounds. No timeout,
    // and with `-k 0` no kill: the longest grace there is never runs out.
    let grace = if a.kill_after.is_zero() { units::MAX_DURATION } else { a.kill_after };
    let mut builder =
        Group::builder().limits(limits.clone()).stop(StopPolicy::new(a.signal, grace)).isolate(a.isolate.isolation());
    if let Some(t) = a.timeout.filter(|t| !t.is_zero()) {
        builder = builder.timeout(t);
    }
    let signals = crate::signals::Forwarder::install();
    let group = match builder.spawn(cmd) {
        Ok(g) => std::sync::Arc::new(g),
        Err(e) => return spawn_failure(&e),
    };
    for e in group.enforcement() {
        if let Support::Weaker(how) = &e.support {
            exit::error(format!("note: {} is enforced in a weaker form here: {how}", e.limit));
        }
    }
    signals.forward_to(group.clone(), grace);
    let outcome = group.wait();
    if outcome.reason.is_limit() {
        exit::error(format!("killed: {}", limit_line(&outcome, &limits)));
    }
    if outcome.leftover > 0 {
        exit::error(format!(
            "error: {} process(es) of the group survived the teardown (backend {})",
            outcome.leftover, outcome.backend
        ));
    }
    let code = exit_code(&outcome, a.preserve_status);
    if let Some(path) = &a.report {
        if let Err(e) = Report::from_outcome(&outcome).write(path) {
            exit::error(format!("cannot write the report to {path}: {e}"));
            return exit::FAILURE;
        }
    }
    if outcome.leftover > 0 {
        return exit::FAILURE;
    }
    code
}

fn spawn_failure(e: &Error) -> u8 {
    exit::error(e);
    match e.kind() {
        ErrorKind::NotFound => exit::NOT_FOUND,
        ErrorKind::NotExecutable => exit::NOT_EXECUTABLE,
        _ => exit::FAILURE,
    }
}

/// GNU `timeout`'s conventions, extended to limits.
pub fn exit_code(o: &Outcome, preserve_status: bool) -> u8 {
    let own = o.status.shell_code().clamp(0, 255) as u8;
    match o.reason {
        Reason::Timeout if !preserve_status => exit::TIMEOUT,
        r if r.is_limit() && !preserve_status => 128 + 9,
        _ => own,
    }
}

/// `memory limit 64 MiB exceeded (peak 64.0 MiB)` and friends.
fn limit_line(o: &Outcome, l: &Limits) -> String {
    let peak = o.usage.peak_memory.map(units::format_size).unwrap_or_else(|| "unknown".into());
    match o.reason {
        Reason::MemoryLimit => format!(
            "{} {} exceeded (peak {peak})",
            LimitKind::Memory,
            l.memory.or(l.memory_per_process).map(units::format_size_exact).unwrap_or_default()
        ),
        Reason::CpuTimeLimit => format!(
            "{} {} exceeded (used {}; peak memory {peak})",
            LimitKind::CpuTime,
            l.cpu_time.map(units::format_duration).unwrap_or_default(),
            units::format_duration(o.usage.cpu_total())
        ),
        Reason::ProcessLimit => {
            format!("{} {} reached", LimitKind::Processes, l.max_procs.map(|n| n.to_string()).unwrap_or_default())
        }
        r => r.to_string(),
    }
}
