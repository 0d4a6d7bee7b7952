//! Every state transition becomes one event: a JSON line in
//! `state_dir/events.jsonl`, and a message to live subscribers (SSE).

use crate::state::{LastExit, State};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
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
        }
    }

    fn is_transition(&self) -> bool {
        *self == EventKind::Transition
    }
}

/// One transition, probe result or alert of one instance.
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
    /// `probe` or `alert`; absent for transitions.
    #[serde(default, skip_serializing_if = "EventKind::is_transition")]
    pub kind: EventKind,
    /// Readiness after this event, when it changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// The probe result, on `probe` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::health::ProbeResult>,
    /// The alert, on `alert` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<crate::alerts::AlertReport>,
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
