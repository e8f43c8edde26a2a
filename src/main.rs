//! Entry point: parses configuration, builds the clients and runs the
//! controllers. All behaviour lives in the library.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use fsx_backup_operator::clock::Clock;
use fsx_backup_operator::controller::copy::CopyShared;
use fsx_backup_operator::controller::driver::Wiring;
use fsx_backup_operator::controller::{self, Context, Settings};
use fsx_backup_operator::crd::{FsxBackupCopy, FsxBackupSchedule, crd_files};
use fsx_backup_operator::duration::parse_duration;
use fsx_backup_operator::fsx::{AwsFsx, AwsFsxConfig, MeteredFsx};
use fsx_backup_operator::http::{self, Readiness};
use fsx_backup_operator::leader::{Elector, LeaseConfig};
use fsx_backup_operator::metrics::Metrics;
use fsx_backup_operator::notify::Notifier;
use fsx_backup_operator::telemetry::{self, LogFormat};
use futures::FutureExt;
use kube::Api;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(
    name = "fsx-backup-operator",
    version,
    about = "Amazon FSx backups as Kubernetes custom resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controllers.
    Run(Box<RunArgs>),
    /// Print the `CustomResourceDefinitions`, or write them to a directory.
    Crd {
        /// Write one `<name>.yaml` per CRD here instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Connect to the cluster and print its version.
    Check,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Region for objects whose spec names none (default: the AWS SDK's Region).
    #[arg(long, env = "FSXBO_DEFAULT_REGION", value_parser = region_arg)]
    region: Option<String>,
    /// Watch only these namespaces, comma-separated (default: all namespaces).
    #[arg(long = "namespace", env = "FSXBO_WATCH_NAMESPACES", value_delimiter = ',', value_parser = namespace_arg)]
    namespaces: Vec<String>,
    /// FSx endpoint override (the SDK also reads `AWS_ENDPOINT_URL_FSX`).
    #[arg(long, env = "FSXBO_FSX_ENDPOINT_URL")]
    fsx_endpoint_url: Option<String>,
    /// SNS endpoint override (the SDK also reads `AWS_ENDPOINT_URL_SNS`).
    #[arg(long, env = "FSXBO_SNS_ENDPOINT_URL")]
    sns_endpoint_url: Option<String>,
    /// Client-side limit on FSx requests per second per Region; 0 turns it off.
    #[arg(long, env = "FSXBO_AWS_REQUESTS_PER_SECOND", default_value_t = 10.0, value_parser = rate_arg)]
    aws_requests_per_second: f64,
    /// Burst allowed above the request rate.
    #[arg(long, env = "FSXBO_AWS_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    aws_burst: u32,
    /// How often backups and copies in flight are looked at (e.g. 30s).
    #[arg(long, env = "FSXBO_POLL_INTERVAL", default_value = "30s", value_parser = duration_arg)]
    poll_interval: Duration,
    /// How soon a transient FSx failure is retried.
    #[arg(long, env = "FSXBO_RETRY_INTERVAL", default_value = "30s", value_parser = duration_arg)]
    retry_interval: Duration,
    /// Copies in progress per destination Region, shared by all `FsxBackupCopy` objects
    /// (FSx allows 5 per account unless raised).
    #[arg(long, env = "FSXBO_COPY_SLOTS_PER_REGION", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    copy_slots_per_region: u32,
    /// Reconciles running at once per controller; 0 = unlimited (runs on time first).
    /// A limit bounds memory when thousands of objects are due at the same instant,
    /// at the cost of lateness (see the README's benchmark).
    #[arg(long, env = "FSXBO_MAX_CONCURRENT_RECONCILES", default_value_t = 0)]
    max_concurrent_reconciles: u16,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "FSXBO_METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
    metrics_address: std::net::SocketAddr,
    /// Elect a leader among replicas on a Lease; only the leader reconciles.
    #[arg(long, env = "FSXBO_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the Lease (default: `POD_NAMESPACE`).
    #[arg(long, env = "FSXBO_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = "FSXBO_LEASE_NAME", default_value = "fsx-backup-operator")]
    lease_name: String,
    /// How long the Lease is valid without renewal: the failover time.
    #[arg(long, env = "FSXBO_LEASE_DURATION", default_value = "15s", value_parser = duration_arg)]
    lease_duration: Duration,
    /// Longest wait on SIGTERM for reconciles in progress (and their AWS calls) to finish.
    #[arg(long, env = "FSXBO_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = duration_arg)]
    shutdown_timeout: Duration,
    /// Log format.
    #[arg(long, env = "FSXBO_LOG_FORMAT", value_enum, default_value_t = Format::Text)]
    log_format: Format,
    /// For tests only: a file holding a number of seconds added to the system
    /// time, re-read continuously, so tests can move time forward.
    #[arg(long, hide = true)]
    test_clock_offset_file: Option<PathBuf>,
}

fn region_arg(text: &str) -> Result<String, String> {
    let ok = text.split('-').count() >= 3
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && text.ends_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "\"{text}\" is not an AWS Region name such as us-east-1"
        ))
    }
}

fn namespace_arg(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "\"{text}\" is not a namespace name (lowercase letters, digits and -, at most 63)"
        ))
    }
}

fn rate_arg(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!("\"{text}\" must be a number >= 0")),
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn duration_arg(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text).map_err(|err| err.to_string())?;
    if duration.is_zero() {
        Err("must be above zero".into())
    } else {
        Ok(duration)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { out } => write_crds(out.as_deref()),
        Command::Check => {
            telemetry::init(LogFormat::Text);
            check_cluster().await
        }
        Command::Run(args) => {
            telemetry::init(match args.log_format {
                Format::Text => LogFormat::Text,
                Format::Json => LogFormat::Json,
            });
            match run(*args).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(message) => {
                    tracing::error!("{message}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

fn write_crds(out: Option<&std::path::Path>) -> std::process::ExitCode {
    if let Some(dir) = out
        && let Err(err) = std::fs::create_dir_all(dir)
    {
        eprintln!("cannot create {}: {err}", dir.display());
        return std::process::ExitCode::FAILURE;
    }
    for (name, yaml) in crd_files() {
        match out {
            Some(dir) => {
                if let Err(err) = std::fs::write(dir.join(&name), &yaml) {
                    eprintln!("cannot write {}: {err}", dir.join(&name).display());
                    return std::process::ExitCode::FAILURE;
                }
            }
            None => print!("---\n{yaml}"),
        }
    }
    std::process::ExitCode::SUCCESS
}

async fn run(args: RunArgs) -> Result<(), String> {
    if args.leader_election && args.lease_duration < Duration::from_secs(3) {
        return Err("--lease-duration must be at least 3s".into());
    }
    let lease_namespace = args
        .leader_election_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok());
    if args.leader_election && lease_namespace.is_none() {
        return Err(
            "--leader-election needs --leader-election-namespace (or POD_NAMESPACE)".into(),
        );
    }
    let (metrics, registry) = Metrics::new();
    let metrics = Arc::new(metrics);
    let readiness = Arc::new(Readiness::default());
    let (bound, serve) = http::bind(args.metrics_address, Arc::new(registry), readiness.clone())
        .await
        .map_err(|err| format!("--metrics-address {}: {err}", args.metrics_address))?;
    tokio::spawn(serve);
    tracing::info!(address = %bound, "serving /metrics, /healthz and /readyz");

    let client = kube::Client::try_default()
        .await
        .map_err(|err| format!("cannot build a Kubernetes client: {err}"))?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let default_region = args
        .region
        .clone()
        .or_else(|| sdk.region().map(ToString::to_string));
    let notifier = Notifier::new(sdk.clone(), args.sns_endpoint_url.clone(), metrics.clone());
    let fsx = MeteredFsx::new(
        AwsFsx::new(
            sdk,
            AwsFsxConfig {
                endpoint_url: args.fsx_endpoint_url.clone(),
                requests_per_second: (args.aws_requests_per_second > 0.0)
                    .then_some(args.aws_requests_per_second),
                burst: args.aws_burst,
                ..AwsFsxConfig::default()
            },
        ),
        metrics.clone(),
    );
    let (clock, clock_moved) = match &args.test_clock_offset_file {
        Some(path) => {
            let (clock, rx) = Clock::offset_from_file(path.clone())
                .await
                .map_err(|err| format!("--test-clock-offset-file: {err}"))?;
            (clock, Some(rx))
        }
        None => (Clock::system(), None),
    };
    let settings = Settings {
        default_region,
        poll_interval: args.poll_interval,
        retry_interval: args.retry_interval,
        copy_slots_per_region: args.copy_slots_per_region as usize,
        max_concurrent_reconciles: args.max_concurrent_reconciles,
    };
    let ctx = Context::new(
        client.clone(),
        fsx,
        clock,
        settings,
        metrics.clone(),
        Some(notifier),
    );

    // SIGTERM: stop taking new work; reconciles in progress get `shutdown_timeout`.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let elector = args.leader_election.then(|| {
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
            format!(
                "{}-{}",
                std::process::id(),
                jiff::Timestamp::now().as_millisecond()
            )
        });
        Elector::new(
            client.clone(),
            LeaseConfig {
                namespace: lease_namespace.clone().unwrap_or_default(),
                name: args.lease_name.clone(),
                identity,
                duration: args.lease_duration,
                renew_every: args.lease_duration / 3,
            },
        )
    });
    let (leading_tx, mut leading_rx) = watch::channel(elector.is_none());
    if let Some(elector) = elector.clone() {
        tokio::spawn(elector.run(leading_tx, stop_rx.clone()));
        // Standing by is a ready state: the replica is healthy and can take over.
        readiness.set(true);
        tokio::select! {
            result = leading_rx.wait_for(|leading| *leading) => {
                if result.is_err() {
                    return Ok(());
                }
            }
            () = stopped(stop_rx.clone()) => {
                tracing::info!("stopped while standing by");
                return Ok(());
            }
        }
        readiness.set(false);
    }
    metrics.leader.set(1);
    tracing::info!(namespaces = ?args.namespaces, region = ?ctx.settings.default_region, "starting controllers");

    let synced = Arc::new(AtomicUsize::new(0));
    let watched: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    let expected_synced = watched.len() * 2;
    let shared = CopyShared::new(ctx.settings.copy_slots_per_region);
    let wiring = Wiring {
        clock_moved: clock_moved.clone(),
        synced: synced.clone(),
    };
    let mut controllers = Vec::new();
    for namespace in &watched {
        let api_of = |client: &kube::Client| match namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };
        let (schedules, copies, followed): (
            Api<FsxBackupSchedule>,
            Api<FsxBackupCopy>,
            Api<FsxBackupSchedule>,
        ) = api_of(&client);
        controllers.push(
            controller::schedule::run(
                schedules,
                ctx.clone(),
                wiring.clone(),
                stopped(stop_rx.clone()),
            )
            .boxed(),
        );
        controllers.push(
            controller::copy::run(
                copies,
                followed,
                namespace.clone(),
                ctx.clone(),
                shared.clone(),
                wiring.clone(),
                stopped(stop_rx.clone()),
            )
            .boxed(),
        );
    }
    let readiness_task = {
        let readiness = readiness.clone();
        let synced = synced.clone();
        tokio::spawn(async move {
            while synced.load(Ordering::Relaxed) < expected_synced {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            readiness.set(true);
        })
    };
    let all = futures::future::join_all(controllers);
    tokio::pin!(all);
    // Leadership lost while running. (The elector ends on SIGTERM and drops its
    // sender: that is the graceful path below, not a loss.)
    let lost = async {
        if leading_rx.wait_for(|leading| !*leading).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = &mut all => {}
        () = lost => {
            // Another replica may already act: stop at once, mid-reconcile if need be
            // (every FSx call is idempotent), and let Kubernetes restart this one.
            metrics.leader.set(0);
            tracing::error!("lost the leader Lease; exiting so that only the leader acts");
            std::process::exit(1);
        }
        () = async {
            stopped(stop_rx.clone()).await;
            tokio::time::sleep(args.shutdown_timeout).await;
        } => {
            tracing::warn!(timeout = ?args.shutdown_timeout, "reconciles still running at the shutdown timeout; stopping them");
        }
    }
    readiness_task.abort();
    if let Some(elector) = elector {
        if let Err(err) = elector.release().await {
            tracing::warn!(error = %err, "could not release the leader Lease; it expires on its own");
        }
        metrics.leader.set(0);
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutdown requested");
}

/// Connects with the standard kubeconfig/in-cluster chain and prints the server version.
async fn check_cluster() -> std::process::ExitCode {
    let result = async {
        let client = kube::Client::try_default().await?;
        client.apiserver_version().await
    }
    .await;
    match result {
        Ok(info) => {
            println!("connected: Kubernetes {}", info.git_version);
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot reach the Kubernetes API");
            std::process::ExitCode::FAILURE
        }
    }
}
