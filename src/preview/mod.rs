//! `fsx-backup-operator plan`: what a schedule's or copy's retention would
//! delete, keep (and why) and adopt, and what it would make next (a schedule's
//! next run, a copy's next copies), read from live FSx, changing nothing.
//! The object comes from the cluster or from a file (the one in a pull
//! request); the decisions are the controllers' own (`ValidSchedule::retention_plan`,
//! the copy planner's `Work`, adoption, the deletion brake), not a re-implementation.

use std::time::Duration;

use jiff::Timestamp;
use kube::Client;
use kube::api::Api;
use serde::Serialize;

use crate::accounts::Accounts;
use crate::adoption;
use crate::controller::{Brake, ObjectKey};
use crate::crd::common::Adoption;
use crate::crd::{FsxBackupCopy, FsxBackupSchedule};
use crate::fsx::{Backup, Place};
use crate::ownership::Owner;
use crate::retention::{Plan, Verdict};

mod copy;
mod schedule;

pub use copy::copy;
pub use schedule::schedule;

/// What `plan` reports for one schedule or copy.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// `FsxBackupSchedule` or `FsxBackupCopy`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Whether the object exists in the cluster (else it owns no backups yet).
    pub live: bool,
    /// Schedules: when the next backups are made (`None`: suspended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run: Option<Timestamp>,
    /// Copies: the source backups it would copy next, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copy_next: Vec<String>,
    /// Per target (schedules) or destination (copies): retention's verdicts.
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

impl TargetPreview {
    /// The verdicts of `plan` for `id`, with what adoption and the brake say.
    fn of(id: String, adopt: Vec<String>, plan: Plan, held_by_brake: Option<String>) -> Self {
        let mut preview = Self {
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
        preview
    }
}

/// UID standing in for an object not created yet: it would adopt the orphans
/// of its name like any new object.
const NEW_OBJECT_UID: &str = "(new object)";

/// The owner `object` would be: the live object's UID, else a new object's.
fn owner_of<K: kube::Resource>(object: &K, live_uid: Option<String>, cluster: &str) -> Owner {
    Owner {
        uid: live_uid.unwrap_or_else(|| NEW_OBJECT_UID.to_owned()),
        ..Owner::of(object, cluster)
    }
}

/// The generation `object` has once applied: the live one's, one more if the
/// spec changes; 1 for a new object. The brake judges that generation.
fn generation_after_apply(live: Option<(Option<i64>, bool)>) -> Option<i64> {
    match live {
        Some((generation, changed)) => generation.map(|g| g + i64::from(changed)),
        None => Some(1),
    }
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
            "{} {}/{}{}",
            self.kind,
            self.namespace,
            self.name,
            if self.live {
                ""
            } else {
                " (not in the cluster: it owns no backups yet)"
            }
        );
        if self.kind == crate::controller::copy::plan::KIND {
            let next = if self.copy_next.is_empty() {
                "nothing".to_owned()
            } else {
                self.copy_next.join(", ")
            };
            let _ = writeln!(out, "copies next: {next}");
        } else {
            match self.next_run {
                Some(at) => {
                    let _ = writeln!(out, "next run: {at}");
                }
                None => out.push_str("next run: none (suspended)\n"),
            }
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
    /// A YAML or JSON manifest of an `FsxBackupSchedule` or an `FsxBackupCopy`
    /// (e.g. the one in a pull request); its `kind` says which.
    #[arg(
        long,
        short = 'f',
        conflicts_with = "name",
        required_unless_present = "name"
    )]
    pub file: Option<std::path::PathBuf>,
    /// An object in the cluster, as it is now (of `--kind`).
    #[arg(long)]
    pub name: Option<String>,
    /// The kind of `--name`.
    #[arg(long, default_value = "schedule", value_parser = ["schedule", "copy"])]
    pub kind: String,
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
    let object = match (&args.file, &args.name) {
        (Some(path), _) => read_manifest(path, &args.namespace)?,
        (None, Some(name)) => read_live(&client, &args.kind, name, &args.namespace).await?,
        (None, None) => return Err("give --file or --name".into()),
    };
    let cluster = crate::identity::resolve(&client, args.cluster_id.as_deref()).await?;
    let (fsx, region) = user_fsx(args.fsx_endpoint_url.clone(), args.region.clone()).await;
    let (region, now) = (region.as_deref(), Timestamp::now());
    let preview = tokio::time::timeout(PREVIEW_TIMEOUT, async {
        match &object {
            Object::Schedule(s) => {
                schedule(client, &fsx, s, region, Brake::default(), &cluster, now).await
            }
            Object::Copy(c) => copy(client, &fsx, c, region, Brake::default(), &cluster, now).await,
        }
    })
    .await
    .map_err(|_| format!("FSx or the cluster did not answer within {PREVIEW_TIMEOUT:?}"))??;
    if args.output == "json" {
        serde_json::to_string_pretty(&preview).map_err(|err| err.to_string())
    } else {
        Ok(preview.to_text())
    }
}

/// The object a plan is of.
enum Object {
    Schedule(Box<FsxBackupSchedule>),
    Copy(Box<FsxBackupCopy>),
}

/// A manifest of either kind, told apart by its `kind`; its namespace, or `namespace`.
fn read_manifest(path: &std::path::Path, namespace: &str) -> Result<Object, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
    let what =
        |err: serde_saphyr::Error, kind: &str| format!("{}: not an {kind}: {err}", path.display());
    let kind: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|err| what(err, "object"))?;
    let mut object = match kind["kind"].as_str() {
        Some("FsxBackupCopy") => {
            Object::Copy(serde_saphyr::from_str(&text).map_err(|err| what(err, "FsxBackupCopy"))?)
        }
        _ => Object::Schedule(
            serde_saphyr::from_str(&text).map_err(|err| what(err, "FsxBackupSchedule"))?,
        ),
    };
    let meta = match &mut object {
        Object::Schedule(s) => &mut s.metadata,
        Object::Copy(c) => &mut c.metadata,
    };
    meta.namespace.get_or_insert_with(|| namespace.to_owned());
    Ok(object)
}

/// The object `name` of `kind` (`schedule` or `copy`) as it is in the cluster.
async fn read_live(
    client: &Client,
    kind: &str,
    name: &str,
    namespace: &str,
) -> Result<Object, String> {
    let missing = |kind: &str| format!("{kind} {namespace}/{name} not found");
    if kind == "copy" {
        read::<FsxBackupCopy>(client, namespace, name)
            .await?
            .map(|c| Object::Copy(Box::new(c)))
            .ok_or_else(|| missing("FsxBackupCopy"))
    } else {
        read::<FsxBackupSchedule>(client, namespace, name)
            .await?
            .map(|s| Object::Schedule(Box::new(s)))
            .ok_or_else(|| missing("FsxBackupSchedule"))
    }
}

/// Where the object calls FSx in `region`, as the operator would decide: the
/// role of its `spec.account` (assumed with the user's own credentials).
async fn place<K: kube::Resource<DynamicType = ()>>(
    client: &Client,
    object: &K,
    account: Option<&str>,
    region: &str,
) -> Result<Place, String> {
    let mut key = ObjectKey::of(object);
    if key.namespace.is_empty() {
        "default".clone_into(&mut key.namespace);
    }
    let role = Accounts::new(client.clone())
        .role_for(account, &key)
        .await
        .map_err(|err| format!("cannot read FsxBackupAccount: {err}"))?
        .map_err(|refused| refused.to_string())?;
    Ok(Place::new(region, role))
}

/// `namespace/name` of kind `K` as it is in the cluster, if it exists.
async fn read<K>(client: &Client, namespace: &str, name: &str) -> Result<Option<K>, String>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|err| format!("cannot read {} {namespace}/{name}: {err}", K::kind(&())))
}
