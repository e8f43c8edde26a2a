//! One reconcile, for every kind. A kind implements [`Reconciler`] (validate,
//! apply, cleanup); the driver owns everything around it: the read-your-writes
//! fresh read, the finalizer, the invalid-spec status, the
//! status write and the effects that go with it, metrics, panic isolation and
//! the error policy (per-object exponential backoff; no retries for what only a
//! person can fix).

use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::api::Api;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::backoff::{MAX_BACKOFF, retry_delay};
use super::departures::Departures;
use super::effects::{Effect, fold_normal_events, perform, publish_event};
use super::finalizer::{self, Step};
use super::gates::Urgency;
use super::incarnation;
use super::lenient::Lenient;
use super::runner::Next;
use super::{Context, Error, ObjectKey};
use crate::conditions::{Health, Reason};
use crate::crd::common::{DeletionPolicy, Notifications};
use crate::fsx::FsxApi;
use crate::metrics::{ControllerLabels, ErrorLabels};

/// The status every kind carries: the kstatus conditions and the generation they are for.
pub trait ObjectStatus: Serialize + PartialEq + Clone + Default + Send + Sync {
    fn conditions(&self) -> &[Condition];
    fn set_health(&mut self, conditions: Vec<Condition>, generation: Option<i64>);
}

/// A custom resource kind the operator manages: where its status and SNS
/// settings live, and its label in metrics and logs.
pub trait ManagedObject:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    type Status: ObjectStatus;
    /// Label of this kind's controller in metrics and logs (`schedule`, `copy`).
    const LABEL: &'static str;
    fn status(&self) -> Option<&Self::Status>;
    fn notifications(&self) -> Option<&Notifications>;
    /// The `FsxBackupAccount` it acts in (`None`: the operator's own).
    fn account(&self) -> Option<&str>;
    /// The Region it acts in most (`None`: the default one); with the account,
    /// where it takes its turn to act (see `gates`).
    fn region(&self) -> Option<&str>;
    fn deletion_policy(&self) -> DeletionPolicy;
    /// The event reason and the noun for what `Retain` leaves in place on deletion
    /// (`BackupsRetained`, `backups`).
    const RETAINED: (&'static str, &'static str);
}

/// Both kinds carry `conditions` and `observedGeneration` in their status, and
/// `notifications` in their spec.
macro_rules! managed_object {
    ($($object:ty => $status:ty, $label:literal, $retained:expr, |$s:ident| $region:expr);+) => {$(
        impl ObjectStatus for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn set_health(&mut self, conditions: Vec<Condition>, generation: Option<i64>) {
                self.conditions = conditions;
                self.observed_generation = generation;
            }
        }
        impl ManagedObject for $object {
            type Status = $status;
            const LABEL: &'static str = $label;
            const RETAINED: (&'static str, &'static str) = $retained;
            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }
            fn notifications(&self) -> Option<&Notifications> {
                self.spec.notifications.as_ref()
            }
            fn account(&self) -> Option<&str> {
                self.spec.account.as_deref()
            }
            fn region(&self) -> Option<&str> {
                let $s = &self.spec;
                $region
            }
            fn deletion_policy(&self) -> DeletionPolicy {
                self.spec.deletion_policy.unwrap_or_default()
            }
        }
    )+};
}
managed_object!(
    crate::crd::FsxBackupSchedule => crate::crd::schedule::FsxBackupScheduleStatus, "schedule", ("BackupsRetained", "backups"), |spec| spec.region.as_deref();
    // Copies are made, polled and pruned in the destination Region.
    crate::crd::FsxBackupCopy => crate::crd::copy::FsxBackupCopyStatus, "copy", ("CopiesRetained", "copies"), |spec| Some(spec.destination_region.as_str())
);

/// What an `apply` decided: the status to record, its health (the driver turns
/// it into conditions, keeping transition times), what to tell the world once
/// it is recorded, and when to look again.
#[derive(Debug)]
pub struct Applied<S> {
    pub status: S,
    pub health: Health,
    pub effects: Vec<Effect>,
    pub requeue: Duration,
    /// The status is a checkpoint to make durable before going on (a run-now
    /// request, recorded before it is asked of FSx): once written, the driver applies
    /// again at once on the object as written, in the same reconcile, rather
    /// than waiting for the watch to deliver its own write.
    pub checkpoint: bool,
}

#[cfg(test)]
impl<S> Applied<S> {
    /// The conditions `health` becomes on a first reconcile of generation 1.
    pub fn conditions(&self) -> Vec<Condition> {
        self.health.conditions(&[], Some(1), Timestamp::UNIX_EPOCH)
    }
}

/// How often to poll work in flight and retry transient failures.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub poll: Duration,
    pub retry: Duration,
}

/// One kind of custom resource the operator reconciles.
pub trait Reconciler: Send + Sync + Sized + 'static {
    type Object: ManagedObject;
    /// The spec after every check that the schema cannot do.
    type Valid: Send + Sync;
    type Fsx: FsxApi;

    fn context(&self) -> &Context<Self::Fsx>;
    /// Pure: the spec as the reconciler acts on it, or the message naming the field to fix.
    fn validate(&self, object: &Self::Object, now: Timestamp) -> Result<Self::Valid, String>;
    /// Pure, a hint for the gates: whether this reconcile is expected to start
    /// a backup due now, which then acts before status writes (see `gates`).
    fn urgency(&self, _object: &Self::Object, _now: Timestamp) -> Urgency {
        Urgency::Routine
    }
    /// Fetch, plan and execute for a valid object; the driver records the result.
    fn apply(
        &self,
        object: &Self::Object,
        valid: Self::Valid,
        now: Timestamp,
    ) -> impl Future<Output = Result<Applied<<Self::Object as ManagedObject>::Status>, Error>> + Send;
    /// The object is being deleted: whatever its deletion policy asks for.
    /// Returns the event that says what became of the object's backups.
    fn cleanup(&self, object: &Self::Object) -> impl Future<Output = Result<Effect, Error>> + Send;
    /// Drops what the operator holds for an object that is gone or going
    /// (metrics series, copy slots). Idempotent: called before its cleanup, when
    /// the watch reports it deleted, and after a reconcile that finds it gone.
    fn forget(&self, object: &Self::Object);
    /// After every reconcile (e.g. queue gauges).
    fn after_reconcile(&self) {}
    /// Each object the watch reports created or changed, as it arrives (the
    /// schedules tell the copies that follow them).
    fn changed(&self, _object: &Lenient<Self::Object>) {}
}

/// What a controller of `R` watches: its objects, however malformed.
pub type Watched<R> = Lenient<<R as Reconciler>::Object>;

/// What every reconcile of one kind is given.
pub(super) struct Driven<R: Reconciler> {
    pub(super) reconciler: Arc<R>,
    pub(super) departures: Departures<R>,
}

impl<R: Reconciler> Driven<R> {
    /// One reconcile of `object`, and when to look at it next: as it asked,
    /// or as the error policy says when it failed.
    pub(super) async fn reconcile(self: Arc<Self>, object: Arc<Watched<R>>) -> Next {
        match reconcile::<R>(object.clone(), self.clone()).await {
            Ok(next) => next,
            Err(err) => error_policy(&object, &err, &self),
        }
    }
}

async fn reconcile<R: Reconciler>(
    object: Arc<Watched<R>>,
    driven: Arc<Driven<R>>,
) -> Result<Next, Error> {
    let reconciler = &*driven.reconciler;
    let ctx = reconciler.context();
    let key = ObjectKey::of(&*object);
    tracing::debug!(object = %key, "reconciling");
    let api: Api<Watched<R>> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let started = std::time::Instant::now();
    let deadline = ctx.settings.reconcile_timeout;
    // A bug in one object's reconcile must not take every other object down with
    // it, and nothing it waits for may hold it forever.
    let guarded = AssertUnwindSafe(guarded(reconciler, &api, object.clone())).catch_unwind();
    let result = match tokio::time::timeout(deadline, guarded).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(object = %key, panic = %message, "reconcile panicked");
            Err(Error::Panicked(message))
        }
        Err(_) => {
            let note = format!(
                "the reconcile did not finish within {deadline:?} (an FSx or Kubernetes call that does not answer, or a long queue behind the FSx rate limit); retrying with backoff"
            );
            // Many may time out together (a place's queue behind its rate limit).
            let event =
                || publish_event(ctx, &*object, true, "ReconcileTimedOut", "Reconcile", &note);
            ctx.gates.record(event).await;
            Err(Error::TimedOut(deadline))
        }
    };
    observe(ctx, R::Object::LABEL, started, &result);
    if result.is_ok() {
        ctx.memory(&key, |m| m.failures = 0);
    }
    reconciler.after_reconcile();
    if driven.departures.after_reconcile(&object) {
        return Ok(Next::OnChange);
    }
    result
}

async fn guarded<R: Reconciler>(
    reconciler: &R,
    api: &Api<Watched<R>>,
    object: Arc<Watched<R>>,
) -> Result<Next, Error> {
    let ctx = reconciler.context();
    // Every step below that waits on I/O is boxed: a reconcile waiting for its
    // turn (see `gates`) then carries only what it holds, not the largest step.
    let object = Box::pin(ctx.fresh(api, object)).await?;
    match &*object {
        Lenient::Unreadable { error, .. } => {
            return Box::pin(unreadable::<R>(ctx, api, &object, error)).await;
        }
        Lenient::Read {
            unreadable_status: Some(why),
            ..
        } => return Box::pin(reset_status::<R>(ctx, api, &object, why)).await,
        Lenient::Read { .. } => {}
    }
    let wanted = object
        .read()
        .is_some_and(|o| o.deletion_policy() == DeletionPolicy::Delete);
    let cached = Arc::clone(&object);
    match Box::pin(finalizer::bring_in_line(api, object, wanted)).await? {
        Step::Apply(watched) => {
            // A finalizer patch is our write too: the next fresh read must know it.
            if !Arc::ptr_eq(&watched, &cached) {
                ctx.saw_version(&*watched);
            }
            let object = read(&watched)?;
            apply(reconciler, api, object).await
        }
        Step::Cleanup(watched) => Box::pin(clean_up(reconciler, api, &watched)).await,
        Step::Gone => Ok(Next::OnChange),
    }
}

/// The object is being deleted and its finalizer is ours: its deletion
/// policy, then the finalizer released. Boxed by its caller: rare, and every
/// reconcile would otherwise carry its size.
async fn clean_up<R: Reconciler>(
    reconciler: &R,
    api: &Api<Watched<R>>,
    watched: &Watched<R>,
) -> Result<Next, Error> {
    let ctx = reconciler.context();
    let object = read(watched)?;
    reconciler.forget(object);
    let note = match Box::pin(reconciler.cleanup(object)).await {
        Ok(note) => note,
        Err(Error::Refused(refused)) => {
            // The backups are kept (the finalizer stays): said on the object.
            let message = format!(
                "the backups cannot be deleted (deletionPolicy Delete): {refused}. Fix the account, or set deletionPolicy: Retain to let the object go"
            );
            Box::pin(publish_event(
                ctx,
                object,
                true,
                refused.reason().as_str(),
                "Delete",
                &message,
            ))
            .await;
            return Err(Error::Refused(refused));
        }
        Err(err) => return Err(err),
    };
    Box::pin(finalizer::release(api, watched)).await?;
    Box::pin(perform(ctx, object, None, vec![note])).await;
    ctx.forget(&ObjectKey::of(object));
    Ok(Next::OnChange)
}

/// The object as its kind; a finalizer patch answers with the object as stored,
/// which may have become unreadable meanwhile.
fn read<K>(watched: &Lenient<K>) -> Result<&K, Error> {
    watched
        .read()
        .ok_or_else(|| Error::Unreadable("changed while reconciling".into()))
}

/// An object that cannot be read as its kind: reported on the object (a Warning
/// event and `Stalled`, once per episode) and left alone until it changes. Nothing
/// is backed up or deleted for it meanwhile; every other object carries on.
async fn unreadable<R: Reconciler>(
    ctx: &Context<R::Fsx>,
    api: &Api<Watched<R>>,
    object: &Watched<R>,
    error: &str,
) -> Result<Next, Error> {
    let key = ObjectKey::of(object);
    if ctx.memory(&key, |m| m.failures == 0) {
        let message = format!(
            "the object cannot be read: {error}. Correct the field (kubectl edit); until then nothing is backed up or deleted for it"
        );
        tracing::error!(object = %key, %error, "object cannot be read");
        publish_event(
            ctx,
            object,
            true,
            Reason::InvalidSpec.as_str(),
            "Read",
            &message,
        )
        .await;
        let generation = object.meta().generation;
        let conditions = Health::stalled(Reason::InvalidSpec, message).conditions(
            &[],
            generation,
            ctx.clock.now(),
        );
        let patch = serde_json::json!({
            "status": {"conditions": conditions, "observedGeneration": generation}
        });
        let params = kube::api::PatchParams::default();
        if let Err(err) = api
            .patch_status(&key.name, &params, &kube::api::Patch::Merge(&patch))
            .await
        {
            tracing::warn!(object = %key, error = %err, "could not report the unreadable object in its status");
        }
    }
    Err(Error::Unreadable(error.to_owned()))
}

/// An object whose status cannot be read (edited by hand beyond its bounds): the
/// status is removed and rebuilt by the next reconcile, from FSx and the spec.
async fn reset_status<R: Reconciler>(
    ctx: &Context<R::Fsx>,
    api: &Api<Watched<R>>,
    object: &Watched<R>,
    why: &str,
) -> Result<Next, Error> {
    let key = ObjectKey::of(object);
    tracing::warn!(object = %key, error = %why, "status cannot be read; rebuilding it");
    count_error(ctx, R::Object::LABEL, "unreadable_status");
    let message = format!("the status cannot be read ({why}); it is rebuilt from FSx");
    publish_event(ctx, object, true, "StatusRebuilt", "Read", &message).await;
    let params = kube::api::PatchParams::default();
    let removal = json_patch::PatchOperation::Remove(json_patch::RemoveOperation {
        path: incarnation::pointer("/status"),
    });
    api.patch_status(
        &key.name,
        &params,
        &incarnation::patch(object, vec![removal]),
    )
    .await?;
    // The status change is watched: the rebuild follows at once.
    Ok(Next::OnChange)
}

/// Validate, then apply and record; an invalid spec is recorded as `Stalled` and
/// waits for the next spec change. A checkpoint (see [`Applied::checkpoint`])
/// is written and applied again at once, on the object as written.
async fn apply<R: Reconciler>(
    reconciler: &R,
    api: &Api<Watched<R>>,
    object: &R::Object,
) -> Result<Next, Error> {
    let (action, written) = apply_once(reconciler, api, object).await?;
    match written {
        Some(object) => Ok(apply_once(reconciler, api, &object).await?.0),
        None => Ok(action),
    }
}

/// One pass of [`apply`]: the action, and the object as written when the
/// status was a checkpoint to go on from.
async fn apply_once<R: Reconciler>(
    reconciler: &R,
    api: &Api<Watched<R>>,
    object: &R::Object,
) -> Result<(Next, Option<Box<R::Object>>), Error> {
    let ctx = reconciler.context();
    let now = ctx.clock.now();
    let previous = object.status();
    let region = object.region().or(ctx.settings.default_region.as_deref());
    let place = (
        object.account().map(str::to_owned),
        region.map(str::to_owned),
    );
    let urgency = reconciler.urgency(object, now);
    let (applied, action) = match reconciler.validate(object, now) {
        Ok(valid) => match ctx
            .gates
            .act(place, urgency, || reconciler.apply(object, valid, now))
            .await
        {
            Ok(applied) => {
                let action = Next::After(applied.requeue);
                (applied, action)
            }
            // Fixed outside the object (the FsxBackupAccount is watched): look
            // again on its change, or at the slowest pace.
            Err(Error::Refused(refused)) => (
                stalled(previous, refused.reason(), refused.to_string()),
                Next::After(MAX_BACKOFF),
            ),
            Err(err) => return Err(err),
        },
        Err(message) => (
            stalled(previous, Reason::InvalidSpec, message),
            Next::OnChange,
        ),
    };
    let checkpoint = applied.checkpoint;
    let written = record(ctx, api, object, now, applied).await?;
    // Not for an object being deleted meanwhile, nor one whose status cannot be
    // read back: those go through the guards of a fresh reconcile.
    let go_on = written
        .filter(|w| checkpoint && w.meta().deletion_timestamp.is_none())
        .and_then(|w| match w {
            Lenient::Read {
                object,
                unreadable_status: None,
            } => Some(Box::new(object)),
            Lenient::Read { .. } | Lenient::Unreadable { .. } => None,
        });
    Ok((action, go_on))
}

/// The status of an object whose spec is invalid, or whose account refuses it:
/// as it was, `Stalled`; a Warning event the first time this message is seen.
fn stalled<S: ObjectStatus>(previous: Option<&S>, reason: Reason, message: String) -> Applied<S> {
    let status = previous.cloned().unwrap_or_default();
    let effects = if status.conditions().iter().any(|c| c.message == message) {
        Vec::new()
    } else {
        vec![Effect::event(
            true,
            reason.as_str(),
            "Validate",
            message.clone(),
        )]
    };
    Applied {
        status,
        health: Health::stalled(reason, message),
        effects,
        requeue: Duration::ZERO,
        checkpoint: false,
    }
}

/// Writes the status with its health as conditions (only when it changed), then
/// performs the effects that describe it: after the write, so a failed write that
/// is retried does not report twice. Returns the object as written, if it was.
/// Not an `async fn`, which would keep `applied` twice (as its argument and as
/// a local) in every reconcile waiting for its turn to write.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice"
)]
fn record<'a, F, K: ManagedObject>(
    ctx: &'a Context<F>,
    api: &'a Api<Lenient<K>>,
    object: &'a K,
    now: Timestamp,
    mut applied: Applied<K::Status>,
) -> impl Future<Output = Result<Option<Lenient<K>>, Error>> + 'a {
    async move {
        let previous = object.status();
        let generation = object.meta().generation;
        let old = previous.map_or(&[][..], ObjectStatus::conditions);
        let conditions = applied.health.conditions(old, generation, now);
        applied.status.set_health(conditions, generation);
        let effects = fold_normal_events(std::mem::take(&mut applied.effects));
        let status = &applied.status;
        ctx.gates
            .record(|| async {
                let written = Box::pin(ctx.write_status(api, object, previous, status)).await?;
                Box::pin(perform(ctx, object, object.notifications(), effects)).await;
                Ok(written)
            })
            .await
    }
}

fn error_policy<R: Reconciler>(object: &Watched<R>, error: &Error, driven: &Driven<R>) -> Next {
    if driven.departures.after_reconcile(object) {
        return Next::OnChange;
    }
    let ctx = driven.reconciler.context();
    let key = ObjectKey::of(object);
    let failures = ctx.memory(&key, |m| {
        m.failures = m.failures.saturating_add(1);
        m.failures
    });
    let delay = retry_delay(
        error,
        failures,
        ctx.settings.retry_interval,
        ctx.settings.poll_interval,
    );
    tracing::warn!(object = %key, kind = error.kind(), error = %error, retry_in = ?delay, "reconcile failed");
    delay.map_or(Next::OnChange, Next::After)
}

/// Records a reconcile's duration and, when it failed, its error kind.
fn observe<F>(
    ctx: &Context<F>,
    controller: &str,
    started: std::time::Instant,
    result: &Result<Next, Error>,
) {
    let labels = ControllerLabels {
        controller: controller.to_owned(),
    };
    ctx.metrics
        .reconcile_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if let Err(err) = result {
        count_error(ctx, controller, err.kind());
    }
}

/// One more on `reconcile_errors_total{controller, kind}`.
fn count_error<F>(ctx: &Context<F>, controller: &str, kind: &str) {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            controller: controller.to_owned(),
            kind: kind.to_owned(),
        })
        .inc();
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::controller::schedule::ScheduleReconciler;
    use crate::controller::{Context, Settings};
    use crate::crd::FsxBackupSchedule;
    use crate::fsx::{AwsFsx, AwsFsxConfig, BatchedFsx, MeteredFsx};
    use crate::metrics::Metrics;

    #[test]
    fn a_write_is_only_ours_when_nothing_but_the_status_changed_since_the_read() {
        use std::collections::BTreeMap;

        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

        use crate::controller::only_status_changed;

        let read = ObjectMeta {
            generation: Some(2),
            annotations: Some(BTreeMap::from([("team".into(), "storage".into())])),
            resource_version: Some("10".into()),
            ..ObjectMeta::default()
        };
        let written = ObjectMeta {
            resource_version: Some("11".into()),
            ..read.clone()
        };
        assert!(only_status_changed(&read, &written));
        let changed: [fn(&mut ObjectMeta); 5] = [
            |m| m.generation = Some(3),
            |m| {
                m.annotations
                    .get_or_insert_default()
                    .insert(crate::controller::RUN_NOW_ANNOTATION.into(), "n1".into());
            },
            |m| m.labels = Some(BTreeMap::from([("tier".into(), "gold".into())])),
            |m| m.finalizers = Some(vec![crate::controller::FINALIZER.into()]),
            |m| m.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH)),
        ];
        for change in changed {
            let mut meanwhile = written.clone();
            change(&mut meanwhile);
            assert!(!only_status_changed(&read, &meanwhile), "{meanwhile:?}");
        }
    }

    /// Ten thousand objects due at once are ten thousand reconciles, each a
    /// task of this size (13.7 KB each before their steps were boxed: 137 MiB
    /// in the heap profile); the steps themselves are bounded by `gates`. 2,784
    /// bytes while `Gates::act` and `record` were `async fn`s, which keep
    /// their by-value arguments twice (the validated spec, the status to write).
    #[tokio::test]
    async fn a_reconcile_waiting_for_its_turn_is_small() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let (metrics, _registry) = Metrics::new();
        let metrics = Arc::new(metrics);
        // The FSx stack the operator ships with.
        let fsx = BatchedFsx::new(MeteredFsx::new(
            AwsFsx::new(sdk, AwsFsxConfig::default()),
            metrics.clone(),
        ));
        let settings = Settings::default();
        let ctx = Context::new(client, fsx, Clock::system(), settings, metrics, None);
        let reconciler = Arc::new(ScheduleReconciler {
            ctx,
            followers: None,
        });
        let (store, _writer) = kube::runtime::reflector::store();
        let driven = Arc::new(Driven {
            departures: Departures::new(reconciler.clone(), store),
            reconciler,
        });
        let object: Arc<Lenient<FsxBackupSchedule>> = Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "fsxbackup.io/v1alpha1", "kind": "FsxBackupSchedule",
                "metadata": {"name": "a", "namespace": "ns", "uid": "uid-a"},
                "spec": {"target": {"fileSystemIds": ["fs-0123456789abcdef0"]}, "schedule": "@daily"},
            }))
            .expect("schedule"),
        );
        let task = reconcile::<ScheduleReconciler<_>>(object, driven);
        let size = size_of_val(&task);
        assert!(size <= 2304, "a reconcile task is {size} bytes");
    }
}
