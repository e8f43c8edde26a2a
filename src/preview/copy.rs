//! `plan` of an `FsxBackupCopy`: the source backups it would copy next, and
//! retention's verdicts on its copies in the destination (and those it would
//! adopt). The steps are the copy controller's own: `Work::follow` over what
//! the followed schedule keeps, `found_in_destination`, `retention::plan` and
//! the deletion brake.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kube::{Client, ResourceExt};

use super::{
    Preview, TargetPreview, generation_after_apply, owner_of, place, read, simulate_adoption,
};
use crate::controller::Brake;
use crate::controller::brake::{self, BrakeCheck};
use crate::controller::copy::in_destination;
use crate::controller::copy::plan::{KIND, Work};
use crate::crd::{FsxBackupCopy, FsxBackupSchedule};
use crate::fsx::{BackupTarget, FsxApi, FsxError};
use crate::retention;
use crate::validate::copy::{Source, validate};
use crate::validate::schedule::{self as schedule_spec, target_ids};

/// Plans `object` (from a file, or as read from the cluster) against live FSx
/// and the schedule it follows, as the operator of cluster identity `cluster` would.
pub async fn copy<F: FsxApi>(
    client: Client,
    fsx: &F,
    object: &FsxBackupCopy,
    default_region: Option<&str>,
    brake_defaults: Brake,
    cluster: &str,
    now: Timestamp,
) -> Result<Preview, String> {
    let namespace = object.namespace().unwrap_or_else(|| "default".into());
    let name = object.name_any();
    let live: Option<FsxBackupCopy> = read(&client, &namespace, &name).await?;
    let valid = validate(object, default_region).map_err(|err| format!("invalid: {err}"))?;
    let owner = owner_of(object, live.as_ref().and_then(ResourceExt::uid), cluster);
    let generation = generation_after_apply(
        live.as_ref()
            .map(|l| (l.metadata.generation, l.spec != object.spec)),
    );
    let previous = live.as_ref().and_then(|l| l.status.as_ref());
    let mut work = Work::start(previous, generation);
    let dest = place(
        &client,
        object,
        object.spec.account.as_deref(),
        &valid.destination_region,
    )
    .await?;
    let mut targets: Vec<String> = previous
        .map(|s| s.source_targets.clone())
        .unwrap_or_default();
    match &valid.source {
        Source::Backup { id, region } => {
            if work.one_shot_pending(id) {
                let found = fsx
                    .describe_backups_by_ids(&dest.in_region(region), std::slice::from_ref(id))
                    .await;
                work.one_shot_source(id, region, found);
            }
        }
        Source::Schedule { name: followed } => {
            let schedule = read::<FsxBackupSchedule>(&client, &namespace, followed)
                .await?
                .ok_or_else(|| format!("FsxBackupSchedule {namespace}/{followed} not found: the copy would wait for it"))?;
            let spec = schedule_spec::validate(&schedule, default_region, now)
                .map_err(|err| format!("FsxBackupSchedule {followed} is invalid: {err}"))?;
            let schedule_uid = schedule.uid().unwrap_or_default();
            let mut sources = Vec::new();
            for target in target_ids(&schedule) {
                let backups = match fsx
                    .describe_backups_of(
                        &dest.in_region(&spec.region),
                        &BackupTarget::from_id(target.as_str()),
                    )
                    .await
                {
                    Ok(backups) => backups,
                    // As the controller: the schedule reports its own missing targets.
                    Err(FsxError::UserAction { .. }) => continue,
                    Err(err) => return Err(format!("{target}: {err}")),
                };
                sources.extend(spec.backups_it_keeps(now, backups, &schedule_uid));
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
            work.follow(now, &valid, sources);
        }
    }
    for target in &work.status.source_targets {
        if !targets.contains(target) {
            targets.push(target.clone());
        }
    }
    let destination = &valid.destination_region;
    let mut copies = in_destination(fsx, &dest, &targets)
        .await
        .map_err(|err| format!("{destination}: {err}"))?;
    let adopt = simulate_adoption(&mut copies, &owner, KIND, valid.adoption);
    if work.never_copied() {
        work.found_in_destination(&copies, &owner.uid);
    }
    let mut previews = Vec::new();
    if let Some(policy) = &valid.retention {
        let plan = retention::plan(now, policy, &TimeZone::UTC, &copies, &owner.uid);
        let what = format!("copies in {destination}");
        let applied = previous
            .and_then(|s| s.retention_generation)
            .filter(|_| adopt.is_empty());
        let check = BrakeCheck::of(brake_defaults, valid.deletion_brake.as_ref(), object);
        let held = brake::held(&plan, &what, generation, applied, &check);
        previews.push(TargetPreview::of(what, adopt, plan, held));
    }
    Ok(Preview {
        kind: KIND.to_owned(),
        namespace,
        name,
        live: live.is_some(),
        next_run: None,
        copy_next: work.queued(),
        targets: previews,
    })
}
