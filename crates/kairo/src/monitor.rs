//! `kairo monitor check` and `report`: drift between a reference and a current file, or a
//! monitor from `kairo.yaml` (a deployment's prediction log in windows, with alert rules).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use kairo_core::config::MonitorSpec;
use kairo_core::{exit, time};
use kairo_data::Project;
use kairo_monitor::drift::{self, Correction, Options, Preset};
use kairo_monitor::frame::Frame;
use kairo_watch as monitoring;
use serde_json::json;

use crate::report::print_json;
use crate::{CmdResult, Failure};

#[derive(Subcommand)]
pub enum MonitorCommand {
    /// Compare a current file with a reference file column by column (exit 3 on dataset drift).
    Check(CheckArgs),
    /// The same comparison as a self-contained HTML report (--json also prints it); with
    /// --monitor or --deployment, the newest window with data against the reference profile.
    Report(ReportArgs),
    /// Estimate a binary classifier's accuracy and ROC AUC on current data before its labels
    /// arrive (CBPE, as NannyML): calibrated on a labelled reference, per chunk of rows, with
    /// sampling errors, and alerts against the reference's range (exit 3 when a chunk alerts).
    Estimate(EstimateArgs),
}

#[derive(Args)]
pub struct EstimateArgs {
    /// Labelled reference data (CSV or Parquet): scores, labels, predictions.
    #[arg(long)]
    pub reference: PathBuf,
    /// Current data (CSV or Parquet): scores and predictions; labels, when present, give the
    /// realised values too.
    #[arg(long)]
    pub current: PathBuf,
    /// The column holding the positive class's probability.
    #[arg(long, default_value = "score")]
    pub score: String,
    /// The column holding the label (the larger of its two values is the positive class).
    #[arg(long, default_value = "label")]
    pub label: String,
    /// The column holding the predicted label; without it, `score >= --threshold` is positive.
    #[arg(long)]
    pub prediction: Option<String>,
    /// The decision threshold when there is no --prediction column.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    /// Rows per chunk (the last chunk may be shorter).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_size: u64,
    /// Print the estimate as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub check: CheckArgs,
    /// Where to write the HTML report.
    #[arg(long, default_value = "drift-report.html")]
    pub out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PresetArg {
    /// Tests for small samples, distances for large ones (decided by the smaller sample).
    Kairo,
    /// Evidently's DataDriftPreset defaults (decided by the reference size), for comparison.
    Evidently,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CorrectionArg {
    None,
    Bonferroni,
    Bh,
}

#[derive(Args)]
pub struct CheckArgs {
    /// A monitor from kairo.yaml `monitors:` (its data, windows and alert rules).
    #[arg(long, conflicts_with_all = ["reference", "current", "deployment"])]
    pub monitor: Option<String>,
    /// Watch a deployment's prediction log against its serving version's reference profile.
    #[arg(long, conflicts_with_all = ["reference", "current"])]
    pub deployment: Option<String>,
    /// Time windows for --deployment (`30m`, `1h`, `1d`; default 1h).
    #[arg(long, requires = "deployment", conflicts_with = "rows")]
    pub window: Option<String>,
    /// Row windows for --deployment: the newest N predicted rows.
    #[arg(long, requires = "deployment")]
    pub rows: Option<u64>,
    /// How many windows to show (the newest last).
    #[arg(long, default_value_t = 1)]
    pub windows: usize,
    /// The reference data (CSV, or Parquet when named *.parquet), e.g. the training set.
    #[arg(long, requires = "current")]
    pub reference: Option<PathBuf>,
    /// The data to check (CSV or Parquet).
    #[arg(long, requires = "reference")]
    pub current: Option<PathBuf>,
    /// How each column's drift method and threshold are chosen.
    #[arg(long, value_enum, default_value_t = PresetArg::Kairo)]
    pub preset: PresetArg,
    /// Share of drifted columns at which the dataset counts as drifted.
    #[arg(long, default_value_t = 0.5)]
    pub drift_share: f64,
    /// Multiple-testing correction for the test-based methods.
    #[arg(long, value_enum, default_value_t = CorrectionArg::None)]
    pub correction: CorrectionArg,
    /// Print the result as JSON instead of a table (`report` still writes the HTML).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: MonitorCommand) -> CmdResult {
    // Checks of files are local whatever the mode; a monitor's check runs where its data is.
    if let Some(remote) = crate::remote::connect()? {
        match &cmd {
            MonitorCommand::Check(a) if a.monitor.is_some() => return check_remote(&remote, a).await,
            MonitorCommand::Check(a) | MonitorCommand::Report(ReportArgs { check: a, .. }) if a.deployment.is_some() || a.monitor.is_some() => {
                return Err(Failure::usage(
                    "through a server, check a monitor of its kairo.yaml (`kairo monitor check --monitor NAME`); `--deployment` and `report` run where the prediction log is",
                ))
            }
            _ => {}
        }
    }
    match cmd {
        MonitorCommand::Check(a) if a.monitor.is_some() || a.deployment.is_some() => watch(a).await,
        MonitorCommand::Check(a) => check(a),
        MonitorCommand::Report(a) if a.check.monitor.is_some() || a.check.deployment.is_some() => {
            report_window(a).await
        }
        MonitorCommand::Report(a) => report(a),
        MonitorCommand::Estimate(a) => estimate(a),
    }
}

/// `kairo monitor estimate`: CBPE over two files.
fn estimate(a: EstimateArgs) -> CmdResult {
    let read = |p: &std::path::Path| kairo_monitor::frame::Frame::read(p);
    let reference = read(&a.reference)?;
    let current = read(&a.current)?;
    let columns = kairo_monitor::cbpe::Columns {
        score: &a.score,
        label: &a.label,
        prediction: a.prediction.as_deref(),
        threshold: a.threshold,
    };
    let r = kairo_monitor::cbpe::estimate_files(
        (&reference, &a.reference.display().to_string()),
        (&current, &a.current.display().to_string()),
        &columns,
        a.chunk_size as usize,
    )?;
    let alerts = r.chunks.iter().any(|c| c.accuracy_alert || c.auc_alert);
    let code = if alerts { exit::CHANGED } else { exit::OK };
    if a.json {
        print_json(&serde_json::to_value(&r)?);
        return Ok(code);
    }
    let range = |t: Option<kairo_monitor::cbpe::Thresholds>| {
        t.map_or("–".to_string(), |t| format!("{:.4}–{:.4}", t.lower, t.upper))
    };
    println!(
        "reference {}: {} rows, positive class {}, accuracy {:.4}, auc {:.4}; probabilities {}",
        a.reference.display(),
        r.reference_rows,
        r.positive,
        r.reference_accuracy,
        r.reference_auc,
        if r.calibrated { "calibrated (isotonic)" } else { "used as they are" }
    );
    println!("expected range: accuracy {}, auc {}", range(r.accuracy_thresholds), range(r.auc_thresholds));
    println!("{:<17} {:>8}  {:<28} {:<28} REALISED", "ROWS", "N", "ESTIMATED ACCURACY", "ESTIMATED AUC");
    for c in &r.chunks {
        let e = &c.estimate;
        let acc = format!(
            "{:.4} ({:.4}–{:.4}){}",
            e.accuracy,
            c.accuracy_band.0,
            c.accuracy_band.1,
            if c.accuracy_alert { " ALERT" } else { "" }
        );
        let auc = match (e.auc, c.auc_band) {
            (Some(x), Some((lo, hi))) => format!("{x:.4} ({lo:.4}–{hi:.4}){}", if c.auc_alert { " ALERT" } else { "" }),
            _ => "–".into(),
        };
        let realised = match (c.realised_accuracy, c.realised_auc) {
            (Some(acc), Some(auc)) => format!("accuracy {acc:.4} auc {auc:.4}"),
            (Some(acc), None) => format!("accuracy {acc:.4}"),
            _ => "–".into(),
        };
        println!("{:<17} {:>8}  {acc:<28} {auc:<28} {realised}", format!("{}–{}", c.start, c.end - 1), c.end - c.start);
    }
    if alerts {
        println!("\nan estimate left the reference's expected range");
    }
    Ok(code)
}

/// Write an HTML document whole, then rename: a reader never sees half a report.
fn write_html(out: &std::path::Path, html: String) -> Result<(), Failure> {
    let tmp = out.with_extension("html.tmp");
    std::fs::write(&tmp, html)
        .and_then(|_| std::fs::rename(&tmp, out))
        .map_err(|e| Failure { code: exit::ERROR, message: format!("{}: {e}", out.display()) })
}

/// The report of a monitor's (or deployment's) newest window with data, against the serving
/// version's reference profile. Raises no alerts (`monitor check` does).
async fn report_window(a: ReportArgs) -> CmdResult {
    let project = Project::discover(&std::env::current_dir()?)?;
    let (name, spec) = resolve(&a.check, &project)?;
    if let (Some(r), Some(c)) = (&spec.reference, &spec.current) {
        let mut a = a;
        a.check.reference = Some(project.root().join(r));
        a.check.current = Some(project.root().join(c));
        a.check.monitor = None;
        return report(a);
    }
    let deployment = spec.deployment.clone().unwrap_or_default();
    let windowing = monitoring::Windowing::of(&spec).map_err(Failure::watch)?;
    let md = project.metadata().await?;
    let objects = project.objects()?;
    let e = monitoring::evaluate(&md, &objects, &deployment, &spec, windowing, a.check.windows, time::now_millis())
        .await
        .map_err(Failure::watch)?;
    let Some(w) = e.windows.iter().rev().find(|w| w.sketch.rows > 0) else {
        return Err(Failure {
            code: exit::ERROR,
            message: format!(
                "no predictions of '{deployment}' version {} in the last {} windows",
                e.version,
                e.windows.len()
            ),
        });
    };
    let title = format!(
        "Drift: {name} (deployment '{deployment}' v{}), {} – {}",
        e.version,
        time::millis_to_string(w.window.start_ms),
        time::millis_to_string(w.window.end_ms)
    );
    write_html(&a.out, kairo_monitor::report::html_sketch(&w.report, &e.profile, &w.sketch, &title))?;
    if a.check.json {
        print_json(&json!({"monitor": name, "deployment": deployment, "version": e.version, "report": a.out,
                           "window": {"start_ms": w.window.start_ms, "end_ms": w.window.end_ms, "rows": w.sketch.rows},
                           "values": w.window.values, "drift": monitoring::document::drift_json(&w.report)}));
    } else {
        println!(
            "wrote {}: window of {} rows, drift in {} of {} judged features; dataset drift: {}",
            a.out.display(),
            w.sketch.rows,
            w.report.drifted,
            w.report.judged,
            if w.report.dataset_drift { "YES" } else { "no" }
        );
    }
    Ok(if w.report.dataset_drift { exit::CHANGED } else { exit::OK })
}

fn report(a: ReportArgs) -> CmdResult {
    let (mut reference, mut current, options) = load(&a.check)?;
    let r = drift::check(&mut reference, &mut current, &options);
    let (reference_path, current_path) = files(&a.check)?;
    let title = format!("Drift: {} vs {}", current_path.display(), reference_path.display());
    write_html(&a.out, kairo_monitor::report::html(&r, &reference, &current, &title))?;
    if a.check.json {
        print_json(&report_json(&a.check, reference.rows, current.rows, &r));
    } else {
        println!(
            "wrote {}: drift in {} of {} judged columns; dataset drift: {}",
            a.out.display(),
            r.drifted,
            r.judged,
            if r.dataset_drift { "YES" } else { "no" }
        );
    }
    Ok(if r.dataset_drift { exit::CHANGED } else { exit::OK })
}

type Loaded = (Frame, Frame, Options);

/// The two files of a file check.
fn files(a: &CheckArgs) -> Result<(PathBuf, PathBuf), Failure> {
    match (&a.reference, &a.current) {
        (Some(r), Some(c)) => Ok((r.clone(), c.clone())),
        _ => Err(Failure::usage("give --reference FILE --current FILE, --deployment NAME, or --monitor NAME")),
    }
}

fn load(a: &CheckArgs) -> Result<Loaded, Failure> {
    let (reference_path, current_path) = files(a)?;
    load_files(a, &reference_path, &current_path)
}

fn load_files(
    a: &CheckArgs,
    reference_path: &std::path::Path,
    current_path: &std::path::Path,
) -> Result<Loaded, Failure> {
    // Both files at once: parsing is most of the work.
    let (reference, current) = std::thread::scope(|s| {
        let r = s.spawn(|| Frame::read(reference_path));
        let c = Frame::read(current_path);
        (r.join(), c)
    });
    let reference =
        reference.map_err(|_| Failure { code: exit::ERROR, message: "reading the reference failed".into() })??;
    let current = current?;
    Ok((reference, current, options(a)?))
}

/// The drift options of a file check; `--drift-share` outside [0, 1] is a usage error.
fn options(a: &CheckArgs) -> Result<Options, Failure> {
    if !(0.0..=1.0).contains(&a.drift_share) {
        return Err(Failure::usage(format!("--drift-share {}: must be between 0 and 1", a.drift_share)));
    }
    Ok(Options {
        preset: match a.preset {
            PresetArg::Kairo => Preset::Kairo,
            PresetArg::Evidently => Preset::Evidently,
        },
        drift_share: a.drift_share,
        correction: match a.correction {
            CorrectionArg::None => Correction::None,
            CorrectionArg::Bonferroni => Correction::Bonferroni,
            CorrectionArg::Bh => Correction::BenjaminiHochberg,
        },
    })
}

fn report_json(a: &CheckArgs, reference_rows: usize, current_rows: usize, r: &drift::DriftReport) -> serde_json::Value {
    let mut v = monitoring::document::drift_json(r);
    v["reference"] = json!({"path": a.reference, "rows": reference_rows});
    v["current"] = json!({"path": a.current, "rows": current_rows});
    v
}

/// A check of two files: Parquet ones are read a column at a time (memory: a few columns),
/// CSV ones whole.
fn check(a: CheckArgs) -> CmdResult {
    let (reference_path, current_path) = files(&a)?;
    let options = options(&a)?;
    let (reference, current) = std::thread::scope(|s| {
        let r = s.spawn(|| drift::Table::open(&reference_path));
        let c = drift::Table::open(&current_path);
        (r.join(), c)
    });
    let reference =
        reference.map_err(|_| Failure { code: exit::ERROR, message: "reading the reference failed".into() })??;
    let current = current?;
    let rows = (reference.rows(), current.rows());
    let r = drift::check_tables(reference, current, &options)?;
    let code = if r.dataset_drift { exit::CHANGED } else { exit::OK };
    if a.json {
        print_json(&report_json(&a, rows.0, rows.1, &r));
        return Ok(code);
    }
    print_table(&monitoring::document::drift_json(&r));
    Ok(code)
}

/// A drift report (`kairo_watch::document::drift_json`) as a table.
fn print_table(r: &serde_json::Value) {
    println!(
        "{:<24} {:<11} {:<16} {:>12} {:>9}  {:<6} {:>13}  FINDINGS",
        "COLUMN", "KIND", "METHOD", "SCORE", "THRESHOLD", "DRIFT", "NULLS REF→CUR"
    );
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    for c in r["columns"].as_array().into_iter().flatten() {
        let findings: Vec<&str> = c["findings"].as_array().into_iter().flatten().filter_map(|f| f.as_str()).collect();
        println!(
            "{:<24} {:<11} {:<16} {:>12} {:>9}  {:<6} {:>6.1}%→{:>4.1}%  {}",
            c["name"].as_str().unwrap_or(""),
            c["kind"].as_str().unwrap_or(""),
            c["method"].as_str().unwrap_or("-"),
            c["score"].as_f64().map(|s| format!("{s:.6}")).unwrap_or_else(|| "-".into()),
            c["threshold"].as_f64().map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            match c["drift"].as_bool() {
                Some(true) => "DRIFT",
                Some(false) => "ok",
                None => "-",
            },
            num(&c["reference_null_share"]) * 100.0,
            num(&c["current_null_share"]) * 100.0,
            findings.join("; ")
        );
    }
    for s in r["schema"].as_array().into_iter().flatten() {
        println!("schema drift: {}", s.as_str().map(str::to_string).unwrap_or_else(|| s.to_string()));
    }
    println!(
        "drift in {} of {} judged features ({:.0}%); dataset drift: {} (at {:.0}% of features)",
        r["drifted"],
        r["judged"],
        num(&r["share"]) * 100.0,
        if r["dataset_drift"] == true { "YES" } else { "no" },
        num(&r["drift_share"]) * 100.0
    );
}

/// The monitor a `--monitor` or `--deployment` names: from kairo.yaml, or ad hoc.
fn resolve(a: &CheckArgs, project: &Project) -> Result<(String, MonitorSpec), Failure> {
    Ok(match (&a.monitor, &a.deployment) {
        (Some(m), _) => {
            let spec = project.config().monitors.get(m).cloned().ok_or_else(|| {
                let known: Vec<&String> = project.config().monitors.keys().collect();
                Failure::usage(format!(
                    "no monitor '{m}' in kairo.yaml (monitors: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                    }
                ))
            })?;
            (m.clone(), spec)
        }
        (None, Some(d)) => {
            let spec = MonitorSpec {
                deployment: Some(d.clone()),
                window: a.window.clone(),
                rows: a.rows,
                drift_share: Some(a.drift_share),
                ..MonitorSpec::default()
            };
            (d.clone(), spec)
        }
        _ => unreachable!("run() routes only monitors and deployments here"),
    })
}

/// `--monitor NAME` or `--deployment NAME`: windows, rules, alerts.
async fn watch(a: CheckArgs) -> CmdResult {
    let project = Project::discover(&std::env::current_dir()?)?;
    let (name, spec) = resolve(&a, &project)?;
    if let (Some(r), Some(c)) = (&spec.reference, &spec.current) {
        return watch_files(&project, &a, &name, &spec, r, c).await;
    }
    let deployment = spec.deployment.clone().unwrap_or_default();
    if a.rows == Some(0) {
        return Err(Failure::usage("--rows must be at least 1"));
    }
    let windowing = monitoring::Windowing::of(&spec).map_err(Failure::watch)?;
    let md = project.metadata().await?;
    let objects = project.objects()?;
    let actor = Project::actor();
    let check = monitoring::document::CheckOf {
        name: &name,
        deployment: &deployment,
        spec: &spec,
        windowing,
        windows: a.windows,
        raise_as: a.monitor.is_some().then_some(actor.as_str()),
    };
    let doc = monitoring::document::check(&md, &objects, check).await.map_err(Failure::watch)?;
    print_check(&doc, a.monitor.is_some(), a.json)
}

/// `monitor check --monitor NAME` through the team server.
async fn check_remote(remote: &crate::remote::Remote, a: &CheckArgs) -> CmdResult {
    let name = a.monitor.as_deref().unwrap_or_default();
    let path = format!("/monitors/{}/check", crate::remote::segment(name));
    let doc = remote.post(&path, &json!({"windows": a.windows})).await?;
    print_check(&doc, true, a.json)
}

/// A check's document (`kairo_watch::document::check`); exit 3 when an alert fired, or with
/// no rules when the newest window with data drifted.
fn print_check(doc: &serde_json::Value, monitor: bool, json_out: bool) -> CmdResult {
    let windows = doc["windows"].as_array().map(Vec::as_slice).unwrap_or_default();
    let newest = windows.iter().rev().find(|w| w["rows"].as_u64().unwrap_or(0) > 0);
    let rules = doc["rules"].as_u64().unwrap_or(0);
    let code = if monitoring::document::is_finding(doc) { exit::CHANGED } else { exit::OK };
    if json_out {
        let mut shown = doc.clone();
        if let Some(m) = shown.as_object_mut() {
            m.remove("fired_alerts");
            m.remove("rules");
        }
        print_json(&shown);
        return Ok(code);
    }
    println!(
        "{} {}: deployment '{}' version {} (reference profile: {} rows)",
        if monitor { "monitor" } else { "deployment" },
        doc["monitor"].as_str().unwrap_or(""),
        doc["deployment"].as_str().unwrap_or(""),
        doc["version"],
        doc["reference_rows"]
    );
    println!("{:<33} {:>8} {:>7} {:>6} {:>9} {:>9}  QUALITY", "WINDOW", "ROWS", "DRIFT", "SHARE", "MAX NULL", "PRED");
    for w in windows {
        let v = &w["values"];
        let quality: Vec<String> = ["accuracy", "f1", "auc", "log_loss", "rmse", "mae", "r2"]
            .iter()
            .filter_map(|m| v[*m].as_f64().map(|x| format!("{m}={x:.4}")))
            .collect();
        let flag = |k: &str| match v[k].as_f64() {
            Some(x) if x > 0.0 => "DRIFT",
            Some(_) => "ok",
            None => "-",
        };
        let rows = w["rows"].as_u64().unwrap_or(0);
        let labelled = w["labelled"].as_u64().unwrap_or(0);
        println!(
            "{:<35} {:>8} {:>7} {:>5.0}% {:>8.1}% {:>9}  {}",
            format!(
                "{} – {}",
                short_time(w["start_ms"].as_i64().unwrap_or(0)),
                short_time(w["end_ms"].as_i64().unwrap_or(0))
            ),
            rows,
            if rows == 0 { "-" } else { flag("dataset_drift") },
            v["drift_share"].as_f64().unwrap_or(0.0) * 100.0,
            v["null_share"].as_f64().unwrap_or(0.0) * 100.0,
            flag("prediction_drift"),
            quality_text(w, labelled, &quality)
        );
    }
    match newest {
        Some(w) => {
            println!("\nnewest window with data:");
            print_table(&w["drift"]);
            print_slices(&w["slices"]);
        }
        None => println!("\nno predictions of version {} in these windows", doc["version"]),
    }
    let fired_alerts = doc["fired_alerts"].as_array().map(Vec::as_slice).unwrap_or_default();
    let raised = doc["alerts"].as_array().map(Vec::as_slice).unwrap_or_default();
    print_alerts(rules, fired_alerts, raised);
    Ok(code)
}

/// A window's quality: realised once labels arrived, else estimated (CBPE), marked as such.
fn quality_text(w: &serde_json::Value, labelled: u64, quality: &[String]) -> String {
    let e = &w["estimated"];
    let estimated = match (e["accuracy"].as_f64(), e["accuracy_error"].as_f64()) {
        (Some(a), Some(err)) => {
            let auc =
                e["auc"].as_f64().map(|x| format!(" auc≈{x:.4}±{:.4}", 3.0 * e["auc_error"].as_f64().unwrap_or(0.0)));
            Some(format!("estimated: accuracy≈{a:.4}±{:.4}{}", 3.0 * err, auc.unwrap_or_default()))
        }
        _ => None,
    };
    let rows = w["rows"].as_u64().unwrap_or(0);
    match (labelled, estimated) {
        (0, Some(e)) => e,
        (0, None) => "no labels".into(),
        (l, Some(e)) if l < rows => format!("{l} labelled: {}; {e}", quality.join(" ")),
        (l, _) => format!("{l} labelled: {}", quality.join(" ")),
    }
}

/// The slices of a window (`segments:` of the monitor).
fn print_slices(slices: &serde_json::Value) {
    let Some(slices) = slices.as_array().filter(|s| !s.is_empty()) else { return };
    println!("\n{:<28} {:>8} {:>7} {:>6}  QUALITY (95% interval)", "SLICE", "ROWS", "DRIFT", "SHARE");
    for s in slices {
        let name = format!("{}={}", s["column"].as_str().unwrap_or(""), s["value"].as_str().unwrap_or(""));
        let rows = s["rows"].as_u64().unwrap_or(0);
        if s["judged"] != true {
            println!("{name:<28} {rows:>8}  too few rows to judge");
            continue;
        }
        let quality: Vec<String> = s["quality"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| v.as_f64().map(|x| format!("{k}={x:.4}"))).collect())
            .unwrap_or_default();
        let interval = &s["interval"];
        let interval = interval["metric"].as_str().map(|m| {
            format!(
                " ({m} {:.4}–{:.4})",
                interval["low"].as_f64().unwrap_or(0.0),
                interval["high"].as_f64().unwrap_or(0.0)
            )
        });
        println!(
            "{name:<28} {rows:>8} {:>7} {:>5.0}%  {}{}",
            if s["dataset_drift"] == true { "DRIFT" } else { "ok" },
            s["drift_share"].as_f64().unwrap_or(0.0) * 100.0,
            if quality.is_empty() { "no labels".to_string() } else { quality.join(" ") },
            interval.unwrap_or_default()
        );
    }
}

fn short_time(ms: i64) -> String {
    let t = time::millis_to_string(ms);
    t.get(..16).unwrap_or(&t).replace('T', " ")
}

/// Fired alerts (their payloads) and what became of each (`{new, webhook}`, same order).
fn print_alerts(rules: u64, fired: &[serde_json::Value], raised: &[serde_json::Value]) {
    if rules == 0 {
        return;
    }
    if fired.is_empty() {
        println!("alerts: none of {rules} rules fired");
        return;
    }
    for (i, a) in fired.iter().enumerate() {
        let evidence = a["evidence"].as_array().map(Vec::as_slice).unwrap_or_default();
        let values: Vec<String> =
            evidence.iter().map(|e| format!("{:.4}", e["value"].as_f64().unwrap_or(f64::NAN))).collect();
        let r = raised.get(i);
        let (rule, when) = (a["rule"].as_str().unwrap_or(""), a["when"].as_str().unwrap_or(""));
        let label = if rule == when { when.to_string() } else { format!("{rule}: {when}") };
        println!(
            "ALERT {} ({} window{}: {}){}{}{}",
            label,
            evidence.len(),
            if evidence.len() == 1 { "" } else { "s" },
            values.join(", "),
            a["action"].as_str().map(|x| format!(" → action {x}")).unwrap_or_default(),
            match r {
                Some(r) if r["new"] == false => " (already raised for this window)".to_string(),
                _ => String::new(),
            },
            r.and_then(|r| r["webhook"].as_str())
                .filter(|w| !w.is_empty())
                .map(|w| format!("; webhook {w}"))
                .unwrap_or_default()
        );
    }
}

/// A monitor over two files: one window, the file check's drift, the monitor's rules.
async fn watch_files(
    project: &Project,
    a: &CheckArgs,
    name: &str,
    spec: &MonitorSpec,
    reference: &str,
    current: &str,
) -> CmdResult {
    let root = project.root();
    let mut args_options = load_files(a, &root.join(reference), &root.join(current))?;
    args_options.2.drift_share = spec.drift_share.unwrap_or(0.5);
    let (mut rf, mut cf, options) = args_options;
    let r = drift::check(&mut rf, &mut cf, &options);
    let rules = monitoring::rules(spec).map_err(Failure::watch)?;
    let now = time::now_millis();
    let values = kairo_monitor::alerts::values(&r, cf.rows as u64, &[], &Default::default(), 0);
    let window = kairo_monitor::alerts::Window { start_ms: now, end_ms: now, values };
    let fired = kairo_monitor::alerts::evaluate(&rules, std::slice::from_ref(&window));
    let md = project.metadata().await?;
    let payloads: Vec<serde_json::Value> =
        fired.iter().map(|al| monitoring::alert_payload(name, current, None, al)).collect();
    let raised =
        monitoring::raise(&md, name, spec, payloads.clone(), &Project::actor()).await.map_err(Failure::watch)?;
    let finding = monitoring::document::finding(fired.len() as u64, spec.alerts.len() as u64, r.dataset_drift);
    let code = if finding { exit::CHANGED } else { exit::OK };
    if a.json {
        print_json(&json!({
            "monitor": name, "reference": reference, "current": current, "values": window.values,
            "drift": monitoring::document::drift_json(&r),
            "alerts": raised.iter().map(|r| json!({"alert": r.payload, "new": r.new, "webhook": r.webhook})).collect::<Vec<_>>(),
            "fired": fired.len(),
        }));
        return Ok(code);
    }
    println!("monitor {name}: {current} against {reference}");
    print_table(&monitoring::document::drift_json(&r));
    let raised: Vec<serde_json::Value> = raised.iter().map(|r| json!({"new": r.new, "webhook": r.webhook})).collect();
    print_alerts(spec.alerts.len() as u64, &payloads, &raised);
    Ok(code)
}
