//! The copy's recovery points against the RPO (`crate::rpo`), per source
//! target: the source creation time of its newest AVAILABLE copy. And how the
//! latest copy ended (`status.lastRunResult`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{CopyPhase, Effect, Lifecycle, Source, Timestamp, ValidCopy, Work, is_pending};
use crate::duration::format_duration;
use crate::fsx::Backup;
use crate::retention::{self, Verdict};
use crate::rpo::{self, COPY_ALLOWANCE, Judgement, Seen};

impl Work {
    /// Follow mode: the followed schedule's RPO (set or default); the copy's
    /// default is it plus [`COPY_ALLOWANCE`].
    pub fn followed_rpo(&mut self, rpo: Duration) {
        self.source_rpo = Some(rpo);
    }

    /// Retention listed the destination: per source target, the newest AVAILABLE
    /// copy left (`deleted` ones gone) is the truth, older or not.
    pub(super) fn listed_copies(
        &mut self,
        plan: &retention::Plan,
        copies: &[Backup],
        deleted: &[(String, Result<(), crate::fsx::FsxError>)],
    ) {
        let mut newest: BTreeMap<String, Option<Timestamp>> = self
            .status
            .source_targets
            .iter()
            .map(|t| (t.clone(), None))
            .collect();
        for decision in plan.decisions.iter().filter(|d| {
            d.lifecycle == Lifecycle::Available
                && !(matches!(d.verdict, Verdict::Delete { .. })
                    && deleted
                        .iter()
                        .any(|(id, done)| *id == d.backup_id && done.is_ok()))
        }) {
            let Some(copy) = copies.iter().find(|c| c.id == decision.backup_id) else {
                continue;
            };
            let Some(target) = copy.target.as_ref().map(|t| t.id().to_owned()) else {
                continue;
            };
            // The recovery point is the source's creation; the copy's own is a bound.
            let point = self
                .status
                .copies
                .iter()
                .find(|c| c.destination_backup_id.as_deref() == Some(copy.id.as_str()))
                .and_then(|c| c.source_creation_time.as_ref().map(|t| t.0))
                .or(copy.created_at);
            let slot = newest.entry(target).or_default();
            *slot = (*slot).max(point);
        }
        self.listed = Some(newest);
    }

    /// Follow mode with an RPO known: judges every source target.
    pub(super) fn judge_rpo(&mut self, now: Timestamp, valid: &ValidCopy) -> Judgement {
        let Source::Schedule { .. } = valid.source else {
            return Judgement::default();
        };
        let Some(rpo) = valid
            .rpo
            .or_else(|| self.source_rpo.map(|r| r + COPY_ALLOWANCE))
        else {
            // The schedule cannot be read: its own health says so; keep the points.
            return Judgement::default();
        };
        let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
        for entry in self
            .status
            .copies
            .iter()
            .filter(|c| CopyPhase::of(c) == CopyPhase::Fsx(Lifecycle::Available))
        {
            let Some(target) = &entry.target else {
                continue;
            };
            let at = entry.source_creation_time.as_ref().map(|t| t.0);
            let slot = seen.entry(target.clone()).or_insert(Seen {
                newest: None,
                listing: false,
            });
            slot.newest = slot.newest.max(at);
        }
        for (target, newest) in self.listed.iter().flatten() {
            seen.insert(
                target.clone(),
                Seen {
                    newest: *newest,
                    listing: true,
                },
            );
        }
        let start = if self.status.recovery_points.is_empty() {
            self.created.unwrap_or(now).min(now)
        } else {
            now
        };
        let judgement = rpo::judge(
            &self.status.recovery_points,
            &self.status.source_targets,
            &seen,
            rpo,
            now,
            start,
            false,
        );
        self.status.recovery_points.clone_from(&judgement.points);
        self.status.rpo = Some(format_duration(rpo));
        self.effects.extend(judgement.effects.iter().cloned());
        self.effects.push(Effect::RecoveryPoints {
            rpo,
            points: judgement.points.clone(),
        });
        judgement
    }

    /// How the newest copy ended: `Succeeded`, `Failed`, `SourceGone` or `InProgress`.
    pub(super) fn record_last_run_result(&mut self) {
        let newest = self
            .status
            .copies
            .iter()
            .filter(|c| CopyPhase::of(c) != CopyPhase::Fsx(Lifecycle::Deleted))
            .max_by_key(|c| c.source_creation_time.as_ref().map(|t| t.0));
        let result = newest.map(|c| match CopyPhase::of(c) {
            CopyPhase::Fsx(Lifecycle::Available) => "Succeeded",
            CopyPhase::Fsx(Lifecycle::Failed) | CopyPhase::Blocked => "Failed",
            CopyPhase::SourceGone => "SourceGone",
            _ if is_pending(c) => "InProgress",
            _ => "InProgress",
        });
        self.status.last_run_result = result.map(str::to_owned);
    }
}
