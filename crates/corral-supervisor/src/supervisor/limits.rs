//! `corral limit`: new limits for the running instances of a service,
//! applied to their groups without a restart. The config stays the truth:
//! the next start of an instance, or a reload, uses the config's limits
//! (write them into corral.toml to keep them).

use super::{Supervisor, Target, UnknownService};
use crate::event::EventKind;
use crate::live_limits::{LimitChange, LimitResult};

impl Supervisor {
    /// Applies `change` to every running instance of `service`; one result
    /// per instance.
    pub fn set_limits(&self, service: &str, change: &LimitChange) -> Result<Vec<LimitResult>, UnknownService> {
        let names = self.resolve(&Target::Some(vec![service.to_string()]))?;
        let mut out = Vec::new();
        for name in names {
            let handles: Vec<_> = self
                .services()
                .get(&name)
                .map(|s| s.instances.iter().map(|i| (i.index, i.group_handle(), i.status.clone())).collect())
                .unwrap_or_default();
            for (index, cell, status) in handles {
                let group = cell.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let state = status.borrow().state;
                let error = match &group {
                    None => Some(format!("not running ({state})")),
                    Some(g) => g.set_limits(change.apply(&g.limits())).err().map(|e| e.to_string()),
                };
                if let (Some(g), None) = (&group, &error) {
                    let reason = format!("limits changed live: {} (same run)", change.describe());
                    let mut e = crate::event::Event::daemon(reason);
                    (e.kind, e.service, e.instance, e.from, e.to, e.pid) =
                        (EventKind::Limit, name.clone(), index, state, state, Some(g.pid()));
                    self.events().emit(e);
                }
                out.push(LimitResult { service: name.clone(), instance: index, error });
            }
        }
        Ok(out)
    }
}
