//! `FsxBackupCopy`: the spec as the reconciler acts on it, checked before any FSx call.

use std::collections::BTreeMap;

use crate::crd::common::{Adoption, DeletionBrake};
use crate::crd::copy::FsxBackupCopy;
use crate::retention::RetentionPolicy;

/// Where the backups to copy come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// One backup, copied once.
    Backup { id: String, region: String },
    /// Every backup an `FsxBackupSchedule` in the same namespace makes.
    Schedule { name: String },
}

/// A copy object whose spec passed every check.
#[derive(Debug)]
pub struct ValidCopy {
    pub source: Source,
    pub destination_region: String,
    pub kms_key_id: Option<String>,
    pub copy_tags: bool,
    pub tags: BTreeMap<String, String>,
    /// Follow mode only; `None` keeps every copy.
    pub retention: Option<RetentionPolicy>,
    /// The object's own deletion-brake limits, if it sets any.
    pub deletion_brake: Option<DeletionBrake>,
    pub adoption: Adoption,
    /// `spec.rpo`; `None`: the followed schedule's plus `crate::rpo::COPY_ALLOWANCE`.
    pub rpo: Option<std::time::Duration>,
}

/// The AWS partition of a Region: copies never cross partitions.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

/// Checks the spec; `Err` is the message for the `Stalled`/`InvalidSpec` condition.
pub fn validate(object: &FsxBackupCopy, default_region: Option<&str>) -> Result<ValidCopy, String> {
    let spec = &object.spec;
    let source = match (&spec.source.schedule_ref, &spec.source.backup_id) {
        (Some(schedule), None) => Source::Schedule {
            name: schedule.name.clone(),
        },
        (None, Some(id)) => Source::Backup {
            id: id.clone(),
            region: spec
                .source
                .region
                .clone()
                .or_else(|| default_region.map(str::to_owned))
                .ok_or("spec.source.region is not set and the operator has no default Region (--region / AWS_REGION)")?,
        },
        _ => return Err("spec.source: set exactly one of scheduleRef and backupId".into()),
    };
    let destination = spec.destination_region.clone();
    if let Source::Backup { region, .. } = &source {
        if partition(region) != partition(&destination) {
            return Err(format!(
                "spec.destinationRegion: {destination} is in partition {}, the source Region {region} in {}; FSx cannot copy across partitions",
                partition(&destination),
                partition(region)
            ));
        }
        if *region == destination && spec.kms_key_id.is_none() {
            return Err(format!(
                "spec.destinationRegion: copying {region} to itself with no other KMS key makes an identical backup; set spec.kmsKeyId or another Region"
            ));
        }
    }
    let retention = match (&spec.retention, &source) {
        (Some(_), Source::Backup { .. }) => {
            return Err("spec.retention applies to copies of a schedule (spec.source.scheduleRef); a one-shot copy is kept until deleted".into());
        }
        (Some(retention), Source::Schedule { .. }) => Some(retention.to_policy()?),
        (None, _) => None,
    };
    let tags = super::user_tags(spec.tags.as_ref())?;
    let rpo = match (&spec.rpo, &source) {
        (Some(_), Source::Backup { .. }) => {
            return Err("spec.rpo applies to copies of a schedule (spec.source.scheduleRef); a one-shot copy has no objective".into());
        }
        (Some(text), Source::Schedule { .. }) => {
            let rpo =
                crate::duration::parse_duration(text).map_err(|err| format!("spec.rpo: {err}"))?;
            if rpo.is_zero() {
                return Err("spec.rpo must be above zero".into());
            }
            Some(rpo)
        }
        (None, _) => None,
    };
    Ok(ValidCopy {
        source,
        destination_region: destination,
        kms_key_id: spec.kms_key_id.clone(),
        copy_tags: spec.copy_tags.unwrap_or(false),
        tags,
        retention,
        deletion_brake: spec.deletion_brake,
        adoption: spec.adoption.unwrap_or_default(),
        rpo,
    })
}
