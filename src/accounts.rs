//! Which AWS account an object acts in: its `spec.account` resolved to the role
//! of the `FsxBackupAccount` of that name, when that account allows the
//! object's namespace. The decision is pure ([`decide`]); [`Accounts`] reads
//! the accounts (a watched cache, started when first needed) and, only for
//! allow-lists with a label selector, the namespace's labels. The same cache
//! tells the controllers which account changed ([`Accounts::applied`]), so an
//! object looks again only once its reconcile would read the change.
//!
//! A refusal ([`Refused`]) needs a person (the platform team's allow-list, or
//! the object's spec): the object is `Stalled` and no AWS call is made for it.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use kube::ResourceExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::broadcast;

use crate::conditions::Reason;
use crate::controller::ObjectKey;
use crate::controller::watches::wait_synced;
use crate::crd::account::{AllowedNamespaces, FsxBackupAccount};
use crate::duration::parse_duration;
use crate::fsx::{MIN_SESSION, Role};
use crate::naming::stable_hash;

/// The session length when an account sets none (STS's default).
pub const DEFAULT_SESSION: Duration = Duration::from_hours(1);
/// STS's longest session.
pub const MAX_SESSION: Duration = Duration::from_hours(12);

/// Why an object may not act in the account it names: only a person can fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "FsxBackupAccount {account} does not exist: the platform team creates it (cluster-scoped) to let this namespace back up in that AWS account; nothing is backed up or deleted until then"
    )]
    NotFound { account: String },
    #[error(
        "FsxBackupAccount {account} does not allow namespace {namespace} (spec.allowedNamespaces): no AWS call is made for this object until the platform team allows it or spec.account changes"
    )]
    NotAllowed { account: String, namespace: String },
    #[error("FsxBackupAccount {account} cannot be used: {problem}")]
    Unusable { account: String, problem: String },
    #[error(
        "FSx copies a backup only within one AWS account: schedule {schedule} backs up in {schedule_account}, this copy would copy in {copy_account}. Set spec.account to the schedule's account"
    )]
    CrossAccountCopy {
        schedule: String,
        schedule_account: String,
        copy_account: String,
    },
}

impl Refused {
    /// The `Stalled` reason it is reported with.
    pub fn reason(&self) -> Reason {
        match self {
            Self::NotFound { .. } => Reason::AccountNotFound,
            Self::NotAllowed { .. } | Self::Unusable { .. } => Reason::AccountNotAllowed,
            Self::CrossAccountCopy { .. } => Reason::CrossAccountCopy,
        }
    }
}

/// What an account names, for messages: `FsxBackupAccount x (account 2222…)`,
/// or the operator's own account.
pub fn describe(role: Option<&Role>) -> String {
    role.map_or_else(
        || "the operator's own account".to_owned(),
        |r| {
            format!(
                "FsxBackupAccount {} (account {})",
                r.account_name, r.account_id
            )
        },
    )
}

/// Pure: the role `account` gives the object `key`, whose namespace has `labels`.
pub fn decide(
    account: &FsxBackupAccount,
    key: &ObjectKey,
    labels: &BTreeMap<String, String>,
) -> Result<Role, Refused> {
    let name = account.name_any();
    if !allows(&account.spec.allowed_namespaces, &key.namespace, labels) {
        return Err(Refused::NotAllowed {
            account: name,
            namespace: key.namespace.clone(),
        });
    }
    let unusable = |problem: String| Refused::Unusable {
        account: name.clone(),
        problem,
    };
    let account_id = account_id(&account.spec.role_arn).ok_or_else(|| {
        unusable(format!(
            "roleArn {} names no account",
            account.spec.role_arn
        ))
    })?;
    let session_duration = match &account.spec.session_duration {
        None => DEFAULT_SESSION,
        Some(text) => parse_duration(text)
            .ok()
            .filter(|d| (MIN_SESSION..=MAX_SESSION).contains(d))
            .ok_or_else(|| {
                unusable(format!(
                    "sessionDuration {text} must be between 15m and 12h"
                ))
            })?,
    };
    Ok(Role {
        account_name: name.clone(),
        arn: account.spec.role_arn.clone(),
        account_id: account_id.to_owned(),
        external_id: account.spec.external_id.clone(),
        session_name: session_name(key),
        session_duration,
    })
}

/// Whether `allowed` lets `namespace` (with `labels`) in: by name, or by selector.
pub fn allows(
    allowed: &AllowedNamespaces,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    allowed.names.iter().any(|n| n == namespace)
        || allowed
            .selector
            .as_ref()
            .is_some_and(|selector| selects(selector, labels))
}

/// A label selector's meaning: every `matchLabels` pair and every expression
/// hold. An empty selector selects every namespace, as in Kubernetes.
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let pairs = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // An operator Kubernetes does not know selects nothing.
            _ => false,
        }
    });
    pairs && expressions
}

/// The 12-digit account id of a role ARN (`arn:aws:iam::222222222222:role/x`).
pub fn account_id(role_arn: &str) -> Option<&str> {
    let id = role_arn.split(':').nth(4)?;
    (id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// `RoleSessionName` (2–64 of `[\w+=,.@-]`): `namespace.name`, which `CloudTrail`
/// shows for every call the object makes; cut with a hash when too long.
pub fn session_name(key: &ObjectKey) -> String {
    let full = format!("{}.{}", key.namespace, key.name);
    if full.len() <= 64 {
        return full;
    }
    let hash = stable_hash(&[&key.namespace, &key.name]);
    format!("{}-{:08x}", &full[..55], hash & 0xffff_ffff)
}

/// The accounts of the cluster, read through a watched cache.
pub struct Accounts {
    client: kube::Client,
    cache: OnceLock<Store<FsxBackupAccount>>,
    /// Each account change as the cache applies it (see [`Accounts::applied`]).
    applied: broadcast::Sender<Option<String>>,
}

/// Account changes a listener may fall behind by before it is told it missed
/// some (and looks at every object with an account).
const APPLIED_BACKLOG: usize = 1024;

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("cached", &self.cache.get().map(|s| s.state().len()))
            .finish_non_exhaustive()
    }
}

/// Longest wait for the accounts cache to fill on first use.
const CACHE_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

impl Accounts {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: OnceLock::new(),
            applied: broadcast::channel(APPLIED_BACKLOG).0,
        }
    }

    /// Each account the cache has just applied: `Some(name)` when it was
    /// created, changed or deleted; `None` for any of them (a relist is
    /// complete, or this listener fell behind and missed some). A reconcile
    /// woken by it reads the account as changed: a second watch of the
    /// accounts could wake the object before this cache saw the change, and the
    /// object would stay refused until something else woke it.
    pub fn applied(&self) -> impl Stream<Item = Option<String>> + Send + 'static {
        let rx = self.applied.subscribe();
        self.store();
        announcements(rx)
    }

    fn store(&self) -> &Store<FsxBackupAccount> {
        self.cache.get_or_init(|| {
            let api: Api<FsxBackupAccount> = Api::all(self.client.clone());
            start(
                watcher(api, watcher::Config::default().any_semantic()),
                self.applied.clone(),
            )
        })
    }

    /// The role `account` gives the object `key`: `None` for the operator's own
    /// identity (no `spec.account`). Kubernetes errors are transient (retried).
    pub async fn role_for(
        &self,
        account: Option<&str>,
        key: &ObjectKey,
    ) -> Result<Result<Option<Arc<Role>>, Refused>, kube::Error> {
        let Some(name) = account else {
            return Ok(Ok(None));
        };
        let Some(account) = self.get(name).await? else {
            return Ok(Err(Refused::NotFound {
                account: name.to_owned(),
            }));
        };
        let labels = if account.spec.allowed_namespaces.selector.is_some() {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            namespaces
                .get_opt(&key.namespace)
                .await?
                .and_then(|ns| ns.metadata.labels)
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        Ok(decide(&account, key, &labels).map(|role| Some(Arc::new(role))))
    }

    async fn get(&self, name: &str) -> Result<Option<Arc<FsxBackupAccount>>, kube::Error> {
        let store = self.store();
        if !wait_synced(store, Some(CACHE_SYNC_TIMEOUT)).await {
            // Not synced yet (no RBAC, apiserver down): ask directly.
            let api: Api<FsxBackupAccount> = Api::all(self.client.clone());
            return Ok(api.get_opt(name).await?.map(Arc::new));
        }
        Ok(store.get(&reflector::ObjectRef::new(name)))
    }
}

/// What `rx` receives: `None` in place of what it missed by falling behind.
fn announcements(
    rx: broadcast::Receiver<Option<String>>,
) -> impl Stream<Item = Option<String>> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(name) => Some((name, rx)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some((None, rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

/// Starts the cache of accounts, filled from `events`; it lives as long as
/// the process. Each change is announced on `applied` once the cache holds it:
/// a relisted account only when the whole list is in (the cache takes it
/// then), as `None`, since any account may have changed while the watch was
/// down.
fn start(
    events: impl Stream<Item = watcher::Result<watcher::Event<FsxBackupAccount>>> + Send + 'static,
    applied: broadcast::Sender<Option<String>>,
) -> Store<FsxBackupAccount> {
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, events)
        .default_backoff()
        .inspect_ok(move |event| {
            let change = match event {
                watcher::Event::Apply(account) | watcher::Event::Delete(account) => {
                    Some(account.name_any())
                }
                watcher::Event::InitDone => None,
                watcher::Event::Init | watcher::Event::InitApply(_) => return,
            };
            // No listener (no controller running) is not an error.
            let _ = applied.send(change);
        });
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(err) = event {
                tracing::warn!(error = %err, "watching FsxBackupAccounts");
            }
        }
    });
    reader
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::account::FsxBackupAccountSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn account(names: &[&str], selector: Option<LabelSelector>) -> FsxBackupAccount {
        FsxBackupAccount::new(
            "team-a",
            FsxBackupAccountSpec {
                role_arn: "arn:aws:iam::222222222222:role/fsx-backup".into(),
                external_id: Some("ext-1".into()),
                session_duration: None,
                allowed_namespaces: AllowedNamespaces {
                    names: names.iter().map(|s| (*s).to_owned()).collect(),
                    selector,
                },
            },
        )
    }

    fn key(namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind: "FsxBackupSchedule".into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_listed_namespace_gets_the_role_with_a_session_naming_the_object() {
        let role = decide(
            &account(&["team-a"], None),
            &key("team-a", "nightly"),
            &labels(&[]),
        )
        .expect("allowed");
        assert_eq!(role.account_id, "222222222222");
        assert_eq!(role.account_name, "team-a");
        assert_eq!(role.external_id.as_deref(), Some("ext-1"));
        assert_eq!(role.session_name, "team-a.nightly");
        assert_eq!(role.session_duration, DEFAULT_SESSION);
    }

    #[test]
    fn no_allow_list_allows_nobody_and_other_namespaces_are_refused() {
        let refused = decide(&account(&[], None), &key("team-a", "x"), &labels(&[]));
        assert_eq!(
            refused,
            Err(Refused::NotAllowed {
                account: "team-a".into(),
                namespace: "team-a".into()
            })
        );
        assert!(
            decide(
                &account(&["team-a"], None),
                &key("team-b", "x"),
                &labels(&[])
            )
            .is_err()
        );
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("team", "a")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "In".into(),
                values: Some(vec!["prod".into(), "stage".into()]),
            }]),
        };
        let acc = account(&[], Some(selector));
        let ok = labels(&[("team", "a"), ("env", "prod")]);
        assert!(decide(&acc, &key("ns", "x"), &ok).is_ok());
        for bad in [
            labels(&[("team", "a")]),
            labels(&[("team", "b"), ("env", "prod")]),
            labels(&[("team", "a"), ("env", "dev")]),
        ] {
            assert!(decide(&acc, &key("ns", "x"), &bad).is_err(), "{bad:?}");
        }
        let odd = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "Sometimes".into(),
                values: None,
            }]),
        };
        assert!(!allows(
            &AllowedNamespaces {
                names: vec![],
                selector: Some(odd)
            },
            "ns",
            &ok
        ));
    }

    #[test]
    fn a_session_duration_out_of_sts_bounds_is_refused() {
        let mut acc = account(&["ns"], None);
        acc.spec.session_duration = Some("5m".into());
        assert!(matches!(
            decide(&acc, &key("ns", "x"), &labels(&[])),
            Err(Refused::Unusable { .. })
        ));
        acc.spec.session_duration = Some("2h".into());
        let role = decide(&acc, &key("ns", "x"), &labels(&[])).expect("ok");
        assert_eq!(role.session_duration, Duration::from_hours(2));
    }

    #[test]
    fn long_session_names_are_cut_to_64_and_stay_distinct() {
        let a = session_name(&key(&"n".repeat(63), &"a".repeat(200)));
        let b = session_name(&key(&"n".repeat(63), &"b".repeat(200)));
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
        );
        assert_eq!(account_id("arn:aws:iam::123:role/x"), None);
    }

    #[tokio::test]
    async fn an_account_is_announced_once_the_cache_holds_it_as_changed() {
        let (events, rx) = tokio::sync::mpsc::unbounded_channel();
        let (applied, mut announced) = broadcast::channel(4);
        let store = start(crate::controller::watches::received(rx).map(Ok), applied);
        let allows_ns = |held: Option<Arc<FsxBackupAccount>>| {
            held.is_some_and(|held| decide(&held, &key("ns", "x"), &labels(&[])).is_ok())
        };
        let team_a = reflector::ObjectRef::new("team-a");
        let refusing = account(&["someone-else"], None);
        events.send(watcher::Event::Init).expect("send");
        events
            .send(watcher::Event::InitApply(refusing.clone()))
            .expect("send");
        events.send(watcher::Event::InitDone).expect("send");
        assert_eq!(announced.recv().await.expect("listed"), None);
        assert!(store.get(&team_a).is_some() && !allows_ns(store.get(&team_a)));
        // The namespace is allowed: whoever is told reads the allowing account.
        events
            .send(watcher::Event::Apply(account(
                &["someone-else", "ns"],
                None,
            )))
            .expect("send");
        assert_eq!(
            announced.recv().await.expect("changed"),
            Some("team-a".into())
        );
        assert!(allows_ns(store.get(&team_a)));
        // Refused again while the watch was down: told once the relist is in.
        events.send(watcher::Event::Init).expect("send");
        events
            .send(watcher::Event::InitApply(refusing))
            .expect("send");
        events.send(watcher::Event::InitDone).expect("send");
        assert_eq!(announced.recv().await.expect("relisted"), None);
        assert!(!allows_ns(store.get(&team_a)));
        events
            .send(watcher::Event::Delete(account(&[], None)))
            .expect("send");
        assert_eq!(
            announced.recv().await.expect("deleted"),
            Some("team-a".into())
        );
        assert!(store.get(&team_a).is_none());
    }

    #[tokio::test]
    async fn a_listener_that_falls_behind_is_told_it_missed_some() {
        let (applied, rx) = broadcast::channel(2);
        for name in ["a", "b", "c"] {
            applied.send(Some(name.to_owned())).expect("send");
        }
        drop(applied);
        let heard: Vec<_> = announcements(rx).collect().await;
        assert_eq!(heard, [None, Some("b".into()), Some("c".into())]);
    }
}
