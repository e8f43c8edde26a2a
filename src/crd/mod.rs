//! The custom resources, one file per kind. `crds/` is generated from these
//! types (`fsx-backup-operator crd`) and a test fails when it drifts.

pub mod account;
pub mod common;
pub mod copy;
pub mod schedule;

use kube::CustomResourceExt;

pub use account::{FsxBackupAccount, FsxBackupAccountSpec};
pub use copy::{FsxBackupCopy, FsxBackupCopySpec, FsxBackupCopyStatus};
pub use schedule::{FsxBackupSchedule, FsxBackupScheduleSpec, FsxBackupScheduleStatus};

/// The API group of every kind.
pub const GROUP: &str = "fsxbackup.io";

/// `(file name, YAML)` of every CRD, as committed under `crds/`.
///
/// # Panics
/// Never in practice: a CRD is plain data that always serializes.
pub fn crd_files() -> Vec<(String, String)> {
    [
        FsxBackupSchedule::crd(),
        FsxBackupCopy::crd(),
        FsxBackupAccount::crd(),
    ]
    .into_iter()
    .map(|crd| {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let yaml = serde_saphyr::to_string(&crd).expect("a CRD always serializes to YAML");
        (format!("{name}.yaml"), yaml)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every integer the apiserver stores for us, with the path where it is, and
    /// whether the schema bounds it on both sides.
    fn integers(schema: &serde_json::Value, at: &str, out: &mut Vec<(String, bool)>) {
        if schema["type"] == "integer" {
            let bounded = schema["minimum"].is_number() && schema["maximum"].is_number();
            out.push((at.to_owned(), bounded));
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, child) in properties {
                integers(child, &format!("{at}.{name}"), out);
            }
        }
        for nested in ["items", "additionalProperties"] {
            if schema[nested].is_object() {
                integers(&schema[nested], &format!("{at}[]"), out);
            }
        }
    }

    /// A value the schema accepts must never fail to deserialize (one such object
    /// stopped the whole controller): every integer has a minimum and a maximum.
    #[test]
    fn every_integer_in_both_schemas_is_bounded() {
        // FsxBackupAccount has no integer at all.
        for crd in [FsxBackupSchedule::crd(), FsxBackupCopy::crd()] {
            let crd = serde_json::to_value(&crd).expect("json");
            let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let mut found = Vec::new();
            integers(schema, "", &mut found);
            assert!(found.len() >= 10, "{found:?}");
            let unbounded: Vec<_> = found.iter().filter(|(_, ok)| !ok).collect();
            // observedGeneration is an int64 the apiserver itself writes into metadata.
            assert!(
                unbounded
                    .iter()
                    .all(|(at, _)| at.ends_with("observedGeneration")
                        || at.ends_with("conditions[].observedGeneration")),
                "unbounded integers: {unbounded:?}"
            );
        }
    }
}
