//! The model registry's filter grammar, read as MLflow's tracking server reads it
//! (`SearchModelUtils`, `SearchModelVersionUtils` and its SQL store's checks), so that a filter
//! means the same here as there and a filter MLflow refuses is refused here with the same code.
//!
//! It differs from the run grammar (`search.rs`): only `name` (registered models) or `name`,
//! `version_number`, `run_id`, `source_path` (versions) and `tag.`/`tags.` keys; values must be
//! quoted; comparisons are joined by AND, which MLflow's parser also lets one leave out.
//!
//! Prompts are registered models tagged `mlflow.prompt.is_prompt = 'true'`. MLflow 3 clients add
//! `tag.`mlflow.prompt.is_prompt` != 'true'` to every registered-model search, and a model
//! without that tag must still match: unless a filter asks for prompts (its first clause on the
//! tag is `= 'true'` or `!= 'false'`), clauses on the tag are dropped and prompts are left out,
//! as MLflow's server does. For versions, a prompt is any version of a name one of whose
//! versions carries the tag.

use super::search::{bad, is_word, tokenize, Comparison, Kind, Tok, Value};
use crate::error::{ApiError, ApiResult};

/// The tag that marks a registered model (or its versions) as a prompt.
pub const IS_PROMPT: &str = "mlflow.prompt.is_prompt";

/// Which records a filter searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    Models,
    Versions,
}

impl Records {
    fn attributes(self) -> &'static [&'static str] {
        match self {
            Records::Models => &["name"],
            Records::Versions => &["name", "version_number", "run_id", "source_path"],
        }
    }

    /// Attributes that may be compared with a list (`IN`, `NOT IN`).
    fn list_attributes(self) -> &'static [&'static str] {
        match self {
            Records::Models => &["name"],
            Records::Versions => &["name", "run_id"],
        }
    }

    fn numeric(self, key: &str) -> bool {
        self == Records::Versions && key == "version_number"
    }
}

/// A parsed registry filter.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryFilter {
    clauses: Vec<Comparison>,
    exclude_prompts: bool,
}

impl RegistryFilter {
    /// Whether a record matches; `is_prompt` says whether it is a prompt (see the module docs),
    /// `lookup` gives an attribute or tag value.
    pub fn matches(&self, is_prompt: bool, lookup: impl Fn(Kind, &str) -> Option<Value>) -> bool {
        !(self.exclude_prompts && is_prompt) && super::search::matches_with(&self.clauses, lookup)
    }
}

const STRING_OPS: &[&str] = &["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"];
const TAG_OPS: &[&str] = &["=", "!=", "LIKE", "ILIKE"];
const NUMERIC_OPS: &[&str] = &["=", "!=", ">", ">=", "<", "<="];

/// Parse `filter` (empty means everything that is not a prompt).
pub fn parse(filter: &str, records: Records) -> ApiResult<RegistryFilter> {
    let toks = tokenize(filter)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    loop {
        while is_word(toks.get(i), "and") {
            i += 1;
        }
        if i >= toks.len() {
            break;
        }
        if is_word(toks.get(i), "or") {
            return Err(bad(filter, "OR is not supported: comparisons are joined by AND"));
        }
        let (clause, next) = comparison(filter, &toks, i, records)?;
        clauses.push(clause);
        i = next;
    }
    let asks_for_prompts = clauses.iter().find(|c| c.kind == Kind::Tag && c.key == IS_PROMPT).is_some_and(|c| {
        let value = match &c.value {
            Value::Text(v) => v.to_lowercase(),
            _ => String::new(),
        };
        (c.op == "=" && value == "true") || (c.op == "!=" && value == "false")
    });
    if !asks_for_prompts {
        clauses.retain(|c| !(c.kind == Kind::Tag && c.key == IS_PROMPT));
    }
    Ok(RegistryFilter { clauses, exclude_prompts: !asks_for_prompts })
}

fn invalid(message: String) -> ApiError {
    ApiError::invalid(message)
}

/// One `identifier operator value` starting at `toks[i]`; returns it and the next index.
fn comparison(filter: &str, toks: &[Tok], mut i: usize, records: Records) -> ApiResult<(Comparison, usize)> {
    let clause_error = || bad(filter, "expected comparisons like name = 'my-model' or tag.key = 'value' joined by AND");
    // Identifier: `entity.key` or a bare attribute. MLflow checks an attribute key as written,
    // quotes included, and strips quotes from tag keys.
    let (kind, key) = match (toks.get(i), toks.get(i + 1)) {
        (Some(Tok::Word(entity)), Some(Tok::Dot)) => {
            let kind = match entity.as_str() {
                "attribute" => Kind::Attribute,
                "tag" | "tags" => Kind::Tag,
                _ => {
                    return Err(invalid(format!(
                        "Invalid entity type '{entity}'. Valid entity types are ('attribute', 'tag', 'tags')"
                    )))
                }
            };
            i += 2;
            let mut key = match (toks.get(i), kind) {
                (Some(Tok::Word(k)), _) => k.clone(),
                (Some(Tok::QuotedName(_, k) | Tok::Quoted(k)), Kind::Tag) => k.clone(),
                (Some(Tok::QuotedName(q, k)), _) => format!("{q}{k}{q}"),
                (Some(Tok::Quoted(k)), _) => format!("'{k}'"),
                _ => return Err(clause_error()),
            };
            i += 1;
            // Unquoted keys may contain dots (`tag.mlflow.prompt.is_prompt`).
            while matches!(toks.get(i - 1), Some(Tok::Word(_))) && toks.get(i) == Some(&Tok::Dot) {
                match toks.get(i + 1) {
                    Some(Tok::Word(more)) => {
                        key = format!("{key}.{more}");
                        i += 2;
                    }
                    _ => return Err(clause_error()),
                }
            }
            (kind, key)
        }
        (Some(Tok::Word(k)), _) => {
            i += 1;
            (Kind::Attribute, k.clone())
        }
        (Some(Tok::QuotedName(q, k)), _) => {
            i += 1;
            (Kind::Attribute, format!("{q}{k}{q}"))
        }
        _ => return Err(clause_error()),
    };
    if kind == Kind::Attribute && !records.attributes().contains(&key.as_str()) {
        return Err(invalid(format!(
            "Invalid attribute key '{key}' specified. Valid keys are: {}",
            records.attributes().join(", ")
        )));
    }
    let what = if kind == Kind::Tag { "tag".to_string() } else { "attribute".to_string() };
    // Operator, as written (upper-cased).
    let op = match toks.get(i) {
        Some(Tok::Op(op)) => {
            i += 1;
            op.clone()
        }
        Some(Tok::Word(w)) if ["like", "ilike", "in"].contains(&w.to_ascii_lowercase().as_str()) => {
            i += 1;
            w.to_ascii_uppercase()
        }
        Some(Tok::Word(w))
            if w.eq_ignore_ascii_case("not") && ["in", "like", "ilike"].iter().any(|o| is_word(toks.get(i + 1), o)) =>
        {
            let negated = match &toks[i + 1] {
                Tok::Word(w) => w.to_ascii_uppercase(),
                _ => String::new(),
            };
            i += 2;
            format!("NOT {negated}")
        }
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("is") => {
            // MLflow's registry search has no IS NULL (its server fails with a 500 on one).
            let not = is_word(toks.get(i + 1), "not");
            let op = if not { "IS NOT NULL" } else { "IS NULL" };
            return Err(invalid(format!("Invalid comparator for {what}: {op}")));
        }
        _ => return Err(clause_error()),
    };
    // Value: a quoted string, a number, or a parenthesised list.
    let unquoted = |raw: &str| {
        invalid(format!(
            "Parameter value is either not quoted or unidentified quote types used for string value {raw}. \
             Use either single or double quotes."
        ))
    };
    let (value, raw) = match toks.get(i) {
        Some(Tok::Quoted(s)) => (Value::Text(s.clone()), format!("'{s}'")),
        Some(Tok::QuotedName('"', s)) => (Value::Text(s.clone()), format!("\"{s}\"")),
        Some(Tok::QuotedName(q, s)) => return Err(unquoted(&format!("{q}{s}{q}"))),
        Some(Tok::Word(w)) => return Err(unquoted(w)),
        Some(Tok::Number(n, integer)) => {
            let raw = if *integer { format!("{}", *n as i64) } else { n.to_string() };
            match kind {
                Kind::Tag => {
                    return Err(invalid(format!(
                        "Expected a quoted string value for tag (e.g. 'my-value'). Got value {raw}"
                    )))
                }
                _ if records == Records::Models => {
                    return Err(invalid(format!(
                    "Expected a quoted string value or a list of quoted string values for attributes. Got value {raw}"
                )))
                }
                _ if !records.numeric(&key) => {
                    return Err(invalid(
                        "Only the 'version_number' attribute supports comparison with numeric values.".into(),
                    ))
                }
                _ if !*integer => return Err(invalid(format!("Invalid value for numeric attribute '{key}': {raw}"))),
                _ => (Value::Number(*n), raw),
            }
        }
        Some(Tok::LParen) => {
            if kind == Kind::Tag {
                return Err(invalid("Expected a quoted string value for tag (e.g. 'my-value'). Got a list".into()));
            }
            if !records.list_attributes().contains(&key.as_str()) {
                return Err(invalid(format!(
                    "Only the {} attributes support comparison with a list of quoted string values.",
                    records.list_attributes().join(" and ")
                )));
            }
            let (items, end) = list(filter, toks, i)?;
            i = end - 1;
            (Value::List(items), String::new())
        }
        _ => return Err(clause_error()),
    };
    i += 1;
    // The checks MLflow's store makes once the clause is parsed.
    let value = match kind {
        Kind::Tag if !TAG_OPS.contains(&op.as_str()) => {
            return Err(invalid(format!("Invalid comparator for tag: {op}")));
        }
        _ if records.numeric(&key) => {
            if !NUMERIC_OPS.contains(&op.as_str()) {
                return Err(invalid(format!("Invalid comparator for attribute {key}: {op}")));
            }
            match value {
                Value::Text(s) => Value::Number(
                    s.trim()
                        .parse::<i64>()
                        .map_err(|_| invalid(format!("Invalid value for numeric attribute '{key}': '{s}'")))?
                        as f64,
                ),
                v => v,
            }
        }
        Kind::Attribute
            if !STRING_OPS.contains(&op.as_str())
                || (op.ends_with("IN") && !records.list_attributes().contains(&key.as_str())) =>
        {
            return Err(invalid(format!("Invalid comparator for attribute: {op}")));
        }
        _ => value,
    };
    match (&value, op.ends_with("IN")) {
        (Value::List(_), false) => {
            return Err(invalid(format!("Invalid filter: {op} cannot compare '{key}' with a list; use IN or NOT IN")))
        }
        (Value::Text(_) | Value::Number(_), true) => {
            return Err(invalid(format!("Invalid filter: {op} needs a list of quoted values, got {raw}")))
        }
        _ => {}
    }
    Ok((Comparison { kind, key, op, value }, i))
}

/// A parenthesised list of quoted strings starting at `toks[i]` (the `(`); a trailing comma is
/// allowed, as MLflow's parser allows it. Returns the items and the index after `)`.
fn list(filter: &str, toks: &[Tok], mut i: usize) -> ApiResult<(Vec<String>, usize)> {
    let mut items = Vec::new();
    i += 1;
    loop {
        match toks.get(i) {
            Some(Tok::RParen) => break,
            Some(Tok::Quoted(s) | Tok::QuotedName('"', s)) => items.push(s.clone()),
            _ => {
                return Err(bad(filter, "a list must hold quoted strings, as in name IN ('a', 'b')"));
            }
        }
        i += 1;
        match toks.get(i) {
            Some(Tok::Comma) => i += 1,
            Some(Tok::RParen) => break,
            _ => return Err(bad(filter, "unclosed list")),
        }
    }
    if items.is_empty() {
        return Err(invalid(
            "While parsing a list in the query, expected a non-empty list of string values, but got empty list".into(),
        ));
    }
    Ok((items, i + 1))
}

/// What a registry search can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKey {
    Name,
    Version,
    Created,
    Updated,
}

/// A record's values for ordering.
pub trait Orderable {
    fn name(&self) -> &str;
    fn version(&self) -> i64;
    fn created_ms(&self) -> i64;
    fn updated_ms(&self) -> i64;
}

impl Orderable for kairo_core::tracking::RegisteredModel {
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> i64 {
        0
    }
    fn created_ms(&self) -> i64 {
        self.creation_ms
    }
    fn updated_ms(&self) -> i64 {
        self.last_updated_ms
    }
}

impl Orderable for kairo_core::tracking::ModelVersion {
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn created_ms(&self) -> i64 {
        self.creation_ms
    }
    fn updated_ms(&self) -> i64 {
        self.last_updated_ms
    }
}

/// Parse `order_by` clauses (`KEY [ASC|DESC]`) as MLflow's store does, with its tie-breakers:
/// registered models by `name`, `timestamp` or `last_updated_timestamp` (both mean the last
/// update, as in MLflow), then name; versions by `name`, `version_number`, `creation_timestamp`
/// or `last_updated_timestamp` (default: last update, newest first), then name, then version
/// (newest first).
pub fn parse_order(clauses: &[String], records: Records) -> ApiResult<Vec<(OrderKey, bool)>> {
    let defaults = ["last_updated_timestamp DESC".to_string()];
    let clauses = if clauses.is_empty() && records == Records::Versions { &defaults[..] } else { clauses };
    let mut out: Vec<(OrderKey, bool)> = Vec::new();
    for clause in clauses {
        let unparsable = || invalid(format!("Invalid order_by clause '{clause}'. Could not be parsed."));
        let words: Vec<&str> = clause.split_whitespace().collect();
        let (key, ascending) = match words[..] {
            [key] => (key, true),
            [key, direction] if direction.eq_ignore_ascii_case("asc") || direction.eq_ignore_ascii_case("desc") => {
                (key, direction.eq_ignore_ascii_case("asc"))
            }
            [_, _] => return Err(invalid(format!("Invalid ordering key in order_by clause '{clause}'."))),
            _ => return Err(unparsable()),
        };
        let key = key.trim_matches('`');
        let order_key = match (records, key) {
            (Records::Models, "name") => OrderKey::Name,
            (Records::Models, "timestamp" | "last_updated_timestamp") => OrderKey::Updated,
            (Records::Models, _) => {
                return Err(invalid(format!(
                    "Invalid order by key '{key}' specified. Valid keys are: name, timestamp, last_updated_timestamp"
                )))
            }
            (Records::Versions, key) => match key.strip_prefix("attribute.").unwrap_or(key) {
                "name" => OrderKey::Name,
                "version_number" => OrderKey::Version,
                "creation_timestamp" => OrderKey::Created,
                "last_updated_timestamp" => OrderKey::Updated,
                _ => {
                    return Err(invalid(format!(
                        "Invalid order by key '{key}' specified. Valid keys are: name, version_number, \
                         creation_timestamp, last_updated_timestamp"
                    )))
                }
            },
        };
        if out.iter().any(|(k, _)| *k == order_key) {
            return Err(invalid(format!("`order_by` contains duplicate fields: {}", clauses.join(", "))));
        }
        out.push((order_key, ascending));
    }
    if !out.iter().any(|(k, _)| *k == OrderKey::Name) {
        out.push((OrderKey::Name, true));
    }
    if records == Records::Versions && !out.iter().any(|(k, _)| *k == OrderKey::Version) {
        out.push((OrderKey::Version, false));
    }
    Ok(out)
}

/// Sort records by parsed `order_by` clauses.
pub fn sort<T: Orderable>(records: &mut [T], order: &[(OrderKey, bool)]) {
    records.sort_by(|a, b| {
        order
            .iter()
            .map(|&(key, ascending)| {
                let ord = match key {
                    OrderKey::Name => a.name().cmp(b.name()),
                    OrderKey::Version => a.version().cmp(&b.version()),
                    OrderKey::Created => a.created_ms().cmp(&b.created_ms()),
                    OrderKey::Updated => a.updated_ms().cmp(&b.updated_ms()),
                };
                if ascending {
                    ord
                } else {
                    ord.reverse()
                }
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registered model as the filter sees it: name, tags.
    fn model_matches(filter: &RegistryFilter, name: &str, tags: &[(&str, &str)]) -> bool {
        let is_prompt = tags.contains(&(IS_PROMPT, "true"));
        filter.matches(is_prompt, |kind, key| match kind {
            Kind::Attribute if key == "name" => Some(Value::Text(name.into())),
            Kind::Tag => tags.iter().find(|(k, _)| *k == key).map(|(_, v)| Value::Text((*v).into())),
            _ => None,
        })
    }

    /// The registered models of the differential run against `mlflow server` 3.17.2.
    const MODELS: &[(&str, &[(&str, &str)])] = &[
        ("x", &[("team", "ml")]),
        ("alpha", &[("team", "ML-core"), ("env", "prod")]),
        ("Beta", &[]),
        ("prompt1", &[(IS_PROMPT, "true")]),
        ("notprompt", &[(IS_PROMPT, "false"), ("team", "ml")]),
        ("x_y", &[]),
    ];

    fn search(filter: &str) -> Result<Vec<&'static str>, String> {
        let f = parse(filter, Records::Models).map_err(|e| e.message)?;
        let mut names: Vec<&str> =
            MODELS.iter().filter(|(n, tags)| model_matches(&f, n, tags)).map(|(n, _)| *n).collect();
        names.sort();
        Ok(names)
    }

    #[test]
    fn registered_model_filters_answer_as_mlflow_server_does() {
        // Each expected answer is what `mlflow server` (3.17.2, SQLite) answered for the same
        // models and filter.
        let all = vec!["Beta", "alpha", "notprompt", "x", "x_y"];
        for (filter, expected) in [
            ("", all.clone()),
            ("name='x'", vec!["x"]),
            ("name='x' AND tag.`mlflow.prompt.is_prompt` != 'true'", vec!["x"]),
            ("tag.`mlflow.prompt.is_prompt` != 'true'", all.clone()),
            ("tag.`mlflow.prompt.is_prompt` = 'false'", all.clone()),
            ("tag.`mlflow.prompt.is_prompt` LIKE 'tr%'", all.clone()),
            ("tag.`mlflow.prompt.is_prompt` = 'true'", vec!["prompt1"]),
            ("tags.\"mlflow.prompt.is_prompt\" != 'false'", vec!["prompt1"]),
            ("tag.mlflow.prompt.is_prompt = 'true'", vec!["prompt1"]),
            ("tag.`mlflow.prompt.is_prompt` = 'TRUE'", vec![]),
            ("tag.`mlflow.prompt.is_prompt` = 'false' AND tag.`mlflow.prompt.is_prompt` = 'true'", all.clone()),
            ("tag.`mlflow.prompt.is_prompt` = 'true' AND tag.`mlflow.prompt.is_prompt` = 'false'", vec![]),
            ("name = 'prompt1'", vec![]),
            ("name LIKE 'x%'", vec!["x", "x_y"]),
            ("name LIKE 'X%'", vec![]),
            ("name ilike 'X%'", vec!["x", "x_y"]),
            ("name != \"x\"", vec!["Beta", "alpha", "notprompt", "x_y"]),
            ("name IN ('x', \"alpha\")", vec!["alpha", "x"]),
            ("name IN ('x',)", vec!["x"]),
            ("name not in ('x')", vec!["Beta", "alpha", "notprompt", "x_y"]),
            ("tag.team = 'ml'", vec!["notprompt", "x"]),
            ("tag.team != 'ml'", vec!["alpha"]),
            ("tags.team ILIKE 'ml%' and attribute.name LIKE '%'", vec!["alpha", "notprompt", "x"]),
            ("tag.'team' = 'ml'", vec!["notprompt", "x"]),
            ("AND name = 'x' AND AND tag.team = 'ml'", vec!["x"]),
            ("name = 'x' tag.team = 'ml'", vec!["x"]),
            ("name = 'x' and", vec!["x"]),
        ] {
            assert_eq!(search(filter), Ok(expected), "{filter}");
        }
    }

    #[test]
    fn registered_model_filters_mlflow_refuses_are_refused() {
        for (filter, message) in [
            ("attributes.name = 'x'", "Invalid entity type 'attributes'"),
            ("TAG.team = 'ml'", "Invalid entity type 'TAG'"),
            ("metrics.acc > 1", "Invalid entity type 'metrics'"),
            ("params.a = '1'", "Invalid entity type 'params'"),
            ("run_id = 'x'", "Invalid attribute key 'run_id'"),
            ("`name` = 'x'", "Invalid attribute key '`name`'"),
            ("attribute.`name` = 'x'", "Invalid attribute key '`name`'"),
            ("creation_timestamp > 1", "Invalid attribute key 'creation_timestamp'"),
            ("name > 'a'", "Invalid comparator for attribute: >"),
            ("name == 'x'", "Invalid comparator for attribute: =="),
            ("name <> 'x'", "Invalid comparator for attribute: <>"),
            ("name NOT LIKE 'x%'", "Invalid comparator for attribute: NOT LIKE"),
            ("tags.team>'a'", "Invalid comparator for tag: >"),
            ("name IS NULL", "Invalid comparator for attribute: IS NULL"),
            ("tag.team IS NOT NULL", "Invalid comparator for tag: IS NOT NULL"),
            ("name = 1", "Expected a quoted string value or a list of quoted string values for attributes"),
            ("tag.team = 1", "Expected a quoted string value for tag"),
            ("tag.team IN ('ml')", "Expected a quoted string value for tag"),
            ("name = x", "Parameter value is either not quoted"),
            ("tag.team = `ml`", "Parameter value is either not quoted"),
            ("name IN ()", "expected a non-empty list"),
            ("name IN (x)", "a list must hold quoted strings"),
            ("name = 'x' OR name = 'alpha'", "OR is not supported"),
            ("name", "joined by AND"),
            ("name = ", "joined by AND"),
            ("(name = 'x')", "joined by AND"),
            ("name = 'x';name='y'", "unexpected character"),
        ] {
            let e = parse(filter, Records::Models).expect_err(filter);
            assert_eq!(e.code, crate::error::Code::InvalidParameterValue, "{filter}");
            assert!(e.message.contains(message), "{filter}: {}", e.message);
        }
    }

    #[test]
    fn orders_as_mlflow_store_orders() {
        let keys = |c: &[&str], r| parse_order(&c.iter().map(|s| s.to_string()).collect::<Vec<_>>(), r);
        assert_eq!(keys(&[], Records::Models).unwrap(), [(OrderKey::Name, true)]);
        assert_eq!(
            keys(&[], Records::Versions).unwrap(),
            [(OrderKey::Updated, false), (OrderKey::Name, true), (OrderKey::Version, false)]
        );
        assert_eq!(keys(&["timestamp"], Records::Models).unwrap(), [(OrderKey::Updated, true), (OrderKey::Name, true)]);
        assert_eq!(keys(&["name DESC"], Records::Models).unwrap(), [(OrderKey::Name, false)]);
        assert_eq!(
            keys(&["version_number asc"], Records::Versions).unwrap(),
            [(OrderKey::Version, true), (OrderKey::Name, true)]
        );
        for (bad, r) in [
            (&["creation_timestamp"][..], Records::Models),
            (&["foo"], Records::Models),
            (&["name sideways"], Records::Models),
            (&["name ASC extra"], Records::Models),
            (&["name", "name DESC"], Records::Models),
            (&["timestamp", "last_updated_timestamp"], Records::Models),
            (&["run_id"], Records::Versions),
        ] {
            let e = keys(bad, r).expect_err(bad[0]);
            assert_eq!(e.code, crate::error::Code::InvalidParameterValue, "{bad:?}");
        }
    }

    #[test]
    fn model_version_filters_follow_mlflow() {
        let version = |f: &RegistryFilter, name: &str, number: i64, run: Option<&str>, prompt: bool| {
            f.matches(prompt, |kind, key| match (kind, key) {
                (Kind::Attribute, "name") => Some(Value::Text(name.into())),
                (Kind::Attribute, "version_number") => Some(Value::Number(number as f64)),
                (Kind::Attribute, "run_id") => run.map(|r| Value::Text(r.into())),
                (Kind::Attribute, "source_path") => Some(Value::Text("runs:/r1/model".into())),
                (Kind::Tag, IS_PROMPT) if prompt => Some(Value::Text("true".into())),
                _ => None,
            })
        };
        let ok = |filter: &str, name: &str, number: i64, run: Option<&str>, prompt: bool| {
            version(&parse(filter, Records::Versions).expect(filter), name, number, run, prompt)
        };
        assert!(ok("name = 'x' AND version_number >= 2", "x", 2, None, false));
        assert!(ok("version_number = '2'", "x", 2, None, false), "a quoted integer compares as a number");
        assert!(ok("run_id IN ('r1', 'r2') and source_path LIKE 'runs:/%'", "x", 1, Some("r1"), false));
        assert!(!ok("run_id != 'r2'", "x", 1, None, false), "a version without a run matches no run_id clause");
        assert!(!ok("name = 'p'", "p", 1, None, true), "prompt versions are left out");
        assert!(ok("tag.`mlflow.prompt.is_prompt` = 'true'", "p", 1, None, true), "unless asked for");
        for (filter, message) in [
            ("version_number = 1.5", "Invalid value for numeric attribute 'version_number': 1.5"),
            ("version_number = 1e0", "Invalid value for numeric attribute 'version_number'"),
            ("version_number = 'abc'", "Invalid value for numeric attribute 'version_number': 'abc'"),
            ("version_number LIKE '1'", "Invalid comparator for attribute version_number: LIKE"),
            ("version_number IN (1)", "Only the name and run_id attributes support comparison with a list"),
            ("version_number IN ('1')", "Only the name and run_id attributes support comparison with a list"),
            ("source_path IN ('a')", "Only the name and run_id attributes support comparison with a list"),
            ("name = 1", "Only the 'version_number' attribute supports comparison with numeric values"),
            ("model_id = 'x'", "Invalid attribute key 'model_id'"),
            ("metrics.a > 1", "Invalid entity type 'metrics'"),
            ("tags.stage IN ('a')", "Expected a quoted string value for tag"),
            ("tag.stage > 'a'", "Invalid comparator for tag: >"),
            ("name NOT LIKE 'x'", "Invalid comparator for attribute: NOT LIKE"),
        ] {
            let e = parse(filter, Records::Versions).expect_err(filter);
            assert!(e.message.contains(message), "{filter}: {}", e.message);
        }
    }
}
