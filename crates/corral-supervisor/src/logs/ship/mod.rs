//! Shipping lines to journald, syslog or the Windows Event Log, each
//! optional (`logs.journald`, `logs.syslog`, `logs.eventlog`).
//!
//! A sink never slows capture down and never grows the daemon's memory:
//! capture hands each line to every sink's queue without waiting, and a
//! queue holds at most [`MAX_QUEUED_LINES`] lines and [`MAX_QUEUED_BYTES`]
//! bytes. A line that does not fit, or that its sink fails to take (absent,
//! refusing, or slower than [`SEND_TIMEOUT`]), is dropped and counted
//! (`corral_log_ship_dropped_total`); the first drop of a streak and the
//! recovery are each one event. After a failure the sink rests for
//! [`RETRY_AFTER`] (its lines are dropped meanwhile) before it connects
//! again. The files stay the complete record.
//!
//! Priorities: stdout lines are `info` (6), stderr lines `warning` (4):
//! many programs write their ordinary diagnostics to stderr, so `err` (3)
//! would cry wolf.

#[cfg(unix)]
mod journald;
mod report;
mod syslog;

use super::{LogLine, LogOutput, Stream};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub(crate) use report::ShipReport;

/// The most lines one sink of one instance holds.
pub const MAX_QUEUED_LINES: usize = 4096;
/// The most bytes one sink of one instance holds.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;
/// One line's send (or connect) that takes longer fails.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a failed sink rests before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// syslog/journald severity of a line.
pub(crate) fn severity(stream: Stream) -> u8 {
    match stream {
        Stream::Out => 6,
        Stream::Err => 4,
    }
}

/// Who a line belongs to, for the fields sinks add.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub service: String,
    pub instance: u32,
}

/// One instance's shipping: a queue per sink, each drained by its task.
/// Dropping it lets the tasks send what is queued and end.
pub struct Shipper {
    queues: Vec<Queue>,
}

struct Queue {
    tx: mpsc::Sender<Arc<LogLine>>,
    bytes: Arc<AtomicUsize>,
    streak: Arc<Streak>,
}

/// What a queued line costs besides its bytes.
const OVERHEAD: usize = 64;

impl Shipper {
    /// Starts a task per sink of `out`; `None` when there is none.
    pub(crate) fn start(out: &LogOutput, origin: Origin, report: Arc<dyn ShipReport>) -> Option<Shipper> {
        let mut sinks: Vec<Sink> = Vec::new();
        #[cfg(unix)]
        if let Some(path) = &out.journald {
            sinks.push(Sink::Journald(journald::Journald::new(path.clone(), origin.clone())));
        }
        if let Some(t) = &out.syslog {
            sinks.push(Sink::Syslog(syslog::Syslog::new(t.clone(), origin.clone())));
        }
        #[cfg(windows)]
        if out.eventlog {
            sinks.push(Sink::EventLog(None, origin.clone()));
        }
        if sinks.is_empty() {
            return None;
        }
        let queues = sinks
            .into_iter()
            .map(|sink| {
                let (tx, rx) = mpsc::channel(MAX_QUEUED_LINES);
                let bytes = Arc::new(AtomicUsize::new(0));
                let streak = Arc::new(Streak { name: sink.name(), report: report.clone(), state: Mutex::default() });
                tokio::spawn(drain(sink, rx, bytes.clone(), streak.clone()));
                Queue { tx, bytes, streak }
            })
            .collect();
        Some(Shipper { queues })
    }

    /// Hands `line` to every sink; never waits.
    pub fn ship(&self, line: &Arc<LogLine>) {
        let cost = line.bytes.len() + OVERHEAD;
        for q in &self.queues {
            let before = q.bytes.fetch_add(cost, Ordering::AcqRel);
            if before + cost > MAX_QUEUED_BYTES || q.tx.try_send(line.clone()).is_err() {
                q.bytes.fetch_sub(cost, Ordering::AcqRel);
                q.streak.dropped("its queue is full: the sink is slower than the service");
            }
        }
    }
}

/// A run of drops, told once when it begins and once when it ends.
struct Streak {
    name: String,
    report: Arc<dyn ShipReport>,
    state: Mutex<(bool, u64)>,
}

impl Streak {
    fn dropped(&self, why: &str) {
        self.report.dropped(&self.name);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 += 1;
        if !s.0 {
            s.0 = true;
            self.report.dropping(&self.name, why);
        }
    }

    fn delivered(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0 {
            self.report.recovered(&self.name, s.1);
            *s = (false, 0);
        }
    }
}

/// One sink's connection, made on first use and after each failure.
enum Sink {
    #[cfg(unix)]
    Journald(journald::Journald),
    Syslog(syslog::Syslog),
    #[cfg(windows)]
    EventLog(Option<crate::sys::eventlog::EventSource>, Origin),
}

impl Sink {
    fn name(&self) -> String {
        match self {
            #[cfg(unix)]
            Sink::Journald(_) => "journald".into(),
            Sink::Syslog(s) => format!("syslog-{}", s.scheme()),
            #[cfg(windows)]
            Sink::EventLog(..) => "eventlog".into(),
        }
    }

    async fn send(&mut self, line: &LogLine) -> io::Result<()> {
        match self {
            #[cfg(unix)]
            Sink::Journald(j) => j.send(line).await,
            Sink::Syslog(s) => s.send(line).await,
            #[cfg(windows)]
            Sink::EventLog(source, origin) => {
                if source.is_none() {
                    *source = Some(crate::sys::eventlog::EventSource::open()?);
                }
                let text = format!("{}.{}: {}", origin.service, origin.instance, String::from_utf8_lossy(&line.bytes));
                source.as_ref().map_or(Ok(()), |s| s.report(&text, line.stream == Stream::Err))
            }
        }
    }

    /// Forgets the connection: the next send makes a new one.
    fn reset(&mut self) {
        match self {
            #[cfg(unix)]
            Sink::Journald(j) => j.reset(),
            Sink::Syslog(s) => s.reset(),
            #[cfg(windows)]
            Sink::EventLog(source, _) => *source = None,
        }
    }
}

async fn drain(mut sink: Sink, mut rx: mpsc::Receiver<Arc<LogLine>>, bytes: Arc<AtomicUsize>, streak: Arc<Streak>) {
    let mut resting_until: Option<Instant> = None;
    while let Some(line) = rx.recv().await {
        bytes.fetch_sub(line.bytes.len() + OVERHEAD, Ordering::AcqRel);
        if resting_until.is_some_and(|t| Instant::now() < t) {
            streak.dropped("the sink failed a moment ago");
            continue;
        }
        let why = match tokio::time::timeout(SEND_TIMEOUT, sink.send(&line)).await {
            Ok(Ok(())) => {
                resting_until = None;
                streak.delivered();
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", SEND_TIMEOUT.as_secs()),
        };
        sink.reset();
        resting_until = Some(Instant::now() + RETRY_AFTER);
        streak.dropped(&why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::output::{SyslogAddress, SyslogTarget};

    #[derive(Default)]
    struct Told(Mutex<Vec<String>>, AtomicUsize);

    impl ShipReport for Told {
        fn dropping(&self, sink: &str, why: &str) {
            self.0.lock().unwrap().push(format!("dropping {sink}: {why}"));
        }
        fn dropped(&self, _sink: &str) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
        fn recovered(&self, sink: &str, dropped: u64) {
            self.0.lock().unwrap().push(format!("recovered {sink} after {dropped}"));
        }
    }

    fn line(i: usize) -> Arc<LogLine> {
        Arc::new(LogLine {
            ts: "2026-01-02T03:04:05.678Z".into(),
            stream: Stream::Out,
            continued: false,
            pid: None,
            bytes: format!("line {i} {}", "x".repeat(1000)).into_bytes(),
        })
    }

    /// A receiver that accepts and never reads: the queue fills, lines are
    /// dropped and counted, and `ship` never waits.
    #[tokio::test]
    async fn a_stuck_sink_costs_bounded_memory_and_never_blocks() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = listener.accept().await {
                conns.push(c);
            }
        });
        let out = LogOutput {
            syslog: Some(SyslogTarget {
                address: SyslogAddress::Tcp(addr.to_string()),
                facility: 3,
                app_name: "t".into(),
            }),
            ..LogOutput::default()
        };
        let told = Arc::new(Told::default());
        let s = Shipper::start(&out, Origin { service: "t".into(), instance: 0 }, told.clone()).unwrap();
        let t0 = Instant::now();
        for i in 0..20_000 {
            s.ship(&line(i));
            assert!(s.queues[0].bytes.load(Ordering::Acquire) <= MAX_QUEUED_BYTES);
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "shipping waited: {:?}", t0.elapsed());
        assert!(told.1.load(Ordering::SeqCst) > 0, "20 MB to a reader that never reads: some were dropped");
        let said = told.0.lock().unwrap().clone();
        assert_eq!(said.len(), 1, "one event for the streak: {said:?}");
        assert!(said[0].starts_with("dropping syslog-tcp: its queue is full"), "{said:?}");
    }

    /// Nothing listens: the line fails, is counted, and the streak is told.
    #[tokio::test]
    async fn an_absent_sink_drops_and_says_so() {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        // A TCP port that refuses: the UDP socket's port, on TCP.
        let out = LogOutput {
            syslog: Some(SyslogTarget {
                address: SyslogAddress::Tcp(addr.to_string()),
                facility: 3,
                app_name: "t".into(),
            }),
            ..LogOutput::default()
        };
        let told = Arc::new(Told::default());
        let s = Shipper::start(&out, Origin { service: "t".into(), instance: 0 }, told.clone()).unwrap();
        s.ship(&line(0));
        let end = Instant::now() + Duration::from_secs(10);
        while told.1.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < end, "the refused line was never counted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let said = told.0.lock().unwrap().clone();
        assert!(said[0].starts_with("dropping syslog-tcp: "), "{said:?}");
    }
}
