//! `pow`, defined in the binary so that it does not load glibc's libm.
//!
//! Why: the one libm function the binary calls is `pow`, from tokio's
//! multi-threaded scheduler (the weight of its average task poll time).
//! Loading libm.so.6 for it maps 0.5 MiB into the daemon's RSS (the
//! library's headers, symbol tables and the 64 KiB windows of code around
//! what the loader and `pow` touch). With a `pow` of the binary's own,
//! nothing needs libm and the linker leaves it out (`--as-needed`).
//!
//! This `pow` is musl's, through the `libm` crate: within an ulp of
//! glibc's, for a scheduler heuristic. Nothing else in the process calls
//! `pow`: the binary loads no other library that does.

/// The C library's `pow(x, y)`.
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}
