//! `plan` of an `FsxBackupSchedule`: per target, retention's verdicts on the
//! backups it owns (and would adopt), and when it runs next.

use jiff::{SignedDuration, Timestamp};
use kube::{Client, ResourceExt};

use super::{
    Preview, TargetPreview, generation_after_apply, owner_of, place, read, simulate_adoption,
};
use crate::controller::Brake;
use crate::controller::brake::{self, BrakeCheck};
use crate::controller::schedule::plan::{KIND, select_file_systems};
use crate::crd::FsxBackupSchedule;
use crate::fsx::{BackupTarget, FsxApi};
use crate::validate::Targets;
use crate::validate::schedule::validate;

/// Plans `object` (as given: from a file, or as read from the cluster) against
/// live FSx, as seen by the operator of cluster identity `cluster`. Backups
/// are owned by the live object of the same namespace and name, if there is
/// one; the orphans it (or a new object) would adopt count as its own.
pub async fn schedule<F: FsxApi>(
    client: Client,
    fsx: &F,
    object: &FsxBackupSchedule,
    default_region: Option<&str>,
    brake_defaults: Brake,
    cluster: &str,
    now: Timestamp,
) -> Result<Preview, String> {
    let namespace = object.namespace().unwrap_or_else(|| "default".into());
    let name = object.name_any();
    let live: Option<FsxBackupSchedule> = read(&client, &namespace, &name).await?;
    let valid = validate(object, default_region, now).map_err(|err| format!("invalid: {err}"))?;
    let owner = owner_of(object, live.as_ref().and_then(ResourceExt::uid), cluster);
    let at = place(
        &client,
        object,
        object.spec.account.as_deref(),
        &valid.region,
    )
    .await?;
    let ids: Vec<String> = match &valid.targets {
        Targets::Ids(ids) => ids.iter().map(|t| t.id().to_owned()).collect(),
        Targets::Selector { .. } => {
            let file_systems = fsx
                .describe_file_systems(&at)
                .await
                .map_err(|err| err.to_string())?;
            select_file_systems(&valid.targets, file_systems)
                .into_iter()
                .filter(|s| s.problem.is_none())
                .map(|s| s.id)
                .collect()
        }
    };
    // Applying a changed spec makes a new generation: the brake judges it as one,
    // with the approval the object (the manifest, or the live one) carries.
    let applied = live
        .as_ref()
        .and_then(|l| l.status.as_ref())
        .and_then(|s| s.retention_generation);
    let generation = generation_after_apply(
        live.as_ref()
            .map(|l| (l.metadata.generation, l.spec != object.spec)),
    );
    let check = BrakeCheck::of(brake_defaults, valid.deletion_brake.as_ref(), object);
    let mut targets = Vec::new();
    for id in ids {
        let mut backups = fsx
            .describe_backups_of(&at, &BackupTarget::from_id(&id))
            .await
            .map_err(|err| format!("{id}: {err}"))?;
        let adopt = simulate_adoption(&mut backups, &owner, KIND, valid.adoption);
        let plan = valid.retention_plan(now, &backups, &owner.uid);
        // As the controller does: adopted backups are braked like a new policy.
        let applied = applied.filter(|_| adopt.is_empty());
        let held_by_brake = brake::held(&plan, &id, generation, applied, &check);
        targets.push(TargetPreview::of(id, adopt, plan, held_by_brake));
    }
    let offset = SignedDuration::try_from(valid.offset).unwrap_or_default();
    let next_run = now
        .checked_sub(offset)
        .ok()
        .and_then(|t| valid.schedule.next_after(t))
        .and_then(|t| t.checked_add(offset).ok())
        .filter(|_| !valid.suspended);
    Ok(Preview {
        kind: KIND.to_owned(),
        namespace,
        name,
        live: live.is_some(),
        next_run,
        copy_next: Vec::new(),
        targets,
    })
}
