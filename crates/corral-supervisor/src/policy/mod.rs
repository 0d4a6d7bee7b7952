//! The supervisor's decisions as plain functions over plain data: no
//! processes, no clock, no randomness of their own. The instance task
//! feeds them times and random numbers, so tests can feed them anything.

mod backoff;
mod depends;
mod order;
mod restart;
mod run_result;
mod start_limit;

pub use backoff::Backoff;
pub use depends::Condition;
pub use order::{find_cycle, stop_waits_for};
pub use restart::{after_exit, AfterExit, RestartPolicy};
pub use run_result::RunResult;
pub use start_limit::StartLimit;
