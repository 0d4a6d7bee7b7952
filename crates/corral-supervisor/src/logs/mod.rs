//! Service output: captured line by line with timestamps, written to
//! `log_dir/<service>/<instance>.log`, rotated by size, readable live.
//!
//! Capture applies backpressure instead of dropping: when the disk is slow
//! or full the reader stops reading, the pipe fills, and the child blocks
//! in `write`. Nothing is buffered without bound and nothing is lost.
//! Followers read the file in bounded steps, so a slow one costs disk,
//! not memory.

mod batch;
pub mod capture;
mod follow;
mod handover;
mod hub;
mod line;
pub mod output;
mod read_buf;
mod record;
mod rotate;
pub mod ship;
mod stall;
mod stamp;

pub use capture::capture;
pub(crate) use follow::{last_lines, Mark};
pub use follow::{tail, Batch, Follower, READ_MAX};
pub(crate) use handover::Handover;
pub use hub::{Echo, LogHub};
pub use line::LineSplitter;
pub use output::LogOutput;
pub use record::{text_of, LogFormat, LogLine};
pub use rotate::RotatingFile;
pub(crate) use stall::StallReport;

/// Lines longer than this are split into pieces; the pieces after the
/// first are tagged `out+` / `err+` so they can be joined again.
pub const MAX_LINE: usize = 16 * 1024;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}
