//! Wire smoke test of the operator's FSx boundary against moto, a third-party
//! implementation of the FSx JSON protocol: the check that our requests are
//! well-formed for someone else's server, not only for our own emulator.

use std::collections::BTreeMap;

use aws_sdk_fsx::types::{CreateFileSystemWindowsConfiguration, FileSystemType};
use fsx_backup_operator::fsx::{
    AwsFsx, AwsFsxConfig, BackupTarget, CreateBackupRequest, Deleted, FsxApi, Lifecycle, Place,
    Role,
};

const REGION: &str = "us-east-1";

/// moto needs a file system to back up: one made with the SDK directly, in the
/// account of `raw`'s credentials; returns its id.
/// Moto, the SDK configuration the operator is built from, and a plain FSx
/// client on moto for seeding.
async fn start_moto() -> (
    crate::support::Moto,
    aws_config::SdkConfig,
    aws_sdk_fsx::Client,
) {
    let moto = crate::support::Moto::start().await;
    let sdk = crate::support::aws_sdk_config(REGION).await;
    let raw = aws_sdk_fsx::Client::from_conf(
        aws_sdk_fsx::config::Builder::from(&sdk)
            .endpoint_url(&moto.endpoint)
            .build(),
    );
    (moto, sdk, raw)
}

async fn windows_file_system(raw: &aws_sdk_fsx::Client) -> String {
    raw.create_file_system()
        .file_system_type(FileSystemType::Windows)
        .storage_capacity(32)
        .subnet_ids("subnet-0123456789abcdef0")
        .windows_configuration(
            CreateFileSystemWindowsConfiguration::builder()
                .throughput_capacity(8)
                .build(),
        )
        .send()
        .await
        .expect("moto CreateFileSystem")
        .file_system()
        .and_then(|f| f.file_system_id())
        .expect("fs id")
        .to_owned()
}

#[tokio::test]
async fn create_describe_tag_delete_against_moto() {
    let (moto, sdk, raw) = start_moto().await;
    let fs_id = windows_file_system(&raw).await;

    let fsx = AwsFsx::new(
        sdk,
        AwsFsxConfig {
            endpoint_url: Some(moto.endpoint.clone()),
            max_attempts: 1,
            ..AwsFsxConfig::default()
        },
    );

    let file_systems = fsx
        .describe_file_systems(&Place::own(REGION))
        .await
        .expect("DescribeFileSystems");
    assert!(
        file_systems
            .iter()
            .any(|f| f.id == fs_id && f.file_system_type == "WINDOWS"),
        "{file_systems:?}"
    );

    let tags = BTreeMap::from([
        (
            "fsxbackup.io/managed-by".to_owned(),
            "fsx-backup-operator".to_owned(),
        ),
        ("Name".to_owned(), "nightly-smoke".to_owned()),
    ]);
    let target = BackupTarget::FileSystem(fs_id.clone());
    let backup = fsx
        .create_backup(
            &Place::own(REGION),
            &CreateBackupRequest {
                target: target.clone(),
                client_request_token: "smoke-1".into(),
                tags: tags.clone(),
            },
        )
        .await
        .expect("CreateBackup");
    assert!(backup.id.starts_with("backup-"), "{backup:?}");

    let listed = fsx
        .describe_backups_of(&Place::own(REGION), &target)
        .await
        .expect("DescribeBackups by filter");
    let ours = listed
        .iter()
        .find(|b| b.id == backup.id)
        .expect("listed by file-system-id filter");
    assert_eq!(ours.tags, tags, "tags sent on CreateBackup come back");
    assert_ne!(ours.lifecycle, Lifecycle::Deleted);

    let by_id = fsx
        .describe_backups_by_ids(&Place::own(REGION), std::slice::from_ref(&backup.id))
        .await
        .expect("by ids");
    assert_eq!(
        by_id
            .found
            .iter()
            .map(|b| b.id.as_str())
            .collect::<Vec<_>>(),
        [backup.id.as_str()]
    );

    // The tags are on the resource itself, as ListTagsForResource sees them.
    let arn = raw
        .describe_backups()
        .backup_ids(&backup.id)
        .send()
        .await
        .expect("describe")
        .backups()[0]
        .resource_arn()
        .expect("arn")
        .to_owned();
    let listed_tags = raw
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("ListTagsForResource");
    assert_eq!(listed_tags.tags().len(), tags.len());

    // Adoption's re-tag: TagResource by the ARN the boundary reports.
    assert_eq!(ours.arn.as_deref(), Some(arn.as_str()));
    let retag = BTreeMap::from([("fsxbackup.io/cluster".to_owned(), "smoke".to_owned())]);
    fsx.tag_backup(&Place::own(REGION), &arn, &retag)
        .await
        .expect("TagResource");
    let listed_tags = raw
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("ListTagsForResource");
    assert!(
        listed_tags
            .tags()
            .iter()
            .any(|t| t.key() == Some("fsxbackup.io/cluster") && t.value() == Some("smoke")),
        "{listed_tags:?}"
    );

    assert_eq!(
        fsx.delete_backup(&Place::own(REGION), &backup.id)
            .await
            .expect("DeleteBackup"),
        Deleted::Now
    );
    let after = fsx
        .describe_backups_of(&Place::own(REGION), &target)
        .await
        .expect("describe after delete");
    assert!(
        after
            .iter()
            .all(|b| b.id != backup.id || b.lifecycle == Lifecycle::Deleted),
        "{after:?}"
    );
}

/// The assumed-role path against moto's STS and FSx: the session's credentials
/// are the ones FSx calls carry (moto keeps each account's FSx apart and maps
/// `AssumeRole` credentials to the role's account), checked by someone else's server.
#[tokio::test]
async fn assumed_role_calls_land_in_the_roles_account_on_moto() {
    let (moto, sdk, raw) = start_moto().await;
    let own_fs = windows_file_system(&raw).await;
    let fsx = AwsFsx::new(
        sdk,
        AwsFsxConfig {
            endpoint_url: Some(moto.endpoint.clone()),
            sts_endpoint_url: Some(moto.endpoint.clone()),
            max_attempts: 1,
            ..AwsFsxConfig::default()
        },
    );
    let role = Role {
        account_name: "team-a".into(),
        arn: "arn:aws:iam::222222222222:role/fsx-backup-account".into(),
        account_id: "222222222222".into(),
        external_id: Some("team-a-ext".into()),
        session_name: "team-a.nightly".into(),
        session_duration: std::time::Duration::from_hours(1),
    };
    let there = Place::new(REGION, Some(std::sync::Arc::new(role)));
    fsx.assume(&there).await.expect("moto AssumeRole");
    let in_role_account = fsx
        .describe_file_systems(&there)
        .await
        .expect("DescribeFileSystems as the role");
    assert!(
        in_role_account.iter().all(|f| f.id != own_fs),
        "the role's account does not see the operator account's file system: {in_role_account:?}"
    );
    let own = fsx
        .describe_file_systems(&Place::own(REGION))
        .await
        .expect("DescribeFileSystems as the operator");
    assert!(own.iter().any(|f| f.id == own_fs), "{own:?}");
}
