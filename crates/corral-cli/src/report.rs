//! The `--report` JSON object. Its fields are stable; see README "Report".

use corral::Outcome;
use serde_json::{json, Value};

pub struct Report(Value);

impl Report {
    pub fn from_outcome(o: &Outcome) -> Report {
        let u = &o.usage;
        Report(json!({
            "reason": o.reason.as_str(),
            "exit_code": o.status.code,
            "signal": o.status.signal,
            "duration_ms": o.duration.as_millis() as u64,
            "cpu_user_ms": u.cpu_user.as_millis() as u64,
            "cpu_system_ms": u.cpu_system.as_millis() as u64,
            "peak_memory_bytes": u.peak_memory,
            "processes_total": u.processes_total,
            "leftover": o.leftover,
            "backend": o.backend.as_str(),
            "spawn": o.spawn.as_str(),
        }))
    }

    /// Writes one line of JSON to `path`, or to stdout for `-`.
    pub fn write(&self, path: &str) -> std::io::Result<()> {
        let line = format!("{}\n", self.0);
        if path == "-" {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(line.as_bytes())?;
            out.flush()
        } else {
            std::fs::write(path, line)
        }
    }
}
