//! One sd_notify datagram, as systemd's `sd_notify(3)` defines it:
//! newline-separated `KEY=VALUE` assignments. Pure: bytes in, fields out.
//!
//! Unknown keys (`FDSTORE=1`, `ERRNO=`, `BUSERROR=`, `X_…`) are ignored,
//! as systemd ignores what it does not know; a known key with a value
//! that does not parse is dropped alone, never the whole datagram.

/// The longest `STATUS=` kept, in bytes (the rest is cut at a character
/// boundary): it is shown in `corral status` and held per instance.
pub const MAX_STATUS: usize = 512;

/// One assignment corral acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `READY=1`: startup (or a reload) is finished.
    Ready,
    /// `RELOADING=1`: reloading its configuration; not ready until `READY=1`.
    Reloading,
    /// `STOPPING=1`: shutting down; not ready any more.
    Stopping,
    /// `STATUS=…`: a line for people.
    Status(String),
    /// `MAINPID=N`: the service's main process is now N.
    MainPid(u32),
    /// `WATCHDOG=1`: alive; the watchdog timer starts over.
    Watchdog,
    /// `WATCHDOG=trigger`: fail now, as if the watchdog had run out.
    WatchdogTrigger,
    /// `WATCHDOG_USEC=N`: a new watchdog period (0 is ignored).
    WatchdogUsec(u64),
    /// `EXTEND_TIMEOUT_USEC=N`: the start timeout runs out no sooner than N
    /// microseconds from now.
    ExtendTimeoutUsec(u64),
}

/// The fields of one datagram, in order. Invalid UTF-8 is read lossily:
/// the keys are ASCII and a status is for display only.
pub fn parse(datagram: &[u8]) -> Vec<Field> {
    let text = String::from_utf8_lossy(datagram);
    text.split('\n').filter_map(field).collect()
}

fn field(line: &str) -> Option<Field> {
    let (key, value) = line.split_once('=')?;
    let usec = || value.parse::<u64>().ok();
    match key {
        "READY" if value == "1" => Some(Field::Ready),
        "RELOADING" if value == "1" => Some(Field::Reloading),
        "STOPPING" if value == "1" => Some(Field::Stopping),
        "STATUS" => Some(Field::Status(cut(value, MAX_STATUS).to_string())),
        "MAINPID" => value.parse::<u32>().ok().filter(|p| *p > 0).map(Field::MainPid),
        "WATCHDOG" if value == "1" => Some(Field::Watchdog),
        "WATCHDOG" if value == "trigger" => Some(Field::WatchdogTrigger),
        "WATCHDOG_USEC" => usec().filter(|u| *u > 0).map(Field::WatchdogUsec),
        "EXTEND_TIMEOUT_USEC" => usec().map(Field::ExtendTimeoutUsec),
        _ => None,
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_assignment_is_read_in_order() {
        let got = parse(
            b"READY=1\nSTATUS=serving 3 clients\nMAINPID=42\nWATCHDOG=1\nWATCHDOG_USEC=5000000\nEXTEND_TIMEOUT_USEC=20000000\nRELOADING=1\nSTOPPING=1\nWATCHDOG=trigger",
        );
        assert_eq!(
            got,
            vec![
                Field::Ready,
                Field::Status("serving 3 clients".into()),
                Field::MainPid(42),
                Field::Watchdog,
                Field::WatchdogUsec(5_000_000),
                Field::ExtendTimeoutUsec(20_000_000),
                Field::Reloading,
                Field::Stopping,
                Field::WatchdogTrigger,
            ]
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_dropped_alone() {
        let got =
            parse(b"FDSTORE=1\nREADY=0\nMAINPID=abc\nMAINPID=0\nWATCHDOG_USEC=0\nX_CUSTOM=1\nnoequals\nREADY=1\n");
        assert_eq!(got, vec![Field::Ready]);
    }

    #[test]
    fn a_status_may_hold_equals_signs_and_is_cut_to_its_bound() {
        assert_eq!(parse(b"STATUS=a=b"), vec![Field::Status("a=b".into())]);
        assert_eq!(parse(b"STATUS="), vec![Field::Status(String::new())]);
        let long = format!("STATUS={}", "é".repeat(MAX_STATUS));
        match &parse(long.as_bytes())[0] {
            Field::Status(s) => assert!(s.len() <= MAX_STATUS && s.len() >= MAX_STATUS - 1 && s.starts_with('é')),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_utf8_does_not_lose_the_valid_fields() {
        assert_eq!(parse(b"STATUS=\xff\xfe\nREADY=1"), vec![Field::Status("\u{fffd}\u{fffd}".into()), Field::Ready]);
    }
}
