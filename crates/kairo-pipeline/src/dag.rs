//! The stage graph: edges from outputs to the dependencies that read them, a topological order
//! (file order among equals), cycle detection that names the stages, and target selection.

use crate::error::{PipelineError, Result};
use crate::spec::Pipeline;
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
pub struct Dag {
    /// Stage indexes in an order where every stage comes after its upstream stages.
    pub order: Vec<usize>,
    /// For each stage, the stages it reads outputs of.
    pub upstream: Vec<Vec<usize>>,
}

/// True when one path is the other or lies inside it.
pub fn overlaps(a: &str, b: &str) -> bool {
    a == b
        || a.strip_prefix(b).is_some_and(|r| r.starts_with('/'))
        || b.strip_prefix(a).is_some_and(|r| r.starts_with('/'))
}

impl Dag {
    pub fn build(p: &Pipeline) -> Result<Dag> {
        let n = p.stages.len();
        // Two stages writing the same place would race and make lineage ambiguous.
        for (i, a) in p.stages.iter().enumerate() {
            for b in &p.stages[i + 1..] {
                for oa in a.all_outs() {
                    if let Some(ob) = b.all_outs().find(|ob| overlaps(&oa.path, &ob.path)) {
                        return Err(p.error(
                            &b.name,
                            Some(&ob.path),
                            &format!(
                                "output `{}` of stage `{}` overlaps output `{}` of stage `{}`",
                                ob.path, b.name, oa.path, a.name
                            ),
                        ));
                    }
                }
            }
        }
        let mut upstream = vec![Vec::new(); n];
        for (i, s) in p.stages.iter().enumerate() {
            for dep in &s.deps {
                for (j, producer) in p.stages.iter().enumerate() {
                    if i != j && producer.all_outs().any(|o| overlaps(dep, &o.path)) && !upstream[i].contains(&j) {
                        upstream[i].push(j);
                    }
                }
            }
        }
        // Kahn's algorithm, always taking the first ready stage in file order.
        let mut remaining: Vec<usize> = upstream.iter().map(Vec::len).collect();
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            let Some(next) = (0..n).find(|&i| !done[i] && remaining[i] == 0) else {
                return Err(PipelineError::Cycle(find_cycle(p, &upstream, &done)));
            };
            done[next] = true;
            order.push(next);
            for (i, ups) in upstream.iter().enumerate() {
                if ups.contains(&next) {
                    remaining[i] -= 1;
                }
            }
        }
        Ok(Dag { order, upstream })
    }

    /// The stages to consider for `targets` (names or `foreach` group names) and everything
    /// upstream of them, in topological order. Empty targets mean every stage.
    pub fn select(&self, p: &Pipeline, targets: &[String]) -> Result<Vec<usize>> {
        if targets.is_empty() {
            return Ok(self.order.clone());
        }
        let mut wanted = BTreeSet::new();
        for t in targets {
            let matched: Vec<usize> = p
                .stages
                .iter()
                .enumerate()
                .filter(|(_, s)| s.name == *t || s.name.split_once('@').is_some_and(|(base, _)| base == t))
                .map(|(i, _)| i)
                .collect();
            if matched.is_empty() {
                let names = p.stages.iter().map(|s| s.name.clone()).collect();
                return Err(PipelineError::UnknownStage(t.clone(), names));
            }
            for i in matched {
                self.add_upstream(i, &mut wanted);
            }
        }
        Ok(self.order.iter().copied().filter(|i| wanted.contains(i)).collect())
    }

    fn add_upstream(&self, i: usize, into: &mut BTreeSet<usize>) {
        if into.insert(i) {
            for &u in &self.upstream[i] {
                self.add_upstream(u, into);
            }
        }
    }

    /// Stages downstream of `i` (transitively).
    pub fn downstream(&self, i: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut frontier = vec![i];
        while let Some(x) = frontier.pop() {
            for (j, ups) in self.upstream.iter().enumerate() {
                if ups.contains(&x) && out.insert(j) {
                    frontier.push(j);
                }
            }
        }
        out
    }
}

/// A cycle among the stages not yet ordered, as names with the first repeated at the end.
fn find_cycle(p: &Pipeline, upstream: &[Vec<usize>], done: &[bool]) -> Vec<String> {
    let start = (0..upstream.len()).find(|&i| !done[i]).unwrap_or(0);
    let mut path = vec![start];
    let mut current = start;
    while let Some(&next) = upstream[current].iter().find(|&&u| !done[u]) {
        if let Some(pos) = path.iter().position(|&x| x == next) {
            let mut cycle: Vec<String> = path[pos..].iter().rev().map(|&i| p.stages[i].name.clone()).collect();
            cycle.push(cycle[0].clone());
            return cycle;
        }
        path.push(next);
        current = next;
    }
    path.iter().map(|&i| p.stages[i].name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn pipeline(text: &str) -> Pipeline {
        Pipeline::parse(Path::new("/nonexistent"), text).unwrap()
    }

    #[test]
    fn orders_by_data_flow_and_selects_upstream() {
        let p = pipeline("stages:\n  train:\n    cmd: t\n    deps: [data/prep/x.csv]\n    outs: [model]\n  prep:\n    cmd: p\n    deps: [raw]\n    outs: [data/prep]\n  other:\n    cmd: o\n");
        let dag = Dag::build(&p).unwrap();
        let names: Vec<_> = dag.order.iter().map(|&i| p.stages[i].name.as_str()).collect();
        assert_eq!(names, ["prep", "train", "other"]);
        let sel = dag.select(&p, &["train".into()]).unwrap();
        assert_eq!(sel.iter().map(|&i| p.stages[i].name.as_str()).collect::<Vec<_>>(), ["prep", "train"]);
        assert!(matches!(dag.select(&p, &["nope".into()]), Err(PipelineError::UnknownStage(..))));
    }

    #[test]
    fn cycle_names_its_stages() {
        let p = pipeline(
            "stages:\n  a:\n    cmd: a\n    deps: [y]\n    outs: [x]\n  b:\n    cmd: b\n    deps: [x]\n    outs: [y]\n",
        );
        let err = Dag::build(&p).unwrap_err().to_string();
        assert!(err.contains("a -> b -> a") || err.contains("b -> a -> b"), "{err}");
    }

    #[test]
    fn overlapping_outputs_are_refused() {
        let p = pipeline("stages:\n  a:\n    cmd: a\n    outs: [data]\n  b:\n    cmd: b\n    outs: [data/x]\n");
        let err = Dag::build(&p).unwrap_err().to_string();
        assert!(err.starts_with("kairo.yaml:7:") && err.contains("overlaps"), "{err}");
    }
}
