//! Reads an instance's stdout and stderr until both close, and writes each
//! line with a timestamp and its stream: `<ts> out <text>`.

use super::{LineSplitter, LogHub, RotatingFile, Stream, MAX_LINE};
use crate::config::LogPolicy;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};

/// One instance's output, as the capture task sees it.
pub struct Source {
    /// The leader's stdout.
    pub stdout: Option<std::process::ChildStdout>,
    /// The leader's stderr.
    pub stderr: Option<std::process::ChildStderr>,
}

/// Captures until both pipes reach end of file, which happens once every
/// process that held them is gone.
pub async fn capture(src: Source, hub: Arc<LogHub>, service: String, instance: u32, label: String, policy: LogPolicy) {
    let path = hub.path(&service, instance);
    let mut file = match RotatingFile::open(&path, policy.max_size, policy.keep) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("corral: cannot write {}: {e}; the output of {label} is discarded", path.display());
            None
        }
    };
    let mut out = src.stdout.and_then(|o| tokio::process::ChildStdout::from_std(o).ok());
    let mut err = src.stderr.and_then(|e| tokio::process::ChildStderr::from_std(e).ok());
    let mut obuf = ReadBuf::new();
    let mut ebuf = ReadBuf::new();
    let mut osplit = LineSplitter::new(MAX_LINE);
    let mut esplit = LineSplitter::new(MAX_LINE);
    let mut w = Writer { file: file.as_mut(), hub: &hub, service: &service, instance, label: &label, echo: Vec::new() };
    while out.is_some() || err.is_some() {
        tokio::select! {
            r = read_some(&mut out, obuf.space()) => match r {
                Some(n) => w.chunk(Stream::Out, &mut osplit, obuf.filled(n)),
                None => { w.end(Stream::Out, &mut osplit); out = None; }
            },
            r = read_some(&mut err, ebuf.space()) => match r {
                Some(n) => w.chunk(Stream::Err, &mut esplit, ebuf.filled(n)),
                None => { w.end(Stream::Err, &mut esplit); err = None; }
            },
        }
    }
}

/// A read buffer that starts small and doubles, up to a pipe's whole
/// capacity, each time a read fills it: a quiet service costs 4 KiB per
/// stream instead of 64 KiB (100 services: about 2 MiB of the daemon's
/// RSS), while a chatty one soon empties the pipe in one read.
struct ReadBuf(Vec<u8>);

impl ReadBuf {
    const MIN: usize = 4 * 1024;
    const MAX: usize = 64 * 1024;

    fn new() -> Self {
        ReadBuf(vec![0; Self::MIN])
    }

    fn space(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// The `n` bytes just read; grows the buffer for the next read when
    /// this one filled it.
    fn filled(&mut self, n: usize) -> &[u8] {
        if n == self.0.len() && n < Self::MAX {
            let bigger = (n * 2).min(Self::MAX);
            // Only the new tail is zeroed; the data stays in front.
            self.0.resize(bigger, 0);
        }
        &self.0[..n]
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
    service: &'a str,
    instance: u32,
    label: &'a str,
    /// Echoed lines of the current read, printed together in `publish`.
    echo: Vec<u8>,
}

impl Writer<'_> {
    fn chunk(&mut self, stream: Stream, split: &mut LineSplitter, data: &[u8]) {
        // One timestamp per read: the lines of one chunk arrived together.
        let ts = crate::time::now_rfc3339();
        let (before_size, before_rot) = self.position();
        split.push(data, &mut |piece, continued| self.line(&ts, stream, piece, continued));
        self.publish(before_size, before_rot);
    }

    fn end(&mut self, stream: Stream, split: &mut LineSplitter) {
        let ts = crate::time::now_rfc3339();
        let (before_size, before_rot) = self.position();
        split.finish(&mut |piece, continued| self.line(&ts, stream, piece, continued));
        self.publish(before_size, before_rot);
    }

    fn position(&self) -> (u64, u64) {
        self.file.as_ref().map(|f| (f.size(), f.rotations())).unwrap_or((0, 0))
    }

    fn line(&mut self, ts: &str, stream: Stream, piece: &[u8], continued: bool) {
        let tag = match (stream, continued) {
            (Stream::Out, false) => "out",
            (Stream::Out, true) => "out+",
            (Stream::Err, false) => "err",
            (Stream::Err, true) => "err+",
        };
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.write_parts(&[ts.as_bytes(), b" ", tag.as_bytes(), b" ", piece]) {
                eprintln!("corral: writing the log of {}: {e}", self.label);
            }
        }
        if let Some(echo) = self.hub.echo() {
            echo.format(&mut self.echo, self.label, piece);
        }
    }

    fn publish(&mut self, before_size: u64, before_rot: u64) {
        if let Some(echo) = self.hub.echo() {
            echo.flush(&mut self.echo);
        }
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
            let rotated = f.rotations() - before_rot;
            let bytes = if rotated > 0 { f.size() } else { f.size() - before_size };
            self.hub.grew(self.service, self.instance, bytes, rotated);
        }
    }
}
