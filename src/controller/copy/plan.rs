//! What an `FsxBackupCopy` reconcile decides, with no I/O: which source backups
//! to copy and whether they can be copied yet, how copies in flight settle, what
//! to ask FSx for, what retention prunes, the health to report and when to look
//! again. Copy slots are shared process state and stay with the reconciler.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::conditions::{Health, Reason};
use crate::controller::brake::{self, BrakeCheck};
use crate::controller::driver::{Applied, Pace};
use crate::controller::effects::{Counter, Effect};
use crate::crd::copy::{CopyStatus, FsxBackupCopyStatus};
use crate::fsx::{Backup, BackupsById, CopyBackupRequest, FsxError, Lifecycle};
use crate::naming::copy_token;
pub use crate::ownership::Owner;
use crate::ownership::{NAME_KEY, SOURCE_BACKUP_KEY, fit_tags, is_owned_by};
use crate::retention::{self, Verdict};
use crate::validate::{Source, ValidCopy};

pub use super::phase::{CopyPhase, is_copying, is_pending};

pub const KIND: &str = "FsxBackupCopy";
/// Settled copies listed in status; entries still in progress are never dropped.
const MAX_LISTED_COPIES: usize = 50;
const MAX_REQUEUE: Duration = Duration::from_hours(1);

/// A reconcile being planned.
#[derive(Debug)]
pub struct Work {
    pub status: FsxBackupCopyStatus,
    pub effects: Vec<Effect>,
    pub spec_changed: bool,
    retry_soon: bool,
    waiting: Option<(Reason, String)>,
    stalled: Option<(Reason, String)>,
    /// A copy settled or the sources were scanned: retention should look.
    pub retention_due: bool,
    next_expiry: Option<Timestamp>,
    /// The object's `metadata.generation` being reconciled.
    generation: Option<i64>,
    /// When the object was created: a new object's RPO clock starts there.
    created: Option<Timestamp>,
    /// What the followed schedule says about its objective, when it could be read.
    followed: Option<objective::Followed>,
    /// Per source target, the newest AVAILABLE copy a destination listing found.
    listed: Option<std::collections::BTreeMap<String, Option<Timestamp>>>,
}

impl Work {
    /// Starts from the object's status; a new spec gets another try at blocked copies.
    pub fn start(previous: Option<&FsxBackupCopyStatus>, generation: Option<i64>) -> Self {
        let mut status = previous.cloned().unwrap_or_default();
        let spec_changed = status.observed_generation != generation;
        if spec_changed {
            for entry in status
                .copies
                .iter_mut()
                .filter(|c| CopyPhase::of(c) == CopyPhase::Blocked)
            {
                CopyPhase::WaitingForSource.set(entry);
                entry.reason = None;
            }
        }
        Self {
            status,
            effects: Vec::new(),
            spec_changed,
            retry_soon: false,
            waiting: None,
            stalled: None,
            retention_due: false,
            next_expiry: None,
            generation,
            created: None,
            followed: None,
            listed: None,
        }
    }

    /// When the object was created (its RPO clock's start).
    #[must_use]
    pub fn created(mut self, at: Option<Timestamp>) -> Self {
        self.created = at;
        self
    }

    pub fn is_stalled(&self) -> bool {
        self.stalled.is_some()
    }

    fn entry(&mut self, source_id: &str) -> &mut CopyStatus {
        let copies = &mut self.status.copies;
        let index = copies
            .iter()
            .position(|c| c.source_backup_id == source_id)
            .unwrap_or_else(|| {
                copies.push(CopyStatus {
                    source_backup_id: source_id.to_owned(),
                    lifecycle: CopyPhase::WaitingForSource.as_str().to_owned(),
                    ..CopyStatus::default()
                });
                copies.len() - 1
            });
        &mut copies[index]
    }

    /// One-shot mode: whether the one source must be looked up (still pending).
    pub fn one_shot_pending(&mut self, id: &str) -> bool {
        is_pending(self.entry(id))
    }

    /// One-shot mode: what FSx says about the source backup.
    pub fn one_shot_source(
        &mut self,
        id: &str,
        region: &str,
        found: Result<BackupsById, FsxError>,
    ) {
        let found = match found {
            Ok(found) => found,
            Err(err) => return self.error(&err),
        };
        let entry = self.entry(id);
        let Some(source) = found.found.first() else {
            CopyPhase::Blocked.set(entry);
            entry.reason = Some(Reason::SourceNotFound.as_str().into());
            entry.message = Some(format!("source backup {id} was not found in {region}"));
            return;
        };
        note_source(entry, source);
        if source.lifecycle == Lifecycle::Failed {
            CopyPhase::Blocked.set(entry);
            entry.reason = Some(Reason::SourceFailed.as_str().into());
            entry.message = Some("the source backup FAILED; it cannot be copied".into());
        }
        if let Some(target) = &source.target {
            self.add_source_target(target.id());
        }
    }

    /// Follow mode: the followed schedule cannot be used (missing or invalid).
    pub fn waiting_for_schedule(&mut self, message: String) {
        self.waiting = Some((Reason::WaitingForSchedule, message));
    }

    /// Follow mode: the schedule's Region and the destination are in different partitions.
    pub fn cross_partition(&mut self, destination: &str, region: &str) {
        self.stalled = Some((
            Reason::InvalidSpec,
            format!(
                "spec.destinationRegion: {destination} is in another partition than the schedule's Region {region}; FSx cannot copy across partitions"
            ),
        ));
    }

    pub fn add_source_target(&mut self, target: &str) {
        if !self.status.source_targets.iter().any(|t| t == target) {
            self.status.source_targets.push(target.to_owned());
        }
    }

    /// Follow mode: the schedule's backups its retention keeps. Those newer than
    /// `copiedThrough` (and not so old that this object's `maxAge` would delete
    /// the copy at once) are queued once AVAILABLE; the watermark moves over the
    /// settled prefix, never past a source still pending.
    pub fn follow(&mut self, now: Timestamp, valid: &ValidCopy, mut sources: Vec<Backup>) {
        let through = self.status.copied_through.as_ref().map(|t| t.0);
        let too_old = valid
            .retention
            .as_ref()
            .and_then(|p| p.max_age)
            .and_then(|age| jiff::SignedDuration::try_from(age).ok())
            .and_then(|age| now.checked_sub(age).ok());
        sources.sort_by_key(|b| b.created_at);
        for source in &sources {
            let created = source.created_at.unwrap_or(now);
            let known = self
                .status
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
            note_source(self.entry(&source.id), source);
        }
        let mut watermark = through;
        for source in &sources {
            let created = source.created_at.unwrap_or(now);
            if through.is_some_and(|t| created <= t) {
                continue;
            }
            let settled = source.lifecycle == Lifecycle::Failed
                || self
                    .status
                    .copies
                    .iter()
                    .find(|c| c.source_backup_id == source.id)
                    .is_none_or(|c| !is_pending(c));
            if !settled {
                break;
            }
            watermark = Some(created);
        }
        self.status.copied_through = watermark.map(Time);
        self.retention_due = true;
    }

    /// Copies accepted by FSx and not finished: `(source, destination copy)`.
    pub fn copying(&self) -> Vec<(String, String)> {
        self.status
            .copies
            .iter()
            .filter(|c| is_copying(c))
            .filter_map(|c| Some((c.source_backup_id.clone(), c.destination_backup_id.clone()?)))
            .collect()
    }

    /// What the lookup of the copies in flight found. Returns the sources whose
    /// copies finished (their slots are free).
    pub fn observe_copies(
        &mut self,
        now: Timestamp,
        destination: &str,
        found: Result<BackupsById, FsxError>,
    ) -> Vec<String> {
        let found = match found {
            Ok(found) => found,
            Err(err) => {
                self.error(&err);
                return Vec::new();
            }
        };
        let mut finished = Vec::new();
        for (source, id) in self.copying() {
            let observed = if let Some(copy) = found.found.iter().find(|b| b.id == id) {
                copy.clone()
            } else if found.missing.contains(&id) {
                Backup {
                    failure_message: Some("the copy disappeared before it became AVAILABLE".into()),
                    ..gone(&id)
                }
            } else {
                continue;
            };
            if self.settle(now, destination, &source, &observed) {
                finished.push(source);
            }
        }
        finished
    }

    /// Records FSx's view of the copy of `source`; when final, reports it once.
    /// True when it settled now.
    fn settle(&mut self, now: Timestamp, destination: &str, source: &str, copy: &Backup) -> bool {
        let entry = self.entry(source);
        // Progress is recorded with a lifecycle change only: one status write per
        // poll of a long copy would be most of the apiserver's load.
        if entry.lifecycle != copy.lifecycle.as_str() {
            entry.progress_percent = copy.progress_percent;
        }
        if copy.lifecycle == Lifecycle::Failed || copy.lifecycle == Lifecycle::Deleted {
            entry.message = copy
                .failure_message
                .clone()
                .or_else(|| Some("FSx reports the copy FAILED".into()));
        }
        CopyPhase::Fsx(copy.lifecycle.clone()).set(entry);
        if copy.lifecycle.in_progress() {
            return false;
        }
        entry.completion_time = Some(Time(now));
        let id = &copy.id;
        if copy.lifecycle == Lifecycle::Available {
            let note = format!("copy {id} of {source} is AVAILABLE in {destination}");
            self.status.last_copy_time = Some(Time(now));
            self.effects
                .push(Effect::success(source, Some(id), note.clone()));
            self.effects.extend(Effect::done(
                Counter::CopiesCompleted,
                "CopyCompleted",
                "CopyBackup",
                note,
            ));
        } else {
            let note = format!(
                "copy {id} of {source} is {}: {}",
                copy.lifecycle.as_str(),
                entry.message.clone().unwrap_or_default()
            );
            self.effects.extend(Effect::failed(
                (Counter::CopiesFailed, 1),
                source,
                Some(id),
                Reason::CopyFailed,
                "CopyBackup",
                note,
            ));
        }
        self.retention_due = true;
        true
    }

    /// Queued copies, oldest source first.
    pub fn queued(&self) -> Vec<String> {
        let mut queued: Vec<&CopyStatus> = self
            .status
            .copies
            .iter()
            .filter(|c| CopyPhase::of(c) == CopyPhase::Queued)
            .collect();
        queued.sort_by_key(|c| c.source_creation_time.as_ref().map(|t| t.0));
        queued
            .into_iter()
            .map(|c| c.source_backup_id.clone())
            .collect()
    }

    /// No copy slot for `source` now.
    pub fn no_slot(&mut self, source: &str, destination: &str, why: Option<&FsxError>) {
        let entry = self.entry(source);
        entry.message = Some(match why {
            Some(err) => format!("waiting for a copy slot in {destination}: {err}"),
            None => format!("waiting for a copy slot in {destination}"),
        });
        if why.is_some() {
            self.retry_soon = true;
        }
    }

    /// Copies wait for a slot: `Reconciling` until one frees.
    pub fn out_of_slots(&mut self, destination: &str, limit: usize) {
        self.waiting.get_or_insert((
            Reason::WaitingForCopySlot,
            format!("copies wait for one of the {limit} copy slots in {destination}"),
        ));
    }

    /// What FSx answered to `CopyBackup` for `source`. Returns whether the copy
    /// holds its slot (accepted and still in progress).
    pub fn started(
        &mut self,
        now: Timestamp,
        valid: &ValidCopy,
        source: &str,
        answer: Result<Backup, FsxError>,
    ) -> bool {
        let destination = &valid.destination_region;
        match answer {
            Ok(copy) => {
                let entry = self.entry(source);
                entry.destination_backup_id = Some(copy.id.clone());
                entry.start_time = Some(Time(now));
                entry.message = None;
                CopyPhase::Fsx(copy.lifecycle.clone()).set(entry);
                // No event: a copy's one Normal event is when it is AVAILABLE
                // (the status and `copies_started_total` show it started).
                self.effects.push(Effect::Count(Counter::CopiesStarted, 1));
                // A replayed token can answer with a copy that already finished.
                !self.settle(now, destination, source, &copy)
            }
            Err(err @ FsxError::CopySlotsFull { .. }) => {
                // Copies started elsewhere fill FSx's limit: back in the queue.
                self.no_slot(source, destination, Some(&err));
                false
            }
            Err(err @ FsxError::UserAction { .. }) => {
                let FsxError::UserAction { reason, .. } = err else {
                    return false;
                };
                let entry = self.entry(source);
                CopyPhase::Blocked.set(entry);
                entry.reason = Some(Reason::UserAction(reason).as_str().to_owned());
                entry.message = Some(err.to_string());
                self.effects.extend(Effect::failed(
                    (Counter::CopiesFailed, 1),
                    source,
                    None,
                    Reason::UserAction(reason),
                    "CopyBackup",
                    format!("CopyBackup of {source} refused: {err}"),
                ));
                self.stalled = Some((Reason::UserAction(reason), err.to_string()));
                false
            }
            Err(err @ FsxError::NotFound { .. }) => {
                self.source_gone(valid, source, &err);
                false
            }
            Err(err) => {
                self.entry(source).message = Some(err.to_string());
                self.error(&err);
                false
            }
        }
    }

    /// `CopyBackup` found no source: a one-shot copy waits for a spec change; in
    /// follow mode the schedule pruned it first, which is reported once (a copy
    /// that did not happen is never silent) and not retried.
    fn source_gone(&mut self, valid: &ValidCopy, source: &str, err: &FsxError) {
        let one_shot = matches!(valid.source, Source::Backup { .. });
        let entry = self.entry(source);
        entry.reason = Some(Reason::SourceNotFound.as_str().to_owned());
        entry.message = Some(format!("the source backup no longer exists: {err}"));
        if one_shot {
            CopyPhase::Blocked.set(entry);
            return;
        }
        CopyPhase::SourceGone.set(entry);
        self.effects.extend(Effect::failed(
            (Counter::CopiesFailed, 1),
            source,
            None,
            Reason::SourceNotFound,
            "CopyBackup",
            format!(
                "{source} was deleted before it could be copied to {}; it will not be copied",
                valid.destination_region
            ),
        ));
    }

    /// An FSx error: `Stalled` when only a person can fix it, otherwise retried.
    pub fn error(&mut self, err: &FsxError) {
        if let FsxError::UserAction { reason, .. } = err {
            self.stalled = Some((Reason::UserAction(*reason), err.to_string()));
            return;
        }
        self.retry_soon = true;
        self.waiting
            .get_or_insert((Reason::RetryingAfterError, err.to_string()));
    }
}

fn note_source(entry: &mut CopyStatus, source: &Backup) {
    // Also for settled entries: those made before the field existed get it.
    entry.target = source.target.as_ref().map(|t| t.id().to_owned());
    if !is_pending(entry) {
        return;
    }
    entry.source_creation_time = source.created_at.map(Time);
    if source.lifecycle == Lifecycle::Available {
        CopyPhase::Queued.set(entry);
        entry.message = None;
    } else {
        CopyPhase::WaitingForSource.set(entry);
        entry.message = Some(format!(
            "the source backup is {}; copied once AVAILABLE",
            source.lifecycle.as_str()
        ));
    }
}

fn gone(id: &str) -> Backup {
    Backup {
        id: id.to_owned(),
        arn: None,
        lifecycle: Lifecycle::Deleted,
        backup_type: None,
        progress_percent: None,
        created_at: None,
        tags: std::collections::BTreeMap::new(),
        failure_message: None,
        target: None,
        source_backup_id: None,
        source_region: None,
    }
}

/// The `CopyBackup` for `source`: ownership tags (over the source's, with
/// `copyTags`) and a token that makes a replay the same call.
pub fn copy_request(
    valid: &ValidCopy,
    owner: &Owner,
    source: &str,
    source_region: &str,
) -> CopyBackupRequest {
    let mut tags = valid.tags.clone();
    if !valid.copy_tags {
        tags.insert(NAME_KEY.into(), format!("{}-{source}", owner.name));
    }
    // Last, so they win over the source's tags that `copyTags` brings along.
    tags.extend(owner.tags(KIND));
    tags.insert(SOURCE_BACKUP_KEY.into(), source.to_owned());
    fit_tags(&mut tags);
    CopyBackupRequest {
        source_backup_id: source.to_owned(),
        source_region: source_region.to_owned(),
        kms_key_id: valid.kms_key_id.clone(),
        copy_tags: valid.copy_tags,
        tags,
        client_request_token: copy_token(&owner.uid, source),
    }
}

mod destination;
mod objective;
mod report;

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
