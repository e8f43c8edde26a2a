//! Public data types of the emulator's control surface.
//!
//! These types are shared by the in-process Rust API ([`crate::Emulator`]) and
//! the HTTP control API under `/_emulator/...`, so every one of them is
//! serde-(de)serializable. Enumerations use the exact wire strings of the FSx
//! model (`USER_INITIATED`, `MULTI_AZ_1`, ...) so that a value read from the
//! emulator's state can be compared directly with what the SDK reports.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Error returned when a string is not one of an enumeration's wire values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// Name of the enumeration, e.g. `BackupLifecycle`.
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a valid {} value", self.value, self.kind)
    }
}

impl std::error::Error for UnknownValue {}

/// Declares an enumeration whose variants map one-to-one onto FSx wire strings.
///
/// A macro keeps `as_str`, `FromStr`, `Display` and the serde names in a
/// single table so they cannot drift apart.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident default $default:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The FSx wire string of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire),+
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok(Self::$variant),)+
                    _ => Err(UnknownValue { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }
    };
}

wire_enum! {
    /// The FSx file system type (`FileSystemType` in the model).
    FileSystemType default Windows {
        /// FSx for Windows File Server.
        Windows => "WINDOWS",
        /// FSx for Lustre.
        Lustre => "LUSTRE",
        /// FSx for NetApp ONTAP (backed up per volume only).
        Ontap => "ONTAP",
        /// FSx for OpenZFS.
        OpenZfs => "OPENZFS",
    }
}

wire_enum! {
    /// Storage class of a file system (`StorageType` in the model).
    StorageType default Ssd {
        /// SSD storage.
        Ssd => "SSD",
        /// HDD storage.
        Hdd => "HDD",
        /// Intelligent-Tiering; FSx refuses to copy backups of such file systems.
        IntelligentTiering => "INTELLIGENT_TIERING",
    }
}

wire_enum! {
    /// Lifecycle of a file system (`FileSystemLifecycle` in the model).
    FileSystemLifecycle default Available {
        /// Ready for use.
        Available => "AVAILABLE",
        /// Being created.
        Creating => "CREATING",
        /// Creation failed.
        Failed => "FAILED",
        /// Being deleted.
        Deleting => "DELETING",
        /// Misconfigured.
        Misconfigured => "MISCONFIGURED",
        /// Being updated; still serves data and can be backed up.
        Updating => "UPDATING",
        /// Misconfigured and unavailable.
        MisconfiguredUnavailable => "MISCONFIGURED_UNAVAILABLE",
    }
}

wire_enum! {
    /// The type of a volume (`VolumeType` in the model).
    VolumeType default Ontap {
        /// An FSx for ONTAP volume.
        Ontap => "ONTAP",
        /// An FSx for OpenZFS volume.
        OpenZfs => "OPENZFS",
    }
}

wire_enum! {
    /// Who created a backup (`BackupType` in the model).
    BackupType default Automatic {
        /// Taken by FSx's daily automatic backup window.
        Automatic => "AUTOMATIC",
        /// Taken through `CreateBackup` or `CopyBackup`.
        UserInitiated => "USER_INITIATED",
        /// Taken by AWS Backup; only AWS Backup may delete it.
        AwsBackup => "AWS_BACKUP",
    }
}

wire_enum! {
    /// Lifecycle of a backup (`BackupLifecycle` in the model).
    BackupLifecycle default Available {
        /// Complete and usable.
        Available => "AVAILABLE",
        /// Being taken.
        Creating => "CREATING",
        /// Being transferred to S3 (Lustre).
        Transferring => "TRANSFERRING",
        /// Deleted; never listed, only returned by idempotent replays.
        Deleted => "DELETED",
        /// Could not be completed; see `FailureDetails`.
        Failed => "FAILED",
        /// Accepted but not yet started.
        Pending => "PENDING",
        /// A `CopyBackup` destination that is still being copied.
        Copying => "COPYING",
    }
}

impl BackupLifecycle {
    /// Whether the backup is still being taken, i.e. blocks another backup of
    /// the same target (`BackupInProgress`).
    pub fn is_creation_in_progress(self) -> bool {
        matches!(self, Self::Creating | Self::Pending | Self::Transferring)
    }
}

wire_enum! {
    /// What a backup is a backup of (`ResourceType` in the model).
    ResourceType default FileSystem {
        /// A whole file system.
        FileSystem => "FILE_SYSTEM",
        /// A single volume (ONTAP).
        Volume => "VOLUME",
    }
}

/// A resource tag, serialized exactly like the FSx `Tag` shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tag {
    /// Tag key.
    #[serde(rename = "Key")]
    pub key: String,
    /// Tag value.
    #[serde(rename = "Value")]
    pub value: String,
}

impl Tag {
    /// Builds a tag.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Serde helpers for `Duration` as (fractional) seconds, which is what shell
/// scripts driving the HTTP control API can produce most easily.
pub(crate) mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(value.as_secs_f64())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(D::Error::custom)
    }
}

/// Serde helpers for optional `SystemTime` as fractional epoch seconds, the
/// same representation FSx uses for timestamps on the wire.
pub(crate) mod opt_epoch_secs {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    #[allow(
        clippy::ref_option,
        reason = "serde's `with` attribute passes the field by reference"
    )]
    pub(crate) fn serialize<S: Serializer>(
        value: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(t) => s.serialize_some(&crate::time::epoch_seconds(*t)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        let Some(secs) = Option::<f64>::deserialize(d)? else {
            return Ok(None);
        };
        let offset = Duration::try_from_secs_f64(secs).map_err(D::Error::custom)?;
        UNIX_EPOCH
            .checked_add(offset)
            .map(Some)
            .ok_or_else(|| D::Error::custom("timestamp out of range"))
    }
}

/// A file system to pre-create in a Region.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSystemSeed {
    /// Id to use (`fs-` + hex); generated (`fs-` + 17 hex digits) when absent.
    pub id: Option<String>,
    /// File system type.
    pub file_system_type: FileSystemType,
    /// Deployment type as FSx spells it (`MULTI_AZ_1`, `PERSISTENT_2`, ...);
    /// a sensible single-AZ / persistent default when absent.
    pub deployment_type: Option<String>,
    /// Storage class.
    pub storage_type: StorageType,
    /// Lifecycle; backups are only possible while `AVAILABLE` or `UPDATING`.
    pub lifecycle: FileSystemLifecycle,
    /// Tags of the file system.
    pub tags: Vec<Tag>,
    /// Lustre only: a scratch file system (defaults the deployment type to
    /// `SCRATCH_2`); FSx refuses backups of scratch file systems.
    pub lustre_scratch: bool,
    /// Lustre only: linked to an S3 data repository; FSx refuses backups.
    pub linked_to_data_repository: bool,
    /// `CopyTagsToBackups`: a backup created without tags gets the file
    /// system's tags.
    pub copy_tags_to_backups: bool,
    /// KMS key of the file system; backups inherit it. Defaults to the
    /// Region's FSx-managed key.
    pub kms_key_id: Option<String>,
}

impl FileSystemSeed {
    /// A seed of the given type with every other field defaulted.
    pub fn new(file_system_type: FileSystemType) -> Self {
        Self {
            file_system_type,
            ..Self::default()
        }
    }

    /// Sets the id.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the deployment type (`MULTI_AZ_1`, `SCRATCH_2`, ...).
    #[must_use]
    pub fn deployment_type(mut self, deployment_type: impl Into<String>) -> Self {
        self.deployment_type = Some(deployment_type.into());
        self
    }

    /// Sets the storage class.
    #[must_use]
    pub fn storage_type(mut self, storage_type: StorageType) -> Self {
        self.storage_type = storage_type;
        self
    }

    /// Sets the lifecycle.
    #[must_use]
    pub fn lifecycle(mut self, lifecycle: FileSystemLifecycle) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push(Tag::new(key, value));
        self
    }

    /// Marks a Lustre file system as scratch.
    #[must_use]
    pub fn lustre_scratch(mut self, scratch: bool) -> Self {
        self.lustre_scratch = scratch;
        self
    }

    /// Marks a Lustre file system as linked to a data repository.
    #[must_use]
    pub fn linked_to_data_repository(mut self, linked: bool) -> Self {
        self.linked_to_data_repository = linked;
        self
    }

    /// Sets `CopyTagsToBackups`.
    #[must_use]
    pub fn copy_tags_to_backups(mut self, copy: bool) -> Self {
        self.copy_tags_to_backups = copy;
        self
    }

    /// Sets the KMS key id.
    #[must_use]
    pub fn kms_key_id(mut self, key: impl Into<String>) -> Self {
        self.kms_key_id = Some(key.into());
        self
    }
}

/// A volume to pre-create on an existing ONTAP or OpenZFS file system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeSeed {
    /// Id to use (`fsvol-` + 17 hex); generated when absent.
    pub id: Option<String>,
    /// The owning file system, which must already be seeded in the Region.
    pub file_system_id: String,
    /// Volume name; defaults to `vol_<n>`.
    pub name: Option<String>,
    /// Tags of the volume.
    pub tags: Vec<Tag>,
    /// ONTAP only: the storage virtual machine; generated when absent.
    pub storage_virtual_machine_id: Option<String>,
    /// `CopyTagsToBackups` of the volume.
    pub copy_tags_to_backups: bool,
}

impl VolumeSeed {
    /// A seed for a volume on the given file system.
    pub fn new(file_system_id: impl Into<String>) -> Self {
        Self {
            file_system_id: file_system_id.into(),
            ..Self::default()
        }
    }

    /// Sets the id.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push(Tag::new(key, value));
        self
    }

    /// Sets the storage virtual machine id.
    #[must_use]
    pub fn storage_virtual_machine_id(mut self, id: impl Into<String>) -> Self {
        self.storage_virtual_machine_id = Some(id.into());
        self
    }

    /// Sets `CopyTagsToBackups`.
    #[must_use]
    pub fn copy_tags_to_backups(mut self, copy: bool) -> Self {
        self.copy_tags_to_backups = copy;
        self
    }
}

/// A backup to pre-create: automatic, AWS Backup, or someone else's
/// user-initiated backup, in any lifecycle. Seeded backups keep their
/// lifecycle until changed with [`crate::Emulator::set_lifecycle`]; they do
/// not progress on their own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSeed {
    /// Id to use (`backup-` + hex); generated (17 hex digits) when absent.
    pub id: Option<String>,
    /// The backed-up file system. When it is seeded in the Region its
    /// description is embedded; otherwise (a deleted file system) one is
    /// synthesized from `file_system_type`.
    pub file_system_id: Option<String>,
    /// The backed-up volume; must be seeded in the Region when given.
    pub volume_id: Option<String>,
    /// Type of the synthesized file system description when
    /// `file_system_id` is not seeded.
    pub file_system_type: Option<FileSystemType>,
    /// Backup type.
    pub backup_type: BackupType,
    /// Lifecycle.
    pub lifecycle: BackupLifecycle,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Creation time; now when absent.
    #[serde(with = "opt_epoch_secs")]
    pub creation_time: Option<SystemTime>,
    /// KMS key; the file system's when absent.
    pub kms_key_id: Option<String>,
    /// Owner account; the emulator's account when absent.
    pub owner_id: Option<String>,
    /// When set, the backup is being used to restore this file system and
    /// `DeleteBackup` answers `BackupRestoring`.
    pub restoring_file_system_id: Option<String>,
    /// For seeded copies: the source backup id.
    pub source_backup_id: Option<String>,
    /// For seeded copies: the source Region.
    pub source_backup_region: Option<String>,
    /// `FailureDetails.Message` for a `FAILED` seed.
    pub failure_message: Option<String>,
    /// `ProgressPercent` to report; derived from the lifecycle when absent.
    pub progress_percent: Option<i32>,
}

impl BackupSeed {
    /// A seed of the given type for a backup of a file system.
    pub fn of_file_system(file_system_id: impl Into<String>, backup_type: BackupType) -> Self {
        Self {
            file_system_id: Some(file_system_id.into()),
            backup_type,
            ..Self::default()
        }
    }

    /// A seed of the given type for a backup of a volume.
    pub fn of_volume(volume_id: impl Into<String>, backup_type: BackupType) -> Self {
        Self {
            volume_id: Some(volume_id.into()),
            backup_type,
            ..Self::default()
        }
    }

    /// Sets the id.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the lifecycle.
    #[must_use]
    pub fn lifecycle(mut self, lifecycle: BackupLifecycle) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push(Tag::new(key, value));
        self
    }

    /// Sets the creation time.
    #[must_use]
    pub fn creation_time(mut self, time: SystemTime) -> Self {
        self.creation_time = Some(time);
        self
    }

    /// Sets the KMS key id.
    #[must_use]
    pub fn kms_key_id(mut self, key: impl Into<String>) -> Self {
        self.kms_key_id = Some(key.into());
        self
    }

    /// Marks the backup as being restored into the given file system.
    #[must_use]
    pub fn restoring(mut self, file_system_id: impl Into<String>) -> Self {
        self.restoring_file_system_id = Some(file_system_id.into());
        self
    }

    /// Sets the synthesized file system type (for a file system that is not
    /// seeded).
    #[must_use]
    pub fn file_system_type(mut self, file_system_type: FileSystemType) -> Self {
        self.file_system_type = Some(file_system_type);
        self
    }
}

/// How long new backups take to progress. The durations are captured when a
/// backup is created, so changing the timing affects only later backups.
///
/// Progression is evaluated lazily whenever the emulator is accessed (any
/// FSx request or control-API read such as [`crate::Emulator::state`]), so
/// with a zero duration the backup is `CREATING` in the response that
/// created it and `AVAILABLE` from the next access on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    /// `CREATING` → `AVAILABLE` (or `FAILED`). Zero: `AVAILABLE` on the first
    /// request after the one that created it.
    #[serde(rename = "create_seconds", with = "duration_secs")]
    pub create_duration: Duration,
    /// `COPYING` → `AVAILABLE`. Zero: `AVAILABLE` on the first request after
    /// the one that created it.
    #[serde(rename = "copy_seconds", with = "duration_secs")]
    pub copy_duration: Duration,
}

/// Injected faults. Rates are probabilities in `[0, 1]` per request; the
/// `*_next` counters fault exactly the next N eligible requests (checked
/// before the rates), which keeps tests deterministic.
///
/// STS requests are eligible too, by action name (`AssumeRole`,
/// `GetCallerIdentity`), and get STS's codes: `Throttling` (HTTP 400),
/// `InternalFailure` (500) and `AccessDenied` (403).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability of answering `ThrottlingException` without processing.
    pub throttle_rate: f64,
    /// Throttle exactly the next N eligible requests.
    pub throttle_next: u32,
    /// Probability of answering `InternalServerError` (HTTP 500) without
    /// processing.
    pub server_error_rate: f64,
    /// Fail exactly the next N eligible requests with `InternalServerError`.
    pub server_error_next: u32,
    /// Probability of processing the request (the write takes effect) and then
    /// closing the connection without any response.
    pub drop_response_after_write_rate: f64,
    /// Drop the response of exactly the next N eligible requests after
    /// processing them.
    pub drop_response_after_write_next: u32,
    /// Delay added before every eligible request is processed.
    #[serde(rename = "latency_seconds", with = "duration_secs")]
    pub latency: Duration,
    /// Delay added after an eligible request took effect, before its answer
    /// (FSx slow to answer a call it carried out).
    #[serde(rename = "latency_after_write_seconds", with = "duration_secs")]
    pub latency_after_write: Duration,
    /// When set, only these operations (e.g. `CreateBackup`) are eligible for
    /// the faults above.
    pub only_operations: Option<Vec<String>>,
    /// Operations answered with `AccessDeniedException` (independent of
    /// `only_operations`).
    pub deny_operations: Vec<String>,
}

/// Service quotas and environment facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Backup copies that may be `COPYING` at once per destination Region
    /// (FSx: five).
    pub copies_in_progress_per_region: usize,
    /// User-initiated backups (including copies) per Region.
    pub user_backups_per_region: usize,
    /// Regions that cannot receive copies of Multi-AZ Windows backups
    /// (`IncompatibleRegionForMultiAZ`).
    pub regions_without_multi_az: Vec<String>,
    /// KMS key ids (or ARNs) that are not usable; any key containing
    /// `invalid` is unusable as well.
    pub bad_kms_keys: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            copies_in_progress_per_region: 5,
            user_backups_per_region: 5000,
            regions_without_multi_az: Vec::new(),
            bad_kms_keys: Vec::new(),
        }
    }
}

/// Full, serializable view of one account's state (plus the emulator-wide
/// configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// The account: the one in its resources' ARNs and `OwnerId`.
    pub account_id: String,
    /// Per-Region state, keyed by Region name.
    pub regions: std::collections::BTreeMap<String, RegionSnapshot>,
    /// Current timing.
    pub timing: Timing,
    /// Current limits.
    pub limits: Limits,
    /// Current faults.
    pub faults: Faults,
}

/// State of one Region.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionSnapshot {
    /// File systems.
    pub file_systems: Vec<FileSystemSnapshot>,
    /// Volumes.
    pub volumes: Vec<VolumeSnapshot>,
    /// Backups that exist (not deleted).
    pub backups: Vec<BackupSnapshot>,
    /// Ids of deleted backups, kept for idempotent replays.
    pub deleted_backup_ids: Vec<String>,
    /// Highest number of backups simultaneously `COPYING` in this Region.
    pub max_copies_in_progress: usize,
}

/// One file system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSystemSnapshot {
    /// Id.
    pub id: String,
    /// Type.
    pub file_system_type: FileSystemType,
    /// Deployment type.
    pub deployment_type: String,
    /// Lifecycle.
    pub lifecycle: FileSystemLifecycle,
    /// Tags.
    pub tags: Vec<Tag>,
    /// ARN.
    pub resource_arn: String,
}

/// One volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeSnapshot {
    /// Id.
    pub id: String,
    /// Owning file system.
    pub file_system_id: String,
    /// Type.
    pub volume_type: VolumeType,
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: Vec<Tag>,
    /// ARN.
    pub resource_arn: String,
}

/// One backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupSnapshot {
    /// Id.
    pub id: String,
    /// Type.
    pub backup_type: BackupType,
    /// Lifecycle at the time of the snapshot.
    pub lifecycle: BackupLifecycle,
    /// Progress at the time of the snapshot.
    pub progress_percent: Option<i32>,
    /// Whether this is a file system or a volume backup.
    pub resource_type: ResourceType,
    /// Backed-up file system.
    pub file_system_id: String,
    /// Backed-up volume.
    pub volume_id: Option<String>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// The `ClientRequestToken` of the request that created it.
    pub client_request_token: Option<String>,
    /// Creation time (epoch seconds).
    #[serde(with = "opt_epoch_secs")]
    pub creation_time: Option<SystemTime>,
    /// When it reached `AVAILABLE` or `FAILED` (epoch seconds).
    #[serde(with = "opt_epoch_secs")]
    pub completion_time: Option<SystemTime>,
    /// KMS key.
    pub kms_key_id: Option<String>,
    /// For copies: source backup id.
    pub source_backup_id: Option<String>,
    /// For copies: source Region.
    pub source_backup_region: Option<String>,
    /// `FailureDetails.Message`.
    pub failure_message: Option<String>,
    /// File system being restored from this backup.
    pub restoring_file_system_id: Option<String>,
    /// ARN.
    pub resource_arn: String,
    /// Owner account.
    pub owner_id: String,
}

/// One FSx or STS API request as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Sequence number, starting at 1.
    pub seq: u64,
    /// Arrival time (epoch seconds).
    pub time: f64,
    /// Signing Region, when it could be determined.
    pub region: Option<String>,
    /// Operation name (`CreateBackup`, `AssumeRole`), or the raw target or
    /// `Action` when unknown.
    pub operation: String,
    /// `ok` or the error code returned.
    pub outcome: String,
    /// Injected fault, if any: `throttled`, `server_error`, `access_denied`,
    /// `response_dropped`.
    pub fault: Option<String>,
    /// Backups the request created, deleted, copied, tagged or asked for.
    pub backup_ids: Vec<String>,
    /// `ClientRequestToken` of the request.
    pub client_request_token: Option<String>,
    /// SDK attempt number from the `amz-sdk-request` header.
    pub attempt: Option<u32>,
    /// The account the request acted in: the caller's account (the default
    /// account for access keys the emulator did not issue); for
    /// `AssumeRole`, the account of the requested role when its ARN parses.
    /// `None` when the request was refused before its credentials were
    /// resolved.
    #[serde(default)]
    pub account: Option<String>,
    /// `AssumeRole`: the `RoleArn` asked for. Other requests made with
    /// session credentials: the role those credentials belong to.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// `AssumeRole`: the `RoleSessionName` asked for. Other requests made
    /// with session credentials: the session's name.
    #[serde(default)]
    pub role_session_name: Option<String>,
}

fn yes() -> bool {
    true
}

/// An IAM role the emulator's STS lets callers assume. `AssumeRole` of an
/// ARN that was never registered is refused with `AccessDenied`, as AWS
/// refuses a role that does not exist or does not trust the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSeed {
    /// `arn:<partition>:iam::<12 digits>:role/<path><name>`; the role's
    /// account is the one its sessions act in.
    pub arn: String,
    /// When set, `AssumeRole` must pass exactly this `ExternalId` (the
    /// trust policy's `sts:ExternalId` condition).
    #[serde(default)]
    pub external_id: Option<String>,
    /// Whether the trust policy lets the caller assume the role; `false`
    /// answers `AccessDenied`. Default `true`.
    #[serde(default = "yes")]
    pub trusted: bool,
    /// The role's `MaxSessionDuration` (3600..=43200); 3600 when absent.
    /// `DurationSeconds` beyond it is a `ValidationError`.
    #[serde(default)]
    pub max_session_duration_seconds: Option<u32>,
    /// **Test-only knob, not AWS behaviour:** when set, credentials issued
    /// for this role expire this many seconds after `AssumeRole` (and the
    /// response's `Expiration` says so) whatever `DurationSeconds` asked
    /// for, so that a test can cross an expiry in seconds.
    #[serde(default)]
    pub credential_lifetime_seconds: Option<u64>,
}

impl RoleSeed {
    /// A trusted role without an external id and with default durations.
    pub fn new(arn: impl Into<String>) -> Self {
        Self {
            arn: arn.into(),
            external_id: None,
            trusted: true,
            max_session_duration_seconds: None,
            credential_lifetime_seconds: None,
        }
    }

    /// Requires this external id.
    #[must_use]
    pub fn external_id(mut self, external_id: impl Into<String>) -> Self {
        self.external_id = Some(external_id.into());
        self
    }

    /// Sets whether the trust policy admits the caller.
    #[must_use]
    pub fn trusted(mut self, trusted: bool) -> Self {
        self.trusted = trusted;
        self
    }

    /// Sets the role's `MaxSessionDuration`.
    #[must_use]
    pub fn max_session_duration_seconds(mut self, seconds: u32) -> Self {
        self.max_session_duration_seconds = Some(seconds);
        self
    }

    /// Test-only: issued credentials expire after `seconds`, whatever the
    /// requested duration.
    #[must_use]
    pub fn credential_lifetime_seconds(mut self, seconds: u64) -> Self {
        self.credential_lifetime_seconds = Some(seconds);
        self
    }
}

/// Error of a control-API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// An argument is malformed or inconsistent.
    InvalidArgument(String),
    /// A referenced object does not exist.
    NotFound(String),
    /// An object with that id already exists.
    AlreadyExists(String),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Self::NotFound(m) => write!(f, "not found: {m}"),
            Self::AlreadyExists(m) => write!(f, "already exists: {m}"),
        }
    }
}

impl std::error::Error for ControlError {}
