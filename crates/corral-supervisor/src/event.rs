//! Every state transition becomes one event: a JSON line in
//! `state_dir/events.jsonl`, and a message to live subscribers (SSE).

use crate::config::LogPolicy;
use crate::state::{LastExit, State};
use crate::sys::safe_fs::PrivateDir;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use tokio::sync::broadcast;

/// What an event records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A state transition (the field is left out of the JSON).
    #[default]
    Transition,
    /// A probe result worth telling: the first failure of a streak, a
    /// recovery, or a threshold crossed. `from` and `to` are the state it
    /// happened in.
    Probe,
    /// A resource alert fired or cleared. `from` and `to` are the state it
    /// happened in.
    Alert,
    /// A diagnostic snapshot asked for by a client (`corral dump`); an
    /// alert's snapshot is told by its `alert` event.
    Dump,
    /// A reload gave the running instance new probes or alerts; its run
    /// (group, pid) goes on. `from` and `to` are the state it happened in.
    Retuned,
    /// The fleet: desired state applied or refused, the link to etcd lost
    /// or back (`reason` says which). `from` and `to` are `stopped`.
    Fleet,
    /// About the daemon itself, not one instance (an unreadable state
    /// file at start); `service` is empty, `from` and `to` are `stopped`.
    Daemon,
    /// An instance's log could not be written and its output is held
    /// (the service waits in `write`), or it is written again. `from` and
    /// `to` are the state it happened in.
    Log,
    /// A notify-only limit was hit (throttled or refused, nothing killed),
    /// or the limits of the running instance changed (`corral limit`, a
    /// reload). `from` and `to` are the state it happened in.
    Limit,
    /// A schedule's tick: a run started, skipped, queued or replaced, or
    /// a `cron_restart` (`schedule/`). `from` and `to` are `stopped`.
    Schedule,
    /// A watched file changed and the service is restarted or signalled
    /// (`watch_restart.rs`). `from` and `to` are `stopped`.
    Watch,
    /// A hook (`pre_start`, `post_start`, `pre_stop`, `post_stop`) or a
    /// `corral reload-service` ran: the `hook` field says which, how it
    /// ended and how long it took.
    Hook,
}

impl EventKind {
    /// The lower-case name, also the SSE event name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Transition => "transition",
            EventKind::Probe => "probe",
            EventKind::Alert => "alert",
            EventKind::Dump => "dump",
            EventKind::Retuned => "retuned",
            EventKind::Fleet => "fleet",
            EventKind::Daemon => "daemon",
            EventKind::Log => "log",
            EventKind::Limit => "limit",
            EventKind::Schedule => "schedule",
            EventKind::Watch => "watch",
            EventKind::Hook => "hook",
        }
    }

    fn is_transition(&self) -> bool {
        *self == EventKind::Transition
    }
}

/// One transition, probe result or alert of one instance.
///
/// The rare parts are boxed: every slot of the live stream's ring holds
/// an `Event` from the start, and inline they made it 528 bytes (the
/// ring alone about half a MiB of the daemon's memory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When, in RFC 3339 UTC.
    pub ts: String,
    /// When, in milliseconds since the Unix epoch (for arithmetic).
    pub unix_ms: u64,
    /// Service name.
    pub service: String,
    /// Instance index.
    pub instance: u32,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// Why, in a few words (`spawned`, `exit code 1`, `stop requested`, …).
    pub reason: String,
    /// The leader's pid, when a group is alive or just ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How the run ended, on transitions out of `running` or `stopping`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<LastExit>,
    /// `probe`, `alert`, `limit`, …; absent for transitions.
    #[serde(default, skip_serializing_if = "EventKind::is_transition")]
    pub kind: EventKind,
    /// Readiness after this event, when it changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// The probe result, on `probe` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Box<crate::health::ProbeResult>>,
    /// The alert, on `alert` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<Box<crate::alerts::AlertReport>>,
    /// The hook's name, exit and duration, on `hook` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<Box<crate::hooks::HookReport>>,
    /// Who asked, on events a client's request caused (see `api/actor.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Box<crate::api::Actor>>,
}

impl Event {
    /// An event of kind [`EventKind::Daemon`], now.
    pub fn daemon(reason: String) -> Event {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        Event {
            ts: crate::time::format_millis(ms as i64),
            unix_ms: ms as u64,
            service: String::new(),
            instance: 0,
            from: State::Stopped,
            to: State::Stopped,
            reason,
            pid: None,
            exit: None,
            kind: EventKind::Daemon,
            ready: None,
            probe: None,
            alert: None,
            hook: None,
            actor: None,
        }
    }
}

/// The event log and its live subscribers.
pub struct EventLog {
    file: Mutex<Appender>,
    /// The live stream's ring, made by its first subscriber (an API event
    /// stream, the fleet): a daemon nobody streams from holds no ring.
    tx: OnceLock<broadcast::Sender<Event>>,
}

/// `events.jsonl` in its private folder, rotated like the logs:
/// `events.jsonl` → `events.jsonl.1` → … → `.keep`, the oldest removed.
struct Appender {
    dir: PrivateDir,
    file: File,
    /// Bytes of whole lines in the file.
    size: u64,
    policy: LogPolicy,
    /// The last append failed (and was said).
    failing: bool,
}

const NAME: &str = "events.jsonl";

/// Events a stream subscriber may fall behind by before it misses some.
/// Every slot is allocated (192 KiB) with the first subscriber, and a
/// sent event stays in its slot until overwritten: 4096 of them were
/// 2.2 MiB of the daemon's memory. A start of 100 services is some 300
/// events.
const STREAM_SLACK: usize = 1024;

impl EventLog {
    /// Appends to `state_dir/events.jsonl`, creating it, and rotates it by
    /// `policy`. A torn last line (a crash mid-write) is cut off first, so
    /// it cannot swallow the next event; that is said on stderr.
    pub fn open(state_dir: &Path, policy: LogPolicy) -> std::io::Result<EventLog> {
        let dir = PrivateDir::create_or_check(state_dir)?;
        let file = dir.append(NAME)?;
        let size = cut_torn_tail(&dir, &file)?;
        let appender = Appender { dir, file, size, policy, failing: false };
        Ok(EventLog { file: Mutex::new(appender), tx: OnceLock::new() })
    }

    /// Writes the event (one `write` per line, so lines never interleave)
    /// and hands it to subscribers.
    pub fn emit(&self, event: Event) {
        if let Ok(mut line) = serde_json::to_vec(&event) {
            line.push(b'\n');
            let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
            match f.append(&line) {
                Ok(()) => f.failing = false,
                // Said once per streak (a full disk fails every line).
                Err(e) if !f.failing => {
                    f.failing = true;
                    eprintln!(
                        "corral: writing {}: {e}; events are lost until it works",
                        f.dir.path().join(NAME).display()
                    );
                }
                Err(_) => {}
            }
        }
        if let Some(tx) = self.tx.get() {
            let _ = tx.send(event);
        }
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.get_or_init(|| broadcast::channel(STREAM_SLACK).0).subscribe()
    }
}

impl Appender {
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        let len = line.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.policy.max_size {
            self.rotate()?;
        }
        if let Err(e) = self.file.write_all(line) {
            // Half a line written (a full disk) would swallow the next one:
            // cut back to the last whole line.
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.policy.keep;
        let numbered = |n: u32| format!("{NAME}.{n}");
        if keep == 0 {
            self.dir.remove(NAME)?;
        } else {
            self.dir.remove(&numbered(keep))?;
            for i in (1..keep).rev() {
                match self.dir.rename(&numbered(i), &numbered(i + 1)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            self.dir.rename(NAME, &numbered(1))?;
        }
        // Renamed away just now: anything found under the name was planted.
        self.file = self.dir.create_new(NAME)?;
        self.size = 0;
        Ok(())
    }
}

/// The last `n` events as JSON lines, oldest first, read across the
/// current file and up to `keep` rotated ones.
pub(crate) fn recent(state_dir: &Path, n: usize, keep: u32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for i in 0..=keep {
        let want = n - lines.len();
        if want == 0 {
            break;
        }
        let name = if i == 0 { NAME.to_string() } else { format!("{NAME}.{i}") };
        match crate::logs::last_lines(&state_dir.join(name), want) {
            Ok(mut older) => {
                older.append(&mut lines);
                lines = older;
            }
            // No such file: none older either.
            Err(_) => break,
        }
    }
    lines
}

/// Cuts `file` back to its last newline and returns its size then.
fn cut_torn_tail(dir: &PrivateDir, file: &File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    let Some(mut r) = dir.open_read(NAME)? else { return Ok(0) };
    let whole = last_newline(&mut r, len)?.map_or(0, |at| at + 1);
    if whole < len {
        eprintln!(
            "corral: {} ended in a torn line ({} bytes, a crash mid-write); cut off",
            dir.path().join(NAME).display(),
            len - whole
        );
        file.set_len(whole)?;
    }
    Ok(whole)
}

/// The offset of the last `\n` in the first `len` bytes, read backwards in
/// blocks.
fn last_newline(r: &mut File, len: u64) -> std::io::Result<Option<u64>> {
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let step = end.min(block.len() as u64);
        let start = end - step;
        r.seek(SeekFrom::Start(start))?;
        let buf = &mut block[..step as usize];
        r.read_exact(buf)?;
        if let Some(i) = memchr::memrchr(b'\n', buf) {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str) -> Event {
        Event {
            ts: "2024-05-01T12:00:00.000Z".into(),
            unix_ms: 0,
            service: "web".into(),
            instance: 0,
            from: State::Starting,
            to: State::Running,
            reason: reason.into(),
            pid: None,
            exit: None,
            kind: EventKind::Transition,
            ready: None,
            probe: None,
            alert: None,
            hook: None,
            actor: None,
        }
    }

    fn reasons(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Event>(l).unwrap().reason)
            .collect()
    }

    #[tokio::test]
    async fn a_torn_last_line_is_cut_and_the_next_event_stays_whole() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(NAME);
        let whole = serde_json::to_string(&event("first")).unwrap();
        std::fs::write(&path, format!("{whole}\n{{\"ts\":\"2024-05-01T12:")).unwrap();
        let log = EventLog::open(d.path(), LogPolicy::default()).unwrap();
        log.emit(event("second"));
        assert_eq!(reasons(&path), ["first", "second"]);
        // Torn with no newline at all: the file is emptied.
        std::fs::write(&path, "{\"ts\":").unwrap();
        let log = EventLog::open(d.path(), LogPolicy::default()).unwrap();
        log.emit(event("third"));
        assert_eq!(reasons(&path), ["third"]);
    }

    #[tokio::test]
    async fn rotates_by_size_and_keeps_n_files() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(NAME);
        let line = serde_json::to_vec(&event("r000")).unwrap().len() as u64 + 1;
        let log = EventLog::open(d.path(), LogPolicy { max_size: line * 3, keep: 2 }).unwrap();
        for i in 0..10 {
            log.emit(event(&format!("r{i:03}")));
        }
        assert_eq!(reasons(&path), ["r009"]);
        assert_eq!(reasons(&d.path().join("events.jsonl.1")), ["r006", "r007", "r008"]);
        assert_eq!(reasons(&d.path().join("events.jsonl.2")), ["r003", "r004", "r005"]);
        assert!(!d.path().join("events.jsonl.3").exists());
        // What `corral events` reads spans every rotated file.
        let got = |n| -> Vec<String> {
            recent(d.path(), n, 2).iter().map(|l| serde_json::from_str::<Event>(l).unwrap().reason).collect()
        };
        assert_eq!(got(3), ["r007", "r008", "r009"]);
        assert_eq!(got(6), ["r004", "r005", "r006", "r007", "r008", "r009"]);
        assert_eq!(got(100).len(), 7, "all that is kept");
    }
}
