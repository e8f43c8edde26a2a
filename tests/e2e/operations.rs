//! Running it in production: leader election and failover, SIGTERM, metrics,
//! SNS notifications (through moto's SNS, a third-party implementation) and
//! configuration errors. The operator binary runs against the real
//! kube-apiserver and the FSx emulator.

use std::time::{Duration, Instant};

use crate::support::operator::{
    Operator, OperatorConfig, TestClock, eventually, install_crds, test_dir,
};
use crate::support::world::{REGION, WAIT, World, tail};
use fsx_backup_operator::crd::FsxBackupSchedule;
use fsx_emulator::{Emulator, FileSystemType, RunningEmulator, Timing};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `(scheduled time, lifecycle)` of the schedule's first target's last backup.
fn last_backup(object: &FsxBackupSchedule) -> Option<(Timestamp, String)> {
    let last = object
        .status
        .as_ref()?
        .targets
        .first()?
        .last_backup
        .as_ref()?;
    Some((last.scheduled_time.as_ref()?.0, last.lifecycle.clone()))
}

fn available_for(slot: Timestamp) -> impl Fn(&FsxBackupSchedule) -> bool {
    move |o| last_backup(o) == Some((slot, "AVAILABLE".to_owned()))
}

async fn scheduled(world: &World, name: &str) -> FsxBackupSchedule {
    world
        .until(name, "scheduled", |o| {
            o.status
                .as_ref()
                .is_some_and(|s| s.next_schedule_time.is_some())
        })
        .await
}

/// A raw HTTP/1.1 GET against the operator's metrics port: `(status, body)`.
async fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the metrics port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the series whose line starts with `series` (name and labels).
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_port(operator: &Operator) -> u16 {
    eventually("metrics port in the log", WAIT, || async {
        operator.metrics_port()
    })
    .await
}

#[tokio::test]
async fn metrics_after_a_cycle_show_the_documented_series() {
    crate::support::with_namespace("ops-metrics", |client, namespace| async move {
        let world = World::new(client, namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Windows);
        world
            .create("hourly", json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *", "retention": {"maxCount": 1}}))
            .await;
        scheduled(&world, "hourly").await;
        let first = world.next_hour();
        for run in 0..2 {
            let slot = first + SignedDuration::from_hours(run);
            world.clock.set_now(slot - SignedDuration::from_secs(1));
            world.until("hourly", "backup AVAILABLE", available_for(slot)).await;
        }
        eventually("oldest pruned", WAIT, || async { (world.calls("DeleteBackup") == 1).then_some(()) }).await;
        let port = metrics_port(&world.operator).await;
        assert_eq!(get(port, "/healthz").await.0, 200);
        assert_eq!(get(port, "/readyz").await.0, 200);
        let schedule = format!(r#"{{namespace="{namespace}",schedule="hourly"}}"#);
        // Metrics follow the status write that they describe.
        let deleted = format!("fsxbackup_backups_deleted_total{schedule}");
        eventually("the prune counted", WAIT, || async {
            value(&get(port, "/metrics").await.1, &deleted).is_some().then_some(())
        })
        .await;
        let (status, text) = get(port, "/metrics").await;
        assert_eq!(status, 200);
        let expect = [
            (format!("fsxbackup_backups_created_total{schedule}"), 2.0),
            (format!("fsxbackup_backups_deleted_total{schedule}"), 1.0),
            (format!("fsxbackup_schedule_interval_seconds{schedule}"), 3600.0),
            (r#"fsxbackup_aws_requests_total{operation="CreateBackup",code="ok",account="own"}"#.to_owned(), 2.0),
            (r#"fsxbackup_aws_requests_total{operation="DeleteBackup",code="ok",account="own"}"#.to_owned(), 1.0),
            (r#"fsxbackup_schedule_lateness_seconds_count{controller="schedule"}"#.to_owned(), 2.0),
            ("fsxbackup_leader".to_owned(), 1.0),
        ];
        for (series, want) in expect {
            assert_eq!(value(&text, &series), Some(want), "{series} in:\n{text}");
        }
        let next = value(&text, &format!("fsxbackup_next_scheduled_run_timestamp_seconds{schedule}")).expect("next run");
        #[allow(clippy::cast_precision_loss)]
        let want_next = (first + SignedDuration::from_hours(2)).as_second() as f64;
        assert!((next - want_next).abs() < 1.0, "next run {next} vs {want_next}");
        let success = value(&text, &format!(r#"fsxbackup_last_successful_backup_timestamp_seconds{{namespace="{namespace}",schedule="hourly",target="{fs}"}}"#));
        assert!(success.is_some_and(|t| t > 1.7e9), "{text}");
        assert!(value(&text, r#"fsxbackup_reconcile_duration_seconds_count{controller="schedule"}"#).is_some_and(|n| n >= 2.0));
        assert!(value(&text, r#"fsxbackup_schedule_lateness_seconds_bucket{le="+Inf",controller="schedule"}"#) == Some(2.0), "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_in_flight_backup_exits_cleanly_and_the_run_completes_after_restart() {
    crate::support::with_namespace("ops-sigterm", |client, namespace| async move {
        let mut world = World::new(client, namespace).await;
        world.emulator.set_timing(Timing {
            create_duration: Duration::from_secs(4),
            copy_duration: Duration::ZERO,
        });
        let fs = world.file_system(FileSystemType::Lustre);
        world
            .create(
                "slow",
                json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *"}),
            )
            .await;
        scheduled(&world, "slow").await;
        let slot = world.next_hour();
        world.clock.set_now(slot - SignedDuration::from_secs(1));
        world
            .until("slow", "backup CREATING", |o| {
                last_backup(o).is_some_and(|(_, l)| l == "CREATING")
            })
            .await;
        let code =
            tokio::task::block_in_place(|| world.operator.terminate(Duration::from_secs(30)));
        assert_eq!(
            code,
            Some(0),
            "clean exit on SIGTERM:\n{}",
            tail(&world.operator.logs())
        );
        assert!(world.operator.logs().contains("stopped"));
        world.restart_operator();
        world
            .until(
                "slow",
                "the run completes after restart",
                available_for(slot),
            )
            .await;
        assert_eq!(
            world.calls("CreateBackup"),
            1,
            "no second backup for the run"
        );
    })
    .await;
}

/// Two replicas with leader election; the holder of the Lease is the leader.
struct Replicas {
    operators: Vec<(String, Operator)>,
    leases: Api<Lease>,
}

impl Replicas {
    fn start(
        namespace: &str,
        running: &RunningEmulator,
        clock: &TestClock,
        client: &Client,
    ) -> Self {
        let args: Vec<String> = [
            "--leader-election",
            "true",
            "--leader-election-namespace",
            namespace,
            "--lease-duration",
            "3s",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        let operators = ["replica-a", "replica-b"]
            .iter()
            .map(|name| {
                let config = OperatorConfig {
                    namespace,
                    fsx_endpoint: &running.endpoint,
                    clock,
                    extra_args: &args,
                };
                (
                    (*name).to_owned(),
                    config.start_with_env(&[("POD_NAME", name)]),
                )
            })
            .collect();
        Self {
            operators,
            leases: Api::namespaced(client.clone(), namespace),
        }
    }

    async fn holder(&self) -> Option<String> {
        let lease = self.leases.get_opt("fsx-backup-operator").await.ok()??;
        let spec = lease.spec?;
        let renewed = spec.renew_time?.0;
        let valid = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds?));
        (renewed + valid > Timestamp::now())
            .then_some(spec.holder_identity?)
            .filter(|h| !h.is_empty())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_fail_over_without_duplicate_or_lost_runs() {
    crate::support::with_namespace("ops-ha", |client, namespace| async move {
        install_crds();
        let emulator = Emulator::new();
        let running = emulator.start().await.expect("emulator");
        let clock = TestClock::new(&test_dir(&namespace));
        let mut replicas = Replicas::start(&namespace, &running, &clock, &client);
        let leader = eventually("a leader", WAIT, || async { replicas.holder().await }).await;

        let fs = emulator
            .seed_file_system(REGION, fsx_emulator::FileSystemSeed::new(FileSystemType::Windows))
            .expect("seed");
        let schedules: Api<FsxBackupSchedule> = Api::namespaced(client.clone(), &namespace);
        let object: FsxBackupSchedule = serde_json::from_value(json!({
            "apiVersion": "fsxbackup.io/v1alpha1", "kind": "FsxBackupSchedule",
            "metadata": {"name": "ha"},
            "spec": {"target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *"},
        }))
        .expect("object");
        schedules.create(&PostParams::default(), &object).await.expect("create");
        let until = |slot: Timestamp| {
            let schedules = schedules.clone();
            async move {
                eventually("backup AVAILABLE", WAIT, || {
                    let schedules = schedules.clone();
                    async move { schedules.get("ha").await.ok().filter(|o| available_for(slot)(o)).map(|_| ()) }
                })
                .await;
            }
        };
        let created = || emulator.requests().iter().filter(|r| r.operation == "CreateBackup" && r.outcome == "ok").count();

        let now = clock.now().as_second();
        let first = Timestamp::from_second(now - now.rem_euclid(3600) + 3600).expect("slot");
        clock.set_now(first - SignedDuration::from_secs(1));
        until(first).await;
        assert_eq!(created(), 1, "two replicas, one backup");
        let standby_logs = replicas.operators.iter().find(|(name, _)| *name != leader).map(|(_, o)| o.logs()).unwrap_or_default();
        assert!(!standby_logs.contains("backup created"), "the standby did not act");

        // SIGKILL the leader just before the next run: the other replica takes over.
        let index = replicas.operators.iter().position(|(name, _)| *name == leader).expect("leader runs");
        let second = first + SignedDuration::from_hours(1);
        clock.set_now(second - SignedDuration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(300)).await;
        replicas.operators[index].1.kill();
        let killed = Instant::now();
        let new_leader = eventually("another leader", WAIT, || async {
            replicas.holder().await.filter(|h| *h != leader)
        })
        .await;
        let failover = killed.elapsed();
        println!("failover: {failover:?} (lease duration 3s) from {leader} to {new_leader}");
        assert!(failover < Duration::from_secs(10), "took over in {failover:?}");
        until(second).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(created(), 2, "the run during failover was made exactly once");

        // A leader that finds the Lease taken by someone else stops acting at once.
        let now = Timestamp::now();
        let renewed = format!("{}.{:06}Z", now.strftime("%Y-%m-%dT%H:%M:%S"), now.subsec_microsecond());
        let lease = json!({"spec": {"holderIdentity": "someone-else", "renewTime": renewed, "leaseDurationSeconds": 3600}});
        replicas.leases.patch("fsx-backup-operator", &PatchParams::default(), &Patch::Merge(&lease)).await.expect("steal the lease");
        let survivor = 1 - index;
        let code = eventually("the deposed leader exits", WAIT, || {
            let exited = replicas.operators[survivor].1.exited();
            async move { exited }
        })
        .await;
        assert_eq!(code.code(), Some(1));
        assert!(replicas.operators[survivor].1.logs().contains("lost the leader Lease"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_gets_failures_always_successes_when_asked_and_an_sns_outage_blocks_nothing() {
    crate::support::with_namespace("ops-sns", |client, namespace| async move {
        let moto = crate::support::Moto::start().await;
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&crate::support::aws_sdk_config(REGION).await)
                .endpoint_url(&moto.endpoint)
                .build(),
        );
        let topic = sns.create_topic().name("backups").send().await.expect("topic").topic_arn.expect("arn");
        let (port, received) = crate::support::sns_http_receiver().await;
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("http")
            .endpoint(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .expect("subscribe");
        let world = World::with_args(client, namespace.clone(), &["--sns-endpoint-url", &moto.endpoint]).await;
        let failing = world.file_system(FileSystemType::Windows);
        let fine = world.file_system(FileSystemType::Windows);
        world
            .create("quiet", json!({"target": {"fileSystemIds": [failing]}, "schedule": "0 * * * *", "notifications": {"snsTopicArn": topic}}))
            .await;
        world
            .create("chatty", json!({"target": {"fileSystemIds": [fine]}, "schedule": "0 * * * *", "notifications": {"snsTopicArn": topic, "onSuccess": true}}))
            .await;
        for name in ["quiet", "chatty"] {
            scheduled(&world, name).await;
        }
        world.emulator.fail_next_backup(REGION, &failing);
        let slot = world.next_hour();
        world.clock.set_now(slot - SignedDuration::from_secs(1));
        world.until("quiet", "backup FAILED", |o| last_backup(o).is_some_and(|(_, l)| l == "FAILED")).await;
        world.until("chatty", "backup AVAILABLE", available_for(slot)).await;
        let messages = eventually("two notifications", WAIT, || {
            let received = received.lock().expect("lock").clone();
            async move { (received.len() >= 2).then_some(received) }
        })
        .await;
        let subject = |m: &serde_json::Value| m["Subject"].as_str().unwrap_or_default().to_owned();
        let failure = messages.iter().find(|m| subject(m).contains("Failed")).expect("failure published");
        let text = failure["Message"].as_str().unwrap_or_default();
        assert!(subject(failure).contains(&format!("FsxBackupSchedule {namespace}/quiet")), "{failure}");
        assert!(text.contains(&failing) && text.contains("Result: Failed") && text.contains("Backup: backup-") && text.contains("failed:"), "{text}");
        let success = messages.iter().find(|m| subject(m).contains("Succeeded")).expect("success published when asked");
        assert!(success["Message"].as_str().unwrap_or_default().contains(&fine));
        assert_eq!(messages.len(), 2, "no success message for `quiet`: {messages:#?}");

        // The next run of `quiet` succeeds: no message (onSuccess is off).
        let next = slot + SignedDuration::from_hours(1);
        world.clock.set_now(next - SignedDuration::from_secs(1));
        world.until("quiet", "backup AVAILABLE", available_for(next)).await;
        world.until("chatty", "backup AVAILABLE", available_for(next)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let subjects: Vec<String> = received.lock().expect("lock").iter().map(subject).collect();
        assert_eq!(subjects.iter().filter(|s| s.contains("quiet")).count(), 1, "{subjects:?}");

        // SNS goes away: a failing backup is still recorded, and the failed publish counted.
        drop(moto);
        world.emulator.fail_next_backup(REGION, &failing);
        let third = next + SignedDuration::from_hours(1);
        world.clock.set_now(third - SignedDuration::from_secs(1));
        world
            .until("quiet", "third backup FAILED", |o| last_backup(o) == Some((third, "FAILED".to_owned())))
            .await;
        world.until("chatty", "unaffected", available_for(third)).await;
        let port = metrics_port(&world.operator).await;
        let failed = eventually("failed publish counted", Duration::from_mins(1), || async {
            let (_, text) = get(port, "/metrics").await;
            value(&text, r#"fsxbackup_notifications_total{outcome="failed"}"#).filter(|n| *n >= 1.0)
        })
        .await;
        assert!(failed >= 1.0);
        assert!(world.get("quiet").await.resource_version().is_some());
    })
    .await;
}

/// Flags, environment, and the flag the error message must name.
type ConfigCase = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn invalid_configuration_exits_non_zero_naming_the_flag() {
    let cases: [ConfigCase; 7] = [
        (
            &["--aws-requests-per-second=-1"],
            &[],
            "--aws-requests-per-second",
        ),
        (&["--namespace", "Not_A_Namespace"], &[], "--namespace"),
        (&["--metrics-address", "nowhere"], &[], "--metrics-address"),
        (&["--poll-interval", "0s"], &[], "--poll-interval"),
        (&["--region", "mars"], &[], "--region"),
        (
            &["--copy-slots-per-region", "0"],
            &[],
            "--copy-slots-per-region",
        ),
        (
            &["--leader-election", "true"],
            &[("POD_NAMESPACE", "")],
            "--leader-election",
        ),
    ];
    for (args, env, flag) in cases {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fsx-backup-operator"));
        command
            .arg("run")
            .args(args)
            .env("KUBECONFIG", "/nonexistent");
        if flag != "--metrics-address" {
            command.args(["--metrics-address", "127.0.0.1:0"]);
        }
        command.env_remove("POD_NAMESPACE");
        for (key, value) in env {
            if value.is_empty() {
                command.env_remove(key);
            } else {
                command.env(key, value);
            }
        }
        let output = command.output().expect("run the binary");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            text.contains(flag),
            "{args:?}: the message should name {flag}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_lease_and_exits_zero() {
    crate::support::with_namespace("ops-release", |client, namespace| async move {
        install_crds();
        let emulator = Emulator::new();
        let running = emulator.start().await.expect("emulator");
        let clock = TestClock::new(&test_dir(&namespace));
        let args: Vec<String> = [
            "--leader-election",
            "true",
            "--leader-election-namespace",
            &namespace,
            "--lease-duration",
            "30s",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        let mut operator = OperatorConfig {
            namespace: &namespace,
            fsx_endpoint: &running.endpoint,
            clock: &clock,
            extra_args: &args,
        }
        .start_with_env(&[("POD_NAME", "only")]);
        let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
        let holder = || {
            let leases = leases.clone();
            async move {
                leases
                    .get_opt("fsx-backup-operator")
                    .await
                    .ok()?
                    .and_then(|l| l.spec?.holder_identity)
            }
        };
        eventually("leading", WAIT, || async {
            holder().await.filter(|h| h == "only")
        })
        .await;
        let code = tokio::task::block_in_place(|| operator.terminate(Duration::from_secs(30)));
        assert_eq!(code, Some(0), "{}", tail(&operator.logs()));
        assert!(!operator.logs().contains("lost the leader Lease"));
        assert_eq!(
            holder().await,
            None,
            "the Lease was released, so a standby takes over at once"
        );
    })
    .await;
}
