//! Chaos: disk.
