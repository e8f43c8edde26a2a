//! `DescribeBackups`, `DescribeFileSystems`, `DescribeVolumes`: unordered
//! pagination, filters, unknown ids, and per-Region separation.

use std::collections::BTreeSet;

use aws_sdk_fsx::Client;
use aws_sdk_fsx::error::ProvideErrorMetadata;
use aws_sdk_fsx::operation::describe_backups::DescribeBackupsError;
use aws_sdk_fsx::operation::describe_file_systems::DescribeFileSystemsError;
use aws_sdk_fsx::operation::describe_volumes::DescribeVolumesError;
use aws_sdk_fsx::types::{Filter, FilterName, VolumeFilter, VolumeFilterName};
use fsx_emulator::{BackupSeed, BackupType, FileSystemSeed, FileSystemType, VolumeSeed};

use crate::support::{EAST, Harness, WEST, service_err};

/// Every backup id, page by page, with `MaxResults` = `page_size`.
async fn all_pages(client: &Client, page_size: i32) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .describe_backups()
            .max_results(page_size)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("DescribeBackups succeeds");
        pages.push(
            out.backups()
                .iter()
                .filter_map(|b| b.backup_id().map(str::to_owned))
                .collect(),
        );
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return pages;
        }
    }
}

#[tokio::test]
async fn pagination_returns_everything_once_in_no_particular_order() {
    let h = Harness::start().await;
    let fs = h.windows_fs(EAST);
    let client = h.client(EAST);
    let mut created = Vec::new();
    for i in 0..9 {
        let backup = client
            .create_backup()
            .file_system_id(&fs)
            .client_request_token(format!("page-test-{i}"))
            .send()
            .await
            .unwrap()
            .backup
            .unwrap();
        created.push(backup.backup_id.unwrap());
    }

    let pages = all_pages(&client, 2).await;
    assert!(pages.len() > 3, "{pages:?}");
    assert!(pages.iter().all(|p| p.len() <= 2));
    let listed: Vec<String> = pages.concat();
    assert_eq!(
        listed.len(),
        created.len(),
        "every backup exactly once: {listed:?}"
    );
    assert_eq!(
        listed.iter().collect::<BTreeSet<_>>(),
        created.iter().collect::<BTreeSet<_>>()
    );
    assert_ne!(listed, created, "page order must not be creation order");
    // A second pass sees the same order: stable within the emulator's life.
    assert_eq!(all_pages(&client, 2).await.concat(), listed);
    // A single unbounded call also lists everything.
    assert_eq!(
        client
            .describe_backups()
            .send()
            .await
            .unwrap()
            .backups()
            .len(),
        9
    );

    let err = service_err(
        client
            .describe_backups()
            .next_token("bm90LWEtdG9rZW4=")
            .send()
            .await,
    );
    assert!(
        matches!(err, DescribeBackupsError::BadRequest(_)),
        "{err:?}"
    );
    let err = service_err(client.describe_backups().max_results(0).send().await);
    assert_eq!(err.code(), Some("ValidationException"));
}

#[tokio::test]
async fn describe_backups_filters_and_ids() {
    let h = Harness::start().await;
    let windows = h.windows_fs(EAST);
    let lustre = h.seed_fs(EAST, FileSystemSeed::new(FileSystemType::Lustre));
    let ontap = h.seed_fs(EAST, FileSystemSeed::new(FileSystemType::Ontap));
    let volume = h
        .emulator
        .seed_volume(EAST, VolumeSeed::new(&ontap))
        .unwrap();
    let seed = |s: BackupSeed| h.emulator.seed_backup(EAST, s).unwrap();
    let automatic = seed(BackupSeed::of_file_system(&windows, BackupType::Automatic));
    let aws_backup = seed(BackupSeed::of_file_system(&windows, BackupType::AwsBackup));
    let lustre_user = seed(BackupSeed::of_file_system(
        &lustre,
        BackupType::UserInitiated,
    ));
    let volume_user = seed(BackupSeed::of_volume(&volume, BackupType::UserInitiated));
    // A backup of a file system that no longer exists is still listed.
    let orphan = seed(
        BackupSeed::of_file_system("fs-0ddddddddddddddd1", BackupType::Automatic)
            .file_system_type(FileSystemType::OpenZfs),
    );
    let client = h.client(EAST);

    let ids = |filter: Filter| {
        let client = client.clone();
        async move {
            let out = client
                .describe_backups()
                .filters(filter)
                .send()
                .await
                .unwrap();
            out.backups()
                .iter()
                .filter_map(|b| b.backup_id().map(str::to_owned))
                .collect::<BTreeSet<_>>()
        }
    };
    let filter = |name: FilterName, values: &[&str]| {
        values
            .iter()
            .fold(Filter::builder().name(name), |b, v| b.values(*v))
            .build()
    };
    let set = |ids: &[&String]| ids.iter().map(|s| (*s).clone()).collect::<BTreeSet<_>>();

    assert_eq!(
        ids(filter(FilterName::FileSystemId, &[&windows])).await,
        set(&[&automatic, &aws_backup])
    );
    assert_eq!(
        ids(filter(FilterName::BackupType, &["USER_INITIATED"])).await,
        set(&[&lustre_user, &volume_user])
    );
    assert_eq!(
        ids(filter(FilterName::FileSystemType, &["LUSTRE", "OPENZFS"])).await,
        set(&[&lustre_user, &orphan])
    );
    assert_eq!(
        ids(filter(FilterName::VolumeId, &[&volume])).await,
        set(&[&volume_user])
    );
    assert_eq!(
        ids(filter(FilterName::FileSystemId, &["fs-0ddddddddddddddd1"])).await,
        set(&[&orphan])
    );

    let by_id = client
        .describe_backups()
        .backup_ids(&automatic)
        .backup_ids(&orphan)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.backups().len(), 2);

    let err = service_err(
        client
            .describe_backups()
            .backup_ids("backup-0123456789abcdef0")
            .send()
            .await,
    );
    assert!(
        matches!(err, DescribeBackupsError::BackupNotFound(_)),
        "{err:?}"
    );
    let err = service_err(
        client
            .describe_backups()
            .filters(filter(FilterName::FileSystemId, &["fs-0123456789abcdef0"]))
            .send()
            .await,
    );
    assert!(
        matches!(err, DescribeBackupsError::FileSystemNotFound(_)),
        "{err:?}"
    );
    let err = service_err(
        client
            .describe_backups()
            .filters(filter(FilterName::VolumeId, &["fsvol-0123456789abcdef0"]))
            .send()
            .await,
    );
    assert!(
        matches!(err, DescribeBackupsError::VolumeNotFound(_)),
        "{err:?}"
    );
    let err = service_err(
        client
            .describe_backups()
            .filters(filter(FilterName::BackupType, &["NIGHTLY"]))
            .send()
            .await,
    );
    assert!(
        matches!(err, DescribeBackupsError::BadRequest(_)),
        "{err:?}"
    );
    // At most 20 values per filter (the API reference's Filter.Values).
    let many: Vec<String> = (0..21).map(|n| format!("fs-{n:017x}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = service_err(
        client
            .describe_backups()
            .filters(filter(FilterName::FileSystemId, &many))
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
}

#[tokio::test]
async fn describe_file_systems_and_volumes() {
    let h = Harness::start().await;
    let ontap = h.seed_fs(
        EAST,
        FileSystemSeed::new(FileSystemType::Ontap)
            .deployment_type("MULTI_AZ_1")
            .tag("env", "prod"),
    );
    let windows = h.windows_fs(EAST);
    let lustre = h.seed_fs(EAST, FileSystemSeed::new(FileSystemType::Lustre));
    let vol_a = h
        .emulator
        .seed_volume(EAST, VolumeSeed::new(&ontap).name("a"))
        .unwrap();
    let vol_b = h
        .emulator
        .seed_volume(EAST, VolumeSeed::new(&ontap).name("b"))
        .unwrap();
    let client = h.client(EAST);

    let mut seen = BTreeSet::new();
    let mut token = None;
    loop {
        let out = client
            .describe_file_systems()
            .max_results(1)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(out.file_systems().len() <= 1);
        for fs in out.file_systems() {
            assert!(
                seen.insert(fs.file_system_id().unwrap().to_owned()),
                "listed twice"
            );
        }
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        seen,
        [&ontap, &windows, &lustre].into_iter().cloned().collect()
    );

    let one = client
        .describe_file_systems()
        .file_system_ids(&ontap)
        .send()
        .await
        .unwrap();
    let fs = &one.file_systems()[0];
    assert_eq!(
        fs.file_system_type()
            .map(aws_sdk_fsx::types::FileSystemType::as_str),
        Some("ONTAP")
    );
    assert_eq!(
        fs.ontap_configuration()
            .and_then(|c| c.deployment_type())
            .map(aws_sdk_fsx::types::OntapDeploymentType::as_str),
        Some("MULTI_AZ_1")
    );
    assert_eq!(fs.tags().len(), 1);

    let err = service_err(
        client
            .describe_file_systems()
            .file_system_ids("fs-0123456789abcdef0")
            .send()
            .await,
    );
    assert!(
        matches!(err, DescribeFileSystemsError::FileSystemNotFound(_)),
        "{err:?}"
    );

    let volumes = client
        .describe_volumes()
        .filters(
            VolumeFilter::builder()
                .name(VolumeFilterName::FileSystemId)
                .values(&ontap)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let names: BTreeSet<_> = volumes
        .volumes()
        .iter()
        .filter_map(|v| v.name().map(str::to_owned))
        .collect();
    assert_eq!(
        names,
        ["a".to_owned(), "b".to_owned()].into_iter().collect()
    );
    let one = client
        .describe_volumes()
        .volume_ids(&vol_b)
        .send()
        .await
        .unwrap();
    assert_eq!(one.volumes()[0].volume_id(), Some(vol_b.as_str()));
    assert_ne!(vol_a, vol_b);

    let err = service_err(
        client
            .describe_volumes()
            .volume_ids("fsvol-0123456789abcdef0")
            .send()
            .await,
    );
    assert!(
        matches!(err, DescribeVolumesError::VolumeNotFound(_)),
        "{err:?}"
    );
    let err = service_err(
        client
            .describe_volumes()
            .filters(
                VolumeFilter::builder()
                    .name(VolumeFilterName::FileSystemId)
                    .build(),
            )
            .send()
            .await,
    );
    assert!(
        matches!(err, DescribeVolumesError::BadRequest(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn regions_are_separate() {
    let h = Harness::start().await;
    let east_fs = h.windows_fs(EAST);
    let west_fs = h.windows_fs(WEST);
    let china_fs = h.windows_fs("cn-north-1");
    let (east, west, china) = (h.client(EAST), h.client(WEST), h.client("cn-north-1"));

    east.create_backup()
        .file_system_id(&east_fs)
        .send()
        .await
        .unwrap();
    let err = service_err(west.create_backup().file_system_id(&east_fs).send().await);
    assert!(
        matches!(
            err,
            aws_sdk_fsx::operation::create_backup::CreateBackupError::FileSystemNotFound(_)
        ),
        "{err:?}"
    );
    let west_backup = west
        .create_backup()
        .file_system_id(&west_fs)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    assert!(
        west_backup
            .resource_arn()
            .unwrap()
            .starts_with("arn:aws:fsx:us-west-2:")
    );
    let china_backup = china
        .create_backup()
        .file_system_id(&china_fs)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    assert!(
        china_backup
            .resource_arn()
            .unwrap()
            .starts_with("arn:aws-cn:fsx:cn-north-1:")
    );

    assert_eq!(
        east.describe_backups()
            .send()
            .await
            .unwrap()
            .backups()
            .len(),
        1
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
    let listed = east.describe_file_systems().send().await.unwrap();
    assert_eq!(listed.file_systems().len(), 1);

    let requests = h.emulator.requests();
    let regions: BTreeSet<_> = requests.iter().filter_map(|r| r.region.clone()).collect();
    assert_eq!(
        regions,
        ["cn-north-1", EAST, WEST]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
}
