//! What an `FsxBackupSchedule` reconcile decides, with no I/O: given now, the
//! valid spec, the status and what FSx answered, which runs are due or missed,
//! which backups to create, how backups in flight settle, what retention
//! prunes, the health to report and when to look again. The reconciler
//! (`mod.rs`) performs the I/O between these steps and feeds the answers back.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::conditions::{Health, Reason};
use crate::controller::driver::{Applied, Pace};
use crate::controller::effects::{Counter, Effect};
use crate::crd::common::BackupRef;
use crate::crd::schedule::{FsxBackupScheduleStatus, LastBackup, RunNowRequest, TargetStatus};
use crate::duration::format_duration;
use crate::fsx::{
    Backup, BackupTarget, BackupsById, CreateBackupRequest, FileSystem, FsxError, Lifecycle,
};
use crate::naming::{NameContext, render_backup_name, run_now_token, scheduled_backup_token};
pub use crate::ownership::Owner;
use crate::ownership::{NAME_KEY, SCHEDULED_TIME_KEY};
use crate::retention::{self, Verdict};
use crate::schedule::due;
use crate::validate::{Targets, ValidSchedule};

pub const KIND: &str = "FsxBackupSchedule";
/// Managed backups listed per target in status; the count is always exact.
pub const MAX_LISTED_BACKUPS: usize = 20;
/// Longest a reconcile sleeps, so a lost timer never hides a due run for long.
const MAX_REQUEUE: Duration = Duration::from_hours(1);
/// Message of a target no longer selected (statuses written before `notSelected`
/// existed have only this message).
const NOT_SELECTED: &str =
    "no longer selected by spec.target; its backups are still pruned by retention";

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
    /// The object's `metadata.generation` being reconciled.
    generation: Option<i64>,
    /// Targets whose deletions the deletion brake held, and what retention had
    /// not run to the end for (a listing failed): `retentionGeneration` waits.
    retention: RetentionProgress,
    /// A run-now create met a transient error: the nonce is not done yet.
    run_now_pending: bool,
    /// Runs the schedule passed over, to be counted as missed for each target
    /// that has no backup of them in FSx (see `plan/misses.rs`).
    passed_over: PassedOver,
    /// What the status as read leaves to check against FSx later: the runs
    /// from this one on (not recorded as taken), and the run taken last with
    /// the targets that still owe it. A backup of such a run may be all that is
    /// left of a create whose status write or answer was lost: retention keeps
    /// it until the status accounts for its run, so the check for missed runs
    /// finds it (see `deletable`).
    unrecorded_from: Option<Timestamp>,
    owed: Option<(Timestamp, BTreeSet<String>)>,
    /// Backups asked for in this reconcile: FSx's answer told their state, so
    /// they are not looked up again until the next poll.
    asked: Vec<String>,
    /// The status must be written before anything is asked of FSx (a run-now
    /// request, recorded first so every attempt is the same request).
    checkpoint: bool,
    /// Targets whose backups were listed in this reconcile (retention): their
    /// recovery point is what the listing shows.
    listed: BTreeSet<String>,
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
        let owed = status.last_schedule_time.as_ref().map(|run| {
            let owing = status
                .targets
                .iter()
                .filter(|t| owes(t, run.0))
                .map(|t| t.id.clone())
                .collect();
            (run.0, owing)
        });
        Self {
            generation,
            retention: RetentionProgress::default(),
            status,
            effects: Vec::new(),
            waiting: None,
            retry_soon: false,
            retention_due: BTreeSet::new(),
            run_now_pending: false,
            passed_over: PassedOver::default(),
            owed,
            asked: Vec::new(),
            unrecorded_from: None,
            checkpoint: false,
            listed: BTreeSet::new(),
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
        let upcoming = now
            .checked_sub(offset)
            .ok()
            .and_then(|t| valid.schedule.next_after(t));
        // Status is input, not truth: a slot before the object existed or past the
        // next one due is an edit, and can neither invent misses nor hold runs back.
        let created = valid
            .created
            .and_then(|c| {
                c.checked_sub(offset)
                    .ok()?
                    .checked_sub(SignedDuration::from_secs(1))
                    .ok()
            })
            .and_then(|c| valid.schedule.next_after(c));
        let pending_slot = match known_slot {
            Some(slot) if created.is_some_and(|first| slot < first) => created,
            Some(slot) if upcoming.is_some_and(|next| slot > next) => upcoming,
            Some(slot) => Some(slot),
            None => upcoming,
        };
        status.observed_schedule = Some(valid.schedule_key.clone());
        self.unrecorded_from = pending_slot;
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
                let listed = u32::try_from(due.missed_slots.len()).unwrap_or(u32::MAX);
                self.passed_over.unlisted = due.missed.saturating_sub(listed);
                self.passed_over.slots.clone_from(&due.missed_slots);
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

    /// The spec changed since the status was written (the driver records
    /// `observedGeneration` only after the plan).
    fn spec_changed(&self) -> bool {
        self.status.observed_generation != self.generation
    }

    /// Whether this reconcile records a run-now request before going on: it
    /// asks FSx nothing more until that is written.
    pub fn checkpointing(&self) -> bool {
        self.checkpoint
    }

    /// Step 2: whether the targets must be resolved again (selectors may match
    /// new file systems at every run).
    pub fn needs_targets(&self, new_run: Option<Timestamp>) -> bool {
        new_run.is_some() || self.spec_changed() || self.status.targets.is_empty()
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
            let requested = match &self.status.run_now_request {
                Some(request) if request.nonce == nonce => request.request_time.0,
                _ => {
                    // Recorded first, before anything is asked of FSx: every
                    // attempt from here on is the same request, and a crash
                    // cannot lose it. The scheduled creates follow with it.
                    self.status.run_now_request = Some(RunNowRequest {
                        nonce: nonce.to_owned(),
                        request_time: Time(now),
                    });
                    self.run_now_pending = true;
                    self.checkpoint = true;
                    return Vec::new();
                }
            };
            for target in self.status.targets.iter().filter(|t| is_backed_up(t)) {
                if target
                    .last_backup
                    .as_ref()
                    .is_some_and(|b| b.run_now.as_deref() == Some(nonce))
                {
                    continue;
                }
                creates.push(create(valid, owner, &target.id, requested, Some(nonce)));
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
            .filter(|t| owes(t, previous_run))
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

    /// `target` did not get its backup of the run at `run_slot`: a miss, once FSx
    /// confirms it has none (see `plan/misses.rs`).
    fn missed_for_target(&mut self, target: &str, run_slot: Timestamp, why: &str) {
        self.passed_over
            .of_target
            .push((target.to_owned(), run_slot, why.to_owned()));
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
                // No event: a run's one Normal event is when its backup is
                // AVAILABLE (the status and `backups_created_total` show it was made).
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
                self.asked.push(backup.id);
            }
            Err(err) => {
                let FsxError::UserAction { reason, .. } = err else {
                    self.run_now_pending |= create.run_now.is_some();
                    self.transient(&err);
                    return;
                };
                let text = err.to_string();
                if target.message.as_deref() != Some(text.as_str()) {
                    self.effects.extend(Effect::failed(
                        (Counter::BackupsFailed, 1),
                        &target.id,
                        None,
                        Reason::UserAction(reason),
                        "CreateBackup",
                        format!("CreateBackup of {} refused: {text}", target.id),
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
            self.status.run_now_request = None;
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
}

/// Whether a reconcile of a schedule in this state is expected to start a
/// backup now: its next run is due, or a run-now request is not done yet. A
/// hint for which reconciles act first (see `gates`), never a decision:
/// [`Work::runs`] and [`Work::creates`] decide.
pub fn starts_a_run(
    status: Option<&FsxBackupScheduleStatus>,
    suspended: bool,
    run_now: Option<&str>,
    now: Timestamp,
) -> bool {
    let Some(status) = status else {
        return false;
    };
    let due = !suspended
        && status
            .next_schedule_time
            .as_ref()
            .is_some_and(|next| next.0 <= now);
    let asked = run_now.is_some_and(|n| !n.is_empty() && status.last_run_now.as_deref() != Some(n));
    due || asked
}

fn is_selected(target: &TargetStatus) -> bool {
    target.not_selected != Some(true)
}

/// Selected, and not known to be impossible to back up as such (an ONTAP file
/// system matched by a selector): FSx is not asked for what it must refuse.
fn is_backed_up(target: &TargetStatus) -> bool {
    is_selected(target) && target.reason.as_deref() != Some(Reason::TargetNotBackupable.as_str())
}

/// Whether `target` is backed up and has no backup or counted miss of `run` yet.
fn owes(target: &TargetStatus, run: Timestamp) -> bool {
    is_backed_up(target)
        && target
            .last_scheduled_time
            .as_ref()
            .is_none_or(|at| at.0 < run)
}

/// A backup whose final state is not yet known and that is not given up on.
fn is_in_flight(backup: &LastBackup) -> bool {
    Lifecycle::parse(&backup.lifecycle).in_progress() && backup.failure_message.is_none()
}

mod brake;
mod misses;
mod objective;
mod report;
mod request;
mod settle;

use brake::RetentionProgress;
use misses::PassedOver;
use request::create;
pub use request::{backup_request, select_file_systems};
use settle::observe;

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
