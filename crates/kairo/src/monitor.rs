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
    #[arg(long, value_enum, default_value_t = PresetArg::Kairo)]
    pub preset: PresetArg,
    /// Share of drifted columns at which the dataset counts as drifted.
    #[arg(long, default_value_t = 0.5)]
    pub drift_share: f64,
    /// Multiple-testing correction for the test-based methods.
    #[arg(long, value_enum, default_value_t = CorrectionArg::None)]
    pub correction: CorrectionArg,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: MonitorCommand) -> CmdResult {
    match cmd {
        MonitorCommand::Check(a) if a.monitor.is_some() || a.deployment.is_some() => watch(a).await,
        MonitorCommand::Check(a) => check(a),
        MonitorCommand::Report(a) if a.check.monitor.is_some() || a.check.deployment.is_some() => {
            report_window(a).await
        }
        MonitorCommand::Report(a) => report(a),
    }
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
                           "values": w.window.values, "drift": drift_json(&w.report)}));
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
        print_json(&report_json(&a.check, &reference, &current, &r));
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
    if !(0.0..=1.0).contains(&a.drift_share) {
        return Err(Failure::usage(format!("--drift-share {}: must be between 0 and 1", a.drift_share)));
    }
    // Both files at once: parsing is most of the work.
    let (reference, current) = std::thread::scope(|s| {
        let r = s.spawn(|| Frame::read(reference_path));
        let c = Frame::read(current_path);
        (r.join(), c)
    });
    let reference =
        reference.map_err(|_| Failure { code: exit::ERROR, message: "reading the reference failed".into() })??;
    let current = current?;
    let options = Options {
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
    };
    Ok((reference, current, options))
}

fn report_json(a: &CheckArgs, reference: &Frame, current: &Frame, r: &drift::DriftReport) -> serde_json::Value {
    let mut v = drift_json(r);
    v["reference"] = json!({"path": a.reference, "rows": reference.rows});
    v["current"] = json!({"path": a.current, "rows": current.rows});
    v
}

fn drift_json(r: &drift::DriftReport) -> serde_json::Value {
    json!({
        "dataset_drift": r.dataset_drift, "drifted": r.drifted, "judged": r.judged,
        "share": r.share, "drift_share": r.drift_share, "schema": r.schema,
        "columns": r.columns.iter().map(|c| json!({
            "name": c.name, "kind": c.kind, "method": c.method, "score": c.score,
            "threshold": c.threshold, "drift": c.drift,
            "reference_rows": c.reference_rows, "current_rows": c.current_rows,
            "reference_null_share": c.reference_null_share, "current_null_share": c.current_null_share,
            "findings": c.findings,
        })).collect::<Vec<_>>(),
    })
}

fn check(a: CheckArgs) -> CmdResult {
    let (mut reference, mut current, options) = load(&a)?;
    let r = drift::check(&mut reference, &mut current, &options);
    let code = if r.dataset_drift { exit::CHANGED } else { exit::OK };
    if a.json {
        print_json(&report_json(&a, &reference, &current, &r));
        return Ok(code);
    }
    print_table(&r);
    Ok(code)
}

fn print_table(r: &drift::DriftReport) {
    println!(
        "{:<24} {:<11} {:<16} {:>12} {:>9}  {:<6} {:>13}  FINDINGS",
        "COLUMN", "KIND", "METHOD", "SCORE", "THRESHOLD", "DRIFT", "NULLS REF→CUR"
    );
    for c in &r.columns {
        println!(
            "{:<24} {:<11} {:<16} {:>12} {:>9}  {:<6} {:>6.1}%→{:>4.1}%  {}",
            c.name,
            c.kind,
            c.method.unwrap_or("-"),
            c.score.map(|s| format!("{s:.6}")).unwrap_or_else(|| "-".into()),
            c.threshold.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            match c.drift {
                Some(true) => "DRIFT",
                Some(false) => "ok",
                None => "-",
            },
            c.reference_null_share * 100.0,
            c.current_null_share * 100.0,
            c.findings.join("; ")
        );
    }
    for s in &r.schema {
        println!("schema drift: {s}");
    }
    println!(
        "drift in {} of {} judged features ({:.0}%); dataset drift: {} (at {:.0}% of features)",
        r.drifted,
        r.judged,
        r.share * 100.0,
        if r.dataset_drift { "YES" } else { "no" },
        r.drift_share * 100.0
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
    let e = monitoring::evaluate(&md, &objects, &deployment, &spec, windowing, a.windows, time::now_millis())
        .await
        .map_err(Failure::watch)?;
    let payloads: Vec<serde_json::Value> =
        e.alerts.iter().map(|al| monitoring::alert_payload(&name, &deployment, Some(e.version), al)).collect();
    let raised = if a.monitor.is_some() {
        monitoring::raise(&md, &name, &spec, payloads, &Project::actor()).await.map_err(Failure::watch)?
    } else {
        Vec::new()
    };
    let newest = e.windows.iter().rev().find(|w| w.sketch.rows > 0);
    let code = if !e.alerts.is_empty() || (spec.alerts.is_empty() && newest.is_some_and(|w| w.report.dataset_drift)) {
        exit::CHANGED
    } else {
        exit::OK
    };
    if a.json {
        print_json(&json!({
            "monitor": name, "deployment": deployment, "version": e.version,
            "reference_rows": e.profile.rows,
            "windows": e.windows.iter().map(|w| json!({
                "start": time::millis_to_string(w.window.start_ms), "end": time::millis_to_string(w.window.end_ms),
                "start_ms": w.window.start_ms, "end_ms": w.window.end_ms,
                "rows": w.sketch.rows, "labelled": w.labelled,
                "values": w.window.values, "drift": drift_json(&w.report),
            })).collect::<Vec<_>>(),
            "alerts": raised.iter().map(|r| json!({"alert": r.payload, "new": r.new, "webhook": r.webhook})).collect::<Vec<_>>(),
            "fired": e.alerts.len(),
        }));
        return Ok(code);
    }
    println!(
        "{} {}: deployment '{}' version {} (reference profile: {} rows)",
        if a.monitor.is_some() { "monitor" } else { "deployment" },
        name,
        deployment,
        e.version,
        e.profile.rows
    );
    println!("{:<33} {:>8} {:>7} {:>6} {:>9} {:>9}  QUALITY", "WINDOW", "ROWS", "DRIFT", "SHARE", "MAX NULL", "PRED");
    for w in &e.windows {
        let v = &w.window.values;
        let quality: Vec<String> = ["accuracy", "f1", "auc", "log_loss", "rmse", "mae", "r2"]
            .iter()
            .filter_map(|m| v.get(*m).map(|x| format!("{m}={x:.4}")))
            .collect();
        let flag = |k: &str| match v.get(k) {
            Some(x) if *x > 0.0 => "DRIFT",
            Some(_) => "ok",
            None => "-",
        };
        println!(
            "{:<35} {:>8} {:>7} {:>5.0}% {:>8.1}% {:>9}  {}",
            format!("{} – {}", short_time(w.window.start_ms), short_time(w.window.end_ms)),
            w.sketch.rows,
            if w.sketch.rows == 0 { "-" } else { flag("dataset_drift") },
            v.get("drift_share").copied().unwrap_or(0.0) * 100.0,
            v.get("null_share").copied().unwrap_or(0.0) * 100.0,
            flag("prediction_drift"),
            if w.labelled > 0 { format!("{} labelled: {}", w.labelled, quality.join(" ")) } else { "no labels".into() }
        );
    }
    match newest {
        Some(w) => {
            println!("\nnewest window with data:");
            print_table(&w.report);
        }
        None => println!("\nno predictions of version {} in these windows", e.version),
    }
    print_alerts(&spec, &e.alerts, &raised);
    Ok(code)
}

fn short_time(ms: i64) -> String {
    let t = time::millis_to_string(ms);
    t.get(..16).unwrap_or(&t).replace('T', " ")
}

fn print_alerts(spec: &MonitorSpec, fired: &[kairo_monitor::alerts::Alert], raised: &[monitoring::Raised]) {
    if spec.alerts.is_empty() {
        return;
    }
    if fired.is_empty() {
        println!("alerts: none of {} rules fired", spec.alerts.len());
        return;
    }
    for (i, a) in fired.iter().enumerate() {
        let values: Vec<String> = a.evidence.iter().map(|(_, _, v)| format!("{v:.4}")).collect();
        let r = raised.get(i);
        let label = if a.rule == a.when { a.when.clone() } else { format!("{}: {}", a.rule, a.when) };
        println!(
            "ALERT {} ({} window{}: {}){}{}{}",
            label,
            a.evidence.len(),
            if a.evidence.len() == 1 { "" } else { "s" },
            values.join(", "),
            a.action.as_ref().map(|x| format!(" → action {x}")).unwrap_or_default(),
            match r {
                Some(r) if !r.new => " (already raised for this window)".to_string(),
                _ => String::new(),
            },
            r.filter(|r| !r.webhook.is_empty()).map(|r| format!("; webhook {}", r.webhook)).unwrap_or_default()
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
    let payloads = fired.iter().map(|al| monitoring::alert_payload(name, current, None, al)).collect();
    let raised = monitoring::raise(&md, name, spec, payloads, &Project::actor()).await.map_err(Failure::watch)?;
    let code = if !fired.is_empty() || (spec.alerts.is_empty() && r.dataset_drift) { exit::CHANGED } else { exit::OK };
    if a.json {
        print_json(&json!({
            "monitor": name, "reference": reference, "current": current, "values": window.values,
            "drift": drift_json(&r),
            "alerts": raised.iter().map(|r| json!({"alert": r.payload, "new": r.new, "webhook": r.webhook})).collect::<Vec<_>>(),
            "fired": fired.len(),
        }));
        return Ok(code);
    }
    println!("monitor {name}: {current} against {reference}");
    print_table(&r);
    print_alerts(spec, &fired, &raised);
    Ok(code)
}
