use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::fsx::{Lifecycle, Role};

/// An FSx that records the keys of every lookup call, can hold calls until
/// released, and answers from a table of backups per target.
#[derive(Debug, Default)]
struct Recording {
    calls: Mutex<Vec<(String, Vec<String>)>>,
    backups: Mutex<BTreeMap<String, Vec<Backup>>>,
    hold: tokio::sync::Notify,
    holding: AtomicBool,
    panic: AtomicBool,
}

impl Recording {
    fn record(&self, at: &Place, keys: Vec<String>) {
        let who = at
            .role
            .as_ref()
            .map_or_else(|| at.region.clone(), |r| format!("{}/{}", at.region, r.arn));
        self.calls.lock().unwrap().push((who, keys));
    }

    async fn gate(&self) {
        assert!(!self.panic.load(Ordering::SeqCst), "injected panic");
        if self.holding.load(Ordering::SeqCst) {
            self.hold.notified().await;
        }
    }

    fn calls(&self) -> Vec<(String, Vec<String>)> {
        self.calls.lock().unwrap().clone()
    }

    fn add(&self, target: &str, id: &str) {
        self.backups
            .lock()
            .unwrap()
            .entry(target.to_owned())
            .or_default()
            .push(backup(id));
    }
}

fn backup(id: &str) -> Backup {
    Backup {
        id: id.to_owned(),
        arn: None,
        lifecycle: Lifecycle::Available,
        backup_type: None,
        progress_percent: None,
        created_at: None,
        tags: BTreeMap::new(),
        failure_message: None,
        target: None,
        source_backup_id: None,
        source_region: None,
    }
}

impl FsxApi for Recording {
    async fn create_backup(&self, _: &Place, _: &CreateBackupRequest) -> Result<Backup, FsxError> {
        unreachable!("not asked in these tests")
    }
    async fn describe_backups_of_targets(&self, at: &Place, targets: &[BackupTarget]) -> ByTarget {
        self.record(at, targets.iter().map(|t| t.id().to_owned()).collect());
        self.gate().await;
        let backups = self.backups.lock().unwrap().clone();
        targets
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    Ok(backups.get(t.id()).cloned().unwrap_or_default()),
                )
            })
            .collect()
    }
    async fn describe_backups_by_ids(
        &self,
        at: &Place,
        ids: &[String],
    ) -> Result<BackupsById, FsxError> {
        self.record(at, ids.to_vec());
        self.gate().await;
        if ids.iter().any(|id| id == "backup-throttled") {
            return Err(FsxError::RetryLater {
                operation: "DescribeBackups",
                region: at.region.clone(),
                code: "ThrottlingException".into(),
                message: "slow down".into(),
            });
        }
        let (found, missing) = ids.iter().partition::<Vec<_>, _>(|id| !id.contains("gone"));
        Ok(BackupsById {
            found: found.into_iter().map(|id| backup(id)).collect(),
            missing: missing.into_iter().cloned().collect(),
        })
    }
    async fn delete_backup(&self, _: &Place, _: &str) -> Result<Deleted, FsxError> {
        unreachable!("not asked in these tests")
    }
    async fn copy_backup(&self, _: &Place, _: &CopyBackupRequest) -> Result<Backup, FsxError> {
        unreachable!("not asked in these tests")
    }
    async fn describe_file_systems(&self, at: &Place) -> Result<Vec<FileSystem>, FsxError> {
        self.record(at, vec!["file-systems".into()]);
        self.gate().await;
        Ok(Vec::new())
    }
    async fn describe_user_backups(&self, _: &Place) -> Result<Vec<Backup>, FsxError> {
        unreachable!("not asked in these tests")
    }
    async fn tag_backup(
        &self,
        _: &Place,
        _: &str,
        _: &BTreeMap<String, String>,
    ) -> Result<(), FsxError> {
        unreachable!("not asked in these tests")
    }
}

fn fs(n: usize) -> String {
    format!("fs-{n:017x}")
}

fn batched() -> Arc<BatchedFsx<Recording>> {
    Arc::new(BatchedFsx::with_linger(
        Recording::default(),
        Duration::from_millis(5),
    ))
}

/// 100 objects listing their own target at the same instant: 5 calls of 20,
/// each object handed exactly its target's backups.
#[tokio::test]
async fn simultaneous_listings_share_calls_and_each_gets_its_own_answer() {
    let fsx = batched();
    for n in 0..100 {
        fsx.inner.add(&fs(n), &format!("backup-{n:017x}"));
    }
    let at = Place::own("us-east-1");
    let answers = join_all((0..100).map(|n| {
        let fsx = fsx.clone();
        let at = at.clone();
        async move {
            fsx.describe_backups_of(&at, &BackupTarget::from_id(fs(n)))
                .await
        }
    }))
    .await;
    for (n, answer) in answers.into_iter().enumerate() {
        let ids: Vec<String> = answer.unwrap().into_iter().map(|b| b.id).collect();
        assert_eq!(ids, vec![format!("backup-{n:017x}")]);
    }
    let calls = fsx.inner.calls();
    assert_eq!(calls.len(), 5, "{calls:?}");
    assert!(calls.iter().all(|(_, keys)| keys.len() == 20), "{calls:?}");
}

/// Ten objects polling overlapping backups: each id asked once, found and
/// gone told apart per asker.
#[tokio::test]
async fn polls_of_many_objects_ask_each_id_once() {
    let fsx = batched();
    let at = Place::own("us-east-1");
    let answers = join_all((0..10).map(|n| {
        let fsx = fsx.clone();
        let at = at.clone();
        async move {
            let ids = vec![
                "backup-shared".to_owned(),
                format!("backup-own-{n}"),
                format!("backup-gone-{n}"),
            ];
            fsx.describe_backups_by_ids(&at, &ids).await
        }
    }))
    .await;
    for (n, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap();
        let mut found: Vec<String> = answer.found.into_iter().map(|b| b.id).collect();
        found.sort();
        assert_eq!(
            found,
            vec![format!("backup-own-{n}"), "backup-shared".into()]
        );
        assert_eq!(answer.missing, vec![format!("backup-gone-{n}")]);
    }
    let calls = fsx.inner.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].1.len(), 21, "the shared id once: {calls:?}");
}

/// A question asked while a call is on its way is not answered by that call:
/// it would be older than the question.
#[tokio::test]
async fn an_answer_is_never_older_than_its_question() {
    let fsx = batched();
    let at = Place::own("us-east-1");
    let target = BackupTarget::from_id(fs(1));
    fsx.inner.add(target.id(), "backup-00000000000000001");
    fsx.inner.holding.store(true, Ordering::SeqCst);

    let first = tokio::spawn({
        let (fsx, at, target) = (fsx.clone(), at.clone(), target.clone());
        async move { fsx.describe_backups_of(&at, &target).await }
    });
    while fsx.inner.calls().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The call is in flight; a backup is made; a second object asks.
    fsx.inner.add(target.id(), "backup-00000000000000002");
    let second = tokio::spawn({
        let (fsx, at, target) = (fsx.clone(), at.clone(), target.clone());
        async move { fsx.describe_backups_of(&at, &target).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    fsx.inner.holding.store(false, Ordering::SeqCst);
    fsx.inner.hold.notify_waiters();

    let second = second.await.unwrap().unwrap();
    assert_eq!(second.len(), 2, "the second asker sees the new backup");
    assert_eq!(first.await.unwrap().unwrap().len(), 2);
    assert_eq!(fsx.inner.calls().len(), 2);
}

/// Polls that trickle in while a call is in flight wait for it and go out
/// together in the next call, not one or two ids per parallel call; a second
/// call goes out at once only for a full call's worth.
#[tokio::test]
async fn a_trickle_of_lookups_waits_for_the_call_in_flight_and_goes_together() {
    let fsx = batched();
    let at = Place::own("us-east-1");
    fsx.inner.holding.store(true, Ordering::SeqCst);
    let poll = |id: String| {
        let (fsx, at) = (fsx.clone(), at.clone());
        tokio::spawn(async move { fsx.describe_backups_by_ids(&at, &[id]).await })
    };
    let mut polls = vec![poll("backup-first".into())];
    while fsx.inner.calls().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for n in 0..10 {
        polls.push(poll(format!("backup-{n:017}")));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        fsx.inner.calls().len(),
        1,
        "nothing more went out meanwhile"
    );
    // A full call's worth beyond them goes out at once, in parallel.
    for n in 10..61 {
        polls.push(poll(format!("backup-{n:017}")));
    }
    while fsx.inner.calls().len() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    fsx.inner.holding.store(false, Ordering::SeqCst);
    fsx.inner.hold.notify_waiters();
    for polled in polls {
        let answer = polled.await.unwrap().unwrap();
        assert_eq!(answer.found.len(), 1);
    }
    let sizes: Vec<usize> = fsx.inner.calls().iter().map(|(_, ids)| ids.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 62);
    assert_eq!(sizes.len(), 3, "1, then 50, then the other 11: {sizes:?}");
}

/// Calls never mix Regions or roles: a role's lookups go out under that role.
#[tokio::test]
async fn lookups_share_calls_only_within_one_region_and_role() {
    let fsx = batched();
    let role = |arn: &str, session: &str| {
        Some(Arc::new(Role {
            account_name: "a".into(),
            arn: arn.into(),
            account_id: "222222222222".into(),
            external_id: None,
            session_name: session.into(),
            session_duration: Duration::from_hours(1),
        }))
    };
    let places = [
        Place::own("us-east-1"),
        Place::own("us-west-2"),
        Place::new(
            "us-east-1",
            role("arn:aws:iam::222222222222:role/x", "ns.a"),
        ),
        Place::new(
            "us-east-1",
            role("arn:aws:iam::222222222222:role/x", "ns.b"),
        ),
        Place::new(
            "us-east-1",
            role("arn:aws:iam::222222222222:role/y", "ns.c"),
        ),
    ];
    join_all(places.iter().enumerate().map(|(n, at)| {
        let fsx = fsx.clone();
        async move {
            fsx.describe_backups_of(at, &BackupTarget::from_id(fs(n)))
                .await
        }
    }))
    .await;
    let mut calls = fsx.inner.calls();
    calls.sort();
    let arn = |r| format!("us-east-1/arn:aws:iam::222222222222:role/{r}");
    assert_eq!(
        calls,
        vec![
            ("us-east-1".into(), vec![fs(0)]),
            (arn("x"), vec![fs(2), fs(3)]),
            (arn("y"), vec![fs(4)]),
            ("us-west-2".into(), vec![fs(1)]),
        ]
    );
}

/// A failed call fails every asker in it, and a panic below answers "ask
/// again" and leaves the lane working.
#[tokio::test]
async fn failures_reach_every_asker_and_the_lane_recovers() {
    let fsx = batched();
    let at = Place::own("us-east-1");
    let ids = ["backup-throttled".to_owned(), "backup-1".to_owned()];
    let (a, b) = tokio::join!(
        fsx.describe_backups_by_ids(&at, &ids[..1]),
        fsx.describe_backups_by_ids(&at, &ids[1..]),
    );
    assert_eq!(a.unwrap_err().code(), "ThrottlingException");
    assert_eq!(b.unwrap_err().code(), "ThrottlingException");

    fsx.inner.panic.store(true, Ordering::SeqCst);
    let err = fsx.describe_file_systems(&at).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    fsx.inner.panic.store(false, Ordering::SeqCst);
    assert!(fsx.describe_file_systems(&at).await.unwrap().is_empty());
    assert_eq!(
        fsx.describe_backups_by_ids(&at, &ids[1..])
            .await
            .unwrap()
            .found
            .len(),
        1
    );
}
