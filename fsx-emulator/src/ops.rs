//! The FSx operations: input parsing and validation, service semantics, and
//! output shapes.
//!
//! Each operation only ever answers with error codes its model lists, because
//! the SDK maps unmodeled codes to an opaque "unhandled" error that callers
//! cannot match on. Semantics follow the FSx API reference; where it is
//! silent, the choice is documented at the check.

use std::collections::BTreeSet;
use std::time::{Instant, SystemTime};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, messages};
use crate::paginate::paginate;
use crate::region::{is_valid_region, partition};
use crate::render::{backup_json, file_system_json, volume_json};
use crate::state::{
    BackupRecord, FileSystemRecord, Progress, RegionState, State, TokenRecord, VolumeRecord,
};
use crate::types::{
    BackupLifecycle, BackupType, FileSystemLifecycle, FileSystemType, StorageType, Tag, VolumeType,
};
use crate::validate::{
    BACKUP_ID_PATTERN, FILE_SYSTEM_ID_PATTERN, MAX_TAGS, TOKEN_PATTERN, TagInput,
    VOLUME_ID_PATTERN, Violations, into_tags, is_backup_id, is_client_request_token,
    is_file_system_id, is_volume_id, tag_problems,
};

/// The operations the emulator implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    CreateBackup,
    CopyBackup,
    DeleteBackup,
    DescribeBackups,
    DescribeFileSystems,
    DescribeVolumes,
    TagResource,
    UntagResource,
    ListTagsForResource,
}

impl Operation {
    const ALL: [Self; 9] = [
        Self::CreateBackup,
        Self::CopyBackup,
        Self::DeleteBackup,
        Self::DescribeBackups,
        Self::DescribeFileSystems,
        Self::DescribeVolumes,
        Self::TagResource,
        Self::UntagResource,
        Self::ListTagsForResource,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::CreateBackup => "CreateBackup",
            Self::CopyBackup => "CopyBackup",
            Self::DeleteBackup => "DeleteBackup",
            Self::DescribeBackups => "DescribeBackups",
            Self::DescribeFileSystems => "DescribeFileSystems",
            Self::DescribeVolumes => "DescribeVolumes",
            Self::TagResource => "TagResource",
            Self::UntagResource => "UntagResource",
            Self::ListTagsForResource => "ListTagsForResource",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// Result of running one operation, with what the request log needs even
/// when the operation failed.
#[derive(Debug)]
pub(crate) struct Execution {
    pub(crate) result: Result<Value, ApiError>,
    pub(crate) backup_ids: Vec<String>,
    pub(crate) token: Option<String>,
}

struct Ctx<'a> {
    state: &'a mut State,
    /// The account the request acts in (from its credentials).
    account: String,
    region: String,
    now: Instant,
    wall: SystemTime,
    backup_ids: Vec<String>,
    token: Option<String>,
}

impl Ctx<'_> {
    fn region_state(&mut self) -> &mut RegionState {
        self.state.region_mut(&self.account, &self.region)
    }
}

/// Runs `operation` in `region` of `account` with the raw JSON `body`.
pub(crate) fn execute(
    state: &mut State,
    account: &str,
    region: &str,
    operation: Operation,
    body: &[u8],
    now: Instant,
    wall: SystemTime,
) -> Execution {
    state.advance(now);
    let mut ctx = Ctx {
        state,
        account: account.to_owned(),
        region: region.to_owned(),
        now,
        wall,
        backup_ids: Vec::new(),
        token: None,
    };
    let result = match operation {
        Operation::CreateBackup => parse(body).and_then(|i| create_backup(&mut ctx, i)),
        Operation::CopyBackup => parse(body).and_then(|i| copy_backup(&mut ctx, i)),
        Operation::DeleteBackup => parse(body).and_then(|i| delete_backup(&mut ctx, i)),
        Operation::DescribeBackups => parse(body).and_then(|i| describe_backups(&mut ctx, i)),
        Operation::DescribeFileSystems => {
            parse(body).and_then(|i| describe_file_systems(&mut ctx, i))
        }
        Operation::DescribeVolumes => parse(body).and_then(|i| describe_volumes(&mut ctx, i)),
        Operation::TagResource => parse(body).and_then(|i| tag_resource(&mut ctx, i)),
        Operation::UntagResource => parse(body).and_then(|i| untag_resource(&mut ctx, i)),
        Operation::ListTagsForResource => {
            parse(body).and_then(|i| list_tags_for_resource(&mut ctx, i))
        }
    };
    Execution {
        result,
        backup_ids: ctx.backup_ids,
        token: ctx.token,
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::serialization(format!("The request body could not be parsed: {e}")))
}

/// Tags in a canonical order, for comparing idempotent requests: FSx treats
/// the tag list as a set.
fn canonical_tags(tags: &[Tag]) -> String {
    let mut pairs: Vec<(&str, &str)> = tags
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    pairs.sort_unstable();
    serde_json::to_string(&pairs).unwrap_or_default()
}

/// Looks a token up. `Ok(Some)`: the same request was already served, answer
/// with its backup. `Err`: the token was used with different parameters.
fn replay<'r>(
    region: &'r RegionState,
    operation: &'static str,
    token: &str,
    params: &[(&'static str, String)],
) -> Result<Option<&'r BackupRecord>, ApiError> {
    let Some(record) = region.tokens.get(&(operation, token.to_owned())) else {
        return Ok(None);
    };
    if let Some(((name, _), _)) = record
        .params
        .iter()
        .zip(params)
        .find(|(stored, given)| stored != given)
    {
        return Err(ApiError::incompatible_parameter(name));
    }
    region
        .backups
        .get(&record.backup_id)
        .or_else(|| region.deleted.get(&record.backup_id))
        .map(Some)
        .ok_or_else(ApiError::internal_server_error)
}

// ----- CreateBackup ------------------------------------------------------

#[derive(Debug, Deserialize)]
struct CreateBackupInput {
    #[serde(rename = "FileSystemId")]
    file_system_id: Option<String>,
    #[serde(rename = "ClientRequestToken")]
    client_request_token: Option<String>,
    #[serde(rename = "Tags")]
    tags: Option<Vec<TagInput>>,
    #[serde(rename = "VolumeId")]
    volume_id: Option<String>,
}

fn create_backup(ctx: &mut Ctx<'_>, input: CreateBackupInput) -> Result<Value, ApiError> {
    let mut v = Violations::default();
    v.pattern(
        input.file_system_id.as_deref(),
        "fileSystemId",
        is_file_system_id,
        FILE_SYSTEM_ID_PATTERN,
    );
    v.pattern(
        input.volume_id.as_deref(),
        "volumeId",
        is_volume_id,
        VOLUME_ID_PATTERN,
    );
    v.pattern(
        input.client_request_token.as_deref(),
        "clientRequestToken",
        is_client_request_token,
        TOKEN_PATTERN,
    );
    v.list_len(input.tags.as_deref(), "tags", 1, MAX_TAGS);
    v.tags(input.tags.as_deref(), "tags");
    v.finish()?;
    ctx.token.clone_from(&input.client_request_token);
    let tags = into_tags(input.tags);
    if let Some(problem) = tag_problems(&tags) {
        return Err(ApiError::bad_request(problem));
    }
    let params = vec![
        (
            "FileSystemId",
            input.file_system_id.clone().unwrap_or_default(),
        ),
        ("VolumeId", input.volume_id.clone().unwrap_or_default()),
        ("Tags", canonical_tags(&tags)),
    ];
    if let Some(token) = ctx.token.clone() {
        let now = ctx.now;
        if let Some(existing) = replay(ctx.region_state(), "CreateBackup", &token, &params)? {
            let (id, body) = (
                existing.id.clone(),
                json!({ "Backup": backup_json(existing, now) }),
            );
            ctx.backup_ids.push(id);
            return Ok(body);
        }
    }

    let region = ctx.region.clone();
    let rs = ctx.region_state();
    let (file_system, volume) = match (input.file_system_id, input.volume_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "Specify either FileSystemId or VolumeId, not both.",
            ));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "One of FileSystemId or VolumeId must be specified.",
            ));
        }
        (Some(fs_id), None) => {
            let fs = rs
                .file_systems
                .get(&fs_id)
                .ok_or_else(ApiError::file_system_not_found)?;
            check_file_system_backup(fs)?;
            (fs.clone(), None)
        }
        (None, Some(vol_id)) => {
            let vol = rs
                .volumes
                .get(&vol_id)
                .ok_or_else(ApiError::volume_not_found)?;
            if vol.volume_type != VolumeType::Ontap {
                // The API backs up volumes of FSx for ONTAP only; OpenZFS
                // backups are taken of the whole file system.
                return Err(ApiError::unsupported_operation(format!(
                    "Backups of {} volumes are not supported; back up the file system {} by FileSystemId instead.",
                    vol.volume_type, vol.file_system_id
                )));
            }
            let fs = rs
                .file_systems
                .get(&vol.file_system_id)
                .ok_or_else(ApiError::file_system_not_found)?;
            if !matches!(
                fs.lifecycle,
                FileSystemLifecycle::Available | FileSystemLifecycle::Updating
            ) {
                return Err(ApiError::bad_request(format!(
                    "File system {} is {}; volumes can be backed up only while it is AVAILABLE or UPDATING.",
                    fs.id, fs.lifecycle
                )));
            }
            (fs.clone(), Some(vol.clone()))
        }
    };
    let target_id = volume
        .as_ref()
        .map_or(file_system.id.clone(), |v| v.id.clone());

    // One backup at a time per file system or volume, whoever started it.
    if rs.is_creating(&file_system.id, &target_id) {
        return Err(ApiError::backup_in_progress());
    }
    let quota = ctx.state.limits.user_backups_per_region;
    if ctx.region_state().user_initiated_count() >= quota {
        return Err(user_backup_quota_error(quota));
    }

    let copy_owner_tags = volume
        .as_ref()
        .map_or(file_system.copy_tags_to_backups, |v| v.copy_tags_to_backups);
    // With CopyTagsToBackups, an untagged request inherits the source's tags;
    // tags given in the request replace them entirely.
    let backup_tags = if tags.is_empty() && copy_owner_tags {
        let source = volume.as_ref().map_or(&file_system.tags, |v| &v.tags);
        source.iter().take(MAX_TAGS).cloned().collect()
    } else {
        tags
    };

    let id = ctx.state.fresh_id("backup-");
    let account = ctx.account.clone();
    let failure = ctx.state.take_failure(&account, &region, &target_id);
    let record = BackupRecord {
        resource_arn: format!(
            "arn:{}:fsx:{region}:{account}:backup/{id}",
            partition(&region)
        ),
        id: id.clone(),
        backup_type: BackupType::UserInitiated,
        lifecycle: BackupLifecycle::Creating,
        progress: Some(Progress {
            started: ctx.now,
            duration: ctx.state.timing.create_duration,
            failure,
        }),
        pinned_progress: None,
        creation_time: ctx.wall,
        completion_time: None,
        kms_key_id: file_system.kms_key_id.clone(),
        owner_id: account,
        tags: backup_tags,
        file_system,
        volume,
        source_backup_id: None,
        source_backup_region: None,
        failure_message: None,
        restoring_file_system_id: None,
        client_request_token: ctx.token.clone(),
    };
    let body = json!({ "Backup": backup_json(&record, ctx.now) });
    let token = ctx.token.clone();
    let rs = ctx.region_state();
    if let Some(token) = token {
        rs.tokens.insert(
            ("CreateBackup", token),
            TokenRecord {
                params,
                backup_id: id.clone(),
            },
        );
    }
    rs.insert_backup(record);
    ctx.backup_ids.push(id);
    Ok(body)
}

/// File-system-level reasons FSx refuses a backup.
fn check_file_system_backup(fs: &FileSystemRecord) -> Result<(), ApiError> {
    if fs.file_system_type == FileSystemType::Ontap {
        return Err(ApiError::unsupported_operation(
            messages::ONTAP_FILE_SYSTEM_BACKUP,
        ));
    }
    if fs.is_scratch() {
        return Err(ApiError::bad_request(format!(
            "Backups are not supported for FSx for Lustre file systems with the {} deployment type; \
             only persistent file systems can be backed up.",
            fs.deployment_type
        )));
    }
    if fs.linked_to_data_repository {
        return Err(ApiError::bad_request(
            "Backups are not supported for FSx for Lustre file systems linked to a data repository.",
        ));
    }
    if !matches!(
        fs.lifecycle,
        FileSystemLifecycle::Available | FileSystemLifecycle::Updating
    ) {
        return Err(ApiError::bad_request(format!(
            "File system {} is {}; it can be backed up only while it is AVAILABLE or UPDATING.",
            fs.id, fs.lifecycle
        )));
    }
    Ok(())
}

fn user_backup_quota_error(quota: usize) -> ApiError {
    ApiError::service_limit_exceeded(
        "TOTAL_USER_INITIATED_BACKUPS",
        format!(
            "You have reached the limit of {quota} user-initiated backups in this Region. \
             Delete backups you no longer need, or request a quota increase."
        ),
    )
}

// ----- CopyBackup --------------------------------------------------------

#[derive(Debug, Deserialize)]
struct CopyBackupInput {
    #[serde(rename = "ClientRequestToken")]
    client_request_token: Option<String>,
    #[serde(rename = "SourceBackupId")]
    source_backup_id: Option<String>,
    #[serde(rename = "SourceRegion")]
    source_region: Option<String>,
    #[serde(rename = "KmsKeyId")]
    kms_key_id: Option<String>,
    #[serde(rename = "CopyTags")]
    copy_tags: Option<bool>,
    #[serde(rename = "Tags")]
    tags: Option<Vec<TagInput>>,
}

fn copy_backup(ctx: &mut Ctx<'_>, input: CopyBackupInput) -> Result<Value, ApiError> {
    let mut v = Violations::default();
    v.required(input.source_backup_id.as_ref(), "sourceBackupId");
    v.pattern(
        input.source_backup_id.as_deref(),
        "sourceBackupId",
        is_backup_id,
        BACKUP_ID_PATTERN,
    );
    v.pattern(
        input.client_request_token.as_deref(),
        "clientRequestToken",
        is_client_request_token,
        TOKEN_PATTERN,
    );
    v.length(input.kms_key_id.as_deref(), "kmsKeyId", 1, 2048);
    v.length(input.source_region.as_deref(), "sourceRegion", 1, 20);
    v.list_len(input.tags.as_deref(), "tags", 1, MAX_TAGS);
    v.tags(input.tags.as_deref(), "tags");
    v.finish()?;
    ctx.token.clone_from(&input.client_request_token);
    let source_id = input.source_backup_id.unwrap_or_default();
    ctx.backup_ids.push(source_id.clone());
    let tags = into_tags(input.tags);
    if let Some(problem) = tag_problems(&tags) {
        return Err(ApiError::bad_request(problem));
    }

    let destination = ctx.region.clone();
    let source_region = input.source_region.unwrap_or_else(|| destination.clone());
    if !is_valid_region(&source_region) || partition(&source_region) != partition(&destination) {
        return Err(ApiError::invalid_region());
    }
    let copy_tags = input.copy_tags.unwrap_or(false);
    let params = vec![
        ("SourceBackupId", source_id.clone()),
        ("SourceRegion", source_region.clone()),
        ("KmsKeyId", input.kms_key_id.clone().unwrap_or_default()),
        ("CopyTags", copy_tags.to_string()),
        ("Tags", canonical_tags(&tags)),
    ];
    if let Some(token) = ctx.token.clone() {
        let now = ctx.now;
        if let Some(existing) = replay(ctx.region_state(), "CopyBackup", &token, &params)? {
            let (id, body) = (
                existing.id.clone(),
                json!({ "Backup": backup_json(existing, now) }),
            );
            ctx.backup_ids.insert(0, id);
            return Ok(body);
        }
    }

    // Copies stay within one account: another account's backup id is
    // simply not found, as in FSx.
    let account = ctx.account.clone();
    let source = ctx
        .state
        .region(&account, &source_region)
        .and_then(|r| r.backups.get(&source_id))
        .cloned()
        .ok_or_else(ApiError::backup_not_found)?;
    if source.lifecycle != BackupLifecycle::Available {
        return Err(ApiError::source_backup_unavailable(&source_id));
    }
    if source.file_system.storage_type == StorageType::IntelligentTiering {
        return Err(ApiError::unsupported_operation(
            "Backups of file systems using the Intelligent-Tiering storage class do not support backup copies.",
        ));
    }
    if ctx.state.is_bad_kms_key(&source.kms_key_id) {
        return Err(ApiError::invalid_source_kms_key());
    }
    if let Some(key) = &input.kms_key_id
        && ctx.state.is_bad_kms_key(key)
    {
        return Err(ApiError::invalid_destination_kms_key());
    }
    if source.file_system.file_system_type == FileSystemType::Windows
        && source.file_system.is_multi_az()
        && ctx
            .state
            .limits
            .regions_without_multi_az
            .contains(&destination)
    {
        return Err(ApiError::incompatible_region_for_multi_az());
    }

    // CopyTags merges the source's tags with the request's; on a key
    // conflict the request's value wins. Without CopyTags only the request's
    // tags are applied.
    let mut merged: Vec<Tag> = if copy_tags {
        source.tags.clone()
    } else {
        Vec::new()
    };
    for tag in tags {
        match merged.iter_mut().find(|t| t.key == tag.key) {
            Some(existing) => existing.value = tag.value,
            None => merged.push(tag),
        }
    }
    if merged.len() > MAX_TAGS {
        return Err(ApiError::bad_request(format!(
            "The source backup's tags and the requested tags together exceed {MAX_TAGS} tags."
        )));
    }

    let copy_limit = ctx.state.limits.copies_in_progress_per_region;
    if ctx.region_state().copying_count() >= copy_limit {
        return Err(ApiError::service_limit_exceeded(
            "TOTAL_IN_PROGRESS_COPY_BACKUPS",
            format!(
                "You have reached the limit of {copy_limit} backup copies in progress to the \
                 destination Region {destination}. Wait for a copy to complete and try again."
            ),
        ));
    }
    let quota = ctx.state.limits.user_backups_per_region;
    if ctx.region_state().user_initiated_count() >= quota {
        return Err(user_backup_quota_error(quota));
    }

    let id = ctx.state.fresh_id("backup-");
    let failure = ctx.state.take_failure(&account, &destination, &source_id);
    let record = BackupRecord {
        resource_arn: format!(
            "arn:{}:fsx:{destination}:{account}:backup/{id}",
            partition(&destination)
        ),
        id: id.clone(),
        backup_type: BackupType::UserInitiated,
        lifecycle: BackupLifecycle::Copying,
        progress: Some(Progress {
            started: ctx.now,
            duration: ctx.state.timing.copy_duration,
            failure,
        }),
        pinned_progress: None,
        creation_time: ctx.wall,
        completion_time: None,
        kms_key_id: input
            .kms_key_id
            .unwrap_or_else(|| State::default_kms_key(&account, &destination)),
        owner_id: account.clone(),
        tags: merged,
        file_system: source.file_system.clone(),
        volume: source.volume.clone(),
        source_backup_id: Some(source_id),
        source_backup_region: Some(source_region),
        failure_message: None,
        restoring_file_system_id: None,
        client_request_token: ctx.token.clone(),
    };
    let body = json!({ "Backup": backup_json(&record, ctx.now) });
    let token = ctx.token.clone();
    let rs = ctx.region_state();
    if let Some(token) = token {
        rs.tokens.insert(
            ("CopyBackup", token),
            TokenRecord {
                params,
                backup_id: id.clone(),
            },
        );
    }
    rs.insert_backup(record);
    rs.note_copying();
    ctx.backup_ids.insert(0, id);
    Ok(body)
}

// ----- DeleteBackup ------------------------------------------------------

#[derive(Debug, Deserialize)]
struct DeleteBackupInput {
    #[serde(rename = "BackupId")]
    backup_id: Option<String>,
    #[serde(rename = "ClientRequestToken")]
    client_request_token: Option<String>,
}

fn delete_backup(ctx: &mut Ctx<'_>, input: DeleteBackupInput) -> Result<Value, ApiError> {
    let mut v = Violations::default();
    v.required(input.backup_id.as_ref(), "backupId");
    v.pattern(
        input.backup_id.as_deref(),
        "backupId",
        is_backup_id,
        BACKUP_ID_PATTERN,
    );
    v.pattern(
        input.client_request_token.as_deref(),
        "clientRequestToken",
        is_client_request_token,
        TOKEN_PATTERN,
    );
    v.finish()?;
    ctx.token.clone_from(&input.client_request_token);
    let id = input.backup_id.unwrap_or_default();
    ctx.backup_ids.push(id.clone());
    let deleted = json!({ "BackupId": id, "Lifecycle": BackupLifecycle::Deleted.as_str() });
    let params = vec![("BackupId", id.clone())];
    if let Some(token) = ctx.token.clone()
        && replay(ctx.region_state(), "DeleteBackup", &token, &params)?.is_some()
    {
        return Ok(deleted);
    }

    let region = ctx.region.clone();
    let record = ctx
        .region_state()
        .backups
        .get(&id)
        .ok_or_else(ApiError::backup_not_found)?;
    if record.backup_type == BackupType::AwsBackup {
        // DeleteBackup's model offers no dedicated code for this; FSx refuses
        // with a generic client error.
        return Err(ApiError::bad_request(
            "Backups created by AWS Backup can only be deleted through AWS Backup.",
        ));
    }
    if let Some(fs_id) = &record.restoring_file_system_id {
        return Err(ApiError::backup_restoring(fs_id));
    }
    let in_progress =
        record.lifecycle.is_creation_in_progress() || record.lifecycle == BackupLifecycle::Copying;
    if ctx.state.is_being_copied(&ctx.account, &region, &id) {
        return Err(ApiError::backup_being_copied(&id));
    }
    if in_progress {
        return Err(ApiError::backup_in_progress());
    }

    let token = ctx.token.clone();
    let rs = ctx.region_state();
    if let Some(mut record) = rs.remove_backup(&id) {
        record.lifecycle = BackupLifecycle::Deleted;
        rs.deleted.insert(id.clone(), record);
    }
    if let Some(token) = token {
        rs.tokens.insert(
            ("DeleteBackup", token),
            TokenRecord {
                params,
                backup_id: id,
            },
        );
    }
    Ok(deleted)
}

// ----- DescribeBackups ---------------------------------------------------

#[derive(Debug, Deserialize)]
struct FilterInput {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Values")]
    values: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct DescribeBackupsInput {
    #[serde(rename = "BackupIds")]
    backup_ids: Option<Vec<String>>,
    #[serde(rename = "Filters")]
    filters: Option<Vec<FilterInput>>,
    #[serde(rename = "MaxResults")]
    max_results: Option<i32>,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
}

const BACKUP_FILTERS: &[&str] = &[
    "file-system-id",
    "backup-type",
    "file-system-type",
    "volume-id",
    "data-repository-type",
    "file-cache-id",
    "file-cache-type",
];

/// Validated filters: name → allowed values.
type Filters = Vec<(String, BTreeSet<String>)>;

fn validate_filters(
    v: &mut Violations,
    filters: Option<Vec<FilterInput>>,
    allowed: &[&str],
) -> Filters {
    let filters = filters.unwrap_or_default();
    v.list_len(Some(&filters[..]), "filters", 0, 10);
    for (i, f) in filters.iter().enumerate() {
        v.one_of(
            f.name.as_deref(),
            &format!("filters.{}.member.name", i + 1),
            allowed,
        );
        // The FSx API reference: at most 20 values per filter.
        v.list_len(
            f.values.as_deref(),
            &format!("filters.{}.member.values", i + 1),
            0,
            20,
        );
    }
    filters
        .into_iter()
        .filter_map(|f| Some((f.name?, f.values.unwrap_or_default().into_iter().collect())))
        .collect()
}

fn check_filter_values(filters: &Filters) -> Result<(), ApiError> {
    for (name, values) in filters {
        if values.is_empty() {
            return Err(ApiError::bad_request(format!(
                "The filter '{name}' requires at least one value."
            )));
        }
    }
    Ok(())
}

fn describe_backups(ctx: &mut Ctx<'_>, input: DescribeBackupsInput) -> Result<Value, ApiError> {
    let mut v = Violations::default();
    v.max_results(input.max_results);
    let ids = input.backup_ids.unwrap_or_default();
    v.list_len(Some(&ids[..]), "backupIds", 0, 50);
    for (i, id) in ids.iter().enumerate() {
        v.pattern(
            Some(id),
            &format!("backupIds.{}.member", i + 1),
            is_backup_id,
            BACKUP_ID_PATTERN,
        );
    }
    let filters = validate_filters(&mut v, input.filters, BACKUP_FILTERS);
    v.finish()?;
    check_filter_values(&filters)?;
    ctx.backup_ids.extend(ids.iter().cloned());

    let salt = ctx.state.order_salt;
    let now = ctx.now;
    let rs = ctx.region_state();
    let selected: Vec<&BackupRecord> = if ids.is_empty() {
        for (name, values) in &filters {
            match name.as_str() {
                "backup-type" => {
                    if let Some(bad) = values.iter().find(|x| x.parse::<BackupType>().is_err()) {
                        return Err(ApiError::bad_request(format!(
                            "'{bad}' is not a valid value for the backup-type filter."
                        )));
                    }
                }
                "file-system-type" => {
                    if let Some(bad) = values.iter().find(|x| x.parse::<FileSystemType>().is_err())
                    {
                        return Err(ApiError::bad_request(format!(
                            "'{bad}' is not a valid value for the file-system-type filter."
                        )));
                    }
                }
                // Backups outlive their file systems and volumes, so an id
                // is only unknown when neither the resource nor any backup
                // of it exists.
                "file-system-id"
                    if values
                        .iter()
                        .any(|fs| !rs.file_systems.contains_key(fs) && !rs.has_backups_of(fs)) =>
                {
                    return Err(ApiError::file_system_not_found());
                }
                "volume-id"
                    if values.iter().any(|vol| {
                        !rs.volumes.contains_key(vol)
                            && !rs
                                .backups
                                .values()
                                .any(|b| b.volume.as_ref().is_some_and(|x| x.id == *vol))
                    }) =>
                {
                    return Err(ApiError::volume_not_found());
                }
                _ => {}
            }
        }
        let matches = |b: &&BackupRecord| {
            filters
                .iter()
                .all(|(name, values)| backup_matches(b, name, values))
        };
        // Through the index when the file systems are named (the operator's
        // listing of its targets): in id order, as a scan would give.
        match filters.iter().find(|(name, _)| name == "file-system-id") {
            Some((_, file_systems)) => rs
                .backups_of_file_systems(file_systems)
                .filter(matches)
                .collect(),
            None => rs.backups.values().filter(matches).collect(),
        }
    } else {
        // BackupIds override any filters.
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        unique
            .into_iter()
            .map(|id| rs.backups.get(id).ok_or_else(ApiError::backup_not_found))
            .collect::<Result<_, _>>()?
    };
    let scope = format!("DescribeBackups|{ids:?}|{filters:?}");
    let items = selected
        .into_iter()
        .map(|b| (b.id.clone(), backup_json(b, now)))
        .collect();
    let page = paginate(
        items,
        salt,
        &scope,
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(list_output("Backups", page.items, page.next_token))
}

fn backup_matches(b: &BackupRecord, name: &str, values: &BTreeSet<String>) -> bool {
    match name {
        "file-system-id" => values.contains(&b.file_system.id),
        "volume-id" => b.volume.as_ref().is_some_and(|v| values.contains(&v.id)),
        "backup-type" => values.contains(b.backup_type.as_str()),
        "file-system-type" => values.contains(b.file_system.file_system_type.as_str()),
        // File caches and data repositories are not modeled: no backup
        // belongs to one.
        _ => false,
    }
}

fn list_output(member: &str, items: Vec<Value>, next_token: Option<String>) -> Value {
    let mut m = Map::new();
    m.insert(member.to_owned(), Value::Array(items));
    if let Some(token) = next_token {
        m.insert("NextToken".into(), Value::String(token));
    }
    Value::Object(m)
}

// ----- DescribeFileSystems / DescribeVolumes -----------------------------

#[derive(Debug, Deserialize)]
struct DescribeFileSystemsInput {
    #[serde(rename = "FileSystemIds")]
    file_system_ids: Option<Vec<String>>,
    #[serde(rename = "MaxResults")]
    max_results: Option<i32>,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
}

fn describe_file_systems(
    ctx: &mut Ctx<'_>,
    input: DescribeFileSystemsInput,
) -> Result<Value, ApiError> {
    let mut v = Violations::default();
    v.max_results(input.max_results);
    let ids = input.file_system_ids.unwrap_or_default();
    v.list_len(Some(&ids[..]), "fileSystemIds", 0, 50);
    for (i, id) in ids.iter().enumerate() {
        v.pattern(
            Some(id),
            &format!("fileSystemIds.{}.member", i + 1),
            is_file_system_id,
            FILE_SYSTEM_ID_PATTERN,
        );
    }
    v.finish()?;
    let salt = ctx.state.order_salt;
    let rs = ctx.region_state();
    let selected: Vec<&FileSystemRecord> = if ids.is_empty() {
        rs.file_systems.values().collect()
    } else {
        let unique: BTreeSet<&String> = ids.iter().collect();
        unique
            .into_iter()
            .map(|id| {
                rs.file_systems
                    .get(id)
                    .ok_or_else(ApiError::file_system_not_found)
            })
            .collect::<Result<_, _>>()?
    };
    let scope = format!("DescribeFileSystems|{ids:?}");
    let items = selected
        .into_iter()
        .map(|fs| (fs.id.clone(), file_system_json(fs)))
        .collect();
    let page = paginate(
        items,
        salt,
        &scope,
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(list_output("FileSystems", page.items, page.next_token))
}

#[derive(Debug, Deserialize)]
struct DescribeVolumesInput {
    #[serde(rename = "VolumeIds")]
    volume_ids: Option<Vec<String>>,
    #[serde(rename = "Filters")]
    filters: Option<Vec<FilterInput>>,
    #[serde(rename = "MaxResults")]
    max_results: Option<i32>,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
}

fn describe_volumes(ctx: &mut Ctx<'_>, input: DescribeVolumesInput) -> Result<Value, ApiError> {
    let mut v = Violations::default();
    v.max_results(input.max_results);
    let ids = input.volume_ids.unwrap_or_default();
    v.list_len(Some(&ids[..]), "volumeIds", 0, 50);
    for (i, id) in ids.iter().enumerate() {
        v.pattern(
            Some(id),
            &format!("volumeIds.{}.member", i + 1),
            is_volume_id,
            VOLUME_ID_PATTERN,
        );
    }
    let filters = validate_filters(
        &mut v,
        input.filters,
        &["file-system-id", "storage-virtual-machine-id"],
    );
    v.finish()?;
    check_filter_values(&filters)?;
    let salt = ctx.state.order_salt;
    let rs = ctx.region_state();
    let selected: Vec<&VolumeRecord> = if ids.is_empty() {
        rs.volumes
            .values()
            .filter(|vol| {
                filters.iter().all(|(name, values)| match name.as_str() {
                    "file-system-id" => values.contains(&vol.file_system_id),
                    _ => vol
                        .storage_virtual_machine_id
                        .as_ref()
                        .is_some_and(|svm| values.contains(svm)),
                })
            })
            .collect()
    } else {
        let unique: BTreeSet<&String> = ids.iter().collect();
        unique
            .into_iter()
            .map(|id| rs.volumes.get(id).ok_or_else(ApiError::volume_not_found))
            .collect::<Result<_, _>>()?
    };
    let scope = format!("DescribeVolumes|{ids:?}|{filters:?}");
    let items = selected
        .into_iter()
        .map(|vol| (vol.id.clone(), volume_json(vol)))
        .collect();
    let page = paginate(
        items,
        salt,
        &scope,
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(list_output("Volumes", page.items, page.next_token))
}

// ----- Tagging -----------------------------------------------------------

/// A taggable resource the emulator models.
enum Resource {
    Backup(String),
    FileSystem(String),
    Volume(String),
}

/// FSx resource types that exist in the service but not in the emulator:
/// their ARNs are valid, the resources are simply never found.
const UNMODELED_RESOURCE_TYPES: &[&str] = &[
    "snapshot",
    "storage-virtual-machine",
    "file-cache",
    "association",
    "task",
    "s3-access-point-attachment",
];

fn looks_like_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && !parts[2].is_empty()
        && !parts[5].is_empty()
}

fn validate_arn(v: &mut Violations, arn: Option<&str>) {
    v.required(arn, "resourceARN");
    v.length(arn, "resourceARN", 8, 512);
    v.pattern(
        arn,
        "resourceARN",
        looks_like_arn,
        "^arn:(?=[^:]+:fsx:[^:]+:\\d{12}:)...$",
    );
}

/// Finds the resource an ARN names in the request's (account, Region); an
/// ARN of another account or Region is not found there.
fn resolve_arn(
    rs: &RegionState,
    request_account: &str,
    region: &str,
    arn: &str,
) -> Result<Resource, ApiError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, arn_partition, service, arn_region, account, resource] = parts.as_slice() else {
        return Err(ApiError::resource_not_found(arn));
    };
    if *service != "fsx" {
        return Err(ApiError::not_service_resource(arn));
    }
    if *arn_partition != partition(region) || *arn_region != region || *account != request_account {
        return Err(ApiError::resource_not_found(arn));
    }
    let (kind, rest) = resource.split_once('/').unwrap_or((resource, ""));
    let found = match kind {
        "backup" => rs
            .backups
            .get(rest)
            .filter(|b| b.resource_arn == arn)
            .map(|b| Resource::Backup(b.id.clone())),
        "file-system" => rs
            .file_systems
            .get(rest)
            .filter(|fs| fs.resource_arn == arn)
            .map(|fs| Resource::FileSystem(fs.id.clone())),
        "volume" => rest
            .rsplit('/')
            .next()
            .and_then(|id| rs.volumes.get(id))
            .filter(|vol| vol.resource_arn == arn)
            .map(|vol| Resource::Volume(vol.id.clone())),
        k if UNMODELED_RESOURCE_TYPES.contains(&k) => None,
        _ => return Err(ApiError::resource_does_not_support_tagging(arn)),
    };
    found.ok_or_else(|| ApiError::resource_not_found(arn))
}

fn resource_tags<'r>(rs: &'r mut RegionState, resource: &Resource) -> Option<&'r mut Vec<Tag>> {
    match resource {
        Resource::Backup(id) => rs.backups.get_mut(id).map(|b| &mut b.tags),
        Resource::FileSystem(id) => rs.file_systems.get_mut(id).map(|fs| &mut fs.tags),
        Resource::Volume(id) => rs.volumes.get_mut(id).map(|vol| &mut vol.tags),
    }
}

#[derive(Debug, Deserialize)]
struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    #[serde(rename = "Tags")]
    tags: Option<Vec<TagInput>>,
}

fn tag_resource(ctx: &mut Ctx<'_>, input: TagResourceInput) -> Result<Value, ApiError> {
    let mut v = Violations::default();
    validate_arn(&mut v, input.resource_arn.as_deref());
    v.required(input.tags.as_ref(), "tags");
    v.list_len(input.tags.as_deref(), "tags", 1, MAX_TAGS);
    v.tags(input.tags.as_deref(), "tags");
    v.finish()?;
    let arn = input.resource_arn.unwrap_or_default();
    let tags = into_tags(input.tags);
    if let Some(problem) = tag_problems(&tags) {
        return Err(ApiError::bad_request(problem));
    }
    let (account, region) = (ctx.account.clone(), ctx.region.clone());
    let rs = ctx.region_state();
    let resource = resolve_arn(rs, &account, &region, &arn)?;
    let backup_id = match &resource {
        Resource::Backup(id) => Some(id.clone()),
        _ => None,
    };
    let current = resource_tags(rs, &resource).ok_or_else(|| ApiError::resource_not_found(&arn))?;
    let mut updated = current.clone();
    for tag in tags {
        match updated.iter_mut().find(|t| t.key == tag.key) {
            Some(existing) => existing.value = tag.value,
            None => updated.push(tag),
        }
    }
    if updated.len() > MAX_TAGS {
        return Err(ApiError::bad_request(format!(
            "A resource can have at most {MAX_TAGS} tags; this request would leave {}.",
            updated.len()
        )));
    }
    *current = updated;
    ctx.backup_ids.extend(backup_id);
    Ok(json!({}))
}

#[derive(Debug, Deserialize)]
struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    #[serde(rename = "TagKeys")]
    tag_keys: Option<Vec<String>>,
}

fn untag_resource(ctx: &mut Ctx<'_>, input: UntagResourceInput) -> Result<Value, ApiError> {
    let mut v = Violations::default();
    validate_arn(&mut v, input.resource_arn.as_deref());
    v.required(input.tag_keys.as_ref(), "tagKeys");
    v.list_len(input.tag_keys.as_deref(), "tagKeys", 1, MAX_TAGS);
    for (i, key) in input.tag_keys.iter().flatten().enumerate() {
        v.length(Some(key), &format!("tagKeys.{}.member", i + 1), 1, 128);
    }
    v.finish()?;
    let arn = input.resource_arn.unwrap_or_default();
    let keys = input.tag_keys.unwrap_or_default();
    let (account, region) = (ctx.account.clone(), ctx.region.clone());
    let rs = ctx.region_state();
    let resource = resolve_arn(rs, &account, &region, &arn)?;
    let backup_id = match &resource {
        Resource::Backup(id) => Some(id.clone()),
        _ => None,
    };
    let current = resource_tags(rs, &resource).ok_or_else(|| ApiError::resource_not_found(&arn))?;
    current.retain(|t| !keys.contains(&t.key));
    ctx.backup_ids.extend(backup_id);
    Ok(json!({}))
}

#[derive(Debug, Deserialize)]
struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    #[serde(rename = "MaxResults")]
    max_results: Option<i32>,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
}

fn list_tags_for_resource(
    ctx: &mut Ctx<'_>,
    input: ListTagsForResourceInput,
) -> Result<Value, ApiError> {
    let mut v = Violations::default();
    validate_arn(&mut v, input.resource_arn.as_deref());
    v.max_results(input.max_results);
    v.finish()?;
    let arn = input.resource_arn.unwrap_or_default();
    let salt = ctx.state.order_salt;
    let (account, region) = (ctx.account.clone(), ctx.region.clone());
    let rs = ctx.region_state();
    let resource = resolve_arn(rs, &account, &region, &arn)?;
    if let Resource::Backup(id) = &resource {
        ctx.backup_ids.push(id.clone());
    }
    let rs = ctx.region_state();
    let tags = resource_tags(rs, &resource)
        .map(|t| t.clone())
        .ok_or_else(|| ApiError::resource_not_found(&arn))?;
    let items = tags
        .into_iter()
        .map(|t| {
            let json = json!({ "Key": t.key, "Value": t.value });
            (t.key, json)
        })
        .collect();
    let page = paginate(
        items,
        salt,
        &format!("ListTagsForResource|{arn}"),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(list_output("Tags", page.items, page.next_token))
}
