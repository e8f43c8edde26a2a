//! Table tests of the copy planner: every decision, with plain values.
#![allow(clippy::needless_pass_by_value)] // JSON literals read best passed by value

use serde_json::json;

use super::*;
use crate::controller::driver::ObjectStatus;
use crate::controller::fixtures::{at, backup};
use crate::crd::copy::FsxBackupCopy;
use crate::fsx::UserActionReason;
use crate::validate::copy::validate;

const POLL: Duration = Duration::from_secs(30);
const PACE: Pace = Pace {
    poll: POLL,
    retry: Duration::from_secs(10),
};
const DESTINATION: &str = "us-west-2";

fn valid(source: serde_json::Value, extra: serde_json::Value) -> ValidCopy {
    let mut spec = json!({"source": source, "destinationRegion": DESTINATION});
    spec.as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    let object: FsxBackupCopy = serde_json::from_value(json!({
        "apiVersion": "fsxbackup.io/v1alpha1",
        "kind": "FsxBackupCopy",
        "metadata": {"name": "dr", "namespace": "storage", "uid": "copy-uid", "generation": 1},
        "spec": spec,
    }))
    .expect("object");
    validate(&object, Some("us-east-1")).expect("valid")
}

fn follow() -> ValidCopy {
    valid(json!({"scheduleRef": {"name": "nightly"}}), json!({}))
}

fn one_shot() -> ValidCopy {
    valid(
        json!({"backupId": "backup-0000000a", "region": "us-east-1"}),
        json!({}),
    )
}

fn health(applied: &Applied<FsxBackupCopyStatus>) -> Vec<(String, String, String)> {
    applied
        .conditions()
        .iter()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

fn has(applied: &Applied<FsxBackupCopyStatus>, type_: &str, status: &str, reason: &str) -> bool {
    health(applied).contains(&(type_.into(), status.into(), reason.into()))
}

/// Finishes `work` and records its health in the status, as the driver does.
fn finish(work: Work, valid: &ValidCopy, now: Timestamp) -> Applied<FsxBackupCopyStatus> {
    let mut applied = work.finish(now, valid, PACE);
    let conditions = applied.conditions();
    applied.status.set_health(conditions, Some(1));
    applied
}

fn phases(status: &FsxBackupCopyStatus) -> Vec<(String, String)> {
    status
        .copies
        .iter()
        .map(|c| (c.source_backup_id.clone(), c.lifecycle.clone()))
        .collect()
}

#[test]
fn a_one_shot_copy_waits_for_its_source_then_queues_it() {
    let valid = one_shot();
    let now = at("2026-03-01T10:00:00Z");
    let mut work = Work::start(None, Some(1));
    assert!(work.one_shot_pending("backup-0000000a"));
    let creating = BackupsById {
        found: vec![backup(
            "backup-0000000a",
            Lifecycle::Creating,
            "2026-03-01T09:59:00Z",
        )],
        missing: Vec::new(),
    };
    work.one_shot_source("backup-0000000a", "us-east-1", Ok(creating));
    let applied = finish(work, &valid, now);
    assert_eq!(
        phases(&applied.status),
        vec![("backup-0000000a".into(), "WaitingForSource".into())]
    );
    assert!(
        has(&applied, "Reconciling", "True", "WaitingForSource"),
        "{:?}",
        health(&applied)
    );
    assert_eq!(applied.requeue, POLL);
    assert_eq!(
        applied.status.source_targets,
        vec!["fs-0123456789abcdef0".to_owned()]
    );

    let mut work = Work::start(Some(&applied.status), Some(1));
    let available = BackupsById {
        found: vec![backup(
            "backup-0000000a",
            Lifecycle::Available,
            "2026-03-01T09:59:00Z",
        )],
        missing: Vec::new(),
    };
    work.one_shot_source("backup-0000000a", "us-east-1", Ok(available));
    assert_eq!(work.queued(), vec!["backup-0000000a".to_owned()]);
}

#[test]
fn a_one_shot_source_that_is_gone_or_failed_blocks_until_the_spec_changes() {
    let valid = one_shot();
    let now = at("2026-03-01T10:00:00Z");
    let mut work = Work::start(None, Some(1));
    work.one_shot_source("backup-0000000a", "us-east-1", Ok(BackupsById::default()));
    let applied = finish(work, &valid, now);
    assert!(
        has(&applied, "Stalled", "True", "SourceNotFound"),
        "{:?}",
        health(&applied)
    );
    assert!(!Work::start(Some(&applied.status), Some(1)).one_shot_pending("backup-0000000a"));
    let mut changed = Work::start(Some(&applied.status), Some(2));
    assert!(
        changed.one_shot_pending("backup-0000000a"),
        "a new generation tries again"
    );
}

#[test]
fn follow_mode_copies_in_flight_are_healthy_and_one_shot_ones_progress() {
    let now = at("2026-03-01T10:00:00Z");
    for (valid, ready) in [(follow(), true), (one_shot(), false)] {
        let mut work = Work::start(None, Some(1));
        work.follow(
            now,
            &valid,
            vec![backup(
                "backup-0000000a",
                Lifecycle::Available,
                "2026-03-01T09:00:00Z",
            )],
        );
        let holds = work.started(
            now,
            &valid,
            "backup-0000000a",
            Ok(backup(
                "backup-c1",
                Lifecycle::Copying,
                "2026-03-01T10:00:00Z",
            )),
        );
        assert!(holds, "an accepted copy holds its slot");
        let applied = finish(work, &valid, now);
        let expected = if ready {
            ("Ready", "True")
        } else {
            ("Reconciling", "True")
        };
        assert!(
            has(&applied, expected.0, expected.1, "Copying"),
            "{:?}",
            health(&applied)
        );
        assert!(
            applied
                .effects
                .contains(&Effect::Count(Counter::CopiesStarted, 1))
        );
    }
}

#[test]
fn a_replayed_copy_that_already_finished_settles_at_once_and_frees_its_slot() {
    let valid = follow();
    let now = at("2026-03-01T10:00:00Z");
    let mut work = Work::start(None, Some(1));
    work.follow(
        now,
        &valid,
        vec![backup(
            "backup-0000000a",
            Lifecycle::Available,
            "2026-03-01T09:00:00Z",
        )],
    );
    let holds = work.started(
        now,
        &valid,
        "backup-0000000a",
        Ok(backup(
            "backup-c1",
            Lifecycle::Available,
            "2026-03-01T09:30:00Z",
        )),
    );
    assert!(!holds);
    let applied = finish(work, &valid, now);
    assert_eq!(
        phases(&applied.status),
        vec![("backup-0000000a".into(), "AVAILABLE".into())]
    );
    assert!(
        applied
            .effects
            .contains(&Effect::Count(Counter::CopiesCompleted, 1))
    );
    assert_eq!(applied.status.last_copy_time, Some(Time(now)));
    assert!(has(&applied, "Ready", "True", "UpToDate"));
}

#[test]
fn a_full_destination_or_a_refusal_is_told_apart() {
    let valid = follow();
    let now = at("2026-03-01T10:00:00Z");
    let sources = vec![
        backup(
            "backup-0000000a",
            Lifecycle::Available,
            "2026-03-01T08:00:00Z",
        ),
        backup(
            "backup-0000000b",
            Lifecycle::Available,
            "2026-03-01T09:00:00Z",
        ),
    ];
    let mut work = Work::start(None, Some(1));
    work.follow(now, &valid, sources.clone());
    assert_eq!(
        work.queued(),
        vec!["backup-0000000a".to_owned(), "backup-0000000b".to_owned()],
        "oldest first"
    );
    let full = FsxError::CopySlotsFull {
        operation: "CopyBackup",
        region: DESTINATION.into(),
        message: "5 in progress".into(),
    };
    assert!(!work.started(now, &valid, "backup-0000000a", Err(full)));
    work.out_of_slots(DESTINATION, 5);
    let applied = finish(work, &valid, now);
    // Routine in follow mode: Ready, the wait in the reason.
    assert!(has(&applied, "Ready", "True", "WaitingForCopySlot"));
    assert!(has(&applied, "Reconciling", "False", "Idle"));
    assert_eq!(applied.status.queued, Some(2));

    let mut work = Work::start(None, Some(1));
    work.follow(now, &valid, sources);
    let denied = FsxError::UserAction {
        operation: "CopyBackup",
        region: DESTINATION.into(),
        reason: UserActionReason::InvalidKmsKey,
        code: "InvalidDestinationKmsKey".into(),
        message: "bad key".into(),
    };
    work.started(now, &valid, "backup-0000000a", Err(denied));
    assert!(work.is_stalled());
    let applied = finish(work, &valid, now);
    assert!(
        has(&applied, "Stalled", "True", "InvalidKmsKey"),
        "{:?}",
        health(&applied)
    );
    let blocked = &applied
        .status
        .copies
        .iter()
        .find(|c| c.source_backup_id == "backup-0000000a")
        .expect("entry");
    assert_eq!(
        (blocked.lifecycle.as_str(), blocked.reason.as_deref()),
        ("Blocked", Some("InvalidKmsKey"))
    );
    let retried = Work::start(Some(&applied.status), Some(2));
    assert!(
        retried
            .status
            .copies
            .iter()
            .all(|c| c.lifecycle != "Blocked"),
        "a new spec unblocks"
    );
}

#[test]
fn a_settled_source_is_never_copied_again_even_after_its_copy_is_pruned() {
    let valid = follow();
    let now = at("2026-03-01T10:00:00Z");
    let source = backup(
        "backup-0000000a",
        Lifecycle::Available,
        "2026-03-01T09:00:00Z",
    );
    let mut work = Work::start(None, Some(1));
    work.follow(now, &valid, vec![source.clone()]);
    work.started(
        now,
        &valid,
        "backup-0000000a",
        Ok(backup(
            "backup-c1",
            Lifecycle::Copying,
            "2026-03-01T10:00:00Z",
        )),
    );
    let found = BackupsById {
        found: vec![backup(
            "backup-c1",
            Lifecycle::Available,
            "2026-03-01T10:00:00Z",
        )],
        missing: Vec::new(),
    };
    assert_eq!(
        work.observe_copies(now, DESTINATION, Ok(found)),
        vec!["backup-0000000a".to_owned()]
    );
    work.follow(now, &valid, vec![source.clone()]);
    let mut applied = finish(work, &valid, now);
    assert_eq!(
        applied.status.copied_through,
        Some(Time(at("2026-03-01T09:00:00Z")))
    );

    // Its copy is pruned and drops off the status list; the schedule still keeps the source.
    applied.status.copies.clear();
    let mut work = Work::start(Some(&applied.status), Some(1));
    work.follow(now, &valid, vec![source]);
    assert!(work.queued().is_empty(), "not copied a second time");
}

#[test]
fn a_source_not_available_yet_holds_the_watermark_back() {
    let valid = follow();
    let now = at("2026-03-01T10:00:00Z");
    let mut work = Work::start(None, Some(1));
    work.follow(
        now,
        &valid,
        vec![
            backup(
                "backup-0000000b",
                Lifecycle::Creating,
                "2026-03-01T09:00:00Z",
            ),
            backup(
                "backup-0000000a",
                Lifecycle::Available,
                "2026-03-01T08:00:00Z",
            ),
        ],
    );
    assert_eq!(
        work.status.copied_through, None,
        "the oldest is queued, not settled"
    );
    let applied = finish(work, &valid, now);
    assert!(
        has(&applied, "Ready", "True", "WaitingForSource"),
        "{:?}",
        health(&applied)
    );
    assert_eq!(
        phases(&applied.status),
        vec![
            ("backup-0000000b".into(), "WaitingForSource".into()),
            ("backup-0000000a".into(), "Queued".into())
        ]
    );
}

#[test]
fn a_source_pruned_before_its_slot_is_reported_once_and_never_retried() {
    let valid = follow();
    let now = at("2026-03-01T10:00:00Z");
    let sources = vec![backup(
        "backup-0000000a",
        Lifecycle::Available,
        "2026-03-01T08:00:00Z",
    )];
    let mut work = Work::start(None, Some(1));
    work.follow(now, &valid, sources);
    assert_eq!(work.queued(), vec!["backup-0000000a".to_owned()]);
    let gone = FsxError::NotFound {
        operation: "CopyBackup",
        region: "us-east-1".into(),
        code: "BackupNotFound".into(),
        message: "no such backup".into(),
    };
    assert!(!work.started(now, &valid, "backup-0000000a", Err(gone)));
    assert!(!work.is_stalled(), "follow mode carries on");
    let applied = finish(work, &valid, now);
    assert_eq!(
        phases(&applied.status),
        vec![("backup-0000000a".to_owned(), "SourceGone".to_owned())]
    );
    assert!(
        applied
            .effects
            .contains(&Effect::Count(Counter::CopiesFailed, 1))
    );
    assert_eq!(
        applied.status.last_run_result.as_deref(),
        Some("SourceGone")
    );
    assert!(applied.effects.iter().any(|e| matches!(e,
        Effect::Event { warning: true, reason, .. } if reason == "SourceNotFound")));
    assert!(
        has(&applied, "Ready", "True", "SourceNotFound"),
        "{:?}",
        health(&applied)
    );
    assert_eq!(applied.requeue, MAX_REQUEUE, "no retry storm");

    // The schedule no longer lists it: nothing is queued again.
    let mut again = Work::start(Some(&applied.status), Some(1));
    again.follow(now, &valid, Vec::new());
    assert!(again.queued().is_empty());
}

#[path = "plan_destination_tests.rs"]
mod destination;
