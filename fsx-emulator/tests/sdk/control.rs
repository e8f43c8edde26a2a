//! The `fsx-emulator` binary and its HTTP control API, driven the way shell
//! scripts and the benchmark drive it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_fsx::config::retry::RetryConfig;
use aws_sdk_fsx::error::ProvideErrorMetadata;
use aws_sdk_fsx::types::BackupLifecycle;
use serde_json::{Value, json};

use crate::support::{EAST, RawResponse, raw_request, sdk_client, service_err, wait_for};

/// The binary, killed if the test fails half-way.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fsx-emulator"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, endpoint }
    }

    async fn call(&self, method: &str, path: &str, body: &Value) -> RawResponse {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        raw_request(
            &self.endpoint,
            method,
            path,
            &[("Content-Type", "application/json")],
            &body,
        )
        .await
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                assert!(status.success(), "exit status {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the emulator did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn binary_with_http_control_api() {
    let server = Server::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--create-seconds",
        "0.2",
        "--seed",
        "3",
    ]);
    assert!(
        server.endpoint.starts_with("http://127.0.0.1:"),
        "{}",
        server.endpoint
    );
    let client = sdk_client(
        &server.endpoint,
        EAST,
        RetryConfig::standard().with_initial_backoff(Duration::from_millis(5)),
    );

    let health = server.call("GET", "/_emulator/health", &Value::Null).await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({ "status": "ok" }))
    );
    let timing = server
        .call("GET", "/_emulator/timing", &Value::Null)
        .await
        .json();
    assert_eq!(
        timing,
        json!({ "create_seconds": 0.2, "copy_seconds": 0.0 })
    );

    let seeded = server
        .call(
            "POST",
            "/_emulator/file-systems",
            &json!({ "region": EAST, "seed": { "file_system_type": "WINDOWS", "tags": [{ "Key": "env", "Value": "ci" }] } }),
        )
        .await;
    assert_eq!(seeded.status, 201, "{}", seeded.body);
    let fs = seeded.json()["id"].as_str().unwrap().to_owned();

    let backup = client
        .create_backup()
        .file_system_id(&fs)
        .send()
        .await
        .unwrap()
        .backup
        .unwrap();
    let id = backup.backup_id().unwrap().to_owned();
    let state = server
        .call("GET", "/_emulator/state", &Value::Null)
        .await
        .json();
    assert_eq!(state["regions"][EAST]["backups"][0]["id"], json!(id));
    assert_eq!(
        state["regions"][EAST]["backups"][0]["backup_type"],
        json!("USER_INITIATED")
    );
    wait_for(
        &client,
        &id,
        BackupLifecycle::Available,
        Duration::from_secs(5),
    )
    .await;

    let forced = server
        .call(
            "POST",
            "/_emulator/lifecycle",
            &json!({ "region": EAST, "backup_id": id, "lifecycle": "FAILED" }),
        )
        .await;
    assert_eq!(forced.status, 200, "{}", forced.body);
    let described = crate::support::describe(&client, &id).await;
    assert_eq!(described.lifecycle(), Some(&BackupLifecycle::Failed));

    let aws_backup = server
        .call(
            "POST",
            "/_emulator/backups",
            &json!({ "region": EAST, "seed": { "file_system_id": fs, "backup_type": "AWS_BACKUP" } }),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = service_err(client.delete_backup().backup_id(&aws_backup).send().await);
    assert_eq!(err.code(), Some("BadRequest"));

    let put = server
        .call("PUT", "/_emulator/faults", &json!({ "throttle_next": 1 }))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    client
        .describe_backups()
        .send()
        .await
        .expect("retried past the throttle");
    let log = server
        .call("GET", "/_emulator/requests", &Value::Null)
        .await
        .json();
    let throttled = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["fault"] == json!("throttled"))
        .count();
    assert_eq!(throttled, 1);

    let limits = server
        .call(
            "PUT",
            "/_emulator/limits",
            &json!({ "copies_in_progress_per_region": 2, "bad_kms_keys": ["k1"] }),
        )
        .await;
    assert_eq!(limits.status, 200);
    let limits = server
        .call("GET", "/_emulator/limits", &Value::Null)
        .await
        .json();
    assert_eq!(limits["copies_in_progress_per_region"], json!(2));
    assert_eq!(limits["user_backups_per_region"], json!(5000));

    assert_eq!(
        server
            .call(
                "POST",
                "/_emulator/fail-next-backup",
                &json!({ "region": EAST, "target_id": fs })
            )
            .await
            .status,
        200
    );
    let restoring = json!({ "region": EAST, "backup_id": aws_backup, "file_system_id": "fs-0aaaaaaaaaaaaaaa1" });
    assert_eq!(
        server
            .call("POST", "/_emulator/restoring", &restoring)
            .await
            .status,
        200
    );

    // Errors are explicit.
    for (method, path, body, status) in [
        (
            "POST",
            "/_emulator/file-systems",
            json!("not an object"),
            400,
        ),
        (
            "POST",
            "/_emulator/file-systems",
            json!({ "region": "mars", "seed": {} }),
            400,
        ),
        (
            "POST",
            "/_emulator/file-systems",
            json!({ "region": EAST, "seed": { "id": fs } }),
            409,
        ),
        (
            "POST",
            "/_emulator/lifecycle",
            json!({ "region": EAST, "backup_id": "backup-0123456789abcdef0", "lifecycle": "AVAILABLE" }),
            404,
        ),
        (
            "PUT",
            "/_emulator/timing",
            json!({ "create_seconds": -1 }),
            400,
        ),
        ("DELETE", "/_emulator/state", Value::Null, 405),
        ("GET", "/_emulator/nothing-here", Value::Null, 404),
    ] {
        let response = server.call(method, path, &body).await;
        assert_eq!(
            response.status, status,
            "{method} {path}: {}",
            response.body
        );
        assert!(response.json()["error"].is_string());
    }

    assert_eq!(
        server
            .call("POST", "/_emulator/reset", &Value::Null)
            .await
            .status,
        200
    );
    let state = server
        .call("GET", "/_emulator/state", &Value::Null)
        .await
        .json();
    assert_eq!(state["regions"], json!({}));
    assert_eq!(
        server
            .call("DELETE", "/_emulator/requests", &Value::Null)
            .await
            .status,
        200
    );
    server.terminate();
}
