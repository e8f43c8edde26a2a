//! `TagResource`, `UntagResource`, `ListTagsForResource` on backup, file
//! system and volume ARNs, and their refusals.

use std::collections::BTreeSet;

use aws_sdk_fsx::Client;
use aws_sdk_fsx::error::ProvideErrorMetadata;
use aws_sdk_fsx::operation::list_tags_for_resource::ListTagsForResourceError;
use aws_sdk_fsx::operation::tag_resource::TagResourceError;
use aws_sdk_fsx::operation::untag_resource::UntagResourceError;
use fsx_emulator::{BackupSeed, BackupType, FileSystemSeed, FileSystemType, VolumeSeed};

use crate::support::{EAST, Harness, describe, pairs, service_err, tag, tag_pairs};

async fn list_all(client: &Client, arn: &str) -> Vec<(String, String)> {
    let mut tags = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_tags_for_resource()
            .resource_arn(arn)
            .max_results(1)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(out.tags().len() <= 1);
        tags.extend(tag_pairs(out.tags()));
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            tags.sort();
            return tags;
        }
    }
}

#[tokio::test]
async fn tag_untag_and_list_a_backup() {
    let h = Harness::start().await;
    let fs = h.windows_fs(EAST);
    let backup = h
        .emulator
        .seed_backup(
            EAST,
            BackupSeed::of_file_system(&fs, BackupType::UserInitiated).tag("Name", "old"),
        )
        .unwrap();
    let arn = format!("arn:aws:fsx:{EAST}:111111111111:backup/{backup}");
    let client = h.client(EAST);

    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("Name", "new"))
        .tags(tag("team", "storage"))
        .tags(tag("env", "prod"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        list_all(&client, &arn).await,
        pairs(&[("Name", "new"), ("env", "prod"), ("team", "storage")])
    );

    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("env")
        .tag_keys("absent")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tag_pairs(describe(&client, &backup).await.tags()),
        pairs(&[("Name", "new"), ("team", "storage")])
    );
    let logged: BTreeSet<_> = h
        .emulator
        .requests()
        .iter()
        .filter(|r| r.operation.ends_with("Resource"))
        .flat_map(|r| r.backup_ids.clone())
        .collect();
    assert_eq!(logged, [backup].into_iter().collect());
}

#[tokio::test]
async fn tag_file_systems_and_volumes() {
    let h = Harness::start().await;
    let ontap = h.seed_fs(EAST, FileSystemSeed::new(FileSystemType::Ontap));
    let volume = h
        .emulator
        .seed_volume(EAST, VolumeSeed::new(&ontap))
        .unwrap();
    let client = h.client(EAST);
    let fs_arn = format!("arn:aws:fsx:{EAST}:111111111111:file-system/{ontap}");
    let vol_arn = format!("arn:aws:fsx:{EAST}:111111111111:volume/{ontap}/{volume}");
    for arn in [&fs_arn, &vol_arn] {
        client
            .tag_resource()
            .resource_arn(arn)
            .tags(tag("owner", "me"))
            .send()
            .await
            .unwrap();
        assert_eq!(list_all(&client, arn).await, pairs(&[("owner", "me")]));
    }
    let fs = client
        .describe_file_systems()
        .file_system_ids(&ontap)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tag_pairs(fs.file_systems()[0].tags()),
        pairs(&[("owner", "me")])
    );
    let snapshot = h.emulator.state();
    assert_eq!(snapshot.regions[EAST].volumes[0].tags.len(), 1);
}

#[tokio::test]
async fn tagging_refusals() {
    let h = Harness::start().await;
    let fs = h.windows_fs(EAST);
    let backup = h
        .emulator
        .seed_backup(
            EAST,
            BackupSeed::of_file_system(&fs, BackupType::UserInitiated),
        )
        .unwrap();
    let client = h.client(EAST);
    let missing = format!("arn:aws:fsx:{EAST}:111111111111:backup/backup-0123456789abcdef0");
    let other_region = format!("arn:aws:fsx:us-west-2:111111111111:backup/{backup}");
    let not_fsx = "arn:aws:s3:::my-bucket";
    let untaggable = format!("arn:aws:fsx:{EAST}:111111111111:widget/w-1");

    for arn in [&missing, &other_region] {
        let err = service_err(
            client
                .tag_resource()
                .resource_arn(arn)
                .tags(tag("a", "b"))
                .send()
                .await,
        );
        let TagResourceError::ResourceNotFound(inner) = &err else {
            panic!("expected ResourceNotFound, got {err:?}");
        };
        assert_eq!(inner.resource_arn(), Some(arn.as_str()));
        assert_eq!(
            err.message(),
            Some("The resource specified by the Amazon Resource Name (ARN) can't be found.")
        );
    }
    let err = service_err(
        client
            .list_tags_for_resource()
            .resource_arn(not_fsx)
            .send()
            .await,
    );
    let ListTagsForResourceError::NotServiceResourceError(inner) = &err else {
        panic!("expected NotServiceResourceError, got {err:?}");
    };
    assert_eq!(inner.resource_arn(), Some(not_fsx));
    let err = service_err(
        client
            .untag_resource()
            .resource_arn(&untaggable)
            .tag_keys("a")
            .send()
            .await,
    );
    assert!(
        matches!(err, UntagResourceError::ResourceDoesNotSupportTagging(_)),
        "{err:?}"
    );

    let arn = format!("arn:aws:fsx:{EAST}:111111111111:backup/{backup}");
    let err = service_err(
        client
            .tag_resource()
            .resource_arn(&arn)
            .tags(tag("aws:reserved", "x"))
            .send()
            .await,
    );
    assert!(matches!(err, TagResourceError::BadRequest(_)), "{err:?}");
    let full = (0..50).fold(client.tag_resource().resource_arn(&arn), |b, i| {
        b.tags(tag(&format!("k{i}"), "v"))
    });
    full.send().await.expect("50 tags are allowed");
    let err = service_err(
        client
            .tag_resource()
            .resource_arn(&arn)
            .tags(tag("one-more", "v"))
            .send()
            .await,
    );
    assert!(matches!(err, TagResourceError::BadRequest(_)), "{err:?}");
    let err = service_err(
        client
            .tag_resource()
            .resource_arn("not-an-arn")
            .tags(tag("a", "b"))
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("ValidationException"));
}
