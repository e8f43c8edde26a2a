//! The `FsxBackupCopy` reconciler: find the source backups, queue them for the
//! destination Region's copy slots, start and follow the copies, prune old copies,
//! report. Decisions about slots live in `crate::copy_slots`, about retention in
//! `crate::retention`; this file fetches and applies.

mod valid;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio::sync::{mpsc, watch};

use super::{Context, Error, FINALIZER};
use crate::conditions::Health;
use crate::copy_slots::CopySlots;
use crate::crd::common::DeletionPolicy;
use crate::crd::copy::{CopyStatus, FsxBackupCopy, FsxBackupCopyStatus};
use crate::crd::schedule::FsxBackupSchedule;
use crate::fsx::{
    Backup, BackupTarget, CopyBackupRequest, FsxApi, FsxError, Lifecycle, UserActionReason,
};
use crate::metrics::{CopyLabels, Metrics};
use crate::naming::copy_token;
use crate::notify::Notification;
use crate::ownership::{NAME_KEY, SOURCE_BACKUP_KEY, is_owned_by, ownership_tags};
use crate::retention::{self, Verdict};
use valid::{Source, ValidCopy, validate};

const KIND: &str = "FsxBackupCopy";
/// Settled copies listed in status; entries still in progress are never dropped.
const MAX_LISTED_COPIES: usize = 50;
const MAX_REQUEUE: Duration = Duration::from_hours(1);

/// Copy entry states before FSx has accepted the copy.
const QUEUED: &str = "Queued";
const WAITING_FOR_SOURCE: &str = "WaitingForSource";
/// The copy cannot be made until the spec changes (bad KMS key, unsupported, …).
const BLOCKED: &str = "Blocked";

/// Sends an object to its controller for a reconcile.
type Waker = mpsc::UnboundedSender<ObjectRef<FsxBackupCopy>>;

/// What every copy controller of the process shares: the copy slots, and how to
/// wake an object (whichever namespace's controller owns it) when a slot frees.
#[derive(Debug)]
pub struct CopyShared {
    slots: CopySlots,
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

    fn wake_all(&self, keys: Vec<String>) {
        let wakers = self
            .wakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in keys {
            let Some((namespace, name)) = key.split_once('/') else {
                continue;
            };
            if let Some((_, sender)) = wakers
                .iter()
                .find(|(watched, _)| watched.as_deref().is_none_or(|w| w == namespace))
            {
                let _ = sender.send(ObjectRef::new(name).within(namespace));
            }
        }
    }
}

/// State one copy controller keeps besides the shared [`Context`].
pub struct CopyContext<F> {
    pub base: Arc<Context<F>>,
    shared: Arc<CopyShared>,
    /// Per object: the followed schedule's `resourceVersion` at the last scan of its
    /// backups, so unchanged schedules are not listed again on every poll.
    scanned: Mutex<HashMap<String, String>>,
    /// Per object: when retention next expires a copy (kept in memory; a restart rescans).
    expiries: Mutex<HashMap<String, Timestamp>>,
}

impl<F> std::fmt::Debug for CopyContext<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyContext")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl<F> CopyContext<F> {
    /// Copies in progress, queued, and the oldest wait, per destination Region.
    fn export_queue_metrics(&self) {
        let metrics = &self.base.metrics;
        for (region, stats) in self.shared.slots.queue_stats() {
            let labels = Metrics::region(&region);
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

    fn wake_all(&self, keys: Vec<String>) {
        self.shared.wake_all(keys);
    }

    fn scanned_version(&self, key: &str) -> Option<String> {
        self.scanned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn expiry_passed(&self, key: &str, now: Timestamp) -> bool {
        self.expiries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .is_some_and(|at| *at <= now)
    }

    fn remember_expiry(&self, key: &str, at: Option<Timestamp>) {
        let mut expiries = self
            .expiries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match at {
            Some(at) => expiries.insert(key.to_owned(), at),
            None => expiries.remove(key),
        };
    }

    fn remember_scan(&self, key: &str, version: Option<String>) {
        let mut scanned = self
            .scanned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match version {
            Some(version) => scanned.insert(key.to_owned(), version),
            None => scanned.remove(key),
        };
    }
}

/// Runs the copy controller for `namespace` (`None`: all) until `shutdown` fires.
#[allow(clippy::too_many_arguments)]
pub async fn run<F: FsxApi>(
    copies: Api<FsxBackupCopy>,
    schedules: Api<FsxBackupSchedule>,
    namespace: Option<String>,
    base: Arc<Context<F>>,
    shared: Arc<CopyShared>,
    clock_moved: Option<watch::Receiver<()>>,
    synced: Arc<std::sync::atomic::AtomicUsize>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (wake, woken) = mpsc::unbounded_channel();
    shared
        .wakers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((namespace, wake));
    let concurrency = base.settings.max_concurrent_reconciles;
    let ctx = Arc::new(CopyContext {
        base,
        shared,
        scanned: Mutex::default(),
        expiries: Mutex::default(),
    });
    let controller = Controller::new(copies, watcher::Config::default().any_semantic())
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency));
    let store = controller.store();
    super::count_when_synced(store.clone(), synced);
    // A schedule's status changes when it makes a backup: reconcile the copies following it.
    let mut controller = controller
        .watches(
            schedules,
            watcher::Config::default().any_semantic(),
            move |schedule: FsxBackupSchedule| {
                let namespace = schedule.namespace();
                let name = schedule.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|copy| {
                        copy.namespace() == namespace
                            && copy
                                .spec
                                .source
                                .schedule_ref
                                .as_ref()
                                .is_some_and(|r| r.name == name)
                    })
                    .map(|copy| ObjectRef::from_obj(&*copy))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_on(futures::stream::unfold(woken, |mut rx| async move {
            rx.recv().await.map(|r| (r, rx))
        }))
        .graceful_shutdown_on(shutdown);
    if let Some(rx) = clock_moved {
        controller = controller.reconcile_all_on(super::changes(rx));
    }
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "copy reconcile did not complete");
            }
        })
        .await;
}

#[allow(clippy::needless_pass_by_value)] // the signature kube's Controller::run expects
fn error_policy<F: FsxApi>(
    object: Arc<FsxBackupCopy>,
    error: &Error,
    ctx: Arc<CopyContext<F>>,
) -> Action {
    tracing::warn!(copy = %object.name_any(), namespace = ?object.namespace(), kind = error.kind(), error = %error, "reconcile failed; retrying");
    Action::requeue(ctx.base.settings.retry_interval)
}

async fn reconcile<F: FsxApi>(
    object: Arc<FsxBackupCopy>,
    ctx: Arc<CopyContext<F>>,
) -> Result<Action, Error> {
    let namespace = object.namespace().unwrap_or_default();
    tracing::debug!(copy = %object.name_any(), namespace = %namespace, "reconciling");
    let api: Api<FsxBackupCopy> = Api::namespaced(ctx.base.client.clone(), &namespace);
    let started = std::time::Instant::now();
    let object = ctx.base.fresh(&api, object).await?;
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            Finalizer::Apply(object) => apply(&api, &object, &ctx).await,
            Finalizer::Cleanup(object) => cleanup(&object, &ctx).await,
        }
    })
    .await
    .map_err(super::from_finalizer);
    super::observe_reconcile(&ctx.base.metrics, "copy", started, &result);
    ctx.export_queue_metrics();
    result
}

fn labels(object: &FsxBackupCopy) -> CopyLabels {
    Metrics::copy(&object.namespace().unwrap_or_default(), &object.name_any())
}

/// Sends an SNS notification about copying `source` if the object asks for them.
fn notify<F>(
    ctx: &Context<F>,
    object: &FsxBackupCopy,
    outcome: &'static str,
    source: &str,
    copy_id: Option<&str>,
    detail: String,
) {
    ctx.notify(
        object.spec.notifications.as_ref(),
        Notification {
            topic_arn: String::new(),
            outcome,
            kind: KIND,
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
            target: source.to_owned(),
            backup_id: copy_id.map(str::to_owned),
            detail,
        },
    );
}

fn object_key(object: &FsxBackupCopy) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// What happened during one reconcile, for health and the next wake-up.
#[derive(Default)]
struct Outcome {
    /// Retry soon: a transient error, a source not yet AVAILABLE.
    retry_soon: bool,
    /// `(reason, message)` for `Reconciling=True`.
    waiting: Option<(String, String)>,
    /// `(reason, message)` for `Stalled=True`.
    stalled: Option<(String, String)>,
    /// A copy settled, or the sources were scanned: retention should look.
    retention_due: bool,
    next_expiry: Option<Timestamp>,
}

fn is_pending(entry: &CopyStatus) -> bool {
    entry.lifecycle == QUEUED || entry.lifecycle == WAITING_FOR_SOURCE
}

fn is_copying(entry: &CopyStatus) -> bool {
    entry.destination_backup_id.is_some() && Lifecycle::parse(&entry.lifecycle).in_progress()
}

fn entry_for<'a>(status: &'a mut FsxBackupCopyStatus, source_id: &str) -> &'a mut CopyStatus {
    if let Some(index) = status
        .copies
        .iter()
        .position(|c| c.source_backup_id == source_id)
    {
        return &mut status.copies[index];
    }
    status.copies.push(CopyStatus {
        source_backup_id: source_id.to_owned(),
        lifecycle: WAITING_FOR_SOURCE.to_owned(),
        ..CopyStatus::default()
    });
    status.copies.last_mut().expect("just pushed")
}

fn note_source(entry: &mut CopyStatus, source: &Backup) {
    if !is_pending(entry) {
        return;
    }
    entry.source_creation_time = source.created_at.map(Time);
    if source.lifecycle == Lifecycle::Available {
        QUEUED.clone_into(&mut entry.lifecycle);
        entry.message = None;
    } else {
        WAITING_FOR_SOURCE.clone_into(&mut entry.lifecycle);
        entry.message = Some(format!(
            "the source backup is {}; copied once AVAILABLE",
            source.lifecycle.as_str()
        ));
    }
}

fn target_of(id: &str) -> BackupTarget {
    if id.starts_with("fsvol-") {
        BackupTarget::Volume(id.to_owned())
    } else {
        BackupTarget::FileSystem(id.to_owned())
    }
}

async fn apply<F: FsxApi>(
    api: &Api<FsxBackupCopy>,
    object: &FsxBackupCopy,
    cx: &CopyContext<F>,
) -> Result<Action, Error> {
    let ctx = &cx.base;
    let now = ctx.clock.now();
    let previous = object.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    let generation = object.metadata.generation;
    let key = object_key(object);
    let uid = object.uid().unwrap_or_default();

    let valid = match validate(object, ctx.settings.default_region.as_deref()) {
        Ok(valid) => valid,
        Err(message) => {
            if previous.conditions.iter().all(|c| c.message != message) {
                ctx.event(object, true, "InvalidSpec", "Validate", message.clone())
                    .await;
            }
            let health = Health::stalled("InvalidSpec", message);
            status.conditions = health.conditions(&previous.conditions, generation, now);
            status.observed_generation = generation;
            write(ctx, api, object, &previous, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let spec_changed = previous.observed_generation != generation;
    let mut outcome = Outcome::default();
    if spec_changed {
        // A fixed spec (another KMS key, say) gets another try at blocked copies.
        for entry in status.copies.iter_mut().filter(|c| c.lifecycle == BLOCKED) {
            WAITING_FOR_SOURCE.clone_into(&mut entry.lifecycle);
            entry.reason = None;
        }
        cx.remember_scan(&key, None);
    }

    // 1. Sources: which backups should be copied, and are they AVAILABLE yet.
    let source_region = match &valid.source {
        Source::Backup { id, region } => {
            one_shot_source(ctx, &mut status, id, region, &mut outcome).await;
            region.clone()
        }
        Source::Schedule { name } => {
            match follow_schedule(
                cx,
                object,
                &valid,
                &mut status,
                name,
                &key,
                now,
                &mut outcome,
            )
            .await?
            {
                Some(region) => region,
                None => valid.destination_region.clone(),
            }
        }
    };

    // 2. Copies in flight: one batched lookup, at most once per poll interval.
    for entry in status.copies.iter().filter(|c| is_copying(c)) {
        cx.shared
            .slots
            .occupy(&valid.destination_region, &key, &entry.source_backup_id);
    }
    poll_copies(cx, object, &valid, &mut status, &key, now, &mut outcome).await;

    // 3. Start queued copies, oldest source first, as slots allow.
    if outcome.stalled.is_none() {
        start_copies(
            cx,
            object,
            &valid,
            &uid,
            &source_region,
            &mut status,
            &key,
            now,
            &mut outcome,
        )
        .await;
    }

    // 4. Retention of this object's copies in the destination (follow mode).
    if let Some(policy) = &valid.retention
        && (outcome.retention_due || spec_changed || cx.expiry_passed(&key, now))
    {
        match prune(ctx, object, &valid, policy, &uid, &mut status, now).await {
            Ok(next) => {
                outcome.next_expiry = next;
                cx.remember_expiry(&key, next);
            }
            Err(err) => note_error(&mut outcome, &err),
        }
    }

    // 5. Status: bounded list, newest source first; health; write only on change.
    status.copies.sort_by(|a, b| {
        b.source_creation_time
            .as_ref()
            .map(|t| t.0)
            .cmp(&a.source_creation_time.as_ref().map(|t| t.0))
            .then_with(|| b.source_backup_id.cmp(&a.source_backup_id))
    });
    let mut settled_listed = 0;
    status.copies.retain(|c| {
        if is_pending(c) || is_copying(c) {
            return true;
        }
        settled_listed += 1;
        settled_listed <= MAX_LISTED_COPIES
    });
    let queued = status
        .copies
        .iter()
        .filter(|c| c.lifecycle == QUEUED)
        .count();
    status.queued = Some(u32::try_from(queued).unwrap_or(u32::MAX));
    let health = health(&valid, &status, &outcome);
    status.observed_generation = generation;
    status.conditions = health.conditions(&previous.conditions, generation, now);
    write(ctx, api, object, &previous, &status).await?;
    Ok(Action::requeue(next_wake(&status, &outcome, ctx, now)))
}

async fn write<F>(
    ctx: &Context<F>,
    api: &Api<FsxBackupCopy>,
    object: &FsxBackupCopy,
    previous: &FsxBackupCopyStatus,
    status: &FsxBackupCopyStatus,
) -> Result<(), Error> {
    let previous = object.status.as_ref().map(|_| previous);
    ctx.write_status(api, object, previous, status).await
}

/// One-shot mode: the one backup, and whether it can be copied yet.
async fn one_shot_source<F: FsxApi>(
    ctx: &Context<F>,
    status: &mut FsxBackupCopyStatus,
    id: &str,
    region: &str,
    outcome: &mut Outcome,
) {
    let entry = entry_for(status, id);
    if !is_pending(entry) {
        return;
    }
    let found = match ctx
        .fsx
        .describe_backups_by_ids(region, &[id.to_owned()])
        .await
    {
        Ok(found) => found,
        Err(err) => {
            note_error(outcome, &err);
            return;
        }
    };
    let Some(source) = found.found.first() else {
        BLOCKED.clone_into(&mut entry.lifecycle);
        entry.reason = Some("SourceNotFound".into());
        entry.message = Some(format!("source backup {id} was not found in {region}"));
        return;
    };
    note_source(entry, source);
    if source.lifecycle == Lifecycle::Failed {
        BLOCKED.clone_into(&mut entry.lifecycle);
        entry.reason = Some("SourceFailed".into());
        entry.message = Some("the source backup FAILED; it cannot be copied".into());
    }
    if let Some(target) = &source.target {
        let target = target.id().to_owned();
        if !status.source_targets.contains(&target) {
            status.source_targets.push(target);
        }
    }
}

/// Follow mode: the schedule's own backups that its retention keeps and that are newer
/// than `copiedThrough`. Returns the source Region, or `None` while the schedule is missing.
#[allow(clippy::too_many_arguments)]
async fn follow_schedule<F: FsxApi>(
    cx: &CopyContext<F>,
    object: &FsxBackupCopy,
    valid: &ValidCopy,
    status: &mut FsxBackupCopyStatus,
    name: &str,
    key: &str,
    now: Timestamp,
    outcome: &mut Outcome,
) -> Result<Option<String>, Error> {
    let ctx = &cx.base;
    let namespace = object.namespace().unwrap_or_default();
    let schedules: Api<FsxBackupSchedule> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(schedule) = schedules.get_opt(name).await? else {
        outcome.waiting = Some((
            "WaitingForSchedule".into(),
            format!("FsxBackupSchedule {name} does not exist in namespace {namespace}"),
        ));
        return Ok(None);
    };
    let schedule_valid =
        match super::schedule::validate(&schedule, ctx.settings.default_region.as_deref()) {
            Ok(valid) => valid,
            Err(message) => {
                outcome.waiting = Some((
                    "WaitingForSchedule".into(),
                    format!("FsxBackupSchedule {name} is invalid: {message}"),
                ));
                return Ok(None);
            }
        };
    let region = schedule_valid.region.clone();
    if valid::partition(&region) != valid::partition(&valid.destination_region) {
        outcome.stalled = Some((
            "InvalidSpec".into(),
            format!(
                "spec.destinationRegion: {} is in another partition than the schedule's Region {region}; FSx cannot copy across partitions",
                valid.destination_region
            ),
        ));
        return Ok(Some(region));
    }
    let version = schedule.resource_version();
    if version.is_some() && cx.scanned_version(key) == version {
        return Ok(Some(region));
    }

    // Targets: what the schedule backs up now, and what it backed up before.
    let mut targets: BTreeSet<String> = schedule
        .status
        .iter()
        .flat_map(|s| &s.targets)
        .map(|t| t.id.clone())
        .collect();
    targets.extend(
        schedule
            .spec
            .target
            .file_system_ids
            .iter()
            .flatten()
            .cloned(),
    );
    targets.extend(schedule.spec.target.volume_ids.iter().flatten().cloned());
    let schedule_uid = schedule.uid().unwrap_or_default();
    let mut sources: Vec<Backup> = Vec::new();
    for target in &targets {
        match ctx
            .fsx
            .describe_backups_of(&region, &target_of(target))
            .await
        {
            Ok(backups) => {
                // Only the backups the schedule's retention keeps are worth copying.
                let plan = retention::plan(
                    now,
                    &schedule_valid.retention,
                    schedule_valid.schedule.time_zone(),
                    &backups,
                    &schedule_uid,
                );
                let kept: BTreeSet<&str> = plan
                    .decisions
                    .iter()
                    .filter(|d| matches!(d.verdict, Verdict::Keep { .. }))
                    .map(|d| d.backup_id.as_str())
                    .collect();
                sources.extend(
                    backups
                        .into_iter()
                        .filter(|b| is_owned_by(b, &schedule_uid) && kept.contains(b.id.as_str())),
                );
                if !status.source_targets.contains(target) {
                    status.source_targets.push(target.clone());
                }
            }
            Err(FsxError::UserAction { .. }) => {
                // The schedule reports its own missing targets; skip this one.
            }
            Err(err) => {
                note_error(outcome, &err);
                return Ok(Some(region));
            }
        }
    }
    let through = status.copied_through.as_ref().map(|t| t.0);
    // Not worth copying what this object's own retention would delete at once.
    let too_old = valid
        .retention
        .as_ref()
        .and_then(|p| p.max_age)
        .and_then(|age| jiff::SignedDuration::try_from(age).ok())
        .and_then(|age| now.checked_sub(age).ok());
    sources.sort_by_key(|b| b.created_at);
    for source in &sources {
        let created = source.created_at.unwrap_or(now);
        let known = status
            .copies
            .iter()
            .any(|c| c.source_backup_id == source.id);
        if !known
            && (through.is_some_and(|t| created <= t)
                || too_old.is_some_and(|t| created <= t)
                || source.lifecycle == Lifecycle::Failed)
        {
            continue;
        }
        note_source(entry_for(status, &source.id), source);
    }
    // Advance the watermark over the settled prefix: never past a source still pending.
    let mut watermark = through;
    for source in &sources {
        let created = source.created_at.unwrap_or(now);
        if through.is_some_and(|t| created <= t) {
            continue;
        }
        let settled = source.lifecycle == Lifecycle::Failed
            || status
                .copies
                .iter()
                .find(|c| c.source_backup_id == source.id)
                .is_none_or(|c| !is_pending(c));
        if !settled {
            break;
        }
        watermark = Some(created);
    }
    status.copied_through = watermark.map(Time);
    outcome.retention_due = true;
    cx.remember_scan(key, version);
    Ok(Some(region))
}

/// Looks up copies in progress (one call for all) and settles those that finished.
async fn poll_copies<F: FsxApi>(
    cx: &CopyContext<F>,
    object: &FsxBackupCopy,
    valid: &ValidCopy,
    status: &mut FsxBackupCopyStatus,
    key: &str,
    now: Timestamp,
    outcome: &mut Outcome,
) {
    let ctx = &cx.base;
    let ids: Vec<String> = status
        .copies
        .iter()
        .filter(|c| is_copying(c))
        .filter_map(|c| c.destination_backup_id.clone())
        .collect();
    if ids.is_empty() || !ctx.poll_due(&format!("{KIND}:{key}"), now) {
        return;
    }
    let found = match ctx
        .fsx
        .describe_backups_by_ids(&valid.destination_region, &ids)
        .await
    {
        Ok(found) => found,
        Err(err) => {
            note_error(outcome, &err);
            return;
        }
    };
    for entry in status.copies.iter_mut().filter(|c| is_copying(c)) {
        let id = entry.destination_backup_id.clone().unwrap_or_default();
        let lifecycle = if let Some(copy) = found.found.iter().find(|b| b.id == id) {
            entry.progress_percent = copy.progress_percent;
            if copy.lifecycle == Lifecycle::Failed {
                entry.message = copy
                    .failure_message
                    .clone()
                    .or_else(|| Some("FSx reports the copy FAILED".into()));
            }
            copy.lifecycle.clone()
        } else if found.missing.contains(&id) {
            entry.message = Some("the copy disappeared before it became AVAILABLE".into());
            Lifecycle::Deleted
        } else {
            continue;
        };
        lifecycle.as_str().clone_into(&mut entry.lifecycle);
        if lifecycle.in_progress() {
            continue;
        }
        entry.completion_time = Some(Time(now));
        let woken =
            cx.shared
                .slots
                .release(&valid.destination_region, key, &entry.source_backup_id);
        cx.wake_all(woken);
        outcome.retention_due = true;
        if lifecycle == Lifecycle::Available {
            ctx.metrics
                .copies_completed
                .get_or_create(&labels(object))
                .inc();
            notify(
                ctx,
                object,
                super::SUCCEEDED,
                &entry.source_backup_id,
                Some(&id),
                format!(
                    "copy {id} of {} is AVAILABLE in {}",
                    entry.source_backup_id, valid.destination_region
                ),
            );
            status.last_copy_time = Some(Time(now));
            ctx.event(
                object,
                false,
                "CopyCompleted",
                "CopyBackup",
                format!(
                    "copy {id} of {} is AVAILABLE in {}",
                    entry.source_backup_id, valid.destination_region
                ),
            )
            .await;
        } else {
            ctx.metrics
                .copies_failed
                .get_or_create(&labels(object))
                .inc();
            notify(
                ctx,
                object,
                super::FAILED,
                &entry.source_backup_id,
                Some(&id),
                format!(
                    "copy {id} of {} is {}: {}",
                    entry.source_backup_id,
                    lifecycle.as_str(),
                    entry.message.clone().unwrap_or_default()
                ),
            );
            ctx.event(
                object,
                true,
                "CopyFailed",
                "CopyBackup",
                format!(
                    "copy {id} of {} is {}: {}",
                    entry.source_backup_id,
                    lifecycle.as_str(),
                    entry.message.clone().unwrap_or_default()
                ),
            )
            .await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn start_copies<F: FsxApi>(
    cx: &CopyContext<F>,
    object: &FsxBackupCopy,
    valid: &ValidCopy,
    uid: &str,
    source_region: &str,
    status: &mut FsxBackupCopyStatus,
    key: &str,
    now: Timestamp,
    outcome: &mut Outcome,
) {
    let ctx = &cx.base;
    let destination = &valid.destination_region;
    let mut order: Vec<usize> = (0..status.copies.len())
        .filter(|&i| status.copies[i].lifecycle == QUEUED)
        .collect();
    order.sort_by_key(|&i| status.copies[i].source_creation_time.as_ref().map(|t| t.0));
    let mut out_of_slots = false;
    for index in order {
        let entry = &mut status.copies[index];
        let source = entry.source_backup_id.clone();
        if out_of_slots || !cx.shared.slots.try_acquire(destination, key, &source) {
            out_of_slots = true;
            entry.message = Some(format!("waiting for a copy slot in {destination}"));
            continue;
        }
        let request = copy_request(object, valid, uid, &source, source_region);
        match ctx.fsx.copy_backup(destination, &request).await {
            Ok(copy) => {
                tracing::info!(copy = %object.name_any(), source = %source, destination_backup = %copy.id, "copy started");
                entry.destination_backup_id = Some(copy.id.clone());
                copy.lifecycle.as_str().clone_into(&mut entry.lifecycle);
                entry.progress_percent = copy.progress_percent;
                entry.start_time = Some(Time(now));
                entry.message = None;
                ctx.metrics
                    .copies_started
                    .get_or_create(&labels(object))
                    .inc();
                ctx.event(
                    object,
                    false,
                    "CopyStarted",
                    "CopyBackup",
                    format!(
                        "copying {source} from {source_region} to {destination} as {}",
                        copy.id
                    ),
                )
                .await;
                if !copy.lifecycle.in_progress() {
                    // Replayed token of a copy that already finished: settle it next poll.
                    COPYING_PLACEHOLDER.clone_into(&mut entry.lifecycle);
                }
            }
            Err(err) => {
                cx.shared.slots.release(destination, key, &source);
                match &err {
                    FsxError::CopySlotsFull { .. } => {
                        // Copies started elsewhere fill FSx's limit: back in the queue.
                        out_of_slots = true;
                        entry.message =
                            Some(format!("waiting for a copy slot in {destination}: {err}"));
                        outcome.retry_soon = true;
                    }
                    FsxError::UserAction { reason, .. } => {
                        tracing::warn!(copy = %object.name_any(), source = %source, error = %err, "copy needs user action");
                        BLOCKED.clone_into(&mut entry.lifecycle);
                        entry.reason = Some(reason.as_str().to_owned());
                        entry.message = Some(err.to_string());
                        ctx.metrics
                            .copies_failed
                            .get_or_create(&labels(object))
                            .inc();
                        notify(
                            ctx,
                            object,
                            super::FAILED,
                            &source,
                            None,
                            format!("CopyBackup refused: {err}"),
                        );
                        ctx.event(
                            object,
                            true,
                            reason.as_str(),
                            "CopyBackup",
                            format!("{source}: {err}"),
                        )
                        .await;
                        outcome.stalled = Some((reason.as_str().to_owned(), err.to_string()));
                        break;
                    }
                    _ => {
                        entry.message = Some(err.to_string());
                        note_error(outcome, &err);
                    }
                }
            }
        }
    }
    let queued = status
        .copies
        .iter()
        .filter(|c| c.lifecycle == QUEUED)
        .count();
    cx.shared.slots.report_queue(destination, key, queued);
    if out_of_slots {
        outcome.waiting.get_or_insert((
            "WaitingForCopySlot".into(),
            format!(
                "copies wait for one of the {} copy slots in {destination}",
                cx.shared.slots.limit()
            ),
        ));
    } else {
        cx.shared.slots.done_waiting(destination, key);
    }
}

/// Lifecycle recorded when FSx answered a replayed copy with a settled backup: treated as
/// in progress so the next poll settles it through the one path that emits events.
const COPYING_PLACEHOLDER: &str = "PENDING";

fn copy_request(
    object: &FsxBackupCopy,
    valid: &ValidCopy,
    uid: &str,
    source: &str,
    source_region: &str,
) -> CopyBackupRequest {
    let mut tags = valid.tags.clone();
    if !valid.copy_tags {
        tags.insert(NAME_KEY.into(), format!("{}-{source}", object.name_any()));
    }
    // Last, so they win over the source's tags that `copyTags` brings along.
    tags.extend(ownership_tags(
        KIND,
        &object.namespace().unwrap_or_default(),
        &object.name_any(),
        uid,
    ));
    tags.insert(SOURCE_BACKUP_KEY.into(), source.to_owned());
    CopyBackupRequest {
        source_backup_id: source.to_owned(),
        source_region: source_region.to_owned(),
        kms_key_id: valid.kms_key_id.clone(),
        copy_tags: valid.copy_tags,
        tags,
        client_request_token: copy_token(uid, source),
    }
}

/// Deletes this object's copies that its retention no longer keeps; returns the next expiry.
async fn prune<F: FsxApi>(
    ctx: &Context<F>,
    object: &FsxBackupCopy,
    valid: &ValidCopy,
    policy: &retention::RetentionPolicy,
    uid: &str,
    status: &mut FsxBackupCopyStatus,
    now: Timestamp,
) -> Result<Option<Timestamp>, FsxError> {
    let copies =
        backups_in_destination(ctx, &valid.destination_region, &status.source_targets).await?;
    let plan = retention::plan(now, policy, &jiff::tz::TimeZone::UTC, &copies, uid);
    let mut first_error = None;
    for decision in plan.decisions.iter().rev() {
        let Verdict::Delete { reason } = &decision.verdict else {
            continue;
        };
        let Some(copy) = copies
            .iter()
            .find(|b| b.id == decision.backup_id && is_owned_by(b, uid))
        else {
            continue;
        };
        match ctx
            .fsx
            .delete_backup(&valid.destination_region, &copy.id)
            .await
        {
            Ok(_) => {
                ctx.metrics
                    .copies_deleted
                    .get_or_create(&labels(object))
                    .inc();
                let source = copy
                    .tags
                    .get(SOURCE_BACKUP_KEY)
                    .cloned()
                    .unwrap_or_default();
                if let Some(entry) = status
                    .copies
                    .iter_mut()
                    .find(|c| c.destination_backup_id.as_deref() == Some(copy.id.as_str()))
                {
                    Lifecycle::Deleted.as_str().clone_into(&mut entry.lifecycle);
                    entry.message = Some(format!("deleted by retention ({})", reason.as_str()));
                }
                ctx.event(
                    object,
                    false,
                    "CopyPruned",
                    "DeleteBackup",
                    format!(
                        "copy {} of {source} in {} deleted by retention ({})",
                        copy.id,
                        valid.destination_region,
                        reason.as_str()
                    ),
                )
                .await;
            }
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    first_error.map_or(Ok(plan.next_expiry), Err)
}

/// Every backup in `region` of the file systems and volumes `targets`, by id. FSx
/// answers `FileSystemNotFound`/`VolumeNotFound` for a target unknown in that Region
/// (no copy of it made there yet): that is an empty list here, not an error.
async fn backups_in_destination<F: FsxApi>(
    ctx: &Context<F>,
    region: &str,
    targets: &[String],
) -> Result<Vec<Backup>, FsxError> {
    let mut backups: Vec<Backup> = Vec::new();
    for target in targets {
        match ctx
            .fsx
            .describe_backups_of(region, &target_of(target))
            .await
        {
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

fn note_error(outcome: &mut Outcome, err: &FsxError) {
    if let FsxError::UserAction { reason, .. } = err {
        outcome.stalled = Some((reason.as_str().to_owned(), err.to_string()));
        return;
    }
    outcome.retry_soon = true;
    outcome
        .waiting
        .get_or_insert(("RetryingAfterError".into(), err.to_string()));
}

fn health(valid: &ValidCopy, status: &FsxBackupCopyStatus, outcome: &Outcome) -> Health {
    if let Some((reason, message)) = &outcome.stalled {
        return Health::stalled(reason, message.clone());
    }
    if let Some(blocked) = status.copies.iter().find(|c| c.lifecycle == BLOCKED) {
        return Health::stalled(
            blocked.reason.as_deref().unwrap_or("CopyBlocked"),
            format!(
                "{}: {}",
                blocked.source_backup_id,
                blocked.message.clone().unwrap_or_default()
            ),
        );
    }
    if let Some((reason, message)) = &outcome.waiting {
        return Health::progressing(reason, message.clone());
    }
    let copying = status.copies.iter().filter(|c| is_copying(c)).count();
    let waiting_source = status
        .copies
        .iter()
        .filter(|c| c.lifecycle == WAITING_FOR_SOURCE)
        .count();
    if copying > 0 {
        return Health::progressing(
            "Copying",
            format!(
                "{copying} copies in progress to {}",
                valid.destination_region
            ),
        );
    }
    if waiting_source > 0 {
        return Health::progressing(
            "WaitingForSource",
            format!("{waiting_source} source backups are not AVAILABLE yet"),
        );
    }
    if let Some(failed) = status
        .copies
        .iter()
        .find(|c| c.lifecycle == Lifecycle::Failed.as_str())
    {
        return Health::degraded(
            "CopyFailed",
            format!(
                "the copy of {} failed: {}",
                failed.source_backup_id,
                failed.message.clone().unwrap_or_default()
            ),
        );
    }
    match &valid.source {
        Source::Backup { .. } => Health::ready(
            "CopyAvailable",
            format!("the copy is AVAILABLE in {}", valid.destination_region),
        ),
        Source::Schedule { name } => Health::ready(
            "UpToDate",
            format!(
                "every backup of {name} is copied to {}",
                valid.destination_region
            ),
        ),
    }
}

fn next_wake<F>(
    status: &FsxBackupCopyStatus,
    outcome: &Outcome,
    ctx: &Context<F>,
    now: Timestamp,
) -> Duration {
    let mut wake = MAX_REQUEUE;
    if status
        .copies
        .iter()
        .any(|c| is_copying(c) || c.lifecycle == WAITING_FOR_SOURCE)
    {
        wake = wake.min(ctx.settings.poll_interval);
    }
    if outcome.retry_soon || outcome.waiting.is_some() {
        wake = wake.min(ctx.settings.retry_interval);
    }
    if let Some(expiry) = outcome.next_expiry {
        wake = wake.min(Duration::try_from(expiry.duration_since(now)).unwrap_or(Duration::ZERO));
    }
    wake.max(Duration::from_millis(100))
}

/// Deletion: frees the object's copy slots; under `Delete` removes its copies (waiting
/// for those in progress), under `Retain` leaves them. Then the finalizer goes.
async fn cleanup<F: FsxApi>(object: &FsxBackupCopy, cx: &CopyContext<F>) -> Result<Action, Error> {
    let ctx = &cx.base;
    let key = object_key(object);
    cx.wake_all(cx.shared.slots.forget(&key));
    cx.remember_scan(&key, None);
    cx.remember_expiry(&key, None);
    ctx.forget_versions(object);
    ctx.metrics
        .forget_copy(&object.namespace().unwrap_or_default(), &object.name_any());
    if object.spec.deletion_policy.unwrap_or_default() == DeletionPolicy::Retain {
        ctx.event(
            object,
            false,
            "CopiesRetained",
            "Delete",
            "deletionPolicy Retain: copies are left in place".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let uid = object.uid().unwrap_or_default();
    let destination = &object.spec.destination_region;
    let status = object.status.clone().unwrap_or_default();
    let mut copies = backups_in_destination(ctx, destination, &status.source_targets).await?;
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
    let mut busy = Vec::new();
    let mut deleted = 0;
    let mut seen = BTreeSet::new();
    for copy in copies
        .iter()
        .filter(|b| is_owned_by(b, &uid) && b.lifecycle != Lifecycle::Deleted)
    {
        if !seen.insert(copy.id.clone()) {
            continue;
        }
        if copy.lifecycle.in_progress() {
            busy.push(copy.id.clone());
            continue;
        }
        match ctx.fsx.delete_backup(destination, &copy.id).await {
            Ok(_) => deleted += 1,
            Err(err) if err.is_retryable() => busy.push(copy.id.clone()),
            Err(err) => return Err(err.into()),
        }
    }
    if !busy.is_empty() {
        return Err(Error::CleanupPending(format!(
            "deletionPolicy Delete: waiting for {} copies still in progress or busy: {}",
            busy.len(),
            busy.join(", ")
        )));
    }
    ctx.event(
        object,
        false,
        "CopiesDeleted",
        "Delete",
        format!("deletionPolicy Delete: {deleted} copies deleted in {destination}"),
    )
    .await;
    Ok(Action::await_change())
}
