//! syslog, RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
//! [corral@32473 service="…" instance="…"] MSG`, over a local datagram
//! socket (`unix:/dev/log`), UDP (one message per datagram, RFC 5426) or
//! TCP with octet-counting framing (`LEN SP MSG`, RFC 6587 3.4.1).
//!
//! PRI is facility × 8 + severity (6 stdout, 4 stderr); TIMESTAMP is when
//! corral read the line; PROCID the leader's pid (`-` when unknown); MSGID
//! `stdout` or `stderr`. The structured data's id uses 32473, the
//! enterprise number RFC 5612 reserves for documentation: corral has no
//! number of its own. MSG is the line's bytes as they came, without a BOM
//! (RFC 5424 allows any octets there; a BOM would mark them UTF-8, which
//! they may not be).

use super::{severity, Origin};
use crate::logs::output::{SyslogAddress, SyslogTarget};
use crate::logs::LogLine;
use std::io;
use tokio::io::AsyncWriteExt;

pub(super) struct Syslog {
    target: SyslogTarget,
    origin: Origin,
    hostname: String,
    conn: Option<Conn>,
}

enum Conn {
    #[cfg(unix)]
    Unix(tokio::net::UnixDatagram),
    Udp(tokio::net::UdpSocket),
    Tcp(tokio::net::TcpStream),
}

impl Syslog {
    pub(super) fn new(target: SyslogTarget, origin: Origin) -> Syslog {
        let hostname = crate::config::host_name().map_or_else(|| "-".to_string(), |h| header_word(&h, 255));
        Syslog { target, origin, hostname, conn: None }
    }

    pub(super) fn scheme(&self) -> &'static str {
        self.target.address.scheme()
    }

    pub(super) async fn send(&mut self, line: &LogLine) -> io::Result<()> {
        let msg = format_message(line, &self.target, &self.hostname, &self.origin);
        if self.conn.is_none() {
            self.conn = Some(connect(&self.target.address).await?);
        }
        match &mut self.conn {
            #[cfg(unix)]
            Some(Conn::Unix(s)) => s.send(&msg).await.map(drop),
            Some(Conn::Udp(s)) => s.send(&msg).await.map(drop),
            Some(Conn::Tcp(s)) => {
                let mut framed = format!("{} ", msg.len()).into_bytes();
                framed.extend_from_slice(&msg);
                s.write_all(&framed).await
            }
            None => Ok(()),
        }
    }

    pub(super) fn reset(&mut self) {
        self.conn = None;
    }
}

async fn connect(a: &SyslogAddress) -> io::Result<Conn> {
    Ok(match a {
        #[cfg(unix)]
        SyslogAddress::Unix(path) => {
            let s = tokio::net::UnixDatagram::unbound()?;
            s.connect(path)?;
            Conn::Unix(s)
        }
        #[cfg(not(unix))]
        SyslogAddress::Unix(_) => return Err(io::Error::other("unix: syslog sockets are Unix only")),
        SyslogAddress::Udp(hostport) => {
            let target = tokio::net::lookup_host(hostport.as_str())
                .await?
                .next()
                .ok_or_else(|| io::Error::other(format!("{hostport} has no address")))?;
            let local: std::net::SocketAddr =
                if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
            let s = tokio::net::UdpSocket::bind(local).await?;
            s.connect(target).await?;
            Conn::Udp(s)
        }
        SyslogAddress::Tcp(hostport) => {
            let s = tokio::net::TcpStream::connect(hostport.as_str()).await?;
            let _ = s.set_nodelay(true);
            Conn::Tcp(s)
        }
    })
}

/// A header field: visible ASCII only (RFC 5424 PRINTUSASCII), at most
/// `max` characters, `-` when nothing is left.
fn header_word(s: &str, max: usize) -> String {
    let w: String = s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if w.is_empty() {
        "-".into()
    } else {
        w
    }
}

/// A structured-data parameter value: `"`, `\` and `]` escaped.
fn param(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One RFC 5424 message, without framing.
pub(super) fn format_message(line: &LogLine, t: &SyslogTarget, hostname: &str, origin: &Origin) -> Vec<u8> {
    let pri = u16::from(t.facility) * 8 + u16::from(severity(line.stream));
    let procid = line.pid.map_or_else(|| "-".to_string(), |p| p.to_string());
    let head = format!(
        "<{pri}>1 {} {hostname} {} {procid} {} [corral@32473 service=\"{}\" instance=\"{}\"] ",
        line.ts,
        header_word(&t.app_name, 48),
        line.stream.name(),
        param(&origin.service),
        origin.instance,
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(&line.bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Stream;

    #[test]
    fn messages_follow_rfc_5424() {
        let t =
            SyslogTarget { address: SyslogAddress::Udp("127.0.0.1:514".into()), facility: 19, app_name: "web".into() };
        let origin = Origin { service: "we\"b]".into(), instance: 1 };
        let line = LogLine {
            ts: "2026-01-02T03:04:05.678Z".into(),
            stream: Stream::Err,
            continued: false,
            pid: Some(42),
            bytes: b"disk \xff full".to_vec(),
        };
        let m = format_message(&line, &t, "host1", &origin);
        let want: &[u8] = b"<156>1 2026-01-02T03:04:05.678Z host1 web 42 stderr [corral@32473 service=\"we\\\"b\\]\" instance=\"1\"] disk \xff full";
        assert_eq!(m, want);
        let out = LogLine { stream: Stream::Out, pid: None, ..line };
        let m = String::from_utf8_lossy(&format_message(&out, &t, "host1", &origin)).into_owned();
        assert!(m.starts_with("<158>1 2026-01-02T03:04:05.678Z host1 web - stdout "), "{m}");
        assert_eq!(header_word("a b\tc", 255), "abc");
        assert_eq!(header_word(" ", 255), "-");
    }
}
