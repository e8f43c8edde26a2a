//! One test's world: an FSx emulator, a test clock and the operator binary
//! running against the shared control plane in the test's namespace, plus the
//! helpers end-to-end tests use to observe them.

use std::time::Duration;

use fsx_backup_operator::crd::{FsxBackupCopy, FsxBackupSchedule};
use fsx_emulator::{BackupSnapshot, Emulator, FileSystemSeed, FileSystemType, RunningEmulator};
use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::operator::{Operator, OperatorConfig, TestClock, install_crds, test_dir};

pub const REGION: &str = "us-east-1";
pub const WAIT: Duration = Duration::from_secs(30);

pub struct World {
    pub client: Client,
    pub namespace: String,
    pub emulator: Emulator,
    pub running: RunningEmulator,
    pub clock: TestClock,
    pub operator: Operator,
    extra_args: Vec<String>,
}

impl World {
    pub async fn new(client: Client, namespace: String) -> Self {
        Self::with_args(client, namespace, &[]).await
    }

    /// A world whose operator gets `extra_args` (e.g. `--copy-slots-per-region 3`).
    pub async fn with_args(client: Client, namespace: String, extra_args: &[&str]) -> Self {
        install_crds();
        let emulator = Emulator::new();
        let running = emulator.start().await.expect("emulator");
        let clock = TestClock::new(&test_dir(&namespace));
        let extra_args: Vec<String> = extra_args.iter().map(|a| (*a).to_owned()).collect();
        let operator = Operator::start(&OperatorConfig {
            namespace: &namespace,
            fsx_endpoint: &running.endpoint,
            clock: &clock,
            extra_args: &extra_args,
        });
        Self {
            client,
            namespace,
            emulator,
            running,
            clock,
            operator,
            extra_args,
        }
    }

    pub fn restart_operator(&mut self) {
        self.operator.kill();
        self.operator = Operator::start(&OperatorConfig {
            namespace: &self.namespace,
            fsx_endpoint: &self.running.endpoint,
            clock: &self.clock,
            extra_args: &self.extra_args,
        });
    }

    pub fn api(&self) -> Api<FsxBackupSchedule> {
        self.api_of()
    }

    pub fn copies(&self) -> Api<FsxBackupCopy> {
        self.api_of()
    }

    pub fn api_of<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn file_system(&self, fs_type: FileSystemType) -> String {
        self.emulator
            .seed_file_system(REGION, FileSystemSeed::new(fs_type))
            .expect("seed file system")
    }

    /// Creates an object of kind `K` named `name` with `spec`.
    pub async fn create_object<K>(&self, name: &str, spec: Value) -> K
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + Serialize
            + DeserializeOwned,
    {
        let object: K = serde_json::from_value(json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("valid object");
        self.api_of::<K>()
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|err| panic!("create {} {name}: {err}", K::kind(&())))
    }

    pub async fn create(&self, name: &str, spec: Value) -> FsxBackupSchedule {
        self.create_object(name, spec).await
    }

    pub async fn create_copy(&self, name: &str, spec: Value) -> FsxBackupCopy {
        self.create_object(name, spec).await
    }

    pub async fn get(&self, name: &str) -> FsxBackupSchedule {
        self.api().get(name).await.expect("get schedule")
    }

    /// Waits until the object's state satisfies `check`, returning it.
    pub async fn until_object<K>(&self, name: &str, what: &str, check: impl Fn(&K) -> bool) -> K
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned,
    {
        let api = self.api_of::<K>();
        let result = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(object) = api.get(name).await
                    && check(&object)
                {
                    return object;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        if let Ok(object) = result {
            return object;
        }
        let last = api.get(name).await.ok();
        panic!(
            "timed out waiting for {name}: {what}\nobject: {last:#?}\noperator log:\n{}",
            tail(&self.operator.logs())
        )
    }

    pub async fn until(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&FsxBackupSchedule) -> bool,
    ) -> FsxBackupSchedule {
        self.until_object(name, what, check).await
    }

    pub async fn until_copy(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&FsxBackupCopy) -> bool,
    ) -> FsxBackupCopy {
        self.until_object(name, what, check).await
    }

    pub fn backups_in(&self, region: &str) -> Vec<BackupSnapshot> {
        self.emulator
            .state()
            .regions
            .get(region)
            .map(|r| r.backups.clone())
            .unwrap_or_default()
    }

    pub fn backups(&self) -> Vec<BackupSnapshot> {
        self.backups_in(REGION)
    }

    pub fn owned_backups_in(&self, region: &str, uid: &str) -> Vec<BackupSnapshot> {
        self.backups_in(region)
            .into_iter()
            .filter(|b| tag(b, "fsxbackup.io/owner-uid") == Some(uid))
            .collect()
    }

    pub fn owned_backups(&self, uid: &str) -> Vec<BackupSnapshot> {
        self.owned_backups_in(REGION, uid)
    }

    /// Runs the kubectl plugin the way kubectl does (it is `kubectl-fsxbackup`
    /// on the PATH), with this world's FSx; off this test's runtime, which the
    /// emulator serves on.
    pub async fn plugin(&self, args: &[&str]) -> std::process::Output {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-fsxbackup"));
        command
            .args(args)
            .env("KUBECONFIG", &crate::support::control_plane().kubeconfig)
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("FSXBO_DEFAULT_REGION", REGION)
            .env("FSXBO_FSX_ENDPOINT_URL", &self.running.endpoint);
        tokio::task::spawn_blocking(move || command.output().expect("run the plugin"))
            .await
            .expect("join")
    }

    /// Successful calls of `operation`.
    pub fn calls(&self, operation: &str) -> usize {
        self.emulator
            .requests()
            .iter()
            .filter(|r| r.operation == operation && r.outcome == "ok")
            .count()
    }

    /// Calls of `operation`, whatever their outcome.
    pub fn attempts(&self, operation: &str) -> usize {
        self.emulator
            .requests()
            .iter()
            .filter(|r| r.operation == operation)
            .count()
    }

    /// The next top of the hour after the operator's now.
    pub fn next_hour(&self) -> Timestamp {
        let now = self.clock.now();
        let second = now.as_second();
        Timestamp::from_second(second - second.rem_euclid(3600) + 3600).expect("valid")
    }
}

/// `GET /metrics` over a plain TCP connection.
pub async fn metrics_text(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    Some(body)
}

pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

pub fn tag<'a>(backup: &'a BackupSnapshot, key: &str) -> Option<&'a str> {
    backup
        .tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
}

/// `(status, reason)` of the condition `type_`.
pub fn condition_of(conditions: &[Condition], type_: &str) -> Option<(String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Reasons of the events about `name`, oldest first.
pub async fn events(client: &Client, namespace: &str, name: &str) -> Vec<String> {
    event_notes(client, namespace, name)
        .await
        .into_iter()
        .map(|(reason, _)| reason)
        .collect()
}

/// `(reason, note)` of every event of `name`, oldest first.
pub async fn event_notes(client: &Client, namespace: &str, name: &str) -> Vec<(String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    let list = api.list(&ListParams::default()).await.expect("events");
    let mut items: Vec<_> = list
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect();
    items.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    items
        .into_iter()
        .filter_map(|e| Some((e.reason?, e.note.unwrap_or_default())))
        .collect()
}

/// The event reasons of `name` once each of `expected` appears `count` times or
/// more: events follow the status write that they describe, so a test that saw
/// the status waits for them.
pub async fn events_with(
    client: &Client,
    namespace: &str,
    name: &str,
    expected: &[(&str, usize)],
) -> Vec<String> {
    crate::support::operator::eventually(
        &format!("events {expected:?} of {name}"),
        WAIT,
        || async {
            let reasons = events(client, namespace, name).await;
            expected
                .iter()
                .all(|(reason, count)| reasons.iter().filter(|r| r == reason).count() >= *count)
                .then_some(reasons)
        },
    )
    .await
}
