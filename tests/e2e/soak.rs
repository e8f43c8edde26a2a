//! Crash-loop soak: the operator binary killed (`SIGKILL`) over and over — at random
//! moments and right after it asked FSx to create, delete or copy — while FSx
//! throttles and loses answers. Afterwards: no run backed up twice, no copy
//! made twice, nothing deleted that the object does not own, `minAvailable`
//! held throughout, each run-now made once, and every due run ended as exactly
//! one backup or one counted miss.
//!
//! 100 kills by default (CI); `FSXBO_SOAK_KILLS=1000` for a longer run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::support::operator::eventually;
use crate::support::world::{REGION, World, tag};
use fsx_emulator::{
    BackupLifecycle, BackupSeed, BackupSnapshot, BackupType, Faults, FileSystemType, Timing,
};
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const DESTINATION: &str = "us-west-2";
const MIN_AVAILABLE: usize = 2;

/// Where a kill lands in one iteration.
#[derive(Clone, Copy, Debug)]
enum KillPoint {
    /// After a delay drawn from the iteration number.
    Random(Duration),
    /// Right after FSx received this operation (or at the deadline).
    After(&'static str),
}

fn kill_point(i: usize) -> KillPoint {
    match i % 4 {
        0 => KillPoint::Random(Duration::from_millis((i as u64 * 7_919) % 1_500)),
        1 => KillPoint::After("CreateBackup"),
        2 => KillPoint::After("DeleteBackup"),
        _ => KillPoint::After("CopyBackup"),
    }
}

/// Every backup ever seen, by id (retention deletes them later).
fn remember(world: &World, seen: &mut BTreeMap<String, BackupSnapshot>) {
    for region in [REGION, DESTINATION] {
        for backup in world.backups_in(region) {
            seen.entry(backup.id.clone()).or_insert(backup);
        }
    }
}

#[tokio::test]
async fn a_crash_loop_with_faults_loses_nothing_and_doubles_nothing() {
    crate::support::with_namespace("soak", |client, namespace| async move {
        let kills: usize = std::env::var("FSXBO_SOAK_KILLS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let mut world = World::new(client.clone(), namespace.clone()).await;
        world.emulator.set_timing(Timing { create_duration: Duration::ZERO, copy_duration: Duration::ZERO });
        let fs = world.file_system(FileSystemType::Windows);
        let foreign = world.emulator.seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated)).expect("seed");
        let lookalike = world
            .emulator
            .seed_backup(
                REGION,
                BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                    .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                    .tag("fsxbackup.io/owner-uid", "someone-else"),
            )
            .expect("seed");
        let schedule = world
            .create(
                "hourly",
                json!({
                    "target": {"fileSystemIds": [fs]},
                    "schedule": "0 * * * *",
                    "retention": {"maxCount": 3, "minAvailable": MIN_AVAILABLE},
                }),
            )
            .await;
        let uid = schedule.uid().expect("uid");
        world
            .create_copy("dr", json!({"source": {"scheduleRef": {"name": "hourly"}}, "destinationRegion": DESTINATION, "retention": {"maxCount": 2}}))
            .await;
        world.until("hourly", "scheduled", |o| o.status.as_ref().is_some_and(|s| s.next_schedule_time.is_some())).await;
        world.emulator.set_faults(Faults {
            throttle_rate: 0.05,
            drop_response_after_write_rate: 0.15,
            only_operations: Some(vec!["CreateBackup".into(), "DeleteBackup".into(), "CopyBackup".into()]),
            ..Faults::default()
        });

        // The first run due is the one the object was scheduled for when created.
        let first = world.get("hourly").await.status.and_then(|s| s.next_schedule_time).expect("scheduled").0;
        let mut seen = BTreeMap::new();
        let mut nonces = Vec::new();
        let mut lowest_available = usize::MAX;
        let started = Instant::now();
        for i in 0..kills {
            let slot = first + SignedDuration::from_hours(i64::try_from(i).expect("small"));
            world.clock.set_now(slot + SignedDuration::from_secs(30));
            if i % 10 == 5 {
                let nonce = format!("soak-{i}");
                let patch = json!({"metadata": {"annotations": {"fsxbackup.io/run-now": nonce}}});
                world.api().patch("hourly", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
                nonces.push(nonce);
            }
            match kill_point(i) {
                KillPoint::Random(delay) => tokio::time::sleep(delay).await,
                KillPoint::After(operation) => {
                    let before = world.attempts(operation);
                    let deadline = Instant::now() + Duration::from_secs(3);
                    while world.attempts(operation) == before && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            world.restart_operator();
            remember(&world, &mut seen);
            let owned_available = world.owned_backups(&uid).iter().filter(|b| b.lifecycle == BackupLifecycle::Available).count();
            let made = seen.values().filter(|b| tag(b, "fsxbackup.io/owner-uid") == Some(uid.as_str())).count();
            if made >= MIN_AVAILABLE {
                lowest_available = lowest_available.min(owned_available);
            }
        }
        println!("soak: {kills} kills in {:?}", started.elapsed());

        // Calm: no faults, one last run taken normally, everything settled.
        world.emulator.set_faults(Faults::default());
        world.restart_operator();
        let last = first + SignedDuration::from_hours(i64::try_from(kills).expect("small"));
        world.clock.set_now(last + SignedDuration::from_secs(30));
        // Taken, and AVAILABLE in FSx (the status's last backup may be a
        // run-now served in the same reconcile, after it).
        world
            .until("hourly", "the last run taken", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.last_scheduled_time.as_ref()).is_some_and(|t| t.0 == last)
            })
            .await;
        eventually("the last run's backup AVAILABLE in FSx", Duration::from_mins(1), || async {
            world
                .owned_backups(&uid)
                .iter()
                .any(|b| {
                    b.lifecycle == BackupLifecycle::Available
                        && tag(b, "fsxbackup.io/scheduled-time").and_then(|t| t.parse::<Timestamp>().ok()) == Some(last)
                })
                .then_some(())
        })
        .await;
        let handled = nonces.last().cloned();
        world
            .until("hourly", "every run-now handled", |o| o.status.as_ref().and_then(|s| s.last_run_now.clone()) == handled)
            .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        remember(&world, &mut seen);

        // No run backed up twice; every run-now once.
        let mine: Vec<&BackupSnapshot> = seen
            .values()
            .filter(|b| b.source_backup_id.is_none() && tag(b, "fsxbackup.io/owner-uid") == Some(uid.as_str()))
            .collect();
        let mut scheduled: BTreeMap<Timestamp, Vec<&str>> = BTreeMap::new();
        let mut run_now = 0;
        for backup in &mine {
            let value = tag(backup, "fsxbackup.io/scheduled-time").expect("tagged");
            match value.parse::<Timestamp>() {
                Ok(at) => scheduled.entry(at).or_default().push(&backup.id),
                Err(_) => run_now += 1,
            }
        }
        let doubled: Vec<_> = scheduled.iter().filter(|(_, ids)| ids.len() > 1).collect();
        assert!(doubled.is_empty(), "runs backed up twice: {doubled:?}");
        assert_eq!(run_now, nonces.len(), "one backup per run-now nonce");

        // No copy made twice.
        let mut copies: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for copy in seen.values().filter(|b| b.source_backup_id.is_some()) {
            copies.entry(copy.source_backup_id.as_deref().expect("source")).or_default().insert(&copy.id);
        }
        assert!(copies.values().all(|ids| ids.len() == 1), "copied twice: {copies:?}");
        assert!(!copies.is_empty(), "copies were made");

        // Nothing deleted that the object does not own; the floor held.
        let now_present: BTreeSet<String> = world.backups_in(REGION).into_iter().map(|b| b.id).collect();
        assert!(now_present.contains(&foreign) && now_present.contains(&lookalike), "a backup not owned was deleted");
        assert!(lowest_available >= MIN_AVAILABLE, "minAvailable broken: {lowest_available} AVAILABLE");

        // Exact accounting: every due run is one backup or one counted miss.
        let object = world.get("hourly").await;
        let status = object.status.expect("status");
        let due = kills + 1;
        let made = scheduled.keys().filter(|at| **at >= first && **at <= last).count();
        let missed = usize::try_from(status.missed_runs.unwrap_or(0)).expect("small");
        println!("soak: {due} runs due, {made} backed up, {missed} counted missed, {run_now} run-now, {} copies", copies.len());
        if made + missed != due {
            let out = crate::support::operator::kubectl(&["get", "events", "-n", &namespace, "-o", "json"]);
            let events: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            for e in events["items"].as_array().into_iter().flatten() {
                if e["reason"] == "MissedSchedule" {
                    println!("MISSED {} {}", e["message"], e["note"]);
                }
            }
            let not_made: Vec<String> = (0..=kills)
                .map(|i| first + SignedDuration::from_hours(i64::try_from(i).expect("small")))
                .filter(|slot| !scheduled.contains_key(slot))
                .map(|slot| slot.to_string())
                .collect();
            println!("NOT MADE {not_made:?}");
        }
        assert_eq!(made + missed, due, "due = backups + missed");
        assert!(world.operator.exited().is_none(), "{}", world.operator.logs());
    })
    .await;
}
