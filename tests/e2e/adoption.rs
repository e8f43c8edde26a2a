//! A cluster rebuild end to end: an object deleted with `Retain` leaves its
//! backups as strays (counted per namespace, listed by `kubectl fsxbackup
//! orphans`); the object re-created with a new UID adopts exactly this
//! cluster identity's orphans, while another cluster identity's backups with
//! the very same names, and untagged legacy ones, stay untouched.

use std::time::{Duration, SystemTime};

use crate::support::operator::eventually;
use crate::support::world::{REGION, WAIT, World, condition_of, events_with, metrics_text, tag};
use fsx_backup_operator::crd::{FsxBackupAccount, FsxBackupCopy};
use fsx_emulator::{BackupLifecycle, BackupSeed, BackupType, FileSystemType, Timing};
use kube::Api;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const CLUSTER: &str = "cluster-a";
const DESTINATION: &str = "us-west-2";

/// The stray gauge of `namespace` as the operator exports it, once it reads `value`.
async fn strays_reach(world: &World, namespace: &str, value: u32) {
    let port = world.operator.metrics_port().expect("metrics port");
    let series = format!("fsxbackup_stray_backups{{namespace=\"{namespace}\"}} {value}");
    eventually(&format!("{series} exported"), WAIT, || {
        let series = series.clone();
        async move { metrics_text(port).await.filter(|m| m.contains(&series)) }
    })
    .await;
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one scenario, told in order
async fn a_rebuilt_object_adopts_this_clusters_orphans_and_nothing_else() {
    crate::support::with_namespace("adopt", |client, namespace| async move {
        let world = World::with_args(client, namespace.clone(), &["--cluster-id", CLUSTER, "--stray-scan-interval", "1s"]).await;
        let fs = world.file_system(FileSystemType::Windows);
        let spec = json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *", "retention": {"maxCount": 2}});
        let first = world.create("nightly", spec.clone()).await;
        let first_uid = first.uid().expect("uid");
        let owner = format!("{namespace}/FsxBackupSchedule/nightly");
        let seed = |days: u64, uid: &str, cluster: Option<&str>| {
            let mut seed = BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                .tag("fsxbackup.io/owner", &owner)
                .tag("fsxbackup.io/owner-uid", uid);
            if let Some(cluster) = cluster {
                seed = seed.tag("fsxbackup.io/cluster", cluster);
            }
            world
                .emulator
                .seed_backup(REGION, BackupSeed {
                    creation_time: Some(SystemTime::now() - Duration::from_secs(days * 86_400)),
                    ..seed
                })
                .expect("seed")
        };
        // The first object's backups, made before cluster tags existed.
        let ours: Vec<String> = (1..=3).map(|days| seed(days, &first_uid, None)).collect();
        // Another cluster sharing the account, with the very same names.
        let theirs: Vec<String> = (1..=2).map(|days| seed(days, "uid-in-cluster-b", Some("cluster-b"))).collect();
        // An earlier object of this name from before cluster tags: whose, nobody knows.
        let legacy = seed(5, "uid-before-tags", None);

        // Any spec change lists the target again: the first object's backups get
        // this cluster's tag (their UID makes them its own). maxCount 2 prunes one.
        let api = world.api();
        let touch = json!({"spec": {"tags": {"team": "storage"}}});
        api.patch("nightly", &PatchParams::default(), &Patch::Merge(&touch)).await.expect("touch");
        world
            .until("nightly", "two backups kept", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.managed_backup_count) == Some(2)
            })
            .await;
        let live = |id: &str| world.backups().into_iter().find(|b| b.id == id && b.lifecycle != BackupLifecycle::Deleted);
        assert!(live(&ours[2]).is_none(), "maxCount 2 pruned the oldest");
        for id in &ours[..2] {
            let backup = live(id).expect("kept");
            assert_eq!(tag(&backup, "fsxbackup.io/cluster"), Some(CLUSTER), "{id} got the cluster tag");
        }
        assert_eq!(world.calls("DeleteBackup"), 1);

        // Deleted with Retain: its two backups are this cluster's strays. The other
        // cluster's are not counted here, nor is the untagged legacy one.
        api.delete("nightly", &DeleteParams::default()).await.expect("delete");
        eventually("nightly gone", WAIT, || {
            let api = api.clone();
            async move { api.get_opt("nightly").await.ok().flatten().is_none().then_some(()) }
        })
        .await;
        // An account whose role cannot be assumed (unknown to STS) is set aside by
        // the scan, in the operator and in the plugin; it hides no other strays.
        let accounts: Api<FsxBackupAccount> = Api::all(world.client.clone());
        let unusable = format!("unusable-{namespace}");
        let account: FsxBackupAccount = serde_json::from_value(json!({
            "apiVersion": "fsxbackup.io/v1alpha1", "kind": "FsxBackupAccount",
            "metadata": {"name": unusable},
            "spec": {"roleArn": "arn:aws:iam::444444444444:role/fsx-backup-account", "allowedNamespaces": {"names": [namespace]}},
        }))
        .expect("account");
        accounts.create(&PostParams::default(), &account).await.expect("create account");
        world
            .create("elsewhere", json!({"account": unusable, "region": DESTINATION, "target": {"fileSystemIds": ["fs-0444444444444444a"]}, "schedule": "0 3 * * *", "retention": {"maxCount": 2}}))
            .await;
        strays_reach(&world, &namespace, 2).await;

        // The plugin lists them, and the legacy one as untagged; never cluster-b's.
        let out = world.plugin(&["orphans", "--cluster-id", CLUSTER]).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        // (Other tests' accounts may be in the cluster too, and listed the same way.)
        let unscanned = text
            .lines()
            .find(|l| l.starts_with("NOT SCANNED") && l.contains("444444444444"))
            .unwrap_or_else(|| panic!("the unusable account reported:\n{text}"));
        assert!(unscanned.contains(DESTINATION), "{unscanned}");
        world.api().delete("elsewhere", &DeleteParams::default()).await.expect("delete elsewhere");
        accounts.delete(&unusable, &DeleteParams::default()).await.expect("delete account");
        for id in &ours[..2] {
            let row = text.lines().find(|l| l.contains(id.as_str())).unwrap_or_else(|| panic!("{id} listed:\n{text}"));
            assert!(row.contains("Stray") && row.contains(&first_uid), "{row}");
        }
        let row = text.lines().find(|l| l.contains(legacy.as_str())).unwrap_or_else(|| panic!("legacy listed:\n{text}"));
        assert!(row.contains("Untagged"), "{row}");
        for id in &theirs {
            assert!(!text.contains(id.as_str()), "another cluster's {id} listed:\n{text}");
        }
        assert!(text.contains(&format!("2 orphaned backup(s) of cluster {CLUSTER}, 1 without a cluster tag")), "{text}");

        // Re-created from Git: a new UID. It adopts this cluster's two orphans.
        let second = world.create("nightly", spec.clone()).await;
        let second_uid = second.uid().expect("uid");
        assert_ne!(second_uid, first_uid);
        world
            .until("nightly", "the orphans adopted", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.managed_backup_count) == Some(2)
            })
            .await;
        for id in &ours[..2] {
            let backup = live(id).expect("still there");
            assert_eq!(tag(&backup, "fsxbackup.io/owner-uid"), Some(second_uid.as_str()), "{id}");
            assert_eq!(tag(&backup, "fsxbackup.io/adopted-from-uid"), Some(first_uid.as_str()), "{id}");
        }
        events_with(&world.client, &namespace, "nightly", &[("BackupsAdopted", 1)]).await;
        strays_reach(&world, &namespace, 0).await;

        // Everything else is exactly as it was, and nothing more was deleted.
        for id in theirs.iter().chain([&legacy]) {
            let backup = live(id).unwrap_or_else(|| panic!("{id} survives"));
            assert_ne!(tag(&backup, "fsxbackup.io/owner-uid"), Some(second_uid.as_str()), "{id}");
            assert_eq!(tag(&backup, "fsxbackup.io/adopted-from-uid"), None, "{id}");
        }
        assert_eq!(tag(&live(&theirs[0]).expect("theirs"), "fsxbackup.io/cluster"), Some("cluster-b"));
        assert_eq!(tag(&live(&legacy).expect("legacy"), "fsxbackup.io/cluster"), None);
        assert_eq!(world.calls("DeleteBackup"), 1);
    })
    .await;
}

#[tokio::test]
async fn adoption_never_leaves_orphans_as_strays() {
    crate::support::with_namespace("adopt-never", |client, namespace| async move {
        let world = World::with_args(client, namespace.clone(), &["--cluster-id", CLUSTER, "--stray-scan-interval", "1s"]).await;
        let fs = world.file_system(FileSystemType::Lustre);
        let owner = format!("{namespace}/FsxBackupSchedule/nightly");
        let orphan = world
            .emulator
            .seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                .tag("fsxbackup.io/owner", &owner)
                .tag("fsxbackup.io/owner-uid", "uid-of-a-deleted-object")
                .tag("fsxbackup.io/cluster", CLUSTER))
            .expect("seed");
        let object = world
            .create("nightly", json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *", "adoption": "Never", "retention": {"maxCount": 1}}))
            .await;
        world
            .until("nightly", "retention listed", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.managed_backup_count) == Some(0)
            })
            .await;
        strays_reach(&world, &namespace, 1).await;
        let backup = world.backups().into_iter().find(|b| b.id == orphan).expect("orphan");
        assert_eq!(tag(&backup, "fsxbackup.io/owner-uid"), Some("uid-of-a-deleted-object"));
        assert_ne!(object.uid().as_deref(), Some("uid-of-a-deleted-object"));
        assert_eq!(world.calls("TagResource"), 0);
    })
    .await;
}

#[tokio::test]
async fn a_recreated_copy_adopts_its_copies_and_copies_nothing_twice() {
    crate::support::with_namespace("adopt-copy", |client, namespace| async move {
        let world = World::with_args(client, namespace.clone(), &["--cluster-id", CLUSTER]).await;
        world.emulator.set_timing(Timing { create_duration: Duration::from_millis(300), copy_duration: Duration::from_secs(1) });
        let fs = world.file_system(FileSystemType::Windows);
        let schedule = world.create("sa", json!({"target": {"fileSystemIds": [fs]}, "schedule": "@yearly"})).await;
        let schedule_uid = schedule.uid().expect("uid");
        for hours in 1..=3u64 {
            world
                .emulator
                .seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                    .creation_time(SystemTime::now() - Duration::from_secs(hours * 3600))
                    .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                    .tag("fsxbackup.io/owner-uid", &schedule_uid))
                .expect("seed");
        }
        let spec = json!({"source": {"scheduleRef": {"name": "sa"}}, "destinationRegion": DESTINATION, "retention": {"maxCount": 5}});
        let available = |o: &FsxBackupCopy| o.status.as_ref().map_or(0, |s| s.copies.iter().filter(|c| c.lifecycle == "AVAILABLE").count());
        let first = world.create_copy("dr", spec.clone()).await;
        let first_uid = first.uid().expect("uid");
        world.until_copy("dr", "three copies", |o| available(o) == 3).await;
        assert_eq!(world.calls("CopyBackup"), 3);

        let copies = world.copies();
        copies.delete("dr", &DeleteParams::default()).await.expect("delete");
        eventually("dr gone", WAIT, || {
            let copies = copies.clone();
            async move { copies.get_opt("dr").await.ok().flatten().is_none().then_some(()) }
        })
        .await;

        let second = world.create_copy("dr", spec).await;
        let second_uid = second.uid().expect("uid");
        let found = world.until_copy("dr", "the three copies found", |o| available(o) == 3).await;
        assert!(
            found.status.iter().flat_map(|s| &s.copies).all(|c| c.message.as_deref().is_some_and(|m| m.starts_with("found in the destination"))),
            "{:?}",
            found.status
        );
        assert_eq!(world.calls("CopyBackup"), 3, "nothing copied twice");
        let in_destination: Vec<_> = world.backups_in(DESTINATION).into_iter().filter(|b| b.lifecycle != BackupLifecycle::Deleted).collect();
        assert_eq!(in_destination.len(), 3);
        for copy in &in_destination {
            assert_eq!(tag(copy, "fsxbackup.io/owner-uid"), Some(second_uid.as_str()), "{}", copy.id);
            assert_eq!(tag(copy, "fsxbackup.io/adopted-from-uid"), Some(first_uid.as_str()), "{}", copy.id);
            assert_eq!(tag(copy, "fsxbackup.io/cluster"), Some(CLUSTER), "{}", copy.id);
        }
        events_with(&world.client, &namespace, "dr", &[("BackupsAdopted", 1)]).await;
    })
    .await;
}

#[tokio::test]
async fn adopted_backups_are_pruned_only_through_the_deletion_brake() {
    crate::support::with_namespace("adopt-brake", |client, namespace| async move {
        let world = World::with_args(client, namespace.clone(), &["--cluster-id", CLUSTER]).await;
        world.emulator.set_timing(Timing { create_duration: Duration::from_millis(300), copy_duration: Duration::from_secs(1) });
        let fs = world.file_system(FileSystemType::Windows);
        world
            .create("nightly", json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *", "retention": {"maxCount": 1}}))
            .await;
        // The policy is applied (nothing to prune) before any orphan shows up.
        let applied = world.until("nightly", "retention applied", |o| o.status.as_ref().is_some_and(|s| s.retention_generation == Some(1))).await;
        assert_eq!(applied.metadata.generation, Some(1));
        // Orphans of this name appear later (e.g. tagged with this cluster by hand).
        let owner = format!("{namespace}/FsxBackupSchedule/nightly");
        for days in 1..=3u64 {
            world
                .emulator
                .seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                    .creation_time(SystemTime::now() - Duration::from_secs(days * 86_400))
                    .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                    .tag("fsxbackup.io/owner", &owner)
                    .tag("fsxbackup.io/owner-uid", "uid-of-an-earlier-object")
                    .tag("fsxbackup.io/cluster", CLUSTER))
                .expect("seed");
        }
        // A run lists the target again: 3 adopted + 1 new, maxCount 1 would delete 3 of 4.
        let api = world.api();
        let run_now = json!({"metadata": {"annotations": {"fsxbackup.io/run-now": "adopt-1"}}});
        api.patch("nightly", &PatchParams::default(), &Patch::Merge(&run_now)).await.expect("run-now");
        let held = world
            .until("nightly", "Stalled DeletionHeld", |o| {
                o.status.as_ref().and_then(|s| condition_of(&s.conditions, "Stalled")) == Some(("True".into(), "DeletionHeld".into()))
            })
            .await;
        assert_eq!(held.status.as_ref().and_then(|s| s.retention_generation), None);
        // Still held later (other reconciles do not release it), nothing deleted.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(world.calls("DeleteBackup"), 0);
        let still = world.get("nightly").await;
        assert_eq!(still.status.as_ref().and_then(|s| condition_of(&s.conditions, "Stalled")), Some(("True".into(), "DeletionHeld".into())));

        let approve = json!({"metadata": {"annotations": {"fsxbackup.io/approve-deletions": "1"}}});
        api.patch("nightly", &PatchParams::default(), &Patch::Merge(&approve)).await.expect("approve");
        world
            .until("nightly", "pruned to one", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.managed_backup_count) == Some(1)
            })
            .await;
        assert_eq!(world.calls("DeleteBackup"), 3);
    })
    .await;
}
