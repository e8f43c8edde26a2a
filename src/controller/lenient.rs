//! Objects as the controllers watch them: a type that cannot fail to parse.
//!
//! A typed watch fails as a whole when one stored object does not deserialize
//! (a counter above `u32`, stored before the schema bounded it), and then no
//! object of that kind is reconciled at all. [`Lenient`] reads every object: as
//! the typed kind when it can; without its status when only the status is
//! unreadable (status is ours to rebuild from FSx); otherwise as bare metadata
//! with the error, which the driver reports on that object alone.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One watched object of kind `K`, however malformed.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // nearly every object is `Read`: boxing it would cost, not save
pub enum Lenient<K> {
    /// Read as `K`. `unreadable_status` says why its stored status could not be
    /// read: it was set aside and is rebuilt by the next reconcile.
    Read {
        object: K,
        unreadable_status: Option<String>,
    },
    /// Its spec (or more) cannot be read as `K`: only its metadata, and why.
    Unreadable { metadata: ObjectMeta, error: String },
}

impl<K> Lenient<K> {
    pub fn read(&self) -> Option<&K> {
        match self {
            Self::Read { object, .. } => Some(object),
            Self::Unreadable { .. } => None,
        }
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Lenient<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Read { object, .. } => object.meta(),
            Self::Unreadable { metadata, .. } => metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Read { object, .. } => object.meta_mut(),
            Self::Unreadable { metadata, .. } => metadata,
        }
    }
}

/// Written by client-side `kubectl apply` (and Argo CD's default sync): a
/// second copy of the spec as JSON text, never read here.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An object's JSON without the bookkeeping of the tools that write it
/// (`managedFields`, kubectl's last-applied copy of the spec): most of a small
/// object's size, never read by the operator, and skipped as the text is
/// parsed, so no tree of it is ever built. Every object read from the
/// apiserver (watch events, the answer to each status write) comes through
/// here; parsed whole, `managedFields` was the largest share of the heap while
/// 10,000 runs were recorded at once (`bench/profile-heaptrack-10000-sixth.md`).
struct Trimmed(serde_json::Value);

impl<'de> Deserialize<'de> for Trimmed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(Fields(Level::Object))
            .map(Trimmed)
    }
}

/// Where in the object a map is: the bookkeeping sits at known places.
#[derive(Clone, Copy)]
enum Level {
    Object,
    Metadata,
    Annotations,
}

/// Reads a map at `Level` into JSON, skipping the bookkeeping found there.
#[derive(Clone, Copy)]
struct Fields(Level);

impl<'de> DeserializeSeed<'de> for Fields {
    type Value = serde_json::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fields {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    /// `annotations: null` and the like: kept as they are.
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match (self.0, key.as_str()) {
                (Level::Object, "metadata") => map.next_value_seed(Fields(Level::Metadata))?,
                (Level::Metadata, "annotations") => {
                    map.next_value_seed(Fields(Level::Annotations))?
                }
                (Level::Metadata, "managedFields") | (Level::Annotations, LAST_APPLIED) => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                _ => map.next_value()?,
            };
            fields.insert(key, value);
        }
        Ok(serde_json::Value::Object(fields))
    }
}

/// Where in the object and what: `spec.retention.maxCount: invalid value: …`.
fn explain(value: &serde_json::Value, err: &serde_json::Error) -> String {
    let path = locate(value, &err.to_string()).unwrap_or_default();
    if path.is_empty() {
        err.to_string()
    } else {
        format!("{path}: {err}")
    }
}

/// The path of the first number in `value` that the error message quotes (serde
/// names the value, not the field); `None` when there is none to find.
fn locate(value: &serde_json::Value, message: &str) -> Option<String> {
    let quoted = message.split('`').nth(1)?;
    find(value, quoted, String::new())
}

fn find(value: &serde_json::Value, wanted: &str, at: String) -> Option<String> {
    match value {
        serde_json::Value::Number(n) if n.to_string() == wanted => Some(at),
        serde_json::Value::Object(map) => map.iter().find_map(|(key, v)| {
            let next = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            find(v, wanted, next)
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find(v, wanted, format!("{at}[{i}]"))),
        _ => None,
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Trimmed(mut value) = Trimmed::deserialize(deserializer)?;
        let err = match K::deserialize(&value) {
            Ok(object) => {
                return Ok(Self::Read {
                    object,
                    unreadable_status: None,
                });
            }
            Err(err) => explain(&value, &err),
        };
        if let Some(fields) = value.as_object_mut()
            && fields.remove("status").is_some()
            && let Ok(object) = K::deserialize(&value)
        {
            return Ok(Self::Read {
                object,
                unreadable_status: Some(err),
            });
        }
        let metadata = value
            .get("metadata")
            .map(ObjectMeta::deserialize)
            .transpose()
            .map_err(|meta| D::Error::custom(format!("{err}; metadata: {meta}")))?
            .unwrap_or_default();
        Ok(Self::Unreadable {
            metadata,
            error: err,
        })
    }
}

impl<K: Serialize + Resource<DynamicType = ()>> Serialize for Lenient<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Read { object, .. } => object.serialize(serializer),
            Self::Unreadable { metadata, .. } => serde_json::json!({
                "apiVersion": K::api_version(&()),
                "kind": K::kind(&()),
                "metadata": metadata,
            })
            .serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::FsxBackupSchedule;

    fn schedule(
        spec: &serde_json::Value,
        status: &serde_json::Value,
    ) -> Lenient<FsxBackupSchedule> {
        serde_json::from_value(json!({
            "apiVersion": "fsxbackup.io/v1alpha1",
            "kind": "FsxBackupSchedule",
            "metadata": {"name": "nightly", "namespace": "storage", "uid": "u1"},
            "spec": spec,
            "status": status,
        }))
        .expect("always reads")
    }

    fn valid_spec() -> serde_json::Value {
        json!({"target": {"fileSystemIds": ["fs-0123456789abcdef0"]}, "schedule": "0 * * * *"})
    }

    #[test]
    fn an_object_is_read_with_the_operators_annotations_but_not_the_tools_bookkeeping() {
        let stored = json!({
            "apiVersion": "fsxbackup.io/v1alpha1",
            "kind": "FsxBackupSchedule",
            "metadata": {
                "name": "nightly", "namespace": "storage",
                "annotations": {
                    LAST_APPLIED: valid_spec().to_string(),
                    "fsxbackup.io/run-now": "n1",
                },
                "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": valid_spec(),
        });
        // As the apiserver sends it (text), and from a JSON tree.
        let from_text: Lenient<FsxBackupSchedule> =
            serde_json::from_str(&stored.to_string()).expect("reads");
        let from_tree: Lenient<FsxBackupSchedule> = serde_json::from_value(stored).expect("reads");
        for object in [from_text, from_tree] {
            assert!(object.read().is_some());
            assert_eq!(object.meta().managed_fields, None);
            let annotations = object.meta().annotations.clone().unwrap_or_default();
            assert_eq!(annotations.len(), 1, "{annotations:?}");
            assert_eq!(annotations["fsxbackup.io/run-now"], "n1");
        }
    }

    #[test]
    fn null_annotations_are_read_as_none() {
        let object: Lenient<FsxBackupSchedule> = serde_json::from_str(
            &json!({
                "apiVersion": "fsxbackup.io/v1alpha1",
                "kind": "FsxBackupSchedule",
                "metadata": {"name": "nightly", "namespace": "storage", "annotations": null},
                "spec": {"target": {"fileSystemIds": ["fs-0123456789abcdef0"]}, "schedule": "0 * * * *"},
            })
            .to_string(),
        )
        .expect("reads");
        assert!(object.read().is_some(), "{object:?}");
        assert_eq!(object.meta().annotations, None);
    }

    #[test]
    fn a_good_object_is_read_as_its_kind() {
        let read = schedule(&valid_spec(), &json!({"missedRuns": 3}));
        let Lenient::Read {
            object,
            unreadable_status,
        } = read
        else {
            panic!("read");
        };
        assert_eq!(object.status.and_then(|s| s.missed_runs), Some(3));
        assert_eq!(unreadable_status, None);
    }

    #[test]
    fn an_unreadable_status_is_set_aside_and_named() {
        let read = schedule(&valid_spec(), &json!({"missedRuns": 4_294_967_296_u64}));
        let Lenient::Read {
            object,
            unreadable_status,
        } = read
        else {
            panic!("read without status");
        };
        assert!(object.status.is_none());
        let why = unreadable_status.expect("why");
        assert!(why.starts_with("status.missedRuns: "), "{why}");
    }

    #[test]
    fn an_unreadable_spec_keeps_the_metadata_and_names_the_field() {
        let mut spec = valid_spec();
        spec["retention"] = json!({"maxCount": 4_294_967_296_u64});
        let read = schedule(&spec, &json!({}));
        assert!(read.read().is_none());
        assert_eq!(read.meta().name.as_deref(), Some("nightly"));
        assert_eq!(read.meta().uid.as_deref(), Some("u1"));
        let Lenient::Unreadable { error, .. } = &read else {
            panic!("unreadable");
        };
        assert!(error.starts_with("spec.retention.maxCount: "), "{error}");
        let written = serde_json::to_value(&read).expect("serializes");
        assert_eq!(written["metadata"]["name"], "nightly");
        assert_eq!(written["kind"], "FsxBackupSchedule");
    }
}
