//! `CreateBackup`: lifecycle, idempotency, one-at-a-time, refusals, quota.

use std::time::Duration;

use aws_sdk_fsx::error::ProvideErrorMetadata;
use aws_sdk_fsx::operation::create_backup::CreateBackupError;
use aws_sdk_fsx::types::{BackupLifecycle, BackupType, ResourceType, ServiceLimit};
use fsx_emulator::{
    BackupLifecycle as EmuLifecycle, FileSystemSeed, FileSystemType, Limits, Timing, VolumeSeed,
};

use crate::support::{EAST, Harness, describe, pairs, service_err, tag, tag_pairs, wait_for};

#[tokio::test]
async fn create_backup_goes_from_creating_to_available() {
    let h = Harness::start().await;
    h.emulator.set_timing(Timing {
        create_duration: Duration::from_millis(300),
        ..Timing::default()
    });
    let fs = h.windows_fs(EAST);
    let client = h.client(EAST);

    let created = client
        .create_backup()
        .file_system_id(&fs)
        .tags(tag("Name", "nightly"))
        .send()
        .await
        .expect("CreateBackup succeeds")
        .backup
        .expect("Backup is returned");
    let id = created.backup_id().expect("BackupId").to_owned();
    assert!(id.starts_with("backup-") && id.len() == 24, "{id}");
    assert_eq!(created.lifecycle(), Some(&BackupLifecycle::Creating));
    assert_eq!(created.r#type(), Some(&BackupType::UserInitiated));
    assert_eq!(created.progress_percent(), Some(0));
    assert_eq!(created.resource_type(), Some(&ResourceType::FileSystem));
    assert_eq!(created.owner_id(), Some(fsx_emulator::ACCOUNT_ID));
    assert_eq!(
        created.resource_arn(),
        Some(format!("arn:aws:fsx:{EAST}:111111111111:backup/{id}").as_str())
    );
    assert_eq!(tag_pairs(created.tags()), pairs(&[("Name", "nightly")]));
    let fs_description = created.file_system().expect("FileSystem");
    assert_eq!(fs_description.file_system_id(), Some(fs.as_str()));
    assert!(created.creation_time().is_some());
    assert!(created.kms_key_id().is_some());

    let (available, seen) = wait_for(
        &client,
        &id,
        BackupLifecycle::Available,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(seen.first(), Some(&BackupLifecycle::Creating), "{seen:?}");
    assert_eq!(available.progress_percent(), Some(100));

    let snapshot = h.emulator.state();
    let backup = &snapshot.regions[EAST].backups[0];
    assert_eq!(backup.id, id);
    assert!(backup.completion_time.is_some());
}

#[tokio::test]
async fn zero_duration_backup_is_available_on_the_next_request() {
    let h = Harness::start().await;
    let fs = h.windows_fs(EAST);
    let client = h.client(EAST);
    let created = client
        .create_backup()
        .file_system_id(&fs)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    assert_eq!(created.lifecycle(), Some(&BackupLifecycle::Creating));
    let described = describe(&client, created.backup_id().unwrap()).await;
    assert_eq!(described.lifecycle(), Some(&BackupLifecycle::Available));
}

#[tokio::test]
async fn client_request_token_makes_create_idempotent() {
    let h = Harness::start().await;
    h.emulator.set_timing(Timing {
        create_duration: Duration::from_secs(30),
        ..Timing::default()
    });
    let fs = h.windows_fs(EAST);
    let other_fs = h.windows_fs(EAST);
    let client = h.client(EAST);
    let create = |token: &str| {
        client
            .create_backup()
            .file_system_id(&fs)
            .client_request_token(token)
            .tags(tag("slot", "2026-11-25T00:00Z"))
    };

    let first = create("slot-1").send().await.unwrap().backup.unwrap();
    // Same token and parameters: the same backup, even while it is still in
    // progress (no BackupInProgress for a replay).
    let again = create("slot-1").send().await.unwrap().backup.unwrap();
    assert_eq!(first.backup_id(), again.backup_id());
    assert_eq!(h.emulator.state().regions[EAST].backups.len(), 1);
    assert_eq!(
        h.emulator.state().regions[EAST].backups[0]
            .client_request_token
            .as_deref(),
        Some("slot-1")
    );

    let err = service_err(create("slot-1").tags(tag("extra", "x")).send().await);
    let CreateBackupError::IncompatibleParameterError(inner) = &err else {
        panic!("expected IncompatibleParameterError, got {err:?}");
    };
    assert_eq!(inner.parameter(), Some("Tags"));
    assert!(err.message().unwrap().starts_with(
        "The error returned when a second request is received with the same client request token"
    ));

    let err = service_err(
        client
            .create_backup()
            .file_system_id(&other_fs)
            .client_request_token("slot-1")
            .tags(tag("slot", "2026-11-25T00:00Z"))
            .send()
            .await,
    );
    let CreateBackupError::IncompatibleParameterError(inner) = &err else {
        panic!("expected IncompatibleParameterError, got {err:?}");
    };
    assert_eq!(inner.parameter(), Some("FileSystemId"));
    assert_eq!(h.emulator.state().regions[EAST].backups.len(), 1);
}

#[tokio::test]
async fn only_one_backup_at_a_time_per_file_system() {
    let h = Harness::start().await;
    h.emulator.set_timing(Timing {
        create_duration: Duration::from_secs(30),
        ..Timing::default()
    });
    let fs = h.windows_fs(EAST);
    let other = h.windows_fs(EAST);
    let client = h.client(EAST);
    let first = client
        .create_backup()
        .file_system_id(&fs)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();

    let err = service_err(client.create_backup().file_system_id(&fs).send().await);
    assert!(
        matches!(err, CreateBackupError::BackupInProgress(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some(
            "Another backup is already under way. Wait for completion before initiating additional backups of this file system."
        )
    );
    // Another file system is not affected.
    client
        .create_backup()
        .file_system_id(&other)
        .send()
        .await
        .unwrap();

    h.emulator
        .set_lifecycle(EAST, first.backup_id().unwrap(), EmuLifecycle::Available)
        .unwrap();
    client
        .create_backup()
        .file_system_id(&fs)
        .send()
        .await
        .expect("allowed once the first is done");
}

#[tokio::test]
async fn each_backup_settles_at_its_own_time() {
    let h = Harness::start().await;
    let (slow_fs, quick_fs) = (h.windows_fs(EAST), h.windows_fs(EAST));
    let client = h.client(EAST);
    let create = async |fs: &str| {
        let created = client.create_backup().file_system_id(fs).send().await;
        created.unwrap().backup.unwrap().backup_id.unwrap()
    };
    // Started first, due last.
    h.emulator.set_timing(Timing {
        create_duration: Duration::from_hours(1),
        ..Timing::default()
    });
    let slow = create(&slow_fs).await;
    h.emulator.set_timing(Timing::default());
    let quick = create(&quick_fs).await;

    let lifecycle = async |id: &str| describe(&client, id).await.lifecycle().cloned();
    assert_eq!(lifecycle(&quick).await, Some(BackupLifecycle::Available));
    assert_eq!(lifecycle(&slow).await, Some(BackupLifecycle::Creating));
    let busy = service_err(client.create_backup().file_system_id(&slow_fs).send().await);
    assert!(
        matches!(busy, CreateBackupError::BackupInProgress(_)),
        "{busy:?}"
    );
    // Settled by the control API before its time: no longer in the way.
    h.emulator
        .set_lifecycle(EAST, &slow, EmuLifecycle::Available)
        .unwrap();
    create(&slow_fs).await;
}

#[tokio::test]
async fn one_backup_at_a_time_per_volume_not_per_file_system() {
    let h = Harness::start().await;
    h.emulator.set_timing(Timing {
        create_duration: Duration::from_hours(1),
        ..Timing::default()
    });
    let ontap = h.seed_fs(EAST, FileSystemSeed::new(FileSystemType::Ontap));
    let seed = |name: &str| {
        h.emulator
            .seed_volume(EAST, VolumeSeed::new(&ontap).name(name))
            .unwrap()
    };
    let (data, logs) = (seed("data"), seed("logs"));
    let client = h.client(EAST);
    let create = async |volume: &str| client.create_backup().volume_id(volume).send().await;

    create(&data).await.expect("the first backup of data");
    create(&logs)
        .await
        .expect("another volume of the same file system");
    let busy = service_err(create(&data).await);
    assert!(
        matches!(busy, CreateBackupError::BackupInProgress(_)),
        "{busy:?}"
    );
}

#[tokio::test]
async fn ontap_backs_up_volumes_only() {
    let h = Harness::start().await;
    let ontap = h.seed_fs(EAST, FileSystemSeed::new(FileSystemType::Ontap));
    let volume = h
        .emulator
        .seed_volume(EAST, VolumeSeed::new(&ontap).name("data"))
        .unwrap();
    let zfs = h.seed_fs(EAST, FileSystemSeed::new(FileSystemType::OpenZfs));
    let client = h.client(EAST);

    let err = service_err(client.create_backup().file_system_id(&ontap).send().await);
    assert!(
        matches!(err, CreateBackupError::UnsupportedOperation(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some("ONTAP file system backup is unsupported.")
    );

    let backup = client
        .create_backup()
        .volume_id(&volume)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    assert_eq!(backup.resource_type(), Some(&ResourceType::Volume));
    assert_eq!(
        backup.volume().and_then(|v| v.volume_id()),
        Some(volume.as_str())
    );
    assert_eq!(
        backup.file_system().and_then(|f| f.file_system_id()),
        Some(ontap.as_str())
    );

    client
        .create_backup()
        .file_system_id(&zfs)
        .send()
        .await
        .expect("OpenZFS backs up by file system");

    let err = service_err(
        client
            .create_backup()
            .volume_id("fsvol-0123456789abcdef0")
            .send()
            .await,
    );
    assert!(
        matches!(err, CreateBackupError::VolumeNotFound(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some("No Amazon FSx volumes were found based upon the supplied parameters.")
    );
    let err = service_err(
        client
            .create_backup()
            .file_system_id("fs-0123456789abcdef0")
            .send()
            .await,
    );
    assert!(
        matches!(err, CreateBackupError::FileSystemNotFound(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some("No Amazon FSx file systems were found based upon supplied parameters.")
    );
}

#[tokio::test]
async fn refused_and_malformed_requests() {
    let h = Harness::start().await;
    let scratch = h.seed_fs(
        EAST,
        FileSystemSeed::new(FileSystemType::Lustre).lustre_scratch(true),
    );
    let linked = h.seed_fs(
        EAST,
        FileSystemSeed::new(FileSystemType::Lustre).linked_to_data_repository(true),
    );
    let fs = h.windows_fs(EAST);
    let client = h.client(EAST);

    for fs_id in [&scratch, &linked] {
        let err = service_err(client.create_backup().file_system_id(fs_id).send().await);
        assert!(matches!(err, CreateBackupError::BadRequest(_)), "{err:?}");
    }
    let err = service_err(
        client
            .create_backup()
            .file_system_id(&fs)
            .volume_id("fsvol-0123456789abcdef0")
            .send()
            .await,
    );
    assert!(matches!(err, CreateBackupError::BadRequest(_)), "{err:?}");
    let err = service_err(client.create_backup().send().await);
    assert!(matches!(err, CreateBackupError::BadRequest(_)), "{err:?}");
    let err = service_err(
        client
            .create_backup()
            .file_system_id(&fs)
            .tags(tag("aws:x", "1"))
            .send()
            .await,
    );
    assert!(matches!(err, CreateBackupError::BadRequest(_)), "{err:?}");

    // Model-constraint violations are rejected up front, like AWS's front end.
    let err = service_err(
        client
            .create_backup()
            .file_system_id("not-an-id")
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("ValidationException"));
    assert!(err.message().unwrap().contains("'fileSystemId'"), "{err:?}");
    assert!(h.emulator.state().regions[EAST].backups.is_empty());
}

#[tokio::test]
async fn user_initiated_backup_quota() {
    let h = Harness::start().await;
    h.emulator.set_limits(Limits {
        user_backups_per_region: 1,
        ..Limits::default()
    });
    let (a, b) = (h.windows_fs(EAST), h.windows_fs(EAST));
    let client = h.client(EAST);
    client
        .create_backup()
        .file_system_id(&a)
        .send()
        .await
        .unwrap();
    let err = service_err(client.create_backup().file_system_id(&b).send().await);
    let CreateBackupError::ServiceLimitExceeded(inner) = &err else {
        panic!("expected ServiceLimitExceeded, got {err:?}");
    };
    assert_eq!(
        inner.limit(),
        Some(&ServiceLimit::TotalUserInitiatedBackups)
    );
}

#[tokio::test]
async fn armed_failure_ends_failed_and_only_once() {
    let h = Harness::start().await;
    h.emulator.set_timing(Timing {
        create_duration: Duration::from_millis(100),
        ..Timing::default()
    });
    let fs = h.windows_fs(EAST);
    let client = h.client(EAST);
    h.emulator.fail_next_backup(EAST, &fs);

    let failed = client
        .create_backup()
        .file_system_id(&fs)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    let (failed, seen) = wait_for(
        &client,
        failed.backup_id().unwrap(),
        BackupLifecycle::Failed,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(seen.first(), Some(&BackupLifecycle::Creating));
    let message = failed
        .failure_details()
        .and_then(|d| d.message())
        .unwrap_or_default();
    assert!(message.contains(&fs), "{message}");

    let next = client
        .create_backup()
        .file_system_id(&fs)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    wait_for(
        &client,
        next.backup_id().unwrap(),
        BackupLifecycle::Available,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn copy_tags_to_backups_applies_only_without_request_tags() {
    let h = Harness::start().await;
    let fs = h.seed_fs(
        EAST,
        FileSystemSeed::new(FileSystemType::Windows)
            .copy_tags_to_backups(true)
            .tag("team", "storage"),
    );
    let client = h.client(EAST);
    let inherited = client
        .create_backup()
        .file_system_id(&fs)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    assert_eq!(tag_pairs(inherited.tags()), pairs(&[("team", "storage")]));
    let explicit = client
        .create_backup()
        .file_system_id(&fs)
        .tags(tag("Name", "manual"))
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    assert_eq!(tag_pairs(explicit.tags()), pairs(&[("Name", "manual")]));
}
