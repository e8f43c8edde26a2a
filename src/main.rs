//! Entry point: parses configuration, builds the clients and runs the
//! controllers. All behaviour lives in the library.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use fsx_backup_operator::clock::Clock;
use fsx_backup_operator::controller::{self, Context, Settings};
use fsx_backup_operator::crd::{FsxBackupCopy, FsxBackupSchedule, crd_files};
use fsx_backup_operator::duration::parse_duration;
use fsx_backup_operator::fsx::{AwsFsx, AwsFsxConfig};
use fsx_backup_operator::telemetry::{self, LogFormat};
use futures::FutureExt;
use kube::Api;

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
    Run(RunArgs),
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
    #[arg(long, env = "FSXBO_DEFAULT_REGION")]
    region: Option<String>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "FSXBO_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// FSx endpoint override (the SDK also reads `AWS_ENDPOINT_URL_FSX`).
    #[arg(long, env = "FSXBO_FSX_ENDPOINT_URL")]
    fsx_endpoint_url: Option<String>,
    /// Client-side limit on FSx requests per second per Region; 0 turns it off.
    #[arg(long, env = "FSXBO_AWS_REQUESTS_PER_SECOND", default_value_t = 10.0)]
    aws_requests_per_second: f64,
    /// Burst allowed above the request rate.
    #[arg(long, env = "FSXBO_AWS_BURST", default_value_t = 20)]
    aws_burst: u32,
    /// How often backups in flight are looked at (e.g. 30s).
    #[arg(long, env = "FSXBO_POLL_INTERVAL", default_value = "30s", value_parser = duration_arg)]
    poll_interval: Duration,
    /// How soon a transient FSx failure is retried.
    #[arg(long, env = "FSXBO_RETRY_INTERVAL", default_value = "30s", value_parser = duration_arg)]
    retry_interval: Duration,
    /// Copies in progress per destination Region, shared by all `FsxBackupCopy` objects
    /// (FSx allows 5 per account unless raised).
    #[arg(long, env = "FSXBO_COPY_SLOTS_PER_REGION", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    copy_slots_per_region: u32,
    /// Log format.
    #[arg(long, env = "FSXBO_LOG_FORMAT", value_enum, default_value_t = Format::Text)]
    log_format: Format,
    /// For tests only: a file holding a number of seconds added to the system
    /// time, re-read continuously, so tests can move time forward.
    #[arg(long, hide = true)]
    test_clock_offset_file: Option<PathBuf>,
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
            match run(args).await {
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
    if !(args.aws_requests_per_second >= 0.0 && args.aws_requests_per_second.is_finite()) {
        return Err("--aws-requests-per-second must be a number >= 0".into());
    }
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
    let fsx = AwsFsx::new(
        sdk,
        AwsFsxConfig {
            endpoint_url: args.fsx_endpoint_url.clone(),
            requests_per_second: (args.aws_requests_per_second > 0.0)
                .then_some(args.aws_requests_per_second),
            burst: args.aws_burst,
            ..AwsFsxConfig::default()
        },
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
    };
    tracing::info!(namespace = ?args.namespace, region = ?settings.default_region, "starting controllers");
    let ctx: Arc<Context<AwsFsx>> = Context::new(client.clone(), fsx, clock, settings);
    let (schedules, copies, followed): (
        Api<FsxBackupSchedule>,
        Api<FsxBackupCopy>,
        Api<FsxBackupSchedule>,
    ) = match &args.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    let shutdown = shutdown_signal().shared();
    tokio::join!(
        controller::schedule::run(
            schedules,
            ctx.clone(),
            clock_moved.clone(),
            shutdown.clone()
        ),
        controller::copy::run(copies, followed, ctx, clock_moved, shutdown),
    );
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
