//! The buffer one output stream is read into, sized by the service's pace.
//!
//! It starts at 512 bytes (a quiet service costs little: with 4 KiB per
//! stream, 100 services held 0.8 MiB of the daemon's memory in buffers
//! that never filled; with 64 KiB, 2 MiB more) and doubles each time a
//! read fills it, so a chatty stream reaches 64 KiB within seven reads.
//! A read that fills a whole default pipe (64 KiB) means the service
//! writes faster than it is read: the pipe is then asked to hold 1 MiB,
//! so the service runs ahead instead of blocking in `write` every 64 KiB,
//! and the daemon rarely finds the pipe empty and waits for it; the
//! buffer follows up to 256 KiB ([`READ_MAX`]).
//!
//! Pipes that large are few: the daemon's pipes grown past the default
//! share one [`Budget`] (about eight floods at once), each taken when its
//! pipe grows and given back when the stream ends. That bounds the memory
//! a flood holds (its pipe, this buffer and one read's lines in the write
//! queue) and keeps the daemon's user far below the kernel's per-user pipe
//! limit, past which every new pipe it made would hold one page.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A default Linux pipe's capacity: a read this large emptied a full pipe.
const DEFAULT_PIPE: usize = 64 * 1024;
/// What a flooded pipe is grown to.
const BIG_PIPE: usize = 1024 * 1024;
/// The largest read. Not the whole pipe: a read's bytes and the lines made
/// of them (2.4 × as many for short lines) then stay in the CPU's cache
/// until they are written (1 GiB of 20-byte lines, on the bench machine:
/// about 1.7 s of daemon CPU with 256 KiB reads, 2.3 s with 1 MiB reads,
/// 1.9 s with a default pipe and 64 KiB reads).
const READ_MAX: usize = 256 * 1024;

/// Bytes of pipe capacity past the default that the daemon may hold.
pub(crate) struct Budget(AtomicUsize);

impl Budget {
    pub const fn new(bytes: usize) -> Budget {
        Budget(AtomicUsize::new(bytes))
    }

    /// `bytes` of the budget, or `None` when that much is not left.
    fn take(&'static self, bytes: usize) -> Option<Grant> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(bytes))
            .ok()
            .map(|_| Grant { budget: self, bytes })
    }

    #[cfg(test)]
    fn left(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// The daemon's budget for grown pipes.
pub(crate) static PIPES: Budget = Budget::new(8 * BIG_PIPE);

/// A share of a [`Budget`], given back on drop.
struct Grant {
    budget: &'static Budget,
    bytes: usize,
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.budget.0.fetch_add(self.bytes, Ordering::AcqRel);
    }
}

/// One stream's read buffer, and the room its pipe was given.
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    /// The largest the buffer may grow: the pipe's capacity.
    max: usize,
    budget: &'static Budget,
    grant: Option<Grant>,
    /// The pipe refused to grow: not asked again.
    refused: bool,
}

impl ReadBuf {
    const MIN: usize = 512;

    pub fn new(budget: &'static Budget) -> Self {
        ReadBuf { buf: vec![0; Self::MIN], max: DEFAULT_PIPE, budget, grant: None, refused: false }
    }

    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// The `n` bytes just read. When they filled the buffer, it grows for
    /// the next read; when they filled a default pipe, `grow` is asked to
    /// give the pipe `BIG_PIPE` bytes and says what it got.
    pub fn filled(&mut self, n: usize, grow: impl FnOnce(usize) -> std::io::Result<usize>) -> &[u8] {
        if n == self.buf.len() {
            if n >= self.max && self.grant.is_none() && !self.refused {
                self.ask(grow);
            }
            if n < self.max {
                // Only the new tail is zeroed; the data stays in front.
                self.buf.resize((n * 2).min(self.max), 0);
            }
        }
        &self.buf[..n]
    }

    fn ask(&mut self, grow: impl FnOnce(usize) -> std::io::Result<usize>) {
        // Without a share of the budget the pipe stays as it is; a later
        // full read asks again, once another flood has ended.
        let Some(grant) = self.budget.take(BIG_PIPE - DEFAULT_PIPE) else { return };
        match grow(BIG_PIPE) {
            Ok(capacity) if capacity > self.max => {
                self.max = capacity.min(READ_MAX);
                self.grant = Some(grant);
            }
            // Not Linux, not permitted (a user past its pipe limit), or
            // no bigger: the grant goes back.
            _ => self.refused = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grows_to(got: usize) -> impl FnOnce(usize) -> std::io::Result<usize> {
        move |asked| {
            assert_eq!(asked, BIG_PIPE);
            Ok(got)
        }
    }

    fn never(_: usize) -> std::io::Result<usize> {
        panic!("the pipe is not asked to grow before a read fills a default pipe")
    }

    #[test]
    fn a_quiet_stream_keeps_its_first_buffer_and_its_pipe() {
        static B: Budget = Budget::new(8 * BIG_PIPE);
        let mut r = ReadBuf::new(&B);
        for n in [1, 100, 511] {
            assert_eq!(r.filled(n, never).len(), n);
        }
        assert_eq!(r.space().len(), ReadBuf::MIN);
        assert_eq!(B.left(), 8 * BIG_PIPE);
    }

    #[test]
    fn a_flood_grows_the_buffer_then_the_pipe_then_the_buffer_to_256_kib() {
        static B: Budget = Budget::new(8 * BIG_PIPE);
        let mut r = ReadBuf::new(&B);
        let mut sizes = Vec::new();
        for _ in 0..10 {
            let n = r.space().len();
            r.filled(n, grows_to(BIG_PIPE));
            sizes.push(r.space().len() / 1024);
        }
        assert_eq!(sizes, [1, 2, 4, 8, 16, 32, 64, 128, 256, 256]);
        assert_eq!(B.left(), 8 * BIG_PIPE - (BIG_PIPE - DEFAULT_PIPE));
        drop(r);
        assert_eq!(B.left(), 8 * BIG_PIPE, "the share goes back when the stream ends");
    }

    #[test]
    fn a_pipe_that_cannot_grow_keeps_reads_at_64_kib_and_is_not_asked_again() {
        static B: Budget = Budget::new(8 * BIG_PIPE);
        let mut r = ReadBuf::new(&B);
        let mut asked = 0;
        for _ in 0..20 {
            let n = r.space().len();
            r.filled(n, |_| {
                asked += 1;
                Err(std::io::ErrorKind::PermissionDenied.into())
            });
        }
        assert_eq!((r.space().len(), asked), (DEFAULT_PIPE, 1));
        assert_eq!(B.left(), 8 * BIG_PIPE);
    }

    #[test]
    fn the_budget_bounds_the_floods_at_once() {
        static B: Budget = Budget::new(2 * (BIG_PIPE - DEFAULT_PIPE));
        let flood = |r: &mut ReadBuf| {
            for _ in 0..10 {
                let n = r.space().len();
                r.filled(n, grows_to(BIG_PIPE));
            }
            r.space().len()
        };
        let (mut a, mut b, mut c) = (ReadBuf::new(&B), ReadBuf::new(&B), ReadBuf::new(&B));
        assert_eq!([flood(&mut a), flood(&mut b), flood(&mut c)], [READ_MAX, READ_MAX, DEFAULT_PIPE]);
        drop(a);
        assert_eq!(flood(&mut c), READ_MAX, "a later full read asks again once a flood has ended");
        assert_eq!(B.left(), 0);
    }
}
