//! Status conditions as kstatus (Flux, Argo CD, `kubectl wait`) reads them:
//! `Ready`, `Reconciling` and `Stalled`, each always present, with
//! `lastTransitionTime` moving only when a condition's status flips, so a
//! reconcile that learns nothing new produces an identical status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// The one-line health of an object, turned into the three conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Working as specified: `Ready=True`.
    Ready { reason: String, message: String },
    /// Working toward the spec and expected to get there without help
    /// (retrying a transient error, waiting for a copy slot):
    /// `Reconciling=True`, `Ready=False`.
    Progressing { reason: String, message: String },
    /// Something went wrong that the next run may fix (a backup failed, a run
    /// was missed): `Ready=False` with neither `Reconciling` nor `Stalled`.
    Degraded { reason: String, message: String },
    /// Needs a person (invalid spec, access denied, target not found):
    /// `Stalled=True`, `Ready=False`.
    Stalled { reason: String, message: String },
}

impl Health {
    pub fn ready(reason: &str, message: impl Into<String>) -> Self {
        Self::Ready {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
    pub fn progressing(reason: &str, message: impl Into<String>) -> Self {
        Self::Progressing {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
    pub fn degraded(reason: &str, message: impl Into<String>) -> Self {
        Self::Degraded {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
    pub fn stalled(reason: &str, message: impl Into<String>) -> Self {
        Self::Stalled {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Ready { reason, .. }
            | Self::Progressing { reason, .. }
            | Self::Degraded { reason, .. }
            | Self::Stalled { reason, .. } => reason,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Ready { message, .. }
            | Self::Progressing { message, .. }
            | Self::Degraded { message, .. }
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
            Self::Degraded { .. } => (false, false, false),
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
                Health::ready("BackupCreated", "ok"),
                ["True", "False", "False"],
            ),
            (
                Health::progressing("WaitingForCopySlot", "queued"),
                ["False", "True", "False"],
            ),
            (
                Health::degraded("BackupFailed", "failed"),
                ["False", "False", "False"],
            ),
            (
                Health::stalled("InvalidSpec", "bad cron"),
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
    fn transition_time_moves_only_when_the_status_flips() {
        let first = Health::ready("Scheduled", "a").conditions(&[], Some(1), at(100));
        let same = Health::ready("BackupCreated", "b").conditions(&first, Some(1), at(200));
        assert!(
            same.iter().all(|c| c.last_transition_time == Time(at(100))),
            "{same:?}"
        );
        let stalled = Health::stalled("InvalidSpec", "c").conditions(&same, Some(2), at(300));
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
