//! The health contract (README), row by row, as the tools people use read it:
//! each object is driven into a state against the real apiserver and the
//! emulator, then judged by the upstream kstatus library (what Flux uses) and
//! by the chart's Argo CD health script in gopher-lua (the Lua runtime Argo CD
//! embeds), both through `health-peer`, and by `kubectl wait`.

use std::time::{Duration, SystemTime};

use crate::support::operator::{eventually, kubectl};
use crate::support::world::{REGION, WAIT, World, condition_of, events_with, metrics_text};
use fsx_backup_operator::crd::{FsxBackupCopy, FsxBackupSchedule};
use fsx_emulator::{BackupLifecycle, BackupSeed, BackupType, FileSystemType, Timing};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde_json::json;

const ARGO_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/fsx-backup-operator/files/argocd-health.lua"
);

/// `(kstatus status, Argo CD status)` of `object` as the API returned it.
async fn verdicts<K: Serialize>(object: &K) -> (String, String) {
    let json = serde_json::to_string(object).expect("json");
    tokio::task::spawn_blocking(move || {
        let judge = |args: &[&str]| {
            use std::io::Write as _;
            let mut child =
                std::process::Command::new(crate::support::tools_bin().join("health-peer"))
                    .args(args)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("health-peer");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(json.as_bytes())
                .expect("write");
            let out = child.wait_with_output().expect("health-peer");
            assert!(
                out.status.success(),
                "health-peer {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .split('\t')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        (judge(&["kstatus"]), judge(&["argocd", ARGO_SCRIPT]))
    })
    .await
    .expect("join")
}

/// `kubectl wait --for=condition=Ready` on `resource`, `true` when it returned in time.
async fn kubectl_wait_ready(resource: &str, namespace: &str, timeout: &str) -> bool {
    let (resource, namespace, timeout) = (
        resource.to_owned(),
        namespace.to_owned(),
        format!("--timeout={timeout}"),
    );
    tokio::task::spawn_blocking(move || {
        kubectl(&[
            "wait",
            &resource,
            "-n",
            &namespace,
            "--for=condition=Ready",
            &timeout,
        ])
        .status
        .success()
    })
    .await
    .expect("join")
}

fn triple(conditions: &[Condition]) -> [(String, String); 3] {
    ["Ready", "Reconciling", "Stalled"].map(|t| condition_of(conditions, t).unwrap_or_default())
}

fn schedule_is(o: &FsxBackupSchedule, type_: &str, reason: &str) -> bool {
    o.status
        .as_ref()
        .and_then(|s| condition_of(&s.conditions, type_))
        == Some(("True".into(), reason.into()))
}

fn copy_is(o: &FsxBackupCopy, type_: &str, reason: &str) -> bool {
    o.status
        .as_ref()
        .and_then(|s| condition_of(&s.conditions, type_))
        == Some(("True".into(), reason.into()))
}

async fn run_now(world: &World, name: &str, nonce: &str) {
    let patch = json!({"metadata": {"annotations": {"fsxbackup.io/run-now": nonce}}});
    world
        .api()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("run-now");
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one table, row by row
async fn schedules_follow_the_health_contract() {
    crate::support::with_namespace("health-fbs", |client, namespace| async move {
        let world = World::new(client, namespace.clone()).await;
        world.emulator.set_timing(Timing { create_duration: Duration::from_millis(300), copy_duration: Duration::from_secs(1) });
        let yearly = |fs: &str| json!({"target": {"fileSystemIds": [fs]}, "schedule": "@yearly"});

        // Row 1: accepted, nothing due: Ready, Current, Healthy; kubectl wait returns.
        let fs = world.file_system(FileSystemType::Windows);
        world.create("idle", yearly(&fs)).await;
        let idle = world.until("idle", "Ready", |o| schedule_is(o, "Ready", "Scheduled")).await;
        assert_eq!(verdicts(&idle).await, ("Current".into(), "Healthy".into()));
        assert!(kubectl_wait_ready("fsxbackupschedule/idle", &namespace, "10s").await);
        let status = idle.status.expect("status");
        assert!(status.rpo.is_some() && status.recovery_points.len() == 1, "{status:?}");

        // Row 2: the last run failed, the RPO (default: years) is met: Ready, and it says so.
        let flaky_fs = world.file_system(FileSystemType::Windows);
        world.emulator.fail_next_backup(REGION, &flaky_fs);
        world.create("flaky", yearly(&flaky_fs)).await;
        run_now(&world, "flaky", "fail-1").await;
        let flaky = world
            .until("flaky", "failed run, Ready", |o| {
                schedule_is(o, "Ready", "BackupFailed") && o.status.as_ref().and_then(|s| s.last_run_result.as_deref()) == Some("Failed")
            })
            .await;
        assert_eq!(verdicts(&flaky).await, ("Current".into(), "Healthy".into()));
        assert!(kubectl_wait_ready("fsxbackupschedule/flaky", &namespace, "10s").await);

        // Row 5: the RPO breached by a target that never had a backup: Stalled,
        // Failed, Degraded, an event and the breach gauge; kubectl wait times out.
        let stale_fs = world.file_system(FileSystemType::Lustre);
        world.create("stale", json!({"target": {"fileSystemIds": [stale_fs]}, "schedule": "@yearly", "rpo": "1m"})).await;
        world.until("stale", "Ready before the RPO", |o| schedule_is(o, "Ready", "Scheduled")).await;
        world.clock.set_offset(150.0);
        let stale = world.until("stale", "Stalled RPOBreached", |o| schedule_is(o, "Stalled", "RPOBreached")).await;
        assert_eq!(verdicts(&stale).await, ("Failed".into(), "Degraded".into()));
        assert!(!kubectl_wait_ready("fsxbackupschedule/stale", &namespace, "3s").await);
        let point = &stale.status.as_ref().expect("status").recovery_points[0];
        assert_eq!((point.breached, point.time.is_none()), (Some(true), true), "{point:?}");
        events_with(&world.client, &namespace, "stale", &[("RPOBreached", 1)]).await;
        let port = world.operator.metrics_port().expect("metrics port");
        let series = format!(r#"fsxbackup_rpo_breach_timestamp_seconds{{kind="FsxBackupSchedule",namespace="{namespace}",name="stale",target="{stale_fs}"}}"#);
        eventually("breach gauge", WAIT, || {
            let series = series.clone();
            async move { metrics_text(port).await.filter(|m| m.contains(&series)) }
        })
        .await;
        // Others are unaffected by the clock: their RPO is years.
        assert_eq!(triple(&world.get("idle").await.status.expect("status").conditions)[0].0, "True");

        // A recent backup is found (a listing after a spec change): the RPO is met again.
        let uid = stale.uid().expect("uid");
        world
            .emulator
            .seed_backup(REGION, BackupSeed::of_file_system(&stale_fs, BackupType::UserInitiated)
                .creation_time(SystemTime::now() + Duration::from_secs(150))
                .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                .tag("fsxbackup.io/owner-uid", &uid))
            .expect("seed");
        let touch = json!({"spec": {"tags": {"team": "storage"}}});
        world.api().patch("stale", &PatchParams::default(), &Patch::Merge(&touch)).await.expect("touch");
        let recovered = world.until("stale", "Ready again", |o| o.status.as_ref().is_some_and(|s| triple(&s.conditions)[0].0 == "True")).await;
        assert_eq!(verdicts(&recovered).await, ("Current".into(), "Healthy".into()));
        events_with(&world.client, &namespace, "stale", &[("RPORecovered", 1)]).await;
        let recovery = format!(r#"fsxbackup_recovery_point_timestamp_seconds{{kind="FsxBackupSchedule",namespace="{namespace}",name="stale",target="{stale_fs}"}}"#);
        eventually("recovery point gauge", WAIT, || {
            let recovery = recovery.clone();
            async move { metrics_text(port).await.filter(|m| m.contains(&recovery)) }
        })
        .await;

        // Row 3: a transient FSx error being retried: Reconciling, InProgress, Progressing.
        world.emulator.set_faults(fsx_emulator::Faults {
            server_error_rate: 1.0,
            only_operations: Some(vec!["CreateBackup".into()]),
            ..fsx_emulator::Faults::default()
        });
        run_now(&world, "idle", "retry-1").await;
        let retrying = world.until("idle", "Reconciling RetryingAfterError", |o| schedule_is(o, "Reconciling", "RetryingAfterError")).await;
        assert_eq!(verdicts(&retrying).await, ("InProgress".into(), "Progressing".into()));
        world.emulator.set_faults(fsx_emulator::Faults::default());
    })
    .await;
}

#[tokio::test]
async fn copies_follow_the_health_contract() {
    crate::support::with_namespace("health-fbc", |client, namespace| async move {
        let world = World::new(client, namespace.clone()).await;
        // Copies and new backups take an hour: they stay in flight for the test.
        world.emulator.set_timing(Timing { create_duration: Duration::from_hours(1), copy_duration: Duration::from_hours(1) });
        let fs = world.file_system(FileSystemType::Windows);
        let schedule = world.create("src", json!({"target": {"fileSystemIds": [fs]}, "schedule": "@yearly"})).await;
        world
            .emulator
            .seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                .creation_time(SystemTime::now() - Duration::from_hours(1))
                .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                .tag("fsxbackup.io/owner-uid", schedule.uid().expect("uid")))
            .expect("seed");

        // Row 1: follow mode with a routine copy in flight: Ready, Current, Healthy.
        world.create_copy("dr", json!({"source": {"scheduleRef": {"name": "src"}}, "destinationRegion": "us-west-2"})).await;
        let dr = world.until_copy("dr", "copying, Ready", |o| copy_is(o, "Ready", "Copying")).await;
        assert_eq!(verdicts(&dr).await, ("Current".into(), "Healthy".into()));
        assert!(kubectl_wait_ready("fsxbackupcopy/dr", &namespace, "10s").await);

        // Row 4: a one-shot copy whose source is still being made: Reconciling.
        let creating = world
            .emulator
            .seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated).lifecycle(BackupLifecycle::Creating))
            .expect("seed");
        world.create_copy("once", json!({"source": {"backupId": creating, "region": REGION}, "destinationRegion": "us-west-2"})).await;
        let once = world.until_copy("once", "Reconciling WaitingForSource", |o| copy_is(o, "Reconciling", "WaitingForSource")).await;
        assert_eq!(verdicts(&once).await, ("InProgress".into(), "Progressing".into()));
        assert!(!kubectl_wait_ready("fsxbackupcopy/once", &namespace, "2s").await);

        // A followed schedule that does not exist: in progress for its grace, then Stalled.
        world.create_copy("lost", json!({"source": {"scheduleRef": {"name": "nope"}}, "destinationRegion": "us-west-2"})).await;
        let lost = world.until_copy("lost", "Reconciling WaitingForSchedule", |o| copy_is(o, "Reconciling", "WaitingForSchedule")).await;
        assert_eq!(verdicts(&lost).await, ("InProgress".into(), "Progressing".into()));
        // A copy whose RPO (1m) no copy can meet while copies take an hour.
        world.create_copy("strict", json!({"source": {"scheduleRef": {"name": "src"}}, "destinationRegion": "us-west-2", "rpo": "1m"})).await;
        world.until_copy("strict", "copying, Ready", |o| copy_is(o, "Ready", "Copying")).await;

        // Row 5: three minutes later: past the grace, past the RPO.
        world.clock.set_offset(180.0);
        let lost = world.until_copy("lost", "Stalled WaitingForSchedule", |o| copy_is(o, "Stalled", "WaitingForSchedule")).await;
        assert_eq!(verdicts(&lost).await, ("Failed".into(), "Degraded".into()));
        let strict = world.until_copy("strict", "Stalled RPOBreached", |o| copy_is(o, "Stalled", "RPOBreached")).await;
        assert_eq!(verdicts(&strict).await, ("Failed".into(), "Degraded".into()));
        assert!(!kubectl_wait_ready("fsxbackupcopy/strict", &namespace, "2s").await);
        events_with(&world.client, &namespace, "strict", &[("RPOBreached", 1)]).await;
        // The default RPO (the schedule's years + 12h) is not breached by the same wait.
        let dr = world.copies().get("dr").await.expect("get dr");
        assert_eq!(verdicts(&dr).await, ("Current".into(), "Healthy".into()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breached_rpo_and_its_recovery_are_notified_once_each() {
    crate::support::with_namespace("health-sns", |client, namespace| async move {
        let moto = crate::support::Moto::start().await;
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&crate::support::aws_sdk_config(REGION).await)
                .endpoint_url(&moto.endpoint)
                .build(),
        );
        let topic = sns.create_topic().name("rpo").send().await.expect("topic").topic_arn.expect("arn");
        let (port, received) = crate::support::sns_http_receiver().await;
        sns.subscribe().topic_arn(&topic).protocol("http").endpoint(format!("http://127.0.0.1:{port}/")).send().await.expect("subscribe");
        let world = World::with_args(client, namespace.clone(), &["--sns-endpoint-url", &moto.endpoint]).await;
        let fs = world.file_system(FileSystemType::Windows);
        // onSuccess is off: the recovery is sent all the same.
        let object = world
            .create("stale", json!({"target": {"fileSystemIds": [fs]}, "schedule": "@yearly", "rpo": "1m", "notifications": {"snsTopicArn": topic}}))
            .await;
        world.until("stale", "Ready before the RPO", |o| schedule_is(o, "Ready", "Scheduled")).await;
        world.clock.set_offset(150.0);
        world.until("stale", "Stalled RPOBreached", |o| schedule_is(o, "Stalled", "RPOBreached")).await;
        let subject = |m: &serde_json::Value| m["Subject"].as_str().unwrap_or_default().to_owned();
        let breach = eventually("the breach published", WAIT, || {
            let received = received.lock().expect("lock").clone();
            async move { received.into_iter().find(|m| subject(m).contains("Failed")) }
        })
        .await;
        let text = breach["Message"].as_str().unwrap_or_default();
        assert!(text.contains("RPO breached") && text.contains(&fs), "{text}");

        world
            .emulator
            .seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                .creation_time(SystemTime::now() + Duration::from_secs(150))
                .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                .tag("fsxbackup.io/owner-uid", object.uid().expect("uid")))
            .expect("seed");
        let touch = json!({"spec": {"tags": {"team": "storage"}}});
        world.api().patch("stale", &PatchParams::default(), &Patch::Merge(&touch)).await.expect("touch");
        let recovery = eventually("the recovery published", WAIT, || {
            let received = received.lock().expect("lock").clone();
            async move { received.into_iter().find(|m| subject(m).contains("Recovered")) }
        })
        .await;
        assert!(recovery["Message"].as_str().unwrap_or_default().contains("RPO met again"), "{recovery}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(received.lock().expect("lock").len(), 2, "one message each");
    })
    .await;
}
