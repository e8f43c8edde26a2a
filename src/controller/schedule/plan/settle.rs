//! Backups in flight settling, and what retention did: steps 5 and 6 of a
//! schedule reconcile.

use super::{
    Backup, BackupRef, BackupsById, Counter, Effect, FsxError, LastBackup, Lifecycle,
    MAX_LISTED_BACKUPS, Reason, SignedDuration, TargetStatus, Time, Timestamp, ValidSchedule,
    Verdict, Work, format_duration, is_in_flight, retention,
};
use crate::ownership::is_owned_by;

/// `keptBy` of a backup whose deletion failed and is retried at the retry pace.
const PENDING_DELETION: &str = "pendingDeletion";
/// `keptBy` of a backup the deletion brake keeps until its generation is approved.
const DELETION_HELD: &str = "deletionHeld";

impl Work {
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

    /// Step 5: the backups in flight to look up now: not those just asked for,
    /// whose state FSx's answer told (a lookup at once would only cost a call,
    /// and under the rate limit delay the next run's create).
    pub fn to_poll(&self) -> Vec<String> {
        let mut ids = self.in_flight();
        ids.retain(|id| !self.asked.contains(id));
        ids
    }

    /// Step 5: what the lookup found (`None`: no lookup this time), then settles
    /// every last backup that reached a final state or its timeout. A backup the
    /// object `owner_uid` does not own (a status edited to name it) is dropped
    /// from the status, never reported as this object's success.
    pub fn settle(
        &mut self,
        now: Timestamp,
        valid: &ValidSchedule,
        owner_uid: &str,
        found: Option<&BackupsById>,
    ) {
        let mut effects = Vec::new();
        for target in &mut self.status.targets {
            let Some(last) = target.last_backup.as_mut() else {
                continue;
            };
            if let Some(found) = found.filter(|_| is_in_flight(last)) {
                let backup = found.found.iter().find(|b| b.id == last.id);
                if let Some(foreign) = backup.filter(|b| !is_owned_by(b, owner_uid)) {
                    effects.push(Effect::event(
                        true,
                        "StatusCorrected",
                        "DescribeBackups",
                        format!(
                            "status named {} as the last backup of {}, but this object did not make it; ignored",
                            foreign.id, target.id
                        ),
                    ));
                    target.last_backup = None;
                    continue;
                }
                if let Some(backup) = backup {
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
                self.retention_pending()
                    || t.managed_backup_count.is_none()
                    || self.retention_due.contains(&t.id)
                    || t.managed_backups.iter().any(|b| {
                        // Expired, or a deletion a transient error deferred: again now.
                        b.expires_at.as_ref().is_some_and(|e| e.0 <= now)
                            || b.kept_by.as_deref() == Some(PENDING_DELETION)
                    })
            })
            .map(|t| t.id.clone())
            .collect()
    }

    /// Step 6: a target's listing could not be read.
    pub fn listing_failed(&mut self, target_id: &str, err: &FsxError) {
        self.transient(err);
        self.retention_incomplete();
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
        self.listed.insert(target_id.to_owned());
        let held = self.is_held(target_id);
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
                            self.effects.extend(Effect::done(
                                Counter::BackupsDeleted,
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
                            kept.push(backup_ref(decision, None, Some(PENDING_DELETION)));
                            first_error.get_or_insert_with(|| err.clone());
                        }
                        None if held => {
                            kept.push(backup_ref(decision, None, Some(DELETION_HELD)));
                        }
                        // Kept until its run is recorded (`deletable`): deleted next time.
                        None => {
                            kept.push(backup_ref(decision, None, Some(PENDING_DELETION)));
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
        target.managed_backup_count = Some(u32::try_from(kept.len()).unwrap_or(u32::MAX));
        kept.truncate(MAX_LISTED_BACKUPS);
        target.managed_backups = kept;
        if let Some(err) = first_error {
            self.listing_failed(target_id, &err);
        }
    }
}

pub(super) fn observe(last: &mut LastBackup, backup: &Backup) {
    // A backup in progress is recorded once, as first seen, and then when it
    // ends: its steps in between (CREATING, TRANSFERRING, progress) would each
    // cost a status write, and a run is two (asked, settled).
    let known = !last.lifecycle.is_empty();
    if known && Lifecycle::parse(&last.lifecycle).in_progress() && backup.lifecycle.in_progress() {
        return;
    }
    if last.lifecycle != backup.lifecycle.as_str() {
        last.progress_percent = backup.progress_percent;
    }
    backup.lifecycle.as_str().clone_into(&mut last.lifecycle);
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
        effects.extend(Effect::failed(
            (Counter::BackupsFailed, 1),
            &target.id,
            Some(&last.id),
            Reason::BackupFailed,
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
mod tests {
    use super::*;
    use crate::controller::fixtures::backup;

    #[test]
    fn progress_is_recorded_with_a_lifecycle_change_only() {
        let mut last = LastBackup::default();
        let mut creating = backup("backup-1", Lifecycle::Creating, "2026-03-01T10:00:00Z");
        creating.progress_percent = Some(0);
        observe(&mut last, &creating);
        assert_eq!(
            (last.lifecycle.as_str(), last.progress_percent),
            ("CREATING", Some(0))
        );
        // Polls of a backup still CREATING change nothing: no status write each poll.
        creating.progress_percent = Some(60);
        let before = last.clone();
        observe(&mut last, &creating);
        assert_eq!(last, before);
        let mut done = backup("backup-1", Lifecycle::Available, "2026-03-01T10:00:00Z");
        done.progress_percent = Some(100);
        observe(&mut last, &done);
        assert_eq!(
            (last.lifecycle.as_str(), last.progress_percent),
            ("AVAILABLE", Some(100))
        );
    }
}
