//! The FSx boundary: the only place the operator talks to Amazon FSx.
//!
//! Controllers depend on the [`FsxApi`] trait and the plain domain types here,
//! never on the AWS SDK directly, so the decision core can be tested with plain
//! values and every AWS failure arrives already classified ([`FsxError`]).

mod aws;
mod batch;
mod error;
mod metered;
mod rate_limit;
mod sdk_types;
mod sts;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

pub use aws::{AwsFsx, AwsFsxConfig, DEFAULT_MAX_IN_FLIGHT};
pub use batch::BatchedFsx;
pub use error::{FsxError, UserActionReason};
pub use metered::MeteredFsx;
pub use rate_limit::TokenBucket;
pub use sts::{MIN_SESSION, Sessions};

/// An IAM role in another AWS account, assumed through STS for one object: what
/// an `FsxBackupAccount` resolves to for an object allowed to use it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role {
    /// The `FsxBackupAccount` that named the role (for messages).
    pub account_name: String,
    pub arn: String,
    /// The 12-digit account id in `arn`: the key of every per-account structure.
    pub account_id: String,
    pub external_id: Option<String>,
    /// Names the object in `CloudTrail` (`RoleSessionName`).
    pub session_name: String,
    pub session_duration: Duration,
}

/// Where an FSx call goes: a Region, in the operator's own account or in the
/// account of an assumed role. Clients, rate limits and copy slots are per
/// [`Place::key`]: account and Region.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    pub region: String,
    /// `None`: the operator's own identity.
    pub role: Option<Arc<Role>>,
}

/// The account label of the operator's own identity in metrics and keys.
pub const OWN_ACCOUNT: &str = "own";

impl Place {
    pub fn new(region: impl Into<String>, role: Option<Arc<Role>>) -> Self {
        Self {
            region: region.into(),
            role,
        }
    }

    /// The operator's own identity in `region`.
    pub fn own(region: impl Into<String>) -> Self {
        Self::new(region, None)
    }

    /// The same account in another Region.
    #[must_use]
    pub fn in_region(&self, region: impl Into<String>) -> Self {
        Self::new(region, self.role.clone())
    }

    /// The account id, or [`OWN_ACCOUNT`] for the operator's own identity.
    pub fn account(&self) -> &str {
        account_of(self.role.as_deref())
    }

    /// `(account, Region)`: what shared structures are keyed by.
    pub fn key(&self) -> (String, String) {
        (self.account().to_owned(), self.region.clone())
    }
}

/// The account id a role acts in, or [`OWN_ACCOUNT`] for none.
pub fn account_of(role: Option<&Role>) -> &str {
    role.map_or(OWN_ACCOUNT, |r| &r.account_id)
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.role {
            None => f.write_str(&self.region),
            Some(role) => write!(
                f,
                "{} (account {}, role {})",
                self.region, role.account_id, role.arn
            ),
        }
    }
}

/// What a backup is taken of. ONTAP is backed up per volume; the other types
/// per file system (OpenZFS volumes may also be backed up individually).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackupTarget {
    FileSystem(String),
    Volume(String),
}

impl BackupTarget {
    /// The target an id names: `fsvol-…` is a volume, anything else a file system.
    pub fn from_id(id: impl Into<String>) -> Self {
        let id = id.into();
        if id.starts_with("fsvol-") {
            Self::Volume(id)
        } else {
            Self::FileSystem(id)
        }
    }

    /// The `fs-…` or `fsvol-…` id.
    pub fn id(&self) -> &str {
        match self {
            Self::FileSystem(id) | Self::Volume(id) => id,
        }
    }
}

/// A backup's lifecycle as FSx reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    Available,
    Creating,
    Transferring,
    Pending,
    Copying,
    Deleted,
    Failed,
    /// A value this operator version does not know; treated as "in progress".
    Other(String),
}

impl Lifecycle {
    /// FSx's wire name, e.g. `AVAILABLE`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Creating => "CREATING",
            Self::Transferring => "TRANSFERRING",
            Self::Pending => "PENDING",
            Self::Copying => "COPYING",
            Self::Deleted => "DELETED",
            Self::Failed => "FAILED",
            Self::Other(other) => other,
        }
    }

    /// Parses FSx's wire name; unknown values are kept, not rejected.
    pub fn parse(value: &str) -> Self {
        match value {
            "AVAILABLE" => Self::Available,
            "CREATING" => Self::Creating,
            "TRANSFERRING" => Self::Transferring,
            "PENDING" => Self::Pending,
            "COPYING" => Self::Copying,
            "DELETED" => Self::Deleted,
            "FAILED" => Self::Failed,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Still being made: must never be deleted and blocks a new backup of the target.
    pub fn in_progress(&self) -> bool {
        matches!(
            self,
            Self::Creating | Self::Transferring | Self::Pending | Self::Copying | Self::Other(_)
        )
    }
}

/// Who made a backup. Only `UserInitiated` backups can ever be the operator's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BackupType {
    UserInitiated,
    Automatic,
    AwsBackup,
    Other(String),
}

impl BackupType {
    pub fn parse(value: &str) -> Self {
        match value {
            "USER_INITIATED" => Self::UserInitiated,
            "AUTOMATIC" => Self::Automatic,
            "AWS_BACKUP" => Self::AwsBackup,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// One FSx backup, reduced to what the operator reasons about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub id: String,
    /// What `TagResource` names the backup by; `None` when FSx did not say.
    pub arn: Option<String>,
    pub lifecycle: Lifecycle,
    /// `None` when FSx did not say; such a backup is never treated as the operator's.
    pub backup_type: Option<BackupType>,
    pub progress_percent: Option<i32>,
    pub created_at: Option<Timestamp>,
    pub tags: BTreeMap<String, String>,
    pub failure_message: Option<String>,
    /// The file system or volume it is a backup of, when FSx reports it.
    pub target: Option<BackupTarget>,
    /// Set on copies: where the backup was copied from.
    pub source_backup_id: Option<String>,
    pub source_region: Option<String>,
}

/// An FSx file system, for resolving tag selectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSystem {
    pub id: String,
    /// `WINDOWS`, `LUSTRE`, `ONTAP` or `OPENZFS`.
    pub file_system_type: String,
    pub lifecycle: String,
    pub tags: BTreeMap<String, String>,
}

/// A `CreateBackup` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateBackupRequest {
    pub target: BackupTarget,
    /// Deterministic idempotency token (≤ 63 chars of `[A-Za-z0-9_.-]`).
    pub client_request_token: String,
    pub tags: BTreeMap<String, String>,
}

/// A `CopyBackup` call, sent to the destination Region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyBackupRequest {
    pub source_backup_id: String,
    pub source_region: String,
    pub kms_key_id: Option<String>,
    pub copy_tags: bool,
    pub tags: BTreeMap<String, String>,
    pub client_request_token: String,
}

/// What a `DeleteBackup` achieved; both mean "it is gone".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Now,
    AlreadyGone,
}

/// Backups looked up by id: those found, and the ids FSx no longer knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupsById {
    pub found: Vec<Backup>,
    pub missing: Vec<String>,
}

/// Backups listed per target, each with its own answer.
pub type ByTarget = BTreeMap<BackupTarget, Result<Vec<Backup>, FsxError>>;

/// An answer that left out part of what was asked: worth asking again.
pub fn incomplete_answer(operation: &'static str, at: &Place) -> FsxError {
    FsxError::RetryLater {
        operation,
        region: at.to_string(),
        code: "IncompleteResponse".to_owned(),
        message: "the answer left out part of what was asked".to_owned(),
    }
}

/// Exactly what the controllers need from FSx. Every call names its account and Region;
/// every list is complete (all pages) and in no particular order.
pub trait FsxApi: Send + Sync + 'static {
    fn create_backup(
        &self,
        at: &Place,
        request: &CreateBackupRequest,
    ) -> impl Future<Output = Result<Backup, FsxError>> + Send;

    /// Every backup FSx lists for each target (all types; callers filter), in
    /// as few calls as FSx allows. Every target has its own answer: one that
    /// FSx does not know fails alone.
    fn describe_backups_of_targets(
        &self,
        at: &Place,
        targets: &[BackupTarget],
    ) -> impl Future<Output = ByTarget> + Send;

    /// [`Self::describe_backups_of_targets`] for `fs-…`/`fsvol-…` ids, each
    /// answer under its id, in the order given.
    fn describe_backups_of_ids(
        &self,
        at: &Place,
        ids: &[String],
    ) -> impl Future<Output = Vec<(String, Result<Vec<Backup>, FsxError>)>> + Send {
        async move {
            // Most reconciles have nothing to list: no call, no lane, no session.
            if ids.is_empty() {
                return Vec::new();
            }
            let targets: Vec<BackupTarget> = ids.iter().map(BackupTarget::from_id).collect();
            let answers = self.describe_backups_of_targets(at, &targets).await;
            targets
                .into_iter()
                .map(|target| {
                    let answer = answers
                        .get(&target)
                        .cloned()
                        .unwrap_or_else(|| Err(incomplete_answer("DescribeBackups", at)));
                    (target.id().to_owned(), answer)
                })
                .collect()
        }
    }

    /// Every backup FSx lists for the target (all types; callers filter).
    fn describe_backups_of(
        &self,
        at: &Place,
        target: &BackupTarget,
    ) -> impl Future<Output = Result<Vec<Backup>, FsxError>> + Send {
        async move {
            self.describe_backups_of_targets(at, std::slice::from_ref(target))
                .await
                .remove(target)
                .unwrap_or_else(|| Err(incomplete_answer("DescribeBackups", at)))
        }
    }

    /// Batch lookup, for polling backups in flight with few calls.
    fn describe_backups_by_ids(
        &self,
        at: &Place,
        ids: &[String],
    ) -> impl Future<Output = Result<BackupsById, FsxError>> + Send;

    fn delete_backup(
        &self,
        at: &Place,
        backup_id: &str,
    ) -> impl Future<Output = Result<Deleted, FsxError>> + Send;

    /// Sent to `destination_region` with `SourceRegion` set.
    fn copy_backup(
        &self,
        destination: &Place,
        request: &CopyBackupRequest,
    ) -> impl Future<Output = Result<Backup, FsxError>> + Send;

    fn describe_file_systems(
        &self,
        at: &Place,
    ) -> impl Future<Output = Result<Vec<FileSystem>, FsxError>> + Send;

    /// Every `USER_INITIATED` backup in the Region, of any target: what the
    /// stray scan reads (the operator's backups are all of that type).
    fn describe_user_backups(
        &self,
        at: &Place,
    ) -> impl Future<Output = Result<Vec<Backup>, FsxError>> + Send;

    /// Makes sure calls at `at` can be sent as its identity (assumes its role
    /// when there is no fresh session), so that a role the operator cannot
    /// assume is reported at once, not first when a backup is due.
    fn assume(&self, at: &Place) -> impl Future<Output = Result<(), FsxError>> + Send {
        let _ = at;
        async { Ok(()) }
    }

    /// Adds or overwrites `tags` on the backup `arn` (`TagResource`): how
    /// adoption moves a backup to its new owner.
    fn tag_backup(
        &self,
        at: &Place,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), FsxError>> + Send;
}
