//! `late-escape TRIGGER SECS`: a process that escapes its process group
//! only when told, for tests of what a holder sees after it took a tree.
//!
//! It prints `ready <pid>`, then waits for the file TRIGGER to exist; then
//! it starts a child that calls setsid (a sleeper that lives until the same
//! deadline), prints `escaped <pid>` and lingers. Everything ends by itself
//! SECS (at most 120) after the start, triggered or not.

use crate::sys;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest a late-escape tree may live.
const MAX_LIFE: Duration = Duration::from_secs(120);

pub fn dispatch(args: &[String]) -> Option<i32> {
    corral_testkit::run_mode(args, "late-escape", run)
}

fn run(args: &[String]) -> Result<(), String> {
    let [trigger, secs] = args else { return Err("usage: late-escape TRIGGER SECS".into()) };
    let life = secs.parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok());
    let life = life.ok_or_else(|| format!("SECS: expected seconds, got {secs:?}"))?.min(MAX_LIFE);
    let deadline = Instant::now() + life;
    say(&format!("ready {}", std::process::id()))?;
    while !Path::new(trigger).exists() {
        if Instant::now() >= deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let left = deadline.saturating_duration_since(Instant::now());
    let mut cmd = Command::new(exe);
    cmd.args(["--role", "sleeper", "--sleep", &format!("{:.3}", left.as_secs_f64())])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    sys::escape(&mut cmd);
    let mut kid = cmd.spawn().map_err(|e| format!("spawning the escapee: {e}"))?;
    // The sleeper reports once it runs, after its setsid.
    let mut line = String::new();
    let pipe = kid.stdout.take().ok_or("the escapee has no report pipe")?;
    BufReader::new(pipe).read_line(&mut line).map_err(|e| format!("the escapee's report: {e}"))?;
    say(&format!("escaped {}", kid.id()))?;
    drop(kid);
    sys::linger(deadline);
    Ok(())
}

fn say(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| format!("stdout: {e}"))
}
