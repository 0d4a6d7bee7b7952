//! From a service spec to a corral group: the command line, environment,
//! user, limits and stop policy. Nothing here runs anything.

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
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(&spec.env)
        .env("CORRAL_SERVICE", &spec.name)
        .env("CORRAL_INSTANCE", instance.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    if let Some(user) = &spec.user {
        as_user(&mut cmd, user)?;
    }
    Ok(cmd)
}

#[cfg(unix)]
fn as_user(cmd: &mut Command, user: &str) -> Result<(), String> {
    let acc = crate::user::lookup(user)?;
    cmd.uid(acc.uid).gid(acc.gid).env("HOME", &acc.home).env("USER", &acc.name).env("LOGNAME", &acc.name);
    Ok(())
}

#[cfg(not(unix))]
fn as_user(_cmd: &mut Command, _user: &str) -> Result<(), String> {
    Err("`user` is supported on Unix only".into())
}

/// The group settings of every instance of the service.
pub(crate) fn builder(spec: &ServiceSpec) -> corral::GroupBuilder {
    let b = corral::Group::builder().limits(spec.limits.clone()).stop(spec.stop);
    match spec.timeout {
        Some(t) => b.timeout(t),
        None => b,
    }
}
