//! `corral fleet …`: the operator's verbs on a fleet's desired state in
//! etcd. They talk to etcd directly (no daemon needed). Exit codes: 0
//! done, 1 failed (etcd unreachable or refused), 2 bad input (nothing was
//! written).

mod show;

use crate::supervise::{BAD_CONFIG, FAILED};
use clap::{Args, Subcommand};
use corral_supervisor::config::{self, FleetAuth};
use corral_supervisor::fleet::ops::{self, Target};
use std::path::PathBuf;

/// Fleet subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Check a spec file like `corral check`, then write the services that changed.
    Apply(ApplyArgs),
    /// Every node, every service, which revision runs where, and readiness.
    Status(ReadArgs),
    /// The live nodes (their lease is alive).
    Nodes(ReadArgs),
    /// Set a service's instances per node.
    Scale(ScaleArgs),
    /// A gray release: status, pause, resume, promote, abort, rollback.
    Rollout(RolloutArgs),
}

/// Which fleet: `--endpoints` and `--cluster`, or `-c corral.toml`'s [fleet].
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// etcd endpoints, comma-separated (http:// only to loopback unless --insecure).
    #[arg(long, value_name = "URL,…", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// The cluster name (keys under /corral/<cluster>/).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Read endpoints, cluster and credentials from this config's [fleet].
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Allow plain http:// to a non-loopback endpoint.
    #[arg(long)]
    pub insecure: bool,
}

/// `apply -f FILE`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The spec file: [services.NAME] tables, each with an optional placement.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Gray release: the share of nodes that gets a changed service first, like 10%.
    #[arg(long, value_name = "PERCENT", value_parser = percent)]
    pub canary: Option<u8>,
    /// With --canary: the share added by each next step [default: 25%].
    #[arg(long, value_name = "PERCENT", value_parser = percent, requires = "canary")]
    pub step: Option<u8>,
    /// With --canary: how long each step must be ready before the next [default: 1m; at most 1h].
    #[arg(long, value_name = "DURATION", value_parser = pause, requires = "canary")]
    pub pause: Option<std::time::Duration>,
    /// With --canary: roll the whole service back by itself when a step fails.
    #[arg(long, requires = "canary")]
    pub auto_rollback: bool,
}

fn percent(s: &str) -> Result<u8, String> {
    match s.strip_suffix('%').unwrap_or(s).parse::<u8>() {
        Ok(p) if (1..=100).contains(&p) => Ok(p),
        _ => Err(format!("`{s}` is not a percentage from 1% to 100%")),
    }
}

fn pause(s: &str) -> Result<std::time::Duration, String> {
    match corral::units::parse_duration(s) {
        Ok(d) if d <= std::time::Duration::from_secs(3600) => Ok(d),
        Ok(_) => Err("at most 1h".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `rollout VERB SERVICE`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// status, pause, resume, promote, abort or rollback.
    #[arg(value_parser = ["status", "pause", "resume", "promote", "abort", "rollback"])]
    pub verb: String,
    /// The service.
    pub service: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A read, with `--json`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `scale SERVICE N`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The service.
    pub service: String,
    /// Instances per node (1 to 1000).
    #[arg(value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub instances: u32,
}

/// Runs one verb and returns the exit code.
pub fn main(cmd: Cmd) -> u8 {
    let fleet = match &cmd {
        Cmd::Apply(a) => &a.fleet,
        Cmd::Status(a) | Cmd::Nodes(a) => &a.fleet,
        Cmd::Scale(a) => &a.fleet,
        Cmd::Rollout(a) => &a.fleet,
    };
    let target = match target(fleet) {
        Ok(t) => t,
        Err(e) => {
            crate::exit::error(e);
            return BAD_CONFIG;
        }
    };
    let rt = crate::supervise::runtime();
    match cmd {
        Cmd::Apply(a) => {
            let gray = a.canary.map(|canary| ops::Gray {
                canary,
                step: a.step.unwrap_or(25),
                pause: a.pause.unwrap_or(std::time::Duration::from_secs(60)),
                auto_rollback: a.auto_rollback,
            });
            apply(&rt, &target, &a.file, gray)
        }
        Cmd::Rollout(a) => {
            let verb = match a.verb.as_str() {
                "pause" => Some(ops::RolloutVerb::Pause),
                "resume" => Some(ops::RolloutVerb::Resume),
                "promote" => Some(ops::RolloutVerb::Promote),
                "abort" => Some(ops::RolloutVerb::Abort),
                "rollback" => Some(ops::RolloutVerb::Rollback),
                _ => None,
            };
            let r = match verb {
                Some(v) => rt.block_on(ops::rollout(&target, &a.service, v)),
                None => rt.block_on(ops::rollout_status(&target, &a.service)),
            };
            done(r.map(|r| show::rollout(&a.service, &r, a.json)))
        }
        Cmd::Status(a) => done(rt.block_on(ops::status(&target)).map(|s| show::status(&s, a.json))),
        Cmd::Nodes(a) => done(rt.block_on(ops::nodes(&target)).map(|n| show::nodes(&n, a.json))),
        Cmd::Scale(a) => done(rt.block_on(ops::scale(&target, &a.service, a.instances)).map(|rev| {
            println!("{}: {} instance(s) per node, revision {rev}", a.service, a.instances);
        })),
    }
}

fn apply(rt: &tokio::runtime::Runtime, target: &Target, file: &std::path::Path, gray: Option<ops::Gray>) -> u8 {
    // Checked here first, to print every error as `corral check` does.
    let src = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            crate::exit::error(format!("cannot read {}: {e}", file.display()));
            return BAD_CONFIG;
        }
    };
    if let Err(errors) = corral_supervisor::fleet::spec::split(&src, file) {
        for d in &errors.0 {
            eprintln!("error: {d}");
        }
        crate::exit::error(format!("{} error(s) in {}; nothing was written", errors.0.len(), file.display()));
        return BAD_CONFIG;
    }
    done(rt.block_on(ops::apply(target, file, gray)).map(|a| {
        for (name, rev) in &a.changed {
            println!("{name}: revision {rev}");
        }
        for name in &a.unchanged {
            println!("{name}: unchanged");
        }
    }))
}

fn done(r: Result<(), String>) -> u8 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            crate::exit::error(e);
            FAILED
        }
    }
}

/// The fleet named by the flags, or by the config's [fleet]; every
/// endpoint checked (plain http only to loopback unless --insecure).
fn target(a: &FleetArgs) -> Result<Target, String> {
    let from_file = match &a.config {
        Some(path) => {
            let c = config::load(path).map_err(|e| e.to_string().lines().next().unwrap_or_default().to_string())?;
            Some(c.fleet.ok_or_else(|| format!("{} has no [fleet] table", path.display()))?)
        }
        None => None,
    };
    let endpoints = match (a.endpoints.is_empty(), &from_file) {
        (false, _) => a.endpoints.clone(),
        (true, Some(f)) => f.endpoints.clone(),
        (true, None) => return Err("which fleet? give --endpoints URL,… and --cluster NAME, or -c corral.toml".into()),
    };
    for e in &endpoints {
        config::check_endpoint(e, a.insecure).map_err(|why| format!("{why} (use https://, or --insecure)"))?;
    }
    let cluster = match (&a.cluster, &from_file) {
        (Some(c), _) => c.clone(),
        (None, Some(f)) => f.cluster.clone(),
        (None, None) => return Err("which cluster? give --cluster NAME, or -c corral.toml".into()),
    };
    let auth = from_file.map(|f| f.auth).unwrap_or_else(FleetAuth::default);
    Ok(Target { endpoints, cluster, auth })
}
