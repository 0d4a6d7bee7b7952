//! A restarted daemon takes back, alive, the groups its predecessor
//! recorded, instead of killing them: after a crash (SIGKILL, OOM) or an
//! upgrade, services keep their pids.
//!
//! A record is taken back only when its service is still configured with
//! that instance, and when the library finds the very leader it names
//! (same pid *and* start time: a reused pid never matches) still in that
//! group (its cgroup or its tag). Everything else is killed as before,
//! and each refusal is told in one line (stderr and a `daemon` event).
//!
//! Services are started with `outlive_controller(true)` for this: a
//! leader no longer dies with the daemon; its cgroup holds the group
//! until the next daemon takes it back or, if it cannot, kills it.

use crate::config::{ServiceSpec, Specs};
use crate::persist::{GroupRecord, Leftovers};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// Groups taken back, each waiting for its instance to pick it up. What
/// no instance picks up is killed when this is dropped (a `Group` kills
/// on drop).
#[derive(Default)]
pub(crate) struct TakenBack(Mutex<BTreeMap<(String, u32), Back>>);

/// One group taken back, with its pipes' read ends when the log holder
/// kept them.
pub(crate) struct Back {
    pub group: corral::Group,
    pub pipes: Option<(std::process::ChildStdout, std::process::ChildStderr)>,
}

impl TakenBack {
    /// The group instance `index` of `service` ran before the restart.
    pub fn take(&self, service: &str, index: u32) -> Option<Back> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&(service.to_string(), index))
    }

    /// Whether a group of instance `index` of `service` waits to be picked
    /// up: its run already started under the previous daemon, so the start
    /// hooks (`pre_start`, `post_start`) ran then and must not run again.
    pub fn holds(&self, service: &str, index: u32) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&(service.to_string(), index))
    }

    /// The leader of each group taken back, by service.
    #[cfg(target_os = "linux")]
    pub fn leaders(&self) -> Vec<(String, u32)> {
        let taken = self.0.lock().unwrap_or_else(|p| p.into_inner());
        taken.iter().map(|((service, _), b)| (service.clone(), b.group.pid())).collect()
    }

    pub fn put(&self, other: TakenBack) {
        let more = other.0.into_inner().unwrap_or_else(|p| p.into_inner());
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend(more);
    }
}

/// Whether a record may be taken back at all, before anything is asked
/// of the OS: its service and instance are still configured, and its
/// leader's start time was recorded.
pub(crate) fn wanted<'a>(rec: &GroupRecord, services: &'a Specs) -> Result<(&'a ServiceSpec, u64), String> {
    let spec = services.get(&rec.service).ok_or_else(|| "the service is no longer configured".to_string())?;
    if rec.instance >= spec.instances {
        return Err(format!("the service now has {} instance(s)", spec.instances));
    }
    let start = rec.start.ok_or_else(|| "no start time was recorded for its leader".to_string())?;
    Ok((spec, start))
}

/// Takes back what can be, kills the rest (`persist::reap_previous`).
/// Returns what was left, the groups taken back, and one line per group
/// that could not be taken back.
pub(crate) fn previous(
    state_dir: &Path,
    services: &Specs,
    mut pipes: crate::holder::Taken,
) -> Result<(Leftovers, TakenBack, Vec<String>), String> {
    let mut taken = BTreeMap::new();
    let mut refused = Vec::new();
    let left = crate::persist::reap_previous(state_dir, |rec| {
        let name = format!("{}.{} (group {}, pid {})", rec.service, rec.instance, rec.group_id, rec.pid);
        let tried = wanted(rec, services).and_then(|(spec, start)| {
            crate::spawn::builder(spec)
                .outlive_controller(true)
                .reattach(&rec.group_id, rec.pid, start)
                .map_err(|e| e.to_string())
        });
        match tried {
            Ok(group) => {
                let back = Back { group, pipes: pipes.remove(&rec.group_id) };
                taken.insert((rec.service.clone(), rec.instance), back);
                true
            }
            Err(why) => {
                refused.push(format!("not re-attached: {name}: {why}; killed instead"));
                false
            }
        }
    })?;
    Ok((left, TakenBack(Mutex::new(taken)), refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(service: &str, instance: u32, start: Option<u64>) -> GroupRecord {
        GroupRecord {
            service: service.into(),
            instance,
            group_id: "1-1".into(),
            pid: 10,
            backend: "hybrid".into(),
            location: String::new(),
            start,
        }
    }

    #[test]
    fn only_a_configured_instance_with_a_recorded_start_is_taken_back() {
        let cfg =
            crate::config::parse("[services.web]\ncommand = [\"x\"]\ninstances = 2\n", Path::new("/t/corral.toml"))
                .unwrap();
        let services = &cfg.services;
        assert_eq!(wanted(&rec("web", 1, Some(5)), services).map(|(_, s)| s), Ok(5));
        assert!(wanted(&rec("db", 0, Some(5)), services).unwrap_err().contains("no longer configured"));
        assert!(wanted(&rec("web", 2, Some(5)), services).unwrap_err().contains("2 instance(s)"));
        assert!(wanted(&rec("web", 0, None), services).unwrap_err().contains("no start time"));
    }
}
