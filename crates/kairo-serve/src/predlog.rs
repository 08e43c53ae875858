//! The prediction log: every request's rows (inputs, outputs, version, arm, latency, request
//! id, time) go through a bounded queue to a writer task, which never delays a response (a
//! full queue drops the record and counts it) and writes Parquet segment files (typed columns, `kairo_watch::segment`) into the
//! object store, indexed by deployment and time.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kairo_runtime::Tensor;
use kairo_store::serving::Segment;
use kairo_store::{LocalObjects, Metadata, StoreError};

use crate::metrics::Metrics;

/// One request as logged.
pub struct Record {
    pub request_id: String,
    pub time_ms: i64,
    pub model: String,
    pub version: i64,
    pub arm: &'static str,
    pub latency_us: i64,
    pub status: u16,
    pub inputs: Vec<(String, Tensor)>,
    pub outputs: Vec<(String, Tensor)>,
    /// Under a privacy policy: each row's inputs already as the JSON the log stores, the
    /// policy applied (and `inputs` empty: the raw values are not queued).
    pub redacted: Option<Vec<String>>,
    /// Each row's own request id, row 0 of it (batch scoring: the row's id columns, so that
    /// labels sent for that id find it); None: `request_id`, rows numbered from 0.
    pub row_ids: Option<Vec<String>>,
}

impl Record {
    /// The number of rows `inputs` hold, from the decoded tensors themselves: a declared
    /// dimension never counts for more rows than the data holds.
    pub fn rows_of(inputs: &[(String, Tensor)]) -> usize {
        inputs.first().map_or(1, |(_, t)| t.rows().min(t.data.len())).max(1)
    }

    /// Rows this record puts in the log.
    fn rows(&self) -> usize {
        match &self.redacted {
            Some(rows) => rows.len().max(1),
            None => Record::rows_of(&self.inputs),
        }
    }

    /// Roughly the bytes it holds (what the queue's byte bound counts).
    fn bytes(&self) -> usize {
        let tensor = |t: &Tensor| match &t.data {
            kairo_runtime::Data::Bytes(v) => v.iter().map(|s| s.len() + 24).sum(),
            d => d.len() * d.dtype().size().unwrap_or(8),
        };
        let redacted: usize = self.redacted.iter().flatten().map(String::len).sum();
        256 + redacted + self.inputs.iter().chain(&self.outputs).map(|(_, t)| tensor(t)).sum::<usize>()
    }
}

/// The sending side; cheap to clone. Records go into a shared buffer that the writer drains
/// on a timer: a request never waits and never wakes another thread (a wake-up per request
/// cost more than the inference itself on a 2-core VM).
#[derive(Clone)]
pub struct PredictionLog {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Queue {
    records: Vec<Record>,
    bytes: usize,
}

struct Shared {
    queue: std::sync::Mutex<Queue>,
    capacity: usize,
    capacity_bytes: usize,
    wake: tokio::sync::Notify,
    closed: std::sync::atomic::AtomicBool,
    /// Rows taken from the queue but not yet written: if the writer fails they are lost,
    /// and counted as dropped.
    in_flight: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        match self.queue.lock() {
            Ok(q) => q,
            Err(p) => p.into_inner(),
        }
    }

    fn take(&self) -> Vec<Record> {
        let mut q = self.lock();
        q.bytes = 0;
        std::mem::take(&mut q.records)
    }
}

pub struct Writer {
    handle: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Writer {
    /// Flush what is queued and stop.
    pub async fn finish(self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        let _ = self.handle.await;
    }
}

/// Limits of the queue and of one segment, and whose segments they are.
pub struct Settings {
    pub queue: usize,
    pub queue_bytes: usize,
    pub max_rows: usize,
    pub max_age: Duration,
    /// This replica's id, recorded with every segment it writes.
    pub replica: String,
}

/// How often the writer drains the queue.
const DRAIN_EVERY: Duration = Duration::from_millis(200);

/// A segment is written once its records hold this many bytes, whatever its row count.
const MAX_SEGMENT_BYTES: usize = 128 << 20;

impl PredictionLog {
    pub fn start(
        md: Metadata,
        objects: LocalObjects,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> (PredictionLog, Writer) {
        let shared = Arc::new(Shared {
            queue: std::sync::Mutex::new(Queue::default()),
            capacity: settings.queue.max(1),
            capacity_bytes: settings.queue_bytes.max(1),
            wake: tokio::sync::Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            in_flight: std::sync::atomic::AtomicU64::new(0),
        });
        let handle = tokio::spawn(supervise(shared.clone(), md, objects, metrics.clone(), settings));
        (PredictionLog { shared: shared.clone(), metrics }, Writer { handle, shared })
    }

    /// Queue a record without waiting; a full queue (by records or by bytes) drops it and
    /// counts its rows as dropped.
    pub fn log(&self, record: Record) {
        let bytes = record.bytes();
        let mut q = self.shared.lock();
        if q.records.len() >= self.shared.capacity || q.bytes.saturating_add(bytes) > self.shared.capacity_bytes {
            drop(q);
            self.metrics.log_dropped.fetch_add(record.rows() as u64, Ordering::Relaxed);
            return;
        }
        q.records.push(record);
        q.bytes += bytes;
        if q.records.len() == self.shared.capacity / 2 || q.bytes > self.shared.capacity_bytes / 2 {
            // Half full: drain now rather than at the next tick.
            self.shared.wake.notify_one();
        }
    }
}

/// Run the writer; if it fails (a panic), count what it held as dropped, report it, and
/// start it again: the log keeps going, and nothing is lost without being counted.
async fn supervise(
    shared: Arc<Shared>,
    md: Metadata,
    objects: LocalObjects,
    metrics: Arc<Metrics>,
    settings: Settings,
) {
    let settings = Arc::new(settings);
    loop {
        let task = tokio::spawn(run(shared.clone(), md.clone(), objects.clone(), metrics.clone(), settings.clone()));
        match task.await {
            Ok(()) => return,
            Err(e) => {
                let lost = shared.in_flight.swap(0, Ordering::SeqCst);
                metrics.log_dropped.fetch_add(lost, Ordering::Relaxed);
                metrics.log_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, lost_rows = lost, "the prediction-log writer failed; restarting it");
                if shared.closed.load(Ordering::SeqCst) && shared.lock().records.is_empty() {
                    return;
                }
            }
        }
    }
}

async fn run(shared: Arc<Shared>, md: Metadata, objects: LocalObjects, metrics: Arc<Metrics>, settings: Arc<Settings>) {
    let mut buffer: Vec<Record> = Vec::new();
    let mut rows = 0usize;
    let mut bytes = 0usize;
    let mut oldest: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(DRAIN_EVERY) => {}
        }
        let closed = shared.closed.load(Ordering::SeqCst);
        for r in shared.take() {
            let n = r.rows();
            rows += n;
            bytes += r.bytes();
            shared.in_flight.fetch_add(n as u64, Ordering::SeqCst);
            buffer.push(r);
            if rows >= settings.max_rows || bytes >= MAX_SEGMENT_BYTES {
                flush(&mut buffer, &md, &objects, &metrics, &shared, &settings.replica).await;
                (rows, bytes, oldest) = (0, 0, None);
            }
        }
        if !buffer.is_empty() && oldest.is_none() {
            oldest = Some(std::time::Instant::now());
        }
        let due = oldest.is_some_and(|t| t.elapsed() >= settings.max_age);
        if !buffer.is_empty() && (due || closed) {
            flush(&mut buffer, &md, &objects, &metrics, &shared, &settings.replica).await;
            (rows, bytes, oldest) = (0, 0, None);
        }
        if closed {
            break;
        }
    }
}

/// Write `buffer` as one segment per model. Rows that cannot be written are counted as
/// dropped and reported; the writer goes on.
async fn flush(
    buffer: &mut Vec<Record>,
    md: &Metadata,
    objects: &LocalObjects,
    metrics: &Metrics,
    shared: &Shared,
    replica: &str,
) {
    let records = std::mem::take(buffer);
    let mut by_model: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for r in records {
        by_model.entry(r.model.clone()).or_default().push(r);
    }
    for (model, records) in by_model {
        let start_ms = records.iter().map(|r| r.time_ms).min().unwrap_or(0);
        let end_ms = records.iter().map(|r| r.time_ms).max().unwrap_or(0);
        let expected: usize = records.iter().map(Record::rows).sum();
        let objects = objects.clone();
        let written = tokio::task::spawn_blocking(move || {
            let (bytes, rows) = encode(&records)?;
            let hash = objects.put_bytes(&bytes).map_err(SegmentError::Store)?;
            Ok::<_, SegmentError>((hash, rows))
        })
        .await;
        let failure = match written {
            Ok(Ok((object, rows))) => {
                let segment = Segment {
                    deployment: model.clone(),
                    start_ms,
                    end_ms,
                    rows: rows as i64,
                    object,
                    replica: replica.to_string(),
                    pruned_ms: None,
                };
                match md.add_segment(&segment).await {
                    Ok(()) => {
                        metrics.log_rows.fetch_add(rows as u64, Ordering::Relaxed);
                        metrics.log_segments.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Err(e) => Some(SegmentError::Index(e)),
                }
            }
            Ok(Err(e)) => Some(e),
            Err(e) => Some(SegmentError::Task(e.to_string())),
        };
        shared.in_flight.fetch_sub(expected as u64, Ordering::SeqCst);
        if let Some(e) = failure {
            metrics.log_dropped.fetch_add(expected as u64, Ordering::Relaxed);
            metrics.log_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(model = %model, error = %e, lost_rows = expected, "a prediction-log segment was not written");
        }
    }
}

/// Row `r` of each named tensor as a JSON object (a scalar for one value per row). FP32
/// elements become the exact f64 of the f32 (not its shortest decimal), so the segment stores
/// them as FLOAT again.
fn row_value(tensors: &[(String, Tensor)], r: usize) -> serde_json::Value {
    use kairo_runtime::Data;
    use serde_json::Value;
    let float = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    let element = |data: &Data, i: usize| -> Value {
        match data {
            Data::Bool(v) => Value::Bool(v[i]),
            Data::U8(v) => Value::from(v[i]),
            Data::U16(v) => Value::from(v[i]),
            Data::U32(v) => Value::from(v[i]),
            Data::U64(v) => Value::from(v[i]),
            Data::I8(v) => Value::from(v[i]),
            Data::I16(v) => Value::from(v[i]),
            Data::I32(v) => Value::from(v[i]),
            Data::I64(v) => Value::from(v[i]),
            Data::F32(v) => float(f64::from(v[i])),
            Data::F64(v) => float(v[i]),
            Data::Bytes(v) => Value::String(v[i].clone()),
        }
    };
    let mut map = serde_json::Map::new();
    for (name, t) in tensors {
        let width: usize = t.shape.iter().skip(1).product::<usize>().max(1);
        if (r + 1) * width > t.data.len() {
            continue;
        }
        let value = if width == 1 {
            element(&t.data, r)
        } else {
            Value::Array((r * width..(r + 1) * width).map(|i| element(&t.data, i)).collect())
        };
        map.insert(name.clone(), value);
    }
    Value::Object(map)
}

/// Why a segment was not written; its rows are counted as dropped.
#[derive(Debug, thiserror::Error)]
enum SegmentError {
    #[error("the segment cannot be encoded: {0}")]
    Encode(#[from] kairo_watch::segment::SegmentError),
    #[error("the segment cannot be stored: {0}")]
    Store(#[source] StoreError),
    #[error("the segment cannot be indexed: {0}")]
    Index(#[source] StoreError),
    #[error("the segment encoder failed: {0}")]
    Task(String),
}

/// Queued records as the rows of a segment: each row's inputs and outputs are made from the
/// tensors when the writer asks for them, never all at once.
struct Rows<'a> {
    records: &'a [Record],
    /// (record, row within it) of each logged row.
    at: Vec<(u32, u32)>,
}

impl kairo_watch::segment::Source for Rows<'_> {
    fn len(&self) -> usize {
        self.at.len()
    }

    fn head(&self, i: usize) -> kairo_watch::segment::Head<'_> {
        let (k, r) = self.at[i];
        let rec = &self.records[k as usize];
        let (request_id, row) = match rec.row_ids.as_ref().and_then(|ids| ids.get(r as usize)) {
            Some(id) => (id.as_str(), 0),
            None => (rec.request_id.as_str(), r),
        };
        kairo_watch::segment::Head {
            request_id,
            row,
            time_ms: rec.time_ms,
            model: &rec.model,
            version: rec.version,
            arm: rec.arm,
            latency_us: rec.latency_us,
            status: rec.status,
        }
    }

    fn side(&self, i: usize, side: usize) -> std::borrow::Cow<'_, serde_json::Value> {
        let (k, r) = self.at[i];
        let rec = &self.records[k as usize];
        let r = r as usize;
        std::borrow::Cow::Owned(match (side, rec.redacted.as_ref().and_then(|rows| rows.get(r))) {
            (0, Some(row)) => serde_json::from_str(row).unwrap_or(serde_json::Value::Null),
            (0, None) => row_value(&rec.inputs, r),
            _ => row_value(&rec.outputs, r),
        })
    }
}

/// The records as one Parquet segment (`kairo_watch::segment`), and its row count. Straight
/// from the tensors when every record logs the same names with the same types and widths
/// (`segment::write_typed`, no JSON made), else through each row's JSON: the same file.
pub fn encode(records: &[Record]) -> Result<(Vec<u8>, usize), kairo_watch::segment::SegmentError> {
    let at: Vec<(u32, u32)> =
        records.iter().enumerate().flat_map(|(k, rec)| (0..rec.rows()).map(move |r| (k as u32, r as u32))).collect();
    let n = at.len();
    let rows = Rows { records, at };
    if let Some((mut inputs, mut outputs)) = typed(records) {
        if let Some(written) = kairo_watch::segment::write_typed(&rows, [&mut inputs, &mut outputs]) {
            return Ok((written?, n));
        }
    }
    Ok((kairo_watch::segment::write_from(&rows)?, n))
}

type Typed<'a> = Vec<kairo_watch::segment::TypedColumn<'a>>;

/// The records' inputs and outputs as typed columns, when each record names the same tensors
/// with the same element type and row width and holds exactly its rows' values.
fn typed(records: &[Record]) -> Option<(Typed<'_>, Typed<'_>)> {
    use kairo_runtime::Data;
    use kairo_watch::segment::{Chunk, TypedColumn};
    let first = records.first()?;
    let mut sides: [Typed<'_>; 2] = [Vec::new(), Vec::new()];
    for (side, tensors) in [&first.inputs, &first.outputs].into_iter().enumerate() {
        for (name, t) in tensors.iter() {
            let width: usize = t.shape.iter().skip(1).product::<usize>().max(1);
            sides[side].push(TypedColumn { name: name.clone(), width, chunks: Vec::new() });
        }
    }
    for rec in records {
        if rec.redacted.is_some() {
            return None;
        }
        let rows = rec.rows();
        for (side, tensors) in [&rec.inputs, &rec.outputs].into_iter().enumerate() {
            if tensors.len() != sides[side].len() {
                return None;
            }
            for (name, t) in tensors.iter() {
                let col = sides[side].iter_mut().find(|c| &c.name == name)?;
                let width: usize = t.shape.iter().skip(1).product::<usize>().max(1);
                if width != col.width || t.data.len() < rows * width {
                    return None;
                }
                // Only this record's rows (row_value reads no further).
                let end = rows * width;
                col.chunks.push(match &t.data {
                    Data::F32(v) => Chunk::F32(&v[..end]),
                    Data::I64(v) => Chunk::I64(&v[..end]),
                    Data::I32(v) => Chunk::I32(&v[..end]),
                    Data::Bool(v) => Chunk::Bool(&v[..end]),
                    Data::Bytes(v) => Chunk::Text(&v[..end]),
                    _ => return None,
                });
            }
        }
    }
    let [inputs, outputs] = sides;
    Some((inputs, outputs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairo_runtime::Data;

    fn tensor(shape: &[usize], data: Data) -> Tensor {
        Tensor { shape: shape.to_vec(), data }
    }

    fn record(id: &str, rows: usize, shift: f32, row_ids: Option<Vec<String>>) -> Record {
        let mut x: Vec<f32> = (0..rows * 3).map(|i| i as f32 * 0.1 + shift).collect();
        x[1] = f32::NAN;
        let all_nan = vec![f32::INFINITY; rows];
        Record {
            request_id: id.into(),
            time_ms: 1_700_000_000_000,
            model: "m".into(),
            version: 2,
            arm: "batch",
            latency_us: 7,
            status: 200,
            inputs: vec![
                ("x".into(), tensor(&[rows, 3], Data::F32(x))),
                ("city".into(), tensor(&[rows, 1], Data::Bytes((0..rows).map(|i| format!("c{i}")).collect()))),
                ("flag".into(), tensor(&[rows], Data::Bool((0..rows).map(|i| i % 2 == 0).collect()))),
                ("age".into(), tensor(&[rows], Data::I32((0..rows as i32).collect()))),
                ("gone".into(), tensor(&[rows], Data::F32(all_nan))),
            ],
            outputs: vec![
                ("label".into(), tensor(&[rows], Data::I64((0..rows as i64).map(|i| i % 2).collect()))),
                (
                    "probabilities".into(),
                    tensor(&[rows, 2], Data::F32((0..rows * 2).map(|i| i as f32 / 9.0).collect())),
                ),
            ],
            redacted: None,
            row_ids,
        }
    }

    /// The JSON path's file, for the same records.
    fn through_json(records: &[Record]) -> Vec<u8> {
        let at: Vec<(u32, u32)> = records
            .iter()
            .enumerate()
            .flat_map(|(k, rec)| (0..rec.rows()).map(move |r| (k as u32, r as u32)))
            .collect();
        kairo_watch::segment::write_from(&Rows { records, at }).unwrap()
    }

    fn schema(bytes: &[u8]) -> arrow_schema::SchemaRef {
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
            .unwrap()
            .schema()
            .clone()
    }

    #[test]
    fn the_typed_segment_is_the_file_the_json_path_writes() {
        let cases = [
            vec![record("a", 5, 0.0, None)],
            vec![record("a", 1, 0.0, None), record("b", 3, 1.5, None), record("c", 1, -2.0, None)],
            vec![record("run", 4, 0.25, Some((0..4).map(|i| format!("cust{i}")).collect()))],
        ];
        for records in cases {
            assert!(typed(&records).is_some(), "these records take the typed path");
            let (fast, n) = encode(&records).unwrap();
            let slow = through_json(&records);
            assert_eq!(n, records.iter().map(Record::rows).sum::<usize>());
            assert_eq!(schema(&fast), schema(&slow));
            let (a, b) = (kairo_watch::segment::read(&fast).unwrap(), kairo_watch::segment::read(&slow).unwrap());
            assert_eq!(a, b);
        }
        // A record whose tensors differ from the first's takes the JSON path.
        let mut other = record("b", 2, 0.0, None);
        other.inputs.pop();
        assert!(typed(&[record("a", 2, 0.0, None), other]).is_none());
        let mut f64s = record("a", 2, 0.0, None);
        f64s.inputs[0].1 = tensor(&[2, 3], Data::F64(vec![0.1; 6]));
        assert!(typed(&[f64s]).is_none());
    }
}
