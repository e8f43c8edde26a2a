//! What to back up and how to ask FSx for it: selector matching and the
//! `CreateBackup` request (tags, name, idempotency token).

use super::{
    BackupTarget, Create, CreateBackupRequest, FileSystem, KIND, NAME_KEY, NameContext, Owner,
    Reason, SCHEDULED_TIME_KEY, Selected, Targets, Timestamp, ValidSchedule, render_backup_name,
    run_now_token, scheduled_backup_token,
};
use crate::ownership::fit_tags;

/// The file systems a selector matches now, and those it matches but cannot back up.
pub fn select_file_systems(targets: &Targets, file_systems: Vec<FileSystem>) -> Vec<Selected> {
    let (tags, types) = match targets {
        Targets::Ids(ids) => {
            return ids
                .iter()
                .map(|t| Selected {
                    id: t.id().to_owned(),
                    problem: None,
                })
                .collect();
        }
        Targets::Selector { tags, types } => (tags, types),
    };
    let mut matched: Vec<Selected> = file_systems
        .into_iter()
        .filter(|fs| tags.iter().all(|(k, v)| fs.tags.get(k) == Some(v)))
        .filter(|fs| types.is_empty() || types.iter().any(|t| t.as_str() == fs.file_system_type))
        .filter(|fs| fs.lifecycle != "DELETING")
        .map(|fs| Selected {
            problem: (fs.file_system_type == "ONTAP").then(|| {
                (
                    Reason::TargetNotBackupable,
                    "ONTAP file systems are backed up per volume: list its volumes in spec.target.volumeIds".to_owned(),
                )
            }),
            id: fs.id,
        })
        .collect();
    matched.sort_by(|a, b| a.id.cmp(&b.id));
    matched
}

pub(super) fn create(
    valid: &ValidSchedule,
    owner: &Owner,
    target_id: &str,
    time: Timestamp,
    run_now: Option<&str>,
) -> Create {
    Create {
        target_id: target_id.to_owned(),
        slot: time,
        run_now: run_now.map(str::to_owned),
        request: backup_request(valid, owner, target_id, time, run_now),
    }
}

/// The `CreateBackup` for `target_id` at `time`: ownership and user tags, the
/// rendered name, and a token that makes a replay the same call.
pub fn backup_request(
    valid: &ValidSchedule,
    owner: &Owner,
    target_id: &str,
    time: Timestamp,
    run_now: Option<&str>,
) -> CreateBackupRequest {
    // Validation rendered the template with the longest id: it cannot fail here.
    let name = render_backup_name(
        &valid.name_template,
        &NameContext {
            schedule: &owner.name,
            namespace: &owner.namespace,
            target: target_id,
            time,
        },
    )
    .unwrap_or_else(|_| format!("{}-{target_id}", owner.name));
    let mut tags = valid.tags.clone();
    tags.extend(owner.tags(KIND));
    // A run-now is not a scheduled run: its tag can never be read as one.
    let instant = time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let scheduled = match run_now {
        Some(_) => format!("run-now:{instant}"),
        None => instant,
    };
    tags.insert(SCHEDULED_TIME_KEY.into(), scheduled);
    tags.insert(NAME_KEY.into(), name);
    fit_tags(&mut tags);
    let client_request_token = match run_now {
        Some(nonce) => run_now_token(&owner.uid, target_id, nonce, time),
        None => scheduled_backup_token(&owner.uid, target_id, time),
    };
    CreateBackupRequest {
        target: BackupTarget::from_id(target_id),
        client_request_token,
        tags,
    }
}
