//! Runs that went by without a backup: the ones the schedule passed over (the
//! operator was down or behind, or a run came later than
//! `startingDeadlineSeconds`) and the ones a target still owed when the next
//! run came (it waited behind a backup in progress, or its create kept
//! failing). Each is counted as missed for a target only when FSx holds no
//! backup of that target tagged with that run: the status may be older than
//! what was done (a status write lost to a crash, an answer lost on the way),
//! and FSx's tags are the record. So every due run ends as exactly one backup
//! or one counted miss.

use std::collections::BTreeSet;

use super::{
    Backup, Counter, Effect, FsxError, Reason, SCHEDULED_TIME_KEY, Time, Timestamp, Work,
    is_backed_up,
};
use crate::ownership::is_owned_by;

/// Runs that may have been missed, to check against FSx.
#[derive(Debug, Default)]
pub struct PassedOver {
    /// Runs the schedule passed over, for every target, oldest first.
    pub slots: Vec<Timestamp>,
    /// How many more were passed over than listed (an outage of more than
    /// 10,000 runs): counted for every target, unverified.
    pub unlisted: u32,
    /// Runs one target owed: `(target, run, why)`.
    pub of_target: Vec<(String, Timestamp, String)>,
}

impl PassedOver {
    fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.unlisted == 0 && self.of_target.is_empty()
    }
}

impl Work {
    /// The targets whose backups must be listed before misses are counted.
    pub fn misses_to_verify(&self) -> Vec<String> {
        if self.passed_over.is_empty() {
            return Vec::new();
        }
        let everyone = !self.passed_over.slots.is_empty() || self.passed_over.unlisted > 0;
        let mut targets: BTreeSet<String> = self
            .passed_over
            .of_target
            .iter()
            .map(|(target, ..)| target.clone())
            .collect();
        if everyone {
            targets.extend(
                self.status
                    .targets
                    .iter()
                    .filter(|t| is_backed_up(t))
                    .map(|t| t.id.clone()),
            );
        }
        targets.into_iter().collect()
    }

    /// Counts as missed for `target_id` the runs it may have missed, except those
    /// of which `listed` (FSx's backups of the target) holds this object's backup.
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
        let unverified = if listed.is_err() {
            " (FSx could not be listed to check)"
        } else {
            ""
        };
        let owed: Vec<(Timestamp, String)> = self
            .passed_over
            .of_target
            .iter()
            .filter(|(target, slot, _)| target == target_id && !made.contains(slot))
            .map(|(_, slot, why)| (*slot, why.clone()))
            .collect();
        for (slot, why) in owed {
            self.count_missed(
                target_id,
                1,
                Some(slot),
                format!(
                    "backup of {target_id} for the run at {slot} was not taken in time: {why}{unverified}"
                ),
            );
        }
        if !self
            .status
            .targets
            .iter()
            .any(|t| t.id == target_id && is_backed_up(t))
        {
            return;
        }
        let passed: Vec<Timestamp> = self
            .passed_over
            .slots
            .iter()
            .copied()
            .filter(|slot| !made.contains(slot))
            .collect();
        let count = u32::try_from(passed.len())
            .unwrap_or(u32::MAX)
            .saturating_add(self.passed_over.unlisted);
        if count > 0 {
            let latest = passed.last().map(ToString::to_string).unwrap_or_default();
            self.count_missed(
                target_id,
                count,
                passed.last().copied(),
                format!(
                    "{count} scheduled run(s) of {target_id} not backed up (latest {latest}): later than startingDeadlineSeconds or superseded by a later run{unverified}"
                ),
            );
        }
    }

    fn count_missed(&mut self, target: &str, count: u32, latest: Option<Timestamp>, note: String) {
        let status = &mut self.status;
        status.missed_runs = Some(status.missed_runs.unwrap_or(0).saturating_add(count));
        if let Some(latest) = latest
            && status
                .last_missed_time
                .as_ref()
                .is_none_or(|t| t.0 < latest)
        {
            status.last_missed_time = Some(Time(latest));
        }
        self.effects.extend(Effect::failed(
            (Counter::MissedRuns, u64::from(count)),
            target,
            None,
            Reason::MissedSchedule,
            "CreateBackup",
            note,
        ));
    }

    /// Step 6, before deleting: the backups of `deletions` (of `target_id`)
    /// that retention may delete now. A backup of a run that a later check for
    /// missed runs will look for in FSx (a run the status as read does not
    /// record as taken, or one the target still owes) waits until the status
    /// accounts for it. Once the next run is taken, neither holds any more.
    pub fn deletable<'a>(
        &self,
        target_id: &str,
        deletions: Vec<&'a str>,
        backups: &[Backup],
    ) -> Vec<&'a str> {
        let unaccounted = |run: Timestamp| {
            self.unrecorded_from.is_some_and(|from| run >= from)
                || self
                    .owed
                    .as_ref()
                    .is_some_and(|(last, owing)| run == *last && owing.contains(target_id))
        };
        let waits = |id: &str| {
            backups.iter().any(|b| {
                b.id == id
                    && b.tags
                        .get(SCHEDULED_TIME_KEY)
                        .and_then(|t| t.parse::<Timestamp>().ok())
                        .is_some_and(unaccounted)
            })
        };
        deletions.into_iter().filter(|id| !waits(id)).collect()
    }
}
