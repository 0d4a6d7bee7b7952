//! `corral service install|uninstall|start|stop`: the daemon of one config
//! as a Windows service under the Service Control Manager (SCM).
//!
//! The SCM runs `corral service run -c <config>` (hidden: only the SCM
//! starts it), which is `corral up` with a service's life cycle: its output
//! goes to `state_dir/daemon.log`, it stops on the SCM's stop or shutdown
//! request, and its API also admits SYSTEM and Administrators, who
//! administer the service. Everywhere else `corral service` says that it is
//! Windows only and what to use instead.
//!
//! Exit codes: 0 done, 1 failed, 2 bad config (nothing registered).

#[cfg_attr(not(windows), allow(dead_code))]
mod account;
#[cfg_attr(not(windows), allow(dead_code))]
mod cmdline;
#[cfg(windows)]
mod manage;
#[cfg(windows)]
mod run;
#[cfg(windows)]
mod scm;
#[cfg(windows)]
mod status;

use crate::supervise::ConfigArg;
use clap::{Args, Subcommand};

/// The service name when `--name` is not given.
pub const DEFAULT_NAME: &str = "corral";

/// The service's security descriptor, applied at install. Full control
/// for SYSTEM and Administrators (`CCDCLCSWRPWPDTLOCRSDRCWDWO` is
/// SERVICE_ALL_ACCESS spelled out); interactive users may read its config, status and
/// ACL (`CCLCRC`), but not start, stop, reconfigure or send it controls.
/// Nobody else, not even other services, sees it.
#[cfg_attr(not(windows), allow(dead_code))]
pub const SERVICE_SDDL: &str =
    "D:(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;SY)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;BA)(A;;CCLCRC;;;IU)";

/// `corral service` subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Register the daemon of a config as a Windows service (auto start, LocalService).
    Install(InstallArgs),
    /// Stop the service if it runs, then remove it.
    Uninstall(NameArg),
    /// Start the service and wait until its API answers.
    Start(NameArg),
    /// Stop the service (every corral service gracefully) and wait until it has stopped.
    Stop(NameArg),
    /// What the Service Control Manager runs; not for people.
    #[command(hide = true)]
    Run(RunArgs),
}

/// `--name`.
#[derive(Debug, Args)]
pub struct NameArg {
    /// The service's name; give each config its own.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NAME)]
    pub name: String,
}

/// `corral service install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub name: NameArg,
    /// LocalService, NetworkService, LocalSystem, or .\USER / DOMAIN\USER (password in $CORRAL_SERVICE_PASSWORD).
    #[arg(long, value_name = "ACCOUNT", default_value = "LocalService")]
    pub account: String,
}

/// `corral service run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

/// Runs one `corral service` verb and returns the exit code.
#[cfg(windows)]
pub fn main(cmd: Cmd) -> u8 {
    match cmd {
        Cmd::Install(a) => manage::install(a),
        Cmd::Uninstall(a) => manage::uninstall(&a.name),
        Cmd::Start(a) => manage::start(&a.name),
        Cmd::Stop(a) => manage::stop(&a.name),
        Cmd::Run(a) => run::main(a),
    }
}

/// Everywhere but Windows: one line that says what to use instead.
#[cfg(not(windows))]
pub fn main(_cmd: Cmd) -> u8 {
    crate::exit::error(
        "`corral service` is Windows only (it registers with the Service Control Manager); \
         on Linux run `corral up -c FILE` from a systemd unit, on macOS from a launchd job",
    );
    crate::supervise::FAILED
}
