//! Rendering of records as FSx API shapes (`FileSystem`, `Volume`,
//! `Backup`), with the member names of the FSx model.
//!
//! Only members the emulator can give meaningful values are emitted; every
//! member the model marks as required for `Backup` (`BackupId`, `Lifecycle`,
//! `Type`, `CreationTime`, `FileSystem`) is always present.

use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::hash::{hash64, to_hex};
use crate::state::{BackupRecord, FileSystemRecord, VolumeRecord};
use crate::time::epoch_seconds;
use crate::types::{BackupLifecycle, FileSystemType, Tag, VolumeType};

pub(crate) fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({ "Key": t.key, "Value": t.value }))
            .collect(),
    )
}

/// Stable pseudo-random hex derived from an id, for network identifiers that
/// must look plausible and stay the same across calls.
fn derived_hex(id: &str, salt: u64, digits: usize) -> String {
    let mut hex = to_hex(&hash64(salt, id.as_bytes()).to_be_bytes());
    hex.push_str(&to_hex(&hash64(salt ^ 0xff, id.as_bytes()).to_be_bytes()));
    hex.truncate(digits);
    hex
}

pub(crate) fn file_system_json(fs: &FileSystemRecord) -> Value {
    let mut m = Map::new();
    m.insert("OwnerId".into(), json!(fs.owner_id));
    m.insert(
        "CreationTime".into(),
        json!(epoch_seconds(fs.creation_time)),
    );
    m.insert("FileSystemId".into(), json!(fs.id));
    m.insert("FileSystemType".into(), json!(fs.file_system_type.as_str()));
    m.insert("Lifecycle".into(), json!(fs.lifecycle.as_str()));
    m.insert("StorageCapacity".into(), json!(1200));
    m.insert("StorageType".into(), json!(fs.storage_type.as_str()));
    m.insert(
        "VpcId".into(),
        json!(format!("vpc-{}", derived_hex(&fs.id, 1, 17))),
    );
    m.insert(
        "SubnetIds".into(),
        json!([format!("subnet-{}", derived_hex(&fs.id, 2, 17))]),
    );
    m.insert(
        "NetworkInterfaceIds".into(),
        json!([format!("eni-{}", derived_hex(&fs.id, 3, 17))]),
    );
    m.insert(
        "DNSName".into(),
        json!(format!("{}.fsx.{}.amazonaws.com", fs.id, fs.region)),
    );
    m.insert("KmsKeyId".into(), json!(fs.kms_key_id));
    m.insert("ResourceARN".into(), json!(fs.resource_arn));
    m.insert("Tags".into(), tags_json(&fs.tags));
    match fs.file_system_type {
        FileSystemType::Windows => {
            m.insert(
                "WindowsConfiguration".into(),
                json!({
                    "DeploymentType": fs.deployment_type,
                    "ThroughputCapacity": 32,
                    "AutomaticBackupRetentionDays": 7,
                    "DailyAutomaticBackupStartTime": "05:00",
                    "CopyTagsToBackups": fs.copy_tags_to_backups,
                }),
            );
        }
        FileSystemType::Lustre => {
            let mut lustre = json!({
                "DeploymentType": fs.deployment_type,
                "MountName": derived_hex(&fs.id, 4, 8),
                "CopyTagsToBackups": fs.copy_tags_to_backups,
                "AutomaticBackupRetentionDays": if fs.is_scratch() { 0 } else { 7 },
            });
            if fs.linked_to_data_repository {
                lustre["DataRepositoryConfiguration"] = json!({
                    "Lifecycle": "AVAILABLE",
                    "ImportPath": format!("s3://fsx-emulator-{}", fs.id),
                    "ExportPath": format!("s3://fsx-emulator-{}/export", fs.id),
                });
            }
            m.insert("LustreConfiguration".into(), lustre);
        }
        FileSystemType::Ontap => {
            m.insert(
                "OntapConfiguration".into(),
                json!({
                    "DeploymentType": fs.deployment_type,
                    "AutomaticBackupRetentionDays": 7,
                    "ThroughputCapacity": 128,
                }),
            );
        }
        FileSystemType::OpenZfs => {
            m.insert(
                "OpenZFSConfiguration".into(),
                json!({
                    "DeploymentType": fs.deployment_type,
                    "AutomaticBackupRetentionDays": 7,
                    "CopyTagsToBackups": fs.copy_tags_to_backups,
                    "ThroughputCapacity": 160,
                }),
            );
        }
    }
    Value::Object(m)
}

pub(crate) fn volume_json(v: &VolumeRecord) -> Value {
    let mut m = Map::new();
    m.insert("CreationTime".into(), json!(epoch_seconds(v.creation_time)));
    m.insert("FileSystemId".into(), json!(v.file_system_id));
    m.insert("Name".into(), json!(v.name));
    m.insert("VolumeId".into(), json!(v.id));
    m.insert("VolumeType".into(), json!(v.volume_type.as_str()));
    m.insert("ResourceARN".into(), json!(v.resource_arn));
    m.insert("Tags".into(), tags_json(&v.tags));
    match v.volume_type {
        VolumeType::Ontap => {
            m.insert("Lifecycle".into(), json!("CREATED"));
            m.insert(
                "OntapConfiguration".into(),
                json!({
                    "StorageVirtualMachineId": v.storage_virtual_machine_id,
                    "JunctionPath": format!("/{}", v.name),
                    "SizeInMegabytes": 1_048_576,
                    "StorageEfficiencyEnabled": true,
                    "OntapVolumeType": "RW",
                    "SecurityStyle": "UNIX",
                    "CopyTagsToBackups": v.copy_tags_to_backups,
                }),
            );
        }
        VolumeType::OpenZfs => {
            m.insert("Lifecycle".into(), json!("AVAILABLE"));
            m.insert(
                "OpenZFSConfiguration".into(),
                json!({
                    "VolumePath": format!("/fsx/{}", v.name),
                    "DataCompressionType": "NONE",
                }),
            );
        }
    }
    Value::Object(m)
}

pub(crate) fn backup_json(b: &BackupRecord, now: Instant) -> Value {
    let mut m = Map::new();
    m.insert("BackupId".into(), json!(b.id));
    m.insert("Lifecycle".into(), json!(b.lifecycle.as_str()));
    if b.lifecycle == BackupLifecycle::Failed {
        m.insert(
            "FailureDetails".into(),
            json!({ "Message": b.failure_message.as_deref().unwrap_or("The backup failed.") }),
        );
    }
    m.insert("Type".into(), json!(b.backup_type.as_str()));
    if let Some(pct) = b.progress_percent(now) {
        m.insert("ProgressPercent".into(), json!(pct));
    }
    m.insert("CreationTime".into(), json!(epoch_seconds(b.creation_time)));
    m.insert("KmsKeyId".into(), json!(b.kms_key_id));
    m.insert("ResourceARN".into(), json!(b.resource_arn));
    m.insert("Tags".into(), tags_json(&b.tags));
    m.insert("FileSystem".into(), file_system_json(&b.file_system));
    m.insert("OwnerId".into(), json!(b.owner_id));
    if let Some(source) = &b.source_backup_id {
        m.insert("SourceBackupId".into(), json!(source));
    }
    if let Some(region) = &b.source_backup_region {
        m.insert("SourceBackupRegion".into(), json!(region));
    }
    m.insert("ResourceType".into(), json!(b.resource_type().as_str()));
    if let Some(volume) = &b.volume {
        m.insert("Volume".into(), volume_json(volume));
    }
    if b.lifecycle == BackupLifecycle::Available {
        m.insert("SizeInBytes".into(), json!(10_737_418_240_i64));
    }
    Value::Object(m)
}
