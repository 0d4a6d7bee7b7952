//! `corral.toml`: what the daemon runs, read and checked whole before
//! anything starts. Reading a config has no effect on the system.

mod bounds;
mod diagnostic;
mod dotenv;
mod env_file;
pub(crate) mod file;
mod fleet;
mod hooks;
mod identity;
pub(crate) mod include;
mod inherit_env;
mod io_limits;
mod isolate;
mod log_output;
mod on_limit;
mod paths;
mod probe_body;
mod probes;
mod protocols;
mod raw;
mod schedule;
#[cfg(test)]
mod test_errors;
mod validate;
mod watch_restart;
mod web;
mod working_set;

pub use bounds::*;
pub use diagnostic::{did_you_mean, ConfigErrors, Diagnostic};
pub(crate) use env_file::read_all as read_env_files;
pub use env_file::{EnvFile, MAX_ENV_FILES, MAX_ENV_FILE_BYTES};
pub use file::MAX_CONFIG_BYTES;
pub(crate) use fleet::valid_segment;
pub use fleet::{check_endpoint, host_name, FleetAuth, FleetConfig, DEFAULT_TTL, TTL_RANGE};
pub use hooks::{HookCommand, Hooks, ReloadAction, HOOK_TIMEOUT_DEFAULT, HOOK_TIMEOUT_RANGE};
pub use identity::{Identity, MAX_SUPPLEMENTARY_GROUPS};
pub use include::{Included, MAX_INCLUDED_BYTES, MAX_INCLUDED_FILES};
pub use inherit_env::InheritEnv;
pub use paths::default_config_path;
pub use web::WebConfig;

use crate::policy::{Backoff, Condition, RestartPolicy, StartLimit};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Service specs by name, each shared with whoever runs it.
pub type Specs = BTreeMap<String, Arc<ServiceSpec>>;

/// A checked config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// Where the daemon keeps its socket, state and logs.
    pub daemon: DaemonConfig,
    /// `[fleet]`: desired state in etcd, when the node joins a fleet.
    pub fleet: Option<FleetConfig>,
    /// Services by name.
    /// Services by name, each shared with the service that runs it (one
    /// copy of a spec, some 2 KiB, in the daemon).
    pub services: Specs,
    /// The files `include` read, and the folders its patterns search.
    pub included: Included,
}

/// `[daemon]`. Relative paths are relative to the config file's folder.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// The control socket (default `<state_dir>/corral.sock`).
    pub socket: PathBuf,
    /// Events, persisted state (default `<config folder>/.corral`).
    pub state_dir: PathBuf,
    /// Service logs (default `<state_dir>/logs`).
    pub log_dir: PathBuf,
    /// The optional TCP listener, which needs TLS and a bearer token.
    pub tcp: Option<TcpConfig>,
    /// A plain TCP address that serves `GET /metrics` only (no control).
    pub metrics_listen: Option<SocketAddr>,
    /// Reload when the config file changes (default true).
    pub watch_config: bool,
    /// Rotation of `state_dir/events.jsonl` (`events = { max_size, keep }`,
    /// default 10 MiB and 5 files, like the logs).
    pub events: LogPolicy,
    /// How long an API or metrics client may take to finish its TLS
    /// handshake or send a request head, and may sit idle between requests
    /// (default 10 s, within [`DaemonConfig::CLIENT_TIMEOUT_RANGE`]).
    pub client_timeout: Duration,
    /// `web`: the dashboard's address and guard, when it is served.
    pub web: Option<WebConfig>,
    /// `logs = { format }`: the format of every service's files unless
    /// the service says (default text).
    pub log_format: crate::logs::LogFormat,
}

impl DaemonConfig {
    /// `client_timeout` when the config does not say.
    pub const CLIENT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
    /// The `client_timeout`s accepted: long enough for a slow link's
    /// handshake, short enough that silent peers cannot pile up for long.
    pub const CLIENT_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(300));
}

/// `[daemon.tcp]`: refused at start unless every field is there.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// A file whose first line is the bearer token.
    pub token_file: Option<PathBuf>,
}

/// One service, as declared. Two specs that compare equal run the same.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The service's name (a file name: letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The program and its arguments; with `shell = true`, `sh -c LINE`.
    pub command: Vec<String>,
    /// Extra environment, on top of the base one.
    pub env: BTreeMap<String, String>,
    /// Which of the daemon's own variables it receives (default: none).
    pub inherit_env: InheritEnv,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// How many copies run, each its own group.
    pub instances: u32,
    /// When an instance that ended by itself is started again.
    pub restart: RestartPolicy,
    /// Exit codes that count as success.
    pub success_exit_codes: Vec<i32>,
    /// Delay between restarts.
    pub backoff: Backoff,
    /// Past this many starts the instance is `failed`.
    pub start_limit: StartLimit,
    /// How an instance is stopped.
    pub stop: corral::StopPolicy,
    /// Limits of each instance's group.
    pub limits: corral::Limits,
    /// Wall-clock limit of each run.
    pub timeout: Option<Duration>,
    /// Services that must meet a condition before this one starts.
    pub depends_on: BTreeMap<String, Condition>,
    /// Log rotation.
    pub logs: LogPolicy,
    /// The log files' format and where lines are shipped.
    pub log_output: crate::logs::LogOutput,
    /// The user it runs as (Unix).
    pub user: Option<String>,
    /// Startup, readiness and liveness probes.
    pub health: crate::health::HealthSpec,
    /// Memory and CPU alerts on the whole group.
    pub alerts: Vec<crate::alerts::AlertSpec>,
    /// Record each run's lineage to `log_dir/<service>/<instance>.trace.jsonl`
    /// (see [`crate::tree`]).
    pub trace: bool,
    /// Namespaces, private filesystem view and privileges (`isolate`).
    pub isolate: corral::Isolation,
    /// `schedule` / `every`: a run at each tick (`instances` is then
    /// `max_concurrent`, each instance a slot for one run).
    pub schedule: Option<crate::schedule::ScheduleSpec>,
    /// `cron_restart`: a graceful restart at each tick.
    pub cron_restart: Option<crate::schedule::CronSpec>,
    /// `watch`: restart or signal on file changes.
    pub watch: Option<crate::watch_restart::WatchSpec>,
    /// `env_file`: dotenv files, read at every start (`env` wins over them).
    pub env_files: Vec<EnvFile>,
    /// `umask`, `group`, `supplementary_groups` (Unix).
    pub identity: Identity,
    /// `pre_start`, `post_start`, `pre_stop`, `post_stop`.
    pub hooks: Hooks,
    /// `reload_signal` or `reload`, for `corral reload-service`.
    pub reload: Option<ReloadAction>,
    /// `notify`, `notify_fd`, `watchdog`, `start_timeout`.
    pub notify: crate::sd_notify::NotifySpec,
    /// `sockets`: bound by the daemon, passed from fd 3.
    pub sockets: Vec<crate::activation::ListenSpec>,
}

impl ServiceSpec {
    /// True when only the instance count differs, so a reload can scale
    /// without touching running instances.
    pub fn same_but_instances(&self, other: &ServiceSpec) -> bool {
        let mut o = other.clone();
        o.instances = self.instances;
        *self == o
    }

    /// True when only the probes (`health`), the `alerts` and the limits a
    /// running group can take (memory, max_procs, cpus, on_limit) differ,
    /// so a reload can give the running instances new ones without a
    /// restart.
    pub fn same_but_health(&self, other: &ServiceSpec) -> bool {
        let mut o = other.clone();
        o.health = self.health.clone();
        o.alerts = self.alerts.clone();
        if crate::live_limits::live_changeable(&self.limits, &other.limits) {
            o.limits = self.limits.clone();
        }
        *self == o
    }
}

/// `logs = { max_size, keep }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPolicy {
    /// A file is rotated once it would grow past this.
    pub max_size: u64,
    /// Rotated files kept besides the current one.
    pub keep: u32,
}

impl LogPolicy {
    /// The most rotated files a policy may keep: each rotation renames
    /// every one of them.
    pub const MAX_KEEP: u32 = 1000;
}

impl Default for LogPolicy {
    fn default() -> Self {
        LogPolicy { max_size: 10 << 20, keep: 5 }
    }
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let shown = path.display().to_string();
    let fail = |message: String| {
        ConfigErrors(vec![Diagnostic {
            file: shown.clone(),
            line: 0,
            column: 0,
            message,
            expected: None,
            did_you_mean: None,
        }])
    };
    let bytes = file::read(path).map_err(fail)?;
    let src = String::from_utf8(bytes).map_err(|_| fail("the config is not UTF-8 text: TOML is UTF-8".into()))?;
    parse(&src, path)
}

/// Checks config text as if it were read from `path` (which names it in
/// errors and anchors relative paths).
pub fn parse(src: &str, path: &Path) -> Result<Config, ConfigErrors> {
    validate::parse(src, path)
}

/// Placements of fleet services, by name.
pub type Placements = BTreeMap<String, crate::fleet::Placement>;

/// Checks a fleet spec (`corral fleet apply -f`, or one service's value in
/// etcd): only services, each with its placement.
pub fn parse_fleet_spec(src: &str, path: &Path) -> Result<(Specs, Placements), ConfigErrors> {
    validate::parse_as(src, path, true).map(|(c, p)| (c.services, p))
}
