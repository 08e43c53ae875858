//! The stored shape of a version's servable facts (`model_version_details`): the typed
//! `VersionArtifact` of `kairo-core` to JSON text and back. This is the only place those
//! records are (de)serialized. The text is what Kairo has always written — objects with their
//! keys sorted (it went through `serde_json::Value`), NaN as `null` — so existing databases
//! read and rows written now are byte-identical to rows written before the record was typed.
//! A stored value that does not fit its type is `StoreError::Invalid` naming the version, the
//! column and the path inside it.

use std::collections::BTreeMap;

use kairo_core::profile::Profile;
use kairo_core::serving::{FeatureImportance, Importance, ReferenceProfile};
use kairo_core::signature::{DType, Signature, TensorSpec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, StoreError};

/// Which version a stored value belongs to, for error messages.
pub(crate) struct Row<'a> {
    pub name: &'a str,
    pub version: i64,
}

impl Row<'_> {
    fn invalid(&self, column: &str, why: impl std::fmt::Display) -> StoreError {
        StoreError::Invalid(format!(
            "model '{}' version {}: stored {column} is invalid: {why}",
            self.name, self.version
        ))
    }

    /// Parse `text` as `T`, naming the path of the first value that does not fit.
    fn parse<T: DeserializeOwned>(&self, column: &str, text: &str) -> Result<T> {
        let value: Value = serde_json::from_str(text).map_err(|e| self.invalid(column, format!("not JSON: {e}")))?;
        self.decode(column, value)
    }

    fn decode<T: DeserializeOwned>(&self, column: &str, value: Value) -> Result<T> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                self.invalid(column, inner)
            } else {
                self.invalid(column, format!("{path}: {inner}"))
            }
        })
    }
}

/// The stored text: through `Value`, so object keys come out sorted as they always have.
fn text<T: Serialize>(column: &str, value: &T) -> Result<String> {
    serde_json::to_value(value)
        .map(|v| v.to_string())
        .map_err(|e| StoreError::Invalid(format!("{column} cannot be stored: {e}")))
}

#[derive(Serialize, Deserialize)]
struct StoredSignature {
    inputs: Vec<StoredTensorSpec>,
    outputs: Vec<StoredTensorSpec>,
}

#[derive(Serialize, Deserialize)]
struct StoredTensorSpec {
    name: String,
    /// The OIP name (`FP32`).
    datatype: String,
    shape: Vec<i64>,
}

pub(crate) fn signature_text(sig: &Signature) -> Result<String> {
    let spec = |s: &TensorSpec| StoredTensorSpec {
        name: s.name.clone(),
        datatype: s.dtype.oip_name().to_string(),
        shape: s.shape.clone(),
    };
    text(
        "signature",
        &StoredSignature {
            inputs: sig.inputs.iter().map(spec).collect(),
            outputs: sig.outputs.iter().map(spec).collect(),
        },
    )
}

pub(crate) fn read_signature(row: &Row, text: &str) -> Result<Signature> {
    let stored: StoredSignature = row.parse("signature", text)?;
    let specs = |side: &str, specs: Vec<StoredTensorSpec>| -> Result<Vec<TensorSpec>> {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let dtype = DType::from_oip(&s.datatype).ok_or_else(|| {
                    row.invalid("signature", format!("{side}[{i}].datatype: unknown datatype `{}`", s.datatype))
                })?;
                Ok(TensorSpec { name: s.name, dtype, shape: s.shape })
            })
            .collect()
    };
    Ok(Signature { inputs: specs("inputs", stored.inputs)?, outputs: specs("outputs", stored.outputs)? })
}

pub(crate) fn metrics_text(metrics: &BTreeMap<String, f64>) -> Result<String> {
    text("metrics", metrics)
}

/// NaN was stored as `null`.
pub(crate) fn read_metrics(row: &Row, text: &str) -> Result<BTreeMap<String, f64>> {
    let stored: BTreeMap<String, Option<f64>> = row.parse("metrics", text)?;
    Ok(stored.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
}

pub(crate) fn profile_text(profile: &ReferenceProfile) -> Result<Option<String>> {
    match profile {
        ReferenceProfile::Current(p) => text("profile", p).map(Some),
        // Never written: an outdated profile is only ever read.
        ReferenceProfile::Outdated => Ok(None),
    }
}

pub(crate) fn read_profile(row: &Row, text: &str) -> Result<ReferenceProfile> {
    let value: Value = serde_json::from_str(text).map_err(|e| row.invalid("profile", format!("not JSON: {e}")))?;
    if is_outdated_profile(&value) {
        return Ok(ReferenceProfile::Outdated);
    }
    Ok(ReferenceProfile::Current(row.decode::<Profile>("profile", value)?))
}

/// The profile Kairo wrote before monitoring: columns with `null_share` and no `role`.
fn is_outdated_profile(v: &Value) -> bool {
    let columns = v.get("columns").and_then(Value::as_array);
    columns
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.get("null_share").is_some() && c.get("role").is_none()))
}

#[derive(Serialize, Deserialize)]
struct StoredImportance {
    metric: String,
    baseline: Option<f64>,
    rows: u64,
    holdout: String,
    features: Vec<StoredFeature>,
}

#[derive(Serialize, Deserialize)]
struct StoredFeature {
    name: String,
    importance: Option<f64>,
    std: Option<f64>,
}

pub(crate) fn importance_text(imp: &Importance) -> Result<String> {
    // NaN serialises as `null` either way; `Some` keeps a finite value a number.
    let stored = StoredImportance {
        metric: imp.metric.clone(),
        baseline: Some(imp.baseline),
        rows: imp.rows,
        holdout: imp.holdout.clone(),
        features: imp
            .features
            .iter()
            .map(|f| StoredFeature { name: f.name.clone(), importance: Some(f.importance), std: Some(f.std) })
            .collect(),
    };
    text("importance", &stored)
}

pub(crate) fn read_importance(row: &Row, text: &str) -> Result<Importance> {
    let s: StoredImportance = row.parse("importance", text)?;
    let nan = |x: Option<f64>| x.unwrap_or(f64::NAN);
    Ok(Importance {
        metric: s.metric,
        baseline: nan(s.baseline),
        rows: s.rows,
        holdout: s.holdout,
        features: s
            .features
            .into_iter()
            .map(|f| FeatureImportance { name: f.name, importance: nan(f.importance), std: nan(f.std) })
            .collect(),
    })
}

/// A version's servable facts as one JSON document — the `artifact` of a packaged model's
/// `kairo-model.json` — in exactly the stored shapes (keys sorted), so the same version always
/// gives the same bytes. Read back with [`artifact_from_document`].
pub fn artifact_document(a: &kairo_core::serving::VersionArtifact) -> Result<Value> {
    let parse = |t: String| serde_json::from_str::<Value>(&t).unwrap_or(Value::Null);
    let mut doc = serde_json::Map::new();
    doc.insert("object".into(), Value::String(a.object.to_hex()));
    doc.insert("size".into(), Value::from(a.size));
    doc.insert("signature".into(), parse(signature_text(&a.signature)?));
    doc.insert("metrics".into(), parse(metrics_text(&a.metrics)?));
    let profile = a.profile.as_ref().map(profile_text).transpose()?.flatten();
    doc.insert("profile".into(), profile.map(parse).unwrap_or(Value::Null));
    doc.insert(
        "importance".into(),
        a.importance.as_ref().map(importance_text).transpose()?.map(parse).unwrap_or(Value::Null),
    );
    Ok(Value::Object(doc))
}

/// The facts of `name` version `version` from [`artifact_document`]'s JSON; a value that does
/// not fit names the field.
pub fn artifact_from_document(name: &str, version: i64, doc: &Value) -> Result<kairo_core::serving::VersionArtifact> {
    let row = Row { name, version };
    let field = |k: &str| doc.get(k).filter(|v| !v.is_null());
    let need = |k: &str| field(k).ok_or_else(|| row.invalid(k, "missing"));
    let object =
        need("object")?.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| row.invalid("object", "not a hash"))?;
    let size = need("size")?.as_u64().ok_or_else(|| row.invalid("size", "not a byte count"))?;
    Ok(kairo_core::serving::VersionArtifact {
        object,
        size,
        signature: read_signature(&row, &need("signature")?.to_string())?,
        metrics: field("metrics").map(|m| read_metrics(&row, &m.to_string())).transpose()?.unwrap_or_default(),
        profile: field("profile").map(|p| read_profile(&row, &p.to_string())).transpose()?,
        importance: field("importance").map(|i| read_importance(&row, &i.to_string())).transpose()?,
    })
}
