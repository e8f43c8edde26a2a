//! The deletion brake (`controller::brake`) per target of a schedule: held
//! targets keep their backups and make the object `Stalled`/`DeletionHeld`;
//! `status.retentionGeneration` advances once every target's retention ran.

use super::{Health, Reason, Work, retention};
use crate::controller::brake::{self, BrakeCheck};

/// How far the current generation's retention got in this reconcile.
#[derive(Debug, Default)]
pub struct RetentionProgress {
    /// Targets whose deletions wait for approval, with the message saying so.
    held: Vec<(String, String)>,
    /// A target's retention could not run (its listing failed).
    incomplete: bool,
}

impl Work {
    /// The policy changed since retention last ran to the end for every target.
    pub fn retention_pending(&self) -> bool {
        self.status.retention_generation != self.generation
    }

    /// Step 6, before deleting: whether the deletions `plan` makes for
    /// `target_id` must wait for approval.
    pub fn hold_deletions(
        &mut self,
        target_id: &str,
        plan: &retention::Plan,
        check: &BrakeCheck,
    ) -> bool {
        let applied = self.status.retention_generation;
        let Some(message) = brake::held(plan, target_id, self.generation, applied, check) else {
            return false;
        };
        self.effects
            .extend(brake::announce(&self.status.conditions, &message));
        self.retention.held.push((target_id.to_owned(), message));
        true
    }

    /// Backups were adopted: new to the policy, so retention counts as not
    /// applied and the brake judges every target's pruning (now and in later
    /// reconciles) until a pass deletes within its limits or the generation is
    /// approved.
    pub fn adopted(&mut self) {
        self.status.retention_generation = None;
    }

    pub(super) fn is_held(&self, target_id: &str) -> bool {
        self.retention.held.iter().any(|(t, _)| t == target_id)
    }

    pub(super) fn retention_incomplete(&mut self) {
        self.retention.incomplete = true;
    }

    /// `Stalled`/`DeletionHeld` while any target's deletions wait.
    pub(super) fn held_health(&self) -> Option<Health> {
        let (_, message) = self.retention.held.first()?;
        Some(Health::stalled(Reason::DeletionHeld, message.clone()))
    }

    /// Once every target's retention ran for this generation, unheld: it is the
    /// applied one, and its pruning is routine from now on.
    pub(super) fn record_retention_generation(&mut self) {
        if self.retention_pending() && self.retention.held.is_empty() && !self.retention.incomplete
        {
            self.status.retention_generation = self.generation;
        }
    }
}
