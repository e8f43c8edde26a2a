//! What a plan reports besides status: Kubernetes events, SNS notifications and
//! metric updates. Planners return them as plain values (so table tests can
//! compare them); [`perform`] sends them once the status they describe is written.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};

use super::{Context, FIELD_MANAGER, truncate};
use crate::conditions::Reason;
use crate::crd::common::{Notifications, RecoveryPoint};
use crate::metrics::{ControllerLabels, Metrics};
use crate::notify::Notification;

/// A counter of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    BackupsCreated,
    BackupsFailed,
    BackupsDeleted,
    MissedRuns,
    CopiesStarted,
    CopiesCompleted,
    CopiesFailed,
    CopiesDeleted,
    BackupsAdopted,
    CopiesAdopted,
}

/// What an SNS notification reports: failures and recoveries are always
/// sent, successes only with `onSuccess`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// A breached RPO is met again.
    Recovered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Recovered => "Recovered",
        }
    }
}

/// One thing to tell the world about an object.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// An `events.k8s.io/v1` Event on the object.
    Event {
        warning: bool,
        reason: String,
        action: &'static str,
        note: String,
    },
    /// An SNS notification, if the object asks for them (failures always,
    /// successes only with `onSuccess`).
    Notify {
        outcome: Outcome,
        /// File system, volume or source backup it is about.
        subject: String,
        backup_id: Option<String>,
        detail: String,
    },
    Count(Counter, u64),
    /// How late a scheduled backup was asked for, in seconds.
    Lateness(f64),
    /// A target's newest backup became AVAILABLE.
    LastSuccess {
        target: String,
        at: Timestamp,
    },
    /// The RPO in force and every target's recovery point, for the gauges.
    RecoveryPoints {
        rpo: Duration,
        points: Vec<RecoveryPoint>,
        /// Targets no longer tracked: their series are removed.
        dropped: Vec<String>,
    },
    /// When the next run is due, and the gap to the run after it.
    NextRun {
        at: Timestamp,
        interval: Option<Duration>,
    },
}

impl Effect {
    pub fn event(warning: bool, reason: &str, action: &'static str, note: String) -> Self {
        Self::Event {
            warning,
            reason: reason.to_owned(),
            action,
            note,
        }
    }

    pub fn failure(subject: &str, backup_id: Option<&str>, detail: String) -> Self {
        Self::Notify {
            outcome: Outcome::Failed,
            subject: subject.to_owned(),
            backup_id: backup_id.map(str::to_owned),
            detail,
        }
    }

    pub fn success(subject: &str, backup_id: Option<&str>, detail: String) -> Self {
        Self::Notify {
            outcome: Outcome::Succeeded,
            subject: subject.to_owned(),
            backup_id: backup_id.map(str::to_owned),
            detail,
        }
    }

    /// A breached objective met again: always notified.
    pub fn recovered(subject: &str, detail: String) -> Self {
        Self::Notify {
            outcome: Outcome::Recovered,
            subject: subject.to_owned(),
            backup_id: None,
            detail,
        }
    }

    /// Something that went as planned: one more on `counter` and a Normal event.
    pub fn done(counter: Counter, reason: &str, action: &'static str, note: String) -> [Self; 2] {
        [
            Self::Count(counter, 1),
            Self::event(false, reason, action, note),
        ]
    }

    /// Something that failed: `by` more on `counter`, an SNS failure about
    /// `subject` and a Warning event, all saying `note`.
    pub fn failed(
        counter: (Counter, u64),
        subject: &str,
        backup_id: Option<&str>,
        reason: Reason,
        action: &'static str,
        note: String,
    ) -> [Self; 3] {
        [
            Self::Count(counter.0, counter.1),
            Self::failure(subject, backup_id, note.clone()),
            Self::event(true, reason.as_str(), action, note),
        ]
    }
}

/// At most one Normal event per reconcile: what one reconcile did (a backup
/// AVAILABLE and the older one retention deleted) is one event, its notes
/// joined in order, under the first one's reason. Warnings are never folded.
pub fn fold_normal_events(effects: Vec<Effect>) -> Vec<Effect> {
    let mut folded: Vec<Effect> = Vec::with_capacity(effects.len());
    let mut normal: Option<usize> = None;
    for effect in effects {
        if let (
            Effect::Event {
                warning: false,
                note,
                ..
            },
            Some(at),
        ) = (&effect, normal)
            && let Effect::Event { note: first, .. } = &mut folded[at]
            && first.chars().count() + 2 + note.chars().count() <= MAX_EVENT_NOTE
        {
            first.push_str("; ");
            first.push_str(note);
            continue;
        }
        // The first Normal event, or one the folded note has no room for (an
        // event's note is cut at 1,000 characters: nothing is lost).
        if matches!(effect, Effect::Event { warning: false, .. }) {
            normal = Some(folded.len());
        }
        folded.push(effect);
    }
    folded
}

/// Longest note an event carries: longer ones are cut, so folded notes stop here.
const MAX_EVENT_NOTE: usize = 1_000;

/// Sends `effects` about `object`, in order. Never fails: an event or a notification
/// that cannot be sent is logged (notifications publish in the background).
pub async fn perform<F, K>(
    ctx: &Context<F>,
    object: &K,
    notifications: Option<&Notifications>,
    effects: Vec<Effect>,
) where
    K: Resource<DynamicType = ()>,
{
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    for effect in effects {
        match effect {
            Effect::Event {
                warning,
                reason,
                action,
                note,
            } => publish_event(ctx, object, warning, &reason, action, &note).await,
            Effect::Notify {
                outcome,
                subject,
                backup_id,
                detail,
            } => notify(
                ctx,
                notifications,
                Notification {
                    topic_arn: String::new(),
                    outcome: outcome.as_str(),
                    kind: kind_name::<K>(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    target: subject,
                    backup_id,
                    detail,
                },
            ),
            Effect::Count(counter, by) => count(&ctx.metrics, counter, &namespace, &name, by),
            Effect::Lateness(seconds) => ctx
                .metrics
                .schedule_lateness
                .get_or_create(&ControllerLabels {
                    controller: "schedule".into(),
                })
                .observe(seconds),
            Effect::LastSuccess { target, at } => {
                ctx.metrics
                    .last_successful_backup
                    .get_or_create(&Metrics::target(&namespace, &name, &target))
                    .set(seconds(at));
            }
            Effect::RecoveryPoints {
                rpo,
                points,
                dropped,
            } => recovery_points(
                &ctx.metrics,
                &Metrics::object(kind_name::<K>(), &namespace, &name),
                rpo,
                &points,
                &dropped,
            ),
            Effect::NextRun { at, interval } => {
                let labels = Metrics::schedule(&namespace, &name);
                ctx.metrics
                    .next_scheduled_run
                    .get_or_create(&labels)
                    .set(seconds(at));
                if let Some(interval) = interval {
                    ctx.metrics
                        .schedule_interval
                        .get_or_create(&labels)
                        .set(interval.as_secs_f64());
                }
            }
        }
    }
}

/// The RPO gauges of one object: its RPO, each target's recovery point and
/// breach time (absent when unknown), and no series for `dropped` targets.
fn recovery_points(
    metrics: &Metrics,
    object: &crate::metrics::ObjectLabels,
    rpo: Duration,
    points: &[RecoveryPoint],
    dropped: &[String],
) {
    let target = |target: &str| {
        Metrics::object_target(&object.kind, &object.namespace, &object.name, target)
    };
    metrics
        .rpo_seconds
        .get_or_create(object)
        .set(rpo.as_secs_f64());
    for gone in dropped {
        metrics.recovery_point.remove(&target(gone));
        metrics.rpo_breach_time.remove(&target(gone));
    }
    for point in points {
        let labels = target(&point.target);
        match &point.time {
            Some(at) => {
                metrics
                    .recovery_point
                    .get_or_create(&labels)
                    .set(seconds(at.0));
            }
            None => {
                metrics.recovery_point.remove(&labels);
            }
        }
        match &point.breach_time {
            Some(at) => {
                metrics
                    .rpo_breach_time
                    .get_or_create(&labels)
                    .set(seconds(at.0));
            }
            None => {
                metrics.rpo_breach_time.remove(&labels);
            }
        }
    }
}

#[allow(clippy::cast_precision_loss)] // Unix seconds fit an f64 exactly for millennia
fn seconds(at: Timestamp) -> f64 {
    at.as_second() as f64
}

fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "FsxBackupSchedule" => "FsxBackupSchedule",
        "FsxBackupCopy" => "FsxBackupCopy",
        _ => "object",
    }
}

fn count(metrics: &Metrics, counter: Counter, namespace: &str, name: &str, by: u64) {
    let schedule = || Metrics::schedule(namespace, name);
    let copy = || Metrics::copy(namespace, name);
    match counter {
        Counter::BackupsCreated => metrics
            .backups_created
            .get_or_create(&schedule())
            .inc_by(by),
        Counter::BackupsFailed => metrics.backups_failed.get_or_create(&schedule()).inc_by(by),
        Counter::BackupsDeleted => metrics
            .backups_deleted
            .get_or_create(&schedule())
            .inc_by(by),
        Counter::MissedRuns => metrics.missed_runs.get_or_create(&schedule()).inc_by(by),
        Counter::CopiesStarted => metrics.copies_started.get_or_create(&copy()).inc_by(by),
        Counter::CopiesCompleted => metrics.copies_completed.get_or_create(&copy()).inc_by(by),
        Counter::CopiesFailed => metrics.copies_failed.get_or_create(&copy()).inc_by(by),
        Counter::CopiesDeleted => metrics.copies_deleted.get_or_create(&copy()).inc_by(by),
        Counter::BackupsAdopted => metrics
            .backups_adopted
            .get_or_create(&schedule())
            .inc_by(by),
        Counter::CopiesAdopted => metrics.copies_adopted.get_or_create(&copy()).inc_by(by),
    };
}

/// Publishes to the object's SNS topic: failures always, successes only with `onSuccess`.
fn notify<F>(ctx: &Context<F>, spec: Option<&Notifications>, notification: Notification) {
    let Some(spec) = spec else { return };
    let Some(topic) = spec.sns_topic_arn.clone() else {
        return;
    };
    if notification.outcome == "Succeeded" && !spec.on_success.unwrap_or(false) {
        return;
    }
    if let Some(notifier) = &ctx.notifier {
        notifier.send(Notification {
            topic_arn: topic,
            ..notification
        });
    }
}

/// Publishes an `events.k8s.io/v1` Event; a failure to do so is logged, never fatal.
///
/// Created directly rather than through kube's `Recorder`, which folds events with the
/// same reason into one series that keeps the first note: "backup B created" would be
/// hidden behind "backup A created". Planners emit only on transitions, so each event
/// is worth its own object.
pub async fn publish_event<F, K>(
    ctx: &Context<F>,
    object: &K,
    warning: bool,
    reason: &str,
    action: &str,
    note: &str,
) where
    K: Resource<DynamicType = ()>,
{
    let regarding = object.object_ref(&());
    let namespace = regarding
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let now = Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", object.name_any(), now.as_nanosecond())),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        reason: Some(reason.into()),
        action: Some(action.into()),
        note: Some(truncate(note, MAX_EVENT_NOTE)),
        regarding: Some(regarding),
        reporting_controller: Some(FIELD_MANAGER.into()),
        reporting_instance: Some(ctx.reporting_instance.clone()),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), &namespace);
    if let Err(err) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(object = %object.name_any(), reason, error = %err, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(effects: &[Effect]) -> Vec<(bool, String, String)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Event {
                    warning,
                    reason,
                    note,
                    ..
                } => Some((*warning, reason.clone(), note.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn one_normal_event_per_reconcile_and_every_warning() {
        let effects = vec![
            Effect::event(
                false,
                "BackupAvailable",
                "CreateBackup",
                "b2 is AVAILABLE".into(),
            ),
            Effect::Count(Counter::BackupsDeleted, 1),
            Effect::event(true, "BackupFailed", "CreateBackup", "b3 failed".into()),
            Effect::event(false, "BackupPruned", "DeleteBackup", "b1 deleted".into()),
            Effect::event(true, "MissedSchedule", "CreateBackup", "missed".into()),
        ];
        let folded = fold_normal_events(effects);
        assert_eq!(
            reasons(&folded),
            [
                (
                    false,
                    "BackupAvailable".into(),
                    "b2 is AVAILABLE; b1 deleted".into()
                ),
                (true, "BackupFailed".into(), "b3 failed".into()),
                (true, "MissedSchedule".into(), "missed".into()),
            ]
        );
        // Everything else is kept, in order.
        assert_eq!(folded.len(), 4);
        assert!(matches!(
            folded[1],
            Effect::Count(Counter::BackupsDeleted, 1)
        ));
        assert!(fold_normal_events(Vec::new()).is_empty());
    }

    #[test]
    fn a_folded_note_never_outgrows_an_event() {
        let many: Vec<Effect> = (0..40)
            .map(|i| {
                Effect::event(
                    false,
                    "BackupPruned",
                    "DeleteBackup",
                    format!("backup backup-{i:017} of fs-0123456789abcdef0 deleted by retention"),
                )
            })
            .collect();
        let folded = reasons(&fold_normal_events(many));
        assert!(folded.len() > 1, "split into several events");
        assert!(folded.iter().all(|(_, _, note)| note.len() <= 1_000));
        let kept: usize = folded
            .iter()
            .map(|(_, _, n)| n.matches("deleted by retention").count())
            .sum();
        assert_eq!(kept, 40, "every deletion is in some note");
    }
}
