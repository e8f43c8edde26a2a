//! The cleanup finalizer, kept only on objects whose deletion has work to do:
//! `deletionPolicy: Delete`. A `Retain` object carries none, so the apiserver
//! deletes it at once and the operator drops what it holds for it when the
//! watch reports it gone ([`super::departures`]). That saves a PATCH per object
//! when thousands are created, and a deleted `Retain` object never waits on the
//! operator (or on an operator that is not running).
//!
//! The finalizer follows the policy: added when it becomes `Delete` (before
//! anything else is done for the object), removed when it becomes `Retain`.

use std::sync::Arc;

use json_patch::{AddOperation, PatchOperation, RemoveOperation};
use kube::api::{Api, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::incarnation::{pointer, test};
use super::{Error, FINALIZER, incarnation};

/// What a reconcile does with its object once the finalizer is in line.
#[derive(Debug)]
pub enum Step<K> {
    /// Back up, copy, prune: the object as it is now (after any finalizer change).
    Apply(Arc<K>),
    /// Being deleted with our finalizer: clean up, then [`release`].
    Cleanup(Arc<K>),
    /// Being deleted without our finalizer: nothing is left to do here.
    Gone,
}

/// Adds or removes the finalizer so that it is there exactly when `wanted`
/// (the object's deletion has work to do), and says what comes next. A change
/// of the finalizers list meanwhile fails the patch (retried), so another
/// controller's finalizer is never lost or duplicated.
pub async fn bring_in_line<K>(api: &Api<K>, object: Arc<K>, wanted: bool) -> Result<Step<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let position = object.finalizers().iter().position(|f| f == FINALIZER);
    if object.meta().deletion_timestamp.is_some() {
        return Ok(if position.is_some() {
            Step::Cleanup(object)
        } else {
            Step::Gone
        });
    }
    let operations = match (wanted, position) {
        (true, None) if object.finalizers().is_empty() => vec![
            test("/metadata/finalizers", serde_json::Value::Null),
            PatchOperation::Add(AddOperation {
                path: pointer("/metadata/finalizers"),
                value: vec![FINALIZER].into(),
            }),
        ],
        (true, None) => vec![
            test("/metadata/finalizers", object.finalizers().into()),
            PatchOperation::Add(AddOperation {
                path: pointer("/metadata/finalizers/-"),
                value: FINALIZER.into(),
            }),
        ],
        (false, Some(index)) => removal(index),
        (true, Some(_)) | (false, None) => return Ok(Step::Apply(object)),
    };
    let patched = patch(api, &object, operations).await?;
    Ok(Step::Apply(Arc::new(patched)))
}

/// Removes the finalizer after a successful cleanup: the apiserver then deletes
/// the object.
pub async fn release<K>(api: &Api<K>, object: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    if let Some(index) = object.finalizers().iter().position(|f| f == FINALIZER) {
        patch(api, object, removal(index)).await?;
    }
    Ok(())
}

/// Removes the finalizer at `index`, failing if it is no longer ours there.
fn removal(index: usize) -> Vec<PatchOperation> {
    let path = format!("/metadata/finalizers/{index}");
    vec![
        test(&path, FINALIZER.into()),
        PatchOperation::Remove(RemoveOperation {
            path: pointer(&path),
        }),
    ]
}

async fn patch<K>(api: &Api<K>, object: &K, operations: Vec<PatchOperation>) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &incarnation::patch(object, operations),
    )
    .await
    .map_err(|err| Error::Finalizer(err.to_string()))
}
