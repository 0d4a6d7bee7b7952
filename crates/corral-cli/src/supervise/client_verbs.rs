//! The verbs that talk to a running daemon.

use super::endpoint::client;
use super::{runtime, Common, BAD_CONFIG, FAILED};
use clap::Args;
use corral::units::{format_duration, format_size};
use corral_supervisor::client::Reply;
use corral_supervisor::{DumpResult, Event, EventKind, InstanceStatus};
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    common: Common,
    /// Print the instances as JSON (the API's `/v1/services` answer).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct Which {
    #[command(flatten)]
    common: Common,
    /// Every service.
    #[arg(long, conflicts_with = "services")]
    all: bool,
    /// Services by name.
    services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    common: Common,
    /// Keep printing new lines.
    #[arg(short = 'f', long)]
    follow: bool,
    /// How many past lines to print first.
    #[arg(short = 'n', long, default_value_t = 20)]
    lines: usize,
    /// One JSON object per line (`ts`, `service`, `instance`, `stream`,
    /// `pid`, `line`), whatever the format of the files.
    #[arg(long)]
    json: bool,
    /// One service (default: all).
    service: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    common: Common,
    /// Keep printing new events.
    #[arg(short = 'f', long)]
    follow: bool,
    /// One JSON object per line, as in events.jsonl.
    #[arg(long)]
    json: bool,
    /// How many past events to print (without -f).
    #[arg(short = 'n', long, default_value_t = 50)]
    lines: usize,
}

pub(super) fn call(c: &Common, method: &str, path: &str) -> Result<Reply, u8> {
    let client = client(c)?;
    match runtime().block_on(client.request(method, path)) {
        Ok(r) if r.status < 400 => Ok(r),
        Ok(r) => Err(refused(&r)),
        Err(e) => {
            crate::exit::error(e);
            Err(FAILED)
        }
    }
}

/// Says why the daemon refused a request; every error of a config that
/// does not load comes on a line of its own (exit 2).
fn refused(r: &Reply) -> u8 {
    let j = r.json();
    let msg = j["error"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned());
    crate::exit::error(msg);
    if let Some(errs) = j["errors"].as_array() {
        for e in errs {
            eprintln!("error: {}", e.as_str().unwrap_or_default());
        }
        return BAD_CONFIG;
    }
    FAILED
}

pub fn status(a: StatusArgs) -> u8 {
    let r = match call(&a.common, "GET", "/v1/services") {
        Ok(r) => r,
        Err(code) => return code,
    };
    if a.json {
        println!("{}", String::from_utf8_lossy(&r.body));
        return 0;
    }
    let list: Vec<InstanceStatus> = serde_json::from_value(r.json()["instances"].clone()).unwrap_or_default();
    print_table(&list);
    super::schedules::print(&list);
    if let Ok(link) = serde_json::from_value::<corral_supervisor::fleet::Link>(r.json()["fleet"].clone()) {
        println!("{link}");
    }
    0
}

fn print_table(list: &[InstanceStatus]) {
    let mut rows = vec![["SERVICE", "INST", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "CPU", "MEM", "HEALTH"]
        .map(String::from)
        .to_vec()];
    for i in list {
        let state = if i.state == corral_supervisor::State::Running && !i.ready {
            "running (not ready)".to_string()
        } else {
            i.state.to_string()
        };
        rows.push(vec![
            i.service.clone(),
            i.instance.to_string(),
            state,
            i.pid.map_or("-".into(), |p| p.to_string()),
            i.uptime_ms.map_or("-".into(), |m| format_duration(Duration::from_secs(m / 1000))),
            i.restarts.to_string(),
            i.last_exit.as_ref().map_or("-".into(), |e| e.reason.clone()),
            i.cpu_ms.map_or("-".into(), |m| format_duration(Duration::from_millis(m))),
            i.memory_bytes.map_or("-".into(), format_size),
            health(i),
        ]);
    }
    // A notify service's own STATUS= line, as a last column when any has one.
    let said = |i: &InstanceStatus| i.notify.as_ref().and_then(|n| n.status.clone());
    if list.iter().any(|i| said(i).is_some()) {
        rows[0].push("STATUS".into());
        for (r, i) in rows.iter_mut().skip(1).zip(list) {
            r.push(said(i).unwrap_or_else(|| "-".into()));
        }
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(s, w)| format!("{s:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// The last probe results in a few words: the failing probes with their
/// count and reason, else `ok` with the probes that passed.
fn health(i: &InstanceStatus) -> String {
    if i.probes.is_empty() {
        return "-".into();
    }
    let failing: Vec<String> = i
        .probes
        .iter()
        .filter(|p| !p.ok)
        .map(|p| format!("{} failing {}/{}: {}", p.probe, p.failures, p.failure_threshold, p.message))
        .collect();
    if !failing.is_empty() {
        return failing.join("; ");
    }
    let passed: Vec<&str> = i.probes.iter().map(|p| p.probe.as_str()).collect();
    format!("ok ({})", passed.join(", "))
}

/// The API paths of `action` on the named services, or on all.
fn targets(action: &str, a: &Which) -> Result<Vec<String>, u8> {
    if !a.all && a.services.is_empty() {
        crate::exit::error(format!("name the services to {action}, or give --all"));
        return Err(FAILED);
    }
    Ok(if a.all {
        vec![format!("/v1/{action}")]
    } else {
        a.services.iter().map(|s| format!("/v1/services/{s}/{action}")).collect()
    })
}

pub fn act(action: &str, a: Which) -> u8 {
    let paths = match targets(action, &a) {
        Ok(p) => p,
        Err(code) => return code,
    };
    for p in paths {
        match call(&a.common, "POST", &p) {
            Ok(r) => {
                let list: Vec<InstanceStatus> =
                    serde_json::from_value(r.json()["instances"].clone()).unwrap_or_default();
                for i in list {
                    println!("{}.{}: {}", i.service, i.instance, i.state);
                }
            }
            Err(code) => return code,
        }
    }
    0
}

/// Prints each instance's snapshot folder; fails when any instance got
/// none (it was not running, or the write failed).
pub fn dump(a: Which) -> u8 {
    let paths = match targets("dump", &a) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut code = 0;
    for p in paths {
        let r = match call(&a.common, "POST", &p) {
            Ok(r) => r,
            Err(code) => return code,
        };
        let list: Vec<DumpResult> = serde_json::from_value(r.json()["dumps"].clone()).unwrap_or_default();
        for d in list {
            match (d.dir, d.error) {
                (Some(dir), _) => println!("{}.{}: {dir}", d.service, d.instance),
                (None, why) => {
                    eprintln!("corral: {}.{}: no snapshot: {}", d.service, d.instance, why.unwrap_or_default());
                    code = FAILED;
                }
            }
        }
    }
    code
}

pub fn reload(a: Common) -> u8 {
    match call(&a, "POST", "/v1/reload") {
        Ok(r) => {
            let d = &r.json()["diff"];
            for key in ["added", "removed", "changed", "rolled", "scaled", "retuned", "unchanged"] {
                let names: Vec<&str> = d[key].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
                if !names.is_empty() {
                    println!("{key}: {}", names.join(", "));
                }
            }
            // A halted rollout is a reload that did not finish.
            let halted = d["halted"].as_object().cloned().unwrap_or_default();
            for (name, why) in &halted {
                eprintln!("corral: {name}: the rollout halted: {}", why.as_str().unwrap_or_default());
            }
            if halted.is_empty() {
                0
            } else {
                FAILED
            }
        }
        Err(code) => code,
    }
}

pub fn down(a: Common) -> u8 {
    if let Err(code) = call(&a, "POST", "/v1/shutdown") {
        return code;
    }
    // The daemon stops every service, then its listeners; wait for that.
    let Ok(client) = client(&a) else { return FAILED };
    let rt = runtime();
    loop {
        // Each probe is bounded: a connection caught in the daemon's exit
        // must not hold `down` forever. A probe that times out is retried;
        // only a refused connection means the daemon is gone.
        let probe = async { tokio::time::timeout(Duration::from_secs(2), client.request("GET", "/v1/daemon")).await };
        if let Ok(Err(_)) = rt.block_on(probe) {
            println!("corral: the daemon has stopped");
            return 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn logs(a: LogsArgs) -> u8 {
    let mut path = format!("/v1/logs?n={}&follow={}&json={}", a.lines, a.follow, a.json);
    if let Some(s) = &a.service {
        path.push_str(&format!("&service={s}"));
    }
    let client = match client(&a.common) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut out = std::io::stdout().lock();
    let r =
        runtime().block_on(client.stream("GET", &path, |chunk| out.write_all(chunk).is_ok() && out.flush().is_ok()));
    streamed(r)
}

fn print_event(e: &serde_json::Value, json: bool) {
    if json {
        println!("{e}");
        return;
    }
    match serde_json::from_value::<Event>(e.clone()) {
        Ok(ev) => {
            // Who asked, when a client's request caused it.
            let by = ev.actor.as_ref().map(|a| format!(" {a}")).unwrap_or_default();
            match ev.kind {
                EventKind::Daemon => println!("{} daemon {}{by}", ev.ts, ev.reason),
                // Their reasons start with the probe (`liveness: ...`) or `alert`.
                EventKind::Transition => {
                    println!("{} {}.{} {} -> {} ({}){by}", ev.ts, ev.service, ev.instance, ev.from, ev.to, ev.reason)
                }
                _ => println!("{} {}.{} {}{by}", ev.ts, ev.service, ev.instance, ev.reason),
            }
        }
        Err(_) => println!("{e}"),
    }
}

pub fn events(a: EventsArgs) -> u8 {
    if !a.follow {
        return match call(&a.common, "GET", &format!("/v1/events?n={}", a.lines)) {
            Ok(r) => {
                for e in r.json()["events"].as_array().into_iter().flatten() {
                    print_event(e, a.json);
                }
                0
            }
            Err(code) => code,
        };
    }
    let client = match client(&a.common) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut buf = String::new();
    let r = runtime().block_on(client.stream("GET", "/v1/events/stream", |chunk| {
        buf.push_str(&String::from_utf8_lossy(chunk));
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim()) {
                    print_event(&v, a.json);
                }
            }
        }
        std::io::stdout().flush().is_ok()
    }));
    streamed(r)
}

/// The exit code of a streamed request (`logs`, `events -f`).
fn streamed<E: std::fmt::Display>(r: Result<Reply, E>) -> u8 {
    match r {
        Ok(r) if r.status < 400 => 0,
        Ok(r) => refused(&r),
        Err(e) => {
            crate::exit::error(e);
            FAILED
        }
    }
}
