//! `corral up`: reap what a crashed predecessor left, start the services,
//! serve the API, and on Ctrl-C, SIGTERM or `corral down` stop everything
//! in reverse dependency order.

use crate::api::{self, Api};
use crate::config::Config;
use crate::logs::{Echo, LogHub};
use crate::supervisor::{Supervisor, Target};
use std::sync::Arc;
use tokio::sync::Notify;

/// How the daemon runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Print every service's output with a name prefix (foreground).
    pub echo: Option<Echo>,
}

/// Runs the daemon until it is told to stop. Errors are one line for a
/// person.
pub async fn run(config: Config, opts: Options) -> Result<(), String> {
    // The daemon owns its process: orphans of its services are its to reap.
    corral::reap_all_orphans(true);
    let state_dir = config.daemon.state_dir.clone();
    create_private_dir(&state_dir).map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    let left = crate::persist::reap_previous(&state_dir)?;
    if left.killed > 0 {
        eprintln!("corral: killed {} process(es) left by a previous daemon in {} group(s)", left.killed, left.groups);
    }
    if config.daemon.tcp.is_some() {
        return Err("[daemon.tcp] is not implemented yet; remove it to use the local socket".into());
    }
    let socket = config.daemon.socket.clone();
    let logs = LogHub::new(&config.daemon.log_dir, opts.echo.clone());
    let sup = Supervisor::new(config, logs).map_err(|e| format!("cannot set up {}: {e}", state_dir.display()))?;
    let shutdown = Arc::new(Notify::new());
    let app = api::router(Api { sup: sup.clone(), shutdown: shutdown.clone() });
    let api_stop = Arc::new(Notify::new());
    let stop_wait = api_stop.clone();
    let server = api::serve_local(&socket, app, async move { stop_wait.notified().await })
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    // Tests and scripts wait for this line.
    eprintln!("corral: listening on {}", socket.display());
    let _ = sup.start(&Target::All).await;
    wait_for_stop(&sup, &shutdown).await;
    eprintln!("corral: stopping every service");
    sup.shutdown().await;
    api_stop.notify_one();
    let _ = server.await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

async fn wait_for_stop(sup: &Supervisor, shutdown: &Notify) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
        else {
            shutdown.notified().await;
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = int.recv() => return,
                _ = shutdown.notified() => return,
                _ = hup.recv() => {
                    // SIGHUP reloads, as daemons do.
                    let path = sup.config().path;
                    match sup.reload(crate::config::load(&path)).await {
                        Ok(d) => eprintln!("corral: reloaded: {}", serde_json::to_string(&d).unwrap_or_default()),
                        Err(e) => eprintln!("corral: reload refused, nothing changed:\n{e}"),
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = shutdown.notified() => {}
        }
        let _ = sup;
    }
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
