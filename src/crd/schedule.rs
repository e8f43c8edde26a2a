//! `FsxBackupSchedule`: back up these file systems or volumes on a cron
//! schedule in a time zone, and keep the backups this long.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    Adoption, BackupRef, DeletionBrake, DeletionPolicy, Notifications, RecoveryPoint,
    RetentionSpec, TAG_RULES, Tags,
};

/// Back up FSx file systems or volumes on a cron schedule and prune old backups.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fsxbackup.io",
    version = "v1alpha1",
    kind = "FsxBackupSchedule",
    namespaced,
    status = "FsxBackupScheduleStatus",
    shortname = "fbs",
    category = "fsxbackup",
    doc = "FsxBackupSchedule backs up FSx file systems or volumes on a cron schedule, in a time zone, and prunes the backups it made by a retention policy.",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Last Backup","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Next Run","type":"string","jsonPath":".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name":"Last Result","type":"string","jsonPath":".status.lastRunResult"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.account) == has(oldSelf.account) && (!has(self.account) || self.account == oldSelf.account)").message("spec.account cannot change: backups stay in the account they were made in; delete the object (deletionPolicy Retain keeps them) and create it again with the new account"))]
pub struct FsxBackupScheduleSpec {
    /// AWS Region of the targets (default: the operator's Region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::common::REGION_PATTERN))]
    pub region: Option<String>,
    /// The `FsxBackupAccount` to back up in: the operator assumes its role. It
    /// must allow this namespace. Default: the operator's own AWS account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = super::common::OBJECT_NAME_PATTERN))]
    pub account: Option<String>,
    /// What to back up: exactly one of `fileSystemIds`, `volumeIds`, `fileSystemSelector`.
    pub target: TargetSpec,
    /// When to back up: a 5-field cron expression (minute hour day-of-month
    /// month day-of-week) or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    #[schemars(length(min = 1, max = 128))]
    pub schedule: String,
    /// IANA time zone the schedule is read in (default `UTC`). A time skipped
    /// by a daylight-saving change runs once right after the change; a time that
    /// occurs twice runs once, at its first occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
    /// Deterministic per-object delay in [0, jitter) added to every run, to
    /// spread many schedules due at the same instant (e.g. `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::common::DURATION_PATTERN))]
    pub jitter: Option<String>,
    /// A run late by more than this (operator or cluster down) is skipped and
    /// recorded as missed; a run late by less is taken once. Default: no
    /// deadline (a late run is taken once, until the next run is due).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31_622_400))]
    pub starting_deadline_seconds: Option<i64>,
    /// Stop taking new backups; retention keeps running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// A backup still not AVAILABLE after this long counts as failed (default `6h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::common::DURATION_PATTERN))]
    pub backup_timeout: Option<String>,
    /// Recovery-point objective: the oldest a target's newest AVAILABLE backup may get
    /// before the object is `Stalled` (`RPOBreached`), alerted and notified
    /// (e.g. `26h`). Default: twice the longest gap between
    /// two runs plus `backupTimeout` (one failed run is tolerated, two are not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::common::DURATION_PATTERN))]
    pub rpo: Option<String>,
    /// How long to keep backups. Omitted: keep every AVAILABLE backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// Template of the backup's `Name` tag, at most 256 characters once
    /// rendered. Placeholders: `{schedule}` (object name), `{namespace}`,
    /// `{target}` (file system or volume id), `{time:FORMAT}` (scheduled time
    /// in UTC, strftime FORMAT such as `%Y%m%dT%H%MZ`).
    /// Default `{schedule}-{target}-{time:%Y%m%dT%H%MZ}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub backup_name: Option<String>,
    /// Extra tags on every backup: at most 45 (FSx allows 50; the operator
    /// sets five, and its cluster tag when there is room), keys 1–128 characters without `aws:` or `fsxbackup.io/`
    /// prefixes and not `Name`, values at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 45, "additionalProperties" = {"type": "string", "maxLength": 256, "pattern": super::common::TAG_VALUE_PATTERN}))]
    #[x_kube(validation = kube::core::Rule::new(TAG_RULES).message("tag keys must be 1-128 letters, digits, spaces or _.:/=+-@, not start with aws: or fsxbackup.io/, not be Name"))]
    pub tags: Option<Tags>,
    /// What happens to this object's backups when it is deleted: `Retain` (default) or `Delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// Hold a spec change that would delete many backups at once until it is approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_brake: Option<DeletionBrake>,
    /// Whether backups an earlier object of the same namespace, kind and name made
    /// in this cluster (deleted with `Retain`, or a rebuilt cluster with the same
    /// `clusterId`) become this object's: `Adopt` (default) or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<Adoption>,
    /// SNS notifications: failures always, successes when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,
}

/// The file systems or volumes to back up: exactly one of the three fields.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("[has(self.fileSystemIds), has(self.volumeIds), has(self.fileSystemSelector)].filter(x, x).size() == 1").message("set exactly one of fileSystemIds, volumeIds, fileSystemSelector"))]
pub struct TargetSpec {
    /// File systems by id (`fs-…`): Windows File Server, Lustre, OpenZFS.
    /// ONTAP file systems are backed up per volume: use `volumeIds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), inner(regex(pattern = super::common::FILE_SYSTEM_ID_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub file_system_ids: Option<Vec<String>>,
    /// Volumes by id (`fsvol-…`): ONTAP and OpenZFS volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), inner(regex(pattern = super::common::VOLUME_ID_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub volume_ids: Option<Vec<String>>,
    /// File systems chosen by their tags (and optionally type), looked up
    /// again at every run. ONTAP file systems matched here are reported, not
    /// backed up: list their volumes in `volumeIds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_selector: Option<FileSystemSelector>,
}

/// Selects file systems by tags and type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSystemSelector {
    /// Every one of these tags must be present with this value.
    #[schemars(extend("minProperties" = 1, "maxProperties" = 50))]
    pub tags: Tags,
    /// Only these file system types (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<FileSystemType>>,
}

/// An FSx file system type.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, schemars::JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum FileSystemType {
    Windows,
    Lustre,
    Ontap,
    Openzfs,
}

impl FileSystemType {
    /// FSx's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Windows => "WINDOWS",
            Self::Lustre => "LUSTRE",
            Self::Ontap => "ONTAP",
            Self::Openzfs => "OPENZFS",
        }
    }
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FsxBackupScheduleStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The generation whose retention policy has been applied to every target:
    /// until it equals `metadata.generation`, deletions pass the deletion brake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 9_007_199_254_740_991_i64))] // 2^53 - 1: exact as JSON
    pub retention_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, as kstatus (Flux, Argo CD, `kubectl wait`) reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Scheduled instant of the latest run taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the latest backup became AVAILABLE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// When the next run is due (jitter included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// Runs skipped because they were late by more than `startingDeadlineSeconds`
    /// or superseded by a later run (total since the object was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = u32::MAX))]
    pub missed_runs: Option<u32>,
    /// Scheduled instant of the latest missed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_missed_time: Option<Time>,
    /// `schedule|timeZone|jitter` that `nextScheduleTime` was computed from; a
    /// change restarts the schedule from now instead of running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_schedule: Option<String>,
    /// The last `fsxbackup.io/run-now` value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_now: Option<String>,
    /// A `run-now` being acted on: recorded before any backup is asked for, so
    /// that a retry (after a lost answer or a restart) sends the same request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_now_request: Option<RunNowRequest>,
    /// One entry per target, in id order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetStatus>,
    /// The RPO in force (`spec.rpo` or its default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<String>,
    /// Per target: the newest recovery point and when the RPO breaches without a newer one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery_points: Vec<RecoveryPoint>,
    /// How the latest run ended: `Succeeded`, `Failed`, `Missed`, `InProgress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_result: Option<String>,
}

/// One `fsxbackup.io/run-now` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunNowRequest {
    /// The annotation's value.
    #[schemars(length(max = 1024))]
    pub nonce: String,
    /// When it was first seen: the time its backups are named and tagged with.
    pub request_time: Time,
}

/// The state of one file system or volume.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// The `fs-…` or `fsvol-…` id.
    pub id: String,
    /// What is wrong with this target, if anything (e.g. not found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The condition reason of `message` (e.g. `TargetNotFound`, `AccessDenied`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// True when `spec.target` no longer selects this target: no new backups,
    /// but its backups are still pruned by retention until none are left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_selected: Option<bool>,
    /// Scheduled instant of the latest run whose backup FSx accepted (or that was given up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_time: Option<Time>,
    /// The latest backup of this target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<LastBackup>,
    /// This object's backups of the target, newest first (at most 20 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_backups: Vec<BackupRef>,
    /// How many backups of the target this object owns (the list above is truncated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = u32::MAX))]
    pub managed_backup_count: Option<u32>,
}

/// The latest backup of a target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastBackup {
    /// The `backup-…` id.
    pub id: String,
    /// FSx lifecycle when last looked at.
    pub lifecycle: String,
    /// Percent done when last looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub progress_percent: Option<i32>,
    /// When FSx created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<Time>,
    /// The run it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<Time>,
    /// When the operator asked FSx for it (operator clock): `backupTimeout`
    /// counts from here, so a run taken late is not failed at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_time: Option<Time>,
    /// True once its final state (AVAILABLE, FAILED, timed out, gone) has been
    /// acted on: events, notification, metrics and a retention pass, exactly once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<bool>,
    /// `run-now` value, for a manual run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_now: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
}
