//! Sends the re-tagging `crate::adoption` decides for one listing, shared by
//! both kinds: orphans of an earlier object with this name become this
//! object's, and its own backups get the cluster tag.

use crate::adoption::{self, Retag};
use crate::crd::common::Adoption;
use crate::fsx::{Backup, FsxApi, FsxError, Place};
use crate::ownership::Owner;

use super::effects::{Counter, Effect};

/// What re-tagging one listing achieved.
#[derive(Debug, Default)]
pub struct Retagged {
    /// Backups adopted, with the UID of the object that made them.
    pub adopted: Vec<(String, String)>,
    /// The first failure; the backups not re-tagged are tried at the next listing.
    pub failed: Option<FsxError>,
}

impl Retagged {
    /// Whether this listing now holds backups that were not this object's
    /// before: their first pruning is held by the deletion brake like a new policy.
    pub fn any_adopted(&self) -> bool {
        !self.adopted.is_empty()
    }

    /// One more on `counter` per adoption and a Normal event naming them (for
    /// `what`, a target or a destination); a Warning event for a failure.
    pub fn effects(&self, counter: Counter, kind: &str, what: &str) -> Vec<Effect> {
        let mut effects = Vec::new();
        if !self.adopted.is_empty() {
            let mut from: Vec<&str> = self.adopted.iter().map(|(_, uid)| uid.as_str()).collect();
            from.sort_unstable();
            from.dedup();
            let ids: Vec<&str> = self.adopted.iter().map(|(id, _)| id.as_str()).collect();
            effects.push(Effect::Count(counter, self.adopted.len() as u64));
            effects.push(Effect::event(
                false,
                "BackupsAdopted",
                "TagResource",
                format!(
                    "adopted {} backup(s) of {what} made by an earlier {kind} with this name (UID {}): {}",
                    ids.len(),
                    from.join(", "),
                    ids.join(", ")
                ),
            ));
        }
        if let Some(err) = &self.failed {
            effects.push(Effect::event(
                true,
                "RetagFailed",
                "TagResource",
                format!("could not re-tag backups of {what}; retried at the next listing: {err}"),
            ));
        }
        effects
    }
}

/// Re-tags what `backups` (one listing, in `region`) calls for and updates the
/// listing to match, so that retention in the same reconcile counts adopted backups.
pub async fn retag<F: FsxApi>(
    fsx: &F,
    at: &Place,
    backups: &mut [Backup],
    owner: &Owner,
    kind: &str,
    policy: Adoption,
) -> Retagged {
    let mut done = Retagged::default();
    for Retag {
        backup_id,
        arn,
        tags,
        adopted_from,
    } in adoption::retags(backups, owner, kind, policy)
    {
        match fsx.tag_backup(at, &arn, &tags).await {
            Ok(()) => {
                tracing::info!(backup = %backup_id, owner = %owner.label(kind), adopted_from = ?adopted_from, "backup re-tagged");
                let retag = Retag {
                    backup_id,
                    arn,
                    tags,
                    adopted_from,
                };
                adoption::apply(backups, &retag);
                if let Some(from) = retag.adopted_from {
                    done.adopted.push((retag.backup_id, from));
                }
            }
            Err(err) => {
                tracing::warn!(backup = %backup_id, error = %err, "re-tag failed");
                // One backup FSx refuses (e.g. no room for more tags) must not
                // stop the others; a transient failure ends this pass.
                let transient = !matches!(err, FsxError::UserAction { .. });
                done.failed.get_or_insert(err);
                if transient {
                    break;
                }
            }
        }
    }
    done
}
