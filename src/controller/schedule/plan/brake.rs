//! The deletion brake: when a new policy (a new `metadata.generation`) would
//! delete many of a target's AVAILABLE backups at once, nothing is deleted and
//! the object is `Stalled`/`DeletionHeld` until a person approves that
//! generation with the `fsxbackup.io/approve-deletions` annotation. Routine
//! pruning by a policy already applied (`status.retentionGeneration`) is never
//! held.

use super::{Effect, Health, Lifecycle, Reason, Verdict, Work, retention};
use crate::controller::{APPROVE_DELETIONS_ANNOTATION, Brake};

/// How far the current generation's retention got in this reconcile.
#[derive(Debug, Default)]
pub struct RetentionProgress {
    /// Targets whose deletions wait for approval, with the message saying so.
    held: Vec<(String, String)>,
    /// A target's retention could not run (its listing failed).
    incomplete: bool,
}

/// What the brake is checked against: its limits, and the generation approved.
#[derive(Clone, Copy, Debug)]
pub struct BrakeCheck<'a> {
    pub brake: Brake,
    pub approved: Option<i64>,
    /// `fsxbackupschedule NAME`, for the command that approves.
    pub object: &'a str,
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
        check: BrakeCheck<'_>,
    ) -> bool {
        if !self.retention_pending() {
            return false;
        }
        let available = plan
            .decisions
            .iter()
            .filter(|d| d.lifecycle == Lifecycle::Available);
        let total = available.clone().count();
        let deleting = available
            .filter(|d| matches!(d.verdict, Verdict::Delete { .. }))
            .count();
        let approved = check.approved.is_some() && check.approved == self.generation;
        if approved || !check.brake.trips(deleting, total) {
            return false;
        }
        let generation = self.generation.unwrap_or_default();
        let message = format!(
            "generation {generation} would delete {deleting} of the {total} AVAILABLE backups of {target_id} at once (the deletion brake holds more than {} or {}%); nothing is deleted. To confirm: kubectl annotate {} {APPROVE_DELETIONS_ANNOTATION}={generation} --overwrite",
            check.brake.max_deletions, check.brake.max_percent, check.object,
        );
        if self.status.conditions.iter().all(|c| c.message != message) {
            self.effects.push(Effect::event(
                true,
                Reason::DeletionHeld.as_str(),
                "DeleteBackup",
                message.clone(),
            ));
        }
        self.retention.held.push((target_id.to_owned(), message));
        true
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
