//! Classification of FSx failures: every caller sees one of four outcomes and
//! never has to interpret AWS error codes itself.

use std::fmt;

use aws_sdk_fsx::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// A failed FSx call, classified by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsxError {
    /// Transient (throttling, 5xx, network, a backup busy): retry later with backoff.
    #[error("{operation} in {region}: {code}: {message} (will retry)")]
    RetryLater {
        operation: &'static str,
        region: String,
        code: String,
        message: String,
    },
    /// The destination Region has its maximum of copies in progress: queue and wait.
    #[error("{operation} in {region}: all copy slots in use: {message}")]
    CopySlotsFull {
        operation: &'static str,
        region: String,
        message: String,
    },
    /// The backup does not exist (already deleted, or never did).
    #[error("{operation} in {region}: {code}: {message}")]
    NotFound {
        operation: &'static str,
        region: String,
        code: String,
        message: String,
    },
    /// Retrying cannot help: the user must change the spec, IAM or AWS account.
    #[error("{operation} in {region}: {code}: {}. {}", message.trim_end_matches('.'), reason.advice())]
    UserAction {
        operation: &'static str,
        region: String,
        reason: UserActionReason,
        code: String,
        message: String,
    },
}

impl FsxError {
    /// The AWS error code (or a transport label) behind this error, for metrics.
    pub fn code(&self) -> &str {
        match self {
            Self::RetryLater { code, .. }
            | Self::NotFound { code, .. }
            | Self::UserAction { code, .. } => code,
            Self::CopySlotsFull { .. } => "ServiceLimitExceeded",
        }
    }

    /// The AWS operation that failed (`AssumeRole` when the role could not be assumed).
    pub fn operation(&self) -> &'static str {
        match self {
            Self::RetryLater { operation, .. }
            | Self::CopySlotsFull { operation, .. }
            | Self::NotFound { operation, .. }
            | Self::UserAction { operation, .. } => operation,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RetryLater { .. } | Self::CopySlotsFull { .. })
    }
}

/// Why a user must act; doubles as the condition `reason` the controllers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserActionReason {
    AccessDenied,
    TargetNotFound,
    /// `CreateBackup` was given an ONTAP file system id; ONTAP is backed up per volume.
    OntapFileSystemNotBackupable,
    UnsupportedOperation,
    InvalidKmsKey,
    InvalidRegion,
    MultiAzCopyUnsupported,
    BackupQuotaExceeded,
    ServiceQuotaExceeded,
    InvalidRequest,
    /// The SDK could not even build the request: no credentials, no Region.
    Configuration,
}

impl UserActionReason {
    pub const ALL: [Self; 11] = [
        Self::AccessDenied,
        Self::TargetNotFound,
        Self::OntapFileSystemNotBackupable,
        Self::UnsupportedOperation,
        Self::InvalidKmsKey,
        Self::InvalidRegion,
        Self::MultiAzCopyUnsupported,
        Self::BackupQuotaExceeded,
        Self::ServiceQuotaExceeded,
        Self::InvalidRequest,
        Self::Configuration,
    ];

    /// The reason as stored in status, read back.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// CamelCase reason for Kubernetes conditions and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "AccessDenied",
            Self::TargetNotFound => "TargetNotFound",
            Self::OntapFileSystemNotBackupable => "OntapFileSystemNotBackupable",
            Self::UnsupportedOperation => "UnsupportedOperation",
            Self::InvalidKmsKey => "InvalidKmsKey",
            Self::InvalidRegion => "InvalidRegion",
            Self::MultiAzCopyUnsupported => "MultiAzCopyUnsupported",
            Self::BackupQuotaExceeded => "BackupQuotaExceeded",
            Self::ServiceQuotaExceeded => "ServiceQuotaExceeded",
            Self::InvalidRequest => "InvalidRequest",
            Self::Configuration => "AwsConfiguration",
        }
    }

    /// What the user should do, appended to the message they see.
    pub fn advice(self) -> &'static str {
        match self {
            Self::AccessDenied => {
                "Grant the operator's IAM role the permissions in deploy/iam-policy.json"
            }
            Self::TargetNotFound => "Check the file system or volume id and the Region",
            Self::OntapFileSystemNotBackupable => {
                "ONTAP file systems are backed up per volume: list their volumes under target.volumeIds"
            }
            Self::UnsupportedOperation => "FSx does not support this for the given resource",
            Self::InvalidKmsKey => {
                "Use a KMS key that exists in the Region and that the operator's role may use"
            }
            Self::InvalidRegion => "Use a valid Region in the same AWS partition as the source",
            Self::MultiAzCopyUnsupported => {
                "The destination Region does not support copies of Multi-AZ file system backups"
            }
            Self::BackupQuotaExceeded => {
                "The account's user-initiated backup quota is reached: prune backups or raise the quota"
            }
            Self::ServiceQuotaExceeded => {
                "An FSx service quota is reached: raise it or reduce usage"
            }
            Self::InvalidRequest => "Fix the resource's spec",
            Self::Configuration => "Check the operator's AWS credentials and Region configuration",
        }
    }
}

impl fmt::Display for UserActionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one AWS error code is to be treated, independent of SDK types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    RetryLater,
    CopySlotsFull,
    NotFound,
    UserAction(UserActionReason),
}

const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
];

/// The policy, as a pure function of the operation, the error code and (for
/// `ServiceLimitExceeded`) the limit FSx names.
// The transient codes are listed although the fallback treats them alike:
// the list is the documented policy, and the fallback is only for codes FSx
// may add later.
#[allow(clippy::match_same_arms)]
pub(crate) fn classify_code(operation: &str, code: &str, limit: Option<&str>) -> Class {
    use UserActionReason as R;
    match code {
        c if THROTTLING_CODES.contains(&c) => Class::RetryLater,
        "InternalServerError" | "ServiceUnavailable" | "ServiceUnavailableException" => {
            Class::RetryLater
        }
        // A busy backup or source, or short-lived web-identity / Pod Identity
        // credentials that expired between refreshes: all pass with time.
        "BackupInProgress"
        | "BackupBeingCopied"
        | "BackupRestoring"
        | "SourceBackupUnavailable"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "RequestExpired" => Class::RetryLater,
        "ServiceLimitExceeded" => match limit {
            Some("TOTAL_IN_PROGRESS_COPY_BACKUPS") => Class::CopySlotsFull,
            Some("TOTAL_USER_INITIATED_BACKUPS") => Class::UserAction(R::BackupQuotaExceeded),
            _ => Class::UserAction(R::ServiceQuotaExceeded),
        },
        "BackupNotFound" => Class::NotFound,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "MissingAuthenticationToken" => Class::UserAction(R::AccessDenied),
        "FileSystemNotFound" | "VolumeNotFound" => Class::UserAction(R::TargetNotFound),
        "UnsupportedOperation" if operation == "CreateBackup" => {
            Class::UserAction(R::OntapFileSystemNotBackupable)
        }
        "UnsupportedOperation" => Class::UserAction(R::UnsupportedOperation),
        "InvalidDestinationKmsKey" | "InvalidSourceKmsKey" => Class::UserAction(R::InvalidKmsKey),
        "InvalidRegion" => Class::UserAction(R::InvalidRegion),
        // STS is not activated in the account's Region.
        "RegionDisabledException" => Class::UserAction(R::Configuration),
        "IncompatibleRegionForMultiAZ" | "IncompatibleRegionForMultiAz" => {
            Class::UserAction(R::MultiAzCopyUnsupported)
        }
        // STS: a session longer than the role allows, a malformed ARN or external id.
        "BadRequest"
        | "IncompatibleParameterError"
        | "ValidationException"
        | "ValidationError"
        | "MalformedPolicyDocument"
        | "PackedPolicyTooLarge" => Class::UserAction(R::InvalidRequest),
        // Unknown codes (5xx or new ones) are retried with backoff rather than
        // given up on: giving up would silently skip a backup. The error stays
        // visible in the status meanwhile.
        _ => Class::RetryLater,
    }
}

/// Gives the `Limit` of a `ServiceLimitExceeded` for the operations that model it.
pub(crate) trait ServiceLimitOf {
    fn service_limit(&self) -> Option<&str> {
        None
    }
}

impl ServiceLimitOf for aws_sdk_fsx::operation::create_backup::CreateBackupError {
    fn service_limit(&self) -> Option<&str> {
        match self {
            Self::ServiceLimitExceeded(e) => {
                e.limit().map(aws_sdk_fsx::types::ServiceLimit::as_str)
            }
            _ => None,
        }
    }
}

impl ServiceLimitOf for aws_sdk_fsx::operation::copy_backup::CopyBackupError {
    fn service_limit(&self) -> Option<&str> {
        match self {
            Self::ServiceLimitExceeded(e) => {
                e.limit().map(aws_sdk_fsx::types::ServiceLimit::as_str)
            }
            _ => None,
        }
    }
}

impl ServiceLimitOf for aws_sdk_fsx::operation::describe_backups::DescribeBackupsError {}
impl ServiceLimitOf for aws_sdk_fsx::operation::delete_backup::DeleteBackupError {}
impl ServiceLimitOf for aws_sdk_fsx::operation::describe_file_systems::DescribeFileSystemsError {}
impl ServiceLimitOf for aws_sdk_fsx::operation::tag_resource::TagResourceError {}

/// Turns any SDK error of an FSx operation into an [`FsxError`].
pub(crate) fn from_sdk<E, R>(
    operation: &'static str,
    region: &str,
    err: &SdkError<E, R>,
) -> FsxError
where
    E: ProvideErrorMetadata + ServiceLimitOf + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug,
{
    let region = region.to_owned();
    match err {
        SdkError::ServiceError(ctx) => {
            let service = ctx.err();
            let code = service.code().unwrap_or("Unknown").to_owned();
            let message = service.message().unwrap_or("no message").to_owned();
            match classify_code(operation, &code, service.service_limit()) {
                Class::RetryLater => FsxError::RetryLater {
                    operation,
                    region,
                    code,
                    message,
                },
                Class::CopySlotsFull => FsxError::CopySlotsFull {
                    operation,
                    region,
                    message,
                },
                Class::NotFound => FsxError::NotFound {
                    operation,
                    region,
                    code,
                    message,
                },
                Class::UserAction(reason) => FsxError::UserAction {
                    operation,
                    region,
                    reason,
                    code,
                    message,
                },
            }
        }
        SdkError::ConstructionFailure(_) => FsxError::UserAction {
            operation,
            region,
            reason: UserActionReason::Configuration,
            code: "RequestConstruction".to_owned(),
            message: DisplayErrorContext(err).to_string(),
        },
        SdkError::TimeoutError(_) => FsxError::RetryLater {
            operation,
            region,
            code: "Timeout".to_owned(),
            message: DisplayErrorContext(err).to_string(),
        },
        // Dispatch failures (connection refused or reset) and unparseable responses.
        _ => FsxError::RetryLater {
            operation,
            region,
            code: "Transport".to_owned(),
            message: DisplayErrorContext(err).to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::too_many_lines)] // one row per case: a table, not logic
    fn classification_table() {
        use Class::{CopySlotsFull, NotFound, RetryLater, UserAction};
        use UserActionReason as R;
        let cases: &[(&str, &str, Option<&str>, Class)] = &[
            ("CreateBackup", "ThrottlingException", None, RetryLater),
            ("DescribeBackups", "InternalServerError", None, RetryLater),
            ("DescribeBackups", "SomethingNew", None, RetryLater),
            ("CreateBackup", "BackupInProgress", None, RetryLater),
            ("DeleteBackup", "BackupBeingCopied", None, RetryLater),
            ("DeleteBackup", "BackupRestoring", None, RetryLater),
            ("CopyBackup", "SourceBackupUnavailable", None, RetryLater),
            (
                "CopyBackup",
                "ServiceLimitExceeded",
                Some("TOTAL_IN_PROGRESS_COPY_BACKUPS"),
                CopySlotsFull,
            ),
            (
                "CreateBackup",
                "ServiceLimitExceeded",
                Some("TOTAL_USER_INITIATED_BACKUPS"),
                UserAction(R::BackupQuotaExceeded),
            ),
            (
                "CreateBackup",
                "ServiceLimitExceeded",
                Some("TOTAL_USER_TAGS"),
                UserAction(R::ServiceQuotaExceeded),
            ),
            ("DeleteBackup", "BackupNotFound", None, NotFound),
            (
                "CreateBackup",
                "AccessDeniedException",
                None,
                UserAction(R::AccessDenied),
            ),
            (
                "CreateBackup",
                "FileSystemNotFound",
                None,
                UserAction(R::TargetNotFound),
            ),
            (
                "CreateBackup",
                "VolumeNotFound",
                None,
                UserAction(R::TargetNotFound),
            ),
            (
                "CreateBackup",
                "UnsupportedOperation",
                None,
                UserAction(R::OntapFileSystemNotBackupable),
            ),
            (
                "CopyBackup",
                "UnsupportedOperation",
                None,
                UserAction(R::UnsupportedOperation),
            ),
            (
                "CopyBackup",
                "InvalidDestinationKmsKey",
                None,
                UserAction(R::InvalidKmsKey),
            ),
            (
                "CopyBackup",
                "InvalidSourceKmsKey",
                None,
                UserAction(R::InvalidKmsKey),
            ),
            (
                "CopyBackup",
                "InvalidRegion",
                None,
                UserAction(R::InvalidRegion),
            ),
            (
                "CopyBackup",
                "IncompatibleRegionForMultiAZ",
                None,
                UserAction(R::MultiAzCopyUnsupported),
            ),
            (
                "CreateBackup",
                "IncompatibleParameterError",
                None,
                UserAction(R::InvalidRequest),
            ),
            (
                "CreateBackup",
                "BadRequest",
                None,
                UserAction(R::InvalidRequest),
            ),
        ];
        for (operation, code, limit, want) in cases {
            assert_eq!(
                classify_code(operation, code, *limit),
                *want,
                "{operation} {code} {limit:?}"
            );
        }
    }

    #[test]
    fn user_action_message_says_what_to_fix() {
        let err = FsxError::UserAction {
            operation: "CreateBackup",
            region: "us-east-1".into(),
            reason: UserActionReason::OntapFileSystemNotBackupable,
            code: "UnsupportedOperation".into(),
            message: "backups of ONTAP file systems are not supported".into(),
        };
        let text = err.to_string();
        assert!(text.contains("target.volumeIds"), "{text}");
        assert!(text.contains("us-east-1"), "{text}");
        assert!(!err.is_retryable());
    }
}
