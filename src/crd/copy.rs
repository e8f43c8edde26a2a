//! `FsxBackupCopy`: copy one backup, or every backup a schedule makes, to
//! another Region, and keep the copies this long.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    Adoption, DeletionBrake, DeletionPolicy, Notifications, RecoveryPoint, RetentionSpec,
    TAG_RULES, Tags,
};

/// Copy FSx backups to another Region (or within one) and prune old copies.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fsxbackup.io",
    version = "v1alpha1",
    kind = "FsxBackupCopy",
    namespaced,
    status = "FsxBackupCopyStatus",
    shortname = "fbc",
    category = "fsxbackup",
    doc = "FsxBackupCopy copies FSx backups (one, or every backup of a schedule) to another Region and prunes the copies it made by a retention policy.",
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".spec.source.scheduleRef.name"}"#,
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".spec.source.backupId","priority":1}"#,
    printcolumn = r#"{"name":"Destination","type":"string","jsonPath":".spec.destinationRegion"}"#,
    printcolumn = r#"{"name":"Queued","type":"integer","jsonPath":".status.queued"}"#,
    printcolumn = r#"{"name":"Last Copy","type":"date","jsonPath":".status.lastCopyTime"}"#,
    printcolumn = r#"{"name":"Last Result","type":"string","jsonPath":".status.lastRunResult"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.account) == has(oldSelf.account) && (!has(self.account) || self.account == oldSelf.account)").message("spec.account cannot change: backups stay in the account they were made in; delete the object (deletionPolicy Retain keeps them) and create it again with the new account"))]
pub struct FsxBackupCopySpec {
    /// What to copy: exactly one of `scheduleRef` and `backupId`.
    pub source: CopySource,
    /// The `FsxBackupAccount` to copy in, for reading the sources and making the
    /// copies: FSx copies a backup only within one account, so a followed
    /// schedule must use the same account. Default: the operator's own account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = super::common::OBJECT_NAME_PATTERN))]
    pub account: Option<String>,
    /// Region the copies are made in (may equal the source Region).
    #[schemars(regex(pattern = super::common::REGION_PATTERN))]
    pub destination_region: String,
    /// KMS key for the copies in the destination Region (default: the FSx service key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key_id: Option<String>,
    /// Copy the source backup's tags to the copy (FSx `CopyTags`); `tags` are
    /// merged over them. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_tags: Option<bool>,
    /// Extra tags on every copy, with the same limits as on schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 45, "additionalProperties" = {"type": "string", "maxLength": 256, "pattern": super::common::TAG_VALUE_PATTERN}))]
    #[x_kube(validation = kube::core::Rule::new(TAG_RULES).message("tag keys must be 1-128 letters, digits, spaces or _.:/=+-@, not start with aws: or fsxbackup.io/, not be Name"))]
    pub tags: Option<Tags>,
    /// How long to keep the copies in the destination (follow mode). Omitted: keep every copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// What happens to the copies when this object is deleted: `Retain` (default) or `Delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// Recovery-point objective: the oldest a source target's newest AVAILABLE copy in the
    /// destination (follow mode) may get
    /// before the object is `Stalled` (`RPOBreached`), alerted and notified
    /// (e.g. `26h`). Default: the followed schedule's RPO plus 12h for the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::common::DURATION_PATTERN))]
    pub rpo: Option<String>,
    /// Hold a spec change that would delete many copies at once until it is approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_brake: Option<DeletionBrake>,
    /// Whether copies an earlier object of the same namespace, kind and name made
    /// in this cluster (deleted with `Retain`, or a rebuilt cluster with the same
    /// `clusterId`) become this object's: `Adopt` (default) or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<Adoption>,
    /// SNS notifications: failures always, successes when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,
}

/// The backups to copy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.scheduleRef) != has(self.backupId)").message("set exactly one of scheduleRef, backupId"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.region) || has(self.backupId)").message("region is only for backupId; a followed schedule's Region is the schedule's"))]
pub struct CopySource {
    /// Follow an `FsxBackupSchedule` in this namespace: copy each backup it
    /// makes once AVAILABLE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_ref: Option<ScheduleRef>,
    /// Copy this one backup once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::common::BACKUP_ID_PATTERN))]
    pub backup_id: Option<String>,
    /// Region of `backupId` (default: the operator's Region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::common::REGION_PATTERN))]
    pub region: Option<String>,
}

/// A schedule in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRef {
    /// The `FsxBackupSchedule`'s name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FsxBackupCopyStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The generation whose retention policy has been applied to the copies:
    /// until it equals `metadata.generation`, deletions pass the deletion brake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 9_007_199_254_740_991_i64))] // 2^53 - 1: exact as JSON
    pub retention_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, as kstatus reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// One entry per source backup, newest first (at most 50 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyStatus>,
    /// Copies waiting for one of the destination Region's copy slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = u32::MAX))]
    pub queued: Option<u32>,
    /// When the latest copy completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_copy_time: Option<Time>,
    /// Follow mode: every source backup created up to this instant is settled
    /// (copied, failed or gone), so older ones are never looked at again, even
    /// after their copies have been pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_through: Option<Time>,
    /// File systems and volumes whose backups are copied: where the copies are
    /// looked up in the destination for retention and deletion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub source_targets: Vec<String>,
    /// The RPO in force (`spec.rpo` or its default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<String>,
    /// Per target: the newest recovery point and when the RPO breaches without a newer one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery_points: Vec<RecoveryPoint>,
    /// How the latest copy ended: `Succeeded`, `Failed`, `Missed`, `InProgress`, `SourceGone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_result: Option<String>,
}

/// One copy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyStatus {
    /// The backup copied.
    pub source_backup_id: String,
    /// The copy in the destination Region, once FSx accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_backup_id: Option<String>,
    /// Lifecycle of the copy as FSx reports it, or before FSx accepted it:
    /// `WaitingForSource`, `Queued` (for a copy slot), `Blocked` (needs a spec fix).
    pub lifecycle: String,
    /// Progress of the copy, as FSx reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub progress_percent: Option<i32>,
    /// The file system or volume the source backup is of (follow mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// When the source backup was created (orders the list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_creation_time: Option<Time>,
    /// When `CopyBackup` was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the copy became AVAILABLE or FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Why the copy is blocked or failed (a condition reason such as `InvalidKmsKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What went wrong or what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
