//! Lineage: who forked whom, what each process ran, and how it ended, as
//! JSON lines (the trace format) and as records folded from them.
//!
//! A trace is a sequence of [`TraceLine`]s. Each run of a group opens with
//! a `run` line (its leader, and whether lineage is observed), then one
//! `start`, `exec` and `exit` line per process event. Folding the lines
//! gives one [`Record`] per process, gone ones included.

use corral::Event;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

/// The most records a [`Lineage`] keeps: past it the oldest processes that
/// exited are forgotten first.
pub const MAX_RECORDS: usize = 4096;
/// The most bytes of arguments kept per process (joined); a longer list is
/// cut, its last kept argument ending in `…`.
pub const MAX_ARGV_BYTES: usize = 4096;

/// One line of a trace file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceLine {
    /// A run of a group begins.
    Run {
        /// The leader's pid.
        leader: u32,
        /// True when parents come from fork events as they happen.
        lineage: bool,
        /// Why lineage is or is not observed, for people.
        note: String,
        /// The backend holding the group.
        backend: String,
        /// Wall-clock time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// A process joined the group.
    Start {
        /// Its pid.
        pid: u32,
        /// Who forked it (with lineage), or its parent when it was seen.
        parent: Option<u32>,
        /// Its executable, when it could be read.
        exe: Option<String>,
        /// Its arguments, when they could be read.
        #[serde(default)]
        argv: Vec<String>,
        /// Wall-clock time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// A process replaced its program.
    Exec {
        /// Its pid.
        pid: u32,
        /// The new executable.
        exe: Option<String>,
        /// The new arguments.
        #[serde(default)]
        argv: Vec<String>,
        /// Wall-clock time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// A process ended.
    Exit {
        /// Its pid.
        pid: u32,
        /// Its exit code, when known.
        code: Option<i32>,
        /// The signal that ended it, when known.
        signal: Option<i32>,
        /// Wall-clock time, ms since the Unix epoch.
        at_ms: u64,
    },
}

impl TraceLine {
    /// The same line with its arguments cut to `max` bytes.
    pub fn with_argv_cut(&self, max: usize) -> TraceLine {
        let mut l = self.clone();
        if let TraceLine::Start { argv, .. } | TraceLine::Exec { argv, .. } = &mut l {
            *argv = cut_argv(std::mem::take(argv), max);
        }
        l
    }

    /// The line for a group event; `None` for events that are not about
    /// one process (`LimitHit`, `Empty`).
    pub fn from_event(e: &Event, at_ms: u64) -> Option<TraceLine> {
        let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
        match e {
            Event::Started { pid, ppid, exe } => Some(TraceLine::Start {
                pid: *pid,
                parent: *ppid,
                exe: path(exe),
                argv: bounded_argv(corral::process_argv(*pid)),
                at_ms,
            }),
            Event::Exec { pid, exe, argv } => {
                Some(TraceLine::Exec { pid: *pid, exe: path(exe), argv: bounded_argv(argv.clone()), at_ms })
            }
            Event::Exited { pid, status } => Some(TraceLine::Exit {
                pid: *pid,
                code: status.and_then(|s| s.code),
                signal: status.and_then(|s| s.signal),
                at_ms,
            }),
            _ => None,
        }
    }
}

/// `argv` cut to [`MAX_ARGV_BYTES`].
pub fn bounded_argv(argv: Vec<String>) -> Vec<String> {
    cut_argv(argv, MAX_ARGV_BYTES)
}

fn cut_argv(argv: Vec<String>, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut used = 0usize;
    for a in argv {
        if used + a.len() > max {
            let room = max.saturating_sub(used);
            let mut cut = a;
            while cut.len() > room {
                cut.pop();
            }
            cut.push('…');
            out.push(cut);
            break;
        }
        used += a.len() + 1;
        out.push(a);
    }
    out
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One process as the lineage knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Its pid.
    pub pid: u32,
    /// Who forked it, or its parent when it was seen (see [`Run::lineage`]).
    pub parent: Option<u32>,
    /// Its executable, the last one it ran.
    pub exe: Option<String>,
    /// Its arguments, the last ones it ran with.
    pub argv: Vec<String>,
    /// When it was seen starting, ms since the Unix epoch.
    pub started_ms: u64,
    /// When it ended, if it did.
    pub exited_ms: Option<u64>,
    /// Its exit code, when it ended with one.
    pub code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    /// Which run of the trace it belongs to (index into [`Lineage::runs`]).
    pub run: usize,
}

impl Record {
    /// The command as one line.
    pub fn command(&self) -> String {
        if self.argv.is_empty() {
            self.exe.clone().unwrap_or_else(|| "?".into())
        } else {
            self.argv.join(" ")
        }
    }
}

/// A run of a group, as its `run` line told it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The leader's pid.
    pub leader: u32,
    /// True when parents come from fork events.
    pub lineage: bool,
    /// Why, for people.
    pub note: String,
    /// The backend.
    pub backend: String,
    /// When it began.
    pub at_ms: u64,
}

/// Records folded from trace lines, oldest first, bounded by
/// [`MAX_RECORDS`].
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    runs: Vec<Run>,
    records: VecDeque<Record>,
    /// Records forgotten to stay within the bound.
    pub dropped: u64,
}

impl Lineage {
    /// An empty lineage.
    pub fn new() -> Lineage {
        Lineage::default()
    }

    /// Folds one line in.
    pub fn apply(&mut self, line: &TraceLine) {
        match line {
            TraceLine::Run { leader, lineage, note, backend, at_ms } => {
                self.runs.push(Run {
                    leader: *leader,
                    lineage: *lineage,
                    note: note.clone(),
                    backend: backend.clone(),
                    at_ms: *at_ms,
                });
            }
            TraceLine::Start { pid, parent, exe, argv, at_ms } => {
                // A `Start` for a pid whose record is still open repeats the
                // snapshot a subscriber gets; the first one stands.
                if self.open(*pid).is_some() {
                    return;
                }
                let parent = parent.filter(|p| p != pid);
                // Gone before it could be read: a fork is a copy of its
                // parent, so until an exec says otherwise it runs what the
                // parent ran.
                let (exe, argv) = match parent.and_then(|p| self.latest(p)) {
                    Some(up) if argv.is_empty() && exe.is_none() => (up.exe.clone(), up.argv.clone()),
                    _ => (exe.clone(), argv.clone()),
                };
                self.records.push_back(Record {
                    pid: *pid,
                    parent,
                    exe,
                    argv,
                    started_ms: *at_ms,
                    exited_ms: None,
                    code: None,
                    signal: None,
                    run: self.runs.len().saturating_sub(1),
                });
                self.bound();
            }
            TraceLine::Exec { pid, exe, argv, .. } => {
                if let Some(r) = self.open(*pid) {
                    r.exe = exe.clone().or(r.exe.take());
                    if !argv.is_empty() {
                        r.argv = argv.clone();
                    }
                }
            }
            TraceLine::Exit { pid, code, signal, at_ms } => {
                if let Some(r) = self.open(*pid) {
                    r.exited_ms = Some(*at_ms);
                    r.code = *code;
                    r.signal = *signal;
                }
            }
        }
    }

    /// The newest record of `pid` that has not ended.
    fn open(&mut self, pid: u32) -> Option<&mut Record> {
        self.records.iter_mut().rev().find(|r| r.pid == pid && r.exited_ms.is_none())
    }

    fn bound(&mut self) {
        while self.records.len() > MAX_RECORDS {
            let at = self.records.iter().position(|r| r.exited_ms.is_some()).unwrap_or(0);
            self.records.remove(at);
            self.dropped += 1;
        }
    }

    /// The runs, in order.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Every record, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    /// The newest record of `pid` (live or gone).
    pub fn latest(&self, pid: u32) -> Option<&Record> {
        self.records.iter().rev().find(|r| r.pid == pid)
    }

    /// True when the last run observed lineage.
    pub fn observed(&self) -> bool {
        self.runs.last().is_some_and(|r| r.lineage)
    }
}

/// Why lineage is or is not observed for a group, in one sentence.
pub fn lineage_note(observed: bool) -> String {
    if observed {
        return "lineage recorded: each process's parent is the one that forked it (process-event connector)".into();
    }
    let why = if cfg!(target_os = "linux") {
        "the process-event connector needs root or CAP_NET_ADMIN"
    } else if cfg!(windows) {
        "Windows reports no fork lineage to corral"
    } else {
        "this OS reports no fork lineage to corral"
    };
    format!(
        "lineage not observed ({why}): a process whose parent left the group sits under the leader, marked re-parented"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(pid: u32, parent: u32) -> TraceLine {
        TraceLine::Start { pid, parent: Some(parent), exe: None, argv: vec![format!("p{pid}")], at_ms: 1 }
    }

    #[test]
    fn folds_start_exec_exit_into_one_record() {
        let mut l = Lineage::new();
        l.apply(&TraceLine::Run { leader: 10, lineage: true, note: String::new(), backend: "x".into(), at_ms: 0 });
        l.apply(&start(10, 1));
        l.apply(&start(11, 10));
        l.apply(&TraceLine::Exec { pid: 11, exe: Some("/bin/true".into()), argv: vec!["true".into()], at_ms: 2 });
        l.apply(&TraceLine::Exit { pid: 11, code: Some(3), signal: None, at_ms: 3 });
        // The same pid again: a new process.
        l.apply(&start(11, 10));
        let recs: Vec<&Record> = l.records().collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1].command(), "true");
        assert_eq!(recs[1].code, Some(3));
        assert_eq!(recs[2].exited_ms, None);
        assert_eq!(l.latest(11).unwrap().argv, ["p11"]);
    }

    #[test]
    fn a_fork_read_too_late_runs_what_its_parent_ran() {
        let mut l = Lineage::new();
        l.apply(&start(5, 4));
        l.apply(&TraceLine::Start { pid: 6, parent: Some(5), exe: None, argv: vec![], at_ms: 1 });
        assert_eq!(l.latest(6).unwrap().argv, ["p5"]);
    }

    #[test]
    fn a_repeated_start_keeps_the_first_parent() {
        let mut l = Lineage::new();
        l.apply(&start(5, 4));
        l.apply(&start(5, 1));
        assert_eq!(l.records().count(), 1);
        assert_eq!(l.latest(5).unwrap().parent, Some(4));
    }

    #[test]
    fn the_bound_forgets_exited_records_first() {
        let mut l = Lineage::new();
        l.apply(&start(1, 0));
        for pid in 2..(MAX_RECORDS as u32 + 10) {
            l.apply(&start(pid, 1));
            l.apply(&TraceLine::Exit { pid, code: Some(0), signal: None, at_ms: 2 });
        }
        assert_eq!(l.records().count(), MAX_RECORDS);
        assert!(l.latest(1).is_some(), "the live leader is kept");
        assert!(l.dropped > 0);
    }

    #[test]
    fn argv_is_cut_to_its_bound() {
        let long = vec!["x".repeat(3000), "y".repeat(3000), "z".into()];
        let cut = bounded_argv(long);
        assert_eq!(cut.len(), 2);
        assert!(cut[1].ends_with('…'));
        assert!(cut.iter().map(|a| a.len()).sum::<usize>() <= MAX_ARGV_BYTES + 8);
    }
}
