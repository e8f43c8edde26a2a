//! Turns at the two costly steps of a reconcile, so that memory and
//! connections stay bounded however many objects are due at the same instant.
//! Every reconcile still starts at its instant (the controller runs them all);
//! one waiting for its turn is small, because the step's future is made and
//! boxed only once the turn comes.
//!
//! - **Acting** (the plan and its FSx calls): per account and Region, so a
//!   place whose requests wait on its rate limit holds up no other place.
//! - **Recording** (the status write and its events): one queue, as the
//!   apiserver is one; a status waiting here is the compact result, not a
//!   request being built or sent.
//!
//! Backups due now come first: while a reconcile that starts one waits to act
//! or acts, status writes go one at a time. On a small machine the apiserver
//! and the operator share the cores, and a write costs the apiserver far more
//! than a `CreateBackup` costs the operator; when thousands of objects are
//! due at the same instant, writing the statuses of the first runs would
//! otherwise make the last ones late. The writes wait, they are not stopped:
//! one keeps going, and all of them go at once when no due run is left.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, Semaphore, SemaphorePermit};

/// Objects of one account and Region acting at once. FSx calls are bounded
/// further below (in flight and per second, per place); this bounds the
/// reconciles waiting for them.
pub const ACTING_PER_PLACE: usize = 256;
/// Status writes (with their events) in flight at once: enough to keep the
/// apiserver busy, well under the client's limit on calls in flight.
pub const RECORDING: usize = 64;
/// Status writes in flight at once while backups due now wait to be asked
/// for: writes keep going, without taking the cores those runs need.
pub const RECORDING_BEHIND_DUE_RUNS: usize = 1;

/// Where an object acts: its `FsxBackupAccount` (`None`: the operator's own)
/// and Region (`None`: the default one).
pub type PlaceKey = (Option<String>, Option<String>);

/// Whether a reconcile is expected to start a backup that is due now (see the
/// module's doc): its turn to act then comes before status writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    DueRun,
    Routine,
}

#[derive(Debug)]
pub struct Gates {
    acting: Mutex<HashMap<PlaceKey, Arc<Semaphore>>>,
    recording: Semaphore,
    /// Reconciles with a due run waiting to act or acting, over all places.
    due_runs: AtomicUsize,
    /// Told when `due_runs` falls to zero: the writes held back go at once.
    no_due_runs: Notify,
    recording_behind_due_runs: Semaphore,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            acting: Mutex::default(),
            recording: Semaphore::new(RECORDING),
            due_runs: AtomicUsize::new(0),
            no_due_runs: Notify::new(),
            recording_behind_due_runs: Semaphore::new(RECORDING_BEHIND_DUE_RUNS),
        }
    }
}

/// Counts one due run from its wait for a turn to the end of its step,
/// however that ends (a reconcile can be dropped on timeout or shutdown).
struct DueRun<'a>(&'a Gates);

impl<'a> DueRun<'a> {
    fn enter(gates: &'a Gates) -> Self {
        gates.due_runs.fetch_add(1, Ordering::SeqCst);
        Self(gates)
    }
}

impl Drop for DueRun<'_> {
    fn drop(&mut self) {
        if self.0.due_runs.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.no_due_runs.notify_waiters();
        }
    }
}

impl Gates {
    /// Runs `step` once `place` has a turn to act. Not an `async fn`: one
    /// copies its arguments into locals and keeps both (the step's closure
    /// twice, in every reconcile waiting here), where this block holds them once.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub fn act<'a, T, F: Future<Output = T> + 'a>(
        &'a self,
        place: PlaceKey,
        urgency: Urgency,
        step: impl FnOnce() -> F + 'a,
    ) -> impl Future<Output = T> + 'a {
        async move {
            let _due = (urgency == Urgency::DueRun).then(|| DueRun::enter(self));
            let gate = self
                .acting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(place)
                .or_insert_with(|| Arc::new(Semaphore::new(ACTING_PER_PLACE)))
                .clone();
            // Never closed: an error would only mean going on without a turn.
            let _turn = gate.acquire().await.ok();
            Box::pin(step()).await
        }
    }

    /// Runs `step` once there is a turn to write to the apiserver.
    pub async fn record<T, F: Future<Output = T>>(&self, step: impl FnOnce() -> F) -> T {
        let _behind = self.behind_due_runs().await;
        let _turn = self.recording.acquire().await.ok();
        Box::pin(step()).await
    }

    /// While due runs wait to act or act: one of the few turns to write beside
    /// them. `None` as soon as there are none (also for a write already waiting).
    async fn behind_due_runs(&self) -> Option<SemaphorePermit<'_>> {
        loop {
            let cleared = self.no_due_runs.notified();
            let mut cleared = std::pin::pin!(cleared);
            // Registered before the count is read, so a fall to zero in between
            // is not missed.
            cleared.as_mut().enable();
            if self.due_runs.load(Ordering::SeqCst) == 0 {
                return None;
            }
            tokio::select! {
                turn = self.recording_behind_due_runs.acquire() => return turn.ok(),
                () = cleared => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Runs `n` steps at once, each acting at `place(i)` (or recording, for
    /// `None`) and holding its turn a moment; returns the most that ran together.
    async fn most_at_once(
        gates: Arc<Gates>,
        n: usize,
        place: impl Fn(usize) -> Option<PlaceKey>,
    ) -> usize {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let steps = (0..n).map(|i| {
            let (gates, running, most) = (gates.clone(), running.clone(), most.clone());
            let place = place(i);
            tokio::spawn(async move {
                let step = || async {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                };
                match place {
                    Some(place) => gates.act(place, Urgency::Routine, step).await,
                    None => gates.record(step).await,
                }
            })
        });
        for step in futures::future::join_all(steps).await {
            step.expect("step");
        }
        most.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn each_place_acts_and_the_apiserver_is_written_within_bounds() {
        let gates = Arc::new(Gates::default());
        let recording = |_| None;
        assert_eq!(
            most_at_once(gates.clone(), RECORDING * 3, recording).await,
            RECORDING
        );
        let one_place = |_| Some((None, Some("us-east-1".to_owned())));
        assert_eq!(
            most_at_once(gates.clone(), ACTING_PER_PLACE * 2, one_place).await,
            ACTING_PER_PLACE
        );
        // Two places: each has its own turns, so one waiting holds up no other.
        let two_places = |i: usize| Some((Some(format!("account-{}", i % 2)), None));
        assert_eq!(
            most_at_once(gates, ACTING_PER_PLACE * 4, two_places).await,
            ACTING_PER_PLACE * 2
        );
    }

    #[tokio::test]
    async fn a_place_waiting_for_its_turn_holds_up_no_other_place() {
        let gates = Arc::new(Gates::default());
        let busy = (Some("busy".to_owned()), None);
        // Every turn of one place held, for as long as the test runs.
        let (release, held) = tokio::sync::watch::channel(());
        let mut holders = Vec::new();
        for _ in 0..ACTING_PER_PLACE {
            let (gates, busy, mut held) = (gates.clone(), busy.clone(), held.clone());
            holders.push(tokio::spawn(async move {
                gates
                    .act(busy, Urgency::Routine, move || async move {
                        held.changed().await.ok()
                    })
                    .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = tokio::time::timeout(
            Duration::from_secs(5),
            gates.act((None, None), Urgency::Routine, || async { "acted" }),
        )
        .await;
        assert_eq!(other.ok(), Some("acted"));
        let waiting = tokio::time::timeout(
            Duration::from_millis(100),
            gates.act(busy, Urgency::Routine, || async { "acted" }),
        )
        .await;
        assert!(waiting.is_err(), "the busy place waits for a turn");
        release.send(()).expect("release");
        for holder in holders {
            holder.await.expect("holder");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn while_a_due_run_acts_writes_go_one_at_a_time_then_all_together() {
        let gates = Arc::new(Gates::default());
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let due = tokio::spawn({
            let gates = gates.clone();
            async move {
                let step = || async move { held.await.ok() };
                gates.act((None, None), Urgency::DueRun, step).await
            }
        });
        tokio::task::yield_now().await;
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let writes: Vec<_> = (0..8)
            .map(|_| {
                let (gates, running, most, done) =
                    (gates.clone(), running.clone(), most.clone(), done.clone());
                tokio::spawn(async move {
                    gates
                        .record(|| async {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            running.fetch_sub(1, Ordering::SeqCst);
                            done.fetch_add(1, Ordering::SeqCst);
                        })
                        .await;
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(35)).await;
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "one write beside the due run"
        );
        assert_eq!(
            done.load(Ordering::SeqCst),
            3,
            "writes kept going meanwhile"
        );
        let released = tokio::time::Instant::now();
        release.send(()).expect("release");
        due.await.expect("due run");
        for write in writes {
            write.await.expect("write");
        }
        assert!(
            most.load(Ordering::SeqCst) > 1,
            "the writes held back go together"
        );
        assert!(
            released.elapsed() < Duration::from_millis(25),
            "every write held back went at once: {:?}",
            released.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_run_that_is_dropped_while_waiting_holds_no_write_back() {
        let gates = Arc::new(Gates::default());
        let place = (None, Some("us-east-1".to_owned()));
        let (release, held) = tokio::sync::watch::channel(());
        // Every turn at the place taken, so the due run below waits for one.
        let mut holders = Vec::new();
        for _ in 0..ACTING_PER_PLACE {
            let (gates, place, mut held) = (gates.clone(), place.clone(), held.clone());
            holders.push(tokio::spawn(async move {
                let step = move || async move { held.changed().await.ok() };
                gates.act(place, Urgency::Routine, step).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let waiting = tokio::time::timeout(
            Duration::from_millis(50),
            gates.act(place, Urgency::DueRun, || async {}),
        )
        .await;
        assert!(waiting.is_err(), "the due run waited, and was dropped");
        let wrote = tokio::time::timeout(Duration::from_millis(50), async {
            futures::future::join_all(
                (0..4).map(|_| gates.record(|| tokio::time::sleep(Duration::from_millis(20)))),
            )
            .await;
        })
        .await;
        assert!(wrote.is_ok(), "four writes went together, none held back");
        release.send(()).expect("release");
        for holder in holders {
            holder.await.expect("holder");
        }
    }
}
