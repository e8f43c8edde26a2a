//! The emulator's in-memory world: accounts, each with Regions holding their
//! file systems, volumes and backups, plus IAM roles and STS sessions,
//! configuration, fault budgets and the request log.
//!
//! Backup lifecycles are driven by time without a background task: each
//! in-progress backup remembers when it started and how long it takes, and
//! every access first calls [`State::advance`], which settles whatever has
//! finished by now. This keeps progression exact for any polling pattern and
//! makes a zero duration mean "done on the next request".

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use crate::hash::{hash64, to_hex};
use crate::identity::Iam;
use crate::region::{is_valid_region, partition};
use crate::types::{
    BackupLifecycle, BackupSeed, BackupSnapshot, BackupType, ControlError, Faults,
    FileSystemLifecycle, FileSystemSeed, FileSystemSnapshot, FileSystemType, Limits,
    RegionSnapshot, RequestRecord, ResourceType, StateSnapshot, StorageType, Tag, Timing,
    VolumeSeed, VolumeSnapshot, VolumeType,
};

/// The default account: the one every caller acts in unless it signs with
/// credentials issued by the emulator's STS for a role in another account.
pub(crate) const ACCOUNT_ID: &str = "111111111111";

/// Upper bound of the request log; the oldest records are discarded beyond
/// it so a long benchmark cannot exhaust memory.
const MAX_LOG_RECORDS: usize = 200_000;

/// A file system.
#[derive(Debug, Clone)]
pub(crate) struct FileSystemRecord {
    pub(crate) id: String,
    /// The account the file system lives in (`OwnerId`).
    pub(crate) owner_id: String,
    pub(crate) region: String,
    pub(crate) file_system_type: FileSystemType,
    pub(crate) deployment_type: String,
    pub(crate) storage_type: StorageType,
    pub(crate) lifecycle: FileSystemLifecycle,
    pub(crate) tags: Vec<Tag>,
    pub(crate) linked_to_data_repository: bool,
    pub(crate) copy_tags_to_backups: bool,
    pub(crate) kms_key_id: String,
    pub(crate) creation_time: SystemTime,
    pub(crate) resource_arn: String,
}

impl FileSystemRecord {
    /// Lustre scratch file systems cannot be backed up.
    pub(crate) fn is_scratch(&self) -> bool {
        self.file_system_type == FileSystemType::Lustre
            && self.deployment_type.starts_with("SCRATCH")
    }

    /// Multi-AZ deployment (`MULTI_AZ_1`, `MULTI_AZ_2`).
    pub(crate) fn is_multi_az(&self) -> bool {
        self.deployment_type.starts_with("MULTI_AZ")
    }
}

/// A volume.
#[derive(Debug, Clone)]
pub(crate) struct VolumeRecord {
    pub(crate) id: String,
    pub(crate) file_system_id: String,
    pub(crate) volume_type: VolumeType,
    pub(crate) name: String,
    pub(crate) tags: Vec<Tag>,
    pub(crate) storage_virtual_machine_id: Option<String>,
    pub(crate) copy_tags_to_backups: bool,
    pub(crate) creation_time: SystemTime,
    pub(crate) resource_arn: String,
}

/// Where an in-progress backup is heading and when it gets there.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    pub(crate) started: Instant,
    pub(crate) duration: Duration,
    /// `Some(message)`: ends `FAILED` with this `FailureDetails.Message`.
    pub(crate) failure: Option<String>,
}

impl Progress {
    /// When the backup's time is up (`None`: never, the duration overflows).
    fn due(&self) -> Option<Instant> {
        self.started.checked_add(self.duration)
    }
}

/// A backup (or a deleted backup kept for idempotent replays).
#[derive(Debug, Clone)]
pub(crate) struct BackupRecord {
    pub(crate) id: String,
    pub(crate) backup_type: BackupType,
    pub(crate) lifecycle: BackupLifecycle,
    /// Set while the lifecycle is driven by time; `None` once settled or
    /// when pinned by a seed or the control API.
    pub(crate) progress: Option<Progress>,
    /// Progress reported while pinned in an in-progress lifecycle.
    pub(crate) pinned_progress: Option<i32>,
    pub(crate) creation_time: SystemTime,
    pub(crate) completion_time: Option<SystemTime>,
    pub(crate) kms_key_id: String,
    pub(crate) owner_id: String,
    pub(crate) tags: Vec<Tag>,
    /// Description of the backed-up file system as of backup creation.
    pub(crate) file_system: FileSystemRecord,
    /// Description of the backed-up volume, for volume backups.
    pub(crate) volume: Option<VolumeRecord>,
    pub(crate) source_backup_id: Option<String>,
    pub(crate) source_backup_region: Option<String>,
    pub(crate) failure_message: Option<String>,
    pub(crate) restoring_file_system_id: Option<String>,
    pub(crate) client_request_token: Option<String>,
    pub(crate) resource_arn: String,
}

impl BackupRecord {
    pub(crate) fn resource_type(&self) -> ResourceType {
        if self.volume.is_some() {
            ResourceType::Volume
        } else {
            ResourceType::FileSystem
        }
    }

    /// The id `CreateBackup` was called with: the volume id for volume
    /// backups, the file system id otherwise.
    pub(crate) fn target_id(&self) -> &str {
        self.volume
            .as_ref()
            .map_or(self.file_system.id.as_str(), |v| v.id.as_str())
    }

    /// `ProgressPercent` as of `now`.
    pub(crate) fn progress_percent(&self, now: Instant) -> Option<i32> {
        match self.lifecycle {
            BackupLifecycle::Available => Some(100),
            BackupLifecycle::Deleted | BackupLifecycle::Failed => self.pinned_progress,
            _ => match &self.progress {
                Some(p) if !p.duration.is_zero() => {
                    let elapsed = now.saturating_duration_since(p.started);
                    let ratio = elapsed.as_secs_f64() / p.duration.as_secs_f64();
                    #[allow(
                        clippy::cast_possible_truncation,
                        reason = "the value is clamped to 0..=99 before the cast"
                    )]
                    let pct = (ratio * 100.0).floor().clamp(0.0, 99.0) as i32;
                    Some(pct)
                }
                Some(_) => Some(0),
                None => Some(self.pinned_progress.unwrap_or(0)),
            },
        }
    }

    /// Settles the lifecycle if the backup's time is up.
    fn advance(&mut self, now: Instant) {
        let Some(progress) = &self.progress else {
            return;
        };
        if now.saturating_duration_since(progress.started) < progress.duration {
            return;
        }
        let progress = self.progress.take();
        let (duration, failure) =
            progress.map_or((Duration::ZERO, None), |p| (p.duration, p.failure));
        self.completion_time = self.creation_time.checked_add(duration);
        if let Some(message) = failure {
            self.lifecycle = BackupLifecycle::Failed;
            self.failure_message = Some(message);
        } else {
            self.lifecycle = BackupLifecycle::Available;
        }
    }

    /// Whether this backup is a copy still being made of `source` in
    /// `source_region`.
    pub(crate) fn is_copying_from(&self, source_region: &str, source: &str) -> bool {
        self.lifecycle == BackupLifecycle::Copying
            && self.source_backup_id.as_deref() == Some(source)
            && self.source_backup_region.as_deref() == Some(source_region)
    }
}

/// Being created or copied: time-driven, or pinned there by a seed or the
/// control API.
fn is_unsettled(backup: &BackupRecord) -> bool {
    backup.progress.is_some()
        || backup.lifecycle.is_creation_in_progress()
        || backup.lifecycle == BackupLifecycle::Copying
}

/// What an idempotency token was first used with.
#[derive(Debug, Clone)]
pub(crate) struct TokenRecord {
    /// Normalized request parameters, in a fixed order.
    pub(crate) params: Vec<(&'static str, String)>,
    pub(crate) backup_id: String,
}

/// One Region.
#[derive(Debug, Default)]
pub(crate) struct RegionState {
    pub(crate) file_systems: BTreeMap<String, FileSystemRecord>,
    pub(crate) volumes: BTreeMap<String, VolumeRecord>,
    /// Changed only through [`RegionState::insert_backup`] and
    /// [`RegionState::remove_backup`], which keep the indexes below.
    pub(crate) backups: BTreeMap<String, BackupRecord>,
    pub(crate) deleted: BTreeMap<String, BackupRecord>,
    /// Keyed by (operation, token): FSx scopes tokens per operation.
    pub(crate) tokens: HashMap<(&'static str, String), TokenRecord>,
    pub(crate) max_copying: usize,
    /// Ids of backups that may still be in progress (being created or
    /// copied), a superset pruned as they settle. The copy limit is checked
    /// against these alone, not against every backup: at 10,000 backups,
    /// scanning all of them on each request made the emulator the
    /// benchmark's bottleneck.
    unsettled: BTreeSet<String>,
    /// The time-driven ones among `unsettled` (those with a `progress`), by
    /// when their time is up: each request settles what is due from the
    /// front. Visiting every backup in progress on each request instead (and
    /// every one of them again to see whether a target was busy) was most of
    /// the emulator's CPU, under its one lock, when the benchmark had
    /// thousands of backups in progress at once.
    due: BTreeSet<(Instant, String)>,
    /// `UserInitiated` backups in `backups` (the per-Region quota).
    user_initiated: usize,
    /// The ids in `backups` by the id of the file system they are of: what a
    /// `file-system-id` filter selects from.
    by_file_system: HashMap<String, BTreeSet<String>>,
}

impl RegionState {
    pub(crate) fn insert_backup(&mut self, record: BackupRecord) {
        let id = record.id.clone();
        if is_unsettled(&record) {
            self.unsettled.insert(id.clone());
        }
        if let Some(due) = record.progress.as_ref().and_then(Progress::due) {
            self.due.insert((due, id.clone()));
        }
        if record.backup_type == BackupType::UserInitiated {
            self.user_initiated += 1;
        }
        self.by_file_system
            .entry(record.file_system.id.clone())
            .or_default()
            .insert(id.clone());
        if let Some(replaced) = self.backups.insert(id, record)
            && replaced.backup_type == BackupType::UserInitiated
        {
            self.user_initiated -= 1;
        }
    }

    pub(crate) fn remove_backup(&mut self, id: &str) -> Option<BackupRecord> {
        let record = self.backups.remove(id)?;
        if record.backup_type == BackupType::UserInitiated {
            self.user_initiated -= 1;
        }
        if let Some(ids) = self.by_file_system.get_mut(&record.file_system.id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_file_system.remove(&record.file_system.id);
            }
        }
        self.unsettled.remove(id);
        Some(record)
    }

    /// Whether any backup of `file_system` exists.
    pub(crate) fn has_backups_of(&self, file_system: &str) -> bool {
        self.by_file_system.contains_key(file_system)
    }

    /// The backups of any of `file_systems`, in id order.
    pub(crate) fn backups_of_file_systems<'a>(
        &'a self,
        file_systems: &BTreeSet<String>,
    ) -> impl Iterator<Item = &'a BackupRecord> {
        let ids: BTreeSet<&String> = file_systems
            .iter()
            .filter_map(|fs| self.by_file_system.get(fs))
            .flatten()
            .collect();
        ids.into_iter().filter_map(|id| self.backups.get(id))
    }

    /// Whether a backup of `target_id` (the file system `file_system_id`, or
    /// one of its volumes) is being created: FSx makes one at a time per
    /// target. Through the index: only that file system's backups are looked at.
    pub(crate) fn is_creating(&self, file_system_id: &str, target_id: &str) -> bool {
        self.by_file_system.get(file_system_id).is_some_and(|ids| {
            ids.iter().filter_map(|id| self.backups.get(id)).any(|b| {
                b.source_backup_id.is_none()
                    && b.target_id() == target_id
                    && b.lifecycle.is_creation_in_progress()
            })
        })
    }

    /// The backups that are being created or copied right now.
    pub(crate) fn in_progress(&self) -> impl Iterator<Item = &BackupRecord> {
        self.unsettled
            .iter()
            .filter_map(|id| self.backups.get(id))
            .filter(|b| is_unsettled(b))
    }

    /// Settles what is due by `now`, and forgets what has settled.
    fn advance(&mut self, now: Instant) {
        while self.due.first().is_some_and(|(at, _)| *at <= now) {
            let Some((_, id)) = self.due.pop_first() else {
                break;
            };
            // Gone, or settled meanwhile by the control API: nothing to do.
            if let Some(backup) = self.backups.get_mut(&id) {
                backup.advance(now);
                if !is_unsettled(backup) {
                    self.unsettled.remove(&id);
                }
            }
        }
    }

    pub(crate) fn copying_count(&self) -> usize {
        self.in_progress()
            .filter(|b| b.lifecycle == BackupLifecycle::Copying)
            .count()
    }

    pub(crate) fn user_initiated_count(&self) -> usize {
        self.user_initiated
    }

    /// Records the current number of copies in progress in the high-water
    /// mark reported by the control API.
    pub(crate) fn note_copying(&mut self) {
        self.max_copying = self.max_copying.max(self.copying_count());
    }
}

/// Remaining deterministic fault counts (`Faults::*_next`).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FaultBudget {
    pub(crate) throttle: u32,
    pub(crate) server_error: u32,
    pub(crate) drop_response: u32,
}

/// The fault, if any, chosen for one request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultAction {
    /// Process and answer normally.
    #[default]
    None,
    /// Answer `AccessDeniedException` without processing.
    Deny,
    /// Answer `ThrottlingException` without processing.
    Throttle,
    /// Answer `InternalServerError` without processing.
    ServerError,
    /// Process, then close the connection without answering.
    DropResponse,
}

/// Faults chosen for one request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FaultPlan {
    pub(crate) latency: Duration,
    pub(crate) latency_after_write: Duration,
    pub(crate) action: FaultAction,
}

/// The Regions of one account, keyed by Region name.
pub(crate) type Regions = BTreeMap<String, RegionState>;

/// Everything the emulator knows.
#[derive(Debug)]
pub(crate) struct State {
    /// FSx state per account, then per Region: quotas, limits, tokens and
    /// ids are all scoped to one (account, Region).
    pub(crate) accounts: BTreeMap<String, Regions>,
    /// Registered roles and the sessions STS issued for them.
    pub(crate) iam: Iam,
    pub(crate) timing: Timing,
    pub(crate) limits: Limits,
    pub(crate) faults: Faults,
    pub(crate) budget: FaultBudget,
    /// (account, Region, target id): the next backup of that target ends
    /// `FAILED`.
    pub(crate) fail_next: BTreeSet<(String, String, String)>,
    pub(crate) rng: fastrand::Rng,
    /// Salt of the page order; fixed per emulator so that one pagination
    /// sequence sees a stable order.
    pub(crate) order_salt: u64,
    pub(crate) log: VecDeque<RequestRecord>,
    pub(crate) next_seq: u64,
    seed: Option<u64>,
}

impl State {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let mut rng = seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        let order_salt = rng.u64(..);
        Self {
            accounts: BTreeMap::new(),
            iam: Iam::default(),
            timing: Timing::default(),
            limits: Limits::default(),
            faults: Faults::default(),
            budget: FaultBudget::default(),
            fail_next: BTreeSet::new(),
            rng,
            order_salt,
            log: VecDeque::new(),
            next_seq: 1,
            seed,
        }
    }

    /// Back to a freshly constructed state (same seed).
    pub(crate) fn reset(&mut self) {
        *self = Self::new(self.seed);
    }

    /// The state of a Region of an account, created on first use.
    pub(crate) fn region_mut(&mut self, account: &str, region: &str) -> &mut RegionState {
        self.accounts
            .entry(account.to_owned())
            .or_default()
            .entry(region.to_owned())
            .or_default()
    }

    /// The state of a Region of an account, if anything ever happened there.
    pub(crate) fn region(&self, account: &str, region: &str) -> Option<&RegionState> {
        self.accounts.get(account)?.get(region)
    }

    /// A Region of an account, mutably, if it exists.
    fn existing_region_mut(&mut self, account: &str, region: &str) -> Option<&mut RegionState> {
        self.accounts.get_mut(account)?.get_mut(region)
    }

    /// Every Region of every account.
    fn all_regions(&self) -> impl Iterator<Item = &RegionState> {
        self.accounts.values().flat_map(BTreeMap::values)
    }

    /// Removes a file system and its volumes, as if it had been deleted;
    /// its backups stay, as they do in FSx.
    pub(crate) fn remove_file_system(
        &mut self,
        account: &str,
        region: &str,
        id: &str,
    ) -> Result<(), ControlError> {
        let state = self
            .existing_region_mut(account, region)
            .ok_or_else(|| ControlError::NotFound(id.to_owned()))?;
        if state.file_systems.remove(id).is_none() {
            return Err(ControlError::NotFound(id.to_owned()));
        }
        state
            .volumes
            .retain(|_, volume| volume.file_system_id != id);
        Ok(())
    }

    /// Settles every backup whose time is up.
    pub(crate) fn advance(&mut self, now: Instant) {
        for region in self.accounts.values_mut().flat_map(BTreeMap::values_mut) {
            region.advance(now);
        }
    }

    /// Whether some Region of `account` is copying `backup_id` of `region`
    /// right now (copies stay within one account).
    pub(crate) fn is_being_copied(&self, account: &str, region: &str, backup_id: &str) -> bool {
        self.accounts
            .get(account)
            .into_iter()
            .flat_map(BTreeMap::values)
            .flat_map(RegionState::in_progress)
            .any(|b| b.is_copying_from(region, backup_id))
    }

    /// A fresh id `prefix` + 17 lowercase hex digits, unique in all Regions
    /// of all accounts.
    pub(crate) fn fresh_id(&mut self, prefix: &str) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        loop {
            let mut id = String::with_capacity(prefix.len() + 17);
            id.push_str(prefix);
            for _ in 0..17 {
                id.push(char::from(DIGITS[self.rng.usize(..16)]));
            }
            if !self.id_in_use(&id) {
                return id;
            }
        }
    }

    fn id_in_use(&self, id: &str) -> bool {
        self.all_regions().any(|r| {
            r.file_systems.contains_key(id)
                || r.volumes.contains_key(id)
                || r.backups.contains_key(id)
                || r.deleted.contains_key(id)
        })
    }

    /// A request id in the UUID layout AWS uses for `x-amzn-RequestId`.
    pub(crate) fn request_id(&mut self) -> String {
        let hex = to_hex(&self.rng.u128(..).to_be_bytes());
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    /// Consumes the `fail_next` arming for (account, Region, target), if any.
    pub(crate) fn take_failure(
        &mut self,
        account: &str,
        region: &str,
        target: &str,
    ) -> Option<String> {
        self.fail_next
            .remove(&(account.to_owned(), region.to_owned(), target.to_owned()))
            .then(|| {
                format!(
                    "The backup of {target} failed: the request was armed to fail by the emulator's \
                     control API."
                )
            })
    }

    /// Decides which faults hit a request for `operation`.
    pub(crate) fn plan_faults(&mut self, operation: &str) -> FaultPlan {
        let deny = self.faults.deny_operations.iter().any(|o| o == operation);
        let eligible = self
            .faults
            .only_operations
            .as_ref()
            .is_none_or(|ops| ops.iter().any(|o| o == operation));
        let (latency, latency_after_write) = if eligible {
            (self.faults.latency, self.faults.latency_after_write)
        } else {
            (Duration::ZERO, Duration::ZERO)
        };
        let action = if deny {
            FaultAction::Deny
        } else if !eligible {
            FaultAction::None
        } else if take(&mut self.budget.throttle) || self.chance(self.faults.throttle_rate) {
            FaultAction::Throttle
        } else if take(&mut self.budget.server_error) || self.chance(self.faults.server_error_rate)
        {
            FaultAction::ServerError
        } else if take(&mut self.budget.drop_response)
            || self.chance(self.faults.drop_response_after_write_rate)
        {
            FaultAction::DropResponse
        } else {
            FaultAction::None
        };
        FaultPlan {
            latency,
            latency_after_write,
            action,
        }
    }

    fn chance(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.f64() < rate
    }

    pub(crate) fn set_faults(&mut self, faults: Faults) {
        self.budget = FaultBudget {
            throttle: faults.throttle_next,
            server_error: faults.server_error_next,
            drop_response: faults.drop_response_after_write_next,
        };
        self.faults = faults;
    }

    /// Appends to the request log, assigning the sequence number.
    pub(crate) fn log_request(&mut self, mut record: RequestRecord) {
        record.seq = self.next_seq;
        self.next_seq += 1;
        if self.log.len() >= MAX_LOG_RECORDS {
            self.log.pop_front();
        }
        self.log.push_back(record);
    }

    /// The ARN of the default FSx-managed KMS key of an account's Region.
    /// Deterministic so that backups of one Region agree on it. (The default
    /// account's keys are the ones the emulator always produced.)
    pub(crate) fn default_kms_key(account: &str, region: &str) -> String {
        let scope = if account == ACCOUNT_ID {
            region.to_owned()
        } else {
            format!("{account}/{region}")
        };
        let hex = to_hex(&hash64(0x006b_6d73, scope.as_bytes()).to_be_bytes());
        let more = to_hex(&hash64(0x006b_6579, scope.as_bytes()).to_be_bytes());
        format!(
            "arn:{}:kms:{region}:{account}:key/{}-{}-{}-{}-{}",
            partition(region),
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &more[0..4],
            &more[4..16]
        )
    }

    /// Whether a KMS key is configured as unusable.
    pub(crate) fn is_bad_kms_key(&self, key: &str) -> bool {
        key.to_ascii_lowercase().contains("invalid")
            || self.limits.bad_kms_keys.iter().any(|k| k == key)
    }

    // ----- seeding -------------------------------------------------------

    pub(crate) fn seed_file_system(
        &mut self,
        account: &str,
        region: &str,
        seed: FileSystemSeed,
        now: SystemTime,
    ) -> Result<String, ControlError> {
        check_account(account)?;
        check_region(region)?;
        let id = match seed.id {
            Some(id) => {
                if !crate::validate::is_file_system_id(&id) {
                    return Err(ControlError::InvalidArgument(format!(
                        "file system id '{id}' does not match ^(fs-[0-9a-f]{{8,}})$"
                    )));
                }
                if self.id_in_use(&id) {
                    return Err(ControlError::AlreadyExists(id));
                }
                id
            }
            None => self.fresh_id("fs-"),
        };
        let fs_type = seed.file_system_type;
        if fs_type != FileSystemType::Lustre
            && (seed.lustre_scratch || seed.linked_to_data_repository)
        {
            return Err(ControlError::InvalidArgument(
                "lustre_scratch and linked_to_data_repository apply to LUSTRE file systems only"
                    .into(),
            ));
        }
        let deployment_type = match seed.deployment_type {
            Some(d) => d,
            None => default_deployment_type(fs_type, seed.lustre_scratch).to_owned(),
        };
        if !deployment_types(fs_type).contains(&deployment_type.as_str()) {
            return Err(ControlError::InvalidArgument(format!(
                "deployment type '{deployment_type}' is not valid for {fs_type}; expected one of {:?}",
                deployment_types(fs_type)
            )));
        }
        if seed.lustre_scratch && !deployment_type.starts_with("SCRATCH") {
            return Err(ControlError::InvalidArgument(format!(
                "lustre_scratch contradicts deployment type '{deployment_type}'"
            )));
        }
        validate_seed_tags(&seed.tags)?;
        let record = FileSystemRecord {
            resource_arn: format!(
                "arn:{}:fsx:{region}:{account}:file-system/{id}",
                partition(region)
            ),
            id: id.clone(),
            owner_id: account.to_owned(),
            region: region.to_owned(),
            file_system_type: fs_type,
            deployment_type,
            storage_type: seed.storage_type,
            lifecycle: seed.lifecycle,
            tags: seed.tags,
            linked_to_data_repository: seed.linked_to_data_repository,
            copy_tags_to_backups: seed.copy_tags_to_backups,
            kms_key_id: seed
                .kms_key_id
                .unwrap_or_else(|| Self::default_kms_key(account, region)),
            creation_time: now,
        };
        self.region_mut(account, region)
            .file_systems
            .insert(id.clone(), record);
        Ok(id)
    }

    pub(crate) fn seed_volume(
        &mut self,
        account: &str,
        region: &str,
        seed: VolumeSeed,
        now: SystemTime,
    ) -> Result<String, ControlError> {
        check_account(account)?;
        check_region(region)?;
        let fs = self
            .region(account, region)
            .and_then(|r| r.file_systems.get(&seed.file_system_id))
            .cloned()
            .ok_or_else(|| {
                ControlError::NotFound(format!(
                    "file system {} in {region} of account {account}",
                    seed.file_system_id
                ))
            })?;
        let volume_type = match fs.file_system_type {
            FileSystemType::Ontap => VolumeType::Ontap,
            FileSystemType::OpenZfs => VolumeType::OpenZfs,
            other => {
                return Err(ControlError::InvalidArgument(format!(
                    "{other} file systems have no volumes"
                )));
            }
        };
        let id = match seed.id {
            Some(id) => {
                if !crate::validate::is_volume_id(&id) {
                    return Err(ControlError::InvalidArgument(format!(
                        "volume id '{id}' does not match ^(fsvol-[0-9a-f]{{17}})$"
                    )));
                }
                if self.id_in_use(&id) {
                    return Err(ControlError::AlreadyExists(id));
                }
                id
            }
            None => self.fresh_id("fsvol-"),
        };
        validate_seed_tags(&seed.tags)?;
        let storage_virtual_machine_id = match volume_type {
            VolumeType::Ontap => Some(
                seed.storage_virtual_machine_id
                    .unwrap_or_else(|| self.fresh_id("svm-")),
            ),
            VolumeType::OpenZfs => None,
        };
        let region_state = self.region_mut(account, region);
        let name = seed
            .name
            .unwrap_or_else(|| format!("vol_{}", region_state.volumes.len() + 1));
        let record = VolumeRecord {
            resource_arn: format!(
                "arn:{}:fsx:{region}:{account}:volume/{}/{id}",
                partition(region),
                fs.id
            ),
            id: id.clone(),
            file_system_id: fs.id,
            volume_type,
            name,
            tags: seed.tags,
            storage_virtual_machine_id,
            copy_tags_to_backups: seed.copy_tags_to_backups,
            creation_time: now,
        };
        region_state.volumes.insert(id.clone(), record);
        Ok(id)
    }

    pub(crate) fn seed_backup(
        &mut self,
        account: &str,
        region: &str,
        seed: BackupSeed,
        now: SystemTime,
    ) -> Result<String, ControlError> {
        check_account(account)?;
        check_region(region)?;
        let id = match seed.id {
            Some(id) => {
                if !crate::validate::is_backup_id(&id) {
                    return Err(ControlError::InvalidArgument(format!(
                        "backup id '{id}' does not match ^(backup-[0-9a-f]{{8,}})$"
                    )));
                }
                if self.id_in_use(&id) {
                    return Err(ControlError::AlreadyExists(id));
                }
                id
            }
            None => self.fresh_id("backup-"),
        };
        validate_seed_tags(&seed.tags)?;
        let region_state = self.region(account, region);
        let volume = match &seed.volume_id {
            Some(vol) => Some(
                region_state
                    .and_then(|r| r.volumes.get(vol))
                    .cloned()
                    .ok_or_else(|| {
                        ControlError::NotFound(format!(
                            "volume {vol} in {region} of account {account}"
                        ))
                    })?,
            ),
            None => None,
        };
        let fs_id = match (&volume, &seed.file_system_id) {
            (Some(v), Some(fs)) if *fs != v.file_system_id => {
                return Err(ControlError::InvalidArgument(format!(
                    "volume {} belongs to {}, not {fs}",
                    v.id, v.file_system_id
                )));
            }
            (Some(v), _) => v.file_system_id.clone(),
            (None, Some(fs)) => fs.clone(),
            (None, None) => {
                return Err(ControlError::InvalidArgument(
                    "a backup seed needs file_system_id or volume_id".into(),
                ));
            }
        };
        if !crate::validate::is_file_system_id(&fs_id) {
            return Err(ControlError::InvalidArgument(format!(
                "file system id '{fs_id}' does not match ^(fs-[0-9a-f]{{8,}})$"
            )));
        }
        let file_system = if let Some(fs) = region_state.and_then(|r| r.file_systems.get(&fs_id)) {
            fs.clone()
        } else {
            // The file system is gone (backups outlive file systems):
            // describe it the way FSx remembers it in the backup.
            let fs_type = seed.file_system_type.unwrap_or_default();
            FileSystemRecord {
                resource_arn: format!(
                    "arn:{}:fsx:{region}:{account}:file-system/{fs_id}",
                    partition(region)
                ),
                id: fs_id,
                owner_id: account.to_owned(),
                region: region.to_owned(),
                file_system_type: fs_type,
                deployment_type: default_deployment_type(fs_type, false).to_owned(),
                storage_type: StorageType::Ssd,
                lifecycle: FileSystemLifecycle::Available,
                tags: Vec::new(),
                linked_to_data_repository: false,
                copy_tags_to_backups: false,
                kms_key_id: Self::default_kms_key(account, region),
                creation_time: seed.creation_time.unwrap_or(now),
            }
        };
        if seed.lifecycle == BackupLifecycle::Deleted {
            return Err(ControlError::InvalidArgument(
                "a seeded backup cannot start DELETED".into(),
            ));
        }
        let creation_time = seed.creation_time.unwrap_or(now);
        let settled = matches!(
            seed.lifecycle,
            BackupLifecycle::Available | BackupLifecycle::Failed
        );
        let record = BackupRecord {
            resource_arn: format!(
                "arn:{}:fsx:{region}:{account}:backup/{id}",
                partition(region)
            ),
            id: id.clone(),
            backup_type: seed.backup_type,
            lifecycle: seed.lifecycle,
            progress: None,
            pinned_progress: seed.progress_percent,
            creation_time,
            completion_time: settled.then_some(creation_time),
            kms_key_id: seed
                .kms_key_id
                .unwrap_or_else(|| file_system.kms_key_id.clone()),
            owner_id: seed.owner_id.unwrap_or_else(|| account.to_owned()),
            tags: seed.tags,
            file_system,
            volume,
            source_backup_id: seed.source_backup_id,
            source_backup_region: seed.source_backup_region,
            failure_message: match seed.lifecycle {
                BackupLifecycle::Failed => Some(
                    seed.failure_message
                        .unwrap_or_else(|| "The backup failed.".to_owned()),
                ),
                _ => seed.failure_message,
            },
            restoring_file_system_id: seed.restoring_file_system_id,
            client_request_token: None,
        };
        let region_state = self.region_mut(account, region);
        region_state.insert_backup(record);
        region_state.note_copying();
        Ok(id)
    }

    /// Forces a backup's lifecycle and stops its time-driven progression.
    pub(crate) fn set_lifecycle(
        &mut self,
        account: &str,
        region: &str,
        backup_id: &str,
        lifecycle: BackupLifecycle,
        now: SystemTime,
    ) -> Result<(), ControlError> {
        let not_found = || {
            ControlError::NotFound(format!(
                "backup {backup_id} in {region} of account {account}"
            ))
        };
        let region_state = self
            .existing_region_mut(account, region)
            .ok_or_else(not_found)?;
        if lifecycle == BackupLifecycle::Deleted {
            let mut record = region_state
                .remove_backup(backup_id)
                .ok_or_else(not_found)?;
            record.lifecycle = BackupLifecycle::Deleted;
            record.progress = None;
            region_state.deleted.insert(backup_id.to_owned(), record);
            return Ok(());
        }
        let record = region_state
            .backups
            .get_mut(backup_id)
            .ok_or_else(not_found)?;
        record.progress = None;
        record.lifecycle = lifecycle;
        match lifecycle {
            BackupLifecycle::Available => {
                record.completion_time = Some(now);
                record.failure_message = None;
            }
            BackupLifecycle::Failed => {
                record.completion_time = Some(now);
                if record.failure_message.is_none() {
                    record.failure_message =
                        Some("The backup failed (forced by the emulator's control API).".into());
                }
            }
            _ => record.completion_time = None,
        }
        if is_unsettled(record) {
            region_state.unsettled.insert(backup_id.to_owned());
        } else {
            region_state.unsettled.remove(backup_id);
        }
        region_state.note_copying();
        Ok(())
    }

    /// Marks or clears "being restored into a file system".
    pub(crate) fn set_restoring(
        &mut self,
        account: &str,
        region: &str,
        backup_id: &str,
        file_system_id: Option<&str>,
    ) -> Result<(), ControlError> {
        let record = self
            .existing_region_mut(account, region)
            .and_then(|r| r.backups.get_mut(backup_id))
            .ok_or_else(|| {
                ControlError::NotFound(format!(
                    "backup {backup_id} in {region} of account {account}"
                ))
            })?;
        record.restoring_file_system_id = file_system_id.map(str::to_owned);
        Ok(())
    }

    // ----- snapshot ------------------------------------------------------

    /// One account's state (empty for an account nothing happened in).
    pub(crate) fn snapshot(&self, account: &str, now: Instant) -> StateSnapshot {
        let regions = self
            .accounts
            .get(account)
            .into_iter()
            .flatten()
            .map(|(name, r)| {
                let snapshot = RegionSnapshot {
                    file_systems: r
                        .file_systems
                        .values()
                        .map(|fs| FileSystemSnapshot {
                            id: fs.id.clone(),
                            file_system_type: fs.file_system_type,
                            deployment_type: fs.deployment_type.clone(),
                            lifecycle: fs.lifecycle,
                            tags: fs.tags.clone(),
                            resource_arn: fs.resource_arn.clone(),
                        })
                        .collect(),
                    volumes: r
                        .volumes
                        .values()
                        .map(|v| VolumeSnapshot {
                            id: v.id.clone(),
                            file_system_id: v.file_system_id.clone(),
                            volume_type: v.volume_type,
                            name: v.name.clone(),
                            tags: v.tags.clone(),
                            resource_arn: v.resource_arn.clone(),
                        })
                        .collect(),
                    backups: r
                        .backups
                        .values()
                        .map(|b| backup_snapshot(b, now))
                        .collect(),
                    deleted_backup_ids: r.deleted.keys().cloned().collect(),
                    max_copies_in_progress: r.max_copying,
                };
                (name.clone(), snapshot)
            })
            .collect();
        StateSnapshot {
            account_id: account.to_owned(),
            regions,
            timing: self.timing,
            limits: self.limits.clone(),
            faults: self.faults.clone(),
        }
    }
}

fn backup_snapshot(b: &BackupRecord, now: Instant) -> BackupSnapshot {
    BackupSnapshot {
        id: b.id.clone(),
        backup_type: b.backup_type,
        lifecycle: b.lifecycle,
        progress_percent: b.progress_percent(now),
        resource_type: b.resource_type(),
        file_system_id: b.file_system.id.clone(),
        volume_id: b.volume.as_ref().map(|v| v.id.clone()),
        tags: b.tags.clone(),
        client_request_token: b.client_request_token.clone(),
        creation_time: Some(b.creation_time),
        completion_time: b.completion_time,
        kms_key_id: Some(b.kms_key_id.clone()),
        source_backup_id: b.source_backup_id.clone(),
        source_backup_region: b.source_backup_region.clone(),
        failure_message: b.failure_message.clone(),
        restoring_file_system_id: b.restoring_file_system_id.clone(),
        resource_arn: b.resource_arn.clone(),
        owner_id: b.owner_id.clone(),
    }
}

fn take(counter: &mut u32) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

/// Whether `account` is an AWS account id: exactly 12 digits.
pub(crate) fn is_account_id(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

fn check_account(account: &str) -> Result<(), ControlError> {
    if is_account_id(account) {
        Ok(())
    } else {
        Err(ControlError::InvalidArgument(format!(
            "'{account}' is not an AWS account id (12 digits)"
        )))
    }
}

fn check_region(region: &str) -> Result<(), ControlError> {
    if is_valid_region(region) {
        Ok(())
    } else {
        Err(ControlError::InvalidArgument(format!(
            "'{region}' is not an AWS Region name"
        )))
    }
}

fn validate_seed_tags(tags: &[Tag]) -> Result<(), ControlError> {
    crate::validate::tag_problems(tags).map_or(Ok(()), |problem| {
        Err(ControlError::InvalidArgument(problem))
    })
}

/// Deployment types the model allows per file system type.
pub(crate) fn deployment_types(fs_type: FileSystemType) -> &'static [&'static str] {
    match fs_type {
        FileSystemType::Windows => &["MULTI_AZ_1", "SINGLE_AZ_1", "SINGLE_AZ_2"],
        FileSystemType::Lustre => &["SCRATCH_1", "SCRATCH_2", "PERSISTENT_1", "PERSISTENT_2"],
        FileSystemType::Ontap => &["MULTI_AZ_1", "MULTI_AZ_2", "SINGLE_AZ_1", "SINGLE_AZ_2"],
        FileSystemType::OpenZfs => &[
            "SINGLE_AZ_1",
            "SINGLE_AZ_2",
            "SINGLE_AZ_HA_1",
            "SINGLE_AZ_HA_2",
            "MULTI_AZ_1",
        ],
    }
}

fn default_deployment_type(fs_type: FileSystemType, scratch: bool) -> &'static str {
    match fs_type {
        FileSystemType::Windows => "SINGLE_AZ_2",
        FileSystemType::Lustre if scratch => "SCRATCH_2",
        FileSystemType::Lustre => "PERSISTENT_2",
        FileSystemType::Ontap | FileSystemType::OpenZfs => "SINGLE_AZ_1",
    }
}
