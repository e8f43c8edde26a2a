//! This cluster's identity: the value of the `fsxbackup.io/cluster` tag on
//! every backup the operator makes, so that clusters sharing an AWS account
//! never adopt or count each other's backups.
//!
//! Default: the UID of the `kube-system` namespace, stable for the life of a
//! cluster and different for every cluster. A cluster rebuilt from Git gets a
//! new one; to keep adopting its old backups, set `--cluster-id` (chart value
//! `clusterId`) to a name of your own and keep it across rebuilds.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use crate::naming::is_tag_value_char;

/// Longest identity accepted: a tag value may hold 256 characters.
pub const MAX_LEN: usize = 128;

/// `configured` when given (checked), else the `kube-system` namespace's UID.
pub async fn resolve(client: &kube::Client, configured: Option<&str>) -> Result<String, String> {
    if let Some(id) = configured {
        return check(id).map(|()| id.to_owned());
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let found = namespaces.get("kube-system").await.map_err(|err| {
        format!(
            "cannot read the kube-system namespace for the default cluster identity ({err}); \
             set --cluster-id (chart value clusterId)"
        )
    })?;
    found
        .metadata
        .uid
        .ok_or_else(|| "the kube-system namespace has no UID; set --cluster-id".to_owned())
}

/// A cluster identity must be a non-empty FSx tag value of at most [`MAX_LEN`].
pub fn check(id: &str) -> Result<(), String> {
    if id.is_empty() || id.chars().count() > MAX_LEN {
        return Err(format!(
            "cluster identity \"{id}\" must be 1-{MAX_LEN} characters"
        ));
    }
    match id.chars().find(|c| !is_tag_value_char(*c)) {
        Some(bad) => Err(format!(
            "cluster identity \"{id}\" contains `{bad}`; FSx tag values allow letters, digits, spaces and _ . : / = + - @"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn an_identity_is_a_short_tag_value() {
        assert!(check("prod-eu-1").is_ok());
        assert!(check("0b1c2d3e-aaaa-bbbb-cccc-0123456789ab").is_ok());
        assert!(check("").is_err());
        assert!(check(&"x".repeat(129)).is_err());
        assert!(check("prod,eu").is_err());
    }
}
