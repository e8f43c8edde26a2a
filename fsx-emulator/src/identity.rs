//! Who a request acts as: IAM roles registered through the control API, the
//! sessions the emulator's STS issued for them, and the caller a request's
//! credentials resolve to.
//!
//! Signatures are never verified, so an access key the emulator did not
//! issue (`AKIDTEST`, `test`, ...) is accepted as the default account's IAM
//! user. A key the emulator's STS issued acts as the assumed role, in the
//! role's account, and must come with its session token until it expires.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use crate::state::{ACCOUNT_ID, is_account_id};
use crate::types::{ControlError, RoleSeed};

/// Prefix of every access key id the emulator's STS issues. `ASIA` marks
/// temporary credentials in AWS; the rest makes the emulator's keys
/// recognizable, so that a stale key (say, from before a reset) is refused
/// instead of silently acting in the default account.
pub(crate) const ISSUED_KEY_PREFIX: &str = "ASIAFSXEMU";

/// Name of the IAM user every non-emulator access key stands for.
const DEFAULT_USER: &str = "fsx-emulator";

/// Unique id of that user (`AIDA` + 17 characters, as IAM user ids look).
const DEFAULT_USER_ID: &str = "AIDAFSXEMULATORUSER01";

/// Longest session IAM allows for a role (`MaxSessionDuration`): 12 hours.
pub(crate) const MAX_ROLE_SESSION_SECONDS: u32 = 43_200;

/// A role's `MaxSessionDuration` when registered without one: 1 hour.
pub(crate) const DEFAULT_MAX_SESSION_SECONDS: u32 = 3_600;

/// A role ARN split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleArn {
    pub(crate) partition: String,
    pub(crate) account: String,
    /// The role name: the last segment of `role/<path><name>`.
    pub(crate) name: String,
}

/// `[\w+=,.@-]`: the characters of role names and role session names.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// `[\w+=,.@:/-]`: the characters of external ids.
pub(crate) fn is_external_id_char(c: char) -> bool {
    is_name_char(c) || c == ':' || c == '/'
}

/// Parses `arn:<partition>:iam::<12 digits>:role/<path><name>`, where the
/// path is `/` or `/segments/` of printable ASCII and the name is 1 to 64
/// characters of `[\w+=,.@-]`.
pub(crate) fn parse_role_arn(arn: &str) -> Option<RoleArn> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "iam", "", account, resource] = parts.as_slice() else {
        return None;
    };
    let rest = resource.strip_prefix("role/")?;
    let name = rest.rsplit('/').next()?;
    let path = &rest[..rest.len() - name.len()];
    let ok = !partition.is_empty()
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
        && is_account_id(account)
        && (1..=64).contains(&name.len())
        && name.chars().all(is_name_char)
        && path.len() <= 512
        && !path.starts_with('/')
        && !path.contains("//")
        && path.bytes().all(|b| (0x21..0x7f).contains(&b));
    ok.then(|| RoleArn {
        partition: (*partition).to_owned(),
        account: (*account).to_owned(),
        name: name.to_owned(),
    })
}

/// A registered role.
#[derive(Debug, Clone)]
pub(crate) struct RoleRecord {
    pub(crate) seed: RoleSeed,
    /// The role's unique id (`AROA...`), kept when the role is replaced.
    pub(crate) role_id: String,
}

impl RoleRecord {
    pub(crate) fn max_session_seconds(&self) -> u32 {
        self.seed
            .max_session_duration_seconds
            .unwrap_or(DEFAULT_MAX_SESSION_SECONDS)
    }
}

/// Temporary credentials the emulator's STS issued.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) token: String,
    pub(crate) expiration: SystemTime,
    pub(crate) account: String,
    pub(crate) role_arn: String,
    pub(crate) role_session_name: String,
    /// `arn:<partition>:sts::<account>:assumed-role/<name>/<session>`.
    pub(crate) assumed_role_arn: String,
    /// `<role id>:<session>`.
    pub(crate) assumed_role_id: String,
}

/// The principal a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The account the request acts in.
    pub(crate) account: String,
    /// The caller's ARN (IAM user or assumed role).
    pub(crate) arn: String,
    /// `UserId` as `GetCallerIdentity` reports it.
    pub(crate) user_id: String,
    /// For session credentials: the role ARN and the role session name.
    pub(crate) role: Option<(String, String)>,
}

impl Caller {
    /// Whether the caller holds role credentials (so a further `AssumeRole`
    /// is role chaining).
    pub(crate) fn is_role_session(&self) -> bool {
        self.role.is_some()
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialError {
    /// An emulator key with a missing or wrong session token, or an
    /// emulator-format key the emulator does not know.
    Invalid,
    /// Session credentials past their expiration.
    Expired,
}

/// Roles and sessions.
#[derive(Debug, Default)]
pub(crate) struct Iam {
    pub(crate) roles: BTreeMap<String, RoleRecord>,
    /// Keyed by access key id.
    pub(crate) sessions: HashMap<String, Session>,
}

impl Iam {
    /// Registers `seed`, replacing a role with the same ARN (whose id and
    /// already issued sessions stay).
    pub(crate) fn add_role(
        &mut self,
        seed: RoleSeed,
        rng: &mut fastrand::Rng,
    ) -> Result<(), ControlError> {
        if parse_role_arn(&seed.arn).is_none() {
            return Err(ControlError::InvalidArgument(format!(
                "'{}' is not a role ARN (arn:<partition>:iam::<12 digits>:role/<path><name>)",
                seed.arn
            )));
        }
        if let Some(id) = &seed.external_id
            && (!(2..=1224).contains(&id.chars().count()) || !id.chars().all(is_external_id_char))
        {
            return Err(ControlError::InvalidArgument(format!(
                "external id '{id}' must be 2 to 1224 characters of [\\w+=,.@:/-]"
            )));
        }
        if let Some(max) = seed.max_session_duration_seconds
            && !(DEFAULT_MAX_SESSION_SECONDS..=MAX_ROLE_SESSION_SECONDS).contains(&max)
        {
            return Err(ControlError::InvalidArgument(format!(
                "max_session_duration_seconds must be between {DEFAULT_MAX_SESSION_SECONDS} and \
                 {MAX_ROLE_SESSION_SECONDS}, not {max}"
            )));
        }
        let role_id = match self.roles.get(&seed.arn) {
            Some(existing) => existing.role_id.clone(),
            None => format!("AROA{}", random_string(rng, UPPER_ALNUM, 17)),
        };
        self.roles
            .insert(seed.arn.clone(), RoleRecord { seed, role_id });
        Ok(())
    }

    /// Resolves the credentials of a request: `access_key` from the
    /// `SigV4` scope, `token` from `x-amz-security-token`. `partition` is the
    /// signing Region's, for the default user's ARN.
    pub(crate) fn caller(
        &self,
        access_key: &str,
        token: Option<&str>,
        partition: &str,
        now: SystemTime,
    ) -> Result<Caller, CredentialError> {
        let Some(session) = self.sessions.get(access_key) else {
            if access_key.starts_with(ISSUED_KEY_PREFIX) {
                return Err(CredentialError::Invalid);
            }
            return Ok(Caller {
                account: ACCOUNT_ID.to_owned(),
                arn: format!("arn:{partition}:iam::{ACCOUNT_ID}:user/{DEFAULT_USER}"),
                user_id: DEFAULT_USER_ID.to_owned(),
                role: None,
            });
        };
        if token != Some(session.token.as_str()) {
            return Err(CredentialError::Invalid);
        }
        if now >= session.expiration {
            return Err(CredentialError::Expired);
        }
        Ok(Caller {
            account: session.account.clone(),
            arn: session.assumed_role_arn.clone(),
            user_id: session.assumed_role_id.clone(),
            role: Some((session.role_arn.clone(), session.role_session_name.clone())),
        })
    }
}

pub(crate) const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub(crate) const BASE64: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `len` characters drawn from `alphabet`.
pub(crate) fn random_string(rng: &mut fastrand::Rng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rng.usize(..alphabet.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn role_arn_shapes() {
        let arn = parse_role_arn("arn:aws:iam::222222222222:role/backup").unwrap();
        assert_eq!(arn.account, "222222222222");
        assert_eq!(arn.name, "backup");
        assert_eq!(arn.partition, "aws");
        let arn = parse_role_arn("arn:aws-cn:iam::222222222222:role/ops/fsx/backup").unwrap();
        assert_eq!(arn.name, "backup");
        for bad in [
            "arn:aws:iam:222222222222:role/backup",
            "arn:aws:iam::22222222222:role/backup",
            "arn:aws:iam::222222222222:user/backup",
            "arn:aws:sts::222222222222:role/backup",
            "arn:aws:iam:us-east-1:222222222222:role/backup",
            "arn:aws:iam::222222222222:role/",
            "arn:aws:iam::222222222222:role/a b",
            "arn:aws:iam::222222222222:role//x",
            "arn::iam::222222222222:role/x",
        ] {
            assert!(parse_role_arn(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn resolves_callers() {
        let mut iam = Iam::default();
        let now = SystemTime::now();
        iam.sessions.insert(
            format!("{ISSUED_KEY_PREFIX}0000000001"),
            Session {
                token: "token".into(),
                expiration: now + Duration::from_mins(1),
                account: "222222222222".into(),
                role_arn: "arn:aws:iam::222222222222:role/r".into(),
                role_session_name: "s".into(),
                assumed_role_arn: "arn:aws:sts::222222222222:assumed-role/r/s".into(),
                assumed_role_id: "AROAX:s".into(),
            },
        );
        let key = format!("{ISSUED_KEY_PREFIX}0000000001");
        let caller = iam.caller(&key, Some("token"), "aws", now).unwrap();
        assert_eq!(caller.account, "222222222222");
        assert!(caller.is_role_session());
        assert_eq!(
            iam.caller(&key, Some("other"), "aws", now),
            Err(CredentialError::Invalid)
        );
        assert_eq!(
            iam.caller(&key, None, "aws", now),
            Err(CredentialError::Invalid)
        );
        assert_eq!(
            iam.caller(&key, Some("token"), "aws", now + Duration::from_mins(1)),
            Err(CredentialError::Expired)
        );
        assert_eq!(
            iam.caller(&format!("{ISSUED_KEY_PREFIX}0000000002"), None, "aws", now),
            Err(CredentialError::Invalid)
        );
        let default = iam.caller("AKIDTEST", Some("ignored"), "aws", now).unwrap();
        assert_eq!(default.account, ACCOUNT_ID);
        assert_eq!(default.arn, "arn:aws:iam::111111111111:user/fsx-emulator");
        assert!(!default.is_role_session());
    }
}
