//! Many AWS accounts from one operator: objects name a cluster-scoped
//! `FsxBackupAccount`, the operator assumes its role through STS (the
//! emulator's, driven by the real `aws-sdk-sts`) and calls FSx with the
//! session's credentials in that account only. A namespace the account does
//! not allow gets no AWS call at all; a role whose trust refuses stalls the
//! object naming the role; sessions are renewed across expiry; copy slots are
//! per account and Region.

use std::time::Duration;

use crate::support::operator::eventually;
use crate::support::world::{REGION, WAIT, World, condition_of, metrics_text, tag};
use fsx_backup_operator::crd::{FsxBackupAccount, FsxBackupCopy, FsxBackupSchedule};
use fsx_emulator::{
    ACCOUNT_ID, BackupLifecycle, BackupSeed, BackupType, FileSystemSeed, FileSystemType, RoleSeed,
    Timing,
};
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const ACCOUNT_A: &str = "222222222222";
const ACCOUNT_B: &str = "333333333333";
const DESTINATION: &str = "us-west-2";

fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/fsx-backup-account")
}

/// Cluster-scoped objects outlive the test namespace: deleted on drop.
struct Accounts {
    client: Client,
    names: Vec<String>,
}

impl Accounts {
    fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
            names: Vec::new(),
        }
    }

    /// Creates (or replaces) the `FsxBackupAccount` `name` with `spec`.
    async fn put(&mut self, name: &str, spec: serde_json::Value) {
        let api: Api<FsxBackupAccount> = Api::all(self.client.clone());
        let object = json!({
            "apiVersion": "fsxbackup.io/v1alpha1",
            "kind": "FsxBackupAccount",
            "metadata": {"name": name},
            "spec": spec,
        });
        api.patch(
            name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|err| panic!("apply FsxBackupAccount {name}: {err}"));
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_owned());
        }
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        let api: Api<FsxBackupAccount> = Api::all(self.client.clone());
        let names = std::mem::take(&mut self.names);
        tokio::spawn(async move {
            for name in names {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            }
        });
    }
}

fn reason_of(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<(String, String)> {
    condition_of(conditions, type_)
}

fn schedule_condition(object: &FsxBackupSchedule, type_: &str) -> Option<(String, String)> {
    reason_of(&object.status.as_ref()?.conditions, type_)
}

fn copy_condition(object: &FsxBackupCopy, type_: &str) -> Option<(String, String)> {
    reason_of(&object.status.as_ref()?.conditions, type_)
}

fn stalled_message(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> String {
    conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// The schedule has been looked at: runs are due from then on.
fn scheduled(object: &FsxBackupSchedule) -> bool {
    object
        .status
        .as_ref()
        .is_some_and(|s| s.next_schedule_time.is_some())
}

/// A second namespace the operator also watches, labelled `labels`.
async fn other_namespace(client: &Client, name: &str, labels: serde_json::Value) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
            .expect("namespace");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

/// The file system a schedule may select: tagged `backup=yes`.
fn tagged_file_system(world: &World, account: &str) -> String {
    world
        .emulator
        .seed_file_system_in(
            account,
            REGION,
            FileSystemSeed::new(FileSystemType::Windows).tag("backup", "yes"),
        )
        .expect("seed file system")
}

#[tokio::test]
async fn two_namespaces_back_up_in_two_accounts_each_seeing_only_its_own() {
    crate::support::with_namespace("acct", |client, namespace| async move {
        let team_b = format!("{namespace}-b");
        other_namespace(&client, &team_b, json!({"fsxbackup.io/account": format!("{namespace}-b")})).await;
        let world = World::with_args(client.clone(), namespace.clone(), &["--namespace", &team_b]).await;
        let emulator = &world.emulator;
        emulator.add_role(RoleSeed::new(role_arn(ACCOUNT_A)).external_id("ext-a")).expect("role a");
        emulator.add_role(RoleSeed::new(role_arn(ACCOUNT_B)).external_id("ext-b")).expect("role b");
        let fs_a = tagged_file_system(&world, ACCOUNT_A);
        let fs_b = tagged_file_system(&world, ACCOUNT_B);
        // The operator's own account has a matching file system too: never selected.
        let fs_own = tagged_file_system(&world, ACCOUNT_ID);

        let mut accounts = Accounts::new(&client);
        let (account_a, account_b) = (format!("{namespace}-a"), format!("{namespace}-b"));
        // A by namespace name; B by label selector.
        accounts
            .put(&account_a, json!({"roleArn": role_arn(ACCOUNT_A), "externalId": "ext-a", "allowedNamespaces": {"names": [namespace]}}))
            .await;
        accounts
            .put(&account_b, json!({"roleArn": role_arn(ACCOUNT_B), "externalId": "ext-b", "allowedNamespaces": {"selector": {"matchLabels": {"fsxbackup.io/account": account_b}}}}))
            .await;

        let spec = |account: &str| json!({"account": account, "target": {"fileSystemSelector": {"tags": {"backup": "yes"}}}, "schedule": "0 3 * * *"});
        let alpha = world.create("alpha", spec(&account_a)).await;
        let schedules_b: Api<FsxBackupSchedule> = Api::namespaced(client.clone(), &team_b);
        let beta: FsxBackupSchedule = serde_json::from_value(json!({
            "apiVersion": "fsxbackup.io/v1alpha1", "kind": "FsxBackupSchedule",
            "metadata": {"name": "beta"}, "spec": spec(&account_b),
        }))
        .expect("beta");
        let beta = schedules_b.create(&PostParams::default(), &beta).await.expect("create beta");

        // Both have looked at their schedule (a run is due only after that), then run at 03:00.
        world.until("alpha", "scheduled", scheduled).await;
        eventually("beta scheduled", WAIT, || {
            let api = schedules_b.clone();
            async move { api.get("beta").await.ok().filter(scheduled) }
        })
        .await;
        let now = world.clock.now();
        let day = now.as_second() - now.as_second().rem_euclid(86_400);
        world.clock.set_now(jiff::Timestamp::from_second(day + 86_400 + 3 * 3600 + 1).expect("03:00"));
        let in_account = |account: &str, uid: &str| -> Vec<fsx_emulator::BackupSnapshot> {
            emulator
                .state_of(account)
                .regions
                .get(REGION)
                .map(|r| r.backups.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|b| tag(b, "fsxbackup.io/owner-uid") == Some(uid) && b.lifecycle == BackupLifecycle::Available)
                .collect()
        };
        let (uid_a, uid_b) = (alpha.uid().expect("uid"), beta.uid().expect("uid"));
        eventually("a backup in each account", WAIT, || {
            let done = in_account(ACCOUNT_A, &uid_a).len() == 1 && in_account(ACCOUNT_B, &uid_b).len() == 1;
            async move { done.then_some(()) }
        })
        .await;
        let a = &in_account(ACCOUNT_A, &uid_a)[0];
        let b = &in_account(ACCOUNT_B, &uid_b)[0];
        assert_eq!(a.file_system_id, fs_a, "alpha backed up account A's file system");
        assert_eq!(b.file_system_id, fs_b, "beta backed up account B's file system");
        assert!(a.resource_arn.contains(&format!(":{ACCOUNT_A}:")), "{}", a.resource_arn);
        // Nothing crossed: neither object has a backup in the other's account or in the operator's.
        assert!(in_account(ACCOUNT_B, &uid_a).is_empty() && in_account(ACCOUNT_ID, &uid_a).is_empty());
        assert!(in_account(ACCOUNT_A, &uid_b).is_empty() && in_account(ACCOUNT_ID, &uid_b).is_empty());
        let own = emulator.state().regions.get(REGION).map(|r| r.backups.len()).unwrap_or_default();
        assert_eq!(own, 0, "no backup in the operator's own account ({fs_own} was never selected)");
        let alpha = world.until("alpha", "one target", |o| o.status.as_ref().is_some_and(|s| s.targets.len() == 1)).await;
        assert_eq!(alpha.status.expect("status").targets[0].id, fs_a, "alpha saw only account A's file systems");

        // Every FSx call of an object went to its account, with a session naming it.
        let requests = emulator.requests();
        for (name, ns, account) in [("alpha", namespace.as_str(), ACCOUNT_A), ("beta", team_b.as_str(), ACCOUNT_B)] {
            let session = format!("{ns}.{name}");
            let calls: Vec<_> = requests.iter().filter(|r| r.role_session_name.as_deref() == Some(session.as_str())).collect();
            assert!(calls.iter().any(|r| r.operation == "AssumeRole" && r.outcome == "ok"), "{name} assumed its role");
            assert!(calls.iter().any(|r| r.operation == "CreateBackup"), "{name} created through its session");
            for call in calls {
                assert_eq!(call.account.as_deref(), Some(account), "{name}: {call:?}");
                assert_eq!(call.role_arn.as_deref(), Some(role_arn(account).as_str()), "{name}: {call:?}");
            }
        }
        let port = world.operator.metrics_port().expect("metrics port");
        let series = format!("operation=\"CreateBackup\",code=\"ok\",account=\"{ACCOUNT_A}\"}} 1");
        eventually("CreateBackup counted per account", WAIT, || {
            let series = series.clone();
            async move { metrics_text(port).await.filter(|m| m.contains(&series)) }
        })
        .await;
        let _ = Api::<Namespace>::all(client.clone()).delete(&team_b, &DeleteParams::default()).await;
    })
    .await;
}

#[tokio::test]
async fn an_account_the_namespace_may_not_use_stalls_it_without_any_aws_call() {
    crate::support::with_namespace("acct-deny", |client, namespace| async move {
        let world = World::new(client.clone(), namespace.clone()).await;
        world.emulator.add_role(RoleSeed::new(role_arn(ACCOUNT_A))).expect("role");
        let fs = tagged_file_system(&world, ACCOUNT_A);
        let mut accounts = Accounts::new(&client);
        let name = format!("{namespace}-a");
        accounts
            .put(&name, json!({"roleArn": role_arn(ACCOUNT_A), "allowedNamespaces": {"names": ["someone-else"]}}))
            .await;
        world.create("nightly", json!({"account": name, "target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *"})).await;
        world.create("leaving", json!({"account": name, "target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *", "deletionPolicy": "Delete"})).await;
        world.create("ghost", json!({"account": format!("{namespace}-missing"), "target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *"})).await;
        let stalled = world
            .until("nightly", "Stalled AccountNotAllowed", |o| schedule_condition(o, "Stalled") == Some(("True".into(), "AccountNotAllowed".into())))
            .await;
        let message = stalled_message(&stalled.status.expect("status").conditions);
        assert!(message.contains(&name) && message.contains(&namespace), "{message}");
        world
            .until("ghost", "Stalled AccountNotFound", |o| schedule_condition(o, "Stalled") == Some(("True".into(), "AccountNotFound".into())))
            .await;
        // Due and run-now: still nothing reaches AWS for either of them.
        let patch = json!({"metadata": {"annotations": {"fsxbackup.io/run-now": "1"}}});
        world.api().patch("nightly", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("run-now");
        world.clock.set_now(world.clock.now() + SignedDuration::from_hours(25));
        tokio::time::sleep(Duration::from_secs(3)).await;
        // Deleting an object with deletionPolicy Delete whose account refuses it:
        // nothing deleted, nothing called, the finalizer stays, and it says why.
        world.until("leaving", "Stalled", |o| schedule_condition(o, "Stalled").is_some_and(|(s, _)| s == "True")).await;
        world.api().delete("leaving", &DeleteParams::default()).await.expect("delete");
        eventually("the refused deletion reported", WAIT, || async {
            let notes = crate::support::world::event_notes(&client, &namespace, "leaving").await;
            notes
                .into_iter()
                .find(|(reason, note)| reason == "AccountNotAllowed" && note.contains("cannot be deleted"))
        })
        .await;
        assert!(world.api().get_opt("leaving").await.expect("get").is_some(), "held by its finalizer");
        let requests = world.emulator.requests();
        assert!(requests.is_empty(), "no AWS call at all: {requests:?}");
        // Neither an object's account nor an account's role can change under its backups.
        let moved = json!({"spec": {"account": format!("{namespace}-elsewhere")}});
        let refused = world.api().patch("nightly", &PatchParams::default(), &Patch::Merge(&moved)).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.to_string().contains("spec.account cannot change")),
            "{refused:?}"
        );
        let accounts_api: Api<FsxBackupAccount> = Api::all(client.clone());
        let rerole = json!({"spec": {"roleArn": role_arn(ACCOUNT_B)}});
        let refused = accounts_api.patch(&name, &PatchParams::default(), &Patch::Merge(&rerole)).await;
        assert!(refused.as_ref().is_err_and(|e| e.to_string().contains("roleArn cannot change")), "{refused:?}");

        // The platform team allows the namespace: the object goes ahead at once
        // (the account is watched), through its role.
        accounts
            .put(&name, json!({"roleArn": role_arn(ACCOUNT_A), "allowedNamespaces": {"names": ["someone-else", namespace]}}))
            .await;
        world
            .until("nightly", "no longer stalled", |o| schedule_condition(o, "Stalled").is_some_and(|(status, _)| status == "False"))
            .await;
        eventually("a backup in account A", WAIT, || {
            let made = world.emulator.state_of(ACCOUNT_A).regions.get(REGION).is_some_and(|r| !r.backups.is_empty());
            async move { made.then_some(()) }
        })
        .await;
        assert!(world.emulator.requests().iter().all(|r| r.account.as_deref() == Some(ACCOUNT_A)));
        // Allowed now: the held deletion goes through.
        eventually("the deletion done", WAIT, || async {
            world.api().get_opt("leaving").await.expect("get").is_none().then_some(())
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_role_whose_trust_refuses_stalls_access_denied_naming_the_role() {
    crate::support::with_namespace("acct-trust", |client, namespace| async move {
        let world = World::new(client.clone(), namespace.clone()).await;
        world.emulator.add_role(RoleSeed::new(role_arn(ACCOUNT_A)).external_id("right")).expect("role");
        let fs = tagged_file_system(&world, ACCOUNT_A);
        let mut accounts = Accounts::new(&client);
        let name = format!("{namespace}-a");
        accounts
            .put(&name, json!({"roleArn": role_arn(ACCOUNT_A), "externalId": "wrong", "allowedNamespaces": {"names": [namespace]}}))
            .await;
        // Not due for hours: the role is checked at once all the same.
        world.create("nightly", json!({"account": name, "target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *"})).await;
        let stalled = world
            .until("nightly", "Stalled AccessDenied", |o| schedule_condition(o, "Stalled") == Some(("True".into(), "AccessDenied".into())))
            .await;
        let message = stalled_message(&stalled.status.expect("status").conditions);
        assert!(message.contains(&role_arn(ACCOUNT_A)) && message.contains(&name), "names the role and the account: {message}");
        assert!(message.contains("trust policy"), "{message}");
        let requests = world.emulator.requests();
        assert!(requests.iter().all(|r| r.operation == "AssumeRole" && r.outcome == "AccessDenied"), "only refused AssumeRoles: {requests:?}");
        let port = world.operator.metrics_port().expect("metrics port");
        eventually("the refusal counted as AssumeRole", WAIT, || async move {
            metrics_text(port).await.filter(|m| {
                m.contains(&format!("operation=\"AssumeRole\",code=\"AccessDenied\",account=\"{ACCOUNT_A}\""))
            })
        })
        .await;

        // The trust is fixed on the AWS side (the right external id): the next
        // look succeeds with no change to the object.
        accounts
            .put(&name, json!({"roleArn": role_arn(ACCOUNT_A), "externalId": "right", "allowedNamespaces": {"names": [namespace]}}))
            .await;
        world
            .until("nightly", "no longer stalled", |o| schedule_condition(o, "Stalled").is_some_and(|(status, _)| status == "False"))
            .await;
    })
    .await;
}

#[tokio::test]
async fn sessions_are_renewed_across_expiry_with_no_failed_run() {
    crate::support::with_namespace("acct-renew", |client, namespace| async move {
        let world = World::new(client.clone(), namespace.clone()).await;
        // Test-only knob: the sessions of this role last 4 s.
        world.emulator.add_role(RoleSeed::new(role_arn(ACCOUNT_A)).credential_lifetime_seconds(4)).expect("role");
        let fs = tagged_file_system(&world, ACCOUNT_A);
        let mut accounts = Accounts::new(&client);
        let name = format!("{namespace}-a");
        accounts.put(&name, json!({"roleArn": role_arn(ACCOUNT_A), "allowedNamespaces": {"names": [namespace]}})).await;
        let created = world.create("hourly", json!({"account": name, "target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *"})).await;
        let uid = created.uid().expect("uid");
        world.until("hourly", "scheduled", scheduled).await;
        // Five runs over ~15 s: three session lifetimes.
        for run in 1..=5 {
            let next = world.next_hour();
            world.clock.set_now(next + SignedDuration::from_secs(1));
            eventually(&format!("run {run} backed up"), WAIT, || {
                let made = world
                    .emulator
                    .state_of(ACCOUNT_A)
                    .regions
                    .get(REGION)
                    .map(|r| r.backups.iter().filter(|b| tag(b, "fsxbackup.io/owner-uid") == Some(uid.as_str()) && b.lifecycle == BackupLifecycle::Available).count())
                    .unwrap_or_default();
                async move { (made == run).then_some(()) }
            })
            .await;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let requests = world.emulator.requests();
        let assumed = requests.iter().filter(|r| r.operation == "AssumeRole" && r.outcome == "ok").count();
        assert!(assumed >= 3, "the session was renewed ({assumed} AssumeRole)");
        let refused: Vec<_> = requests.iter().filter(|r| r.outcome != "ok").collect();
        assert!(refused.is_empty(), "no call failed, none on an expired session: {refused:?}");
        let status = world.get("hourly").await.status.expect("status");
        assert_eq!(status.last_run_result.as_deref(), Some("Succeeded"), "{status:?}");
    })
    .await;
}

#[tokio::test]
async fn copy_slots_are_per_account_and_a_copy_never_crosses_accounts() {
    crate::support::with_namespace("acct-copy", |client, namespace| async move {
        let world = World::with_args(client.clone(), namespace.clone(), &["--copy-slots-per-region", "1"]).await;
        let emulator = &world.emulator;
        emulator.set_timing(Timing { create_duration: Duration::ZERO, copy_duration: Duration::from_secs(6) });
        emulator.add_role(RoleSeed::new(role_arn(ACCOUNT_A))).expect("role a");
        emulator.add_role(RoleSeed::new(role_arn(ACCOUNT_B))).expect("role b");
        let mut accounts = Accounts::new(&client);
        let (account_a, account_b) = (format!("{namespace}-a"), format!("{namespace}-b"));
        for (name, id) in [(&account_a, ACCOUNT_A), (&account_b, ACCOUNT_B)] {
            accounts.put(name, json!({"roleArn": role_arn(id), "allowedNamespaces": {"names": [namespace]}})).await;
        }
        let source = |account: &str| {
            let fs = tagged_file_system(&world, account);
            emulator
                .seed_backup_in(account, REGION, BackupSeed::of_file_system(&fs, BackupType::UserInitiated))
                .expect("seed source")
        };
        let (a1, a2, b1) = (source(ACCOUNT_A), source(ACCOUNT_A), source(ACCOUNT_B));
        let copy = |account: &str, backup: &str| json!({"account": account, "source": {"backupId": backup, "region": REGION}, "destinationRegion": DESTINATION});
        world.create_copy("a1", copy(&account_a, &a1)).await;
        world.create_copy("b1", copy(&account_b, &b1)).await;
        // Account B's only slot is its own: both copy at once.
        let copying = |account: &str| {
            emulator
                .state_of(account)
                .regions
                .get(DESTINATION)
                .is_some_and(|r| r.backups.iter().any(|b| b.lifecycle == BackupLifecycle::Copying))
        };
        eventually("a copy in progress in both accounts at once", WAIT, || {
            let both = copying(ACCOUNT_A) && copying(ACCOUNT_B);
            async move { both.then_some(()) }
        })
        .await;
        for name in ["a1", "b1"] {
            world.until_copy(name, "copying", |o| copy_condition(o, "Reconciling") == Some(("True".into(), "Copying".into()))).await;
        }
        // A second copy in account A waits for A's slot, B's being no help.
        world.create_copy("a2", copy(&account_a, &a2)).await;
        world
            .until_copy("a2", "waiting for a copy slot", |o| copy_condition(o, "Reconciling") == Some(("True".into(), "WaitingForCopySlot".into())))
            .await;
        let port = world.operator.metrics_port().expect("metrics port");
        for account in [ACCOUNT_A, ACCOUNT_B] {
            let series = format!("fsxbackup_copies_in_progress{{account=\"{account}\",region=\"{DESTINATION}\"}} 1");
            eventually(&series, WAIT, || {
                let series = series.clone();
                async move { metrics_text(port).await.filter(|m| m.contains(&series)) }
            })
            .await;
        }
        for name in ["a1", "b1", "a2"] {
            world.until_copy(name, "copied", |o| copy_condition(o, "Ready") == Some(("True".into(), "CopyAvailable".into()))).await;
        }
        let copies_in = |account: &str| {
            emulator.state_of(account).regions.get(DESTINATION).map(|r| r.backups.len()).unwrap_or_default()
        };
        assert_eq!((copies_in(ACCOUNT_A), copies_in(ACCOUNT_B), copies_in(ACCOUNT_ID)), (2, 1, 0));

        // A copy following a schedule of another account is refused before any call.
        let fs = tagged_file_system(&world, ACCOUNT_A);
        world.create("nightly", json!({"account": account_a, "target": {"fileSystemIds": [fs]}, "schedule": "0 3 * * *"})).await;
        let before = emulator.requests().iter().filter(|r| r.operation == "CopyBackup").count();
        world.create_copy("crossing", json!({"account": account_b, "source": {"scheduleRef": {"name": "nightly"}}, "destinationRegion": DESTINATION})).await;
        let stalled = world
            .until_copy("crossing", "Stalled CrossAccountCopy", |o| copy_condition(o, "Stalled") == Some(("True".into(), "CrossAccountCopy".into())))
            .await;
        let message = stalled_message(&stalled.status.expect("status").conditions);
        assert!(message.contains(ACCOUNT_A) && message.contains(ACCOUNT_B), "{message}");
        let after = emulator.requests().iter().filter(|r| r.operation == "CopyBackup").count();
        assert_eq!(before, after, "no CopyBackup for a cross-account copy");
        let crossing_calls = emulator
            .requests()
            .iter()
            .filter(|r| r.role_session_name.as_deref() == Some(format!("{namespace}.crossing").as_str()) && r.operation != "AssumeRole")
            .count();
        assert_eq!(crossing_calls, 0, "no FSx call for the refused copy");
    })
    .await;
}
