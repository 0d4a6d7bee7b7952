//! The supervisor's verbs. `up` runs the daemon; the others talk to it
//! over its local socket, or over its `[daemon.tcp]` listener with `--url`
//! (`endpoint.rs`). Exit codes: 0 done, 1 failed (no daemon, the daemon
//! refused), 2 bad config (nothing was started or changed).

mod client_verbs;
mod daemon_verbs;
mod endpoint;
mod limit;
mod ops_verbs;
mod schedules;
mod up;

pub(crate) use client_verbs::call;
pub(crate) use endpoint::client;

use clap::{Args, Subcommand};
use corral_supervisor::config::{self, Config};
use std::path::PathBuf;

/// The request failed or there is no daemon.
pub(crate) const FAILED: u8 = 1;
/// The config is invalid.
pub(crate) const BAD_CONFIG: u8 = 2;

/// Supervisor subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the supervisor: start every service, show their logs, stop all on Ctrl-C.
    Up(up::UpArgs),
    /// Check a config file without running anything.
    Check(ConfigArg),
    /// Show every service instance: state, pid, uptime, restarts, CPU, memory.
    Status(client_verbs::StatusArgs),
    /// Start services (and what they depend on).
    Start(client_verbs::Which),
    /// Stop services, dependants first.
    Stop(client_verbs::Which),
    /// Stop, then start services.
    Restart(client_verbs::Which),
    /// Show service logs, each line prefixed with its service.
    Logs(client_verbs::LogsArgs),
    /// Write a diagnostic snapshot of running services to state_dir/dumps, without stopping them.
    Dump(client_verbs::Which),
    /// Change the limits of a service's running instances, without a restart.
    Limit(limit::LimitArgs),
    /// Re-read the config and apply only what changed.
    Reload(Common),
    /// Show state transitions.
    Events(client_verbs::EventsArgs),
    /// Stop every service and the daemon.
    Down(Common),
    /// Act on the daemon itself: `restart` re-executes it in place, services kept running.
    Daemon {
        #[command(subcommand)]
        cmd: daemon_verbs::DaemonCmd,
    },
    /// Send a signal to a service's leaders (or, with --all-members, to every process of its groups).
    Signal(ops_verbs::SignalArgs),
    /// Reload a service in place (its reload_signal or reload command); nothing restarts.
    ReloadService(ops_verbs::ServiceArg),
    /// Run a service with N instances until the next reload that changes it.
    Scale(ops_verbs::ScaleArgs),
}

/// `-c FILE`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The config file [default: $CORRAL_CONFIG or ./corral.toml].
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// How a client finds the daemon: its local socket, or its
/// `[daemon.tcp]` listener with `--url`.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The daemon's socket [default: $CORRAL_SOCKET, or the config's].
    #[arg(long, value_name = "PATH", conflicts_with = "url")]
    pub socket: Option<PathBuf>,
    /// Talk to the daemon's [daemon.tcp] listener at https://HOST:PORT instead of its socket [default: $CORRAL_URL].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// With --url: the file whose first line is the bearer token [default: $CORRAL_TOKEN_FILE].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// With --url: trust this CA (or the daemon's self-signed certificate) [default: $CORRAL_CA, else Mozilla's roots].
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// Runs one verb and returns the exit code.
pub fn main(cmd: Cmd) -> u8 {
    match cmd {
        Cmd::Up(a) => up::main(a),
        Cmd::Check(a) => check(a),
        Cmd::Status(a) => client_verbs::status(a),
        Cmd::Start(a) => client_verbs::act("start", a),
        Cmd::Stop(a) => client_verbs::act("stop", a),
        Cmd::Restart(a) => client_verbs::act("restart", a),
        Cmd::Logs(a) => client_verbs::logs(a),
        Cmd::Dump(a) => client_verbs::dump(a),
        Cmd::Limit(a) => limit::main(a),
        Cmd::Reload(a) => client_verbs::reload(a),
        Cmd::Events(a) => client_verbs::events(a),
        Cmd::Down(a) => client_verbs::down(a),
        Cmd::Daemon { cmd } => daemon_verbs::main(cmd),
        Cmd::Signal(a) => ops_verbs::signal(a),
        Cmd::ReloadService(a) => ops_verbs::reload_service(a),
        Cmd::Scale(a) => ops_verbs::scale(a),
    }
}

fn check(a: ConfigArg) -> u8 {
    match load(&a) {
        Ok(c) => {
            println!("{}: ok, {} service(s)", c.path.display(), c.services.len());
            0
        }
        Err(code) => code,
    }
}

/// Loads the config or prints every error and returns exit code 2.
pub(crate) fn load(a: &ConfigArg) -> Result<Config, u8> {
    let path = a.config.clone().unwrap_or_else(config::default_config_path);
    config::load(&path).map_err(|errors| {
        for d in &errors.0 {
            eprintln!("error: {d}");
        }
        eprintln!("corral: {} error(s) in {}; nothing was started or changed", errors.0.len(), path.display());
        BAD_CONFIG
    })
}

/// A runtime for the verbs; they are small and mostly wait.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}
