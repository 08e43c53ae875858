//! `kairo monitor check`: drift between a reference and a current file.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use kairo_core::exit;
use kairo_monitor::drift::{self, Correction, Options, Preset};
use kairo_monitor::frame::Frame;
use serde_json::json;

use crate::report::print_json;
use crate::{CmdResult, Failure};

#[derive(Subcommand)]
pub enum MonitorCommand {
    /// Compare a current file with a reference file column by column (exit 3 on dataset drift).
    Check(CheckArgs),
    /// The same comparison as a self-contained HTML report (and JSON with --json-out).
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
    /// The reference data (CSV, or Parquet when named *.parquet), e.g. the training set.
    #[arg(long)]
    pub reference: PathBuf,
    /// The data to check (CSV or Parquet).
    #[arg(long)]
    pub current: PathBuf,
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
        MonitorCommand::Check(a) => check(a),
        MonitorCommand::Report(a) => report(a),
    }
}

fn report(a: ReportArgs) -> CmdResult {
    let (mut reference, mut current, options) = load(&a.check)?;
    let r = drift::check(&mut reference, &mut current, &options);
    let title = format!("Drift: {} vs {}", a.check.current.display(), a.check.reference.display());
    let html = kairo_monitor::report::html(&r, &reference, &current, &title);
    // Written whole, then renamed: a reader never sees half a report.
    let tmp = a.out.with_extension("html.tmp");
    std::fs::write(&tmp, html)
        .and_then(|_| std::fs::rename(&tmp, &a.out))
        .map_err(|e| Failure { code: exit::ERROR, message: format!("{}: {e}", a.out.display()) })?;
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

fn load(a: &CheckArgs) -> Result<Loaded, Failure> {
    if !(0.0..=1.0).contains(&a.drift_share) {
        return Err(Failure {
            code: exit::USAGE,
            message: format!("--drift-share {}: must be between 0 and 1", a.drift_share),
        });
    }
    // Both files at once: parsing is most of the work.
    let (reference, current) = std::thread::scope(|s| {
        let r = s.spawn(|| Frame::read(&a.reference));
        let c = Frame::read(&a.current);
        (r.join().unwrap_or_else(|_| Err("reading the reference failed".into())), c)
    });
    let fail = |message: String| Failure { code: exit::ERROR, message };
    let (reference, current) = (reference.map_err(fail)?, current.map_err(fail)?);
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
    json!({
        "reference": {"path": a.reference, "rows": reference.rows},
        "current": {"path": a.current, "rows": current.rows},
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
        "drift in {} of {} judged columns ({:.0}%); dataset drift: {} (at {:.0}% of columns)",
        r.drifted,
        r.judged,
        r.share * 100.0,
        if r.dataset_drift { "YES" } else { "no" },
        r.drift_share * 100.0
    );
    Ok(code)
}
