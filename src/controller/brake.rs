//! The deletion brake, shared by every kind: a new policy (a new
//! `metadata.generation`) that would delete many AVAILABLE backups at once
//! deletes nothing until a person approves that generation with the
//! `fsxbackup.io/approve-deletions` annotation. Routine pruning by the policy
//! already applied (`status.retentionGeneration`) is never held.

use crate::fsx::Lifecycle;
use crate::retention::{Plan, Verdict};

use super::APPROVE_DELETIONS_ANNOTATION;

/// A deletion brake with every limit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Brake {
    pub max_deletions: u32,
    pub max_percent: u32,
}

impl Default for Brake {
    fn default() -> Self {
        Self {
            max_deletions: 10,
            max_percent: 50,
        }
    }
}

impl Brake {
    /// The object's brake, its unset limits taken from `self` (the operator's).
    #[must_use]
    pub fn with(self, spec: Option<&crate::crd::common::DeletionBrake>) -> Self {
        Self {
            max_deletions: spec
                .and_then(|s| s.max_deletions)
                .unwrap_or(self.max_deletions),
            max_percent: spec.and_then(|s| s.max_percent).unwrap_or(self.max_percent),
        }
    }

    /// Whether deleting `deleted` of `available` AVAILABLE backups at once trips it.
    pub fn trips(self, deleted: usize, available: usize) -> bool {
        let percent = usize::try_from(self.max_percent).unwrap_or(usize::MAX);
        deleted > usize::try_from(self.max_deletions).unwrap_or(usize::MAX)
            || deleted.saturating_mul(100) > available.saturating_mul(percent)
    }
}

/// What the brake is checked against: its limits, and the generation approved.
#[derive(Clone, Copy, Debug)]
pub struct BrakeCheck<'a> {
    pub brake: Brake,
    pub approved: Option<i64>,
    /// `fsxbackupschedule NAME -n NAMESPACE`, for the command that approves.
    pub object: &'a str,
}

/// Why `plan`'s deletions among `what` (a target, a destination) must wait, or
/// `None` when they may go ahead: the policy of `generation` is not the one
/// `applied` yet, it would delete more than the brake allows, and that
/// generation is not approved.
pub fn held(
    plan: &Plan,
    what: &str,
    generation: Option<i64>,
    applied: Option<i64>,
    check: BrakeCheck<'_>,
) -> Option<String> {
    if applied == generation {
        return None;
    }
    let available = plan
        .decisions
        .iter()
        .filter(|d| d.lifecycle == Lifecycle::Available);
    let total = available.clone().count();
    let deleting = available
        .filter(|d| matches!(d.verdict, Verdict::Delete { .. }))
        .count();
    let approved = check.approved.is_some() && check.approved == generation;
    if approved || !check.brake.trips(deleting, total) {
        return None;
    }
    let generation = generation.unwrap_or_default();
    Some(format!(
        "generation {generation} would delete {deleting} of the {total} AVAILABLE backups of {what} at once (the deletion brake holds more than {} or {}%); nothing is deleted. To confirm: kubectl annotate {} {APPROVE_DELETIONS_ANNOTATION}={generation} --overwrite",
        check.brake.max_deletions, check.brake.max_percent, check.object,
    ))
}
