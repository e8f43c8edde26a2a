//! Runs the schedule passed over (the operator was down or behind, or a run
//! came later than `startingDeadlineSeconds`): each one is counted as missed
//! for each target, unless FSx holds that target's backup of that run. The
//! status may be older than what was done (a status write lost to a crash or an
//! outage): FSx's tags are the record, so a lost write cannot fake a miss.

use std::collections::BTreeSet;

use super::{
    Backup, Counter, Effect, FsxError, Reason, SCHEDULED_TIME_KEY, Time, Timestamp, Work,
    is_backed_up,
};
use crate::ownership::is_owned_by;

/// The runs passed over by this reconcile.
#[derive(Debug, Default)]
pub struct PassedOver {
    /// The runs listed, oldest first.
    pub slots: Vec<Timestamp>,
    /// How many more were passed over than listed (an outage of more than
    /// 10,000 runs): counted for every target, unverified.
    pub unlisted: u32,
}

impl Work {
    /// The targets whose backups must be listed to count the runs passed over.
    pub fn misses_to_verify(&self) -> Vec<String> {
        if self.passed_over.slots.is_empty() && self.passed_over.unlisted == 0 {
            return Vec::new();
        }
        self.status
            .targets
            .iter()
            .filter(|t| is_backed_up(t))
            .map(|t| t.id.clone())
            .collect()
    }

    /// Counts the runs passed over as missed for `target_id`, except those of
    /// which `listed` (FSx's backups of the target) holds this object's backup.
    /// A listing that failed counts them all: a miss is never hidden.
    pub fn count_misses(
        &mut self,
        target_id: &str,
        owner_uid: &str,
        listed: &Result<Vec<Backup>, FsxError>,
    ) {
        let made: BTreeSet<Timestamp> = match listed {
            Ok(backups) => backups
                .iter()
                .filter(|b| is_owned_by(b, owner_uid))
                .filter_map(|b| b.tags.get(SCHEDULED_TIME_KEY)?.parse().ok())
                .collect(),
            Err(_) => BTreeSet::new(),
        };
        let missed: Vec<Timestamp> = self
            .passed_over
            .slots
            .iter()
            .copied()
            .filter(|slot| !made.contains(slot))
            .collect();
        let count = u32::try_from(missed.len())
            .unwrap_or(u32::MAX)
            .saturating_add(self.passed_over.unlisted);
        if count == 0 {
            return;
        }
        let status = &mut self.status;
        status.missed_runs = Some(status.missed_runs.unwrap_or(0).saturating_add(count));
        if let Some(latest) = missed.last() {
            status.last_missed_time = Some(Time(*latest));
        }
        let latest = missed.last().map(ToString::to_string).unwrap_or_default();
        let unverified = if listed.is_err() {
            " (FSx could not be listed to check)"
        } else {
            ""
        };
        self.effects.extend(Effect::failed(
            (Counter::MissedRuns, u64::from(count)),
            target_id,
            None,
            Reason::MissedSchedule,
            "Schedule",
            format!(
                "{count} scheduled run(s) of {target_id} not backed up (latest {latest}): later than startingDeadlineSeconds or superseded by a later run{unverified}"
            ),
        ));
    }
}
