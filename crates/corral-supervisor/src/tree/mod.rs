//! Process trees you can look at: the members of a group placed under the
//! process that started them, and lineage traces that keep the processes
//! already gone.
//!
//! - [`lineage`]: what a group's events tell about who forked whom, folded
//!   into records (bounded), and the JSON-lines trace format they are
//!   written in (`corral run --trace`, a service's `trace = true`).
//! - [`model`]: a [`Tree`] of members, built from a live group (membership
//!   from the backend, placement from lineage) or from a trace.
//! - [`render`]: text, JSON, DOT, mermaid and SVG.
//! - [`follow`]: a running group's events into its lineage and trace file.
//!
//! A parent is never invented: where lineage is not observed (macOS,
//! Windows, Linux without the process-event connector), a member whose
//! parent is not in the group sits under the leader, marked re-parented,
//! and the tree says why.

pub mod follow;
pub mod lineage;
pub mod live;
pub mod model;
pub mod render;
pub mod trace_file;

pub use lineage::{Lineage, Record, TraceLine};
pub use model::{Member, Placement, Tree};
pub use render::Format;
