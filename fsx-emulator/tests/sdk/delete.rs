//! `DeleteBackup`: every modeled refusal, idempotent tokens, disappearance.

use std::time::Duration;

use aws_sdk_fsx::error::ProvideErrorMetadata;
use aws_sdk_fsx::operation::delete_backup::DeleteBackupError;
use aws_sdk_fsx::operation::describe_backups::DescribeBackupsError;
use aws_sdk_fsx::types::BackupLifecycle;
use fsx_emulator::{BackupLifecycle as EmuLifecycle, BackupSeed, BackupType, Faults, Timing};

use crate::support::{EAST, Harness, service_err};

#[tokio::test]
async fn delete_removes_the_backup_and_replays_by_token() {
    let h = Harness::start().await;
    let fs = h.windows_fs(EAST);
    let backup = h
        .emulator
        .seed_backup(
            EAST,
            BackupSeed::of_file_system(&fs, BackupType::UserInitiated),
        )
        .unwrap();
    let other = h
        .emulator
        .seed_backup(EAST, BackupSeed::of_file_system(&fs, BackupType::Automatic))
        .unwrap();
    let client = h.client(EAST);

    let out = client
        .delete_backup()
        .backup_id(&backup)
        .client_request_token("delete-1")
        .send()
        .await
        .unwrap();
    assert_eq!(out.backup_id(), Some(backup.as_str()));
    assert_eq!(out.lifecycle(), Some(&BackupLifecycle::Deleted));

    let err = service_err(client.describe_backups().backup_ids(&backup).send().await);
    assert!(
        matches!(err, DescribeBackupsError::BackupNotFound(_)),
        "{err:?}"
    );
    let listed = client.describe_backups().send().await.unwrap();
    assert_eq!(
        listed.backups().len(),
        1,
        "only the automatic backup is left"
    );

    // A retried delete with the same token succeeds again ...
    let again = client
        .delete_backup()
        .backup_id(&backup)
        .client_request_token("delete-1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.lifecycle(), Some(&BackupLifecycle::Deleted));
    // ... a new token finds nothing ...
    let err = service_err(client.delete_backup().backup_id(&backup).send().await);
    assert!(
        matches!(err, DeleteBackupError::BackupNotFound(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some("No Amazon FSx backups were found based upon the supplied parameters.")
    );
    // ... and the same token for another backup is incompatible.
    let err = service_err(
        client
            .delete_backup()
            .backup_id(&other)
            .client_request_token("delete-1")
            .send()
            .await,
    );
    let DeleteBackupError::IncompatibleParameterError(inner) = &err else {
        panic!("expected IncompatibleParameterError, got {err:?}");
    };
    assert_eq!(inner.parameter(), Some("BackupId"));
    // Automatic backups can be deleted.
    client
        .delete_backup()
        .backup_id(&other)
        .send()
        .await
        .unwrap();
    assert!(h.emulator.state().regions[EAST].backups.is_empty());
}

#[tokio::test]
async fn delete_refusals() {
    let h = Harness::start().await;
    let fs = h.windows_fs(EAST);
    let seed = |t: BackupType| {
        h.emulator
            .seed_backup(EAST, BackupSeed::of_file_system(&fs, t))
            .unwrap()
    };
    let aws_backup = seed(BackupType::AwsBackup);
    let restoring = h
        .emulator
        .seed_backup(
            EAST,
            BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                .restoring("fs-0aaaaaaaaaaaaaaa1"),
        )
        .unwrap();
    let creating = h
        .emulator
        .seed_backup(
            EAST,
            BackupSeed::of_file_system(&fs, BackupType::UserInitiated)
                .lifecycle(EmuLifecycle::Creating),
        )
        .unwrap();
    let client = h.client(EAST);

    let err = service_err(client.delete_backup().backup_id(&aws_backup).send().await);
    assert!(matches!(err, DeleteBackupError::BadRequest(_)), "{err:?}");
    assert_eq!(
        err.message(),
        Some("Backups created by AWS Backup can only be deleted through AWS Backup.")
    );

    let err = service_err(client.delete_backup().backup_id(&restoring).send().await);
    let DeleteBackupError::BackupRestoring(inner) = &err else {
        panic!("expected BackupRestoring, got {err:?}");
    };
    assert_eq!(inner.file_system_id(), Some("fs-0aaaaaaaaaaaaaaa1"));
    assert_eq!(
        err.message(),
        Some("You can't delete a backup while it's being used to restore a file system.")
    );
    h.emulator.set_restoring(EAST, &restoring, None).unwrap();
    client
        .delete_backup()
        .backup_id(&restoring)
        .send()
        .await
        .expect("restore finished");

    let err = service_err(client.delete_backup().backup_id(&creating).send().await);
    assert!(
        matches!(err, DeleteBackupError::BackupInProgress(_)),
        "{err:?}"
    );

    let err = service_err(
        client
            .delete_backup()
            .backup_id("backup-0123456789abcdef0")
            .send()
            .await,
    );
    assert!(
        matches!(err, DeleteBackupError::BackupNotFound(_)),
        "{err:?}"
    );

    h.emulator.set_faults(Faults {
        server_error_next: 1,
        ..Faults::default()
    });
    let err = service_err(
        h.client_without_retries(EAST)
            .delete_backup()
            .backup_id(&creating)
            .send()
            .await,
    );
    assert!(
        matches!(err, DeleteBackupError::InternalServerError(_)),
        "{err:?}"
    );
    assert_eq!(h.emulator.state().regions[EAST].backups.len(), 2);
}

#[tokio::test]
async fn a_backup_being_created_cannot_be_deleted_until_done() {
    let h = Harness::start().await;
    h.emulator.set_timing(Timing {
        create_duration: Duration::from_millis(200),
        ..Timing::default()
    });
    let fs = h.windows_fs(EAST);
    let client = h.client(EAST);
    let id = client
        .create_backup()
        .file_system_id(&fs)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap()
        .backup_id
        .unwrap();
    let err = service_err(client.delete_backup().backup_id(&id).send().await);
    assert!(
        matches!(err, DeleteBackupError::BackupInProgress(_)),
        "{err:?}"
    );
    crate::support::wait_for(
        &client,
        &id,
        BackupLifecycle::Available,
        Duration::from_secs(5),
    )
    .await;
    client.delete_backup().backup_id(&id).send().await.unwrap();
}
