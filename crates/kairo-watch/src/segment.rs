//! The prediction-log segment format: an Arrow IPC file, one row per predicted row. The
//! inference server writes it (`kairo_serve::predlog`, with [`schema`]); everything that reads
//! it back comes through [`read`], which finds each column by name and checks its type, so a
//! segment with an unexpected schema is an error naming the column, never a panic.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt16Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use serde_json::Value;

/// One logged row: a request's row `row`, what went in and what came out.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub request_id: String,
    pub row: u32,
    pub time_ms: i64,
    pub model: String,
    pub version: i64,
    /// `stable`, `canary` or `shadow`.
    pub arm: String,
    pub latency_us: i64,
    pub status: u16,
    /// The row's inputs by tensor name (a scalar for one value per row, else an array).
    pub inputs: Value,
    pub outputs: Value,
}

impl LogRow {
    /// `inputs` or `outputs`, as a profile's column source names the side.
    pub fn side(&self, side: &str) -> Option<&Value> {
        match side {
            "inputs" => Some(&self.inputs),
            "outputs" => Some(&self.outputs),
            _ => None,
        }
    }

    /// The row as JSON (`kairo models predictions --json`).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "request_id": self.request_id, "row": self.row, "time_ms": self.time_ms,
            "model": self.model, "version": self.version, "arm": self.arm,
            "latency_us": self.latency_us, "status": self.status,
            "inputs": self.inputs, "outputs": self.outputs,
        })
    }
}

/// A segment that cannot be read back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegmentError {
    #[error("not an Arrow IPC file: {0}")]
    Format(String),
    #[error("column '{column}' is missing")]
    Missing { column: &'static str },
    #[error("column '{column}' is {found}, expected {expected}")]
    Type { column: &'static str, found: String, expected: String },
    #[error("column '{column}' has a null at row {row}")]
    Null { column: &'static str, row: usize },
}

/// The segment schema: one row per predicted row.
pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("request_id", DataType::Utf8, false),
        Field::new("row", DataType::UInt32, false),
        Field::new("time_ms", DataType::Int64, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("arm", DataType::Utf8, false),
        Field::new("latency_us", DataType::Int64, false),
        Field::new("status", DataType::UInt16, false),
        Field::new("inputs", DataType::Utf8, false),
        Field::new("outputs", DataType::Utf8, false),
    ])
}

fn column<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
    expected: &DataType,
) -> Result<&'a Arc<dyn Array>, SegmentError> {
    let c = batch.column_by_name(name).ok_or(SegmentError::Missing { column: name })?;
    if c.data_type() != expected {
        return Err(SegmentError::Type {
            column: name,
            found: c.data_type().to_string(),
            expected: expected.to_string(),
        });
    }
    if c.null_count() > 0 {
        let row = (0..c.len()).find(|i| c.is_null(*i)).unwrap_or(0);
        return Err(SegmentError::Null { column: name, row });
    }
    Ok(c)
}

/// Read a segment back, row by row, oldest first. The JSON columns of a row that does not
/// parse read as `null` (the row still counts).
pub fn read(bytes: &[u8]) -> Result<Vec<LogRow>, SegmentError> {
    let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| SegmentError::Format(e.to_string()))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| SegmentError::Format(e.to_string()))?;
        let text = |name| column(&batch, name, &DataType::Utf8).map(|c| c.as_string::<i32>());
        let (ids, models, arms, ins, outs) =
            (text("request_id")?, text("model")?, text("arm")?, text("inputs")?, text("outputs")?);
        let rows = column(&batch, "row", &DataType::UInt32)?.as_primitive::<UInt32Type>();
        let int64 = |name| column(&batch, name, &DataType::Int64).map(|c| c.as_primitive::<Int64Type>());
        let (times, versions, latency) = (int64("time_ms")?, int64("version")?, int64("latency_us")?);
        let status = column(&batch, "status", &DataType::UInt16)?.as_primitive::<UInt16Type>();
        let json = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
        out.reserve(batch.num_rows());
        for i in 0..batch.num_rows() {
            out.push(LogRow {
                request_id: ids.value(i).to_string(),
                row: rows.value(i),
                time_ms: times.value(i),
                model: models.value(i).to_string(),
                version: versions.value(i),
                arm: arms.value(i).to_string(),
                latency_us: latency.value(i),
                status: status.value(i),
                inputs: json(ins.value(i)),
                outputs: json(outs.value(i)),
            });
        }
    }
    Ok(out)
}

/// Write rows as a segment (the same schema the server writes): what an erasure leaves of a
/// segment is written back this way.
pub fn write(rows: &[LogRow]) -> Result<Vec<u8>, SegmentError> {
    use arrow_array::{ArrayRef, Int64Array, StringArray, UInt16Array, UInt32Array};
    let fail = |e: arrow_schema::ArrowError| SegmentError::Format(e.to_string());
    let schema = Arc::new(schema());
    let text =
        |f: &dyn Fn(&LogRow) -> String| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.iter().map(f))) };
    let int64 = |f: &dyn Fn(&LogRow) -> i64| -> ArrayRef { Arc::new(Int64Array::from_iter_values(rows.iter().map(f))) };
    let columns: Vec<ArrayRef> = vec![
        text(&|r| r.request_id.clone()),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.row))),
        int64(&|r| r.time_ms),
        text(&|r| r.model.clone()),
        int64(&|r| r.version),
        text(&|r| r.arm.clone()),
        int64(&|r| r.latency_us),
        Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.status))),
        text(&|r| r.inputs.to_string()),
        text(&|r| r.outputs.to_string()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(fail)?;
    let mut writer = arrow_ipc::writer::FileWriter::try_new(Vec::new(), &schema).map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.finish().map_err(fail)?;
    writer.into_inner().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int32Array, Int64Array, StringArray, UInt16Array, UInt32Array};

    fn write(schema: Schema, columns: Vec<ArrayRef>) -> Vec<u8> {
        let schema = Arc::new(schema);
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let mut w = arrow_ipc::writer::FileWriter::try_new(Vec::new(), &schema).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        w.into_inner().unwrap()
    }

    fn good_columns() -> Vec<ArrayRef> {
        let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
        vec![
            s("r-1"),
            Arc::new(UInt32Array::from(vec![0])),
            Arc::new(Int64Array::from(vec![5])),
            s("clf"),
            Arc::new(Int64Array::from(vec![2])),
            s("stable"),
            Arc::new(Int64Array::from(vec![70])),
            Arc::new(UInt16Array::from(vec![200])),
            s(r#"{"x":[1,2]}"#),
            s("not json"),
        ]
    }

    #[test]
    fn rows_are_read_by_column_name() {
        // The same columns in another order read the same.
        let mut fields: Vec<Field> = schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut columns = good_columns();
        fields.reverse();
        columns.reverse();
        let rows = read(&write(Schema::new(fields), columns)).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.request_id.as_str(), r.row, r.time_ms, r.version, r.status), ("r-1", 0, 5, 2, 200));
        assert_eq!(r.inputs, serde_json::json!({"x": [1, 2]}));
        assert_eq!(r.outputs, Value::Null);
    }

    #[test]
    fn an_unexpected_schema_is_an_error_naming_the_column() {
        let mut columns = good_columns();
        let mut fields: Vec<Field> = schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[4] = Field::new("version", DataType::Int32, false);
        columns[4] = Arc::new(Int32Array::from(vec![2]));
        let err = read(&write(Schema::new(fields.clone()), columns.clone())).unwrap_err();
        assert_eq!(err.to_string(), "column 'version' is Int32, expected Int64");
        fields.remove(4);
        columns.remove(4);
        let err = read(&write(Schema::new(fields), columns)).unwrap_err();
        assert_eq!(err, SegmentError::Missing { column: "version" });
        assert!(matches!(read(b"garbage"), Err(SegmentError::Format(_))));
    }
}
