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

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

/// Objects of one account and Region acting at once. FSx calls are bounded
/// further below (in flight and per second, per place); this bounds the
/// reconciles waiting for them.
pub const ACTING_PER_PLACE: usize = 256;
/// Status writes (with their events) in flight at once: enough to keep the
/// apiserver busy, well under the client's limit on calls in flight.
pub const RECORDING: usize = 64;

/// Where an object acts: its `FsxBackupAccount` (`None`: the operator's own)
/// and Region (`None`: the default one).
pub type PlaceKey = (Option<String>, Option<String>);

#[derive(Debug)]
pub struct Gates {
    acting: Mutex<HashMap<PlaceKey, Arc<Semaphore>>>,
    recording: Semaphore,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            acting: Mutex::default(),
            recording: Semaphore::new(RECORDING),
        }
    }
}

impl Gates {
    /// Runs `step` once `place` has a turn to act.
    pub async fn act<T, F: Future<Output = T>>(
        &self,
        place: PlaceKey,
        step: impl FnOnce() -> F,
    ) -> T {
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

    /// Runs `step` once there is a turn to write to the apiserver.
    pub async fn record<T, F: Future<Output = T>>(&self, step: impl FnOnce() -> F) -> T {
        let _turn = self.recording.acquire().await.ok();
        Box::pin(step()).await
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
                    Some(place) => gates.act(place, step).await,
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
                    .act(busy, move || async move { held.changed().await.ok() })
                    .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = tokio::time::timeout(
            Duration::from_secs(5),
            gates.act((None, None), || async { "acted" }),
        )
        .await;
        assert_eq!(other.ok(), Some("acted"));
        let waiting = tokio::time::timeout(
            Duration::from_millis(100),
            gates.act(busy, || async { "acted" }),
        )
        .await;
        assert!(waiting.is_err(), "the busy place waits for a turn");
        release.send(()).expect("release");
        for holder in holders {
            holder.await.expect("holder");
        }
    }
}
