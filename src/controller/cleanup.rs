//! Deleting an object's backups under `deletionPolicy: Delete`, shared by every
//! kind: only backups tagged with the object's UID, never one in progress.

use crate::fsx::{Backup, FsxApi, Lifecycle};
use crate::ownership::is_owned_by;

use super::{Context, Error};

/// Deletes every backup in `backups` that `uid` owns and that is settled; `what`
/// names them in messages ("backup(s)", "copies"). Waits (an error the driver
/// polls) while any is in progress or FSx is busy; returns how many were deleted.
pub async fn delete_owned<F: FsxApi>(
    ctx: &Context<F>,
    region: &str,
    backups: &[Backup],
    uid: &str,
    what: &str,
) -> Result<usize, Error> {
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
        match ctx.fsx.delete_backup(region, &backup.id).await {
            Ok(_) => deleted += 1,
            Err(err) if err.is_retryable() => busy.push(&backup.id),
            Err(err) => return Err(err.into()),
        }
    }
    if busy.is_empty() {
        Ok(deleted)
    } else {
        Err(Error::CleanupPending(format!(
            "deletionPolicy Delete: waiting for {} {what} still in progress or busy: {}",
            busy.len(),
            busy.join(", ")
        )))
    }
}
