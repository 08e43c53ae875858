//! Hostile JSON values: numbers at type boundaries, strings that look like numbers, and
//! nested arrays and objects of them.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// A JSON number: small, boundary or arbitrary (integers of both signs, finite floats).
pub fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-3i64..100).prop_map(Value::from),
        2 => prop::sample::select(vec![
            0i64, 1, -1, i64::from(i32::MAX), i64::from(i32::MAX) + 1, 1 << 32, i64::MAX, i64::MIN,
        ])
        .prop_map(Value::from),
        1 => prop::sample::select(vec![u64::MAX, 1 << 63, (1 << 63) + 1]).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        2 => prop::num::f64::NORMAL.prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        2 => prop::sample::select(vec![0.5, -0.0, 1e-320, 3.4e38, 3.5e38, f64::MAX, -f64::MAX, 1.5, 0.1])
            .prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

/// A string, often one a lenient parser could take for a number, a bool or a name.
pub fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", " ", "0", "1", "-1", "1.5", " 2 ", "1e309", "NaN", "nan", "inf", "-inf", "Infinity", "-Infinity",
            "true", "True", "false", "null", "abc", "a,b", "\"", "'", "\n", "é", "\u{0}", "9223372036854775808",
        ])
        .prop_map(str::to_string),
        2 => "\\PC{0,12}",
        1 => any::<String>(),
    ]
}

/// A scalar: number, string, bool or null.
pub fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        5 => number(),
        2 => string().prop_map(Value::String),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ]
}

/// Any JSON value, nested up to a few levels, with object keys from `keys` or random.
pub fn value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            3 => prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            1 => prop::collection::vec((key(keys), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object key: usually one of `keys`, sometimes anything.
pub fn key(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(keys).prop_map(str::to_string),
        1 => string(),
    ]
}
