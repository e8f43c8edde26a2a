//! `FsxBackupSchedule` end to end: the operator binary against the real
//! kube-apiserver and the FSx emulator, observed only through the Kubernetes
//! API and the emulator's state. Time is moved with the operator's test clock.

use std::time::Duration;

use crate::support::operator::eventually;
use crate::support::world::{
    REGION, WAIT, World, condition_of, event_notes, events, events_with, metrics_text, tag, tail,
};
use fsx_backup_operator::controller::FINALIZER;
use fsx_backup_operator::crd::FsxBackupSchedule;
use fsx_emulator::{BackupSeed, BackupType, FileSystemSeed, FileSystemType};
use jiff::{SignedDuration, Timestamp, ToSpan};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn condition(object: &FsxBackupSchedule, type_: &str) -> Option<(String, String)> {
    condition_of(&object.status.as_ref()?.conditions, type_)
}

fn is(object: &FsxBackupSchedule, type_: &str, status: &str, reason: &str) -> bool {
    condition(object, type_) == Some((status.to_owned(), reason.to_owned()))
}

fn has_next_run(object: &FsxBackupSchedule) -> bool {
    object
        .status
        .as_ref()
        .is_some_and(|s| s.next_schedule_time.is_some())
}

#[tokio::test]
async fn schedule_backs_up_reports_and_prunes_only_its_own() {
    crate::support::with_namespace("fbs-cycle", |client, namespace| async move {
        let world = World::new(client.clone(), namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Windows);
        let ancient = Timestamp::now()
            - 400
                .days()
                .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .expect("span");
        let seed = |backup_type, tags: &[(&str, &str)]| {
            let mut seed =
                BackupSeed::of_file_system(&fs, backup_type).creation_time(ancient.into());
            for (k, v) in tags {
                seed = seed.tag(*k, *v);
            }
            world.emulator.seed_backup(REGION, seed).expect("seed")
        };
        let automatic = seed(BackupType::Automatic, &[]);
        let aws_backup = seed(BackupType::AwsBackup, &[]);
        let by_hand = seed(BackupType::UserInitiated, &[("Name", "before-upgrade")]);
        let other_owner = seed(
            BackupType::UserInitiated,
            &[
                ("fsxbackup.io/managed-by", "fsx-backup-operator"),
                ("fsxbackup.io/owner-uid", "another-object"),
            ],
        );

        let created = world
            .create(
                "hourly",
                json!({
                    "target": {"fileSystemIds": [fs]},
                    "schedule": "0 * * * *",
                    "retention": {"maxCount": 2, "minAvailable": 1},
                    "tags": {"team": "storage"},
                }),
            )
            .await;
        let uid = created.uid().expect("uid");
        let ready = world
            .until("hourly", "Ready=True Scheduled", |o| {
                is(o, "Ready", "True", "Scheduled") && has_next_run(o)
            })
            .await;
        assert!(
            is(&ready, "Stalled", "False", "NotStalled")
                && is(&ready, "Reconciling", "False", "Idle")
        );

        let first_slot = world.next_hour();
        for run in 0..3 {
            let slot = first_slot + SignedDuration::from_hours(run);
            world.clock.set_now(slot - SignedDuration::from_secs(2));
            let expected = slot.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let object = world
                .until("hourly", &format!("backup of run {run} AVAILABLE"), |o| {
                    o.status.as_ref().is_some_and(|s| {
                        s.targets
                            .first()
                            .and_then(|t| t.last_backup.as_ref())
                            .is_some_and(|b| {
                                b.lifecycle == "AVAILABLE"
                                    && b.scheduled_time.as_ref().map(|t| t.0.to_string())
                                        == Some(expected.clone())
                            })
                            && s.targets[0].managed_backup_count
                                == Some(u32::try_from(run + 1).unwrap_or(0).min(2))
                    })
                })
                .await;
            assert!(
                is(&object, "Ready", "True", "BackupCreated"),
                "{:?}",
                object.status
            );
        }

        // Exactly three backups were made, tagged and named; maxCount 2 pruned the oldest.
        let mine = world.owned_backups(&uid);
        assert_eq!(mine.len(), 2, "{mine:#?}");
        assert_eq!(world.calls("CreateBackup"), 3);
        assert_eq!(world.calls("DeleteBackup"), 1);
        for backup in &mine {
            assert_eq!(
                tag(backup, "fsxbackup.io/managed-by"),
                Some("fsx-backup-operator")
            );
            assert_eq!(
                tag(backup, "fsxbackup.io/owner"),
                Some(format!("{namespace}/FsxBackupSchedule/hourly").as_str())
            );
            assert_eq!(tag(backup, "team"), Some("storage"));
            let scheduled = tag(backup, "fsxbackup.io/scheduled-time").expect("scheduled-time tag");
            let compact = scheduled
                .parse::<Timestamp>()
                .expect("RFC 3339")
                .strftime("%Y%m%dT%H%MZ")
                .to_string();
            assert_eq!(
                tag(backup, "Name"),
                Some(format!("hourly-{fs}-{compact}").as_str())
            );
            assert!(
                backup
                    .client_request_token
                    .as_deref()
                    .is_some_and(|t| t.starts_with("fbs-") && t.len() <= 63)
            );
        }
        let survivors: Vec<String> = world.backups().into_iter().map(|b| b.id).collect();
        for id in [&automatic, &aws_backup, &by_hand, &other_owner] {
            assert!(survivors.contains(id), "{id} must survive retention");
        }
        let status = world.get("hourly").await.status.expect("status");
        let target = &status.targets[0];
        assert_eq!(target.managed_backups.len(), 2);
        assert!(
            target
                .managed_backups
                .iter()
                .all(|b| b.kept_by.as_deref() == Some("maxCount")),
            "{target:?}"
        );
        assert!(status.last_successful_time.is_some() && status.next_schedule_time.is_some());
        // Events follow the status write that they describe: one Normal event per
        // run, when its backup is AVAILABLE, with what retention deleted folded in.
        let notes = eventually("the prune's event", WAIT, || async {
            let notes = event_notes(&client, &namespace, "hourly").await;
            notes
                .iter()
                .any(|(_, note)| note.contains("deleted by retention"))
                .then_some(notes)
        })
        .await;
        let available = notes.iter().filter(|(r, _)| r == "BackupAvailable").count();
        assert_eq!(
            available, 3,
            "one event per run, not folded across runs: {notes:?}"
        );
        assert!(
            notes.iter().all(|(r, _)| r == "BackupAvailable"),
            "no other event in runs that went as planned: {notes:?}"
        );

        // Nothing changed: no further status writes.
        let version = world.get("hourly").await.resource_version();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            world.get("hourly").await.resource_version(),
            version,
            "status churn while idle"
        );
    })
    .await;
}

/// A suspended schedule `manual` of a Lustre file system (it runs only on
/// run-now), `Ready=True Suspended`; returns its UID.
async fn suspended_manual(world: &World) -> String {
    let fs = world.file_system(FileSystemType::Lustre);
    let created = world
        .create(
            "manual",
            json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *", "suspend": true}),
        )
        .await;
    world
        .until("manual", "Ready=True Suspended", |o| {
            is(o, "Ready", "True", "Suspended")
        })
        .await;
    created.uid().expect("uid")
}

/// Sets `manual`'s run-now annotation to `nonce`.
async fn run_now(world: &World, nonce: &str) {
    let patch = json!({"metadata": {"annotations": {"fsxbackup.io/run-now": nonce}}});
    world
        .api()
        .patch("manual", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
}

#[tokio::test]
async fn run_now_is_once_per_nonce_and_suspend_stops_runs() {
    crate::support::with_namespace("fbs-runnow", |client, namespace| async move {
        let world = World::new(client, namespace).await;
        let uid = suspended_manual(&world).await;

        // Suspended: the scheduled instant passes and nothing is made.
        let next = world
            .get("manual")
            .await
            .status
            .and_then(|s| s.next_schedule_time)
            .expect("next run")
            .0;
        world.clock.set_now(next + SignedDuration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            world.owned_backups(&uid).len(),
            0,
            "suspended schedules make no backups"
        );

        let annotate = |nonce: &'static str| run_now(&world, nonce);
        annotate("first").await;
        world
            .until("manual", "run-now first handled", |o| {
                o.status.as_ref().and_then(|s| s.last_run_now.as_deref()) == Some("first")
            })
            .await;
        // Applying the same nonce again (as GitOps does) changes nothing.
        annotate("first").await;
        let api = world.api();
        let touch = json!({"metadata": {"labels": {"touched": "yes"}}});
        api.patch("manual", &PatchParams::default(), &Patch::Merge(&touch))
            .await
            .expect("touch");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            world.owned_backups(&uid).len(),
            1,
            "one backup for nonce `first`"
        );
        annotate("second").await;
        world
            .until("manual", "run-now second handled", |o| {
                o.status.as_ref().and_then(|s| s.last_run_now.as_deref()) == Some("second")
            })
            .await;
        assert_eq!(world.owned_backups(&uid).len(), 2);
        assert_eq!(world.calls("CreateBackup"), 2);
    })
    .await;
}

#[tokio::test]
async fn killed_between_create_and_status_write_makes_no_duplicate() {
    crate::support::with_namespace("fbs-crash", |client, namespace| async move {
        let mut world = World::new(client, namespace).await;
        let fs = world.file_system(FileSystemType::OpenZfs);
        let created = world
            .create(
                "crashy",
                json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *"}),
            )
            .await;
        let uid = created.uid().expect("uid");
        world.until("crashy", "scheduled", has_next_run).await;

        // FSx makes the backup but answers slowly, so the operator is stuck
        // before it can write status; that is when it gets SIGKILLed.
        world.emulator.set_faults(fsx_emulator::Faults {
            latency_after_write: Duration::from_mins(1),
            only_operations: Some(vec!["CreateBackup".into()]),
            ..Default::default()
        });
        let slot = world.next_hour();
        world.clock.set_now(slot - SignedDuration::from_secs(1));
        eventually("the backup made, its answer held", WAIT, || async {
            (world.owned_backups(&uid).len() == 1).then_some(())
        })
        .await;
        world.operator.kill();
        let status = world.get("crashy").await.status.expect("status");
        assert!(
            status.targets.iter().all(|t| t.last_backup.is_none()),
            "status was not written before the kill: {status:?}"
        );

        world.emulator.set_faults(fsx_emulator::Faults::default());
        world.restart_operator();
        let object = world
            .until("crashy", "backup recorded after restart", |o| {
                o.status
                    .as_ref()
                    .and_then(|s| s.targets.first())
                    .and_then(|t| t.last_backup.as_ref())
                    .is_some_and(|b| b.lifecycle == "AVAILABLE")
            })
            .await;
        let mine = world.owned_backups(&uid);
        assert_eq!(mine.len(), 1, "no duplicate: {mine:#?}");
        assert_eq!(
            object.status.expect("status").targets[0]
                .last_backup
                .as_ref()
                .map(|b| b.id.clone()),
            Some(mine[0].id.clone())
        );
        // The first call's answer never came (its record with it); the replay
        // after the restart was answered with the backup the first one made.
        let answered: Vec<Vec<String>> = world
            .emulator
            .requests()
            .into_iter()
            .filter(|r| r.operation == "CreateBackup" && r.outcome == "ok")
            .map(|r| r.backup_ids)
            .collect();
        assert_eq!(
            answered,
            vec![vec![mine[0].id.clone()]],
            "the retry replayed the same token"
        );
    })
    .await;
}

#[tokio::test]
async fn operator_down_across_a_run_obeys_the_starting_deadline() {
    crate::support::with_namespace("fbs-deadline", |client, namespace| async move {
        let mut world = World::new(client, namespace).await;
        let fs = world.file_system(FileSystemType::Windows);
        let created = world
            .create("late", json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *", "startingDeadlineSeconds": 600}))
            .await;
        let uid = created.uid().expect("uid");
        let next = world.until("late", "scheduled", has_next_run).await.status.and_then(|s| s.next_schedule_time).expect("next").0;

        // Down for 20 minutes past the run: beyond the 10-minute deadline → skipped, recorded.
        world.operator.kill();
        world.clock.set_now(next + SignedDuration::from_mins(20));
        world.restart_operator();
        let object = world.until("late", "missed run recorded", |o| o.status.as_ref().and_then(|s| s.missed_runs) == Some(1)).await;
        // The health contract: a missed run while the RPO holds is Ready, and says so.
        assert!(is(&object, "Ready", "True", "MissedSchedule"), "{:?}", object.status);
        assert_eq!(object.status.as_ref().and_then(|s| s.last_run_result.as_deref()), Some("Missed"));
        assert_eq!(world.owned_backups(&uid).len(), 0);

        // Down again across the next run but back within the deadline → taken once.
        world.operator.kill();
        world.clock.set_now(next + SignedDuration::from_mins(65));
        world.restart_operator();
        let object = world
            .until("late", "late run taken", |o| o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.last_backup.as_ref()).is_some_and(|b| b.lifecycle == "AVAILABLE"))
            .await;
        let mine = world.owned_backups(&uid);
        assert_eq!(mine.len(), 1);
        let expected = (next + SignedDuration::from_hours(1)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        assert_eq!(tag(&mine[0], "fsxbackup.io/scheduled-time"), Some(expected.as_str()));
        assert_eq!(object.status.as_ref().and_then(|s| s.missed_runs), Some(1));
        assert!(is(&object, "Ready", "True", "BackupCreated"), "{:?}", object.status);

        // Down for a whole day: the 23 runs due are not made up in a burst.
        world.operator.kill();
        world.clock.set_now(next + SignedDuration::from_hours(25) + SignedDuration::from_mins(5));
        world.restart_operator();
        world.until("late", "one catch-up run", |o| o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.last_backup.as_ref()).is_some_and(|b| b.id != mine[0].id && b.lifecycle == "AVAILABLE")).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(world.owned_backups(&uid).len(), 2, "one late run, no burst");
        let missed = world.get("late").await.status.and_then(|s| s.missed_runs).unwrap_or(0);
        assert_eq!(missed, 1 + 23, "runs between were missed and counted");
    })
    .await;
}

#[tokio::test]
async fn failed_and_busy_backups_are_reported() {
    crate::support::with_namespace("fbs-fail", |client, namespace| async move {
        let world = World::new(client.clone(), namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Windows);
        world
            .create(
                "flaky",
                json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *"}),
            )
            .await;
        world.until("flaky", "scheduled", has_next_run).await;

        world.emulator.fail_next_backup(REGION, &fs);
        let slot = world.next_hour();
        world.clock.set_now(slot - SignedDuration::from_secs(1));
        let object = world
            .until("flaky", "Ready=True BackupFailed (RPO met)", |o| {
                is(o, "Ready", "True", "BackupFailed")
                    && o.status.as_ref().and_then(|s| s.last_run_result.as_deref())
                        == Some("Failed")
            })
            .await;
        let last = object.status.expect("status").targets[0]
            .last_backup
            .clone()
            .expect("last backup");
        assert_eq!(last.lifecycle, "FAILED");
        assert!(last.failure_message.is_some());
        // Events follow the status write that they describe.
        eventually("a BackupFailed event", WAIT, || async {
            events(&client, &namespace, "flaky")
                .await
                .iter()
                .any(|r| r == "BackupFailed")
                .then_some(())
        })
        .await;

        // A backup that takes longer than the interval: the next run waits for
        // it (BackupInProgress) instead of stacking up, then goes through.
        world.emulator.set_timing(fsx_emulator::Timing {
            create_duration: Duration::from_hours(1),
            copy_duration: Duration::ZERO,
        });
        world
            .clock
            .set_now(slot + SignedDuration::from_hours(1) - SignedDuration::from_secs(1));
        world
            .until("flaky", "second backup CREATING", |o| {
                o.status
                    .as_ref()
                    .and_then(|s| s.targets[0].last_backup.as_ref())
                    .is_some_and(|b| b.lifecycle == "CREATING")
            })
            .await;
        world
            .clock
            .set_now(slot + SignedDuration::from_hours(2) - SignedDuration::from_secs(1));
        world
            .until("flaky", "Ready WaitingForPreviousBackup", |o| {
                is(o, "Ready", "True", "WaitingForPreviousBackup")
            })
            .await;
        let busy = world
            .emulator
            .requests()
            .iter()
            .filter(|r| r.outcome == "BackupInProgress")
            .count();
        assert!(busy >= 1);
        let creating = world
            .backups()
            .into_iter()
            .find(|b| b.lifecycle == fsx_emulator::BackupLifecycle::Creating)
            .expect("creating");
        world
            .emulator
            .set_lifecycle(
                REGION,
                &creating.id,
                fsx_emulator::BackupLifecycle::Available,
            )
            .expect("finish it");
        world
            .until("flaky", "third run goes through", |o| {
                is(o, "Ready", "True", "BackupCreated")
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn deletion_policies_delete_only_owned_backups_or_retain_them() {
    crate::support::with_namespace("fbs-delete", |client, namespace| async move {
        let world = World::new(client.clone(), namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Windows);
        let foreign = world.emulator.seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated)).expect("seed");
        let mut uids = Vec::new();
        for (name, policy) in [("keep", "Retain"), ("drop", "Delete")] {
            let created = world
                .create(name, json!({"target": {"fileSystemIds": [fs]}, "schedule": "@yearly", "deletionPolicy": policy}))
                .await;
            uids.push(created.uid().expect("uid"));
            world.until(name, "scheduled", has_next_run).await;
            let patch = json!({"metadata": {"annotations": {"fsxbackup.io/run-now": "now"}}});
            world.api().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
            world.until(name, "manual backup AVAILABLE", |o| o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.last_backup.as_ref()).is_some_and(|b| b.lifecycle == "AVAILABLE")).await;
        }
        // Only an object whose deletion has work to do carries the finalizer.
        let ours = |o: &FsxBackupSchedule| o.finalizers().iter().any(|f| f == FINALIZER);
        assert!(!ours(&world.get("keep").await), "Retain: no finalizer");
        assert!(ours(&world.get("drop").await), "Delete: the finalizer");
        // The finalizer follows the policy, and another controller's finalizer is kept.
        let set_policy = |policy: &'static str| {
            let api = world.api();
            async move {
                let patch = json!({"spec": {"deletionPolicy": policy}});
                api.patch("keep", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("policy");
            }
        };
        let other = json!({"metadata": {"finalizers": ["example.com/other"]}});
        world.api().patch("keep", &PatchParams::default(), &Patch::Merge(&other)).await.expect("other finalizer");
        set_policy("Delete").await;
        world.until("keep", "the finalizer added for Delete", |o| ours(o) && o.finalizers().len() == 2).await;
        set_policy("Retain").await;
        world.until("keep", "the finalizer removed for Retain", |o| o.finalizers() == ["example.com/other"]).await;
        let none = json!({"metadata": {"finalizers": null}});
        world.api().patch("keep", &PatchParams::default(), &Patch::Merge(&none)).await.expect("drop other finalizer");

        // An object an older operator gave the finalizer under Retain loses it.
        let upgraded: FsxBackupSchedule = serde_json::from_value(json!({
            "apiVersion": "fsxbackup.io/v1alpha1", "kind": "FsxBackupSchedule",
            "metadata": {"name": "upgraded", "finalizers": [FINALIZER]},
            "spec": {"target": {"fileSystemIds": [fs]}, "schedule": "@yearly"},
        }))
        .expect("object");
        world.api().create(&PostParams::default(), &upgraded).await.expect("create upgraded");
        world.until("upgraded", "scheduled, without the finalizer", |o| has_next_run(o) && o.finalizers().is_empty()).await;

        // The series of a Retain schedule go with it, though no reconcile saw it deleted.
        let port = world.operator.metrics_port().expect("metrics port");
        let series = format!("fsxbackup_next_scheduled_run_timestamp_seconds{{namespace=\"{namespace}\",schedule=\"keep\"}}");
        let exported = |present: bool| {
            let series = series.clone();
            async move { metrics_text(port).await.filter(|m| m.contains(&series) == present).map(|_| ()) }
        };
        eventually("keep's series exported", WAIT, || exported(true)).await;

        for name in ["keep", "drop", "upgraded"] {
            world.api().delete(name, &DeleteParams::default()).await.expect("delete");
        }
        let api = world.api();
        eventually("all objects gone", WAIT, || {
            let api = api.clone();
            async move { (api.list(&ListParams::default()).await.ok()?.items.is_empty()).then_some(()) }
        })
        .await;
        assert_eq!(world.owned_backups(&uids[0]).len(), 1, "Retain keeps the backup");
        assert_eq!(world.owned_backups(&uids[1]).len(), 0, "Delete removes the object's own backup");
        assert!(world.backups().iter().any(|b| b.id == foreign), "a backup nobody owns survives");
        eventually("keep's series dropped", WAIT, || exported(false)).await;
        events_with(&client, &namespace, "keep", &[("BackupsRetained", 1)]).await;
        events_with(&client, &namespace, "drop", &[("BackupsDeleted", 1)]).await;
    })
    .await;
}

#[tokio::test]
async fn targets_are_resolved_each_run_and_a_missing_one_is_reported() {
    crate::support::with_namespace("fbs-targets", |client, namespace| async move {
        let world = World::new(client, namespace.clone()).await;
        let prod = |fs_type| {
            world
                .emulator
                .seed_file_system(REGION, FileSystemSeed::new(fs_type).tag("env", "prod"))
                .expect("seed")
        };
        let windows = prod(FileSystemType::Windows);
        let lustre = prod(FileSystemType::Lustre);
        let ontap = prod(FileSystemType::Ontap);
        let dev = world
            .emulator
            .seed_file_system(REGION, FileSystemSeed::new(FileSystemType::Windows).tag("env", "dev"))
            .expect("seed");
        let volume = world
            .emulator
            .seed_volume(REGION, fsx_emulator::VolumeSeed::new(&ontap))
            .expect("volume");
        let by_tag = world
            .create(
                "by-tag",
                json!({"target": {"fileSystemSelector": {"tags": {"env": "prod"}}}, "schedule": "0 * * * *"}),
            )
            .await;
        let by_volume = world
            .create(
                "by-volume",
                json!({"target": {"volumeIds": [volume, "fsvol-0000000000000dead"]}, "schedule": "0 * * * *"}),
            )
            .await;
        for name in ["by-tag", "by-volume"] {
            world.until(name, "scheduled", has_next_run).await;
        }
        // `kubectl wait` (the condition GitOps tools read) sees Ready on a healthy object and
        // Ready=False on one with a target it cannot back up.
        world
            .create("by-id", json!({"target": {"fileSystemIds": [dev]}, "schedule": "@yearly"}))
            .await;
        // kubectl blocks: run it off this (single-threaded) runtime, which also serves the emulator.
        let waits = tokio::task::spawn_blocking({
            let namespace = namespace.clone();
            move || {
                [("by-id", "Ready"), ("by-tag", "Ready=false")].map(|(object, condition)| {
                    let out = crate::support::operator::kubectl(&[
                        "wait",
                        &format!("--for=condition={condition}"),
                        "--timeout=30s",
                        "-n",
                        &namespace,
                        &format!("fsxbackupschedule/{object}"),
                    ]);
                    (object, condition, out)
                })
            }
        })
        .await
        .expect("kubectl");
        for (object, condition, out) in waits {
            assert!(
                out.status.success(),
                "kubectl wait {object} {condition}: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                tail(&world.operator.logs())
            );
        }

        let slot = world.next_hour();
        world.clock.set_now(slot - SignedDuration::from_secs(1));
        let object = world
            .until("by-tag", "both prod file systems backed up", |o| {
                o.status.as_ref().is_some_and(|s| {
                    s.targets.iter().filter(|t| t.last_backup.as_ref().is_some_and(|b| b.lifecycle == "AVAILABLE")).count() == 2
                })
            })
            .await;
        let status = object.status.clone().expect("status");
        let ids: Vec<&str> = status.targets.iter().map(|t| t.id.as_str()).collect();
        assert!(ids.contains(&windows.as_str()) && ids.contains(&lustre.as_str()) && !ids.contains(&dev.as_str()), "{ids:?}");
        let ontap_target = status.targets.iter().find(|t| t.id == ontap).expect("ONTAP reported");
        assert!(ontap_target.message.as_deref().is_some_and(|m| m.contains("volumeIds")), "{ontap_target:?}");
        assert!(ontap_target.last_backup.is_none());
        assert!(is(&object, "Ready", "False", "TargetNotBackupable"), "{:?}", object.status);

        let object = world
            .until("by-volume", "volume backed up, missing volume reported", |o| {
                o.status.as_ref().is_some_and(|s| {
                    s.targets.iter().any(|t| t.id == volume && t.last_backup.as_ref().is_some_and(|b| b.lifecycle == "AVAILABLE"))
                        && s.targets.iter().any(|t| t.id == "fsvol-0000000000000dead" && t.message.is_some())
                })
            })
            .await;
        assert!(is(&object, "Ready", "False", "TargetNotFound"), "{:?}", object.status);
        assert_eq!(world.owned_backups(&by_volume.uid().expect("uid")).len(), 1);

        // Next run: one prod file system is gone, a new one appeared.
        world.emulator.remove_file_system(REGION, &lustre).expect("remove");
        let added = prod(FileSystemType::OpenZfs);
        world.clock.set_now(slot + SignedDuration::from_hours(1) - SignedDuration::from_secs(1));
        let object = world
            .until("by-tag", "new file system backed up", |o| {
                o.status.as_ref().is_some_and(|s| {
                    s.targets.iter().any(|t| t.id == added && t.last_backup.as_ref().is_some_and(|b| b.lifecycle == "AVAILABLE"))
                        && s.targets.iter().filter(|t| t.last_backup.as_ref().is_some_and(|b| b.lifecycle == "AVAILABLE" && b.scheduled_time.as_ref().is_some_and(|at| at.0 > slot))).count() == 2
                })
            })
            .await;
        let status = object.status.expect("status");
        let gone = status.targets.iter().find(|t| t.id == lustre).expect("the removed file system is still listed");
        assert!(gone.message.as_deref().is_some_and(|m| m.contains("no longer")), "{gone:?}");
        assert_eq!(world.owned_backups(&by_tag.uid().expect("uid")).len(), 4);
    })
    .await;
}

#[tokio::test]
async fn a_backup_past_its_timeout_counts_as_failed() {
    crate::support::with_namespace("fbs-timeout", |client, namespace| async move {
        let world = World::new(client.clone(), namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Windows);
        world.emulator.set_timing(fsx_emulator::Timing { create_duration: Duration::from_hours(1), copy_duration: Duration::ZERO });
        world
            .create("slow", json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *", "backupTimeout": "10m"}))
            .await;
        world.until("slow", "scheduled", has_next_run).await;
        let slot = world.next_hour();
        world.clock.set_now(slot - SignedDuration::from_secs(1));
        world
            .until("slow", "backup CREATING", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.last_backup.as_ref()).is_some_and(|b| b.lifecycle == "CREATING")
            })
            .await;
        world.clock.set_now(slot + SignedDuration::from_mins(11));
        let object = world.until("slow", "Ready=True BackupFailed (RPO met)", |o| is(o, "Ready", "True", "BackupFailed")).await;
        let last = object.status.expect("status").targets[0].last_backup.clone().expect("last");
        assert!(last.failure_message.as_deref().is_some_and(|m| m.contains("backupTimeout 10m")), "{last:?}");
        events_with(&client, &namespace, "slow", &[("BackupFailed", 1)]).await;
    })
    .await;
}

/// A run taken late (the operator was down across the slot) gets its whole
/// `backupTimeout` from when the operator asked FSx, not from the slot: it is not
/// reported FAILED while FSx is still making it, and it is followed to AVAILABLE.
#[tokio::test]
async fn a_run_taken_late_is_not_failed_by_its_timeout_at_once() {
    crate::support::with_namespace("fbs-late-timeout", |client, namespace| async move {
        let mut world = World::new(client.clone(), namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Windows);
        world.emulator.set_timing(fsx_emulator::Timing {
            create_duration: Duration::from_secs(4),
            copy_duration: Duration::ZERO,
        });
        world
            .create("late", json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *", "backupTimeout": "10m"}))
            .await;
        let next = world.until("late", "scheduled", has_next_run).await.status.and_then(|s| s.next_schedule_time).expect("next").0;

        // Down from before :00 until :15, past the 10-minute timeout measured from the slot.
        world.operator.kill();
        world.clock.set_now(next + SignedDuration::from_mins(15));
        world.restart_operator();
        let creating = world
            .until("late", "late backup in flight", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.last_backup.as_ref()).is_some_and(|b| b.lifecycle == "CREATING")
            })
            .await;
        let last = creating.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.last_backup.clone()).expect("last");
        assert_eq!(last.failure_message, None, "not failed while FSx makes it");
        assert!(is(&creating, "Ready", "True", "BackupCreated"), "{:?}", creating.status);

        let done = world
            .until("late", "late backup AVAILABLE", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.last_backup.as_ref()).is_some_and(|b| b.lifecycle == "AVAILABLE")
            })
            .await;
        let last = done.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.last_backup.clone()).expect("last");
        assert_eq!(last.failure_message, None);
        assert!(is(&done, "Ready", "True", "BackupCreated"), "{:?}", done.status);
        assert!(done.status.as_ref().is_some_and(|s| s.last_successful_time.is_some()));
        let reasons = events_with(&client, &namespace, "late", &[("BackupAvailable", 1)]).await;
        assert!(!reasons.iter().any(|r| r == "BackupFailed"), "{reasons:?}");
        assert!(reasons.iter().any(|r| r == "BackupAvailable"), "{reasons:?}");
    })
    .await;
}

/// A run-now whose answers are lost (and so retried by later reconciles, at
/// other instants) is still one request with one set of tags: one backup, never
/// `Stalled`. A nonce applied again after another (a GitOps revert) is a new request.
#[tokio::test]
async fn run_now_retried_after_lost_answers_and_reverted_nonces_stay_idempotent() {
    crate::support::with_namespace("fbs-runnow-retry", |client, namespace| async move {
        let world = World::new(client, namespace).await;
        let uid = suspended_manual(&world).await;
        let annotate = |nonce: &'static str| run_now(&world, nonce);
        let handled = |nonce: &'static str| {
            move |o: &FsxBackupSchedule| {
                o.status.as_ref().and_then(|s| s.last_run_now.as_deref()) == Some(nonce)
            }
        };

        // Every answer of the SDK's attempts in the first reconciles is lost.
        world.emulator.set_faults(fsx_emulator::Faults {
            drop_response_after_write_next: 8,
            only_operations: Some(vec!["CreateBackup".into()]),
            ..fsx_emulator::Faults::default()
        });
        annotate("a").await;
        world
            .until("manual", "run-now a handled", handled("a"))
            .await;
        world.emulator.set_faults(fsx_emulator::Faults::default());
        assert!(
            world.attempts("CreateBackup") > 5,
            "answers were lost and retried across reconciles"
        );
        assert_eq!(
            world.owned_backups(&uid).len(),
            1,
            "one backup for nonce `a`"
        );
        let object = world.get("manual").await;
        let stalled = condition_of(
            &object.status.clone().expect("status").conditions,
            "Stalled",
        );
        assert!(
            stalled.is_none_or(|(s, _)| s == "False"),
            "{:?}",
            object.status
        );

        annotate("b").await;
        world
            .until("manual", "run-now b handled", handled("b"))
            .await;
        annotate("a").await;
        world
            .until("manual", "run-now a handled again", handled("a"))
            .await;
        assert_eq!(world.owned_backups(&uid).len(), 3, "a, b, and a again");
        let object = world.get("manual").await;
        assert!(
            condition_of(&object.status.expect("status").conditions, "Stalled")
                .is_none_or(|(s, _)| s == "False")
        );
    })
    .await;
}
