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

/// The followed schedule's objective, as the copy inherits it.
#[derive(Debug)]
pub struct Followed {
    /// Its RPO, set or default.
    rpo: Duration,
    /// Suspended: neither it nor the copy is judged.
    suspended: bool,
    /// The targets it tracks: the copy tracks the same.
    tracked: Vec<String>,
}

impl Work {
    /// Follow mode: what the followed schedule says about its objective: its
    /// RPO (set or default; the copy's default is it plus [`COPY_ALLOWANCE`]),
    /// whether it is suspended (then neither is judged), and the targets it
    /// tracks (the copy tracks the same).
    pub fn followed_objective(&mut self, rpo: Duration, suspended: bool, tracked: Vec<String>) {
        self.followed = Some(Followed {
            rpo,
            suspended,
            tracked,
        });
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
        let Some(rpo) = valid.rpo.or_else(|| {
            self.followed
                .as_ref()
                .map(|f| f.rpo.saturating_add(COPY_ALLOWANCE))
        }) else {
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
        // A new object's clock starts at its creation; a target added later
        // (or to an object upgraded from before RPOs), when first seen.
        let start = if self.status.observed_generation.is_none() {
            self.created.unwrap_or(now).min(now)
        } else {
            now
        };
        let targets = self
            .followed
            .as_ref()
            .map_or_else(|| self.status.source_targets.clone(), |f| f.tracked.clone());
        let paused = self.followed.as_ref().is_some_and(|f| f.suspended);
        let judgement = rpo::judge(
            &self.status.recovery_points,
            &targets,
            &seen,
            rpo,
            now,
            start,
            paused,
        );
        self.status.recovery_points.clone_from(&judgement.points);
        self.status.rpo = Some(format_duration(rpo));
        self.effects.extend(judgement.effects.iter().cloned());
        self.effects.push(Effect::RecoveryPoints {
            dropped: judgement.dropped.clone(),
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
