//! The in-process layer: a reconciler run inside the test, against the real
//! apiserver, with its FSx boundary built by the test — the real `AwsFsx` with
//! test-sized timeouts, wrapped in a fault layer that can hang any call. Cheaper
//! than the binary where a test needs to reach below the command line (SDK
//! timeouts, a call that never returns).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::operator::{TestClock, eventually, install_crds, test_dir};
use crate::support::world::{REGION, WAIT, condition_of, events};
use fsx_backup_operator::clock::Clock;
use fsx_backup_operator::controller::lenient::Lenient;
use fsx_backup_operator::controller::watches::Wiring;
use fsx_backup_operator::controller::{Context, FINALIZER, Settings, finalizer, schedule};
use fsx_backup_operator::crd::{FsxBackupSchedule, FsxBackupScheduleStatus};
use fsx_backup_operator::fsx::{
    AwsFsx, AwsFsxConfig, Backup, BackupTarget, BackupsById, ByTarget, CopyBackupRequest,
    CreateBackupRequest, Deleted, FileSystem, FsxApi, FsxError, Place,
};
use fsx_backup_operator::metrics::Metrics;
use fsx_emulator::{Emulator, Faults, FileSystemSeed, FileSystemType};
use jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use tokio::sync::watch;

/// The FSx boundary with switches: while `hang` is on, every call waits
/// forever; while `panic` is on, every call panics (a bug below the planner).
#[derive(Debug)]
struct Hangable<F> {
    inner: F,
    hang: Arc<AtomicBool>,
    panic: Arc<AtomicBool>,
}

impl<F> Hangable<F> {
    async fn gate(&self) {
        assert!(!self.panic.load(Ordering::Relaxed), "injected panic");
        if self.hang.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }
}

impl<F: FsxApi> FsxApi for Hangable<F> {
    async fn create_backup(
        &self,
        at: &Place,
        request: &CreateBackupRequest,
    ) -> Result<Backup, FsxError> {
        self.gate().await;
        self.inner.create_backup(at, request).await
    }
    async fn describe_backups_of_targets(&self, at: &Place, targets: &[BackupTarget]) -> ByTarget {
        self.gate().await;
        self.inner.describe_backups_of_targets(at, targets).await
    }
    async fn describe_backups_by_ids(
        &self,
        at: &Place,
        ids: &[String],
    ) -> Result<BackupsById, FsxError> {
        self.gate().await;
        self.inner.describe_backups_by_ids(at, ids).await
    }
    async fn delete_backup(&self, at: &Place, backup_id: &str) -> Result<Deleted, FsxError> {
        self.gate().await;
        self.inner.delete_backup(at, backup_id).await
    }
    async fn copy_backup(
        &self,
        destination: &Place,
        request: &CopyBackupRequest,
    ) -> Result<Backup, FsxError> {
        self.gate().await;
        self.inner.copy_backup(destination, request).await
    }
    async fn describe_file_systems(&self, at: &Place) -> Result<Vec<FileSystem>, FsxError> {
        self.gate().await;
        self.inner.describe_file_systems(at).await
    }
    async fn describe_user_backups(&self, at: &Place) -> Result<Vec<Backup>, FsxError> {
        self.gate().await;
        self.inner.describe_user_backups(at).await
    }
    async fn tag_backup(
        &self,
        at: &Place,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), FsxError> {
        self.gate().await;
        self.inner.tag_backup(at, arn, tags).await
    }
}

/// A schedule controller for `namespace`, running in this test until the
/// returned sender is dropped or set.
struct InProcess {
    emulator: Emulator,
    _running: fsx_emulator::RunningEmulator,
    clock: TestClock,
    hang: Arc<AtomicBool>,
    panic: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    fs: String,
    api: Api<FsxBackupSchedule>,
}

impl InProcess {
    async fn start(client: kube::Client, namespace: &str, reconcile_timeout: Duration) -> Self {
        install_crds();
        let emulator = Emulator::new();
        let running = emulator.start().await.expect("emulator");
        let fs = emulator
            .seed_file_system(REGION, FileSystemSeed::new(FileSystemType::Windows))
            .expect("seed");
        let clock = TestClock::new(&test_dir(namespace));
        let (operator_clock, clock_moved) = Clock::offset_from_file(clock.path().to_path_buf())
            .await
            .expect("clock");
        let hang = Arc::new(AtomicBool::new(false));
        let panic = Arc::new(AtomicBool::new(false));
        let fsx = Hangable {
            inner: AwsFsx::new(
                crate::support::aws_sdk_config(REGION).await,
                AwsFsxConfig {
                    endpoint_url: Some(running.endpoint.clone()),
                    max_attempts: 2,
                    initial_backoff: Duration::from_millis(50),
                    requests_per_second: None,
                    attempt_timeout: Duration::from_secs(1),
                    operation_timeout: Duration::from_secs(3),
                    ..AwsFsxConfig::default()
                },
            ),
            hang: hang.clone(),
            panic: panic.clone(),
        };
        let settings = Settings {
            default_region: Some(REGION.into()),
            poll_interval: Duration::from_secs(1),
            retry_interval: Duration::from_secs(1),
            reconcile_timeout,
            ..Settings::default()
        };
        let (metrics, _registry) = Metrics::new();
        let ctx = Context::new(
            client.clone(),
            fsx,
            operator_clock,
            settings,
            Arc::new(metrics),
            None,
        );
        let (stop, mut stopped) = watch::channel(false);
        let wiring = Wiring {
            clock_moved: Some(clock_moved),
            synced: Arc::new(AtomicUsize::new(0)),
        };
        let watched: Api<Lenient<FsxBackupSchedule>> = Api::namespaced(client.clone(), namespace);
        tokio::spawn(schedule::run(watched, ctx, None, wiring, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Self {
            emulator,
            _running: running,
            clock,
            hang,
            panic,
            stop,
            fs,
            api: Api::namespaced(client, namespace),
        }
    }

    /// Creates an hourly schedule of the file system and waits until it is scheduled.
    async fn create_scheduled(&self, name: &str) {
        let object: FsxBackupSchedule = serde_json::from_value(json!({
            "apiVersion": "fsxbackup.io/v1alpha1",
            "kind": "FsxBackupSchedule",
            "metadata": {"name": name},
            "spec": {"target": {"fileSystemIds": [self.fs]}, "schedule": "0 * * * *"},
        }))
        .expect("object");
        self.api
            .create(&PostParams::default(), &object)
            .await
            .expect("create");
        self.until(name, "scheduled", |o| {
            o.status
                .as_ref()
                .is_some_and(|s| s.next_schedule_time.is_some())
        })
        .await;
    }

    async fn until(&self, name: &str, what: &str, check: impl Fn(&FsxBackupSchedule) -> bool) {
        eventually(what, WAIT, || async {
            let object = self.api.get(name).await.ok()?;
            check(&object).then_some(())
        })
        .await;
    }

    /// Moves the operator's clock just past the next hourly run.
    fn reach_next_run(&self) {
        let second = self.clock.now().as_second();
        let slot = Timestamp::from_second(second - second.rem_euclid(3600) + 3600).expect("valid");
        self.clock.set_now(slot + SignedDuration::from_secs(1));
    }

    fn creates(&self) -> usize {
        self.emulator
            .state()
            .regions
            .get(REGION)
            .map_or(0, |r| r.backups.len())
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn reason_is(object: &FsxBackupSchedule, type_: &str, status: &str, reason: &str) -> bool {
    object.status.as_ref().is_some_and(|s| {
        condition_of(&s.conditions, type_) == Some((status.to_owned(), reason.to_owned()))
    })
}

fn available(object: &FsxBackupSchedule) -> bool {
    object
        .status
        .as_ref()
        .and_then(|s| s.targets.first())
        .and_then(|t| t.last_backup.as_ref())
        .is_some_and(|b| b.lifecycle == "AVAILABLE")
}

/// An FSx endpoint that accepts and never answers: each attempt times out, the
/// object says it is retrying, and the backup is made once FSx answers again.
#[tokio::test]
async fn a_hung_fsx_endpoint_times_out_and_is_retried() {
    crate::support::with_namespace("inproc-hung-fsx", |client, namespace| async move {
        let world = InProcess::start(client, &namespace, Duration::from_mins(10)).await;
        world.create_scheduled("hourly").await;
        world.emulator.set_faults(Faults {
            latency: Duration::from_hours(1),
            only_operations: Some(vec!["CreateBackup".into()]),
            ..Faults::default()
        });
        world.reach_next_run();
        world
            .until("hourly", "Reconciling=True RetryingAfterError", |o| {
                reason_is(o, "Reconciling", "True", "RetryingAfterError")
            })
            .await;
        assert_eq!(world.creates(), 0, "no backup while FSx hangs");
        world.emulator.set_faults(Faults::default());
        world.until("hourly", "backup AVAILABLE", available).await;
        assert_eq!(world.creates(), 1);
    })
    .await;
}

/// A call that never returns at all (below any SDK timeout): the reconcile
/// deadline abandons it, says so in an event, and the next attempt succeeds.
#[tokio::test]
async fn a_reconcile_stuck_in_a_call_is_abandoned_at_its_deadline() {
    crate::support::with_namespace("inproc-stuck", |client, namespace| async move {
        let world = InProcess::start(client.clone(), &namespace, Duration::from_secs(2)).await;
        world.create_scheduled("hourly").await;
        world.hang.store(true, Ordering::Relaxed);
        world.reach_next_run();
        eventually("a ReconcileTimedOut event", WAIT, || async {
            events(&client, &namespace, "hourly")
                .await
                .iter()
                .any(|r| r == "ReconcileTimedOut")
                .then_some(())
        })
        .await;
        assert_eq!(world.creates(), 0);
        world.hang.store(false, Ordering::Relaxed);
        world.until("hourly", "backup AVAILABLE", available).await;
        assert_eq!(world.creates(), 1);
    })
    .await;
}

/// A panic inside one reconcile (a bug) is caught: the controller keeps running
/// and the object's next reconcile, once the bug is gone, makes the backup.
#[tokio::test]
async fn a_panic_in_a_reconcile_is_isolated_and_retried() {
    crate::support::with_namespace("inproc-panic", |client, namespace| async move {
        let world = InProcess::start(client, &namespace, Duration::from_mins(10)).await;
        world.create_scheduled("hourly").await;
        world.panic.store(true, Ordering::Relaxed);
        world.reach_next_run();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(world.creates(), 0);
        world.panic.store(false, Ordering::Relaxed);
        world
            .until("hourly", "backup AVAILABLE after the panics", available)
            .await;
        assert_eq!(world.creates(), 1);
    })
    .await;
}

/// A daily schedule named `nightly`, for tests that write to it by hand.
fn nightly() -> FsxBackupSchedule {
    serde_json::from_value(json!({
        "apiVersion": "fsxbackup.io/v1alpha1",
        "kind": "FsxBackupSchedule",
        "metadata": {"name": "nightly"},
        "spec": {"target": {"fileSystemIds": ["fs-0123456789abcdef0"]}, "schedule": "0 3 * * *"},
    }))
    .expect("object")
}

/// A context for calling the operator's writes directly, with no controller running.
async fn bare_context(client: kube::Client) -> Arc<Context<AwsFsx>> {
    let fsx = AwsFsx::new(
        Box::pin(crate::support::aws_sdk_config(REGION)).await,
        AwsFsxConfig::default(),
    );
    let (metrics, _registry) = Metrics::new();
    Context::new(
        client,
        fsx,
        Clock::system(),
        Settings::default(),
        Arc::new(metrics),
        None,
    )
}

/// A reconcile still running for an object that was deleted and created again
/// under its name (GitOps re-applying it) writes nothing onto the new one: its
/// status write and its finalizer change test the old UID, and the apiserver
/// refuses them. Seen in CI: a copy's late status write put the old object's
/// copies on its successor, which then never adopted them.
#[tokio::test]
async fn a_late_write_for_a_deleted_object_never_lands_on_its_successor() {
    crate::support::with_namespace("inproc-incarnation", |client, namespace| async move {
        install_crds();
        let api: Api<FsxBackupSchedule> = Api::namespaced(client.clone(), &namespace);
        let object = nightly();
        let old = api
            .create(&PostParams::default(), &object)
            .await
            .expect("create");
        api.delete("nightly", &DeleteParams::default())
            .await
            .expect("delete");
        eventually("the first object gone", WAIT, || async {
            api.get_opt("nightly")
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        })
        .await;
        let new = api
            .create(&PostParams::default(), &object)
            .await
            .expect("create again");
        assert_ne!(old.uid(), new.uid());

        let ctx = bare_context(client).await;
        let status = FsxBackupScheduleStatus {
            observed_generation: Some(1),
            last_schedule_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::from_second(Timestamp::now().as_second()).expect("valid"),
            )),
            ..FsxBackupScheduleStatus::default()
        };
        let stale_write = Box::pin(ctx.write_status(&api, &old, None, &status)).await;
        assert!(
            stale_write.is_err(),
            "the old object's status was written: {stale_write:?}"
        );
        let stale_finalizer = Box::pin(finalizer::bring_in_line(&api, Arc::new(old), true)).await;
        assert!(
            stale_finalizer.is_err(),
            "the old object's finalizer was added: {stale_finalizer:?}"
        );
        let untouched = api.get("nightly").await.expect("get");
        assert_eq!(untouched.status, None);
        assert!(
            untouched.finalizers().is_empty(),
            "{:?}",
            untouched.finalizers()
        );

        // The object the writes are for takes them.
        let written = Box::pin(ctx.write_status(&api, &new, None, &status))
            .await
            .expect("write")
            .expect("written");
        assert_eq!(written.status.as_ref(), Some(&status));
        let step = Box::pin(finalizer::bring_in_line(&api, Arc::new(written), true))
            .await
            .expect("finalizer");
        assert!(matches!(step, finalizer::Step::Apply(o) if o.finalizers() == [FINALIZER]));
    })
    .await;
}

/// The operator's own status write is known as such when the watch reports
/// it (it wakes no reconcile); a change anyone makes, even one that lands
/// between the operator's read and its write, is not.
#[tokio::test]
async fn only_a_write_that_changed_nothing_but_the_status_is_taken_for_our_own() {
    crate::support::with_namespace("inproc-own-write", |client, namespace| async move {
        install_crds();
        let api: Api<FsxBackupSchedule> = Api::namespaced(client.clone(), &namespace);
        let object = nightly();
        let created = api
            .create(&PostParams::default(), &object)
            .await
            .expect("create");
        let ctx = bare_context(client).await;
        let status = |missed: u32| FsxBackupScheduleStatus {
            missed_runs: Some(missed),
            ..FsxBackupScheduleStatus::default()
        };
        assert!(!ctx.is_own_write(&created), "nothing written yet");

        let written = Box::pin(ctx.write_status(&api, &created, None, &status(1)))
            .await
            .expect("write")
            .expect("written");
        assert!(
            ctx.is_own_write(&written),
            "our write, nothing else changed"
        );

        // Someone asks for a backup now: a change of theirs.
        let patch = json!({"metadata": {"annotations": {"fsxbackup.io/run-now": "n1"}}});
        let annotated = api
            .patch(
                "nightly",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .expect("annotate");
        assert!(!ctx.is_own_write(&annotated), "their change");

        // A write decided on the object as read before their change carries
        // their change too: its event must still wake a reconcile.
        let over_it =
            Box::pin(ctx.write_status(&api, &written, written.status.as_ref(), &status(2)))
                .await
                .expect("write")
                .expect("written");
        assert!(over_it.annotations().contains_key("fsxbackup.io/run-now"));
        assert!(
            !ctx.is_own_write(&over_it),
            "the write carried a change the reconcile did not see"
        );

        let decided_on_it =
            Box::pin(ctx.write_status(&api, &over_it, over_it.status.as_ref(), &status(3)))
                .await
                .expect("write")
                .expect("written");
        assert!(ctx.is_own_write(&decided_on_it));
    })
    .await;
}
