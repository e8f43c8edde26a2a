//! Prometheus metrics: stable names, labels bounded by the objects that exist
//! (namespace, object name, target id, Region, FSx operation and error code).
//! Series of a deleted object are removed with it.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleLabels {
    pub namespace: String,
    pub schedule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub namespace: String,
    pub schedule: String,
    pub target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CopyLabels {
    pub namespace: String,
    pub copy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabels {
    /// The account id (`own`: the operator's own identity).
    pub account: String,
    pub region: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsLabels {
    pub operation: String,
    /// `ok`, or the FSx error code.
    pub code: String,
    /// The account id (`own`: the operator's own identity).
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn lateness_histogram() -> Histogram {
    // 10 ms .. ~5.5 min
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

fn duration_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric the operator exports; families are shared handles into the registry.
#[derive(Debug)]
pub struct Metrics {
    pub backups_created: Family<ScheduleLabels, Counter>,
    pub backups_failed: Family<ScheduleLabels, Counter>,
    pub backups_deleted: Family<ScheduleLabels, Counter>,
    pub copies_started: Family<CopyLabels, Counter>,
    pub copies_completed: Family<CopyLabels, Counter>,
    pub copies_failed: Family<CopyLabels, Counter>,
    pub copies_deleted: Family<CopyLabels, Counter>,
    pub last_successful_backup: Family<TargetLabels, FloatGauge>,
    pub next_scheduled_run: Family<ScheduleLabels, FloatGauge>,
    pub schedule_interval: Family<ScheduleLabels, FloatGauge>,
    pub missed_runs: Family<ScheduleLabels, Counter>,
    pub schedule_lateness: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    pub copy_queue_length: Family<RegionLabels, Gauge>,
    pub copies_in_progress: Family<RegionLabels, Gauge>,
    pub copies_queued_oldest: Family<RegionLabels, FloatGauge>,
    pub aws_requests: Family<AwsLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub notifications: Family<OutcomeLabels, Counter>,
    pub leader: Gauge,
    pub backups_adopted: Family<ScheduleLabels, Counter>,
    pub copies_adopted: Family<CopyLabels, Counter>,
    pub stray_backups: Family<NamespaceLabels, Gauge>,
    pub recovery_point: Family<ObjectTargetLabels, FloatGauge>,
    pub rpo_breach_time: Family<ObjectTargetLabels, FloatGauge>,
    pub rpo_seconds: Family<ObjectLabels, FloatGauge>,
}

/// Labels of a metric about one object of either kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// Labels of a metric about one target of an object of either kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectTargetLabels {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub target: String,
}

/// Labels of a per-namespace metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    pub namespace: String,
}

impl Metrics {
    /// The metrics and the registry that exports them.
    pub fn new() -> (Self, Registry) {
        let metrics = Self {
            backups_created: Family::default(),
            backups_failed: Family::default(),
            backups_deleted: Family::default(),
            copies_started: Family::default(),
            copies_completed: Family::default(),
            copies_failed: Family::default(),
            copies_deleted: Family::default(),
            last_successful_backup: Family::default(),
            next_scheduled_run: Family::default(),
            schedule_interval: Family::default(),
            missed_runs: Family::default(),
            schedule_lateness: Family::new_with_constructor(lateness_histogram),
            copy_queue_length: Family::default(),
            copies_in_progress: Family::default(),
            copies_queued_oldest: Family::default(),
            aws_requests: Family::default(),
            reconcile_duration: Family::new_with_constructor(duration_histogram),
            reconcile_errors: Family::default(),
            notifications: Family::default(),
            leader: Gauge::default(),
            backups_adopted: Family::default(),
            copies_adopted: Family::default(),
            stray_backups: Family::default(),
            recovery_point: Family::default(),
            rpo_breach_time: Family::default(),
            rpo_seconds: Family::default(),
        };
        let mut registry = Registry::with_prefix("fsxbackup");
        metrics.register_schedule_metrics(&mut registry);
        metrics.register_copy_metrics(&mut registry);
        metrics.register_runtime_metrics(&mut registry);
        (metrics, registry)
    }

    /// What `FsxBackupSchedule` objects did.
    fn register_schedule_metrics(&self, r: &mut Registry) {
        r.register(
            "backups_created",
            "Backups created (CreateBackup accepted)",
            self.backups_created.clone(),
        );
        r.register(
            "backups_failed",
            "Backups that ended FAILED, timed out or were refused",
            self.backups_failed.clone(),
        );
        r.register(
            "backups_deleted",
            "Backups deleted by retention",
            self.backups_deleted.clone(),
        );
        r.register(
            "last_successful_backup_timestamp_seconds",
            "When the last backup of a target became AVAILABLE (Unix seconds)",
            self.last_successful_backup.clone(),
        );
        r.register(
            "next_scheduled_run_timestamp_seconds",
            "When the schedule runs next (Unix seconds, jitter included)",
            self.next_scheduled_run.clone(),
        );
        r.register(
            "schedule_interval_seconds",
            "Time between the schedule's next two runs, for staleness alerts",
            self.schedule_interval.clone(),
        );
        r.register(
            "missed_runs",
            "Scheduled runs skipped (deadline passed or superseded)",
            self.missed_runs.clone(),
        );
        r.register(
            "schedule_lateness_seconds",
            "Delay between a run's scheduled instant (jitter included) and its CreateBackup call",
            self.schedule_lateness.clone(),
        );
    }

    /// What `FsxBackupCopy` objects did, and the copy-slot queue.
    fn register_copy_metrics(&self, r: &mut Registry) {
        r.register(
            "copies_started",
            "Copies started (CopyBackup accepted)",
            self.copies_started.clone(),
        );
        r.register(
            "copies_completed",
            "Copies that became AVAILABLE",
            self.copies_completed.clone(),
        );
        r.register(
            "copies_failed",
            "Copies that ended FAILED or were refused",
            self.copies_failed.clone(),
        );
        r.register(
            "copies_deleted",
            "Copies deleted by retention",
            self.copies_deleted.clone(),
        );
        r.register(
            "copy_queue_length",
            "Copies waiting for a copy slot",
            self.copy_queue_length.clone(),
        );
        r.register(
            "copies_in_progress",
            "Copies holding a copy slot",
            self.copies_in_progress.clone(),
        );
        r.register(
            "copies_queued_oldest_seconds",
            "How long copies have been waiting for a slot in the Region without a break",
            self.copies_queued_oldest.clone(),
        );
    }

    /// The operator itself: AWS calls, reconciles, notifications, leadership.
    fn register_runtime_metrics(&self, r: &mut Registry) {
        r.register(
            "aws_requests",
            "FSx API requests by operation and result code",
            self.aws_requests.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            self.reconcile_duration.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconciles that failed, by error kind",
            self.reconcile_errors.clone(),
        );
        r.register(
            "notifications",
            "SNS notifications by outcome (sent, failed)",
            self.notifications.clone(),
        );
        r.register(
            "backups_adopted",
            "Backups of an earlier FsxBackupSchedule with the same name, re-tagged to this one",
            self.backups_adopted.clone(),
        );
        r.register(
            "copies_adopted",
            "Copies of an earlier FsxBackupCopy with the same name, re-tagged to this one",
            self.copies_adopted.clone(),
        );
        r.register(
            "recovery_point_timestamp_seconds",
            "Creation time of a target's newest AVAILABLE backup (a copy: of the source of its newest AVAILABLE copy), Unix seconds",
            self.recovery_point.clone(),
        );
        r.register(
            "rpo_breach_timestamp_seconds",
            "When a target's RPO is breached unless a newer recovery point comes (Unix seconds); absent while suspended",
            self.rpo_breach_time.clone(),
        );
        r.register(
            "rpo_seconds",
            "The recovery-point objective in force for an object",
            self.rpo_seconds.clone(),
        );
        r.register(
            "stray_backups",
            "Backups and copies this cluster made whose owner object no longer exists (by the owner's namespace)",
            self.stray_backups.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the leader lease (or runs without election)",
            self.leader.clone(),
        );
    }

    pub fn object(kind: &str, namespace: &str, name: &str) -> ObjectLabels {
        ObjectLabels {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn object_target(
        kind: &str,
        namespace: &str,
        name: &str,
        target: &str,
    ) -> ObjectTargetLabels {
        ObjectTargetLabels {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            target: target.to_owned(),
        }
    }

    /// Drops the RPO series of a deleted object of `kind`.
    fn forget_rpo<'a>(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        targets: impl IntoIterator<Item = &'a String>,
    ) {
        self.rpo_seconds
            .remove(&Self::object(kind, namespace, name));
        for target in targets {
            let labels = Self::object_target(kind, namespace, name, target);
            self.recovery_point.remove(&labels);
            self.rpo_breach_time.remove(&labels);
        }
    }

    pub fn schedule(namespace: &str, schedule: &str) -> ScheduleLabels {
        ScheduleLabels {
            namespace: namespace.to_owned(),
            schedule: schedule.to_owned(),
        }
    }

    pub fn target(namespace: &str, schedule: &str, target: &str) -> TargetLabels {
        TargetLabels {
            namespace: namespace.to_owned(),
            schedule: schedule.to_owned(),
            target: target.to_owned(),
        }
    }

    pub fn copy(namespace: &str, copy: &str) -> CopyLabels {
        CopyLabels {
            namespace: namespace.to_owned(),
            copy: copy.to_owned(),
        }
    }

    /// Labels of one account's Region (`key` as in `Place::key`).
    pub fn region((account, region): &(String, String)) -> RegionLabels {
        RegionLabels {
            account: account.clone(),
            region: region.clone(),
        }
    }

    /// Drops every series of a deleted schedule.
    pub fn forget_schedule(&self, namespace: &str, schedule: &str, targets: &[String]) {
        let labels = Self::schedule(namespace, schedule);
        for family in [
            &self.backups_created,
            &self.backups_failed,
            &self.backups_deleted,
            &self.missed_runs,
            &self.backups_adopted,
        ] {
            family.remove(&labels);
        }
        self.next_scheduled_run.remove(&labels);
        self.schedule_interval.remove(&labels);
        for target in targets {
            self.last_successful_backup
                .remove(&Self::target(namespace, schedule, target));
        }
        self.forget_rpo("FsxBackupSchedule", namespace, schedule, targets);
    }

    /// Drops every series of a deleted copy object (`targets`: its source targets).
    pub fn forget_copy(&self, namespace: &str, copy: &str, targets: &[String]) {
        self.forget_rpo("FsxBackupCopy", namespace, copy, targets);
        let labels = Self::copy(namespace, copy);
        for family in [
            &self.copies_started,
            &self.copies_completed,
            &self.copies_failed,
            &self.copies_deleted,
            &self.copies_adopted,
        ] {
            family.remove(&labels);
        }
    }
}

/// The registry in Prometheus' text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_series_go_with_their_object() {
        let (metrics, registry) = Metrics::new();
        metrics
            .backups_created
            .get_or_create(&Metrics::schedule("storage", "nightly"))
            .inc();
        metrics
            .last_successful_backup
            .get_or_create(&Metrics::target("storage", "nightly", "fs-1"))
            .set(1_700_000_000.0);
        metrics
            .aws_requests
            .get_or_create(&AwsLabels {
                operation: "CreateBackup".into(),
                code: "ok".into(),
                account: "own".into(),
            })
            .inc();
        let text = encode(&registry);
        assert!(
            text.contains(
                r#"fsxbackup_backups_created_total{namespace="storage",schedule="nightly"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"fsxbackup_last_successful_backup_timestamp_seconds{namespace="storage",schedule="nightly",target="fs-1"} 1700000000"#), "{text}");
        assert!(
            text.contains(r#"fsxbackup_aws_requests_total{operation="CreateBackup",code="ok",account="own"} 1"#),
            "{text}"
        );
        metrics.forget_schedule("storage", "nightly", &["fs-1".into()]);
        let text = encode(&registry);
        assert!(!text.contains(r#"schedule="nightly""#), "{text}");
    }
}
