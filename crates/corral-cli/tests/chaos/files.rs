//! Chaos: files.
