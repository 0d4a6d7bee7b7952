//! What a tick does: start a run in a free slot, or, when every slot has
//! a run going, what `on_overlap` says. Pure: the runner gives the slots'
//! state.

use serde::Deserialize;

/// `on_overlap`: a tick while `max_concurrent` runs are still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// The tick is dropped (cron's way, Kubernetes' `Forbid`).
    #[default]
    Skip,
    /// The run starts as soon as a slot frees; at most `max_concurrent`
    /// ticks wait, further ones are dropped.
    Queue,
    /// The oldest run is stopped gracefully and a new one takes its slot
    /// (Kubernetes' `Replace`).
    Replace,
}

impl Overlap {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Replace => "replace",
        }
    }
}

/// A tick's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Start a run in this free slot.
    Start(usize),
    /// Every slot is busy: drop the tick.
    Skip,
    /// Every slot is busy: start when one frees.
    Queue,
    /// Stop the run in this slot (the oldest), then start one there.
    Replace(usize),
}

/// `busy[i]`: slot `i` has a run going; `started[i]`: when its run began
/// (any increasing count), to find the oldest; `queued`: ticks already
/// waiting.
pub(crate) fn on_tick(policy: Overlap, busy: &[bool], started: &[u64], queued: usize) -> Tick {
    if let Some(free) = busy.iter().position(|b| !b) {
        return Tick::Start(free);
    }
    match policy {
        Overlap::Skip => Tick::Skip,
        Overlap::Queue if queued < busy.len() => Tick::Queue,
        Overlap::Queue => Tick::Skip,
        Overlap::Replace => {
            let oldest = (0..busy.len()).min_by_key(|&i| started.get(i).copied().unwrap_or(0));
            oldest.map_or(Tick::Skip, Tick::Replace)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_slot_always_starts() {
        for p in [Overlap::Skip, Overlap::Queue, Overlap::Replace] {
            assert_eq!(on_tick(p, &[true, false], &[1, 0], 0), Tick::Start(1));
        }
    }

    #[test]
    fn a_full_house_skips_queues_within_bounds_or_replaces_the_oldest() {
        let busy = [true, true];
        assert_eq!(on_tick(Overlap::Skip, &busy, &[1, 2], 0), Tick::Skip);
        assert_eq!(on_tick(Overlap::Queue, &busy, &[1, 2], 1), Tick::Queue);
        assert_eq!(on_tick(Overlap::Queue, &busy, &[1, 2], 2), Tick::Skip, "at most max_concurrent wait");
        assert_eq!(on_tick(Overlap::Replace, &busy, &[7, 3], 0), Tick::Replace(1));
    }
}
