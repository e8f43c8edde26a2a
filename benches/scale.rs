//! Cost and scale of the operator, measured: the operator binary (of this
//! profile: release under `cargo bench`) against the real kube-apiserver and the
//! FSx emulator, with N `FsxBackupSchedule` objects (each its own file system, one
//! in a hundred with a follow-mode copy). Prints a table and writes JSON.
//!
//! `bench/run.sh` runs it; `BENCH_SIZES=100,1000` picks the sizes, `BENCH_OUT` the
//! JSON file. No thresholds: the figures are reported, not asserted.

#[path = "../tests/e2e/support/mod.rs"]
#[allow(dead_code)] // the bench uses a subset of the test harness
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use fsx_backup_operator::crd::{FsxBackupCopy, FsxBackupSchedule};
use fsx_emulator::{Emulator, FileSystemSeed, FileSystemType, Timing};
use futures::{StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use support::operator::{Operator, OperatorConfig, TestClock, install_crds, test_dir};

const REGION: &str = "us-east-1";
const LATENESS_SIZE: usize = 1_000;

/// `utime + stime` of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields after the command: state is 0, utime 11, stime 12; 100 ticks per second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Processes whose command name is `name` (e.g. the control plane's).
fn pids_named(name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
        .collect()
}

/// CPU seconds used so far by each party sharing the machine's cores.
fn cpu_by_party(operator: u32) -> BTreeMap<&'static str, f64> {
    let of = |name| pids_named(name).into_iter().map(cpu_seconds).sum::<f64>();
    BTreeMap::from([
        ("operator", cpu_seconds(operator)),
        ("kube-apiserver", of("kube-apiserver")),
        ("etcd", of("etcd")),
        // The FSx emulator runs inside this benchmark's process.
        ("emulator and benchmark", cpu_seconds(std::process::id())),
    ])
}

/// `VmRSS` and `VmHWM` (peak) of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn metric(port: u16, series: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return 0.0;
    };
    let _ = stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text).await;
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Requests to the apiserver in `namespace` recorded in the audit log, by
/// `verb resource[/subresource]` (e.g. `patch fsxbackupschedules/status`).
fn apiserver_requests(audit_log: &std::path::Path, namespace: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let text = std::fs::read_to_string(audit_log).unwrap_or_default();
    let quoted = format!(r#""namespace":"{namespace}""#);
    for line in text.lines().filter(|l| l.contains(&quoted)) {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if event["stage"] != "ResponseComplete" {
            continue;
        }
        let object = &event["objectRef"];
        let mut key = format!(
            "{} {}",
            event["verb"].as_str().unwrap_or_default(),
            object["resource"].as_str().unwrap_or_default()
        );
        if let Some(sub) = object["subresource"].as_str() {
            key.push('/');
            key.push_str(sub);
        }
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// The apiserver's port, from the kubeconfig's `server:` URL.
fn apiserver_port() -> u16 {
    std::fs::read_to_string(&support::control_plane().kubeconfig)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .and_then(|url| {
            url.trim()
                .rsplit(':')
                .next()?
                .trim_end_matches('/')
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// `after - before`, per key.
fn difference(
    after: &BTreeMap<String, usize>,
    before: &BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Open TCP connections of `pid`, by remote port (from `/proc/PID/fd` and `/proc/PID/net/tcp`).
fn sockets_by_remote_port(pid: u32) -> BTreeMap<u16, usize> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|target| {
                    let text = target.to_string_lossy().into_owned();
                    text.strip_prefix("socket:[")?
                        .strip_suffix(']')
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = BTreeMap::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // remote address is field 2 (hex ip:port), state field 3 (01: established), inode field 9
            let (Some(remote), Some(state), Some(inode)) =
                (fields.get(2), fields.get(3), fields.get(9))
            else {
                continue;
            };
            if *state != "01" || !inodes.contains(*inode) {
                continue;
            }
            if let Some(port) = remote
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                *ports.entry(port).or_default() += 1;
            }
        }
    }
    ports
}

fn ready(object: &FsxBackupSchedule) -> bool {
    object.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// How many schedules, as the benchmark's watch last saw them, pass `check`.
/// A watch, not a list: listing every object four times a second made the
/// benchmark itself a large share of the apiserver's load at 10,000 objects,
/// and so of the lateness it measures.
fn count(seen: &Store<FsxBackupSchedule>, check: impl Fn(&FsxBackupSchedule) -> bool) -> usize {
    seen.state().iter().filter(|o| check(o)).count()
}

/// The schedules of `api`, kept current by a watch until the task is aborted.
fn watch_schedules(
    api: Api<FsxBackupSchedule>,
) -> (Store<FsxBackupSchedule>, tokio::task::JoinHandle<()>) {
    let (seen, writer) = reflector::store();
    let events = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    let task = tokio::spawn(events.for_each(|_| std::future::ready(())));
    (seen, task)
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("bench: gave up waiting for {what} after {limit:?}");
    started.elapsed()
}

/// Arrival of each `CreateBackup` at the emulator minus the run's instant, in seconds.
fn lateness(emulator: &Emulator, since_seq: u64, instant_real: f64) -> Vec<f64> {
    let mut late: Vec<f64> = emulator
        .requests()
        .iter()
        .filter(|r| r.seq > since_seq && r.operation == "CreateBackup" && r.outcome == "ok")
        .map(|r| r.time - instant_real)
        .collect();
    late.sort_by(f64::total_cmp);
    late
}

struct Run {
    client: Client,
    namespace: String,
    endpoint: String,
    clock: TestClock,
    n: usize,
    seen: Store<FsxBackupSchedule>,
}

impl Run {
    fn operator(&self, extra: &[&str]) -> Operator {
        let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        OperatorConfig {
            namespace: &self.namespace,
            fsx_endpoint: &self.endpoint,
            clock: &self.clock,
            extra_args: &extra,
        }
        .start_with_env(&[("RUST_LOG", "info")])
    }

    fn schedules(&self) -> Api<FsxBackupSchedule> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Moves the operator's clock to just before the next top of the hour and
    /// waits for the operator to go quiet; returns that instant in operator time
    /// and in real (emulator) time, and how long before it the operator was quiet.
    ///
    /// Moving the test clock makes the operator look at every object again (a
    /// test-only wake-up: real time never jumps). The lead leaves that look
    /// time to finish, so that the run measures N objects due at once on an
    /// idle operator, as in production, not that storm on top of it. Finished
    /// on its own, that look lists every target once more (the clock's jump
    /// makes retention look again): the cap keeps those test-only calls few.
    async fn run_due(&self, metrics_port: u16) -> (Timestamp, f64, f64) {
        let now = self.clock.now().as_second();
        let slot = Timestamp::from_second(now - now.rem_euclid(3600) + 3600).expect("slot");
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let lead = SignedDuration::from_millis((self.n as i64).clamp(1500, 20_000));
        let real_at_set = Timestamp::now();
        self.clock.set_now(slot - lead);
        let real_slot = real_at_set + lead;
        let reconciles = r#"fsxbackup_reconcile_duration_seconds_count{controller="schedule"}"#;
        let mut last = f64::NAN;
        let quiet_before = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let count = metric(metrics_port, reconciles).await;
            let left = real_slot.duration_since(Timestamp::now()).as_secs_f64();
            if (count - last).abs() < 0.5 || left <= 0.0 {
                break left;
            }
            last = count;
        };
        #[allow(clippy::cast_precision_loss)]
        let real_slot = real_slot.as_millisecond() as f64 / 1000.0;
        (slot, real_slot, quiet_before)
    }

    async fn wait_backups(&self, slot: Timestamp) -> Duration {
        let n = self.n;
        wait_for(
            "every backup AVAILABLE",
            Duration::from_mins(20),
            async || {
                count(&self.seen, |o| {
                    o.status
                        .as_ref()
                        .and_then(|s| s.targets.first())
                        .and_then(|t| t.last_backup.as_ref())
                        .is_some_and(|b| {
                            b.lifecycle == "AVAILABLE"
                                && b.scheduled_time.as_ref().is_some_and(|t| t.0 == slot)
                        })
                }) >= n
            },
        )
        .await
    }
}

#[allow(clippy::too_many_lines)] // one measured scenario, step by step
async fn bench(n: usize, client: Client, audit_log: &std::path::Path) -> Value {
    let namespace = format!("bench-{n}-{}", std::process::id());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("ns"),
        )
        .await
        .expect("namespace");
    let emulator = Emulator::new();
    emulator.set_timing(Timing {
        create_duration: Duration::from_secs(2),
        copy_duration: Duration::from_secs(2),
    });
    emulator.set_limits(fsx_emulator::Limits {
        user_backups_per_region: 1_000_000,
        ..fsx_emulator::Limits::default()
    });
    let running = emulator.start().await.expect("emulator");
    let (seen, watching) = watch_schedules(Api::namespaced(client.clone(), &namespace));
    let run = Run {
        client: client.clone(),
        namespace: namespace.clone(),
        endpoint: running.endpoint.clone(),
        clock: TestClock::new(&test_dir(&namespace)),
        n,
        seen,
    };

    // N schedules, each with its own file system; one in a hundred copied to us-west-2.
    let created = Instant::now();
    let schedules = run.schedules();
    let copies: Api<FsxBackupCopy> = Api::namespaced(client.clone(), &namespace);
    futures::stream::iter(0..n)
        .map(|i| {
            let fs = emulator.seed_file_system(REGION, FileSystemSeed::new(FileSystemType::Windows)).expect("fs");
            let schedules = schedules.clone();
            let copies = copies.clone();
            async move {
                let object: FsxBackupSchedule = serde_json::from_value(json!({
                    "apiVersion": "fsxbackup.io/v1alpha1", "kind": "FsxBackupSchedule",
                    "metadata": {"name": format!("s{i}")},
                    "spec": {"target": {"fileSystemIds": [fs]}, "schedule": "0 * * * *", "retention": {"maxCount": 1}},
                }))
                .expect("schedule");
                schedules.create(&PostParams::default(), &object).await?;
                if i % 100 == 0 {
                    let copy: FsxBackupCopy = serde_json::from_value(json!({
                        "apiVersion": "fsxbackup.io/v1alpha1", "kind": "FsxBackupCopy",
                        "metadata": {"name": format!("c{i}")},
                        "spec": {"source": {"scheduleRef": {"name": format!("s{i}")}}, "destinationRegion": "us-west-2", "retention": {"maxCount": 1}},
                    }))
                    .expect("copy");
                    copies.create(&PostParams::default(), &copy).await?;
                }
                Ok::<_, kube::Error>(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("create objects");
    let create_seconds = created.elapsed().as_secs_f64();

    // 1. Start to all Ready; memory; idle CPU.
    let operator = run.operator(&["--aws-requests-per-second", "0"]);
    let pid = operator.pid();
    let to_ready = wait_for("all Ready", Duration::from_mins(20), async || {
        count(&run.seen, ready) >= n
    })
    .await;
    let (_, peak_startup) = memory_mib(pid);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_start = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = (cpu_seconds(pid) - idle_start) / 10.0;
    let (steady_rss, _) = memory_mib(pid);
    let mut port = None;
    wait_for("the metrics port", Duration::from_secs(30), async || {
        port = operator.metrics_port();
        port.is_some()
    })
    .await;
    let port = port.expect("the operator logs its metrics address");

    // 2. Two runs, all objects due at once; the second prunes the first run's backups.
    let seq0 = emulator.requests().last().map_or(0, |r| r.seq);
    let requests0 = apiserver_requests(audit_log, &namespace);
    let apiserver_port = apiserver_port();
    let emulator_port: u16 = run
        .endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or(0);
    let idle_sockets = sockets_by_remote_port(pid);
    let sockets_of = move |ports: &BTreeMap<u16, usize>| {
        (
            ports.get(&apiserver_port).copied().unwrap_or(0),
            ports.get(&emulator_port).copied().unwrap_or(0),
        )
    };
    let peak_sockets = std::sync::Arc::new(std::sync::Mutex::new(sockets_of(&idle_sockets)));
    let sampler = {
        let peak = peak_sockets.clone();
        tokio::spawn(async move {
            loop {
                let now = sockets_of(&sockets_by_remote_port(pid));
                if let Ok(mut peak) = peak.lock() {
                    *peak = (peak.0.max(now.0), peak.1.max(now.1));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let cpu0 = cpu_seconds(pid);
    let parties0 = cpu_by_party(pid);
    let runs_started = Instant::now();
    let reconciles0 = metric(
        port,
        r#"fsxbackup_reconcile_duration_seconds_count{controller="schedule"}"#,
    )
    .await;
    let mut late_no_limit = Vec::new();
    let mut run_seconds = Vec::new();
    let mut quiet_before = Vec::new();
    for _ in 0..2 {
        let seq = emulator.requests().last().map_or(0, |r| r.seq);
        let (slot, real, quiet) = run.run_due(port).await;
        quiet_before.push(quiet);
        run_seconds.push(run.wait_backups(slot).await.as_secs_f64());
        late_no_limit = lateness(&emulator, seq, real);
    }
    // Let retention of the second run finish.
    let api = schedules.clone();
    wait_for("pruning", Duration::from_mins(10), async || {
        emulator
            .requests()
            .iter()
            .filter(|r| r.seq > seq0 && r.operation == "DeleteBackup" && r.outcome == "ok")
            .count()
            >= n
    })
    .await;
    let _ = api;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_runs = cpu_seconds(pid) - cpu0;
    let runs_wall = runs_started.elapsed().as_secs_f64();
    let cpu_of_parties: BTreeMap<&str, f64> = cpu_by_party(pid)
        .into_iter()
        .map(|(party, cpu)| (party, cpu - parties0.get(party).copied().unwrap_or(0.0)))
        .collect();
    let reconciles = metric(
        port,
        r#"fsxbackup_reconcile_duration_seconds_count{controller="schedule"}"#,
    )
    .await
        - reconciles0;
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for r in emulator.requests().iter().filter(|r| r.seq > seq0) {
        *calls.entry(r.operation.clone()).or_default() += 1;
    }
    sampler.abort();
    let requests = difference(&apiserver_requests(audit_log, &namespace), &requests0);
    #[allow(clippy::cast_precision_loss)]
    let per_object_run = |x: usize| x as f64 / (2.0 * n as f64);
    let writes = requests
        .get("patch fsxbackupschedules/status")
        .copied()
        .unwrap_or(0);
    let events = requests.get("create events").copied().unwrap_or(0);
    let gets = requests.get("get fsxbackupschedules").copied().unwrap_or(0);
    // CreateBackup calls whose idempotency token was already sent: replays.
    let mut tokens = std::collections::HashSet::new();
    let replays = emulator
        .requests()
        .iter()
        .filter(|r| r.seq > seq0 && r.operation == "CreateBackup")
        .filter(|r| {
            !r.client_request_token
                .as_ref()
                .is_some_and(|t| tokens.insert(t.clone()))
        })
        .count();
    let (sockets_idle, peak) = (
        sockets_of(&idle_sockets),
        *peak_sockets.lock().expect("peak sockets"),
    );
    let (_, peak_rss) = memory_mib(pid);
    drop(operator);

    // 3. A restart under the shipped FSx rate limit (10/s, burst 20). Every object
    //    already has a status (as after an upgrade), so its stored Ready says
    //    nothing: the time counted is until every object has been reconciled
    //    again (the operator's reconcile count reaches N) and all are Ready.
    //    Then, at the lateness size only, a run under that limit.
    let mut late_limited = Vec::new();
    let operator = run.operator(&["--aws-requests-per-second", "10", "--aws-burst", "20"]);
    let restarted = Instant::now();
    let mut port = None;
    wait_for(
        "the restarted operator's metrics port",
        Duration::from_secs(30),
        async || {
            port = operator.metrics_port();
            port.is_some()
        },
    )
    .await;
    let port = port.expect("the operator logs its metrics address");
    let reconcile_count = r#"fsxbackup_reconcile_duration_seconds_count{controller="schedule"}"#;
    #[allow(clippy::cast_precision_loss)]
    wait_for(
        "every object reconciled after the restart",
        Duration::from_mins(10),
        async || {
            // The count first: it is the operator's figure; Ready alone is already true.
            metric(port, reconcile_count).await >= n as f64 && count(&run.seen, ready) >= n
        },
    )
    .await;
    let restart_reconciled = restarted.elapsed().as_secs_f64();
    if n == LATENESS_SIZE {
        let seq = emulator.requests().last().map_or(0, |r| r.seq);
        let (slot, real, quiet) = run.run_due(port).await;
        quiet_before.push(quiet);
        run.wait_backups(slot).await;
        late_limited = lateness(&emulator, seq, real);
    }
    drop(operator);
    watching.abort();
    let _ = namespaces
        .delete(&namespace, &kube::api::DeleteParams::default())
        .await;

    let fsx_per_backup = calls.values().sum::<usize>();
    #[allow(clippy::cast_precision_loss)]
    let result = json!({
        "objects": n,
        "copies": n.div_ceil(100),
        "create_objects_seconds": create_seconds,
        "start_to_all_ready_seconds": to_ready.as_secs_f64(),
        "restart_to_every_object_reconciled_seconds_10_rps": restart_reconciled,
        "rss_mib": {"peak_startup": peak_startup, "steady_after_ready": steady_rss, "peak_overall": peak_rss},
        "cpu": {
            "idle_cpu_fraction": idle_cpu,
            "seconds_for_two_runs": cpu_runs,
            "schedule_reconciles_in_two_runs": reconciles,
            "cpu_seconds_per_1000_reconciles": if reconciles > 0.0 { cpu_runs / reconciles * 1000.0 } else { f64::NAN },
            // Who used the cores while the two runs were made (wall seconds alongside).
            "seconds_of_the_two_runs": runs_wall,
            "cpu_seconds_during_the_two_runs_by_process": cpu_of_parties,
        },
        "run_seconds_until_all_available": run_seconds,
        // Seconds between the operator going quiet after the clock move and the
        // runs' instant (negative: it was still busy when the run was due).
        "operator_quiet_seconds_before_each_run": quiet_before,
        "lateness_seconds_no_rate_limit": {
            "p50": percentile(&late_no_limit, 0.5), "p99": percentile(&late_no_limit, 0.99),
            "max": late_no_limit.last().copied().unwrap_or(f64::NAN), "samples": late_no_limit.len(),
        },
        "lateness_seconds_10_rps": {
            "p50": percentile(&late_limited, 0.5), "p99": percentile(&late_limited, 0.99),
            "max": late_limited.last().copied().unwrap_or(f64::NAN), "samples": late_limited.len(),
        },
        "fsx_calls_in_two_runs": calls,
        "fsx_calls_per_object_per_run": per_object_run(fsx_per_backup),
        "fsx_floor_per_object_per_run": 2.0,
        "status_writes_per_object_per_run": per_object_run(writes),
        "events_per_object_per_run": per_object_run(events),
        "schedule_gets_per_object_per_run": per_object_run(gets),
        "create_backup_replays_in_two_runs": replays,
        "apiserver_requests_in_two_runs": requests,
        "apiserver_requests_per_object_per_run": requests.iter().map(|(k, v)| (k.clone(), per_object_run(*v))).collect::<BTreeMap<_, _>>(),
        "sockets": {
            "apiserver_idle": sockets_idle.0, "apiserver_peak": peak.0,
            "fsx_idle": sockets_idle.1, "fsx_peak": peak.1,
        },
    });
    eprintln!("bench: N={n} done");
    result
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_owned())
        .unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
        / 1024.0;
    json!({"cpu": model, "cores": cores, "memory_gib": (mem_gib * 10.0).round() / 10.0,
           "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
           // The operator binary measured: the host build, or what bench/run.sh built.
           "operator_build": std::env::var("BENCH_BUILD").unwrap_or_else(|_| "host (glibc)".into())})
}

fn table(results: &[Value]) -> String {
    let mut out = String::from(
        "| N | ready (s) | RSS steady / peak (MiB) | CPU s / 1000 reconciles | idle CPU | lateness p50 / p99 / max (s), no limit | at 10 rps | restart: every object reconciled, at 10 rps (s) | FSx calls / object / run (floor 2) | CreateBackup replays | status writes / object / run | Events / object / run | GETs / object / run | sockets apiserver / FSx (idle, peak) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let f = |v: &Value| {
            v.as_f64().map_or("-".to_owned(), |x| {
                if x.is_nan() {
                    "-".into()
                } else {
                    format!("{x:.2}")
                }
            })
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {} | {}% | {} / {} / {} | {} / {} / {} | {} | {} | {} | {} | {} | {} | {}, {} / {}, {} |",
            r["objects"],
            f(&r["start_to_all_ready_seconds"]),
            f(&r["rss_mib"]["steady_after_ready"]),
            f(&r["rss_mib"]["peak_overall"]),
            f(&r["cpu"]["cpu_seconds_per_1000_reconciles"]),
            r["cpu"]["idle_cpu_fraction"]
                .as_f64()
                .map_or("-".into(), |x| format!("{:.1}", x * 100.0)),
            f(&r["lateness_seconds_no_rate_limit"]["p50"]),
            f(&r["lateness_seconds_no_rate_limit"]["p99"]),
            f(&r["lateness_seconds_no_rate_limit"]["max"]),
            f(&r["lateness_seconds_10_rps"]["p50"]),
            f(&r["lateness_seconds_10_rps"]["p99"]),
            f(&r["lateness_seconds_10_rps"]["max"]),
            f(&r["restart_to_every_object_reconciled_seconds_10_rps"]),
            f(&r["fsx_calls_per_object_per_run"]),
            r["create_backup_replays_in_two_runs"],
            f(&r["status_writes_per_object_per_run"]),
            f(&r["events_per_object_per_run"]),
            f(&r["schedule_gets_per_object_per_run"]),
            r["sockets"]["apiserver_idle"],
            r["sockets"]["apiserver_peak"],
            r["sockets"]["fsx_idle"],
            r["sockets"]["fsx_peak"],
        );
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    install_crds();
    let client = support::client().await;
    let audit_log = support::control_plane()
        .kubeconfig
        .with_file_name("audit.log");
    let mut results = Vec::new();
    for n in sizes {
        eprintln!("bench: N={n}");
        results.push(bench(n, client.clone(), &audit_log).await);
    }
    let report =
        json!({"machine": machine(), "date": Timestamp::now().to_string(), "results": results});
    println!(
        "{}",
        table(report["results"].as_array().map_or(&[][..], Vec::as_slice))
    );
    println!("machine: {}", report["machine"]);
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(&path, serde_json::to_string_pretty(&report).expect("json"))
            .expect("write results");
        std::fs::write(
            std::path::Path::new(&path).with_extension("md"),
            format!(
                "{}\nmachine: {}\n",
                table(report["results"].as_array().map_or(&[][..], Vec::as_slice)),
                report["machine"]
            ),
        )
        .expect("write table");
        eprintln!("bench: wrote {path}");
    }
}
