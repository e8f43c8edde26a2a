//! The tags that make a backup the operator's, and the one test of ownership
//! that retention and cleanup use before anything is deleted.

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt};

use crate::fsx::{Backup, BackupType};

/// Present on every backup the operator creates or copies.
pub const MANAGED_BY_KEY: &str = "fsxbackup.io/managed-by";
/// The value of [`MANAGED_BY_KEY`]; also what the IAM policy's `DeleteBackup`
/// condition checks.
pub const MANAGED_BY_VALUE: &str = "fsx-backup-operator";
/// `namespace/Kind/name` of the object that made the backup, for people.
pub const OWNER_KEY: &str = "fsxbackup.io/owner";
/// UID of the object that made the backup: the only thing ownership is decided
/// by, since a deleted and re-created object with the same name is another owner.
pub const OWNER_UID_KEY: &str = "fsxbackup.io/owner-uid";
/// RFC 3339 instant of the scheduled run the backup belongs to, or `run-now:<instant>`
/// (the instant the run-now was first seen) for a run-now backup.
pub const SCHEDULED_TIME_KEY: &str = "fsxbackup.io/scheduled-time";
/// For copies: the id of the backup that was copied.
pub const SOURCE_BACKUP_KEY: &str = "fsxbackup.io/source-backup-id";
/// The FSx console's name column.
pub const NAME_KEY: &str = "Name";
/// The identity of the cluster whose operator made the backup (`--cluster-id`):
/// two clusters sharing an account never adopt or count each other's backups.
pub const CLUSTER_KEY: &str = "fsxbackup.io/cluster";
/// On an adopted backup: the UID of the object that made it.
pub const ADOPTED_FROM_KEY: &str = "fsxbackup.io/adopted-from-uid";

/// Tag keys the operator sets itself; user `tags` may not use them.
pub const RESERVED_KEYS: [&str; 8] = [
    MANAGED_BY_KEY,
    OWNER_KEY,
    OWNER_UID_KEY,
    SCHEDULED_TIME_KEY,
    SOURCE_BACKUP_KEY,
    NAME_KEY,
    CLUSTER_KEY,
    ADOPTED_FROM_KEY,
];

/// FSx's limit of tags on one resource.
pub const FSX_MAX_TAGS: usize = 50;

/// Drops the cluster tag when `tags` would exceed FSx's limit (an object with
/// 45 tags of its own, allowed before the cluster tag existed): the backup is
/// still made and owned by its UID, only not adoptable after a rebuild.
pub fn fit_tags(tags: &mut BTreeMap<String, String>) {
    if tags.len() > FSX_MAX_TAGS {
        tags.remove(CLUSTER_KEY);
    }
}

/// The object backups are made for, and the cluster it lives in: everything
/// the ownership tags say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub cluster: String,
}

impl Owner {
    /// The owner `object` is, in cluster `cluster`.
    pub fn of<K: Resource>(object: &K, cluster: &str) -> Self {
        Self {
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
            uid: object.uid().unwrap_or_default(),
            cluster: cluster.to_owned(),
        }
    }

    /// `namespace/Kind/name`, the value of [`OWNER_KEY`].
    pub fn label(&self, kind: &str) -> String {
        format!("{}/{kind}/{}", self.namespace, self.name)
    }

    /// The tags every backup or copy made for this owner carries.
    pub fn tags(&self, kind: &str) -> BTreeMap<String, String> {
        let mut tags = ownership_tags(kind, &self.namespace, &self.name, &self.uid);
        tags.insert(CLUSTER_KEY.to_owned(), self.cluster.clone());
        tags
    }
}

/// True only for a user-initiated backup tagged as managed by this operator
/// for the object with `owner_uid`. `AUTOMATIC`, `AWS_BACKUP`, untyped, foreign
/// and other objects' backups are never owned.
pub fn is_owned_by(backup: &Backup, owner_uid: &str) -> bool {
    !owner_uid.is_empty()
        && backup.backup_type == Some(BackupType::UserInitiated)
        && backup.tags.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && backup.tags.get(OWNER_UID_KEY).map(String::as_str) == Some(owner_uid)
}

/// The ownership tags for a backup made by `kind` `namespace/name` (UID `uid`).
pub fn ownership_tags(
    kind: &str,
    namespace: &str,
    name: &str,
    uid: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_KEY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (OWNER_KEY.to_owned(), format!("{namespace}/{kind}/{name}")),
        (OWNER_UID_KEY.to_owned(), uid.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsx::Lifecycle;

    fn backup(backup_type: Option<BackupType>, tags: &[(&str, &str)]) -> Backup {
        Backup {
            id: "backup-0123456789abcdef0".into(),
            arn: None,
            lifecycle: Lifecycle::Available,
            backup_type,
            progress_percent: None,
            created_at: None,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            failure_message: None,
            target: None,
            source_backup_id: None,
            source_region: None,
        }
    }

    #[test]
    fn only_our_user_initiated_backups_with_this_uid_are_owned() {
        let ours = [(MANAGED_BY_KEY, MANAGED_BY_VALUE), (OWNER_UID_KEY, "uid-1")];
        assert!(is_owned_by(
            &backup(Some(BackupType::UserInitiated), &ours),
            "uid-1"
        ));
        assert!(!is_owned_by(
            &backup(Some(BackupType::UserInitiated), &ours),
            "uid-2"
        ));
        assert!(!is_owned_by(
            &backup(Some(BackupType::Automatic), &ours),
            "uid-1"
        ));
        assert!(!is_owned_by(
            &backup(Some(BackupType::AwsBackup), &ours),
            "uid-1"
        ));
        assert!(!is_owned_by(&backup(None, &ours), "uid-1"));
        let foreign = [(MANAGED_BY_KEY, "someone-else"), (OWNER_UID_KEY, "uid-1")];
        assert!(!is_owned_by(
            &backup(Some(BackupType::UserInitiated), &foreign),
            "uid-1"
        ));
        assert!(!is_owned_by(
            &backup(Some(BackupType::UserInitiated), &[(OWNER_UID_KEY, "uid-1")]),
            "uid-1"
        ));
        assert!(!is_owned_by(
            &backup(Some(BackupType::UserInitiated), &ours),
            ""
        ));
    }
}
