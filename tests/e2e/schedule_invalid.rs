//! Bad input never reaches FSx: each invalid `FsxBackupSchedule` is either
//! rejected by the real apiserver at `kubectl apply` (schema patterns, bounds,
//! CEL) or accepted and driven to `Stalled`/`InvalidSpec` by the operator with
//! a message naming the field — and the emulator sees no create or delete.

use std::time::Duration;

use crate::support::operator::{
    Operator, OperatorConfig, TestClock, eventually, install_crds, kubectl_with_input, test_dir,
};
use fsx_backup_operator::crd::FsxBackupSchedule;
use fsx_emulator::{Emulator, FileSystemSeed, FileSystemType};
use jiff::SignedDuration;
use kube::Api;
use serde_json::{Value, json};

enum Expect {
    /// `kubectl apply` fails and stderr contains this.
    Rejected(&'static str),
    /// Accepted; `Stalled=True`, reason `InvalidSpec`, message contains this.
    Stalled(&'static str),
}

fn cases(fs: &str) -> Vec<(&'static str, Value, Expect)> {
    let base = || json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *"});
    let with = |key: &str, value: Value| {
        let mut spec = base();
        spec[key] = value;
        spec
    };
    let many_tags: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    vec![
        (
            "bad-cron",
            with("schedule", json!("61 * * * *")),
            Expect::Stalled("spec.schedule"),
        ),
        (
            "six-fields",
            with("schedule", json!("0 0 * * * *")),
            Expect::Stalled("spec.schedule"),
        ),
        (
            "never-runs",
            with("schedule", json!("0 0 30 2 *")),
            Expect::Stalled("spec.schedule"),
        ),
        (
            "unknown-zone",
            with("timeZone", json!("Mars/Olympus_Mons")),
            Expect::Stalled("spec.timeZone"),
        ),
        (
            "keeps-nothing",
            with("retention", json!({"maxCount": 0})),
            Expect::Stalled("spec.retention"),
        ),
        (
            "empty-retention",
            with("retention", json!({})),
            Expect::Stalled("spec.retention"),
        ),
        (
            "long-name",
            with(
                "backupName",
                json!(format!("{}-{{target}}", "n".repeat(240))),
            ),
            Expect::Stalled("spec.backupName"),
        ),
        (
            "bad-placeholder",
            with("backupName", json!("{owner}")),
            Expect::Stalled("spec.backupName"),
        ),
        (
            "both-targets",
            with(
                "target",
                json!({"fileSystemIds": [fs], "volumeIds": ["fsvol-0123456789abcdef0"]}),
            ),
            Expect::Rejected("exactly one of fileSystemIds, volumeIds, fileSystemSelector"),
        ),
        (
            "no-target",
            with("target", json!({})),
            Expect::Rejected("exactly one of"),
        ),
        (
            "malformed-fs-id",
            with("target", json!({"fileSystemIds": ["fs-XYZ"]})),
            Expect::Rejected("fileSystemIds[0]"),
        ),
        (
            "malformed-volume-id",
            with("target", json!({"volumeIds": ["vol-1"]})),
            Expect::Rejected("volumeIds[0]"),
        ),
        (
            "duplicate-ids",
            with("target", json!({"fileSystemIds": [fs, fs]})),
            Expect::Rejected("Duplicate value"),
        ),
        (
            "too-many-tags",
            with("tags", Value::Object(many_tags)),
            Expect::Rejected("spec.tags"),
        ),
        (
            "aws-tag",
            with("tags", json!({"aws:cloudformation": "x"})),
            Expect::Rejected("tag keys"),
        ),
        (
            "reserved-tag",
            with("tags", json!({"fsxbackup.io/owner": "me"})),
            Expect::Rejected("tag keys"),
        ),
        (
            "bad-region",
            with("region", json!("mars-1")),
            Expect::Rejected("spec.region"),
        ),
        (
            "bad-jitter",
            with("jitter", json!("10 minutes")),
            Expect::Rejected("spec.jitter"),
        ),
        (
            "bad-max-age",
            with("retention", json!({"maxAge": "7days"})),
            Expect::Rejected("spec.retention.maxAge"),
        ),
        (
            "negative-count",
            with("retention", json!({"maxCount": -1})),
            Expect::Rejected("spec.retention.maxCount"),
        ),
        (
            "negative-deadline",
            with("startingDeadlineSeconds", json!(-5)),
            Expect::Rejected("spec.startingDeadlineSeconds"),
        ),
        (
            "bad-policy",
            with("deletionPolicy", json!("Maybe")),
            Expect::Rejected("spec.deletionPolicy"),
        ),
    ]
}

#[tokio::test]
async fn invalid_schedules_are_rejected_or_stalled_and_never_reach_fsx() {
    crate::support::with_namespace("fbs-invalid", |client, namespace| async move {
        install_crds();
        let emulator = Emulator::new();
        let running = emulator.start().await.expect("emulator");
        let fs = emulator
            .seed_file_system("us-east-1", FileSystemSeed::new(FileSystemType::Windows))
            .expect("seed");
        let clock = TestClock::new(&test_dir(&namespace));
        let operator = Operator::start(&OperatorConfig {
            namespace: &namespace,
            fsx_endpoint: &running.endpoint,
            clock: &clock,
            extra_args: &[],
        });
        let api: Api<FsxBackupSchedule> = Api::namespaced(client, &namespace);

        let mut stalled = Vec::new();
        for (name, spec, expect) in cases(&fs) {
            let manifest = json!({
                "apiVersion": "fsxbackup.io/v1alpha1",
                "kind": "FsxBackupSchedule",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            });
            let output = kubectl_with_input(&["apply", "-f", "-"], Some(&manifest.to_string()));
            let stderr = String::from_utf8_lossy(&output.stderr).to_string();
            match expect {
                Expect::Rejected(fragment) => {
                    assert!(
                        !output.status.success(),
                        "{name}: the apiserver accepted it"
                    );
                    assert!(
                        stderr.contains(fragment),
                        "{name}: `{fragment}` not in: {stderr}"
                    );
                }
                Expect::Stalled(fragment) => {
                    assert!(
                        output.status.success(),
                        "{name}: rejected unexpectedly: {stderr}"
                    );
                    stalled.push((name, fragment));
                }
            }
        }
        for (name, fragment) in stalled {
            let api = api.clone();
            eventually(
                &format!("{name} Stalled/InvalidSpec naming {fragment}"),
                Duration::from_secs(30),
                || {
                    let api = api.clone();
                    async move {
                        let object = api.get(name).await.ok()?;
                        let stalled = object
                            .status?
                            .conditions
                            .into_iter()
                            .find(|c| c.type_ == "Stalled")?;
                        (stalled.status == "True"
                            && stalled.reason == "InvalidSpec"
                            && stalled.message.contains(fragment))
                        .then_some(())
                    }
                },
            )
            .await;
        }
        // Past several scheduled instants: still nothing created or deleted.
        clock.set_offset(SignedDuration::from_hours(3).as_secs_f64());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let writes: Vec<_> = emulator
            .requests()
            .into_iter()
            .filter(|r| {
                r.operation == "CreateBackup"
                    || r.operation == "DeleteBackup"
                    || r.operation == "CopyBackup"
            })
            .collect();
        assert!(
            writes.is_empty(),
            "invalid specs reached FSx: {writes:?}\n{}",
            operator.logs()
        );
    })
    .await;
}
