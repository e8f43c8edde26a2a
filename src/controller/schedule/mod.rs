//! The `FsxBackupSchedule` reconciler: fetch → plan → execute → record. Every
//! decision is in [`plan`]; this file only asks FSx, sends what the plan says
//! and feeds the answers back to it. The driver writes the status.

pub mod plan;

use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use tokio::sync::mpsc;

use super::adopt;
use super::brake::BrakeCheck;
use super::driver::{Applied, Pace, Reconciler};
use super::effects::{Counter, Effect};
use super::gates::Urgency;
use super::lenient::Lenient;
use super::watches::{self, Wiring};
use super::{Context, Error, ObjectKey, RUN_NOW_ANNOTATION, cleanup};
use crate::crd::common::DeletionPolicy;
use crate::crd::schedule::{FsxBackupSchedule, FsxBackupScheduleStatus};
use crate::fsx::{Backup, FsxApi, FsxError, Place};
use crate::retention;
use crate::validate::schedule::{target_ids, validate};
use crate::validate::{Targets, ValidSchedule};
use plan::{Owner, Selected, Work};

/// Where the schedule controller tells which schedules changed: the copy
/// controller, whose copies follow them. The schedules are then watched (and
/// every event parsed) once for both controllers.
pub type Changes = mpsc::UnboundedSender<ObjectKey>;

/// Runs the schedule controller until `shutdown` fires.
pub async fn run<F: FsxApi>(
    api: Api<Lenient<FsxBackupSchedule>>,
    ctx: Arc<Context<F>>,
    followers: Option<Changes>,
    wiring: Wiring,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let reconciler = Arc::new(ScheduleReconciler { ctx, followers });
    watches::run(reconciler, api, |_| Vec::new(), wiring, shutdown).await;
}

/// Reconciles `FsxBackupSchedule` objects.
#[derive(Debug)]
pub struct ScheduleReconciler<F> {
    pub ctx: Arc<Context<F>>,
    pub followers: Option<Changes>,
}

impl<F: FsxApi> Reconciler for ScheduleReconciler<F> {
    type Object = FsxBackupSchedule;
    type Valid = ValidSchedule;
    type Fsx = F;

    fn changed(&self, object: &Lenient<FsxBackupSchedule>) {
        if let Some(followers) = &self.followers {
            // Closed only once the copy controller has stopped.
            let _ = followers.send(ObjectKey::of(object));
        }
    }

    fn validate(
        &self,
        object: &FsxBackupSchedule,
        now: Timestamp,
    ) -> Result<ValidSchedule, String> {
        validate(object, self.ctx.settings.default_region.as_deref(), now)
    }

    fn urgency(&self, object: &FsxBackupSchedule, now: Timestamp) -> Urgency {
        let run_now = object.annotations().get(RUN_NOW_ANNOTATION);
        let suspended = object.spec.suspend.unwrap_or(false);
        if plan::starts_a_run(
            object.status.as_ref(),
            suspended,
            run_now.map(String::as_str),
            now,
        ) {
            Urgency::DueRun
        } else {
            Urgency::Routine
        }
    }

    async fn apply(
        &self,
        object: &FsxBackupSchedule,
        valid: ValidSchedule,
        now: Timestamp,
    ) -> Result<Applied<FsxBackupScheduleStatus>, Error> {
        let ctx = &*self.ctx;
        let pace = Pace {
            poll: ctx.settings.poll_interval,
            retry: ctx.settings.retry_interval,
        };
        let owner = Owner::of(object, &ctx.settings.cluster_id);
        let run_now = object
            .annotations()
            .get(RUN_NOW_ANNOTATION)
            .map(String::as_str);

        let key = ObjectKey::of(object);
        let at = ctx
            .place(object.spec.account.as_deref(), &key, &valid.region)
            .await?;
        let mut work = Work::start(object.status.as_ref(), object.metadata.generation);
        if let Err(err) = ctx.fsx.assume(&at).await {
            return Ok(work.lookup_failed(pace, &err));
        }
        let new_run = work.runs(now, &valid);
        if work.needs_targets(new_run) {
            match self.select(&valid, &at).await {
                Ok(selected) => work.select(&selected),
                Err(err) => return Ok(work.lookup_failed(pace, &err)),
            }
        }
        for create in work.creates(now, &valid, &owner, run_now) {
            let answer = ctx.fsx.create_backup(&at, &create.request).await;
            match &answer {
                Ok(backup) => {
                    tracing::info!(schedule = %owner.name, target = %create.target_id, backup = %backup.id, "backup created");
                }
                Err(err) => {
                    tracing::info!(schedule = %owner.name, target = %create.target_id, error = %err, "backup not created");
                }
            }
            work.created(now, &valid, &create, answer);
        }
        work.finish_run_now(run_now);
        let to_verify = work.misses_to_verify();
        for (target, listed) in ctx.fsx.describe_backups_of_ids(&at, &to_verify).await {
            work.count_misses(&target, &owner.uid, &listed);
        }
        if work.checkpointing() {
            // The driver writes it and applies again at once for the rest.
            return Ok(work.finish(now, &valid, pace));
        }
        let found = self.poll(&mut work, &at, &key, now).await;
        work.settle(now, &valid, &owner.uid, found.as_ref());
        let check = BrakeCheck::of(
            ctx.settings.deletion_brake,
            valid.deletion_brake.as_ref(),
            object,
        );
        // Every target listed in one question (one call for up to 20), then pruned in turn.
        let to_prune = work.retention_targets(now);
        let scope = Scope {
            valid: &valid,
            at: &at,
            owner: &owner,
            now,
            check: &check,
        };
        for (target, listed) in ctx.fsx.describe_backups_of_ids(&at, &to_prune).await {
            self.prune(&mut work, &scope, &target, listed).await;
        }
        Ok(work.finish(now, &valid, pace))
    }

    fn forget(&self, object: &FsxBackupSchedule) {
        let targets: Vec<String> = target_ids(object).into_iter().collect();
        self.ctx.metrics.forget_schedule(
            &object.namespace().unwrap_or_default(),
            &object.name_any(),
            &targets,
        );
    }

    async fn cleanup(&self, object: &FsxBackupSchedule) -> Result<Effect, Error> {
        let ctx = &*self.ctx;
        let targets: Vec<String> = target_ids(object).into_iter().collect();
        if object.spec.deletion_policy.unwrap_or_default() == DeletionPolicy::Retain {
            return Ok(cleanup::retained::<FsxBackupSchedule>());
        }
        let region = object
            .spec
            .region
            .clone()
            .or_else(|| ctx.settings.default_region.clone())
            .ok_or_else(|| Error::CleanupPending("no Region to clean up in".into()))?;
        let at = ctx
            .place(
                object.spec.account.as_deref(),
                &ObjectKey::of(object),
                &region,
            )
            .await?;
        let mut backups = Vec::new();
        for (_, listed) in ctx.fsx.describe_backups_of_ids(&at, &targets).await {
            backups.extend(listed?);
        }
        cleanup::delete_owned(ctx, object, &at, &backups, "BackupsDeleted", "backups").await
    }

    fn context(&self) -> &Context<F> {
        &self.ctx
    }
}

/// What every target's prune in one reconcile shares.
struct Scope<'a> {
    valid: &'a ValidSchedule,
    at: &'a Place,
    owner: &'a Owner,
    now: Timestamp,
    check: &'a BrakeCheck,
}

impl<F: FsxApi> ScheduleReconciler<F> {
    /// The targets of this run: fixed ids, or the file systems the selector matches now.
    async fn select(&self, valid: &ValidSchedule, at: &Place) -> Result<Vec<Selected>, FsxError> {
        let file_systems = match &valid.targets {
            Targets::Ids(_) => Vec::new(),
            Targets::Selector { .. } => self.ctx.fsx.describe_file_systems(at).await?,
        };
        Ok(plan::select_file_systems(&valid.targets, file_systems))
    }

    /// Backups in flight: one batched lookup, at most once per poll interval.
    async fn poll(
        &self,
        work: &mut Work,
        at: &Place,
        key: &ObjectKey,
        now: Timestamp,
    ) -> Option<crate::fsx::BackupsById> {
        let in_flight = work.to_poll();
        // Checked (and counted as a look) first: a reconcile that just asked
        // for a backup has FSx's answer, so the next one waits a poll interval.
        let due = self.ctx.poll_due(key, now);
        if in_flight.is_empty() || !due {
            return None;
        }
        match self.ctx.fsx.describe_backups_by_ids(at, &in_flight).await {
            Ok(found) => Some(found),
            Err(err) => {
                work.transient(&err);
                None
            }
        }
    }

    /// From the target's listing: adopts this name's orphans, deletes what
    /// retention does not keep, and records what is kept.
    async fn prune(
        &self,
        work: &mut Work,
        scope: &Scope<'_>,
        target: &str,
        listed: Result<Vec<Backup>, FsxError>,
    ) {
        let Scope {
            valid,
            at,
            owner,
            now,
            check,
        } = *scope;
        let fsx = &self.ctx.fsx;
        let uid = owner.uid.as_str();
        let mut backups = match listed {
            Ok(backups) => backups,
            Err(err) => return work.listing_failed(target, &err),
        };
        let retagged = adopt::retag(fsx, at, &mut backups, owner, plan::KIND, valid.adoption).await;
        work.effects
            .extend(retagged.effects(Counter::BackupsAdopted, plan::KIND, target));
        if retagged.any_adopted() {
            work.adopted();
        }
        let plan = valid.retention_plan(now, &backups, uid);
        let mut deleted = Vec::new();
        if work.hold_deletions(target, &plan, check) {
            tracing::warn!(target, "deletions held by the deletion brake");
            return work.pruned(target, &plan, &deleted);
        }
        for id in work.deletable(target, retention::deletions(&plan, &backups, uid), &backups) {
            let answer = fsx.delete_backup(at, id).await.map(|_| ());
            match &answer {
                Ok(()) => tracing::info!(target, backup = id, "backup pruned"),
                Err(err) => tracing::info!(target, backup = id, error = %err, "prune deferred"),
            }
            deleted.push((id.to_owned(), answer));
        }
        work.pruned(target, &plan, &deleted);
    }
}
