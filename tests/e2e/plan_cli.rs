//! `fsx-backup-operator plan`: a manifest's retention previewed against live
//! FSx equals what the controller then does once the manifest is applied
//! (and its deletions approved past the brake), for schedules and copies;
//! and the kubectl plugin's commands against the cluster.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::support::operator::{eventually, kubectl_with_input, test_dir};
use crate::support::world::{REGION, WAIT, World};
use fsx_emulator::{BackupSeed, BackupType, FileSystemType, Timing};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

/// Runs the CLI without blocking this test's runtime (the emulator serves on it).
async fn plan(world: &World, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fsx-backup-operator"));
    command
        .arg("plan")
        .args(args)
        .args([
            "--region",
            REGION,
            "--fsx-endpoint-url",
            &world.running.endpoint,
        ])
        .env("KUBECONFIG", &crate::support::control_plane().kubeconfig)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    tokio::task::spawn_blocking(move || command.output().expect("run plan"))
        .await
        .expect("join")
}

/// The backups the operator deleted, as the emulator logged them.
fn deleted_ids(world: &World) -> BTreeSet<String> {
    world
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.operation == "DeleteBackup" && r.outcome == "ok")
        .flat_map(|r| r.backup_ids)
        .collect()
}

fn ids(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["backupId"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_plan_of_a_manifest_is_what_the_controller_then_does() {
    crate::support::with_namespace("plan-cli", |client, namespace| async move {
        let world = World::new(client, namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Windows);
        let spec = |max_count: u32| {
            json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *", "tags": {"team": "storage"}, "retention": {"maxCount": max_count}})
        };
        let object = world.create("nightly", spec(10)).await;
        let uid = object.uid().expect("uid");
        for days in 1..=6u64 {
            world
                .emulator
                .seed_backup(REGION, BackupSeed {
                    creation_time: Some(SystemTime::now() - Duration::from_secs(days * 86_400)),
                    ..BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                        .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                        .tag("fsxbackup.io/owner-uid", &uid)
                })
                .expect("seed");
        }
        // The live object as it is: keeps all six; says when it runs next.
        let output = plan(&world, &["--name", "nightly", "-n", &namespace]).await;
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(text.contains("delete 0, keep 6") && text.contains("next run: "), "{text}");

        // The pull request: keep two.
        let manifest = json!({
            "apiVersion": "fsxbackup.io/v1alpha1", "kind": "FsxBackupSchedule",
            "metadata": {"name": "nightly", "namespace": namespace},
            "spec": spec(2),
        });
        let file = test_dir(&format!("{namespace}-manifest")).join("nightly.yaml");
        std::fs::write(&file, manifest.to_string()).expect("write manifest");
        let output = plan(&world, &["--file", &file.to_string_lossy(), "--output", "json"]).await;
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let preview: Value = serde_json::from_slice(&output.stdout).expect("json");
        let target = &preview["targets"][0];
        let planned = ids(&target["delete"]);
        assert_eq!(planned.len(), 4, "{preview}");
        assert_eq!(ids(&target["keep"]).len(), 2);
        assert!(target["delete"].as_array().expect("list").iter().all(|d| d["reason"] == "maxCount"));
        assert!(target["heldByBrake"].as_str().is_some_and(|m| m.contains("delete 4 of the 6")), "{preview}");
        assert_eq!(world.calls("DeleteBackup"), 0, "plan changes nothing");

        // Applied, held, approved: the controller deletes exactly the planned ones.
        let output = kubectl_with_input(&["apply", "-f", "-"], Some(&manifest.to_string()));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let generation = world.get("nightly").await.metadata.generation.expect("generation");
        let approve = json!({"metadata": {"annotations": {"fsxbackup.io/approve-deletions": generation.to_string()}}});
        world.api().patch("nightly", &PatchParams::default(), &Patch::Merge(&approve)).await.expect("approve");
        world
            .until("nightly", "pruned to two", |o| {
                o.status.as_ref().and_then(|s| s.targets.first()).and_then(|t| t.managed_backup_count) == Some(2)
            })
            .await;
        assert_eq!(deleted_ids(&world), planned, "the controller did what the plan said");

        // Clear errors: an object that does not exist.
        let output = plan(&world, &["--name", "missing", "-n", &namespace]).await;
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("not found"));
    })
    .await;
}

#[tokio::test]
async fn the_kubectl_plugin_shows_status_runs_now_plans_and_lists_backups() {
    crate::support::with_namespace("plugin", |client, namespace| async move {
        let world = World::new(client, namespace.clone()).await;
        let fs = world.file_system(FileSystemType::Lustre);
        world
            .create("nightly", json!({"target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *", "retention": {"maxCount": 5}}))
            .await;
        world.until("nightly", "scheduled", |o| o.status.as_ref().is_some_and(|s| s.next_schedule_time.is_some())).await;

        let out = world.plugin(&["status"]).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line = text.lines().find(|l| l.contains(&namespace) && l.contains("nightly")).unwrap_or_default();
        assert!(line.starts_with("schedule") && line.contains("True") && line.contains("Scheduled"), "{text}");
        assert!(line.contains("ok until "), "the RPO column: {text}");
        assert!(text.lines().next().is_some_and(|h| h.contains("LAST RESULT") && h.contains("RPO")), "{text}");

        let out = world.plugin(&["run-now", "nightly", "-n", &namespace]).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        world
            .until("nightly", "the run-now backup AVAILABLE", |o| {
                o.status.as_ref().is_some_and(|s| {
                    s.last_run_now.is_some()
                        && s.targets.first().and_then(|t| t.last_backup.as_ref()).is_some_and(|b| b.lifecycle == "AVAILABLE")
                })
            })
            .await;
        assert_eq!(world.calls("CreateBackup"), 1);

        let out = world.plugin(&["backups", "--name", "nightly", "-n", &namespace, "-o", "json"]).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listed: Value = serde_json::from_slice(&out.stdout).expect("json");
        let kept = &listed["targets"][0]["keep"];
        assert_eq!(ids(kept).len(), 1, "{listed}");
        assert_eq!(kept[0]["keptBy"], "maxCount");

        let out = world.plugin(&["plan", "--name", "nightly", "-n", &namespace]).await;
        assert!(String::from_utf8_lossy(&out.stdout).contains("delete 0, keep 1"));

        let missing: [&[&str]; 2] = [
            &["run-now", "missing", "-n", &namespace],
            &["backups", "--name", "missing", "-n", &namespace],
        ];
        for args in missing {
            let out = world.plugin(args).await;
            assert!(!out.status.success());
            assert!(String::from_utf8_lossy(&out.stderr).contains("not found"), "{args:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_plan_of_a_copy_manifest_is_what_the_controller_then_does() {
    crate::support::with_namespace("plan-copy", |client, namespace| async move {
        let world = World::new(client, namespace.clone()).await;
        world.emulator.set_timing(Timing { create_duration: Duration::from_millis(300), copy_duration: Duration::from_secs(1) });
        let fs = world.file_system(FileSystemType::Windows);
        let schedule = world.create("sa", json!({"target": {"fileSystemIds": [fs]}, "schedule": "@yearly"})).await;
        let schedule_uid = schedule.uid().expect("uid");
        let sources: Vec<String> = (1..=3u64)
            .map(|hours| {
                world
                    .emulator
                    .seed_backup(REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                        .creation_time(SystemTime::now() - Duration::from_secs(hours * 3600))
                        .tag("fsxbackup.io/managed-by", "fsx-backup-operator")
                        .tag("fsxbackup.io/owner-uid", &schedule_uid))
                    .expect("seed")
            })
            .collect();
        let manifest = |retention: Value| {
            json!({
                "apiVersion": "fsxbackup.io/v1alpha1", "kind": "FsxBackupCopy",
                "metadata": {"name": "dr", "namespace": namespace},
                "spec": {"source": {"scheduleRef": {"name": "sa"}}, "destinationRegion": "us-west-2", "retention": retention, "deletionBrake": {"maxPercent": 100}},
            })
        };
        let dir = test_dir(&format!("{namespace}-manifest"));
        let planned = |manifest: Value| {
            let file = dir.join("dr.yaml");
            std::fs::write(&file, manifest.to_string()).expect("write manifest");
            let world = &world;
            async move {
                let output = plan(world, &["--file", &file.to_string_lossy(), "--output", "json"]).await;
                assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
                serde_json::from_slice::<Value>(&output.stdout).expect("json")
            }
        };

        // Before it exists: it would copy the three, oldest first, and delete nothing.
        let first = manifest(json!({"maxCount": 5}));
        let preview = planned(first.clone()).await;
        assert_eq!(preview["kind"], "FsxBackupCopy");
        let next: Vec<&str> = preview["copyNext"].as_array().expect("copyNext").iter().filter_map(Value::as_str).collect();
        let oldest_first: Vec<&str> = sources.iter().rev().map(String::as_str).collect();
        assert_eq!(next, oldest_first, "{preview}");
        assert_eq!(world.calls("CopyBackup"), 0, "plan changes nothing");

        let output = kubectl_with_input(&["apply", "-f", "-"], Some(&first.to_string()));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let copied = world
            .until_copy("dr", "three copies", |o| o.status.as_ref().is_some_and(|s| s.copies.iter().filter(|c| c.lifecycle == "AVAILABLE").count() == 3))
            .await;
        let copied: BTreeSet<String> = copied.status.iter().flat_map(|s| &s.copies).map(|c| c.source_backup_id.clone()).collect();
        assert_eq!(copied, next.iter().map(|s| (*s).to_owned()).collect());

        // The pull request: keep one copy. The plan names the two to go; nothing to copy.
        let second = manifest(json!({"maxCount": 1}));
        let preview = planned(second.clone()).await;
        let target = &preview["targets"][0];
        assert_eq!(target["id"], "copies in us-west-2", "{preview}");
        let doomed = ids(&target["delete"]);
        assert_eq!(doomed.len(), 2, "{preview}");
        assert_eq!(ids(&target["keep"]).len(), 1, "{preview}");
        assert!(preview.get("copyNext").is_none(), "{preview}");
        assert_eq!(world.calls("DeleteBackup"), 0, "plan changes nothing");

        let output = kubectl_with_input(&["apply", "-f", "-"], Some(&second.to_string()));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let deleted = eventually("the two copies deleted", WAIT, || {
            let deleted = deleted_ids(&world);
            async move { (deleted.len() >= 2).then_some(deleted) }
        })
        .await;
        assert_eq!(deleted, doomed, "the controller did what the plan said");

        // The live object by name.
        let output = plan(&world, &["--kind", "copy", "--name", "dr", "-n", &namespace]).await;
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(text.contains(&format!("FsxBackupCopy {namespace}/dr")) && text.contains("copies next: nothing") && text.contains("delete 0, keep 1"), "{text}");
    })
    .await;
}

/// The Krew package: a manifest whose sha256 is its archive's, and an archive
/// that real kubectl finds as the `fsxbackup` plugin once unpacked on the PATH
/// (what `kubectl krew install` does).
#[test]
fn the_krew_package_installs_a_plugin_kubectl_runs() {
    let out = test_dir("krew-package");
    let package = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/krew-package.sh"
    ))
    .arg(env!("CARGO_BIN_EXE_kubectl-fsxbackup"))
    .arg(&out)
    .arg("https://example.test/releases")
    .output()
    .expect("run krew-package.sh");
    assert!(
        package.status.success(),
        "{}",
        String::from_utf8_lossy(&package.stderr)
    );
    let manifest: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(out.join("fsxbackup.yaml")).expect("manifest"),
    )
    .expect("YAML");
    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "fsxbackup");
    assert_eq!(
        manifest["spec"]["version"],
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );
    let platform = &manifest["spec"]["platforms"][0];
    assert_eq!(platform["bin"], "kubectl-fsxbackup");
    assert_eq!(
        platform["selector"]["matchLabels"],
        json!({"os": "linux", "arch": "amd64"})
    );
    assert_eq!(
        platform["uri"],
        "https://example.test/releases/kubectl-fsxbackup_linux_amd64.tar.gz"
    );
    let archive = out.join("kubectl-fsxbackup_linux_amd64.tar.gz");
    let sum = Command::new("sha256sum")
        .arg(&archive)
        .output()
        .expect("sha256sum");
    let sum = String::from_utf8_lossy(&sum.stdout);
    assert_eq!(
        platform["sha256"].as_str(),
        sum.split_whitespace().next(),
        "the manifest's sha256 is the archive's"
    );

    let install = out.join("installed");
    std::fs::create_dir_all(&install).expect("install dir");
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&install)
        .output()
        .expect("tar");
    assert!(
        untar.status.success(),
        "{}",
        String::from_utf8_lossy(&untar.stderr)
    );
    let path = format!(
        "{}:{}",
        install.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let listed = Command::new(crate::support::tools_bin().join("kubectl"))
        .args(["plugin", "list"])
        .env("PATH", &path)
        .output()
        .expect("kubectl plugin list");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("kubectl-fsxbackup"),
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );
    let help = Command::new(crate::support::tools_bin().join("kubectl"))
        .args(["fsxbackup", "--help"])
        .env("PATH", &path)
        .output()
        .expect("kubectl fsxbackup");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.status.success(),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );
    for command in ["status", "run-now", "plan", "backups", "orphans"] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
    }
}
