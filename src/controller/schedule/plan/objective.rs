//! Step 7, before health: each selected target's recovery point against the
//! RPO (`crate::rpo`), and how the last run ended (`status.lastRunResult`).

use std::collections::BTreeMap;

use super::{Effect, Timestamp, ValidSchedule, Work, is_selected};
use crate::duration::format_duration;
use crate::fsx::Lifecycle;
use crate::rpo::{self, Judgement, Seen};

impl Work {
    /// Judges every selected target's newest AVAILABLE backup (as the status
    /// knows it: a listing this reconcile is the truth, a settled backup moves
    /// it forward) against the RPO; records it and the effects of a change.
    pub(super) fn judge_rpo(&mut self, now: Timestamp, valid: &ValidSchedule) -> Judgement {
        let targets: Vec<String> = self
            .status
            .targets
            .iter()
            .filter(|t| is_selected(t))
            .map(|t| t.id.clone())
            .collect();
        let seen: BTreeMap<String, Seen> = self
            .status
            .targets
            .iter()
            .map(|t| {
                let newest = t
                    .managed_backups
                    .iter()
                    .filter(|b| Lifecycle::parse(&b.lifecycle) == Lifecycle::Available)
                    .filter_map(|b| b.creation_time.as_ref().map(|c| c.0))
                    .max();
                let listing = self.listed.contains(&t.id);
                (t.id.clone(), Seen { newest, listing })
            })
            .collect();
        // A new object's clock starts at its creation; a target added later
        // (or to an object upgraded from before RPOs), when first seen.
        let start = if self.status.observed_generation.is_none() {
            valid.created.unwrap_or(now).min(now)
        } else {
            now
        };
        let judgement = rpo::judge(
            &self.status.recovery_points,
            &targets,
            &seen,
            valid.rpo,
            now,
            start,
            valid.suspended,
        );
        self.status.recovery_points.clone_from(&judgement.points);
        self.status.rpo = Some(format_duration(valid.rpo));
        self.effects.extend(judgement.effects.iter().cloned());
        self.effects.push(Effect::RecoveryPoints {
            dropped: judgement.dropped.clone(),
            rpo: valid.rpo,
            points: judgement.points.clone(),
        });
        judgement
    }

    /// `Succeeded`, `Failed`, `Missed` or `InProgress`: how the latest run of
    /// any target ended, the worst outcome of that run first.
    pub(super) fn record_last_run_result(&mut self) {
        let status = &self.status;
        let active: Vec<_> = status.targets.iter().filter(|t| is_selected(t)).collect();
        let last_run = status.last_schedule_time.as_ref().map(|t| t.0);
        let missed = status
            .last_missed_time
            .as_ref()
            .is_some_and(|m| last_run.is_none_or(|run| m.0 >= run));
        let backups: Vec<_> = active
            .iter()
            .filter_map(|t| t.last_backup.as_ref())
            .collect();
        let result = if missed {
            Some("Missed")
        } else if backups.iter().any(|b| b.failure_message.is_some()) {
            Some("Failed")
        } else if backups.iter().any(|b| b.settled != Some(true)) {
            Some("InProgress")
        } else if backups.is_empty() {
            None
        } else {
            Some("Succeeded")
        };
        self.status.last_run_result = result.map(str::to_owned);
    }
}
