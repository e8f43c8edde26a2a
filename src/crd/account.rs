//! `FsxBackupAccount` (cluster-scoped): an AWS account the operator may back up
//! in through an IAM role, and the namespaces whose objects may use it. Owned by
//! the platform team: only who may create cluster-scoped objects decides which
//! namespace may act in which account.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// An IAM role ARN: the 12-digit account id is read from it.
pub const ROLE_ARN_PATTERN: &str = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$";

/// An AWS account reached by assuming an IAM role, and who may use it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fsxbackup.io",
    version = "v1alpha1",
    kind = "FsxBackupAccount",
    shortname = "fba",
    category = "fsxbackup",
    doc = "FsxBackupAccount lets the objects of chosen namespaces back up in another AWS account: the operator assumes roleArn for them. Objects name it in spec.account; no other namespace may use it.",
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.roleArn"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FsxBackupAccountSpec {
    /// The role the operator assumes, e.g. `arn:aws:iam::222222222222:role/fsx-backup`.
    /// Its trust policy must allow the operator's own role (deploy/account-trust-policy.json).
    #[schemars(regex(pattern = ROLE_ARN_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("roleArn cannot change: the objects using this account have backups in its account; create another FsxBackupAccount"))]
    pub role_arn: String,
    /// The `sts:ExternalId` the role's trust policy requires, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224), regex(pattern = r"^[\w+=,.@:/-]+$"))]
    pub external_id: Option<String>,
    /// How long each assumed-role session lasts before it is renewed (default
    /// `1h`; 15m to 12h, and no longer than the role's maximum session duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::common::DURATION_PATTERN))]
    pub session_duration: Option<String>,
    /// The namespaces whose objects may use this account: listed by name, or
    /// matched by their labels. Empty: no namespace may.
    #[serde(default)]
    pub allowed_namespaces: AllowedNamespaces,
}

/// Namespaces by name or by label selector (either matching is enough).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNamespaces {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}
