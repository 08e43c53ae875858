//! `/data`: the tracked datasets, newest version of each; `/data?path=P`: its versions (as
//! `kairo data log`: git history of the pointer and versions added but not committed), and
//! `&from=H&to=H` the file-level difference between two of them (as `kairo data diff`).

use kairo_data::history::{DiffReport, LogEntry};
use kairo_store::metadata::DatasetVersion;
use maud::{html, Markup};

use super::models::urlencode;
use super::{Lang, Words};

/// Files listed per kind of change.
const MAX_FILES: usize = 1000;

pub fn list(lang: Lang, datasets: &[DatasetVersion]) -> Markup {
    let t = lang.text();
    html! {
        h1 { (t.data) }
        @if datasets.is_empty() { p { (t.no_datasets) } } @else {
            table {
                thead { tr { th scope="col" { (t.path) } th scope="col" { (t.version) } th scope="col" { (t.kind) } th scope="col" { (t.files) } th scope="col" { (t.size) } th scope="col" { (t.added) } th scope="col" { (t.by) } } }
                tbody { @for d in datasets {
                    tr {
                        td.mono { a href={ "/data?path=" (urlencode(&d.path)) "&lang=" (lang.code()) } { (d.path) } }
                        td.mono { a href={ "/lineage?target=" (urlencode(&format!("{}@{}", d.path, d.hash.to_hex()))) "&lang=" (lang.code()) } { (d.hash.short()) } }
                        td { (d.kind) } td.num { (d.files) } td.num { (bytes(d.size)) } td.mono { (d.created_at) } td { (d.actor) }
                    }
                } }
            }
        }
    }
}

pub fn bytes(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1 << 20 => format!("{:.1} KiB", n as f64 / 1024.0),
        n if n < 1 << 30 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
    }
}

pub fn versions(
    lang: Lang,
    path: &str,
    log: &[LogEntry],
    from: Option<&str>,
    to: Option<&str>,
    diff: Option<Result<DiffReport, String>>,
) -> Markup {
    let t = lang.text();
    let hashes: Vec<String> = log.iter().filter_map(|e| e.hash.map(|h| h.to_hex())).collect();
    let from = from.map(str::to_string).or_else(|| hashes.get(1).cloned());
    let to = to.map(str::to_string).or_else(|| hashes.first().cloned());
    html! {
        h1 { (t.data) " " span.mono { (path) } }
        form method="get" action="/data" {
            input type="hidden" name="path" value=(path);
            input type="hidden" name="lang" value=(lang.code());
            table {
                thead { tr { th scope="col" { (t.from) } th scope="col" { (t.to) } th scope="col" { (t.version) } th scope="col" { (t.files) } th scope="col" { (t.size) } th scope="col" { (t.at) } th scope="col" { (t.by) } th scope="col" { (t.commit_message) } } }
                tbody { @for e in log {
                    tr {
                        @if let Some(h) = e.hash {
                            @let hex = h.to_hex();
                            td { input type="radio" name="from" value=(hex) checked[from.as_deref() == Some(hex.as_str())] aria-label={ (t.from) " " (h.short()) }; }
                            td { input type="radio" name="to" value=(hex) checked[to.as_deref() == Some(hex.as_str())] aria-label={ (t.to) " " (h.short()) }; }
                            td.mono { a href={ "/lineage?target=" (urlencode(&format!("{path}@{hex}"))) "&lang=" (lang.code()) } { (h.short()) } }
                        } @else { td {} td {} td { "–" } }
                        td.num { (e.files.map(|f| f.to_string()).unwrap_or_default()) }
                        td.num { (e.size.map(bytes).unwrap_or_default()) }
                        td.mono { (e.time) }
                        td { (e.author) }
                        td { (e.commit.as_deref().map(|c| c.get(..10).unwrap_or(c)).unwrap_or("")) " " (e.message) }
                    }
                } }
            }
            button type="submit" { (t.show_diff) }
        }
        @if let Some(d) = diff {
            section aria-labelledby="diff-h" {
                h2 id="diff-h" { (t.difference) }
                @match d {
                    Err(e) => p.error role="alert" { (e) },
                    Ok(d) => {
                        p.mono { (d.from.label) " → " (d.to.label) }
                        @if d.added.is_empty() && d.removed.is_empty() && d.modified.is_empty() { p { (t.same_files) } }
                        @for (title, class, files) in [(t.added, "added", &d.added), (t.removed, "removed", &d.removed), (t.modified, "modified", &d.modified)] {
                            @if !files.is_empty() {
                                h3 { (title) " (" (files.len()) ")" }
                                ul class={ "files " (class) } { @for f in files.iter().take(MAX_FILES) { li.mono { (f) } } }
                                @if files.len() > MAX_FILES { p.note { (t.more_files) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
