//! `kairo train`: fit a tabular model with Kairo's built-in learners and write it as ONNX,
//! with its test metrics as JSON. Usable as a pipeline stage (`cmd: kairo train ...`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use kairo_core::exit;
use kairo_ml::data::Task;
use kairo_ml::Algo;
use serde_json::json;

use crate::report::print_json;
use crate::{CmdResult, Failure};

#[derive(Clone, Copy, ValueEnum)]
pub enum TaskArg {
    Classification,
    Regression,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AlgoArg {
    Logistic,
    Linear,
    Gbdt,
    #[value(name = "random_forest")]
    RandomForest,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Training data: CSV, or Parquet when named *.parquet.
    #[arg(long)]
    pub data: PathBuf,
    /// The column to predict; every other column is a feature (except those dropped).
    #[arg(long)]
    pub target: String,
    /// Columns that are not features, when present (repeatable or comma-separated), e.g. the
    /// `request_id,row,time,version` columns of `kairo models predictions export`.
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',')]
    pub drop: Vec<String>,
    /// Default: classification for text targets and integer targets with at most 20 values.
    #[arg(long, value_enum)]
    pub task: Option<TaskArg>,
    /// Default: gbdt.
    #[arg(long, value_enum)]
    pub algo: Option<AlgoArg>,
    /// A learner parameter (repeatable): `--param n_estimators=200`.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Evaluate on this file instead of holding rows out.
    #[arg(long, conflicts_with = "test_fraction")]
    pub test_data: Option<PathBuf>,
    /// Share of rows held out for evaluation (seeded shuffle).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Seed of the split, the forest's bootstrap and every random choice: same seed, same model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the ONNX model.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to write the test metrics (JSON).
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Print the summary (task, rows, classes, fit time, metrics) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A spinner with the current step on a terminal (nothing when stderr is not one).
struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    fn start(message: &str) -> Spinner {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Spinner(Some(bar))
    }

    fn say(&self, message: &str) {
        if let Some(b) = &self.0 {
            b.set_message(message.to_string());
        }
    }

    fn stop(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

pub fn run(a: TrainArgs) -> CmdResult {
    let fail = |message: String| Failure { code: exit::ERROR, message };
    let mut params = Vec::new();
    for p in &a.params {
        let (k, v) = p.split_once('=').ok_or_else(|| Failure::usage(format!("--param {p}: expected KEY=VALUE")))?;
        params.push((k.trim().to_string(), v.trim().to_string()));
    }
    let started = std::time::Instant::now();
    let spinner = Spinner::start(&format!("reading {}", a.data.display()));
    let frame = kairo_ml::drop_columns(kairo_ml::read(&a.data)?, &a.drop, &a.target)?;
    let test = match a.test_data.as_deref() {
        Some(p) => Some(kairo_ml::drop_columns(kairo_ml::read(p)?, &a.drop, &a.target)?),
        None => None,
    };
    let request = kairo_ml::Request {
        target: a.target.clone(),
        task: a.task.map(|t| match t {
            TaskArg::Classification => Task::Classification,
            TaskArg::Regression => Task::Regression,
        }),
        algo: a.algo.map(|x| match x {
            AlgoArg::Logistic => Algo::Logistic,
            AlgoArg::Linear => Algo::Linear,
            AlgoArg::Gbdt => Algo::Gbdt,
            AlgoArg::RandomForest => Algo::RandomForest,
        }),
        params,
        test_fraction: a.test_fraction,
        seed: a.seed,
    };
    spinner.say(&format!(
        "fitting {} on {} rows × {} columns",
        request.algo.map(Algo::name).unwrap_or("gbdt"),
        frame.rows,
        frame.columns.len().saturating_sub(1)
    ));
    let trained = kairo_ml::train(&frame, test.as_ref(), &request);
    spinner.stop();
    let trained = trained.map_err(|e| fail(format!("{}: {e}", a.data.display())))?;
    let metrics = json!({
        "task": match trained.task { Task::Classification => "classification", Task::Regression => "regression" },
        "algo": trained.algo.name(),
        "train_rows": trained.train_rows, "test_rows": trained.test_rows,
        "features": trained.features.len(), "classes": trained.classes,
        "fit_seconds": trained.fit_seconds,
        "metrics": trained.metrics,
    });
    // The metrics file holds the numbers (what `metrics:` in a stage tracks).
    let mut numbers = serde_json::Map::new();
    for (k, v) in &trained.metrics {
        numbers.insert(k.to_string(), json!(v));
    }
    crate::report::write_atomic(&a.out, &trained.onnx)?;
    if let Some(path) = &a.metrics {
        let text = serde_json::to_vec_pretty(&serde_json::Value::Object(numbers)).map_err(|e| fail(e.to_string()))?;
        if let Err(e) = crate::report::write_atomic(path, &text) {
            let _ = std::fs::remove_file(&a.out);
            return Err(e);
        }
    }
    if a.json {
        print_json(&metrics);
        return Ok(exit::OK);
    }
    println!(
        "trained {} ({}) on {} rows × {} features in {:.2}s; tested on {} rows",
        trained.algo.name(),
        match trained.task {
            Task::Classification => format!("{} classes", trained.classes.len()),
            Task::Regression => "regression".into(),
        },
        trained.train_rows,
        trained.features.len(),
        started.elapsed().as_secs_f64(),
        trained.test_rows
    );
    // The headline metrics; every one is in --metrics and --json.
    const SHOWN: [&str; 11] =
        ["accuracy", "balanced_accuracy", "precision", "recall", "f1", "auc", "log_loss", "rmse", "mae", "r2", "mape"];
    for (k, v) in trained.metrics.iter().filter(|(k, _)| SHOWN.contains(k)) {
        println!("  {k:<18} {v:.4}");
    }
    for n in &trained.notes {
        println!("  note: {n}");
    }
    println!("wrote {} ({} bytes)", a.out.display(), trained.onnx.len());
    Ok(exit::OK)
}
