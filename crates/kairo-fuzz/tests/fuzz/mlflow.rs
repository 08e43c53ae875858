//! MLflow request bodies (`kairo_server::params::Params`, every typed getter), the search
//! filter grammar (`parse_filter`, evaluated with `matches_with`), `order_by` clauses and page
//! tokens. A client mistake must be `INVALID_PARAMETER_VALUE` (400), never a 5xx.

use kairo_fuzz::corpus::{self, Input};
use kairo_fuzz::{cases, memory, values};
use kairo_server::error::{ApiError, Code};
use kairo_server::mlflow::search::{self, Kind};
use kairo_server::params::Params;
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Parameter names the MLflow handlers read.
const KEYS: &[&str] = &[
    "run_id",
    "run_uuid",
    "experiment_id",
    "experiment_ids",
    "name",
    "key",
    "value",
    "timestamp",
    "step",
    "start_time",
    "end_time",
    "status",
    "run_name",
    "tags",
    "params",
    "metrics",
    "filter",
    "max_results",
    "order_by",
    "page_token",
    "run_view_type",
    "version",
    "alias",
    "description",
    "stages",
];

fn is_client_error(e: &ApiError) -> Result<(), TestCaseError> {
    prop_assert!(e.code.status().is_client_error(), "{:?} ({}): {}", e.code, e.code.status(), e.message);
    prop_assert!(e.code != Code::Internal);
    Ok(())
}

/// A query string: `k=v` pairs with percent escapes, repeats and stray separators.
fn query() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.5,
        prop::collection::vec(
            (
                prop::sample::select(KEYS),
                prop_oneof![values::string(), "[a-z0-9%=&+.-]{0,8}", Just("%".to_string()), Just("%zz".to_string())],
            ),
            0..5,
        )
        .prop_map(|kv| kv.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")),
    )
}

fn body() -> impl Strategy<Value = Input> {
    prop_oneof![
        8 => prop::collection::vec((values::key(KEYS), values::value(KEYS)), 0..8)
            .prop_map(|kv| Input(serde_json::to_vec(&Value::Object(kv.into_iter().collect::<Map<_, _>>())).unwrap_or_default())),
        1 => values::value(KEYS).prop_map(|v| Input(serde_json::to_vec(&v).unwrap_or_default())),
        1 => prop::collection::vec(any::<u8>(), 0..32).prop_map(Input),
    ]
}

/// Every getter the handlers use, on every key, and on the objects nested under each.
fn read_everything(p: &Params, depth: u32) -> Result<(), TestCaseError> {
    for key in KEYS {
        let _ = p.has(key);
        let results = [
            p.opt_string(key).map(drop),
            p.string(key).map(drop),
            p.opt_i64(key).map(drop),
            p.i64(key).map(drop),
            p.f64(key).map(drop),
            p.opt_bool(key).map(drop),
            p.strings(key).map(drop),
            p.pairs(key).map(drop),
        ];
        for r in results {
            if let Err(e) = r {
                is_client_error(&e)?;
            }
        }
        if let Err(e) = p.string_of(&[key, "run_uuid"]) {
            is_client_error(&e)?;
        }
        if depth > 0 {
            match p.objects(key) {
                Ok(nested) => {
                    for n in &nested {
                        read_everything(n, depth - 1)?;
                    }
                }
                Err(e) => is_client_error(&e)?,
            }
            match p.object(key) {
                Ok(n) => read_everything(&n, depth - 1)?,
                Err(e) => is_client_error(&e)?,
            }
        }
    }
    // What the search handlers do with these parameters.
    if let Ok(Some(filter)) = p.opt_string("filter") {
        check_filter(&filter)?;
    }
    if let Ok(order) = p.strings("order_by") {
        if let Err(e) = search::parse_order(&order) {
            is_client_error(&e)?;
        }
    }
    if let Ok(token) = p.opt_string("page_token") {
        if let Err(e) = search::parse_page_token(token.as_deref()) {
            is_client_error(&e)?;
        }
    }
    Ok(())
}

fn check_body(body: &[u8], query: Option<&str>) -> Result<(), TestCaseError> {
    memory::case("mlflow-body", body);
    match Params::from_body(body, query) {
        Ok(p) => read_everything(&p, 2),
        Err(e) => is_client_error(&e),
    }
}

/// A filter is parsed; if accepted, it is evaluated against records with assorted values
/// (the LIKE matcher included) and turned into database conditions.
fn check_filter(filter: &str) -> Result<(), TestCaseError> {
    memory::case("mlflow-filter", filter.as_bytes());
    match search::parse_filter(filter) {
        Ok(comparisons) => {
            for c in &comparisons {
                let _ = search::pushdown(c);
            }
            let samples = [
                search::Value::Number(0.5),
                search::Value::Number(f64::NAN),
                search::Value::Text("Run_1 %x% it's".into()),
                search::Value::Text(String::new()),
            ];
            for sample in &samples {
                let _ = search::matches_with(&comparisons, |kind, key| match (kind, key.len() % 3) {
                    (_, 0) => None,
                    (Kind::Metric, _) => Some(search::Value::Number(key.len() as f64)),
                    _ => Some(sample.clone()),
                });
            }
            // The values of the filter, as text, through LIKE both ways.
            for c in &comparisons {
                if let search::Value::Text(t) = &c.value {
                    let _ = search::like(t, t, false);
                    let _ = search::like("Run_1 %x%", t, true);
                }
            }
        }
        Err(e) => is_client_error(&e)?,
    }
    let clauses: Vec<String> = filter.split(',').map(str::to_string).collect();
    if let Err(e) = search::parse_order(&clauses) {
        is_client_error(&e)?;
    }
    Ok(())
}

/// Filters assembled from the grammar's tokens, in orders that make sense and orders that do not.
fn filter() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        4 => prop::sample::select(vec![
            "metrics.acc", "params.lr", "tags.\"a b\"", "tags.`mlflow.runName`", "attributes.status", "run_name",
            "start_time", "metrics.val.acc", "attribute.run_id", "tag.team", "param.x", "metric", "experiment_id",
        ]).prop_map(str::to_string),
        4 => prop::sample::select(vec![
            "=", "==", "!=", "<", "<=", ">", ">=", "!", "LIKE", "ilike", "IN", "NOT IN", "IS NULL", "is not null", "IS",
        ]).prop_map(str::to_string),
        4 => prop::sample::select(vec![
            "'0.1'", "'%x%'", "'it''s'", "\"FINISHED\"", "0.9", "-1e-3", "1e309", "-", ".5", "1.2.3", "('a', 'b')",
            "('a',", "()", "'", "`", "\"", "(", ")", ",", "9223372036854775808", "'\u{10ffff}'",
        ]).prop_map(str::to_string),
        3 => prop::sample::select(vec!["and", "AND", "or", "And"]).prop_map(str::to_string),
        1 => "\\PC{1,3}",
    ];
    prop::collection::vec((token, prop::sample::select(vec![" ", "", "  ", "\t", "\n"])), 0..12)
        .prop_map(|ts| ts.into_iter().map(|(t, sep)| format!("{t}{sep}")).collect())
}

/// Well-formed comparisons joined with AND: the parser's accepting paths.
fn valid_filter() -> impl Strategy<Value = String> {
    let comparison = prop_oneof![
        (
            prop::sample::select(vec!["metrics.acc", "metrics.`a b`", "attributes.start_time", "end_time"]),
            prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">="]),
            values::number()
        )
            .prop_map(|(k, op, n)| format!("{k} {op} {n}")),
        (
            prop::sample::select(vec!["params.lr", "tags.\"a.b\"", "run_name", "attributes.status", "tags.x"]),
            prop::sample::select(vec!["=", "!=", "LIKE", "ILIKE"]),
            values::string()
        )
            .prop_map(|(k, op, s)| format!("{k} {op} '{}'", s.replace('\'', "''"))),
        (
            prop::sample::select(vec!["run_id", "tags.t", "params.p"]),
            prop::sample::select(vec!["IN", "NOT IN"]),
            prop::collection::vec(values::string(), 1..4)
        )
            .prop_map(|(k, op, items)| {
                let items: Vec<String> = items.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect();
                format!("{k} {op} ({})", items.join(", "))
            }),
        prop::sample::select(vec!["metrics.acc IS NULL", "tags.t IS NOT NULL"]).prop_map(str::to_string),
    ];
    prop::collection::vec(comparison, 1..4).prop_map(|cs| cs.join(" and "))
}

fn seed_bytes(target: &str) -> Vec<Vec<u8>> {
    corpus::seeds(target).into_iter().map(|(_, b)| b).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2000)))]

    #[test]
    fn structured_bodies(body in body(), query in query()) {
        check_body(&body.0, query.as_deref())?;
    }

    #[test]
    fn mutated_bodies(body in corpus::mutated(seed_bytes("mlflow-body"), 6), query in query()) {
        check_body(&body.0, query.as_deref())?;
    }

    #[test]
    fn token_filters(f in filter()) {
        check_filter(&f)?;
    }

    #[test]
    fn mutated_filters(f in corpus::mutated(seed_bytes("mlflow-filter"), 6)) {
        check_filter(&f.text())?;
    }

    #[test]
    fn random_filters(f in "\\PC{0,40}") {
        check_filter(&f)?;
    }

    #[test]
    fn valid_filters_parse(f in valid_filter()) {
        let parsed = search::parse_filter(&f);
        prop_assert!(parsed.is_ok(), "{f}: {:?}", parsed.err().map(|e| e.message));
        check_filter(&f)?;
    }
}

#[test]
fn seeds_parse() {
    for (name, bytes) in corpus::seeds("mlflow-filter") {
        let text = String::from_utf8_lossy(&bytes);
        if name.starts_with("order-by") {
            assert!(search::parse_order(&[text.to_string()]).is_ok(), "{name}");
        } else {
            assert!(search::parse_filter(&text).is_ok(), "{name}: {:?}", search::parse_filter(&text).err());
        }
        check_filter(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, bytes) in corpus::seeds("mlflow-body") {
        assert!(Params::from_body(&bytes, None).is_ok(), "{name}");
        check_body(&bytes, Some("run_id=a&run_id=b")).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Nesting far beyond serde_json's recursion limit is an error, not a stack overflow; a long
/// filter is parsed in one pass.
#[test]
fn deep_nesting_and_long_filters() {
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!(r#"{{"tags":{deep}}}"#);
    assert!(Params::from_body(body.as_bytes(), None).is_err());
    let long = vec!["metrics.acc > 0.5"; 20_000].join(" and ");
    assert_eq!(search::parse_filter(&long).map(|c| c.len()).ok(), Some(20_000));
    let parens = "(".repeat(100_000);
    assert!(search::parse_filter(&parens).is_err());
}
