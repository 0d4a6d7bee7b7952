//! Exit codes, as GNU `timeout` has them, and one-line error reporting.

use std::process::ExitCode;

/// corral itself failed (bad input, no permission, OS error).
pub const FAILURE: u8 = 125;
/// The command was found but could not be executed.
pub const NOT_EXECUTABLE: u8 = 126;
/// The command was not found.
pub const NOT_FOUND: u8 = 127;
/// The wall-clock timeout ran out.
pub const TIMEOUT: u8 = 124;

/// Prints `corral: <message>` on one line.
pub fn error(msg: impl std::fmt::Display) {
    eprintln!("corral: {msg}");
}

/// Maps a clap parse failure: help and version exit 0; anything else is
/// one line on stderr and exit 125 (`corral run` owns 1..=124 and 126+).
pub fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let text = e.to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("Usage:"));
            let mut first = lines.next().unwrap_or("invalid arguments").trim_start_matches("error: ").to_string();
            // clap puts the missing argument on the next line.
            if first.ends_with(':') {
                if let Some(next) = lines.next() {
                    first = format!("{first} {next}");
                }
            }
            eprintln!("corral: {first} (see `corral --help`)");
            ExitCode::from(FAILURE)
        }
    }
}

/// Writes `text` to stdout. A closed pipe (`corral tree | head`) is a normal
/// end, not an error; any other write failure is corral's failure.
pub fn print(text: &str) -> u8 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            error(format!("cannot write to stdout: {e}"));
            FAILURE
        }
    }
}
