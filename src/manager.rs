//! The manager: everything `run` does between parsing flags and exiting. It
//! builds the clients and the shared context, waits for the leader Lease when
//! elected, starts one schedule and one copy controller per watched namespace,
//! and stops them on SIGTERM or at once when leadership is lost.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::Api;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::controller::copy::CopyShared;
use crate::controller::lenient::Lenient;
use crate::controller::watches::Wiring;
use crate::controller::{self, Brake, Context, Settings};
use crate::crd::{FsxBackupCopy, FsxBackupSchedule};
use crate::duration::parse_duration;
use crate::fsx::{AwsFsx, AwsFsxConfig, BatchedFsx, MeteredFsx};
use crate::http::{self, Readiness};
use crate::identity;
use crate::kube_client;
use crate::leader::{Elector, LeaseConfig};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::strays;

/// How the operator runs: flags, each also read from an `FSXBO_*` variable.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Region for objects whose spec names none (default: the AWS SDK's Region).
    #[arg(long, env = "FSXBO_DEFAULT_REGION", value_parser = region_arg)]
    pub region: Option<String>,
    /// Watch only these namespaces, comma-separated (default: all namespaces).
    #[arg(long = "namespace", env = "FSXBO_WATCH_NAMESPACES", value_delimiter = ',', value_parser = namespace_arg)]
    pub namespaces: Vec<String>,
    /// FSx endpoint override (the SDK also reads `AWS_ENDPOINT_URL_FSX`).
    #[arg(long, env = "FSXBO_FSX_ENDPOINT_URL")]
    pub fsx_endpoint_url: Option<String>,
    /// STS endpoint override, for assuming the roles of `FsxBackupAccount`s
    /// (the SDK also reads `AWS_ENDPOINT_URL_STS`).
    #[arg(long, env = "FSXBO_STS_ENDPOINT_URL")]
    pub sts_endpoint_url: Option<String>,
    /// SNS endpoint override (the SDK also reads `AWS_ENDPOINT_URL_SNS`).
    #[arg(long, env = "FSXBO_SNS_ENDPOINT_URL")]
    pub sns_endpoint_url: Option<String>,
    /// Client-side limit on FSx requests per second per account and Region; 0 turns it off.
    #[arg(long, env = "FSXBO_AWS_REQUESTS_PER_SECOND", default_value_t = 10.0, value_parser = rate_arg)]
    pub aws_requests_per_second: f64,
    /// FSx calls in flight at once per account and Region (calls beyond it wait):
    /// bounds the connections to each FSx endpoint.
    #[arg(long, env = "FSXBO_AWS_MAX_IN_FLIGHT", default_value_t = crate::fsx::DEFAULT_MAX_IN_FLIGHT, value_parser = clap::value_parser!(u16).range(1..))]
    pub aws_max_in_flight: u16,
    /// Burst allowed above the request rate.
    #[arg(long, env = "FSXBO_AWS_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub aws_burst: u32,
    /// How often backups and copies in flight are looked at (e.g. 30s).
    #[arg(long, env = "FSXBO_POLL_INTERVAL", default_value = "30s", value_parser = duration_arg)]
    pub poll_interval: Duration,
    /// How soon a transient FSx failure is retried.
    #[arg(long, env = "FSXBO_RETRY_INTERVAL", default_value = "30s", value_parser = duration_arg)]
    pub retry_interval: Duration,
    /// Copies in progress per destination account and Region, shared by all
    /// `FsxBackupCopy` objects (FSx allows 5 per account and Region unless raised).
    #[arg(long, env = "FSXBO_COPY_SLOTS_PER_REGION", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub copy_slots_per_region: u32,
    /// Reconciles running at once per controller; 0 = unlimited (runs on time first).
    /// Rarely needed: a reconcile waiting for its turn to act on FSx or to write
    /// its status is small, and those turns are bounded on their own.
    #[arg(long, env = "FSXBO_MAX_CONCURRENT_RECONCILES", default_value_t = 0)]
    pub max_concurrent_reconciles: u16,
    /// Longest one reconcile may run before it is abandoned and retried (e.g. an
    /// FSx endpoint that accepts connections and never answers).
    #[arg(long, env = "FSXBO_RECONCILE_TIMEOUT", default_value = "10m", value_parser = duration_arg)]
    pub reconcile_timeout: Duration,
    /// Deletion brake: a spec change that would delete more than this many of a
    /// target's AVAILABLE backups at once waits for approval (objects may set their own).
    #[arg(long, env = "FSXBO_DELETION_BRAKE_MAX", default_value_t = 10)]
    pub deletion_brake_max: u32,
    /// Deletion brake: … or more than this percentage of them.
    #[arg(long, env = "FSXBO_DELETION_BRAKE_PERCENT", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub deletion_brake_percent: u32,
    /// This cluster's identity, tagged on every backup (default: the UID of the
    /// kube-system namespace). Set it, and keep it across cluster rebuilds, for a
    /// rebuilt cluster's objects to adopt the backups of their predecessors.
    #[arg(long, env = "FSXBO_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// How often the leader counts stray backups (owner object gone); 0 turns it off.
    #[arg(long, env = "FSXBO_STRAY_SCAN_INTERVAL", default_value = "10m", value_parser = duration_arg)]
    pub stray_scan_interval: Duration,
    /// Kubernetes API calls in flight at once (watches excluded); 0: no limit.
    /// Bounds the connections to the apiserver and their memory when thousands
    /// of objects are reconciled together; calls beyond it wait their turn, so
    /// a low limit makes simultaneous runs late (see the README's benchmark).
    #[arg(long, env = "FSXBO_KUBE_MAX_IN_FLIGHT", default_value_t = DEFAULT_KUBE_MAX_IN_FLIGHT)]
    pub kube_max_in_flight: u16,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "FSXBO_METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
    pub metrics_address: std::net::SocketAddr,
    /// Elect a leader among replicas on a Lease; only the leader reconciles.
    #[arg(long, env = "FSXBO_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the Lease (default: `POD_NAMESPACE`).
    #[arg(long, env = "FSXBO_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = "FSXBO_LEASE_NAME", default_value = "fsx-backup-operator")]
    pub lease_name: String,
    /// How long the Lease is valid without renewal: the failover time.
    #[arg(long, env = "FSXBO_LEASE_DURATION", default_value = "15s", value_parser = duration_arg)]
    pub lease_duration: Duration,
    /// Longest wait on SIGTERM for reconciles in progress (and their AWS calls) to finish.
    #[arg(long, env = "FSXBO_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = duration_arg)]
    pub shutdown_timeout: Duration,
    /// Log format.
    #[arg(long, env = "FSXBO_LOG_FORMAT", value_enum, default_value_t = Format::Text)]
    pub log_format: Format,
    /// For tests only: a file holding a number of seconds added to the system
    /// time, re-read continuously, so tests can move time forward.
    #[arg(long, hide = true)]
    pub test_clock_offset_file: Option<PathBuf>,
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

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
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

/// The FSx boundary every controller shares.
type Fsx = BatchedFsx<MeteredFsx<AwsFsx>>;

/// Runs the controllers until SIGTERM (then waits up to `shutdown_timeout` for
/// reconciles in progress) or until leadership is lost (then exits at once).
pub async fn run(options: Options) -> Result<(), String> {
    let lease_namespace = lease_namespace(&options)?;
    let (metrics, registry) = Metrics::new();
    let metrics = Arc::new(metrics);
    let readiness = Arc::new(Readiness::default());
    let (bound, serve) = http::bind(
        options.metrics_address,
        Arc::new(registry),
        readiness.clone(),
    )
    .await
    .map_err(|err| format!("--metrics-address {}: {err}", options.metrics_address))?;
    tokio::spawn(serve);
    tracing::info!(address = %bound, "serving /metrics, /healthz and /readyz");

    let (watch_client, client) = kube_clients(options.kube_max_in_flight).await?;
    let (ctx, clock_moved) = context(&options, client.clone(), metrics.clone()).await?;

    // SIGTERM: stop taking new work; reconciles in progress get `shutdown_timeout`.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });

    let elector = lease_namespace.map(|namespace| elector(&options, client, namespace));
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
    tracing::info!(namespaces = ?options.namespaces, region = ?ctx.settings.default_region, "starting controllers");

    let synced = Arc::new(AtomicUsize::new(0));
    let wiring = Wiring {
        clock_moved,
        synced: synced.clone(),
    };
    let controllers = controllers(&options.namespaces, &watch_client, &ctx, &wiring, &stop_rx);
    if !options.stray_scan_interval.is_zero() {
        let scan = strays::run(
            ctx.clone(),
            options.namespaces.clone(),
            options.stray_scan_interval,
            stop_rx.clone(),
        );
        tokio::spawn(scan);
    }
    let expected_synced = controllers.len();
    let readiness_task = tokio::spawn({
        let readiness = readiness.clone();
        async move {
            while synced.load(Ordering::Relaxed) < expected_synced {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            readiness.set(true);
        }
    });
    let all = futures::future::join_all(controllers);
    // Leadership lost while running. (The elector ends on SIGTERM and drops its
    // sender: that is the graceful path below, not a loss.)
    let lost = async {
        if leading_rx.wait_for(|leading| !*leading).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = all => {}
        () = lost => {
            // Another replica may already act: stop at once, mid-reconcile if need be
            // (every FSx call is idempotent), and let Kubernetes restart this one.
            metrics.leader.set(0);
            tracing::error!("lost the leader Lease; exiting so that only the leader acts");
            std::process::exit(1);
        }
        () = async {
            stopped(stop_rx.clone()).await;
            tokio::time::sleep(options.shutdown_timeout).await;
        } => {
            tracing::warn!(timeout = ?options.shutdown_timeout, "reconciles still running at the shutdown timeout; stopping them");
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

/// The default of `--kube-max-in-flight`.
pub const DEFAULT_KUBE_MAX_IN_FLIGHT: u16 = 128;

/// Two clients on the same credentials, each over one HTTP/2 connection: one
/// for watches, one for every other call (timed out, at most `max_in_flight`).
async fn kube_clients(max_in_flight: u16) -> Result<(kube::Client, kube::Client), String> {
    let config = kube::Config::infer()
        .await
        .map_err(|err| format!("cannot find a Kubernetes configuration: {err}"))?;
    Ok((
        kube_client::build(&config, kube_client::Use::Watches)?,
        kube_client::build(&config, kube_client::Use::Calls { max_in_flight })?,
    ))
}

/// Where the Lease lives when leader election is on (`None` when it is off).
fn lease_namespace(options: &Options) -> Result<Option<String>, String> {
    if !options.leader_election {
        return Ok(None);
    }
    if options.lease_duration < Duration::from_secs(3) {
        return Err("--lease-duration must be at least 3s".into());
    }
    options
        .leader_election_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .map(Some)
        .ok_or_else(|| {
            "--leader-election needs --leader-election-namespace (or POD_NAMESPACE)".into()
        })
}

/// The context every controller shares: clients, clock, settings, metrics and
/// the notifier; with the channel that ticks when the test clock moves.
async fn context(
    options: &Options,
    client: kube::Client,
    metrics: Arc<Metrics>,
) -> Result<(Arc<Context<Fsx>>, Option<watch::Receiver<()>>), String> {
    // The default for every AWS client built from it: SNS, and STS and the other
    // credential providers of the chain (IRSA, Pod Identity). FSx sets its own.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_mins(2))
        .build();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    let default_region = options
        .region
        .clone()
        .or_else(|| sdk.region().map(ToString::to_string));
    let notifier = Notifier::new(
        sdk.clone(),
        options.sns_endpoint_url.clone(),
        metrics.clone(),
    );
    let fsx = BatchedFsx::new(MeteredFsx::new(
        AwsFsx::new(
            sdk,
            AwsFsxConfig {
                endpoint_url: options.fsx_endpoint_url.clone(),
                sts_endpoint_url: options.sts_endpoint_url.clone(),
                max_in_flight: usize::from(options.aws_max_in_flight),
                requests_per_second: (options.aws_requests_per_second > 0.0)
                    .then_some(options.aws_requests_per_second),
                burst: options.aws_burst,
                ..AwsFsxConfig::default()
            },
        ),
        metrics.clone(),
    ));
    let (clock, clock_moved) = match &options.test_clock_offset_file {
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
        poll_interval: options.poll_interval,
        retry_interval: options.retry_interval,
        copy_slots_per_region: options.copy_slots_per_region as usize,
        max_concurrent_reconciles: options.max_concurrent_reconciles,
        reconcile_timeout: options.reconcile_timeout,
        deletion_brake: Brake {
            max_deletions: options.deletion_brake_max,
            max_percent: options.deletion_brake_percent,
        },
        cluster_id: identity::resolve(&client, options.cluster_id.as_deref()).await?,
    };
    let ctx = Context::new(client, fsx, clock, settings, metrics, Some(notifier));
    Ok((ctx, clock_moved))
}

fn elector(options: &Options, client: kube::Client, namespace: String) -> Elector {
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
        format!(
            "{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_millisecond()
        )
    });
    Elector::new(
        client,
        LeaseConfig {
            namespace,
            name: options.lease_name.clone(),
            identity,
            duration: options.lease_duration,
            renew_every: options.lease_duration / 3,
        },
    )
}

/// One schedule and one copy controller per watched namespace (or one pair for
/// all namespaces); each ends when `stop` fires.
fn controllers(
    namespaces: &[String],
    client: &kube::Client,
    ctx: &Arc<Context<Fsx>>,
    wiring: &Wiring,
    stop: &watch::Receiver<bool>,
) -> Vec<BoxFuture<'static, ()>> {
    let watched: Vec<Option<&String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(Some).collect()
    };
    let shared = CopyShared::new(ctx.settings.copy_slots_per_region);
    let api = |namespace: Option<&String>| match namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let mut controllers = Vec::new();
    for namespace in watched {
        let (schedules, copies): (Api<Lenient<FsxBackupSchedule>>, Api<Lenient<FsxBackupCopy>>) =
            api(namespace);
        // The schedule controller's watch tells the copy controller which
        // schedules changed.
        let (tell_copies, told) = tokio::sync::mpsc::unbounded_channel();
        controllers.push(
            controller::schedule::run(
                schedules,
                ctx.clone(),
                Some(tell_copies),
                wiring.clone(),
                stopped(stop.clone()),
            )
            .boxed(),
        );
        controllers.push(
            controller::copy::run(
                copies,
                told,
                namespace.cloned(),
                ctx.clone(),
                shared.clone(),
                wiring.clone(),
                stopped(stop.clone()),
            )
            .boxed(),
        );
    }
    controllers
}

/// Resolves once `stop` is set.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
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
