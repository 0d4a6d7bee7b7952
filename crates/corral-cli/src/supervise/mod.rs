//! The supervisor's verbs (`up`, `status`, `logs`, …). Filled in by the
//! supervisor work; see `corral-supervisor`.

use clap::Subcommand;

/// Supervisor subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {}

pub fn main(cmd: Cmd) -> u8 {
    match cmd {}
}
