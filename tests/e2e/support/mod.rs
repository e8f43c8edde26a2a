//! Shared integration-test support: a real kube-apiserver for each test binary
//! and a fresh namespace for each test.
//!
//! Set `FSXBO_KUBECONFIG` to a kubeconfig to run against an already running
//! control plane (for example one from `scripts/control-plane.sh start`);
//! otherwise the first test that asks starts one with
//! `scripts/control-plane.sh run`, which stops itself when this process exits
//! (its stdin closes), however the process ends.

pub mod operator;
pub mod world;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// A running control plane this test binary can use.
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    /// Holds the supervisor's stdin open; never dropped, closed by process exit.
    _supervisor: Option<Mutex<Child>>,
}

static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();

/// The control plane for this test binary, started on first use.
pub fn control_plane() -> &'static ControlPlane {
    CONTROL_PLANE.get_or_init(|| {
        if let Some(path) = std::env::var_os("FSXBO_KUBECONFIG") {
            return ControlPlane {
                kubeconfig: PathBuf::from(path),
                _supervisor: None,
            };
        }
        start_control_plane()
    })
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn start_control_plane() -> ControlPlane {
    let dir = std::env::temp_dir().join(format!("fsxbo-cp-{}", std::process::id()));
    let mut child = Command::new(repo_root().join("scripts/control-plane.sh"))
        .arg("run")
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn scripts/control-plane.sh");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read control-plane output");
    let kubeconfig = PathBuf::from(line.trim());
    assert!(
        kubeconfig.is_file(),
        "control plane did not start (got {line:?}); see the messages above"
    );
    ControlPlane {
        kubeconfig,
        _supervisor: Some(Mutex::new(child)),
    }
}

/// A new client for the shared control plane. Each `#[tokio::test]` has its own
/// runtime, so clients are made per test rather than shared.
pub async fn client() -> Client {
    let kubeconfig = Kubeconfig::read_from(&control_plane().kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// Runs `test` with a client and a namespace created for it alone; the
/// namespace is deleted afterwards, whether the test passed or panicked.
pub async fn with_namespace<F, Fut>(prefix: &str, test: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()>,
{
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let client = client().await;
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.clone());
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create test namespace");

    let outcome = std::panic::AssertUnwindSafe(test(client, name.clone()))
        .catch_unwind()
        .await;

    // Without a controller-manager the namespace stays Terminating, but it is
    // marked for deletion and its objects no longer matter to other tests.
    let _ = namespaces.delete(&name, &DeleteParams::default()).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The directory `scripts/install-tools.sh` installed the peers into.
pub fn tools_bin() -> PathBuf {
    let output = Command::new(repo_root().join("scripts/install-tools.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/install-tools.sh");
    assert!(output.status.success(), "scripts/install-tools.sh failed");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 path");
    PathBuf::from(stdout.lines().last().expect("tools directory").trim())
}

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// moto's server (a third-party FSx implementation) on a free loopback port,
/// killed when dropped.
pub struct Moto {
    pub endpoint: String,
    child: Child,
}

impl Moto {
    pub async fn start() -> Self {
        let port = free_port();
        let child = Command::new(tools_bin().join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return moto;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("moto_server did not listen on port {port} within 30s");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// AWS SDK settings for a local peer: fixed test credentials, no profile files.
pub async fn aws_sdk_config(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .test_credentials()
        .region(aws_config::Region::new(region.to_owned()))
        .load()
        .await
}

/// Collects what moto's SNS delivers to an HTTP subscription.
pub async fn sns_http_receiver() -> (u16, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await
                    else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    if let Ok(message) = serde_json::from_str(body) {
                        sink.lock().expect("lock").push(message);
                    }
                    let _ = tokio::io::AsyncWriteExt::write_all(
                        &mut stream,
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
                    return;
                }
            });
        }
    });
    (port, received)
}
