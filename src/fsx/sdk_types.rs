//! FSx's SDK types turned into the operator's plain domain types and back:
//! the only place that reads `aws_sdk_fsx::types` field by field.

use std::collections::BTreeMap;

use aws_sdk_fsx::types as sdk;
use jiff::Timestamp;

use super::{Backup, BackupTarget, BackupType, Lifecycle};

/// FSx rejects an empty tag list; no tags is sent as no list.
pub(super) fn tags_to_sdk(tags: &BTreeMap<String, String>) -> Option<Vec<sdk::Tag>> {
    (!tags.is_empty()).then(|| {
        tags.iter()
            .map(|(k, v)| sdk::Tag::builder().key(k).value(v).build())
            .collect()
    })
}

pub(super) fn tags_from_sdk(tags: &[sdk::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn timestamp(time: &aws_smithy_types::DateTime) -> Option<Timestamp> {
    Timestamp::new(time.secs(), i32::try_from(time.subsec_nanos()).ok()?).ok()
}

/// `None` for a backup without an id: nothing can be done with it.
pub(super) fn backup_from_sdk(backup: &sdk::Backup) -> Option<Backup> {
    let target = backup
        .volume()
        .and_then(sdk::Volume::volume_id)
        .map(|id| BackupTarget::Volume(id.to_owned()))
        .or_else(|| {
            backup
                .file_system()
                .and_then(sdk::FileSystem::file_system_id)
                .map(|id| BackupTarget::FileSystem(id.to_owned()))
        });
    Some(Backup {
        id: backup.backup_id()?.to_owned(),
        arn: backup.resource_arn().map(str::to_owned),
        lifecycle: backup.lifecycle().map_or_else(
            || Lifecycle::Other("UNKNOWN".to_owned()),
            |l| Lifecycle::parse(l.as_str()),
        ),
        backup_type: backup.r#type().map(|t| BackupType::parse(t.as_str())),
        progress_percent: backup.progress_percent(),
        created_at: backup.creation_time().and_then(timestamp),
        tags: tags_from_sdk(backup.tags()),
        failure_message: backup
            .failure_details()
            .and_then(sdk::BackupFailureDetails::message)
            .map(str::to_owned),
        target,
        source_backup_id: backup.source_backup_id().map(str::to_owned),
        source_region: backup.source_backup_region().map(str::to_owned),
    })
}
