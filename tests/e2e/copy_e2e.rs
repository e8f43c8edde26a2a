//! `FsxBackupCopy` end to end: the operator binary against the real kube-apiserver
//! and the FSx emulator, observed only through the Kubernetes API and the
//! emulator's state and request log.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::support::operator::eventually;
use crate::support::world::{
    REGION, WAIT, World, condition_of, event_notes, events, events_with, tag,
};
use fsx_backup_operator::controller::FINALIZER;
use fsx_backup_operator::crd::{FsxBackupCopy, FsxBackupSchedule};
use fsx_emulator::{
    BackupLifecycle, BackupSeed, BackupSnapshot, BackupType, FileSystemSeed, FileSystemType,
    Limits, StorageType, Timing,
};
use jiff::SignedDuration;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

const DESTINATION: &str = "us-west-2";

fn condition(object: &FsxBackupCopy, type_: &str) -> Option<(String, String)> {
    condition_of(&object.status.as_ref()?.conditions, type_)
}

fn is(object: &FsxBackupCopy, type_: &str, status: &str, reason: &str) -> bool {
    condition(object, type_) == Some((status.to_owned(), reason.to_owned()))
}

fn available_copies(object: &FsxBackupCopy) -> usize {
    object.status.as_ref().map_or(0, |s| {
        s.copies
            .iter()
            .filter(|c| c.lifecycle == "AVAILABLE")
            .count()
    })
}

/// Seeds `count` AVAILABLE backups of `fs` that carry `schedule`'s ownership tags, as
/// if the schedule had made them over the last `count` hours.
fn seed_schedule_backups(
    world: &World,
    fs: &str,
    schedule: &FsxBackupSchedule,
    count: u64,
) -> Vec<String> {
    let uid = schedule.uid().expect("uid");
    (1..=count)
        .map(|hours_ago| {
            let created = SystemTime::now() - Duration::from_secs(hours_ago * 3600);
            world
                .emulator
                .seed_backup(
                    REGION,
                    BackupSeed::of_file_system(fs, BackupType::UserInitiated)
                        .creation_time(created)
                        .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                        .tag("fsxbackup.io/owner-uid", uid.as_str())
                        .tag("Name", format!("seeded-{hours_ago}")),
                )
                .expect("seed backup")
        })
        .collect()
}

async fn yearly_schedule(world: &World, name: &str, fs: &str) -> FsxBackupSchedule {
    world
        .create(
            name,
            json!({"target": {"fileSystemIds": [fs]}, "schedule": "@yearly"}),
        )
        .await;
    world
        .until(name, "scheduled", |o| {
            o.status
                .as_ref()
                .is_some_and(|s| s.next_schedule_time.is_some())
        })
        .await
}

fn copies_of(world: &World, uid: &str) -> Vec<BackupSnapshot> {
    world.owned_backups_in(DESTINATION, uid)
}

#[tokio::test]
async fn follow_mode_copies_every_backup_within_the_slots_and_shares_them_fairly() {
    crate::support::with_namespace("fbc-follow", |client, namespace| async move {
        let world = World::new(client.clone(), namespace.clone()).await;
        // Only the operator's queue may limit copies in progress here.
        world.emulator.set_limits(Limits { copies_in_progress_per_region: 50, ..Limits::default() });
        world.emulator.set_timing(Timing { create_duration: Duration::from_millis(300), copy_duration: Duration::from_secs(2) });
        let fs_a = world.file_system(FileSystemType::Windows);
        let fs_b = world.file_system(FileSystemType::Lustre);
        let sa = yearly_schedule(&world, "sa", &fs_a).await;
        let sb = yearly_schedule(&world, "sb", &fs_b).await;
        let sources_a = seed_schedule_backups(&world, &fs_a, &sa, 12);
        seed_schedule_backups(&world, &fs_b, &sb, 12);
        // Backups nobody asked to copy: AUTOMATIC, and a person's.
        world.emulator.seed_backup(REGION, BackupSeed::of_file_system(&fs_a, BackupType::Automatic)).expect("seed");
        world.emulator.seed_backup(REGION, BackupSeed::of_file_system(&fs_a, BackupType::UserInitiated)).expect("seed");

        let ca = world
            .create_copy("ca", json!({"source": {"scheduleRef": {"name": "sa"}}, "destinationRegion": DESTINATION, "tags": {"purpose": "dr"}}))
            .await;
        let cb = world
            .create_copy("cb", json!({"source": {"scheduleRef": {"name": "sb"}}, "destinationRegion": DESTINATION, "copyTags": true}))
            .await;
        for name in ["ca", "cb"] {
            let object = world
                .until_copy(name, "12 copies AVAILABLE and Ready", |o| available_copies(o) == 12 && is(o, "Ready", "True", "UpToDate"))
                .await;
            assert_eq!(object.status.as_ref().and_then(|s| s.queued), Some(0));
            assert!(object.status.as_ref().is_some_and(|s| s.last_copy_time.is_some()));
        }
        let peak = world.emulator.max_copies_in_progress().get(DESTINATION).copied().unwrap_or(0);
        assert!((2..=5).contains(&peak), "copies in progress at once in {DESTINATION}: {peak}");

        // Each copy: in the destination, owned by its copy object, tagged with its source.
        let copies_a = copies_of(&world, &ca.uid().expect("uid"));
        let copies_b = copies_of(&world, &cb.uid().expect("uid"));
        assert_eq!((copies_a.len(), copies_b.len()), (12, 12));
        let copied: std::collections::BTreeSet<&str> = copies_a.iter().filter_map(|c| tag(c, "fsxbackup.io/source-backup-id")).collect();
        assert_eq!(copied, sources_a.iter().map(String::as_str).collect());
        for copy in &copies_a {
            assert_eq!(tag(copy, "fsxbackup.io/managed-by"), Some("fsx-backup-operator"));
            assert_eq!(tag(copy, "purpose"), Some("dr"));
            assert_eq!(copy.source_backup_region.as_deref(), Some(REGION));
        }
        // copyTags brought the source's Name along; ownership tags are the copy object's.
        assert!(copies_b.iter().all(|c| tag(c, "Name").is_some_and(|n| n.starts_with("seeded-"))));
        assert!(copies_b.iter().all(|c| tag(c, "fsxbackup.io/owner-uid") == Some(cb.uid().expect("uid").as_str())));
        assert_eq!(world.calls("CopyBackup"), 24, "one CopyBackup per source backup");

        // Fair shares of the slots: whoever came second gets the first slot freed (the
        // sixth copy at the latest), and the two backlogs are worked off side by side
        // rather than one after the other.
        let mut started: Vec<(f64, char)> = copies_a
            .iter()
            .map(|c| (started_at(c), 'a'))
            .chain(copies_b.iter().map(|c| (started_at(c), 'b')))
            .collect();
        started.sort_by(|x, y| x.0.total_cmp(&y.0));
        let sequence: String = started.iter().map(|(_, owner)| *owner).collect();
        for owner in ['a', 'b'] {
            assert!(sequence.find(owner).is_some_and(|i| i <= 5), "order of copies: {sequence}");
            assert!(sequence[12..].matches(owner).count() >= 2, "order of copies: {sequence}");
        }

        // A backup the schedule makes later is copied once AVAILABLE.
        let patch = json!({"metadata": {"annotations": {"fsxbackup.io/run-now": "later"}}});
        world.api().patch("sa", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
        world.until_copy("ca", "the new backup copied", |o| available_copies(o) == 13).await;
        assert_eq!(copies_of(&world, &ca.uid().expect("uid")).len(), 13);
        // One Normal event per copy, when it is AVAILABLE (several copies settling in
        // one reconcile are one event, their notes joined).
        let copied_notes = || async {
            event_notes(&client, &namespace, "ca")
                .await
                .iter()
                .filter(|(reason, _)| reason == "CopyCompleted")
                .map(|(_, note)| note.matches("is AVAILABLE in").count())
                .sum::<usize>()
        };
        eventually("13 copies reported", WAIT, || async { (copied_notes().await == 13).then_some(()) }).await;
        let reasons = events(&client, &namespace, "ca").await;
        assert!(!reasons.iter().any(|r| r == "CopyStarted"), "no event for a copy started: {reasons:?}");
    })
    .await;
}

fn started_at(backup: &BackupSnapshot) -> f64 {
    backup
        .creation_time
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

#[tokio::test]
async fn one_shot_copy_waits_for_the_source_then_copies_once() {
    crate::support::with_namespace("fbc-oneshot", |client, namespace| async move {
        let world = World::new(client, namespace).await;
        world.emulator.set_timing(Timing { create_duration: Duration::ZERO, copy_duration: Duration::from_secs(1) });
        let fs = world.file_system(FileSystemType::OpenZfs);
        let source = world.emulator.seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated)).expect("seed");
        world.emulator.set_lifecycle(REGION, &source, BackupLifecycle::Creating).expect("pin CREATING");
        let copy = world
            .create_copy("one", json!({"source": {"backupId": source, "region": REGION}, "destinationRegion": DESTINATION}))
            .await;
        let waiting = world
            .until_copy("one", "waiting for the source", |o| is(o, "Reconciling", "True", "WaitingForSource"))
            .await;
        assert!(is(&waiting, "Ready", "False", "WaitingForSource"));
        assert_eq!(waiting.status.as_ref().map(|s| s.copies[0].lifecycle.as_str()), Some("WaitingForSource"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(world.attempts("CopyBackup"), 0, "no copy of a source still CREATING");

        world.emulator.set_lifecycle(REGION, &source, BackupLifecycle::Available).expect("finish");
        let done = world.until_copy("one", "Ready CopyAvailable", |o| is(o, "Ready", "True", "CopyAvailable")).await;
        let entry = done.status.expect("status").copies[0].clone();
        assert_eq!(entry.lifecycle, "AVAILABLE");
        assert!(entry.start_time.is_some() && entry.completion_time.is_some());
        let copies = copies_of(&world, &copy.uid().expect("uid"));
        assert_eq!(copies.len(), 1);
        assert_eq!(entry.destination_backup_id.as_deref(), Some(copies[0].id.as_str()));
        assert_eq!(copies[0].source_backup_id.as_deref(), Some(source.as_str()));
        // Settled: nothing more is asked of FSx.
        let version = world.copies().get("one").await.expect("get").resource_version();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(world.calls("CopyBackup"), 1);
        assert_eq!(world.copies().get("one").await.expect("get").resource_version(), version, "no status churn");
    })
    .await;
}

#[tokio::test]
async fn a_copy_accepted_but_not_recorded_is_not_duplicated() {
    crate::support::with_namespace("fbc-crash", |client, namespace| async move {
        let mut world = World::new(client, namespace).await;
        let fs = world.file_system(FileSystemType::Windows);
        let source = world.emulator.seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated)).expect("seed");
        // FSx accepts every CopyBackup but the answers are lost: the operator
        // cannot record the copy, as if it had died right after the call.
        world.emulator.set_faults(fsx_emulator::Faults {
            drop_response_after_write_rate: 1.0,
            only_operations: Some(vec!["CopyBackup".into()]),
            ..Default::default()
        });
        let copy = world
            .create_copy("lost", json!({"source": {"backupId": source, "region": REGION}, "destinationRegion": DESTINATION}))
            .await;
        eventually("CopyBackup executed", WAIT, || async {
            (world.emulator.requests().iter().any(|r| r.operation == "CopyBackup" && r.fault.is_some())).then_some(())
        })
        .await;
        world.operator.kill();
        let status = world.copies().get("lost").await.expect("get").status;
        assert!(
            status.iter().flat_map(|s| &s.copies).all(|c| c.destination_backup_id.is_none()),
            "the copy was never recorded: {status:?}"
        );
        assert_eq!(copies_of(&world, &copy.uid().expect("uid")).len(), 1, "FSx did make the copy");

        world.emulator.set_faults(fsx_emulator::Faults::default());
        world.restart_operator();
        let done = world.until_copy("lost", "Ready CopyAvailable", |o| is(o, "Ready", "True", "CopyAvailable")).await;
        let copies = copies_of(&world, &copy.uid().expect("uid"));
        assert_eq!(copies.len(), 1, "no duplicate: {copies:#?}");
        assert_eq!(
            done.status.expect("status").copies[0].destination_backup_id.as_deref(),
            Some(copies[0].id.as_str())
        );
    })
    .await;
}

#[tokio::test]
async fn destination_retention_prunes_only_its_own_copies_and_keeps_min_available() {
    crate::support::with_namespace("fbc-retention", |client, namespace| async move {
        let world = World::new(client.clone(), namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Windows);
        let schedule = yearly_schedule(&world, "nightly", &fs).await;
        let uid = schedule.uid().expect("uid");
        for minutes_ago in [3u64, 2, 1] {
            world
                .emulator
                .seed_backup(
                    REGION,
                    BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                        .creation_time(SystemTime::now() - Duration::from_secs(minutes_ago * 60))
                        .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                        .tag("fsxbackup.io/owner-uid", uid.as_str()),
                )
                .expect("seed");
        }
        // In the destination: a person's backup and another object's copy, both old.
        let old = SystemTime::now() - Duration::from_hours(400 * 24);
        let foreign = world.emulator.seed_backup(DESTINATION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated).creation_time(old)).expect("seed");
        let others = world
            .emulator
            .seed_backup(
                DESTINATION,
                BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                    .creation_time(old)
                    .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                    .tag("fsxbackup.io/owner-uid", "another-copy-object"),
            )
            .expect("seed");
        let copy = world
            .create_copy(
                "dr",
                json!({"source": {"scheduleRef": {"name": "nightly"}}, "destinationRegion": DESTINATION, "retention": {"maxAge": "1h", "minAvailable": 2}}),
            )
            .await;
        world
            .until_copy("dr", "3 copies", |o| {
                // No copy exists in the destination at first: that is not an error.
                assert!(
                    condition(o, "Stalled").is_none_or(|(status, _)| status != "True"),
                    "{:?}",
                    o.status
                );
                available_copies(o) == 3
            })
            .await;
        assert_eq!(world.calls("DeleteBackup"), 0, "nothing expired yet");

        // Two hours later every copy is past maxAge, but minAvailable keeps two.
        world.clock.set_now(world.clock.now() + SignedDuration::from_hours(2));
        world
            .until_copy("dr", "oldest copy pruned", |o| {
                o.status.as_ref().is_some_and(|s| s.copies.iter().filter(|c| c.lifecycle == "DELETED").count() == 1)
            })
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let left = copies_of(&world, &copy.uid().expect("uid"));
        assert_eq!(left.len(), 2, "minAvailable 2 holds");
        assert_eq!(world.calls("DeleteBackup"), 1);
        let ids: Vec<String> = world.backups_in(DESTINATION).into_iter().map(|b| b.id).collect();
        assert!(ids.contains(&foreign) && ids.contains(&others), "foreign copies survive");
        // The pruned copy is not made again from its still-present source.
        assert_eq!(world.calls("CopyBackup"), 3);
        eventually("the prune reported", WAIT, || async {
            event_notes(&client, &namespace, "dr")
                .await
                .iter()
                .any(|(reason, note)| reason != "CopyStarted" && note.contains("deleted by retention"))
                .then_some(())
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn user_fixable_errors_stall_with_a_message_and_no_retry_storm() {
    crate::support::with_namespace("fbc-stall", |client, namespace| async move {
        let world = World::new(client, namespace).await;
        let bad_key = "arn:aws:kms:us-west-2:111111111111:key/00000000-0000-0000-0000-000000000bad";
        world.emulator.set_limits(Limits {
            bad_kms_keys: vec![bad_key.into()],
            regions_without_multi_az: vec!["ap-south-2".into()],
            ..Limits::default()
        });
        let plain_fs = world.file_system(FileSystemType::Windows);
        let plain = world.emulator.seed_backup(REGION, BackupSeed::of_file_system(&plain_fs, BackupType::UserInitiated)).expect("seed");
        let multi_az_fs = world
            .emulator
            .seed_file_system(REGION, FileSystemSeed::new(FileSystemType::Windows).deployment_type("MULTI_AZ_1"))
            .expect("seed");
        let multi_az = world.emulator.seed_backup(REGION, BackupSeed::of_file_system(&multi_az_fs, BackupType::UserInitiated)).expect("seed");
        let tiered_fs = world
            .emulator
            .seed_file_system(REGION, FileSystemSeed::new(FileSystemType::OpenZfs).storage_type(StorageType::IntelligentTiering))
            .expect("seed");
        let tiered = world.emulator.seed_backup(REGION, BackupSeed::of_file_system(&tiered_fs, BackupType::UserInitiated)).expect("seed");

        let cases = [
            ("bad-kms", json!({"source": {"backupId": plain, "region": REGION}, "destinationRegion": DESTINATION, "kmsKeyId": bad_key}), "InvalidKmsKey", "KMS"),
            ("multi-az", json!({"source": {"backupId": multi_az, "region": REGION}, "destinationRegion": "ap-south-2"}), "MultiAzCopyUnsupported", "Multi-AZ"),
            ("tiering", json!({"source": {"backupId": tiered, "region": REGION}, "destinationRegion": DESTINATION}), "UnsupportedOperation", "Intelligent-Tiering"),
            ("missing", json!({"source": {"backupId": "backup-0000000000000dead", "region": REGION}, "destinationRegion": DESTINATION}), "SourceNotFound", "not found"),
            ("partition", json!({"source": {"backupId": plain, "region": REGION}, "destinationRegion": "cn-north-1"}), "InvalidSpec", "partition"),
            ("same-region", json!({"source": {"backupId": plain, "region": REGION}, "destinationRegion": REGION}), "InvalidSpec", "spec.destinationRegion"),
        ];
        for (name, spec, _, _) in &cases {
            world.create_copy(name, spec.clone()).await;
        }
        for (name, _, reason, words) in &cases {
            let object = world.until_copy(name, &format!("Stalled {reason}"), |o| is(o, "Stalled", "True", reason)).await;
            let message = object.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Stalled")).map(|c| c.message.clone()).unwrap_or_default();
            assert!(message.contains(words), "{name}: {message}");
            assert!(is(&object, "Ready", "False", reason), "{name}");
        }
        let attempts = world.attempts("CopyBackup");
        assert_eq!(attempts, 3, "one CopyBackup for each case FSx refuses, none for the others");
        // Time passes, reconciles happen: no retry storm.
        world.clock.set_now(world.clock.now() + SignedDuration::from_mins(10));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(world.attempts("CopyBackup"), attempts);
        assert!(world.backups_in(DESTINATION).is_empty() && world.backups_in("ap-south-2").is_empty());

        // Fixing the spec (another key) lets the copy go through.
        let fix = json!({"spec": {"kmsKeyId": "arn:aws:kms:us-west-2:111111111111:key/11111111-1111-1111-1111-111111111111"}});
        world.copies().patch("bad-kms", &PatchParams::default(), &Patch::Merge(&fix)).await.expect("patch");
        world.until_copy("bad-kms", "copied after the fix", |o| is(o, "Ready", "True", "CopyAvailable")).await;
    })
    .await;
}

#[tokio::test]
async fn deleting_a_copy_object_deletes_or_retains_its_copies() {
    crate::support::with_namespace("fbc-delete", |client, namespace| async move {
        let world = World::new(client.clone(), namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Windows);
        let source = world.emulator.seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated)).expect("seed");
        let mut uids = BTreeMap::new();
        for (name, policy) in [("keep", "Retain"), ("drop", "Delete")] {
            let copy = world
                .create_copy(name, json!({"source": {"backupId": source, "region": REGION}, "destinationRegion": DESTINATION, "deletionPolicy": policy}))
                .await;
            uids.insert(name, copy.uid().expect("uid"));
            let copied = world.until_copy(name, "copied", |o| is(o, "Ready", "True", "CopyAvailable")).await;
            // Only the object whose deletion has work to do carries the finalizer.
            assert_eq!(copied.finalizers().iter().any(|f| f == FINALIZER), policy == "Delete", "{name}");
        }
        for name in ["keep", "drop"] {
            world.copies().delete(name, &DeleteParams::default()).await.expect("delete");
        }
        let copies = world.copies();
        eventually("both objects gone", WAIT, || {
            let copies = copies.clone();
            async move { copies.list(&ListParams::default()).await.ok()?.items.is_empty().then_some(()) }
        })
        .await;
        assert_eq!(copies_of(&world, &uids["keep"]).len(), 1, "Retain keeps the copy");
        assert_eq!(copies_of(&world, &uids["drop"]).len(), 0, "Delete removes the object's own copy");
        assert!(world.backups().iter().any(|b| b.id == source), "the source is never touched");
        events_with(&client, &namespace, "keep", &[("CopiesRetained", 1)]).await;
        events_with(&client, &namespace, "drop", &[("CopiesDeleted", 1)]).await;
    })
    .await;
}

#[tokio::test]
async fn fsx_copy_limit_puts_copies_back_in_the_queue() {
    crate::support::with_namespace("fbc-limit", |client, namespace| async move {
        // The operator believes in 10 slots; FSx allows 2 (say, copies started elsewhere).
        let world = World::with_args(client, namespace, &["--copy-slots-per-region", "10"]).await;
        world.emulator.set_limits(Limits { copies_in_progress_per_region: 2, ..Limits::default() });
        world.emulator.set_timing(Timing { create_duration: Duration::ZERO, copy_duration: Duration::from_secs(2) });
        let fs = world.file_system(FileSystemType::Windows);
        let schedule = yearly_schedule(&world, "nightly", &fs).await;
        seed_schedule_backups(&world, &fs, &schedule, 6);
        world
            .create_copy("dr", json!({"source": {"scheduleRef": {"name": "nightly"}}, "destinationRegion": DESTINATION, "retention": {"maxCount": 10}}))
            .await;
        let waiting = world
            .until_copy("dr", "Ready WaitingForCopySlot (routine in follow mode)", |o| is(o, "Ready", "True", "WaitingForCopySlot"))
            .await;
        assert!(waiting.status.as_ref().and_then(|s| s.queued).is_some_and(|q| q >= 1), "{:?}", waiting.status);
        world.until_copy("dr", "all 6 copied", |o| available_copies(o) == 6 && is(o, "Ready", "True", "UpToDate")).await;
        let refused = world.emulator.requests().iter().filter(|r| r.operation == "CopyBackup" && r.outcome == "ServiceLimitExceeded").count();
        assert!(refused >= 1, "FSx refused some copies");
        assert_eq!(world.calls("CopyBackup"), 6);
        assert!(world.emulator.max_copies_in_progress().get(DESTINATION).copied().unwrap_or(0) <= 2);
    })
    .await;
}

#[tokio::test]
async fn following_a_schedule_with_no_backups_yet_is_ready() {
    crate::support::with_namespace("fbc-empty", |client, namespace| async move {
        let world = World::new(client, namespace).await;
        let fs = world.file_system(FileSystemType::Windows);
        yearly_schedule(&world, "new", &fs).await;
        world
            .create_copy("dr", json!({"source": {"scheduleRef": {"name": "new"}}, "destinationRegion": DESTINATION, "retention": {"maxCount": 3}}))
            .await;
        // FSx knows no backup of `fs` in the destination yet: nothing to prune, not an error.
        let object = world.until_copy("dr", "Ready UpToDate", |o| is(o, "Ready", "True", "UpToDate")).await;
        assert!(is(&object, "Stalled", "False", "NotStalled"), "{:?}", object.status);
    })
    .await;
}

#[tokio::test]
async fn queued_copies_wait_while_their_schedule_cannot_be_used() {
    crate::support::with_namespace("fbc-broken", |client, namespace| async move {
        let world = World::with_args(client, namespace, &["--copy-slots-per-region", "1"]).await;
        world.emulator.set_timing(Timing { create_duration: Duration::ZERO, copy_duration: Duration::from_secs(3) });
        let fs = world.file_system(FileSystemType::Windows);
        let schedule = yearly_schedule(&world, "nightly", &fs).await;
        seed_schedule_backups(&world, &fs, &schedule, 4);
        world
            .create_copy("dr", json!({"source": {"scheduleRef": {"name": "nightly"}}, "destinationRegion": DESTINATION}))
            .await;
        world
            .until_copy("dr", "copies queued behind the one slot", |o| o.status.as_ref().and_then(|s| s.queued).is_some_and(|q| q >= 2))
            .await;
        // The schedule becomes unusable (a time zone that does not exist) while
        // copies wait: the slot frees, and no copy may be asked for meanwhile,
        // least of all from the wrong Region.
        let broken = json!({"spec": {"timeZone": "Mars/Olympus_Mons"}});
        world.api().patch("nightly", &PatchParams::default(), &Patch::Merge(&broken)).await.expect("break");
        tokio::time::sleep(Duration::from_secs(8)).await;
        let wrong: Vec<_> = world
            .emulator
            .requests()
            .into_iter()
            .filter(|r| r.operation == "CopyBackup" && r.outcome != "ok")
            .collect();
        assert!(wrong.is_empty(), "no copy asked for while the schedule was unusable: {wrong:?}");
        let gone: Vec<_> = world
            .copies()
            .get("dr")
            .await
            .expect("get")
            .status
            .map(|s| s.copies.into_iter().filter(|c| c.lifecycle == "SourceGone").collect())
            .unwrap_or_default();
        assert!(gone.is_empty(), "no source given up: {gone:?}");
        // Fixed: every source is copied after all.
        let fixed = json!({"spec": {"timeZone": null}});
        world.api().patch("nightly", &PatchParams::default(), &Patch::Merge(&fixed)).await.expect("fix");
        world.until_copy("dr", "all 4 copied", |o| available_copies(o) == 4).await;
    })
    .await;
}
