//! A model's privacy policy (`models: NAME: privacy:`) made concrete for one loaded version:
//! each field resolved to where it sits in a request (an input tensor, or a column of one, as
//! the version's reference profile says) and applied to every answered row's inputs before the
//! row is queued for the prediction log. The raw inputs are not queued.

use kairo_core::privacy::{self, Key, Policy, PrivacySpec};
use kairo_core::profile::Profile;
use kairo_core::signature::Signature;
use kairo_runtime::Tensor;
use serde_json::Value;

/// One field's place and policy.
#[derive(Debug, Clone)]
struct Field {
    tensor: String,
    index: Option<usize>,
    policy: Policy,
}

/// The compiled policy of one loaded version.
#[derive(Debug, Clone)]
pub struct Redactor {
    fields: Vec<Field>,
    key: Option<Key>,
}

impl Redactor {
    /// `spec` for `model` against the version's signature and profile; `None` when it changes
    /// nothing. Refused: `hash` without its key in the environment, or a field that is neither a
    /// column of the profile nor an input of the model.
    pub fn compile(
        model: &str,
        spec: &PrivacySpec,
        signature: &Signature,
        profile: Option<&Profile>,
        secret: Option<String>,
    ) -> Result<Option<Redactor>, String> {
        if !spec.is_active() {
            return Ok(None);
        }
        let key = match (spec.needs_key(), secret.filter(|s| !s.is_empty())) {
            (true, None) => {
                return Err(format!(
                "models.{model}.privacy hashes fields, but {} is not set: put the hashing key (any secret text) there",
                spec.key_env()
            ))
            }
            (_, s) => s.map(|s| Key::from_secret(&s)),
        };
        let mut fields = Vec::new();
        for (name, policy) in &spec.fields {
            if *policy == Policy::Keep {
                continue;
            }
            let from_profile = profile.and_then(|p| {
                p.columns
                    .iter()
                    .find(|c| c.name == *name)
                    .and_then(|c| c.source.as_ref())
                    .or_else(|| p.withheld.iter().find(|w| w.name == *name).map(|w| &w.source))
                    .filter(|s| s.side == "inputs")
                    .map(|s| (s.tensor.clone(), s.index))
            });
            let place = from_profile
                .or_else(|| signature.inputs.iter().find(|i| i.name == *name).map(|i| (i.name.clone(), None)));
            let Some((tensor, index)) = place else {
                let mut known: Vec<String> = signature.inputs.iter().map(|i| i.name.clone()).collect();
                if let Some(p) = profile {
                    known.extend(
                        p.columns
                            .iter()
                            .filter(|c| c.source.as_ref().is_some_and(|s| s.side == "inputs"))
                            .map(|c| c.name.clone()),
                    );
                }
                return Err(format!(
                    "models.{model}.privacy.fields.{name}: the model has no such input or profiled column (it has: {})",
                    known.join(", ")
                ));
            };
            fields.push(Field { tensor, index, policy: policy.clone() });
        }
        Ok(Some(Redactor { fields, key }))
    }

    /// The inputs of each of `rows` rows as the JSON object the log stores, with the policy
    /// applied: a dropped whole input is left out, a dropped column becomes `null`.
    pub fn rows(&self, inputs: &[(String, Tensor)], rows: usize) -> Vec<String> {
        let mut buf = Vec::with_capacity(256);
        (0..rows)
            .map(|r| {
                crate::predlog::row_json(inputs, r, &mut buf);
                let mut row: Value = serde_json::from_slice(&buf).unwrap_or_else(|_| Value::Object(Default::default()));
                self.apply(&mut row);
                row.to_string()
            })
            .collect()
    }

    fn apply(&self, row: &mut Value) {
        let Some(obj) = row.as_object_mut() else { return };
        for f in &self.fields {
            match f.index {
                None => {
                    let Some(v) = obj.get(&f.tensor) else { continue };
                    match privacy::apply(&f.policy, v, self.key.as_ref()) {
                        Some(new) => {
                            obj.insert(f.tensor.clone(), new);
                        }
                        None => {
                            obj.remove(&f.tensor);
                        }
                    }
                }
                Some(i) => {
                    let Some(cell) = obj.get_mut(&f.tensor).and_then(|v| v.as_array_mut()).and_then(|a| a.get_mut(i))
                    else {
                        continue;
                    };
                    *cell = privacy::apply(&f.policy, cell, self.key.as_ref()).unwrap_or(Value::Null);
                }
            }
        }
    }
}
