//! When a failed reconcile is tried again: per-object exponential backoff for
//! what may pass, the slowest pace for what a person must fix outside the
//! object, and nothing (until the object changes) for what only its own
//! change can fix.

use std::time::Duration;

use super::Error;
use crate::fsx::FsxError;

/// Longest wait between retries of a failing reconcile.
pub const MAX_BACKOFF: Duration = Duration::from_mins(5);

/// When to try again after the `failures`-th failure in a row: `None` waits for a
/// change of the object (only a person can fix it).
pub fn retry_delay(
    error: &Error,
    failures: u32,
    retry: Duration,
    poll: Duration,
) -> Option<Duration> {
    match error {
        Error::InvalidSpec(_) | Error::Unreadable(_) => None,
        // Waiting for backups in flight, not failing: look again at the poll pace.
        Error::CleanupPending(_) => Some(poll),
        // Needs a person, but the fix (an IAM policy, a quota) happens outside the
        // object: look again at the slowest pace.
        Error::Fsx(FsxError::UserAction { .. }) | Error::Refused(_) => Some(MAX_BACKOFF.max(retry)),
        _ => {
            let exponent = failures.saturating_sub(1).min(16);
            Some(
                retry
                    .saturating_mul(1 << exponent)
                    .min(MAX_BACKOFF.max(retry)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Duration = Duration::from_secs(2);
    const POLL: Duration = Duration::from_secs(7);

    fn transient() -> Error {
        Error::Finalizer("x".into())
    }

    #[test]
    fn transient_errors_back_off_exponentially_up_to_a_cap() {
        let delays: Vec<Duration> = (1..=12)
            .map(|n| retry_delay(&transient(), n, RETRY, POLL).expect("retried"))
            .collect();
        assert_eq!(delays[0], RETRY);
        assert_eq!(delays[1], RETRY * 2);
        assert_eq!(delays[4], RETRY * 16);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().expect("some"), MAX_BACKOFF);
        assert_eq!(
            retry_delay(&transient(), u32::MAX, RETRY, POLL),
            Some(MAX_BACKOFF)
        );
    }

    #[test]
    fn what_only_a_person_can_fix_is_not_retried_in_a_loop() {
        assert_eq!(
            retry_delay(&Error::InvalidSpec("x".into()), 1, RETRY, POLL),
            None
        );
        let denied = Error::Fsx(FsxError::UserAction {
            operation: "DeleteBackup",
            region: "us-east-1".into(),
            reason: crate::fsx::UserActionReason::AccessDenied,
            code: "AccessDenied".into(),
            message: "no".into(),
        });
        assert_eq!(retry_delay(&denied, 1, RETRY, POLL), Some(MAX_BACKOFF));
    }

    #[test]
    fn cleanup_waiting_for_backups_polls_without_backoff() {
        let pending = Error::CleanupPending("busy".into());
        assert_eq!(retry_delay(&pending, 9, RETRY, POLL), Some(POLL));
    }
}
