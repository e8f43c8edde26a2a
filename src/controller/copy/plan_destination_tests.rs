//! Table tests of what the object has in the destination and what it tells
//! about it: retention of its copies, the deletion brake, the not-found grace
//! and the RPO.

use super::*;

#[test]
fn a_copy_deletion_deferred_by_a_transient_error_is_retried_at_the_next_reconcile() {
    let valid = valid(
        json!({"scheduleRef": {"name": "nightly"}}),
        json!({"retention": {"maxCount": 1}}),
    );
    let policy = valid.retention.clone().expect("retention");
    let now = at("2026-03-01T10:00:00Z");
    let copy = |id: &str, created: &str| Backup {
        tags: crate::ownership::ownership_tags(KIND, "storage", "dr", "copy-uid"),
        ..backup(id, Lifecycle::Available, created)
    };
    let copies = vec![
        copy("backup-0000000c", "2026-03-01T08:00:00Z"),
        copy("backup-0000000d", "2026-03-01T09:00:00Z"),
    ];
    let plan = retention::plan(now, &policy, &jiff::tz::TimeZone::UTC, &copies, "copy-uid");
    let throttled = FsxError::RetryLater {
        operation: "DeleteBackup",
        region: DESTINATION.into(),
        code: "ThrottlingException".into(),
        message: "slow down".into(),
    };
    let mut work = Work::start(None, Some(1));
    let again = work.pruned(
        now,
        DESTINATION,
        &plan,
        &copies,
        &[("backup-0000000c".into(), Err(throttled))],
    );
    assert_eq!(again, Some(now), "retention is due again at once");
    let applied = finish(work, &valid, now);
    assert_eq!(applied.requeue, PACE.retry);
    // What the reconciler remembers makes the next reconcile prune again.
    let next = Work::start(Some(&applied.status), Some(1));
    assert!(next.retention_wanted(again.is_some_and(|at| at <= now + PACE.retry)));
}

#[test]
fn a_retention_change_that_deletes_many_copies_waits_for_its_generation_to_be_approved() {
    use crate::controller::Brake;
    use crate::controller::brake::BrakeCheck;
    let valid = valid(
        json!({"scheduleRef": {"name": "nightly"}}),
        json!({"retention": {"maxCount": 1}}),
    );
    let policy = valid.retention.clone().expect("retention");
    let now = at("2026-03-01T10:00:00Z");
    let copies: Vec<Backup> = (0..6)
        .map(|h| Backup {
            tags: crate::ownership::ownership_tags(KIND, "storage", "dr", "copy-uid"),
            ..backup(
                &format!("backup-0000000{h}"),
                Lifecycle::Available,
                &format!("2026-03-01T0{h}:00:00Z"),
            )
        })
        .collect();
    let plan = retention::plan(now, &policy, &jiff::tz::TimeZone::UTC, &copies, "copy-uid");
    let status = FsxBackupCopyStatus {
        observed_generation: Some(2),
        retention_generation: Some(1),
        ..FsxBackupCopyStatus::default()
    };
    let check = |approved| BrakeCheck {
        brake: Brake::default(),
        approved,
        object: "fsxbackupcopy dr -n storage".into(),
    };
    let mut work = Work::start(Some(&status), Some(2));
    assert!(
        work.retention_wanted(false),
        "a policy not applied yet is retention due"
    );
    assert!(work.hold_deletions(DESTINATION, &plan, &check(Some(1))));
    work.pruned(now, DESTINATION, &plan, &copies, &[]);
    let applied = finish(work, &valid, now);
    assert!(
        has(&applied, "Stalled", "True", "DeletionHeld"),
        "{:?}",
        health(&applied)
    );
    assert_eq!(applied.status.retention_generation, Some(1));

    let mut work = Work::start(Some(&status), Some(2));
    assert!(!work.hold_deletions(DESTINATION, &plan, &check(Some(2))));
    let deleted: Vec<(String, Result<(), FsxError>)> = (0..5)
        .map(|h| (format!("backup-0000000{h}"), Ok(())))
        .collect();
    work.pruned(now, DESTINATION, &plan, &copies, &deleted);
    let applied = finish(work, &valid, now);
    assert_eq!(applied.status.retention_generation, Some(2));
    assert!(!has(&applied, "Stalled", "True", "DeletionHeld"));
}

#[test]
fn a_missing_schedule_is_in_progress_for_its_grace_then_stalled() {
    let valid = follow();
    let t0 = at("2026-03-01T10:00:00Z");
    let mut work = Work::start(None, Some(1));
    work.waiting_for_schedule("FsxBackupSchedule nightly does not exist".into());
    let mut applied = work.finish(t0, &valid, PACE);
    assert!(has(&applied, "Reconciling", "True", "WaitingForSchedule"));
    applied
        .status
        .set_health(applied.health.conditions(&[], Some(1), t0), Some(1));
    let later = at("2026-03-01T10:03:00Z");
    let mut work = Work::start(Some(&applied.status), Some(1));
    work.waiting_for_schedule("FsxBackupSchedule nightly does not exist".into());
    let applied = finish(work, &valid, later);
    assert!(
        has(&applied, "Stalled", "True", "WaitingForSchedule"),
        "{:?}",
        health(&applied)
    );
    // And stays so: the grace does not start over.
    let mut work = Work::start(Some(&applied.status), Some(1));
    work.waiting_for_schedule("FsxBackupSchedule nightly does not exist".into());
    let again = finish(work, &valid, at("2026-03-01T10:03:01Z"));
    assert!(
        has(&again, "Stalled", "True", "WaitingForSchedule"),
        "{:?}",
        health(&again)
    );
}

const FS: &str = "fs-0123456789abcdef0";

/// A copy object's status as an earlier reconcile left it, tracking `FS` since `since`.
fn tracked_since(since: &str) -> FsxBackupCopyStatus {
    FsxBackupCopyStatus {
        observed_generation: Some(1),
        source_targets: vec![FS.into()],
        recovery_points: vec![crate::crd::common::RecoveryPoint {
            target: FS.into(),
            time: None,
            tracked_since: Time(at(since)),
            breach_time: None,
            breached: Some(false),
        }],
        ..FsxBackupCopyStatus::default()
    }
}

#[test]
fn a_breached_rpo_outranks_a_retry_and_a_suspended_schedule_pauses_it() {
    let valid = valid(
        json!({"scheduleRef": {"name": "nightly"}}),
        json!({"rpo": "1m"}),
    );
    let status = tracked_since("2026-03-01T00:00:00Z");
    let now = at("2026-03-01T00:10:00Z");
    let retry = FsxError::RetryLater {
        operation: "DescribeBackups",
        region: DESTINATION.into(),
        code: "ThrottlingException".into(),
        message: "slow down".into(),
    };
    let mut work = Work::start(Some(&status), Some(1));
    work.followed_objective(Duration::from_mins(1), false, vec![FS.into()]);
    work.error(&retry);
    let applied = finish(work, &valid, now);
    assert!(
        has(&applied, "Stalled", "True", "RPOBreached"),
        "{:?}",
        health(&applied)
    );

    // The followed schedule is suspended: neither is judged.
    let mut work = Work::start(Some(&status), Some(1));
    work.followed_objective(Duration::from_mins(1), true, vec![FS.into()]);
    let applied = finish(work, &valid, now);
    assert!(
        has(&applied, "Stalled", "False", "NotStalled"),
        "{:?}",
        health(&applied)
    );
}

#[test]
fn copies_made_before_the_target_field_count_as_recovery_points() {
    let valid = follow();
    let mut status = tracked_since("2026-03-01T00:00:00Z");
    status.recovery_points.clear();
    status.copies.push(CopyStatus {
        source_backup_id: "backup-0000000a".into(),
        destination_backup_id: Some("backup-0000000b".into()),
        lifecycle: "AVAILABLE".into(),
        source_creation_time: Some(Time(at("2026-03-01T00:05:00Z"))),
        ..CopyStatus::default()
    });
    let now = at("2026-03-01T00:10:00Z");
    let mut work = Work::start(Some(&status), Some(1));
    work.followed_objective(Duration::from_mins(30), false, vec![FS.into()]);
    work.follow(
        now,
        &valid,
        vec![backup(
            "backup-0000000a",
            Lifecycle::Available,
            "2026-03-01T00:05:00Z",
        )],
    );
    let applied = finish(work, &valid, now);
    let point = &applied.status.recovery_points[0];
    assert_eq!(
        point.time,
        Some(Time(at("2026-03-01T00:05:00Z"))),
        "{point:?}"
    );
    assert_eq!(point.breached, Some(false));
}
