//! The STS peer through `aws-sdk-sts`: `AssumeRole` and its refusals,
//! `GetCallerIdentity`, role chaining, injected faults, and the Query
//! protocol's error shape.

use std::time::{Duration, SystemTime};

use aws_sdk_sts::config::Credentials;
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::error::ProvideErrorMetadata;
use fsx_emulator::{ACCOUNT_ID, Faults, RoleSeed};

use crate::support::{Harness, raw_request, service_err, sts_client};

const ROLE: &str = "arn:aws:iam::222222222222:role/fsx-backup";

fn only(operation: &str) -> Vec<String> {
    vec![operation.to_owned()]
}

#[tokio::test]
async fn assume_role_returns_session_credentials() {
    let h = Harness::start().await;
    h.emulator.add_role(RoleSeed::new(ROLE)).unwrap();
    let before = SystemTime::now();
    let output = h
        .sts()
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("operator@cluster-1")
        .send()
        .await
        .expect("AssumeRole succeeds");

    let credentials = output.credentials().expect("Credentials");
    assert!(credentials.access_key_id().starts_with("ASIA"));
    assert_eq!(credentials.access_key_id().len(), 20);
    assert_eq!(credentials.secret_access_key().len(), 40);
    assert!(!credentials.session_token().is_empty());
    // Default DurationSeconds: one hour (the wire format has whole seconds).
    let expiration = SystemTime::try_from(*credentials.expiration()).unwrap();
    let lifetime = expiration.duration_since(before).unwrap();
    assert!(
        lifetime > Duration::from_secs(3590) && lifetime <= Duration::from_secs(3601),
        "{lifetime:?}"
    );
    let user = output.assumed_role_user().expect("AssumedRoleUser");
    assert_eq!(
        user.arn(),
        "arn:aws:sts::222222222222:assumed-role/fsx-backup/operator@cluster-1"
    );
    let (role_id, session) = user.assumed_role_id().split_once(':').unwrap();
    assert!(
        role_id.starts_with("AROA") && role_id.len() == 21,
        "{role_id}"
    );
    assert_eq!(session, "operator@cluster-1");

    // DurationSeconds up to the role's MaxSessionDuration.
    h.emulator
        .add_role(RoleSeed::new(ROLE).max_session_duration_seconds(7200))
        .unwrap();
    let again = h
        .sts()
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("long")
        .duration_seconds(7200)
        .send()
        .await
        .unwrap();
    let user = again.assumed_role_user().unwrap();
    assert_eq!(
        user.assumed_role_id().split_once(':').unwrap().0,
        role_id,
        "replacing a role keeps its id"
    );
    let expiration = SystemTime::try_from(*again.credentials().unwrap().expiration()).unwrap();
    assert!(expiration.duration_since(before).unwrap() > Duration::from_secs(7190));
    assert_ne!(
        again.credentials().unwrap().access_key_id(),
        credentials.access_key_id()
    );

    // A role path is not part of the assumed-role ARN.
    let pathed = "arn:aws:iam::333333333333:role/teams/storage/backup";
    h.emulator.add_role(RoleSeed::new(pathed)).unwrap();
    let output = h
        .sts()
        .assume_role()
        .role_arn(pathed)
        .role_session_name("s1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        output.assumed_role_user().unwrap().arn(),
        "arn:aws:sts::333333333333:assumed-role/backup/s1"
    );
}

#[tokio::test]
async fn assume_role_refusals() {
    let h = Harness::start().await;
    let sts = h.sts();
    let assume = |arn: &str, external_id: Option<&str>| {
        sts.assume_role()
            .role_arn(arn)
            .role_session_name("op")
            .set_external_id(external_id.map(str::to_owned))
    };

    // Unregistered role.
    let err = service_err(assume(ROLE, None).send().await);
    assert_eq!(err.code(), Some("AccessDenied"));
    assert_eq!(
        err.message(),
        Some(
            "User: arn:aws:iam::111111111111:user/fsx-emulator is not authorized to perform: \
             sts:AssumeRole on resource: arn:aws:iam::222222222222:role/fsx-backup"
        )
    );

    // Registered, but the trust policy refuses; flipping it admits.
    h.emulator
        .add_role(RoleSeed::new(ROLE).trusted(false))
        .unwrap();
    let err = service_err(assume(ROLE, None).send().await);
    assert_eq!(err.code(), Some("AccessDenied"));
    h.emulator.add_role(RoleSeed::new(ROLE)).unwrap();
    assume(ROLE, None).send().await.expect("trusted now");

    // External id required: missing or different is refused.
    h.emulator
        .add_role(RoleSeed::new(ROLE).external_id("tenant-42"))
        .unwrap();
    for wrong in [None, Some("tenant-43")] {
        let err = service_err(assume(ROLE, wrong).send().await);
        assert_eq!(err.code(), Some("AccessDenied"), "{wrong:?}");
    }
    assume(ROLE, Some("tenant-42"))
        .send()
        .await
        .expect("matching external id");
    // A role without the condition ignores an external id.
    let plain = "arn:aws:iam::222222222222:role/plain";
    h.emulator.add_role(RoleSeed::new(plain)).unwrap();
    assume(plain, Some("anything")).send().await.unwrap();

    // DurationSeconds below the model's minimum, above the role's maximum.
    let err = service_err(assume(plain, None).duration_seconds(100).send().await);
    assert_eq!(err.code(), Some("ValidationError"));
    assert_eq!(
        err.message(),
        Some(
            "1 validation error detected: Value '100' at 'durationSeconds' failed to satisfy \
             constraint: Member must have value greater than or equal to 900"
        )
    );
    let err = service_err(assume(plain, None).duration_seconds(7200).send().await);
    assert_eq!(err.code(), Some("ValidationError"));
    assert_eq!(
        err.message(),
        Some("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
    );
    let err = service_err(assume(plain, None).duration_seconds(50_000).send().await);
    assert_eq!(err.code(), Some("ValidationError"));
    assume(plain, None)
        .duration_seconds(900)
        .send()
        .await
        .expect("the minimum is allowed");

    // Session name and external id shapes, then the role ARN's.
    let err = service_err(
        sts.assume_role()
            .role_arn(plain)
            .role_session_name("a b")
            .external_id("x")
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("ValidationError"));
    let message = err.message().unwrap();
    assert!(
        message.starts_with("2 validation errors detected: ")
            && message.contains("'roleSessionName'")
            && message.contains("'externalId'"),
        "{message}"
    );
    let err = service_err(
        assume("arn:aws:iam::2222:role/fsx-backup", None)
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("ValidationError"));
    assert_eq!(err.message(), Some("Request ARN is invalid"));
    let err = service_err(assume("arn:aws:iam", None).send().await);
    assert_eq!(err.code(), Some("ValidationError"));
    assert!(err.message().unwrap().contains("'roleArn'"));

    let outcomes: Vec<String> = h
        .emulator
        .requests()
        .iter()
        .map(|r| r.outcome.clone())
        .collect();
    assert_eq!(outcomes.first().map(String::as_str), Some("AccessDenied"));
    assert!(
        h.emulator
            .requests()
            .iter()
            .all(|r| r.operation == "AssumeRole")
    );
}

#[tokio::test]
async fn role_chaining() {
    let h = Harness::start().await;
    let next = "arn:aws:iam::333333333333:role/next";
    h.emulator
        .add_role(RoleSeed::new(ROLE).max_session_duration_seconds(43_200))
        .unwrap();
    h.emulator
        .add_role(RoleSeed::new(next).max_session_duration_seconds(43_200))
        .unwrap();
    let first = h.assume(ROLE, "first").await;
    let chained = sts_client(
        &h.running.endpoint,
        Credentials::new(
            first.access_key_id(),
            first.secret_access_key(),
            Some(first.session_token().to_owned()),
            None,
            "first",
        ),
        RetryConfig::disabled(),
    );
    let identity = chained.get_caller_identity().send().await.unwrap();
    assert_eq!(identity.account(), Some("222222222222"));
    assert_eq!(
        identity.arn(),
        Some("arn:aws:sts::222222222222:assumed-role/fsx-backup/first")
    );
    assert!(identity.user_id().unwrap().ends_with(":first"));

    // Role chaining caps sessions at one hour, whatever the role allows.
    let err = service_err(
        chained
            .assume_role()
            .role_arn(next)
            .role_session_name("second")
            .duration_seconds(7200)
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("ValidationError"));
    assert!(err.message().unwrap().contains("role chaining"));
    let second = chained
        .assume_role()
        .role_arn(next)
        .role_session_name("second")
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.assumed_role_user().unwrap().arn(),
        "arn:aws:sts::333333333333:assumed-role/next/second"
    );
    // Refusals name the assumed role as the caller.
    let err = service_err(
        chained
            .assume_role()
            .role_arn("arn:aws:iam::444444444444:role/unknown")
            .role_session_name("third")
            .send()
            .await,
    );
    assert!(
        err.message()
            .unwrap()
            .starts_with("User: arn:aws:sts::222222222222:assumed-role/fsx-backup/first is not"),
        "{err:?}"
    );
}

#[tokio::test]
async fn get_caller_identity_of_the_default_account() {
    let h = Harness::start().await;
    let identity = h.sts().get_caller_identity().send().await.unwrap();
    assert_eq!(identity.account(), Some(ACCOUNT_ID));
    assert_eq!(
        identity.arn(),
        Some("arn:aws:iam::111111111111:user/fsx-emulator")
    );
    assert!(identity.user_id().unwrap().starts_with("AIDA"));
    let log = h.emulator.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].operation, "GetCallerIdentity");
    assert_eq!(log[0].account.as_deref(), Some(ACCOUNT_ID));
    assert_eq!(log[0].region.as_deref(), Some("us-east-1"));
    assert_eq!(log[0].role_arn, None);
}

#[tokio::test]
async fn faults_apply_to_assume_role() {
    let h = Harness::start().await;
    h.emulator.add_role(RoleSeed::new(ROLE)).unwrap();

    // Throttling, seen with a single attempt...
    h.emulator.set_faults(Faults {
        throttle_next: 1,
        only_operations: Some(only("AssumeRole")),
        ..Faults::default()
    });
    let single = sts_client(
        &h.running.endpoint,
        Credentials::new("AKIDTEST", "secret", None, None, "test"),
        RetryConfig::standard().with_max_attempts(1),
    );
    let assume = || single.assume_role().role_arn(ROLE).role_session_name("op");
    let err = service_err(assume().send().await);
    assert_eq!(err.code(), Some("Throttling"));
    assert_eq!(err.message(), Some("Rate exceeded"));
    // ... and retried as throttling by the standard retry strategy.
    h.emulator.set_faults(Faults {
        throttle_next: 2,
        only_operations: Some(only("AssumeRole")),
        ..Faults::default()
    });
    let retrying = sts_client(
        &h.running.endpoint,
        Credentials::new("AKIDTEST", "secret", None, None, "test"),
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(5)),
    );
    retrying
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("op")
        .send()
        .await
        .expect("the third attempt succeeds");
    let outcomes: Vec<String> = h
        .emulator
        .requests()
        .iter()
        .map(|r| r.outcome.clone())
        .collect();
    assert_eq!(outcomes, ["Throttling", "Throttling", "Throttling", "ok"]);
    assert_eq!(h.emulator.requests()[0].fault.as_deref(), Some("throttled"));

    // Server errors and denial.
    h.emulator.set_faults(Faults {
        server_error_next: 1,
        deny_operations: vec!["GetCallerIdentity".to_owned()],
        only_operations: Some(only("AssumeRole")),
        ..Faults::default()
    });
    let err = service_err(assume().send().await);
    assert_eq!(err.code(), Some("InternalFailure"));
    let err = service_err(single.get_caller_identity().send().await);
    assert_eq!(err.code(), Some("AccessDenied"));
    assert!(err.message().unwrap().contains("sts:GetCallerIdentity"));
    assume().send().await.expect("faults are spent");
}

#[tokio::test]
async fn query_protocol_errors() {
    let h = Harness::start().await;
    let endpoint = &h.running.endpoint;
    let form = [("Content-Type", "application/x-www-form-urlencoded")];

    // Unsigned.
    let response = raw_request(
        endpoint,
        "POST",
        "/",
        &form,
        "Action=GetCallerIdentity&Version=2011-06-15",
    )
    .await;
    assert_eq!(response.status, 403);
    assert_eq!(response.header("content-type"), Some("text/xml"));
    assert!(response.header("x-amzn-RequestId").is_some());
    assert!(
        response
            .body
            .starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"),
        "{}",
        response.body
    );
    assert!(
        response
            .body
            .contains("<Code>MissingAuthenticationToken</Code>")
    );

    // Unknown action or version. Without `X-Amz-Target` or a form content
    // type, the `Action=` body alone routes the request to STS.
    let auth = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261125/us-east-1/fsx/aws4_request, SignedHeaders=host, Signature=00";
    for body in [
        "Action=GetSessionToken&Version=2011-06-15",
        "Action=AssumeRole&Version=2099-01-01",
    ] {
        let response = raw_request(endpoint, "POST", "/", &[("Authorization", auth)], body).await;
        assert_eq!(response.status, 400, "{body}");
        assert!(
            response.body.contains("<Type>Sender</Type>")
                && response.body.contains("<Code>InvalidAction</Code>"),
            "{}",
            response.body
        );
    }

    // A session key the emulator does not know (say, from before a reset).
    h.emulator.add_role(RoleSeed::new(ROLE)).unwrap();
    let credentials = h.assume(ROLE, "op").await;
    h.emulator.reset();
    let stale = sts_client(
        endpoint,
        Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_owned()),
            None,
            "stale",
        ),
        RetryConfig::disabled(),
    );
    let err = service_err(stale.get_caller_identity().send().await);
    assert_eq!(err.code(), Some("InvalidClientTokenId"));
    assert!(h.emulator.roles().is_empty(), "reset forgets roles");
}
