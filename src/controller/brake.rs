//! The deletion brake, shared by every kind: a new policy (a new
//! `metadata.generation`) that would delete many AVAILABLE backups at once
//! deletes nothing until a person approves that generation with the
//! `fsxbackup.io/approve-deletions` annotation. Routine pruning by the policy
//! already applied (`status.retentionGeneration`) is never held.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Resource, ResourceExt};

use crate::conditions::Reason;
use crate::crd::common::DeletionBrake;
use crate::fsx::Lifecycle;
use crate::retention::{Plan, Verdict};

use super::APPROVE_DELETIONS_ANNOTATION;
use super::effects::Effect;

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
    pub fn with(self, spec: Option<&DeletionBrake>) -> Self {
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
#[derive(Clone, Debug)]
pub struct BrakeCheck {
    pub brake: Brake,
    pub approved: Option<i64>,
    /// `fsxbackupschedule NAME -n NAMESPACE`, for the command that approves.
    pub object: String,
}

impl BrakeCheck {
    /// The check for `object`: its own limits over the operator's `defaults`, and
    /// the generation its `fsxbackup.io/approve-deletions` annotation approves.
    pub fn of<K: Resource<DynamicType = ()>>(
        defaults: Brake,
        spec: Option<&DeletionBrake>,
        object: &K,
    ) -> Self {
        Self {
            brake: defaults.with(spec),
            approved: object
                .annotations()
                .get(APPROVE_DELETIONS_ANNOTATION)
                .and_then(|g| g.trim().parse().ok()),
            object: format!(
                "{} {} -n {}",
                K::kind(&()).to_lowercase(),
                object.name_any(),
                object.namespace().unwrap_or_default()
            ),
        }
    }
}

/// The Warning event for a hold, unless the status already says it (`previous`
/// conditions): a hold is announced once, not at every reconcile.
pub fn announce(previous: &[Condition], message: &str) -> Option<Effect> {
    previous.iter().all(|c| c.message != message).then(|| {
        Effect::event(
            true,
            Reason::DeletionHeld.as_str(),
            "DeleteBackup",
            message.to_owned(),
        )
    })
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
    check: &BrakeCheck,
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
