//! `corral daemon restart`: the daemon re-executes itself in place (same
//! pid, the binary now at its path) and keeps every service running; this
//! waits until the new image answers on the same socket.

use super::client_verbs::call;
use super::endpoint::client;
use super::{runtime, Common, FAILED};
use clap::Subcommand;
use std::time::{Duration, Instant};

/// How long the new image may take to answer (it takes every group back
/// first).
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

#[derive(Debug, Subcommand)]
pub enum DaemonCmd {
    /// Re-execute the daemon in place (after an upgrade, say); services keep running, logs lose no line.
    Restart(Common),
}

pub fn main(cmd: DaemonCmd) -> u8 {
    match cmd {
        DaemonCmd::Restart(a) => restart(a),
    }
}

fn restart(a: Common) -> u8 {
    let before = match call(&a, "POST", "/v1/reexec") {
        Ok(r) => r.json()["image"].as_str().unwrap_or_default().to_string(),
        Err(code) => return code,
    };
    let Ok(client) = client(&a) else { return FAILED };
    let rt = runtime();
    let end = Instant::now() + ANSWER_WITHIN;
    while Instant::now() < end {
        // Bounded: a connection caught in the exec must not hold this up.
        let probe = async { tokio::time::timeout(Duration::from_secs(2), client.request("GET", "/v1/daemon")).await };
        if let Ok(Ok(r)) = rt.block_on(probe) {
            let j = r.json();
            let image = j["image"].as_str().unwrap_or_default();
            if !image.is_empty() && image != before {
                println!("corral: the daemon (pid {}) re-executed; its services kept running", j["pid"]);
                return 0;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::exit::error(format!(
        "the daemon did not answer again within {}s after the re-exec; see its log",
        ANSWER_WITHIN.as_secs()
    ));
    FAILED
}
