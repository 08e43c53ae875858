//! `kairo predict`: batch scoring with a registered version (see `kairo-predict`).

use crate::{CmdResult, Failure};
use kairo_core::exit;
use kairo_data::Project;
use kairo_predict::output::OutFormat;
use kairo_predict::{Executor, OnError, Request};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// The version to score with: NAME@ALIAS, NAME:VERSION or NAME (its latest version).
    pub model: String,
    /// A CSV or Parquet file, or a directory of them (read in path order); a tracked path at
    /// an earlier version as PATH@VERSION (a hash prefix from `kairo data log`, or a git
    /// revision), read from the store.
    #[arg(long, value_name = "PATH")]
    pub input: PathBuf,
    /// Where the scores go: Parquet, or CSV for a `.csv` name (`--format` overrides). Written
    /// aside and renamed when complete.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// A column copied from the input to the output, first, to join the scores back
    /// (repeatable).
    #[arg(long = "id-column", value_name = "COLUMN")]
    pub id_columns: Vec<String>,
    /// The output format (default: by the output's extension, Parquet unless `.csv`).
    #[arg(long, value_parser = ["parquet", "csv"])]
    pub format: Option<String>,
    /// A row that cannot be scored: stop with no output (fail), or leave it out and list it
    /// with the reason in OUT.skipped.csv (skip).
    #[arg(long, default_value = "fail", value_parser = ["fail", "skip"])]
    pub on_error: String,
    /// Rows per batch (peak memory grows with it; every core scores a batch at a time).
    #[arg(long, default_value_t = kairo_predict::DEFAULT_BATCH_ROWS)]
    pub batch_rows: usize,
    /// Also write each row's per-feature contributions and the bias (`contribution_<feature>`),
    /// as `kairo serve` answers `"contributions": true` (linear models and tree ensembles).
    #[arg(long)]
    pub explain: bool,
    /// Do not add the scored rows to the model's prediction log (by default its monitors see
    /// them as they see online predictions; labels come with `kairo models feedback`).
    #[arg(long)]
    pub no_log: bool,
    /// Where to score: here on every core (local), or as tasks of a job on the project's Ray
    /// cluster (ray: `ray.address` in kairo.yaml or KAIRO_RAY_ADDRESS), one per file or per
    /// Parquet row groups, the input and the scores travelling through the project's remote.
    #[arg(long, default_value = "local", value_parser = ["local", "ray"])]
    pub executor: String,
    /// Print the run's summary as JSON (no progress bar).
    #[arg(long)]
    pub json: bool,
    /// A shard of a larger run (what `--executor ray`'s tasks run): score with this ONNX file,
    /// MODEL being its NAME:VERSION; no project, no run of its own.
    #[arg(long, value_name = "FILE", hide = true)]
    pub model_file: Option<PathBuf>,
    /// With --model-file: the run the shard belongs to.
    #[arg(long, hide = true, requires = "model_file")]
    pub run_id: Option<String>,
    /// With --model-file: only row groups A..B of the (one, Parquet) input.
    #[arg(long, value_name = "A..B", hide = true, requires = "model_file")]
    pub row_groups: Option<String>,
    /// With --model-file: the number of the shard's first file in the whole input.
    #[arg(long, default_value_t = 0, hide = true, requires = "model_file")]
    pub first_file: usize,
    /// With --model-file: write prediction-log segments into this directory (a store).
    #[arg(long, value_name = "DIR", hide = true, requires = "model_file")]
    pub segments: Option<PathBuf>,
}

struct Rows(
    indicatif::ProgressBar,
    std::time::Instant,
    std::sync::atomic::AtomicBool,
    /// Ctrl-C, noted instead of ending the process on Ray (the job is stopped first).
    std::sync::Arc<kairo_pipeline::runner::Interrupt>,
);

impl kairo_predict::Progress for Rows {
    fn total(&self, rows: Option<u64>) {
        if let Some(n) = rows {
            self.0.set_length(n);
        }
    }

    fn loading(&self, active: bool) {
        crate::return_freed_memory_at_once(active);
    }

    fn scored(&self, rows: u64) {
        use std::sync::atomic::Ordering;
        self.0.inc(rows);
        if !self.2.load(Ordering::Relaxed) && self.1.elapsed() > std::time::Duration::from_secs(1) {
            self.2.store(true, Ordering::Relaxed);
            self.0.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }

    fn interrupted(&self) -> bool {
        self.3.is_set()
    }
}

/// `--model-file`: one shard, printed as its report.
fn shard(a: &PredictArgs, req: &Request, model_file: PathBuf) -> CmdResult {
    let row_groups = a.row_groups.as_deref().map(kairo_predict::Shard::parse_row_groups).transpose()?;
    let shard = kairo_predict::Shard {
        model_file,
        run_id: a.run_id.clone().unwrap_or_default(),
        row_groups,
        first_file: a.first_file,
        segments: a.segments.clone().filter(|_| !a.no_log),
    };
    let report = kairo_predict::score_shard(req, &shard, &kairo_predict::Quiet)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("scored {} of {} rows into {}", report.scored, report.rows, a.out.display());
    }
    Ok(exit::OK)
}

pub async fn run(a: PredictArgs) -> CmdResult {
    if a.batch_rows == 0 {
        return Err(Failure::usage("--batch-rows must be at least 1"));
    }
    let format = match a.format.as_deref() {
        Some("csv") => OutFormat::Csv,
        Some(_) => OutFormat::Parquet,
        None => OutFormat::of(&a.out),
    };
    let on_error = if a.on_error == "skip" { OnError::Skip } else { OnError::Fail };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let req = Request {
        model: a.model.clone(),
        input: a.input.clone(),
        out: a.out.clone(),
        id_columns: a.id_columns.clone(),
        format,
        on_error,
        batch_rows: a.batch_rows,
        explain: a.explain,
        log: !a.no_log,
        executor: if a.executor == "ray" { Executor::Ray } else { Executor::Local },
        command,
    };
    if let Some(model_file) = a.model_file.clone() {
        return shard(&a, &req, model_file);
    }
    let project = Project::discover(&std::env::current_dir()?)?;
    let md = project.metadata().await?;
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
    bar.set_style(
        indicatif::ProgressStyle::with_template("scoring [{bar:30}] {human_pos}/{human_len} rows {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let show = !a.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let interrupted = std::sync::Arc::new(kairo_pipeline::runner::Interrupt::default());
    if req.executor == Executor::Ray {
        crate::pipeline::watch_signals(&interrupted);
    }
    let progress = Rows(bar, std::time::Instant::now(), std::sync::atomic::AtomicBool::new(!show), interrupted);
    let result = kairo_predict::predict(&project, &md, &req, &progress).await;
    progress.0.finish_and_clear();
    md.close().await;
    let report = match result {
        Err(e @ kairo_predict::PredictError::Interrupted(_)) => {
            return Err(Failure { code: crate::pipeline::INTERRUPTED, message: e.to_string() })
        }
        r => r?,
    };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(exit::OK);
    }
    let from = report.alias.as_ref().map(|al| format!(" (@{al})")).unwrap_or_default();
    let on = report.shards.map(|n| format!(" on Ray ({n} tasks)")).unwrap_or_default();
    println!(
        "scored {} of {} rows with {} version {}{from} into {}{on} in {:.2} s ({:.0} rows/s)",
        report.scored, report.rows, report.model, report.version, report.output, report.seconds, report.rows_per_second
    );
    if report.logged > 0 {
        println!(
            "logged {} rows to the prediction log of '{}' (its monitors see them; labels: `kairo models feedback`)",
            report.logged, report.model
        );
    }
    if let Some(f) = &report.skipped_file {
        println!("skipped {} rows; the reasons are in {f}", report.skipped);
    }
    println!("run {} (see `kairo lineage {}`)", report.run_id, report.output);
    Ok(exit::OK)
}
