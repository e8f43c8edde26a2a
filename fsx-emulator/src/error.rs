//! FSx API errors as they travel on the wire.
//!
//! AWS JSON 1.1 errors are an HTTP status, an `x-amzn-ErrorType` header and a
//! body `{"__type": code, "Message": ...}` plus any modeled members of the
//! error shape (`Limit`, `BackupId`, `ResourceARN`, ...). The SDK picks the
//! typed error variant from the code, so each operation must only use codes
//! its model lists; the constructors below carry the API reference's wording.

use serde_json::{Map, Value};

/// Wording from the FSx API reference, shared by constructors and tests.
pub(crate) mod messages {
    pub(crate) const BACKUP_NOT_FOUND: &str =
        "No Amazon FSx backups were found based upon the supplied parameters.";
    pub(crate) const FILE_SYSTEM_NOT_FOUND: &str =
        "No Amazon FSx file systems were found based upon supplied parameters.";
    pub(crate) const VOLUME_NOT_FOUND: &str =
        "No Amazon FSx volumes were found based upon the supplied parameters.";
    pub(crate) const BACKUP_IN_PROGRESS: &str = "Another backup is already under way. Wait for completion before initiating additional backups of this file system.";
    pub(crate) const BACKUP_BEING_COPIED: &str =
        "You can't delete a backup while it's being copied.";
    pub(crate) const BACKUP_RESTORING: &str =
        "You can't delete a backup while it's being used to restore a file system.";
    pub(crate) const INCOMPATIBLE_PARAMETER: &str = "The error returned when a second request is received with the same client request token but different parameters settings. A client request token should always uniquely identify a single request.";
    pub(crate) const SOURCE_BACKUP_UNAVAILABLE: &str = "The request was rejected because the lifecycle status of the source backup isn't AVAILABLE.";
    pub(crate) const INVALID_REGION: &str = "The Region provided for SourceRegion is not valid or is in a different Amazon Web Services partition.";
    pub(crate) const INVALID_SOURCE_KMS_KEY: &str =
        "The Key Management Service (KMS) key of the source backup is not valid.";
    pub(crate) const INVALID_DESTINATION_KMS_KEY: &str =
        "The Key Management Service (KMS) key of the destination backup is not valid.";
    pub(crate) const INCOMPATIBLE_REGION_FOR_MULTI_AZ: &str = "Amazon FSx doesn't support Multi-AZ Windows File Server copy backup in the destination Region, so the copied backup can't be restored.";
    pub(crate) const RESOURCE_NOT_FOUND: &str =
        "The resource specified by the Amazon Resource Name (ARN) can't be found.";
    pub(crate) const NOT_SERVICE_RESOURCE: &str = "The resource specified for the tagging operation is not a resource type owned by Amazon FSx. Use the API of the relevant service to perform the operation.";
    pub(crate) const RESOURCE_DOES_NOT_SUPPORT_TAGGING: &str =
        "The resource specified does not support tagging.";
    pub(crate) const INTERNAL_SERVER_ERROR: &str =
        "A generic error indicating a server-side failure.";
    pub(crate) const ONTAP_FILE_SYSTEM_BACKUP: &str = "ONTAP file system backup is unsupported.";
    pub(crate) const THROTTLING: &str = "Rate exceeded";
    pub(crate) const UNRECOGNIZED_CLIENT: &str =
        "The security token included in the request is invalid.";
    pub(crate) const EXPIRED_TOKEN: &str = "The security token included in the request is expired";
}

/// One error response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    /// Error code (`__type` and `x-amzn-ErrorType`).
    pub(crate) code: &'static str,
    /// `Message` member.
    pub(crate) message: String,
    /// HTTP status.
    pub(crate) status: u16,
    /// Further modeled members of the error shape.
    pub(crate) extra: Vec<(&'static str, Value)>,
}

impl ApiError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: 400,
            extra: Vec::new(),
        }
    }

    fn with(mut self, member: &'static str, value: impl Into<Value>) -> Self {
        self.extra.push((member, value.into()));
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new("BadRequest", message)
    }

    pub(crate) fn backup_not_found() -> Self {
        Self::new("BackupNotFound", messages::BACKUP_NOT_FOUND)
    }

    pub(crate) fn file_system_not_found() -> Self {
        Self::new("FileSystemNotFound", messages::FILE_SYSTEM_NOT_FOUND)
    }

    pub(crate) fn volume_not_found() -> Self {
        Self::new("VolumeNotFound", messages::VOLUME_NOT_FOUND)
    }

    pub(crate) fn backup_in_progress() -> Self {
        Self::new("BackupInProgress", messages::BACKUP_IN_PROGRESS)
    }

    pub(crate) fn backup_being_copied(backup_id: &str) -> Self {
        Self::new("BackupBeingCopied", messages::BACKUP_BEING_COPIED).with("BackupId", backup_id)
    }

    pub(crate) fn backup_restoring(file_system_id: &str) -> Self {
        Self::new("BackupRestoring", messages::BACKUP_RESTORING)
            .with("FileSystemId", file_system_id)
    }

    pub(crate) fn incompatible_parameter(parameter: &str) -> Self {
        Self::new(
            "IncompatibleParameterError",
            messages::INCOMPATIBLE_PARAMETER,
        )
        .with("Parameter", parameter)
    }

    pub(crate) fn internal_server_error() -> Self {
        Self {
            status: 500,
            ..Self::new("InternalServerError", messages::INTERNAL_SERVER_ERROR)
        }
    }

    pub(crate) fn service_limit_exceeded(limit: &'static str, message: impl Into<String>) -> Self {
        Self::new("ServiceLimitExceeded", message).with("Limit", limit)
    }

    pub(crate) fn unsupported_operation(message: impl Into<String>) -> Self {
        Self::new("UnsupportedOperation", message)
    }

    pub(crate) fn source_backup_unavailable(backup_id: &str) -> Self {
        Self::new(
            "SourceBackupUnavailable",
            messages::SOURCE_BACKUP_UNAVAILABLE,
        )
        .with("BackupId", backup_id)
    }

    pub(crate) fn invalid_region() -> Self {
        Self::new("InvalidRegion", messages::INVALID_REGION)
    }

    pub(crate) fn invalid_source_kms_key() -> Self {
        Self::new("InvalidSourceKmsKey", messages::INVALID_SOURCE_KMS_KEY)
    }

    pub(crate) fn invalid_destination_kms_key() -> Self {
        Self::new(
            "InvalidDestinationKmsKey",
            messages::INVALID_DESTINATION_KMS_KEY,
        )
    }

    pub(crate) fn incompatible_region_for_multi_az() -> Self {
        // The model spells the shape `IncompatibleRegionForMultiAZ`.
        Self::new(
            "IncompatibleRegionForMultiAZ",
            messages::INCOMPATIBLE_REGION_FOR_MULTI_AZ,
        )
    }

    pub(crate) fn resource_not_found(arn: &str) -> Self {
        Self::new("ResourceNotFound", messages::RESOURCE_NOT_FOUND).with("ResourceARN", arn)
    }

    pub(crate) fn not_service_resource(arn: &str) -> Self {
        Self::new("NotServiceResourceError", messages::NOT_SERVICE_RESOURCE)
            .with("ResourceARN", arn)
    }

    pub(crate) fn resource_does_not_support_tagging(arn: &str) -> Self {
        Self::new(
            "ResourceDoesNotSupportTagging",
            messages::RESOURCE_DOES_NOT_SUPPORT_TAGGING,
        )
        .with("ResourceARN", arn)
    }

    /// Model-constraint violation, as the AWS front end reports it.
    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }

    /// A body that is not the JSON the operation's input shape describes.
    pub(crate) fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", message)
    }

    pub(crate) fn throttling() -> Self {
        Self::new("ThrottlingException", messages::THROTTLING)
    }

    /// `caller_arn`: the IAM user or assumed role the request acted as.
    pub(crate) fn access_denied(caller_arn: &str, operation: &str) -> Self {
        Self::new(
            "AccessDeniedException",
            format!(
                "User: {caller_arn} is not authorized to perform: fsx:{operation} because no \
                 identity-based policy allows the fsx:{operation} action"
            ),
        )
    }

    /// An access key with a missing or wrong session token (or one the
    /// emulator's STS never issued), as JSON-protocol services answer it:
    /// HTTP 400.
    pub(crate) fn unrecognized_client() -> Self {
        Self::new("UnrecognizedClientException", messages::UNRECOGNIZED_CLIENT)
    }

    /// Session credentials past their expiration, as JSON-protocol services
    /// answer it: HTTP 400.
    pub(crate) fn expired_token() -> Self {
        Self::new("ExpiredTokenException", messages::EXPIRED_TOKEN)
    }

    pub(crate) fn unknown_operation(target: &str) -> Self {
        Self::new(
            "UnknownOperationException",
            format!("Operation '{target}' is not supported by this endpoint."),
        )
    }

    pub(crate) fn missing_authentication_token() -> Self {
        Self {
            status: 403,
            ..Self::new("MissingAuthenticationToken", "Missing Authentication Token")
        }
    }

    pub(crate) fn incomplete_signature(message: impl Into<String>) -> Self {
        Self::new("IncompleteSignature", message)
    }

    pub(crate) fn invalid_signature(message: impl Into<String>) -> Self {
        Self {
            status: 403,
            ..Self::new("InvalidSignatureException", message)
        }
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("__type".into(), Value::from(self.code));
        body.insert("Message".into(), Value::from(self.message.as_str()));
        for (member, value) in &self.extra {
            body.insert((*member).into(), value.clone());
        }
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_modeled_members() {
        let err = ApiError::service_limit_exceeded("TOTAL_IN_PROGRESS_COPY_BACKUPS", "too many");
        assert_eq!(err.status, 400);
        assert_eq!(
            err.body(),
            serde_json::json!({
                "__type": "ServiceLimitExceeded",
                "Message": "too many",
                "Limit": "TOTAL_IN_PROGRESS_COPY_BACKUPS"
            })
        );
        assert_eq!(ApiError::internal_server_error().status, 500);
    }
}
