//! Objects that leave without a cleanup reconcile (no finalizer: `deletionPolicy:
//! Retain`): what the operator holds for them (metrics series, copy slots,
//! memory) is dropped as the watch reports them gone, so a deleted schedule
//! leaves no gauge behind to raise a false RPO alert.
//!
//! A watch that restarts lists anew and reports no deletions for what went
//! meanwhile: the store as it was before the list is compared with the list.
//! A reconcile that was running when its object went is caught by
//! [`Departures::after_reconcile`].

use std::sync::Arc;

use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};

use super::driver::{ManagedObject, Reconciler, Watched};
use super::effects::{Effect, perform};
use super::{ObjectKey, cleanup};
use crate::crd::common::DeletionPolicy;

/// Watches one kind's objects leave. Cheap to clone.
pub struct Departures<R: Reconciler> {
    reconciler: Arc<R>,
    store: Store<Watched<R>>,
    /// The store as it was when a relist began.
    before_relist: Option<Vec<Arc<Watched<R>>>>,
}

impl<R: Reconciler> Clone for Departures<R> {
    fn clone(&self) -> Self {
        Self {
            reconciler: self.reconciler.clone(),
            store: self.store.clone(),
            before_relist: None,
        }
    }
}

impl<R: Reconciler> Departures<R> {
    pub fn new(reconciler: Arc<R>, store: Store<Watched<R>>) -> Self {
        Self {
            reconciler,
            store,
            before_relist: None,
        }
    }

    /// Called with every watch event, after the store has applied it.
    pub fn see(&mut self, event: &Event<Watched<R>>) {
        match event {
            Event::Delete(object) => self.left(object, true),
            // The store keeps its old contents until the list is complete.
            Event::Init => self.before_relist = Some(self.store.state()),
            Event::InitDone => {
                for object in self.before_relist.take().unwrap_or_default() {
                    if self.store.get(&ObjectRef::from_obj(&*object)).is_none() {
                        self.left(&object, false);
                    }
                }
            }
            Event::Apply(_) | Event::InitApply(_) => {}
        }
    }

    /// After a reconcile or its error policy: if the object went meanwhile, what
    /// the reconcile just recorded for it is dropped again. Returns true then.
    pub fn after_reconcile(&self, object: &Watched<R>) -> bool {
        if self.store.get(&ObjectRef::from_obj(object)).is_some() {
            return false;
        }
        self.forget(object);
        true
    }

    fn forget(&self, object: &Watched<R>) {
        let ctx = self.reconciler.context();
        ctx.forget(&ObjectKey::of(object));
        if let Some(object) = object.read() {
            self.reconciler.forget(object);
        }
    }

    /// `object` is gone; `seen` when the watch said so (its last state is known).
    fn left(&self, watched: &Watched<R>, seen: bool) {
        self.forget(watched);
        let Some(object) = watched.read() else {
            return;
        };
        // Deleted through our finalizer: the cleanup already said what became of
        // the backups. Otherwise it is said here.
        if !seen || object.meta().deletion_timestamp.is_some() {
            return;
        }
        let effect = departure(object);
        let object = object.clone();
        let reconciler = self.reconciler.clone();
        tokio::spawn(async move {
            perform(reconciler.context(), &object, None, vec![effect]).await;
        });
        tracing::info!(object = %ObjectKey::of(watched), uid = %watched.uid().unwrap_or_default(), "deleted; its backups are left in place");
    }
}

/// What became of the backups of an object deleted without our finalizer.
fn departure<K: ManagedObject>(object: &K) -> Effect {
    let (reason, what) = K::RETAINED;
    match object.deletion_policy() {
        DeletionPolicy::Retain => cleanup::retained::<K>(),
        DeletionPolicy::Delete => Effect::event(
            true,
            reason,
            "Delete",
            format!(
                "deletionPolicy Delete, but the object was deleted before the operator added its finalizer: its {what} are left in place (kubectl fsxbackup orphans lists them)"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::clock::Clock;
    use crate::controller::lenient::Lenient;
    use crate::controller::schedule::ScheduleReconciler;
    use crate::controller::{Context, Settings};
    use crate::crd::FsxBackupSchedule;
    use crate::fsx::{AwsFsx, AwsFsxConfig};
    use crate::metrics::Metrics;

    fn schedule(name: &str) -> Lenient<FsxBackupSchedule> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fsxbackup.io/v1alpha1", "kind": "FsxBackupSchedule",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"target": {"fileSystemIds": ["fs-0123456789abcdef0"]}, "schedule": "@daily"},
        }))
        .expect("schedule")
    }

    /// A reconciler whose FSx and apiserver are never called.
    fn reconciler() -> (Arc<ScheduleReconciler<AwsFsx>>, Registry) {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let fsx = AwsFsx::new(sdk, AwsFsxConfig::default());
        let (metrics, registry) = Metrics::new();
        let ctx = Context::new(
            client,
            fsx,
            Clock::system(),
            Settings::default(),
            Arc::new(metrics),
            None,
        );
        (
            Arc::new(ScheduleReconciler {
                ctx,
                followers: None,
            }),
            registry,
        )
    }

    fn exported(registry: &Registry, name: &str) -> bool {
        crate::metrics::encode(registry).contains(&format!("schedule=\"{name}\""))
    }

    #[tokio::test]
    async fn what_left_during_a_watch_restart_is_forgotten_at_the_relist() {
        let (reconciler, registry) = reconciler();
        let (store, mut writer) = reflector::store();
        let mut departures = Departures::new(reconciler.clone(), store);
        let mut deliver = |event: Event<Lenient<FsxBackupSchedule>>| {
            writer.apply_watcher_event(&event);
            departures.see(&event);
        };
        for name in ["stays", "goes"] {
            deliver(Event::Apply(schedule(name)));
            let labels = Metrics::schedule("ns", name);
            reconciler
                .ctx
                .metrics
                .next_scheduled_run
                .get_or_create(&labels)
                .set(1.0);
        }
        // The watch restarts; "goes" was deleted while it was down.
        deliver(Event::Init);
        deliver(Event::InitApply(schedule("stays")));
        assert!(
            exported(&registry, "goes"),
            "not before the list is complete"
        );
        deliver(Event::InitDone);
        assert!(exported(&registry, "stays"));
        assert!(!exported(&registry, "goes"));
        // A deletion the watch reports is forgotten at once.
        deliver(Event::Delete(schedule("stays")));
        assert!(!exported(&registry, "stays"));
    }
}
