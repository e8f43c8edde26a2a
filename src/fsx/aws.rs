//! The [`FsxApi`] implementation on the AWS SDK: one client per account and
//! Region, cached, each behind its own request-rate limit, with the SDK's
//! retries for throttling. Calls in another account carry the credentials of
//! the object's assumed-role session ([`Sessions`]) as a per-call override.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_fsx::config::retry::RetryConfig;
use aws_sdk_fsx::config::timeout::TimeoutConfig;
use aws_sdk_fsx::types::{self as sdk, Filter, FilterName};

use super::error::{FsxError, UserActionReason, from_sdk};
use super::rate_limit::TokenBucket;
use super::sdk_types::{backup_from_sdk, tags_from_sdk, tags_to_sdk};
use super::sts::Sessions;
use super::{
    Backup, BackupTarget, BackupsById, ByTarget, CopyBackupRequest, CreateBackupRequest, Deleted,
    FileSystem, FsxApi, Place, incomplete_answer,
};

/// The session override of a call: `None` for the operator's own identity.
type Session = Option<aws_sdk_fsx::config::Builder>;

/// Sends a fluent call as `session` (see [`AwsFsx::session`]).
macro_rules! send {
    ($call:expr, $session:expr) => {
        match $session {
            Some(session) => Box::pin($call.customize().config_override(session).send()).await,
            None => Box::pin($call.send()).await,
        }
    };
}

/// The default of [`AwsFsxConfig::max_in_flight`] (and `--aws-max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: u16 = 32;

/// FSx accepts at most this many ids in one `DescribeBackups` call.
const MAX_IDS_PER_DESCRIBE: usize = 50;
/// FSx accepts at most this many values in one filter.
const MAX_FILTER_VALUES: usize = 20;

/// How the operator talks to FSx.
#[derive(Clone, Debug)]
pub struct AwsFsxConfig {
    /// Overrides the FSx endpoint (flag `--fsx-endpoint` or `AWS_ENDPOINT_URL_FSX`).
    pub endpoint_url: Option<String>,
    /// SDK attempts per call, including the first; throttling and 5xx are retried.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    /// Overrides the STS endpoint for `AssumeRole` (flag `--sts-endpoint` or `AWS_ENDPOINT_URL_STS`).
    pub sts_endpoint_url: Option<String>,
    /// Calls in flight at once per account and Region; calls beyond it wait. Bounds
    /// the connections to each FSx endpoint (one per call in flight) however
    /// many objects are due at the same instant.
    pub max_in_flight: usize,
    /// Client-side limit per account and Region, requests per second; `None` turns it off.
    pub requests_per_second: Option<f64>,
    pub burst: u32,
    /// `MaxResults` for list calls; `None` lets FSx choose.
    pub page_size: Option<i32>,
    /// Longest wait for one attempt's answer: an endpoint that accepts and never
    /// answers fails the attempt (retried) instead of hanging the reconcile.
    pub attempt_timeout: Duration,
    /// Longest a call may take with all its retries.
    pub operation_timeout: Duration,
}

impl Default for AwsFsxConfig {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            sts_endpoint_url: None,
            max_in_flight: usize::from(DEFAULT_MAX_IN_FLIGHT),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            requests_per_second: Some(10.0),
            burst: 20,
            page_size: None,
            attempt_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_mins(2),
        }
    }
}

/// FSx through the AWS SDK.
#[derive(Debug)]
pub struct AwsFsx {
    base: SdkConfig,
    config: AwsFsxConfig,
    /// By (account, Region): each account has its own FSx request rate.
    regions: Mutex<HashMap<(String, String), RegionClient>>,
    sessions: Sessions,
}

#[derive(Clone, Debug)]
struct RegionClient {
    client: aws_sdk_fsx::Client,
    limiter: Option<Arc<TokenBucket>>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl RegionClient {
    /// A place among the calls in flight, held for a whole operation (all its pages).
    async fn slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// The client, once the Region's rate limit allows one more request.
    async fn ready(&self) -> &aws_sdk_fsx::Client {
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        &self.client
    }
}

impl AwsFsx {
    /// Loads credentials and defaults from the standard AWS chain (environment,
    /// web identity for IRSA, EKS Pod Identity, profile, instance metadata).
    pub async fn from_environment(config: AwsFsxConfig) -> Self {
        Self::new(
            aws_config::defaults(BehaviorVersion::latest()).load().await,
            config,
        )
    }

    pub fn new(base: SdkConfig, config: AwsFsxConfig) -> Self {
        Self {
            sessions: Sessions::new(&base, config.sts_endpoint_url.as_deref()),
            base,
            config,
            regions: Mutex::new(HashMap::new()),
        }
    }

    /// The credentials override for a call at `at`: the role's session (assumed
    /// or renewed first when needed), or `None` for the operator's own identity.
    async fn session(&self, at: &Place) -> Result<Session, FsxError> {
        let Some(role) = &at.role else {
            return Ok(None);
        };
        let credentials = self.sessions.credentials(role, at).await?;
        // The session cache is `Sessions`: none in the SDK for these.
        Ok(Some(
            aws_sdk_fsx::config::Builder::default()
                .credentials_provider(credentials)
                .identity_cache(aws_sdk_fsx::config::IdentityCache::no_cache()),
        ))
    }

    fn region(&self, at: &Place) -> RegionClient {
        let region = at.region.as_str();
        let mut regions = self
            .regions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        regions
            .entry(at.key())
            .or_insert_with(|| {
                let retry = RetryConfig::standard()
                    .with_max_attempts(self.config.max_attempts.max(1))
                    .with_initial_backoff(self.config.initial_backoff);
                let timeouts = TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(self.config.attempt_timeout)
                    .operation_timeout(self.config.operation_timeout)
                    .build();
                let mut builder = aws_sdk_fsx::config::Builder::from(&self.base)
                    .region(Region::new(region.to_owned()))
                    .retry_config(retry)
                    .timeout_config(timeouts);
                if let Some(url) = &self.config.endpoint_url {
                    builder = builder.endpoint_url(url);
                }
                RegionClient {
                    client: aws_sdk_fsx::Client::from_conf(builder.build()),
                    limiter: self
                        .config
                        .requests_per_second
                        .map(|rate| Arc::new(TokenBucket::new(rate, self.config.burst))),
                    in_flight: Arc::new(tokio::sync::Semaphore::new(
                        self.config.max_in_flight.max(1),
                    )),
                }
            })
            .clone()
    }

    /// One `DescribeBackups` page sequence, as FSx sent it; duplicates across
    /// pages are merged.
    async fn describe_backups(
        &self,
        at: &Place,
        session: &Session,
        filter: Option<Filter>,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<sdk::Backup>, FsxError> {
        let rc = self.region(at);
        let _in_flight = rc.slot().await;
        let mut found = BTreeMap::new();
        let mut next_token: Option<String> = None;
        let mut seen_tokens = std::collections::HashSet::new();
        loop {
            let call = rc
                .ready()
                .await
                .describe_backups()
                .set_filters(filter.clone().map(|f| vec![f]))
                .set_backup_ids(ids.clone())
                .set_max_results(self.config.page_size)
                .set_next_token(next_token.clone());
            let page = send!(call, session.clone())
                .map_err(|e| from_sdk("DescribeBackups", &at.to_string(), &e))?;
            for backup in page.backups() {
                if let Some(id) = backup.backup_id() {
                    found.insert(id.to_owned(), backup.clone());
                }
            }
            match page.next_token() {
                // A repeated token would loop forever; what was read so far is complete
                // enough for FSx to have handed out the token again.
                Some(token) if seen_tokens.insert(token.to_owned()) => {
                    next_token = Some(token.to_owned());
                }
                _ => break,
            }
        }
        Ok(found.into_values().collect())
    }

    /// The backups of `targets` (all of one kind) in one listing, by target;
    /// `None` when a backup in it cannot be told apart by target.
    async fn list_targets(
        &self,
        at: &Place,
        session: &Session,
        targets: Vec<BackupTarget>,
    ) -> Result<Option<BTreeMap<BackupTarget, Vec<Backup>>>, FsxError> {
        let Some(first) = targets.first() else {
            return Ok(Some(BTreeMap::new()));
        };
        let (name, target_of): (FilterName, fn(&sdk::Backup) -> Option<&str>) = match first {
            BackupTarget::FileSystem(_) => (FilterName::FileSystemId, |b| {
                b.file_system().and_then(sdk::FileSystem::file_system_id)
            }),
            BackupTarget::Volume(_) => (FilterName::VolumeId, |b| {
                b.volume().and_then(sdk::Volume::volume_id)
            }),
        };
        let filter = Filter::builder()
            .name(name)
            .set_values(Some(targets.iter().map(|t| t.id().to_owned()).collect()))
            .build();
        let listed = self
            .describe_backups(at, session, Some(filter), None)
            .await?;
        let mut by_target: BTreeMap<BackupTarget, Vec<Backup>> =
            targets.iter().map(|t| (t.clone(), Vec::new())).collect();
        for raw in &listed {
            let Some(backup) = backup_from_sdk(raw) else {
                continue;
            };
            let target = match target_of(raw).and_then(|id| targets.iter().find(|t| t.id() == id)) {
                Some(target) => target,
                None if targets.len() == 1 => first,
                None => return Ok(None),
            };
            by_target
                .get_mut(target)
                .expect("every target has an entry")
                .push(backup);
        }
        Ok(Some(by_target))
    }
}

/// FSx's answer when an id in a call names no backup, file system or volume.
fn names_unknown_id(err: &FsxError) -> bool {
    matches!(
        err,
        FsxError::NotFound { .. }
            | FsxError::UserAction {
                reason: UserActionReason::TargetNotFound,
                ..
            }
    )
}

/// Asks `call` about `keys` in as few calls as FSx allows. FSx fails a whole
/// `DescribeBackups` when one id in it is unknown, so a batch that fails so
/// (or that `call` cannot answer as a whole: `Ok(None)`) is halved
/// until the unknown ones stand alone: one gone id among n costs about
/// 2·log₂(n) calls, not n. Every key is in exactly one answered batch.
async fn halving<K, T, Fut>(
    keys: Vec<K>,
    call: impl Fn(Vec<K>) -> Fut,
) -> Vec<(Vec<K>, Result<Option<T>, FsxError>)>
where
    K: Clone,
    Fut: Future<Output = Result<Option<T>, FsxError>>,
{
    let mut todo = vec![keys];
    let mut done = Vec::new();
    while let Some(mut batch) = todo.pop() {
        let answer = call(batch.clone()).await;
        let names_unknown = match &answer {
            Ok(answer) => answer.is_none(),
            Err(err) => names_unknown_id(err),
        };
        if batch.len() > 1 && names_unknown {
            let back = batch.split_off(batch.len() / 2);
            todo.push(back);
            todo.push(batch);
            continue;
        }
        done.push((batch, answer));
    }
    done
}

impl FsxApi for AwsFsx {
    async fn create_backup(
        &self,
        at: &Place,
        request: &CreateBackupRequest,
    ) -> Result<Backup, FsxError> {
        let where_ = at.to_string();
        let session = self.session(at).await?;
        let rc = self.region(at);
        let _in_flight = rc.slot().await;
        let mut call = rc
            .ready()
            .await
            .create_backup()
            .client_request_token(&request.client_request_token)
            .set_tags(tags_to_sdk(&request.tags));
        call = match &request.target {
            BackupTarget::FileSystem(id) => call.file_system_id(id),
            BackupTarget::Volume(id) => call.volume_id(id),
        };
        let output = send!(call, session).map_err(|e| from_sdk("CreateBackup", &where_, &e))?;
        output
            .backup()
            .and_then(backup_from_sdk)
            .ok_or_else(|| incomplete_answer("CreateBackup", at))
    }

    async fn describe_backups_of_targets(&self, at: &Place, targets: &[BackupTarget]) -> ByTarget {
        let mut answers = ByTarget::new();
        let session = match self.session(at).await {
            Ok(session) => session,
            Err(err) => {
                answers.extend(targets.iter().map(|t| (t.clone(), Err(err.clone()))));
                return answers;
            }
        };
        let session = &session;
        let (volumes, file_systems): (Vec<_>, Vec<_>) = targets
            .iter()
            .cloned()
            .partition(|t| matches!(t, BackupTarget::Volume(_)));
        for group in [file_systems, volumes] {
            for chunk in group.chunks(MAX_FILTER_VALUES) {
                let lookups = halving(chunk.to_vec(), |batch| async move {
                    self.list_targets(at, session, batch).await
                })
                .await;
                for (batch, answer) in lookups {
                    match answer {
                        Ok(Some(listed)) => {
                            answers.extend(listed.into_iter().map(|(t, b)| (t, Ok(b))));
                        }
                        Ok(None) => answers.extend(
                            batch
                                .into_iter()
                                .map(|t| (t, Err(incomplete_answer("DescribeBackups", at)))),
                        ),
                        Err(err) => {
                            answers.extend(batch.into_iter().map(|t| (t, Err(err.clone()))));
                        }
                    }
                }
            }
        }
        answers
    }

    async fn describe_backups_by_ids(
        &self,
        at: &Place,
        ids: &[String],
    ) -> Result<BackupsById, FsxError> {
        let mut result = BackupsById::default();
        if ids.is_empty() {
            return Ok(result);
        }
        let session = self.session(at).await?;
        let session = &session;
        for chunk in ids.chunks(MAX_IDS_PER_DESCRIBE) {
            let lookups = halving(chunk.to_vec(), |batch| async move {
                self.describe_backups(at, session, None, Some(batch))
                    .await
                    .map(Some)
            })
            .await;
            for (batch, answer) in lookups {
                match answer {
                    Ok(found) => result
                        .found
                        .extend(found.iter().flatten().filter_map(backup_from_sdk)),
                    // Halving leaves a NotFound only to a batch of one.
                    Err(FsxError::NotFound { .. }) => result.missing.extend(batch),
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(result)
    }

    async fn delete_backup(&self, at: &Place, backup_id: &str) -> Result<Deleted, FsxError> {
        let session = self.session(at).await?;
        let rc = self.region(at);
        let _in_flight = rc.slot().await;
        let call = rc.ready().await.delete_backup().backup_id(backup_id);
        match send!(call, session) {
            Ok(_) => Ok(Deleted::Now),
            Err(err) => match from_sdk("DeleteBackup", &at.to_string(), &err) {
                FsxError::NotFound { .. } => Ok(Deleted::AlreadyGone),
                other => Err(other),
            },
        }
    }

    async fn copy_backup(
        &self,
        destination: &Place,
        request: &CopyBackupRequest,
    ) -> Result<Backup, FsxError> {
        let where_ = destination.to_string();
        let session = self.session(destination).await?;
        let rc = self.region(destination);
        let _in_flight = rc.slot().await;
        let call = rc
            .ready()
            .await
            .copy_backup()
            .source_backup_id(&request.source_backup_id)
            .source_region(&request.source_region)
            .set_kms_key_id(request.kms_key_id.clone())
            .copy_tags(request.copy_tags)
            .set_tags(tags_to_sdk(&request.tags))
            .client_request_token(&request.client_request_token);
        let output = send!(call, session).map_err(|e| from_sdk("CopyBackup", &where_, &e))?;
        output
            .backup()
            .and_then(backup_from_sdk)
            .ok_or_else(|| incomplete_answer("CopyBackup", destination))
    }

    async fn describe_file_systems(&self, at: &Place) -> Result<Vec<FileSystem>, FsxError> {
        let where_ = at.to_string();
        let session = self.session(at).await?;
        let rc = self.region(at);
        let _in_flight = rc.slot().await;
        let mut all = BTreeMap::new();
        let mut next_token: Option<String> = None;
        loop {
            let call = rc
                .ready()
                .await
                .describe_file_systems()
                .set_max_results(self.config.page_size)
                .set_next_token(next_token.take());
            let page = send!(call, session.clone())
                .map_err(|e| from_sdk("DescribeFileSystems", &where_, &e))?;
            for fs in page.file_systems() {
                let Some(id) = fs.file_system_id() else {
                    continue;
                };
                all.insert(
                    id.to_owned(),
                    FileSystem {
                        id: id.to_owned(),
                        file_system_type: fs
                            .file_system_type()
                            .map_or_else(String::new, |t| t.as_str().to_owned()),
                        lifecycle: fs
                            .lifecycle()
                            .map_or_else(String::new, |l| l.as_str().to_owned()),
                        tags: tags_from_sdk(fs.tags()),
                    },
                );
            }
            match page.next_token() {
                Some(token) => next_token = Some(token.to_owned()),
                None => break,
            }
        }
        Ok(all.into_values().collect())
    }

    async fn describe_user_backups(&self, at: &Place) -> Result<Vec<Backup>, FsxError> {
        let filter = Filter::builder()
            .name(FilterName::BackupType)
            .values("USER_INITIATED")
            .build();
        let session = self.session(at).await?;
        let listed = self
            .describe_backups(at, &session, Some(filter), None)
            .await?;
        Ok(listed.iter().filter_map(backup_from_sdk).collect())
    }

    async fn assume(&self, at: &Place) -> Result<(), FsxError> {
        self.session(at).await.map(|_| ())
    }

    async fn tag_backup(
        &self,
        at: &Place,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), FsxError> {
        let session = self.session(at).await?;
        let rc = self.region(at);
        let _in_flight = rc.slot().await;
        let call = rc
            .ready()
            .await
            .tag_resource()
            .resource_arn(arn)
            .set_tags(tags_to_sdk(tags));
        send!(call, session)
            .map(|_| ())
            .map_err(|e| from_sdk("TagResource", &at.to_string(), &e))
    }
}
