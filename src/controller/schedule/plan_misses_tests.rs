//! Table tests of run accounting: runs missed, owed, passed over, and checked
//! against FSx before they are counted.

use super::*;

#[test]
fn a_run_waiting_behind_the_previous_backup_retries_then_counts_as_missed() {
    let valid = hourly(json!({}));
    let status = pending(&valid, "2026-03-01T11:00:00Z");
    let now = at("2026-03-01T11:00:01Z");
    let (work, _) = reconcile_creates(&valid, &status, now, |_| Err(busy()));
    let applied = work.finish(now, &valid, PACE);
    // Routine (the previous backup is still being made): Ready, the wait in the reason.
    assert_eq!(
        reason_of(&applied, "Ready"),
        ("True".into(), "WaitingForPreviousBackup".into())
    );
    assert_eq!(applied.requeue, PACE.retry);
    assert_eq!(
        applied.status.targets[0].last_scheduled_time, None,
        "the run is still owed"
    );

    // The next run arrives while the previous one still waits: counted, with its reason.
    let later = at("2026-03-01T12:00:01Z");
    let (work, creates) = reconcile_creates(&valid, &applied.status, later, |_| Err(busy()));
    assert_eq!(creates.len(), 1, "only the new run is asked for");
    assert_eq!(creates[0].slot, at("2026-03-01T12:00:00Z"));
    assert_eq!(work.status.missed_runs, Some(1));
    assert!(events(&work.effects).contains(&"MissedSchedule".to_owned()));
}

#[test]
fn downtime_past_the_deadline_counts_every_run_and_takes_at_most_one() {
    let valid = hourly(json!({"startingDeadlineSeconds": 600}));
    let status = pending(&valid, "2026-03-01T11:00:00Z");
    // Back 25h05m later: the latest run (5 minutes late) is taken, the 25 before it counted.
    let now = at("2026-03-02T12:05:00Z");
    let mut work = Work::start(Some(&status), Some(1));
    assert_eq!(work.runs(now, &valid), Some(at("2026-03-02T12:00:00Z")));
    verify_misses(&mut work, &[]);
    assert_eq!(work.status.missed_runs, Some(25));
    assert!(
        work.effects
            .contains(&Effect::Count(Counter::MissedRuns, 25))
    );
    let recorded = work.finish(now, &valid, PACE).status;
    let (_, creates) = reconcile_creates(&valid, &recorded, now, |_| Err(busy()));
    assert_eq!(creates.len(), 1);

    // Back 20 minutes after a run: beyond the deadline, nothing is made.
    let mut work = Work::start(Some(&status), Some(1));
    assert_eq!(work.runs(at("2026-03-01T11:20:00Z"), &valid), None);
    verify_misses(&mut work, &[]);
    assert_eq!(work.status.missed_runs, Some(1));
    let applied = work.finish(at("2026-03-01T11:20:00Z"), &valid, PACE);
    assert_eq!(applied.status.last_run_result.as_deref(), Some("Missed"));
    assert_eq!(
        reason_of(&applied, "Ready"),
        ("True".into(), "MissedSchedule".into())
    );
}

#[test]
fn an_edited_next_schedule_time_neither_invents_misses_nor_holds_runs_back() {
    let mut valid = hourly(json!({}));
    valid.created = Some(at("2026-03-01T08:30:00Z"));
    let now = at("2026-03-01T11:00:30Z");
    let edited = |next: &str| pending(&valid, next);
    // Year 1: only slots since the object existed count (09:00 and 10:00 missed).
    let mut work = Work::start(Some(&edited("0001-01-01T00:00:00Z")), Some(1));
    assert_eq!(work.runs(now, &valid), Some(at("2026-03-01T11:00:00Z")));
    verify_misses(&mut work, &[]);
    assert_eq!(work.status.missed_runs, Some(2));
    // Year 9999: read as unknown, as for a new object: the next run is the next slot.
    let mut work = Work::start(Some(&edited("9999-12-30T22:00:00Z")), Some(1));
    assert_eq!(work.runs(now, &valid), None);
    assert_eq!(
        work.status.next_schedule_time,
        Some(Time(at("2026-03-01T12:00:00Z")))
    );
    assert_eq!(work.status.missed_runs, None);
}

#[test]
fn runs_backed_up_before_a_lost_status_write_are_not_counted_as_missed() {
    // The 11:00 and 12:00 backups were made, but the status that recorded them was
    // lost (a crash): it still says 11:00 is next. Back at 13:05, only 13:00 is due.
    let valid = hourly(json!({}));
    let status = pending(&valid, "2026-03-01T11:00:00Z");
    let now = at("2026-03-01T13:05:00Z");
    let made = |slot: &str| {
        let mut b = backup("backup-0000000b", Lifecycle::Available, slot);
        b.tags.insert(SCHEDULED_TIME_KEY.into(), slot.into());
        b
    };
    let listed = vec![made("2026-03-01T11:00:00Z"), made("2026-03-01T12:00:00Z")];
    let mut work = Work::start(Some(&status), Some(1));
    assert_eq!(work.runs(now, &valid), Some(at("2026-03-01T13:00:00Z")));
    assert_eq!(
        work.misses_to_verify(),
        vec!["fs-0123456789abcdef0".to_owned()]
    );
    verify_misses(&mut work, &listed);
    assert_eq!(work.status.missed_runs, None, "both were made");
    assert!(!events(&work.effects).contains(&"MissedSchedule".to_owned()));

    // Only 12:00 was made: 11:00 is the one miss, named.
    let mut work = Work::start(Some(&status), Some(1));
    work.runs(now, &valid);
    verify_misses(&mut work, &listed[1..]);
    assert_eq!(work.status.missed_runs, Some(1));
    assert_eq!(
        work.status.last_missed_time,
        Some(Time(at("2026-03-01T11:00:00Z")))
    );

    // FSx cannot be listed: counted, never hidden.
    let mut work = Work::start(Some(&status), Some(1));
    work.runs(now, &valid);
    for target in work.misses_to_verify() {
        work.count_misses(&target, UID, &Err(busy()));
    }
    assert_eq!(work.status.missed_runs, Some(2));
}

#[test]
fn retention_keeps_a_backup_until_the_status_records_its_run() {
    // A crash loop: the 11:00 and 12:00 backups were made but every status write
    // since 10:00 was lost, so the status still says 11:00 is next. maxCount 1
    // would prune both; if it did, the next look would count them missed.
    let valid = hourly(json!({"retention": {"maxCount": 1}}));
    let made = |id: &str, run: &str| {
        let mut b = backup(id, Lifecycle::Available, "2026-03-01T09:00:00Z");
        b.tags.insert(SCHEDULED_TIME_KEY.into(), run.into());
        b.created_at = run.parse().ok();
        b
    };
    let listed = vec![
        made("backup-00000010", "2026-03-01T10:00:00Z"),
        made("backup-00000011", "2026-03-01T11:00:00Z"),
        made("backup-00000012", "2026-03-01T12:00:00Z"),
    ];
    let prune = |status: &FsxBackupScheduleStatus, now: Timestamp, listed: &[Backup]| {
        let mut work = Work::start(Some(status), Some(1));
        work.runs(now, &valid);
        verify_misses(&mut work, listed);
        let plan = retention::plan(
            now,
            &valid.retention,
            valid.schedule.time_zone(),
            listed,
            UID,
        );
        let deletable: Vec<String> = work
            .deletable(
                "fs-0123456789abcdef0",
                retention::deletions(&plan, listed, UID),
                listed,
            )
            .into_iter()
            .map(str::to_owned)
            .collect();
        work.pruned("fs-0123456789abcdef0", &plan, &[]);
        (work, deletable)
    };
    let mut lost = pending(&valid, "2026-03-01T11:00:00Z");
    lost.targets[0].last_scheduled_time = Some(Time(at("2026-03-01T10:00:00Z")));
    for now in ["2026-03-01T12:00:30Z", "2026-03-01T13:00:30Z"] {
        let (work, deletable) = prune(&lost, at(now), &listed);
        assert_eq!(deletable, vec!["backup-00000010"], "at {now}");
        assert_eq!(
            work.status.missed_runs, None,
            "at {now}: every run was made"
        );
        let kept = &work.status.targets[0].managed_backups;
        assert!(
            kept.iter()
                .any(|b| b.id == "backup-00000011"
                    && b.kept_by.as_deref() == Some("pendingDeletion")),
            "at {now}: kept, listed as a deletion still to do: {kept:?}"
        );
    }

    // The 12:00 run is recorded as taken, but its create's answer was lost, so
    // the target still owes it; a newer run-now backup would have it pruned.
    let mut owed = pending(&valid, "2026-03-01T13:00:00Z");
    owed.last_schedule_time = Some(Time(at("2026-03-01T12:00:00Z")));
    owed.targets[0].last_scheduled_time = Some(Time(at("2026-03-01T11:00:00Z")));
    let mut with_run_now = listed.clone();
    with_run_now.push(made("backup-000000a1", "2026-03-01T12:30:00Z"));
    with_run_now[3]
        .tags
        .insert(SCHEDULED_TIME_KEY.into(), "run-now:n1".into());
    let (_, deletable) = prune(&owed, at("2026-03-01T12:40:00Z"), &with_run_now);
    assert_eq!(deletable, vec!["backup-00000010", "backup-00000011"]);
    // The same for a target with no run recorded at all (new, or just selected).
    let mut first = owed.clone();
    first.targets[0].last_scheduled_time = None;
    let (_, deletable) = prune(&first, at("2026-03-01T12:40:00Z"), &with_run_now);
    assert_eq!(deletable, vec!["backup-00000010", "backup-00000011"]);
    // A target no longer selected owes nothing: no check will look for it.
    first.targets[0].not_selected = Some(true);
    let (_, deletable) = prune(&first, at("2026-03-01T12:40:00Z"), &with_run_now);
    assert_eq!(
        deletable,
        vec!["backup-00000010", "backup-00000011", "backup-00000012"]
    );

    // Recorded at last: retention goes ahead.
    owed.targets[0].last_scheduled_time = Some(Time(at("2026-03-01T12:00:00Z")));
    let (_, deletable) = prune(&owed, at("2026-03-01T12:40:00Z"), &with_run_now);
    assert_eq!(
        deletable,
        vec!["backup-00000010", "backup-00000011", "backup-00000012"]
    );
}
