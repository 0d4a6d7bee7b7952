//! Where a service's lines go besides the rotation policy: the file's
//! format, and the sinks they are shipped to (`logs.journald`,
//! `logs.syslog`, `logs.eventlog`). Plain data, checked by the config.

use super::LogFormat;
use std::path::PathBuf;

/// `logs = { format, journald, syslog, eventlog }` of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOutput {
    /// The format of the instance files (default `[daemon] logs.format`,
    /// else text).
    pub format: LogFormat,
    /// journald's native socket, when lines are shipped there.
    pub journald: Option<PathBuf>,
    /// A syslog receiver, when lines are shipped there.
    pub syslog: Option<SyslogTarget>,
    /// Windows: lines go to the Event Log, source `corral`.
    pub eventlog: bool,
}

impl LogOutput {
    /// The default journald socket.
    pub const JOURNALD_SOCKET: &'static str = "/run/systemd/journal/socket";

    /// True when lines are shipped anywhere.
    pub fn ships(&self) -> bool {
        self.journald.is_some() || self.syslog.is_some() || self.eventlog
    }
}

/// `syslog = { address, facility, app_name }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    /// Where the receiver listens.
    pub address: SyslogAddress,
    /// The facility's code (RFC 5424 table 1: `daemon` is 3).
    pub facility: u8,
    /// APP-NAME (default the service's name), at most 48 visible ASCII
    /// characters.
    pub app_name: String,
}

/// A syslog receiver's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogAddress {
    /// `unix:/dev/log`: datagrams on a local socket.
    Unix(PathBuf),
    /// `udp://host:port`: one datagram per line.
    Udp(String),
    /// `tcp://host:port`: a stream, octet-counted (RFC 6587 3.4.1).
    Tcp(String),
}

impl SyslogAddress {
    /// Reads `unix:PATH`, `udp://HOST:PORT` or `tcp://HOST:PORT`.
    pub fn parse(s: &str) -> Result<SyslogAddress, String> {
        let hostport = |rest: &str| {
            crate::health::validate::tcp_addr(rest)
                .map(|_| rest.to_string())
                .map_err(|e| format!("syslog address: {e}"))
        };
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("syslog address `unix:` names no socket, like \"unix:/dev/log\"".into());
            }
            return Ok(SyslogAddress::Unix(path.into()));
        }
        if let Some(rest) = s.strip_prefix("udp://") {
            return hostport(rest).map(SyslogAddress::Udp);
        }
        if let Some(rest) = s.strip_prefix("tcp://") {
            return hostport(rest).map(SyslogAddress::Tcp);
        }
        Err(format!("syslog address `{s}` is not unix:PATH, udp://HOST:PORT or tcp://HOST:PORT"))
    }

    /// The transport's name, for metrics and events.
    pub fn scheme(&self) -> &'static str {
        match self {
            SyslogAddress::Unix(_) => "unix",
            SyslogAddress::Udp(_) => "udp",
            SyslogAddress::Tcp(_) => "tcp",
        }
    }
}

/// The facilities of RFC 5424 by name, with their codes.
pub const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The longest APP-NAME RFC 5424 allows.
pub const MAX_APP_NAME: usize = 48;

/// An APP-NAME: 1 to 48 visible ASCII characters.
pub fn valid_app_name(s: &str) -> bool {
    (1..=MAX_APP_NAME).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_addresses() {
        assert_eq!(SyslogAddress::parse("unix:/dev/log").unwrap(), SyslogAddress::Unix("/dev/log".into()));
        assert_eq!(SyslogAddress::parse("udp://127.0.0.1:514").unwrap(), SyslogAddress::Udp("127.0.0.1:514".into()));
        assert_eq!(SyslogAddress::parse("tcp://[::1]:601").unwrap(), SyslogAddress::Tcp("[::1]:601".into()));
        assert!(SyslogAddress::parse("tcp://127.0.0.1").unwrap_err().contains("host:port"));
        assert!(SyslogAddress::parse("udp://127.0.0.1:0").is_err());
        assert!(SyslogAddress::parse("/dev/log").unwrap_err().contains("unix:PATH"));
        assert!(SyslogAddress::parse("unix:").is_err());
    }

    #[test]
    fn app_names() {
        assert!(valid_app_name("web-1.api"));
        assert!(!valid_app_name(""));
        assert!(!valid_app_name("a b"));
        assert!(!valid_app_name(&"a".repeat(49)));
    }
}
