//! The few OS effects the supervisor owns itself, behind one seam; the
//! rest of the crate stays platform-neutral. Process effects (groups,
//! leftovers) belong to the `corral` library, not here.

pub(crate) mod nofile;
pub(crate) mod proc_usage;
pub(crate) mod safe_fs;
