//! The prediction log: every request's rows (inputs, outputs, version, arm, latency, request
//! id, time) go through a bounded queue to a writer task, which never delays a response (a
//! full queue drops the record and counts it) and writes Arrow IPC segment files into the
//! object store, indexed by deployment and time.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{Int64Builder, StringBuilder, UInt16Builder, UInt32Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use kairo_runtime::Tensor;
use kairo_store::serving::Segment;
use kairo_store::{LocalObjects, Metadata};
use serde_json::Value;

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
}

/// The sending side; cheap to clone. Records go into a shared buffer that the writer drains
/// on a timer: a request never waits and never wakes another thread (a wake-up per request
/// cost more than the inference itself on a 2-core VM).
#[derive(Clone)]
pub struct PredictionLog {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

struct Shared {
    queue: std::sync::Mutex<Vec<Record>>,
    capacity: usize,
    wake: tokio::sync::Notify,
    closed: std::sync::atomic::AtomicBool,
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

/// Limits of the queue and of one segment.
pub struct Settings {
    pub queue: usize,
    pub max_rows: usize,
    pub max_age: Duration,
}

/// How often the writer drains the queue.
const DRAIN_EVERY: Duration = Duration::from_millis(200);

impl PredictionLog {
    pub fn start(
        md: Metadata,
        objects: LocalObjects,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> (PredictionLog, Writer) {
        let shared = Arc::new(Shared {
            queue: std::sync::Mutex::new(Vec::new()),
            capacity: settings.queue.max(1),
            wake: tokio::sync::Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let handle = tokio::spawn(run(shared.clone(), md, objects, metrics.clone(), settings));
        (PredictionLog { shared: shared.clone(), metrics }, Writer { handle, shared })
    }

    /// Queue a record without waiting; a full queue drops it and counts the drop.
    pub fn log(&self, record: Record) {
        let mut q = match self.shared.queue.lock() {
            Ok(q) => q,
            Err(p) => p.into_inner(),
        };
        if q.len() >= self.shared.capacity {
            drop(q);
            self.metrics.log_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.push(record);
        if q.len() == self.shared.capacity / 2 {
            // Half full: drain now rather than at the next tick.
            self.shared.wake.notify_one();
        }
    }
}

async fn run(shared: Arc<Shared>, md: Metadata, objects: LocalObjects, metrics: Arc<Metrics>, settings: Settings) {
    let mut buffer: Vec<Record> = Vec::new();
    let mut rows = 0usize;
    let mut oldest: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(DRAIN_EVERY) => {}
        }
        let drained = {
            let mut q = match shared.queue.lock() {
                Ok(q) => q,
                Err(p) => p.into_inner(),
            };
            std::mem::take(&mut *q)
        };
        for r in drained {
            rows += r.inputs.first().map(|(_, t)| t.rows()).unwrap_or(1);
            buffer.push(r);
        }
        if !buffer.is_empty() && oldest.is_none() {
            oldest = Some(std::time::Instant::now());
        }
        let closed = shared.closed.load(Ordering::SeqCst);
        let due = rows >= settings.max_rows || oldest.is_some_and(|t| t.elapsed() >= settings.max_age);
        if !buffer.is_empty() && (due || closed) {
            flush(&mut buffer, &md, &objects, &metrics).await;
            rows = 0;
            oldest = None;
        }
        if closed {
            let rest = std::mem::take(&mut *match shared.queue.lock() {
                Ok(q) => q,
                Err(p) => p.into_inner(),
            });
            if !rest.is_empty() {
                buffer = rest;
                flush(&mut buffer, &md, &objects, &metrics).await;
            }
            break;
        }
    }
}

async fn flush(buffer: &mut Vec<Record>, md: &Metadata, objects: &LocalObjects, metrics: &Metrics) {
    let records = std::mem::take(buffer);
    let mut by_model: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for r in records {
        by_model.entry(r.model.clone()).or_default().push(r);
    }
    for (model, records) in by_model {
        let start_ms = records.iter().map(|r| r.time_ms).min().unwrap_or(0);
        let end_ms = records.iter().map(|r| r.time_ms).max().unwrap_or(0);
        let objects = objects.clone();
        let written = tokio::task::spawn_blocking(move || {
            let (bytes, rows) = encode(&records)?;
            let hash = objects.put_bytes(&bytes).map_err(|e| e.to_string())?;
            Ok::<_, String>((hash, rows))
        })
        .await;
        match written {
            Ok(Ok((object, rows))) => {
                let segment = Segment { deployment: model.clone(), start_ms, end_ms, rows: rows as i64, object };
                match md.add_segment(&segment).await {
                    Ok(()) => {
                        metrics.log_rows.fetch_add(rows as u64, Ordering::Relaxed);
                        metrics.log_segments.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => eprintln!("kairo serve: prediction log for {model}: {e}"),
                }
            }
            Ok(Err(e)) => eprintln!("kairo serve: prediction log for {model}: {e}"),
            Err(e) => eprintln!("kairo serve: prediction log for {model}: {e}"),
        }
    }
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

/// Row `r` of each named tensor as a JSON object (a scalar for one value per row).
fn row_json(tensors: &[(String, Tensor)], r: usize, buf: &mut Vec<u8>) {
    buf.clear();
    buf.push(b'{');
    let mut first = true;
    for (name, t) in tensors {
        let width: usize = t.shape.iter().skip(1).product::<usize>().max(1);
        if (r + 1) * width > t.data.len() {
            continue;
        }
        if !first {
            buf.push(b',');
        }
        first = false;
        let _ = serde_json::to_writer(&mut *buf, name);
        buf.push(b':');
        if width == 1 {
            crate::oip::write_scalar(buf, &t.data, r);
        } else {
            crate::oip::write_data(buf, &t.data, r * width, (r + 1) * width);
        }
    }
    buf.push(b'}');
}

fn encode(records: &[Record]) -> Result<(Vec<u8>, usize), String> {
    let mut request_id = StringBuilder::new();
    let mut row = UInt32Builder::new();
    let mut time = Int64Builder::new();
    let mut model = StringBuilder::new();
    let mut version = Int64Builder::new();
    let mut arm = StringBuilder::new();
    let mut latency = Int64Builder::new();
    let mut status = UInt16Builder::new();
    let mut inputs = StringBuilder::new();
    let mut outputs = StringBuilder::new();
    let mut n = 0usize;
    let mut text = Vec::with_capacity(1024);
    for rec in records {
        let rows = rec.inputs.first().map(|(_, t)| t.rows()).unwrap_or(1).max(1);
        for r in 0..rows {
            request_id.append_value(&rec.request_id);
            row.append_value(r as u32);
            time.append_value(rec.time_ms);
            model.append_value(&rec.model);
            version.append_value(rec.version);
            arm.append_value(rec.arm);
            latency.append_value(rec.latency_us);
            status.append_value(rec.status);
            row_json(&rec.inputs, r, &mut text);
            inputs.append_value(std::str::from_utf8(&text).unwrap_or("{}"));
            row_json(&rec.outputs, r, &mut text);
            outputs.append_value(std::str::from_utf8(&text).unwrap_or("{}"));
            n += 1;
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(request_id.finish()),
        Arc::new(row.finish()),
        Arc::new(time.finish()),
        Arc::new(model.finish()),
        Arc::new(version.finish()),
        Arc::new(arm.finish()),
        Arc::new(latency.finish()),
        Arc::new(status.finish()),
        Arc::new(inputs.finish()),
        Arc::new(outputs.finish()),
    ];
    let schema = Arc::new(schema());
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?;
    let mut writer = arrow_ipc::writer::FileWriter::try_new(Vec::new(), &schema).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    let bytes = writer.into_inner().map_err(|e| e.to_string())?;
    Ok((bytes, n))
}

/// Read a segment back: one JSON object per row (for `kairo` commands and tests).
pub fn read_segment(bytes: &[u8]) -> Result<Vec<Value>, String> {
    use arrow_array::cast::AsArray;
    let reader =
        arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let s = |i: usize| batch.column(i).as_string::<i32>().clone();
        let (ids, models, arms, ins, outs) = (s(0), s(3), s(5), s(8), s(9));
        let rows = batch.column(1).as_primitive::<arrow_array::types::UInt32Type>().clone();
        let times = batch.column(2).as_primitive::<arrow_array::types::Int64Type>().clone();
        let versions = batch.column(4).as_primitive::<arrow_array::types::Int64Type>().clone();
        let lat = batch.column(6).as_primitive::<arrow_array::types::Int64Type>().clone();
        let status = batch.column(7).as_primitive::<arrow_array::types::UInt16Type>().clone();
        for i in 0..batch.num_rows() {
            out.push(serde_json::json!({
                "request_id": ids.value(i), "row": rows.value(i), "time_ms": times.value(i),
                "model": models.value(i), "version": versions.value(i), "arm": arms.value(i),
                "latency_us": lat.value(i), "status": status.value(i),
                "inputs": serde_json::from_str::<Value>(ins.value(i)).unwrap_or(Value::Null),
                "outputs": serde_json::from_str::<Value>(outs.value(i)).unwrap_or(Value::Null),
            }));
        }
    }
    Ok(out)
}
