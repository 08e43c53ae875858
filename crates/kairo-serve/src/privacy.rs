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
    /// The policy as the serving path writes numbers with it.
    compiled: privacy::Compiled,
}

/// The compiled policy of one loaded version.
#[derive(Debug, Clone)]
pub struct Redactor {
    fields: Vec<Field>,
    key: Option<Key>,
    /// Per input tensor with column policies: column → index into `fields`.
    columns: std::collections::HashMap<String, Vec<Option<usize>>>,
    /// Per input tensor with a policy on the whole of it: its index into `fields`.
    whole: std::collections::HashMap<String, usize>,
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
        key: Option<Key>,
    ) -> Result<Option<Redactor>, String> {
        if !spec.is_active() {
            return Ok(None);
        }
        if spec.needs_key() && key.is_none() {
            return Err(format!(
                "models.{model}.privacy hashes fields, but {} is not set: put the hashing key (any secret text) there",
                spec.key_env()
            ));
        }
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
            fields.push(Field { tensor, index, policy: policy.clone(), compiled: privacy::Compiled::new(policy) });
        }
        let mut columns: std::collections::HashMap<String, Vec<Option<usize>>> = Default::default();
        let mut whole = std::collections::HashMap::new();
        for (k, f) in fields.iter().enumerate() {
            if f.index.is_none() {
                whole.insert(f.tensor.clone(), k);
            }
            if let Some(i) = f.index {
                let slots = columns.entry(f.tensor.clone()).or_default();
                if slots.len() <= i {
                    slots.resize(i + 1, None);
                }
                slots[i] = Some(k);
            }
        }
        Ok(Some(Redactor { fields, key, columns, whole }))
    }

    /// The inputs of each of `rows` rows as the JSON object the log stores, with the policy
    /// applied: a dropped whole input is left out, a dropped column becomes `null`. Written
    /// straight from the tensors (this runs on the request's thread): only a value under a
    /// policy is turned into a JSON value and back.
    pub fn rows(&self, inputs: &[(String, Tensor)], rows: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(rows);
        let mut buf = Vec::with_capacity(256);
        let mut cell = Vec::with_capacity(32);
        for r in 0..rows {
            buf.clear();
            buf.push(b'{');
            let mut first = true;
            for (name, t) in inputs {
                let width: usize = t.shape.iter().skip(1).product::<usize>().max(1);
                if (r + 1) * width > t.data.len() {
                    continue;
                }
                let whole = self.whole.get(name.as_str()).map(|k| &self.fields[*k]);
                if whole.is_some_and(|f| f.policy == Policy::Drop) {
                    continue;
                }
                if !first {
                    buf.push(b',');
                }
                first = false;
                let _ = serde_json::to_writer(&mut buf, name);
                buf.push(b':');
                if let Some(f) = whole {
                    // A policy on a whole input: its row as a value, transformed.
                    cell.clear();
                    if width == 1 {
                        crate::oip::write_scalar(&mut cell, &t.data, r);
                    } else {
                        crate::oip::write_data(&mut cell, &t.data, r * width, (r + 1) * width);
                    }
                    let v: Value = serde_json::from_slice(&cell).unwrap_or(Value::Null);
                    let _ = serde_json::to_writer(
                        &mut buf,
                        &privacy::apply(&f.policy, &v, self.key.as_ref()).unwrap_or(Value::Null),
                    );
                    continue;
                }
                let columns: &[Option<usize>] = self.columns.get(name.as_str()).map(Vec::as_slice).unwrap_or_default();
                if columns.is_empty() {
                    if width == 1 {
                        crate::oip::write_scalar(&mut buf, &t.data, r);
                    } else {
                        crate::oip::write_data(&mut buf, &t.data, r * width, (r + 1) * width);
                    }
                    continue;
                }
                let field = |j: usize| columns.get(j).copied().flatten().map(|k| &self.fields[k]);
                if width == 1 {
                    // A one-wide input addressed by column 0.
                    self.write_cell(&mut buf, &mut cell, t, r, field(0));
                    continue;
                }
                buf.push(b'[');
                for j in 0..width {
                    if j > 0 {
                        buf.push(b',');
                    }
                    self.write_cell(&mut buf, &mut cell, t, r * width + j, field(j));
                }
                buf.push(b']');
            }
            buf.push(b'}');
            out.push(String::from_utf8_lossy(&buf).into_owned());
        }
        out
    }

    /// Element `i` of `t`, under `field`'s policy if it has one (numbers straight from the
    /// tensor; other values through their JSON).
    fn write_cell(&self, buf: &mut Vec<u8>, cell: &mut Vec<u8>, t: &Tensor, i: usize, field: Option<&Field>) {
        let Some(f) = field else {
            crate::oip::write_scalar(buf, &t.data, i);
            return;
        };
        use kairo_runtime::Data;
        let number = match &t.data {
            Data::F32(v) => v.get(i).map(|x| f64::from(*x)),
            Data::F64(v) => v.get(i).copied(),
            Data::I64(v) => v.get(i).map(|x| *x as f64),
            Data::I32(v) => v.get(i).map(|x| f64::from(*x)),
            _ => None,
        };
        if let Some(x) = number {
            f.compiled.write_number(x, self.key.as_ref(), buf);
            return;
        }
        cell.clear();
        crate::oip::write_scalar(cell, &t.data, i);
        let v: Value = serde_json::from_slice(cell).unwrap_or(Value::Null);
        let redacted = privacy::apply(&f.policy, &v, self.key.as_ref());
        let _ = serde_json::to_writer(&mut *buf, &redacted.unwrap_or(Value::Null));
    }
}
