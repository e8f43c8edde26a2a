//! Injected faults as the SDK experiences them: throttling (retried, or
//! surfaced without retries), lost responses after the write took effect,
//! access denial, latency, and protocol-level errors.

use std::time::{Duration, Instant};

use aws_sdk_fsx::error::{ProvideErrorMetadata, SdkError};
use fsx_emulator::{BackupSeed, BackupType, Faults};

use crate::support::{EAST, Harness, fsx_raw, service_err};

fn only(operation: &str) -> Vec<String> {
    vec![operation.to_owned()]
}

#[tokio::test]
async fn throttling_is_absorbed_by_sdk_retries() {
    let h = Harness::start().await;
    let fs = h.windows_fs(EAST);
    h.emulator.set_faults(Faults {
        throttle_next: 2,
        only_operations: Some(only("CreateBackup")),
        ..Faults::default()
    });
    let client = h.client(EAST);
    client
        .describe_backups()
        .send()
        .await
        .expect("not an eligible operation");
    let backup = client
        .create_backup()
        .file_system_id(&fs)
        .send()
        .await
        .expect("third attempt succeeds");
    let id = backup.backup.unwrap().backup_id.unwrap();

    let attempts: Vec<_> = h
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.operation == "CreateBackup")
        .collect();
    let outcomes: Vec<&str> = attempts.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["ThrottlingException", "ThrottlingException", "ok"]
    );
    assert_eq!(attempts[0].fault.as_deref(), Some("throttled"));
    assert_eq!(
        attempts.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3)]
    );
    let token = attempts[0].client_request_token.clone();
    assert!(token.is_some());
    assert!(
        attempts.iter().all(|r| r.client_request_token == token),
        "retries reuse the token"
    );
    assert_eq!(attempts[2].backup_ids, [id]);
    assert_eq!(h.emulator.state().regions[EAST].backups.len(), 1);
}

#[tokio::test]
async fn throttling_surfaces_without_retries() {
    let h = Harness::start().await;
    let fs = h.windows_fs(EAST);
    h.emulator.set_faults(Faults {
        throttle_rate: 1.0,
        ..Faults::default()
    });
    let err = service_err(
        h.client_without_retries(EAST)
            .create_backup()
            .file_system_id(&fs)
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert_eq!(err.message(), Some("Rate exceeded"));
    // With retries the SDK gives up after its three attempts.
    let err = service_err(
        h.client(EAST)
            .create_backup()
            .file_system_id(&fs)
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert_eq!(h.emulator.requests().len(), 4);
    assert!(
        h.emulator
            .state()
            .regions
            .get(EAST)
            .is_none_or(|r| r.backups.is_empty())
    );
}

#[tokio::test]
async fn lost_response_after_write_is_healed_by_the_token() {
    let h = Harness::start().await;
    let fs = h.windows_fs(EAST);
    h.emulator.set_faults(Faults {
        drop_response_after_write_next: 1,
        only_operations: Some(only("CreateBackup")),
        ..Faults::default()
    });
    // The SDK sees the connection close without a response, retries with the
    // same token, and gets the backup the first attempt created.
    let backup = h
        .client(EAST)
        .create_backup()
        .file_system_id(&fs)
        .send()
        .await
        .expect("retry succeeds");
    let id = backup.backup.unwrap().backup_id.unwrap();
    let attempts = h.emulator.requests();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].fault.as_deref(), Some("response_dropped"));
    assert_eq!(attempts[0].outcome, "ok");
    assert_eq!(attempts[0].backup_ids, std::slice::from_ref(&id));
    assert_eq!(attempts[1].backup_ids, [id]);
    assert_eq!(
        attempts[0].client_request_token,
        attempts[1].client_request_token
    );
    assert_eq!(h.emulator.state().regions[EAST].backups.len(), 1);
}

#[tokio::test]
async fn lost_response_without_retries_is_a_dispatch_failure() {
    let h = Harness::start().await;
    let fs = h.windows_fs(EAST);
    h.emulator.set_faults(Faults {
        drop_response_after_write_next: 1,
        ..Faults::default()
    });
    let client = h.client_without_retries(EAST);
    let result = client
        .create_backup()
        .file_system_id(&fs)
        .client_request_token("lost-1")
        .send()
        .await;
    // hyper reports the closed connection as `IncompleteMessage`, which the
    // SDK classifies as a transient dispatch failure (retryable).
    match result {
        Err(SdkError::DispatchFailure(failure)) => {
            assert!(failure.as_connector_error().is_some(), "{failure:?}");
        }
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
    let written = h.emulator.state().regions[EAST].backups.clone();
    assert_eq!(written.len(), 1, "the write happened");
    let replay = client
        .create_backup()
        .file_system_id(&fs)
        .client_request_token("lost-1")
        .send()
        .await
        .unwrap();
    assert_eq!(replay.backup.unwrap().backup_id.unwrap(), written[0].id);
}

#[tokio::test]
async fn access_denied_and_latency() {
    let h = Harness::start().await;
    let fs = h.windows_fs(EAST);
    let backup = h
        .emulator
        .seed_backup(
            EAST,
            BackupSeed::of_file_system(&fs, BackupType::UserInitiated),
        )
        .unwrap();
    h.emulator.set_faults(Faults {
        deny_operations: vec!["DeleteBackup".to_owned()],
        latency: Duration::from_millis(150),
        only_operations: Some(only("DescribeBackups")),
        ..Faults::default()
    });
    let client = h.client(EAST);
    let err = service_err(client.delete_backup().backup_id(&backup).send().await);
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(err.message().unwrap().contains("fsx:DeleteBackup"));

    let started = Instant::now();
    client.describe_backups().send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(h.emulator.state().regions[EAST].backups.len(), 1);
}

#[tokio::test]
async fn protocol_errors() {
    let h = Harness::start().await;
    let endpoint = &h.running.endpoint;

    let response = crate::support::raw_request(
        endpoint,
        "POST",
        "/",
        &[(
            "X-Amz-Target",
            "AWSSimbaAPIService_v20180301.DescribeBackups",
        )],
        "{}",
    )
    .await;
    assert_eq!(response.status, 403);
    assert_eq!(
        response.header("x-amzn-ErrorType"),
        Some("MissingAuthenticationToken")
    );

    let response = fsx_raw(endpoint, "nowhere", "DescribeBackups", "{}").await;
    assert_eq!(response.status, 403);
    assert_eq!(response.json()["__type"], "InvalidSignatureException");

    let response = fsx_raw(endpoint, EAST, "LaunchRocket", "{}").await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["__type"], "UnknownOperationException");

    let response = fsx_raw(endpoint, EAST, "CreateBackup", "{not json").await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.header("content-type"),
        Some("application/x-amz-json-1.1")
    );
    assert_eq!(response.json()["__type"], "SerializationException");

    let response = fsx_raw(
        endpoint,
        EAST,
        "DescribeBackups",
        r#"{"MaxResults": "ten"}"#,
    )
    .await;
    assert_eq!(response.json()["__type"], "SerializationException");

    let response = fsx_raw(endpoint, EAST, "CopyBackup", r#"{"Tags": [{"Key": "k"}]}"#).await;
    let body = response.json();
    assert_eq!(body["__type"], "ValidationException");
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .starts_with("2 validation errors detected: "),
        "{body}"
    );

    let response = fsx_raw(endpoint, EAST, "DescribeBackups", "").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["Backups"], serde_json::json!([]));
    assert!(response.header("x-amzn-RequestId").is_some());
}
