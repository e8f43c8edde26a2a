//! The end of a copy reconcile: the bounded status list, health and the next wake-up.

use super::{
    Applied, CopyPhase, Duration, FsxBackupCopyStatus, Health, Lifecycle, MAX_LISTED_COPIES,
    MAX_REQUEUE, Pace, Reason, Source, Timestamp, ValidCopy, Work, is_copying, is_pending,
};
use crate::conditions::{grace_ends, has_grace};

impl Work {
    /// The status list, bounded and newest source first; health; the next wake-up.
    pub fn finish(
        mut self,
        now: Timestamp,
        valid: &ValidCopy,
        pace: Pace,
    ) -> Applied<FsxBackupCopyStatus> {
        let copies = &mut self.status.copies;
        copies.sort_by(|a, b| {
            b.source_creation_time
                .as_ref()
                .map(|t| t.0)
                .cmp(&a.source_creation_time.as_ref().map(|t| t.0))
                .then_with(|| b.source_backup_id.cmp(&a.source_backup_id))
        });
        let mut settled_listed = 0;
        copies.retain(|c| {
            if is_pending(c) || is_copying(c) {
                return true;
            }
            settled_listed += 1;
            settled_listed <= MAX_LISTED_COPIES
        });
        let queued = copies
            .iter()
            .filter(|c| CopyPhase::of(c) == CopyPhase::Queued)
            .count();
        self.status.queued = Some(u32::try_from(queued).unwrap_or(u32::MAX));
        self.record_last_run_result();
        let judgement = self.judge_rpo(now, valid);
        let (health, grace_end) = self.health(now, valid, judgement.breached);
        let until =
            |t: Timestamp| Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO);
        let mut requeue = self.next_wake(now, pace);
        for at in [judgement.next_breach, grace_end].into_iter().flatten() {
            requeue = requeue.min(until(at).max(Duration::from_millis(100)));
        }
        Applied {
            status: self.status,
            health,
            effects: self.effects,
            requeue,
            checkpoint: false,
        }
    }

    /// The health contract (README), as for schedules: needs a person or the
    /// RPO breached: `Stalled`; a transient error being retried, or a one-shot
    /// copy not done yet: `Reconciling`; otherwise `Ready`, routine copies in
    /// flight and a failed copy included while the RPO holds.
    fn health(
        &self,
        now: Timestamp,
        valid: &ValidCopy,
        breached: Option<String>,
    ) -> (Health, Option<Timestamp>) {
        let copies = &self.status.copies;
        if let Some((reason, message)) = &self.stalled {
            return (Health::stalled(*reason, message.clone()), None);
        }
        if let Some(blocked) = copies
            .iter()
            .find(|c| CopyPhase::of(c) == CopyPhase::Blocked)
        {
            let reason = blocked
                .reason
                .as_deref()
                .and_then(Reason::parse)
                .unwrap_or(Reason::CopyFailed);
            let message = format!(
                "{}: {}",
                blocked.source_backup_id,
                blocked.message.clone().unwrap_or_default()
            );
            return (Health::stalled(reason, message), None);
        }
        let one_shot = matches!(valid.source, Source::Backup { .. });
        if let Some((reason, message)) = &self.waiting
            && has_grace(*reason)
        {
            return match grace_ends(&self.status.conditions, *reason, now) {
                Some(end) => (Health::progressing(*reason, message.clone()), Some(end)),
                None => (Health::stalled(*reason, message.clone()), None),
            };
        }
        // As for schedules: a breach outranks a retry in progress.
        if let Some(message) = breached {
            return (Health::stalled(Reason::RPOBreached, message), None);
        }
        if let Some((reason, message)) = &self.waiting
            && (*reason != Reason::WaitingForCopySlot || one_shot)
        {
            return (Health::progressing(*reason, message.clone()), None);
        }
        (self.routine_health(valid, one_shot), None)
    }

    /// Health while nothing needs a person and the RPO holds.
    fn routine_health(&self, valid: &ValidCopy, one_shot: bool) -> Health {
        let copies = &self.status.copies;
        let destination = &valid.destination_region;
        let in_flight = |reason: Reason, message: String| {
            if one_shot {
                Health::progressing(reason, message)
            } else {
                Health::ready(reason, message)
            }
        };
        if let Some((reason, message)) = &self.waiting {
            return in_flight(*reason, message.clone());
        }
        let copying = copies.iter().filter(|c| is_copying(c)).count();
        let waiting_source = copies
            .iter()
            .filter(|c| CopyPhase::of(c) == CopyPhase::WaitingForSource)
            .count();
        if copying > 0 {
            return in_flight(
                Reason::Copying,
                format!("{copying} copies in progress to {destination}"),
            );
        }
        if waiting_source > 0 {
            return in_flight(
                Reason::WaitingForSource,
                format!("{waiting_source} source backups are not AVAILABLE yet"),
            );
        }
        if let Some(failed) = copies
            .iter()
            .find(|c| CopyPhase::of(c) == CopyPhase::Fsx(Lifecycle::Failed))
        {
            let message = format!(
                "the copy of {} failed: {}",
                failed.source_backup_id,
                failed.message.clone().unwrap_or_default()
            );
            // A one-shot copy that failed is done: only a person can retry it.
            return if one_shot {
                Health::stalled(Reason::CopyFailed, message)
            } else {
                Health::ready(
                    Reason::CopyFailed,
                    format!("{message}; the RPO is still met"),
                )
            };
        }
        if let Some(gone) = copies
            .iter()
            .find(|c| CopyPhase::of(c) == CopyPhase::SourceGone)
        {
            return Health::ready(
                Reason::SourceNotFound,
                format!(
                    "{} was deleted before it could be copied; the RPO is still met",
                    gone.source_backup_id
                ),
            );
        }
        match &valid.source {
            Source::Backup { .. } => Health::ready(
                Reason::CopyAvailable,
                format!("the copy is AVAILABLE in {destination}"),
            ),
            Source::Schedule { name } => Health::ready(
                Reason::UpToDate,
                format!("every backup of {name} is copied to {destination}"),
            ),
        }
    }

    fn next_wake(&self, now: Timestamp, pace: Pace) -> Duration {
        let mut wake = MAX_REQUEUE;
        if self
            .status
            .copies
            .iter()
            .any(|c| is_copying(c) || CopyPhase::of(c) == CopyPhase::WaitingForSource)
        {
            wake = wake.min(pace.poll);
        }
        if self.retry_soon || self.waiting.is_some() {
            wake = wake.min(pace.retry);
        }
        if let Some(expiry) = self.next_expiry {
            wake =
                wake.min(Duration::try_from(expiry.duration_since(now)).unwrap_or(Duration::ZERO));
        }
        wake.max(Duration::from_millis(100))
    }
}
