//! `CopyBackup`: cross-Region and in-Region copies, the copy limit, tag
//! merging, idempotency and every modeled refusal.

use std::time::Duration;

use aws_sdk_fsx::error::ProvideErrorMetadata;
use aws_sdk_fsx::operation::copy_backup::CopyBackupError;
use aws_sdk_fsx::operation::delete_backup::DeleteBackupError;
use aws_sdk_fsx::types::{BackupLifecycle, BackupType, ServiceLimit};
use fsx_emulator::{
    BackupLifecycle as EmuLifecycle, BackupSeed, BackupType as EmuType, FileSystemSeed,
    FileSystemType, Limits, StorageType, Timing,
};

use crate::support::{EAST, Harness, WEST, pairs, service_err, tag, tag_pairs, wait_for};

/// An available user-initiated backup of a fresh Windows file system.
fn source_backup(h: &Harness, region: &str, seed: impl FnOnce(BackupSeed) -> BackupSeed) -> String {
    let fs = h.windows_fs(region);
    h.emulator
        .seed_backup(
            region,
            seed(BackupSeed::of_file_system(fs, EmuType::UserInitiated)),
        )
        .unwrap()
}

#[tokio::test]
async fn cross_region_copy_goes_from_copying_to_available() {
    let h = Harness::start().await;
    h.emulator.set_timing(Timing {
        copy_duration: Duration::from_millis(300),
        ..Timing::default()
    });
    let source = source_backup(&h, EAST, |s| s);
    let (east, west) = (h.client(EAST), h.client(WEST));

    let copy = west
        .copy_backup()
        .source_backup_id(&source)
        .source_region(EAST)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    let copy_id = copy.backup_id().unwrap().to_owned();
    assert_eq!(copy.lifecycle(), Some(&BackupLifecycle::Copying));
    assert_eq!(copy.r#type(), Some(&BackupType::UserInitiated));
    assert_eq!(copy.source_backup_id(), Some(source.as_str()));
    assert_eq!(copy.source_backup_region(), Some(EAST));
    assert!(
        copy.resource_arn()
            .unwrap()
            .starts_with("arn:aws:fsx:us-west-2:")
    );
    assert!(
        copy.kms_key_id()
            .unwrap()
            .starts_with("arn:aws:kms:us-west-2:")
    );

    // The source cannot be deleted while it is being copied, nor the copy.
    let err = service_err(east.delete_backup().backup_id(&source).send().await);
    let DeleteBackupError::BackupBeingCopied(inner) = &err else {
        panic!("expected BackupBeingCopied, got {err:?}");
    };
    assert_eq!(inner.backup_id(), Some(source.as_str()));
    assert_eq!(
        err.message(),
        Some("You can't delete a backup while it's being copied.")
    );
    let err = service_err(west.delete_backup().backup_id(&copy_id).send().await);
    assert!(
        matches!(err, DeleteBackupError::BackupInProgress(_)),
        "{err:?}"
    );

    let (done, seen) = wait_for(
        &west,
        &copy_id,
        BackupLifecycle::Available,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(seen.first(), Some(&BackupLifecycle::Copying));
    assert_eq!(done.source_backup_id(), Some(source.as_str()));
    east.delete_backup()
        .backup_id(&source)
        .send()
        .await
        .expect("copy finished");
    assert_eq!(
        east.describe_backups()
            .send()
            .await
            .unwrap()
            .backups()
            .len(),
        0
    );
    assert_eq!(
        west.describe_backups()
            .send()
            .await
            .unwrap()
            .backups()
            .len(),
        1
    );
}

#[tokio::test]
async fn in_region_copy_without_source_region() {
    let h = Harness::start().await;
    let source = source_backup(&h, EAST, |s| s);
    let client = h.client(EAST);
    let copy = client
        .copy_backup()
        .source_backup_id(&source)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    assert_eq!(copy.source_backup_region(), Some(EAST));
    assert_eq!(
        client
            .describe_backups()
            .send()
            .await
            .unwrap()
            .backups()
            .len(),
        2
    );
}

#[tokio::test]
async fn at_most_five_copies_in_progress_per_destination_region() {
    let h = Harness::start().await;
    h.emulator.set_timing(Timing {
        copy_duration: Duration::from_mins(1),
        ..Timing::default()
    });
    let sources: Vec<String> = (0..7).map(|_| source_backup(&h, EAST, |s| s)).collect();
    let west = h.client(WEST);
    let copy = |source: &str, client: &aws_sdk_fsx::Client| {
        client
            .copy_backup()
            .source_backup_id(source)
            .source_region(EAST)
            .send()
    };

    let mut copies = Vec::new();
    for source in &sources[..5] {
        copies.push(
            copy(source, &west)
                .await
                .unwrap()
                .backup
                .unwrap()
                .backup_id
                .unwrap(),
        );
    }
    let err = service_err(copy(&sources[5], &west).await);
    let CopyBackupError::ServiceLimitExceeded(inner) = &err else {
        panic!("expected ServiceLimitExceeded, got {err:?}");
    };
    assert_eq!(
        inner.limit(),
        Some(&ServiceLimit::TotalInProgressCopyBackups)
    );
    // The limit is per destination Region.
    copy(&sources[5], &h.client("eu-west-1"))
        .await
        .expect("another destination has free slots");

    h.emulator
        .set_lifecycle(WEST, &copies[0], EmuLifecycle::Available)
        .unwrap();
    copy(&sources[6], &west).await.expect("a slot was freed");
    assert_eq!(h.emulator.max_copies_in_progress()[WEST], 5);
    assert_eq!(h.emulator.state().regions[WEST].max_copies_in_progress, 5);
}

#[tokio::test]
async fn copy_tags_and_tags_merge_with_request_tags_winning() {
    let h = Harness::start().await;
    let source = source_backup(&h, EAST, |s| s.tag("a", "1").tag("b", "2"));
    let west = h.client(WEST);
    let copy = || {
        west.copy_backup()
            .source_backup_id(&source)
            .source_region(EAST)
    };

    let merged = copy()
        .copy_tags(true)
        .tags(tag("b", "override"))
        .tags(tag("c", "3"))
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    assert_eq!(
        tag_pairs(merged.tags()),
        pairs(&[("a", "1"), ("b", "override"), ("c", "3")])
    );
    let only_request = copy()
        .tags(tag("c", "3"))
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    assert_eq!(tag_pairs(only_request.tags()), pairs(&[("c", "3")]));
    let only_source = copy().copy_tags(true).send().await.unwrap().backup.unwrap();
    assert_eq!(
        tag_pairs(only_source.tags()),
        pairs(&[("a", "1"), ("b", "2")])
    );
    let none = copy().send().await.unwrap().backup.unwrap();
    assert!(none.tags().is_empty());

    let many = source_backup(&h, EAST, |s| {
        (0..30).fold(s, |s, i| s.tag(format!("s{i}"), "v"))
    });
    let too_many = (0..30).fold(
        west.copy_backup()
            .source_backup_id(&many)
            .source_region(EAST)
            .copy_tags(true),
        |b, i| b.tags(tag(&format!("r{i}"), "v")),
    );
    let err = service_err(too_many.send().await);
    assert!(matches!(err, CopyBackupError::BadRequest(_)), "{err:?}");
}

#[tokio::test]
async fn copy_token_is_idempotent() {
    let h = Harness::start().await;
    h.emulator.set_timing(Timing {
        copy_duration: Duration::from_mins(1),
        ..Timing::default()
    });
    let source = source_backup(&h, EAST, |s| s);
    let west = h.client(WEST);
    let copy = || {
        west.copy_backup()
            .source_backup_id(&source)
            .source_region(EAST)
            .client_request_token("copy-of-source")
    };
    let first = copy().send().await.unwrap().backup.unwrap();
    let second = copy().send().await.unwrap().backup.unwrap();
    assert_eq!(first.backup_id(), second.backup_id());
    assert_eq!(h.emulator.state().regions[WEST].backups.len(), 1);
    let err = service_err(
        copy()
            .kms_key_id("arn:aws:kms:us-west-2:111111111111:key/other")
            .send()
            .await,
    );
    let CopyBackupError::IncompatibleParameterError(inner) = &err else {
        panic!("expected IncompatibleParameterError, got {err:?}");
    };
    assert_eq!(inner.parameter(), Some("KmsKeyId"));
}

#[tokio::test]
async fn copy_refusals() {
    let h = Harness::start().await;
    h.emulator.set_limits(Limits {
        regions_without_multi_az: vec![WEST.to_owned()],
        bad_kms_keys: vec!["arn:aws:kms:us-east-1:111111111111:key/revoked".to_owned()],
        ..Limits::default()
    });
    let west = h.client(WEST);
    let copy_from = |source: &str, region: &str| {
        west.copy_backup()
            .source_backup_id(source)
            .source_region(region)
    };
    let available = source_backup(&h, EAST, |s| s);
    let creating = source_backup(&h, EAST, |s| s.lifecycle(EmuLifecycle::Creating));
    let bad_key = source_backup(&h, EAST, |s| {
        s.kms_key_id("arn:aws:kms:us-east-1:111111111111:key/revoked")
    });
    let multi_az_fs = h.seed_fs(
        EAST,
        FileSystemSeed::new(FileSystemType::Windows).deployment_type("MULTI_AZ_1"),
    );
    let multi_az = h
        .emulator
        .seed_backup(
            EAST,
            BackupSeed::of_file_system(&multi_az_fs, EmuType::Automatic),
        )
        .unwrap();
    let tiered_fs = h.seed_fs(
        EAST,
        FileSystemSeed::new(FileSystemType::OpenZfs).storage_type(StorageType::IntelligentTiering),
    );
    let tiered = h
        .emulator
        .seed_backup(
            EAST,
            BackupSeed::of_file_system(&tiered_fs, EmuType::UserInitiated),
        )
        .unwrap();

    let err = service_err(copy_from("backup-0123456789abcdef0", EAST).send().await);
    assert!(matches!(err, CopyBackupError::BackupNotFound(_)), "{err:?}");
    // The source lives in us-east-1, not in the default (destination) Region.
    let err = service_err(west.copy_backup().source_backup_id(&available).send().await);
    assert!(matches!(err, CopyBackupError::BackupNotFound(_)), "{err:?}");

    let err = service_err(copy_from(&creating, EAST).send().await);
    let CopyBackupError::SourceBackupUnavailable(inner) = &err else {
        panic!("expected SourceBackupUnavailable, got {err:?}");
    };
    assert_eq!(inner.backup_id(), Some(creating.as_str()));

    for region in ["cn-north-1", "us-gov-west-1", "moon-base-1", "US-EAST-1"] {
        let err = service_err(copy_from(&available, region).send().await);
        assert!(
            matches!(err, CopyBackupError::InvalidRegion(_)),
            "{region}: {err:?}"
        );
        assert_eq!(
            err.message(),
            Some(
                "The Region provided for SourceRegion is not valid or is in a different Amazon Web Services partition."
            )
        );
    }

    let err = service_err(copy_from(&bad_key, EAST).send().await);
    assert!(
        matches!(err, CopyBackupError::InvalidSourceKmsKey(_)),
        "{err:?}"
    );
    let err = service_err(
        copy_from(&available, EAST)
            .kms_key_id("arn:aws:kms:us-west-2:111111111111:key/invalid-key")
            .send()
            .await,
    );
    assert!(
        matches!(err, CopyBackupError::InvalidDestinationKmsKey(_)),
        "{err:?}"
    );

    let err = service_err(copy_from(&multi_az, EAST).send().await);
    assert!(
        matches!(err, CopyBackupError::IncompatibleRegionForMultiAz(_)),
        "{err:?}"
    );
    h.client("eu-west-1")
        .copy_backup()
        .source_backup_id(&multi_az)
        .source_region(EAST)
        .send()
        .await
        .expect("eu-west-1 supports Multi-AZ");

    let err = service_err(copy_from(&tiered, EAST).send().await);
    assert!(
        matches!(err, CopyBackupError::UnsupportedOperation(_)),
        "{err:?}"
    );

    h.emulator.set_faults(fsx_emulator::Faults {
        server_error_next: 1,
        only_operations: Some(vec!["CopyBackup".to_owned()]),
        ..fsx_emulator::Faults::default()
    });
    let err = service_err(
        h.client_without_retries(WEST)
            .copy_backup()
            .source_backup_id(&available)
            .source_region(EAST)
            .send()
            .await,
    );
    assert!(
        matches!(err, CopyBackupError::InternalServerError(_)),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("InternalServerError"));
    assert!(
        h.emulator
            .state()
            .regions
            .get(WEST)
            .is_none_or(|r| r.backups.is_empty())
    );
}

#[tokio::test]
async fn armed_copy_failure() {
    let h = Harness::start().await;
    let source = source_backup(&h, EAST, |s| s);
    h.emulator.fail_next_backup(WEST, &source);
    let west = h.client(WEST);
    let copy = west
        .copy_backup()
        .source_backup_id(&source)
        .source_region(EAST)
        .send()
        .await
        .unwrap();
    let id = copy.backup.unwrap().backup_id.unwrap();
    let (failed, _) = wait_for(&west, &id, BackupLifecycle::Failed, Duration::from_secs(5)).await;
    assert!(failed.failure_details().and_then(|d| d.message()).is_some());
}
