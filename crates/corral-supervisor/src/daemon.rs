//! `corral up`: reap what a crashed predecessor left, start the services,
//! serve the API, and on Ctrl-C, SIGTERM, `corral down` or a service
//! manager's stop request stop everything in reverse dependency order.

use crate::api::{self, Api};
use crate::config::Config;
use crate::logs::{Echo, LogHub};
use crate::supervisor::{Supervisor, Target};
use crate::sys::safe_fs::PrivateDir;
use std::sync::Arc;
use tokio::sync::Notify;

/// How the daemon runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Print every service's output with a name prefix (foreground).
    pub echo: Option<Echo>,
    /// Who may use the local API (a Windows service lets administrators in).
    pub access: api::Access,
    /// Notified by whoever runs the daemon (the Windows service control
    /// handler) to stop it like `corral down` does.
    pub stop: Option<Arc<Notify>>,
    /// Notified once the local API listens: the daemon is up.
    pub listening: Option<Arc<Notify>>,
}

/// Runs the daemon until it is told to stop. Errors are one line for a
/// person.
pub async fn run(config: Config, opts: Options) -> Result<(), String> {
    // The daemon owns its process: orphans of its services are its to reap.
    corral::reap_all_orphans(true);
    crate::reexec::wait_for_predecessor();
    crate::reexec::remember_exe();
    crate::reexec::refuse_under_a_manager(opts.stop.is_some());
    // The TCP listener's certificate, key and token are read before
    // anything is touched: a bad one stops the daemon here.
    let tcp = config.daemon.tcp.as_ref().map(api::TcpTls::load).transpose()?;
    let state_dir = config.daemon.state_dir.clone();
    check_dirs(&config)?;
    crate::persist::refuse_a_running_daemon(&state_dir)?;
    // The holder of the previous daemon's pipes (or a new one): what it
    // kept goes with the groups taken back; the rest closes here.
    let (holder, pipes) = crate::holder::Client::connect(&state_dir);
    let (left, taken, refused) = crate::reattach::previous(&state_dir, &config.services, pipes)?;
    for r in &refused {
        eprintln!("corral: {r}");
    }
    if left.reattached > 0 {
        eprintln!("corral: re-attached {} group(s) of a previous daemon", left.reattached);
    }
    let unreadable = left.unreadable.as_ref().map(|why| {
        format!("{why}; killed {} process(es) of {} orphaned group(s) found by their tag", left.killed, left.groups)
    });
    if let Some(u) = &unreadable {
        eprintln!("corral: {u}");
    } else if left.killed > 0 {
        eprintln!("corral: killed {} process(es) left by a previous daemon in {} group(s)", left.killed, left.groups);
    }
    let tcp = match tcp {
        Some(t) => Some(t.bind().await?),
        None => None,
    };
    let web = match &config.daemon.web {
        Some(w) => Some(crate::web::Dashboard::bind(w).await?),
        None => None,
    };
    let clients = api::clients_for(&config);
    let socket = config.daemon.socket.clone();
    let logs = LogHub::new(&config.daemon.log_dir, opts.echo.clone());
    let sup = Supervisor::new(config, logs).map_err(|e| format!("cannot set up {}: {e}", state_dir.display()))?;
    sup.bind_sockets_taking(&taken).map_err(|e| e.to_string())?;
    if let Some(u) = unreadable {
        sup.emit(crate::Event::daemon(u));
    }
    for r in refused {
        sup.emit(crate::Event::daemon(r));
    }
    sup.hand_over(taken, holder);
    let shutdown = Arc::new(Notify::new());
    let app = api::router(Api { sup: sup.clone(), shutdown: shutdown.clone() });
    let api_stop = Arc::new(Notify::new());
    let stop_wait = api_stop.clone();
    let metrics_stop = Arc::new(Notify::new());
    let metrics_server = match sup.config().daemon.metrics_listen {
        Some(addr) => {
            let bound = api::BoundMetrics::bind(addr).await?;
            let app = api::metrics_router(Api { sup: sup.clone(), shutdown: shutdown.clone() });
            let stop = metrics_stop.clone();
            eprintln!("corral: metrics on http://{}/metrics", bound.local_addr());
            Some(bound.serve(app, &clients, async move { stop.notified().await }))
        }
        None => None,
    };
    let tcp_app = app.clone();
    let server = api::serve_local(&socket, app, opts.access, &clients, async move { stop_wait.notified().await })
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    // Tests and scripts wait for this line.
    eprintln!("corral: listening on {}", api::local_address(&socket));
    if let Some(l) = &opts.listening {
        l.notify_one();
    }
    let tcp_stop = Arc::new(Notify::new());
    let tcp_server = tcp.map(|t| {
        eprintln!("corral: listening on https://{} (TLS, bearer token)", t.local_addr());
        let stop = tcp_stop.clone();
        t.serve(tcp_app, &clients, async move { stop.notified().await })
    });
    let web_stop = Arc::new(Notify::new());
    let web_server = web.map(|w| {
        // Tests and people look for this line.
        eprintln!("corral: dashboard on {}", w.url());
        w.serve(Api { sup: sup.clone(), shutdown: shutdown.clone() }, &clients, web_stop.clone())
    });
    // A fleet node first runs what it last applied (etcd may be away).
    #[cfg(feature = "fleet")]
    let fleet = match sup.config().fleet {
        Some(f) => {
            let mut node = crate::fleet::node::Node::new(sup.clone(), f);
            node.preload().await;
            Some(node)
        }
        None => None,
    };
    let _ = sup.start(&Target::All).await;
    // The start's transient allocations (the config's parse, the first
    // spawns) are freed within a moment; their pages go back then.
    crate::sys::malloc::trim_after_burst();
    #[cfg(feature = "fleet")]
    let fleet_stop = Arc::new(Notify::new());
    #[cfg(feature = "fleet")]
    let fleet = fleet.map(|n| tokio::spawn(n.run(fleet_stop.clone())));
    let watcher = sup.config().daemon.watch_config.then(|| tokio::spawn(crate::watch::config_file(sup.clone())));
    tokio::select! {
        _ = wait_for_stop(&sup, &shutdown) => {}
        _ = stopped_from_outside(opts.stop.as_deref()) => {}
    }
    let mut server = Some(server);
    if crate::reexec::requested() {
        // The API first: the request that asked gets its answer.
        api_stop.notify_one();
        if let Some(s) = server.take() {
            let _ = s.await;
        }
        let why = crate::reexec::exec(&sup).await;
        eprintln!("corral: {why}; stopping every service instead");
    }
    eprintln!("corral: stopping every service");
    // A reload in progress (from the watcher, SIGHUP or the API) gives up
    // its rollout as the shutdown begins; the watcher is stopped only
    // after, so a reload is never cut off halfway through.
    sup.shutdown().await;
    if let Some(w) = watcher {
        w.abort();
    }
    #[cfg(feature = "fleet")]
    if let Some(f) = fleet {
        // The node leaves (its lease revoked) unless etcd does not answer.
        fleet_stop.notify_one();
        let abort = f.abort_handle();
        if tokio::time::timeout(crate::fleet::connect::REQUEST_TIMEOUT, f).await.is_err() {
            abort.abort();
        }
    }
    api_stop.notify_one();
    tcp_stop.notify_one();
    if let Some(t) = tcp_server {
        // Open requests get a moment to end; a remote client's open stream
        // must not hold the daemon up.
        let abort = t.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(2), t).await.is_err() {
            abort.abort();
        }
    }
    web_stop.notify_one();
    if let Some(w) = web_server {
        // A tab's event stream never ends by itself: a moment, then cut.
        let abort = w.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(2), w).await.is_err() {
            abort.abort();
        }
    }
    metrics_stop.notify_one();
    if let Some(s) = server {
        let _ = s.await;
    }
    if let Some(m) = metrics_server {
        let _ = m.await;
    }
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
                // SIGHUP reloads, as daemons do; on a task of its own, so a
                // rollout that takes minutes does not keep SIGTERM and
                // `corral down` waiting.
                _ = hup.recv() => {
                    let sup = sup.clone();
                    tokio::spawn(async move { reload(&sup, "SIGHUP", false).await });
                }
            }
        }
    }
    #[cfg(windows)]
    {
        use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close, ctrl_shutdown};
        // Ctrl-C, Ctrl-Break, the console closing and the machine shutting
        // down all stop every service gracefully. Windows has no SIGHUP:
        // reload is `corral reload`.
        let (Ok(mut c), Ok(mut b), Ok(mut close), Ok(mut down)) =
            (ctrl_c(), ctrl_break(), ctrl_close(), ctrl_shutdown())
        else {
            shutdown.notified().await;
            return;
        };
        tokio::select! {
            _ = c.recv() => {}
            _ = b.recv() => {}
            _ = close.recv() => {}
            _ = down.recv() => {}
            _ = shutdown.notified() => {}
        }
        let _ = sup;
    }
}

/// Completes when `stop` is notified; never without one.
async fn stopped_from_outside(stop: Option<&Notify>) {
    match stop {
        Some(s) => s.notified().await,
        None => std::future::pending().await,
    }
}

/// Re-reads the config and applies it, saying what happened on stderr;
/// a config that does not load changes nothing. With `only_if_changed`
/// (the file watcher), services equal to the ones in force are left be,
/// silently.
pub(crate) async fn reload(sup: &Supervisor, why: &str, only_if_changed: bool) {
    let path = sup.config().path;
    let new = tokio::task::spawn_blocking(move || crate::config::load(&path)).await;
    let Ok(new) = new else { return eprintln!("corral: reload ({why}) failed: reading the config failed") };
    let r = if only_if_changed { sup.reload_if_changed(new).await } else { sup.reload(new).await.map(Some) };
    match r {
        Ok(Some(d)) => eprintln!("corral: reloaded ({why}): {}", serde_json::to_string(&d).unwrap_or_default()),
        Ok(None) => {}
        Err(e) => eprintln!("corral: reload ({why}) refused, nothing changed:\n{e}"),
    }
}

/// The state and log folders, and each service's log folder, created
/// private or checked: one that another user could write is refused here,
/// before anything starts, and never chmodded.
fn check_dirs(config: &Config) -> Result<(), String> {
    let d = &config.daemon;
    PrivateDir::create_or_check(&d.state_dir).map_err(|e| format!("cannot use state_dir: {e}"))?;
    let logs = PrivateDir::create_or_check(&d.log_dir).map_err(|e| format!("cannot use log_dir: {e}"))?;
    for name in config.services.keys() {
        logs.subdir(name).map_err(|e| format!("cannot keep the logs of `{name}`: {e}"))?;
    }
    Ok(())
}

/// `state_dir/daemon.log`, opened for appending the way the daemon opens
/// its own files (a detached daemon's and a Windows service's output).
pub fn open_daemon_log(state_dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    PrivateDir::create_or_check(state_dir)?.append("daemon.log")
}
