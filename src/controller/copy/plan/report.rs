//! The end of a copy reconcile: the bounded status list, health and the next wake-up.

use super::{
    Applied, CopyPhase, Duration, FsxBackupCopyStatus, Health, Lifecycle, MAX_LISTED_COPIES,
    MAX_REQUEUE, Pace, Reason, Source, Timestamp, ValidCopy, Work, is_copying, is_pending,
};

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
        let health = self.health(valid);
        let requeue = self.next_wake(now, pace);
        Applied {
            status: self.status,
            health,
            effects: self.effects,
            requeue,
        }
    }

    /// Routine work in flight is healthy (as for schedules); a one-shot copy is
    /// progressing until its one copy is done.
    fn health(&self, valid: &ValidCopy) -> Health {
        let copies = &self.status.copies;
        if let Some((reason, message)) = &self.stalled {
            return Health::stalled(*reason, message.clone());
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
            return Health::stalled(
                reason,
                format!(
                    "{}: {}",
                    blocked.source_backup_id,
                    blocked.message.clone().unwrap_or_default()
                ),
            );
        }
        if let Some((reason, message)) = &self.waiting {
            return Health::progressing(*reason, message.clone());
        }
        let destination = &valid.destination_region;
        let copying = copies.iter().filter(|c| is_copying(c)).count();
        let waiting_source = copies
            .iter()
            .filter(|c| CopyPhase::of(c) == CopyPhase::WaitingForSource)
            .count();
        let one_shot = matches!(valid.source, Source::Backup { .. });
        let in_flight = |reason: Reason, message: String| {
            if one_shot {
                Health::progressing(reason, message)
            } else {
                Health::ready(reason, message)
            }
        };
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
        if let Some(gone) = copies
            .iter()
            .find(|c| CopyPhase::of(c) == CopyPhase::SourceGone)
        {
            return Health::degraded(
                Reason::SourceNotFound,
                format!(
                    "{} was deleted before it could be copied",
                    gone.source_backup_id
                ),
            );
        }
        if let Some(failed) = copies
            .iter()
            .find(|c| CopyPhase::of(c) == CopyPhase::Fsx(Lifecycle::Failed))
        {
            return Health::degraded(
                Reason::CopyFailed,
                format!(
                    "the copy of {} failed: {}",
                    failed.source_backup_id,
                    failed.message.clone().unwrap_or_default()
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
