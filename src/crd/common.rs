//! Field types shared by both kinds: retention, deletion policy, notifications,
//! tags, and the schema patterns the apiserver enforces.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::duration::parse_duration;
use crate::retention::RetentionPolicy;

/// An AWS Region name such as `us-east-1`, `eu-central-2` or `us-gov-west-1`.
pub const REGION_PATTERN: &str = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$";
/// An FSx file system id.
pub const FILE_SYSTEM_ID_PATTERN: &str = r"^fs-[0-9a-f]{8,21}$";
/// An FSx volume id (ONTAP or OpenZFS).
pub const VOLUME_ID_PATTERN: &str = r"^fsvol-[0-9a-f]{17,21}$";
/// An FSx backup id.
pub const BACKUP_ID_PATTERN: &str = r"^backup-[0-9a-f]{8,21}$";
/// A Kubernetes object name (DNS subdomain).
pub const OBJECT_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";
/// A duration such as `30s`, `10m`, `6h`, `7d`, `2w` or `1h30m`.
pub const DURATION_PATTERN: &str = crate::duration::DURATION_PATTERN;
/// FSx allows 50 tags per resource; the operator sets five of its own, and
/// the cluster tag when there is room for it (`ownership::fit_tags`).
pub const MAX_USER_TAGS: usize = 45;

/// What happens to the backups an object made when the object is deleted.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    /// Leave every backup in place (the default): deleting a Kubernetes object
    /// must never silently destroy data.
    #[default]
    Retain,
    /// Delete the backups this object owns (identified by its UID tag), and only those.
    Delete,
}

/// What becomes of backups made by an earlier object with this object's
/// namespace, kind and name in this cluster identity (its orphans).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Adoption {
    /// Re-tag them to this object: they count toward retention and
    /// `minAvailable` again. Their first pruning goes through the deletion brake.
    #[default]
    Adopt,
    /// Leave them as they are: reported as strays, never touched.
    Never,
}

/// One target's recovery point against the RPO.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPoint {
    /// The file system or volume (for a copy: the source's).
    pub target: String,
    /// Creation time of the newest AVAILABLE backup (for a copy: of the source
    /// backup of the newest AVAILABLE copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// When the operator started tracking the target: the RPO counts from
    /// here while there is no recovery point.
    pub tracked_since: Time,
    /// When the RPO is breached unless a newer recovery point comes (none while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breach_time: Option<Time>,
    /// Whether the RPO is breached now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached: Option<bool>,
}

/// How long backups are kept. A backup is deleted when it is older than
/// `maxAge` or beyond the newest `maxCount`, unless `keepLast` or a GFS rule
/// (`keepHourly` … `keepYearly`) keeps it; `minAvailable` is never broken.
/// Only AVAILABLE backups this object made count; in-progress, AUTOMATIC,
/// AWS Backup and other owners' backups are never touched.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Delete backups older than this (e.g. `7d`, `36h`, `2w`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::duration::DURATION_PATTERN))]
    pub max_age: Option<String>,
    /// Delete backups beyond the newest N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_RETENTION_COUNT))]
    pub max_count: Option<u32>,
    /// Always keep the newest N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_RETENTION_COUNT))]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N hours that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_RETENTION_COUNT))]
    pub keep_hourly: Option<u32>,
    /// Keep the newest backup of each of the last N days (in the schedule's time zone) that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_RETENTION_COUNT))]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_RETENTION_COUNT))]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_RETENTION_COUNT))]
    pub keep_monthly: Option<u32>,
    /// Keep the newest backup of each of the last N years that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_RETENTION_COUNT))]
    pub keep_yearly: Option<u32>,
    /// Safety floor: never leave fewer AVAILABLE backups than this, whatever
    /// their age (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_RETENTION_COUNT))]
    pub min_available: Option<u32>,
    /// FAILED backups kept for inspection (default 3); older failures are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1000))]
    pub failed_history_limit: Option<u32>,
}

/// Largest count a retention rule accepts: far above any FSx backup quota, and
/// bounded so that no stored value can overflow what the operator reads it into.
pub const MAX_RETENTION_COUNT: u32 = 100_000;

/// How many backups a spec change may delete at once before a person must
/// approve it (`fsxbackup.io/approve-deletions: "<generation>"`). Either limit
/// trips the brake; unset fields take the operator's defaults
/// (`--deletion-brake-max`, `--deletion-brake-percent`). Routine pruning by an
/// unchanged policy is never held.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionBrake {
    /// More than this many of a target's AVAILABLE backups deleted at once is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_RETENTION_COUNT))]
    pub max_deletions: Option<u32>,
    /// More than this percentage of a target's AVAILABLE backups deleted at once is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub max_percent: Option<u32>,
}

/// Default `minAvailable`.
pub const DEFAULT_MIN_AVAILABLE: u32 = 1;
/// Default `failedHistoryLimit`.
pub const DEFAULT_FAILED_HISTORY_LIMIT: u32 = 3;

impl RetentionSpec {
    /// The policy the retention planner applies, or a message naming the field to fix.
    pub fn to_policy(&self) -> Result<RetentionPolicy, String> {
        let max_age = self
            .max_age
            .as_deref()
            .map(|text| parse_duration(text).map_err(|err| format!("spec.retention.maxAge: {err}")))
            .transpose()?;
        let policy = RetentionPolicy {
            max_age,
            max_count: self.max_count,
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            min_available: self.min_available.unwrap_or(DEFAULT_MIN_AVAILABLE),
            failed_history_limit: self
                .failed_history_limit
                .unwrap_or(DEFAULT_FAILED_HISTORY_LIMIT),
        };
        policy.validate()?;
        Ok(policy)
    }
}

/// The policy applied when `retention` is omitted: keep every AVAILABLE
/// backup, prune FAILED ones beyond the default history.
pub fn keep_everything() -> RetentionPolicy {
    RetentionPolicy {
        min_available: DEFAULT_MIN_AVAILABLE,
        failed_history_limit: DEFAULT_FAILED_HISTORY_LIMIT,
        ..RetentionPolicy::default()
    }
}

/// SNS notifications, as in AWS's custom backup schedule solution.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    /// Topic to publish to. Failures are always published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"
    ))]
    pub sns_topic_arn: Option<String>,
    /// Also publish successes (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<bool>,
}

/// The rules FSx applies to tag keys and values, checked by the apiserver so
/// a bad tag is rejected at `kubectl apply` rather than at the first backup.
pub const TAG_RULES: &str = "self.all(k, size(k) >= 1 && size(k) <= 128 && !k.startsWith('aws:') && \
     !k.startsWith('fsxbackup.io/') && k != 'Name' && k.matches('^[\\\\p{L}\\\\p{Z}\\\\p{N}_.:/=+@-]+$'))";

/// FSx's character set for tag keys and values: letters, spaces, digits and `_.:/=+-@`.
pub const TAG_VALUE_PATTERN: &str = r"^[\p{L}\p{Z}\p{N}_.:/=+@-]*$";

/// Extra tags: FSx's limits (key ≤ 128, value ≤ 256 characters, no `aws:`
/// prefix) and the operator's reserved keys, checked by the apiserver.
pub type Tags = BTreeMap<String, String>;

/// One backup in a status list.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRef {
    /// The `backup-…` id.
    pub id: String,
    /// FSx lifecycle: CREATING, AVAILABLE, FAILED, …
    pub lifecycle: String,
    /// When FSx created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<Time>,
    /// When retention will delete it, if that depends only on time (`maxAge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The retention rule that keeps it: maxAge, maxCount, keepLast, keepDaily, …, minAvailable, inProgress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_by: Option<String>,
}
