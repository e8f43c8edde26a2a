//! Credentials of assumed roles: one STS session per role and object (its
//! `RoleSessionName` names the object, so `CloudTrail` says which object acted),
//! cached and renewed before it expires; `AssumeRole` failures are classified
//! like FSx's, so a refused trust policy stalls the object and throttling retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_config::{Region, SdkConfig};
use aws_sdk_fsx::config::Credentials;

use super::error::{FsxError, ServiceLimitOf, from_sdk};
use super::{Place, Role, incomplete_answer};

/// STS's shortest session (`DurationSeconds` 900).
pub const MIN_SESSION: Duration = Duration::from_mins(15);

/// Renew a session when less than this is left of it, or less than a third of
/// its lifetime (short-lived sessions), whichever is shorter: a call never
/// starts on credentials about to expire mid-way.
const RENEW_BEFORE: Duration = Duration::from_mins(5);

type SessionKey = (String, Option<String>, String);

/// Sessions of every assumed role, shared by all FSx calls.
#[derive(Debug)]
pub struct Sessions {
    sts: aws_sdk_sts::Client,
    /// One lock per session, so concurrent calls of one object wait for one
    /// `AssumeRole` instead of each sending their own.
    sessions: Mutex<HashMap<SessionKey, Arc<tokio::sync::Mutex<Option<Session>>>>>,
}

#[derive(Debug)]
struct Session {
    credentials: Credentials,
    renew_at: SystemTime,
    expires: SystemTime,
}

impl Sessions {
    /// STS through the operator's own credentials; `endpoint_url` overrides the
    /// endpoint (the SDK also reads `AWS_ENDPOINT_URL_STS`).
    pub fn new(base: &SdkConfig, endpoint_url: Option<&str>) -> Self {
        let mut builder = aws_sdk_sts::config::Builder::from(base);
        if base.region().is_none() {
            builder = builder.region(Region::from_static("us-east-1"));
        }
        if let Some(url) = endpoint_url {
            builder = builder.endpoint_url(url);
        }
        Self {
            sts: aws_sdk_sts::Client::from_conf(builder.build()),
            sessions: Mutex::default(),
        }
    }

    /// Credentials for `role`, from the cache while they are fresh, else from a
    /// new `AssumeRole`. `at` only names the call in errors.
    pub async fn credentials(&self, role: &Role, at: &Place) -> Result<Credentials, FsxError> {
        let key = (
            role.arn.clone(),
            role.external_id.clone(),
            role.session_name.clone(),
        );
        let slot = {
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            let now = SystemTime::now();
            // Sessions of objects gone (or renamed) are dropped once expired.
            if sessions.len() > 64 {
                sessions.retain(|_, slot| {
                    slot.try_lock()
                        .map_or(true, |s| s.as_ref().is_none_or(|s| s.expires > now))
                });
            }
            sessions.entry(key).or_default().clone()
        };
        let mut session = slot.lock().await;
        if let Some(current) = session.as_ref()
            && SystemTime::now() < current.renew_at
        {
            return Ok(current.credentials.clone());
        }
        let fresh = self.assume(role, at).await?;
        let credentials = fresh.credentials.clone();
        *session = Some(fresh);
        Ok(credentials)
    }

    async fn assume(&self, role: &Role, at: &Place) -> Result<Session, FsxError> {
        let seconds = i32::try_from(role.session_duration.as_secs()).unwrap_or(i32::MAX);
        // Boxed: the SDK's future is large, and every caller waiting on a
        // session would otherwise carry its size.
        let output = Box::pin(
            self.sts
                .assume_role()
                .role_arn(&role.arn)
                .role_session_name(&role.session_name)
                .set_external_id(role.external_id.clone())
                .duration_seconds(seconds.max(900))
                .send(),
        )
        .await
        .map_err(|err| about_role(role, from_sdk("AssumeRole", &at.to_string(), &err)))?;
        let Some(given) = output.credentials() else {
            return Err(about_role(role, incomplete_answer("AssumeRole", at)));
        };
        let now = SystemTime::now();
        let expires = SystemTime::try_from(*given.expiration()).unwrap_or(now);
        let lifetime = expires.duration_since(now).unwrap_or_default();
        let renew_at = expires
            .checked_sub(RENEW_BEFORE.min(lifetime / 3))
            .unwrap_or(now);
        tracing::debug!(role = %role.arn, session = %role.session_name, ?lifetime, "assumed role");
        Ok(Session {
            credentials: Credentials::new(
                given.access_key_id(),
                given.secret_access_key(),
                Some(given.session_token().to_owned()),
                Some(expires),
                "fsxbackup-assume-role",
            ),
            renew_at,
            expires,
        })
    }
}

/// An `AssumeRole` failure names the role and the account object, and says what
/// a person fixes when retrying cannot help.
fn about_role(role: &Role, mut err: FsxError) -> FsxError {
    let advice = if matches!(err, FsxError::UserAction { .. }) {
        " The role's trust policy must allow the operator's role to assume it, with the FsxBackupAccount's externalId (deploy/account-trust-policy.json), and the operator's role needs sts:AssumeRole on it."
    } else {
        ""
    };
    let (FsxError::RetryLater { message, .. }
    | FsxError::UserAction { message, .. }
    | FsxError::NotFound { message, .. }
    | FsxError::CopySlotsFull { message, .. }) = &mut err;
    *message = format!(
        "cannot assume {} (FsxBackupAccount {}): {}.{advice}",
        role.arn,
        role.account_name,
        message.trim_end_matches('.')
    );
    err
}

impl ServiceLimitOf for aws_sdk_sts::operation::assume_role::AssumeRoleError {}
