//! journald's native protocol: one datagram per line to its socket
//! (`/run/systemd/journal/socket` unless `logs.journald.socket` says),
//! made of `KEY=value\n` fields, or for a value that holds a newline the
//! binary-safe form `KEY\n` + its length as 64-bit little-endian + the
//! value + `\n`.
//!
//! Fields: `MESSAGE`, `PRIORITY` (6 stdout, 4 stderr), `SYSLOG_IDENTIFIER`
//! (the service), `SYSLOG_PID` (the leader, when known), `CORRAL_SERVICE`,
//! `CORRAL_INSTANCE`, `CORRAL_STREAM` (`stdout`/`stderr`) and `CORRAL_TS`
//! (when corral read the line). journald stamps `_PID`, `_UID` itself
//! (the daemon's).
//!
//! A line is at most 16 KiB (longer ones come in pieces), so a datagram
//! stays far below the socket's limit and journald's memfd route for big
//! entries is never needed: a datagram over [`MAX_DATAGRAM`] is refused
//! (counted as a drop) rather than sent another way.

use super::{severity, Origin};
use crate::logs::LogLine;
use std::io;
use std::path::PathBuf;
use tokio::net::UnixDatagram;

/// The largest datagram sent.
pub const MAX_DATAGRAM: usize = 64 * 1024;

pub(super) struct Journald {
    path: PathBuf,
    origin: Origin,
    sock: Option<UnixDatagram>,
}

impl Journald {
    pub(super) fn new(path: PathBuf, origin: Origin) -> Journald {
        Journald { path, origin, sock: None }
    }

    pub(super) async fn send(&mut self, line: &LogLine) -> io::Result<()> {
        let dgram = encode(line, &self.origin);
        if dgram.len() > MAX_DATAGRAM {
            return Err(io::Error::other(format!("an entry of {} bytes is over {MAX_DATAGRAM}", dgram.len())));
        }
        if self.sock.is_none() {
            self.sock = Some(UnixDatagram::unbound()?);
        }
        let Some(sock) = &self.sock else { return Ok(()) };
        let sent = sock.send_to(&dgram, &self.path).await?;
        if sent != dgram.len() {
            return Err(io::Error::other("the entry was cut"));
        }
        Ok(())
    }

    pub(super) fn reset(&mut self) {
        self.sock = None;
    }
}

/// One entry's datagram.
pub(super) fn encode(line: &LogLine, origin: &Origin) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.bytes.len() + 256);
    field(&mut out, "MESSAGE", &line.bytes);
    field(&mut out, "PRIORITY", severity(line.stream).to_string().as_bytes());
    field(&mut out, "SYSLOG_IDENTIFIER", origin.service.as_bytes());
    if let Some(pid) = line.pid {
        field(&mut out, "SYSLOG_PID", pid.to_string().as_bytes());
    }
    field(&mut out, "CORRAL_SERVICE", origin.service.as_bytes());
    field(&mut out, "CORRAL_INSTANCE", origin.instance.to_string().as_bytes());
    field(&mut out, "CORRAL_STREAM", line.stream.name().as_bytes());
    field(&mut out, "CORRAL_TS", line.ts.as_bytes());
    out
}

fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Stream;

    #[test]
    fn fields_are_plain_unless_the_value_holds_a_newline() {
        let origin = Origin { service: "web".into(), instance: 2 };
        let line = LogLine {
            ts: "2026-01-02T03:04:05.678Z".into(),
            stream: Stream::Err,
            continued: false,
            pid: Some(42),
            bytes: b"two\nlines".to_vec(),
        };
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        want.extend_from_slice(b"PRIORITY=4\nSYSLOG_IDENTIFIER=web\nSYSLOG_PID=42\nCORRAL_SERVICE=web\n");
        want.extend_from_slice(b"CORRAL_INSTANCE=2\nCORRAL_STREAM=stderr\nCORRAL_TS=2026-01-02T03:04:05.678Z\n");
        assert_eq!(encode(&line, &origin), want);
        let plain = LogLine { bytes: b"one \xff line".to_vec(), stream: Stream::Out, pid: None, ..line };
        let got = encode(&plain, &origin);
        assert!(got.starts_with(b"MESSAGE=one \xff line\nPRIORITY=6\nSYSLOG_IDENTIFIER=web\nCORRAL_SERVICE"));
    }
}
