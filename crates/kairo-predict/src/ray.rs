//! `kairo predict --executor ray`: the input split into shards — runs of whole files, or a
//! Parquet file's row groups when there are fewer files than the cluster has CPUs — scored as
//! the tasks of one Ray job (one CPU each), then put together here in input order.
//!
//! The tasks get everything through the project's remote, as `executor: ray` stages do: this
//! `kairo` binary, the version's ONNX bytes and the input files as objects (each sent once: a
//! repeated run sends nothing), reached through URLs signed for them (`file://` paths for a
//! directory remote). Each task runs `kairo predict --model-file` on its files — the same
//! decoding and runtime, no project — and sends its part of the scores, its skipped rows and its
//! prediction-log segments back to staging URLs with their SHA-256 (`kairo_ray_predict.py`, Ray
//! tasks in a job driver). Here each part is checked against that hash, appended to the staged
//! output (row groups re-encoded, CSV rows copied), the skipped rows get their file's local
//! name back, the segments enter the project's store, and the whole is one run.

use std::io::{Seek, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kairo_data::Project;
use kairo_ray::{Status, Submit};
use kairo_store::serving::Segment;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};

use crate::input::{self, Format};
use crate::output::{Appended, OutFormat, Writer};
use crate::{OnError, PredictError, Progress, Request, Result, ShardReport, SkippedLog};

/// The job's driver: a Ray task per shard.
const DRIVER: &str = include_str!("kairo_ray_predict.py");
/// How long the job's signed URLs are valid.
const URLS_VALID: Duration = Duration::from_secs(24 * 3600);
/// Segments taken into the store between syncs.
const COMMIT_SEGMENTS: usize = 64;

/// What scoring on Ray needs of `predict`.
pub(crate) struct Job<'a> {
    pub project: &'a Project,
    pub req: &'a Request,
    /// `NAME:VERSION`.
    pub model: String,
    pub model_bytes: Vec<u8>,
    pub files: &'a [PathBuf],
    /// The input as read: its files' places in a shard are relative to it.
    pub input: &'a Path,
    pub format: Format,
    pub run_id: String,
    pub objects: &'a kairo_store::LocalObjects,
    pub progress: &'a dyn Progress,
}

/// One task's part of the input: files `files` (all of each, or row groups `row_groups` of
/// the one file).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shard {
    files: Range<usize>,
    row_groups: Option<Range<usize>>,
}

fn cluster(e: kairo_ray::RayError) -> PredictError {
    PredictError::Ray(kairo_pipeline::ray::ray_err(e).to_string())
}

/// At most `n` contiguous, non-empty runs of `weights`, each about as heavy.
fn runs(weights: &[u64], n: usize) -> Vec<Range<usize>> {
    let n = n.clamp(1, weights.len().max(1));
    let total: u64 = weights.iter().sum();
    let mut out = Vec::with_capacity(n);
    let (mut start, mut acc) = (0usize, 0u64);
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        let still = n - out.len() - 1;
        if still == 0 {
            break;
        }
        if weights.len() - i - 1 == still || acc * n as u64 >= total * (out.len() as u64 + 1) {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    out.push(start..weights.len());
    out
}

/// About `want` shards of similar size: runs of whole files (by bytes) when there are at least
/// as many files or they are CSV, else each Parquet file's row groups split in proportion to its
/// rows.
fn plan(files: &[PathBuf], format: Format, want: usize) -> Result<Vec<Shard>> {
    if files.len() >= want || format == Format::Csv {
        let sizes = files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).map_err(PredictError::io(f)))
            .collect::<Result<Vec<_>>>()?;
        return Ok(runs(&sizes, want).into_iter().map(|files| Shard { files, row_groups: None }).collect());
    }
    let groups = files.iter().map(|f| input::row_groups(f)).collect::<Result<Vec<_>>>()?;
    let total = groups.iter().flatten().sum::<u64>().max(1);
    let mut shards = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let rows: u64 = g.iter().sum();
        let k = (want as u64 * rows).div_ceil(total) as usize;
        let parts = runs(g, k);
        if parts.len() <= 1 {
            shards.push(Shard { files: i..i + 1, row_groups: None });
            continue;
        }
        shards.extend(parts.into_iter().map(|r| Shard { files: i..i + 1, row_groups: Some(r) }));
    }
    Ok(shards)
}

/// A file's place under the input, as the tasks lay it out (`in/…`).
fn place_of(input: &Path, file: &Path) -> String {
    let rel = if input.is_dir() { file.strip_prefix(input).unwrap_or(file) } else { Path::new("") };
    let rel = if rel.as_os_str().is_empty() {
        file.file_name().map(PathBuf::from).unwrap_or_else(|| "input".into())
    } else {
        rel.to_path_buf()
    };
    format!("in/{}", rel.to_string_lossy())
}

/// A task's words about its files, with the files' local names.
fn localise(text: &str, job: &Job<'_>) -> String {
    let local = if job.input.is_dir() {
        format!("{}/", job.input.display().to_string().trim_end_matches('/'))
    } else {
        job.input.display().to_string()
    };
    let theirs = if job.input.is_dir() { "in/".to_string() } else { place_of(job.input, job.input) };
    text.replace(&theirs, &local)
}

/// Removes the staged parts and the local scratch directory, however scoring ends.
struct Cleanup<'a> {
    remote: &'a kairo_store::remote::Remote,
    h: &'a tokio::runtime::Handle,
    names: Vec<String>,
    scratch: PathBuf,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.h.block_on(self.remote.unstage(name));
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Score `job` on the project's Ray cluster: (rows, scored, skipped, segments) and how many
/// shards, with the output (and skipped rows) in place.
pub(crate) fn score(job: &Job<'_>, h: &tokio::runtime::Handle) -> Result<(crate::Counts, usize)> {
    let req = job.req;
    let client = kairo_pipeline::ray::client(job.project).map_err(|e| PredictError::Ray(e.to_string()))?;
    h.block_on(client.version()).map_err(cluster)?;
    let cpus = h.block_on(client.resources()).map_err(cluster)?.cpus;
    let shards = plan(job.files, job.format, cpus.floor().max(1.0) as usize)?;
    let remote_name = job.project.config().ray.as_ref().and_then(|r| r.remote.clone());
    let remote = job.project.remote(remote_name.as_deref()).map_err(|e| {
        PredictError::Ray(format!(
            "--executor ray sends kairo, the model and the input to its tasks through a remote: {e}"
        ))
    })?;

    // What every task fetches: kairo itself, the model.
    let exe = std::env::current_exe().map_err(PredictError::io(Path::new("kairo")))?;
    let (exe_hash, exe_size) = h.block_on(remote.upload_file(&exe))?;
    let model_size = job.model_bytes.len();
    let model_hash = h.block_on(remote.upload_bytes(job.model_bytes.clone()))?;
    let kairo = json!({
        "url": h.block_on(remote.object_url(exe_hash, URLS_VALID))?, "size": exe_size, "hash": exe_hash.to_hex()
    });
    let model = json!({"url": h.block_on(remote.object_url(model_hash, URLS_VALID))?, "size": model_size});

    let id = format!("kairo-predict-{}", job.run_id);
    let ext = match req.format {
        OutFormat::Parquet => "parquet",
        OutFormat::Csv => "csv",
    };
    let part = format!("part.{ext}");
    let skipped_part = crate::skipped_path(Path::new(&part)).to_string_lossy().into_owned();
    let mut urls: Vec<Option<(String, u64)>> = vec![None; job.files.len()];
    let mut names = Vec::new();
    let mut specs = Vec::new();
    for (k, shard) in shards.iter().enumerate() {
        let mut inputs = Vec::new();
        for f in shard.files.clone() {
            if urls[f].is_none() {
                let (hash, size) = h.block_on(remote.upload_file(&job.files[f]))?;
                urls[f] = Some((h.block_on(remote.object_url(hash, URLS_VALID))?, size));
            }
            let (url, size) = urls[f].clone().expect("set above");
            inputs.push(json!({"path": place_of(job.input, &job.files[f]), "url": url, "size": size}));
        }
        let shard_input = if job.input.is_dir() { "in".to_string() } else { place_of(job.input, job.input) };
        let mut args: Vec<String> = vec![
            "predict".into(),
            job.model.clone(),
            "--model-file".into(),
            "model.onnx".into(),
            "--input".into(),
            shard_input,
            "--out".into(),
            part.clone(),
            "--format".into(),
            ext.into(),
            "--on-error".into(),
            if req.on_error == OnError::Skip { "skip" } else { "fail" }.into(),
            "--batch-rows".into(),
            req.batch_rows.to_string(),
            "--run-id".into(),
            job.run_id.clone(),
            "--first-file".into(),
            shard.files.start.to_string(),
            "--json".into(),
        ];
        if let Some(g) = &shard.row_groups {
            args.extend(["--row-groups".into(), crate::Shard::row_groups_arg(g)]);
        }
        for c in &req.id_columns {
            args.extend(["--id-column".into(), c.clone()]);
        }
        args.extend(if req.log { vec!["--segments".into(), "log".into()] } else { vec!["--no-log".into()] });
        let mut send = Vec::new();
        for (what, path) in [("part", part.as_str()), ("skipped", skipped_part.as_str()), ("log", "log")] {
            let name = format!("{id}-{k}-{what}");
            send.push(json!({"what": what, "path": path, "url": h.block_on(remote.staging_url(&name, URLS_VALID))?}));
            names.push(name);
        }
        specs.push(json!({"index": k, "inputs": inputs, "args": args, "send": send}));
    }
    let scratch = job.project.root().join(format!(".kairo/tmp/predict-{}-ray", std::process::id()));
    let _cleanup = Cleanup { remote: &remote, h, names, scratch: scratch.clone() };
    let manifest = json!({"kairo": kairo, "model": model, "threads": 1, "shards": specs});
    let package = kairo_ray::package::zip(&[
        ("kairo_ray_job.py".into(), kairo_pipeline::ray::JOB_SCRIPT.as_bytes().to_vec()),
        ("kairo_ray_predict.py".into(), DRIVER.as_bytes().to_vec()),
        ("kairo-predict.json".into(), serde_json::to_vec(&manifest).unwrap_or_default()),
    ]);
    let uri = h.block_on(client.upload_package(package)).map_err(cluster)?;
    let submit = Submit {
        entrypoint: "python kairo_ray_predict.py".into(),
        submission_id: id.clone(),
        runtime_env: json!({"working_dir": uri}),
        metadata: [
            ("kairo_run".to_string(), job.run_id.clone()),
            ("kairo_stage".to_string(), "predict".to_string()),
            ("kairo_project".to_string(), job.project.root().display().to_string()),
        ]
        .into(),
        entrypoint_num_cpus: None,
        entrypoint_num_gpus: None,
        entrypoint_memory: None,
    };
    h.block_on(client.submit(&submit)).map_err(cluster)?;

    // Follow it: each finished shard is a `KAIRO-SHARD {json}` line.
    let mut reports: Vec<Option<Value>> = vec![None; shards.len()];
    let mut pending = String::new();
    let mut tail = String::new();
    let interrupted = || job.progress.interrupted();
    let state = kairo_pipeline::ray::follow(&client, &id, h, &interrupted, &mut |text| {
        pending.push_str(text);
        while let Some(nl) = pending.find('\n') {
            let line: String = pending.drain(..=nl).collect();
            match line.trim_end().strip_prefix("KAIRO-SHARD ").and_then(|j| serde_json::from_str::<Value>(j).ok()) {
                Some(r) => {
                    if let Some(rows) = r["report"]["rows"].as_u64() {
                        job.progress.scored(rows);
                    }
                    if let Some(slot) = r["index"].as_u64().and_then(|k| reports.get_mut(k as usize)) {
                        *slot = Some(r);
                    }
                }
                None => {
                    tail.push_str(&line);
                    if tail.len() > 8192 {
                        let cut = tail.len() - 4096;
                        let cut = (cut..tail.len()).find(|&i| tail.is_char_boundary(i)).unwrap_or(0);
                        tail.drain(..cut);
                    }
                }
            }
        }
    })
    .map_err(|e| PredictError::Ray(e.to_string()))?;
    if let Some(failed) = reports.iter().flatten().find(|r| r["code"].as_i64() != Some(0)) {
        let k = failed["index"].as_u64().unwrap_or(0) as usize;
        let what = describe(&shards[k], job);
        let error = failed["error"].as_str().unwrap_or("").trim();
        let error = error.strip_prefix("error: ").unwrap_or(error);
        return Err(PredictError::Input(format!(
            "shard {} of {} ({what}) failed on Ray: {}",
            k + 1,
            shards.len(),
            localise(error, job)
        )));
    }
    match state.status {
        Status::Succeeded if reports.iter().all(Option::is_some) => {}
        Status::Stopped if job.progress.interrupted() => {
            return Err(PredictError::Interrupted(format!(
                "interrupted: Ray job {id} was stopped; nothing was written"
            )))
        }
        _ => {
            return Err(PredictError::Ray(format!(
                "Ray job {id} ended {:?} without scoring every shard{}{}",
                state.status,
                state.message.map(|m| format!(": {m}")).unwrap_or_default(),
                if tail.trim().is_empty() { String::new() } else { format!("\n{}", tail.trim_end()) }
            )))
        }
    }

    // Put the parts together, in input order.
    std::fs::create_dir_all(&scratch).map_err(PredictError::io(&scratch))?;
    let (mut rows, mut scored, mut skipped) = (0u64, 0u64, 0u64);
    let mut writer: Option<Writer> = None;
    let mut skipped_log: Option<SkippedLog> = None;
    let mut segments = Vec::new();
    let mut staged_segments = Vec::new();
    for (k, r) in reports.iter().flatten().enumerate() {
        let report: ShardReport = serde_json::from_value(r["report"].clone())
            .map_err(|e| PredictError::Ray(format!("shard {} reported something unexpected: {e}", k + 1)))?;
        rows += report.rows;
        scored += report.scored;
        skipped += report.skipped;
        let sent = |what: &str| r["sent"][what].as_object().cloned();
        if let Some(s) = sent("part") {
            let path = fetch(&remote, h, &format!("{id}-{k}-part"), &s, &scratch)?;
            append_part(&mut writer, &path, req)?;
        }
        if let Some(s) = sent("skipped") {
            let path = fetch(&remote, h, &format!("{id}-{k}-skipped"), &s, &scratch)?;
            let mut reader = csv::Reader::from_path(&path)
                .map_err(|e| PredictError::Ray(format!("shard {}'s skipped rows: {e}", k + 1)))?;
            let log = match &mut skipped_log {
                Some(log) => log,
                None => skipped_log.insert(SkippedLog::create(&req.out, &req.id_columns)?),
            };
            for record in reader.records() {
                let record = record.map_err(|e| PredictError::Ray(format!("shard {}'s skipped rows: {e}", k + 1)))?;
                let mut fields: Vec<String> = record.iter().map(str::to_string).collect();
                if let Some(file) = fields.first_mut() {
                    *file = localise(file, job);
                }
                log.add(&fields)?;
            }
        }
        if let Some(s) = sent("log") {
            let path = fetch(&remote, h, &format!("{id}-{k}-log"), &s, &scratch)?;
            let dir = scratch.join(format!("log-{k}"));
            let file = std::fs::File::open(&path).map_err(PredictError::io(&path))?;
            unpack(file, &dir)?;
            let theirs = kairo_store::LocalObjects::open(&dir, dir.join("tmp"))?;
            for s in &report.segments {
                let hash = s
                    .object
                    .parse::<kairo_core::Hash>()
                    .map_err(|e| PredictError::Ray(format!("shard {}: segment {}: {e}", k + 1, s.object)))?;
                let bytes = theirs.read(&hash)?;
                if kairo_core::Hash::of(&bytes) != hash {
                    return Err(PredictError::Ray(format!("shard {}: segment {hash} arrived damaged", k + 1)));
                }
                let staged = job.objects.stage_bytes(&bytes)?;
                segments.push(Segment {
                    deployment: job.model.rsplit_once(':').map_or(job.model.as_str(), |(n, _)| n).to_string(),
                    start_ms: s.time_ms,
                    end_ms: s.time_ms,
                    rows: s.rows,
                    object: staged.hash,
                    replica: String::new(),
                    pruned_ms: None,
                });
                staged_segments.push(staged);
                if staged_segments.len() >= COMMIT_SEGMENTS {
                    job.objects.commit(std::mem::take(&mut staged_segments))?;
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    job.objects.commit(staged_segments)?;
    crate::publish(writer, skipped_log, rows, req)?;
    Ok(((rows, scored, skipped, segments), shards.len()))
}

/// A shard in words: `data.parquet row groups 3..6`, `files 1 to 4`.
fn describe(shard: &Shard, job: &Job<'_>) -> String {
    match &shard.row_groups {
        Some(g) => format!("{} row groups {}..{}", job.files[shard.files.start].display(), g.start, g.end),
        None if shard.files.len() == 1 => job.files[shard.files.start].display().to_string(),
        None => format!("{} to {}", job.files[shard.files.start].display(), job.files[shard.files.end - 1].display()),
    }
}

/// A staged part into a scratch file, checked against the size and SHA-256 the task sent.
fn fetch(
    remote: &kairo_store::remote::Remote,
    h: &tokio::runtime::Handle,
    name: &str,
    sent: &serde_json::Map<String, Value>,
    scratch: &Path,
) -> Result<PathBuf> {
    use sha2::Digest;
    struct Hashing<W>(W, sha2::Sha256);
    impl<W: Write> Write for Hashing<W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.0.write(buf)?;
            self.1.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    let path = scratch.join(name);
    let file = std::fs::File::create(&path).map_err(PredictError::io(&path))?;
    let mut out = Hashing(std::io::BufWriter::new(file), sha2::Sha256::new());
    let size = h.block_on(remote.staged_into(name, &mut out))?;
    out.flush().map_err(PredictError::io(&path))?;
    let sha: String = out.1.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if Some(size) != sent.get("size").and_then(Value::as_u64)
        || Some(sha.as_str()) != sent.get("sha256").and_then(Value::as_str)
    {
        return Err(PredictError::Ray(format!(
            "{name} arrived damaged from the Ray task ({size} bytes, SHA-256 {sha}; the task sent {} bytes, {})",
            sent.get("size").unwrap_or(&Value::Null),
            sent.get("sha256").unwrap_or(&Value::Null)
        )));
    }
    Ok(path)
}

/// A part's rows onto the output (started with the first part's columns).
fn append_part(writer: &mut Option<Writer>, path: &Path, req: &Request) -> Result<()> {
    let bad = |e: String| PredictError::Ray(format!("a part of the scores from Ray is unreadable: {e}"));
    let mut file = std::fs::File::open(path).map_err(PredictError::io(path))?;
    match req.format {
        OutFormat::Parquet => {
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(e.to_string()))?;
            let fields: Vec<arrow_schema::Field> =
                builder.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
            let reader = builder.with_batch_size(req.batch_rows.max(1)).build().map_err(|e| bad(e.to_string()))?;
            if writer.is_none() {
                *writer = Some(Writer::with_fields(&req.out, req.format, fields)?);
            }
            let w = writer.as_mut().expect("created above");
            for batch in reader {
                w.append(Appended::Batch(batch.map_err(|e| bad(e.to_string()))?))?;
            }
        }
        OutFormat::Csv => {
            let mut reader = csv::Reader::from_reader(&mut file);
            let names: Vec<String> =
                reader.headers().map_err(|e| bad(e.to_string()))?.iter().map(str::to_string).collect();
            let body = reader.position().byte();
            drop(reader);
            if writer.is_none() {
                let fields =
                    names.iter().map(|n| arrow_schema::Field::new(n, arrow_schema::DataType::Utf8, true)).collect();
                *writer = Some(Writer::with_fields(&req.out, req.format, fields)?);
            }
            file.seek(std::io::SeekFrom::Start(body)).map_err(PredictError::io(path))?;
            writer.as_mut().expect("created above").append(Appended::Csv(&mut file))?;
        }
    }
    Ok(())
}

/// A task's directory (sent as an uncompressed tar) under `dir`; nothing outside it.
fn unpack(file: std::fs::File, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(PredictError::io(dir))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    for entry in archive.entries().map_err(PredictError::io(dir))? {
        let mut entry = entry.map_err(PredictError::io(dir))?;
        if !entry.unpack_in(dir).map_err(PredictError::io(dir))? {
            return Err(PredictError::Ray("a task's log segments hold a path outside their directory".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_contiguous_balanced_and_never_empty() {
        assert_eq!(runs(&[10, 10, 10, 10], 2), vec![0..2, 2..4]);
        assert_eq!(runs(&[10, 10, 10, 10], 4), vec![0..1, 1..2, 2..3, 3..4]);
        assert_eq!(runs(&[10, 10], 8), vec![0..1, 1..2]);
        assert_eq!(runs(&[100, 1, 1, 1], 2), vec![0..1, 1..4]);
        assert_eq!(runs(&[1, 1, 1, 100], 3), vec![0..2, 2..3, 3..4]);
        assert_eq!(runs(&[0, 0, 0], 2), vec![0..1, 1..3]);
        assert_eq!(runs(&[5], 1), vec![0..1]);
        for n in 1..6 {
            let w = [3u64, 9, 1, 4, 4, 7, 2];
            let r = runs(&w, n);
            assert_eq!(r.len(), n.min(w.len()));
            assert_eq!(r.first().unwrap().start, 0);
            assert_eq!(r.last().unwrap().end, w.len());
            assert!(r.windows(2).all(|p| p[0].end == p[1].start && !p[0].is_empty()));
        }
    }
}
