//! Shared by the planners' table tests: timestamps and FSx backups as FSx lists them.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::fsx::{Backup, BackupTarget, BackupType, Lifecycle};

pub fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

/// A user-initiated backup of `fs-0123456789abcdef0`, untagged.
pub fn backup(id: &str, lifecycle: Lifecycle, created: &str) -> Backup {
    Backup {
        id: id.into(),
        arn: None,
        lifecycle,
        backup_type: Some(BackupType::UserInitiated),
        progress_percent: None,
        created_at: Some(at(created)),
        tags: BTreeMap::new(),
        failure_message: None,
        target: Some(BackupTarget::FileSystem("fs-0123456789abcdef0".into())),
        source_backup_id: None,
        source_region: None,
    }
}
