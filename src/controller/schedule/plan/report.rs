//! The end of a schedule reconcile: health and the next wake-up.

use super::{
    Applied, Duration, Effect, FsxBackupScheduleStatus, FsxError, Health, MAX_REQUEUE, Pace,
    Reason, TargetStatus, Timestamp, ValidSchedule, Work, is_selected,
};
use crate::conditions::{grace_ends, has_grace};

impl Work {
    /// A failure before any target could be handled (the selector's lookup).
    pub fn lookup_failed(mut self, pace: Pace, err: &FsxError) -> Applied<FsxBackupScheduleStatus> {
        let health = if let FsxError::UserAction { reason, .. } = err {
            let text = err.to_string();
            // The status still holds the conditions of the last reconcile.
            if self.status.conditions.iter().all(|c| c.message != text) {
                self.effects.push(Effect::event(
                    true,
                    Reason::UserAction(*reason).as_str(),
                    err.operation(),
                    text.clone(),
                ));
            }
            Health::stalled(Reason::UserAction(*reason), text)
        } else {
            Health::progressing(Reason::RetryingAfterError, err.to_string())
        };
        Applied {
            status: self.status,
            health,
            effects: self.effects,
            requeue: pace.retry,
            checkpoint: false,
        }
    }

    /// Step 7: the RPO, health and the next wake-up; targets no longer
    /// selected and with no backups left are dropped.
    pub fn finish(
        mut self,
        now: Timestamp,
        valid: &ValidSchedule,
        pace: Pace,
    ) -> Applied<FsxBackupScheduleStatus> {
        self.status
            .targets
            .retain(|t| is_selected(t) || t.managed_backup_count.unwrap_or(0) > 0);
        self.record_retention_generation();
        self.record_last_run_result();
        let judgement = self.judge_rpo(now, valid);
        let (health, grace_end) = match self.held_health() {
            Some(held) => (held, None),
            None => self.health(now, valid, judgement.breached),
        };
        let until =
            |t: Timestamp| Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO);
        let mut requeue = self.next_wake(now, valid, pace);
        for at in [judgement.next_breach, grace_end].into_iter().flatten() {
            requeue = requeue.min(until(at).max(Duration::from_millis(100)));
        }
        Applied {
            status: self.status,
            health,
            effects: self.effects,
            requeue,
            checkpoint: self.checkpoint,
        }
    }

    /// The health contract (README): needs a person, or the RPO breached:
    /// `Stalled`; a transient error being retried: `Reconciling`; otherwise
    /// `Ready`, a failed or missed run included while the RPO holds (it shows
    /// in `lastRunResult`, events, metrics and SNS). Returns also when a grace
    /// for something not found ends.
    fn health(
        &self,
        now: Timestamp,
        valid: &ValidSchedule,
        breached: Option<String>,
    ) -> (Health, Option<Timestamp>) {
        let status = &self.status;
        let active: Vec<&TargetStatus> = status.targets.iter().filter(|t| is_selected(t)).collect();
        let broken: Vec<&TargetStatus> = active
            .iter()
            .copied()
            .filter(|t| t.message.is_some())
            .collect();
        let problem = if let Some(first) = broken.first() {
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
            Some(if broken.len() == active.len() {
                (reason, message)
            } else {
                (
                    reason,
                    format!(
                        "{} of {} targets cannot be backed up; {message}",
                        broken.len(),
                        active.len()
                    ),
                )
            })
        } else if active.is_empty() {
            Some((
                Reason::NoTargets,
                "spec.target.fileSystemSelector matches no file system".to_owned(),
            ))
        } else {
            None
        };
        if let Some((reason, message)) = problem {
            if has_grace(reason)
                && let Some(end) = grace_ends(&status.conditions, reason, now)
            {
                return (Health::progressing(reason, message), Some(end));
            }
            return (Health::stalled(reason, message), None);
        }
        if let Some(message) = breached {
            return (Health::stalled(Reason::RPOBreached, message), None);
        }
        (self.routine_health(valid), None)
    }

    /// Health while nothing needs a person and the RPO holds.
    fn routine_health(&self, valid: &ValidSchedule) -> Health {
        let status = &self.status;
        let active: Vec<&TargetStatus> = status.targets.iter().filter(|t| is_selected(t)).collect();
        if let Some((reason, message)) = &self.waiting {
            return if *reason == Reason::WaitingForPreviousBackup {
                Health::ready(*reason, message.clone())
            } else {
                Health::progressing(*reason, message.clone())
            };
        }
        if let Some((target, failed)) = active.iter().find_map(|t| {
            t.last_backup
                .as_ref()
                .filter(|b| b.failure_message.is_some())
                .map(|b| (t, b))
        }) {
            return Health::ready(
                Reason::BackupFailed,
                format!(
                    "backup {} of {} failed: {}; the RPO is still met",
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
            return Health::ready(
                Reason::MissedSchedule,
                format!(
                    "the run at {} was missed (see events); the RPO is still met",
                    missed.0
                ),
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
        if self.checkpoint {
            // The driver goes on at once once the status is written; the fallback.
            wake = Duration::ZERO;
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
