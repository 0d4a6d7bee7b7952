//! Chaos: bounds.
