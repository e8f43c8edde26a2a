//! Status conditions as kstatus (Flux, Argo CD, `kubectl wait`) reads them
//! (the health contract in the README: Ready, Reconciling or Stalled, never
//! `Ready=False` alone):
//! `Ready`, `Reconciling` and `Stalled`, each always present, with
//! `lastTransitionTime` moving only when a condition's status flips, so a
//! reconcile that learns nothing new produces an identical status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::fsx::UserActionReason;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// Why an object is in the health it is in: the `reason` of its conditions. One
/// list for every kind, so the same situation reads the same in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    // Ready
    Scheduled,
    BackupCreated,
    Suspended,
    UpToDate,
    CopyAvailable,
    Copying,
    // Progressing
    WaitingForPreviousBackup,
    RetryingAfterError,
    WaitingForSchedule,
    WaitingForSource,
    WaitingForCopySlot,
    // Ready, with what went wrong in the last run (RPO still met)
    BackupFailed,
    MissedSchedule,
    NoTargets,
    CopyFailed,
    // Needs a person
    InvalidSpec,
    /// A selected file system that cannot be backed up as such (ONTAP: per volume).
    TargetNotBackupable,
    SourceNotFound,
    SourceFailed,
    /// A target's newest recovery point is older than the RPO.
    RPOBreached,
    /// A spec change would delete more backups at once than the deletion brake
    /// allows: nothing is deleted until that generation is approved.
    DeletionHeld,
    /// `spec.account` names no `FsxBackupAccount`.
    AccountNotFound,
    /// The `FsxBackupAccount` does not allow the object's namespace (or cannot be used).
    AccountNotAllowed,
    /// A copy would copy between accounts, which FSx cannot.
    CrossAccountCopy,
    /// FSx refused a call for a reason only a person can fix; the same FSx error
    /// gives the same reason in every kind.
    UserAction(UserActionReason),
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "Scheduled",
            Self::BackupCreated => "BackupCreated",
            Self::Suspended => "Suspended",
            Self::UpToDate => "UpToDate",
            Self::CopyAvailable => "CopyAvailable",
            Self::Copying => "Copying",
            Self::WaitingForPreviousBackup => "WaitingForPreviousBackup",
            Self::RetryingAfterError => "RetryingAfterError",
            Self::WaitingForSchedule => "WaitingForSchedule",
            Self::WaitingForSource => "WaitingForSource",
            Self::WaitingForCopySlot => "WaitingForCopySlot",
            Self::BackupFailed => "BackupFailed",
            Self::MissedSchedule => "MissedSchedule",
            Self::NoTargets => "NoTargets",
            Self::CopyFailed => "CopyFailed",
            Self::InvalidSpec => "InvalidSpec",
            Self::TargetNotBackupable => "TargetNotBackupable",
            Self::SourceNotFound => "SourceNotFound",
            Self::SourceFailed => "SourceFailed",
            Self::DeletionHeld => "DeletionHeld",
            Self::RPOBreached => "RPOBreached",
            Self::AccountNotFound => "AccountNotFound",
            Self::AccountNotAllowed => "AccountNotAllowed",
            Self::CrossAccountCopy => "CrossAccountCopy",
            Self::UserAction(reason) => reason.as_str(),
        }
    }

    /// The reason stored in status as text, read back (unknown text: `None`).
    pub fn parse(text: &str) -> Option<Self> {
        const PLAIN: [Reason; 24] = [
            Reason::Scheduled,
            Reason::BackupCreated,
            Reason::Suspended,
            Reason::UpToDate,
            Reason::CopyAvailable,
            Reason::Copying,
            Reason::WaitingForPreviousBackup,
            Reason::RetryingAfterError,
            Reason::WaitingForSchedule,
            Reason::WaitingForSource,
            Reason::WaitingForCopySlot,
            Reason::BackupFailed,
            Reason::MissedSchedule,
            Reason::NoTargets,
            Reason::CopyFailed,
            Reason::InvalidSpec,
            Reason::TargetNotBackupable,
            Reason::SourceNotFound,
            Reason::SourceFailed,
            Reason::DeletionHeld,
            Reason::RPOBreached,
            Reason::AccountNotFound,
            Reason::AccountNotAllowed,
            Reason::CrossAccountCopy,
        ];
        PLAIN
            .into_iter()
            .find(|r| r.as_str() == text)
            .or_else(|| UserActionReason::parse(text).map(Self::UserAction))
    }
}

/// How long something a person may still be about to fix (a target or a
/// followed schedule not found yet, a selector matching nothing) is reported
/// as in progress before it is `Stalled`.
pub const NOT_FOUND_GRACE: std::time::Duration = std::time::Duration::from_mins(2);

/// Problems given [`NOT_FOUND_GRACE`] before they stall: what was not found
/// may be about to appear (a file system being created, a schedule applied
/// after its copy by a GitOps sync).
pub fn has_grace(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::NoTargets
            | Reason::WaitingForSchedule
            | Reason::UserAction(UserActionReason::TargetNotFound)
    )
}

/// Whether a problem with `reason` is still within [`NOT_FOUND_GRACE`] at
/// `now`: it is new, or the previous `Reconciling=True` with that reason
/// started less than the grace ago. Returns when the grace ends. Once it
/// stalled (`Stalled=True` with that reason), it stays so.
pub fn grace_ends(
    previous: &[Condition],
    reason: Reason,
    now: jiff::Timestamp,
) -> Option<jiff::Timestamp> {
    if previous
        .iter()
        .any(|c| c.type_ == STALLED && c.status == "True" && c.reason == reason.as_str())
    {
        return None;
    }
    let since = previous
        .iter()
        .find(|c| c.type_ == RECONCILING && c.status == "True" && c.reason == reason.as_str())
        .map_or(now, |c| c.last_transition_time.0);
    let grace = jiff::SignedDuration::try_from(NOT_FOUND_GRACE).unwrap_or_default();
    since.checked_add(grace).ok().filter(|end| *end > now)
}

/// The one-line health of an object, turned into the three conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Working as specified: `Ready=True`.
    Ready { reason: Reason, message: String },
    /// Working toward the spec and expected to get there without help
    /// (retrying a transient error, waiting for a copy slot):
    /// `Reconciling=True`, `Ready=False`.
    Progressing { reason: Reason, message: String },
    /// Needs a person (invalid spec, access denied, target not found):
    /// `Stalled=True`, `Ready=False`.
    Stalled { reason: Reason, message: String },
}

impl Health {
    pub fn ready(reason: Reason, message: impl Into<String>) -> Self {
        Self::Ready {
            reason,
            message: message.into(),
        }
    }
    pub fn progressing(reason: Reason, message: impl Into<String>) -> Self {
        Self::Progressing {
            reason,
            message: message.into(),
        }
    }
    pub fn stalled(reason: Reason, message: impl Into<String>) -> Self {
        Self::Stalled {
            reason,
            message: message.into(),
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::Ready { reason, .. }
            | Self::Progressing { reason, .. }
            | Self::Stalled { reason, .. } => reason.as_str(),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Ready { message, .. }
            | Self::Progressing { message, .. }
            | Self::Stalled { message, .. } => message,
        }
    }

    pub fn is_stalled(&self) -> bool {
        matches!(self, Self::Stalled { .. })
    }

    /// The three conditions for this health, reusing each previous condition's
    /// `lastTransitionTime` when its status did not change.
    pub fn conditions(
        &self,
        previous: &[Condition],
        generation: Option<i64>,
        now: jiff::Timestamp,
    ) -> Vec<Condition> {
        let (ready, reconciling, stalled) = match self {
            Self::Ready { .. } => (true, false, false),
            Self::Progressing { .. } => (false, true, false),
            Self::Stalled { .. } => (false, false, true),
        };
        let make = |type_: &str, status: bool, reason: &str, message: &str| {
            let status = if status { "True" } else { "False" }.to_owned();
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map_or(Time(now), |c| c.last_transition_time.clone());
            Condition {
                type_: type_.to_owned(),
                status,
                reason: reason.to_owned(),
                message: message.to_owned(),
                observed_generation: generation,
                last_transition_time,
            }
        };
        let (reason, message) = (self.reason(), self.message());
        vec![
            make(READY, ready, reason, message),
            make(
                RECONCILING,
                reconciling,
                if reconciling { reason } else { "Idle" },
                if reconciling { message } else { "" },
            ),
            make(
                STALLED,
                stalled,
                if stalled { reason } else { "NotStalled" },
                if stalled { message } else { "" },
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(seconds).expect("valid")
    }

    fn status_of<'a>(conditions: &'a [Condition], type_: &str) -> &'a str {
        &conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("present")
            .status
    }

    #[test]
    fn each_health_maps_to_the_kstatus_triple() {
        let cases = [
            (
                Health::ready(Reason::BackupCreated, "ok"),
                ["True", "False", "False"],
            ),
            (
                Health::progressing(Reason::WaitingForCopySlot, "queued"),
                ["False", "True", "False"],
            ),
            (
                Health::stalled(Reason::InvalidSpec, "bad cron"),
                ["False", "False", "True"],
            ),
        ];
        for (health, expected) in cases {
            let conditions = health.conditions(&[], Some(3), at(0));
            let got = [READY, RECONCILING, STALLED].map(|t| status_of(&conditions, t));
            assert_eq!(got, expected, "{health:?}");
            assert!(
                conditions
                    .iter()
                    .all(|c| c.observed_generation == Some(3) && !c.reason.is_empty())
            );
        }
    }

    #[test]
    fn every_reason_reads_back_from_its_text() {
        let mut all = vec![
            Reason::Scheduled,
            Reason::Copying,
            Reason::SourceFailed,
            Reason::NoTargets,
        ];
        all.extend(UserActionReason::ALL.map(Reason::UserAction));
        for reason in all {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(Reason::parse("Nonsense"), None);
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let first = Health::ready(Reason::Scheduled, "a").conditions(&[], Some(1), at(100));
        let same = Health::ready(Reason::BackupCreated, "b").conditions(&first, Some(1), at(200));
        assert!(
            same.iter().all(|c| c.last_transition_time == Time(at(100))),
            "{same:?}"
        );
        let stalled = Health::stalled(Reason::InvalidSpec, "c").conditions(&same, Some(2), at(300));
        let time_of = |t: &str| {
            stalled
                .iter()
                .find(|c| c.type_ == t)
                .expect("present")
                .last_transition_time
                .clone()
        };
        assert_eq!(time_of(READY), Time(at(300)));
        assert_eq!(time_of(STALLED), Time(at(300)));
        assert_eq!(
            time_of(RECONCILING),
            Time(at(100)),
            "Reconciling stayed False"
        );
    }
}
