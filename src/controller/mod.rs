//! Reconcilers: fetch, decide (with the pure modules), apply. One file per kind.

pub mod copy;
pub mod schedule;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};

use crate::clock::Clock;
use crate::crd::common::Notifications;
use crate::fsx::FsxError;
use crate::metrics::{ControllerLabels, ErrorLabels, Metrics};
use crate::notify::{Notification, Notifier};

/// The name the operator applies status with and reports events as.
pub const FIELD_MANAGER: &str = "fsx-backup-operator";
/// Finalizer that lets `deletionPolicy: Delete` remove backups before the object goes.
pub const FINALIZER: &str = "fsxbackup.io/cleanup";
/// Annotation that asks for one extra backup of every target; its value is a nonce.
pub const RUN_NOW_ANNOTATION: &str = "fsxbackup.io/run-now";

/// Operator-wide settings the reconcilers read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Region for objects that do not name one.
    pub default_region: Option<String>,
    /// How often backups in flight are looked at.
    pub poll_interval: Duration,
    /// How soon a transient failure (throttling, a busy target) is retried.
    pub retry_interval: Duration,
    /// Copies in progress per destination Region, shared by all `FsxBackupCopy` objects.
    pub copy_slots_per_region: usize,
    /// Reconciles running at once per controller (0: unlimited): bounds memory and
    /// connections when thousands of objects are due at the same instant.
    pub max_concurrent_reconciles: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_region: None,
            poll_interval: Duration::from_secs(30),
            retry_interval: Duration::from_secs(30),
            copy_slots_per_region: 5,
            max_concurrent_reconciles: 0,
        }
    }
}

/// Everything a reconcile needs, shared by all reconciles of all kinds.
pub struct Context<F> {
    pub client: Client,
    pub fsx: F,
    /// Who publishes events: `POD_NAME` in a cluster, the controller name otherwise.
    reporting_instance: String,
    pub clock: Clock,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// `None` when notifications are off (tests without SNS).
    pub notifier: Option<Notifier>,
    /// When each object last polled FSx for its backups in flight, so that
    /// reconciles triggered by our own status writes do not poll again.
    last_poll: Mutex<HashMap<String, jiff::Timestamp>>,
    /// `resourceVersion` of each object after our last status write or fresh read.
    seen_versions: Mutex<HashMap<String, String>>,
}

impl<F> std::fmt::Debug for Context<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<F> Context<F> {
    pub fn new(
        client: Client,
        fsx: F,
        clock: Clock,
        settings: Settings,
        metrics: Arc<Metrics>,
        notifier: Option<Notifier>,
    ) -> Arc<Self> {
        let reporting_instance = std::env::var("POD_NAME").unwrap_or_else(|_| FIELD_MANAGER.into());
        Arc::new(Self {
            client,
            fsx,
            reporting_instance,
            clock,
            settings,
            metrics,
            notifier,
            last_poll: Mutex::default(),
            seen_versions: Mutex::default(),
        })
    }

    /// True (and remembered) when `key` has not polled within the poll interval.
    fn poll_due(&self, key: &str, now: jiff::Timestamp) -> bool {
        let mut last = self
            .last_poll
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let interval =
            jiff::SignedDuration::try_from(self.settings.poll_interval).unwrap_or_default();
        let due = last
            .get(key)
            .is_none_or(|at| now.duration_since(*at) >= interval);
        if due {
            last.insert(key.to_owned(), now);
        }
        due
    }

    /// Read-your-writes: the object as of our last status write, or newer. A reconcile
    /// can be triggered (requeue, a freed copy slot) before the watch delivers our own
    /// write; acting on that stale copy would repeat calls already made.
    async fn fresh<K>(&self, api: &Api<K>, object: Arc<K>) -> Result<Arc<K>, Error>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let key = versions_key(&*object);
        let known = self
            .seen_versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        let Some(known) = known else {
            return Ok(object);
        };
        if object.resource_version().as_deref() == Some(known.as_str()) {
            return Ok(object);
        }
        let Some(latest) = api.get_opt(&object.name_any()).await? else {
            return Ok(object);
        };
        self.saw_version(&latest);
        Ok(Arc::new(latest))
    }

    /// Applies `status` with server-side apply, only when it differs from `previous`
    /// (no writes, and so no GitOps diffs, when nothing changed).
    async fn write_status<K, S>(
        &self,
        api: &Api<K>,
        object: &K,
        previous: Option<&S>,
        status: &S,
    ) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        S: serde::Serialize + PartialEq,
    {
        if previous == Some(status) {
            return Ok(());
        }
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        let written = api
            .patch_status(
                &object.name_any(),
                &kube::api::PatchParams::apply(FIELD_MANAGER).force(),
                &kube::api::Patch::Apply(&patch),
            )
            .await?;
        self.saw_version(&written);
        Ok(())
    }

    fn saw_version<K: Resource<DynamicType = ()>>(&self, object: &K) {
        if let Some(version) = object.resource_version() {
            self.seen_versions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(versions_key(object), version);
        }
    }

    fn forget_versions<K: Resource<DynamicType = ()>>(&self, object: &K) {
        self.seen_versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&versions_key(object));
    }

    /// Publishes `notification` to the object's SNS topic: failures always, successes
    /// only with `onSuccess`. Runs in the background; never fails the reconcile.
    fn notify(&self, spec: Option<&Notifications>, notification: Notification) {
        let Some(spec) = spec else { return };
        let Some(topic) = spec.sns_topic_arn.clone() else {
            return;
        };
        if notification.outcome == SUCCEEDED && !spec.on_success.unwrap_or(false) {
            return;
        }
        if let Some(notifier) = &self.notifier {
            notifier.send(Notification {
                topic_arn: topic,
                ..notification
            });
        }
    }

    fn forget(&self, key: &str) {
        self.last_poll
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Publishes an `events.k8s.io/v1` Event; a failure to do so is logged, never fatal.
    ///
    /// Created directly rather than through kube's `Recorder`, which folds events with the
    /// same reason into one series that keeps the first note: "backup B created" would be
    /// hidden behind "backup A created". Reconcilers emit only on transitions, so each event
    /// is worth its own object.
    async fn event<K>(&self, object: &K, warning: bool, reason: &str, action: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let regarding = object.object_ref(&());
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let now = jiff::Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", object.name_any(), now.as_nanosecond())),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            reason: Some(reason.into()),
            action: Some(action.into()),
            note: Some(truncate(&note, 1000)),
            regarding: Some(regarding),
            reporting_controller: Some(FIELD_MANAGER.into()),
            reporting_instance: Some(self.reporting_instance.clone()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(err) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(object = %object.name_any(), reason, error = %err, "could not publish event");
        }
    }
}

fn versions_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// `Notification::outcome` of a success; anything else is a failure.
const SUCCEEDED: &str = "Succeeded";
const FAILED: &str = "Failed";

/// Records a reconcile's duration and, when it failed, its error kind.
fn observe_reconcile<T>(
    metrics: &Metrics,
    controller: &str,
    started: std::time::Instant,
    result: &Result<T, Error>,
) {
    let labels = ControllerLabels {
        controller: controller.to_owned(),
    };
    metrics
        .reconcile_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if let Err(err) = result {
        metrics
            .reconcile_errors
            .get_or_create(&ErrorLabels {
                controller: controller.to_owned(),
                kind: err.kind().to_owned(),
            })
            .inc();
    }
}

/// The reconciler's own error out of kube's finalizer wrapper.
fn from_finalizer(err: kube::runtime::finalizer::Error<Error>) -> Error {
    match err {
        kube::runtime::finalizer::Error::ApplyFailed(err)
        | kube::runtime::finalizer::Error::CleanupFailed(err) => err,
        other => Error::Finalizer(other.to_string()),
    }
}

/// Counts `synced` up once `store` has its first full list: `/readyz` waits for all.
fn count_when_synced<K>(
    store: kube::runtime::reflector::Store<K>,
    synced: Arc<std::sync::atomic::AtomicUsize>,
) where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Default + Send + Sync,
{
    tokio::spawn(async move {
        // The store's readiness signal wakes only its latest waiter (the controller's own),
        // so wait in short rounds: each round polls it afresh.
        loop {
            match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    let n = synced.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    tracing::debug!(kind = %K::kind(&K::DynamicType::default()), synced = n, "cache synced");
                    return;
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "cache never synced");
                    return;
                }
                Err(_) => {}
            }
        }
    });
}

/// A stream that yields each time the watched value changes (the test clock moved).
fn changes(
    rx: tokio::sync::watch::Receiver<()>,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok().map(|()| ((), rx))
    })
}

/// Why a reconcile failed; the controller retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Fsx(#[from] FsxError),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("{0}")]
    CleanupPending(String),
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
}

impl Error {
    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Fsx(_) => "fsx",
            Self::Finalizer(_) => "finalizer",
            Self::CleanupPending(_) => "cleanup_pending",
            Self::InvalidSpec(_) => "invalid_spec",
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}
