//! Deleting an object's backups under `deletionPolicy: Delete`, shared by every
//! kind: only backups tagged with the object's UID, never one in progress.

use kube::{Resource, ResourceExt};

use crate::fsx::{Backup, FsxApi, Lifecycle, Place};
use crate::ownership::is_owned_by;

use super::driver::ManagedObject;
use super::effects::Effect;
use super::{Context, Error};

/// The event for `deletionPolicy: Retain`: the kind's backups or copies stay.
pub fn retained<K: ManagedObject>() -> Effect {
    let (reason, what) = K::RETAINED;
    Effect::event(
        false,
        reason,
        "Delete",
        format!("deletionPolicy Retain: {what} are left in place"),
    )
}

/// Deletes every backup in `backups` that `object` owns and that is settled, and
/// returns the event that says so; `what` names them in messages ("backups",
/// "copies"). Waits (an error the driver polls) while any is in progress or FSx
/// is busy.
pub async fn delete_owned<F: FsxApi>(
    ctx: &Context<F>,
    object: &impl Resource,
    at: &Place,
    backups: &[Backup],
    reason: &str,
    what: &str,
) -> Result<Effect, Error> {
    let uid = object.uid().unwrap_or_default();
    let uid = uid.as_str();
    let mut busy: Vec<&str> = Vec::new();
    let mut deleted = 0;
    let mut owned: Vec<&Backup> = backups
        .iter()
        .filter(|b| is_owned_by(b, uid) && b.lifecycle != Lifecycle::Deleted)
        .collect();
    owned.sort_by(|a, b| a.id.cmp(&b.id));
    owned.dedup_by(|a, b| a.id == b.id);
    for backup in owned {
        if backup.lifecycle.in_progress() {
            busy.push(&backup.id);
            continue;
        }
        match ctx.fsx.delete_backup(at, &backup.id).await {
            Ok(_) => deleted += 1,
            Err(err) if err.is_retryable() => busy.push(&backup.id),
            Err(err) => return Err(err.into()),
        }
    }
    if busy.is_empty() {
        Ok(Effect::event(
            false,
            reason,
            "Delete",
            format!("deletionPolicy Delete: {deleted} {what} deleted in {at}"),
        ))
    } else {
        Err(Error::CleanupPending(format!(
            "deletionPolicy Delete: waiting for {} {what} still in progress or busy: {}",
            busy.len(),
            busy.join(", ")
        )))
    }
}
