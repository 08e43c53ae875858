//! A card as Markdown or HTML. Both are written from the same sections (titles, paragraphs,
//! key–value lists, tables), so the two formats always say the same thing.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;

use crate::text::{Text, Words};
use crate::{Card, Lang, MetricRow};

enum Block {
    Para(String),
    Pairs(Vec<(String, String)>),
    Table { head: Vec<String>, rows: Vec<Vec<String>> },
}

struct Section {
    title: String,
    /// Level 2 (`##`) or 3 (`###`).
    level: u8,
    blocks: Vec<Block>,
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e12 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map(number).unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

fn interval(m: &MetricRow) -> String {
    match (m.low, m.high) {
        (Some(l), Some(h)) => format!("{} – {}", number(l), number(h)),
        _ => "–".into(),
    }
}

fn sections(card: &Card, t: &Text) -> Vec<Section> {
    let mut out = Vec::new();
    let a = &card.about;
    let section = |title: &str, level: u8, blocks: Vec<Block>| Section { title: title.to_string(), level, blocks };
    let stated = |s: &Option<String>| Block::Para(s.clone().unwrap_or_else(|| t.not_stated.to_string()));
    let aliases: Vec<String> = a["aliases"].as_array().into_iter().flatten().map(value_text).collect();
    let mut head = vec![
        (t.version.to_string(), card.version.to_string()),
        (t.created.to_string(), format!("{} ({})", value_text(&a["created"]), value_text(&a["created_by"]))),
        (t.aliases.to_string(), if aliases.is_empty() { "–".into() } else { aliases.join(", ") }),
    ];
    if !card.spec.owners.is_empty() {
        head.push((t.owners.to_string(), card.spec.owners.join(", ")));
    }
    let mut blocks = vec![Block::Pairs(head)];
    if let Some(s) = &card.spec.summary {
        blocks.push(Block::Para(s.clone()));
    } else if let Some(d) = a["description"].as_str().filter(|d| !d.is_empty()) {
        blocks.push(Block::Para(d.to_string()));
    }
    out.push(section(t.summary, 2, blocks));
    out.push(section(t.intended_use, 2, vec![stated(&card.spec.intended_use)]));
    out.push(section(t.out_of_scope, 2, vec![stated(&card.spec.out_of_scope)]));
    out.push(section(t.limitations, 2, vec![stated(&card.spec.limitations)]));
    out.push(section(t.ethical, 2, vec![stated(&card.spec.ethical_considerations)]));

    // Training and lineage.
    let l = &a["lineage"];
    let mut blocks = Vec::new();
    if l.is_object() {
        let commit = match (l["commit"].as_str(), l["dirty"].as_bool()) {
            (Some(c), Some(true)) => format!("{c} ({})", t.uncommitted),
            (Some(c), _) => c.to_string(),
            _ => "–".into(),
        };
        blocks.push(Block::Pairs(vec![
            (t.run.to_string(), format!("{} ({})", value_text(&l["run"]), value_text(&l["stage"]))),
            (t.started.to_string(), value_text(&l["started"])),
            (t.commit.to_string(), commit),
            (
                t.environment.to_string(),
                format!("{} {}", value_text(&l["environment_spec"]), value_text(&l["environment"])),
            ),
        ]));
        let data: Vec<Vec<String>> = l["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| vec![value_text(&d["path"]), value_text(&d["version"])])
            .collect();
        if !data.is_empty() {
            blocks.push(Block::Table { head: vec![t.data.into(), t.version.into()], rows: data });
        }
        let params: Vec<Vec<String>> = match &l["params"] {
            Value::Object(m) => m.iter().map(|(k, v)| vec![k.clone(), value_text(v)]).collect(),
            Value::Array(items) => items.iter().map(|v| vec![value_text(v), String::new()]).collect(),
            _ => Vec::new(),
        };
        if !params.is_empty() {
            blocks.push(Block::Table { head: vec![t.params.into(), t.value.into()], rows: params });
        }
    } else {
        blocks.push(Block::Para(t.no_run.to_string()));
    }
    let sig = &a["signature"];
    for (label, key) in [(t.inputs, "inputs"), (t.outputs, "outputs")] {
        let rows: Vec<Vec<String>> = sig[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| vec![value_text(&s["name"]), value_text(&s["datatype"]), value_text(&s["shape"])])
            .collect();
        if !rows.is_empty() {
            blocks.push(Block::Table { head: vec![label.into(), "type".into(), "shape".into()], rows });
        }
    }
    out.push(section(t.training, 2, blocks));

    // Metrics.
    let mut blocks = Vec::new();
    let recorded: Vec<Vec<String>> =
        a["metrics"].as_object().into_iter().flatten().map(|(k, v)| vec![k.clone(), value_text(v)]).collect();
    if !recorded.is_empty() {
        blocks.push(Block::Para(format!("{}:", t.recorded)));
        blocks.push(Block::Table { head: vec![t.metric.into(), t.value.into()], rows: recorded });
    }
    if let Some(e) = &card.evaluation {
        blocks.push(Block::Para(format!("{} ({}, {} {}):", t.on_holdout, e.holdout, e.rows, t.rows.to_lowercase())));
        let rows = e.metrics.iter().map(|m| vec![m.metric.clone(), number(m.value), interval(m)]).collect();
        blocks.push(Block::Table { head: vec![t.metric.into(), t.value.into(), t.interval.into()], rows });
    }
    out.push(section(t.metrics, 2, blocks));
    if let Some(e) = card.evaluation.as_ref().filter(|e| !e.slices.is_empty()) {
        let rows = e
            .slices
            .iter()
            .map(|s| {
                let (metric, value, iv) = match (&s.metric, s.judged) {
                    (Some(m), true) => (m.metric.clone(), number(m.value), interval(m)),
                    _ => ("–".into(), t.too_few.to_string(), "–".into()),
                };
                vec![s.column.clone(), s.group.clone(), s.rows.to_string(), metric, value, iv]
            })
            .collect();
        let head =
            vec![t.column.into(), t.group.into(), t.rows.into(), t.metric.into(), t.value.into(), t.interval.into()];
        out.push(section(t.slices, 3, vec![Block::Table { head, rows }]));
    }
    if let Some(e) = card.evaluation.as_ref().filter(|e| !e.fairness.is_empty()) {
        let mut blocks = Vec::new();
        for f in &e.fairness {
            let x = &f.fairness;
            let opt = |v: Option<f64>| v.map(number).unwrap_or_else(|| "–".into());
            blocks.push(Block::Pairs(vec![
                (t.column.to_string(), f.column.clone()),
                (t.dpd.to_string(), number(x.demographic_parity_difference)),
                (t.dir.to_string(), number(x.disparate_impact_ratio)),
                (t.eod.to_string(), opt(x.equal_opportunity_difference)),
                (t.eqodds.to_string(), opt(x.equalized_odds_difference)),
            ]));
            let rows = x
                .groups
                .iter()
                .map(|g| {
                    vec![
                        g.group.clone(),
                        g.rows.to_string(),
                        number(g.selection_rate),
                        opt(g.true_positive_rate),
                        opt(g.false_positive_rate),
                    ]
                })
                .collect();
            let head = vec![t.group.into(), t.rows.into(), t.selection_rate.into(), t.tpr.into(), t.fpr.into()];
            blocks.push(Block::Table { head, rows });
        }
        out.push(section(t.fairness, 3, blocks));
    }
    let importance = &a["importance"];
    if let Some(features) = importance["features"].as_array().filter(|f| !f.is_empty()) {
        let rows = features
            .iter()
            .map(|f| vec![value_text(&f["name"]), value_text(&f["importance"]), value_text(&f["std"])])
            .collect();
        let intro =
            format!("{} ({}, {})", t.importance, value_text(&importance["holdout"]), value_text(&importance["metric"]));
        out.push(section(
            t.importance,
            3,
            vec![Block::Para(intro), Block::Table { head: vec![t.feature.into(), t.value.into(), "±".into()], rows }],
        ));
    }
    let estimator = &a["profile"]["estimator"];
    if estimator.is_object() {
        let knots = estimator["knots"].as_array().is_some_and(|k| !k.is_empty());
        let calibrated = if knots { t.calibrated } else { t.not_calibrated };
        out.push(section(
            t.estimation,
            3,
            vec![Block::Pairs(vec![
                (
                    t.calibrated_on.to_string(),
                    format!(
                        "{} ({} {})",
                        value_text(&estimator["reference"]),
                        value_text(&estimator["rows"]),
                        t.rows.to_lowercase()
                    ),
                ),
                ("CBPE".to_string(), calibrated.to_string()),
            ])],
        ));
    }

    // Promotions and approvals.
    let mut blocks = Vec::new();
    if card.promotions.is_empty() {
        blocks.push(Block::Para(t.none.to_string()));
    }
    for p in &card.promotions {
        blocks.push(Block::Pairs(vec![
            (t.alias.to_string(), value_text(&p["alias"])),
            (t.status.to_string(), value_text(&p["status"])),
            (t.requested_by.to_string(), format!("{} ({})", value_text(&p["requested_by"]), value_text(&p["created"]))),
            (t.decided_by.to_string(), value_text(&p["decided_by"])),
            (t.reason.to_string(), value_text(&p["reason"])),
        ]));
        let gates: Vec<Vec<String>> = p["gates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                let passed = if g["passed"].as_bool() == Some(true) { t.passed } else { t.failed };
                vec![value_text(&g["gate"]), passed.to_string(), value_text(&g["detail"])]
            })
            .collect();
        if !gates.is_empty() {
            blocks.push(Block::Table { head: vec![t.gates.into(), t.status.into(), t.value.into()], rows: gates });
        }
    }
    if !card.alias_history.is_empty() {
        let rows = card
            .alias_history
            .iter()
            .map(|h| {
                vec![value_text(&h["at"]), value_text(&h["alias"]), value_text(&h["actor"]), value_text(&h["reason"])]
            })
            .collect();
        blocks.push(Block::Para(format!("{}:", t.alias_history)));
        blocks.push(Block::Table {
            head: vec![t.when.into(), t.alias.into(), t.requested_by.into(), t.reason.into()],
            rows,
        });
    }
    out.push(section(t.promotions, 2, blocks));

    // Monitoring.
    let mut blocks = Vec::new();
    let d = &card.deployment;
    blocks.push(Block::Para(if d.is_object() {
        format!("{}: {} v{} ({})", t.deployment, card.name, value_text(&d["stable"]), value_text(&d["strategy"]))
    } else {
        t.not_deployed.to_string()
    }));
    if card.monitoring.is_empty() {
        blocks.push(Block::Para(t.no_monitors.to_string()));
    } else {
        let rows = card
            .monitoring
            .iter()
            .map(|m| {
                let quality = if let Some(e) = m.error.as_ref() {
                    e.clone()
                } else if !m.quality.is_empty() {
                    m.quality.iter().map(|(k, v)| format!("{k}={}", number(*v))).collect::<Vec<_>>().join(" ")
                } else if let Some(e) = &m.estimated {
                    let auc = e.auc.map(|a| format!(" auc≈{}", number(a))).unwrap_or_default();
                    format!("{}: accuracy≈{}{auc}", t.estimated, number(e.accuracy))
                } else {
                    "–".into()
                };
                vec![
                    m.monitor.clone(),
                    m.serving_version.map_or("–".into(), |v| format!("v{v}")),
                    m.rows.to_string(),
                    m.drift_share.map_or("–".into(), |s| format!("{:.0}%", s * 100.0)),
                    quality,
                    if m.alerts.is_empty() { "–".into() } else { m.alerts.join("; ") },
                ]
            })
            .collect();
        let head =
            vec![t.monitor.into(), t.serving.into(), t.rows.into(), t.drift.into(), t.quality.into(), t.alerts.into()];
        blocks.push(Block::Table { head, rows });
    }
    if !card.incidents.is_empty() {
        let rows = card
            .incidents
            .iter()
            .map(|i| vec![format!("#{}", i.id), i.automation.clone(), i.state.clone(), i.opened.clone()])
            .collect();
        blocks.push(Block::Para(format!("{}:", t.incidents)));
        blocks
            .push(Block::Table { head: vec!["#".into(), "automation".into(), t.state.into(), t.opened.into()], rows });
    }
    out.push(section(t.monitoring, 2, blocks));
    if !card.notes.is_empty() {
        out.push(section(t.notes, 2, card.notes.iter().map(|n| Block::Para(format!("- {n}"))).collect()));
    }
    out
}

/// Markdown: cells have `|` escaped and newlines flattened.
pub fn markdown(card: &Card, lang: Lang) -> String {
    let t = lang.text();
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = format!("# {}: {} v{}\n", t.title, card.name, card.version);
    for s in sections(card, t) {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&format!("{} {}\n\n", "#".repeat(usize::from(s.level)), s.title));
        for b in s.blocks {
            match b {
                Block::Para(p) => out.push_str(&format!("{p}\n\n")),
                Block::Pairs(pairs) => {
                    for (k, v) in pairs {
                        out.push_str(&format!("- **{}**: {}\n", cell(&k), cell(&v)));
                    }
                    out.push('\n');
                }
                Block::Table { head, rows } => {
                    out.push_str(&format!("| {} |\n", head.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | ")));
                    out.push_str(&format!("|{}\n", "---|".repeat(head.len())));
                    for r in rows {
                        out.push_str(&format!("| {} |\n", r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")));
                    }
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// The card's body as HTML (escaped; no script, no inline style), for a page of the UI.
pub fn html_body(card: &Card, lang: Lang) -> Markup {
    let t = lang.text();
    html! {
        article.card lang=(lang.code()) {
            h1 { (t.title) ": " (card.name) " v" (card.version) }
            @for s in sections(card, t) {
                @if s.level == 2 { h2 { (s.title) } } @else { h3 { (s.title) } }
                @for b in &s.blocks {
                    @match b {
                        Block::Para(p) => p { (p) },
                        Block::Pairs(pairs) => dl { @for (k, v) in pairs { dt { (k) } dd { (v) } } },
                        Block::Table { head, rows } => table {
                            thead { tr { @for h in head { th scope="col" { (h) } } } }
                            tbody { @for r in rows { tr { @for c in r { td { (c) } } } } }
                        },
                    }
                }
            }
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}\
table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}\
th{background:#f3f3f3}dl{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem}dt{font-weight:600}dd{margin:0}";

/// A self-contained HTML document (its style inline, nothing fetched).
pub fn html(card: &Card, lang: Lang) -> String {
    let t = lang.text();
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (t.title) ": " (card.name) " v" (card.version) }
                style { (PreEscaped(STYLE)) }
            }
            body { (html_body(card, lang)) }
        }
    }
    .into_string()
}
