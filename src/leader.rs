//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! replicas exactly one reconciles. The holder renews the Lease every
//! `renew_every`; another replica takes it over once `renewTime + duration` has
//! passed. Updates use the Lease's `resourceVersion`, so two replicas racing for
//! it cannot both win. Wall-clock time is used throughout (never a test clock).

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Where the Lease lives and how long it lasts.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the Pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal; the failover time.
    pub duration: Duration,
    /// How often the holder renews, and others try.
    pub renew_every: Duration,
}

/// One replica's side of the election.
#[derive(Clone, Debug)]
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

impl Elector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// One round: takes the Lease if it is free or expired, renews it if ours.
    /// `Ok(true)` when this replica holds it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(err) if is_conflict(&err) => Ok(false),
                Err(err) => Err(err),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let ours = spec.holder_identity.as_deref() == Some(self.config.identity.as_str());
        let held_by_someone = spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty());
        let valid_for =
            SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
        // A renewTime so far ahead that adding the duration overflows never expires.
        let expired = spec.renew_time.as_ref().is_none_or(|renewed| {
            renewed
                .0
                .checked_add(valid_for)
                .is_ok_and(|until| until < now)
        });
        if !ours && held_by_someone && !expired {
            return Ok(false);
        }
        if !ours {
            spec.holder_identity = Some(self.config.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(self.duration_seconds());
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if is_conflict(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Gives the Lease up (on shutdown) so another replica takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_conflict(&err) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// How long this replica may act after the start of its last successful
    /// renewal: the Lease duration less one renewal period, so that it stops
    /// before another replica could see the Lease expire.
    fn acting_window(&self) -> Duration {
        self.config.duration.saturating_sub(self.config.renew_every)
    }

    /// Runs the election until `stop` fires, publishing whether this replica leads.
    /// A leader that cannot renew within its acting window (a failing or hung
    /// apiserver link: every attempt is bounded by that window) or finds another
    /// holder reports `false` before anyone else can take over.
    pub async fn run(self, leading: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        let mut last_renewed: Option<Instant> = None;
        loop {
            // Counted from before the request: the renewTime written is no earlier.
            let started = Instant::now();
            let still_ours = |at: Option<Instant>| {
                at.map(|at| self.acting_window().saturating_sub(at.elapsed()))
            };
            // A hung call must not outlive the window in which we may still act.
            let limit = match (still_ours(last_renewed), *leading.borrow()) {
                (Some(left), true) => left.min(self.config.renew_every),
                _ => self.config.renew_every,
            };
            let result = tokio::time::timeout(limit, self.try_acquire_or_renew()).await;
            let now_leading = match result {
                Ok(Ok(held)) => {
                    if held {
                        last_renewed = Some(started);
                    }
                    held
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, lease = %self.config.name, "cannot reach the leader Lease");
                    // Keep leading only while the Lease we renewed is certainly still ours.
                    still_ours(last_renewed).is_some_and(|left| !left.is_zero())
                        && *leading.borrow()
                }
                Err(_) => {
                    tracing::warn!(lease = %self.config.name, timeout = ?limit, "the leader Lease did not answer in time");
                    still_ours(last_renewed).is_some_and(|left| !left.is_zero())
                        && *leading.borrow()
                }
            };
            if now_leading != *leading.borrow() {
                tracing::info!(identity = %self.config.identity, leading = now_leading, "leader election");
                let _ = leading.send(now_leading);
            }
            // While leading on an old renewal, wake when its window closes.
            let pause = match still_ours(last_renewed) {
                Some(left) if now_leading => left.min(self.config.renew_every),
                _ => self.config.renew_every,
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => break,
            }
        }
    }
}
