//! Production rows with their labels: the prediction log joined with feedback, one row per
//! answered row (stable, canary and batch-scored; a shadow's answers were never returned), in
//! prediction-time order. Retraining exports them to a tracked CSV file and the loop judges
//! challengers on them; `kairo models predictions export` writes the same file.

use std::collections::{BTreeSet, HashMap};

use kairo_store::{LocalObjects, Metadata};
use serde_json::Value;

use crate::segment::{self, LogRow};
use crate::{Result, WatchError};

/// One answered row and its label, when feedback gave one.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub row: LogRow,
    pub label: Option<Value>,
}

/// The answered rows of `deployment` predicted in `[from_ms, to_ms)`, with labels joined.
/// With `labelled_only`, rows without feedback are left out.
pub async fn rows(
    md: &Metadata,
    objects: &LocalObjects,
    deployment: &str,
    from_ms: i64,
    to_ms: i64,
    labelled_only: bool,
) -> Result<Vec<Labelled>> {
    let mut rows = Vec::new();
    for seg in md.segments(deployment, from_ms, to_ms).await?.into_iter().filter(|s| s.pruned_ms.is_none()) {
        let bytes = objects.read(&seg.object)?;
        let read = segment::read(&bytes)
            .map_err(|e| WatchError::Segment { object: seg.object.to_string(), error: e.to_string() })?;
        rows.extend(
            read.into_iter()
                .filter(|r| r.time_ms >= from_ms && r.time_ms < to_ms && r.status == 200 && r.arm != "shadow"),
        );
    }
    rows.sort_by(|a, b| (a.time_ms, &a.request_id, a.row).cmp(&(b.time_ms, &b.request_id, b.row)));
    let ids: Vec<String> = rows.iter().map(|r| r.request_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut labels = md.feedback_for(&ids).await?;
    let out = rows
        .into_iter()
        .filter_map(|row| {
            let label = labels.remove(&(row.request_id.clone(), i64::from(row.row)));
            (!labelled_only || label.is_some()).then_some(Labelled { row, label })
        })
        .collect();
    Ok(out)
}

/// The input names of the version `deployment` serves now, in the model's order (empty when
/// nothing is deployed).
pub async fn input_order(md: &Metadata, deployment: &str) -> Result<Vec<String>> {
    let Some(d) = md.deployment(deployment).await? else { return Ok(Vec::new()) };
    let Some(a) = md.version_artifact(deployment, d.stable_version).await? else { return Ok(Vec::new()) };
    Ok(a.signature.inputs.iter().map(|i| i.name.clone()).collect())
}

/// How many answered rows of `deployment` predicted at or after `from_ms` have labels.
pub async fn count_labelled(md: &Metadata, objects: &LocalObjects, deployment: &str, from_ms: i64) -> Result<usize> {
    Ok(rows(md, objects, deployment, from_ms, i64::MAX, true).await?.len())
}

/// The input columns of the rows: each input tensor is one column when it holds one value
/// per row, `NAME_0..NAME_k` when it holds several; in `order` (the model's inputs), then
/// any others by name.
pub fn input_columns(rows: &[Labelled], order: &[String]) -> Vec<(String, String, Option<usize>)> {
    let mut widths: HashMap<String, Option<usize>> = HashMap::new();
    for r in rows {
        if let Value::Object(m) = &r.row.inputs {
            for (k, v) in m {
                let w = match v {
                    Value::Array(a) => Some(a.len()),
                    _ => None,
                };
                let e = widths.entry(k.clone()).or_insert(w);
                if let (Some(a), Some(b)) = (*e, w) {
                    *e = Some(a.max(b));
                }
            }
        }
    }
    let mut names: Vec<_> = widths.into_iter().collect();
    let rank = |n: &str| order.iter().position(|o| o == n).unwrap_or(usize::MAX);
    names.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
    let mut out = Vec::new();
    for (name, width) in names {
        match width {
            None => out.push((name.clone(), name, None)),
            Some(w) => out.extend((0..w).map(|i| (format!("{name}_{i}"), name.clone(), Some(i)))),
        }
    }
    out
}

/// The cell text of a JSON value: numbers and strings as they are, booleans as 0/1,
/// missing as empty.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => u8::from(*b).to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// The metadata columns every export starts with.
pub const META_COLUMNS: [&str; 4] = ["request_id", "row", "time", "version"];

/// Write rows as CSV: `request_id,row,time,version`, the input columns (in `order`, the
/// model's inputs, so a model trained on the file takes them as the served one does), then
/// the label under `label_column`. Returns the number of rows written.
pub fn write_csv<W: std::io::Write>(rows: &[Labelled], order: &[String], label_column: &str, out: W) -> Result<usize> {
    let columns = input_columns(rows, order);
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<String> = META_COLUMNS.iter().map(|s| s.to_string()).collect();
    header.extend(columns.iter().map(|c| c.0.clone()));
    header.push(label_column.to_string());
    let io = |e: csv::Error| WatchError::Write(e.to_string());
    w.write_record(&header).map_err(io)?;
    for r in rows {
        let mut rec = vec![
            r.row.request_id.clone(),
            r.row.row.to_string(),
            kairo_core::time::millis_to_string(r.row.time_ms),
            r.row.version.to_string(),
        ];
        for (_, input, index) in &columns {
            let v = r.row.inputs.get(input);
            rec.push(match index {
                None => cell(v),
                Some(i) => cell(v.and_then(|v| v.get(*i))),
            });
        }
        rec.push(cell(r.label.as_ref()));
        w.write_record(&rec).map_err(io)?;
    }
    w.flush().map_err(|e| WatchError::Write(e.to_string()))?;
    Ok(rows.len())
}

/// What [`export`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub rows: usize,
    pub labelled: usize,
}

/// Write the answered rows of `deployment` predicted in `[from_ms, to_ms)` (only labelled
/// ones with `labelled_only`) to `path` as CSV in the served model's input order: written to a
/// temp file beside it and renamed, so a reader never sees half a file. With no rows nothing is
/// written (an existing file stays as it was). `kairo models predictions export` and the loop's
/// retraining export both write through here.
#[allow(clippy::too_many_arguments)]
pub async fn export(
    md: &Metadata,
    objects: &LocalObjects,
    deployment: &str,
    from_ms: i64,
    to_ms: i64,
    labelled_only: bool,
    label_column: &str,
    path: &std::path::Path,
) -> Result<Exported> {
    let rows = rows(md, objects, deployment, from_ms, to_ms, labelled_only).await?;
    if rows.is_empty() {
        return Ok(Exported { rows: 0, labelled: 0 });
    }
    let order = input_order(md, deployment).await?;
    let failed = |p: &std::path::Path, e: std::io::Error| WatchError::Write(format!("{}: {e}", p.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    }
    let tmp = path.with_extension("kairo-export.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| failed(&tmp, e))?;
    let n = write_csv(&rows, &order, label_column, std::io::BufWriter::new(file))?;
    std::fs::rename(&tmp, path).map_err(|e| failed(path, e))?;
    Ok(Exported { rows: n, labelled: rows.iter().filter(|r| r.label.is_some()).count() })
}

/// Labels from a CSV file with a header (`kairo models feedback`): each row's request id (its
/// id columns' values joined with `/`, as `kairo predict` logs a scored row) and its label,
/// read a chunk at a time so a file of any size is stored in bounded memory.
pub struct FeedbackFile<R: std::io::Read> {
    what: String,
    reader: csv::Reader<R>,
    ids: Vec<usize>,
    label: usize,
    line: u64,
}

impl<R: std::io::Read> FeedbackFile<R> {
    /// `what` names the file in errors. Refused: a missing column (the error lists the file's).
    pub fn new(what: &str, input: R, id_columns: &[String], label_column: &str) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(input);
        let header = reader.headers().map_err(|e| WatchError::Spec(format!("{what}: {e}")))?.clone();
        let names: Vec<&str> = header.iter().collect();
        let find = |c: &str| {
            names.iter().position(|n| *n == c).ok_or_else(|| {
                WatchError::Spec(format!(
                    "{what}: no column '{c}' (its columns: {}); name the columns with --id-column and --label-column",
                    names.join(", ")
                ))
            })
        };
        let ids = id_columns.iter().map(|c| find(c)).collect::<Result<Vec<_>>>()?;
        let label = find(label_column)?;
        Ok(FeedbackFile { what: what.to_string(), reader, ids, label, line: 1 })
    }

    /// Up to `n` more `(request id, row 0, label)`; None at the end. A row with an empty id or
    /// label is refused, naming its line.
    pub fn next_chunk(&mut self, n: usize) -> Result<Option<Vec<(String, i64, Value)>>> {
        let mut out = Vec::new();
        let mut record = csv::StringRecord::new();
        while out.len() < n {
            let more =
                self.reader.read_record(&mut record).map_err(|e| WatchError::Spec(format!("{}: {e}", self.what)))?;
            if !more {
                break;
            }
            self.line += 1;
            let id: Vec<&str> = self.ids.iter().map(|&i| record.get(i).unwrap_or("")).collect();
            if id.iter().any(|v| v.is_empty()) {
                return Err(WatchError::Spec(format!("{} line {}: the id is empty", self.what, self.line)));
            }
            let text = record.get(self.label).unwrap_or("").trim();
            if text.is_empty() {
                return Err(WatchError::Spec(format!("{} line {}: the label is empty", self.what, self.line)));
            }
            out.push((id.join("/"), 0, label_value(text)));
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

/// A label as written in a file: a number, `true`/`false`, else the text.
fn label_value(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    if let Some(n) = text.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
        return Value::Number(n);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text.to_string()),
    }
}

#[cfg(test)]
mod feedback_tests {
    use super::*;

    #[test]
    fn a_feedback_file_reads_ids_and_typed_labels_and_names_bad_lines() {
        let text = "customer,region,churned\nc1,eu,1\nc2,us,0.5\nc3,eu,yes\n";
        let mut f = FeedbackFile::new("labels.csv", text.as_bytes(), &["customer".into()], "churned").unwrap();
        let rows = f.next_chunk(2).unwrap().unwrap();
        assert_eq!(rows, vec![("c1".into(), 0, Value::from(1)), ("c2".into(), 0, serde_json::json!(0.5))]);
        assert_eq!(f.next_chunk(2).unwrap().unwrap(), vec![("c3".into(), 0, Value::from("yes"))]);
        assert!(f.next_chunk(2).unwrap().is_none());
        let two = ["customer".to_string(), "region".to_string()];
        let mut f = FeedbackFile::new("labels.csv", text.as_bytes(), &two, "churned").unwrap();
        assert_eq!(f.next_chunk(1).unwrap().unwrap()[0].0, "c1/eu");
        let e = FeedbackFile::new("labels.csv", text.as_bytes(), &["id".into()], "churned").err().unwrap();
        assert!(e.to_string().contains("no column 'id' (its columns: customer, region, churned)"), "{e}");
        let mut f = FeedbackFile::new("l.csv", "id,label\na,1\n,0\n".as_bytes(), &["id".into()], "label").unwrap();
        let e = f.next_chunk(10).unwrap_err();
        assert_eq!(e.to_string(), "l.csv line 3: the id is empty");
    }
}
