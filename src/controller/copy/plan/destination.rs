//! What the object has in the destination: the copies found there (its own,
//! or adopted from an earlier object of its name) and what its retention
//! prunes, through the deletion brake.

use super::{
    BrakeCheck, CopyPhase, Counter, Effect, FsxError, Lifecycle, Reason, SOURCE_BACKUP_KEY,
    Timestamp, Verdict, Work, brake, is_owned_by, is_pending, retention,
};
use crate::fsx::Backup;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

impl Work {
    /// Copies this object already has in the destination (its own, or adopted
    /// from an earlier object of its name) for sources it has no record of:
    /// recorded as found instead of copied again. Finished-badly ones are
    /// ignored, so that source is copied anew.
    pub fn found_in_destination(&mut self, copies: &[Backup], uid: &str) {
        for copy in copies.iter().filter(|c| is_owned_by(c, uid)) {
            let alive = matches!(
                copy.lifecycle,
                Lifecycle::Available
                    | Lifecycle::Creating
                    | Lifecycle::Transferring
                    | Lifecycle::Pending
                    | Lifecycle::Copying
            );
            let Some(source) = copy.tags.get(SOURCE_BACKUP_KEY).filter(|_| alive) else {
                continue;
            };
            let Some(entry) = self
                .status
                .copies
                .iter_mut()
                .find(|c| &c.source_backup_id == source && is_pending(c))
            else {
                continue;
            };
            entry.destination_backup_id = Some(copy.id.clone());
            entry.message = Some(format!("found in the destination as {}", copy.id));
            entry.progress_percent = copy.progress_percent;
            if copy.lifecycle == Lifecycle::Available {
                entry.completion_time = copy.created_at.map(Time);
            }
            CopyPhase::Fsx(copy.lifecycle.clone()).set(entry);
        }
    }

    /// Copies were adopted: they are new to the policy, so retention counts as
    /// not applied yet and the deletion brake judges their pruning (in this and
    /// every later reconcile) until a pass deletes within its limits or the
    /// generation is approved.
    pub fn adopted(&mut self) {
        self.status.retention_generation = None;
    }

    /// No copy was ever started: the destination may hold copies this object
    /// does not know of yet (a re-created object's, or a status rebuilt from nothing).
    pub fn never_copied(&self) -> bool {
        self.status.copied_through.is_none()
            && self
                .status
                .copies
                .iter()
                .all(|c| c.destination_backup_id.is_none())
    }

    /// Retention is due: something it depends on changed, or a copy expired.
    pub fn retention_wanted(&self, expiry_passed: bool) -> bool {
        self.retention_due
            || self.spec_changed
            || expiry_passed
            || self.status.retention_generation != self.generation
    }

    /// Before deleting: whether the deletions `plan` makes in `destination` must
    /// wait for the approval of this generation (the deletion brake).
    pub fn hold_deletions(
        &mut self,
        destination: &str,
        plan: &retention::Plan,
        check: &BrakeCheck,
    ) -> bool {
        let what = format!("copies in {destination}");
        let applied = self.status.retention_generation;
        let Some(message) = brake::held(plan, &what, self.generation, applied, check) else {
            return false;
        };
        self.effects
            .extend(brake::announce(&self.status.conditions, &message));
        self.stalled = Some((Reason::DeletionHeld, message));
        true
    }

    /// What retention did: `plan` over this object's copies, and the answer to
    /// each deletion sent. Returns when retention must look again: when it next
    /// expires a copy, or `now` when a deletion failed (retried at the retry pace).
    pub fn pruned(
        &mut self,
        now: Timestamp,
        destination: &str,
        plan: &retention::Plan,
        copies: &[Backup],
        deleted: &[(String, Result<(), FsxError>)],
    ) -> Option<Timestamp> {
        let mut first_error = None;
        for decision in &plan.decisions {
            let Verdict::Delete { reason } = &decision.verdict else {
                continue;
            };
            match deleted.iter().find(|(id, _)| *id == decision.backup_id) {
                Some((id, Ok(()))) => {
                    let source = copies
                        .iter()
                        .find(|b| b.id == *id)
                        .and_then(|b| b.tags.get(SOURCE_BACKUP_KEY).cloned())
                        .unwrap_or_default();
                    if let Some(entry) = self
                        .status
                        .copies
                        .iter_mut()
                        .find(|c| c.destination_backup_id.as_deref() == Some(id.as_str()))
                    {
                        CopyPhase::Fsx(Lifecycle::Deleted).set(entry);
                        entry.message = Some(format!("deleted by retention ({})", reason.as_str()));
                    }
                    self.effects.extend(Effect::done(
                        Counter::CopiesDeleted,
                        "CopyPruned",
                        "DeleteBackup",
                        format!(
                            "copy {id} of {source} in {destination} deleted by retention ({})",
                            reason.as_str()
                        ),
                    ));
                }
                Some((_, Err(err))) => {
                    first_error.get_or_insert_with(|| err.clone());
                }
                None => {}
            }
        }
        self.listed_copies(plan, copies, deleted);
        let held = matches!(self.stalled, Some((Reason::DeletionHeld, _)));
        let again = if let Some(err) = first_error {
            self.error(&err);
            Some(now)
        } else {
            if !held {
                // This generation's policy is applied: its pruning is routine from now on.
                self.status.retention_generation = self.generation;
            }
            plan.next_expiry
        };
        self.next_expiry = plan.next_expiry;
        again
    }
}
