//! The `FsxBackupCopy` reconciler: fetch → plan → execute → record. Decisions
//! are in [`plan`], copy-slot fairness in `crate::copy_slots`, what a followed
//! schedule keeps in `crate::validate::schedule`; this file asks FSx and the
//! apiserver, hands out slots and feeds the answers back to the plan.

mod phase;
pub mod plan;

use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tokio::sync::mpsc;

use super::adopt;
use super::brake::BrakeCheck;
use super::driver::{Applied, Pace, Reconciler};
use super::effects::{Counter, Effect};
use super::lenient::Lenient;
use super::watches::{self, Wiring};
use super::{Context, Error, ObjectKey, cleanup};
use crate::accounts::{self, Refused};
use crate::copy_slots::{self, CopySlots};
use crate::crd::common::DeletionPolicy;
use crate::crd::copy::{FsxBackupCopy, FsxBackupCopyStatus};
use crate::crd::schedule::FsxBackupSchedule;
use crate::fsx::{Backup, FsxApi, FsxError, Place, UserActionReason, account_of};
use crate::metrics::Metrics;
use crate::retention;
use crate::validate::copy::validate;
use crate::validate::schedule::{self as schedule_spec, target_ids};
use crate::validate::{Source, ValidCopy, partition};
use plan::{Owner, Work};

/// Sends an object to its controller for a reconcile.
type Waker = mpsc::UnboundedSender<ObjectRef<Lenient<FsxBackupCopy>>>;

/// What every copy controller of the process shares: the copy slots, and how to
/// wake an object (whichever namespace's controller owns it) when a slot frees.
#[derive(Debug)]
pub struct CopyShared {
    slots: CopySlots<ObjectKey>,
    /// Per controller: the namespace it watches (`None`: all) and its wake-up channel.
    wakers: Mutex<Vec<(Option<String>, Waker)>>,
}

impl CopyShared {
    pub fn new(slots_per_region: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: CopySlots::new(slots_per_region),
            wakers: Mutex::default(),
        })
    }

    fn wake_all(&self, keys: Vec<ObjectKey>) {
        let wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            if let Some((_, sender)) = wakers
                .iter()
                .find(|(watched, _)| watched.as_deref().is_none_or(|w| w == key.namespace))
            {
                let _ = sender.send(ObjectRef::new(&key.name).within(&key.namespace));
            }
        }
    }
}

/// Reconciles `FsxBackupCopy` objects.
#[derive(Debug)]
pub struct CopyReconciler<F> {
    pub ctx: Arc<Context<F>>,
    shared: Arc<CopyShared>,
}

/// Runs the copy controller for `namespace` (`None`: all) until `shutdown` fires.
pub async fn run<F: FsxApi>(
    copies: Api<Lenient<FsxBackupCopy>>,
    schedule_changed: mpsc::UnboundedReceiver<ObjectKey>,
    namespace: Option<String>,
    ctx: Arc<Context<F>>,
    shared: Arc<CopyShared>,
    wiring: Wiring,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (wake, woken) = mpsc::unbounded_channel();
    shared
        .wakers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((namespace, wake));
    let reconciler = Arc::new(CopyReconciler { ctx, shared });
    let related = |store: &Store<Lenient<FsxBackupCopy>>| {
        let store = store.clone();
        // A schedule's status changes when it makes a backup: reconcile the
        // copies following it (told by the schedule controller's watch).
        let followers = watches::received(schedule_changed)
            .flat_map(move |schedule: ObjectKey| {
                futures::stream::iter(watches::matching(&store, |copy| {
                    copy.meta().namespace.as_deref() == Some(schedule.namespace.as_str())
                        && copy
                            .spec
                            .source
                            .schedule_ref
                            .as_ref()
                            .is_some_and(|r| r.name == schedule.name)
                }))
            })
            .boxed();
        // A copy slot freed in a Region: the copies waiting for one.
        let slot_freed = watches::received(woken).boxed();
        vec![followers, slot_freed]
    };
    watches::run(reconciler, copies, related, wiring, shutdown).await;
}

impl<F: FsxApi> Reconciler for CopyReconciler<F> {
    type Object = FsxBackupCopy;
    type Valid = ValidCopy;
    type Fsx = F;

    fn validate(&self, object: &FsxBackupCopy, _now: Timestamp) -> Result<ValidCopy, String> {
        validate(object, self.ctx.settings.default_region.as_deref())
    }

    async fn apply(
        &self,
        object: &FsxBackupCopy,
        valid: ValidCopy,
        now: Timestamp,
    ) -> Result<Applied<FsxBackupCopyStatus>, Error> {
        let ctx = &*self.ctx;
        let key = ObjectKey::of(object);
        let owner = Owner::of(object, &ctx.settings.cluster_id);
        let mut work = Work::start(object.status.as_ref(), object.metadata.generation)
            .created(object.metadata.creation_timestamp.as_ref().map(|t| t.0));
        if work.spec_changed {
            ctx.memory(&key, |m| m.scanned_schedule = None);
        }
        // Sources and copies are all in the copy's account: FSx copies within one.
        let dest = ctx
            .place(
                object.spec.account.as_deref(),
                &key,
                &valid.destination_region,
            )
            .await?;
        let pace = Pace {
            poll: ctx.settings.poll_interval,
            retry: ctx.settings.retry_interval,
        };
        if let Err(err) = ctx.fsx.assume(&dest).await {
            work.error(&err);
            return Ok(work.finish(now, &valid, pace));
        }
        let mut following = true;
        let source = match &valid.source {
            Source::Backup { id, region } => {
                let source = dest.in_region(region);
                if work.one_shot_pending(id) {
                    let found = ctx
                        .fsx
                        .describe_backups_by_ids(&source, std::slice::from_ref(id))
                        .await;
                    work.one_shot_source(id, region, found);
                }
                source
            }
            Source::Schedule { name } => {
                let found = self
                    .follow(&mut work, &valid, object, &dest, name, now)
                    .await?;
                // The schedule cannot be used (missing, invalid, its account
                // refused): queued copies wait; none is asked of FSx without
                // knowing where its source is.
                following = found.is_some();
                found.unwrap_or_else(|| dest.clone())
            }
        };
        let mut may_copy = following;
        if work.never_copied() && !work.queued().is_empty() {
            may_copy = self
                .look_in_destination(&mut work, &valid, &dest, &owner)
                .await;
        }
        self.poll(&mut work, &dest, &key, now).await;
        if may_copy && !work.is_stalled() {
            self.start_copies(&mut work, &valid, &dest, &owner, &key, &source.region, now)
                .await;
        }
        if let Some(policy) = &valid.retention {
            let expiry_passed = ctx.memory(&key, |m| m.next_expiry.is_some_and(|at| at <= now));
            if work.retention_wanted(expiry_passed) {
                let check = BrakeCheck::of(
                    ctx.settings.deletion_brake,
                    valid.deletion_brake.as_ref(),
                    object,
                );
                let next = self
                    .prune(&mut work, &dest, &valid, policy, &owner, now, &check)
                    .await;
                ctx.memory(&key, |m| m.next_expiry = next);
            }
        }
        Ok(work.finish(now, &valid, pace))
    }

    /// Frees the object's copy slots (waking the copies queued behind it) and
    /// drops its metrics series.
    fn forget(&self, object: &FsxBackupCopy) {
        self.shared
            .wake_all(self.shared.slots.forget(&ObjectKey::of(object)));
        let targets = object
            .status
            .as_ref()
            .map(|s| s.source_targets.clone())
            .unwrap_or_default();
        self.ctx.metrics.forget_copy(
            &object.namespace().unwrap_or_default(),
            &object.name_any(),
            &targets,
        );
    }

    /// Under `Delete` removes its copies (waiting for those in progress), under
    /// `Retain` leaves them.
    async fn cleanup(&self, object: &FsxBackupCopy) -> Result<Effect, Error> {
        let ctx = &*self.ctx;
        if object.spec.deletion_policy.unwrap_or_default() == DeletionPolicy::Retain {
            return Ok(cleanup::retained::<FsxBackupCopy>());
        }
        let destination = &ctx
            .place(
                object.spec.account.as_deref(),
                &ObjectKey::of(object),
                &object.spec.destination_region,
            )
            .await?;
        let status = object.status.clone().unwrap_or_default();
        let mut copies = in_destination(&ctx.fsx, destination, &status.source_targets).await?;
        let listed: Vec<String> = status
            .copies
            .iter()
            .filter_map(|c| c.destination_backup_id.clone())
            .filter(|id| copies.iter().all(|b| &b.id != id))
            .collect();
        if !listed.is_empty() {
            copies.extend(
                ctx.fsx
                    .describe_backups_by_ids(destination, &listed)
                    .await?
                    .found,
            );
        }
        cleanup::delete_owned(ctx, object, destination, &copies, "CopiesDeleted", "copies").await
    }

    fn after_reconcile(&self) {
        let metrics = &self.ctx.metrics;
        for (pool, stats) in self.shared.slots.queue_stats() {
            let labels = Metrics::region(&copy_slots::split_pool(&pool));
            metrics
                .copies_in_progress
                .get_or_create(&labels)
                .set(i64::try_from(stats.in_flight).unwrap_or(i64::MAX));
            metrics
                .copy_queue_length
                .get_or_create(&labels)
                .set(i64::try_from(stats.queued).unwrap_or(i64::MAX));
            metrics
                .copies_queued_oldest
                .get_or_create(&labels)
                .set(stats.oldest_wait.as_secs_f64());
        }
    }

    fn context(&self) -> &Context<F> {
        &self.ctx
    }
}

impl<F: FsxApi> CopyReconciler<F> {
    /// Follow mode: reads the schedule and, when it changed since the last scan,
    /// the backups its retention keeps. Returns where the sources are, or `None`
    /// while the schedule cannot be used; refuses a schedule in another account.
    async fn follow(
        &self,
        work: &mut Work,
        valid: &ValidCopy,
        copy: &FsxBackupCopy,
        dest: &Place,
        name: &str,
        now: Timestamp,
    ) -> Result<Option<Place>, Error> {
        let ctx = &*self.ctx;
        let key = &ObjectKey::of(copy);
        let schedules: Api<Lenient<FsxBackupSchedule>> =
            Api::namespaced(ctx.client.clone(), &key.namespace);
        let Some(schedule) = schedules.get_opt(name).await? else {
            work.waiting_for_schedule(format!(
                "FsxBackupSchedule {name} does not exist in namespace {}",
                key.namespace
            ));
            return Ok(None);
        };
        let schedule = match schedule {
            Lenient::Read { object, .. } => object,
            Lenient::Unreadable { error, .. } => {
                work.waiting_for_schedule(format!(
                    "FsxBackupSchedule {name} cannot be read: {error}"
                ));
                return Ok(None);
            }
        };
        let followed =
            match schedule_spec::validate(&schedule, ctx.settings.default_region.as_deref(), now) {
                Ok(followed) => followed,
                Err(message) => {
                    work.waiting_for_schedule(format!(
                        "FsxBackupSchedule {name} is invalid: {message}"
                    ));
                    return Ok(None);
                }
            };
        // The targets the schedule tracks for its own RPO (before its first
        // reconcile: those it names).
        let tracked: Vec<String> = match schedule.status.as_ref() {
            Some(s) if !s.recovery_points.is_empty() => {
                s.recovery_points.iter().map(|p| p.target.clone()).collect()
            }
            _ => target_ids(&schedule).into_iter().collect(),
        };
        work.followed_objective(followed.rpo, followed.suspended, tracked);
        if schedule.spec.account != copy.spec.account {
            let schedule_key = ObjectKey::of(&schedule);
            match ctx
                .accounts
                .role_for(schedule.spec.account.as_deref(), &schedule_key)
                .await?
            {
                Ok(role) if account_of(role.as_deref()) != dest.account() => {
                    return Err(Refused::CrossAccountCopy {
                        schedule: name.to_owned(),
                        schedule_account: accounts::describe(role.as_deref()),
                        copy_account: accounts::describe(dest.role.as_deref()),
                    }
                    .into());
                }
                Ok(_) => {}
                Err(refused) => {
                    work.waiting_for_schedule(format!(
                        "FsxBackupSchedule {name} cannot use its account: {refused}"
                    ));
                    return Ok(None);
                }
            }
        }
        let source = dest.in_region(&followed.region);
        let region = followed.region.clone();
        if partition(&region) != partition(&valid.destination_region) {
            work.cross_partition(&valid.destination_region, &region);
            return Ok(Some(source));
        }
        let version = schedule.resource_version();
        if version.is_some() && ctx.memory(key, |m| m.scanned_schedule.clone()) == version {
            return Ok(Some(source));
        }
        let schedule_uid = schedule.uid().unwrap_or_default();
        let mut sources: Vec<Backup> = Vec::new();
        let targets: Vec<String> = target_ids(&schedule).into_iter().collect();
        for (target, listed) in ctx.fsx.describe_backups_of_ids(&source, &targets).await {
            match listed {
                Ok(backups) => {
                    sources.extend(followed.backups_it_keeps(now, backups, &schedule_uid));
                    work.add_source_target(&target);
                }
                // The schedule reports its own missing targets; skip this one.
                Err(FsxError::UserAction { .. }) => {}
                Err(err) => {
                    work.error(&err);
                    return Ok(Some(source));
                }
            }
        }
        work.follow(now, valid, sources);
        ctx.memory(key, |m| m.scanned_schedule = version);
        Ok(Some(source))
    }

    /// Before the first copies of an object with no record of any: adopts the
    /// orphaned copies of its name and records the copies it already has, so
    /// that nothing is copied twice. `false` when the destination could not be
    /// listed (no copy is started until it can be).
    async fn look_in_destination(
        &self,
        work: &mut Work,
        valid: &ValidCopy,
        dest: &Place,
        owner: &Owner,
    ) -> bool {
        let mut copies =
            match in_destination(&self.ctx.fsx, dest, &work.status.source_targets).await {
                Ok(copies) => copies,
                Err(err) => {
                    work.error(&err);
                    return false;
                }
            };
        self.adopt_in(work, valid, dest, owner, &mut copies).await;
        work.found_in_destination(&copies, &owner.uid);
        true
    }

    /// Re-tags what a listing of the destination calls for (this name's orphans
    /// adopted, the cluster tag); `copies` then shows the new tags.
    async fn adopt_in(
        &self,
        work: &mut Work,
        valid: &ValidCopy,
        dest: &Place,
        owner: &Owner,
        copies: &mut [Backup],
    ) {
        let destination = &dest.region;
        let retagged = adopt::retag(
            &self.ctx.fsx,
            dest,
            copies,
            owner,
            plan::KIND,
            valid.adoption,
        )
        .await;
        let what = format!("copies in {destination}");
        work.effects
            .extend(retagged.effects(Counter::CopiesAdopted, plan::KIND, &what));
        if retagged.any_adopted() {
            work.adopted();
        }
    }

    /// Copies in flight: one batched lookup, at most once per poll interval; slots
    /// of finished copies are freed and their waiters woken.
    async fn poll(&self, work: &mut Work, dest: &Place, key: &ObjectKey, now: Timestamp) {
        let destination = &dest.region;
        let pool = copy_slots::pool(dest);
        let copying = work.copying();
        for (source, _) in &copying {
            self.shared.slots.occupy(&pool, key, source);
        }
        if copying.is_empty() || !self.ctx.poll_due(key, now) {
            return;
        }
        let ids: Vec<String> = copying.into_iter().map(|(_, id)| id).collect();
        let found = self.ctx.fsx.describe_backups_by_ids(dest, &ids).await;
        for source in work.observe_copies(now, destination, found) {
            self.shared
                .wake_all(self.shared.slots.release(&pool, key, &source));
        }
    }

    /// Starts queued copies, oldest source first, as the account's slots in the
    /// destination Region allow.
    #[allow(clippy::too_many_arguments)]
    async fn start_copies(
        &self,
        work: &mut Work,
        valid: &ValidCopy,
        dest: &Place,
        owner: &Owner,
        key: &ObjectKey,
        source_region: &str,
        now: Timestamp,
    ) {
        let destination = &dest.region;
        let pool = copy_slots::pool(dest);
        let slots = &self.shared.slots;
        let mut out_of_slots = false;
        for source in work.queued() {
            if out_of_slots || !slots.try_acquire(&pool, key, &source) {
                out_of_slots = true;
                work.no_slot(&source, destination, None);
                continue;
            }
            let request = plan::copy_request(valid, owner, &source, source_region);
            let answer = self.ctx.fsx.copy_backup(dest, &request).await;
            match &answer {
                Ok(copy) => {
                    tracing::info!(copy = %owner.name, source = %source, destination_backup = %copy.id, "copy started");
                }
                Err(err) => {
                    tracing::info!(copy = %owner.name, source = %source, error = %err, "copy not started");
                }
            }
            let slots_full = matches!(answer, Err(FsxError::CopySlotsFull { .. }));
            let refused = matches!(answer, Err(FsxError::UserAction { .. }));
            if !work.started(now, valid, &source, answer) {
                self.shared.wake_all(slots.release(&pool, key, &source));
            }
            out_of_slots |= slots_full;
            if refused {
                break;
            }
        }
        slots.report_queue(&pool, key, work.queued().len());
        if out_of_slots {
            work.out_of_slots(destination, slots.limit());
        } else {
            slots.done_waiting(&pool, key);
        }
    }

    /// Deletes this object's copies that its retention no longer keeps; returns the next expiry.
    #[allow(clippy::too_many_arguments)]
    async fn prune(
        &self,
        work: &mut Work,
        dest: &Place,
        valid: &ValidCopy,
        policy: &retention::RetentionPolicy,
        owner: &Owner,
        now: Timestamp,
        check: &BrakeCheck,
    ) -> Option<Timestamp> {
        let destination = &dest.region;
        let uid = owner.uid.as_str();
        let mut copies =
            match in_destination(&self.ctx.fsx, dest, &work.status.source_targets).await {
                Ok(copies) => copies,
                Err(err) => {
                    work.error(&err);
                    // Not pruned: retention is due again at the next reconcile.
                    return Some(now);
                }
            };
        self.adopt_in(work, valid, dest, owner, &mut copies).await;
        let plan = retention::plan(now, policy, &jiff::tz::TimeZone::UTC, &copies, uid);
        let mut deleted = Vec::new();
        if work.hold_deletions(destination, &plan, check) {
            tracing::warn!(destination, "copy deletions held by the deletion brake");
            return work.pruned(now, destination, &plan, &copies, &deleted);
        }
        for id in retention::deletions(&plan, &copies, uid) {
            deleted.push((
                id.to_owned(),
                self.ctx.fsx.delete_backup(dest, id).await.map(|_| ()),
            ));
        }
        work.pruned(now, destination, &plan, &copies, &deleted)
    }
}

/// Every backup in `region` of the file systems and volumes `targets`, by id. FSx
/// answers `FileSystemNotFound`/`VolumeNotFound` for a target unknown in that Region
/// (no copy of it made there yet): that is an empty list here, not an error.
pub async fn in_destination<F: FsxApi>(
    fsx: &F,
    region: &Place,
    targets: &[String],
) -> Result<Vec<Backup>, FsxError> {
    let mut backups: Vec<Backup> = Vec::new();
    for (_, listed) in fsx.describe_backups_of_ids(region, targets).await {
        match listed {
            Ok(found) => backups.extend(found),
            Err(FsxError::UserAction {
                reason: UserActionReason::TargetNotFound,
                ..
            }) => {}
            Err(err) => return Err(err),
        }
    }
    backups.sort_by(|a, b| a.id.cmp(&b.id));
    backups.dedup_by(|a, b| a.id == b.id);
    Ok(backups)
}
