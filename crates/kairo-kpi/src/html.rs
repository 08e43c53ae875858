//! The report as one self-contained HTML page for a meeting: inline CSS and SVG charts, no
//! scripts, no external assets, laid out for A4 print. English or Japanese. Every string that
//! came from the ledger (model names, reasons) is escaped.

use std::fmt::Write;

use crate::report::{Report, Share, STAGES};

/// The page's language (the one list of languages Kairo's pages speak).
pub use kairo_core::lang::Lang;

/// The page's words, in both languages.
fn t(lang: Lang, key: &str) -> &'static str {
    let (en, ja) = match key {
        "title" => ("Kairo value report", "Kairo 価値レポート"),
        "period" => ("Period", "対象期間"),
        "model" => ("Model", "モデル"),
        "all_models" => ("all models", "全モデル"),
        "delivery" => ("Delivery", "デリバリー"),
        "deploy_freq" => ("Deployment frequency", "デプロイ頻度"),
        "per_week" => ("per week", "件/週"),
        "lead_time" => ("Lead time for change (median)", "変更のリードタイム（中央値）"),
        "cfr" => ("Change failure rate", "変更失敗率"),
        "ttr" => ("Time to restore (median)", "復旧時間（中央値）"),
        "ttd" => ("Time to detect (median)", "検知までの時間（中央値）"),
        "deploys_per_week" => ("Versions reaching 100% per week", "週ごとの本番100%到達バージョン数"),
        "stages" => ("Lead time by stage", "ステージ別リードタイム"),
        "stage" => ("Stage", "ステージ"),
        "median" => ("Median", "中央値"),
        "share" => ("Share of time", "時間の割合"),
        "bottleneck" => ("Bottleneck", "ボトルネック"),
        "waiting_to_start" => ("Waiting to start", "開始待ち"),
        "training" => ("Training", "学習"),
        "registration_evaluation" => ("Registration and evaluation", "登録・評価"),
        "waiting_for_approval" => ("Waiting for approval", "承認待ち"),
        "waiting_to_deploy" => ("Waiting to deploy", "デプロイ待ち"),
        "canary" => ("Canary", "カナリア"),
        "failures" => ("Failed changes", "失敗した変更"),
        "incidents" => ("Incidents", "インシデント"),
        "opened" => ("Opened", "発生"),
        "state" => ("State", "状態"),
        "restore" => ("Restore", "復旧"),
        "detect" => ("Detect", "検知"),
        "automation" => ("Automation rate", "自動化率"),
        "retrains" => ("Retrains", "再学習"),
        "promotions" => ("Promotions", "昇格"),
        "deploys" => ("Deployments", "デプロイ"),
        "rollbacks" => ("Rollbacks", "ロールバック"),
        "drift_checks" => ("Drift checks", "ドリフト確認"),
        "automated" => ("automated", "自動"),
        "manual" => ("by hand", "手動"),
        "quality" => ("Model quality over time", "モデル品質の推移"),
        "window" => ("Window", "期間"),
        "version" => ("Version", "バージョン"),
        "rows" => ("Rows", "行数"),
        "coverage" => ("Label coverage", "ラベル率"),
        "serving" => ("Serving health", "サービングの健全性"),
        "day" => ("Day (UTC)", "日付（UTC）"),
        "requests" => ("Requests", "リクエスト"),
        "errors" => ("Error rate", "エラー率"),
        "compute" => ("Compute", "計算資源"),
        "runs" => ("Runs", "実行数"),
        "wall" => ("Wall time", "経過時間"),
        "cpu" => ("CPU time", "CPU時間"),
        "value" => ("Value", "価値"),
        "item" => ("Item", "項目"),
        "inputs" => ("Inputs", "入力"),
        "formula" => ("Formula", "計算式"),
        "amount" => ("Amount", "金額"),
        "hours_saved" => ("Hours saved", "削減時間"),
        "net" => ("Net", "純効果"),
        "not_configured" => ("Not configured — add to kairo.yaml:", "未設定 — kairo.yaml に追加してください："),
        "none" => ("none in this period", "この期間はありません"),
        "open" => ("open", "未解決"),
        "trigger" => ("trigger", "トリガー"),
        "by_model" => ("by model", "モデル別"),
        _ => ("", ""),
    };
    match lang {
        Lang::En => en,
        Lang::Ja => ja,
    }
}

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A duration for people: `45 s`, `12 min`, `3.5 h`, `2.1 d`.
pub fn duration(s: Option<f64>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s < 10.0 => format!("{s:.1} s"),
        Some(s) if s < 90.0 => format!("{s:.0} s"),
        Some(s) if s < 5400.0 => format!("{:.0} min", s / 60.0),
        Some(s) if s < 2.0 * 86400.0 => format!("{:.1} h", s / 3600.0),
        Some(s) => format!("{:.1} d", s / 86400.0),
    }
}

pub fn percent(x: Option<f64>) -> String {
    x.map(|x| format!("{:.0}%", x * 100.0)).unwrap_or_else(|| "—".into())
}

fn money(x: Option<f64>, currency: Option<&str>) -> String {
    match x {
        None => "—".into(),
        Some(x) => format!("{}{:.2}", currency.map(|c| format!("{c} ")).unwrap_or_default(), x),
    }
}

const CSS: &str = "body{font-family:'Noto Sans','Noto Sans CJK JP','Hiragino Sans','Yu Gothic',sans-serif;color:#1b1f24;margin:24px;max-width:180mm}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;border-bottom:2px solid #2b6cb0;padding-bottom:2px;margin-top:22px}\
.meta{color:#555;font-size:12px}.cards{display:flex;flex-wrap:wrap;gap:8px}\
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:38mm}.card b{display:block;font-size:20px}\
.card span{font-size:11px;color:#555}table{border-collapse:collapse;font-size:11px;width:100%;margin-top:6px}\
th,td{border-bottom:1px solid #e1e4e8;padding:3px 6px;text-align:left}td.n,th.n{text-align:right}\
.note{font-size:11px;color:#8a4b00}svg{display:block;margin-top:6px}\
@page{size:A4;margin:14mm}@media print{body{margin:0}h2{break-after:avoid}table,svg{break-inside:avoid}}";

const COLORS: [&str; 6] = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096"];

/// Render the report.
pub fn render(r: &Report, lang: Lang) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>",
        lang.code(),
        t(lang, "title")
    );
    let model = r.period.model.as_deref().map(esc).unwrap_or_else(|| t(lang, "all_models").to_string());
    let _ = write!(
        h,
        "<h1>{}</h1><p class=\"meta\">{}: {} — {} ({}) · {}: {}</p>",
        t(lang, "title"),
        t(lang, "period"),
        esc(&r.period.since[..10.min(r.period.since.len())]),
        esc(&r.period.until[..10.min(r.period.until.len())]),
        esc(&r.period.timezone),
        t(lang, "model"),
        model
    );

    // Headline cards: the four keys.
    let _ = write!(h, "<h2>{}</h2><div class=\"cards\">", t(lang, "delivery"));
    let card = |h: &mut String, label: &str, value: String, sub: String| {
        let _ =
            write!(h, "<div class=\"card\"><span>{label}</span><b>{}</b><span>{}</span></div>", esc(&value), esc(&sub));
    };
    card(
        &mut h,
        t(lang, "deploy_freq"),
        format!("{:.1} {}", r.deployment_frequency.per_week, t(lang, "per_week")),
        format!("{}", r.deployment_frequency.total),
    );
    card(
        &mut h,
        t(lang, "lead_time"),
        duration(r.lead_time.median_s),
        format!("{}/{}", r.lead_time.with_cause, r.lead_time.changes),
    );
    card(
        &mut h,
        t(lang, "cfr"),
        percent(r.change_failure.rate),
        format!("{}/{}", r.change_failure.failed, r.change_failure.changes),
    );
    card(
        &mut h,
        t(lang, "ttr"),
        duration(r.restore.median_s),
        format!("{}/{}", r.restore.resolved, r.restore.incidents),
    );
    card(&mut h, t(lang, "ttd"), duration(r.restore.detect_median_s), format!("{}", r.restore.detected));
    h.push_str("</div>");

    // Deployments per week.
    let _ = write!(h, "<h2>{}</h2>", t(lang, "deploys_per_week"));
    let weeks: Vec<(String, f64)> =
        r.deployment_frequency.weeks.iter().map(|w| (w.week[5..].to_string(), w.count as f64)).collect();
    bars(&mut h, &weeks, "#2b6cb0");

    // Lead time by stage.
    let _ = write!(h, "<h2>{}</h2>", t(lang, "stages"));
    stacked(&mut h, r, lang);
    let _ = write!(
        h,
        "<table><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
        t(lang, "stage"),
        t(lang, "median"),
        t(lang, "share")
    );
    for st in &r.lead_time.stages {
        let mark = if r.lead_time.bottleneck.as_deref() == Some(st.stage.as_str()) {
            format!(" ← {}", t(lang, "bottleneck"))
        } else {
            String::new()
        };
        let _ = write!(
            h,
            "<tr><td>{}{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            t(lang, &st.stage),
            mark,
            duration(st.median_s),
            percent(Some(st.share))
        );
    }
    h.push_str("</table>");

    if !r.change_failure.failures.is_empty() {
        let _ = write!(h, "<h2>{}</h2><table>", t(lang, "failures"));
        for f in &r.change_failure.failures {
            let _ = write!(
                h,
                "<tr><td>{} v{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.model),
                f.version,
                esc(&f.at),
                esc(&f.why),
                esc(&f.detail)
            );
        }
        h.push_str("</table>");
    }

    let _ = write!(h, "<h2>{}</h2>", t(lang, "incidents"));
    if r.restore.incidents_detail.is_empty() {
        let _ = write!(h, "<p class=\"meta\">{}</p>", t(lang, "none"));
    } else {
        let _ = write!(
            h,
            "<table><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
            t(lang, "model"),
            t(lang, "opened"),
            t(lang, "state"),
            t(lang, "restore"),
            t(lang, "detect")
        );
        for i in &r.restore.incidents_detail {
            let restore = match (i.restore_s, i.open_for_s) {
                (Some(s), _) => duration(Some(s)),
                (None, Some(o)) => format!("{} ({})", t(lang, "open"), duration(Some(o))),
                _ => "—".into(),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                i.id,
                esc(&i.model),
                esc(&i.opened),
                esc(&i.state),
                esc(&restore),
                duration(i.detect_s)
            );
        }
        h.push_str("</table>");
    }

    // Automation.
    let _ = write!(h, "<h2>{}</h2><table>", t(lang, "automation"));
    let a = &r.automation;
    for (key, s) in [
        ("retrains", &a.retrains),
        ("promotions", &a.promotions),
        ("deploys", &a.deploys),
        ("rollbacks", &a.rollbacks),
        ("drift_checks", &a.drift_checks),
    ] {
        share_row(&mut h, lang, key, s);
    }
    h.push_str("</table>");

    // Quality.
    let _ = write!(h, "<h2>{}</h2>", t(lang, "quality"));
    if r.quality.is_empty() {
        let _ = write!(h, "<p class=\"meta\">{}</p>", t(lang, "none"));
    } else {
        quality_chart(&mut h, r);
        let _ = write!(
            h,
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\"></th></tr>",
            t(lang, "model"),
            t(lang, "version"),
            t(lang, "window"),
            t(lang, "rows"),
            t(lang, "coverage"),
        );
        for q in &r.quality {
            let metric = match (&q.metric, q.value) {
                (Some(m), Some(v)) => format!("{m} {v:.3}"),
                _ => "—".into(),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>v{}</td><td>{} – {}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&q.model),
                q.version,
                esc(&q.window_start),
                esc(&q.window_end),
                q.rows,
                percent(Some(q.coverage)),
                esc(&metric)
            );
        }
        h.push_str("</table>");
    }

    // Serving.
    let _ = write!(h, "<h2>{}</h2>", t(lang, "serving"));
    if r.serving.is_empty() {
        let _ = write!(h, "<p class=\"meta\">{}</p>", t(lang, "none"));
    } else {
        let _ = write!(
            h,
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">p50</th><th class=\"n\">p95</th><th class=\"n\">p99</th></tr>",
            t(lang, "model"),
            t(lang, "version"),
            t(lang, "day"),
            t(lang, "requests"),
            t(lang, "errors"),
        );
        let ms = |x: Option<f64>| x.map(|x| format!("{x:.2} ms")).unwrap_or_else(|| "—".into());
        for s in &r.serving {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>v{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}%</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&s.model),
                s.version,
                esc(&s.day),
                s.requests,
                s.error_rate * 100.0,
                ms(s.p50_ms),
                ms(s.p95_ms),
                ms(s.p99_ms)
            );
        }
        h.push_str("</table>");
    }

    // Compute.
    let c = &r.compute;
    let _ = write!(
        h,
        "<h2>{}</h2><p class=\"meta\">{}: {} · {}: {} · {}: {}</p><table><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
        t(lang, "compute"),
        t(lang, "runs"),
        c.runs,
        t(lang, "wall"),
        duration(Some(c.wall_s)),
        t(lang, "cpu"),
        duration(Some(c.cpu_s)),
        t(lang, "by_model"),
        t(lang, "runs"),
        t(lang, "wall"),
        t(lang, "cpu"),
    );
    for row in c.by_model.iter().chain(&c.by_trigger) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&row.key),
            row.runs,
            duration(Some(row.wall_s)),
            duration(Some(row.cpu_s))
        );
    }
    h.push_str("</table>");

    // Value.
    let v = &r.value;
    let cur = v.currency.as_deref();
    let _ = write!(h, "<h2>{}</h2>", t(lang, "value"));
    if !v.lines.is_empty() {
        let _ = write!(
            h,
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th class=\"n\">{}</th></tr>",
            t(lang, "item"),
            t(lang, "inputs"),
            t(lang, "formula"),
            t(lang, "amount")
        );
        for l in &v.lines {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&l.item),
                esc(&l.inputs),
                esc(&l.formula),
                esc(&money(l.amount, cur))
            );
        }
        let _ = write!(
            h,
            "</table><div class=\"cards\"><div class=\"card\"><span>{}</span><b>{:.1} h</b></div><div class=\"card\"><span>{}</span><b>{}</b><span>{}</span></div></div>",
            t(lang, "hours_saved"),
            v.hours_saved,
            t(lang, "net"),
            esc(&money(v.net, cur)),
            esc(&v.net_formula)
        );
    }
    if !v.missing.is_empty() {
        let _ = write!(h, "<p class=\"note\">{}</p><ul class=\"note\">", t(lang, "not_configured"));
        for m in &v.missing {
            let _ = write!(h, "<li>{}</li>", esc(m));
        }
        h.push_str("</ul>");
    }
    h.push_str("</body></html>\n");
    h
}

fn share_row(h: &mut String, lang: Lang, key: &str, s: &Share) {
    let _ = write!(
        h,
        "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{} {}</td><td class=\"n\">{} {}</td></tr>",
        t(lang, key),
        percent(s.rate),
        s.automated,
        t(lang, "automated"),
        s.manual,
        t(lang, "manual")
    );
}

/// A bar chart of labelled counts.
fn bars(h: &mut String, items: &[(String, f64)], color: &str) {
    let (w, hgt, pad) = (640.0, 140.0, 24.0);
    let max = items.iter().map(|i| i.1).fold(1.0, f64::max);
    let n = items.len().max(1) as f64;
    let bw = (w - pad) / n;
    let _ = write!(h, "<svg width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" role=\"img\">", hgt + 18.0, hgt + 18.0);
    let _ = write!(h, "<text x=\"0\" y=\"10\" font-size=\"9\" fill=\"#555\">{max:.0}</text>");
    for (i, (label, v)) in items.iter().enumerate() {
        let bh = (v / max) * (hgt - 14.0);
        let x = pad + i as f64 * bw;
        let _ = write!(
            h,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>{} {v}</title></rect>",
            hgt - bh,
            (bw - 2.0).max(1.0),
            esc(label)
        );
        if items.len() <= 16 || i % (items.len() / 12 + 1) == 0 {
            let _ = write!(
                h,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"8\" fill=\"#555\">{}</text>",
                hgt + 12.0,
                esc(label)
            );
        }
    }
    h.push_str("</svg>");
}

/// One bar split by each stage's share of the lead time.
fn stacked(h: &mut String, r: &Report, lang: Lang) {
    let w = 640.0;
    let _ = write!(h, "<svg width=\"{w}\" height=\"46\" viewBox=\"0 0 {w} 46\" role=\"img\">");
    let mut x = 0.0;
    for (i, st) in r.lead_time.stages.iter().enumerate() {
        let sw = st.share * w;
        if sw <= 0.0 {
            continue;
        }
        let _ = write!(
            h,
            "<rect x=\"{x:.1}\" y=\"0\" width=\"{sw:.1}\" height=\"22\" fill=\"{}\"><title>{} {}</title></rect>",
            COLORS[i % COLORS.len()],
            t(lang, &st.stage),
            percent(Some(st.share))
        );
        x += sw;
    }
    let mut lx = 0.0;
    for (i, name) in STAGES.iter().enumerate() {
        let _ = write!(
            h,
            "<rect x=\"{lx:.0}\" y=\"30\" width=\"8\" height=\"8\" fill=\"{}\"/><text x=\"{:.0}\" y=\"38\" font-size=\"8\">{}</text>",
            COLORS[i % COLORS.len()],
            lx + 10.0,
            t(lang, name)
        );
        lx += 106.0;
    }
    h.push_str("</svg>");
}

/// Per model: the headline metric per window, one colour per version, version boundaries as
/// dashed lines.
fn quality_chart(h: &mut String, r: &Report) {
    let mut models: Vec<&str> = r.quality.iter().map(|q| q.model.as_str()).collect();
    models.dedup();
    for model in models {
        let rows: Vec<_> = r.quality.iter().filter(|q| q.model == model && q.value.is_some()).collect();
        if rows.is_empty() {
            continue;
        }
        let mut windows: Vec<&str> = rows.iter().map(|q| q.window_start.as_str()).collect();
        windows.dedup();
        let (w, hgt, pad) = (640.0, 120.0, 30.0);
        let (lo, hi) = rows.iter().filter_map(|q| q.value).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        let xw = (w - pad * 2.0) / (windows.len().max(2) - 1) as f64;
        let x_of = |ws: &str| pad + windows.iter().position(|x| *x == ws).unwrap_or(0) as f64 * xw;
        let y_of = |v: f64| 10.0 + (hi - v) / span * (hgt - 30.0);
        let _ = write!(
            h,
            "<svg width=\"{w}\" height=\"{hgt}\" viewBox=\"0 0 {w} {hgt}\" role=\"img\"><text x=\"0\" y=\"10\" font-size=\"9\">{} · {}</text>",
            esc(model),
            esc(rows[0].metric.as_deref().unwrap_or(""))
        );
        let mut versions: Vec<i64> = rows.iter().map(|q| q.version).collect();
        versions.dedup();
        for (vi, v) in versions.iter().enumerate() {
            let pts: Vec<String> = rows
                .iter()
                .filter(|q| q.version == *v)
                .map(|q| format!("{:.1},{:.1}", x_of(&q.window_start), y_of(q.value.unwrap_or(lo))))
                .collect();
            let color = COLORS[vi % COLORS.len()];
            let _ = write!(
                h,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                pts.join(" ")
            );
            for p in &pts {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = write!(h, "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{color}\"/>");
            }
            if vi > 0 {
                if let Some(first) = rows.iter().find(|q| q.version == *v) {
                    let x = x_of(&first.window_start);
                    let _ = write!(
                        h,
                        "<line x1=\"{x:.1}\" y1=\"8\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#999\" stroke-dasharray=\"3,3\"/>",
                        hgt - 18.0
                    );
                }
            }
            let _ = write!(
                h,
                "<text x=\"{}\" y=\"{}\" font-size=\"8\" fill=\"{color}\">v{v}</text>",
                pad + vi as f64 * 40.0,
                hgt - 4.0
            );
        }
        let _ = write!(
            h,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"8\">{hi:.3}</text><text x=\"{}\" y=\"{:.1}\" font-size=\"8\">{lo:.3}</text></svg>",
            w - pad + 2.0,
            y_of(hi) + 3.0,
            w - pad + 2.0,
            y_of(lo) + 3.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_hostile_names_and_has_no_external_assets() {
        let mut r = Report::default();
        r.period.model = Some("<script>alert(1)</script>".into());
        r.period.since = "2026-01-01T00:00:00.000Z".into();
        r.period.until = "2026-02-01T00:00:00.000Z".into();
        for lang in [Lang::En, Lang::Ja] {
            let page = render(&r, lang);
            assert!(!page.contains("<script"), "{page}");
            assert!(page.contains("&lt;script&gt;"));
            for external in ["src=", "href=", "http://", "https://", "@import", "url("] {
                assert!(!page.contains(external), "{external} in the page");
            }
        }
        assert!(render(&r, Lang::Ja).contains("変更失敗率"));
    }

    #[test]
    fn every_stage_has_words_in_both_languages() {
        for s in STAGES {
            assert!(!t(Lang::En, s).is_empty() && !t(Lang::Ja, s).is_empty(), "{s}");
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(Some(30.0)), "30 s");
        assert_eq!(duration(Some(0.28)), "0.3 s");
        assert_eq!(duration(Some(600.0)), "10 min");
        assert_eq!(duration(Some(3.0 * 3600.0)), "3.0 h");
        assert_eq!(duration(Some(3.0 * 86400.0)), "3.0 d");
        assert_eq!(duration(None), "—");
    }
}
