//! Reconcilers. Each kind is fetch → plan → execute → record:
//! - [`watches`] says what wakes an object, [`runner`] starts each object's
//!   reconcile when it is due, and [`driver`] is one reconcile of every kind:
//!   the fresh read, the finalizer, metrics and the invalid-spec status;
//!   [`backoff`] when a failed reconcile is tried again;
//! - `<kind>/plan.rs` decides, with no I/O (table-tested);
//! - `<kind>/mod.rs` fetches from FSx, performs the plan's actions and records
//!   their results through the planner again;
//! - [`effects`] performs what a plan reports: events, notifications, metrics.

mod adopt;
pub mod backoff;
pub mod brake;
pub mod cleanup;
pub mod copy;
mod departures;
pub mod driver;
pub mod effects;
pub mod finalizer;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod gates;
pub mod incarnation;
pub mod lenient;
pub mod runner;
pub mod schedule;
pub mod watches;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::{Client, Resource, ResourceExt};

pub use brake::Brake;

use crate::accounts::{Accounts, Refused};
use crate::clock::Clock;
use crate::fsx::{FsxError, Place, Role};
use crate::metrics::Metrics;
use crate::notify::Notifier;

/// The name the operator applies status with and reports events as.
pub const FIELD_MANAGER: &str = "fsx-backup-operator";
/// Finalizer that lets `deletionPolicy: Delete` remove backups before the object
/// goes; only such objects carry it.
pub const FINALIZER: &str = "fsxbackup.io/cleanup";
/// Annotation that asks for one extra backup of every target; its value is a nonce.
pub const RUN_NOW_ANNOTATION: &str = "fsxbackup.io/run-now";
/// Annotation that releases the deletion brake for one generation: its value is
/// the `metadata.generation` approved (a stale approval does nothing).
pub const APPROVE_DELETIONS_ANNOTATION: &str = "fsxbackup.io/approve-deletions";

/// Operator-wide settings the reconcilers read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Region for objects that do not name one.
    pub default_region: Option<String>,
    /// How often backups in flight are looked at.
    pub poll_interval: Duration,
    /// How soon a transient failure (throttling, a busy target) is retried; the
    /// first step of the per-object backoff.
    pub retry_interval: Duration,
    /// Copies in progress per destination Region, shared by all `FsxBackupCopy` objects.
    pub copy_slots_per_region: usize,
    /// Reconciles running at once per controller (0: unlimited): bounds memory and
    /// connections when thousands of objects are due at the same instant.
    pub max_concurrent_reconciles: u16,
    /// Longest one reconcile may run: whatever hangs below it (an FSx, SNS or
    /// Kubernetes call) fails the reconcile, which is retried with backoff.
    pub reconcile_timeout: Duration,
    /// The deletion brake for objects that set none: more than `max_deletions`
    /// or `max_percent` % of a target's AVAILABLE backups deleted by a spec change.
    pub deletion_brake: Brake,
    /// This cluster's identity, tagged on every backup (`--cluster-id`).
    pub cluster_id: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_region: None,
            poll_interval: Duration::from_secs(30),
            retry_interval: Duration::from_secs(30),
            copy_slots_per_region: 5,
            max_concurrent_reconciles: 0,
            reconcile_timeout: Duration::from_mins(10),
            deletion_brake: Brake::default(),
            cluster_id: "test-cluster".to_owned(),
        }
    }
}

/// Identifies one object of any kind in the operator's in-memory maps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn of<K: Resource<DynamicType = ()>>(object: &K) -> Self {
        Self {
            kind: K::kind(&()).into_owned(),
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// What the operator remembers about one object between reconciles. Everything
/// here can be lost (a restart) at the cost of one extra FSx or apiserver call;
/// it is all dropped together by [`Context::forget`].
#[derive(Debug, Default)]
pub struct ObjectMemory {
    /// When FSx was last polled for this object's backups or copies in flight,
    /// so reconciles triggered by our own status writes do not poll again.
    pub last_poll: Option<Timestamp>,
    /// `resourceVersion` after our last status write or fresh read.
    pub seen_version: Option<String>,
    /// `resourceVersion` of our last status write when it changed nothing but
    /// the status its reconcile decided: the watch event reporting it brings
    /// nothing new, so it wakes no reconcile (that reconcile already decided
    /// when to look next).
    pub quiet_version: Option<String>,
    /// Copy follow mode: the followed schedule's `resourceVersion` at the last scan.
    pub scanned_schedule: Option<String>,
    /// Copy follow mode: when retention next expires a copy.
    pub next_expiry: Option<Timestamp>,
    /// Consecutive failed reconciles, for the error backoff.
    pub failures: u32,
}

/// Everything a reconcile needs, shared by all reconciles of all kinds.
pub struct Context<F> {
    pub client: Client,
    pub fsx: F,
    /// The `FsxBackupAccount`s objects may act in.
    pub accounts: Accounts,
    /// Who publishes events: `POD_NAME` in a cluster, the controller name otherwise.
    reporting_instance: String,
    pub clock: Clock,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// `None` when notifications are off (tests without SNS).
    pub notifier: Option<Notifier>,
    memory: Mutex<HashMap<ObjectKey, ObjectMemory>>,
    /// Turns at acting on FSx and writing to the apiserver.
    pub gates: gates::Gates,
}

impl<F> fmt::Debug for Context<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
            accounts: Accounts::new(client.clone()),
            client,
            fsx,
            reporting_instance,
            clock,
            settings,
            metrics,
            notifier,
            memory: Mutex::default(),
            gates: gates::Gates::default(),
        })
    }

    /// The role the object `key` acts through (`None`: the operator's own
    /// identity); a refusal is `Error::Refused`, which stalls the object.
    pub async fn role_for(
        &self,
        account: Option<&str>,
        key: &ObjectKey,
    ) -> Result<Option<Arc<Role>>, Error> {
        if account.is_none() {
            return Ok(None);
        }
        // Boxed: its future is large, and every reconcile would carry its size.
        Ok(Box::pin(self.accounts.role_for(account, key)).await??)
    }

    /// Where the object `key` calls FSx in `region`.
    pub async fn place(
        &self,
        account: Option<&str>,
        key: &ObjectKey,
        region: &str,
    ) -> Result<Place, Error> {
        Ok(Place::new(region, self.role_for(account, key).await?))
    }

    /// Reads or updates what is remembered about `key`.
    pub fn memory<T>(&self, key: &ObjectKey, f: impl FnOnce(&mut ObjectMemory) -> T) -> T {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        f(memory.entry(key.clone()).or_default())
    }

    /// Drops everything remembered about `key` (the object is gone).
    pub fn forget(&self, key: &ObjectKey) {
        self.memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// True (and remembered) when `key` has not polled within the poll interval.
    pub fn poll_due(&self, key: &ObjectKey, now: Timestamp) -> bool {
        let interval =
            jiff::SignedDuration::try_from(self.settings.poll_interval).unwrap_or_default();
        self.memory(key, |memory| {
            let due = memory
                .last_poll
                .is_none_or(|at| now.duration_since(at) >= interval);
            if due {
                memory.last_poll = Some(now);
            }
            due
        })
    }

    /// Read-your-writes: the object as of our last status write, or newer. A reconcile
    /// can be triggered (requeue, a freed copy slot) before the watch delivers our own
    /// write; acting on that stale copy would repeat calls already made.
    async fn fresh<K>(&self, api: &Api<K>, object: Arc<K>) -> Result<Arc<K>, Error>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + fmt::Debug,
    {
        let key = ObjectKey::of(&*object);
        let Some(known) = self.memory(&key, |m| m.seen_version.clone()) else {
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

    /// Writes `status` (the whole status, which the operator alone writes) to
    /// this incarnation of `object` only (see [`incarnation`]), and only when
    /// it differs from the object's current status (no writes, and so no
    /// GitOps diffs, when nothing changed). Returns the object as written, when
    /// it was.
    pub async fn write_status<W, S>(
        &self,
        api: &Api<W>,
        object: &impl Resource<DynamicType = ()>,
        previous: Option<&S>,
        status: &S,
    ) -> Result<Option<W>, Error>
    where
        W: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + fmt::Debug,
        S: serde::Serialize + PartialEq,
    {
        if previous == Some(status) {
            return Ok(None);
        }
        let params = kube::api::PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..kube::api::PatchParams::default()
        };
        let status = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
        let written = api
            .patch_status(
                &object.name_any(),
                &params,
                &incarnation::replace_status(object, status),
            )
            .await?;
        self.saw_version(&written);
        let quiet = only_status_changed(object.meta(), written.meta())
            .then(|| written.resource_version())
            .flatten();
        self.memory(&ObjectKey::of(&written), |m| m.quiet_version = quiet);
        Ok(Some(written))
    }

    /// Whether `object`, as the watch reports it, is our own last status write
    /// and nothing else (see [`ObjectMemory::quiet_version`]).
    pub fn is_own_write<K: Resource<DynamicType = ()>>(&self, object: &K) -> bool {
        let Some(version) = object.meta().resource_version.as_deref() else {
            return false;
        };
        let memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        memory
            .get(&ObjectKey::of(object))
            .and_then(|m| m.quiet_version.as_deref())
            == Some(version)
    }

    fn saw_version<K: Resource<DynamicType = ()>>(&self, object: &K) {
        if let Some(version) = object.resource_version() {
            self.memory(&ObjectKey::of(object), |m| m.seen_version = Some(version));
        }
    }
}

/// True when `after` (the object as our status write left it) is `before`
/// (as its reconcile read it) in everything a reconcile reads besides the
/// status: the spec (by its generation), annotations (run-now, approvals),
/// labels, finalizers and deletion. Otherwise someone else changed it between
/// the read and the write, and its watch event must wake a reconcile.
fn only_status_changed(before: &ObjectMeta, after: &ObjectMeta) -> bool {
    before.generation == after.generation
        && before.annotations == after.annotations
        && before.labels == after.labels
        && before.finalizers == after.finalizers
        && before.deletion_timestamp == after.deletion_timestamp
}

/// Why a reconcile failed; the driver's error policy decides when to retry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Fsx(#[from] FsxError),
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// Deletion waits for backups still in progress: polled, not backed off.
    #[error("{0}")]
    CleanupPending(String),
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The object may not act in the AWS account it names: no AWS call is made.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// A bug: the reconcile panicked. Isolated to this object and retried with backoff.
    #[error("reconcile panicked: {0}")]
    Panicked(String),
    /// The stored object cannot be read as its kind (a value the schema did not
    /// bound when it was stored): only a change of the object can fix it.
    #[error("the object cannot be read: {0}")]
    Unreadable(String),
    #[error("reconcile did not finish within {0:?}")]
    TimedOut(Duration),
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
            Self::Refused(_) => "account_refused",
            Self::Panicked(_) => "panic",
            Self::Unreadable(_) => "unreadable",
            Self::TimedOut(_) => "timeout",
        }
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}
