//! Starts each object's reconcile when it is due: at most one at a time per
//! object, the earliest request winning, the next run decided by how the
//! last one ended.
//!
//! Why not kube-runtime's `Controller`: its runner keeps running reconciles in
//! a map it polls in full each time it wakes, so a finished reconcile costs
//! O(running). With 10,000 objects due at the same instant that was a third of
//! the operator's CPU (`bench/profile-perf-10000.md`), spent on the one task
//! that also starts the next runs. Here a finished reconcile reaches the loop
//! through a `JoinSet` (O(1) each) and due instants sit in a heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What to do after a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run again after this long (or sooner, if something changes).
    After(Duration),
    /// Run again only when something changes.
    OnChange,
}

/// A run that panicked outside the reconcile's own guard is tried again after
/// this long rather than never.
const AFTER_PANIC: Duration = Duration::from_mins(1);

/// When each key is next due. A request for a key already due earlier is
/// ignored; one for an earlier instant brings it forward.
#[derive(Debug)]
pub struct Timetable<K> {
    due: HashMap<K, Instant>,
    /// Every instant a key was given, earliest first; entries a key no longer
    /// has (brought forward, or popped) are skipped when they come up.
    queue: BinaryHeap<Reverse<Slot<K>>>,
    sequence: u64,
}

/// One entry of the timetable's heap, ordered by instant, then by when it was
/// asked for (the key itself needs no order).
#[derive(Debug)]
struct Slot<K> {
    at: Instant,
    sequence: u64,
    key: K,
}

impl<K> PartialEq for Slot<K> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}

impl<K> Eq for Slot<K> {}

impl<K> PartialOrd for Slot<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Slot<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.sequence).cmp(&(other.at, other.sequence))
    }
}

impl<K> Default for Timetable<K> {
    fn default() -> Self {
        Self {
            due: HashMap::new(),
            queue: BinaryHeap::new(),
            sequence: 0,
        }
    }
}

impl<K: Hash + Eq + Clone> Timetable<K> {
    /// Asks for `key` to run at `at`, unless it is already due sooner.
    pub fn schedule(&mut self, key: K, at: Instant) {
        if let Some(due) = self.due.get_mut(&key) {
            if at >= *due {
                return;
            }
            *due = at;
        } else {
            self.due.insert(key.clone(), at);
        }
        self.sequence += 1;
        self.queue.push(Reverse(Slot {
            at,
            sequence: self.sequence,
            key,
        }));
        // Bringing keys forward leaves their later entries behind: rebuild when
        // those outnumber the live ones, so the heap stays O(keys).
        if self.queue.len() > 2 * self.due.len() + 1024 {
            self.queue = self
                .due
                .iter()
                .zip(0..)
                .map(|((key, at), sequence)| {
                    Reverse(Slot {
                        at: *at,
                        sequence,
                        key: key.clone(),
                    })
                })
                .collect();
            self.sequence = self.queue.len() as u64;
        }
    }

    /// The earliest instant any key is due.
    pub fn earliest(&mut self) -> Option<Instant> {
        self.drop_stale();
        self.queue.peek().map(|Reverse(slot)| slot.at)
    }

    /// Takes a key due at or before `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        self.drop_stale();
        if self.queue.peek()?.0.at > now {
            return None;
        }
        let Reverse(Slot { key, .. }) = self.queue.pop()?;
        self.due.remove(&key);
        Some(key)
    }

    /// Keys waiting to be due.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    fn drop_stale(&mut self) {
        while let Some(Reverse(slot)) = self.queue.peek() {
            if self.due.get(&slot.key) == Some(&slot.at) {
                return;
            }
            self.queue.pop();
        }
    }
}

/// A key's run as its task: the run, caught if it panics, answering with the
/// key. A combinator, not an `async move` block: such a block keeps the run it
/// captured beside the copy it awaits, so every task would carry the run's
/// future twice (ten thousand due at once: 58.6 MiB of task cells in
/// `bench/profile-heaptrack-10000-eighth.md`, about half of it that copy).
fn supervised<K, F>(key: K, run: F) -> impl Future<Output = (K, Next)>
where
    F: Future<Output = Next>,
{
    AssertUnwindSafe(run)
        .catch_unwind()
        .map(move |next| (key, next.unwrap_or(Next::After(AFTER_PANIC))))
}

/// Runs keys as they come due until `shutdown` fires, then waits for the runs
/// in progress. `triggers` asks for a key to run now (an object changed);
/// nothing starts before `ready` (the cache's first full list) says true.
/// `start` makes a key's run, or `None` when there is nothing to run (the
/// object is gone). `concurrency` bounds runs in progress (0: unbounded).
pub async fn run<K, F>(
    triggers: impl Stream<Item = K> + Send,
    ready: impl Future<Output = bool> + Send,
    mut start: impl FnMut(&K) -> Option<F> + Send,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send,
) where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    F: Future<Output = Next> + Send + 'static,
{
    let limit = if concurrency == 0 {
        usize::MAX
    } else {
        usize::from(concurrency)
    };
    let mut timetable = Timetable::default();
    let mut running: JoinSet<(K, Next)> = JoinSet::new();
    let mut busy: HashSet<K> = HashSet::new();
    // Came due while running: run again as soon as the run in progress ends.
    let mut held: HashSet<K> = HashSet::new();
    let mut triggers = pin!(triggers.fuse());
    let mut ready = pin!(ready.fuse());
    let mut shutdown = pin!(shutdown.fuse());
    let mut is_ready = false;
    let mut stopping = false;
    let timer = tokio::time::sleep(Duration::ZERO);
    let mut timer = pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        if is_ready && !stopping {
            let now = Instant::now();
            while running.len() < limit {
                let Some(key) = timetable.pop_due(now) else {
                    break;
                };
                if busy.contains(&key) {
                    held.insert(key);
                } else if let Some(future) = start(&key) {
                    busy.insert(key.clone());
                    running.spawn(supervised(key, future));
                }
            }
        }
        let wake = timetable
            .earliest()
            .filter(|_| is_ready && !stopping && running.len() < limit);
        if wake != armed {
            if let Some(at) = wake {
                timer.as_mut().reset(at);
            }
            armed = wake;
        }
        if stopping && running.is_empty() {
            return;
        }
        // Unbiased: a burst of finished runs must not keep the watches (the
        // triggers) waiting, nor the other way round.
        tokio::select! {
            () = &mut shutdown, if !stopping => stopping = true,
            Some(joined) = running.join_next() => {
                let now = Instant::now();
                let mut finish = |joined: Result<(K, Next), tokio::task::JoinError>| {
                    // The task itself cannot panic (the run is caught above),
                    // and the set is never aborted.
                    if let Ok((key, next)) = joined {
                        busy.remove(&key);
                        if held.remove(&key) {
                            timetable.schedule(key.clone(), now);
                        }
                        if let Next::After(after) = next {
                            timetable.schedule(key, now + after);
                        }
                    }
                };
                finish(joined);
                // Every other run finished by now, in one turn of the loop.
                while let Some(joined) = running.try_join_next() {
                    finish(joined);
                }
            }
            synced = &mut ready, if !is_ready => {
                if !synced {
                    tracing::error!("the cache never filled; no reconcile can start");
                    stopping = true;
                }
                is_ready = synced;
            }
            trigger = triggers.next(), if !stopping => match trigger {
                Some(key) => timetable.schedule(key, Instant::now()),
                None => stopping = true,
            },
            () = &mut timer, if armed.is_some() => armed = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::sync::{mpsc, oneshot};

    use super::*;
    use crate::controller::watches::received;

    fn at(seconds: u64) -> Instant {
        Instant::now() + Duration::from_secs(seconds)
    }

    #[tokio::test(start_paused = true)]
    async fn the_timetable_keeps_the_earliest_instant_of_each_key() {
        let mut table = Timetable::default();
        table.schedule("a", at(60));
        table.schedule("b", at(30));
        table.schedule("a", at(90)); // later: ignored
        table.schedule("a", at(10)); // sooner: brought forward
        assert_eq!(table.len(), 2);
        assert_eq!(table.earliest(), Some(at(10)));
        assert_eq!(table.pop_due(at(5)), None);
        assert_eq!(table.pop_due(at(10)), Some("a"));
        // a's 60 s entry was left behind when it was brought forward.
        assert_eq!(table.pop_due(at(100)), Some("b"));
        assert_eq!(table.pop_due(at(100)), None);
        assert!(table.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_timetable_brought_forward_over_and_over_stays_small() {
        let mut table = Timetable::default();
        for key in 0..10u32 {
            for second in (1..=1000).rev() {
                table.schedule(key, at(second));
            }
        }
        assert!(
            table.queue.len() <= 2 * 10 + 1024 + 1,
            "{}",
            table.queue.len()
        );
        let popped: Vec<u32> = std::iter::from_fn(|| table.pop_due(at(1))).collect();
        assert_eq!(popped.len(), 10);
        assert_eq!(table.pop_due(at(2000)), None);
    }

    /// What the runs of a test did, in order.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Log {
        fn push(&self, line: String) {
            self.0.lock().expect("log").push(line);
        }
        fn lines(&self) -> Vec<String> {
            self.0.lock().expect("log").clone()
        }
    }

    /// Each run of key `k` logs its start and end, takes `work` and asks to run
    /// again per `next`.
    fn runs(
        log: &Log,
        work: Duration,
        next: Next,
    ) -> impl FnMut(&&'static str) -> Option<futures::future::BoxFuture<'static, Next>> + Send + use<>
    {
        let log = log.clone();
        move |key: &&'static str| {
            let log = log.clone();
            let key = *key;
            log.push(format!("start {key} {}", now()));
            Some(
                async move {
                    tokio::time::sleep(work).await;
                    log.push(format!("end {key} {}", now()));
                    next
                }
                .boxed(),
            )
        }
    }

    /// Whole seconds since the paused test clock started at 0.
    fn now() -> u64 {
        START.with(|start| (Instant::now() - *start).as_secs())
    }

    thread_local! {
        static START: Instant = Instant::now();
    }

    /// A runner under test, spawned until [`Running::stop`].
    struct Running(oneshot::Sender<()>, tokio::task::JoinHandle<()>);

    impl Running {
        fn spawn<F: Future<Output = Next> + Send + 'static>(
            triggers: impl Stream<Item = &'static str> + Send + 'static,
            ready: impl Future<Output = bool> + Send + 'static,
            start: impl FnMut(&&'static str) -> Option<F> + Send + 'static,
            concurrency: u16,
        ) -> Self {
            let (stop, stopped) = oneshot::channel::<()>();
            let shutdown = async {
                let _ = stopped.await;
            };
            let runner = tokio::spawn(run(triggers, ready, start, concurrency, shutdown));
            Self(stop, runner)
        }

        /// Shuts the runner down and waits for it.
        async fn stop(self) {
            self.0.send(()).expect("stop");
            self.1.await.expect("runner");
        }
    }

    /// Asks for `keys` at once, then for nothing more.
    fn listed(keys: &[&'static str]) -> impl Stream<Item = &'static str> + Send + 'static {
        futures::stream::iter(keys.to_vec()).chain(futures::stream::pending())
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_asked_for_while_running_runs_once_more_after_and_never_twice_at_once() {
        now();
        let log = Log::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let runner = Running::spawn(
            received(rx),
            async { true },
            runs(&log, Duration::from_secs(10), Next::OnChange),
            0,
        );
        tx.send("a").expect("send");
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Three changes during the run: one more run, after it.
        for _ in 0..3 {
            tx.send("a").expect("send");
        }
        tx.send("b").expect("send");
        tokio::time::sleep(Duration::from_secs(30)).await;
        runner.stop().await;
        assert_eq!(
            log.lines(),
            [
                "start a 0",
                "start b 1",
                "end a 10",
                "start a 10",
                "end b 11",
                "end a 20"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_comes_back_when_it_asked_and_a_change_brings_it_forward() {
        now();
        let log = Log::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let runner = Running::spawn(
            received(rx),
            async { true },
            runs(&log, Duration::ZERO, Next::After(Duration::from_secs(100))),
            0,
        );
        tx.send("a").expect("send");
        tokio::time::sleep(Duration::from_secs(150)).await;
        tx.send("a").expect("send"); // at 150: brought forward from 200
        tokio::time::sleep(Duration::from_secs(101)).await;
        runner.stop().await;
        let starts: Vec<String> = log
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("start"))
            .collect();
        assert_eq!(
            starts,
            ["start a 0", "start a 100", "start a 150", "start a 250"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_starts_before_the_cache_is_ready() {
        now();
        let log = Log::default();
        let (ready, is_ready) = oneshot::channel::<()>();
        let runner = Running::spawn(
            listed(&["a", "b"]),
            async { is_ready.await.is_ok() },
            runs(&log, Duration::ZERO, Next::OnChange),
            0,
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(log.lines().is_empty());
        ready.send(()).expect("ready");
        tokio::time::sleep(Duration::from_secs(1)).await;
        runner.stop().await;
        let mut lines = log.lines();
        lines.sort();
        assert_eq!(lines, ["end a 5", "end b 5", "start a 5", "start b 5"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bound_on_runs_holds_the_rest_until_one_ends() {
        now();
        let log = Log::default();
        let runner = Running::spawn(
            listed(&["a", "b", "c"]),
            async { true },
            runs(&log, Duration::from_secs(10), Next::OnChange),
            2,
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        runner.stop().await;
        let lines = log.lines();
        assert_eq!(lines.iter().filter(|l| l.ends_with(" 0")).count(), 2);
        assert!(lines.contains(&"start c 10".to_owned()), "{lines:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_starts_nothing_new_and_waits_for_the_runs_in_progress() {
        now();
        let log = Log::default();
        let runner = Running::spawn(
            listed(&["a"]),
            async { true },
            runs(&log, Duration::from_secs(10), Next::After(Duration::ZERO)),
            0,
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        runner.stop().await;
        assert_eq!(log.lines(), ["start a 0", "end a 10"]);
    }

    fn boom() -> Next {
        panic!("a bug in a run")
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_that_panics_releases_its_key_and_is_tried_again() {
        now();
        let log = Log::default();
        let inner = log.clone();
        let runner = Running::spawn(
            listed(&["a"]),
            async { true },
            move |key: &&'static str| {
                inner.push(format!("start {key} {}", now()));
                Some(async { boom() })
            },
            0,
        );
        tokio::time::sleep(AFTER_PANIC + Duration::from_secs(1)).await;
        runner.stop().await;
        assert_eq!(log.lines(), ["start a 0", "start a 60"]);
    }

    #[test]
    fn a_task_carries_its_run_once() {
        let run = async {
            let held = [0_u8; 4096];
            tokio::task::yield_now().await;
            Next::After(Duration::from_millis(u64::from(held[4095])))
        };
        let run_size = size_of_val(&run);
        let task = supervised("key", run);
        let task_size = size_of_val(&task);
        assert!(
            task_size <= run_size + 64,
            "a task of {task_size} bytes for a run of {run_size}"
        );
    }
}
