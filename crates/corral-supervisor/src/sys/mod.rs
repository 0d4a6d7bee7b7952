//! The few OS effects the supervisor owns itself, each in a file of its
//! own; everything about process groups stays in the `corral` library.

pub(crate) mod nofile;
