//! The recovery-point objective: how old a target's newest AVAILABLE backup
//! (for a copy: its newest AVAILABLE copy) may get before a person must look.
//! Pure: given what was observed, `now` and the RPO, the status entries, the
//! breach and recovery effects, and the health that follows.
//!
//! Rules:
//! - Default for a schedule: twice the longest gap between its consecutive
//!   runs (over a year from January 1st, [`HORIZON`]), plus `backupTimeout`: one failed or
//!   missed run is tolerated, two in a row are not.
//! - Default for a copy: its schedule's RPO (set or default) plus
//!   [`COPY_ALLOWANCE`] for the copy itself.
//! - A target's clock starts when it is first tracked (for a new object, its
//!   creation): one that never had a backup breaches `rpo` after that.
//! - A recovery point only moves forward with new backups, except when a
//!   listing of the target shows the recorded one is gone (retention or a
//!   person deleted it): then the listing is the truth.
//! - Suspended schedules are not judged (no breach while suspended).

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::controller::effects::Effect;
use crate::crd::common::RecoveryPoint;
use crate::schedule::Schedule;

/// Added to a followed schedule's RPO for a copy: cross-Region copies of
/// large file systems take hours.
pub const COPY_ALLOWANCE: Duration = Duration::from_hours(12);
/// How far the longest gap between runs is looked for: a year covers every
/// month length and weekday pattern.
pub const HORIZON: Duration = Duration::from_hours(24 * 366);
/// At most this many runs are walked (minute schedules reach it first; their
/// gaps repeat within a week).
const MAX_RUNS: usize = 12_000;

/// Longest gap between consecutive runs, cached per `key` (cron, time zone).
static LONGEST_GAP: LazyLock<Mutex<HashMap<String, Option<Duration>>>> =
    LazyLock::new(Mutex::default);

/// The longest gap between two consecutive runs of `schedule` over a year
/// from January 1st of `now`'s year (a fixed anchor: the same answer at every
/// restart within the year). `key` names the schedule for the cache. `None`
/// when it runs at most once in that year.
pub fn longest_gap(key: &str, schedule: &Schedule, now: Timestamp) -> Option<Duration> {
    if let Some(cached) = LONGEST_GAP
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key)
    {
        return *cached;
    }
    let longest = walk(schedule, now);
    LONGEST_GAP
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key.to_owned(), longest);
    longest
}

fn walk(schedule: &Schedule, now: Timestamp) -> Option<Duration> {
    let zone = schedule.time_zone().clone();
    let year = now.to_zoned(zone.clone()).year();
    let anchor = jiff::civil::date(year, 1, 1)
        .to_zoned(zone)
        .ok()?
        .timestamp();
    let end = anchor
        .checked_add(SignedDuration::try_from(HORIZON).ok()?)
        .ok()?;
    let mut previous = schedule.next_after(anchor)?;
    let mut longest: Option<Duration> = None;
    for _ in 0..MAX_RUNS {
        let Some(next) = schedule.next_after(previous) else {
            break;
        };
        let gap = Duration::try_from(next.duration_since(previous)).unwrap_or_default();
        longest = Some(longest.map_or(gap, |l| l.max(gap)));
        previous = next;
        if next > end {
            break;
        }
    }
    longest
}

/// A schedule's default RPO: `2 × longest gap + backupTimeout` (a schedule
/// that runs at most once more gets `backupTimeout` plus a year).
pub fn schedule_default(longest_gap: Option<Duration>, backup_timeout: Duration) -> Duration {
    longest_gap
        .map_or(Duration::from_hours(24 * 366), |gap| gap.saturating_mul(2))
        .saturating_add(backup_timeout)
}

/// What one reconcile learned about a target's newest AVAILABLE backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub newest: Option<Timestamp>,
    /// From a full listing of the target: replaces the recorded point even
    /// when older (the recorded backup is gone).
    pub listing: bool,
}

/// What [`judge`] decided.
#[derive(Debug, Default)]
pub struct Judgement {
    pub points: Vec<RecoveryPoint>,
    /// Breach and recovery events and notifications, on a change only.
    pub effects: Vec<Effect>,
    /// The breached targets' message, if any.
    pub breached: Option<String>,
    /// The earliest breach still ahead: when to look again.
    pub next_breach: Option<Timestamp>,
    /// Targets no longer tracked (their series go).
    pub dropped: Vec<String>,
}

/// The recovery points of `targets` after this reconcile: `previous` status
/// entries updated with `seen`, judged against `rpo` at `now` (not judged
/// when `paused`). A target tracked for the first time starts its clock at
/// `start`. Targets not listed are dropped.
pub fn judge(
    previous: &[RecoveryPoint],
    targets: &[String],
    seen: &BTreeMap<String, Seen>,
    rpo: Duration,
    now: Timestamp,
    start: Timestamp,
    paused: bool,
) -> Judgement {
    let rpo_signed = SignedDuration::try_from(rpo).unwrap_or(SignedDuration::MAX);
    let mut out = Judgement::default();
    let mut breached = Vec::new();
    for target in targets {
        let before = previous.iter().find(|p| &p.target == target);
        let mut point = before.cloned().unwrap_or_else(|| RecoveryPoint {
            target: target.clone(),
            time: None,
            tracked_since: Time(start),
            breach_time: None,
            breached: None,
        });
        if let Some(seen) = seen.get(target) {
            let recorded = point.time.as_ref().map(|t| t.0);
            point.time = if seen.listing {
                seen.newest
            } else {
                recorded.max(seen.newest)
            }
            .map(Time);
        }
        let base = point.time.as_ref().map_or(point.tracked_since.0, |t| t.0);
        let breach_at = base.checked_add(rpo_signed).ok();
        let was_breached = point.breached == Some(true);
        let is_breached = !paused && breach_at.is_some_and(|at| at <= now);
        point.breach_time = breach_at.filter(|_| !paused).map(Time);
        point.breached = Some(is_breached);
        let newest = point
            .time
            .as_ref()
            .map_or_else(|| "none yet".to_owned(), |t| t.0.to_string());
        if is_breached {
            breached.push(format!(
                "{target}: newest recovery point {newest} is older than the RPO {}",
                crate::duration::format_duration(rpo)
            ));
        } else if let Some(at) = breach_at.filter(|_| !paused) {
            out.next_breach = Some(out.next_breach.map_or(at, |n: Timestamp| n.min(at)));
        }
        if is_breached && !was_breached {
            let note = format!(
                "RPO breached for {target}: newest recovery point {newest}, RPO {}",
                crate::duration::format_duration(rpo)
            );
            out.effects
                .push(Effect::failure(target, None, note.clone()));
            out.effects
                .push(Effect::event(true, "RPOBreached", "Backup", note));
        } else if was_breached && !is_breached && !paused {
            let note = format!("RPO met again for {target}: newest recovery point {newest}");
            out.effects.push(Effect::recovered(target, note.clone()));
            out.effects
                .push(Effect::event(false, "RPORecovered", "Backup", note));
        }
        out.points.push(point);
    }
    if !breached.is_empty() {
        out.breached = Some(breached.join("; "));
    }
    out.dropped = previous
        .iter()
        .filter(|p| !targets.contains(&p.target))
        .map(|p| p.target.clone())
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn schedule(cron: &str) -> Schedule {
        Schedule::parse(cron, "UTC").expect("cron")
    }

    #[test]
    fn the_default_tolerates_one_missed_run_of_the_longest_gap() {
        let now = at("2026-12-01T00:00:00Z");
        let weekdays = longest_gap("test|0 3 * * 1-5|UTC", &schedule("0 3 * * 1-5"), now);
        assert_eq!(weekdays, Some(Duration::from_hours(72)), "Friday to Monday");
        let monthly = longest_gap("test|0 0 1 * *|UTC", &schedule("0 0 1 * *"), now);
        assert_eq!(
            monthly,
            Some(Duration::from_hours(24 * 31)),
            "the longest month"
        );
        let hourly = longest_gap("test|0 * * * *|UTC", &schedule("0 * * * *"), now);
        assert_eq!(hourly, Some(Duration::from_hours(1)));
        assert_eq!(
            schedule_default(hourly, Duration::from_hours(6)),
            Duration::from_hours(8)
        );
    }

    #[test]
    fn a_target_breaches_once_and_recovers_once() {
        let rpo = Duration::from_hours(2);
        let targets = vec!["fs-1".to_owned()];
        let none = BTreeMap::new();
        let t0 = at("2026-12-01T00:00:00Z");
        // Tracked from now; never backed up: breaches two hours later.
        let first = judge(&[], &targets, &none, rpo, t0, t0, false);
        assert_eq!(first.points[0].tracked_since.0, t0);
        assert_eq!(first.next_breach, Some(at("2026-12-01T02:00:00Z")));
        assert!(first.breached.is_none() && first.effects.is_empty());

        let late = at("2026-12-01T02:00:01Z");
        let breach = judge(&first.points, &targets, &none, rpo, late, late, false);
        assert!(
            breach
                .breached
                .as_deref()
                .is_some_and(|m| m.contains("none yet"))
        );
        assert_eq!(breach.effects.len(), 2, "one notification, one event");
        let again = judge(&breach.points, &targets, &none, rpo, late, late, false);
        assert!(
            again.breached.is_some() && again.effects.is_empty(),
            "told once"
        );

        let seen = BTreeMap::from([(
            "fs-1".to_owned(),
            Seen {
                newest: Some(late),
                listing: false,
            },
        )]);
        let recovered = judge(&again.points, &targets, &seen, rpo, late, late, false);
        assert!(recovered.breached.is_none());
        assert_eq!(recovered.effects.len(), 2);
        assert_eq!(recovered.points[0].time.as_ref().map(|t| t.0), Some(late));

        // An older backup seen later does not move the point back; a listing does.
        let older = BTreeMap::from([(
            "fs-1".to_owned(),
            Seen {
                newest: Some(t0),
                listing: false,
            },
        )]);
        let kept = judge(&recovered.points, &targets, &older, rpo, late, late, false);
        assert_eq!(kept.points[0].time.as_ref().map(|t| t.0), Some(late));
        let listed = BTreeMap::from([(
            "fs-1".to_owned(),
            Seen {
                newest: Some(t0),
                listing: true,
            },
        )]);
        let truth = judge(&recovered.points, &targets, &listed, rpo, late, late, false);
        assert_eq!(truth.points[0].time.as_ref().map(|t| t.0), Some(t0));
        assert!(truth.breached.is_some());
    }

    #[test]
    fn a_paused_object_is_not_judged_and_dropped_targets_are_forgotten() {
        let rpo = Duration::from_mins(1);
        let t0 = at("2026-12-01T00:00:00Z");
        let targets = vec!["fs-1".to_owned(), "fs-2".to_owned()];
        let first = judge(&[], &targets, &BTreeMap::new(), rpo, t0, t0, false);
        let later = at("2026-12-02T00:00:00Z");
        let paused = judge(
            &first.points,
            &targets,
            &BTreeMap::new(),
            rpo,
            later,
            later,
            true,
        );
        assert!(paused.breached.is_none() && paused.effects.is_empty());
        assert!(paused.points.iter().all(|p| p.breach_time.is_none()));
        let one = judge(
            &first.points,
            &targets[..1],
            &BTreeMap::new(),
            rpo,
            later,
            later,
            false,
        );
        assert_eq!(one.points.len(), 1);
        assert_eq!(one.dropped, ["fs-2"]);
    }
}
