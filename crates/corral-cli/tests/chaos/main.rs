//! The chaos suite: corral as a hostile or careless user meets it.
//!
//! Each module reproduces one family of the failures of issue 10 (hangs,
//! privilege leaks, unbounded memory, lost data) against the real `corral`
//! binary and a real daemon, bounded in time, and proves that every process
//! it started is gone and every mount and temp dir it made is removed.

#![cfg(unix)]

#[path = "../daemon/mod.rs"]
mod daemon;
#[path = "../support/mod.rs"]
mod support;

mod bounds;
mod conns;
mod disk;
mod exec;
mod files;
