//! `kairo lineage TARGET`: the upstream graph of a run, an output path or a dataset version —
//! which runs produced it, from which inputs, recursively — as a tree, JSON or Graphviz DOT.

use crate::error::{PipelineError, Result};
use crate::lockfile::LockFile;
use kairo_core::run::Run;
use kairo_core::Hash;
use kairo_data::Project;
use kairo_store::runs::RunLookupError;
use kairo_store::Metadata;
use std::collections::HashSet;

/// A node of the upstream graph.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Node {
    Run {
        id: String,
        stage: String,
        status: String,
        started_at: String,
        actor: String,
        git_commit: Option<String>,
        uncommitted_changes: bool,
        env: String,
        params: Vec<String>,
        outputs: Vec<String>,
        inputs: Vec<Node>,
    },
    Data {
        path: String,
        hash: Hash,
        #[serde(rename = "kind")]
        kind: String,
        /// Set for tracked datasets: who added this version, and when.
        dataset: Option<DatasetInfo>,
        /// The run that wrote this version, if a run did.
        produced_by: Option<Box<Node>>,
    },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DatasetInfo {
    pub added_by: String,
    pub added_at: String,
    pub git_commit: Option<String>,
}

/// Resolve `target` (run id or prefix, output path, tracked dataset path, or `PATH@HASH`) and
/// build its upstream graph.
pub async fn lineage(project: &Project, md: &Metadata, target: &str) -> Result<Node> {
    let mut seen = HashSet::new();
    let looks_like_id = target.len() >= 4 && target.chars().all(|c| c.is_ascii_hexdigit());
    if looks_like_id {
        match md.run(target).await {
            Ok(run) => return run_node(project, md, run, &mut seen).await,
            Err(RunLookupError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (path, wanted) = match target.rsplit_once('@') {
        Some((p, h)) => (p.trim_end_matches('/'), Some(h)),
        None => (target.trim_end_matches('/'), None),
    };
    // A tracked dataset: its pointer, or a recorded version of it.
    if let Some(pointer) = project.read_pointer(path)? {
        let versions = md.dataset_versions(path).await?;
        let hash = match wanted {
            None => pointer.hash,
            Some(prefix) => versions
                .iter()
                .rev()
                .find(|v| v.hash.to_hex().starts_with(prefix))
                .map(|v| v.hash)
                .ok_or_else(|| PipelineError::Other(format!("dataset `{path}` has no recorded version starting with `{prefix}` (see `kairo data log {path}`)")))?,
        };
        let kind = versions.iter().find(|v| v.hash == hash).map(|v| v.kind.clone()).unwrap_or_else(|| "dir".into());
        return data_node(project, md, path, hash, kind, None, &mut seen).await;
    }
    // A pipeline output: the version kairo.lock records, or an explicit one.
    let lock = LockFile::read(project.root())?;
    for entry in lock.stages.values() {
        if let Some(out) = entry.outs.iter().find(|o| o.path == path) {
            let hash = match wanted {
                None => out.hash,
                Some(prefix) => {
                    let runs = md.runs(&Default::default()).await?;
                    runs.iter()
                        .flat_map(|r| r.outs.iter())
                        .find(|o| o.path == path && o.hash.to_hex().starts_with(prefix))
                        .map(|o| o.hash)
                        .ok_or_else(|| {
                            PipelineError::Other(format!("no run wrote a version of `{path}` starting with `{prefix}`"))
                        })?
                }
            };
            return data_node(project, md, path, hash, out.kind.clone(), None, &mut seen).await;
        }
    }
    // A file a recorded run wrote (`kairo predict`'s scores): its bytes name the version.
    let abs = project.abs(path);
    if wanted.is_none() && abs.is_file() {
        let hash = kairo_store::objects::hash_file(&abs)?;
        let producers = md.runs_producing(&hash).await?;
        if producers.iter().any(|r| r.outs.iter().any(|o| o.path == path && o.hash == hash)) {
            return data_node(project, md, path, hash, "file".into(), None, &mut seen).await;
        }
    }
    Err(PipelineError::Other(format!(
        "`{target}` is not a run id, a pipeline output in kairo.lock, a tracked dataset, or a file a recorded run wrote \
         (a file changed since its run no longer matches)"
    )))
}

fn run_node<'a>(
    project: &'a Project,
    md: &'a Metadata,
    run: Run,
    seen: &'a mut HashSet<String>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Node>> + Send + 'a>> {
    Box::pin(async move {
        let first_visit = seen.insert(run.id.clone());
        let mut inputs = Vec::new();
        if first_visit {
            for d in &run.deps {
                let kind = if d.dataset { "dataset".to_string() } else { d.kind.clone() };
                inputs.push(data_node(project, md, &d.path, d.hash, kind, Some(&run.id), seen).await?);
            }
        }
        let params = run.params.values().flat_map(|kv| kv.iter().map(|(k, v)| format!("{k}={v}"))).collect();
        Ok(Node::Run {
            id: run.id.clone(),
            stage: run.stage.clone(),
            status: run.status.as_str().into(),
            started_at: run.started_at.clone(),
            actor: run.actor.clone(),
            git_commit: run.git.commit.clone(),
            uncommitted_changes: run.git.dirty.is_some(),
            env: run.env.spec.clone(),
            params,
            outputs: run.outs.iter().map(|o| format!("{}@{}", o.path, o.hash.short())).collect(),
            inputs,
        })
    })
}

fn data_node<'a>(
    project: &'a Project,
    md: &'a Metadata,
    path: &'a str,
    hash: Hash,
    kind: String,
    consumer: Option<&'a str>,
    seen: &'a mut HashSet<String>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Node>> + Send + 'a>> {
    Box::pin(async move {
        let dataset = md.dataset_versions(path).await?.into_iter().find(|v| v.hash == hash).map(|v| DatasetInfo {
            added_by: v.actor,
            added_at: v.created_at,
            git_commit: v.git_commit,
        });
        // The newest run that wrote this version before the consumer started.
        // A model version (a `kairo predict` input) was written by whichever run produced its bytes.
        let any_path = kind == kairo_core::run::MODEL_KIND;
        let producer = md.runs_producing(&hash).await?.into_iter().rfind(|r| {
            r.outs.iter().any(|o| (any_path || o.path == path) && o.hash == hash)
                && consumer.is_none_or(|c| r.id.as_str() < c)
        });
        let produced_by = match producer {
            Some(run) => Some(Box::new(run_node(project, md, run, seen).await?)),
            None => None,
        };
        let kind = if dataset.is_some() { "dataset".to_string() } else { kind };
        Ok(Node::Data { path: path.to_string(), hash, kind, dataset, produced_by })
    })
}

/// The graph as an indented tree.
pub fn render_text(node: &Node) -> String {
    let mut out = String::new();
    render(node, "", "", &mut out);
    out
}

fn label(node: &Node) -> String {
    match node {
        Node::Run { id, stage, status, started_at, actor, git_commit, uncommitted_changes, env, params, .. } => {
            let commit = git_commit
                .as_deref()
                .map(|c| format!("commit {}", &c[..c.len().min(10)]))
                .unwrap_or("no git commit".into());
            let dirty = if *uncommitted_changes { " +uncommitted" } else { "" };
            let params = if params.is_empty() { String::new() } else { format!(" params[{}]", params.join(", ")) };
            format!("run {id} stage `{stage}` {status} at {started_at} by {actor}, {commit}{dirty}, env {env}{params}")
        }
        Node::Data { path, hash, kind, dataset, produced_by } => {
            let origin = match (dataset, produced_by) {
                (Some(d), _) => format!(", added by {} at {}", d.added_by, d.added_at),
                (None, None) => ", not produced by a recorded run".into(),
                _ => String::new(),
            };
            format!("{path} ({kind} {}){origin}", hash.short())
        }
    }
}

fn children(node: &Node) -> Vec<&Node> {
    match node {
        Node::Run { inputs, .. } => inputs.iter().collect(),
        Node::Data { produced_by, .. } => produced_by.iter().map(|b| b.as_ref()).collect(),
    }
}

fn render(node: &Node, first: &str, rest: &str, out: &mut String) {
    out.push_str(first);
    out.push_str(&label(node));
    out.push('\n');
    let kids = children(node);
    for (i, child) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let (f, r) = if last { ("└── ", "    ") } else { ("├── ", "│   ") };
        render(child, &format!("{rest}{f}"), &format!("{rest}{r}"), out);
    }
}

/// The graph in Graphviz DOT: data → run edges read "was input of".
pub fn render_dot(node: &Node) -> String {
    let mut out = String::from("digraph lineage {\n  rankdir=LR;\n");
    let mut seen = HashSet::new();
    dot(node, &mut out, &mut seen);
    out.push_str("}\n");
    out
}

fn dot_id(node: &Node) -> String {
    match node {
        Node::Run { id, .. } => format!("run_{id}"),
        Node::Data { path, hash, .. } => {
            format!("data_{}_{}", hash.short(), path.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
        }
    }
}

fn dot(node: &Node, out: &mut String, seen: &mut HashSet<String>) {
    let id = dot_id(node);
    if !seen.insert(id.clone()) {
        return;
    }
    let (shape, text) = match node {
        Node::Run { id, stage, status, .. } => ("box", format!("{stage}\\n{}\\n{status}", &id[..id.len().min(12)])),
        Node::Data { path, hash, .. } => ("ellipse", format!("{path}\\n{}", hash.short())),
    };
    out.push_str(&format!("  \"{id}\" [shape={shape}, label=\"{}\"];\n", text.replace('"', "\\\"")));
    for child in children(node) {
        let edge = match node {
            Node::Run { .. } => format!("  \"{}\" -> \"{id}\" [label=\"input\"];\n", dot_id(child)),
            Node::Data { .. } => format!("  \"{}\" -> \"{id}\" [label=\"output\"];\n", dot_id(child)),
        };
        out.push_str(&edge);
        dot(child, out, seen);
    }
}

/// A node of the two-way lineage graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GraphNode {
    Data { path: String, hash: Hash },
    Run { id: String, stage: String },
    Model { name: String, version: i64 },
    Deployment { name: String },
    Incident { id: i64, state: String },
}

/// Lineage in both directions around one target: what it came from (upstream, as
/// [`lineage`]) and what came of it — the runs that read a version, what they wrote, the model
/// versions registered from those runs, the deployments that served them, the incidents about
/// them — answering "which deployments used this dataset?".
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Graph {
    pub root: Option<GraphNode>,
    pub nodes: Vec<GraphNode>,
    /// `(from, to)` as indexes into `nodes`, from cause to effect.
    pub edges: Vec<(usize, usize)>,
    /// The graph was cut at [`Graph::MAX_NODES`].
    pub truncated: bool,
}

impl Graph {
    pub const MAX_NODES: usize = 300;

    fn node(&mut self, n: GraphNode) -> Option<usize> {
        if let Some(i) = self.nodes.iter().position(|x| *x == n) {
            return Some(i);
        }
        if self.nodes.len() >= Self::MAX_NODES {
            self.truncated = true;
            return None;
        }
        self.nodes.push(n);
        Some(self.nodes.len() - 1)
    }

    fn edge(&mut self, from: GraphNode, to: GraphNode) {
        if let (Some(a), Some(b)) = (self.node(from), self.node(to)) {
            if !self.edges.contains(&(a, b)) {
                self.edges.push((a, b));
            }
        }
    }

    /// Each node's column: the longest chain of causes before it.
    pub fn layers(&self) -> Vec<usize> {
        let mut layer = vec![0usize; self.nodes.len()];
        for _ in 0..self.nodes.len() {
            let mut changed = false;
            for &(a, b) in &self.edges {
                if layer[b] < layer[a] + 1 {
                    layer[b] = layer[a] + 1;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        layer
    }
}

/// The two-way graph of `target`: anything [`lineage`] takes, or `model:NAME:VERSION`.
pub async fn graph(project: &Project, md: &Metadata, target: &str) -> Result<Graph> {
    let mut g = Graph::default();
    let versions = md.model_versions(None).await?;
    let root = match target.strip_prefix("model:") {
        Some(spec) => {
            let (name, version) = spec
                .rsplit_once(':')
                .and_then(|(n, v)| Some((n, v.parse::<i64>().ok()?)))
                .ok_or_else(|| PipelineError::Other(format!("`{target}`: a model version is model:NAME:VERSION")))?;
            let v = versions
                .iter()
                .find(|v| v.name == name && v.version == version)
                .ok_or_else(|| PipelineError::Other(format!("model {name} has no version {version}")))?;
            let node = GraphNode::Model { name: name.to_string(), version };
            g.node(node.clone());
            if let Some(run) = v.run_id.as_deref() {
                let up = lineage(project, md, run).await?;
                let run_node = upstream(&mut g, &up);
                g.edge(run_node, node.clone());
            }
            node
        }
        None => {
            let up = lineage(project, md, target).await?;
            upstream(&mut g, &up)
        }
    };
    g.root = Some(root.clone());
    downstream(md, &mut g, root, &versions).await?;
    Ok(g)
}

/// Add the upstream tree to the graph; its root's graph node.
fn upstream(g: &mut Graph, n: &Node) -> GraphNode {
    match n {
        Node::Run { id, stage, inputs, .. } => {
            let me = GraphNode::Run { id: id.clone(), stage: stage.clone() };
            g.node(me.clone());
            for i in inputs {
                let from = upstream(g, i);
                g.edge(from, me.clone());
            }
            me
        }
        Node::Data { path, hash, produced_by, .. } => {
            let me = GraphNode::Data { path: path.clone(), hash: *hash };
            g.node(me.clone());
            if let Some(p) = produced_by {
                let from = upstream(g, p);
                g.edge(from, me.clone());
            }
            me
        }
    }
}

/// What came of `start`, breadth first, until the graph is full.
async fn downstream(
    md: &Metadata,
    g: &mut Graph,
    start: GraphNode,
    versions: &[kairo_core::tracking::ModelVersion],
) -> Result<()> {
    let deployments = md.deployments().await?;
    let incidents = md.incidents(false, 1000).await?;
    let mut queue = std::collections::VecDeque::from([start]);
    let mut done = HashSet::new();
    while let Some(n) = queue.pop_front() {
        if !done.insert(n.clone()) || g.truncated {
            continue;
        }
        let mut next = Vec::new();
        match &n {
            GraphNode::Data { hash, .. } => {
                for r in md.runs_reading(hash).await? {
                    next.push(GraphNode::Run { id: r.id.clone(), stage: r.stage.clone() });
                }
            }
            GraphNode::Run { id, .. } => {
                if let Ok(run) = md.run(id).await {
                    for o in &run.outs {
                        next.push(GraphNode::Data { path: o.path.clone(), hash: o.hash });
                    }
                }
                for v in versions.iter().filter(|v| v.run_id.as_deref() == Some(id.as_str())) {
                    next.push(GraphNode::Model { name: v.name.clone(), version: v.version });
                }
            }
            GraphNode::Model { name, version } => {
                if let Some(d) = deployments.iter().find(|d| d.name == *name) {
                    let served = d.stable_version == *version
                        || d.candidate_version == Some(*version)
                        || md.deployment_revisions(name).await?.contains(version);
                    if served {
                        next.push(GraphNode::Deployment { name: name.clone() });
                    }
                }
                for i in incidents.iter().filter(|i| i.model == *name) {
                    let about = i.detail["challenger"]["version"].as_i64() == Some(*version)
                        || i.detail["champion"]["version"].as_i64() == Some(*version)
                        || i.detail["evaluation"]["champion"]["version"].as_i64() == Some(*version);
                    if about {
                        next.push(GraphNode::Incident { id: i.id, state: i.state.as_str().to_string() });
                    }
                }
            }
            GraphNode::Deployment { .. } | GraphNode::Incident { .. } => {}
        }
        for m in next {
            g.edge(n.clone(), m.clone());
            queue.push_back(m);
        }
    }
    Ok(())
}
