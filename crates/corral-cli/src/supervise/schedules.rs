//! Under `corral status`: each scheduled service's next tick and how its
//! last run ended, one line per service.

use corral_supervisor::InstanceStatus;

/// Lines like `next run of backup: 2026-12-06T03:00:00.000Z (last run: exit code 0)`.
pub(super) fn print(list: &[InstanceStatus]) {
    let mut seen = std::collections::BTreeSet::new();
    for i in list {
        let Some(next) = &i.next_run else { continue };
        if !seen.insert(i.service.as_str()) {
            continue;
        }
        // The last run of any slot: the one whose exit is known, latest index first.
        let last = list.iter().filter(|o| o.service == i.service).filter_map(|o| o.last_exit.as_ref()).next_back();
        let last = last.map_or("none yet".to_string(), |e| e.reason.clone());
        println!("next run of {}: {next} (last run: {last})", i.service);
    }
}
