//! What wakes an object's reconcile: the watch of its kind (every object as
//! listed, every change but the operator's own status writes), the accounts
//! objects act in, kind-specific wake-ups (a followed schedule changed, a copy
//! slot freed) and the test clock; and the cache those watches fill, which
//! `/readyz` waits for. The [`runner`](super::runner) starts the reconciles;
//! the [`driver`](super::driver) is one reconcile.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tokio::sync::{mpsc, watch};

use super::departures::Departures;
use super::driver::{Driven, ManagedObject, Reconciler, Watched};
use super::lenient::Lenient;
use super::runner;
use crate::crd::FsxBackupAccount;

/// What every controller of the process is wired to.
#[derive(Clone, Debug)]
pub struct Wiring {
    /// Ticks when the test clock moves: every object is looked at again.
    pub clock_moved: Option<watch::Receiver<()>>,
    /// Counts controllers whose cache is synced, for `/readyz`.
    pub synced: Arc<AtomicUsize>,
}

/// A kind-specific reason to look at some objects again (a related object
/// changed, a copy slot freed): the objects to look at.
pub type Wake<R> = BoxStream<'static, ObjectRef<Watched<R>>>;

/// Runs `reconciler`'s controller over `api` until `shutdown` fires. `related`
/// adds kind-specific wake-ups, given the cache of the kind's objects.
pub async fn run<R: Reconciler>(
    reconciler: Arc<R>,
    api: Api<Watched<R>>,
    related: impl FnOnce(&Store<Watched<R>>) -> Vec<Wake<R>>,
    wiring: Wiring,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let Wiring {
        clock_moved,
        synced,
    } = wiring;
    let concurrency = reconciler.context().settings.max_concurrent_reconciles;
    // The cache keeps every object, as read: without the tools' bookkeeping
    // (`Lenient` drops it while parsing).
    let accounts: Api<FsxBackupAccount> = Api::all(api.clone().into_client());
    let (reader, writer) = reflector::store();
    let departures = Departures::new(reconciler.clone(), reader.clone());
    let mut watching = departures.clone();
    let observer = reconciler.clone();
    let changed = reflector(
        writer,
        watcher(api, watcher::Config::default().any_semantic()).default_backoff(),
    )
    .inspect_ok(move |event| watching.see(event))
    .try_filter_map(move |event| {
        if let watcher::Event::Apply(object) | watcher::Event::InitApply(object) = &event {
            observer.changed(object);
        }
        let own_write = |object: &Watched<R>| observer.context().is_own_write(object);
        futures::future::ready(Ok(wakes(event, own_write)))
    });
    let mut wakes: Vec<Wake<R>> = vec![refs(R::Object::LABEL, changed, |object| {
        vec![ObjectRef::from_obj(&object)]
    })];
    // An account created, or its allow-list changed: its objects look again at once.
    let store = reader.clone();
    let account_changed = watcher(accounts, watcher::Config::default().any_semantic())
        .default_backoff()
        .applied_objects();
    wakes.push(refs(
        "account",
        account_changed,
        move |account: FsxBackupAccount| {
            let name = account.name_any();
            matching(&store, |object| object.account() == Some(name.as_str()))
        },
    ));
    wakes.extend(related(&reader));
    if let Some(rx) = clock_moved {
        let store = reader.clone();
        wakes.push(
            changes(rx)
                .flat_map(move |()| futures::stream::iter(matching(&store, |_| true)))
                .boxed(),
        );
    }
    count_when_synced(reader.clone(), synced);
    let driven = Arc::new(Driven {
        reconciler,
        departures,
    });
    let store = reader.clone();
    let start = move |key: &ObjectRef<Watched<R>>| {
        let object = store.get(key)?;
        Some(driven.clone().reconcile(object))
    };
    let ready = async move { wait_synced(&reader, None).await };
    runner::run(
        futures::stream::select_all(wakes),
        ready,
        start,
        concurrency,
        shutdown,
    )
    .await;
}

/// The object a watch event wakes, if any: every object as (re)listed, and
/// every change but our own status writes, whose reconcile already decided
/// when to look next.
fn wakes<K>(event: watcher::Event<K>, own_write: impl FnOnce(&K) -> bool) -> Option<K> {
    match event {
        watcher::Event::Apply(object) => (!own_write(&object)).then_some(object),
        watcher::Event::InitApply(object) => Some(object),
        watcher::Event::Delete(_) | watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// The objects of `store` that are readable and match `wanted`.
pub fn matching<K: ManagedObject>(
    store: &Store<Lenient<K>>,
    wanted: impl Fn(&K) -> bool,
) -> Vec<ObjectRef<Lenient<K>>> {
    store
        .state()
        .into_iter()
        .filter(|watched| watched.read().is_some_and(&wanted))
        .map(|watched| ObjectRef::from_obj(&*watched))
        .collect()
}

/// The objects to look at again for each item `changes` yields; a failed
/// watch is retried by its backoff and logged here.
fn refs<K: ManagedObject, T, E: std::fmt::Display>(
    source: &'static str,
    changes: impl futures::Stream<Item = Result<T, E>> + Send + 'static,
    to_look_at: impl Fn(T) -> Vec<ObjectRef<Lenient<K>>> + Send + 'static,
) -> BoxStream<'static, ObjectRef<Lenient<K>>> {
    changes
        .filter_map(move |change| {
            futures::future::ready(match change {
                Ok(item) => Some(futures::stream::iter(to_look_at(item))),
                Err(err) => {
                    tracing::warn!(controller = K::LABEL, watch = source, error = %err, "watch failed; retrying");
                    None
                }
            })
        })
        .flatten()
        .boxed()
}

/// Counts `synced` up once `store` has its first full list: `/readyz` waits for all.
fn count_when_synced<K>(store: Store<K>, synced: Arc<AtomicUsize>)
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Default + Send + Sync,
{
    tokio::spawn(async move {
        if wait_synced(&store, None).await {
            let n = synced.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(kind = %K::kind(&K::DynamicType::default()), synced = n, "cache synced");
        } else {
            tracing::warn!(kind = %K::kind(&K::DynamicType::default()), "cache never synced");
        }
    });
}

/// Waits for `store`'s first full list, up to `limit` (`None`: for ever). The
/// store's readiness signal wakes only its latest waiter, and many wait at once
/// (the controller, `/readyz`, reconciles at start-up): each waits in short
/// rounds, polling it afresh. False when the limit passes or the store's
/// writer is gone.
pub async fn wait_synced<K>(store: &Store<K>, limit: Option<Duration>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    let deadline = limit.map(|limit| tokio::time::Instant::now() + limit);
    while deadline.is_none_or(|d| tokio::time::Instant::now() < d) {
        if let Ok(ready) =
            tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await
        {
            return ready.is_ok();
        }
    }
    false
}

/// What `rx` receives, as a stream (wake-ups sent from elsewhere in the process).
pub fn received<T: Send + 'static>(
    rx: mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// A stream that yields each time the watched value changes (the test clock moved).
fn changes(rx: watch::Receiver<()>) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok().map(|()| ((), rx))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_status_write_wakes_nothing_but_a_listing_and_any_other_change_do() {
        use watcher::Event;
        assert_eq!(wakes(Event::Apply("ours"), |_| true), None);
        assert_eq!(wakes(Event::Apply("theirs"), |_| false), Some("theirs"));
        // A relist may come after changes the watch missed: always looked at.
        assert_eq!(wakes(Event::InitApply("ours"), |_| true), Some("ours"));
        assert_eq!(wakes(Event::Delete("gone"), |_| false), None);
        assert_eq!(wakes::<&str>(Event::Init, |_| false), None);
    }
}
