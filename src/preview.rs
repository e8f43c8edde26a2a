//! `fsx-backup-operator plan`: what a schedule's retention would delete and
//! keep (and why), and when it runs next, read from live FSx, changing nothing.
//! The object comes from the cluster or from a file (the one in a pull
//! request); the decisions are the controller's own
//! (`ValidSchedule::retention_plan`, the deletion brake), not a re-implementation.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::adoption;
use crate::controller::Brake;
use crate::controller::brake::{self, BrakeCheck};
use crate::controller::schedule::plan::{KIND, select_file_systems};
use crate::crd::FsxBackupSchedule;
use crate::crd::common::Adoption;
use crate::fsx::{Backup, BackupTarget, FsxApi};
use crate::ownership::Owner;
use crate::retention::Verdict;
use crate::validate::Targets;
use crate::validate::schedule::validate;

/// What `plan` reports for one schedule.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub namespace: String,
    pub name: String,
    /// Whether the object exists in the cluster (else it owns no backups yet).
    pub live: bool,
    pub next_run: Option<Timestamp>,
    pub targets: Vec<TargetPreview>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetPreview {
    pub id: String,
    /// Orphans of an earlier object with this name that would be adopted first
    /// (they appear in `keep`/`delete` as this object's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adopt: Vec<String>,
    pub keep: Vec<Kept>,
    pub delete: Vec<Deleted>,
    /// Set when the deletion brake would hold these deletions: what it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by_brake: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    pub backup_id: String,
    pub created: Option<Timestamp>,
    pub lifecycle: String,
    pub kept_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    pub backup_id: String,
    pub created: Option<Timestamp>,
    pub lifecycle: String,
    pub reason: String,
}

/// UID standing in for an object not created yet: it would adopt the orphans
/// of its name like any new object.
const NEW_OBJECT_UID: &str = "(new object)";

/// Plans `object` (as given: from a file, or as read from the cluster) against
/// live FSx, as seen by the operator of cluster identity `cluster`. Backups
/// are owned by the live object of the same namespace and name, if there is
/// one; the orphans it (or a new object) would adopt count as its own.
pub async fn schedule<F: FsxApi>(
    client: Client,
    fsx: &F,
    object: &FsxBackupSchedule,
    default_region: Option<&str>,
    brake_defaults: Brake,
    cluster: &str,
    now: Timestamp,
) -> Result<Preview, String> {
    let namespace = object.namespace().unwrap_or_else(|| "default".into());
    let name = object.name_any();
    let api: Api<FsxBackupSchedule> = Api::namespaced(client, &namespace);
    let live = api
        .get_opt(&name)
        .await
        .map_err(|err| format!("cannot read FsxBackupSchedule {namespace}/{name}: {err}"))?;
    let valid = validate(object, default_region, now).map_err(|err| format!("invalid: {err}"))?;
    let owner = Owner {
        uid: live
            .as_ref()
            .and_then(ResourceExt::uid)
            .unwrap_or_else(|| NEW_OBJECT_UID.to_owned()),
        ..Owner::of(object, cluster)
    };
    let ids: Vec<String> = match &valid.targets {
        Targets::Ids(ids) => ids.iter().map(|t| t.id().to_owned()).collect(),
        Targets::Selector { .. } => {
            let file_systems = fsx
                .describe_file_systems(&valid.region)
                .await
                .map_err(|err| err.to_string())?;
            select_file_systems(&valid.targets, file_systems)
                .into_iter()
                .filter(|s| s.problem.is_none())
                .map(|s| s.id)
                .collect()
        }
    };
    // Applying a changed spec makes a new generation: the brake judges it as one,
    // with the approval the object (the manifest, or the live one) carries.
    let applied = live
        .as_ref()
        .and_then(|l| l.status.as_ref())
        .and_then(|s| s.retention_generation);
    let generation = match &live {
        Some(live) => live
            .metadata
            .generation
            .map(|g| g + i64::from(live.spec != object.spec)),
        None => Some(1),
    };
    let check = BrakeCheck::of(brake_defaults, valid.deletion_brake.as_ref(), object);
    let mut targets = Vec::new();
    for id in ids {
        let mut backups = fsx
            .describe_backups_of(&valid.region, &BackupTarget::from_id(&id))
            .await
            .map_err(|err| format!("{id}: {err}"))?;
        let adopt = simulate_adoption(&mut backups, &owner, KIND, valid.adoption);
        let plan = valid.retention_plan(now, &backups, &owner.uid);
        // As the controller does: adopted backups are braked like a new policy.
        let applied = applied.filter(|_| adopt.is_empty());
        let held_by_brake = brake::held(&plan, &id, generation, applied, &check);
        let mut preview = TargetPreview {
            id,
            adopt,
            keep: Vec::new(),
            delete: Vec::new(),
            held_by_brake,
        };
        for decision in plan.decisions {
            let lifecycle = decision.lifecycle.as_str().to_owned();
            match decision.verdict {
                Verdict::Keep {
                    kept_by,
                    expires_at,
                } => preview.keep.push(Kept {
                    backup_id: decision.backup_id,
                    created: decision.created_at,
                    lifecycle,
                    kept_by: kept_by.as_str().to_owned(),
                    expires_at,
                }),
                Verdict::Delete { reason } => preview.delete.push(Deleted {
                    backup_id: decision.backup_id,
                    created: decision.created_at,
                    lifecycle,
                    reason: reason.as_str().to_owned(),
                }),
            }
        }
        targets.push(preview);
    }
    let offset = SignedDuration::try_from(valid.offset).unwrap_or_default();
    let next_run = now
        .checked_sub(offset)
        .ok()
        .and_then(|t| valid.schedule.next_after(t))
        .and_then(|t| t.checked_add(offset).ok())
        .filter(|_| !valid.suspended);
    Ok(Preview {
        namespace,
        name,
        live: live.is_some(),
        next_run,
        targets,
    })
}

/// The controller's re-tagging applied to `backups` in memory only; returns
/// the ids it would adopt.
fn simulate_adoption(
    backups: &mut [Backup],
    owner: &Owner,
    kind: &str,
    policy: Adoption,
) -> Vec<String> {
    let mut adopted = Vec::new();
    for retag in adoption::retags(backups, owner, kind, policy) {
        adoption::apply(backups, &retag);
        if retag.adopted_from.is_some() {
            adopted.push(retag.backup_id);
        }
    }
    adopted
}

impl Preview {
    /// The human-readable form: per target, what is deleted and kept, and why.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "FsxBackupSchedule {}/{}{}",
            self.namespace,
            self.name,
            if self.live {
                ""
            } else {
                " (not in the cluster: it owns no backups yet)"
            }
        );
        match self.next_run {
            Some(at) => {
                let _ = writeln!(out, "next run: {at}");
            }
            None => out.push_str("next run: none (suspended)\n"),
        }
        for target in &self.targets {
            let _ = writeln!(
                out,
                "\n{}: delete {}, keep {}",
                target.id,
                target.delete.len(),
                target.keep.len()
            );
            if let Some(held) = &target.held_by_brake {
                let _ = writeln!(out, "  HELD: {held}");
            }
            for id in &target.adopt {
                let _ = writeln!(
                    out,
                    "  adopt  {id} (an orphan of this name: counted below as this object's)"
                );
            }
            for d in &target.delete {
                let _ = writeln!(
                    out,
                    "  delete {} ({}, {})",
                    d.backup_id,
                    when(d.created),
                    d.reason
                );
            }
            for k in &target.keep {
                let expiry = k
                    .expires_at
                    .map(|e| format!(", until {e}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  keep   {} ({}, {}{expiry})",
                    k.backup_id,
                    when(k.created),
                    k.kept_by
                );
            }
        }
        out
    }
}

fn when(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "created ?".to_owned(), |t| format!("created {t}"))
}

/// FSx with the user's AWS credentials, and the Region to use: `region`, else
/// the SDK's (`AWS_REGION`, the profile).
pub async fn user_fsx(
    endpoint_url: Option<String>,
    region: Option<String>,
) -> (crate::fsx::AwsFsx, Option<String>) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let region = region.or_else(|| sdk.region().map(ToString::to_string));
    let fsx = crate::fsx::AwsFsx::new(
        sdk,
        crate::fsx::AwsFsxConfig {
            endpoint_url,
            ..crate::fsx::AwsFsxConfig::default()
        },
    );
    (fsx, region)
}

/// How long FSx may take for the whole preview before it gives up.
pub const PREVIEW_TIMEOUT: Duration = Duration::from_mins(2);

/// `fsx-backup-operator plan`: the command line.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// A YAML or JSON manifest of an `FsxBackupSchedule` (e.g. the one in a pull request).
    #[arg(
        long,
        short = 'f',
        conflicts_with = "name",
        required_unless_present = "name"
    )]
    pub file: Option<std::path::PathBuf>,
    /// An `FsxBackupSchedule` in the cluster, as it is now.
    #[arg(long)]
    pub name: Option<String>,
    /// Namespace of `--name`, or of a manifest that names none.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Region for objects whose spec names none (default: the AWS SDK's Region).
    #[arg(long, env = "FSXBO_DEFAULT_REGION")]
    pub region: Option<String>,
    /// FSx endpoint override (the SDK also reads `AWS_ENDPOINT_URL_FSX`).
    #[arg(long, env = "FSXBO_FSX_ENDPOINT_URL")]
    pub fsx_endpoint_url: Option<String>,
    /// The operator's `--cluster-id` (chart value `clusterId`), for the orphans
    /// it would adopt; default: the kube-system namespace's UID, as the operator's.
    #[arg(long, env = "FSXBO_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// `text` for people, `json` for a CI job (e.g. to comment on a pull request).
    #[arg(long, short = 'o', default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

/// Runs `plan` with the user's kubeconfig and AWS credentials; returns what to print.
pub async fn run(args: PlanArgs) -> Result<String, String> {
    let client = Client::try_default()
        .await
        .map_err(|err| format!("cannot reach the cluster (kubeconfig): {err}"))?;
    let object: FsxBackupSchedule = match (&args.file, &args.name) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("{}: {err}", path.display()))?;
            let mut object: FsxBackupSchedule = serde_saphyr::from_str(&text)
                .map_err(|err| format!("{}: not an FsxBackupSchedule: {err}", path.display()))?;
            if object.metadata.namespace.is_none() {
                object.metadata.namespace = Some(args.namespace.clone());
            }
            object
        }
        (None, Some(name)) => Api::<FsxBackupSchedule>::namespaced(client.clone(), &args.namespace)
            .get_opt(name)
            .await
            .map_err(|err| {
                format!(
                    "cannot read FsxBackupSchedule {}/{name}: {err}",
                    args.namespace
                )
            })?
            .ok_or_else(|| format!("FsxBackupSchedule {}/{name} not found", args.namespace))?,
        (None, None) => return Err("give --file or --name".into()),
    };
    let cluster = crate::identity::resolve(&client, args.cluster_id.as_deref()).await?;
    let (fsx, region) = user_fsx(args.fsx_endpoint_url.clone(), args.region.clone()).await;
    let preview = tokio::time::timeout(
        PREVIEW_TIMEOUT,
        schedule(
            client,
            &fsx,
            &object,
            region.as_deref(),
            Brake::default(),
            &cluster,
            Timestamp::now(),
        ),
    )
    .await
    .map_err(|_| format!("FSx or the cluster did not answer within {PREVIEW_TIMEOUT:?}"))??;
    if args.output == "json" {
        serde_json::to_string_pretty(&preview).map_err(|err| err.to_string())
    } else {
        Ok(preview.to_text())
    }
}
