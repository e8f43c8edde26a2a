//! The `FsxBackupSchedule` reconciler: takes the runs that are due, follows
//! backups in flight, applies retention, and reports. Decisions come from the
//! pure modules (`schedule`, `retention`, `naming`, [`valid`]); this file only
//! fetches, calls them and applies their answers.

pub mod valid;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use tokio::sync::watch;

use super::{Context, Error, FINALIZER, RUN_NOW_ANNOTATION};
use crate::conditions::Health;
use crate::crd::common::{BackupRef, DeletionPolicy};
use crate::crd::schedule::{FsxBackupSchedule, FsxBackupScheduleStatus, LastBackup, TargetStatus};
use crate::fsx::{
    Backup, BackupTarget, CreateBackupRequest, FsxApi, FsxError, Lifecycle, UserActionReason,
};
use crate::metrics::{ControllerLabels, Metrics, ScheduleLabels};
use crate::naming::{NameContext, render_backup_name, run_now_token, scheduled_backup_token};
use crate::notify::Notification;
use crate::ownership::{NAME_KEY, SCHEDULED_TIME_KEY, is_owned_by, ownership_tags};
use crate::retention::{self, Verdict};
use crate::schedule::due;
use valid::Targets;
pub(crate) use valid::{ValidSchedule, user_tags, validate};

const KIND: &str = "FsxBackupSchedule";
/// Managed backups listed per target in status; the count is always exact.
const MAX_LISTED_BACKUPS: usize = 20;
/// Longest a reconcile sleeps, so a lost timer never hides a due run for long.
const MAX_REQUEUE: Duration = Duration::from_hours(1);

/// Runs the schedule controller until `shutdown` fires.
pub async fn run<F: FsxApi>(
    api: Api<FsxBackupSchedule>,
    ctx: Arc<Context<F>>,
    clock_moved: Option<watch::Receiver<()>>,
    synced: Arc<std::sync::atomic::AtomicUsize>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let mut controller = Controller::new(api, watcher::Config::default().any_semantic())
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(ctx.settings.max_concurrent_reconciles),
        )
        .graceful_shutdown_on(shutdown);
    super::count_when_synced(controller.store(), synced);
    if let Some(rx) = clock_moved {
        controller = controller.reconcile_all_on(super::changes(rx));
    }
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "schedule reconcile did not complete");
            }
        })
        .await;
}

#[allow(clippy::needless_pass_by_value)] // the signature kube's Controller::run expects
fn error_policy<F: FsxApi>(
    object: Arc<FsxBackupSchedule>,
    error: &Error,
    ctx: Arc<Context<F>>,
) -> Action {
    tracing::warn!(schedule = %object.name_any(), namespace = ?object.namespace(), kind = error.kind(), error = %error, "reconcile failed; retrying");
    Action::requeue(ctx.settings.retry_interval)
}

async fn reconcile<F: FsxApi>(
    object: Arc<FsxBackupSchedule>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    let namespace = object.namespace().unwrap_or_default();
    tracing::debug!(schedule = %object.name_any(), namespace = %namespace, "reconciling");
    let api: Api<FsxBackupSchedule> = Api::namespaced(ctx.client.clone(), &namespace);
    let started = std::time::Instant::now();
    let object = ctx.fresh(&api, object).await?;
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            Finalizer::Apply(object) => apply(&api, &object, &ctx).await,
            Finalizer::Cleanup(object) => cleanup(&object, &ctx).await,
        }
    })
    .await
    .map_err(super::from_finalizer);
    super::observe_reconcile(&ctx.metrics, "schedule", started, &result);
    result
}

fn labels(object: &FsxBackupSchedule) -> ScheduleLabels {
    Metrics::schedule(&object.namespace().unwrap_or_default(), &object.name_any())
}

/// Sends an SNS notification about `target` if the object asks for them.
fn notify<F>(
    ctx: &Context<F>,
    object: &FsxBackupSchedule,
    outcome: &'static str,
    target: &str,
    backup_id: Option<&str>,
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
            target: target.to_owned(),
            backup_id: backup_id.map(str::to_owned),
            detail,
        },
    );
}

/// A change of one target made during this reconcile, remembered for events and health.
#[derive(Default)]
struct Outcome {
    /// A create that must be retried soon (transient error).
    retry_soon: bool,
    /// Reason/message of the latest transient problem.
    waiting: Option<(String, String)>,
    /// A backup reached a terminal lifecycle, or the retention policy may have changed.
    retention_due: BTreeSet<String>,
}

async fn apply<F: FsxApi>(
    api: &Api<FsxBackupSchedule>,
    object: &FsxBackupSchedule,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let previous = object.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    let generation = object.metadata.generation;
    let key = object_key(object);

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
            write_status(ctx, api, object, &previous, status).await?;
            // Nothing to do until the spec changes (a spec change triggers a reconcile).
            return Ok(Action::await_change());
        }
    };
    let uid = object.uid().unwrap_or_default();
    let spec_changed = previous.observed_generation != generation;
    let mut outcome = Outcome::default();

    // 1. Which run is due (cron in its zone, jitter, deadline).
    let offset = SignedDuration::try_from(valid.offset).unwrap_or_default();
    let pending_slot = match (&status.observed_schedule, &status.next_schedule_time) {
        (Some(k), Some(next)) if *k == valid.schedule_key => Some(next.0 - offset),
        _ => None,
    }
    .or_else(|| valid.schedule.next_after(now - offset));
    status.observed_schedule = Some(valid.schedule_key.clone());
    let mut new_run = None;
    if let Some(pending_slot) = pending_slot {
        let due = due(
            &valid.schedule,
            valid.offset,
            pending_slot,
            now,
            valid.deadline,
        );
        if !valid.suspended {
            if due.missed > 0 {
                status.missed_runs =
                    Some(status.missed_runs.unwrap_or(0).saturating_add(due.missed));
                status.last_missed_time = due.last_missed.map(Time);
                let at = due.last_missed.map(|t| t.to_string()).unwrap_or_default();
                let message = format!(
                    "{} scheduled run(s) skipped (latest {at}): later than startingDeadlineSeconds or superseded by a later run",
                    due.missed
                );
                ctx.metrics
                    .missed_runs
                    .get_or_create(&labels(object))
                    .inc_by(u64::from(due.missed));
                notify(
                    ctx,
                    object,
                    super::FAILED,
                    "all targets",
                    None,
                    message.clone(),
                );
                ctx.event(object, true, "MissedSchedule", "Schedule", message)
                    .await;
            }
            if let Some(slot) = due.run {
                status.last_schedule_time = Some(Time(slot));
                new_run = Some(slot);
            }
        }
        status.next_schedule_time = due.next_slot.map(|slot| Time(slot + offset));
        if let Some(next) = due.next_slot {
            #[allow(clippy::cast_precision_loss)] // Unix seconds fit an f64 exactly for millennia
            let at = (next + offset).as_second() as f64;
            ctx.metrics
                .next_scheduled_run
                .get_or_create(&labels(object))
                .set(at);
            if let Some(after) = valid.schedule.next_after(next) {
                ctx.metrics
                    .schedule_interval
                    .get_or_create(&labels(object))
                    .set(after.duration_since(next).as_secs_f64());
            }
        }
    } else {
        status.next_schedule_time = None;
    }

    // 2. Targets: resolved at each run (selectors may match new file systems).
    if new_run.is_some() || spec_changed || status.targets.is_empty() {
        match resolve_targets(ctx, &valid).await {
            Ok(resolved) => merge_targets(&mut status.targets, &resolved),
            Err(err) => {
                return finish_with_fsx_error(api, object, ctx, &previous, status, err, now).await;
            }
        }
    }

    // 3. Scheduled backups not yet accepted for the current run.
    if let Some(run_slot) = status
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .filter(|_| !valid.suspended)
    {
        let late = now.duration_since(run_slot + offset);
        let too_late = valid
            .deadline
            .is_some_and(|d| late > SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX));
        let superseded = status
            .next_schedule_time
            .as_ref()
            .is_some_and(|next| next.0 <= now);
        for target in status
            .targets
            .iter_mut()
            .filter(|t| t.message.as_deref() != Some(NOT_SELECTED))
        {
            if target
                .last_scheduled_time
                .as_ref()
                .is_some_and(|t| t.0 >= run_slot)
            {
                continue;
            }
            if too_late || superseded {
                target.last_scheduled_time = Some(Time(run_slot));
                ctx.metrics.missed_runs.get_or_create(&labels(object)).inc();
                notify(
                    ctx,
                    object,
                    super::FAILED,
                    &target.id,
                    None,
                    format!("the backup for the run at {run_slot} was not taken in time"),
                );
                status.missed_runs = Some(status.missed_runs.unwrap_or(0).saturating_add(1));
                status.last_missed_time = Some(Time(run_slot));
                ctx.event(
                    object,
                    true,
                    "MissedSchedule",
                    "CreateBackup",
                    format!(
                        "backup of {} for the run at {run_slot} was not taken in time: {}",
                        target.id,
                        target
                            .message
                            .clone()
                            .unwrap_or_else(|| "the previous backup was still in progress".into())
                    ),
                )
                .await;
                continue;
            }
            let request = backup_request(object, &valid, &uid, &target.id, run_slot, None)?;
            create(
                ctx,
                object,
                &valid,
                target,
                request,
                run_slot,
                None,
                &mut outcome,
            )
            .await;
        }
    }

    // 4. A manual run asked for with the run-now annotation.
    if let Some(nonce) = object
        .annotations()
        .get(RUN_NOW_ANNOTATION)
        .filter(|n| !n.is_empty())
        && status.last_run_now.as_deref() != Some(nonce.as_str())
    {
        let mut all_done = true;
        for target in status
            .targets
            .iter_mut()
            .filter(|t| t.message.as_deref() != Some(NOT_SELECTED))
        {
            if target
                .last_backup
                .as_ref()
                .is_some_and(|b| b.run_now.as_deref() == Some(nonce.as_str()))
            {
                continue;
            }
            let request = backup_request(object, &valid, &uid, &target.id, now, Some(nonce))?;
            let retry_before = outcome.retry_soon;
            outcome.retry_soon = false;
            create(
                ctx,
                object,
                &valid,
                target,
                request,
                now,
                Some(nonce),
                &mut outcome,
            )
            .await;
            all_done &= !outcome.retry_soon;
            outcome.retry_soon |= retry_before;
        }
        if all_done {
            status.last_run_now = Some(nonce.clone());
        }
    }

    // 5. Backups in flight: one batched lookup per reconcile, at most once per poll interval.
    let in_flight: Vec<String> = status
        .targets
        .iter()
        .filter_map(|t| t.last_backup.as_ref())
        .filter(|b| is_in_flight(b))
        .map(|b| b.id.clone())
        .collect();
    if !in_flight.is_empty() && ctx.poll_due(&key, now) {
        match ctx
            .fsx
            .describe_backups_by_ids(&valid.region, &in_flight)
            .await
        {
            Ok(found) => {
                for target in &mut status.targets {
                    let Some(last) = target.last_backup.as_mut().filter(|b| is_in_flight(b)) else {
                        continue;
                    };
                    if let Some(backup) = found.found.iter().find(|b| b.id == last.id) {
                        update_last_backup(last, backup);
                    } else if found.missing.contains(&last.id) {
                        Lifecycle::Deleted.as_str().clone_into(&mut last.lifecycle);
                        last.failure_message =
                            Some("the backup disappeared before it became AVAILABLE".into());
                    }
                    settle(
                        ctx,
                        object,
                        &valid,
                        target,
                        &mut status.last_successful_time,
                        &mut outcome,
                        now,
                    )
                    .await;
                }
            }
            Err(err) => note_transient(&mut outcome, &err),
        }
    } else {
        // Backups may have timed out even without a poll.
        for target in &mut status.targets {
            settle(
                ctx,
                object,
                &valid,
                target,
                &mut status.last_successful_time,
                &mut outcome,
                now,
            )
            .await;
        }
    }

    // 6. Retention, per target, when something it depends on changed.
    for target in &mut status.targets {
        let expired = target
            .managed_backups
            .iter()
            .any(|b| b.expires_at.as_ref().is_some_and(|t| t.0 <= now));
        let first_look = target.managed_backup_count.is_none();
        if !(spec_changed || expired || first_look || outcome.retention_due.contains(&target.id)) {
            continue;
        }
        if let Err(err) = prune(ctx, object, &valid, &uid, target, now).await {
            note_transient(&mut outcome, &err);
            if let FsxError::UserAction { .. } = err {
                target.message = Some(err.to_string());
            }
        }
    }
    status.targets.retain(|t| {
        t.message.as_deref() != Some(NOT_SELECTED) || t.managed_backup_count.unwrap_or(0) > 0
    });

    // 7. Health, then the status write (skipped when nothing changed).
    let health = health(&valid, &status, &outcome);
    status.observed_generation = generation;
    status.conditions = health.conditions(&previous.conditions, generation, now);
    write_status(ctx, api, object, &previous, status.clone()).await?;
    Ok(Action::requeue(next_wake(
        &valid, &status, &outcome, ctx, now,
    )))
}

/// Marker message of a target no longer matched by the selector (kept while it has backups).
const NOT_SELECTED: &str =
    "no longer selected by spec.target; its backups are still pruned by retention";

fn object_key(object: &FsxBackupSchedule) -> String {
    format!(
        "{KIND}/{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// A backup whose final state is not yet known and that is not given up on.
fn is_in_flight(backup: &LastBackup) -> bool {
    Lifecycle::parse(&backup.lifecycle).in_progress() && backup.failure_message.is_none()
}

fn backup_request(
    object: &FsxBackupSchedule,
    valid: &ValidSchedule,
    uid: &str,
    target_id: &str,
    time: Timestamp,
    run_now: Option<&String>,
) -> Result<CreateBackupRequest, Error> {
    let namespace = object.namespace().unwrap_or_default();
    let name = render_backup_name(
        &valid.name_template,
        &NameContext {
            schedule: &object.name_any(),
            namespace: &namespace,
            target: target_id,
            time,
        },
    )
    .map_err(Error::InvalidSpec)?;
    let mut tags = valid.tags.clone();
    tags.extend(ownership_tags(KIND, &namespace, &object.name_any(), uid));
    tags.insert(
        SCHEDULED_TIME_KEY.into(),
        time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    tags.insert(NAME_KEY.into(), name);
    let target = if target_id.starts_with("fsvol-") {
        BackupTarget::Volume(target_id.to_owned())
    } else {
        BackupTarget::FileSystem(target_id.to_owned())
    };
    let client_request_token = match run_now {
        Some(nonce) => run_now_token(uid, target_id, nonce),
        None => scheduled_backup_token(uid, target_id, time),
    };
    Ok(CreateBackupRequest {
        target,
        client_request_token,
        tags,
    })
}

#[allow(clippy::too_many_arguments)]
async fn create<F: FsxApi>(
    ctx: &Context<F>,
    object: &FsxBackupSchedule,
    valid: &ValidSchedule,
    target: &mut TargetStatus,
    request: CreateBackupRequest,
    slot: Timestamp,
    run_now: Option<&String>,
    outcome: &mut Outcome,
) {
    match ctx.fsx.create_backup(&valid.region, &request).await {
        Ok(backup) => {
            tracing::info!(schedule = %object.name_any(), target = %target.id, backup = %backup.id, "backup created");
            ctx.event(
                object,
                false,
                "BackupCreated",
                "CreateBackup",
                format!(
                    "backup {} of {} created for {}",
                    backup.id,
                    target.id,
                    run_now.map_or_else(
                        || format!("the run at {slot}"),
                        |n| format!("run-now `{n}`")
                    )
                ),
            )
            .await;
            ctx.metrics
                .backups_created
                .get_or_create(&labels(object))
                .inc();
            if run_now.is_none() {
                target.last_scheduled_time = Some(Time(slot));
                let offset = SignedDuration::try_from(valid.offset).unwrap_or_default();
                let late = ctx
                    .clock
                    .now()
                    .duration_since(slot + offset)
                    .as_secs_f64()
                    .max(0.0);
                ctx.metrics
                    .schedule_lateness
                    .get_or_create(&ControllerLabels {
                        controller: "schedule".into(),
                    })
                    .observe(late);
            }
            target.message = None;
            let mut last = LastBackup {
                id: backup.id.clone(),
                scheduled_time: Some(Time(slot)),
                run_now: run_now.cloned(),
                ..LastBackup::default()
            };
            update_last_backup(&mut last, &backup);
            target.last_backup = Some(last);
        }
        Err(err @ FsxError::UserAction { .. }) => {
            let reason = user_action_reason(&err);
            tracing::warn!(schedule = %object.name_any(), target = %target.id, error = %err, "backup needs user action");
            if target.message.as_deref() != Some(err.to_string().as_str()) {
                ctx.event(
                    object,
                    true,
                    reason,
                    "CreateBackup",
                    format!("{}: {err}", target.id),
                )
                .await;
            }
            if target.message.as_deref() != Some(err.to_string().as_str()) {
                ctx.metrics
                    .backups_failed
                    .get_or_create(&labels(object))
                    .inc();
                notify(
                    ctx,
                    object,
                    super::FAILED,
                    &target.id,
                    None,
                    format!("CreateBackup refused: {err}"),
                );
            }
            target.message = Some(err.to_string());
            if run_now.is_none() {
                // The run cannot succeed for this target; the next run tries again.
                target.last_scheduled_time = Some(Time(slot));
            }
        }
        Err(err) => {
            tracing::info!(schedule = %object.name_any(), target = %target.id, error = %err, "backup not accepted yet; will retry");
            outcome.retry_soon = true;
            note_transient(outcome, &err);
        }
    }
}

fn note_transient(outcome: &mut Outcome, err: &FsxError) {
    let reason = if err.code() == "BackupInProgress" {
        "WaitingForPreviousBackup"
    } else {
        "RetryingAfterError"
    };
    outcome.retry_soon = true;
    outcome.waiting = Some((reason.to_owned(), err.to_string()));
}

fn user_action_reason(err: &FsxError) -> &'static str {
    match err {
        FsxError::UserAction {
            reason: UserActionReason::AccessDenied,
            ..
        } => "AccessDenied",
        FsxError::UserAction {
            reason: UserActionReason::TargetNotFound,
            ..
        } => "TargetNotFound",
        FsxError::UserAction {
            reason: UserActionReason::BackupQuotaExceeded,
            ..
        } => "BackupQuotaExceeded",
        _ => "BackupFailed",
    }
}

fn update_last_backup(last: &mut LastBackup, backup: &Backup) {
    backup.lifecycle.as_str().clone_into(&mut last.lifecycle);
    last.progress_percent = backup.progress_percent;
    last.creation_time = backup.created_at.map(Time);
    if backup.lifecycle == Lifecycle::Failed {
        last.failure_message = Some(
            backup
                .failure_message
                .clone()
                .unwrap_or_else(|| "FSx reported FAILED".into()),
        );
    }
}

/// Acts on a last backup that reached a final state (or timed out): events,
/// success time, and a retention pass for the target.
async fn settle<F: FsxApi>(
    ctx: &Context<F>,
    object: &FsxBackupSchedule,
    valid: &ValidSchedule,
    target: &mut TargetStatus,
    last_successful_time: &mut Option<Time>,
    outcome: &mut Outcome,
    now: Timestamp,
) {
    let Some(last) = target.last_backup.as_mut() else {
        return;
    };
    let lifecycle = Lifecycle::parse(&last.lifecycle);
    if lifecycle.in_progress() && last.failure_message.is_none() {
        // Measured from the run's own instant (operator clock), not FSx's creation time:
        // a run-now or late run starts its timeout when the operator asked for it.
        let started = last
            .scheduled_time
            .as_ref()
            .or(last.creation_time.as_ref())
            .map_or(now, |t| t.0);
        let timeout = SignedDuration::try_from(valid.backup_timeout).unwrap_or(SignedDuration::MAX);
        if now.duration_since(started) < timeout {
            return;
        }
        last.failure_message = Some(format!(
            "still {} after backupTimeout {}",
            last.lifecycle,
            crate::duration::format_duration(valid.backup_timeout)
        ));
    }
    // Only act once per backup: a settled backup is remembered by its id.
    if target
        .managed_backups
        .first()
        .is_some_and(|b| b.id == last.id && b.lifecycle == last.lifecycle)
    {
        return;
    }
    if lifecycle == Lifecycle::Available && last.failure_message.is_none() {
        let newer = last_successful_time.as_ref().is_none_or(|t| t.0 < now);
        if newer {
            *last_successful_time = Some(Time(now));
        }
        ctx.event(
            object,
            false,
            "BackupAvailable",
            "CreateBackup",
            format!("backup {} of {} is AVAILABLE", last.id, target.id),
        )
        .await;
        #[allow(clippy::cast_precision_loss)] // Unix seconds fit an f64 exactly for millennia
        let at = now.as_second() as f64;
        ctx.metrics
            .last_successful_backup
            .get_or_create(&Metrics::target(
                &object.namespace().unwrap_or_default(),
                &object.name_any(),
                &target.id,
            ))
            .set(at);
        notify(
            ctx,
            object,
            super::SUCCEEDED,
            &target.id,
            Some(&last.id),
            format!("backup {} of {} is AVAILABLE", last.id, target.id),
        );
    } else if let Some(message) = &last.failure_message {
        ctx.metrics
            .backups_failed
            .get_or_create(&labels(object))
            .inc();
        notify(
            ctx,
            object,
            super::FAILED,
            &target.id,
            Some(&last.id),
            format!("backup {} of {} failed: {message}", last.id, target.id),
        );
        ctx.event(
            object,
            true,
            "BackupFailed",
            "CreateBackup",
            format!("backup {} of {} failed: {message}", last.id, target.id),
        )
        .await;
    }
    // Put it at the head of the list so the next reconcile sees it settled;
    // retention below rewrites the list from FSx.
    target.managed_backups.retain(|b| b.id != last.id);
    target.managed_backups.insert(
        0,
        BackupRef {
            id: last.id.clone(),
            lifecycle: last.lifecycle.clone(),
            creation_time: last.creation_time.clone(),
            ..BackupRef::default()
        },
    );
    outcome.retention_due.insert(target.id.clone());
}

/// Lists the target's backups, applies the retention plan, and records what is kept.
async fn prune<F: FsxApi>(
    ctx: &Context<F>,
    object: &FsxBackupSchedule,
    valid: &ValidSchedule,
    uid: &str,
    target: &mut TargetStatus,
    now: Timestamp,
) -> Result<(), FsxError> {
    let backup_target = if target.id.starts_with("fsvol-") {
        BackupTarget::Volume(target.id.clone())
    } else {
        BackupTarget::FileSystem(target.id.clone())
    };
    let backups = ctx
        .fsx
        .describe_backups_of(&valid.region, &backup_target)
        .await?;
    let plan = retention::plan(
        now,
        &valid.retention,
        valid.schedule.time_zone(),
        &backups,
        uid,
    );
    let mut kept = Vec::new();
    let mut first_error = None;
    // Oldest first, so an interrupted pass removes what is most overdue.
    for decision in plan.decisions.iter().rev() {
        match &decision.verdict {
            Verdict::Delete { reason } => {
                let backup = backups.iter().find(|b| b.id == decision.backup_id);
                // Belt and braces: the planner only returns owned backups.
                if !backup.is_some_and(|b| is_owned_by(b, uid)) {
                    continue;
                }
                match ctx
                    .fsx
                    .delete_backup(&valid.region, &decision.backup_id)
                    .await
                {
                    Ok(_) => {
                        ctx.metrics
                            .backups_deleted
                            .get_or_create(&labels(object))
                            .inc();
                        tracing::info!(schedule = %object.name_any(), target = %target.id, backup = %decision.backup_id, reason = reason.as_str(), "backup pruned");
                        ctx.event(
                            object,
                            false,
                            "BackupPruned",
                            "DeleteBackup",
                            format!(
                                "backup {} of {} deleted by retention ({})",
                                decision.backup_id,
                                target.id,
                                reason.as_str()
                            ),
                        )
                        .await;
                    }
                    Err(err) => {
                        tracing::info!(backup = %decision.backup_id, error = %err, "prune deferred");
                        kept.push(backup_ref(decision, None, Some("pendingDeletion")));
                        first_error.get_or_insert(err);
                    }
                }
            }
            Verdict::Keep {
                kept_by,
                expires_at,
            } => {
                kept.push(backup_ref(
                    decision,
                    expires_at.as_ref(),
                    Some(kept_by.as_str()),
                ));
            }
        }
    }
    kept.reverse();
    target.managed_backup_count = Some(u32::try_from(kept.len()).unwrap_or(u32::MAX));
    kept.truncate(MAX_LISTED_BACKUPS);
    target.managed_backups = kept;
    first_error.map_or(Ok(()), Err)
}

fn backup_ref(
    decision: &retention::Decision,
    expires_at: Option<&Timestamp>,
    kept_by: Option<&str>,
) -> BackupRef {
    BackupRef {
        id: decision.backup_id.clone(),
        lifecycle: decision.lifecycle.as_str().to_owned(),
        creation_time: decision.created_at.map(Time),
        expires_at: expires_at.copied().map(Time),
        kept_by: kept_by.map(str::to_owned),
    }
}

/// The targets of this run: fixed ids, or the file systems the selector matches now.
async fn resolve_targets<F: FsxApi>(
    ctx: &Context<F>,
    valid: &ValidSchedule,
) -> Result<Vec<(String, Option<String>)>, FsxError> {
    match &valid.targets {
        Targets::Ids(ids) => Ok(ids.iter().map(|t| (t.id().to_owned(), None)).collect()),
        Targets::Selector { tags, types } => {
            let file_systems = ctx.fsx.describe_file_systems(&valid.region).await?;
            let mut matched: Vec<(String, Option<String>)> = file_systems
                .into_iter()
                .filter(|fs| tags.iter().all(|(k, v)| fs.tags.get(k) == Some(v)))
                .filter(|fs| types.is_empty() || types.iter().any(|t| t.as_str() == fs.file_system_type))
                .filter(|fs| fs.lifecycle != "DELETING")
                .map(|fs| {
                    let problem = (fs.file_system_type == "ONTAP").then(|| {
                        "ONTAP file systems are backed up per volume: list its volumes in spec.target.volumeIds".to_owned()
                    });
                    (fs.id, problem)
                })
                .collect();
            matched.sort();
            Ok(matched)
        }
    }
}

/// Brings `targets` in line with `resolved`, keeping the history of those still there.
fn merge_targets(targets: &mut Vec<TargetStatus>, resolved: &[(String, Option<String>)]) {
    let mut merged: Vec<TargetStatus> = resolved
        .iter()
        .map(|(id, problem)| {
            let mut entry = targets
                .iter()
                .find(|t| &t.id == id)
                .cloned()
                .unwrap_or_else(|| TargetStatus {
                    id: id.clone(),
                    ..TargetStatus::default()
                });
            if problem.is_some() || entry.message.as_deref() == Some(NOT_SELECTED) {
                entry.message.clone_from(problem);
            }
            entry
        })
        .collect();
    for old in targets.drain(..) {
        if !merged.iter().any(|t| t.id == old.id) {
            merged.push(TargetStatus {
                message: Some(NOT_SELECTED.into()),
                ..old
            });
        }
    }
    merged.sort_by(|a, b| a.id.cmp(&b.id));
    *targets = merged;
}

/// A failure before any target could be handled (e.g. the selector's lookup).
async fn finish_with_fsx_error<F: FsxApi>(
    api: &Api<FsxBackupSchedule>,
    object: &FsxBackupSchedule,
    ctx: &Context<F>,
    previous: &FsxBackupScheduleStatus,
    mut status: FsxBackupScheduleStatus,
    err: FsxError,
    now: Timestamp,
) -> Result<Action, Error> {
    let health = if matches!(err, FsxError::UserAction { .. }) {
        let reason = user_action_reason(&err);
        if previous
            .conditions
            .iter()
            .all(|c| c.message != err.to_string())
        {
            ctx.event(object, true, reason, "DescribeFileSystems", err.to_string())
                .await;
        }
        Health::stalled(reason, err.to_string())
    } else {
        Health::progressing("RetryingAfterError", err.to_string())
    };
    status.observed_generation = object.metadata.generation;
    status.conditions = health.conditions(&previous.conditions, object.metadata.generation, now);
    write_status(ctx, api, object, previous, status).await?;
    Ok(Action::requeue(ctx.settings.retry_interval))
}

fn health(valid: &ValidSchedule, status: &FsxBackupScheduleStatus, outcome: &Outcome) -> Health {
    let active: Vec<&TargetStatus> = status
        .targets
        .iter()
        .filter(|t| t.message.as_deref() != Some(NOT_SELECTED))
        .collect();
    let broken: Vec<&TargetStatus> = active
        .iter()
        .copied()
        .filter(|t| t.message.is_some())
        .collect();
    if let Some(first) = broken.first() {
        let message = format!(
            "{}: {}",
            first.id,
            first.message.clone().unwrap_or_default()
        );
        let reason = if message.contains("AccessDenied") {
            "AccessDenied"
        } else if message.contains("NotFound") {
            "TargetNotFound"
        } else {
            "TargetNotBackupable"
        };
        return if broken.len() == active.len() {
            Health::stalled(reason, message)
        } else {
            Health::degraded(
                reason,
                format!(
                    "{} of {} targets cannot be backed up; {message}",
                    broken.len(),
                    active.len()
                ),
            )
        };
    }
    if active.is_empty() {
        return Health::degraded(
            "NoTargets",
            "spec.target.fileSystemSelector matches no file system",
        );
    }
    if let Some((reason, message)) = &outcome.waiting {
        return Health::progressing(reason, message.clone());
    }
    if let Some(failed) = active.iter().find_map(|t| {
        t.last_backup
            .as_ref()
            .filter(|b| b.failure_message.is_some())
            .map(|b| (t, b))
    }) {
        return Health::degraded(
            "BackupFailed",
            format!(
                "backup {} of {} failed: {}",
                failed.1.id,
                failed.0.id,
                failed.1.failure_message.clone().unwrap_or_default()
            ),
        );
    }
    let last_success = status.last_schedule_time.as_ref().map(|t| t.0);
    if let Some(missed) = status
        .last_missed_time
        .as_ref()
        .filter(|m| last_success.is_none_or(|s| m.0 >= s))
    {
        return Health::degraded(
            "MissedSchedule",
            format!("the run at {} was missed; see events", missed.0),
        );
    }
    let next = status
        .next_schedule_time
        .as_ref()
        .map_or_else(|| "never".to_owned(), |t| t.0.to_string());
    if valid.suspended {
        return Health::ready(
            "Suspended",
            "suspended: no new backups; retention continues",
        );
    }
    if active.iter().any(|t| t.last_backup.is_some()) {
        Health::ready(
            "BackupCreated",
            format!("backups are running; next run at {next}"),
        )
    } else {
        Health::ready("Scheduled", format!("first run at {next}"))
    }
}

/// When to look again: the next run, the next poll, a retry, or the next expiry.
fn next_wake<F>(
    valid: &ValidSchedule,
    status: &FsxBackupScheduleStatus,
    outcome: &Outcome,
    ctx: &Context<F>,
    now: Timestamp,
) -> Duration {
    let mut wake = MAX_REQUEUE;
    let until = |t: Timestamp| Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO);
    if let Some(next) = &status.next_schedule_time
        && !valid.suspended
    {
        wake = wake.min(until(next.0));
    }
    if status
        .targets
        .iter()
        .filter_map(|t| t.last_backup.as_ref())
        .any(is_in_flight)
    {
        wake = wake.min(ctx.settings.poll_interval);
    }
    if outcome.retry_soon {
        wake = wake.min(ctx.settings.retry_interval);
    }
    for expiry in status
        .targets
        .iter()
        .flat_map(|t| &t.managed_backups)
        .filter_map(|b| b.expires_at.as_ref())
    {
        wake = wake.min(until(expiry.0));
    }
    wake.max(Duration::from_millis(100))
}

async fn write_status<F>(
    ctx: &Context<F>,
    api: &Api<FsxBackupSchedule>,
    object: &FsxBackupSchedule,
    previous: &FsxBackupScheduleStatus,
    status: FsxBackupScheduleStatus,
) -> Result<(), Error> {
    let previous = object.status.as_ref().map(|_| previous);
    ctx.write_status(api, object, previous, &status).await
}

/// Deletion: under `Delete`, removes every backup this object owns (waiting
/// for in-progress ones); under `Retain`, leaves them. Then the finalizer goes.
async fn cleanup<F: FsxApi>(object: &FsxBackupSchedule, ctx: &Context<F>) -> Result<Action, Error> {
    let key = object_key(object);
    ctx.forget(&key);
    ctx.forget_versions(object);
    let targets: Vec<String> = object
        .status
        .iter()
        .flat_map(|s| &s.targets)
        .map(|t| t.id.clone())
        .collect();
    ctx.metrics.forget_schedule(
        &object.namespace().unwrap_or_default(),
        &object.name_any(),
        &targets,
    );
    let policy = object.spec.deletion_policy.unwrap_or_default();
    if policy == DeletionPolicy::Retain {
        ctx.event(
            object,
            false,
            "BackupsRetained",
            "Delete",
            "deletionPolicy Retain: backups are left in place".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let uid = object.uid().unwrap_or_default();
    let region = object
        .spec
        .region
        .clone()
        .or_else(|| ctx.settings.default_region.clone())
        .ok_or_else(|| Error::CleanupPending("no Region to clean up in".into()))?;
    let mut ids: BTreeSet<String> = object
        .status
        .iter()
        .flat_map(|s| &s.targets)
        .map(|t| t.id.clone())
        .collect();
    ids.extend(object.spec.target.file_system_ids.iter().flatten().cloned());
    ids.extend(object.spec.target.volume_ids.iter().flatten().cloned());
    let mut busy = Vec::new();
    let mut deleted = 0;
    for id in ids {
        let target = if id.starts_with("fsvol-") {
            BackupTarget::Volume(id)
        } else {
            BackupTarget::FileSystem(id)
        };
        let backups = ctx.fsx.describe_backups_of(&region, &target).await?;
        for backup in backups
            .iter()
            .filter(|b| is_owned_by(b, &uid) && b.lifecycle != Lifecycle::Deleted)
        {
            if backup.lifecycle.in_progress() {
                busy.push(backup.id.clone());
                continue;
            }
            match ctx.fsx.delete_backup(&region, &backup.id).await {
                Ok(_) => deleted += 1,
                Err(err) if err.is_retryable() => busy.push(backup.id.clone()),
                Err(err) => return Err(err.into()),
            }
        }
    }
    if !busy.is_empty() {
        return Err(Error::CleanupPending(format!(
            "deletionPolicy Delete: waiting for {} backup(s) still in progress or busy: {}",
            busy.len(),
            busy.join(", ")
        )));
    }
    ctx.event(
        object,
        false,
        "BackupsDeleted",
        "Delete",
        format!("deletionPolicy Delete: {deleted} backup(s) deleted"),
    )
    .await;
    Ok(Action::await_change())
}
