//! What wakes an object's reconcile: the watch of its kind (every object once
//! a list is complete, every change but the operator's own status writes),
//! the accounts objects act in (as their cache applies them), kind-specific
//! wake-ups (a followed schedule changed, a copy slot freed) and the test
//! clock; and the cache those watches fill, which `/readyz` waits for. The
//! [`runner`](super::runner) starts the reconciles; the
//! [`driver`](super::driver) is one reconcile.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};

use super::departures::Departures;
use super::driver::{Driven, ManagedObject, Reconciler, Watched};
use super::lenient::Lenient;
use super::runner;

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
    let (reader, writer) = reflector::store();
    let departures = Departures::new(reconciler.clone(), reader.clone());
    let mut watching = departures.clone();
    let observer = reconciler.clone();
    let changed = reflector(
        writer,
        watcher(api, watcher::Config::default().any_semantic()).default_backoff(),
    )
    .inspect_ok(move |event| {
        watching.see(event);
        if let watcher::Event::Apply(object) | watcher::Event::InitApply(object) = event {
            observer.changed(object);
        }
    });
    let own_write = {
        let reconciler = reconciler.clone();
        move |object: &Watched<R>| reconciler.context().is_own_write(object)
    };
    let mut wakes: Vec<Wake<R>> = vec![refs(woken(changed, reader.clone(), own_write))];
    // An account created, or its allow-list changed: its objects look again
    // at once, told by the cache their reconciles read it from.
    let store = reader.clone();
    let account_applied = reconciler.context().accounts.applied();
    wakes.push(
        account_applied
            .flat_map(move |account| {
                futures::stream::iter(matching(&store, |object| {
                    match (&account, object.account()) {
                        (Some(name), Some(used)) => name == used,
                        // Some changes were missed: any object with an account.
                        (None, used) => used.is_some(),
                        (Some(_), None) => false,
                    }
                }))
            })
            .boxed(),
    );
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

/// The objects each of `events` wakes, once `cache` holds it: every change
/// but our own status writes (whose reconcile already decided when to look
/// next), and every object once a (re)list is complete. Not each object as the
/// list yields it: the cache takes a new list only once it is complete, so a
/// reconcile started before would read the old copy and miss what changed
/// while the watch was down (a spec edited during a watch restart, not acted
/// on until the object's next run).
fn woken<K, E>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, E>>,
    cache: Store<K>,
    own_write: impl Fn(&K) -> bool,
) -> impl futures::Stream<Item = Result<Vec<ObjectRef<K>>, E>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Default,
{
    events.map_ok(move |event| match event {
        watcher::Event::Apply(object) if !own_write(&object) => vec![ObjectRef::from_obj(&object)],
        watcher::Event::InitDone => cache
            .state()
            .iter()
            .map(|object| ObjectRef::from_obj(&**object))
            .collect(),
        watcher::Event::Apply(_)
        | watcher::Event::InitApply(_)
        | watcher::Event::Delete(_)
        | watcher::Event::Init => Vec::new(),
    })
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

/// The objects to look at again, as `woken` yields them; a failed watch is
/// retried by its backoff and logged here.
fn refs<K: ManagedObject, E: std::fmt::Display>(
    woken: impl futures::Stream<Item = Result<Vec<ObjectRef<Lenient<K>>>, E>> + Send + 'static,
) -> BoxStream<'static, ObjectRef<Lenient<K>>> {
    woken
        .filter_map(|woken| {
            futures::future::ready(match woken {
                Ok(refs) => Some(futures::stream::iter(refs)),
                Err(err) => {
                    tracing::warn!(controller = K::LABEL, watch = K::LABEL, error = %err, "watch failed; retrying");
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

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::ResourceExt;
    use kube::api::ObjectMeta;

    fn config_map(name: &str, version: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    /// What `events` wake, each woken object paired with the version a
    /// reconcile started at that moment would read from the cache.
    async fn wakes_and_reads(
        events: Vec<watcher::Event<ConfigMap>>,
        own_version: &str,
    ) -> Vec<(String, String)> {
        let (reader, writer) = reflector::store();
        let events = reflector(
            writer,
            futures::stream::iter(events.into_iter().map(Ok::<_, watcher::Error>)),
        );
        let own_version = own_version.to_owned();
        let own_write = move |object: &ConfigMap| {
            object.resource_version().as_deref() == Some(own_version.as_str())
        };
        let cache = reader.clone();
        woken(events, reader, own_write)
            .map(|woken| {
                let read = |key: ObjectRef<ConfigMap>| {
                    let version = cache
                        .get(&key)
                        .and_then(|o| o.resource_version())
                        .unwrap_or_default();
                    (key.name, version)
                };
                woken
                    .expect("event")
                    .into_iter()
                    .map(read)
                    .collect::<Vec<_>>()
            })
            .concat()
            .await
    }

    #[tokio::test]
    async fn a_relisted_object_is_woken_once_the_cache_holds_the_new_list() {
        use watcher::Event;
        let listed = vec![
            Event::Init,
            Event::InitApply(config_map("a", "1")),
            Event::InitDone,
        ];
        assert_eq!(
            wakes_and_reads(listed, "").await,
            [("a".into(), "1".into())]
        );
        // The watch restarts after "a" changed (version 2) while it was down:
        // the reconcile it wakes reads version 2, not the copy cached before.
        let relisted = vec![
            Event::Init,
            Event::InitApply(config_map("a", "1")),
            Event::InitDone,
            Event::Init,
            Event::InitApply(config_map("a", "2")),
            Event::InitApply(config_map("b", "7")),
            Event::InitDone,
        ];
        let mut read = wakes_and_reads(relisted, "").await;
        read.sort();
        assert_eq!(
            read,
            [
                ("a".into(), "1".into()),
                ("a".into(), "2".into()),
                ("b".into(), "7".into())
            ]
        );
    }

    #[tokio::test]
    async fn our_own_status_write_wakes_nothing_and_any_other_change_does() {
        use watcher::Event;
        let changes = vec![
            Event::Apply(config_map("ours", "5")),
            Event::Apply(config_map("theirs", "6")),
            Event::Delete(config_map("theirs", "6")),
        ];
        assert_eq!(
            wakes_and_reads(changes, "5").await,
            [("theirs".into(), "6".into())]
        );
    }
}
