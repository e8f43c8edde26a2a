//! Shared helpers: an emulator per test, SDK clients (FSx and STS) pointed
//! at it, and a minimal raw HTTP client for requests the SDK cannot make.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use aws_sdk_fsx::Client;
use aws_sdk_fsx::config::retry::RetryConfig;
use aws_sdk_fsx::config::{Credentials, Region};
use aws_sdk_fsx::error::SdkError;
use aws_sdk_fsx::types::{Backup, BackupLifecycle, Tag};
use fsx_emulator::{Emulator, FileSystemSeed, FileSystemType, RunningEmulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const EAST: &str = "us-east-1";
pub const WEST: &str = "us-west-2";

/// An emulator serving on a free port, with a fixed seed so ids and page
/// order are reproducible.
pub struct Harness {
    pub emulator: Emulator,
    pub running: RunningEmulator,
}

impl Harness {
    pub async fn start() -> Self {
        let emulator = Emulator::with_seed(0x5eed);
        let running = emulator.start().await.expect("emulator starts");
        Self { emulator, running }
    }

    /// A client for `region` with quick standard retries (3 attempts).
    pub fn client(&self, region: &str) -> Client {
        self.client_with(
            region,
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(5)),
        )
    }

    /// A client that never retries.
    pub fn client_without_retries(&self, region: &str) -> Client {
        self.client_with(region, RetryConfig::disabled())
    }

    pub fn client_with(&self, region: &str, retry: RetryConfig) -> Client {
        sdk_client(&self.running.endpoint, region, retry)
    }

    /// An FSx client for `region` signing with credentials `AssumeRole`
    /// returned, without retries.
    pub fn client_as(&self, region: &str, credentials: &aws_sdk_sts::types::Credentials) -> Client {
        session_client(
            &self.running.endpoint,
            region,
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token()),
        )
    }

    /// An STS client (default-account credentials) that never retries.
    pub fn sts(&self) -> aws_sdk_sts::Client {
        sts_client(
            &self.running.endpoint,
            Credentials::new("AKIDTEST", "secret", None, None, "test"),
            RetryConfig::disabled(),
        )
    }

    /// Assumes `role_arn` as session `session` from the default account.
    pub async fn assume(&self, role_arn: &str, session: &str) -> aws_sdk_sts::types::Credentials {
        self.sts()
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session)
            .send()
            .await
            .expect("AssumeRole succeeds")
            .credentials
            .expect("credentials are returned")
    }

    pub fn seed_fs(&self, region: &str, seed: FileSystemSeed) -> String {
        self.emulator
            .seed_file_system(region, seed)
            .expect("file system seed is valid")
    }

    pub fn windows_fs(&self, region: &str) -> String {
        self.seed_fs(region, FileSystemSeed::new(FileSystemType::Windows))
    }
}

/// An SDK client for `endpoint`, signing for `region`.
pub fn sdk_client(endpoint: &str, region: &str, retry: RetryConfig) -> Client {
    let config = aws_sdk_fsx::Config::builder()
        .behavior_version_latest()
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .retry_config(retry)
        .build();
    Client::from_conf(config)
}

/// An FSx client without retries signing with the given keys (and session
/// token, which the emulator checks for keys its STS issued).
pub fn session_client(
    endpoint: &str,
    region: &str,
    access_key_id: &str,
    secret: &str,
    session_token: Option<&str>,
) -> Client {
    let config = aws_sdk_fsx::Config::builder()
        .behavior_version_latest()
        .credentials_provider(Credentials::new(
            access_key_id,
            secret,
            session_token.map(str::to_owned),
            None,
            "session",
        ))
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// An STS client for `endpoint`, signing for `us-east-1`.
pub fn sts_client(
    endpoint: &str,
    credentials: Credentials,
    retry: RetryConfig,
) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version_latest()
        .credentials_provider(credentials)
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .retry_config(retry)
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

pub fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// Tags as sorted `(key, value)` pairs.
pub fn tag_pairs(tags: &[Tag]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = tags
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = list
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// The modeled service error of a failed call; panics on success or on a
/// transport-level failure.
pub fn service_err<O: Debug, E: Debug, R: Debug>(result: Result<O, SdkError<E, R>>) -> E {
    match result {
        Ok(output) => panic!("expected a service error, got {output:?}"),
        Err(SdkError::ServiceError(error)) => error.into_err(),
        Err(other) => panic!("expected a service error, got {other:?}"),
    }
}

pub async fn describe(client: &Client, backup_id: &str) -> Backup {
    client
        .describe_backups()
        .backup_ids(backup_id)
        .send()
        .await
        .expect("DescribeBackups succeeds")
        .backups()
        .first()
        .cloned()
        .expect("the backup is listed")
}

/// Polls `DescribeBackups` until the backup reaches `lifecycle`, returning
/// every lifecycle observed on the way (in order, deduplicated).
pub async fn wait_for(
    client: &Client,
    backup_id: &str,
    lifecycle: BackupLifecycle,
    timeout: Duration,
) -> (Backup, Vec<BackupLifecycle>) {
    let deadline = Instant::now() + timeout;
    let mut seen: Vec<BackupLifecycle> = Vec::new();
    loop {
        let backup = describe(client, backup_id).await;
        let current = backup.lifecycle().cloned().expect("Lifecycle is set");
        if seen.last() != Some(&current) {
            seen.push(current.clone());
        }
        if current == lifecycle {
            return (backup, seen);
        }
        assert!(
            Instant::now() < deadline,
            "backup {backup_id} did not reach {lifecycle:?}; saw {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw HTTP/1.1 response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("response body is JSON")
    }
}

/// Sends one request over a fresh connection and reads the whole response.
pub async fn raw_request(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> RawResponse {
    let authority = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).await.expect("connects");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request is written");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .expect("response is read");
    let text = String::from_utf8(raw).expect("response is UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("response has a head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// An FSx request signed (in scope only) for `region`.
pub async fn fsx_raw(endpoint: &str, region: &str, operation: &str, body: &str) -> RawResponse {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261125/{region}/fsx/aws4_request, SignedHeaders=host, Signature=00"
    );
    let target = format!("{}{operation}", fsx_emulator::TARGET_PREFIX);
    raw_request(
        endpoint,
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", &target),
            ("Authorization", &auth),
        ],
        body,
    )
    .await
}
