//! Scored rows fed to the model's prediction log, as `kairo serve` logs the rows it answers:
//! the same Parquet segments (`kairo_serve::predlog::encode`), under the model's name, with its
//! privacy policy applied to the inputs. The model's monitors then see a batch like online
//! traffic: drift of the inputs against the version's profile, prediction drift, and quality
//! once labels for the rows' ids arrive (`kairo models feedback`).
//!
//! Each row is logged under its own request id: its id columns' values (joined with `/` when
//! there are several), else `RUN:FILE:ROW`. Segments are encoded on the scoring threads and
//! indexed only when the output is in place, so a failed run logs nothing.

use kairo_runtime::Tensor;
use kairo_serve::predlog::Record;
use kairo_serve::privacy::Redactor;
use kairo_store::serving::Segment;

/// What every logged row of a run shares.
pub struct LogPlan {
    pub name: String,
    pub version: i64,
    pub run_id: String,
    pub redactor: Option<Redactor>,
}

/// The arm batch rows are logged under (online rows are `stable`, `canary` or `shadow`).
pub const ARM: &str = "batch";

/// One batch's rows as an encoded segment: (bytes, rows, time).
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub rows: usize,
    pub time_ms: i64,
}

impl LogPlan {
    /// Encode one batch's scored rows (`row_ids[i]` is row i's request id).
    pub fn encode(
        &self,
        inputs: Vec<(String, Tensor)>,
        outputs: Vec<(String, Tensor)>,
        row_ids: Vec<String>,
    ) -> Result<Encoded, String> {
        let rows = row_ids.len();
        let time_ms = kairo_core::time::now_millis();
        let mut record = Record {
            request_id: self.run_id.clone(),
            time_ms,
            model: self.name.clone(),
            version: self.version,
            arm: ARM,
            latency_us: 0,
            status: 200,
            inputs,
            outputs,
            redacted: None,
            row_ids: Some(row_ids),
        };
        if let Some(r) = &self.redactor {
            record.redacted = Some(r.rows(&record.inputs, rows));
            record.inputs = Vec::new();
        }
        let (bytes, n) = kairo_serve::predlog::encode(std::slice::from_ref(&record))
            .map_err(|e| format!("the prediction-log segment cannot be encoded: {e}"))?;
        Ok(Encoded { bytes, rows: n, time_ms })
    }

    /// The index entry of a stored segment.
    pub fn segment(&self, object: kairo_core::Hash, e: &Encoded) -> Segment {
        Segment {
            deployment: self.name.clone(),
            start_ms: e.time_ms,
            end_ms: e.time_ms,
            rows: e.rows as i64,
            object,
            replica: String::new(),
            pruned_ms: None,
        }
    }
}
