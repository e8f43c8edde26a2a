//! Runs the real operator binary against the shared control plane and an FSx
//! emulator, with a test clock the test moves forward.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jiff::Timestamp;

use super::{control_plane, tools_bin};

/// The test's clock: an offset in seconds from system time, read by the
/// operator from a file (`--test-clock-offset-file`).
pub struct TestClock {
    path: PathBuf,
    offset: std::sync::Mutex<f64>,
}

impl TestClock {
    pub fn new(dir: &Path) -> Self {
        let clock = Self {
            path: dir.join("clock-offset"),
            offset: std::sync::Mutex::new(0.0),
        };
        clock.set_offset(0.0);
        clock
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the operator currently believes the time is.
    pub fn now(&self) -> Timestamp {
        let offset = *self.offset.lock().expect("offset");
        Timestamp::now() + jiff::SignedDuration::from_secs_f64(offset)
    }

    pub fn set_offset(&self, seconds: f64) {
        *self.offset.lock().expect("offset") = seconds;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("{seconds}")).expect("write clock offset");
        std::fs::rename(&tmp, &self.path).expect("move clock offset into place");
    }

    /// Moves the operator's clock so that it reads `instant` now.
    pub fn set_now(&self, instant: Timestamp) {
        let offset = instant.duration_since(Timestamp::now()).as_secs_f64();
        self.set_offset(offset);
    }
}

/// The operator binary: the one cargo built for these tests, or the one
/// `FSXBO_OPERATOR_BIN` names (e.g. the static musl build the image ships,
/// which `bench/run.sh` measures with `BENCH_TARGET`).
pub fn operator_binary() -> PathBuf {
    std::env::var_os("FSXBO_OPERATOR_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_fsx-backup-operator")),
        PathBuf::from,
    )
}

/// A running operator process; killed (SIGKILL) on drop.
pub struct Operator {
    child: Option<Child>,
    pub log: PathBuf,
}

pub struct OperatorConfig<'a> {
    pub namespace: &'a str,
    pub fsx_endpoint: &'a str,
    pub clock: &'a TestClock,
    /// More flags for `run`.
    pub extra_args: &'a [String],
}

impl OperatorConfig<'_> {
    /// Starts the operator with `env` set as well (e.g. `POD_NAME`).
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Operator {
        Operator::spawn(self, env)
    }
}

impl Operator {
    pub fn start(config: &OperatorConfig<'_>) -> Self {
        Self::spawn(config, &[])
    }

    fn spawn(config: &OperatorConfig<'_>, env: &[(&str, &str)]) -> Self {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let log = config.clock.path().with_file_name(format!(
            "operator-{}.log",
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&log).expect("operator log");
        let child = Command::new(operator_binary())
            .args([
                "run",
                "--namespace",
                config.namespace,
                "--region",
                "us-east-1",
            ])
            .args(["--fsx-endpoint-url", config.fsx_endpoint])
            // The emulator answers STS AssumeRole on the same port.
            .args(["--sts-endpoint-url", config.fsx_endpoint])
            .args(["--poll-interval", "1s", "--retry-interval", "1s"])
            .args(["--metrics-address", "127.0.0.1:0"])
            .arg("--test-clock-offset-file")
            .arg(config.clock.path())
            .args(config.extra_args)
            .env("KUBECONFIG", &control_plane().kubeconfig)
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info,fsx_backup_operator=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("spawn the operator binary");
        Self {
            child: Some(child),
            log,
        }
    }

    /// SIGKILL: no chance to write anything more.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `within` for the exit; the exit code, if it exited.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The process id, while it runs (the benchmark samples its memory).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// How the process ended, if it has ended on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// The port `/metrics` is served on, read from the log once it is up.
    pub fn metrics_port(&self) -> Option<u16> {
        let logs = strip_ansi(&self.logs());
        let line = logs.lines().find(|l| l.contains("serving /metrics"))?;
        let address = line.split("address=").nth(1)?;
        let address: String = address.chars().take_while(|c| !c.is_whitespace()).collect();
        let address = address.trim_matches(|c: char| !c.is_ascii_digit());
        address.rsplit(':').next()?.parse().ok()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The text without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A fresh directory for one test's files.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fsxbo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

/// Applies `crds/` with the real kubectl, once per test binary.
pub fn install_crds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let output = kubectl(&[
            "apply",
            "--server-side",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/crds"),
        ]);
        assert!(
            output.status.success(),
            "kubectl apply -f crds/: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let output = kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/fsxbackupschedules.fsxbackup.io",
            "crd/fsxbackupcopies.fsxbackup.io",
            "crd/fsxbackupaccounts.fsxbackup.io",
        ]);
        assert!(
            output.status.success(),
            "CRDs not established: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// Runs the real kubectl against the shared control plane.
pub fn kubectl(args: &[&str]) -> std::process::Output {
    kubectl_with_input(args, None)
}

pub fn kubectl_with_input(args: &[&str], input: Option<&str>) -> std::process::Output {
    use std::io::Write;
    static KUBECTL: OnceLock<PathBuf> = OnceLock::new();
    let kubectl = KUBECTL.get_or_init(|| tools_bin().join("kubectl"));
    let mut child = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(&control_plane().kubeconfig)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
