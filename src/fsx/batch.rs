//! One FSx inventory per account and Region: the lookups of many objects,
//! asked in few calls. When thousands of objects are due at once, each wants
//! the backups of its targets and the state of its backups in flight; asked
//! one object at a time that is a `DescribeBackups` per object, against an
//! API rate FSx counts per account. Here the lookups that may share a call
//! (same Region, same role) wait a moment ([`LINGER`]) and go together: up to
//! 20 targets or 50 backup ids per call, each target or id once however many
//! objects asked, every asker handed its own part of the answer.
//!
//! An answer is never older than its question: a lookup joins a call not yet
//! sent, never one in flight, so retention, settling and the ownership check
//! at delete time read FSx as fresh as if each object had asked alone.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::join_all;
use tokio::sync::oneshot;

use super::{
    Backup, BackupTarget, BackupsById, ByTarget, CopyBackupRequest, CreateBackupRequest, Deleted,
    FileSystem, FsxApi, FsxError, Place, incomplete_answer,
};

/// How long a lookup waits for others to share its call when there is not a
/// full call's worth waiting. Short against any poll interval, long enough
/// for the objects due at one instant to meet.
pub const LINGER: Duration = Duration::from_millis(20);

/// Lookups coalesced per account and Region, around any other [`FsxApi`];
/// every call that changes something passes straight through.
#[derive(Debug)]
pub struct BatchedFsx<F> {
    inner: Arc<F>,
    linger: Duration,
    lanes: Mutex<HashMap<Lane, Arc<Lanes>>>,
}

/// Who may share a call: one Region and one identity (the operator's own, or
/// one role; two roles in one account never share a call, since each may be
/// allowed different things). The session name only names the object asking,
/// so objects using the same role share calls.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Lane {
    region: String,
    role: Option<(String, Option<String>)>,
}

impl Lane {
    fn of(at: &Place) -> Self {
        Self {
            region: at.region.clone(),
            role: at
                .role
                .as_ref()
                .map(|r| (r.arn.clone(), r.external_id.clone())),
        }
    }
}

#[derive(Debug, Default)]
struct Lanes {
    by_id: Arc<Coalescer<ById>>,
    by_target: Arc<Coalescer<ByTargets>>,
    file_systems: Arc<Coalescer<FileSystems>>,
}

impl<F: FsxApi> BatchedFsx<F> {
    pub fn new(inner: F) -> Self {
        Self::with_linger(inner, LINGER)
    }

    pub fn with_linger(inner: F, linger: Duration) -> Self {
        Self {
            inner: Arc::new(inner),
            linger,
            lanes: Mutex::new(HashMap::new()),
        }
    }

    fn lanes(&self, at: &Place) -> Arc<Lanes> {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        match lanes.entry(Lane::of(at)) {
            Entry::Occupied(lane) => lane.get().clone(),
            Entry::Vacant(lane) => lane.insert(Arc::default()).clone(),
        }
    }

    /// Each distinct key asked at once, answered together.
    async fn ask_each<L: Lookup>(
        &self,
        coalescer: &Arc<Coalescer<L>>,
        at: &Place,
        keys: &[L::Key],
    ) -> Vec<(L::Key, Result<L::Value, FsxError>)> {
        let unique: BTreeSet<&L::Key> = keys.iter().collect();
        join_all(unique.into_iter().map(|key| async {
            let answer = coalescer
                .ask(&self.inner, self.linger, at, key.clone())
                .await;
            (key.clone(), answer)
        }))
        .await
    }
}

/// One kind of lookup that many objects' questions can share a call for.
trait Lookup: Send + Sync + 'static {
    type Key: Ord + Clone + Send + Sync + std::fmt::Debug + 'static;
    type Value: Clone + Send + Sync + std::fmt::Debug + 'static;
    const OPERATION: &'static str;
    /// Keys one call carries at most.
    const MAX_BATCH: usize;
    /// Calls in flight at once per lane; past the first, only for full calls.
    const MAX_CALLS: usize;
    /// One answer per key; a key left out is answered "incomplete, ask again".
    fn call<F: FsxApi>(
        fsx: &F,
        at: &Place,
        keys: Vec<Self::Key>,
    ) -> impl Future<Output = BTreeMap<Self::Key, Result<Self::Value, FsxError>>> + Send;
}

/// Backups by id: `None` is a backup FSx no longer knows.
#[derive(Debug)]
struct ById;

impl Lookup for ById {
    type Key = String;
    type Value = Option<Backup>;
    const OPERATION: &'static str = "DescribeBackups";
    const MAX_BATCH: usize = 50;
    const MAX_CALLS: usize = 4;

    async fn call<F: FsxApi>(
        fsx: &F,
        at: &Place,
        keys: Vec<String>,
    ) -> BTreeMap<String, Result<Option<Backup>, FsxError>> {
        match fsx.describe_backups_by_ids(at, &keys).await {
            Ok(answer) => answer
                .found
                .into_iter()
                .map(|b| (b.id.clone(), Ok(Some(b))))
                .chain(answer.missing.into_iter().map(|id| (id, Ok(None))))
                .collect(),
            Err(err) => keys.into_iter().map(|k| (k, Err(err.clone()))).collect(),
        }
    }
}

/// Every backup of a file system or volume.
#[derive(Debug)]
struct ByTargets;

impl Lookup for ByTargets {
    type Key = BackupTarget;
    type Value = Vec<Backup>;
    const OPERATION: &'static str = "DescribeBackups";
    const MAX_BATCH: usize = 20;
    const MAX_CALLS: usize = 4;

    async fn call<F: FsxApi>(fsx: &F, at: &Place, keys: Vec<BackupTarget>) -> ByTarget {
        fsx.describe_backups_of_targets(at, &keys).await
    }
}

/// The Region's file systems (tag selectors): one listing answers everyone.
#[derive(Debug)]
struct FileSystems;

impl Lookup for FileSystems {
    type Key = ();
    type Value = Vec<FileSystem>;
    const OPERATION: &'static str = "DescribeFileSystems";
    const MAX_BATCH: usize = 1;
    const MAX_CALLS: usize = 1;

    async fn call<F: FsxApi>(
        fsx: &F,
        at: &Place,
        _: Vec<()>,
    ) -> BTreeMap<(), Result<Vec<FileSystem>, FsxError>> {
        BTreeMap::from([((), fsx.describe_file_systems(at).await)])
    }
}

type Reply<V> = oneshot::Sender<Result<V, FsxError>>;

/// The questions of one lookup kind in one lane, waiting for a call.
#[derive(Debug)]
struct Coalescer<L: Lookup> {
    waiting: Mutex<Waiting<L>>,
}

impl<L: Lookup> Default for Coalescer<L> {
    fn default() -> Self {
        Self {
            waiting: Mutex::new(Waiting {
                order: VecDeque::new(),
                askers: BTreeMap::new(),
                calls: 0,
            }),
        }
    }
}

#[derive(Debug)]
struct Waiting<L: Lookup> {
    /// Keys in the order first asked, so none waits behind later ones.
    order: VecDeque<L::Key>,
    askers: BTreeMap<L::Key, Askers<L::Value>>,
    /// Callers running: each takes batches until nothing waits.
    calls: usize,
}

/// Who asked for one key, and where the first of them asked: the call goes
/// out under that session.
#[derive(Debug)]
struct Askers<V> {
    at: Place,
    replies: Vec<Reply<V>>,
}

type Batch<L> = (
    Place,
    Vec<(<L as Lookup>::Key, Vec<Reply<<L as Lookup>::Value>>)>,
);

impl<L: Lookup> Coalescer<L> {
    /// Asks for `key` at `at`; the answer comes from a call not yet sent.
    async fn ask<F: FsxApi>(
        self: &Arc<Self>,
        fsx: &Arc<F>,
        linger: Duration,
        at: &Place,
        key: L::Key,
    ) -> Result<L::Value, FsxError> {
        let (reply, answer) = oneshot::channel();
        let start_caller = {
            let mut waiting = self.lock();
            if let Some(askers) = waiting.askers.get_mut(&key) {
                askers.replies.push(reply);
            } else {
                waiting.order.push_back(key.clone());
                let askers = Askers {
                    at: at.clone(),
                    replies: vec![reply],
                };
                waiting.askers.insert(key, askers);
            }
            // Another call goes out in parallel only for a full call's worth
            // beyond what the callers running will take next: a trickle of
            // lookups (polls spread over minutes) waits at most one call and
            // goes together, rather than one or two keys per call.
            let start = waiting.calls == 0
                || (waiting.calls < L::MAX_CALLS
                    && waiting.order.len() > L::MAX_BATCH * waiting.calls);
            if start {
                waiting.calls += 1;
            }
            start
        };
        if start_caller {
            // A task of its own: an asker that gives up must not strand the others.
            tokio::spawn(Arc::clone(self).call_while_waiting(Arc::clone(fsx), linger));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(incomplete_answer(L::OPERATION, at)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting<L>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn call_while_waiting<F: FsxApi>(self: Arc<Self>, fsx: Arc<F>, linger: Duration) {
        loop {
            if self.lock().order.len() < L::MAX_BATCH {
                tokio::time::sleep(linger).await;
            }
            let Some((at, batch)) = self.next_batch() else {
                return;
            };
            let keys = batch.iter().map(|(key, _)| key.clone()).collect();
            // A panic below answers this batch "ask again" instead of leaving it unanswered.
            let answers = AssertUnwindSafe(L::call(&*fsx, &at, keys))
                .catch_unwind()
                .await
                .unwrap_or_default();
            for (key, replies) in batch {
                let answer = answers
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| Err(incomplete_answer(L::OPERATION, &at)));
                for reply in replies {
                    let _ = reply.send(answer.clone());
                }
            }
        }
    }

    /// The next call's keys, oldest first; `None` (and this caller stops) when
    /// nothing waits, decided under the same lock an asker counts callers by.
    fn next_batch(&self) -> Option<Batch<L>> {
        let mut waiting = self.lock();
        if waiting.order.is_empty() {
            waiting.calls -= 1;
            return None;
        }
        let take = waiting.order.len().min(L::MAX_BATCH);
        let keys: Vec<L::Key> = waiting.order.drain(..take).collect();
        let mut at = None;
        let mut batch = Vec::with_capacity(keys.len());
        for key in keys {
            let askers = waiting
                .askers
                .remove(&key)
                .expect("every waiting key has askers");
            at.get_or_insert(askers.at);
            batch.push((key, askers.replies));
        }
        at.map(|at| (at, batch))
    }
}

impl<F: FsxApi> FsxApi for BatchedFsx<F> {
    async fn create_backup(
        &self,
        at: &Place,
        request: &CreateBackupRequest,
    ) -> Result<Backup, FsxError> {
        self.inner.create_backup(at, request).await
    }

    async fn describe_backups_of_targets(&self, at: &Place, targets: &[BackupTarget]) -> ByTarget {
        let lane = self.lanes(at);
        self.ask_each(&lane.by_target, at, targets)
            .await
            .into_iter()
            .collect()
    }

    async fn describe_backups_by_ids(
        &self,
        at: &Place,
        ids: &[String],
    ) -> Result<BackupsById, FsxError> {
        let lane = self.lanes(at);
        let answers = self.ask_each(&lane.by_id, at, ids).await;
        let mut result = BackupsById::default();
        for (id, answer) in answers {
            match answer? {
                Some(backup) => result.found.push(backup),
                None => result.missing.push(id),
            }
        }
        Ok(result)
    }

    async fn delete_backup(&self, at: &Place, backup_id: &str) -> Result<Deleted, FsxError> {
        self.inner.delete_backup(at, backup_id).await
    }

    async fn copy_backup(
        &self,
        destination: &Place,
        request: &CopyBackupRequest,
    ) -> Result<Backup, FsxError> {
        self.inner.copy_backup(destination, request).await
    }

    async fn describe_file_systems(&self, at: &Place) -> Result<Vec<FileSystem>, FsxError> {
        self.lanes(at)
            .file_systems
            .ask(&self.inner, self.linger, at, ())
            .await
    }

    async fn describe_user_backups(&self, at: &Place) -> Result<Vec<Backup>, FsxError> {
        self.inner.describe_user_backups(at).await
    }

    async fn assume(&self, at: &Place) -> Result<(), FsxError> {
        self.inner.assume(at).await
    }

    async fn tag_backup(
        &self,
        at: &Place,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), FsxError> {
        self.inner.tag_backup(at, arn, tags).await
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
