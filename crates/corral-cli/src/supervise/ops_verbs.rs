//! `corral signal`, `corral reload-service` and `corral scale`: one
//! running service, nothing restarted. Exit codes: 0 done, 1 failed (no
//! daemon, nothing running, a reload command failed), 2 bad input (an
//! unknown signal, service or count; nothing was done).

use super::endpoint::client;
use super::{runtime, Common, BAD_CONFIG, FAILED};
use clap::Args;
use corral_supervisor::client::Reply;
use corral_supervisor::{InstanceStatus, Reloaded, Signalled};

#[derive(Debug, Args)]
pub struct SignalArgs {
    #[command(flatten)]
    common: Common,
    /// The service.
    service: String,
    /// A signal name (HUP, SIGHUP, USR1, …) or number.
    signal: String,
    /// Every process of each instance's group, not only its leader.
    #[arg(long)]
    all_members: bool,
    /// Only this instance (default: every running one).
    #[arg(long, value_name = "N")]
    instance: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ServiceArg {
    #[command(flatten)]
    common: Common,
    /// The service.
    service: String,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    common: Common,
    /// The service.
    service: String,
    /// How many instances to run (1 to 1000).
    instances: String,
}

/// Sends the request; a refusal is said in one line, with its exit code.
fn call(c: &Common, path: &str) -> Result<Reply, u8> {
    let client = client(c)?;
    match runtime().block_on(client.request("POST", path)) {
        Ok(r) if r.status < 400 => Ok(r),
        Ok(r) => {
            let j = r.json();
            let msg =
                j["error"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&r.body).into());
            crate::exit::error(msg);
            // 400 and 404: the request was wrong, and nothing was done.
            Err(if matches!(r.status, 400 | 404) { BAD_CONFIG } else { FAILED })
        }
        Err(e) => {
            crate::exit::error(e);
            Err(FAILED)
        }
    }
}

/// A service name goes into the URL's path: only the characters a
/// service name may have.
fn service_path(name: &str, action: &str) -> Result<String, u8> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        crate::exit::error(format!("no service `{name}`: names are letters, digits, `-`, `_` and `.`"));
        return Err(BAD_CONFIG);
    }
    Ok(format!("/v1/services/{name}/{action}"))
}

pub fn signal(a: SignalArgs) -> u8 {
    // Checked here too, so a typo never reaches the daemon.
    let sig: corral::Signal = match a.signal.parse() {
        Ok(s) => s,
        Err(e) => {
            crate::exit::error(e);
            return BAD_CONFIG;
        }
    };
    let mut path = match service_path(&a.service, "signal") {
        Ok(p) => p,
        Err(code) => return code,
    };
    path.push_str(&format!("?signal={}&all_members={}", sig.as_raw(), a.all_members));
    if let Some(i) = a.instance {
        path.push_str(&format!("&instance={i}"));
    }
    let r = match call(&a.common, &path) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let list: Vec<Signalled> = serde_json::from_value(r.json()["instances"].clone()).unwrap_or_default();
    let mut code = 0;
    for s in list {
        match s.error {
            None => println!("{}.{}: {sig} to {} process(es) (leader {})", a.service, s.instance, s.processes, s.pid),
            Some(e) => {
                eprintln!("corral: {}.{}: {sig} not sent: {e}", a.service, s.instance);
                code = FAILED;
            }
        }
    }
    code
}

pub fn reload_service(a: ServiceArg) -> u8 {
    let path = match service_path(&a.service, "reload") {
        Ok(p) => p,
        Err(code) => return code,
    };
    let r = match call(&a.common, &path) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let list: Vec<Reloaded> = serde_json::from_value(r.json()["instances"].clone()).unwrap_or_default();
    let mut code = 0;
    for x in list {
        if x.ok {
            println!("{}.{}: reloaded (pid {}): {}", a.service, x.instance, x.pid, x.outcome);
        } else {
            eprintln!("corral: {}.{}: the reload failed (pid {}): {}", a.service, x.instance, x.pid, x.outcome);
            code = FAILED;
        }
    }
    code
}

pub fn scale(a: ScaleArgs) -> u8 {
    let Ok(n) = a.instances.parse::<u32>() else {
        crate::exit::error(format!("`{}` is not a number of instances: give 1 to 1000", a.instances));
        return BAD_CONFIG;
    };
    let path = match service_path(&a.service, "scale") {
        Ok(p) => format!("{p}?instances={n}"),
        Err(code) => return code,
    };
    match call(&a.common, &path) {
        Ok(r) => {
            let list: Vec<InstanceStatus> = serde_json::from_value(r.json()["instances"].clone()).unwrap_or_default();
            for i in list {
                println!("{}.{}: {}", i.service, i.instance, i.state);
            }
            0
        }
        Err(code) => code,
    }
}
