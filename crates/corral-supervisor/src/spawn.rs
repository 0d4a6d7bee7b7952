//! From a service spec to a corral group: the command line, environment
//! (built in `environment.rs`, never the daemon's whole own), user, limits
//! and stop policy. Nothing here runs anything.

use crate::config::ServiceSpec;
use corral::{Command, Stdio};

/// The command of one instance, with its pipes set up for capture.
pub(crate) fn command(spec: &ServiceSpec, instance: u32) -> Result<Command, String> {
    with_argv(spec, instance, &spec.command)
}

/// Another program (an exec probe) run like an instance of the service:
/// same environment, folder and user, its pipes set up for capture.
pub(crate) fn with_argv(spec: &ServiceSpec, instance: u32, argv: &[String]) -> Result<Command, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let account = match &spec.user {
        Some(user) => Some(crate::user::lookup(user)?),
        None => crate::user::current(),
    };
    // Read at every start, as systemd reads EnvironmentFile=.
    let files = crate::config::read_env_files(&spec.env_files)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(crate::environment::build(spec, instance, account.as_ref(), &files, std::env::vars_os()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    if let (Some(_), Some(acc)) = (&spec.user, &account) {
        as_user(&mut cmd, acc);
    }
    identity(&mut cmd, &spec.identity)?;
    Ok(cmd)
}

/// `group`, `supplementary_groups` and `umask`, resolved now (a group
/// renamed since the load is found by its new name's absence here).
#[cfg(unix)]
fn identity(cmd: &mut Command, id: &crate::config::Identity) -> Result<(), String> {
    if let Some(g) = &id.group {
        cmd.gid(crate::groups::lookup(g)?);
    }
    if let Some(names) = &id.supplementary_groups {
        let gids = names.iter().map(|g| crate::groups::lookup(g)).collect::<Result<Vec<u32>, String>>()?;
        cmd.groups(&gids);
    }
    if let Some(m) = id.umask {
        cmd.umask(m);
    }
    Ok(())
}

/// The config check refused these keys off Unix.
#[cfg(not(unix))]
fn identity(_cmd: &mut Command, _id: &crate::config::Identity) -> Result<(), String> {
    Ok(())
}

#[cfg(unix)]
fn as_user(cmd: &mut Command, acc: &crate::user::Account) {
    cmd.uid(acc.uid).gid(acc.gid);
}

/// `user::lookup` already refused `user =` off Unix.
#[cfg(not(unix))]
fn as_user(_cmd: &mut Command, _acc: &crate::user::Account) {}

/// The group settings of every instance of the service.
pub(crate) fn builder(spec: &ServiceSpec) -> corral::GroupBuilder {
    // A restarted daemon takes its groups back (see `reattach`): a leader
    // must not die with the daemon. Events are held from the start for the
    // lineage follower (`tree::follow`) of a traced service only: recording
    // them keeps the host-wide process-event connector open, which costs
    // the idle daemon a wake-up for every fork on the host.
    let b = corral::Group::builder()
        .limits(spec.limits.clone())
        .stop(spec.stop)
        .outlive_controller(true)
        .record_events(spec.trace)
        .isolate(spec.isolate.clone());
    match spec.timeout {
        Some(t) => b.timeout(t),
        None => b,
    }
}
