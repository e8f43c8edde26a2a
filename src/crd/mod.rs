//! The custom resources, one file per kind. `crds/` is generated from these
//! types (`fsx-backup-operator crd`) and a test fails when it drifts.

pub mod common;
pub mod copy;
pub mod schedule;

use kube::CustomResourceExt;

pub use copy::{FsxBackupCopy, FsxBackupCopySpec, FsxBackupCopyStatus};
pub use schedule::{FsxBackupSchedule, FsxBackupScheduleSpec, FsxBackupScheduleStatus};

/// The API group of both kinds.
pub const GROUP: &str = "fsxbackup.io";

/// `(file name, YAML)` of every CRD, as committed under `crds/`.
///
/// # Panics
/// Never in practice: a CRD is plain data that always serializes.
pub fn crd_files() -> Vec<(String, String)> {
    [FsxBackupSchedule::crd(), FsxBackupCopy::crd()]
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let yaml = serde_saphyr::to_string(&crd).expect("a CRD always serializes to YAML");
            (format!("{name}.yaml"), yaml)
        })
        .collect()
}
