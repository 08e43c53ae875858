//! The reference profile of a version, stored with it for monitoring: the training data's
//! columns profiled by `kairo_monitor::profile` (kinds, quantile bins, categories, nulls,
//! moments), each feature tied to where it appears in a logged request, plus the model's own
//! predictions on that data, the reference for prediction drift.

use kairo_monitor::cbpe::{self, Estimator};
use kairo_monitor::frame::Frame;
use kairo_monitor::performance;
use kairo_monitor::profile::{self, Profile, ProfileOptions, Role, Source};
use kairo_runtime::explain::Explainer;
use kairo_runtime::{DType, Model};

use kairo_core::privacy::{self, Key, Policy, PrivacySpec};

use crate::holdout::{self, Table};
use crate::{RegistryError, Result};

/// Rows of the training data the model predicts for the prediction reference.
const MAX_PREDICTED_ROWS: usize = 200_000;

/// A profile and what the user should know about how it was built.
pub struct Built {
    pub profile: Profile,
    pub notes: Vec<String>,
}

/// Profile the CSV `bytes` for `model`. `target` names the label column; without it, a model
/// with one `[N, k]` float input and data with `k + 1` columns takes the last column as the
/// target (and says so).
pub fn build(
    model: &Model,
    bytes: &[u8],
    label: &str,
    target: Option<&str>,
    kinds: &std::collections::HashMap<String, profile::Kind>,
    privacy: Option<(&PrivacySpec, Option<&Key>)>,
) -> Result<Built> {
    let frame = Frame::parse_csv(bytes, label)?;
    let names: Vec<&str> = frame.columns.iter().map(|c| c.name.as_str()).collect();
    let columns = || names.iter().map(|n| n.to_string()).collect();
    if let Some(t) = target {
        if !names.contains(&t) {
            return Err(RegistryError::NoDataTarget {
                label: label.to_string(),
                target: t.to_string(),
                columns: columns(),
            });
        }
    }
    let sig = model.signature();
    let mut notes = Vec::new();
    let by_name = sig.inputs.iter().all(|s| names.contains(&s.name.as_str()));
    let mut target = target.map(str::to_string);
    // Feature name → where it is in a logged request.
    let mut sources: Vec<(String, Source)> = Vec::new();
    if by_name {
        for s in &sig.inputs {
            sources.push((s.name.clone(), Source { side: "inputs".into(), tensor: s.name.clone(), index: None }));
        }
    } else if sig.inputs.len() == 1 && sig.inputs[0].dtype == DType::F32 {
        let spec = &sig.inputs[0];
        let width = spec.shape.get(1).copied().unwrap_or(-1);
        if target.is_none() && width >= 0 && names.len() == width as usize + 1 {
            let last = names[names.len() - 1].to_string();
            notes.push(format!("took '{last}' (the last column) as the target; pass --target to name it"));
            target = Some(last);
        }
        let features: Vec<&str> = names.iter().copied().filter(|n| Some(*n) != target.as_deref()).collect();
        if width >= 0 && features.len() != width as usize {
            return Err(RegistryError::DataWidth {
                label: label.to_string(),
                input: spec.name.clone(),
                want: width,
                have: features.len(),
            });
        }
        for (i, f) in features.iter().enumerate() {
            sources.push((f.to_string(), Source { side: "inputs".into(), tensor: spec.name.clone(), index: Some(i) }));
        }
    } else {
        let inputs = model.signature().inputs.iter().map(|s| s.name.clone()).collect();
        return Err(RegistryError::InputsNotColumns { label: label.to_string(), inputs });
    }
    if let Some(unknown) = kinds.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(RegistryError::KindColumn { column: unknown.clone(), columns: columns() });
    }
    let options = ProfileOptions { target: target.clone(), kinds: kinds.clone(), ..ProfileOptions::default() };
    let mut p = profile::profile(&frame, &options);
    // Keep the features (with their place in a request) and the target; the model never sees other columns.
    p.columns.retain_mut(|c| {
        if let Some((_, s)) = sources.iter().find(|(n, _)| *n == c.name) {
            c.source = Some(s.clone());
            true
        } else {
            c.role == Role::Target
        }
    });
    if let Some((spec, key)) = privacy {
        redact(&mut p, &frame, spec, key);
    }
    match predictions(model, bytes, label, target.as_deref().unwrap_or("")) {
        Ok((columns, estimator, covers)) => {
            p.columns.extend(columns);
            p.estimator = estimator.map(Box::new);
            p.tree_covers = covers;
        }
        Err(e) => notes.push(format!("no prediction reference: {e}")),
    }
    Ok(Built { profile: p, notes })
}

/// The profile as the prediction log will see the data: a dropped field is not profiled (it is
/// never logged), a hashed, masked or bucketed one is profiled as the categories the policy
/// makes of it — so drift compares like with like.
fn redact(p: &mut Profile, frame: &Frame, spec: &PrivacySpec, key: Option<&Key>) {
    use kairo_monitor::frame::Values;
    for (field, policy) in &spec.fields {
        if *policy == Policy::Keep {
            continue;
        }
        if *policy == Policy::Drop {
            if let Some(i) = p.columns.iter().position(|c| c.name == *field) {
                let dropped = p.columns.remove(i);
                if let Some(source) = dropped.source {
                    p.withheld.push(profile::Withheld { name: dropped.name, source });
                }
            }
            continue;
        }
        let (Some(column), Some(i)) = (frame.column(field), p.columns.iter().position(|c| c.name == *field)) else {
            continue;
        };
        let texts: Vec<Option<String>> = match &column.values {
            Values::Numeric(v) => v
                .iter()
                .map(|x| {
                    let v = if x.is_finite() { serde_json::json!(x) } else { serde_json::Value::Null };
                    privacy::apply(policy, &v, key).and_then(|r| r.as_str().map(str::to_string))
                })
                .collect(),
            Values::Categorical { codes, dictionary } => codes
                .iter()
                .map(|c| {
                    let v = dictionary.get(*c as usize).map(|s| serde_json::Value::String(s.clone()))?;
                    privacy::apply(policy, &v, key).and_then(|r| r.as_str().map(str::to_string))
                })
                .collect(),
        };
        let old = &p.columns[i];
        let mut redacted = profile::categorical(&old.name, old.role, texts.iter().map(|t| t.as_deref()), 1000);
        redacted.source = old.source.clone();
        p.columns[i] = redacted;
    }
}

/// A binary classifier's estimator of performance before labels (CBPE), fitted on labelled
/// rows of `table` it predicted; `None` for other models, or rows without both classes.
pub fn estimator(predicted: &holdout::Predictions, table: &Table, target: &str, reference: &str) -> Option<Estimator> {
    let t = table.column(target)?;
    let (Some(labels), Some((2, probabilities))) = (&predicted.labels, &predicted.probabilities) else {
        return None;
    };
    let truth: Vec<String> = table.rows.iter().map(|r| performance::normalise_label(&r[t])).collect();
    let labels: Vec<String> = labels.iter().map(|l| performance::normalise_label(l)).collect();
    let classes = performance::classes(&truth, &labels);
    let [_, positive] = classes.as_slice() else { return None };
    let p: Vec<f64> = probabilities.chunks(2).map(|c| f64::from(c[1])).collect();
    let is_pos: Vec<bool> = truth.iter().map(|l| l == positive).collect();
    let predicted: Vec<bool> = labels.iter().map(|l| l == positive).collect();
    cbpe::fit(reference, positive, &p, &is_pos, &predicted)
}

/// What the model's predictions on the training data add to its profile.
type Predicted = (Vec<profile::ColumnProfile>, Option<Estimator>, Vec<Vec<f64>>);

/// The model's outputs on the training data as profile columns: `prediction` (the label or
/// the value) and, for a binary classifier, `prediction.score` (the positive class's
/// probability); its estimator fitted on the training data (a holdout, when the model has
/// one, replaces it: see `register`); a tree ensemble's covers.
fn predictions(model: &Model, bytes: &[u8], label: &str, target: &str) -> Result<Predicted> {
    let mut table = Table::parse(bytes, label)?;
    table.rows.truncate(MAX_PREDICTED_ROWS);
    let predicted = holdout::predict(model, &table, target)?;
    let estimator = estimator(&predicted, &table, target, "training data");
    let covers = match model.tree_explainer() {
        Some(e) => {
            let mut e = e.clone();
            let inputs = holdout::inputs(model, &table, target, 0, table.rows.len())?;
            e.set_covers_from(&inputs).map(|()| e.covers()).unwrap_or_default()
        }
        None => Vec::new(),
    };
    let sig = model.signature();
    let (label_ix, prob_ix) = holdout::output_roles(sig);
    let output = |ix: usize, index: Option<usize>| Source {
        side: "outputs".into(),
        tensor: sig.outputs[ix].name.clone(),
        index,
    };
    let mut columns = Vec::new();
    if let (Some(labels), Some(ix)) = (&predicted.labels, label_ix) {
        let mut c = profile::categorical("prediction", Role::Prediction, labels.iter().map(|l| Some(l.as_str())), 1000);
        c.source = Some(output(ix, None));
        columns.push(c);
        if let (Some((2, probs)), Some(pix)) = (&predicted.probabilities, prob_ix) {
            let scores: Vec<f64> = probs.chunks(2).map(|p| f64::from(p[1])).collect();
            let mut c = profile::numeric("prediction.score", Role::Prediction, &scores, 10);
            c.source = Some(output(pix, Some(1)));
            columns.push(c);
        }
    } else if let Some(values) = &predicted.values {
        let mut c = profile::numeric("prediction", Role::Prediction, values, 10);
        c.source = Some(output(0, None));
        columns.push(c);
    }
    Ok((columns, estimator, covers))
}

/// The explainer contributions of `model` come from: its own explanation data (`kairo
/// train`), else its tree ensemble with the covers the profile recorded, its features named
/// as the profile names them. `None` for other models, or trees registered without data.
pub fn explainer(model: &Model, profile: Option<&Profile>) -> Option<Explainer> {
    if let Some(json) = model.metadata(kairo_runtime::explain::METADATA_KEY) {
        return Explainer::from_metadata(json).ok();
    }
    let profile = profile.filter(|p| !p.tree_covers.is_empty())?;
    let mut e = model.tree_explainer()?.clone().with_covers(&profile.tree_covers).ok()?;
    for f in &mut e.features {
        let named = profile.columns.iter().find(|c| {
            c.source
                .as_ref()
                .is_some_and(|s| s.side == "inputs" && Some(&s.tensor) == f.input.as_ref() && s.index == f.index)
        });
        if let Some(c) = named {
            f.name = c.name.clone();
        }
    }
    Some(e)
}
