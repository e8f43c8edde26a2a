//! The operator's FSx boundary (`AwsFsx`, on the real aws-sdk-fsx) against the
//! project's FSx emulator over HTTP: idempotency under lost responses,
//! order-independent pagination, throttling absorbed by retries, and the
//! classification of every error kind the controllers act on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fsx_backup_operator::fsx::{
    AwsFsx, AwsFsxConfig, BackupTarget, CopyBackupRequest, CreateBackupRequest, Deleted, FsxApi,
    FsxError, Lifecycle, Place, Role, UserActionReason,
};
use fsx_emulator::{
    BackupSeed, BackupType, Emulator, Faults, FileSystemSeed, FileSystemType, Limits, RoleSeed,
    RunningEmulator, Timing, VolumeSeed,
};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

struct Setup {
    emulator: Emulator,
    _running: RunningEmulator,
    fsx: AwsFsx,
}

async fn setup(config: AwsFsxConfig) -> Setup {
    let emulator = Emulator::new();
    let running = emulator.start().await.expect("start emulator");
    let fsx = AwsFsx::new(
        crate::support::aws_sdk_config(EAST).await,
        AwsFsxConfig {
            endpoint_url: Some(running.endpoint.clone()),
            sts_endpoint_url: Some(running.endpoint.clone()),
            initial_backoff: Duration::from_millis(5),
            ..config
        },
    );
    Setup {
        emulator,
        _running: running,
        fsx,
    }
}

fn seed_fs(emulator: &Emulator, fs_type: FileSystemType) -> String {
    emulator
        .seed_file_system(EAST, FileSystemSeed::new(fs_type))
        .expect("seed file system")
}

fn seed_backup(emulator: &Emulator, fs: &str, backup_type: BackupType) -> String {
    emulator
        .seed_backup(EAST, BackupSeed::of_file_system(fs, backup_type))
        .expect("seed backup")
}

fn create_request(target: BackupTarget, token: &str) -> CreateBackupRequest {
    CreateBackupRequest {
        target,
        client_request_token: token.into(),
        tags: BTreeMap::from([(
            "fsxbackup.io/managed-by".into(),
            "fsx-backup-operator".into(),
        )]),
    }
}

fn backups_in(emulator: &Emulator, region: &str) -> usize {
    emulator
        .state()
        .regions
        .get(region)
        .map_or(0, |r| r.backups.len())
}

#[tokio::test]
async fn create_is_idempotent_when_responses_are_lost() {
    let s = setup(AwsFsxConfig {
        max_attempts: 3,
        ..AwsFsxConfig::default()
    })
    .await;
    let fs = seed_fs(&s.emulator, FileSystemType::Windows);
    let request = create_request(
        BackupTarget::FileSystem(fs.clone()),
        "sched-uid-fs-20261125T0000Z",
    );

    // Every response to CreateBackup is dropped after the backup was made:
    // the SDK retries with the same token and the call finally fails.
    s.emulator.set_faults(Faults {
        drop_response_after_write_next: 3,
        only_operations: Some(vec!["CreateBackup".into()]),
        ..Faults::default()
    });
    let err = s
        .fsx
        .create_backup(&Place::own(EAST), &request)
        .await
        .expect_err("responses are dropped");
    assert!(err.is_retryable(), "a lost response is transient: {err:?}");
    assert_eq!(
        backups_in(&s.emulator, EAST),
        1,
        "three attempts, one backup"
    );

    // The reconcile retries later with the same token: it gets that same backup.
    s.emulator.set_faults(Faults::default());
    let first = s
        .fsx
        .create_backup(&Place::own(EAST), &request)
        .await
        .expect("create");
    let again = s
        .fsx
        .create_backup(&Place::own(EAST), &request)
        .await
        .expect("create again");
    assert_eq!(first.id, again.id);
    assert_eq!(backups_in(&s.emulator, EAST), 1);
    let attempts = s
        .emulator
        .requests()
        .iter()
        .filter(|r| r.operation == "CreateBackup")
        .count();
    assert_eq!(
        attempts, 5,
        "3 dropped attempts + 2 answered calls reached the emulator"
    );
}

#[tokio::test]
async fn describe_reads_every_page_whatever_the_order() {
    let s = setup(AwsFsxConfig {
        page_size: Some(2),
        ..AwsFsxConfig::default()
    })
    .await;
    let fs = seed_fs(&s.emulator, FileSystemType::Lustre);
    let other = seed_fs(&s.emulator, FileSystemType::Lustre);
    let mut seeded = Vec::new();
    for _ in 0..9 {
        seeded.push(seed_backup(&s.emulator, &fs, BackupType::Automatic));
    }
    seed_backup(&s.emulator, &other, BackupType::Automatic);

    let listed = s
        .fsx
        .describe_backups_of(&Place::own(EAST), &BackupTarget::FileSystem(fs.clone()))
        .await
        .expect("describe");
    let mut ids: Vec<_> = listed.iter().map(|b| b.id.clone()).collect();
    ids.sort();
    seeded.sort();
    assert_eq!(
        ids, seeded,
        "all 9 backups of the target, none of the other's"
    );
    let pages = s
        .emulator
        .requests()
        .iter()
        .filter(|r| r.operation == "DescribeBackups")
        .count();
    assert_eq!(pages, 5, "9 backups at 2 per page");

    let by_ids = s
        .fsx
        .describe_backups_by_ids(
            &Place::own(EAST),
            &[
                seeded[0].clone(),
                "backup-0000000000000dead".into(),
                seeded[1].clone(),
            ],
        )
        .await
        .expect("by ids");
    assert_eq!(by_ids.found.len(), 2);
    assert_eq!(by_ids.missing, ["backup-0000000000000dead"]);

    // The stray scan's listing: every user-initiated backup of the Region,
    // all pages, any target; none of the automatic ones.
    let user = [
        seed_backup(&s.emulator, &fs, BackupType::UserInitiated),
        seed_backup(&s.emulator, &other, BackupType::UserInitiated),
        seed_backup(&s.emulator, &other, BackupType::UserInitiated),
    ];
    let listed = s
        .fsx
        .describe_user_backups(&Place::own(EAST))
        .await
        .expect("user backups");
    let mut ids: Vec<_> = listed.iter().map(|b| b.id.clone()).collect();
    ids.sort();
    let mut expected = user.to_vec();
    expected.sort();
    assert_eq!(ids, expected);

    // Adoption's re-tag, by the ARN the listing reports.
    let arn = listed[0].arn.clone().expect("arn");
    let tags = BTreeMap::from([("fsxbackup.io/cluster".to_owned(), "c1".to_owned())]);
    s.fsx
        .tag_backup(&Place::own(EAST), &arn, &tags)
        .await
        .expect("tag");
    let after = s
        .fsx
        .describe_backups_by_ids(&Place::own(EAST), std::slice::from_ref(&listed[0].id))
        .await
        .expect("by id");
    assert_eq!(
        after.found[0]
            .tags
            .get("fsxbackup.io/cluster")
            .map(String::as_str),
        Some("c1")
    );
}

/// The shared inventory's listing: many targets in few calls (20 per filter,
/// FSx's limit), each target handed exactly its own backups, and a target FSx
/// does not know failing alone, found by halving its batch.
#[tokio::test]
async fn many_targets_are_listed_in_few_calls_and_an_unknown_one_fails_alone() {
    let s = setup(AwsFsxConfig::default()).await;
    let mut expected = BTreeMap::new();
    let mut targets = Vec::new();
    for _ in 0..25 {
        let fs = seed_fs(&s.emulator, FileSystemType::Lustre);
        let backups = vec![
            seed_backup(&s.emulator, &fs, BackupType::UserInitiated),
            seed_backup(&s.emulator, &fs, BackupType::Automatic),
        ];
        targets.push(BackupTarget::FileSystem(fs.clone()));
        expected.insert(BackupTarget::FileSystem(fs), backups);
    }
    let unknown_fs = BackupTarget::FileSystem("fs-0ddddddddddddddd1".into());
    targets.push(unknown_fs.clone());
    let ontap = seed_fs(&s.emulator, FileSystemType::Ontap);
    let volume = s
        .emulator
        .seed_volume(EAST, VolumeSeed::new(&ontap))
        .expect("seed volume");
    let volume_backup = s
        .emulator
        .seed_backup(
            EAST,
            BackupSeed::of_volume(&volume, BackupType::UserInitiated),
        )
        .expect("seed volume backup");
    targets.push(BackupTarget::Volume(volume.clone()));
    expected.insert(BackupTarget::Volume(volume), vec![volume_backup]);
    let unknown_volume = BackupTarget::Volume("fsvol-0ddddddddddddddd1".into());
    targets.push(unknown_volume.clone());

    let mut answers = s
        .fsx
        .describe_backups_of_targets(&Place::own(EAST), &targets)
        .await;
    for unknown in [&unknown_fs, &unknown_volume] {
        let answer = answers.remove(unknown).expect("an answer for every target");
        let err = answer.expect_err("an unknown target fails");
        assert_eq!(
            user_action(&err),
            Some(UserActionReason::TargetNotFound),
            "{unknown:?}: {err:?}"
        );
    }
    let listed: BTreeMap<BackupTarget, Vec<String>> = answers
        .into_iter()
        .map(|(target, answer)| {
            let mut ids: Vec<String> = answer
                .expect("a known target is listed")
                .into_iter()
                .map(|b| b.id)
                .collect();
            ids.sort();
            (target, ids)
        })
        .collect();
    for backups in expected.values_mut() {
        backups.sort();
    }
    assert_eq!(listed, expected);
    // File systems: 20, then 6 holding the unknown one, halved 6 → 3 + 3 →
    // 1 + 2 → 1 + 1 (7 calls); volumes: 2 → 1 + 1 (3). 11, not 28.
    let calls = s
        .emulator
        .requests()
        .iter()
        .filter(|r| r.operation == "DescribeBackups")
        .count();
    assert_eq!(calls, 11);
}

#[tokio::test]
async fn throttling_is_absorbed_by_retries_and_visible_in_the_log() {
    let s = setup(AwsFsxConfig {
        max_attempts: 20,
        ..AwsFsxConfig::default()
    })
    .await;
    let fs = seed_fs(&s.emulator, FileSystemType::OpenZfs);
    s.emulator.set_faults(Faults {
        throttle_next: 7,
        ..Faults::default()
    });
    for _ in 0..6 {
        s.fsx
            .describe_backups_of(&Place::own(EAST), &BackupTarget::FileSystem(fs.clone()))
            .await
            .expect("retried to success");
    }
    let log = s.emulator.requests();
    let throttled = log
        .iter()
        .filter(|r| r.outcome == "ThrottlingException")
        .count();
    let ok = log.iter().filter(|r| r.outcome == "ok").count();
    assert_eq!(ok, 6);
    assert_eq!(throttled, 7, "{log:?}");
    assert!(
        log.iter().any(|r| r.attempt.is_some_and(|a| a > 1)),
        "retries are numbered: {log:?}"
    );

    // Without retries the throttling surfaces, classified as transient.
    let strict = setup(AwsFsxConfig {
        max_attempts: 1,
        ..AwsFsxConfig::default()
    })
    .await;
    strict.emulator.set_faults(Faults {
        throttle_next: 1,
        ..Faults::default()
    });
    let err = strict
        .fsx
        .describe_file_systems(&Place::own(EAST))
        .await
        .expect_err("throttled");
    assert!(
        matches!(&err, FsxError::RetryLater { code, .. } if code == "ThrottlingException"),
        "{err:?}"
    );
}

fn user_action(err: &FsxError) -> Option<UserActionReason> {
    match err {
        FsxError::UserAction { reason, .. } => Some(*reason),
        _ => None,
    }
}

#[tokio::test]
async fn every_error_kind_is_classified() {
    let s = setup(AwsFsxConfig {
        max_attempts: 1,
        ..AwsFsxConfig::default()
    })
    .await;
    let windows = seed_fs(&s.emulator, FileSystemType::Windows);
    let ontap = seed_fs(&s.emulator, FileSystemType::Ontap);
    let volume = s
        .emulator
        .seed_volume(EAST, VolumeSeed::new(&ontap))
        .expect("seed volume");
    s.emulator.set_timing(Timing {
        create_duration: Duration::from_hours(1),
        copy_duration: Duration::from_hours(1),
    });

    // Retry later: a backup of the target is still being made.
    s.fsx
        .create_backup(
            &Place::own(EAST),
            &create_request(BackupTarget::FileSystem(windows.clone()), "t1"),
        )
        .await
        .expect("first");
    let busy = s
        .fsx
        .create_backup(
            &Place::own(EAST),
            &create_request(BackupTarget::FileSystem(windows.clone()), "t2"),
        )
        .await;
    assert!(
        matches!(busy, Err(FsxError::RetryLater { ref code, .. }) if code == "BackupInProgress"),
        "{busy:?}"
    );

    // Needs user action: unknown target, ONTAP file system instead of a volume.
    let missing = s
        .fsx
        .create_backup(
            &Place::own(EAST),
            &create_request(
                BackupTarget::FileSystem("fs-0123456789abcdef0".into()),
                "t3",
            ),
        )
        .await;
    assert_eq!(
        missing.as_ref().err().and_then(user_action),
        Some(UserActionReason::TargetNotFound),
        "{missing:?}"
    );
    let missing_vol = s
        .fsx
        .create_backup(
            &Place::own(EAST),
            &create_request(
                BackupTarget::Volume("fsvol-0123456789abcdef0".into()),
                "t3v",
            ),
        )
        .await;
    assert_eq!(
        missing_vol.as_ref().err().and_then(user_action),
        Some(UserActionReason::TargetNotFound)
    );
    let whole_ontap = s
        .fsx
        .create_backup(
            &Place::own(EAST),
            &create_request(BackupTarget::FileSystem(ontap), "t4"),
        )
        .await;
    let err = whole_ontap.expect_err("ONTAP file systems are backed up per volume");
    assert_eq!(
        user_action(&err),
        Some(UserActionReason::OntapFileSystemNotBackupable)
    );
    assert!(
        err.to_string().contains("volumeIds"),
        "says what to fix: {err}"
    );
    s.fsx
        .create_backup(
            &Place::own(EAST),
            &create_request(BackupTarget::Volume(volume), "t5"),
        )
        .await
        .expect("volume backup");

    // Needs user action: access denied.
    s.emulator.set_faults(Faults {
        deny_operations: vec!["DescribeFileSystems".into()],
        ..Faults::default()
    });
    let denied = s
        .fsx
        .describe_file_systems(&Place::own(EAST))
        .await
        .expect_err("denied");
    assert_eq!(user_action(&denied), Some(UserActionReason::AccessDenied));
    s.emulator.set_faults(Faults::default());

    // Needs user action: the account's backup quota.
    s.emulator.set_limits(Limits {
        user_backups_per_region: 2,
        ..Limits::default()
    });
    let other = seed_fs(&s.emulator, FileSystemType::Windows);
    let quota = s
        .fsx
        .create_backup(
            &Place::own(EAST),
            &create_request(BackupTarget::FileSystem(other), "t6"),
        )
        .await;
    assert_eq!(
        quota.as_ref().err().and_then(user_action),
        Some(UserActionReason::BackupQuotaExceeded),
        "{quota:?}"
    );
    s.emulator.set_limits(Limits::default());

    // Deleting: busy (retry later), gone (fine), AWS Backup's (not ours to delete).
    let creating = s
        .fsx
        .describe_backups_of(
            &Place::own(EAST),
            &BackupTarget::FileSystem(windows.clone()),
        )
        .await
        .expect("describe");
    let creating_id = creating
        .iter()
        .find(|b| b.lifecycle == Lifecycle::Creating)
        .expect("creating")
        .id
        .clone();
    let busy_delete = s
        .fsx
        .delete_backup(&Place::own(EAST), &creating_id)
        .await
        .expect_err("in progress");
    assert!(busy_delete.is_retryable(), "{busy_delete:?}");
    assert_eq!(
        s.fsx
            .delete_backup(&Place::own(EAST), "backup-0123456789abcdef0")
            .await,
        Ok(Deleted::AlreadyGone)
    );

    // A 500 with retries off: transient.
    s.emulator.set_faults(Faults {
        server_error_next: 1,
        ..Faults::default()
    });
    let server = s
        .fsx
        .describe_file_systems(&Place::own(EAST))
        .await
        .expect_err("500");
    assert!(server.is_retryable(), "{server:?}");
    s.emulator.set_faults(Faults::default());
}

fn copy_request(source: &str, token: &str) -> CopyBackupRequest {
    CopyBackupRequest {
        source_backup_id: source.into(),
        source_region: EAST.into(),
        kms_key_id: None,
        copy_tags: true,
        tags: BTreeMap::new(),
        client_request_token: token.into(),
    }
}

#[tokio::test]
async fn copy_errors_are_classified() {
    let s = setup(AwsFsxConfig {
        max_attempts: 1,
        ..AwsFsxConfig::default()
    })
    .await;
    s.emulator.set_timing(Timing {
        create_duration: Duration::ZERO,
        copy_duration: Duration::from_hours(1),
    });
    let fs = seed_fs(&s.emulator, FileSystemType::Windows);
    let sources: Vec<_> = (0..7)
        .map(|_| seed_backup(&s.emulator, &fs, BackupType::UserInitiated))
        .collect();

    // Five copies fill the destination's slots; the sixth must wait for one.
    for (i, source) in sources.iter().take(5).enumerate() {
        let copy = s
            .fsx
            .copy_backup(&Place::own(WEST), &copy_request(source, &format!("c{i}")))
            .await
            .expect("copy");
        assert_eq!(copy.source_backup_id.as_deref(), Some(source.as_str()));
    }
    let full = s
        .fsx
        .copy_backup(&Place::own(WEST), &copy_request(&sources[5], "c5"))
        .await
        .expect_err("slots full");
    assert!(matches!(full, FsxError::CopySlotsFull { .. }), "{full:?}");
    assert!(full.is_retryable());

    // A source being copied cannot be deleted yet.
    let being_copied = s
        .fsx
        .delete_backup(&Place::own(EAST), &sources[0])
        .await
        .expect_err("being copied");
    assert!(
        matches!(&being_copied, FsxError::RetryLater { code, .. } if code == "BackupBeingCopied"),
        "{being_copied:?}"
    );

    s.emulator.set_limits(Limits {
        copies_in_progress_per_region: 100,
        ..Limits::default()
    });
    let mut bad_key = copy_request(&sources[6], "c6");
    bad_key.kms_key_id = Some("arn:aws:kms:us-west-2:111111111111:key/invalid".into());
    let err = s
        .fsx
        .copy_backup(&Place::own(WEST), &bad_key)
        .await
        .expect_err("bad key");
    assert_eq!(
        user_action(&err),
        Some(UserActionReason::InvalidKmsKey),
        "{err:?}"
    );

    let err = s
        .fsx
        .copy_backup(&Place::own("cn-north-1"), &copy_request(&sources[6], "c7"))
        .await
        .expect_err("cross-partition");
    assert_eq!(
        user_action(&err),
        Some(UserActionReason::InvalidRegion),
        "{err:?}"
    );

    let not_found = s
        .fsx
        .copy_backup(
            &Place::own(WEST),
            &copy_request("backup-0123456789abcdef0", "c8"),
        )
        .await
        .expect_err("missing");
    assert!(
        matches!(not_found, FsxError::NotFound { .. }),
        "{not_found:?}"
    );

    // The source is not yet AVAILABLE: wait.
    let creating_fs = seed_fs(&s.emulator, FileSystemType::Windows);
    s.emulator.set_timing(Timing {
        create_duration: Duration::from_hours(1),
        copy_duration: Duration::from_hours(1),
    });
    let fresh = s
        .fsx
        .create_backup(
            &Place::own(EAST),
            &create_request(BackupTarget::FileSystem(creating_fs), "fresh"),
        )
        .await
        .expect("create");
    let unavailable = s
        .fsx
        .copy_backup(&Place::own(WEST), &copy_request(&fresh.id, "c9"))
        .await
        .expect_err("source creating");
    assert!(
        matches!(&unavailable, FsxError::RetryLater { code, .. } if code == "SourceBackupUnavailable"),
        "{unavailable:?}"
    );

    // Multi-AZ backups cannot be copied to a Region that lacks support for them.
    let multi_az = s
        .emulator
        .seed_file_system(
            EAST,
            FileSystemSeed::new(FileSystemType::Windows).deployment_type("MULTI_AZ_1"),
        )
        .expect("seed multi-az");
    let maz_backup = seed_backup(&s.emulator, &multi_az, BackupType::UserInitiated);
    s.emulator.set_limits(Limits {
        regions_without_multi_az: vec!["ap-east-2".into()],
        ..Limits::default()
    });
    let err = s
        .fsx
        .copy_backup(&Place::own("ap-east-2"), &copy_request(&maz_backup, "c10"))
        .await
        .expect_err("no multi-az");
    assert_eq!(
        user_action(&err),
        Some(UserActionReason::MultiAzCopyUnsupported),
        "{err:?}"
    );
}

/// A role of another account, as `FsxBackupAccount` resolves it for one object.
fn role(account: &str, external_id: Option<&str>) -> Arc<Role> {
    Arc::new(Role {
        account_name: "team-a".into(),
        arn: format!("arn:aws:iam::{account}:role/fsx-backup-account"),
        account_id: account.into(),
        external_id: external_id.map(str::to_owned),
        session_name: "team-a.nightly".into(),
        session_duration: Duration::from_hours(1),
    })
}

#[tokio::test]
async fn calls_in_another_account_go_through_one_cached_assumed_role_session() {
    let s = setup(AwsFsxConfig {
        max_attempts: 1,
        ..AwsFsxConfig::default()
    })
    .await;
    let account = "222222222222";
    s.emulator
        .add_role(
            RoleSeed::new(format!("arn:aws:iam::{account}:role/fsx-backup-account"))
                .external_id("ext"),
        )
        .expect("role");
    let theirs = s
        .emulator
        .seed_file_system_in(account, EAST, FileSystemSeed::new(FileSystemType::Windows))
        .expect("seed");
    let ours = seed_fs(&s.emulator, FileSystemType::Windows);
    let there = Place::new(EAST, Some(role(account, Some("ext"))));
    assert_eq!(there.account(), account);
    assert!(there.to_string().contains(account), "{there}");

    // The role's account only: its file system, not the operator's.
    let listed = s.fsx.describe_file_systems(&there).await.expect("list");
    assert_eq!(
        listed.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        [theirs.as_str()]
    );
    let own = s
        .fsx
        .describe_file_systems(&Place::own(EAST))
        .await
        .expect("list own");
    assert_eq!(
        own.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        [ours.as_str()]
    );
    let made = s
        .fsx
        .create_backup(
            &there,
            &create_request(BackupTarget::FileSystem(theirs.clone()), "x1"),
        )
        .await
        .expect("create there");
    assert!(
        made.arn.as_deref().is_some_and(|a| a.contains(account)),
        "{made:?}"
    );
    // Every call reused one session: one AssumeRole, and the calls in the account.
    let requests = s.emulator.requests();
    let assumed: Vec<_> = requests
        .iter()
        .filter(|r| r.operation == "AssumeRole")
        .collect();
    assert_eq!(assumed.len(), 1, "{requests:?}");
    assert_eq!(
        assumed[0].role_session_name.as_deref(),
        Some("team-a.nightly")
    );
    let in_account = requests
        .iter()
        .filter(|r| r.operation != "AssumeRole" && r.account.as_deref() == Some(account))
        .count();
    assert_eq!(in_account, 2, "{requests:?}");

    // A wrong external id: AccessDenied, naming the role, needing a person.
    let wrong = Place::new(EAST, Some(role(account, Some("nope"))));
    let denied = s
        .fsx
        .describe_file_systems(&wrong)
        .await
        .expect_err("denied");
    assert_eq!(
        user_action(&denied),
        Some(UserActionReason::AccessDenied),
        "{denied:?}"
    );
    assert_eq!(denied.operation(), "AssumeRole");
    let text = denied.to_string();
    assert!(
        text.contains("arn:aws:iam::222222222222:role/fsx-backup-account")
            && text.contains("trust policy"),
        "{text}"
    );
    assert_eq!(
        s.fsx.assume(&wrong).await.map_err(|e| e.operation()),
        Err("AssumeRole")
    );

    // STS throttling, past the SDK's own retries: retried later, not a person's problem.
    s.emulator.set_faults(Faults {
        throttle_rate: 1.0,
        only_operations: Some(vec!["AssumeRole".into()]),
        ..Faults::default()
    });
    let other_session = Place::new(
        EAST,
        Some(Arc::new(Role {
            session_name: "team-a.other".into(),
            ..(*role(account, Some("ext"))).clone()
        })),
    );
    let throttled = s.fsx.assume(&other_session).await.expect_err("throttled");
    assert!(throttled.is_retryable(), "{throttled:?}");
    s.emulator.set_faults(Faults::default());
    s.fsx
        .assume(&other_session)
        .await
        .expect("assumed on retry");
}
