//! Writes that reach only the object they were decided for. A name can be
//! deleted and created again (GitOps re-applying a manifest) while a reconcile
//! of the first object is still running; its late write must fail instead of
//! putting the old object's runs, copies or finalizer on the new one, which
//! would hide the new object's own work from it.
//!
//! The UID is the only thing that tells the two apart, and only a JSON patch
//! can require it: a server-side apply or merge patch of the status subresource
//! keeps the stored object's metadata whatever the body says.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, TestOperation};
use kube::Resource;
use kube::api::Patch;

/// `operations`, applied only if the stored object is still `object` (same UID).
pub fn patch(object: &impl Resource, operations: Vec<PatchOperation>) -> Patch<()> {
    let mut guarded = vec![test("/metadata/uid", object.meta().uid.clone().into())];
    guarded.extend(operations);
    Patch::Json(json_patch::Patch(guarded))
}

/// Replaces the whole status of `object` with `status`.
pub fn replace_status(object: &impl Resource, status: serde_json::Value) -> Patch<()> {
    patch(
        object,
        vec![PatchOperation::Add(AddOperation {
            path: pointer("/status"),
            value: status,
        })],
    )
}

/// Fails the patch unless the value at `path` is `value`.
pub fn test(path: &str, value: serde_json::Value) -> PatchOperation {
    PatchOperation::Test(TestOperation {
        path: pointer(path),
        value,
    })
}

pub fn pointer(path: &str) -> PointerBuf {
    PointerBuf::parse(path).unwrap_or_else(|_| unreachable!("{path} is a valid JSON pointer"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::FsxBackupSchedule;
    use serde_json::json;

    #[test]
    fn every_write_first_tests_the_uid_it_was_decided_for() {
        let object: FsxBackupSchedule = serde_json::from_value(json!({
            "apiVersion": "fsxbackup.io/v1alpha1", "kind": "FsxBackupSchedule",
            "metadata": {"name": "a", "namespace": "ns", "uid": "uid-a"},
            "spec": {"target": {"fileSystemIds": ["fs-1"]}, "schedule": "@daily"},
        }))
        .expect("object");
        let Patch::Json(patch) = replace_status(&object, json!({"observedGeneration": 1})) else {
            unreachable!("a JSON patch")
        };
        assert_eq!(
            serde_json::to_value(&patch).expect("json"),
            json!([
                {"op": "test", "path": "/metadata/uid", "value": "uid-a"},
                {"op": "add", "path": "/status", "value": {"observedGeneration": 1}},
            ])
        );
    }
}
