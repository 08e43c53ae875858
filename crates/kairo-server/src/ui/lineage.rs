//! `/lineage?target=`: the two-way lineage graph (`kairo_pipeline::lineage::graph`) as an
//! SVG whose every node is a link — to its own lineage, so the graph is walked by clicking —
//! and, below it, the same nodes as a list with links to their pages; the deployments and
//! incidents reached are named first ("which deployments used this dataset?").

use kairo_pipeline::lineage::{Graph, GraphNode};
use maud::{html, Markup};

use super::models::urlencode;
use super::{Lang, Words};

/// The target that centres the graph on `n`, if it can be one.
fn target(n: &GraphNode) -> Option<String> {
    match n {
        GraphNode::Data { path, hash } => Some(format!("{path}@{}", hash.to_hex())),
        GraphNode::Run { id, .. } => Some(id.clone()),
        GraphNode::Model { name, version } => Some(format!("model:{name}:{version}")),
        GraphNode::Deployment { .. } | GraphNode::Incident { .. } => None,
    }
}

fn label(n: &GraphNode) -> String {
    match n {
        GraphNode::Data { path, hash } => format!("{path}@{}", &hash.to_hex()[..8]),
        GraphNode::Run { id, stage } => format!("{stage} {}", id.get(..8).unwrap_or(id)),
        GraphNode::Model { name, version } => format!("{name} v{version}"),
        GraphNode::Deployment { name } => format!("deployment {name}"),
        GraphNode::Incident { id, state } => format!("incident {id} {state}"),
    }
}

fn class(n: &GraphNode) -> &'static str {
    match n {
        GraphNode::Data { .. } => "data",
        GraphNode::Run { .. } => "run",
        GraphNode::Model { .. } => "model",
        GraphNode::Deployment { .. } => "deployment",
        GraphNode::Incident { .. } => "incident",
    }
}

/// The page of a node.
fn page_of(n: &GraphNode, lang: Lang) -> String {
    let l = lang.code();
    match n {
        GraphNode::Data { path, .. } => format!("/data?path={}&lang={l}", urlencode(path)),
        GraphNode::Run { id, .. } => format!("/runs/{id}?lang={l}"),
        GraphNode::Model { name, .. } => format!("/models/{}?lang={l}", urlencode(name)),
        GraphNode::Deployment { name } => format!("/deployments/{}?lang={l}", urlencode(name)),
        GraphNode::Incident { id, .. } => format!("/incidents/{id}?lang={l}"),
    }
}

fn href(n: &GraphNode, lang: Lang) -> String {
    match target(n) {
        Some(t) => format!("/lineage?target={}&lang={}", urlencode(&t), lang.code()),
        None => page_of(n, lang),
    }
}

pub fn form(lang: Lang, value: &str) -> Markup {
    let t = lang.text();
    html! {
        form method="get" action="/lineage" role="search" {
            label for="target" { (t.lineage_target) }
            input id="target" name="target" type="search" size="50" value=(value) placeholder="data/train.csv · RUN_ID · model:churn:3";
            input type="hidden" name="lang" value=(lang.code());
            button type="submit" { (t.search) }
        }
    }
}

pub fn body(lang: Lang, target_text: &str, g: &Graph) -> Markup {
    let t = lang.text();
    let layers = g.layers();
    let columns = layers.iter().copied().max().map_or(1, |m| m + 1);
    let mut row_in_layer = vec![0usize; columns];
    let mut pos = Vec::with_capacity(g.nodes.len());
    for &l in &layers {
        pos.push((l, row_in_layer[l]));
        row_in_layer[l] += 1;
    }
    let rows = row_in_layer.iter().copied().max().unwrap_or(1).max(1);
    let (cw, rh, nw, nh) = (210.0, 44.0, 180.0, 30.0);
    let xy = |i: usize| (pos[i].0 as f64 * cw + 10.0, pos[i].1 as f64 * rh + 10.0);
    let (w, h) = (columns as f64 * cw + 20.0, rows as f64 * rh + 20.0);
    let reached: Vec<&GraphNode> =
        g.nodes.iter().filter(|n| matches!(n, GraphNode::Deployment { .. } | GraphNode::Incident { .. })).collect();
    html! {
        h1 { (t.lineage) }
        (form(lang, target_text))
        section aria-labelledby="reached-h" {
            h2 id="reached-h" { (t.reached) }
            @if reached.is_empty() { p { (t.reached_none) } } @else {
                ul { @for n in &reached { li { a href=(page_of(n, lang)) { (label(n)) } } } }
            }
            @if g.truncated { p.note { (t.graph_cut) } }
        }
        div.scroll {
            svg.lineage width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(t.lineage) {
                @for &(a, b) in &g.edges {
                    @let (x1, y1) = xy(a);
                    @let (x2, y2) = xy(b);
                    path d=(format!("M{:.0},{:.0} C{:.0},{:.0} {:.0},{:.0} {:.0},{:.0}", x1 + nw, y1 + nh / 2.0, x1 + nw + 20.0, y1 + nh / 2.0, x2 - 20.0, y2 + nh / 2.0, x2, y2 + nh / 2.0)) {}
                }
                @for (i, n) in g.nodes.iter().enumerate() {
                    @let (x, y) = xy(i);
                    a href=(href(n, lang)) {
                        g class={ (class(n)) @if g.root.as_ref() == Some(n) { " root" } } {
                            rect x=(x) y=(y) width=(nw) height=(nh) rx="4" {}
                            text x=(x + 8.0) y=(y + 19.0) { (label(n)) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="nodes-h" {
            h2 id="nodes-h" { (t.nodes) }
            table {
                thead { tr { th scope="col" { (t.kind) } th scope="col" { (t.name) } th scope="col" { (t.causes) } th scope="col" { "" } } }
                tbody { @for (i, n) in g.nodes.iter().enumerate() {
                    tr {
                        td { (class(n)) }
                        td.mono { a href=(href(n, lang)) { (label(n)) } }
                        td.mono { @for &(a, b) in &g.edges { @if b == i { (label(&g.nodes[a])) "; " } } }
                        td { a href=(page_of(n, lang)) { (t.open) } }
                    }
                } }
            }
        }
    }
}
