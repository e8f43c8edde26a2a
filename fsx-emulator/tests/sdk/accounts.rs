//! Many accounts: credentials from the emulator's STS act in the role's
//! account, whose file systems, backups, ARNs, quotas and copy limit are its
//! own; session tokens and expiry are checked; the request log and the
//! control API know the account.

use std::time::{Duration, SystemTime};

use aws_sdk_fsx::error::ProvideErrorMetadata;
use aws_sdk_fsx::operation::copy_backup::CopyBackupError;
use aws_sdk_fsx::operation::create_backup::CreateBackupError;
use aws_sdk_fsx::operation::delete_backup::DeleteBackupError;
use aws_sdk_fsx::operation::describe_backups::DescribeBackupsError;
use aws_sdk_fsx::operation::list_tags_for_resource::ListTagsForResourceError;
use aws_sdk_fsx::types::BackupLifecycle;
use fsx_emulator::{
    ACCOUNT_ID, BackupSeed, BackupType, FileSystemSeed, FileSystemType, Limits, RequestRecord,
    RoleSeed, Timing,
};
use serde_json::json;

use crate::support::{
    EAST, Harness, WEST, raw_request, service_err, session_client, tag, wait_for,
};

const B: &str = "222222222222";
const ROLE_B: &str = "arn:aws:iam::222222222222:role/fsx-backup";

fn windows() -> FileSystemSeed {
    FileSystemSeed::new(FileSystemType::Windows)
}

/// An available backup of a fresh Windows file system in `account`.
fn backup_in(h: &Harness, account: &str, region: &str, backup_type: BackupType) -> String {
    let fs = h
        .emulator
        .seed_file_system_in(account, region, windows())
        .unwrap();
    h.emulator
        .seed_backup_in(account, region, BackupSeed::of_file_system(fs, backup_type))
        .unwrap()
}

#[tokio::test]
async fn assumed_role_credentials_act_in_the_role_account() {
    let h = Harness::start().await;
    h.emulator.add_role(RoleSeed::new(ROLE_B)).unwrap();
    let fs_a = h.windows_fs(EAST);
    let backup_a = h
        .emulator
        .seed_backup(
            EAST,
            BackupSeed::of_file_system(&fs_a, BackupType::UserInitiated),
        )
        .unwrap();
    let fs_b = h.emulator.seed_file_system_in(B, EAST, windows()).unwrap();
    let credentials = h.assume(ROLE_B, "operator").await;
    let (a, b) = (h.client(EAST), h.client_as(EAST, &credentials));

    // Each account sees its own file systems, owned and named by it.
    let listed = b.describe_file_systems().send().await.unwrap();
    let [fs] = listed.file_systems() else {
        panic!("{listed:?}");
    };
    assert_eq!(fs.file_system_id(), Some(fs_b.as_str()));
    assert_eq!(fs.owner_id(), Some(B));
    assert_eq!(
        fs.resource_arn(),
        Some(format!("arn:aws:fsx:us-east-1:{B}:file-system/{fs_b}").as_str())
    );
    assert!(
        fs.kms_key_id()
            .unwrap()
            .starts_with("arn:aws:kms:us-east-1:222222222222:key/")
    );
    let listed = a.describe_file_systems().send().await.unwrap();
    let [fs] = listed.file_systems() else {
        panic!("{listed:?}");
    };
    assert_eq!(fs.file_system_id(), Some(fs_a.as_str()));
    assert_eq!(fs.owner_id(), Some(ACCOUNT_ID));

    // A backup made with the role's credentials lives in its account.
    let created = b
        .create_backup()
        .file_system_id(&fs_b)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    let backup_b = created.backup_id().unwrap().to_owned();
    assert_eq!(created.owner_id(), Some(B));
    assert_eq!(
        created.resource_arn(),
        Some(format!("arn:aws:fsx:us-east-1:{B}:backup/{backup_b}").as_str())
    );
    assert_eq!(created.file_system().unwrap().owner_id(), Some(B));
    let ids = |backups: &[aws_sdk_fsx::types::Backup]| -> Vec<String> {
        backups
            .iter()
            .map(|x| x.backup_id().unwrap().to_owned())
            .collect()
    };
    let seen_by_b = b.describe_backups().send().await.unwrap();
    assert_eq!(ids(seen_by_b.backups()), std::slice::from_ref(&backup_b));
    let seen_by_a = a.describe_backups().send().await.unwrap();
    assert_eq!(ids(seen_by_a.backups()), std::slice::from_ref(&backup_a));

    // The other account's resources do not exist for the caller.
    let err = service_err(b.create_backup().file_system_id(&fs_a).send().await);
    assert!(
        matches!(err, CreateBackupError::FileSystemNotFound(_)),
        "{err:?}"
    );
    let err = service_err(b.describe_backups().backup_ids(&backup_a).send().await);
    assert!(
        matches!(err, DescribeBackupsError::BackupNotFound(_)),
        "{err:?}"
    );
    let err = service_err(b.delete_backup().backup_id(&backup_a).send().await);
    assert!(
        matches!(err, DeleteBackupError::BackupNotFound(_)),
        "{err:?}"
    );

    // Tagging compares the ARN's account with the caller's.
    b.tag_resource()
        .resource_arn(created.resource_arn().unwrap())
        .tags(tag("team", "b"))
        .send()
        .await
        .unwrap();
    let fs_a_arn = format!("arn:aws:fsx:us-east-1:{ACCOUNT_ID}:file-system/{fs_a}");
    let err = service_err(
        b.list_tags_for_resource()
            .resource_arn(&fs_a_arn)
            .send()
            .await,
    );
    assert!(
        matches!(err, ListTagsForResourceError::ResourceNotFound(_)),
        "{err:?}"
    );
    let err = service_err(
        a.list_tags_for_resource()
            .resource_arn(created.resource_arn().unwrap())
            .send()
            .await,
    );
    assert!(
        matches!(err, ListTagsForResourceError::ResourceNotFound(_)),
        "{err:?}"
    );
    a.list_tags_for_resource()
        .resource_arn(&fs_a_arn)
        .send()
        .await
        .expect("the caller's own ARN");

    // The control API observes each account separately.
    let state_b = h.emulator.state_of(B);
    assert_eq!(state_b.account_id, B);
    assert_eq!(state_b.regions[EAST].backups.len(), 1);
    assert_eq!(state_b.regions[EAST].backups[0].owner_id, B);
    assert_eq!(
        state_b.regions[EAST].backups[0].tags,
        [fsx_emulator::Tag::new("team", "b")]
    );
    let state_a = h.emulator.state();
    assert_eq!(state_a.account_id, ACCOUNT_ID);
    assert_eq!(state_a.regions[EAST].backups.len(), 1);
    assert_eq!(h.emulator.accounts(), [ACCOUNT_ID, B]);
    assert!(h.emulator.state_of("333333333333").regions.is_empty());
}

#[tokio::test]
async fn session_credentials_are_checked() {
    let h = Harness::start().await;
    h.emulator
        .add_role(RoleSeed::new(ROLE_B).credential_lifetime_seconds(1))
        .unwrap();
    let before = SystemTime::now();
    let credentials = h.assume(ROLE_B, "short").await;
    // The test-only lifetime overrides DurationSeconds, also on the wire.
    let expiration = SystemTime::try_from(*credentials.expiration()).unwrap();
    let lifetime = expiration.duration_since(before).unwrap();
    assert!(
        lifetime >= Duration::from_secs(1) && lifetime <= Duration::from_secs(2),
        "{lifetime:?}"
    );
    let b = h.client_as(EAST, &credentials);
    b.describe_file_systems()
        .send()
        .await
        .expect("valid for a second");

    // A wrong or missing session token.
    let endpoint = &h.running.endpoint;
    let key = credentials.access_key_id();
    let secret = credentials.secret_access_key();
    for token in [Some("not-the-token"), None] {
        let forged = session_client(endpoint, EAST, key, secret, token);
        let err = service_err(forged.describe_backups().send().await);
        assert_eq!(err.code(), Some("UnrecognizedClientException"), "{token:?}");
        assert_eq!(
            err.message(),
            Some("The security token included in the request is invalid.")
        );
    }
    // JSON-protocol services answer it with HTTP 400.
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={key}/20261125/us-east-1/fsx/aws4_request, SignedHeaders=host, Signature=00"
    );
    let target = format!("{}DescribeBackups", fsx_emulator::TARGET_PREFIX);
    let response = raw_request(
        endpoint,
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", &target),
            ("Authorization", &auth),
        ],
        "{}",
    )
    .await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.header("x-amzn-ErrorType"),
        Some("UnrecognizedClientException")
    );

    tokio::time::sleep(
        expiration
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            + Duration::from_millis(50),
    )
    .await;
    let err = service_err(b.describe_file_systems().send().await);
    assert_eq!(err.code(), Some("ExpiredTokenException"));
    assert_eq!(
        err.message(),
        Some("The security token included in the request is expired")
    );
    let log = h.emulator.requests();
    let last = log.last().unwrap();
    assert_eq!(last.outcome, "ExpiredTokenException");
    assert_eq!(last.account, None, "refused before acting in an account");
}

#[tokio::test]
async fn copies_stay_within_an_account() {
    let h = Harness::start().await;
    h.emulator.add_role(RoleSeed::new(ROLE_B)).unwrap();
    let backup_a = backup_in(&h, ACCOUNT_ID, EAST, BackupType::UserInitiated);
    let backup_b = backup_in(&h, B, EAST, BackupType::UserInitiated);
    let credentials = h.assume(ROLE_B, "copier").await;
    let (a_west, b_west) = (h.client(WEST), h.client_as(WEST, &credentials));

    let err = service_err(
        b_west
            .copy_backup()
            .source_backup_id(&backup_a)
            .source_region(EAST)
            .send()
            .await,
    );
    assert!(matches!(err, CopyBackupError::BackupNotFound(_)), "{err:?}");
    let err = service_err(
        a_west
            .copy_backup()
            .source_backup_id(&backup_b)
            .source_region(EAST)
            .send()
            .await,
    );
    assert!(matches!(err, CopyBackupError::BackupNotFound(_)), "{err:?}");

    let copy = b_west
        .copy_backup()
        .source_backup_id(&backup_b)
        .source_region(EAST)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    assert_eq!(copy.owner_id(), Some(B));
    assert!(
        copy.resource_arn()
            .unwrap()
            .starts_with("arn:aws:fsx:us-west-2:222222222222:backup/")
    );
    assert!(
        copy.kms_key_id()
            .unwrap()
            .starts_with("arn:aws:kms:us-west-2:222222222222:key/")
    );
    let (done, _) = wait_for(
        &b_west,
        copy.backup_id().unwrap(),
        BackupLifecycle::Available,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(done.source_backup_id(), Some(backup_b.as_str()));
    assert!(h.emulator.state().regions[WEST].backups.is_empty());
    assert_eq!(h.emulator.state_of(B).regions[WEST].backups.len(), 1);
}

#[tokio::test]
async fn limits_apply_per_account() {
    let h = Harness::start().await;
    h.emulator.add_role(RoleSeed::new(ROLE_B)).unwrap();
    h.emulator.set_limits(Limits {
        copies_in_progress_per_region: 2,
        user_backups_per_region: 3,
        ..Limits::default()
    });
    h.emulator.set_timing(Timing {
        copy_duration: Duration::from_mins(10),
        ..Timing::default()
    });
    let credentials = h.assume(ROLE_B, "copier").await;
    let clients = [
        (ACCOUNT_ID, h.client_without_retries(WEST)),
        (B, h.client_as(WEST, &credentials)),
    ];
    for (account, client) in &clients {
        let sources: Vec<String> = (0..3)
            .map(|_| backup_in(&h, account, EAST, BackupType::Automatic))
            .collect();
        for source in &sources[..2] {
            client
                .copy_backup()
                .source_backup_id(source)
                .source_region(EAST)
                .send()
                .await
                .unwrap_or_else(|e| panic!("copy in {account}: {e:?}"));
        }
        let err = service_err(
            client
                .copy_backup()
                .source_backup_id(&sources[2])
                .source_region(EAST)
                .send()
                .await,
        );
        let CopyBackupError::ServiceLimitExceeded(limit) = &err else {
            panic!("expected ServiceLimitExceeded in {account}, got {err:?}");
        };
        assert_eq!(
            limit.limit().map(aws_sdk_fsx::types::ServiceLimit::as_str),
            Some("TOTAL_IN_PROGRESS_COPY_BACKUPS")
        );
    }
    assert_eq!(h.emulator.max_copies_in_progress()[WEST], 2);
    assert_eq!(h.emulator.max_copies_in_progress_in(B)[WEST], 2);

    // The user-initiated backup quota (3) counts per account too: each
    // account holds two copies in WEST and may take one more backup there.
    for (account, client) in &clients {
        let fs = h
            .emulator
            .seed_file_system_in(account, WEST, windows())
            .unwrap();
        let other = h
            .emulator
            .seed_file_system_in(account, WEST, windows())
            .unwrap();
        client
            .create_backup()
            .file_system_id(&fs)
            .send()
            .await
            .unwrap_or_else(|e| panic!("backup in {account}: {e:?}"));
        let err = service_err(client.create_backup().file_system_id(&other).send().await);
        assert!(
            matches!(err, CreateBackupError::ServiceLimitExceeded(_)),
            "{account}: {err:?}"
        );
    }
}

/// (operation, outcome, account, role ARN, role session name).
type Summary<'r> = (
    &'r str,
    &'r str,
    Option<&'r str>,
    Option<&'r str>,
    Option<&'r str>,
);

#[tokio::test]
async fn request_log_names_account_and_role() {
    let h = Harness::start().await;
    h.emulator.add_role(RoleSeed::new(ROLE_B)).unwrap();
    let credentials = h.assume(ROLE_B, "op-1").await;
    h.client_as(EAST, &credentials)
        .describe_backups()
        .send()
        .await
        .unwrap();
    h.client(EAST).describe_backups().send().await.unwrap();
    let unknown = "arn:aws:iam::333333333333:role/unknown";
    let _ = h
        .sts()
        .assume_role()
        .role_arn(unknown)
        .role_session_name("op-2")
        .send()
        .await
        .unwrap_err();

    let log = h.emulator.requests();
    let summary: Vec<Summary<'_>> = log
        .iter()
        .map(|r| {
            (
                r.operation.as_str(),
                r.outcome.as_str(),
                r.account.as_deref(),
                r.role_arn.as_deref(),
                r.role_session_name.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("AssumeRole", "ok", Some(B), Some(ROLE_B), Some("op-1")),
            ("DescribeBackups", "ok", Some(B), Some(ROLE_B), Some("op-1")),
            ("DescribeBackups", "ok", Some(ACCOUNT_ID), None, None),
            (
                "AssumeRole",
                "AccessDenied",
                Some("333333333333"),
                Some(unknown),
                Some("op-2")
            ),
        ]
    );
    assert!(log.iter().all(|r| r.region.as_deref() == Some(EAST)));

    // Records serialized before these members existed still deserialize.
    let old: RequestRecord = serde_json::from_value(json!({
        "seq": 1, "time": 0.0, "region": "us-east-1", "operation": "DescribeBackups",
        "outcome": "ok", "fault": null, "backup_ids": [], "client_request_token": null,
        "attempt": 1
    }))
    .unwrap();
    assert_eq!(
        (old.account, old.role_arn, old.role_session_name),
        (None, None, None)
    );
}

#[tokio::test]
async fn control_api_over_http_knows_accounts() {
    let h = Harness::start().await;
    let endpoint = &h.running.endpoint;
    let call = |method: &'static str, path: &'static str, body: serde_json::Value| async move {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        raw_request(
            endpoint,
            method,
            path,
            &[("Content-Type", "application/json")],
            &body,
        )
        .await
    };

    let response = call(
        "POST",
        "/_emulator/roles",
        json!({ "arn": ROLE_B, "external_id": "ext-1" }),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.body);
    assert_eq!(response.json(), json!({ "arn": ROLE_B }));
    let response = call(
        "POST",
        "/_emulator/roles",
        json!({ "arn": ROLE_B, "trust": true }),
    )
    .await;
    assert_eq!(response.status, 400, "unknown members are refused");
    let response = call(
        "POST",
        "/_emulator/roles",
        json!({ "arn": "arn:aws:iam::1:role/x" }),
    )
    .await;
    assert_eq!(response.status, 400);
    let roles = call("GET", "/_emulator/roles", serde_json::Value::Null)
        .await
        .json();
    assert_eq!(roles["roles"][0]["trusted"], true);
    assert_eq!(roles["roles"][0]["external_id"], "ext-1");

    let response = call(
        "POST",
        "/_emulator/file-systems",
        json!({ "account": B, "region": EAST, "seed": { "file_system_type": "WINDOWS" } }),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.body);
    let fs = response.json()["id"].as_str().unwrap().to_owned();
    let response = call(
        "POST",
        "/_emulator/backups",
        json!({ "account": B, "region": EAST, "seed": { "file_system_id": fs, "backup_type": "USER_INITIATED" } }),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.body);
    let backup = response.json()["id"].as_str().unwrap().to_owned();
    let response = call(
        "POST",
        "/_emulator/file-systems",
        json!({ "account": "12", "region": EAST, "seed": {} }),
    )
    .await;
    assert_eq!(response.status, 400);
    let response = call(
        "POST",
        "/_emulator/lifecycle",
        json!({ "account": B, "region": EAST, "backup_id": backup, "lifecycle": "FAILED" }),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let response = call(
        "POST",
        "/_emulator/lifecycle",
        json!({ "region": EAST, "backup_id": backup, "lifecycle": "FAILED" }),
    )
    .await;
    assert_eq!(response.status, 404, "not in the default account");
    let response = call(
        "POST",
        "/_emulator/fail-next-backup",
        json!({ "account": B, "region": EAST, "target_id": fs }),
    )
    .await;
    assert_eq!(response.status, 200);

    let state = call(
        "GET",
        "/_emulator/state?account=222222222222",
        serde_json::Value::Null,
    )
    .await
    .json();
    assert_eq!(state["account_id"], B);
    assert_eq!(state["regions"][EAST]["file_systems"][0]["id"], fs.as_str());
    assert_eq!(state["regions"][EAST]["backups"][0]["lifecycle"], "FAILED");
    let state = call("GET", "/_emulator/state", serde_json::Value::Null)
        .await
        .json();
    assert_eq!(state["account_id"], ACCOUNT_ID);
    assert_eq!(state["regions"], json!({}));
    let response = call(
        "GET",
        "/_emulator/state?account=abc",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(response.status, 400);
    let accounts = call("GET", "/_emulator/accounts", serde_json::Value::Null)
        .await
        .json();
    assert_eq!(accounts, json!({ "accounts": [B] }));

    // The role needs its external id; the armed failure hits B's backup.
    let credentials = h
        .sts()
        .assume_role()
        .role_arn(ROLE_B)
        .role_session_name("http")
        .external_id("ext-1")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    let b = h.client_as(EAST, &credentials);
    let id = b
        .create_backup()
        .file_system_id(&fs)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap()
        .backup_id
        .unwrap();
    wait_for(&b, &id, BackupLifecycle::Failed, Duration::from_secs(5)).await;

    let response = call("POST", "/_emulator/reset", serde_json::Value::Null).await;
    assert_eq!(response.status, 200);
    assert!(h.emulator.roles().is_empty());
    assert!(h.emulator.accounts().is_empty());
    let err = service_err(b.describe_backups().send().await);
    assert_eq!(
        err.code(),
        Some("UnrecognizedClientException"),
        "sessions are forgotten"
    );
}
