//! Strays: backups and copies this cluster made whose owner object no longer
//! exists (deleted with `Retain`, or lost in a cluster rebuild). They are
//! reported, never deleted: the `fsxbackup_stray_backups` gauge per owner
//! namespace (a periodic scan by the leader) and `kubectl fsxbackup orphans`.
//!
//! [`find`] is the one classification both use. A stray an object of the
//! same name would adopt is [`Orphan::Adoptable`] until it does; backups
//! without a cluster tag (made before identities) whose owner is gone are
//! [`Orphan::Untagged`]: listed, not counted, since another cluster with the
//! same names may have made them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use crate::accounts::Accounts;
use crate::adoption::is_operators;
use crate::controller::Context;
use crate::controller::ObjectKey;
use crate::controller::lenient::Lenient;
use crate::crd::common::Adoption;
use crate::crd::{FsxBackupCopy, FsxBackupSchedule};
use crate::fsx::{Backup, FsxApi, Place};
use crate::metrics::NamespaceLabels;
use crate::ownership::{CLUSTER_KEY, OWNER_KEY, OWNER_UID_KEY};

/// The objects that exist: their UIDs, and per `namespace/Kind/name` whether
/// it adopts its orphans.
#[derive(Debug, Default)]
pub struct Live {
    pub uids: HashSet<String>,
    pub adopters: HashMap<String, Adoption>,
    /// The (`spec.account`, Region) pairs the objects use (source and
    /// destination), each with one object using it, whose role the scan borrows.
    pub scopes: BTreeMap<(Option<String>, String), ObjectKey>,
}

impl Live {
    /// Records `object` of `kind`; an unreadable one still owns its backups.
    pub fn add<K: Resource<DynamicType = ()>>(
        &mut self,
        object: &Lenient<K>,
        adoption: Option<Adoption>,
        account: Option<String>,
        region: Option<String>,
    ) {
        if let Some(uid) = object.uid() {
            self.uids.insert(uid);
        }
        if let Some(region) = region {
            self.scopes
                .entry((account, region))
                .or_insert_with(|| ObjectKey::of(object));
        }
        let label = format!(
            "{}/{}/{}",
            object.namespace().unwrap_or_default(),
            K::kind(&()),
            object.name_any()
        );
        self.adopters.insert(label, adoption.unwrap_or_default());
    }
}

/// Why a backup is an orphan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Orphan {
    /// This cluster's; nothing will adopt it.
    Stray,
    /// This cluster's; the object now bearing its owner's name adopts it at
    /// its next retention run.
    Adoptable,
    /// No cluster tag: made before identities, by this cluster or another.
    Untagged,
}

impl Orphan {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stray => "Stray",
            Self::Adoptable => "Adoptable",
            Self::Untagged => "Untagged",
        }
    }
}

/// One orphaned backup and what its tags say about its owner.
#[derive(Clone, Debug)]
pub struct Found<'a> {
    pub backup: &'a Backup,
    /// `namespace/Kind/name` of the object that made it.
    pub owner: String,
    pub owner_uid: String,
    pub orphan: Orphan,
}

impl Found<'_> {
    pub fn namespace(&self) -> &str {
        self.owner.split('/').next().unwrap_or_default()
    }
}

/// The operator's backups among `backups` whose owner is not `live`, made by
/// `cluster` or untagged; other clusters' backups are never anyone's orphans here.
pub fn find<'a>(backups: &'a [Backup], cluster: &str, live: &Live) -> Vec<Found<'a>> {
    let mut found: Vec<Found<'a>> = backups
        .iter()
        .filter(|b| is_operators(b))
        .filter_map(|backup| {
            let tag = |key: &str| backup.tags.get(key).cloned();
            let owner_uid = tag(OWNER_UID_KEY)?;
            if live.uids.contains(&owner_uid) {
                return None;
            }
            let owner = tag(OWNER_KEY).unwrap_or_default();
            let orphan = match tag(CLUSTER_KEY) {
                None => Orphan::Untagged,
                Some(c) if c == cluster => match live.adopters.get(&owner) {
                    Some(Adoption::Adopt) => Orphan::Adoptable,
                    _ => Orphan::Stray,
                },
                Some(_) => return None,
            };
            Some(Found {
                backup,
                owner,
                owner_uid,
                orphan,
            })
        })
        .collect();
    found.sort_by(|a, b| (&a.owner, &a.backup.id).cmp(&(&b.owner, &b.backup.id)));
    found.dedup_by(|a, b| a.backup.id == b.backup.id);
    found
}

/// This cluster's orphans per owner namespace (untagged ones are not counted).
pub fn per_namespace(found: &[Found<'_>]) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for f in found.iter().filter(|f| f.orphan != Orphan::Untagged) {
        *counts.entry(f.namespace().to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Every schedule and copy in `namespaces` (empty: all), leniently read.
pub async fn live(client: &kube::Client, namespaces: &[String]) -> Result<Live, kube::Error> {
    let mut live = Live::default();
    let scopes: Vec<Option<&String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(Some).collect()
    };
    for scope in scopes {
        let (schedules, copies): (Api<Lenient<FsxBackupSchedule>>, Api<Lenient<FsxBackupCopy>>) =
            match scope {
                Some(ns) => (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                ),
                None => (Api::all(client.clone()), Api::all(client.clone())),
            };
        for s in schedules.list(&ListParams::default()).await? {
            let spec = s.read().map(|s| &s.spec);
            live.add(
                &s,
                spec.and_then(|s| s.adoption),
                spec.and_then(|s| s.account.clone()),
                spec.and_then(|s| s.region.clone()),
            );
        }
        for c in copies.list(&ListParams::default()).await? {
            let spec = c.read().map(|c| &c.spec);
            live.add(
                &c,
                spec.and_then(|c| c.adoption),
                spec.and_then(|c| c.account.clone()),
                spec.map(|c| c.destination_region.clone()),
            );
        }
    }
    Ok(live)
}

/// Scans every `interval` (the first one interval after start) until `stop`:
/// lists the objects and the operator's backups in every Region they use, and
/// sets the stray gauge per namespace.
/// A failed scan keeps the last figures and is retried at the next interval.
pub async fn run<F: FsxApi>(
    ctx: Arc<Context<F>>,
    namespaces: Vec<String>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut reported: BTreeSet<String> = BTreeSet::new();
    loop {
        // First wait: the scan lists every object and backup, and should not
        // add to the start-up burst, when every object is reconciled at once.
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        match scan(&ctx, &namespaces).await {
            Ok(counts) => {
                let gauge = &ctx.metrics.stray_backups;
                for namespace in reported.iter().filter(|n| !counts.contains_key(*n)) {
                    gauge.get_or_create(&labels(namespace)).set(0);
                }
                for (namespace, count) in &counts {
                    gauge.get_or_create(&labels(namespace)).set(*count);
                }
                reported.extend(counts.into_keys());
            }
            Err(message) => {
                tracing::warn!(error = %message, "stray scan failed; retried at the next interval");
            }
        }
    }
}

/// The operator's backups per account and Region, and the objects that own
/// them. The objects are listed again after the backups (and both listings
/// count as live), so an object created meanwhile never makes its first backups
/// look stray; one deleted meanwhile is seen at the next scan. Accounts an
/// object may not use are not scanned. An account and Region that cannot be
/// listed (a role whose trust is broken) is set aside with why, and the others
/// are still scanned: one bad account must not hide every other one's strays.
pub async fn gather<F: FsxApi>(
    client: &kube::Client,
    accounts: &Accounts,
    fsx: &F,
    namespaces: &[String],
    extra_region: Option<String>,
) -> Result<Gathered, String> {
    let listed = |err: kube::Error| format!("cannot list schedules and copies: {err}");
    let before = live(client, namespaces).await.map_err(listed)?;
    let mut places: BTreeMap<(String, String), Place> = BTreeMap::new();
    if let Some(region) = extra_region {
        let own = Place::own(region);
        places.insert(own.key(), own);
    }
    for ((account, region), user) in &before.scopes {
        match accounts.role_for(account.as_deref(), user).await {
            Ok(Ok(role)) => {
                let place = Place::new(region, role);
                places.entry(place.key()).or_insert(place);
            }
            Ok(Err(refused)) => tracing::debug!(%refused, "not scanned"),
            Err(err) => return Err(format!("cannot read FsxBackupAccount: {err}")),
        }
    }
    let mut gathered = Gathered::default();
    for place in places.into_values() {
        match fsx.describe_user_backups(&place).await {
            Ok(found) => gathered.backups.push((place, found)),
            Err(err) => gathered.unscanned.push(format!("{place}: {err}")),
        }
    }
    gathered.live = live(client, namespaces).await.map_err(listed)?;
    gathered.live.uids.extend(before.uids);
    Ok(gathered)
}

/// What one stray scan read.
#[derive(Debug, Default)]
pub struct Gathered {
    /// The operator's backups per account and Region scanned.
    pub backups: Vec<(Place, Vec<Backup>)>,
    pub live: Live,
    /// Accounts and Regions that could not be listed, and why.
    pub unscanned: Vec<String>,
}

async fn scan<F: FsxApi>(
    ctx: &Context<F>,
    namespaces: &[String],
) -> Result<BTreeMap<String, i64>, String> {
    let Gathered {
        backups,
        live,
        unscanned,
    } = gather(
        &ctx.client,
        &ctx.accounts,
        &ctx.fsx,
        namespaces,
        ctx.settings.default_region.clone(),
    )
    .await?;
    for why in &unscanned {
        tracing::warn!(error = %why, "stray scan skipped an account and Region; the others are counted");
    }
    let backups: Vec<Backup> = backups.into_iter().flat_map(|(_, b)| b).collect();
    let found = find(&backups, &ctx.settings.cluster_id, &live);
    let mut counts = per_namespace(&found);
    if !namespaces.is_empty() {
        counts.retain(|namespace, _| namespaces.contains(namespace));
    }
    Ok(counts)
}

/// `kubectl fsxbackup orphans`: the command line.
#[derive(clap::Args, Debug)]
pub struct OrphanArgs {
    /// The operator's `--cluster-id` (chart value `clusterId`); default: the
    /// kube-system namespace's UID, the operator's own default.
    #[arg(long, env = "FSXBO_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Also scan this Region (the Regions the objects use and the SDK's are scanned).
    #[arg(long, env = "FSXBO_DEFAULT_REGION")]
    pub region: Option<String>,
    /// FSx endpoint override (the SDK also reads `AWS_ENDPOINT_URL_FSX`).
    #[arg(long, env = "FSXBO_FSX_ENDPOINT_URL")]
    pub fsx_endpoint_url: Option<String>,
}

/// Lists this cluster's orphaned backups (and untagged ones whose owner is
/// gone) with the user's kubeconfig and AWS credentials; returns what to print.
pub async fn report(args: OrphanArgs) -> Result<String, String> {
    use std::fmt::Write as _;
    let client = kube::Client::try_default()
        .await
        .map_err(|err| format!("cannot reach the cluster (kubeconfig): {err}"))?;
    let cluster = crate::identity::resolve(&client, args.cluster_id.as_deref()).await?;
    let (fsx, region) = crate::preview::user_fsx(args.fsx_endpoint_url, args.region).await;
    let accounts = Accounts::new(client.clone());
    let Gathered {
        backups: by_region,
        live,
        unscanned,
    } = gather(&client, &accounts, &fsx, &[], region).await?;
    if by_region.is_empty() && unscanned.is_empty() {
        return Err("no Region to scan: give --region or set AWS_REGION".into());
    }
    let mut out = format!(
        "{:<14} {:<16} {:<26} {:<11} {:<40} {:<38} {}\n",
        "ACCOUNT", "REGION", "BACKUP", "ORPHAN", "OWNER", "OWNER UID", "CREATED"
    );
    let (mut strays, mut untagged) = (0, 0);
    for (place, backups) in &by_region {
        for found in find(backups, &cluster, &live) {
            if found.orphan == Orphan::Untagged {
                untagged += 1;
            } else {
                strays += 1;
            }
            let created = found
                .backup
                .created_at
                .map_or_else(|| "-".to_owned(), |t| t.to_string());
            let _ = writeln!(
                out,
                "{:<14} {:<16} {:<26} {:<11} {:<40} {:<38} {created}",
                place.account(),
                place.region,
                found.backup.id,
                found.orphan.as_str(),
                found.owner,
                found.owner_uid,
            );
        }
    }
    let _ = writeln!(
        out,
        "{strays} orphaned backup(s) of cluster {cluster}, {untagged} without a cluster tag; \
         nothing deletes them (Adoptable: the object now bearing the owner's name adopts them)"
    );
    for why in &unscanned {
        let _ = writeln!(out, "NOT SCANNED (its orphans are not listed): {why}");
    }
    Ok(out)
}

fn labels(namespace: &str) -> NamespaceLabels {
    NamespaceLabels {
        namespace: namespace.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::fixtures;
    use crate::fsx::Lifecycle;
    use crate::ownership::ownership_tags;

    fn backup(id: &str, namespace: &str, name: &str, uid: &str, cluster: Option<&str>) -> Backup {
        let mut tags = ownership_tags("FsxBackupSchedule", namespace, name, uid);
        if let Some(cluster) = cluster {
            tags.insert(CLUSTER_KEY.into(), cluster.into());
        }
        Backup {
            tags,
            ..fixtures::backup(id, Lifecycle::Available, "2026-01-01T00:00:00Z")
        }
    }

    #[test]
    fn orphans_are_this_clusters_backups_of_objects_that_are_gone() {
        let mut live = Live::default();
        live.uids.insert("uid-live".into());
        live.adopters
            .insert("team-a/FsxBackupSchedule/nightly".into(), Adoption::Adopt);
        live.adopters
            .insert("team-b/FsxBackupSchedule/weekly".into(), Adoption::Never);
        let backups = vec![
            backup("b1", "team-a", "nightly", "uid-live", Some("prod")),
            backup("b2", "team-a", "nightly", "uid-gone", Some("prod")),
            backup("b3", "team-b", "weekly", "uid-gone2", Some("prod")),
            backup("b4", "team-b", "removed", "uid-gone3", Some("prod")),
            backup("b5", "team-a", "nightly", "uid-gone", Some("staging")),
            backup("b6", "team-c", "old", "uid-gone4", None),
            backup("b2", "team-a", "nightly", "uid-gone", Some("prod")),
        ];
        let found = find(&backups, "prod", &live);
        let seen: Vec<(&str, Orphan)> = found
            .iter()
            .map(|f| (f.backup.id.as_str(), f.orphan))
            .collect();
        assert_eq!(
            seen,
            [
                ("b2", Orphan::Adoptable),
                ("b4", Orphan::Stray),
                ("b3", Orphan::Stray),
                ("b6", Orphan::Untagged),
            ]
        );
        assert_eq!(
            per_namespace(&found),
            BTreeMap::from([("team-a".into(), 1), ("team-b".into(), 2)])
        );
    }
}
