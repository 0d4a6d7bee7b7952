//! Every state transition becomes one event: a JSON line in
//! `state_dir/events.jsonl`, and a message to live subscribers (SSE).

use crate::state::{LastExit, State};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// One transition of one instance.
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
}

/// The event log and its live subscribers.
pub struct EventLog {
    file: Mutex<File>,
    tx: broadcast::Sender<Event>,
}

impl EventLog {
    /// Appends to `path`, creating it.
    pub fn open(path: &Path) -> std::io::Result<EventLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, _) = broadcast::channel(4096);
        Ok(EventLog { file: Mutex::new(file), tx })
    }

    /// Writes the event (one `write` per line, so lines never interleave)
    /// and hands it to subscribers.
    pub fn emit(&self, event: Event) {
        if let Ok(mut line) = serde_json::to_vec(&event) {
            line.push(b'\n');
            let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
            let _ = f.write_all(&line);
        }
        let _ = self.tx.send(event);
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
