//! Where a listed backup stands towards one object, and the re-tagging that
//! adoption and the cluster tag call for. Pure: the reconcilers send the
//! [`Retag`]s with `TagResource` and the stray scan counts [`Standing`]s.
//!
//! Rules, in order (only `USER_INITIATED`, not `DELETED`, tagged
//! `managed-by: fsx-backup-operator` backups are looked at; others are [`Standing::Other`]):
//! - its owner UID is this object's: [`Standing::Owned`]. Ownership is the UID
//!   (unique across clusters); a missing cluster tag is set to this cluster's
//!   identity, which is how backups made before the tag existed get it
//!   ([`Standing::OwnedUntagged`]). Another cluster tag is left alone.
//! - its owner tag names this object (namespace/Kind/name), its UID is another
//!   (that object no longer exists: a live object's name is unique, and this
//!   one has it), and its cluster tag is this cluster's: an orphan of this
//!   object ([`Standing::Orphan`]), adopted unless `spec.adoption` is `Never`.
//! - the same, without a cluster tag: made before identities existed, by this
//!   cluster or by another that used the same names. Never adopted
//!   ([`Standing::UntaggedOrphan`]); tagging it with this cluster's identity by
//!   hand is how a person says it is this cluster's.
//! - anything else, another cluster identity's above all: [`Standing::Other`],
//!   never re-tagged, adopted, counted or deleted.

use std::collections::BTreeMap;

use crate::crd::common::Adoption;
use crate::fsx::{Backup, BackupType, Lifecycle};
use crate::ownership::{
    ADOPTED_FROM_KEY, CLUSTER_KEY, MANAGED_BY_KEY, MANAGED_BY_VALUE, OWNER_KEY, OWNER_UID_KEY,
    Owner,
};

/// Where one backup stands towards one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// This object's, with this cluster's tag.
    Owned,
    /// This object's, without a cluster tag (made before identities).
    OwnedUntagged,
    /// Made in this cluster by an earlier object of the same name, UID `from_uid`.
    Orphan { from_uid: String },
    /// Made by an earlier object of the same name before cluster tags existed.
    UntaggedOrphan,
    /// Not this object's in any way.
    Other,
}

/// Whether `backup` is one the operator made (any owner, any cluster).
pub fn is_operators(backup: &Backup) -> bool {
    backup.backup_type == Some(BackupType::UserInitiated)
        && backup.lifecycle != Lifecycle::Deleted
        && backup.tags.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
}

/// Where `backup` stands towards `owner`, an object of `kind`.
pub fn standing(backup: &Backup, owner: &Owner, kind: &str) -> Standing {
    if owner.uid.is_empty() || !is_operators(backup) {
        return Standing::Other;
    }
    let tag = |key: &str| backup.tags.get(key).map(String::as_str);
    let cluster = tag(CLUSTER_KEY);
    if tag(OWNER_UID_KEY) == Some(owner.uid.as_str()) {
        // Another cluster tag on our UID (a cluster restored from another's
        // etcd, or `--cluster-id` changed) is left as it is: still ours by UID,
        // never re-tagged back and forth between clusters.
        return if cluster.is_none() {
            Standing::OwnedUntagged
        } else {
            Standing::Owned
        };
    }
    if tag(OWNER_KEY) != Some(owner.label(kind).as_str()) {
        return Standing::Other;
    }
    match (cluster, tag(OWNER_UID_KEY)) {
        (Some(c), Some(uid)) if c == owner.cluster && !uid.is_empty() => Standing::Orphan {
            from_uid: uid.to_owned(),
        },
        (None, _) => Standing::UntaggedOrphan,
        _ => Standing::Other,
    }
}

/// One `TagResource` call: the tags to set on a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retag {
    pub backup_id: String,
    pub arn: String,
    pub tags: BTreeMap<String, String>,
    /// For an adoption: the UID of the object that made it.
    pub adopted_from: Option<String>,
}

/// The re-tagging `backups` (one listing) need for `owner`: orphans adopted
/// (unless `adoption` is `Never`) and this object's own backups given the
/// cluster tag. Backups whose ARN FSx did not report are left for a later listing.
pub fn retags(backups: &[Backup], owner: &Owner, kind: &str, adoption: Adoption) -> Vec<Retag> {
    // `managed-by` is sent again: the IAM policy allows `TagResource` only on a
    // backup that has it and a request that carries it.
    let managed = || (MANAGED_BY_KEY.to_owned(), MANAGED_BY_VALUE.to_owned());
    let cluster = || (CLUSTER_KEY.to_owned(), owner.cluster.clone());
    let mut out: Vec<Retag> = backups
        .iter()
        .filter_map(|backup| {
            let arn = backup.arn.clone()?;
            let (tags, adopted_from) = match standing(backup, owner, kind) {
                Standing::OwnedUntagged => (BTreeMap::from([managed(), cluster()]), None),
                Standing::Orphan { from_uid } if adoption == Adoption::Adopt => (
                    BTreeMap::from([
                        managed(),
                        cluster(),
                        (OWNER_UID_KEY.to_owned(), owner.uid.clone()),
                        (ADOPTED_FROM_KEY.to_owned(), from_uid.clone()),
                    ]),
                    Some(from_uid),
                ),
                _ => return None,
            };
            Some(Retag {
                backup_id: backup.id.clone(),
                arn,
                tags,
                adopted_from,
            })
        })
        .collect();
    out.sort_by(|a, b| a.backup_id.cmp(&b.backup_id));
    out.dedup_by(|a, b| a.backup_id == b.backup_id);
    out
}

/// What a listing looks like once `retag` succeeded: later decisions in the
/// same reconcile (retention, `minAvailable`) see the backup as tagged now.
pub fn apply(backups: &mut [Backup], retag: &Retag) {
    for backup in backups.iter_mut().filter(|b| b.id == retag.backup_id) {
        backup.tags.extend(retag.tags.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::fixtures;
    use crate::ownership::{SCHEDULED_TIME_KEY, ownership_tags};

    const KIND: &str = "FsxBackupSchedule";

    fn owner() -> Owner {
        Owner {
            namespace: "storage".into(),
            name: "nightly".into(),
            uid: "uid-new".into(),
            cluster: "prod".into(),
        }
    }

    fn backup(id: &str, uid: &str, cluster: Option<&str>) -> Backup {
        let mut tags = ownership_tags(KIND, "storage", "nightly", uid);
        tags.insert(SCHEDULED_TIME_KEY.into(), "2026-01-01T00:00:00Z".into());
        if let Some(cluster) = cluster {
            tags.insert(CLUSTER_KEY.into(), cluster.into());
        }
        Backup {
            arn: Some(format!("arn:aws:fsx:us-east-1:111122223333:backup/{id}")),
            tags,
            ..fixtures::backup(id, Lifecycle::Available, "2026-01-01T00:00:00Z")
        }
    }

    #[test]
    fn standing_follows_uid_then_name_then_cluster() {
        let o = owner();
        assert_eq!(
            standing(&backup("b1", "uid-new", Some("prod")), &o, KIND),
            Standing::Owned
        );
        assert_eq!(
            standing(&backup("b2", "uid-new", None), &o, KIND),
            Standing::OwnedUntagged
        );
        assert_eq!(
            standing(&backup("b3", "uid-new", Some("old-name")), &o, KIND),
            Standing::Owned
        );
        assert_eq!(
            standing(&backup("b4", "uid-old", Some("prod")), &o, KIND),
            Standing::Orphan {
                from_uid: "uid-old".into()
            }
        );
        assert_eq!(
            standing(&backup("b5", "uid-old", None), &o, KIND),
            Standing::UntaggedOrphan
        );
        // Another cluster's backup with the very same names is never ours.
        assert_eq!(
            standing(&backup("b6", "uid-old", Some("staging")), &o, KIND),
            Standing::Other
        );
        // The same name under the other kind is another object.
        assert_eq!(
            standing(&backup("b7", "uid-old", Some("prod")), &o, "FsxBackupCopy"),
            Standing::Other
        );
    }

    #[test]
    fn only_the_operators_user_initiated_live_backups_stand_anywhere() {
        let o = owner();
        let mut automatic = backup("b1", "uid-old", Some("prod"));
        automatic.backup_type = Some(BackupType::Automatic);
        let mut deleted = backup("b2", "uid-old", Some("prod"));
        deleted.lifecycle = Lifecycle::Deleted;
        let mut foreign = backup("b3", "uid-old", Some("prod"));
        foreign.tags.insert(MANAGED_BY_KEY.into(), "someone".into());
        for b in [automatic, deleted, foreign] {
            assert_eq!(standing(&b, &o, KIND), Standing::Other, "{}", b.id);
        }
        let nobody = Owner {
            uid: String::new(),
            ..o
        };
        assert_eq!(
            standing(&backup("b4", "", Some("prod")), &nobody, KIND),
            Standing::Other
        );
    }

    #[test]
    fn orphans_are_adopted_with_their_origin_and_own_backups_get_the_cluster_tag() {
        let o = owner();
        let mut no_arn = backup("b9", "uid-old", Some("prod"));
        no_arn.arn = None;
        let listing = vec![
            backup("b1", "uid-new", Some("prod")),
            backup("b2", "uid-new", None),
            backup("b4", "uid-old", Some("prod")),
            backup("b5", "uid-old", None),
            backup("b6", "uid-old", Some("staging")),
            backup("b4", "uid-old", Some("prod")),
            no_arn,
        ];
        let retags = retags(&listing, &o, KIND, Adoption::Adopt);
        let ids: Vec<&str> = retags.iter().map(|r| r.backup_id.as_str()).collect();
        assert_eq!(ids, ["b2", "b4"]);
        assert_eq!(
            retags[0].tags,
            BTreeMap::from([
                (MANAGED_BY_KEY.into(), MANAGED_BY_VALUE.into()),
                (CLUSTER_KEY.into(), "prod".into())
            ])
        );
        assert_eq!(retags[0].adopted_from, None);
        assert_eq!(retags[1].adopted_from.as_deref(), Some("uid-old"));
        assert_eq!(retags[1].tags[OWNER_UID_KEY], "uid-new");
        assert_eq!(retags[1].tags[ADOPTED_FROM_KEY], "uid-old");
        assert_eq!(retags[1].tags[CLUSTER_KEY], "prod");

        let never = super::retags(&listing, &o, KIND, Adoption::Never);
        let ids: Vec<&str> = never.iter().map(|r| r.backup_id.as_str()).collect();
        assert_eq!(ids, ["b2"], "Never still tags its own backups, adopts none");

        let mut after = listing;
        apply(&mut after, &retags[1]);
        assert_eq!(standing(&after[2], &o, KIND), Standing::Owned);
        assert_eq!(standing(&after[5], &o, KIND), Standing::Owned);
    }
}
