//! `corral run`: GNU `timeout`, but for the whole tree, with limits and a
//! report.

mod io;
mod isolate;
mod windows;

use crate::exit;
use crate::report::Report;
use clap::Parser;
use corral::{
    units, Command, Error, ErrorKind, Group, GroupBuilder, LimitKind, Limits, Outcome, Reason, Signal, StopPolicy,
    Support,
};
use corral_supervisor::tree::follow::follow_blocking;
use corral_supervisor::tree::trace_file::TraceFile;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
pub struct Args {
    #[command(flatten)]
    flags: GroupFlags,
    /// CPU time limit for each process (RLIMIT_CPU; the kernel kills a process past it).
    #[arg(long = "cpu-time-per-process", value_name = "DUR", value_parser = parse_duration)]
    cpu_time_per_process: Option<Duration>,
    #[command(flatten)]
    isolate: isolate::IsolateArgs,
    #[command(flatten)]
    io: io::IoArgs,
    #[command(flatten)]
    windows: windows::WindowsArgs,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// How a group is held: limits, timeout, stop, report. `corral run` and
/// `corral adopt` share them.
#[derive(Debug, clap::Args)]
pub struct GroupFlags {
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
    /// Record the lineage of every process of the run (parent, exe, argv,
    /// start, exit status) to PATH as JSON lines; see `corral trace show`.
    #[arg(long, value_name = "PATH")]
    trace: Option<std::path::PathBuf>,
    /// Exit with the command's status even on timeout (like GNU timeout).
    #[arg(long = "preserve-status")]
    preserve_status: bool,
}

impl GroupFlags {
    fn limits(&self) -> Limits {
        let mut limits = Limits::new();
        limits.memory = self.memory;
        limits.memory_per_process = self.memory_per_process;
        limits.cpu_time = self.cpu_time;
        limits.cpus = self.cpus;
        limits.max_procs = self.max_procs;
        limits
    }

    /// GNU timeout: a duration of 0 disables what it bounds. With `-k 0`
    /// no kill: the longest grace there is never runs out.
    fn grace(&self) -> Duration {
        if self.kill_after.is_zero() {
            units::MAX_DURATION
        } else {
            self.kill_after
        }
    }

    /// The `--trace` file, created before anything starts (or the exit
    /// code of a one-line refusal).
    pub fn open_trace(&self) -> Result<Option<TraceFile>, u8> {
        self.trace.as_deref().map(TraceFile::create).transpose().map_err(|e| {
            let path = self.trace.as_deref().unwrap_or(std::path::Path::new("")).display();
            exit::error(format!("cannot write the trace to {path}: {e}"));
            exit::FAILURE
        })
    }

    /// A builder with these limits, stop policy and timeout.
    pub fn builder(&self) -> GroupBuilder {
        let builder = Group::builder().limits(self.limits()).stop(StopPolicy::new(self.signal, self.grace()));
        match self.timeout.filter(|t| !t.is_zero()) {
            Some(t) => builder.timeout(t),
            None => builder,
        }
    }
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
    let mut cmd = Command::new(&a.command[0]);
    cmd.args(&a.command[1..]);
    // Opened before anything starts: a trace that cannot be written is
    // refused up front, not found missing afterwards.
    let trace = match a.flags.open_trace() {
        Ok(t) => t,
        Err(code) => return code,
    };
    let signals = crate::signals::Forwarder::install();
    // Set at spawn, so `run` only: an adopted tree is already started.
    let mut limits = a.flags.limits();
    limits.cpu_time_per_process = a.cpu_time_per_process;
    let limits = a.windows.limits(a.io.apply(limits));
    let builder = a.flags.builder().limits(limits).isolate(a.windows.isolation(a.isolate.isolation()));
    // The report's `processes_total` needs every fork counted.
    let builder = builder.count_processes(a.flags.report.is_some());
    let group = match builder.record_events(trace.is_some()).spawn(cmd) {
        Ok(g) => Arc::new(g),
        Err(e) => return spawn_failure(&e),
    };
    hold(&a.flags, group, signals, trace)
}

/// Holds a started group to its end: notes weaker limits, forwards
/// signals, reports, and maps the outcome to an exit code.
pub fn hold(f: &GroupFlags, group: Arc<Group>, signals: crate::signals::Forwarder, trace: Option<TraceFile>) -> u8 {
    for e in group.enforcement() {
        if let Support::Weaker(how) = &e.support {
            exit::error(format!("note: {} is enforced in a weaker form here: {how}", e.limit));
        }
    }
    let tracer = trace.map(|t| follow_blocking(&group, Some(t)));
    signals.forward_to(group.clone(), f.grace());
    let outcome = group.wait();
    // The event stream ends with the group, so the tracer is done.
    if let Some(Ok(Some(TraceFile { failed: Some(e), .. }))) = tracer.map(|t| t.join()) {
        exit::error(format!("the trace is incomplete: {e}"));
        return exit::FAILURE;
    }
    if outcome.reason.is_limit() {
        exit::error(format!("killed: {}", limit_line(&outcome, &f.limits())));
    }
    if outcome.leftover > 0 {
        exit::error(format!(
            "error: {} process(es) of the group survived the teardown (backend {})",
            outcome.leftover, outcome.backend
        ));
    }
    let code = exit_code(&outcome, f.preserve_status);
    if let Some(path) = &f.report {
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
/// An adopted leader that ended by itself has no status corral can know:
/// that is 0, the tree ended without corral's doing (the report's
/// `exit_code` stays null).
pub fn exit_code(o: &Outcome, preserve_status: bool) -> u8 {
    let own = if o.status.is_known() { o.status.shell_code().clamp(0, 255) as u8 } else { 0 };
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
