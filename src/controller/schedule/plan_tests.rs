//! Table tests of the schedule planner: every decision, with plain values, no
//! apiserver and no FSx.
#![allow(clippy::needless_pass_by_value)] // JSON literals read best passed by value

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::controller::fixtures::{self, at};
use crate::crd::schedule::FsxBackupSchedule;
use crate::fsx::UserActionReason;
use crate::ownership::OWNER_UID_KEY;

use crate::validate::schedule::validate;

const UID: &str = "0d6c1f7e-uid";
const PACE: Pace = Pace {
    poll: Duration::from_secs(30),
    retry: Duration::from_secs(10),
};

fn valid(spec: serde_json::Value) -> ValidSchedule {
    let object: FsxBackupSchedule = serde_json::from_value(json!({
        "apiVersion": "fsxbackup.io/v1alpha1",
        "kind": "FsxBackupSchedule",
        "metadata": {"name": "nightly", "namespace": "storage", "uid": UID, "generation": 1},
        "spec": spec,
    }))
    .expect("object");
    validate(&object, Some("us-east-1"), at("2026-01-01T00:00:00Z")).expect("valid")
}

fn hourly(extra: serde_json::Value) -> ValidSchedule {
    let mut spec =
        json!({"target": {"fileSystemIds": ["fs-0123456789abcdef0"]}, "schedule": "0 * * * *"});
    spec.as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    valid(spec)
}

fn owner() -> Owner {
    Owner {
        namespace: "storage".into(),
        name: "nightly".into(),
        uid: UID.into(),
        cluster: "test-cluster".into(),
    }
}

/// A backup this schedule owns.
fn backup(id: &str, lifecycle: Lifecycle, created: &str) -> Backup {
    Backup {
        tags: crate::ownership::ownership_tags(KIND, "storage", "nightly", UID),
        ..fixtures::backup(id, lifecycle, created)
    }
}

fn user_action(reason: UserActionReason, code: &str) -> FsxError {
    FsxError::UserAction {
        operation: "CreateBackup",
        region: "us-east-1".into(),
        reason,
        code: code.into(),
        message: "refused".into(),
    }
}

fn busy() -> FsxError {
    FsxError::RetryLater {
        operation: "CreateBackup",
        region: "us-east-1".into(),
        code: "BackupInProgress".into(),
        message: "a backup is in progress".into(),
    }
}

/// A status as the planner leaves it once the schedule has been seen, with the
/// run at `slot` pending.
fn pending(valid: &ValidSchedule, slot: &str) -> FsxBackupScheduleStatus {
    FsxBackupScheduleStatus {
        observed_generation: Some(1),
        observed_schedule: Some(valid.schedule_key.clone()),
        next_schedule_time: Some(Time(at(slot))),
        targets: vec![TargetStatus {
            id: "fs-0123456789abcdef0".into(),
            managed_backup_count: Some(0),
            ..TargetStatus::default()
        }],
        ..FsxBackupScheduleStatus::default()
    }
}

fn reason_of(applied: &Applied<FsxBackupScheduleStatus>, type_: &str) -> (String, String) {
    let c = applied
        .conditions()
        .into_iter()
        .find(|c| c.type_ == type_)
        .expect("condition");
    (c.status.clone(), c.reason.clone())
}

fn events(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Runs one reconcile up to the creates and answers each with `answer`.
fn reconcile_creates(
    valid: &ValidSchedule,
    status: &FsxBackupScheduleStatus,
    now: Timestamp,
    answer: impl Fn(&Create) -> Result<Backup, FsxError>,
) -> (Work, Vec<Create>) {
    let mut work = Work::start(Some(status), Some(1));
    work.runs(now, valid);
    let creates = work.creates(now, valid, &owner(), None);
    for create in &creates {
        work.created(now, valid, create, answer(create));
    }
    verify_misses(&mut work, &[]);
    (work, creates)
}

/// Step 2b as the reconciler runs it, with `listed` as every target's FSx listing.
fn verify_misses(work: &mut Work, listed: &[Backup]) {
    for target in work.misses_to_verify() {
        work.count_misses(&target, UID, &Ok(listed.to_vec()));
    }
}

#[test]
fn a_new_schedule_waits_for_its_first_run_and_is_ready() {
    let valid = hourly(json!({}));
    let now = at("2026-03-01T10:20:00Z");
    let mut work = Work::start(None, Some(1));
    assert_eq!(work.runs(now, &valid), None);
    assert!(
        work.needs_targets(None),
        "targets are resolved on the first look"
    );
    work.select(&select_file_systems(&valid.targets, Vec::new()));
    assert!(work.creates(now, &valid, &owner(), None).is_empty());
    let applied = work.finish(now, &valid, PACE);
    assert_eq!(
        applied.status.next_schedule_time,
        Some(Time(at("2026-03-01T11:00:00Z")))
    );
    assert_eq!(
        reason_of(&applied, "Ready"),
        ("True".into(), "Scheduled".into())
    );
    assert_eq!(applied.requeue, Duration::from_mins(40), "wakes at the run");
}

#[test]
fn a_due_run_makes_one_backup_per_target_with_a_replayable_token() {
    let valid = valid(json!({
        "target": {"fileSystemIds": ["fs-0123456789abcdef0", "fs-0123456789abcdef1"]},
        "schedule": "0 * * * *",
        "tags": {"team": "storage"},
    }));
    let slot = at("2026-03-01T11:00:00Z");
    let mut status = pending(&valid, "2026-03-01T11:00:00Z");
    status.targets.push(TargetStatus {
        id: "fs-0123456789abcdef1".into(),
        ..TargetStatus::default()
    });
    let now = slot + SignedDuration::from_secs(2);
    let (work, creates) = reconcile_creates(&valid, &status, now, |_| Err(busy()));
    let recorded = work.finish(now, &valid, PACE);
    assert_eq!(recorded.status.last_schedule_time, Some(Time(slot)));
    assert!(
        !recorded.checkpoint,
        "asked in the reconcile it became due in: no write before FSx is asked"
    );
    assert_eq!(creates.len(), 2);
    for create in &creates {
        assert_eq!(create.slot, slot);
        assert_eq!(
            create.request.client_request_token,
            scheduled_backup_token(UID, &create.target_id, slot)
        );
        assert_eq!(
            create.request.tags[SCHEDULED_TIME_KEY],
            "2026-03-01T11:00:00Z"
        );
        assert_eq!(create.request.tags["team"], "storage");
        assert_eq!(create.request.tags[OWNER_UID_KEY], UID);
    }
    assert_eq!(
        recorded.status.next_schedule_time,
        Some(Time(at("2026-03-01T12:00:00Z")))
    );
}

#[test]
fn a_backup_just_asked_for_is_looked_up_at_the_next_poll_not_at_once() {
    let valid = hourly(json!({}));
    let mut status = pending(&valid, "2026-03-01T11:00:00Z");
    // An older backup of another target is still in flight: it is polled.
    status.targets.push(TargetStatus {
        id: "fs-0123456789abcdef1".into(),
        last_backup: Some(LastBackup {
            id: "backup-0000000old".into(),
            lifecycle: "CREATING".into(),
            ..LastBackup::default()
        }),
        not_selected: Some(true),
        ..TargetStatus::default()
    });
    let now = at("2026-03-01T11:00:01Z");
    let (work, creates) = reconcile_creates(&valid, &status, now, |_| {
        Ok(backup(
            "backup-0000000new",
            Lifecycle::Creating,
            "2026-03-01T11:00:01Z",
        ))
    });
    assert_eq!(creates.len(), 1);
    assert_eq!(
        work.in_flight(),
        vec!["backup-0000000new", "backup-0000000old"]
    );
    assert_eq!(work.to_poll(), vec!["backup-0000000old"]);
    assert!(work.finish(now, &valid, PACE).requeue <= PACE.poll);
}

#[test]
fn a_target_that_has_its_backup_for_the_run_is_not_asked_again() {
    let valid = hourly(json!({}));
    let slot = at("2026-03-01T11:00:00Z");
    let mut status = pending(&valid, "2026-03-01T12:00:00Z");
    status.last_schedule_time = Some(Time(slot));
    status.targets[0].last_scheduled_time = Some(Time(slot));
    let mut work = Work::start(Some(&status), Some(1));
    assert_eq!(work.runs(slot + SignedDuration::from_mins(5), &valid), None);
    assert!(
        work.creates(slot + SignedDuration::from_mins(5), &valid, &owner(), None)
            .is_empty()
    );
}

#[test]
fn a_suspended_schedule_makes_nothing_and_is_ready() {
    let valid = hourly(json!({"suspend": true}));
    let status = pending(&valid, "2026-03-01T11:00:00Z");
    let now = at("2026-03-01T13:30:00Z");
    let (work, creates) = reconcile_creates(&valid, &status, now, |_| unreachable!("no call"));
    assert!(creates.is_empty());
    assert_eq!(
        work.status.missed_runs, None,
        "suspended runs are not missed"
    );
    let applied = work.finish(now, &valid, PACE);
    assert_eq!(
        reason_of(&applied, "Ready"),
        ("True".into(), "Suspended".into())
    );
}

#[test]
fn a_missing_target_stalls_with_the_reason_fsx_gave() {
    let valid = hourly(json!({}));
    let status = pending(&valid, "2026-03-01T11:00:00Z");
    let now = at("2026-03-01T11:00:01Z");
    let (work, _) = reconcile_creates(&valid, &status, now, |_| {
        Err(user_action(
            UserActionReason::TargetNotFound,
            "FileSystemNotFound",
        ))
    });
    assert_eq!(events(&work.effects), vec!["TargetNotFound"]);
    let mut applied = work.finish(now, &valid, PACE);
    // It may be about to appear: in progress for a short grace, then Stalled.
    assert_eq!(
        reason_of(&applied, "Reconciling"),
        ("True".into(), "TargetNotFound".into())
    );
    applied.status.conditions = applied.health.conditions(&[], Some(1), now);
    let past_grace = at("2026-03-01T11:03:00Z");
    let stalled = Work::start(Some(&applied.status), Some(1)).finish(past_grace, &valid, PACE);
    assert_eq!(
        reason_of(&stalled, "Stalled"),
        ("True".into(), "TargetNotFound".into())
    );
    let target = &applied.status.targets[0];
    assert_eq!(target.reason.as_deref(), Some("TargetNotFound"));
    assert_eq!(
        target.last_scheduled_time,
        Some(Time(at("2026-03-01T11:00:00Z"))),
        "given up for this run"
    );

    // Refused again at the next run: no second event for the same message.
    let (again, _) = reconcile_creates(&valid, &applied.status, at("2026-03-01T12:00:01Z"), |_| {
        Err(user_action(
            UserActionReason::TargetNotFound,
            "FileSystemNotFound",
        ))
    });
    assert!(events(&again.effects).is_empty());
}

#[test]
fn one_broken_target_of_two_stalls_the_object() {
    let valid = valid(
        json!({"target": {"fileSystemIds": ["fs-0123456789abcdef0", "fs-0123456789abcdef1"]}, "schedule": "0 * * * *"}),
    );
    let mut status = pending(&valid, "2026-03-01T11:00:00Z");
    status.targets.push(TargetStatus {
        id: "fs-0123456789abcdef1".into(),
        ..TargetStatus::default()
    });
    let now = at("2026-03-01T11:00:01Z");
    let (work, _) = reconcile_creates(&valid, &status, now, |create| {
        if create.target_id.ends_with('1') {
            Err(user_action(UserActionReason::AccessDenied, "AccessDenied"))
        } else {
            Ok(backup(
                "backup-01234567",
                Lifecycle::Creating,
                "2026-03-01T11:00:01Z",
            ))
        }
    });
    let applied = work.finish(now, &valid, PACE);
    // A person must act for one target: the object says so (the other is still backed up).
    assert_eq!(
        reason_of(&applied, "Stalled"),
        ("True".into(), "AccessDenied".into())
    );
    assert!(applied.health.message().contains("1 of 2 targets"));
}

#[test]
fn selector_targets_come_and_go_and_ontap_is_reported() {
    let valid = valid(
        json!({"target": {"fileSystemSelector": {"tags": {"env": "prod"}}}, "schedule": "0 * * * *"}),
    );
    let fs = |id: &str, kind: &str, env: &str| FileSystem {
        id: id.into(),
        file_system_type: kind.into(),
        lifecycle: "AVAILABLE".into(),
        tags: BTreeMap::from([("env".to_owned(), env.to_owned())]),
    };
    let selected = select_file_systems(
        &valid.targets,
        vec![
            fs("fs-2", "WINDOWS", "prod"),
            fs("fs-1", "ONTAP", "prod"),
            fs("fs-3", "LUSTRE", "dev"),
        ],
    );
    assert_eq!(
        selected.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["fs-1", "fs-2"]
    );
    assert_eq!(
        selected[0].problem.as_ref().map(|p| p.0),
        Some(Reason::TargetNotBackupable)
    );

    let mut work = Work::start(None, Some(1));
    work.select(&selected);
    work.status.targets[1].managed_backup_count = Some(2);
    work.select(&selected[..1]);
    let gone = work
        .status
        .targets
        .iter()
        .find(|t| t.id == "fs-2")
        .expect("kept while it has backups");
    assert_eq!(gone.not_selected, Some(true));
    assert!(
        gone.message
            .as_deref()
            .is_some_and(|m| m.contains("no longer selected"))
    );
    work.select(&selected);
    let back = work
        .status
        .targets
        .iter()
        .find(|t| t.id == "fs-2")
        .expect("selected again");
    assert_eq!((back.not_selected, back.message.clone()), (None, None));
    work.select(&selected[..1]);
    let now = at("2026-03-01T10:00:00Z");
    assert!(
        work.creates(now, &valid, &owner(), Some("n1")).is_empty(),
        "neither the ONTAP one nor the one gone"
    );
    let applied = work.finish(now, &valid, PACE);
    assert_eq!(
        reason_of(&applied, "Stalled"),
        ("True".into(), "TargetNotBackupable".into())
    );
}

#[test]
fn run_now_asks_once_per_nonce_and_finishes_when_every_target_has_its_backup() {
    let valid = hourly(json!({}));
    let status = pending(&valid, "2026-03-01T11:00:00Z");
    let seen = at("2026-03-01T10:10:00Z");
    // First seen: recorded, nothing asked yet, looked at again soon.
    let mut work = Work::start(Some(&status), Some(1));
    work.runs(seen, &valid);
    assert!(work.creates(seen, &valid, &owner(), Some("n1")).is_empty());
    work.finish_run_now(Some("n1"));
    let recorded = work.status.clone();
    let request = recorded.run_now_request.clone().expect("recorded");
    assert_eq!(
        (request.nonce.as_str(), request.request_time.0),
        ("n1", seen)
    );
    assert_eq!(recorded.last_run_now, None);
    assert!(work.finish(seen, &valid, PACE).requeue <= PACE.retry);

    // Asked later, and again after a lost answer: the same token, time and tags.
    let ask = |now: &str| {
        let mut work = Work::start(Some(&recorded), Some(1));
        work.runs(at(now), &valid);
        let creates = work.creates(at(now), &valid, &owner(), Some("n1"));
        (work, creates)
    };
    let (mut work, creates) = ask("2026-03-01T10:10:02Z");
    let (_, retried) = ask("2026-03-01T10:14:00Z");
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0].request.client_request_token,
        run_now_token(UID, "fs-0123456789abcdef0", "n1", seen)
    );
    assert_eq!(
        creates[0].request, retried[0].request,
        "a retry is the same call"
    );
    work.created(seen, &valid, &creates[0], Err(busy()));
    work.finish_run_now(Some("n1"));
    assert_eq!(work.status.last_run_now, None, "retried: not done");

    let (mut work, creates) = ask("2026-03-01T10:15:00Z");
    work.created(
        at("2026-03-01T10:15:00Z"),
        &valid,
        &creates[0],
        Ok(backup(
            "backup-0a",
            Lifecycle::Creating,
            "2026-03-01T10:15:00Z",
        )),
    );
    work.finish_run_now(Some("n1"));
    assert_eq!(work.status.last_run_now.as_deref(), Some("n1"));
    assert_eq!(work.status.run_now_request, None);
    assert!(
        work.creates(seen, &valid, &owner(), Some("n1")).is_empty(),
        "same nonce: nothing more"
    );
}

#[test]
fn a_run_now_request_is_written_before_anything_is_asked_then_goes_with_the_due_run() {
    let valid = hourly(json!({}));
    let status = pending(&valid, "2026-03-01T10:00:00Z");
    let now = at("2026-03-01T10:00:05Z");
    let mut work = Work::start(Some(&status), Some(1));
    assert_eq!(work.runs(now, &valid), Some(at("2026-03-01T10:00:00Z")));
    assert!(
        work.creates(now, &valid, &owner(), Some("n1")).is_empty(),
        "not even the due run: the request is written first"
    );
    assert!(work.checkpointing());
    let recorded = work.finish(now, &valid, PACE);
    assert!(recorded.checkpoint, "the driver goes on once it is written");
    // The pass on the object as written: the due run and the run-now together.
    let mut work = Work::start(Some(&recorded.status), Some(1));
    assert_eq!(work.runs(now, &valid), None, "the run is recorded as taken");
    let creates = work.creates(now, &valid, &owner(), Some("n1"));
    let runs: Vec<Option<&str>> = creates.iter().map(|c| c.run_now.as_deref()).collect();
    assert_eq!(runs, vec![None, Some("n1")]);
    assert!(!work.checkpointing());
}

#[test]
fn statuses_written_by_older_versions_are_read_the_same() {
    let mut status = FsxBackupScheduleStatus::default();
    status.targets.push(TargetStatus {
        id: "fs-1".into(),
        message: Some(NOT_SELECTED.into()),
        last_backup: Some(LastBackup {
            id: "backup-1".into(),
            lifecycle: "AVAILABLE".into(),
            ..LastBackup::default()
        }),
        managed_backups: vec![BackupRef {
            id: "backup-1".into(),
            lifecycle: "AVAILABLE".into(),
            ..BackupRef::default()
        }],
        ..TargetStatus::default()
    });
    let work = Work::start(Some(&status), None);
    let target = &work.status.targets[0];
    assert_eq!(target.not_selected, Some(true));
    assert_eq!(
        target.last_backup.as_ref().and_then(|b| b.settled),
        Some(true)
    );
}

#[test]
fn the_next_wake_is_the_earliest_of_run_poll_retry_and_expiry() {
    let valid = hourly(json!({"retention": {"maxAge": "1h"}}));
    let now = at("2026-03-01T10:00:00Z");
    let mut status = pending(&valid, "2026-03-01T11:00:00Z");
    status.targets[0].managed_backups.push(BackupRef {
        id: "backup-1".into(),
        lifecycle: "AVAILABLE".into(),
        expires_at: Some(Time(at("2026-03-01T10:20:00Z"))),
        ..BackupRef::default()
    });
    let wake = |status: &FsxBackupScheduleStatus| {
        Work::start(Some(status), Some(1))
            .finish(now, &valid, PACE)
            .requeue
    };
    assert_eq!(
        wake(&status),
        Duration::from_mins(20),
        "the expiry comes first"
    );
    status.targets[0].last_backup = Some(LastBackup {
        id: "backup-2".into(),
        lifecycle: "CREATING".into(),
        ..LastBackup::default()
    });
    assert_eq!(wake(&status), PACE.poll, "a backup in flight is polled");
}

#[path = "plan_settle_tests.rs"]
mod settle;

#[path = "plan_misses_tests.rs"]
mod misses;

#[test]
fn the_reconciles_that_start_a_backup_are_told_apart_before_they_plan() {
    let valid = hourly(json!({}));
    let status = pending(&valid, "2026-03-01T11:00:00Z");
    let before = at("2026-03-01T10:59:59Z");
    let due = at("2026-03-01T11:00:00Z");
    assert!(!starts_a_run(None, false, None, due), "a new object waits");
    assert!(!starts_a_run(Some(&status), false, None, before));
    assert!(starts_a_run(Some(&status), false, None, due));
    assert!(!starts_a_run(Some(&status), true, None, due), "suspended");
    // The hint agrees with the plan: the due reconcile asks, the next does not.
    let (work, creates) = reconcile_creates(&valid, &status, due, |_| Err(busy()));
    assert_eq!(creates.len(), 1);
    let recorded = work.finish(due, &valid, PACE).status;
    assert!(!starts_a_run(Some(&recorded), false, None, due));
    // A run-now request not yet done starts one; a done one does not.
    assert!(starts_a_run(Some(&recorded), false, Some("n1"), due));
    let done = FsxBackupScheduleStatus {
        last_run_now: Some("n1".into()),
        ..recorded
    };
    assert!(!starts_a_run(Some(&done), false, Some("n1"), due));
    assert!(!starts_a_run(Some(&done), false, Some(""), due));
}
