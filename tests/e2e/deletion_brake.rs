//! The deletion brake end to end: a policy edit that would delete most of a
//! target's backups at once deletes nothing and says how to confirm; a stale
//! approval (an older generation) does nothing; approving the current
//! generation lets retention run.

use std::time::{Duration, SystemTime};

use crate::support::world::{REGION, World, condition_of};
use fsx_backup_operator::crd::FsxBackupSchedule;
use fsx_emulator::{BackupSeed, BackupType, FileSystemType};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

fn stalled_reason(object: &FsxBackupSchedule) -> Option<(String, String)> {
    condition_of(&object.status.as_ref()?.conditions, "Stalled")
}

#[tokio::test]
async fn a_mass_deletion_waits_for_the_approval_of_its_generation() {
    crate::support::with_namespace("brake", |client, namespace| async move {
        let world = World::new(client, namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Windows);
        let object = world
            .create("nightly", json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *", "retention": {"maxCount": 10}}))
            .await;
        let uid = object.uid().expect("uid");
        for days in 1..=6u64 {
            let created = SystemTime::now() - Duration::from_secs(days * 86_400);
            world
                .emulator
                .seed_backup(REGION, BackupSeed {
                    creation_time: Some(created),
                    ..BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                        .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                        .tag("fsxbackup.io/owner-uid", &uid)
                })
                .expect("seed");
        }
        // Any spec change applies the policy to every target again: the six are listed.
        let api = world.api();
        let touch = json!({"spec": {"tags": {"team": "storage"}}});
        api.patch("nightly", &PatchParams::default(), &Patch::Merge(&touch)).await.expect("touch");
        world
            .until("nightly", "six backups listed", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.managed_backup_count) == Some(6)
            })
            .await;

        // The edit: keep one. Held, with the command to run.
        let patch = json!({"spec": {"retention": {"maxCount": 1}}});
        let edited = api.patch("nightly", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("edit");
        let generation = edited.metadata.generation.expect("generation");
        let held = world
            .until("nightly", "Stalled DeletionHeld", |o| stalled_reason(o) == Some(("True".into(), "DeletionHeld".into())))
            .await;
        let message = held.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Stalled")).map(|c| c.message.clone()).unwrap_or_default();
        assert!(message.contains("delete 5 of the 6"), "{message}");
        assert!(message.contains(&format!("fsxbackup.io/approve-deletions={generation}")), "{message}");
        assert_eq!(world.calls("DeleteBackup"), 0);

        // A stale approval (the previous generation) does nothing.
        let approve = |generation: i64| {
            let api = api.clone();
            async move {
                let patch = json!({"metadata": {"annotations": {"fsxbackup.io/approve-deletions": generation.to_string()}}});
                api.patch("nightly", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("approve");
            }
        };
        approve(generation - 1).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(world.calls("DeleteBackup"), 0, "a stale approval released nothing");
        assert_eq!(stalled_reason(&world.get("nightly").await), Some(("True".into(), "DeletionHeld".into())));

        // The current generation approved: retention runs and the object is healthy again.
        approve(generation).await;
        world
            .until("nightly", "pruned to one", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.managed_backup_count) == Some(1)
                    && stalled_reason(o).is_some_and(|(status, _)| status == "False")
            })
            .await;
        assert_eq!(world.calls("DeleteBackup"), 5);
        let status = world.get("nightly").await.status.expect("status");
        assert_eq!(status.retention_generation, Some(generation));
    })
    .await;
}
