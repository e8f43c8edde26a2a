//! `kubectl fsxbackup …`: the kubectl plugin (put this binary on the PATH).
//! It uses the user's kubeconfig and, for `plan` and `backups`, their AWS
//! credentials; every decision comes from the operator's library.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fsx_backup_operator::controller::RUN_NOW_ANNOTATION;
use fsx_backup_operator::controller::lenient::Lenient;
use fsx_backup_operator::crd::common::RecoveryPoint;
use fsx_backup_operator::crd::{FsxBackupCopy, FsxBackupSchedule};
use fsx_backup_operator::preview::{self, PlanArgs};
use fsx_backup_operator::strays;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-fsxbackup",
    bin_name = "kubectl fsxbackup",
    about = "FSx backups managed by fsx-backup-operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every schedule and copy across namespaces: health, next run, last result, RPO.
    Status,
    /// Take one extra backup of every target of a schedule now.
    RunNow {
        name: String,
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
    },
    /// What a schedule's or copy's retention would delete and keep, and what it
    /// makes next (`--name [--kind copy]` or `-f FILE`).
    Plan(Box<PlanArgs>),
    /// The FSx backups a schedule (or copies a copy, `--kind copy`) manages,
    /// with what keeps them (`keptBy`, `expiresAt`).
    Backups(Box<PlanArgs>),
    /// This cluster's backups whose owner object no longer exists: strays, and
    /// those a re-created object will adopt. Changes nothing.
    Orphans(Box<strays::OrphanArgs>),
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Status => status().await,
        Command::RunNow { name, namespace } => run_now(&name, &namespace).await,
        Command::Plan(args) => preview::run(*args).await,
        Command::Backups(args) => backups(*args).await,
        Command::Orphans(args) => strays::report(*args).await,
    };
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("kubectl fsxbackup: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn client() -> Result<Client, String> {
    Client::try_default()
        .await
        .map_err(|err| format!("cannot reach the cluster (kubeconfig): {err}"))
}

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// `Ready` and, when it is not `True`, the reason that says why.
fn health(conditions: &[Condition]) -> (String, String) {
    let ready = condition(conditions, "Ready");
    (
        ready.map_or_else(|| "Unknown".to_owned(), |c| c.status.clone()),
        ready.map_or_else(String::new, |c| c.reason.clone()),
    )
}

async fn status() -> Result<String, String> {
    let client = client().await?;
    let listed = |err: kube::Error| format!("cannot list: {err}");
    // Read leniently, as the operator does: one malformed object is shown as
    // such, never a reason to show nothing.
    let schedules = Api::<Lenient<FsxBackupSchedule>>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(listed)?;
    let copies = Api::<Lenient<FsxBackupCopy>>::all(client)
        .list(&ListParams::default())
        .await
        .map_err(listed)?;
    let mut out = format!(
        "{:<10} {:<20} {:<24} {:<6} {:<24} {:<22} {:<11} {:<22} {}\n",
        "KIND",
        "NAMESPACE",
        "NAME",
        "READY",
        "REASON",
        "NEXT RUN",
        "LAST RESULT",
        "RPO",
        "LAST BACKUP"
    );
    for watched in &schedules.items {
        let Some(s) = watched.read() else {
            unreadable(&mut out, "schedule", watched);
            continue;
        };
        let status = s.status.clone().unwrap_or_default();
        let (ready, reason) = health(&status.conditions);
        let next = status
            .next_schedule_time
            .map_or_else(|| "-".to_owned(), |t| t.0.to_string());
        let last = status
            .targets
            .iter()
            .filter_map(|t| t.last_backup.as_ref())
            .map(|b| format!("{} {}", b.id, b.lifecycle))
            .next()
            .unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(
            out,
            "{:<10} {:<20} {:<24} {:<6} {:<24} {:<22} {:<11} {:<22} {last}",
            "schedule",
            s.namespace().unwrap_or_default(),
            s.name_any(),
            ready,
            reason,
            next,
            status.last_run_result.as_deref().unwrap_or("-"),
            rpo(&status.recovery_points),
        );
    }
    for watched in &copies.items {
        let Some(c) = watched.read() else {
            unreadable(&mut out, "copy", watched);
            continue;
        };
        let status = c.status.clone().unwrap_or_default();
        let (ready, reason) = health(&status.conditions);
        let last = status.copies.first().map_or_else(
            || "-".to_owned(),
            |e| format!("{} {}", e.source_backup_id, e.lifecycle),
        );
        let _ = writeln!(
            out,
            "{:<10} {:<20} {:<24} {:<6} {:<24} {:<22} {:<11} {:<22} {last}",
            "copy",
            c.namespace().unwrap_or_default(),
            c.name_any(),
            ready,
            reason,
            "-",
            status.last_run_result.as_deref().unwrap_or("-"),
            rpo(&status.recovery_points),
        );
    }
    if schedules.items.is_empty() && copies.items.is_empty() {
        out.push_str("no FsxBackupSchedule or FsxBackupCopy in the cluster\n");
    }
    Ok(out)
}

/// `BREACHED`, or when the RPO breaches first without a newer backup, or `-`.
fn rpo(points: &[RecoveryPoint]) -> String {
    let now = jiff::Timestamp::now();
    if points
        .iter()
        .any(|p| p.breached == Some(true) || p.breach_time.as_ref().is_some_and(|t| t.0 <= now))
    {
        return "BREACHED".to_owned();
    }
    points
        .iter()
        .filter_map(|p| p.breach_time.as_ref().map(|t| t.0))
        .min()
        .map_or_else(
            || "-".to_owned(),
            |t| format!("ok until {}", t.strftime("%Y-%m-%dT%H:%MZ")),
        )
}

/// A row for an object that cannot be read as its kind (see the operator's `Lenient`).
fn unreadable<K>(out: &mut String, kind: &str, object: &Lenient<K>)
where
    K: kube::Resource<DynamicType = ()>,
{
    let _ = writeln!(
        out,
        "{kind:<10} {:<20} {:<24} {:<6} {:<24} {:<22} {:<11} {:<22} -",
        object.namespace().unwrap_or_default(),
        object.name_any(),
        "False",
        "Unreadable",
        "-",
        "-",
        "-"
    );
}

async fn run_now(name: &str, namespace: &str) -> Result<String, String> {
    let api: Api<FsxBackupSchedule> = Api::namespaced(client().await?, namespace);
    api.get_opt(name)
        .await
        .map_err(|err| format!("cannot read FsxBackupSchedule {namespace}/{name}: {err}"))?
        .ok_or_else(|| format!("FsxBackupSchedule {namespace}/{name} not found"))?;
    let nonce = jiff::Timestamp::now().as_millisecond().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: nonce}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|err| format!("cannot annotate {namespace}/{name}: {err}"))?;
    Ok(format!(
        "run-now {nonce} requested for FsxBackupSchedule {namespace}/{name}; `kubectl get fbs {name} -n {namespace} -o jsonpath='{{.status.lastRunNow}}'` shows it once done"
    ))
}

/// The schedule's backups as its retention sees them now: `plan` of the live object.
async fn backups(args: PlanArgs) -> Result<String, String> {
    if args.file.is_some() {
        return Err("backups takes the object's name, not a file".into());
    }
    preview::run(args).await
}
