//! Entry point: parses the command line and hands over to the library
//! (`manager::run` for the controllers). All behaviour lives in the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use fsx_backup_operator::crd::crd_files;
use fsx_backup_operator::manager::{self, Format, Options};
use fsx_backup_operator::telemetry::{self, LogFormat};

/// The allocator: jemalloc (the default `jemalloc` feature), configured at
/// build time with one arena and a background thread that returns freed
/// pages (`.cargo/config.toml`); measured against musl's own and mimalloc's
/// in the benchmark (README, Benchmark). `mimalloc`, when chosen, wins;
/// `--no-default-features` leaves the target's own.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    Run(Box<Options>),
    /// Print the `CustomResourceDefinitions`, or write them to a directory.
    Crd {
        /// Write one `<name>.yaml` per CRD here instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Connect to the cluster and print its version.
    Check,
    /// Show what a schedule's or copy's retention would delete, keep and adopt,
    /// and what it makes next, from live FSx, changing nothing (`--file` for a
    /// manifest in a pull request).
    Plan(Box<fsx_backup_operator::preview::PlanArgs>),
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
        Command::Plan(args) => match fsx_backup_operator::preview::run(*args).await {
            Ok(text) => {
                println!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("plan: {message}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            telemetry::init(match args.log_format {
                Format::Text => LogFormat::Text,
                Format::Json => LogFormat::Json,
            });
            match manager::run(*args).await {
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
