//! The `corral` binary: parses arguments, calls the libraries, and maps
//! errors to exit codes. It holds no policy of its own.

mod doctor;
mod exit;
mod report;
mod run;
mod service;
mod signals;
mod supervise;
mod tree;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "corral", version, about = "Hold a process tree as one unit: contain, limit, watch, stop, verify.")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a command and everything it starts as one group.
    Run(run::Args),
    /// Show what this host can enforce, with each backend.
    Doctor(doctor::Args),
    /// Show a live process tree with pgid, sid and group.
    Tree(tree::Args),
    #[command(flatten)]
    Supervisor(supervise::Cmd),
    /// Run the supervisor as a Windows service: install, uninstall, start, stop.
    Service {
        #[command(subcommand)]
        cmd: service::Cmd,
    },
}

fn main() -> ExitCode {
    signals::reset_inherited();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return exit::usage_error(e),
    };
    let code = match cli.cmd {
        Cmd::Run(a) => run::main(a),
        Cmd::Doctor(a) => doctor::main(a),
        Cmd::Tree(a) => tree::main(a),
        Cmd::Supervisor(c) => supervise::main(c),
        Cmd::Service { cmd } => service::main(cmd),
    };
    ExitCode::from(code)
}
