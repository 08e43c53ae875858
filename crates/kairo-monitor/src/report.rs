//! The self-contained HTML drift report: a summary, then one section per column with the
//! reference and current distributions side by side (inline SVG, no scripts, no external
//! assets), the method, score, threshold, verdict, null shares and findings. For two files
//! (`html`) or for a monitoring window against its reference profile (`html_sketch`).

use std::fmt::Write;

use crate::drift::{ColumnDrift, DriftReport};
use crate::frame::{Column, Frame, Values, MISSING};
use crate::profile::{Kind, Profile};
use crate::sketch::Sketch;

const BINS: usize = 20;
const TOP_CATEGORIES: usize = 20;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Shares per bin (numeric: equal-width over both samples' finite range) or per category.
fn distribution(r: &Column, c: &Column) -> (Vec<String>, Vec<f64>, Vec<f64>) {
    match (&r.values, &c.values) {
        (Values::Numeric(rv), Values::Numeric(cv)) => {
            let finite = |v: &[f64]| v.iter().copied().filter(|x| x.is_finite()).collect::<Vec<_>>();
            let (rf, cf) = (finite(rv), finite(cv));
            let lo = rf.iter().chain(&cf).copied().fold(f64::INFINITY, f64::min);
            let hi = rf.iter().chain(&cf).copied().fold(f64::NEG_INFINITY, f64::max);
            if !lo.is_finite() || !hi.is_finite() {
                return (Vec::new(), Vec::new(), Vec::new());
            }
            let width = if hi > lo { (hi - lo) / BINS as f64 } else { 1.0 };
            let hist = |v: &[f64]| {
                let mut h = [0.0; BINS];
                for x in v {
                    let b = (((x - lo) / width) as usize).min(BINS - 1);
                    h[b] += 1.0;
                }
                let n = v.len().max(1) as f64;
                h.iter().map(|x| x / n).collect::<Vec<_>>()
            };
            let labels = (0..BINS).map(|b| format!("{:.4}", lo + width * b as f64)).collect();
            (labels, hist(&rf), hist(&cf))
        }
        (Values::Categorical { codes: rc, dictionary: rd }, Values::Categorical { codes: cc, dictionary: cd }) => {
            let mut counts: std::collections::BTreeMap<&str, (f64, f64)> = Default::default();
            for code in rc.iter().filter(|c| **c != MISSING) {
                counts.entry(&rd[*code as usize]).or_default().0 += 1.0;
            }
            for code in cc.iter().filter(|c| **c != MISSING) {
                counts.entry(&cd[*code as usize]).or_default().1 += 1.0;
            }
            let (nr, nc) = counts.values().fold((0.0, 0.0), |a, v| (a.0 + v.0, a.1 + v.1));
            let mut items: Vec<(&str, f64, f64)> =
                counts.into_iter().map(|(k, (a, b))| (k, a / nr.max(1.0), b / nc.max(1.0))).collect();
            items.sort_by(|a, b| (b.1 + b.2).total_cmp(&(a.1 + a.2)));
            items.truncate(TOP_CATEGORIES);
            (
                items.iter().map(|i| i.0.to_string()).collect(),
                items.iter().map(|i| i.1).collect(),
                items.iter().map(|i| i.2).collect(),
            )
        }
        _ => (Vec::new(), Vec::new(), Vec::new()),
    }
}

/// Paired bars: reference (grey) and current (blue) share per bin.
fn svg(labels: &[String], r: &[f64], c: &[f64]) -> String {
    if labels.is_empty() {
        return "<p class=muted>no distribution to show</p>".into();
    }
    let (w, h) = (640.0, 160.0);
    let max = r.iter().chain(c).copied().fold(0.0, f64::max).max(1e-12);
    let slot = w / labels.len() as f64;
    let bar = (slot - 4.0) / 2.0;
    let mut out = format!("<svg viewBox=\"0 0 {w} {}\" width=\"{w}\" height=\"{}\" role=img>", h + 18.0, h + 18.0);
    for (i, label) in labels.iter().enumerate() {
        let x = i as f64 * slot + 2.0;
        for (k, (v, colour)) in [(r[i], "#9aa0a6"), (c[i], "#1a73e8")].iter().enumerate() {
            let bh = v / max * h;
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{colour}\"><title>{}: {:.2}%</title></rect>",
                x + k as f64 * bar,
                h - bh,
                escape(label),
                v * 100.0
            );
        }
    }
    let _ = write!(
        out,
        "<text x=\"0\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{w}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
        h + 14.0,
        escape(&labels[0]),
        h + 14.0,
        escape(labels.last().map(String::as_str).unwrap_or(""))
    );
    out
}

fn verdict(c: &ColumnDrift) -> &'static str {
    match c.drift {
        Some(true) => "<b class=bad>drift</b>",
        Some(false) => "<span class=ok>no drift</span>",
        None => "<span class=muted>not judged</span>",
    }
}

/// The whole report of two tables as one HTML document.
pub fn html(report: &DriftReport, reference: &Frame, current: &Frame, title: &str) -> String {
    document(report, reference.rows as u64, current.rows as u64, title, |name| {
        let (r, c) = (reference.column(name)?, current.column(name)?);
        Some(distribution(r, c))
    })
}

/// The report of a window sketched against its reference profile: the distributions are the
/// profile's own bins (quantile bins, open at both ends) and categories.
pub fn html_sketch(report: &DriftReport, profile: &Profile, sketch: &Sketch, title: &str) -> String {
    document(report, profile.rows, sketch.rows, title, |name| {
        let i = profile.columns.iter().position(|c| c.name == name)?;
        let (p, s) = (&profile.columns[i], &sketch.columns[i]);
        let mut labels: Vec<String>;
        let (mut r, mut c): (Vec<f64>, Vec<f64>);
        if p.kind == Kind::Numeric {
            labels = (0..p.bins.len())
                .map(|b| match (b.checked_sub(1).and_then(|k| p.edges.get(k)), p.edges.get(b)) {
                    (None, Some(hi)) => format!("≤ {hi:.4}"),
                    (Some(lo), Some(hi)) => format!("({lo:.4}, {hi:.4}]"),
                    (Some(lo), None) => format!("> {lo:.4}"),
                    (None, None) => "all".to_string(),
                })
                .collect();
            r = p.bins.iter().map(|x| *x as f64).collect();
            c = s.counts.iter().map(|x| *x as f64).collect();
        } else {
            labels = p.categories.clone();
            r = p.category_counts.iter().map(|x| *x as f64).collect();
            c = s.counts.iter().map(|x| *x as f64).collect();
            if p.other + s.other > 0 {
                labels.push("(other)".into());
                r.push(p.other as f64);
                c.push(s.other as f64);
            }
            let unseen = s.unseen.values().sum::<u64>() + s.unseen_more;
            if unseen > 0 {
                labels.push("(unseen)".into());
                r.push(0.0);
                c.push(unseen as f64);
            }
        }
        let share = |v: &mut Vec<f64>| {
            let total: f64 = v.iter().sum::<f64>().max(1.0);
            v.iter_mut().for_each(|x| *x /= total);
        };
        share(&mut r);
        share(&mut c);
        Some((labels, r, c))
    })
}

/// The document, with each column's `(labels, reference shares, current shares)` from `dist`.
fn document(
    report: &DriftReport,
    reference_rows: u64,
    current_rows: u64,
    title: &str,
    dist: impl Fn(&str) -> Option<(Vec<String>, Vec<f64>, Vec<f64>)>,
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=utf-8><title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:900px}}table{{border-collapse:collapse}}\
         td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}.bad{{color:#c5221f}}\
         .ok{{color:#188038}}.muted{{color:#80868b}}section{{margin:2em 0}}</style></head><body><h1>{t}</h1>",
        t = escape(title)
    );
    let _ = write!(
        out,
        "<p><b>{}</b>: drift in {} of {} judged columns ({:.0}%; dataset drift at {:.0}%). Reference {} rows, current {} rows.</p>",
        if report.dataset_drift { "Dataset drift" } else { "No dataset drift" },
        report.drifted,
        report.judged,
        report.share * 100.0,
        report.drift_share * 100.0,
        reference_rows,
        current_rows
    );
    for s in &report.schema {
        let _ = write!(out, "<p class=bad>Schema drift: {}</p>", escape(s));
    }
    out.push_str("<table><tr><th>column</th><th>kind</th><th>method</th><th>score</th><th>threshold</th><th>verdict</th><th>nulls (ref → cur)</th></tr>");
    for c in &report.columns {
        let _ = write!(
            out,
            "<tr><td><a href=\"#c-{n}\">{n}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}% → {:.1}%</td></tr>",
            c.kind,
            c.method.unwrap_or("-"),
            c.score.map(|s| format!("{s:.6}")).unwrap_or_else(|| "-".into()),
            c.threshold.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            verdict(c),
            c.reference_null_share * 100.0,
            c.current_null_share * 100.0,
            n = escape(&c.name)
        );
    }
    out.push_str("</table>");
    for c in &report.columns {
        let _ = write!(out, "<section id=\"c-{n}\"><h2>{n} — {}</h2>", verdict(c), n = escape(&c.name));
        if let Some((labels, rs, cs)) = dist(&c.name) {
            out.push_str(&svg(&labels, &rs, &cs));
            out.push_str("<p class=muted>grey: reference, blue: current (share of rows)</p>");
        }
        for f in &c.findings {
            let _ = write!(out, "<p>{}</p>", escape(f));
        }
        out.push_str("</section>");
    }
    out.push_str("</body></html>\n");
    out
}
