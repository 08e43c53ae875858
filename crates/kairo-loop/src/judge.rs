//! Judging a challenger against the champion with evidence: both models predict the same
//! rows (the policy's holdout and/or production rows labelled after the trigger), and a paired
//! test on those rows decides. The evidence records both model hashes, the hash of the rows,
//! the rows' time range, the statistic, its interval and the per-slice table.

use kairo_core::automation::{AutomationSpec, Test};
use kairo_core::{time, Hash};
use kairo_data::Project;
use kairo_monitor::compare;
use kairo_registry::holdout::{self, Predictions, Table};
use kairo_store::Metadata;
use serde_json::{json, Value};

use crate::Result;

/// Which rows, which versions.
pub struct Question<'a> {
    pub model: &'a str,
    pub champion: i64,
    pub challenger: i64,
    /// Include the policy's holdout file.
    pub holdout: bool,
    /// Include production rows predicted at or after this time that have labels.
    pub recent_since_ms: Option<i64>,
}

/// The decision and what it rests on.
pub struct Verdict {
    pub better: bool,
    /// One line for people: "auc +0.081 [0.052, 0.110] at 95%".
    pub summary: String,
    /// Everything the incident records.
    pub evidence: Value,
}

/// Why the challenger could not be judged on these rows: the incident fails its evaluate step
/// (a store or file error is a `LoopError` of its own and stops the tick instead).
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("{0}")]
    Rows(String),
    #[error("{0}")]
    Predict(String),
    #[error("{0}")]
    Test(String),
}

/// The rows both models are judged on.
struct Rows {
    table: Table,
    target: String,
    sources: Vec<Value>,
}

pub async fn judge(project: &Project, md: &Metadata, spec: &AutomationSpec, q: &Question<'_>) -> Result<Verdict> {
    let ev = &spec.evaluate;
    let rows = gather(project, md, spec, q).await?;
    let t = rows
        .table
        .column(&rows.target)
        .ok_or_else(|| JudgeError::Rows(format!("no target column `{}`", rows.target)))?;
    let truth: Vec<String> = rows.table.rows.iter().map(|r| r[t].clone()).collect();
    let mut models = Vec::new();
    for v in [q.champion, q.challenger] {
        let artifact = kairo_registry::artifact_of(md, q.model, v).await?;
        let bytes = kairo_registry::version_bytes(project, &artifact)?;
        let model = kairo_registry::load_model(&bytes, &format!("{} version {v}", q.model))?;
        let view = view_for(&model, &rows.table, &rows.target, &ev.no_regression_on);
        let p = holdout::predict(&model, &view, &rows.target)
            .map_err(|e| JudgeError::Predict(format!("{} version {v}: {e}", q.model)))?;
        models.push((v, artifact.object, p));
    }
    let (champion, challenger) = (&models[0], &models[1]);
    let slices: Vec<(String, Vec<String>)> = ev
        .no_regression_on
        .iter()
        .map(|c| {
            let i = rows.table.column(c).ok_or_else(|| {
                JudgeError::Rows(format!("evaluate.no_regression_on: column `{c}` is not in the evaluation rows"))
            })?;
            Ok((c.clone(), rows.table.rows.iter().map(|r| r[i].clone()).collect()))
        })
        .collect::<Result<_, JudgeError>>()?;
    let outcome = compare_predictions(ev, &truth, &champion.2, &challenger.2, &slices)?;
    let rows_hash = rows_hash(&rows.table);
    let evidence = json!({
        "metric": ev.metric,
        "test": match ev.test { Test::PairedBootstrap => "paired_bootstrap", Test::Mcnemar => "mcnemar" },
        "confidence": ev.confidence,
        "seed": ev.seed,
        "champion": {"version": champion.0, "object": champion.1.to_hex()},
        "challenger": {"version": challenger.0, "object": challenger.1.to_hex()},
        "rows": rows.table.rows.len(),
        "rows_hash": rows_hash.to_hex(),
        "sources": rows.sources,
        "result": outcome.result,
        "slices": outcome.slices,
    });
    Ok(Verdict { better: outcome.better, summary: outcome.summary, evidence })
}

/// The holdout and/or the labelled production rows, as one table with the target column.
async fn gather(project: &Project, md: &Metadata, spec: &AutomationSpec, q: &Question<'_>) -> Result<Rows> {
    let policy = kairo_registry::aliases::policy(project, q.model)?;
    let target = policy
        .holdout
        .as_ref()
        .map(|h| h.target.clone())
        .or_else(|| spec.register.target.clone())
        .unwrap_or_else(|| "label".into());
    let mut parts: Vec<Table> = Vec::new();
    let mut sources = Vec::new();
    if q.holdout {
        let h =
            policy.holdout.as_ref().ok_or_else(|| JudgeError::Rows(format!("models.{} has no holdout", q.model)))?;
        let table = Table::read(&project.abs(&h.path)).map_err(|e| JudgeError::Rows(e.to_string()))?;
        sources.push(json!({"kind": "holdout", "path": h.path, "rows": table.rows.len()}));
        parts.push(table);
    }
    if let Some(since) = q.recent_since_ms {
        let objects = project.objects()?;
        let labelled = kairo_watch::labelled::rows(md, &objects, q.model, since, i64::MAX, true).await?;
        let (first, last) = (labelled.first().map(|r| r.row.time_ms), labelled.last().map(|r| r.row.time_ms));
        let mut csv = Vec::new();
        let order = kairo_watch::labelled::input_order(md, q.model).await?;
        kairo_watch::labelled::write_csv(&labelled, &order, &target, &mut csv)?;
        let table = Table::parse(&csv, "labelled production rows").map_err(|e| JudgeError::Rows(e.to_string()))?;
        sources.push(json!({
            "kind": "recent_labels", "rows": table.rows.len(),
            "from": first.map(time::millis_to_string), "to": last.map(time::millis_to_string),
            "predicted_after": time::millis_to_string(since),
        }));
        parts.push(table);
    }
    let table = union(parts);
    if table.rows.is_empty() {
        return Err(JudgeError::Rows("no rows to judge on".into()).into());
    }
    Ok(Rows { table, target, sources })
}

/// Tables stacked by column name (a column one lacks is empty there).
fn union(parts: Vec<Table>) -> Table {
    let mut columns: Vec<String> = Vec::new();
    for p in &parts {
        for c in &p.columns {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
    }
    let mut rows = Vec::new();
    for p in parts {
        let map: Vec<Option<usize>> = columns.iter().map(|c| p.column(c)).collect();
        for r in p.rows {
            rows.push(map.iter().map(|i| i.map(|i| r[i].clone()).unwrap_or_default()).collect());
        }
    }
    Table { columns, rows }
}

/// The columns a model reads: its inputs by name when the table has them all; otherwise (one
/// `[N, k]` input) every column but the target, the slice columns and the export's metadata.
fn view_for(model: &kairo_runtime::Model, table: &Table, target: &str, slices: &[String]) -> Table {
    let sig = model.signature();
    let keep: Vec<usize> = if sig.inputs.iter().all(|i| table.column(&i.name).is_some()) {
        sig.inputs.iter().filter_map(|i| table.column(&i.name)).chain(table.column(target)).collect()
    } else {
        (0..table.columns.len())
            .filter(|i| {
                let c = table.columns[*i].as_str();
                c == target || !(slices.iter().any(|s| s == c) || kairo_watch::labelled::META_COLUMNS.contains(&c))
            })
            .collect()
    };
    Table {
        columns: keep.iter().map(|i| table.columns[*i].clone()).collect(),
        rows: table.rows.iter().map(|r| keep.iter().map(|i| r[*i].clone()).collect()).collect(),
    }
}

/// BLAKE3 of the rows as CSV text: the same rows always hash the same.
fn rows_hash(t: &Table) -> Hash {
    let mut text = t.columns.join(",");
    for r in &t.rows {
        text.push('\n');
        text.push_str(&r.join(","));
    }
    Hash::of(text.as_bytes())
}

struct Outcome {
    better: bool,
    summary: String,
    result: Value,
    slices: Value,
}

/// Per-row scores a metric is computed from: positive-class probabilities (auc, log_loss),
/// labels (accuracy, f1, ...) or values (regression).
fn scores(p: &Predictions, metric: &str) -> Result<compare::Scores, JudgeError> {
    if let Some(v) = &p.values {
        return Ok(compare::Scores::Values(v.clone()));
    }
    match (metric, &p.probabilities) {
        ("auc" | "log_loss", Some((2, probs))) => {
            Ok(compare::Scores::Probabilities((0..probs.len() / 2).map(|i| f64::from(probs[i * 2 + 1])).collect()))
        }
        ("auc" | "log_loss", _) => {
            Err(JudgeError::Predict(format!("`{metric}` needs a binary classifier with a probability output")))
        }
        _ => p
            .labels
            .clone()
            .map(compare::Scores::Labels)
            .ok_or_else(|| JudgeError::Predict("the model has no label output".into())),
    }
}

fn compare_predictions(
    ev: &kairo_core::automation::EvaluateSpec,
    truth: &[String],
    champion: &Predictions,
    challenger: &Predictions,
    slices: &[(String, Vec<String>)],
) -> Result<Outcome, JudgeError> {
    let (a, b) = (scores(challenger, &ev.metric)?, scores(champion, &ev.metric)?);
    let pct = (ev.confidence * 100.0).round();
    let (better, summary, result) = match ev.test {
        Test::PairedBootstrap => {
            let r = compare::paired_bootstrap(&compare::Paired {
                metric: &ev.metric,
                truth,
                challenger: &a,
                champion: &b,
                confidence: ev.confidence,
                resamples: compare::DEFAULT_RESAMPLES,
                seed: ev.seed,
            })
            .map_err(|e| JudgeError::Test(e.to_string()))?;
            let summary = format!(
                "{} {:.4} vs {:.4}: difference {:+.4}, {pct}% interval [{:+.4}, {:+.4}] over {} rows",
                ev.metric, r.challenger, r.champion, r.difference, r.interval.0, r.interval.1, r.rows
            );
            (r.verdict == compare::Verdict::Better, summary, serde_json::to_value(&r).unwrap_or_default())
        }
        Test::Mcnemar => {
            let r = compare::mcnemar(truth, &a, &b, ev.confidence).map_err(|e| JudgeError::Test(e.to_string()))?;
            let summary = format!(
                "McNemar: challenger right where the champion was wrong {} times, the reverse {} times, p = {:.4}",
                r.b, r.c, r.p_value
            );
            (r.verdict == compare::Verdict::Better, summary, serde_json::to_value(&r).unwrap_or_default())
        }
    };
    let mut table = Vec::new();
    let mut regressed = Vec::new();
    for (column, keys) in slices {
        let per = compare::slices(
            &compare::Paired {
                metric: &ev.metric,
                truth,
                challenger: &a,
                champion: &b,
                confidence: ev.confidence,
                resamples: compare::DEFAULT_RESAMPLES,
                seed: ev.seed,
            },
            keys,
        )
        .map_err(|e| JudgeError::Test(format!("slices by {column}: {e}")))?;
        for s in &per {
            if s.regressed {
                regressed.push(format!("{column}={}", s.key));
            }
        }
        table.push(json!({"column": column, "slices": per}));
    }
    if better && !regressed.is_empty() {
        return Ok(Outcome {
            better: false,
            summary: format!("{summary}; but slice(s) {} got worse beyond their interval", regressed.join(", ")),
            result,
            slices: json!(table),
        });
    }
    let summary = if better { summary } else { format!("{summary}: not better with {pct}% confidence") };
    Ok(Outcome { better, summary, result, slices: json!(table) })
}
