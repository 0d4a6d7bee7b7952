//! How a group is stopped: a signal to every member, a grace period, then an
//! inescapable kill.

use std::time::Duration;

/// A Unix signal number. On Windows there are no signals; there a graceful
/// stop sets the group's stop event instead, whatever the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

/// Signal names and numbers that are the same on Linux and macOS.
const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("KILL", 9),
    ("USR1", SIGUSR1),
    ("USR2", SIGUSR2),
    ("ALRM", 14),
    ("TERM", 15),
];

#[cfg(target_os = "macos")]
const SIGUSR1: i32 = 30;
#[cfg(target_os = "macos")]
const SIGUSR2: i32 = 31;
#[cfg(not(target_os = "macos"))]
const SIGUSR1: i32 = 10;
#[cfg(not(target_os = "macos"))]
const SIGUSR2: i32 = 12;

impl Signal {
    /// SIGTERM, the default stop signal.
    pub const TERM: Signal = Signal(15);
    /// SIGKILL.
    pub const KILL: Signal = Signal(9);
    /// SIGINT.
    pub const INT: Signal = Signal(2);
    /// SIGHUP.
    pub const HUP: Signal = Signal(1);

    /// A signal from its number.
    pub fn from_raw(n: i32) -> Signal {
        Signal(n)
    }

    /// The signal number.
    pub fn as_raw(self) -> i32 {
        self.0
    }

    /// The name without `SIG`, like `TERM`, when it has one.
    pub fn name(self) -> Option<&'static str> {
        NAMES.iter().find(|(_, n)| *n == self.0).map(|(s, _)| *s)
    }
}

impl std::str::FromStr for Signal {
    type Err = String;
    /// Accepts `TERM`, `SIGTERM`, `term` or `15`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i32>() {
            if (1..=64).contains(&n) {
                return Ok(Signal(n));
            }
        }
        let up = t.to_ascii_uppercase();
        let name = up.strip_prefix("SIG").unwrap_or(&up);
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, n)| Signal(*n)).ok_or_else(|| {
            format!("invalid signal '{s}': expected a name like TERM, INT, HUP, QUIT, USR1 or a number 1-64")
        })
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "SIG{n}"),
            None => write!(f, "signal {}", self.0),
        }
    }
}

/// The graceful-then-inescapable stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopPolicy {
    /// Sent to every member first (Unix).
    pub signal: Signal,
    /// How long members get to exit before the kill.
    pub grace: Duration,
}

impl Default for StopPolicy {
    /// SIGTERM, then a kill after 10 s (systemd's and `corral run -k`'s default).
    fn default() -> Self {
        StopPolicy { signal: Signal::TERM, grace: Duration::from_secs(10) }
    }
}

impl StopPolicy {
    /// A policy with the given signal and grace period.
    pub fn new(signal: Signal, grace: Duration) -> Self {
        StopPolicy { signal, grace }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!("TERM".parse::<Signal>().unwrap(), Signal::TERM);
        assert_eq!("sigint".parse::<Signal>().unwrap(), Signal::INT);
        assert_eq!("9".parse::<Signal>().unwrap(), Signal::KILL);
        assert!("BOGUS".parse::<Signal>().is_err());
        assert!("0".parse::<Signal>().is_err());
        assert_eq!(Signal::TERM.to_string(), "SIGTERM");
    }
}
