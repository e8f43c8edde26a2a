//! Hostile input never stops backups: out-of-range counters and bad tags are
//! refused at `kubectl apply`, status edits can neither panic the operator nor
//! invent misses, and an object stored before the schema bounded its counters
//! (which no typed watch can read) is reported on itself while a healthy canary
//! schedule keeps making its backups on time, in a process that never restarts.

use crate::support::operator::{eventually, kubectl, kubectl_with_input};
use crate::support::world::{WAIT, World, condition_of, metrics_text};
use fsx_backup_operator::crd::FsxBackupSchedule;
use fsx_emulator::FileSystemType;
use jiff::SignedDuration;
use serde_json::{Value, json};

const CRD: &str = "crd/fsxbackupschedules.fsxbackup.io";
const MAX_COUNT: &str = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/retention/properties/maxCount/maximum";

fn apply(namespace: &str, name: &str, spec: &Value) -> std::process::Output {
    let manifest = json!({
        "apiVersion": "fsxbackup.io/v1alpha1",
        "kind": "FsxBackupSchedule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    });
    kubectl_with_input(&["apply", "-f", "-"], Some(&manifest.to_string()))
}

fn patch_status(namespace: &str, name: &str, status: &Value) -> std::process::Output {
    kubectl(&[
        "patch",
        "fsxbackupschedule",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        &json!({ "status": status }).to_string(),
    ])
}

fn stalled_with(object: &FsxBackupSchedule, fragment: &str) -> bool {
    object.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == "Stalled"
                && c.status == "True"
                && c.reason == "InvalidSpec"
                && c.message.contains(fragment)
        })
    })
}

#[tokio::test]
async fn hostile_objects_and_status_edits_never_stop_a_healthy_schedule() {
    crate::support::with_namespace("hostile", |client, namespace| async move {
        let mut world = World::new(client.clone(), namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Windows);
        let hourly = |extra: Value| {
            let mut spec = json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *"});
            for (key, value) in extra.as_object().expect("object") {
                spec[key] = value.clone();
            }
            spec
        };
        world.create("canary", hourly(json!({}))).await;
        world
            .until("canary", "scheduled", |o| {
                o.status.as_ref().is_some_and(|s| s.next_schedule_time.is_some())
            })
            .await;

        // Refused at the door: counters beyond what the operator reads, FSx-invalid tags.
        let refused = [
            ("huge-count", json!({"retention": {"maxCount": 4_294_967_296_u64}}), "maxCount"),
            ("huge-keep", json!({"retention": {"keepLast": i64::MAX}}), "keepLast"),
            ("huge-deadline", json!({"startingDeadlineSeconds": 99_999_999_999_i64}), "startingDeadlineSeconds"),
            ("newline-value", json!({"tags": {"team": "a\nb"}}), "spec.tags"),
            ("newline-key", json!({"tags": {"te\nam": "a"}}), "tag keys"),
        ];
        for (name, extra, fragment) in refused {
            let output = apply(&namespace, name, &hourly(extra));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{name} was accepted");
            assert!(stderr.contains(fragment), "{name}: `{fragment}` not in {stderr}");
        }
        let output = patch_status(&namespace, "canary", &json!({"missedRuns": 4_294_967_296_u64}));
        assert!(!output.status.success(), "a status counter beyond u32 was accepted");

        // Accepted, then stalled with the field named: a jitter no schedule can honour.
        for (name, jitter) in [("huge-jitter", "9999999w"), ("long-jitter", "2h")] {
            let output = apply(&namespace, name, &hourly(json!({"jitter": jitter})));
            assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
        }

        // Status edits that used to panic or invent 12,015 misses.
        world.create("edited", hourly(json!({"jitter": "10m"}))).await;
        world
            .until("edited", "scheduled", |o| {
                o.status.as_ref().is_some_and(|s| s.next_schedule_time.is_some())
            })
            .await;
        let output = patch_status(
            &namespace,
            "edited",
            &json!({"lastScheduleTime": "9999-12-30T22:00:00Z", "nextScheduleTime": "0001-01-01T00:00:00Z"}),
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

        // Stored before the schema bounded it: relax the bound, store, restore.
        let output = kubectl(&["patch", CRD, "--type=json", "-p", &json!([{"op": "remove", "path": MAX_COUNT}]).to_string()]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stored = apply(&namespace, "unreadable", &hourly(json!({"retention": {"maxCount": 4_294_967_296_u64}})));
        let output = kubectl(&["patch", CRD, "--type=json", "-p", &json!([{"op": "add", "path": MAX_COUNT, "value": 100_000}]).to_string()]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(stored.status.success(), "{}", String::from_utf8_lossy(&stored.stderr));

        // A restart must list every object, the unreadable one included.
        world.restart_operator();
        // Read as JSON: no typed client can read this object either.
        eventually("unreadable Stalled naming spec.retention.maxCount", WAIT, || async {
            let output = kubectl(&["get", "fsxbackupschedule", "unreadable", "-n", &namespace, "-o", "json"]);
            let object: Value = serde_json::from_slice(&output.stdout).ok()?;
            object["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| {
                    c["type"] == "Stalled"
                        && c["reason"] == "InvalidSpec"
                        && c["message"].as_str().is_some_and(|m| m.contains("spec.retention.maxCount"))
                })
                .then_some(())
        })
        .await;
        for (name, fragment) in [("huge-jitter", "spec.jitter"), ("long-jitter", "spec.jitter")] {
            world
                .until(name, &format!("{name} Stalled naming {fragment}"), |o| stalled_with(o, fragment))
                .await;
        }

        // The canary makes two backups on time; the edited schedule carries on too.
        let first = world.next_hour();
        for run in 0..2 {
            let slot = first + SignedDuration::from_hours(run);
            world.clock.set_now(slot + SignedDuration::from_mins(11));
            world
                .until("canary", "backup AVAILABLE for the slot", |o| {
                    o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.last_backup.as_ref()).is_some_and(|b| {
                        b.lifecycle == "AVAILABLE" && b.scheduled_time.as_ref().is_some_and(|t| t.0 == slot)
                    })
                })
                .await;
        }
        let edited = world
            .until("edited", "a backup after the edit", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.last_backup.as_ref()).is_some_and(|b| b.lifecycle == "AVAILABLE")
            })
            .await;
        let status = edited.status.expect("status");
        assert!(status.missed_runs.unwrap_or(0) <= 2, "an edit invented misses: {:?}", status.missed_runs);
        assert!(condition_of(&status.conditions, "Ready").is_some());
        let canary = world.get("canary").await;
        assert_eq!(canary.status.and_then(|s| s.missed_runs).unwrap_or(0), 0);

        eventually("metrics count the unreadable object", WAIT, || async {
            let port = world.operator.metrics_port()?;
            let body = metrics_text(port).await?;
            body.contains(r#"kind="unreadable""#).then_some(())
        })
        .await;
        assert!(world.operator.exited().is_none(), "the operator exited:\n{}", world.operator.logs());
        assert!(!world.operator.logs().contains("panicked"), "{}", world.operator.logs());
    })
    .await;
}
