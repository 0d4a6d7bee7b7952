//! `log = "regex"`: passed once the instance has printed a matching line
//! in the current run. One reader per run follows the instance's log
//! (started before the spawn, so no line can slip past) and raises a flag
//! per pattern; the checks only look at the flags.

use crate::logs::Follower;
use regex::Regex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The flags of one run's log patterns. Dropping it stops the reader.
pub(crate) struct LogMatch {
    patterns: Vec<(String, watch::Receiver<bool>)>,
    task: Option<JoinHandle<()>>,
}

impl LogMatch {
    /// Follows `follower` until every pattern has matched.
    pub fn start(follower: Follower, patterns: Vec<String>) -> LogMatch {
        let mut compiled = Vec::new();
        let mut flags = Vec::new();
        for p in patterns {
            // Patterns were compiled at load; one that does not compile
            // here simply never matches.
            let (tx, rx) = watch::channel(false);
            if let Ok(re) = Regex::new(&p) {
                compiled.push((re, tx));
            }
            flags.push((p, rx));
        }
        let task = tokio::spawn(follow(follower, compiled));
        LogMatch { patterns: flags, task: Some(task) }
    }

    /// Passed if `pattern` has matched, waiting at most `timeout` for it.
    pub async fn check(&self, pattern: &str, timeout: Duration) -> Result<String, String> {
        let Some((_, rx)) = self.patterns.iter().find(|(p, _)| p == pattern) else {
            return Err(format!("no reader for /{pattern}/"));
        };
        let mut rx = rx.clone();
        let matched = tokio::time::timeout(timeout, rx.wait_for(|m| *m)).await.is_ok_and(|r| r.is_ok());
        if matched {
            Ok(format!("printed a line matching /{pattern}/"))
        } else {
            Err(format!("no line matching /{pattern}/ yet"))
        }
    }
}

impl Drop for LogMatch {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn follow(mut follower: Follower, mut pending: Vec<(Regex, watch::Sender<bool>)>) {
    while !pending.is_empty() {
        let Some(batch) = follower.next().await else { return };
        for line in &batch.lines {
            let text = crate::logs::text_of(line);
            pending.retain(|(re, tx)| {
                if re.is_match(&text) {
                    let _ = tx.send(true);
                    false
                } else {
                    true
                }
            });
        }
    }
}
