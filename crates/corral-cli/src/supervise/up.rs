//! `corral up [-c FILE] [-d]`.

use super::{load, runtime, ConfigArg, FAILED};
use clap::Args;
use corral_supervisor::daemon::{self, Options};
use corral_supervisor::logs::Echo;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Detach: run the daemon in the background, its output in state_dir/daemon.log.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Never colour the name prefixes.
    #[arg(long)]
    no_color: bool,
    /// Do not echo the services' output (it is in log_dir either way; a
    /// detached daemon runs so).
    #[arg(short = 'q', long)]
    quiet: bool,
}

pub fn main(a: UpArgs) -> u8 {
    let config = match load(&a.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if a.detach {
        return detach(&config);
    }
    let color = !a.no_color && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let echo = (!a.quiet).then_some(Echo { color });
    let rt = match corral_supervisor::runtime::daemon() {
        Ok(rt) => rt,
        Err(e) => {
            crate::exit::error(format!("cannot start the daemon's runtime: {e}"));
            return FAILED;
        }
    };
    match rt.block_on(daemon::run(config, Options { echo, ..Options::default() })) {
        Ok(()) => 0,
        Err(e) => {
            crate::exit::error(e);
            FAILED
        }
    }
}

/// Starts `corral up` again in its own process group with its output in
/// the state folder, and returns once its socket answers.
fn detach(config: &corral_supervisor::config::Config) -> u8 {
    let state = &config.daemon.state_dir;
    let log_path = state.join("daemon.log");
    let log = match daemon::open_daemon_log(state) {
        Ok(f) => f,
        Err(e) => {
            crate::exit::error(format!("cannot open {}: {e}", log_path.display()));
            return FAILED;
        }
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| "corral".into());
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("up").arg("-c").arg(&config.path).arg("--quiet").stdin(std::process::Stdio::null());
    match log.try_clone() {
        Ok(l) => cmd.stdout(l).stderr(log),
        Err(_) => cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()),
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Out of the terminal's process group: Ctrl-C in this shell must not reach it.
        cmd.process_group(0);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        // No console of its own and out of this console's Ctrl-C group.
        const DETACHED_PROCESS: u32 = 0x0000_0008;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        cmd.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            crate::exit::error(format!("cannot start the daemon: {e}"));
            return FAILED;
        }
    };
    let client = corral_supervisor::client::Client::new(&config.daemon.socket);
    let rt = runtime();
    // The daemon answers on its socket once it is ready: ask until it does.
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if let Ok(Some(status)) = child.try_wait() {
            crate::exit::error(format!("the daemon exited ({status}); see {}", log_path.display()));
            return FAILED;
        }
        if rt.block_on(client.request("GET", "/v1/daemon")).is_ok_and(|r| r.status == 200) {
            let at = corral_supervisor::api::local_address(&config.daemon.socket);
            println!("corral: daemon started (pid {}), listening on {at}", child.id());
            return 0;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::exit::error(format!("the daemon did not answer within 30s; see {}", log_path.display()));
    FAILED
}
