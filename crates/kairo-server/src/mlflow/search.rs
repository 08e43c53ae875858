//! MLflow's search grammar for runs: `metrics.acc > 0.9 and params.lr = '0.1' and tags.team LIKE
//! 'ml%' and attributes.status = 'FINISHED'`, `order_by` clauses and offset page tokens.
//! Comparisons are joined by AND (MLflow has no OR); keys may be quoted with "" or ``.

use crate::error::{ApiError, ApiResult};
use base64::Engine;
use kairo_core::tracking::{status_to_mlflow, TrackedRun};
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Metric,
    Param,
    Tag,
    Attribute,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    List(Vec<String>),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub kind: Kind,
    pub key: String,
    pub op: String,
    pub value: Value,
}

const ATTRIBUTES: &[&str] = &[
    "run_id",
    "run_name",
    "status",
    "start_time",
    "end_time",
    "user_id",
    "artifact_uri",
    "lifecycle_stage",
    "experiment_id",
];

fn kind_of(prefix: &str) -> Option<Kind> {
    match prefix.to_ascii_lowercase().as_str() {
        "metric" | "metrics" => Some(Kind::Metric),
        "param" | "params" | "parameter" | "parameters" => Some(Kind::Param),
        "tag" | "tags" => Some(Kind::Tag),
        "attribute" | "attributes" | "attr" | "run" => Some(Kind::Attribute),
        _ => None,
    }
}

/// A token of the filter grammar, shared by the run grammar here and the registry's
/// (`registry_search.rs`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Word(String),
    /// A 'single-quoted' string.
    Quoted(String),
    /// A "double-quoted" or `backticked` name, with its quote character.
    QuotedName(char, String),
    /// A number and whether it was written as an integer (`2`, not `2.0` or `2e0`).
    Number(f64, bool),
    /// A comparison operator as written (`=`, `==`, `!=`, `<>`, `<`, `<=`, `>`, `>=`).
    Op(String),
    LParen,
    RParen,
    Comma,
    Dot,
}

impl Tok {
    /// The text of a bare or quoted name.
    fn name(&self) -> Option<&String> {
        match self {
            Tok::Word(w) | Tok::QuotedName(_, w) => Some(w),
            _ => None,
        }
    }
}

pub(crate) fn tokenize(s: &str) -> ApiResult<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '\'' | '"' | '`' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(bad(s, "unterminated quoted string")),
                        Some(&q) if q == quote => {
                            // A doubled quote inside a string is a literal quote.
                            if chars.get(i + 1) == Some(&quote) {
                                text.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(if quote == '\'' { Tok::Quoted(text) } else { Tok::QuotedName(quote, text) });
            }
            '=' | '!' | '<' | '>' => {
                let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
                let op = if ["!=", ">=", "<=", "==", "<>"].contains(&two.as_str()) { two } else { c.to_string() };
                if op == "!" {
                    return Err(bad(s, "`!` must be followed by `=`"));
                }
                i += op.len();
                out.push(Tok::Op(op));
            }
            '.' if !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                out.push(Tok::Dot);
                i += 1;
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '-' || chars[i] == '+')
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text.parse::<f64>().map_err(|_| bad(s, &format!("`{text}` is not a number")))?;
                out.push(Tok::Number(n, text.parse::<i64>().is_ok()));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '/' | ':')) {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => return Err(bad(s, &format!("unexpected character `{other}`"))),
        }
    }
    Ok(out)
}

pub(crate) fn bad(filter: &str, why: &str) -> ApiError {
    ApiError::invalid(format!("Invalid filter '{filter}': {why}"))
}

pub(crate) fn is_word(t: Option<&Tok>, w: &str) -> bool {
    matches!(t, Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
}

/// Parse a run filter string; empty means no condition.
pub fn parse_filter(filter: &str) -> ApiResult<Vec<Comparison>> {
    parse_filter_with(filter, ATTRIBUTES, &["start_time", "end_time"])
}

/// Parse a filter over records whose attributes are `attributes` (of which `numeric` compare
/// as numbers).
pub fn parse_filter_with(filter: &str, attributes: &[&str], numeric: &[&str]) -> ApiResult<Vec<Comparison>> {
    let toks = tokenize(filter)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if !out.is_empty() {
            if !is_word(toks.get(i), "and") {
                return Err(bad(filter, "comparisons must be joined with AND (OR is not supported)"));
            }
            i += 1;
        }
        // Identifier: [prefix .] key, or a bare attribute name.
        let (kind, key) = match (toks.get(i).and_then(Tok::name), toks.get(i + 1), toks.get(i + 2).and_then(Tok::name))
        {
            (Some(prefix), Some(Tok::Dot), Some(key)) => {
                let kind = kind_of(prefix).ok_or_else(|| {
                    bad(filter, &format!("invalid entity type `{prefix}`; use metrics., params., tags. or attributes."))
                })?;
                i += 3;
                // Unquoted keys may contain dots (`metrics.val.acc`).
                let mut key = key.clone();
                while toks.get(i) == Some(&Tok::Dot) {
                    match toks.get(i + 1).and_then(Tok::name) {
                        Some(more) => {
                            key = format!("{key}.{more}");
                            i += 2;
                        }
                        _ => break,
                    }
                }
                (kind, key)
            }
            (Some(name), _, _) if attributes.contains(&name.as_str()) => {
                i += 1;
                (Kind::Attribute, name.clone())
            }
            _ => {
                return Err(bad(
                    filter,
                    "expected an identifier like metrics.acc, params.lr, tags.k or attributes.status",
                ))
            }
        };
        if kind == Kind::Attribute && !attributes.contains(&key.as_str()) {
            return Err(bad(filter, &format!("invalid attribute key `{key}`; valid: {}", attributes.join(", "))));
        }
        // Operator.
        let op = match toks.get(i) {
            Some(Tok::Op(op)) if op != "<>" => {
                i += 1;
                if op == "==" {
                    "=".into()
                } else {
                    op.clone()
                }
            }
            Some(Tok::Word(w)) if ["like", "ilike", "in"].contains(&w.to_ascii_lowercase().as_str()) => {
                i += 1;
                w.to_ascii_uppercase()
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("not") && is_word(toks.get(i + 1), "in") => {
                i += 2;
                "NOT IN".into()
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("is") => {
                let not = is_word(toks.get(i + 1), "not");
                let at = if not { i + 2 } else { i + 1 };
                if !is_word(toks.get(at), "null") {
                    return Err(bad(filter, "expected IS NULL or IS NOT NULL"));
                }
                i = at + 1;
                out.push(Comparison {
                    kind,
                    key,
                    op: if not { "IS NOT NULL".into() } else { "IS NULL".into() },
                    value: Value::Null,
                });
                continue;
            }
            _ => return Err(bad(filter, "expected a comparison operator (= != > >= < <= LIKE ILIKE IN)")),
        };
        // Value.
        let value = match toks.get(i) {
            Some(Tok::Number(n, _)) => {
                i += 1;
                Value::Number(*n)
            }
            Some(Tok::Quoted(s)) => {
                i += 1;
                Value::Text(s.clone())
            }
            Some(Tok::Word(s) | Tok::QuotedName(_, s)) if kind != Kind::Metric => {
                // A double-quoted string on the right-hand side.
                i += 1;
                Value::Text(s.clone())
            }
            Some(Tok::LParen) if op.ends_with("IN") => {
                i += 1;
                let mut items = Vec::new();
                loop {
                    match toks.get(i) {
                        Some(Tok::Quoted(s) | Tok::Word(s) | Tok::QuotedName(_, s)) => items.push(s.clone()),
                        Some(Tok::Number(n, _)) => items.push(n.to_string()),
                        _ => return Err(bad(filter, "IN needs a list of quoted values")),
                    }
                    i += 1;
                    match toks.get(i) {
                        Some(Tok::Comma) => i += 1,
                        Some(Tok::RParen) => {
                            i += 1;
                            break;
                        }
                        _ => return Err(bad(filter, "unclosed IN list")),
                    }
                }
                Value::List(items)
            }
            _ => return Err(bad(filter, "expected a value after the operator")),
        };
        let numeric_key = kind == Kind::Metric || (kind == Kind::Attribute && numeric.contains(&key.as_str()));
        match (&value, numeric_key) {
            (Value::Number(_), true) if !["LIKE", "ILIKE", "IN", "NOT IN"].contains(&op.as_str()) => {}
            (_, true) => {
                return Err(bad(filter, &format!("`{key}` is numeric: compare it with = != > >= < <= and a number")))
            }
            (Value::Number(_), false) => return Err(bad(filter, &format!("`{key}` is a string: quote the value"))),
            (_, false) if [">", ">=", "<", "<="].contains(&op.as_str()) => {
                return Err(bad(filter, &format!("`{key}` is a string: use = != LIKE ILIKE IN")))
            }
            _ => {}
        }
        out.push(Comparison { kind, key, op, value });
    }
    Ok(out)
}

/// The attribute of a run as the filter sees it.
fn attribute(run: &TrackedRun, key: &str, artifact_uri: &str) -> Option<Value> {
    let i = &run.info;
    Some(match key {
        "run_id" => Value::Text(i.id.clone()),
        "run_name" => Value::Text(i.name.clone()),
        "status" => Value::Text(status_to_mlflow(i.status).into()),
        "user_id" => Value::Text(i.user_id.clone()),
        "artifact_uri" => Value::Text(artifact_uri.into()),
        "lifecycle_stage" => Value::Text(i.lifecycle_stage.clone()),
        "experiment_id" => Value::Text(i.experiment_id.to_string()),
        "start_time" => Value::Number(i.start_time as f64),
        "end_time" => Value::Number(i.end_time? as f64),
        _ => return None,
    })
}

fn lookup(run: &TrackedRun, kind: Kind, key: &str) -> Option<Value> {
    match kind {
        Kind::Metric => run.metric(key).map(Value::Number),
        Kind::Param => run.param(key).map(|v| Value::Text(v.into())),
        Kind::Tag => run.tag(key).map(|v| Value::Text(v.into())),
        Kind::Attribute => attribute(run, key, &super::runs::artifact_uri(&run.info)),
    }
}

/// SQL LIKE: `%` any run, `_` one character.
pub fn like(text: &str, pattern: &str, case_insensitive: bool) -> bool {
    let (t, p): (Vec<char>, Vec<char>) = if case_insensitive {
        (text.to_lowercase().chars().collect(), pattern.to_lowercase().chars().collect())
    } else {
        (text.chars().collect(), pattern.chars().collect())
    };
    let (mut ti, mut pi, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

pub fn matches(run: &TrackedRun, filter: &[Comparison]) -> bool {
    matches_with(filter, |kind, key| lookup(run, kind, key))
}

/// Evaluate `filter` against any record, given how to look up a (kind, key).
pub fn matches_with(filter: &[Comparison], lookup: impl Fn(Kind, &str) -> Option<Value>) -> bool {
    filter.iter().all(|c| {
        let actual = lookup(c.kind, &c.key);
        match (c.op.as_str(), actual, &c.value) {
            ("IS NULL", a, _) => a.is_none(),
            ("IS NOT NULL", a, _) => a.is_some(),
            (_, None, _) => false,
            (op, Some(Value::Number(a)), Value::Number(b)) => match op {
                "=" => a == *b,
                "!=" => a != *b,
                ">" => a > *b,
                ">=" => a >= *b,
                "<" => a < *b,
                "<=" => a <= *b,
                _ => false,
            },
            (op, Some(Value::Text(a)), Value::Text(b)) => match op {
                "=" => a == *b,
                "!=" => a != *b,
                "LIKE" => like(&a, b, false),
                "ILIKE" => like(&a, b, true),
                _ => false,
            },
            ("IN", Some(Value::Text(a)), Value::List(items)) => items.contains(&a),
            ("NOT IN", Some(Value::Text(a)), Value::List(items)) => !items.contains(&a),
            _ => false,
        }
    })
}

/// One `order_by` clause.
#[derive(Debug, Clone)]
pub struct Order {
    kind: Kind,
    key: String,
    ascending: bool,
}

impl Order {
    /// Whether sorting by this clause needs the runs' metrics, params or tags.
    pub fn needs_data(&self) -> bool {
        self.kind != Kind::Attribute
    }
}

/// The part of a comparison the database can evaluate, if any.
pub fn pushdown(c: &Comparison) -> Option<kairo_store::tracking::Condition> {
    use kairo_store::tracking::{CondTable, CondValue, Condition};
    let numeric_ops = ["=", "!=", ">", ">=", "<", "<="];
    match (c.kind, &c.value) {
        (Kind::Metric, Value::Number(v)) if numeric_ops.contains(&c.op.as_str()) => Some(Condition {
            table: CondTable::Metrics,
            key: c.key.clone(),
            op: c.op.clone(),
            value: CondValue::Number(*v),
        }),
        (Kind::Param | Kind::Tag, Value::Text(v)) if c.op == "=" || c.op == "!=" => Some(Condition {
            table: if c.kind == Kind::Param { CondTable::Params } else { CondTable::Tags },
            key: c.key.clone(),
            op: c.op.clone(),
            value: CondValue::Text(v.clone()),
        }),
        _ => None,
    }
}

pub fn parse_order(clauses: &[String]) -> ApiResult<Vec<Order>> {
    clauses
        .iter()
        .map(|c| {
            let trimmed = c.trim();
            let (ident, dir) = match trimmed.rsplit_once(char::is_whitespace) {
                Some((i, d)) if d.eq_ignore_ascii_case("asc") || d.eq_ignore_ascii_case("desc") => {
                    (i.trim(), d.to_ascii_lowercase())
                }
                _ => (trimmed, "asc".to_string()),
            };
            let parsed = parse_filter(&format!("{ident} IS NULL"))
                .map_err(|_| ApiError::invalid(format!("Invalid order_by clause '{c}'")))?;
            let first =
                parsed.into_iter().next().ok_or_else(|| ApiError::invalid(format!("Invalid order_by clause '{c}'")))?;
            Ok(Order { kind: first.kind, key: first.key, ascending: dir == "asc" })
        })
        .collect()
}

fn compare_values(a: &Option<Value>, b: &Option<Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Some(Value::Text(x)), Some(Value::Text(y))) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Sort as MLflow does: the clauses in order (runs missing a key last), then start time
/// (newest first), then run id.
pub fn sort(runs: &mut [TrackedRun], order: &[Order]) {
    runs.sort_by(|a, b| {
        for o in order {
            let (va, vb) = (lookup(a, o.kind, &o.key), lookup(b, o.kind, &o.key));
            let ord = match (va.is_some(), vb.is_some()) {
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                _ => {
                    let c = compare_values(&va, &vb);
                    if o.ascending {
                        c
                    } else {
                        c.reverse()
                    }
                }
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        b.info.start_time.cmp(&a.info.start_time).then_with(|| a.info.id.cmp(&b.info.id))
    });
}

/// MLflow's page token: base64 of `{"offset": N}`.
pub fn page_token(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(serde_json::json!({"offset": offset}).to_string())
}

pub fn parse_page_token(token: Option<&str>) -> ApiResult<usize> {
    let Some(t) = token.filter(|t| !t.is_empty()) else { return Ok(0) };
    let invalid = || ApiError::invalid(format!("Invalid page token, could not base64-decode: '{t}'"));
    let bytes = base64::engine::general_purpose::STANDARD.decode(t).map_err(|_| invalid())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    v.get("offset").and_then(|o| o.as_u64()).map(|o| o as usize).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairo_core::run::RunStatus;
    use kairo_core::tracking::{MetricPoint, TrackedRunInfo};

    fn run(id: &str, acc: f64, lr: &str, start: i64) -> TrackedRun {
        TrackedRun {
            info: TrackedRunInfo {
                id: id.into(),
                experiment_id: 1,
                name: format!("name-{id}"),
                user_id: "u".into(),
                status: RunStatus::Succeeded,
                start_time: start,
                end_time: Some(start + 5),
                lifecycle_stage: "active".into(),
            },
            metrics: vec![MetricPoint {
                key: "acc".into(),
                value: acc,
                timestamp: 0,
                step: 0,
                model_id: None,
                dataset_name: None,
                dataset_digest: None,
            }],
            params: vec![("lr".into(), lr.into())],
            tags: vec![("team".into(), "ML-core".into())],
        }
    }

    #[test]
    fn parses_and_evaluates_the_grammar() {
        let r = run("a1", 0.93, "0.1", 10);
        let ok = |f: &str| matches(&r, &parse_filter(f).unwrap());
        assert!(ok("metrics.acc > 0.9 and params.lr = '0.1'"));
        assert!(ok("metrics.acc >= 0.93 AND tags.team LIKE 'ML%' AND attributes.status = 'FINISHED'"));
        assert!(ok("tags.team ILIKE 'ml-%'"));
        assert!(!ok("tags.team LIKE 'ml-%'"));
        assert!(ok("metrics.\"acc\" != 1"));
        assert!(ok("run_id IN ('a1', 'b2')") && !ok("attributes.run_id NOT IN ('a1')"));
        assert!(ok("params.missing IS NULL") && !ok("metrics.nope > 0"));
        assert!(ok("attributes.start_time >= 10 and status = \"FINISHED\""));
        assert!(ok(""));
        for badf in [
            "metrics.acc > 'x'",
            "params.lr > '1'",
            "metrics.acc > 1 or params.lr = '1'",
            "foo.x = 1",
            "metrics.acc >",
            "attributes.nope = 'x'",
        ] {
            let e = parse_filter(badf).unwrap_err();
            assert_eq!(e.code, crate::error::Code::InvalidParameterValue, "{badf}");
        }
    }

    #[test]
    fn orders_with_missing_last_and_paginates() {
        let mut runs = vec![run("a", 0.5, "1", 1), run("b", 0.9, "2", 2), run("c", 0.7, "3", 3)];
        runs[0].metrics.clear();
        sort(&mut runs, &parse_order(&["metrics.acc DESC".into()]).unwrap());
        assert_eq!(runs.iter().map(|r| r.info.id.as_str()).collect::<Vec<_>>(), ["b", "c", "a"]);
        sort(&mut runs, &[]);
        assert_eq!(runs[0].info.id, "c", "newest first by default");
        assert_eq!(parse_page_token(Some(&page_token(40))).unwrap(), 40);
        assert!(parse_page_token(Some("%%%")).is_err());
        assert!(like("abc", "a_c", false) && like("abc", "%c", false) && !like("abc", "b%", false));
    }
}
