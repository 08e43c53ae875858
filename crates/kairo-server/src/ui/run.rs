//! `/runs/{id}`: one run — what ran, where, from which code and environment, its params,
//! metrics (with a chart of each metric's history when it has one), inputs and outputs, and
//! the head of its captured output.

use kairo_core::run::Run;
use maud::{html, Markup};

use super::{Lang, Words};
use crate::error::ApiError;
use crate::AppState;

/// At most this much of a run's captured output is shown.
const LOG_HEAD: usize = 64 * 1024;

pub struct Loaded {
    pub run: Run,
    /// Metric → (step, value) points, oldest first, for metrics with more than one point.
    pub histories: Vec<(String, Vec<(i64, f64)>)>,
    pub log: Option<(String, bool)>,
}

pub async fn load(s: &AppState, id: &str) -> Result<Loaded, ApiError> {
    let run = s.md.run(id).await.map_err(|e| match e {
        kairo_store::runs::RunLookupError::Store(e) => ApiError::from(e),
        other => ApiError::not_found(other.to_string()),
    })?;
    let mut histories = Vec::new();
    for key in run.metrics.keys().take(12) {
        let points = s.md.metric_history(&run.id, key).await?;
        if points.len() > 1 {
            histories.push((key.clone(), points.iter().map(|p| (p.step, p.value)).collect()));
        }
    }
    let log = match run.log {
        Some(hash) => {
            let objects = s.objects.clone();
            let bytes = tokio::task::spawn_blocking(move || objects.read(&hash)).await.ok().and_then(Result::ok);
            bytes.map(|b| {
                let cut = b.len() > LOG_HEAD;
                (String::from_utf8_lossy(&b[..b.len().min(LOG_HEAD)]).into_owned(), cut)
            })
        }
        None => None,
    };
    Ok(Loaded { run, histories, log })
}

/// A metric's history as an inline SVG line (no script; the CSP allows inline SVG markup).
fn chart(points: &[(i64, f64)], label: &str) -> Markup {
    let finite: Vec<(f64, f64)> = points.iter().filter(|(_, v)| v.is_finite()).map(|(s, v)| (*s as f64, *v)).collect();
    let (w, h, pad) = (320.0, 80.0, 4.0);
    let (x0, x1) = finite.iter().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
    let (y0, y1) = finite.iter().fold((f64::MAX, f64::MIN), |(a, b), (_, y)| (a.min(*y), b.max(*y)));
    let sx = |x: f64| pad + if x1 > x0 { (x - x0) / (x1 - x0) * (w - 2.0 * pad) } else { (w - 2.0 * pad) / 2.0 };
    let sy = |y: f64| h - pad - if y1 > y0 { (y - y0) / (y1 - y0) * (h - 2.0 * pad) } else { (h - 2.0 * pad) / 2.0 };
    let path: Vec<String> = finite.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
    html! {
        svg.chart viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(label) {
            polyline points=(path.join(" ")) fill="none" stroke="currentColor" stroke-width="1.5" {}
        }
    }
}

pub fn body(lang: Lang, l: &Loaded) -> Markup {
    let t = lang.text();
    let r = &l.run;
    let short = |h: &kairo_core::Hash| h.to_hex()[..12].to_string();
    html! {
        h1 { (t.run) " " span.mono { (r.id) } }
        dl.facts {
            dt { (t.stage) } dd { (r.stage) }
            dt { (t.state) } dd { (r.status.as_str()) @if let Some(c) = r.exit_code { " (exit " (c) ")" } }
            @if let Some(m) = &r.message { dt { (t.message) } dd { (m.lines().next().unwrap_or("")) } }
            dt { (t.by) } dd { (r.actor) " · " (r.trigger) " · " (r.host) " · " (r.executor) }
            dt { (t.started) } dd { (r.started_at) @if let Some(s) = r.duration_secs() { " (" (format!("{s:.2}")) " s)" } }
            dt { (t.code) } dd.mono {
                (r.git.commit.as_deref().unwrap_or("–")) " " (r.git.branch.as_deref().unwrap_or(""))
                @if r.git.dirty.is_some() { " " (t.uncommitted) }
            }
            dt { (t.command) } dd.mono { (r.cmd) }
            dt { (t.environment) } dd.mono { (r.env.spec) " " (short(&r.env.hash)) }
            dt { (t.cache_key) } dd.mono { (short(&r.cache_key)) @if !r.cacheable { " (" (t.not_cacheable) ")" } }
            @if let Some(rep) = &r.reproduces { dt { (t.reproduces) } dd.mono { a href={ "/runs/" (rep) } { (rep) } } }
            dt { (t.lineage) } dd { a href={ "/lineage?target=" (r.id) "&lang=" (lang.code()) } { (t.lineage_of) } }
        }
        h2 { (t.params) }
        @if r.params.is_empty() { p { "–" } } @else {
            table { thead { tr { th scope="col" { (t.name) } th scope="col" { (t.value) } th scope="col" { (t.file) } } }
                tbody { @for (file, kv) in &r.params { @for (k, v) in kv {
                    tr { td.mono { (k) } td.mono { (v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())) } td { (file) } }
                } } }
            }
        }
        h2 { (t.metrics) }
        @if r.metrics.is_empty() { p { "–" } } @else {
            table { thead { tr { th scope="col" { (t.name) } th scope="col" { (t.value) } th scope="col" { (t.history) } } }
                tbody { @for (k, v) in &r.metrics {
                    tr {
                        td.mono { (k) } td.num { (v) }
                        td { @if let Some((_, pts)) = l.histories.iter().find(|(hk, _)| hk == k) { (chart(pts, k)) } }
                    }
                } }
            }
        }
        h2 { (t.inputs_outputs) }
        table { thead { tr { th scope="col" { (t.path) } th scope="col" { (t.kind) } th scope="col" { (t.version) } th scope="col" { "" } } }
            tbody {
                @for d in &r.deps { tr { td.mono { (d.path) } td { (d.kind) } td.mono { (short(&d.hash)) } td { (t.input) @if d.dataset { " · " (t.dataset) } } } }
                @for o in &r.outs { tr { td.mono { (o.path) } td { (o.kind) } td.mono { (short(&o.hash)) } td { (t.output) } } }
            }
        }
        @if let Some((text, cut)) = l.log.as_ref().filter(|(text, _)| !text.is_empty()) {
            h2 { (t.log) }
            pre.log { (text) }
            @if *cut { p { (t.log_cut) } }
        }
    }
}

/// At most this many files of a run are listed.
const MAX_FILES: usize = 1000;
/// A preview reads at most this much of a file.
const PREVIEW: usize = 64 * 1024;
/// Rows of a CSV shown in a preview.
const CSV_ROWS: usize = 20;

/// A file (or, for an MLflow client's artifacts, a directory) of a run.
pub struct RunFile {
    pub path: String,
    pub size: Option<u64>,
    pub is_dir: bool,
}

const TRACKED: &str = "mlflow-client";

/// A run's files: its artifacts (runs of MLflow clients, one directory `dir` at a time) or the
/// files of its outputs (pipeline runs).
pub async fn files(s: &AppState, run: &Run, dir: &str) -> Result<Vec<RunFile>, ApiError> {
    if run.executor == TRACKED {
        let info = s.md.tracked_run_info(&run.id).await?;
        let root = crate::mlflow::artifacts::run_root(&info);
        let dir = crate::mlflow::artifacts::clean_path(dir)?;
        let full = if dir.is_empty() { root } else { format!("{root}/{dir}") };
        let entries = s.md.list_artifacts(&full).await?;
        return Ok(entries
            .into_iter()
            .take(MAX_FILES)
            .map(|e| RunFile {
                path: if dir.is_empty() { e.path } else { format!("{dir}/{}", e.path) },
                size: e.size,
                is_dir: e.is_dir,
            })
            .collect());
    }
    let objects = s.objects.clone();
    let outs = run.outs.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for o in &outs {
            let kind = if o.kind == "dir" {
                kairo_core::pointer::PointerKind::Dir
            } else {
                kairo_core::pointer::PointerKind::File
            };
            // An output whose tree is no longer in this store (gc, another machine) is listed bare.
            let Ok(tree) = kairo_data::tree::load(&objects, &o.path, kind, o.hash, o.size) else {
                out.push(RunFile { path: o.path.clone(), size: Some(o.size), is_dir: false });
                continue;
            };
            for (rel, node) in tree.files_with_paths() {
                if out.len() >= MAX_FILES {
                    break;
                }
                let path = if rel.is_empty() { o.path.clone() } else { format!("{}/{rel}", o.path) };
                out.push(RunFile { path, size: Some(node.size()), is_dir: false });
            }
        }
        out
    })
    .await
    .map_err(|e| ApiError { code: crate::error::Code::Internal, message: e.to_string() })
}

/// The object of one of the run's files, if `path` is one.
pub async fn file(s: &AppState, run: &Run, path: &str) -> Result<kairo_core::Hash, ApiError> {
    let missing = || ApiError::not_found(format!("run {} has no file {path:.200}", run.id));
    if run.executor == TRACKED {
        let info = s.md.tracked_run_info(&run.id).await?;
        let sub = crate::mlflow::artifacts::clean_path(path)?;
        let full = format!("{}/{sub}", crate::mlflow::artifacts::run_root(&info));
        return s.md.artifact(&full).await?.map(|(h, _)| h).ok_or_else(missing);
    }
    // The output that holds `path`, searched whole (the listing stops at MAX_FILES).
    let Some(out) = run.outs.iter().find(|o| o.path == path || path.starts_with(&format!("{}/", o.path))) else {
        return Err(missing());
    };
    let (objects, out, want) = (s.objects.clone(), out.clone(), path.to_string());
    let found = tokio::task::spawn_blocking(move || {
        let kind = if out.kind == "dir" {
            kairo_core::pointer::PointerKind::Dir
        } else {
            kairo_core::pointer::PointerKind::File
        };
        let tree = kairo_data::tree::load(&objects, &out.path, kind, out.hash, out.size).ok()?;
        let rel = want.strip_prefix(&out.path).unwrap_or("").trim_start_matches('/').to_string();
        tree.files_with_paths().into_iter().find(|(p, _)| *p == rel).map(|(_, n)| n.hash())
    })
    .await
    .map_err(|e| ApiError { code: crate::error::Code::Internal, message: e.to_string() })?;
    found.ok_or_else(missing)
}

/// What a preview shows.
pub enum Preview {
    Text(String, bool),
    Csv(Vec<Vec<String>>),
    Image(String),
    None,
}

/// The head of a file, shown as text, a table or an image (whatever its bytes, never as HTML).
pub async fn preview(s: &AppState, run: &Run, path: &str) -> Result<Preview, ApiError> {
    let hash = file(s, run, path).await?;
    let mime = crate::mlflow::artifacts::mime_type(path.rsplit('/').next().unwrap_or(path));
    if mime.starts_with("image/") {
        return Ok(Preview::Image(format!("/runs/{}/file?path={}", run.id, super::models::urlencode(path))));
    }
    if mime != "text/plain" {
        return Ok(Preview::None);
    }
    let objects = s.objects.clone();
    let head = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, bool), kairo_store::StoreError> {
        Ok(match objects.source(&hash)? {
            kairo_store::ObjectSource::Bytes(b) => (b[..b.len().min(PREVIEW)].to_vec(), b.len() > PREVIEW),
            kairo_store::ObjectSource::File { path, size } => {
                use std::io::Read;
                let mut buf = Vec::with_capacity(PREVIEW.min(size as usize));
                std::fs::File::open(&path)
                    .and_then(|f| f.take(PREVIEW as u64).read_to_end(&mut buf))
                    .map_err(|e| kairo_store::StoreError::Io { path: path.clone(), source: e })?;
                (buf, size as usize > PREVIEW)
            }
        })
    })
    .await
    .map_err(|e| ApiError { code: crate::error::Code::Internal, message: e.to_string() })??;
    let (bytes, cut) = head;
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".csv") || lower.ends_with(".tsv") {
        let delimiter = if lower.ends_with(".tsv") { b'\t' } else { b',' };
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(&bytes[..]);
        let rows: Vec<Vec<String>> = reader
            .records()
            .take(CSV_ROWS + 1)
            .filter_map(Result::ok)
            .map(|r| r.iter().take(50).map(str::to_string).collect())
            .collect();
        return Ok(Preview::Csv(rows));
    }
    Ok(Preview::Text(String::from_utf8_lossy(&bytes).into_owned(), cut))
}

pub fn files_section(lang: Lang, run: &Run, files: &[RunFile], dir: &str, preview: Option<(&str, &Preview)>) -> Markup {
    let t = lang.text();
    let l = lang.code();
    let enc = super::models::urlencode;
    html! {
        section aria-labelledby="files-h" {
            h2 id="files-h" { (t.files) }
            @if !dir.is_empty() {
                p { a href={ "/runs/" (run.id) "?lang=" (l) } { (t.top) } " / " span.mono { (dir) } }
            }
            @if files.is_empty() { p { "–" } } @else {
                table {
                    thead { tr { th scope="col" { (t.path) } th scope="col" { (t.size) } th scope="col" { "" } } }
                    tbody { @for f in files {
                        tr {
                            @if f.is_dir {
                                td.mono { a href={ "/runs/" (run.id) "?dir=" (enc(&f.path)) "&lang=" (l) } { (f.path) "/" } }
                                td {} td {}
                            } @else {
                                td.mono { a href={ "/runs/" (run.id) "?preview=" (enc(&f.path)) "&dir=" (enc(dir)) "&lang=" (l) "#preview-h" } { (f.path) } }
                                td.num { (f.size.map(super::data::bytes).unwrap_or_default()) }
                                td { a href={ "/runs/" (run.id) "/file?path=" (enc(&f.path)) } download { (t.download) } }
                            }
                        }
                    } }
                }
            }
            @if let Some((path, p)) = preview {
                h3 id="preview-h" { (t.preview) " " span.mono { (path) } }
                @match p {
                    Preview::Text(text, cut) => { pre.log { (text) } @if *cut { p.note { (t.preview_cut) } } }
                    Preview::Csv(rows) => {
                        div.scroll { table {
                            @if let Some(head) = rows.first() { thead { tr { @for h in head { th scope="col" .mono { (h) } } } } }
                            tbody { @for r in rows.iter().skip(1) { tr { @for c in r { td.mono { (c) } } } } }
                        } }
                        p.note { (t.csv_head) }
                    }
                    Preview::Image(src) => img.preview src=(src) alt=(path);
                    Preview::None => p { (t.no_preview) }
                }
            }
        }
    }
}
