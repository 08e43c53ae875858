//! `kairo kpi`: the value report (`kairo-kpi`) as a table, JSON, or an HTML page.

use std::path::PathBuf;

use kairo_core::exit;
use kairo_data::Project;
use kairo_kpi::html::{self, duration, percent, Lang};
use kairo_kpi::{KpiError, Report};

use crate::report::print_json;
use crate::{CmdResult, Failure};

#[derive(clap::Args)]
pub struct KpiArgs {
    /// How far back the report reaches from --until: 90d, 12w, 48h.
    #[arg(long, default_value = "90d")]
    since: String,
    /// End of the period (RFC 3339, e.g. 2026-12-01T00:00:00Z); default now.
    #[arg(long)]
    until: Option<String>,
    /// Only this model (its registered and deployment name).
    #[arg(long)]
    model: Option<String>,
    /// Print the report as JSON (the same document as `GET /api/v1/kpi`).
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML page for a meeting (inline SVG, prints on A4).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// The HTML page's language: en or ja.
    #[arg(long, default_value = "en")]
    lang: String,
}

fn failure(e: KpiError) -> Failure {
    match e {
        KpiError::Usage(m) => Failure::usage(m),
        other => Failure::from(other),
    }
}

pub async fn run(args: KpiArgs) -> CmdResult {
    let lang = Lang::parse(&args.lang)
        .ok_or_else(|| Failure::usage(format!("--lang `{}`: the report speaks en or ja", args.lang)))?;
    let q = kairo_kpi::query(&args.since, args.until.as_deref(), args.model.clone()).map_err(failure)?;
    let report: Report = match crate::remote::connect()? {
        Some(remote) => {
            let mut query = vec![("since", args.since.clone())];
            query.extend(args.until.iter().map(|u| ("until", u.clone())));
            query.extend(args.model.iter().map(|m| ("model", m.clone())));
            let doc = remote.get("/kpi", &query).await?;
            serde_json::from_value(doc)
                .map_err(|e| format!("server {}: the KPI report does not parse: {e}", remote.base))?
        }
        None => {
            let project = Project::discover(&std::env::current_dir()?)?;
            kairo_kpi::project_report(&project, &q).await.map_err(failure)?
        }
    };
    if let Some(path) = &args.html {
        let page = html::render(&report, lang);
        crate::report::write_atomic(path, page.as_bytes())?;
    }
    if args.json {
        print_json(&report);
    } else {
        print_table(&report);
        if let Some(path) = &args.html {
            println!("\nreport written to {}", path.display());
        }
    }
    Ok(exit::OK)
}

fn print_table(r: &Report) {
    let p = &r.period;
    println!(
        "KPIs {} → {} ({}){}",
        &p.since[..10.min(p.since.len())],
        &p.until[..10.min(p.until.len())],
        p.timezone,
        p.model.as_deref().map(|m| format!(", model {m}")).unwrap_or_default()
    );
    println!();
    println!("DELIVERY");
    let df = &r.deployment_frequency;
    println!("  deployment frequency   {:.2}/week ({} versions reached 100%)", df.per_week, df.total);
    let lt = &r.lead_time;
    println!(
        "  lead time (median)     {} (p90 {}; {} of {} changes with a recorded cause)",
        duration(lt.median_s),
        duration(lt.p90_s),
        lt.with_cause,
        lt.changes
    );
    for st in lt.stages.iter().filter(|s| s.total_s > 0.0) {
        let mark = if lt.bottleneck.as_deref() == Some(st.stage.as_str()) { "  ← bottleneck" } else { "" };
        println!("    {:<24} {:>9}  {:>4}{}", st.stage, duration(st.median_s), percent(Some(st.share)), mark);
    }
    let cf = &r.change_failure;
    println!(
        "  change failure rate    {} ({} of {} changes; incidents within {} d count)",
        percent(cf.rate),
        cf.failed,
        cf.changes,
        cf.window_days
    );
    for f in &cf.failures {
        println!("    {} v{}  {}  {}: {}", f.model, f.version, f.at, f.why, f.detail);
    }
    let rs = &r.restore;
    println!(
        "  time to restore        {} median, {} mean ({} resolved, {} closed unresolved, {} open of {} incidents)",
        duration(rs.median_s),
        duration(rs.mean_s),
        rs.resolved,
        rs.closed_unresolved,
        rs.open,
        rs.incidents
    );
    println!(
        "  time to detect         {} median ({} dated from their windows)",
        duration(rs.detect_median_s),
        rs.detected
    );
    println!();
    println!("AUTOMATION              automated  by hand  rate");
    let a = &r.automation;
    for (name, s) in [
        ("retrains", &a.retrains),
        ("promotions", &a.promotions),
        ("deployments", &a.deploys),
        ("rollbacks", &a.rollbacks),
        ("drift checks", &a.drift_checks),
    ] {
        println!("  {:<20} {:>10} {:>8} {:>5}", name, s.automated, s.manual, percent(s.rate));
    }
    if !r.quality.is_empty() {
        println!();
        println!("QUALITY                 version  window                    rows  labelled  metric");
        for q in &r.quality {
            let metric = match (&q.metric, q.value) {
                (Some(m), Some(v)) => format!("{m} {v:.3}"),
                _ => "-".into(),
            };
            println!(
                "  {:<20} {:>8}  {} – {}  {:>6} {:>8.0}%  {}",
                q.model,
                q.version,
                q.window_start,
                q.window_end,
                q.rows,
                q.coverage * 100.0,
                metric
            );
        }
    }
    if !r.serving.is_empty() {
        println!();
        println!("SERVING (UTC days)      version  day          requests  errors     p50      p99");
        let ms = |x: Option<f64>| x.map(|x| format!("{x:.2}ms")).unwrap_or_else(|| "-".into());
        for s in &r.serving {
            println!(
                "  {:<20} {:>8}  {}  {:>8}  {:>5.2}%  {:>7}  {:>7}",
                s.model,
                s.version,
                s.day,
                s.requests,
                s.error_rate * 100.0,
                ms(s.p50_ms),
                ms(s.p99_ms)
            );
        }
    }
    let c = &r.compute;
    println!();
    println!(
        "COMPUTE                 {} runs ({} failed), wall {}, CPU {}{}",
        c.runs,
        c.failed,
        duration(Some(c.wall_s)),
        duration(Some(c.cpu_s)),
        if c.unmeasured > 0 { format!(" ({} runs without a CPU measurement)", c.unmeasured) } else { String::new() }
    );
    for row in &c.by_model {
        println!(
            "  {:<20} {:>6} runs  wall {:>9}  CPU {:>9}",
            row.key,
            row.runs,
            duration(Some(row.wall_s)),
            duration(Some(row.cpu_s))
        );
    }
    println!();
    let v = &r.value;
    println!("VALUE");
    let cur = v.currency.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
    for l in &v.lines {
        println!("  {:<12} {}", l.item, l.inputs);
        println!("  {:<12} = {}", "", l.formula);
    }
    if v.configured {
        println!("  hours saved  {:.1} h", v.hours_saved);
        if let Some(n) = v.net {
            println!("  net          {:.2}{cur}  ({})", n, v.net_formula);
        }
    }
    for m in &v.missing {
        println!("  not configured: {m}");
    }
}
