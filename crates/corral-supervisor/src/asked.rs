//! Which request an instance is carrying out, so the transitions it causes
//! name who asked (`actor` in their events).
//!
//! The supervisor sets the asker when it sends a start or a stop; the
//! instance task attaches it to each transition until the instance comes
//! to rest (`running`, `stopped`, `exited`, `failed`, `backoff`), where
//! the request's effect ends: a crash an hour later was asked by nobody.
//! A command sent without an asker (a reload, a dependency) clears it.

use crate::api::Actor;
use crate::State;
use std::sync::{Arc, Mutex};

/// Shared by an instance's handle (which sets it) and its task (which
/// reads it).
#[derive(Debug, Clone, Default)]
pub(crate) struct AskedBy(Arc<Mutex<Option<Actor>>>);

impl AskedBy {
    /// The next command is asked by `by` (or by nobody).
    pub fn set(&self, by: Option<Actor>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = by;
    }

    /// The asker of a transition to `to`; forgotten once `to` is a state
    /// of rest.
    pub fn take_for(&self, to: State) -> Option<Actor> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if at_rest(to) {
            slot.take()
        } else {
            slot.clone()
        }
    }
}

/// Where a start or a stop has had its whole effect.
fn at_rest(s: State) -> bool {
    !matches!(s, State::Starting | State::Stopping)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_its_transitions_until_the_instance_rests() {
        let by = AskedBy::default();
        by.set(Some(Actor::unix(0, Some(1))));
        assert!(by.take_for(State::Stopping).is_some());
        assert!(by.take_for(State::Stopped).is_some());
        assert_eq!(by.take_for(State::Starting), None, "the stop ended at rest");
        by.set(Some(Actor::unix(0, Some(2))));
        assert_eq!(by.take_for(State::Starting).and_then(|a| a.pid), Some(2));
        assert_eq!(by.take_for(State::Running).and_then(|a| a.pid), Some(2));
        assert_eq!(by.take_for(State::Backoff), None, "a later crash was asked by nobody");
        by.set(Some(Actor::unix(0, Some(3))));
        by.set(None);
        assert_eq!(by.take_for(State::Starting), None, "a command without an asker clears it");
    }
}
