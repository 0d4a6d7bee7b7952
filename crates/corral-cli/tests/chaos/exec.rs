//! Chaos: exec.
