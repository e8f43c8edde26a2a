//! Cron schedules in an IANA time zone: parsing, the next firing instant, jitter, and which
//! run is due after a pause (operator down, cluster down).
//!
//! Grammar: five fields `minute hour day-of-month month day-of-week` with lists (`1,15`),
//! ranges (`1-5`), steps (`*/15`, `10-50/20`), month and weekday names (`JAN`, `mon`), `7`
//! for Sunday, and the macros `@hourly @daily @midnight @weekly @monthly @yearly @annually`.
//! As in Vixie cron, when both day fields are restricted a day matches if *either* does.
//!
//! Daylight saving time, evaluated in `timeZone` (UTC when unset):
//! - **Spring forward (gap).** A time that does not exist that day (02:30 in Europe/Berlin on
//!   the last Sunday of March) runs once, shifted forward by the gap (03:30 local).
//! - **Fall back (fold).** A time that occurs twice runs once, at its first occurrence;
//!   schedules whose hour field is `*` (hourly and finer) run in both occurrences, so they keep
//!   their interval in elapsed time.

use std::fmt;
use std::time::Duration;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use crate::naming::stable_hash;

/// How far ahead a schedule is searched: covers leap days (`0 0 29 2 *`) several times over.
const HORIZON_YEARS: i16 = 8;
/// Bounded work when counting runs missed during a long outage; beyond it the count is a floor.
const MAX_COUNTED_MISSES: u32 = 10_000;

/// A spec error, naming the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// The cron expression is malformed or never fires.
    Cron(String),
    /// The time zone is not a known IANA name.
    TimeZone(String),
}

impl ScheduleError {
    /// The spec field to fix.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Cron(_) => "spec.schedule",
            Self::TimeZone(_) => "spec.timeZone",
        }
    }
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cron(message) | Self::TimeZone(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// A set of allowed values of one cron field, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    bits: u64,
    /// Written as `*` (or `*/n`): matters for the day-of-month/day-of-week rule.
    star: bool,
}

impl Field {
    fn has(self, value: i8) -> bool {
        (0..64).contains(&value) && self.bits & (1 << value) != 0
    }

    /// The smallest allowed value `>= from`, if any.
    fn next_from(self, from: i8) -> Option<i8> {
        if !(0..64).contains(&from) {
            return None;
        }
        let rest = self.bits >> from;
        (rest != 0).then(|| from + i8::try_from(rest.trailing_zeros()).unwrap_or(i8::MAX))
    }
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
/// 0 and 7 are both Sunday.
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl FieldSpec {
    fn value(&self, text: &str) -> Result<u32, String> {
        let lower = text.to_ascii_lowercase();
        if let Some(index) = self.names.iter().position(|n| *n == lower) {
            return Ok(u32::try_from(index).unwrap_or(u32::MAX) + self.min);
        }
        let value: u32 = text
            .parse()
            .map_err(|_| format!("\"{text}\" is not a valid {}", self.name))?;
        if value < self.min || value > self.max {
            return Err(format!(
                "{} {value} is outside {}-{}",
                self.name, self.min, self.max
            ));
        }
        Ok(value)
    }

    fn parse(&self, text: &str) -> Result<Field, String> {
        let mut bits = 0u64;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => {
                    let step: u32 = step
                        .parse()
                        .map_err(|_| format!("bad step \"{step}\" in the {} field", self.name))?;
                    if step == 0 {
                        return Err(format!("step 0 in the {} field", self.name));
                    }
                    (range, step)
                }
                None => (part, 1),
            };
            let (low, high) = if range == "*" {
                (self.min, self.max)
            } else if let Some((low, high)) = range.split_once('-') {
                (self.value(low)?, self.value(high)?)
            } else {
                let value = self.value(range)?;
                // `5/15` means "from 5 every 15", as in Vixie cron.
                (value, if part.contains('/') { self.max } else { value })
            };
            if low > high {
                return Err(format!(
                    "range {low}-{high} in the {} field is backwards",
                    self.name
                ));
            }
            for value in (low..=high).step_by(step as usize) {
                bits |= 1 << value;
            }
        }
        Ok(Field {
            bits,
            star: text.starts_with('*'),
        })
    }
}

/// A parsed cron schedule bound to its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    minutes: Field,
    hours: Field,
    days_of_month: Field,
    months: Field,
    days_of_week: Field,
    time_zone: TimeZone,
}

impl Schedule {
    /// Parses `expression` (5 fields or a macro) in the IANA zone `time_zone`; refuses a
    /// schedule that never fires (`0 0 30 2 *`).
    pub fn parse(expression: &str, time_zone: &str) -> Result<Self, ScheduleError> {
        let zone = TimeZone::get(time_zone).map_err(|_| {
            ScheduleError::TimeZone(format!(
                "\"{time_zone}\" is not an IANA time zone name (e.g. UTC, Europe/Berlin)"
            ))
        })?;
        let expanded = match expression.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other if other.starts_with('@') => {
                return Err(ScheduleError::Cron(format!(
                    "unknown macro \"{other}\"; use @hourly, @daily, @weekly, @monthly or @yearly"
                )));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day_of_month, month, day_of_week] = fields[..] else {
            return Err(ScheduleError::Cron(format!(
                "\"{expression}\" has {} fields; cron needs 5: minute hour day-of-month month day-of-week",
                fields.len()
            )));
        };
        let bad = |message: String| ScheduleError::Cron(format!("\"{expression}\": {message}"));
        let mut weekdays = DAY_OF_WEEK.parse(day_of_week).map_err(bad)?;
        if weekdays.has(7) {
            weekdays.bits = (weekdays.bits & !(1 << 7)) | 1;
        }
        let schedule = Self {
            minutes: MINUTE.parse(minute).map_err(bad)?,
            hours: HOUR.parse(hour).map_err(bad)?,
            days_of_month: DAY_OF_MONTH.parse(day_of_month).map_err(bad)?,
            months: MONTH.parse(month).map_err(bad)?,
            days_of_week: weekdays,
            time_zone: zone,
        };
        let start = DateTime::constant(2024, 1, 1, 0, 0, 0, 0);
        if schedule.next_civil(start, 2024 + HORIZON_YEARS).is_none() {
            return Err(ScheduleError::Cron(format!(
                "\"{expression}\" never fires (no such day)"
            )));
        }
        Ok(schedule)
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.days_of_month.has(date.day());
        let dow = self
            .days_of_week
            .has(date.weekday().to_sunday_zero_offset());
        if self.days_of_month.star || self.days_of_week.star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first civil date-time `>= from` (whole minutes) that the fields match, searched
    /// field by field up to `last_year`.
    fn next_civil(&self, from: DateTime, last_year: i16) -> Option<DateTime> {
        let (mut year, mut month, mut day) = (from.year(), from.month(), from.day());
        let (mut hour, mut minute) = (from.hour(), from.minute());
        loop {
            if year > last_year {
                return None;
            }
            let date = Date::new(year, month, day)
                .ok()
                .filter(|_| self.months.has(month));
            let Some(date) = date else {
                // Month not allowed, or past its last day: first minute of the next month.
                (year, month) = if month >= 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                (day, hour, minute) = (1, 0, 0);
                continue;
            };
            if !self.day_matches(date) {
                (day, hour, minute) = (day + 1, 0, 0);
                continue;
            }
            let Some(h) = self.hours.next_from(hour) else {
                (day, hour, minute) = (day + 1, 0, 0);
                continue;
            };
            if h != hour {
                (hour, minute) = (h, 0);
            }
            let Some(m) = self.minutes.next_from(minute) else {
                (hour, minute) = (hour + 1, 0);
                continue;
            };
            return Some(date.to_datetime(Time::constant(hour, m, 0, 0)));
        }
    }

    /// The instants a matching civil time stands for under the DST rules in the module docs.
    fn instants(&self, civil: DateTime) -> impl Iterator<Item = Timestamp> {
        let ambiguous = self.time_zone.to_ambiguous_timestamp(civil);
        let (first, second) = match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { offset } => (offset.to_timestamp(civil).ok(), None),
            // Shifted forward by the gap: the civil time read with the offset before it.
            AmbiguousOffset::Gap { before, .. } => (before.to_timestamp(civil).ok(), None),
            AmbiguousOffset::Fold { before, after } => (
                before.to_timestamp(civil).ok(),
                after.to_timestamp(civil).ok().filter(|_| self.hours.star),
            ),
        };
        first.into_iter().chain(second)
    }

    /// The first firing instant strictly after `after`, or `None` if there is none within the
    /// search horizon.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let zone = &self.time_zone;
        let civil = zone.to_datetime(after);
        let last_year = civil.year().saturating_add(HORIZON_YEARS);
        let start = next_whole_minute(civil);
        let first = self.next_civil(start, last_year)?;
        let day = SignedDuration::from_hours(24);
        // Away from DST changes civil and absolute time run together: the first match is it.
        let first_instant = self.instants(first).next()?;
        let window_end = first_instant.saturating_add(day).ok()?;
        // The clock shifts of the changes near: how far civil and absolute time drift apart.
        let shift: i64 = after
            .saturating_sub(day)
            .ok()
            .into_iter()
            .flat_map(|t| zone.following(t))
            .take_while(|t| t.timestamp() <= window_end)
            .map(|t| {
                let before = t
                    .timestamp()
                    .saturating_sub(SignedDuration::from_secs(1))
                    .map_or(t.offset(), |b| zone.to_offset(b));
                i64::from((t.offset().seconds() - before.seconds()).abs())
            })
            .sum();
        if shift == 0 {
            return self.instants(first).find(|instant| *instant > after);
        }
        // Near a change, earlier civil times may map after `after` (gap, second occurrence)
        // and later ones before a found instant: examine the civil times within the
        // shift (and a minute) on both sides. A civil time `c` lands after `after` only
        // if `c > civil(after) - shift`, so nothing outside can be the answer.
        let window = SignedDuration::from_secs(shift).saturating_add(SignedDuration::from_mins(1));
        let mut best: Option<Timestamp> = None;
        let mut cursor = start.saturating_sub(window);
        while let Some(candidate) = self.next_civil(cursor, last_year) {
            if best.is_some_and(|b| candidate > zone.to_datetime(b).saturating_add(window)) {
                break;
            }
            for instant in self.instants(candidate).filter(|instant| *instant > after) {
                best = Some(best.map_or(instant, |b| b.min(instant)));
            }
            cursor = candidate.saturating_add(SignedDuration::from_mins(1));
        }
        best
    }
}

fn next_whole_minute(civil: DateTime) -> DateTime {
    let truncated = civil
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .unwrap_or(civil);
    truncated.saturating_add(SignedDuration::from_mins(1))
}

/// The object's fixed place within its `jitter` window: derived from a stable key (the UID), so
/// it survives restarts and spreads many objects on the same schedule over the window.
pub fn jitter_offset(key: &str, jitter: Duration) -> Duration {
    let window = jitter.as_secs();
    if window == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(stable_hash(&["jitter", key]) % window)
}

/// What the schedule says at `now`, given the first slot not yet handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The slot to run now (unshifted by jitter): the latest one due, if within the deadline.
    pub run: Option<Timestamp>,
    /// Slots passed over: superseded by a later slot or later than the deadline.
    pub missed: u32,
    /// Those slots, oldest first, as far as they were walked (all of them up to
    /// `MAX_COUNTED_MISSES`; beyond, `missed` counts more than are listed).
    pub missed_slots: Vec<Timestamp>,
    /// The latest slot passed over.
    pub last_missed: Option<Timestamp>,
    /// The first slot after the ones handled now.
    pub next_slot: Option<Timestamp>,
}

/// Which run is due: of all slots from `pending_slot` whose shifted instant (`slot + offset`)
/// has come, only the latest runs — and only if it is late by at most `deadline`. The others
/// are counted as missed: never a burst of catch-up runs.
pub fn due(
    schedule: &Schedule,
    offset: Duration,
    pending_slot: Timestamp,
    now: Timestamp,
    deadline: Option<Duration>,
) -> Due {
    let offset = SignedDuration::try_from(offset).unwrap_or(SignedDuration::ZERO);
    let mut result = Due {
        run: None,
        missed: 0,
        missed_slots: Vec::new(),
        last_missed: None,
        next_slot: Some(pending_slot),
    };
    let mut latest_due = None;
    let mut slot = Some(pending_slot);
    let mut counted: u32 = 0;
    while let Some(current) = slot.filter(|s| s.saturating_add(offset).is_ok_and(|at| at <= now)) {
        if let Some(previous) = latest_due {
            result.missed = result.missed.saturating_add(1);
            result.last_missed = Some(previous);
            if result.missed_slots.len() < MAX_COUNTED_MISSES as usize {
                result.missed_slots.push(previous);
            }
        }
        latest_due = Some(current);
        counted += 1;
        slot = if counted >= MAX_COUNTED_MISSES {
            // A very long outage: skip ahead instead of walking every slot.
            counted = 0;
            let week_before = now
                .saturating_sub(offset)
                .and_then(|t| t.saturating_sub(SignedDuration::from_hours(168)));
            week_before
                .ok()
                .filter(|t| *t > current)
                .and_then(|t| schedule.next_after(t))
                .or_else(|| schedule.next_after(current))
        } else {
            schedule.next_after(current)
        };
    }
    let Some(latest) = latest_due else {
        return result;
    };
    result.next_slot = slot;
    let late = now.duration_since(latest.saturating_add(offset).unwrap_or(latest));
    let in_time =
        deadline.is_none_or(|d| late <= SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX));
    if in_time {
        result.run = Some(latest);
    } else {
        result.missed = result.missed.saturating_add(1);
        result.last_missed = Some(latest);
        result.missed_slots.push(latest);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn next_n(schedule: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut at = ts(from);
        let mut out = Vec::new();
        for _ in 0..n {
            at = schedule.next_after(at).unwrap();
            out.push(
                at.to_zoned(schedule.time_zone().clone())
                    .strftime("%Y-%m-%dT%H:%M%:z")
                    .to_string(),
            );
        }
        out
    }

    #[test]
    fn parses_fields_lists_ranges_steps_names_and_macros() {
        let table = [
            (
                "*/15 * * * *",
                "2026-01-01T00:00:00Z",
                vec!["2026-01-01T00:15+00:00", "2026-01-01T00:30+00:00"],
            ),
            (
                "0 */6 * * *",
                "2026-01-01T00:00:00Z",
                vec!["2026-01-01T06:00+00:00", "2026-01-01T12:00+00:00"],
            ),
            (
                "5,35 1-2 * * *",
                "2026-01-01T00:00:00Z",
                vec!["2026-01-01T01:05+00:00", "2026-01-01T01:35+00:00"],
            ),
            (
                "0 0 * JAN,jul MON",
                "2026-01-01T00:00:00Z",
                vec!["2026-01-05T00:00+00:00", "2026-01-12T00:00+00:00"],
            ),
            (
                "0 0 * * 7",
                "2026-01-01T00:00:00Z",
                vec!["2026-01-04T00:00+00:00", "2026-01-11T00:00+00:00"],
            ),
            (
                "0 0 * * sun",
                "2026-01-01T00:00:00Z",
                vec!["2026-01-04T00:00+00:00", "2026-01-11T00:00+00:00"],
            ),
            (
                "10/20 * * * *",
                "2026-01-01T00:00:00Z",
                vec!["2026-01-01T00:10+00:00", "2026-01-01T00:30+00:00"],
            ),
            (
                "@hourly",
                "2026-01-01T00:00:00Z",
                vec!["2026-01-01T01:00+00:00", "2026-01-01T02:00+00:00"],
            ),
            (
                "@daily",
                "2026-01-01T00:00:00Z",
                vec!["2026-01-02T00:00+00:00", "2026-01-03T00:00+00:00"],
            ),
            (
                "@weekly",
                "2026-01-01T00:00:00Z",
                vec!["2026-01-04T00:00+00:00", "2026-01-11T00:00+00:00"],
            ),
            (
                "@monthly",
                "2026-01-01T00:00:00Z",
                vec!["2026-02-01T00:00+00:00", "2026-03-01T00:00+00:00"],
            ),
            (
                "@yearly",
                "2026-01-01T00:00:00Z",
                vec!["2027-01-01T00:00+00:00", "2028-01-01T00:00+00:00"],
            ),
            (
                "0 0 29 2 *",
                "2026-01-01T00:00:00Z",
                vec!["2028-02-29T00:00+00:00", "2032-02-29T00:00+00:00"],
            ),
            (
                "0 0 31 * *",
                "2026-01-31T00:00:00Z",
                vec!["2026-03-31T00:00+00:00", "2026-05-31T00:00+00:00"],
            ),
            // Both day fields restricted: either matches (1st of the month, or a Friday).
            (
                "0 0 1 * FRI",
                "2026-01-01T00:00:00Z",
                vec!["2026-01-02T00:00+00:00", "2026-01-09T00:00+00:00"],
            ),
        ];
        for (expression, from, expected) in table {
            let schedule = Schedule::parse(expression, "UTC").unwrap();
            assert_eq!(
                next_n(&schedule, from, expected.len()),
                expected,
                "{expression}"
            );
        }
    }

    #[test]
    fn next_is_strictly_after_and_ignores_seconds() {
        let schedule = Schedule::parse("30 12 * * *", "UTC").unwrap();
        assert_eq!(
            schedule.next_after(ts("2026-05-01T12:29:59.9Z")),
            Some(ts("2026-05-01T12:30:00Z"))
        );
        assert_eq!(
            schedule.next_after(ts("2026-05-01T12:30:00Z")),
            Some(ts("2026-05-02T12:30:00Z"))
        );
        assert_eq!(
            schedule.next_after(ts("2026-12-31T12:30:00Z")),
            Some(ts("2027-01-01T12:30:00Z"))
        );
    }

    #[test]
    fn refuses_bad_expressions_and_names_the_field() {
        let table = [
            ("", "UTC", "spec.schedule"),
            ("* * * *", "UTC", "spec.schedule"),
            ("* * * * * *", "UTC", "spec.schedule"),
            ("60 * * * *", "UTC", "spec.schedule"),
            ("* 24 * * *", "UTC", "spec.schedule"),
            ("* * 0 * *", "UTC", "spec.schedule"),
            ("* * * 13 *", "UTC", "spec.schedule"),
            ("* * * * 8", "UTC", "spec.schedule"),
            ("*/0 * * * *", "UTC", "spec.schedule"),
            ("5-1 * * * *", "UTC", "spec.schedule"),
            ("a * * * *", "UTC", "spec.schedule"),
            ("@fortnightly", "UTC", "spec.schedule"),
            ("0 0 30 2 *", "UTC", "spec.schedule"),
            ("0 0 31 4,6,9,11 *", "UTC", "spec.schedule"),
            ("0 0 * * *", "Mars/Olympus", "spec.timeZone"),
            ("0 0 * * *", "", "spec.timeZone"),
        ];
        for (expression, zone, field) in table {
            let err = Schedule::parse(expression, zone).unwrap_err();
            assert_eq!(err.field(), field, "{expression} in {zone}: {err}");
            assert!(!err.to_string().is_empty());
        }
    }

    /// Europe/Berlin: 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET.
    /// `America/New_York`: 2026-03-08 02:00 EST → 03:00 EDT; 2026-11-01 02:00 EDT → 01:00 EST.
    #[test]
    fn dst_changes_follow_the_documented_rules() {
        let table: [(&str, &str, &str, Vec<&str>); 10] = [
            // A daily time inside the gap runs once, shifted forward by the gap.
            (
                "30 2 * * *",
                "Europe/Berlin",
                "2026-03-28T00:00:00Z",
                vec![
                    "2026-03-28T02:30+01:00",
                    "2026-03-29T03:30+02:00",
                    "2026-03-30T02:30+02:00",
                ],
            ),
            // A daily time inside the fold runs once, at its first occurrence.
            (
                "30 2 * * *",
                "Europe/Berlin",
                "2026-10-24T00:00:00Z",
                vec![
                    "2026-10-24T02:30+02:00",
                    "2026-10-25T02:30+02:00",
                    "2026-10-26T02:30+01:00",
                ],
            ),
            // Hourly keeps its elapsed interval through the fold (both 02:00s) and the gap.
            (
                "0 * * * *",
                "Europe/Berlin",
                "2026-10-24T22:30:00Z",
                vec![
                    "2026-10-25T01:00+02:00",
                    "2026-10-25T02:00+02:00",
                    "2026-10-25T02:00+01:00",
                    "2026-10-25T03:00+01:00",
                ],
            ),
            (
                "0 * * * *",
                "Europe/Berlin",
                "2026-03-28T23:30:00Z",
                vec![
                    "2026-03-29T01:00+01:00",
                    "2026-03-29T03:00+02:00",
                    "2026-03-29T04:00+02:00",
                ],
            ),
            (
                "*/30 * * * *",
                "Europe/Berlin",
                "2026-03-29T00:40:00Z",
                vec!["2026-03-29T03:00+02:00", "2026-03-29T03:30+02:00"],
            ),
            // Times outside the change are unaffected; the offset changes under them.
            (
                "0 4 * * *",
                "Europe/Berlin",
                "2026-03-28T12:00:00Z",
                vec!["2026-03-29T04:00+02:00", "2026-03-30T04:00+02:00"],
            ),
            (
                "30 2 * * *",
                "America/New_York",
                "2026-03-07T12:00:00Z",
                vec!["2026-03-08T03:30-04:00", "2026-03-09T02:30-04:00"],
            ),
            (
                "30 1 * * *",
                "America/New_York",
                "2026-10-31T12:00:00Z",
                vec!["2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"],
            ),
            (
                "15 * * * *",
                "America/New_York",
                "2026-11-01T04:30:00Z",
                vec![
                    "2026-11-01T01:15-04:00",
                    "2026-11-01T01:15-05:00",
                    "2026-11-01T02:15-05:00",
                ],
            ),
            (
                "0 0 * * *",
                "America/New_York",
                "2026-11-01T05:00:00Z",
                vec!["2026-11-02T00:00-05:00"],
            ),
        ];
        for (expression, zone, from, expected) in table {
            let schedule = Schedule::parse(expression, zone).unwrap();
            assert_eq!(
                next_n(&schedule, from, expected.len()),
                expected,
                "{expression} in {zone} from {from}"
            );
        }
    }

    #[test]
    fn starting_inside_a_change_still_finds_the_shifted_and_repeated_runs() {
        let berlin = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        // Created at 03:10 CEST, just after the gap: 02:30 (→ 03:30) is still ahead today.
        assert_eq!(
            berlin.next_after(ts("2026-03-29T01:10:00Z")),
            Some(ts("2026-03-29T01:30:00Z"))
        );
        let hourly = Schedule::parse("15 * * * *", "Europe/Berlin").unwrap();
        // At 02:50 CEST (first pass of the fold) the next is 02:15 CET, the second pass.
        assert_eq!(
            hourly.next_after(ts("2026-10-25T00:50:00Z")),
            Some(ts("2026-10-25T01:15:00Z"))
        );
    }

    #[test]
    fn jitter_is_stable_and_within_the_window() {
        let window = Duration::from_mins(10);
        assert_eq!(
            jitter_offset("uid-1", window),
            jitter_offset("uid-1", window)
        );
        assert_eq!(jitter_offset("uid-1", Duration::ZERO), Duration::ZERO);
        let offsets: std::collections::BTreeSet<_> = (0..100)
            .map(|i| jitter_offset(&format!("uid-{i}"), window))
            .collect();
        assert!(offsets.iter().all(|o| *o < window));
        assert!(
            offsets.len() > 50,
            "100 objects should spread over the window: {}",
            offsets.len()
        );
    }

    #[test]
    fn due_runs_only_the_latest_slot_within_the_deadline() {
        let hourly = Schedule::parse("0 * * * *", "UTC").unwrap();
        let hour = Duration::from_hours(1);
        let pending = ts("2026-05-01T10:00:00Z");
        // Not yet.
        let d = due(
            &hourly,
            Duration::ZERO,
            pending,
            ts("2026-05-01T09:59:59Z"),
            Some(hour),
        );
        assert_eq!(
            d,
            Due {
                run: None,
                missed: 0,
                missed_slots: Vec::new(),
                last_missed: None,
                next_slot: Some(pending)
            }
        );
        // On time.
        let d = due(
            &hourly,
            Duration::ZERO,
            pending,
            ts("2026-05-01T10:00:05Z"),
            Some(hour),
        );
        assert_eq!(d.run, Some(pending));
        assert_eq!(
            (d.missed, d.next_slot),
            (0, Some(ts("2026-05-01T11:00:00Z")))
        );
        // Down for 3.5 hours: 10, 11, 12, 13 due; 13 runs (30 min late), 3 missed.
        let d = due(
            &hourly,
            Duration::ZERO,
            pending,
            ts("2026-05-01T13:30:00Z"),
            Some(hour),
        );
        assert_eq!(d.run, Some(ts("2026-05-01T13:00:00Z")));
        assert_eq!(
            (d.missed, d.last_missed),
            (3, Some(ts("2026-05-01T12:00:00Z")))
        );
        assert_eq!(d.next_slot, Some(ts("2026-05-01T14:00:00Z")));
        // Later than the deadline: skipped and counted.
        let deadline = Duration::from_mins(10);
        let d = due(
            &hourly,
            Duration::ZERO,
            pending,
            ts("2026-05-01T10:30:00Z"),
            Some(deadline),
        );
        assert_eq!((d.run, d.missed, d.last_missed), (None, 1, Some(pending)));
        // No deadline: the latest runs however late.
        let d = due(
            &hourly,
            Duration::ZERO,
            pending,
            ts("2026-05-01T10:59:00Z"),
            None,
        );
        assert_eq!(d.run, Some(pending));
        // Jitter shifts when a slot is due, not the slot itself.
        let offset = Duration::from_mins(5);
        let d = due(
            &hourly,
            offset,
            pending,
            ts("2026-05-01T10:04:00Z"),
            Some(hour),
        );
        assert_eq!(d.run, None);
        let d = due(
            &hourly,
            offset,
            pending,
            ts("2026-05-01T10:05:00Z"),
            Some(hour),
        );
        assert_eq!(d.run, Some(pending));
    }

    #[test]
    fn due_after_a_year_long_outage_is_bounded_and_still_runs_once() {
        let every_minute = Schedule::parse("* * * * *", "UTC").unwrap();
        let d = due(
            &every_minute,
            Duration::ZERO,
            ts("2025-05-01T00:00:00Z"),
            ts("2026-05-01T00:00:30Z"),
            None,
        );
        assert_eq!(d.run, Some(ts("2026-05-01T00:00:00Z")));
        assert!(d.missed >= MAX_COUNTED_MISSES, "{}", d.missed);
        assert_eq!(d.next_slot, Some(ts("2026-05-01T00:01:00Z")));
    }
}
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const ZONES: &[&str] = &[
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Pacific/Apia",
        "Asia/Kolkata",
    ];
    const CRONS: &[&str] = &[
        "* * * * *",
        "*/7 * * * *",
        "30 2 * * *",
        "0 1-3 * * *",
        "15 */2 * * 0",
        "0 0 29 2 *",
        "45 23 L * *",
        "0 2,3 * * 1-5",
    ];

    /// The earlier, slower search: every matching civil time within a day on
    /// both sides of `after`, the earliest instant after it.
    fn reference(schedule: &Schedule, after: Timestamp) -> Option<Timestamp> {
        let zone = &schedule.time_zone;
        let day = SignedDuration::from_hours(24);
        let civil = zone.to_datetime(after);
        let last_year = civil.year().saturating_add(HORIZON_YEARS);
        let start = next_whole_minute(civil);
        let mut best: Option<Timestamp> = None;
        let mut cursor = start.saturating_sub(day);
        while let Some(candidate) = schedule.next_civil(cursor, last_year) {
            if best.is_some_and(|b| candidate > zone.to_datetime(b).saturating_add(day)) {
                break;
            }
            for instant in schedule.instants(candidate).filter(|i| *i > after) {
                best = Some(best.map_or(instant, |b| b.min(instant)));
            }
            cursor = candidate.saturating_add(SignedDuration::from_mins(1));
        }
        best
    }

    /// Instants near a clock change of `zone` (or anywhere, when it has none).
    fn near_a_change(zone: &str, seed: i64, within_seconds: i64) -> Timestamp {
        let tz = TimeZone::get(zone).expect("zone");
        let start = Timestamp::from_second(1_577_836_800 + seed.rem_euclid(315_360_000))
            .expect("2020-2030");
        let change = tz.following(start).next().map_or(start, |t| t.timestamp());
        change
            .checked_add(SignedDuration::from_secs(within_seconds))
            .expect("in range")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        #[test]
        fn next_after_matches_the_exhaustive_search(
            zone in 0..ZONES.len(),
            cron in 0..CRONS.len(),
            seed in any::<i64>(),
            within in -172_800i64..172_800,
        ) {
            let Ok(schedule) = Schedule::parse(CRONS[cron], ZONES[zone]) else {
                return Ok(());
            };
            let after = near_a_change(ZONES[zone], seed, within);
            prop_assert_eq!(schedule.next_after(after), reference(&schedule, after), "{} in {} after {}", CRONS[cron], ZONES[zone], after);
        }

        /// `due` over any outage: bounded, and its parts consistent.
        #[test]
        fn due_is_consistent_for_any_outage(
            zone in 0..ZONES.len(),
            cron in 0..CRONS.len(),
            seed in any::<i64>(),
            outage_minutes in 0i64..200_000,
            offset_seconds in 0u64..600,
        ) {
            let Ok(schedule) = Schedule::parse(CRONS[cron], ZONES[zone]) else {
                return Ok(());
            };
            let pending = near_a_change(ZONES[zone], seed, 0);
            let Some(pending) = schedule.next_after(pending) else { return Ok(()) };
            let now = pending.checked_add(SignedDuration::from_mins(outage_minutes)).expect("in range");
            let offset = Duration::from_secs(offset_seconds);
            let d = due(&schedule, offset, pending, now, None);
            let shifted = |t: Timestamp| t.checked_add(SignedDuration::try_from(offset).expect("small")).expect("in range");
            if let Some(run) = d.run {
                prop_assert!(shifted(run) <= now);
                prop_assert!(run >= pending);
            }
            if let Some(next) = d.next_slot {
                prop_assert!(shifted(next) > now, "next {next} is already due at {now}");
            }
            if let Some(missed) = d.last_missed {
                prop_assert!(d.missed > 0 && d.run.is_some_and(|r| missed < r));
            }
            prop_assert_eq!(d.run.is_none() && d.missed == 0, shifted(pending) > now);
        }
    }
}
