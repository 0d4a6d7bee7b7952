//! Chaos: conns.
