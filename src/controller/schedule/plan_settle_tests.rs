//! Table tests of settling backups in flight and of retention outcomes.

use super::*;

#[test]
fn a_late_run_gets_its_whole_backup_timeout() {
    // The operator was down from before :00 until :15; backupTimeout is 10m.
    let valid = hourly(json!({"backupTimeout": "10m"}));
    let status = pending(&valid, "2026-03-01T11:00:00Z");
    let now = at("2026-03-01T11:15:00Z");
    let (mut work, creates) = reconcile_creates(&valid, &status, now, |_| {
        Ok(backup(
            "backup-01234567",
            Lifecycle::Creating,
            "2026-03-01T11:15:00Z",
        ))
    });
    assert_eq!(creates.len(), 1, "the late run is taken once");
    let found = BackupsById {
        found: vec![backup(
            "backup-01234567",
            Lifecycle::Creating,
            "2026-03-01T11:15:00Z",
        )],
        missing: Vec::new(),
    };
    work.settle(now, &valid, UID, Some(&found));
    let applied = work.finish(now, &valid, PACE);
    let last = applied.status.targets[0]
        .last_backup
        .clone()
        .expect("last backup");
    assert_eq!(last.failure_message, None, "not failed at once");
    assert_eq!(last.request_time, Some(Time(now)));
    assert!(!events(&applied.effects).contains(&"BackupFailed".to_owned()));
    assert_eq!(
        reason_of(&applied, "Ready"),
        ("True".into(), "BackupCreated".into())
    );
    assert_eq!(applied.requeue, PACE.poll, "polls while in flight");

    // Nine minutes after the request it is still within its timeout…
    let mut work = Work::start(Some(&applied.status), Some(1));
    work.settle(
        now + SignedDuration::from_mins(9),
        &valid,
        UID,
        Some(&found),
    );
    assert_eq!(
        work.status.targets[0]
            .last_backup
            .as_ref()
            .and_then(|b| b.failure_message.clone()),
        None
    );
    // …eleven minutes after, it is not.
    let mut work = Work::start(Some(&applied.status), Some(1));
    work.settle(
        now + SignedDuration::from_mins(11),
        &valid,
        UID,
        Some(&found),
    );
    let failed = work.status.targets[0].last_backup.clone().expect("last");
    assert!(
        failed
            .failure_message
            .is_some_and(|m| m.contains("backupTimeout 10m"))
    );
}

#[test]
fn a_backup_past_its_timeout_is_reported_failed_exactly_once() {
    let valid = hourly(json!({"backupTimeout": "1h"}));
    let mut status = pending(&valid, "2026-03-01T12:00:00Z");
    status.targets[0].last_backup = Some(LastBackup {
        id: "backup-01234567".into(),
        lifecycle: "CREATING".into(),
        request_time: Some(Time(at("2026-03-01T10:00:00Z"))),
        scheduled_time: Some(Time(at("2026-03-01T10:00:00Z"))),
        ..LastBackup::default()
    });
    let now = at("2026-03-01T11:30:00Z");
    let mut work = Work::start(Some(&status), Some(1));
    work.settle(now, &valid, UID, None);
    let applied = work.finish(now, &valid, PACE);
    assert_eq!(events(&applied.effects), vec!["BackupFailed"]);
    assert!(
        applied
            .effects
            .contains(&Effect::Count(Counter::BackupsFailed, 1))
    );
    assert_eq!(applied.status.last_run_result.as_deref(), Some("Failed"));
    assert_eq!(
        reason_of(&applied, "Ready"),
        ("True".into(), "BackupFailed".into())
    );
    assert_eq!(
        applied.status.targets[0]
            .last_backup
            .as_ref()
            .and_then(|b| b.settled),
        Some(true)
    );

    let mut again = Work::start(Some(&applied.status), Some(1));
    again.settle(now + SignedDuration::from_mins(1), &valid, UID, None);
    assert!(
        again.effects.is_empty(),
        "settled once: {:?}",
        again.effects
    );
}

#[test]
fn an_available_backup_settles_with_success_and_a_retention_pass() {
    let valid = hourly(json!({"retention": {"maxCount": 1}}));
    let mut status = pending(&valid, "2026-03-01T12:00:00Z");
    status.targets[0].last_backup = Some(LastBackup {
        id: "backup-00000002".into(),
        lifecycle: "CREATING".into(),
        request_time: Some(Time(at("2026-03-01T11:00:00Z"))),
        ..LastBackup::default()
    });
    let now = at("2026-03-01T11:05:00Z");
    let mut work = Work::start(Some(&status), Some(1));
    let found = BackupsById {
        found: vec![backup(
            "backup-00000002",
            Lifecycle::Available,
            "2026-03-01T11:00:00Z",
        )],
        missing: Vec::new(),
    };
    work.settle(now, &valid, UID, Some(&found));
    assert_eq!(
        work.retention_targets(now),
        vec!["fs-0123456789abcdef0".to_owned()]
    );
    assert_eq!(work.status.last_successful_time, Some(Time(now)));
    assert!(work.effects.contains(&Effect::LastSuccess {
        target: "fs-0123456789abcdef0".into(),
        at: now
    }));

    let backups = vec![
        backup(
            "backup-00000001",
            Lifecycle::Available,
            "2026-03-01T10:00:00Z",
        ),
        backup(
            "backup-00000002",
            Lifecycle::Available,
            "2026-03-01T11:00:00Z",
        ),
    ];
    let plan = retention::plan(
        now,
        &valid.retention,
        valid.schedule.time_zone(),
        &backups,
        UID,
    );
    assert_eq!(
        retention::deletions(&plan, &backups, UID),
        vec!["backup-00000001"]
    );
    work.pruned(
        "fs-0123456789abcdef0",
        &plan,
        &[("backup-00000001".into(), Ok(()))],
    );
    let applied = work.finish(now, &valid, PACE);
    let target = &applied.status.targets[0];
    assert_eq!(target.managed_backup_count, Some(1));
    assert_eq!(target.managed_backups[0].id, "backup-00000002");
    assert_eq!(
        events(&applied.effects),
        vec!["BackupAvailable", "BackupPruned"]
    );
}

#[test]
fn a_failed_deletion_is_kept_listed_as_pending_and_retried_soon() {
    let valid = hourly(json!({"retention": {"maxCount": 1}}));
    let status = pending(&valid, "2026-03-01T12:00:00Z");
    let now = at("2026-03-01T11:05:00Z");
    let backups = vec![
        backup(
            "backup-00000001",
            Lifecycle::Available,
            "2026-03-01T10:00:00Z",
        ),
        backup(
            "backup-00000002",
            Lifecycle::Available,
            "2026-03-01T11:00:00Z",
        ),
    ];
    let plan = retention::plan(
        now,
        &valid.retention,
        valid.schedule.time_zone(),
        &backups,
        UID,
    );
    let mut work = Work::start(Some(&status), Some(1));
    work.pruned(
        "fs-0123456789abcdef0",
        &plan,
        &[("backup-00000001".into(), Err(busy()))],
    );
    let applied = work.finish(now, &valid, PACE);
    let listed = &applied.status.targets[0].managed_backups;
    assert_eq!(
        listed
            .iter()
            .find(|b| b.id == "backup-00000001")
            .and_then(|b| b.kept_by.clone()),
        Some("pendingDeletion".into())
    );
    assert!(
        events(&applied.effects).is_empty(),
        "nothing reported as pruned"
    );
    assert_eq!(applied.requeue, PACE.retry);
    // The next reconcile plans that target's retention again, whatever else happened.
    let again = Work::start(Some(&applied.status), Some(1));
    assert_eq!(
        again.retention_targets(now + SignedDuration::from_secs(10)),
        vec!["fs-0123456789abcdef0".to_owned()]
    );
}

#[test]
fn a_last_backup_edited_to_name_a_foreign_backup_is_never_our_success() {
    let valid = hourly(json!({}));
    let mut status = pending(&valid, "2026-03-01T12:00:00Z");
    status.targets[0].last_backup = Some(LastBackup {
        id: "backup-0f0f0f0f".into(),
        lifecycle: "CREATING".into(),
        scheduled_time: Some(Time(at("2026-03-01T11:00:00Z"))),
        request_time: Some(Time(at("2026-03-01T11:00:00Z"))),
        ..LastBackup::default()
    });
    let now = at("2026-03-01T11:05:00Z");
    let foreign = Backup {
        tags: BTreeMap::new(),
        ..backup(
            "backup-0f0f0f0f",
            Lifecycle::Available,
            "2026-03-01T10:00:00Z",
        )
    };
    let mut work = Work::start(Some(&status), Some(1));
    work.settle(
        now,
        &valid,
        UID,
        Some(&BackupsById {
            found: vec![foreign],
            missing: Vec::new(),
        }),
    );
    let applied = work.finish(now, &valid, PACE);
    assert_eq!(applied.status.targets[0].last_backup, None);
    assert_eq!(applied.status.last_successful_time, None);
    assert!(
        !applied.effects.iter().any(|e| matches!(
            e,
            Effect::LastSuccess { .. }
                | Effect::Notify {
                    outcome: crate::controller::effects::Outcome::Succeeded,
                    ..
                }
        )),
        "{:?}",
        applied.effects
    );
    assert!(events(&applied.effects).contains(&"StatusCorrected".to_owned()));
}

#[test]
fn a_policy_change_that_deletes_many_at_once_waits_for_the_approval_of_its_generation() {
    use crate::controller::Brake;
    use crate::controller::brake::BrakeCheck;
    let valid = hourly(json!({"retention": {"maxCount": 1}}));
    let now = at("2026-03-01T12:30:00Z");
    let backups: Vec<Backup> = (0..6)
        .map(|h| {
            backup(
                &format!("backup-0000000{h}"),
                Lifecycle::Available,
                &format!("2026-03-01T0{h}:00:00Z"),
            )
        })
        .collect();
    let plan = retention::plan(
        now,
        &valid.retention,
        valid.schedule.time_zone(),
        &backups,
        UID,
    );
    // Generation 2 changed the policy; generation 1's was applied.
    let mut status = pending(&valid, "2026-03-01T13:00:00Z");
    status.retention_generation = Some(1);
    let check = |approved| BrakeCheck {
        brake: Brake::default(),
        approved,
        object: "fsxbackupschedule nightly -n storage".into(),
    };
    let target = "fs-0123456789abcdef0";

    // 5 of 6 at once: held, every backup still listed, Stalled with the command to run.
    for approved in [None, Some(1)] {
        let mut work = Work::start(Some(&status), Some(2));
        assert!(
            work.hold_deletions(target, &plan, &check(approved)),
            "approval of {approved:?}"
        );
        work.pruned(target, &plan, &[]);
        let applied = work.finish(now, &valid, PACE);
        assert_eq!(applied.status.targets[0].managed_backups.len(), 6);
        assert_eq!(
            applied.status.retention_generation,
            Some(1),
            "not applied yet"
        );
        let (stalled, reason) = reason_of(&applied, "Stalled");
        assert_eq!(
            (stalled.as_str(), reason.as_str()),
            ("True", "DeletionHeld")
        );
        let message = applied.health.message().to_owned();
        assert!(message.contains("delete 5 of the 6"), "{message}");
        assert!(
            message.contains("fsxbackup.io/approve-deletions=2"),
            "{message}"
        );
        assert!(events(&applied.effects).contains(&"DeletionHeld".to_owned()));
    }

    // Approved for generation 2: deleted, and generation 2 is the applied policy.
    let mut work = Work::start(Some(&status), Some(2));
    assert!(!work.hold_deletions(target, &plan, &check(Some(2))));
    let deleted: Vec<(String, Result<(), FsxError>)> = (0..5)
        .map(|h| (format!("backup-0000000{h}"), Ok(())))
        .collect();
    work.pruned(target, &plan, &deleted);
    let applied = work.finish(now, &valid, PACE);
    assert_eq!(applied.status.retention_generation, Some(2));
    assert_ne!(reason_of(&applied, "Stalled").0, "True");

    // Routine pruning by the applied policy is never held, however much it deletes.
    let mut routine = applied.status.clone();
    routine.observed_generation = Some(2);
    let mut work = Work::start(Some(&routine), Some(2));
    assert!(!work.retention_pending());
    assert!(!work.hold_deletions(target, &plan, &check(None)));
    // ... unless backups were adopted: retention counts as not applied, so the
    // brake judges it, and keeps judging it in later reconciles while it holds.
    work.adopted();
    assert!(work.hold_deletions(target, &plan, &check(None)));
    let applied = work.finish(now, &valid, PACE);
    assert_eq!(applied.status.retention_generation, None);
    let mut later = applied.status.clone();
    later.observed_generation = Some(2);
    let mut work = Work::start(Some(&later), Some(2));
    assert!(work.retention_pending());
    assert!(work.hold_deletions(target, &plan, &check(None)));
    // The approval of the generation releases it.
    let mut work = Work::start(Some(&later), Some(2));
    assert!(!work.hold_deletions(target, &plan, &check(Some(2))));

    // A small change passes: 1 of 6 is under both limits.
    let keep_five = hourly(json!({"retention": {"maxCount": 5}}));
    let small = retention::plan(
        now,
        &keep_five.retention,
        keep_five.schedule.time_zone(),
        &backups,
        UID,
    );
    let mut work = Work::start(Some(&status), Some(2));
    assert!(!work.hold_deletions(target, &small, &check(None)));
}

#[test]
fn a_backup_in_progress_changes_the_status_only_when_it_ends() {
    let valid = hourly(json!({}));
    let mut status = pending(&valid, "2026-03-01T12:00:00Z");
    status.targets[0].last_backup = Some(LastBackup {
        id: "backup-00000002".into(),
        lifecycle: "CREATING".into(),
        progress_percent: Some(0),
        request_time: Some(Time(at("2026-03-01T11:00:00Z"))),
        ..LastBackup::default()
    });
    let now = at("2026-03-01T11:05:00Z");
    let poll = |status: &FsxBackupScheduleStatus, lifecycle: Lifecycle, progress: i32| {
        let mut work = Work::start(Some(status), Some(1));
        let mut found = backup("backup-00000002", lifecycle, "2026-03-01T11:00:00Z");
        found.progress_percent = Some(progress);
        let found = BackupsById {
            found: vec![found],
            missing: Vec::new(),
        };
        work.settle(now, &valid, UID, Some(&found));
        work.status
    };
    // Its steps in between are not status changes, so not status writes.
    for (lifecycle, progress) in [(Lifecycle::Creating, 40), (Lifecycle::Transferring, 80)] {
        assert_eq!(poll(&status, lifecycle, progress), status);
    }
    let ended = poll(&status, Lifecycle::Available, 100);
    let last = ended.targets[0].last_backup.as_ref().expect("last");
    assert_eq!(
        (last.lifecycle.as_str(), last.progress_percent),
        ("AVAILABLE", Some(100))
    );
    assert_eq!(ended.last_successful_time, Some(Time(now)));
}
