//! Reads an instance's stdout and stderr until both close, and writes each
//! line with a timestamp and its stream: `<ts> out <text>`.
//!
//! A write that fails (a full disk, a quota, an I/O error) holds the
//! output: capture stops reading, so the pipes fill and the service blocks
//! in `write`, and the write is retried with a growing delay until the
//! disk takes it. What was read before the failure waits in memory (one
//! read's worth per stream) and goes out first, from the exact byte where
//! the file stopped.

use super::hub::Growth;
use super::read_buf::{ReadBuf, PIPES};
use super::ship::Shipper;
use super::stamp::Stamp;
use super::{LineSplitter, LogFormat, LogHub, LogLine, RotatingFile, Stream, MAX_LINE};
use crate::config::LogPolicy;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

/// Who hears that an instance's log is held. Each method is called once
/// per episode, never once per line.
pub trait Stall: Send + Sync {
    /// Writing failed; the output is held from now on.
    fn held(&self, error: &io::Error);
    /// The disk took everything that was held, after `held_for`.
    fn resumed(&self, held_for: Duration);
    /// Capture was stopped while held (the instance stopped, the daemon is
    /// going away): these bytes of output were never written.
    fn lost(&self, bytes: usize, error: &io::Error);
}

/// The first retry comes after this long; each next one waits twice as long.
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// The longest wait between two retries.
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The wait before retry number `attempt` (from 0) of a held write.
fn retry_delay(attempt: u32) -> Duration {
    RETRY_FIRST.saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX)).min(RETRY_MAX)
}

/// One instance's output, as the capture task sees it.
pub struct Source {
    /// The leader's stdout.
    pub stdout: Option<std::process::ChildStdout>,
    /// The leader's stderr.
    pub stderr: Option<std::process::ChildStderr>,
}

/// How each line is written and where else it goes.
pub struct Delivery {
    /// The file's format.
    pub format: LogFormat,
    /// The leader's pid, for JSON lines and shipped ones.
    pub pid: Option<u32>,
    /// The sinks lines are shipped to, if any.
    pub ship: Option<Shipper>,
}

/// Captures until both pipes reach end of file, which happens once every
/// process that held them is gone.
#[allow(clippy::too_many_arguments)]
pub async fn capture(
    src: Source,
    hub: Arc<LogHub>,
    service: String,
    instance: u32,
    label: String,
    policy: LogPolicy,
    stall: Arc<dyn Stall>,
    delivery: Delivery,
) {
    let path = hub.path(&service, instance);
    let growth = hub.signal(&service, instance);
    let mut file = match RotatingFile::open(&path, policy.max_size, policy.keep) {
        Ok(f) => {
            super::hub::opened(&growth, f.size());
            Some(f)
        }
        Err(e) => {
            eprintln!("corral: cannot write {}: {e}; the output of {label} is discarded", path.display());
            None
        }
    };
    let mut out = src.stdout.and_then(|o| tokio::process::ChildStdout::from_std(o).ok());
    let mut err = src.stderr.and_then(|e| tokio::process::ChildStderr::from_std(e).ok());
    let mut obuf = ReadBuf::new(&PIPES);
    let mut ebuf = ReadBuf::new(&PIPES);
    let mut osplit = LineSplitter::new(MAX_LINE);
    let mut esplit = LineSplitter::new(MAX_LINE);
    let mut stamp = Stamp::new();
    let mut w = Writer {
        file: file.as_mut(),
        hub: &hub,
        growth,
        service: &service,
        instance,
        label: &label,
        stall: &*stall,
        held: None,
        echo: Vec::new(),
        prefix: Prefix::default(),
        delivery,
    };
    // A re-exec stops capture between two reads; what is left stays in
    // the pipes for the next image.
    let mut active = hub.handover.begin();
    while out.is_some() || err.is_some() {
        tokio::select! {
            _ = super::handover::asked(&mut active.stop) => {
                // Windows reads in a thread of tokio's: the read in flight
                // is cancelled, and what it already took is written here.
                #[cfg(windows)]
                {
                    if let Some(n) = super::handover::last_read(&mut out, obuf.space()).await {
                        w.chunk(stamp.now(), Stream::Out, &mut osplit, obuf.filled(n, |_| Ok(0)));
                    }
                    if let Some(n) = super::handover::last_read(&mut err, ebuf.space()).await {
                        w.chunk(stamp.now(), Stream::Err, &mut esplit, ebuf.filled(n, |_| Ok(0)));
                    }
                    if let Err(e) = w.publish() {
                        w.hold(e).await;
                    }
                }
                break;
            }
            r = read_some(&mut out, obuf.space()) => match r {
                Some(n) => {
                    let grow = |bytes| out.as_ref().map_or(Ok(0), |p| crate::sys::pipe_size::set(p, bytes));
                    w.chunk(stamp.now(), Stream::Out, &mut osplit, obuf.filled(n, grow))
                }
                None => { w.end(stamp.now(), Stream::Out, &mut osplit); out = None; }
            },
            r = read_some(&mut err, ebuf.space()) => match r {
                Some(n) => {
                    let grow = |bytes| err.as_ref().map_or(Ok(0), |p| crate::sys::pipe_size::set(p, bytes));
                    w.chunk(stamp.now(), Stream::Err, &mut esplit, ebuf.filled(n, grow))
                }
                None => { w.end(stamp.now(), Stream::Err, &mut esplit); err = None; }
            },
        }
        // Nothing more is read until what was read is on disk.
        if let Err(e) = w.publish() {
            w.hold(e).await;
        }
    }
}

/// `Some(n)` for data, `None` at end of file (or on error); pending forever
/// when the pipe is already closed, so `select!` ignores it.
async fn read_some<R: AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    match r {
        Some(r) => match r.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

struct Writer<'a> {
    file: Option<&'a mut RotatingFile>,
    hub: &'a LogHub,
    /// This instance's growth signal, held so that a write tells followers
    /// without looking it up.
    growth: watch::Sender<Growth>,
    service: &'a str,
    instance: u32,
    label: &'a str,
    stall: &'a dyn Stall,
    /// The error of the hold under way.
    held: Option<io::Error>,
    /// Echoed lines of the current read, printed together in `publish`.
    echo: Vec<u8>,
    /// `<ts> <tag> ` of the current read, in front of each of its lines.
    prefix: Prefix,
    delivery: Delivery,
}

/// The text format's `<ts> <tag> ` for one read: built once, copied in
/// front of each line with the line in one step.
#[derive(Default)]
struct Prefix {
    first: Vec<u8>,
    continued: Vec<u8>,
}

impl Prefix {
    fn set(&mut self, ts: &str, stream: Stream) {
        for (buf, continued) in [(&mut self.first, false), (&mut self.continued, true)] {
            buf.clear();
            buf.extend_from_slice(ts.as_bytes());
            buf.push(b' ');
            buf.extend_from_slice(stream.tag(continued).as_bytes());
            buf.push(b' ');
        }
    }

    fn of(&self, continued: bool) -> &[u8] {
        if continued {
            &self.continued
        } else {
            &self.first
        }
    }
}

impl Writer<'_> {
    /// The lines of one read. They share one timestamp: they arrived
    /// together.
    fn chunk(&mut self, ts: &str, stream: Stream, split: &mut LineSplitter, mut data: &[u8]) {
        self.prefix.set(ts, stream);
        if self.plain() && !split.is_idle() {
            // The line the last read left unfinished ends at this read's
            // first newline; the splitter ends it, and the rest of the read
            // can take the fast path.
            if let Some(nl) = memchr::memchr(b'\n', data) {
                split.push(&data[..=nl], &mut |piece, continued| self.line(ts, stream, piece, continued));
                data = &data[nl + 1..];
            }
        }
        if self.plain() && split.is_idle() {
            if let Some(f) = self.file.as_mut() {
                let prefix = self.prefix.of(false);
                let n = f.queue_whole(|queue, room| super::batch::prefixed_lines(data, prefix, MAX_LINE, room, queue));
                data = &data[n..];
            }
        }
        split.push(data, &mut |piece, continued| self.line(ts, stream, piece, continued));
    }

    /// Lines go to the text file alone: nothing else needs them one by
    /// one, so whole lines take the fast path (`batch`).
    fn plain(&self) -> bool {
        self.delivery.format == LogFormat::Text && self.delivery.ship.is_none() && self.hub.echo().is_none()
    }

    fn end(&mut self, ts: &str, stream: Stream, split: &mut LineSplitter) {
        self.prefix.set(ts, stream);
        split.finish(&mut |piece, continued| self.line(ts, stream, piece, continued));
    }

    fn line(&mut self, ts: &str, stream: Stream, piece: &[u8], continued: bool) {
        let record = (self.delivery.format == LogFormat::Json || self.delivery.ship.is_some()).then(|| {
            let pid = self.delivery.pid;
            Arc::new(LogLine { ts: ts.to_string(), stream, continued, pid, bytes: piece.to_vec() })
        });
        if let Some(f) = self.file.as_mut() {
            match (&record, self.delivery.format) {
                (Some(r), LogFormat::Json) => f.write_parts(&[r.to_json(self.service, self.instance).as_bytes()]),
                _ => f.write_parts(&[self.prefix.of(continued), piece]),
            }
        }
        if let (Some(ship), Some(r)) = (&self.delivery.ship, &record) {
            ship.ship(r);
        }
        if let Some(echo) = self.hub.echo() {
            echo.format(&mut self.echo, self.label, piece);
        }
    }

    /// Echoes the lines read, writes them to the file and tells followers
    /// what the file took, even when it took only part of them.
    fn publish(&mut self) -> io::Result<()> {
        if let Some(echo) = self.hub.echo() {
            echo.flush(&mut self.echo);
        }
        let Some(f) = self.file.as_mut() else { return Ok(()) };
        let (written, rotations) = (f.written(), f.rotations());
        let r = f.flush();
        super::hub::grew(&self.growth, f.written() - written, f.rotations() - rotations, f.size());
        r
    }

    /// Retries the write until the disk takes it; tells `stall` once when
    /// the hold begins and once when it ends.
    async fn hold(&mut self, error: io::Error) {
        self.stall.held(&error);
        self.held = Some(error);
        let since = Instant::now();
        let mut attempt = 0;
        loop {
            tokio::time::sleep(retry_delay(attempt)).await;
            attempt = attempt.saturating_add(1);
            match self.publish() {
                Ok(()) => break,
                Err(e) => self.held = Some(e),
            }
        }
        self.held = None;
        self.stall.resumed(since.elapsed());
    }
}

/// A capture dropped while held (the instance stopped, or the daemon is
/// going away) says how much output it never wrote.
impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let queued = self.file.as_ref().map_or(0, |f| f.pending());
        if let (Some(e), true) = (&self.held, queued > 0) {
            self.stall.lost(queued, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_50ms_doubling_up_to_2s() {
        let waits: Vec<u64> = (0..9).map(|a| retry_delay(a).as_millis() as u64).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX, "no overflow however long the hold");
    }
}
