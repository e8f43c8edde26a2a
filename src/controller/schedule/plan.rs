//! What an `FsxBackupSchedule` reconcile decides, with no I/O: given now, the
//! valid spec, the status and what FSx answered, which runs are due or missed,
//! which backups to create, how backups in flight settle, what retention
//! prunes, the health to report and when to look again. The reconciler
//! (`mod.rs`) performs the I/O between these steps and feeds the answers back.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::conditions::{Health, Reason};
use crate::controller::driver::{Applied, Pace};
use crate::controller::effects::{Counter, Effect};
use crate::crd::common::BackupRef;
use crate::crd::schedule::{FsxBackupScheduleStatus, LastBackup, TargetStatus};
use crate::duration::format_duration;
use crate::fsx::{
    Backup, BackupTarget, BackupsById, CreateBackupRequest, FileSystem, FsxError, Lifecycle,
};
use crate::naming::{NameContext, render_backup_name, run_now_token, scheduled_backup_token};
use crate::ownership::{NAME_KEY, SCHEDULED_TIME_KEY, ownership_tags};
use crate::retention::{self, Verdict};
use crate::schedule::due;
use crate::validate::{Targets, ValidSchedule};

const KIND: &str = "FsxBackupSchedule";
/// Managed backups listed per target in status; the count is always exact.
pub const MAX_LISTED_BACKUPS: usize = 20;
/// Longest a reconcile sleeps, so a lost timer never hides a due run for long.
const MAX_REQUEUE: Duration = Duration::from_hours(1);
/// Message of a target no longer selected (statuses written before `notSelected`
/// existed have only this message).
const NOT_SELECTED: &str =
    "no longer selected by spec.target; its backups are still pruned by retention";

/// The object a plan is for, as far as names and tags go.
#[derive(Clone, Debug)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A target the spec selects now, and why it cannot be backed up, if it cannot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    pub id: String,
    pub problem: Option<(Reason, String)>,
}

/// One `CreateBackup` to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    pub target_id: String,
    /// The run it is for (the scheduled instant, or now for run-now).
    pub slot: Timestamp,
    pub run_now: Option<String>,
    pub request: CreateBackupRequest,
}

/// A reconcile being planned: the status being built, what to tell the world
/// once it is written, and what is still waiting.
#[derive(Debug)]
pub struct Work {
    pub status: FsxBackupScheduleStatus,
    pub effects: Vec<Effect>,
    /// The latest transient problem, reported as `Reconciling=True`.
    waiting: Option<(Reason, String)>,
    retry_soon: bool,
    /// Targets whose retention must be planned again.
    retention_due: BTreeSet<String>,
    spec_changed: bool,
    /// A run-now create met a transient error: the nonce is not done yet.
    run_now_pending: bool,
}

impl Work {
    /// Starts from the object's status, upgrading what older versions wrote.
    pub fn start(previous: Option<&FsxBackupScheduleStatus>, generation: Option<i64>) -> Self {
        let mut status = previous.cloned().unwrap_or_default();
        for target in &mut status.targets {
            if target.message.as_deref() == Some(NOT_SELECTED) {
                target.not_selected = Some(true);
            }
            // Before `settled`, a settled backup was the first one listed.
            if let Some(last) = target.last_backup.as_mut()
                && last.settled.is_none()
                && target
                    .managed_backups
                    .first()
                    .is_some_and(|b| b.id == last.id && b.lifecycle == last.lifecycle)
            {
                last.settled = Some(true);
            }
        }
        Self {
            spec_changed: status.observed_generation != generation,
            status,
            effects: Vec::new(),
            waiting: None,
            retry_soon: false,
            retention_due: BTreeSet::new(),
            run_now_pending: false,
        }
    }

    /// Step 1: which run is due (cron in its zone, jitter, deadline); missed runs
    /// are counted. Returns the run to take now, if any.
    pub fn runs(&mut self, now: Timestamp, valid: &ValidSchedule) -> Option<Timestamp> {
        let offset = SignedDuration::try_from(valid.offset).unwrap_or_default();
        let status = &mut self.status;
        let known_slot = match (&status.observed_schedule, &status.next_schedule_time) {
            (Some(key), Some(next)) if *key == valid.schedule_key => {
                next.0.checked_sub(offset).ok()
            }
            _ => None,
        };
        let pending_slot = known_slot.or_else(|| {
            now.checked_sub(offset)
                .ok()
                .and_then(|t| valid.schedule.next_after(t))
        });
        status.observed_schedule = Some(valid.schedule_key.clone());
        let Some(pending_slot) = pending_slot else {
            status.next_schedule_time = None;
            return None;
        };
        let due = due(
            &valid.schedule,
            valid.offset,
            pending_slot,
            now,
            valid.deadline,
        );
        let mut run = None;
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
                self.effects
                    .push(Effect::Count(Counter::MissedRuns, u64::from(due.missed)));
                self.effects
                    .push(Effect::failure("all targets", None, message.clone()));
                self.effects.push(Effect::event(
                    true,
                    Reason::MissedSchedule.as_str(),
                    "Schedule",
                    message,
                ));
            }
            if let Some(slot) = due.run {
                let previous_run = status.last_schedule_time.replace(Time(slot)).map(|t| t.0);
                run = Some(slot);
                if let Some(previous_run) = previous_run.filter(|p| *p < slot) {
                    self.owed_runs_missed(previous_run);
                }
            }
        }
        let status = &mut self.status;
        let next_at = due.next_slot.and_then(|slot| slot.checked_add(offset).ok());
        status.next_schedule_time = next_at.map(Time);
        if let (Some(next), Some(at)) = (due.next_slot, next_at) {
            let interval = valid
                .schedule
                .next_after(next)
                .and_then(|after| Duration::try_from(after.duration_since(next)).ok());
            self.effects.push(Effect::NextRun { at, interval });
        }
        run
    }

    /// Step 2: whether the targets must be resolved again (selectors may match
    /// new file systems at every run).
    pub fn needs_targets(&self, new_run: Option<Timestamp>) -> bool {
        new_run.is_some() || self.spec_changed || self.status.targets.is_empty()
    }

    /// Brings the targets in line with what the spec selects now, keeping the
    /// history of those still there and marking those no longer selected.
    pub fn select(&mut self, selected: &[Selected]) {
        let targets = &mut self.status.targets;
        let mut merged: Vec<TargetStatus> = selected
            .iter()
            .map(|s| {
                let mut entry = targets
                    .iter()
                    .find(|t| t.id == s.id)
                    .cloned()
                    .unwrap_or_else(|| TargetStatus {
                        id: s.id.clone(),
                        ..TargetStatus::default()
                    });
                if entry.not_selected.take() == Some(true) {
                    entry.message = None;
                    entry.reason = None;
                }
                if let Some((reason, message)) = &s.problem {
                    entry.reason = Some(reason.as_str().to_owned());
                    entry.message = Some(message.clone());
                } else if entry.reason.as_deref() == Some(Reason::TargetNotBackupable.as_str()) {
                    entry.reason = None;
                    entry.message = None;
                }
                entry
            })
            .collect();
        for old in targets.drain(..) {
            if !merged.iter().any(|t| t.id == old.id) {
                merged.push(TargetStatus {
                    not_selected: Some(true),
                    message: Some(NOT_SELECTED.to_owned()),
                    reason: None,
                    ..old
                });
            }
        }
        merged.sort_by(|a, b| a.id.cmp(&b.id));
        *targets = merged;
    }

    /// Step 3: the scheduled backups the current run still needs, and the run-now
    /// backups asked for with `nonce`. A run that can no longer be taken in time
    /// for a target is counted as missed for it.
    pub fn creates(
        &mut self,
        now: Timestamp,
        valid: &ValidSchedule,
        owner: &Owner,
        run_now: Option<&str>,
    ) -> Vec<Create> {
        let mut creates = Vec::new();
        let offset = SignedDuration::try_from(valid.offset).unwrap_or_default();
        let run_slot = self
            .status
            .last_schedule_time
            .as_ref()
            .map(|t| t.0)
            .filter(|_| !valid.suspended);
        if let Some(run_slot) = run_slot {
            let late = run_slot
                .checked_add(offset)
                .map_or(SignedDuration::ZERO, |due| now.duration_since(due));
            let too_late = valid
                .deadline
                .is_some_and(|d| late > SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX));
            let superseded = self
                .status
                .next_schedule_time
                .as_ref()
                .is_some_and(|next| next.0 <= now);
            let mut missed = Vec::new();
            for target in self.status.targets.iter_mut().filter(|t| is_backed_up(t)) {
                if target
                    .last_scheduled_time
                    .as_ref()
                    .is_some_and(|t| t.0 >= run_slot)
                {
                    continue;
                }
                if too_late || superseded {
                    target.last_scheduled_time = Some(Time(run_slot));
                    let why = target
                        .message
                        .clone()
                        .unwrap_or_else(|| "the previous backup was still in progress".into());
                    missed.push((target.id.clone(), why));
                    continue;
                }
                creates.push(create(valid, owner, &target.id, run_slot, None));
            }
            for (target, why) in missed {
                self.missed_for_target(&target, run_slot, &why);
            }
        }
        if let Some(nonce) = run_now.filter(|n| !n.is_empty())
            && self.status.last_run_now.as_deref() != Some(nonce)
        {
            for target in self.status.targets.iter().filter(|t| is_backed_up(t)) {
                if target
                    .last_backup
                    .as_ref()
                    .is_some_and(|b| b.run_now.as_deref() == Some(nonce))
                {
                    continue;
                }
                creates.push(create(valid, owner, &target.id, now, Some(nonce)));
            }
        }
        creates
    }

    /// A new run is due while targets still owe the previous one (it kept waiting
    /// behind a backup in progress, or kept failing to be asked for): that run is
    /// missed for them, and counted, not silently dropped.
    fn owed_runs_missed(&mut self, previous_run: Timestamp) {
        let owed: Vec<(String, String)> = self
            .status
            .targets
            .iter_mut()
            .filter(|t| {
                is_backed_up(t)
                    && t.last_scheduled_time
                        .as_ref()
                        .is_none_or(|at| at.0 < previous_run)
            })
            .map(|t| {
                t.last_scheduled_time = Some(Time(previous_run));
                let why = t
                    .message
                    .clone()
                    .unwrap_or_else(|| "the previous backup was still in progress".into());
                (t.id.clone(), why)
            })
            .collect();
        for (target, why) in owed {
            self.missed_for_target(&target, previous_run, &why);
        }
    }

    fn missed_for_target(&mut self, target: &str, run_slot: Timestamp, why: &str) {
        let status = &mut self.status;
        status.missed_runs = Some(status.missed_runs.unwrap_or(0).saturating_add(1));
        status.last_missed_time = Some(Time(run_slot));
        self.effects.push(Effect::Count(Counter::MissedRuns, 1));
        self.effects.push(Effect::failure(
            target,
            None,
            format!("the backup for the run at {run_slot} was not taken in time"),
        ));
        self.effects.push(Effect::event(
            true,
            Reason::MissedSchedule.as_str(),
            "CreateBackup",
            format!("backup of {target} for the run at {run_slot} was not taken in time: {why}"),
        ));
    }

    /// Step 4: what FSx answered to one `CreateBackup`.
    pub fn created(
        &mut self,
        now: Timestamp,
        valid: &ValidSchedule,
        create: &Create,
        answer: Result<Backup, FsxError>,
    ) {
        let Some(target) = self
            .status
            .targets
            .iter_mut()
            .find(|t| t.id == create.target_id)
        else {
            return;
        };
        match answer {
            Ok(backup) => {
                let run = create.run_now.as_ref().map_or_else(
                    || format!("the run at {}", create.slot),
                    |n| format!("run-now `{n}`"),
                );
                self.effects.push(Effect::event(
                    false,
                    "BackupCreated",
                    "CreateBackup",
                    format!("backup {} of {} created for {run}", backup.id, target.id),
                ));
                self.effects.push(Effect::Count(Counter::BackupsCreated, 1));
                if create.run_now.is_none() {
                    target.last_scheduled_time = Some(Time(create.slot));
                    let offset = SignedDuration::try_from(valid.offset).unwrap_or_default();
                    let due = create.slot.checked_add(offset).unwrap_or(create.slot);
                    self.effects.push(Effect::Lateness(
                        now.duration_since(due).as_secs_f64().max(0.0),
                    ));
                }
                target.message = None;
                target.reason = None;
                let mut last = LastBackup {
                    id: backup.id.clone(),
                    scheduled_time: Some(Time(create.slot)),
                    request_time: Some(Time(now)),
                    run_now: create.run_now.clone(),
                    ..LastBackup::default()
                };
                observe(&mut last, &backup);
                target.last_backup = Some(last);
            }
            Err(err) => {
                let FsxError::UserAction { reason, .. } = err else {
                    self.run_now_pending |= create.run_now.is_some();
                    self.transient(&err);
                    return;
                };
                let text = err.to_string();
                if target.message.as_deref() != Some(text.as_str()) {
                    self.effects.push(Effect::event(
                        true,
                        Reason::UserAction(reason).as_str(),
                        "CreateBackup",
                        format!("{}: {text}", target.id),
                    ));
                    self.effects.push(Effect::Count(Counter::BackupsFailed, 1));
                    self.effects.push(Effect::failure(
                        &target.id,
                        None,
                        format!("CreateBackup refused: {text}"),
                    ));
                }
                target.message = Some(text);
                target.reason = Some(Reason::UserAction(reason).as_str().to_owned());
                if create.run_now.is_none() {
                    // The run cannot succeed for this target; the next run tries again.
                    target.last_scheduled_time = Some(Time(create.slot));
                }
            }
        }
    }

    /// Step 4, once every run-now create was answered: the nonce is done unless
    /// a create must be retried (refused ones are reported, not retried).
    pub fn finish_run_now(&mut self, nonce: Option<&str>) {
        if let Some(nonce) = nonce.filter(|n| !n.is_empty())
            && !self.run_now_pending
        {
            self.status.last_run_now = Some(nonce.to_owned());
        }
    }

    /// A failure that the next attempt may not see (throttling, a busy target).
    pub fn transient(&mut self, err: &FsxError) {
        let reason = if err.code() == "BackupInProgress" {
            Reason::WaitingForPreviousBackup
        } else {
            Reason::RetryingAfterError
        };
        self.retry_soon = true;
        self.waiting = Some((reason, err.to_string()));
    }

    /// Step 5: the backups in flight, to look up in one call.
    pub fn in_flight(&self) -> Vec<String> {
        self.status
            .targets
            .iter()
            .filter_map(|t| t.last_backup.as_ref())
            .filter(|b| is_in_flight(b))
            .map(|b| b.id.clone())
            .collect()
    }

    /// Step 5: what the lookup found (`None`: no lookup this time), then settles
    /// every last backup that reached a final state or its timeout.
    pub fn settle(&mut self, now: Timestamp, valid: &ValidSchedule, found: Option<&BackupsById>) {
        let mut effects = Vec::new();
        for target in &mut self.status.targets {
            let Some(last) = target.last_backup.as_mut() else {
                continue;
            };
            if let Some(found) = found.filter(|_| is_in_flight(last)) {
                if let Some(backup) = found.found.iter().find(|b| b.id == last.id) {
                    observe(last, backup);
                } else if found.missing.contains(&last.id) {
                    Lifecycle::Deleted.as_str().clone_into(&mut last.lifecycle);
                    last.failure_message =
                        Some("the backup disappeared before it became AVAILABLE".into());
                }
            }
            if settle(
                now,
                valid,
                target,
                &mut self.status.last_successful_time,
                &mut effects,
            ) {
                self.retention_due.insert(target.id.clone());
            }
        }
        self.effects.extend(effects);
    }

    /// Step 6: targets whose retention must be planned now: something it depends
    /// on changed (a backup settled, the spec, an expiry passed) or never looked.
    pub fn retention_targets(&self, now: Timestamp) -> Vec<String> {
        self.status
            .targets
            .iter()
            .filter(|t| {
                self.spec_changed
                    || t.managed_backup_count.is_none()
                    || self.retention_due.contains(&t.id)
                    || t.managed_backups
                        .iter()
                        .any(|b| b.expires_at.as_ref().is_some_and(|e| e.0 <= now))
            })
            .map(|t| t.id.clone())
            .collect()
    }

    /// Step 6: a target's listing could not be read.
    pub fn listing_failed(&mut self, target_id: &str, err: &FsxError) {
        self.transient(err);
        if let FsxError::UserAction { reason, .. } = err
            && let Some(target) = self.status.targets.iter_mut().find(|t| t.id == target_id)
        {
            target.message = Some(err.to_string());
            target.reason = Some(Reason::UserAction(*reason).as_str().to_owned());
        }
    }

    /// Step 6: what retention did to a target: `plan` over its backups, and the
    /// answer to each deletion sent. A failed deletion is kept and listed as pending.
    pub fn pruned(
        &mut self,
        target_id: &str,
        plan: &retention::Plan,
        deleted: &[(String, Result<(), FsxError>)],
    ) {
        let Some(target) = self.status.targets.iter_mut().find(|t| t.id == target_id) else {
            return;
        };
        let mut kept = Vec::new();
        let mut first_error = None;
        for decision in &plan.decisions {
            match &decision.verdict {
                Verdict::Delete { reason } => {
                    match deleted.iter().find(|(id, _)| *id == decision.backup_id) {
                        Some((_, Ok(()))) => {
                            self.effects.push(Effect::Count(Counter::BackupsDeleted, 1));
                            self.effects.push(Effect::event(
                                false,
                                "BackupPruned",
                                "DeleteBackup",
                                format!(
                                    "backup {} of {} deleted by retention ({})",
                                    decision.backup_id,
                                    target.id,
                                    reason.as_str()
                                ),
                            ));
                        }
                        Some((_, Err(err))) => {
                            kept.push(backup_ref(decision, None, Some("pendingDeletion")));
                            first_error.get_or_insert_with(|| err.clone());
                        }
                        None => {}
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
        target.managed_backup_count = Some(u32::try_from(kept.len()).unwrap_or(u32::MAX));
        kept.truncate(MAX_LISTED_BACKUPS);
        target.managed_backups = kept;
        if let Some(err) = first_error {
            self.listing_failed(target_id, &err);
        }
    }

    /// A failure before any target could be handled (the selector's lookup).
    pub fn lookup_failed(
        mut self,
        now: Timestamp,
        generation: Option<i64>,
        previous: &[Condition],
        pace: Pace,
        err: &FsxError,
    ) -> Applied<FsxBackupScheduleStatus> {
        let health = if let FsxError::UserAction { reason, .. } = err {
            let text = err.to_string();
            if previous.iter().all(|c| c.message != text) {
                self.effects.push(Effect::event(
                    true,
                    Reason::UserAction(*reason).as_str(),
                    "DescribeFileSystems",
                    text.clone(),
                ));
            }
            Health::stalled(Reason::UserAction(*reason), text)
        } else {
            Health::progressing(Reason::RetryingAfterError, err.to_string())
        };
        Applied::with_health(self.status, &health, previous, generation, now)(
            self.effects,
            pace.retry,
        )
    }

    /// Step 7: health and the next wake-up; targets no longer selected and with no
    /// backups left are dropped.
    pub fn finish(
        mut self,
        now: Timestamp,
        valid: &ValidSchedule,
        generation: Option<i64>,
        previous: &[Condition],
        pace: Pace,
    ) -> Applied<FsxBackupScheduleStatus> {
        self.status
            .targets
            .retain(|t| is_selected(t) || t.managed_backup_count.unwrap_or(0) > 0);
        let health = self.health(valid);
        let requeue = self.next_wake(now, valid, pace);
        Applied::with_health(self.status, &health, previous, generation, now)(self.effects, requeue)
    }

    fn health(&self, valid: &ValidSchedule) -> Health {
        let status = &self.status;
        let active: Vec<&TargetStatus> = status.targets.iter().filter(|t| is_selected(t)).collect();
        let broken: Vec<&TargetStatus> = active
            .iter()
            .copied()
            .filter(|t| t.message.is_some())
            .collect();
        if let Some(first) = broken.first() {
            let reason = first
                .reason
                .as_deref()
                .and_then(Reason::parse)
                .unwrap_or(Reason::TargetNotBackupable);
            let message = format!(
                "{}: {}",
                first.id,
                first.message.clone().unwrap_or_default()
            );
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
                Reason::NoTargets,
                "spec.target.fileSystemSelector matches no file system",
            );
        }
        if let Some((reason, message)) = &self.waiting {
            return Health::progressing(*reason, message.clone());
        }
        if let Some((target, failed)) = active.iter().find_map(|t| {
            t.last_backup
                .as_ref()
                .filter(|b| b.failure_message.is_some())
                .map(|b| (t, b))
        }) {
            return Health::degraded(
                Reason::BackupFailed,
                format!(
                    "backup {} of {} failed: {}",
                    failed.id,
                    target.id,
                    failed.failure_message.clone().unwrap_or_default()
                ),
            );
        }
        let last_run = status.last_schedule_time.as_ref().map(|t| t.0);
        if let Some(missed) = status
            .last_missed_time
            .as_ref()
            .filter(|m| last_run.is_none_or(|s| m.0 >= s))
        {
            return Health::degraded(
                Reason::MissedSchedule,
                format!("the run at {} was missed; see events", missed.0),
            );
        }
        if valid.suspended {
            return Health::ready(
                Reason::Suspended,
                "suspended: no new backups; retention continues",
            );
        }
        let next = status
            .next_schedule_time
            .as_ref()
            .map_or_else(|| "never".to_owned(), |t| t.0.to_string());
        if active.iter().any(|t| t.last_backup.is_some()) {
            Health::ready(
                Reason::BackupCreated,
                format!("backups are running; next run at {next}"),
            )
        } else {
            Health::ready(Reason::Scheduled, format!("first run at {next}"))
        }
    }

    /// When to look again: the next run, the next poll, a retry, or the next expiry.
    fn next_wake(&self, now: Timestamp, valid: &ValidSchedule, pace: Pace) -> Duration {
        let status = &self.status;
        let until =
            |t: Timestamp| Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO);
        let mut wake = MAX_REQUEUE;
        if let Some(next) = status
            .next_schedule_time
            .as_ref()
            .filter(|_| !valid.suspended)
        {
            wake = wake.min(until(next.0));
        }
        if !self.in_flight().is_empty() {
            wake = wake.min(pace.poll);
        }
        if self.retry_soon {
            wake = wake.min(pace.retry);
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
}

/// The file systems a selector matches now, and those it matches but cannot back up.
pub fn select_file_systems(targets: &Targets, file_systems: Vec<FileSystem>) -> Vec<Selected> {
    let (tags, types) = match targets {
        Targets::Ids(ids) => {
            return ids
                .iter()
                .map(|t| Selected {
                    id: t.id().to_owned(),
                    problem: None,
                })
                .collect();
        }
        Targets::Selector { tags, types } => (tags, types),
    };
    let mut matched: Vec<Selected> = file_systems
        .into_iter()
        .filter(|fs| tags.iter().all(|(k, v)| fs.tags.get(k) == Some(v)))
        .filter(|fs| types.is_empty() || types.iter().any(|t| t.as_str() == fs.file_system_type))
        .filter(|fs| fs.lifecycle != "DELETING")
        .map(|fs| Selected {
            problem: (fs.file_system_type == "ONTAP").then(|| {
                (
                    Reason::TargetNotBackupable,
                    "ONTAP file systems are backed up per volume: list its volumes in spec.target.volumeIds".to_owned(),
                )
            }),
            id: fs.id,
        })
        .collect();
    matched.sort_by(|a, b| a.id.cmp(&b.id));
    matched
}

/// The backups retention deletes from `plan`, oldest first (an interrupted pass
fn is_selected(target: &TargetStatus) -> bool {
    target.not_selected != Some(true)
}

/// Selected, and not known to be impossible to back up as such (an ONTAP file
/// system matched by a selector): FSx is not asked for what it must refuse.
fn is_backed_up(target: &TargetStatus) -> bool {
    is_selected(target) && target.reason.as_deref() != Some(Reason::TargetNotBackupable.as_str())
}

/// A backup whose final state is not yet known and that is not given up on.
fn is_in_flight(backup: &LastBackup) -> bool {
    Lifecycle::parse(&backup.lifecycle).in_progress() && backup.failure_message.is_none()
}

fn create(
    valid: &ValidSchedule,
    owner: &Owner,
    target_id: &str,
    time: Timestamp,
    run_now: Option<&str>,
) -> Create {
    Create {
        target_id: target_id.to_owned(),
        slot: time,
        run_now: run_now.map(str::to_owned),
        request: backup_request(valid, owner, target_id, time, run_now),
    }
}

/// The `CreateBackup` for `target_id` at `time`: ownership and user tags, the
/// rendered name, and a token that makes a replay the same call.
pub fn backup_request(
    valid: &ValidSchedule,
    owner: &Owner,
    target_id: &str,
    time: Timestamp,
    run_now: Option<&str>,
) -> CreateBackupRequest {
    // Validation rendered the template with the longest id: it cannot fail here.
    let name = render_backup_name(
        &valid.name_template,
        &NameContext {
            schedule: &owner.name,
            namespace: &owner.namespace,
            target: target_id,
            time,
        },
    )
    .unwrap_or_else(|_| format!("{}-{target_id}", owner.name));
    let mut tags = valid.tags.clone();
    tags.extend(ownership_tags(
        KIND,
        &owner.namespace,
        &owner.name,
        &owner.uid,
    ));
    tags.insert(
        SCHEDULED_TIME_KEY.into(),
        time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    tags.insert(NAME_KEY.into(), name);
    let client_request_token = match run_now {
        Some(nonce) => run_now_token(&owner.uid, target_id, nonce),
        None => scheduled_backup_token(&owner.uid, target_id, time),
    };
    CreateBackupRequest {
        target: BackupTarget::from_id(target_id),
        client_request_token,
        tags,
    }
}

fn observe(last: &mut LastBackup, backup: &Backup) {
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

/// Acts once on a last backup that reached a final state or its timeout: events,
/// success time, metrics. True when it settled now (retention should look).
fn settle(
    now: Timestamp,
    valid: &ValidSchedule,
    target: &mut TargetStatus,
    last_successful_time: &mut Option<Time>,
    effects: &mut Vec<Effect>,
) -> bool {
    let Some(last) = target.last_backup.as_mut() else {
        return false;
    };
    if last.settled == Some(true) {
        return false;
    }
    let lifecycle = Lifecycle::parse(&last.lifecycle);
    if lifecycle.in_progress() && last.failure_message.is_none() {
        // From when the operator asked FSx for it: a run taken late (operator down,
        // waiting behind the previous backup) gets its whole timeout.
        let started = last
            .request_time
            .as_ref()
            .or(last.scheduled_time.as_ref())
            .map_or(now, |t| t.0);
        let timeout = SignedDuration::try_from(valid.backup_timeout).unwrap_or(SignedDuration::MAX);
        if now.duration_since(started) < timeout {
            return false;
        }
        last.failure_message = Some(format!(
            "still {} after backupTimeout {}",
            last.lifecycle,
            format_duration(valid.backup_timeout)
        ));
    }
    last.settled = Some(true);
    if lifecycle == Lifecycle::Available && last.failure_message.is_none() {
        if last_successful_time.as_ref().is_none_or(|t| t.0 < now) {
            *last_successful_time = Some(Time(now));
        }
        let note = format!("backup {} of {} is AVAILABLE", last.id, target.id);
        effects.push(Effect::event(
            false,
            "BackupAvailable",
            "CreateBackup",
            note.clone(),
        ));
        effects.push(Effect::LastSuccess {
            target: target.id.clone(),
            at: now,
        });
        effects.push(Effect::success(&target.id, Some(&last.id), note));
    } else if let Some(message) = &last.failure_message {
        let note = format!("backup {} of {} failed: {message}", last.id, target.id);
        effects.push(Effect::Count(Counter::BackupsFailed, 1));
        effects.push(Effect::failure(&target.id, Some(&last.id), note.clone()));
        effects.push(Effect::event(
            true,
            Reason::BackupFailed.as_str(),
            "CreateBackup",
            note,
        ));
    }
    // Listed at once; the retention pass that follows rewrites the list from FSx.
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
    true
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

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
