//! Where one copy stands, as `status.copies[].lifecycle` says it: before FSx
//! accepted it (our phases), or FSx's own lifecycle after.

use crate::crd::copy::CopyStatus;
use crate::fsx::Lifecycle;

/// Where one copy stands: before FSx accepted it, or FSx's lifecycle after.
/// Written to `status.copies[].lifecycle` as the same strings as ever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyPhase {
    /// The source backup is not AVAILABLE yet.
    WaitingForSource,
    /// Waiting for a copy slot in the destination Region.
    Queued,
    /// Cannot be made until the spec changes (bad KMS key, unsupported, …).
    Blocked,
    /// Follow mode: the source backup was deleted (pruned by the schedule's
    /// retention) before a copy slot came; it is reported and never retried.
    SourceGone,
    /// FSx accepted the copy: its lifecycle.
    Fsx(Lifecycle),
}

impl CopyPhase {
    pub fn of(entry: &CopyStatus) -> Self {
        match entry.lifecycle.as_str() {
            "WaitingForSource" => Self::WaitingForSource,
            "Queued" => Self::Queued,
            "Blocked" => Self::Blocked,
            "SourceGone" => Self::SourceGone,
            other => Self::Fsx(Lifecycle::parse(other)),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::WaitingForSource => "WaitingForSource",
            Self::Queued => "Queued",
            Self::Blocked => "Blocked",
            Self::SourceGone => "SourceGone",
            Self::Fsx(lifecycle) => lifecycle.as_str(),
        }
    }

    pub(super) fn set(self, entry: &mut CopyStatus) {
        self.as_str().clone_into(&mut entry.lifecycle);
    }
}

/// Not yet asked of FSx.
pub fn is_pending(entry: &CopyStatus) -> bool {
    matches!(
        CopyPhase::of(entry),
        CopyPhase::WaitingForSource | CopyPhase::Queued
    )
}

/// Accepted by FSx and not finished.
pub fn is_copying(entry: &CopyStatus) -> bool {
    entry.destination_backup_id.is_some()
        && matches!(CopyPhase::of(entry), CopyPhase::Fsx(lifecycle) if lifecycle.in_progress())
}
