//! The `corral` binary: parses arguments, calls the libraries, and maps
//! errors to exit codes. It holds no policy of its own.

mod adopt;
mod completions;
mod doctor;
mod exit;
#[cfg(feature = "fleet")]
mod fleet;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod libm_pow;
mod report;
mod run;
mod service;
mod signals;
mod startup;
mod supervise;
mod top;
mod trace;
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
    Run(Box<run::Args>),
    /// Take a running process and its descendants into a group, as `run` would hold them.
    Adopt(adopt::Args),
    /// Show what this host can enforce, with each backend.
    Doctor(doctor::Args),
    /// Show a group's process tree (a service, or --pid N): text, json, dot, mermaid or svg.
    Tree(tree::Args),
    /// Render a lineage trace written by `corral run --trace` or `trace = true`.
    Trace {
        #[command(subcommand)]
        cmd: trace::Cmd,
    },
    /// A terminal UI: services, the selected instance's tree and logs, with keys for the actions.
    Top(top::Args),
    #[command(flatten)]
    Supervisor(supervise::Cmd),
    /// Drive a fleet's desired state in etcd: apply, status, nodes, scale.
    #[cfg(feature = "fleet")]
    Fleet {
        #[command(subcommand)]
        cmd: fleet::Cmd,
    },
    /// Drive a fleet's desired state in etcd (not built into this corral:
    /// see the feature `fleet`).
    #[cfg(not(feature = "fleet"))]
    Fleet {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// The log holder a daemon starts for itself (internal; see README).
    #[command(name = "__holder", hide = true)]
    Holder { socket: std::path::PathBuf },
    /// Print (or --install) the systemd unit, OpenRC script or launchd plist that runs `corral up` at boot.
    Startup(startup::StartupArgs),
    /// Print a shell completion script: bash, zsh, fish or powershell.
    Completions(completions::CompletionsArgs),
    /// Print the man page, or write one per verb with --dir.
    Manpage(completions::ManpageArgs),
    /// Run the supervisor as a Windows service: install, uninstall, start, stop.
    Service {
        #[command(subcommand)]
        cmd: service::Cmd,
    },
}

#[cfg(any(target_os = "linux", windows))]
fn holder(socket: &std::path::Path) -> u8 {
    match corral_supervisor::holder::serve(socket) {
        Ok(()) => 0,
        Err(e) => {
            exit::error(format!("log holder on {}: {e}", socket.display()));
            exit::FAILURE
        }
    }
}

#[cfg(target_os = "macos")]
fn holder(_socket: &std::path::Path) -> u8 {
    exit::error("the log holder is Linux and Windows only");
    exit::FAILURE
}

fn main() -> ExitCode {
    signals::reset_inherited();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return exit::usage_error(e),
    };
    let code = match cli.cmd {
        Cmd::Run(a) => run::main(*a),
        Cmd::Adopt(a) => adopt::main(a),
        Cmd::Doctor(a) => doctor::main(a),
        Cmd::Tree(a) => tree::main(a),
        Cmd::Trace { cmd } => trace::main(cmd),
        Cmd::Top(a) => top::main(a),
        Cmd::Supervisor(c) => supervise::main(c),
        #[cfg(feature = "fleet")]
        Cmd::Fleet { cmd } => fleet::main(cmd),
        #[cfg(not(feature = "fleet"))]
        Cmd::Fleet { .. } => {
            exit::error(
                "this corral was built without fleet support; \
                 build it with `cargo install --path crates/corral-cli --features fleet` (needs protoc)",
            );
            supervise::FAILED
        }
        Cmd::Startup(a) => startup::main(a),
        Cmd::Completions(a) => completions::completions(a),
        Cmd::Manpage(a) => completions::manpage(a),
        Cmd::Service { cmd } => service::main(cmd),
        Cmd::Holder { socket } => holder(&socket),
    };
    ExitCode::from(code)
}
