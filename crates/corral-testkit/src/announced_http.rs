//! `corral-testkit announced-http PORT FILE NAME [--sleep S]`: the HTTP
//! server of `--http-port` (`GET /health` is 200) on 127.0.0.1:PORT, and
//! then one line `NAME PID` appended to FILE (a FIFO the benchmark reads),
//! so "announced" means "answers probes". It serves from one blocked
//! thread and the main thread sleeps: a hundred of them cost the machine
//! nothing between requests. Ends by itself after `--sleep` (default 60 s).

use std::io::Write;
use std::time::Duration;

const DEFAULT_LIFE: Duration = Duration::from_secs(60);
/// The longest life it accepts: a forgotten server still ends.
const MAX_LIFE: Duration = Duration::from_secs(3600);

/// Runs the mode when the first argument names it; `None` otherwise.
pub fn dispatch(args: &[String]) -> Option<i32> {
    corral_testkit::run_mode(args, "announced-http", run)
}

fn run(args: &[String]) -> Result<(), String> {
    const USAGE: &str = "usage: announced-http PORT FILE NAME [--sleep SECS]";
    let (pos, life) = match args {
        [p, f, n] => ([p, f, n], DEFAULT_LIFE),
        [p, f, n, flag, s] if flag == "--sleep" => {
            let secs: f64 = s.parse().map_err(|_| format!("--sleep {s}: expected seconds; {USAGE}"))?;
            let life = Duration::try_from_secs_f64(secs).map_err(|_| format!("--sleep {s}: expected seconds"))?;
            ([p, f, n], life.min(MAX_LIFE))
        }
        _ => return Err(USAGE.into()),
    };
    let port: u16 = pos[0].parse().map_err(|_| format!("PORT {}: expected 0-65535; {USAGE}", pos[0]))?;
    crate::http::serve(port, None, None, None)?;
    let line = format!("{} {}\n", pos[2], std::process::id());
    // One write of a short line: atomic on a FIFO, whole in a file.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pos[1])
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| format!("announcing on {}: {e}", pos[1]))?;
    std::thread::sleep(life);
    Ok(())
}
