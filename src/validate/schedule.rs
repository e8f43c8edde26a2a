//! `FsxBackupSchedule`: the spec as the reconciler acts on it. What the CRD
//! schema cannot check (cron syntax, IANA zone, durations' meaning, a retention
//! that keeps nothing, the rendered name length) is checked here, before any
//! FSx call; and which of a schedule's backups its retention keeps, which is
//! what a copy that follows the schedule copies.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::crd::common::{Adoption, DeletionBrake, DeletionPolicy, MAX_USER_TAGS, keep_everything};
use crate::crd::schedule::{FileSystemType, FsxBackupSchedule};
use crate::duration::parse_duration;
use crate::fsx::{Backup, BackupTarget};
use crate::naming::{DEFAULT_BACKUP_NAME, NameContext, render_backup_name};
use crate::ownership::RESERVED_KEYS;
use crate::ownership::is_owned_by;
use crate::retention::{self, RetentionPolicy, Verdict};
use crate::schedule::{Schedule, jitter_offset};

/// `backupTimeout` when the spec has none.
pub const DEFAULT_BACKUP_TIMEOUT: Duration = Duration::from_hours(6);

/// Which targets to back up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// Fixed ids.
    Ids(Vec<BackupTarget>),
    /// File systems whose tags include all of these, of these types (empty: all).
    Selector {
        tags: BTreeMap<String, String>,
        types: Vec<FileSystemType>,
    },
}

/// A schedule whose spec passed every check.
#[derive(Debug)]
pub struct ValidSchedule {
    pub region: String,
    pub targets: Targets,
    pub schedule: Schedule,
    /// This object's fixed share of `jitter`.
    pub offset: Duration,
    pub deadline: Option<Duration>,
    pub suspended: bool,
    pub backup_timeout: Duration,
    pub retention: RetentionPolicy,
    pub name_template: String,
    pub tags: BTreeMap<String, String>,
    pub deletion_policy: DeletionPolicy,
    /// `schedule|timeZone|jitter`: a change restarts the schedule from now.
    pub schedule_key: String,
    /// When the object was created: no run before it can be owed.
    pub created: Option<Timestamp>,
    /// The object's own deletion-brake limits, if it sets any.
    pub deletion_brake: Option<DeletionBrake>,
    pub adoption: Adoption,
    /// `spec.rpo`, or its default (`crate::rpo::schedule_default`).
    pub rpo: Duration,
}

/// How many upcoming runs the jitter is compared with.
const RUNS_CHECKED_FOR_JITTER: usize = 24;

/// Checks the spec; `Err` is the message for the `Stalled`/`InvalidSpec` condition.
pub fn validate(
    object: &FsxBackupSchedule,
    default_region: Option<&str>,
    now: Timestamp,
) -> Result<ValidSchedule, String> {
    let spec = &object.spec;
    let region = spec
        .region
        .clone()
        .or_else(|| default_region.map(str::to_owned))
        .ok_or(
            "spec.region is not set and the operator has no default Region (--region / AWS_REGION)",
        )?;
    let time_zone = spec.time_zone.as_deref().unwrap_or("UTC");
    let schedule = Schedule::parse(&spec.schedule, time_zone)
        .map_err(|err| format!("{}: {err}", err.field()))?;
    let jitter = parse_field("spec.jitter", spec.jitter.as_deref())?.unwrap_or_default();
    check_jitter(&schedule, jitter, now)?;
    let offset = jitter_offset(&object.uid().unwrap_or_default(), jitter);
    let deadline = match spec.starting_deadline_seconds {
        Some(seconds) => Some(Duration::from_secs(
            u64::try_from(seconds)
                .map_err(|_| "spec.startingDeadlineSeconds must not be negative")?,
        )),
        None => None,
    };
    let backup_timeout = parse_field("spec.backupTimeout", spec.backup_timeout.as_deref())?
        .unwrap_or(DEFAULT_BACKUP_TIMEOUT);
    if backup_timeout.is_zero() {
        return Err("spec.backupTimeout must be above zero".into());
    }
    let rpo = match parse_field("spec.rpo", spec.rpo.as_deref())? {
        Some(rpo) if rpo.is_zero() => return Err("spec.rpo must be above zero".into()),
        Some(rpo) => rpo,
        None => crate::rpo::schedule_default(
            crate::rpo::longest_gap(&format!("{}|{time_zone}", spec.schedule), &schedule, now),
            backup_timeout,
        ),
    };
    let retention = match &spec.retention {
        Some(retention) => retention.to_policy()?,
        None => keep_everything(),
    };
    let targets = targets(object)?;
    let tags = user_tags(spec.tags.as_ref())?;
    let name_template = spec
        .backup_name
        .clone()
        .unwrap_or_else(|| DEFAULT_BACKUP_NAME.to_owned());
    // Render with the longest id any target can have, so a name that fits now
    // cannot fail later for a longer id.
    let longest_id = "fsvol-000000000000000000000";
    render_backup_name(
        &name_template,
        &NameContext {
            schedule: &object.name_any(),
            namespace: &object.namespace().unwrap_or_default(),
            target: longest_id,
            time: now,
        },
    )?;
    let schedule_key = format!(
        "{}|{time_zone}|{}",
        spec.schedule,
        spec.jitter.as_deref().unwrap_or("0s")
    );
    Ok(ValidSchedule {
        region,
        targets,
        schedule,
        offset,
        deadline,
        suspended: spec.suspend.unwrap_or(false),
        backup_timeout,
        retention,
        name_template,
        tags,
        deletion_policy: spec.deletion_policy.unwrap_or_default(),
        schedule_key,
        created: object.metadata.creation_timestamp.as_ref().map(|t| t.0),
        deletion_brake: spec.deletion_brake,
        adoption: spec.adoption.unwrap_or_default(),
        rpo,
    })
}

/// `spec.tags`, checked for what the schema cannot: the total with the operator's own
/// tags, and keys the operator reserves.
pub fn user_tags(
    tags: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, String> {
    let tags = tags.cloned().unwrap_or_default();
    if tags.len() > MAX_USER_TAGS {
        return Err(format!(
            "spec.tags has {} tags; at most {MAX_USER_TAGS} (FSx allows 50, the operator sets 5)",
            tags.len()
        ));
    }
    if let Some(key) = tags
        .keys()
        .find(|k| RESERVED_KEYS.contains(&k.as_str()) || k.starts_with("aws:"))
    {
        return Err(format!("spec.tags: `{key}` is reserved"));
    }
    // The schema checks the same; objects stored before it did are caught here,
    // before FSx refuses the tag at the first run.
    for (key, value) in &tags {
        if key.is_empty() || key.chars().count() > 128 || !is_tag_text(key) {
            return Err(format!(
                "spec.tags: key {key:?} must be 1-128 letters, digits, spaces or _.:/=+-@"
            ));
        }
        if value.chars().count() > 256 || !is_tag_text(value) {
            return Err(format!(
                "spec.tags.{key}: value {value:?} must be at most 256 letters, digits, spaces or _.:/=+-@"
            ));
        }
    }
    Ok(tags)
}

/// A jitter must be shorter than the shortest gap between the next runs: longer,
/// and one object's run would slide past the next one.
fn check_jitter(schedule: &Schedule, jitter: Duration, now: Timestamp) -> Result<(), String> {
    if jitter.is_zero() {
        return Ok(());
    }
    let mut shortest: Option<SignedDuration> = None;
    let mut slot = schedule.next_after(now);
    for _ in 0..RUNS_CHECKED_FOR_JITTER {
        let (Some(current), Some(next)) = (slot, slot.and_then(|s| schedule.next_after(s))) else {
            break;
        };
        let gap = next.duration_since(current);
        shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
        slot = Some(next);
    }
    match shortest {
        Some(gap) if SignedDuration::try_from(jitter).is_ok_and(|j| j < gap) => Ok(()),
        Some(gap) => Err(format!(
            "spec.jitter ({}) must be shorter than the shortest interval between runs ({})",
            crate::duration::format_duration(jitter),
            crate::duration::format_duration(Duration::try_from(gap).unwrap_or_default()),
        )),
        // Runs too rare to compare (once, or never again): any jitter is harmless.
        None => Ok(()),
    }
}

/// FSx's tag character set: letters, numbers, spaces and `_.:/=+-@` (no control
/// characters such as a newline).
fn is_tag_text(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
    })
}

fn parse_field(field: &str, text: Option<&str>) -> Result<Option<Duration>, String> {
    text.map(|t| parse_duration(t).map_err(|err| format!("{field}: {err}")))
        .transpose()
}

fn targets(object: &FsxBackupSchedule) -> Result<Targets, String> {
    let target = &object.spec.target;
    match (&target.file_system_ids, &target.volume_ids, &target.file_system_selector) {
        (Some(ids), None, None) if !ids.is_empty() => {
            Ok(Targets::Ids(ids.iter().cloned().map(BackupTarget::FileSystem).collect()))
        }
        (None, Some(ids), None) if !ids.is_empty() => Ok(Targets::Ids(ids.iter().cloned().map(BackupTarget::Volume).collect())),
        (None, None, Some(selector)) if !selector.tags.is_empty() => Ok(Targets::Selector {
            tags: selector.tags.clone(),
            types: selector.types.clone().unwrap_or_default(),
        }),
        _ => Err("spec.target: set exactly one of fileSystemIds, volumeIds, fileSystemSelector (not empty)".into()),
    }
}

impl ValidSchedule {
    /// What this schedule's retention (object UID `uid`) decides at `now` for one
    /// target's `backups`: the one place the controller, a following copy and
    /// `fsx-backup-operator plan` all get it from.
    pub fn retention_plan(&self, now: Timestamp, backups: &[Backup], uid: &str) -> retention::Plan {
        retention::plan(
            now,
            &self.retention,
            self.schedule.time_zone(),
            backups,
            uid,
        )
    }

    /// The backups in `backups` that this schedule (object UID `uid`) owns and its
    /// retention keeps at `now`: what a copy following the schedule should copy.
    pub fn backups_it_keeps(&self, now: Timestamp, backups: Vec<Backup>, uid: &str) -> Vec<Backup> {
        let plan = self.retention_plan(now, &backups, uid);
        let kept: BTreeSet<&str> = plan
            .decisions
            .iter()
            .filter(|d| matches!(d.verdict, Verdict::Keep { .. }))
            .map(|d| d.backup_id.as_str())
            .collect();
        backups
            .into_iter()
            .filter(|b| is_owned_by(b, uid) && kept.contains(b.id.as_str()))
            .collect()
    }
}

/// Every file system or volume `schedule` backs up now or has backed up (still in
/// its status): where its backups, and their copies, are looked for.
pub fn target_ids(schedule: &FsxBackupSchedule) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = schedule
        .status
        .iter()
        .flat_map(|s| &s.targets)
        .map(|t| t.id.clone())
        .collect();
    ids.extend(
        schedule
            .spec
            .target
            .file_system_ids
            .iter()
            .flatten()
            .cloned(),
    );
    ids.extend(schedule.spec.target.volume_ids.iter().flatten().cloned());
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn a_jitter_must_be_shorter_than_the_shortest_gap_between_runs() {
        let now = at("2026-03-01T10:00:00Z");
        let hourly = Schedule::parse("0 * * * *", "UTC").expect("cron");
        assert!(check_jitter(&hourly, Duration::from_mins(59), now).is_ok());
        let err = check_jitter(&hourly, Duration::from_hours(1), now).expect_err("too long");
        assert!(err.contains("spec.jitter") && err.contains("1h"), "{err}");
        // 9999999 weeks neither overflows nor passes.
        let huge = parse_duration("9999999w").expect("parses");
        assert!(check_jitter(&hourly, huge, now).is_err());
        // Twice a day on weekdays: the shortest gap (8h) bounds it, not the weekend.
        let office = Schedule::parse("0 9,17 * * 1-5", "UTC").expect("cron");
        assert!(check_jitter(&office, Duration::from_hours(7), now).is_ok());
        assert!(check_jitter(&office, Duration::from_hours(9), now).is_err());
    }

    #[test]
    fn tags_fsx_would_refuse_are_invalid_before_any_call() {
        let tags = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(user_tags(Some(&tags("team", "storage-ops:eu/1 @x=+y"))).is_ok());
        assert!(user_tags(Some(&tags("équipe", "données"))).is_ok());
        let err = user_tags(Some(&tags("team", "a\nb"))).expect_err("newline");
        assert!(err.contains("spec.tags.team"), "{err}");
        assert!(user_tags(Some(&tags("te\tam", "a"))).is_err());
        assert!(user_tags(Some(&tags("team", "semi;colon"))).is_err());
        assert!(user_tags(Some(&tags(&"k".repeat(129), "a"))).is_err());
        assert!(user_tags(Some(&tags("team", &"v".repeat(257)))).is_err());
    }
}
