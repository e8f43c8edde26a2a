//! Retention planning: which of one target's backups (a file system, a volume,
//! or a copy destination) this object may delete, and why every other one is kept.
//!
//! Pure and deterministic: the same backups in any order give the same [`Plan`].
//! Deleting a backup that should have been kept is the one unforgivable bug, so
//! every rule below errs towards keeping.
//!
//! Semantics of [`plan`]:
//! - Only backups for which [`is_owned_by`] holds are considered; every other
//!   backup (`AUTOMATIC`, `AWS_BACKUP`, untyped, untagged, another object's) is
//!   absent from the plan. Owned `DELETED` backups are absent too. Duplicate ids
//!   are planned once, as the most protected of their copies.
//! - In progress (`CREATING`, `PENDING`, `TRANSFERRING`, `COPYING`, unknown
//!   lifecycles): kept, [`KeepRule::InProgress`]. They count for nothing.
//! - `FAILED`: the newest `failed_history_limit` are kept
//!   ([`KeepRule::FailedHistory`]), older ones deleted
//!   ([`DeleteReason::FailedHistoryLimit`]). A failed backup without a creation
//!   time ranks as the newest and is never deleted ([`KeepRule::UnknownAge`]).
//! - `AVAILABLE` without a creation time: kept ([`KeepRule::UnknownAge`]); it
//!   counts toward `min_available` only.
//! - `AVAILABLE` with a creation time, ranked newest first (ties by id):
//!   - expired when `now - created_at >= max_age`, or its rank `>= max_count`;
//!   - not expired: kept by [`KeepRule::MaxAge`] (`expires_at = created_at +
//!     max_age`) when `max_age` is set, else by [`KeepRule::MaxCount`]
//!     (`expires_at` none: it depends on future backups);
//!   - expired, or neither `max_age` nor `max_count` set: kept by the first of
//!     `keep_last` (the newest N), `keep_hourly`, `keep_daily`, `keep_weekly`
//!     (ISO weeks), `keep_monthly`, `keep_yearly` that keeps it. GFS rules
//!     follow restic: walking newest to oldest, the newest backup of each
//!     distinct calendar period (in the schedule's time zone) is kept until N
//!     periods have been kept;
//!   - otherwise deleted: [`DeleteReason::MaxAge`] if too old, else
//!     [`DeleteReason::MaxCount`], else [`DeleteReason::NotKeptByAnyRule`];
//!   - a policy with no rule at all deletes none: [`KeepRule::NoPolicy`].
//! - Floor: while fewer than `min_available` `AVAILABLE` backups are kept, the
//!   newest one marked for deletion is kept instead ([`KeepRule::MinAvailable`]).
//!
//! Precedence is therefore [`KeepRule`]'s declaration order: a backup kept by
//! several rules reports the first. `expires_at` is when the `max_age` window
//! ends; a later rule (keep*, `min_available`) may still keep it after that.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::fsx::{Backup, Lifecycle};
use crate::ownership::is_owned_by;

/// What to keep of one target's backups; built from `spec.retention`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub max_age: Option<Duration>,
    pub max_count: Option<u32>,
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// Safety floor of AVAILABLE backups (CRD default 1).
    pub min_available: u32,
    /// FAILED backups kept for inspection (CRD default 3).
    pub failed_history_limit: u32,
}

impl RetentionPolicy {
    /// Rejects a policy that keeps nothing: no rule at all, or every rule zero.
    /// `min_available` is a floor, not a rule, so it does not rescue such a policy.
    pub fn validate(&self) -> Result<(), String> {
        let counts = [
            ("maxCount", self.max_count),
            ("keepLast", self.keep_last),
            ("keepHourly", self.keep_hourly),
            ("keepDaily", self.keep_daily),
            ("keepWeekly", self.keep_weekly),
            ("keepMonthly", self.keep_monthly),
            ("keepYearly", self.keep_yearly),
        ];
        let age_keeps = self.max_age.is_some_and(|age| !age.is_zero());
        if age_keeps || counts.iter().any(|(_, n)| n.is_some_and(|n| n > 0)) {
            return Ok(());
        }
        let mut zero: Vec<String> = Vec::new();
        if self.max_age.is_some() {
            zero.push("maxAge 0s".to_owned());
        }
        zero.extend(
            counts
                .iter()
                .filter(|(_, n)| n.is_some())
                .map(|(field, _)| format!("{field} 0")),
        );
        let what = if zero.is_empty() {
            String::new()
        } else {
            format!(" ({})", zero.join(", "))
        };
        Err(format!(
            "spec.retention keeps nothing{what}: set maxAge, maxCount or a keep* rule above zero \
             (or remove retention to keep every backup)"
        ))
    }

    fn has_expiry_rule(&self) -> bool {
        self.max_age.is_some() || self.max_count.is_some()
    }

    fn has_keep_rule(&self) -> bool {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(Option::is_some)
    }
}

/// Why a backup is kept; shown in status as `keptBy`. Declaration order is
/// the precedence when several rules keep the same backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeepRule {
    InProgress,
    MaxAge,
    MaxCount,
    KeepLast,
    KeepHourly,
    KeepDaily,
    KeepWeekly,
    KeepMonthly,
    KeepYearly,
    MinAvailable,
    FailedHistory,
    UnknownAge,
    /// The policy has no rule: every AVAILABLE backup is kept.
    NoPolicy,
}

impl KeepRule {
    /// The camelCase name used in status, matching the spec's field names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "inProgress",
            Self::MaxAge => "maxAge",
            Self::MaxCount => "maxCount",
            Self::KeepLast => "keepLast",
            Self::KeepHourly => "keepHourly",
            Self::KeepDaily => "keepDaily",
            Self::KeepWeekly => "keepWeekly",
            Self::KeepMonthly => "keepMonthly",
            Self::KeepYearly => "keepYearly",
            Self::MinAvailable => "minAvailable",
            Self::FailedHistory => "failedHistoryLimit",
            Self::UnknownAge => "unknownAge",
            Self::NoPolicy => "noPolicy",
        }
    }
}

/// Why a backup is deleted; named in events and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    MaxAge,
    MaxCount,
    NotKeptByAnyRule,
    FailedHistoryLimit,
}

impl DeleteReason {
    /// The camelCase name of the rule, as users write it in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxAge => "maxAge",
            Self::MaxCount => "maxCount",
            Self::NotKeptByAnyRule => "notKeptByAnyRule",
            Self::FailedHistoryLimit => "failedHistoryLimit",
        }
    }
}

/// The outcome for one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `expires_at` is set only when the keeping rule ends at a known instant (`maxAge`).
    Keep {
        kept_by: KeepRule,
        expires_at: Option<Timestamp>,
    },
    Delete {
        reason: DeleteReason,
    },
}

/// One owned backup and what retention does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub backup_id: String,
    pub created_at: Option<Timestamp>,
    pub lifecycle: Lifecycle,
    pub verdict: Verdict,
}

/// The retention plan for one target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// One decision per OWNED backup (newest first; unknown creation time
    /// first, ties by id); backups not owned are absent.
    pub decisions: Vec<Decision>,
    /// Earliest future instant at which re-planning could delete something
    /// (min `expires_at`), to requeue at.
    pub next_expiry: Option<Timestamp>,
}

impl Plan {
    /// The decisions that delete a backup.
    pub fn deletions(&self) -> impl Iterator<Item = &Decision> {
        self.decisions
            .iter()
            .filter(|d| matches!(d.verdict, Verdict::Delete { .. }))
    }
}

/// Plans retention for one target's `backups` (as listed, any order, any owner).
///
/// `tz` is the schedule's time zone: GFS buckets (hour/day/ISO week/month/year)
/// are calendar periods there.
pub fn plan(
    now: Timestamp,
    policy: &RetentionPolicy,
    tz: &TimeZone,
    backups: &[Backup],
    owner_uid: &str,
) -> Plan {
    let owned = owned_backups(backups, owner_uid);
    let mut decisions: Vec<Decision> = owned
        .iter()
        .map(|b| Decision {
            backup_id: b.id.clone(),
            created_at: b.created_at,
            lifecycle: b.lifecycle.clone(),
            verdict: Verdict::Keep {
                kept_by: KeepRule::InProgress,
                expires_at: None,
            },
        })
        .collect();

    judge_failed(&mut decisions, to_usize(policy.failed_history_limit));

    // AVAILABLE.
    let available: Vec<usize> = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.lifecycle == Lifecycle::Available)
        .map(|(i, _)| i)
        .collect();
    let dated: Vec<(usize, Timestamp)> = available
        .iter()
        .filter_map(|&i| decisions[i].created_at.map(|t| (i, t)))
        .collect();
    let created: Vec<Timestamp> = dated.iter().map(|&(_, t)| t).collect();
    let kept_by_keep_rules = keep_rules(policy, tz, &created);
    let max_age = policy
        .max_age
        .and_then(|age| SignedDuration::try_from(age).ok());
    let max_count = policy.max_count.map(to_usize);
    for &i in &available {
        if decisions[i].created_at.is_none() {
            decisions[i].verdict = keep(KeepRule::UnknownAge, None);
        }
    }
    for (rank, &(i, created_at)) in dated.iter().enumerate() {
        // `None` when max_age is unset or so large the backup never expires.
        let age_ends = max_age.and_then(|age| created_at.checked_add(age).ok());
        let too_old = age_ends.is_some_and(|end| end <= now);
        let too_many = max_count.is_some_and(|n| rank >= n);
        let by_keep_rule = kept_by_keep_rules.get(rank).copied().flatten();
        decisions[i].verdict = if !policy.has_expiry_rule() && !policy.has_keep_rule() {
            keep(KeepRule::NoPolicy, None)
        } else if policy.has_expiry_rule() && !too_old && !too_many {
            if policy.max_age.is_some() {
                keep(KeepRule::MaxAge, age_ends)
            } else {
                keep(KeepRule::MaxCount, None)
            }
        } else if let Some(rule) = by_keep_rule {
            keep(rule, None)
        } else if too_old {
            Verdict::Delete {
                reason: DeleteReason::MaxAge,
            }
        } else if too_many {
            Verdict::Delete {
                reason: DeleteReason::MaxCount,
            }
        } else {
            Verdict::Delete {
                reason: DeleteReason::NotKeptByAnyRule,
            }
        };
    }

    rescue_up_to_min_available(&mut decisions, &available, &dated, policy.min_available);

    let next_expiry = available
        .iter()
        .filter_map(|&i| match decisions[i].verdict {
            Verdict::Keep { expires_at, .. } => expires_at.filter(|&at| at > now),
            Verdict::Delete { .. } => None,
        })
        .min();
    Plan {
        decisions,
        next_expiry,
    }
}

/// FAILED backups: newest first (unknown age ranks newest), the newest `limit` kept.
fn judge_failed(decisions: &mut [Decision], limit: usize) {
    for (rank, decision) in decisions
        .iter_mut()
        .filter(|d| d.lifecycle == Lifecycle::Failed)
        .enumerate()
    {
        decision.verdict = if decision.created_at.is_none() {
            keep(KeepRule::UnknownAge, None)
        } else if rank < limit {
            keep(KeepRule::FailedHistory, None)
        } else {
            Verdict::Delete {
                reason: DeleteReason::FailedHistoryLimit,
            }
        };
    }
}

/// The floor: rescues the newest backups marked for deletion until `min_available`
/// AVAILABLE ones are kept.
fn rescue_up_to_min_available(
    decisions: &mut [Decision],
    available: &[usize],
    dated: &[(usize, Timestamp)],
    min_available: u32,
) {
    let is_kept = |d: &Decision| matches!(d.verdict, Verdict::Keep { .. });
    let kept = available
        .iter()
        .filter(|&&i| is_kept(&decisions[i]))
        .count();
    let missing = to_usize(min_available).saturating_sub(kept);
    let rescued: Vec<usize> = dated
        .iter()
        .map(|&(i, _)| i)
        .filter(|&i| !is_kept(&decisions[i]))
        .take(missing)
        .collect();
    for i in rescued {
        decisions[i].verdict = keep(KeepRule::MinAvailable, None);
    }
}

fn keep(kept_by: KeepRule, expires_at: Option<Timestamp>) -> Verdict {
    Verdict::Keep {
        kept_by,
        expires_at,
    }
}

fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Owned, not DELETED, one per id, sorted newest first (unknown creation time
/// first, then by id) so the plan does not depend on the listing's order.
fn owned_backups<'a>(backups: &'a [Backup], owner_uid: &str) -> Vec<&'a Backup> {
    let mut by_id: BTreeMap<&str, &Backup> = BTreeMap::new();
    for backup in backups.iter().filter(|b| is_owned_by(b, owner_uid)) {
        by_id
            .entry(backup.id.as_str())
            .and_modify(|seen| {
                if protection_key(backup) < protection_key(seen) {
                    *seen = backup;
                }
            })
            .or_insert(backup);
    }
    let mut owned: Vec<&Backup> = by_id
        .into_values()
        .filter(|b| b.lifecycle != Lifecycle::Deleted)
        .collect();
    owned.sort_by(|a, b| {
        (
            a.created_at.is_some(),
            std::cmp::Reverse(a.created_at),
            &a.id,
        )
            .cmp(&(
                b.created_at.is_some(),
                std::cmp::Reverse(b.created_at),
                &b.id,
            ))
    });
    owned
}

/// Orders two listings of the same id: the lower one is planned. In progress
/// beats AVAILABLE beats FAILED beats DELETED, and an unknown age beats a known one,
/// so a contradictory listing can only make retention keep more.
fn protection_key(backup: &Backup) -> (u8, bool, Option<Timestamp>, &str) {
    let rank = match backup.lifecycle {
        ref l if l.in_progress() => 0,
        Lifecycle::Available => 1,
        Lifecycle::Failed => 2,
        _ => 3,
    };
    (
        rank,
        backup.created_at.is_some(),
        backup.created_at,
        backup.lifecycle.as_str(),
    )
}

/// For each AVAILABLE backup (creation times newest first), the first keep*
/// rule that keeps it.
fn keep_rules(
    policy: &RetentionPolicy,
    tz: &TimeZone,
    created: &[Timestamp],
) -> Vec<Option<KeepRule>> {
    let mut kept: Vec<Option<KeepRule>> = vec![None; created.len()];
    if let Some(n) = policy.keep_last {
        for slot in kept.iter_mut().take(to_usize(n)) {
            *slot = Some(KeepRule::KeepLast);
        }
    }
    let buckets: [(KeepRule, Option<u32>, Period); 5] = [
        (KeepRule::KeepHourly, policy.keep_hourly, Period::Hour),
        (KeepRule::KeepDaily, policy.keep_daily, Period::Day),
        (KeepRule::KeepWeekly, policy.keep_weekly, Period::Week),
        (KeepRule::KeepMonthly, policy.keep_monthly, Period::Month),
        (KeepRule::KeepYearly, policy.keep_yearly, Period::Year),
    ];
    for (rule, n, period) in buckets {
        let Some(n) = n.map(to_usize) else { continue };
        let mut seen: BTreeSet<(i32, i32, i32, i32)> = BTreeSet::new();
        for (slot, &at) in kept.iter_mut().zip(created) {
            if seen.len() >= n {
                break;
            }
            // A set, not "differs from the previous one": civil time can step
            // back across a period boundary (DST ending at midnight).
            if seen.insert(period.key(tz, at)) && slot.is_none() {
                *slot = Some(rule);
            }
        }
    }
    kept
}

/// A GFS calendar period.
#[derive(Debug, Clone, Copy)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// Identifies the period containing `at` in `tz`.
    fn key(self, tz: &TimeZone, at: Timestamp) -> (i32, i32, i32, i32) {
        let civil = tz.to_datetime(at);
        let (year, month, day, hour) = (
            i32::from(civil.year()),
            i32::from(civil.month()),
            i32::from(civil.day()),
            i32::from(civil.hour()),
        );
        match self {
            Self::Hour => (year, month, day, hour),
            Self::Day => (year, month, day, 0),
            Self::Week => {
                let week = civil.date().iso_week_date();
                (i32::from(week.year()), i32::from(week.week()), 0, 0)
            }
            Self::Month => (year, month, 0, 0),
            Self::Year => (year, 0, 0, 0),
        }
    }
}

/// The backups `plan` deletes, oldest first (an interrupted pass removes what is
/// most overdue), and only ever backups `uid` owns (belt and braces: the planner
/// only returns owned ones).
pub fn deletions<'a>(plan: &'a Plan, backups: &[Backup], uid: &str) -> Vec<&'a str> {
    plan.decisions
        .iter()
        .rev()
        .filter(|d| matches!(d.verdict, Verdict::Delete { .. }))
        .filter(|d| {
            backups
                .iter()
                .any(|b| b.id == d.backup_id && is_owned_by(b, uid))
        })
        .map(|d| d.backup_id.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use jiff::tz::TimeZone;
    use jiff::{SignedDuration, Timestamp};
    use proptest::prelude::*;

    use super::*;
    use crate::fsx::{Backup, BackupType, Lifecycle};
    use crate::ownership::{MANAGED_BY_KEY, OWNER_UID_KEY, is_owned_by, ownership_tags};

    const UID: &str = "3f2c9a4e-uid-1";
    const HOUR: u64 = 3600;
    const DAY: u64 = 24 * HOUR;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("valid timestamp")
    }

    fn ago(now: Timestamp, secs: u64) -> Timestamp {
        now.checked_sub(SignedDuration::from_secs(
            i64::try_from(secs).expect("small"),
        ))
        .expect("in range")
    }

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").expect("bundled tzdb")
    }

    fn backup(id: &str, lifecycle: Lifecycle, created_at: Option<Timestamp>) -> Backup {
        Backup {
            id: id.to_owned(),
            arn: None,
            lifecycle,
            backup_type: Some(BackupType::UserInitiated),
            progress_percent: None,
            created_at,
            tags: ownership_tags("FsxBackupSchedule", "storage", "nightly", UID),
            failure_message: None,
            target: None,
            source_backup_id: None,
            source_region: None,
        }
    }

    fn available(id: &str, created_at: Timestamp) -> Backup {
        backup(id, Lifecycle::Available, Some(created_at))
    }

    fn policy() -> RetentionPolicy {
        RetentionPolicy {
            min_available: 1,
            failed_history_limit: 3,
            ..RetentionPolicy::default()
        }
    }

    fn verdicts(plan: &Plan) -> BTreeMap<&str, &Verdict> {
        plan.decisions
            .iter()
            .map(|d| (d.backup_id.as_str(), &d.verdict))
            .collect()
    }

    fn kept(plan: &Plan) -> Vec<&str> {
        plan.decisions
            .iter()
            .filter(|d| matches!(d.verdict, Verdict::Keep { .. }))
            .map(|d| d.backup_id.as_str())
            .collect()
    }

    fn deleted(plan: &Plan) -> Vec<&str> {
        plan.deletions().map(|d| d.backup_id.as_str()).collect()
    }

    fn kept_by(plan: &Plan, id: &str) -> Option<KeepRule> {
        match verdicts(plan).get(id) {
            Some(Verdict::Keep { kept_by, .. }) => Some(*kept_by),
            _ => None,
        }
    }

    fn reason(plan: &Plan, id: &str) -> Option<DeleteReason> {
        match verdicts(plan).get(id) {
            Some(Verdict::Delete { reason }) => Some(*reason),
            _ => None,
        }
    }

    /// `b1` … `bN`, newest first, at the given ages.
    fn aged(now: Timestamp, ages: &[u64]) -> Vec<Backup> {
        ages.iter()
            .enumerate()
            .map(|(i, &age)| available(&format!("b{}", i + 1), ago(now, age)))
            .collect()
    }

    #[test]
    fn max_age_only_deletes_at_and_beyond_the_age_and_reports_expiry() {
        let now = ts("2025-06-15T12:00:00Z");
        let backups = aged(now, &[DAY, 3 * DAY, 6 * DAY, 7 * DAY, 10 * DAY]);
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(7 * DAY)),
            ..policy()
        };
        let plan = plan(now, &policy, &TimeZone::UTC, &backups, UID);
        for (id, age) in [("b1", DAY), ("b2", 3 * DAY), ("b3", 6 * DAY)] {
            let expected = Verdict::Keep {
                kept_by: KeepRule::MaxAge,
                expires_at: Some(ago(now, age) + SignedDuration::from_hours(168)),
            };
            assert_eq!(verdicts(&plan)[id], &expected, "{id}");
        }
        assert_eq!(deleted(&plan), ["b4", "b5"]);
        assert_eq!(
            reason(&plan, "b4"),
            Some(DeleteReason::MaxAge),
            "exactly maxAge old is expired"
        );
        assert_eq!(plan.next_expiry, Some(now + SignedDuration::from_hours(24)));
    }

    #[test]
    fn max_count_only_keeps_the_newest_n_without_an_expiry() {
        let now = ts("2025-06-15T12:00:00Z");
        // Listed out of order: rank is by creation time, not listing order.
        let mut backups = aged(now, &[DAY, 2 * DAY, 3 * DAY, 4 * DAY, 5 * DAY]);
        backups.reverse();
        let policy = RetentionPolicy {
            max_count: Some(3),
            ..policy()
        };
        let plan = plan(now, &policy, &TimeZone::UTC, &backups, UID);
        assert_eq!(kept(&plan), ["b1", "b2", "b3"]);
        assert!(kept(&plan).iter().all(|id| verdicts(&plan)[id]
            == &Verdict::Keep {
                kept_by: KeepRule::MaxCount,
                expires_at: None
            }));
        assert_eq!(deleted(&plan), ["b4", "b5"]);
        assert!(plan.deletions().all(|d| d.verdict
            == Verdict::Delete {
                reason: DeleteReason::MaxCount
            }));
        assert_eq!(plan.next_expiry, None);
    }

    #[test]
    fn max_age_and_max_count_delete_whatever_either_expires() {
        let now = ts("2025-06-15T12:00:00Z");
        let backups = aged(now, &[DAY, 2 * DAY, 3 * DAY, 4 * DAY, 8 * DAY]);
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(7 * DAY)),
            max_count: Some(3),
            ..policy()
        };
        let plan = plan(now, &policy, &TimeZone::UTC, &backups, UID);
        assert_eq!(kept(&plan), ["b1", "b2", "b3"]);
        assert_eq!(kept_by(&plan, "b3"), Some(KeepRule::MaxAge));
        assert_eq!(reason(&plan, "b4"), Some(DeleteReason::MaxCount));
        assert_eq!(reason(&plan, "b5"), Some(DeleteReason::MaxAge));
        assert_eq!(
            plan.next_expiry,
            Some(now + SignedDuration::from_hours(4 * 24))
        );
    }

    #[test]
    fn keep_last_keeps_the_newest_n_past_max_age_and_alone() {
        let now = ts("2025-06-15T12:00:00Z");
        let backups = aged(now, &[2 * DAY, 3 * DAY, 4 * DAY, 5 * DAY, 6 * DAY]);
        let with_age = RetentionPolicy {
            max_age: Some(Duration::from_secs(DAY)),
            keep_last: Some(3),
            ..policy()
        };
        let plan_age = plan(now, &with_age, &TimeZone::UTC, &backups, UID);
        assert_eq!(kept(&plan_age), ["b1", "b2", "b3"]);
        assert!(kept(&plan_age).iter().all(|id| verdicts(&plan_age)[id]
            == &Verdict::Keep {
                kept_by: KeepRule::KeepLast,
                expires_at: None
            }));
        assert_eq!(reason(&plan_age, "b4"), Some(DeleteReason::MaxAge));
        assert_eq!(plan_age.next_expiry, None);

        let alone = RetentionPolicy {
            keep_last: Some(2),
            min_available: 0,
            ..policy()
        };
        let plan_alone = plan(now, &alone, &TimeZone::UTC, &backups, UID);
        assert_eq!(kept(&plan_alone), ["b1", "b2"]);
        assert_eq!(deleted(&plan_alone), ["b3", "b4", "b5"]);
        assert!(plan_alone.deletions().all(|d| d.verdict
            == Verdict::Delete {
                reason: DeleteReason::NotKeptByAnyRule
            }));
    }

    #[test]
    fn keep_daily_keeps_the_last_backup_of_each_of_the_last_seven_days() {
        let now = ts("2025-06-20T20:00:00Z");
        let mut backups = Vec::new();
        for day in 1..=20 {
            for hour in [0, 6, 12, 18] {
                backups.push(available(
                    &format!("d{day:02}h{hour:02}"),
                    ts(&format!("2025-06-{day:02}T{hour:02}:00:00Z")),
                ));
            }
        }
        let policy = RetentionPolicy {
            keep_daily: Some(7),
            ..policy()
        };
        let plan = plan(now, &policy, &TimeZone::UTC, &backups, UID);
        assert_eq!(
            kept(&plan),
            [
                "d20h18", "d19h18", "d18h18", "d17h18", "d16h18", "d15h18", "d14h18"
            ]
        );
        assert!(
            kept(&plan)
                .iter()
                .all(|id| kept_by(&plan, id) == Some(KeepRule::KeepDaily))
        );
        assert_eq!(plan.deletions().count(), 80 - 7);
        assert!(plan.deletions().all(|d| d.verdict
            == Verdict::Delete {
                reason: DeleteReason::NotKeptByAnyRule
            }));
    }

    #[test]
    fn keep_weekly_uses_iso_weeks_across_the_year_boundary() {
        let now = ts("2025-01-03T18:00:00Z");
        let start = ts("2024-12-20T12:00:00Z");
        let backups: Vec<Backup> = (0..15)
            .map(|i| {
                let at = start + SignedDuration::from_hours(24 * i);
                available(&at.strftime("%Y-%m-%d").to_string(), at)
            })
            .collect();
        let policy = RetentionPolicy {
            keep_weekly: Some(3),
            ..policy()
        };
        let plan = plan(now, &policy, &TimeZone::UTC, &backups, UID);
        // 2024-12-30 … 2025-01-03 are ISO week 2025-W01; Sunday 2024-12-29 ends 2024-W52.
        assert_eq!(kept(&plan), ["2025-01-03", "2024-12-29", "2024-12-22"]);
        assert!(
            kept(&plan)
                .iter()
                .all(|id| kept_by(&plan, id) == Some(KeepRule::KeepWeekly))
        );
    }

    #[test]
    fn keep_monthly_keeps_the_last_backup_of_each_month() {
        let now = ts("2025-05-25T00:00:00Z");
        let dates = [
            "2025-05-20",
            "2025-05-02",
            "2025-04-30",
            "2025-04-01",
            "2025-03-31",
            "2025-03-15",
            "2025-02-28",
        ];
        let backups: Vec<Backup> = dates
            .iter()
            .map(|d| available(d, ts(&format!("{d}T12:00:00Z"))))
            .collect();
        let policy = RetentionPolicy {
            keep_monthly: Some(3),
            ..policy()
        };
        let plan = plan(now, &policy, &TimeZone::UTC, &backups, UID);
        assert_eq!(kept(&plan), ["2025-05-20", "2025-04-30", "2025-03-31"]);
        assert_eq!(
            deleted(&plan),
            ["2025-05-02", "2025-04-01", "2025-03-15", "2025-02-28"]
        );
    }

    #[test]
    fn keep_yearly_keeps_the_last_backup_of_each_year_in_the_time_zone() {
        let now = ts("2025-03-01T00:00:00Z");
        let backups = vec![
            available("2025", ts("2025-02-01T12:00:00Z")),
            available("2024-late", ts("2024-07-01T12:00:00Z")),
            available("2024-early", ts("2024-01-01T01:00:00Z")),
            // 2024-01-01 00:00 in Berlin, still 2023 in UTC.
            available("2023-eve", ts("2023-12-31T23:00:00Z")),
            available("2023-mid", ts("2023-06-01T12:00:00Z")),
        ];
        let policy = RetentionPolicy {
            keep_yearly: Some(3),
            ..policy()
        };
        let utc = plan(now, &policy, &TimeZone::UTC, &backups, UID);
        assert_eq!(kept(&utc), ["2025", "2024-late", "2023-eve"]);
        assert!(
            kept(&utc)
                .iter()
                .all(|id| kept_by(&utc, id) == Some(KeepRule::KeepYearly))
        );
        let berlin = plan(now, &policy, &berlin(), &backups, UID);
        assert_eq!(kept(&berlin), ["2025", "2024-late", "2023-mid"]);
    }

    #[test]
    fn gfs_days_are_calendar_days_of_the_schedule_time_zone() {
        let now = ts("2025-03-11T06:00:00Z");
        let backups = vec![
            available("late", ts("2025-03-10T23:30:00Z")), // Berlin: 03-11 00:30
            available("evening", ts("2025-03-10T22:00:00Z")), // Berlin: 03-10 23:00
            available("noon", ts("2025-03-10T12:00:00Z")),
            available("day-before", ts("2025-03-09T12:00:00Z")),
        ];
        let policy = RetentionPolicy {
            keep_daily: Some(2),
            ..policy()
        };
        let utc = plan(now, &policy, &TimeZone::UTC, &backups, UID);
        assert_eq!(kept(&utc), ["late", "day-before"]);
        let berlin = plan(now, &policy, &berlin(), &backups, UID);
        assert_eq!(kept(&berlin), ["late", "evening"]);

        let hourly = RetentionPolicy {
            keep_hourly: Some(2),
            keep_daily: None,
            ..policy
        };
        assert_eq!(
            kept(&plan(now, &hourly, &TimeZone::UTC, &backups, UID)),
            ["late", "evening"]
        );
    }

    #[test]
    fn several_rules_report_the_first_in_declaration_order() {
        let now = ts("2025-06-15T12:00:00Z");
        // 06-15 (Sun), 06-12, 06-11, 06-10: ISO week 24; 06-06, 06-05: week 23.
        let backups = aged(now, &[HOUR, 3 * DAY, 4 * DAY, 9 * DAY, 10 * DAY]);
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(DAY)),
            keep_last: Some(2),
            keep_daily: Some(3),
            keep_weekly: Some(4),
            ..policy()
        };
        let plan = plan(now, &policy, &TimeZone::UTC, &backups, UID);
        assert_eq!(kept_by(&plan, "b1"), Some(KeepRule::MaxAge));
        assert_eq!(kept_by(&plan, "b2"), Some(KeepRule::KeepLast));
        assert_eq!(kept_by(&plan, "b3"), Some(KeepRule::KeepDaily));
        assert_eq!(kept_by(&plan, "b4"), Some(KeepRule::KeepWeekly));
        assert_eq!(reason(&plan, "b5"), Some(DeleteReason::MaxAge));
    }

    #[test]
    fn min_available_rescues_the_newest_expired_backups() {
        let now = ts("2025-06-15T12:00:00Z");
        let backups = aged(now, &[2 * DAY, 3 * DAY, 4 * DAY, 5 * DAY]);
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(DAY)),
            min_available: 2,
            ..policy()
        };
        let plan = plan(now, &policy, &TimeZone::UTC, &backups, UID);
        assert_eq!(kept(&plan), ["b1", "b2"]);
        assert!(kept(&plan).iter().all(|id| verdicts(&plan)[id]
            == &Verdict::Keep {
                kept_by: KeepRule::MinAvailable,
                expires_at: None
            }));
        assert_eq!(deleted(&plan), ["b3", "b4"]);

        let everything = RetentionPolicy {
            min_available: 10,
            ..policy.clone()
        };
        assert_eq!(
            deleted(&plan_for(now, &everything, &backups)),
            Vec::<&str>::new()
        );

        // An AVAILABLE backup of unknown age counts toward the floor.
        let mut with_unknown = backups.clone();
        with_unknown.push(backup("unknown", Lifecycle::Available, None));
        let plan = plan_for(now, &policy, &with_unknown);
        assert_eq!(kept_by(&plan, "unknown"), Some(KeepRule::UnknownAge));
        assert_eq!(kept(&plan), ["unknown", "b1"]);
        assert_eq!(deleted(&plan), ["b2", "b3", "b4"]);
    }

    fn plan_for(now: Timestamp, policy: &RetentionPolicy, backups: &[Backup]) -> Plan {
        plan(now, policy, &TimeZone::UTC, backups, UID)
    }

    #[test]
    fn failed_backups_are_pruned_by_history_limit_and_count_for_nothing_else() {
        let now = ts("2025-06-15T12:00:00Z");
        let mut backups: Vec<Backup> = (1..=5u64)
            .map(|i| {
                backup(
                    &format!("f{i}"),
                    Lifecycle::Failed,
                    Some(ago(now, i * HOUR)),
                )
            })
            .collect();
        backups.push(available("a1", ago(now, DAY)));
        backups.push(available("a2", ago(now, 2 * DAY)));
        let policy = RetentionPolicy {
            max_count: Some(2),
            failed_history_limit: 2,
            ..policy()
        };
        let plan = plan_for(now, &policy, &backups);
        assert_eq!(kept(&plan), ["f1", "f2", "a1", "a2"]);
        assert_eq!(kept_by(&plan, "f2"), Some(KeepRule::FailedHistory));
        assert_eq!(kept_by(&plan, "a2"), Some(KeepRule::MaxCount));
        assert_eq!(deleted(&plan), ["f3", "f4", "f5"]);
        assert!(plan.deletions().all(|d| d.verdict
            == Verdict::Delete {
                reason: DeleteReason::FailedHistoryLimit
            }));

        let none = RetentionPolicy {
            failed_history_limit: 0,
            ..policy.clone()
        };
        assert_eq!(
            deleted(&plan_for(now, &none, &backups)),
            ["f1", "f2", "f3", "f4", "f5"]
        );

        backups.push(backup("f-unknown", Lifecycle::Failed, None));
        let plan = plan_for(now, &none, &backups);
        assert_eq!(kept_by(&plan, "f-unknown"), Some(KeepRule::UnknownAge));
    }

    #[test]
    fn in_progress_backups_are_kept_and_not_counted() {
        let now = ts("2025-06-15T12:00:00Z");
        let ancient = ts("2001-01-01T00:00:00Z");
        let mut backups: Vec<Backup> = [
            Lifecycle::Creating,
            Lifecycle::Pending,
            Lifecycle::Transferring,
            Lifecycle::Copying,
            Lifecycle::Other("RESTORING".into()),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, lifecycle)| backup(&format!("p{i}"), lifecycle, Some(ancient)))
        .collect();
        backups.push(backup("p-unknown", Lifecycle::Creating, None));
        backups.push(backup("gone", Lifecycle::Deleted, Some(ancient)));
        backups.push(available("a1", ago(now, HOUR)));
        backups.push(available("a2", ago(now, 2 * HOUR)));
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(DAY)),
            max_count: Some(1),
            min_available: 0,
            ..policy()
        };
        let plan = plan_for(now, &policy, &backups);
        for id in ["p0", "p1", "p2", "p3", "p4", "p-unknown"] {
            assert_eq!(
                verdicts(&plan)[id],
                &Verdict::Keep {
                    kept_by: KeepRule::InProgress,
                    expires_at: None
                },
                "{id}"
            );
        }
        assert_eq!(kept_by(&plan, "a1"), Some(KeepRule::MaxAge));
        assert_eq!(reason(&plan, "a2"), Some(DeleteReason::MaxCount));
        assert!(!verdicts(&plan).contains_key("gone"));
    }

    #[test]
    fn backups_not_owned_are_never_in_the_plan_even_when_ancient() {
        let now = ts("2025-06-15T12:00:00Z");
        let ancient = Some(ts("2001-01-01T00:00:00Z"));
        let ours = backup("ours", Lifecycle::Available, ancient);
        let with = |id: &str, f: &dyn Fn(&mut Backup)| {
            let mut b = backup(id, Lifecycle::Available, ancient);
            f(&mut b);
            b
        };
        let backups = vec![
            ours.clone(),
            with("automatic", &|b| {
                b.backup_type = Some(BackupType::Automatic);
            }),
            with("aws-backup", &|b| {
                b.backup_type = Some(BackupType::AwsBackup);
            }),
            with("untyped", &|b| b.backup_type = None),
            with("other-type", &|b| {
                b.backup_type = Some(BackupType::Other("X".into()));
            }),
            with("foreign", &|b| {
                b.tags.insert(MANAGED_BY_KEY.into(), "someone-else".into());
            }),
            with("other-uid", &|b| {
                b.tags.insert(OWNER_UID_KEY.into(), "another-uid".into());
            }),
            with("untagged", &|b| b.tags.clear()),
            with("failed-foreign", &|b| {
                b.lifecycle = Lifecycle::Failed;
                b.tags.insert(OWNER_UID_KEY.into(), "another-uid".into());
            }),
        ];
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(1)),
            min_available: 0,
            failed_history_limit: 0,
            ..policy()
        };
        let plan = plan_for(now, &policy, &backups);
        assert_eq!(
            plan.decisions
                .iter()
                .map(|d| d.backup_id.as_str())
                .collect::<Vec<_>>(),
            ["ours"]
        );
        assert_eq!(deleted(&plan), ["ours"]);
        assert_eq!(
            super::plan(now, &policy, &TimeZone::UTC, &backups, ""),
            Plan::default()
        );
    }

    #[test]
    fn no_policy_keeps_every_available_backup_and_prunes_failed_history() {
        let now = ts("2025-06-15T12:00:00Z");
        let mut backups = aged(now, &[DAY, 400 * DAY, 4000 * DAY]);
        backups.push(backup("f1", Lifecycle::Failed, Some(ago(now, HOUR))));
        backups.push(backup("f2", Lifecycle::Failed, Some(ago(now, 2 * HOUR))));
        let policy = RetentionPolicy {
            failed_history_limit: 1,
            ..policy()
        };
        let plan = plan_for(now, &policy, &backups);
        assert_eq!(deleted(&plan), ["f2"]);
        for id in ["b1", "b2", "b3"] {
            assert_eq!(
                verdicts(&plan)[id],
                &Verdict::Keep {
                    kept_by: KeepRule::NoPolicy,
                    expires_at: None
                }
            );
        }
        assert_eq!(plan.next_expiry, None);
    }

    #[test]
    fn decisions_are_newest_first_and_duplicates_planned_once_as_the_safest() {
        let now = ts("2025-06-15T12:00:00Z");
        let backups = vec![
            available("old", ago(now, 9 * DAY)),
            available("dup", ago(now, 8 * DAY)),
            backup("dup", Lifecycle::Creating, Some(ago(now, 8 * DAY))),
            backup("unknown", Lifecycle::Available, None),
            available("new", ago(now, HOUR)),
        ];
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(DAY)),
            min_available: 0,
            ..policy()
        };
        let plan = plan_for(now, &policy, &backups);
        let ids: Vec<&str> = plan
            .decisions
            .iter()
            .map(|d| d.backup_id.as_str())
            .collect();
        assert_eq!(ids, ["unknown", "new", "dup", "old"]);
        assert_eq!(kept_by(&plan, "dup"), Some(KeepRule::InProgress));
        assert_eq!(deleted(&plan), ["old"]);
    }

    #[test]
    fn unbounded_ages_and_future_backups_never_expire() {
        let now = ts("2025-06-15T12:00:00Z");
        let backups = vec![
            available("future", now + SignedDuration::from_hours(2)),
            available("old", ago(now, 3000 * DAY)),
        ];
        let huge = RetentionPolicy {
            max_age: Some(Duration::MAX),
            min_available: 0,
            ..policy()
        };
        let plan = plan_for(now, &huge, &backups);
        assert_eq!(deleted(&plan), Vec::<&str>::new());
        assert_eq!(plan.next_expiry, None);
        let zero = RetentionPolicy {
            max_age: Some(Duration::ZERO),
            min_available: 0,
            ..policy()
        };
        let plan = plan_for(now, &zero, &backups);
        assert_eq!(deleted(&plan), ["old"]);
        assert_eq!(plan.next_expiry, Some(now + SignedDuration::from_hours(2)));
    }

    #[test]
    fn validate_rejects_policies_that_keep_nothing() {
        let base = policy();
        let rejected = [
            base.clone(),
            RetentionPolicy {
                min_available: 5,
                ..base.clone()
            },
            RetentionPolicy {
                max_age: Some(Duration::ZERO),
                ..base.clone()
            },
            RetentionPolicy {
                max_count: Some(0),
                ..base.clone()
            },
            RetentionPolicy {
                max_age: Some(Duration::ZERO),
                max_count: Some(0),
                keep_last: Some(0),
                keep_hourly: Some(0),
                keep_daily: Some(0),
                keep_weekly: Some(0),
                keep_monthly: Some(0),
                keep_yearly: Some(0),
                ..base.clone()
            },
        ];
        for policy in rejected {
            let err = policy.validate().expect_err("keeps nothing");
            assert!(err.starts_with("spec.retention keeps nothing"), "{err}");
            assert!(
                err.contains("maxAge, maxCount or a keep* rule above zero"),
                "{err}"
            );
        }
        let err = RetentionPolicy {
            max_count: Some(0),
            keep_daily: Some(0),
            ..base.clone()
        }
        .validate()
        .expect_err("zero");
        assert!(
            err.contains("maxCount 0") && err.contains("keepDaily 0"),
            "{err}"
        );
        let accepted = [
            RetentionPolicy {
                max_count: Some(1),
                ..base.clone()
            },
            RetentionPolicy {
                keep_daily: Some(1),
                ..base.clone()
            },
            RetentionPolicy {
                max_age: Some(Duration::from_secs(1)),
                ..base.clone()
            },
            RetentionPolicy {
                max_count: Some(0),
                keep_yearly: Some(1),
                ..base.clone()
            },
        ];
        for policy in accepted {
            assert_eq!(policy.validate(), Ok(()), "{policy:?}");
        }
    }

    #[test]
    fn names_are_the_spec_field_names() {
        assert_eq!(KeepRule::InProgress.as_str(), "inProgress");
        assert_eq!(KeepRule::KeepDaily.as_str(), "keepDaily");
        assert_eq!(KeepRule::MinAvailable.as_str(), "minAvailable");
        assert_eq!(KeepRule::FailedHistory.as_str(), "failedHistoryLimit");
        assert_eq!(KeepRule::UnknownAge.as_str(), "unknownAge");
        assert_eq!(KeepRule::NoPolicy.as_str(), "noPolicy");
        assert_eq!(DeleteReason::NotKeptByAnyRule.as_str(), "notKeptByAnyRule");
        assert_eq!(DeleteReason::MaxAge.as_str(), "maxAge");
    }

    // ---- properties ----

    const NOW_SECS: i64 = 1_750_000_000;

    fn arb_backup() -> impl Strategy<Value = (u8, u8, u8, Option<i64>)> {
        // lifecycle, type, ownership, age in minutes (negative: in the future).
        // Whole days from a short range half the time, so equal creation times are common.
        let age = prop_oneof![
            -3_000i64..1_200_000,
            (0i64..20).prop_map(|days| days * 1440)
        ];
        (0u8..8, 0u8..5, 0u8..6, proptest::option::weighted(0.9, age))
    }

    fn build(index: usize, (lifecycle, kind, owner, age): (u8, u8, u8, Option<i64>)) -> Backup {
        let lifecycle = match lifecycle {
            0..=2 => Lifecycle::Available,
            3 => Lifecycle::Failed,
            4 => Lifecycle::Creating,
            5 => Lifecycle::Copying,
            6 => Lifecycle::Deleted,
            _ => Lifecycle::Other("SOMETHING_NEW".into()),
        };
        // Minutes rounded to hours half the time, so equal creation times occur.
        let created_at = age.map(|minutes| {
            let minutes = if minutes % 2 == 0 {
                minutes / 60 * 60
            } else {
                minutes
            };
            Timestamp::from_second(NOW_SECS - minutes * 60).expect("in range")
        });
        let mut b = backup(&format!("backup-{index:04}"), lifecycle, created_at);
        b.backup_type = match kind {
            0 | 1 => Some(BackupType::UserInitiated),
            2 => Some(BackupType::Automatic),
            3 => Some(BackupType::AwsBackup),
            _ => None,
        };
        match owner {
            0..=2 => {}
            3 => {
                b.tags.insert(OWNER_UID_KEY.into(), "someone-else".into());
            }
            4 => {
                b.tags.insert(MANAGED_BY_KEY.into(), "a-person".into());
            }
            _ => b.tags.clear(),
        }
        b
    }

    fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
        let n = || proptest::option::of(0u32..6);
        (
            proptest::option::of(0u64..(40 * DAY)),
            n(),
            n(),
            (n(), n(), n(), n(), n()),
            0u32..6,
            0u32..5,
        )
            .prop_map(
                |(max_age, max_count, keep_last, (h, d, w, m, y), min_available, failed)| {
                    RetentionPolicy {
                        max_age: max_age.map(Duration::from_secs),
                        max_count,
                        keep_last,
                        keep_hourly: h,
                        keep_daily: d,
                        keep_weekly: w,
                        keep_monthly: m,
                        keep_yearly: y,
                        min_available,
                        failed_history_limit: failed,
                    }
                },
            )
    }

    fn arb_case() -> impl Strategy<Value = (Vec<Backup>, Vec<Backup>, RetentionPolicy, u8)> {
        (
            proptest::collection::vec(arb_backup(), 0..40),
            arb_policy(),
            0u8..3,
        )
            .prop_flat_map(|(specs, policy, tz)| {
                let backups: Vec<Backup> = specs
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| build(i, s))
                    .collect();
                (
                    Just(backups.clone()),
                    Just(backups).prop_shuffle(),
                    Just(policy),
                    Just(tz),
                )
            })
    }

    fn zone(index: u8) -> TimeZone {
        match index {
            0 => TimeZone::UTC,
            1 => berlin(),
            _ => TimeZone::get("Australia/Lord_Howe").expect("bundled tzdb"),
        }
    }

    /// Newest first as the planner documents it: unknown creation time first, ties by id.
    fn newest_first(backups: &mut [&Backup]) {
        backups.sort_by_key(|b| {
            (
                b.created_at.is_some(),
                std::cmp::Reverse(b.created_at),
                b.id.clone(),
            )
        });
    }

    proptest! {
        #[test]
        fn plans_are_safe_and_deterministic((backups, shuffled, policy, tz) in arb_case()) {
            check_plan(&backups, &shuffled, &policy, &zone(tz))?;
        }
    }

    /// (3) The floor holds, and every AVAILABLE deletion is justified by a rule.
    fn check_available(
        plan: &Plan,
        backups: &[Backup],
        policy: &RetentionPolicy,
        now: Timestamp,
    ) -> Result<(), TestCaseError> {
        // (3) the floor holds.
        let mut available: Vec<&Backup> = backups
            .iter()
            .filter(|b| is_owned_by(b, UID) && b.lifecycle == Lifecycle::Available)
            .collect();
        newest_first(&mut available);
        let kept_available = available
            .iter()
            .filter(|b| !plan.deletions().any(|d| d.backup_id == b.id))
            .count();
        prop_assert!(kept_available >= available.len().min(policy.min_available as usize));
        // Each AVAILABLE deletion is justified by a rule; none of the keepLast newest is deleted.
        let no_rule = policy.max_age.is_none()
            && policy.max_count.is_none()
            && [
                policy.keep_last,
                policy.keep_hourly,
                policy.keep_daily,
                policy.keep_weekly,
                policy.keep_monthly,
                policy.keep_yearly,
            ]
            .iter()
            .all(Option::is_none);
        let dated: Vec<&&Backup> = available
            .iter()
            .filter(|b| b.created_at.is_some())
            .collect();
        for (rank, b) in dated.iter().enumerate() {
            if !plan.deletions().any(|d| d.backup_id == b.id) {
                continue;
            }
            prop_assert!(!no_rule, "deleted with no rule: {}", b.id);
            let created = b.created_at.expect("dated");
            let too_old = policy.max_age.is_some_and(|age| {
                now.duration_since(created) >= SignedDuration::try_from(age).expect("small")
            });
            let too_many = policy.max_count.is_some_and(|n| rank >= n as usize);
            let expiry_rule = policy.max_age.is_some() || policy.max_count.is_some();
            prop_assert!(
                too_old || too_many || !expiry_rule,
                "deleted an unexpired backup {}",
                b.id
            );
            prop_assert!(
                policy.keep_last.is_none_or(|n| rank >= n as usize),
                "deleted within keepLast: {}",
                b.id
            );
        }
        Ok(())
    }

    /// The properties every plan must have, whatever the backups and policy.
    fn check_plan(
        backups: &[Backup],
        shuffled: &[Backup],
        policy: &RetentionPolicy,
        tz: &TimeZone,
    ) -> Result<(), TestCaseError> {
        let now = Timestamp::from_second(NOW_SECS).expect("in range");
        let plan = plan(now, policy, tz, backups, UID);
        let by_id: BTreeMap<&str, &Backup> = backups.iter().map(|b| (b.id.as_str(), b)).collect();

        // (1) every deletion is owned; (2) only AVAILABLE or FAILED, with a known age.
        for d in plan.deletions() {
            let b = by_id[d.backup_id.as_str()];
            prop_assert!(is_owned_by(b, UID), "deleted a backup not owned: {b:?}");
            prop_assert!(
                matches!(b.lifecycle, Lifecycle::Available | Lifecycle::Failed),
                "{b:?}"
            );
            prop_assert!(
                b.created_at.is_some(),
                "deleted a backup of unknown age: {b:?}"
            );
        }
        // (2) FAILED deletions only beyond the newest failed_history_limit failed.
        let mut failed: Vec<&Backup> = backups
            .iter()
            .filter(|b| is_owned_by(b, UID) && b.lifecycle == Lifecycle::Failed)
            .collect();
        newest_first(&mut failed);
        for (rank, b) in failed.iter().enumerate() {
            let is_deleted = plan.deletions().any(|d| d.backup_id == b.id);
            prop_assert_eq!(
                is_deleted,
                rank >= policy.failed_history_limit as usize && b.created_at.is_some(),
                "failed {} rank {}",
                b.id,
                rank
            );
        }
        check_available(&plan, backups, policy, now)?;
        // (4) one decision per owned, not DELETED backup.
        let expected: BTreeSet<&str> = backups
            .iter()
            .filter(|b| is_owned_by(b, UID) && b.lifecycle != Lifecycle::Deleted)
            .map(|b| b.id.as_str())
            .collect();
        let ids: Vec<&str> = plan
            .decisions
            .iter()
            .map(|d| d.backup_id.as_str())
            .collect();
        prop_assert_eq!(ids.len(), expected.len());
        prop_assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
        // In progress is always kept as such.
        for d in &plan.decisions {
            if d.lifecycle.in_progress() {
                prop_assert_eq!(
                    &d.verdict,
                    &Verdict::Keep {
                        kept_by: KeepRule::InProgress,
                        expires_at: None
                    }
                );
            }
        }
        // next_expiry is the earliest future expiry of a kept backup.
        let expiries = plan.decisions.iter().filter_map(|d| match d.verdict {
            Verdict::Keep { expires_at, .. } => expires_at,
            Verdict::Delete { .. } => None,
        });
        prop_assert_eq!(plan.next_expiry, expiries.filter(|&at| at > now).min());
        // (5) listing order does not matter.
        prop_assert_eq!(plan, super::plan(now, policy, tz, shuffled, UID));
        Ok(())
    }
}
