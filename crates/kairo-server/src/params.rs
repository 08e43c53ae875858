//! Request parameters the way the MLflow client sends them: the query string for GET (repeated
//! keys for lists), a JSON object body for POST/PATCH/DELETE. Typed getters turn every
//! malformed value into `INVALID_PARAMETER_VALUE` naming the parameter.

use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value};

/// Largest JSON body accepted (MLflow's log-batch limit is 1 MB; leave headroom).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct Params {
    map: Map<String, Value>,
}

impl Params {
    /// From a query string: `a=1&b=x&b=y` → `{"a": "1", "b": ["x", "y"]}`.
    pub fn from_query(query: Option<&str>) -> Self {
        let mut map = Map::new();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let v = Value::String(v.into_owned());
            match map.get_mut(k.as_ref()) {
                Some(Value::Array(items)) => items.push(v),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, v]);
                }
                None => {
                    map.insert(k.into_owned(), v);
                }
            }
        }
        Params { map }
    }

    /// From a JSON body (empty means no parameters), with query parameters as fallback.
    pub fn from_body(body: &[u8], query: Option<&str>) -> ApiResult<Self> {
        let mut params = Params::from_query(query);
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(params);
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => {
                params.map.extend(map);
                Ok(params)
            }
            Ok(_) => Err(ApiError::invalid("The request body must be a JSON object.")),
            Err(e) => Err(ApiError::invalid(format!("Malformed JSON in the request body: {e}"))),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn opt_string(&self, key: &str) -> ApiResult<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Array(a)) if a.len() == 1 => match &a[0] {
                Value::String(s) => Ok(Some(s.clone())),
                v => Err(invalid_value(key, v)),
            },
            Some(v) => Err(invalid_value(key, v)),
        }
    }

    pub fn string(&self, key: &str) -> ApiResult<String> {
        self.opt_string(key)?.ok_or_else(|| missing(key))
    }

    /// The first of several names (MLflow sends both `run_id` and the deprecated `run_uuid`).
    pub fn string_of(&self, keys: &[&str]) -> ApiResult<String> {
        for k in keys {
            if let Some(v) = self.opt_string(k)?.filter(|v| !v.is_empty()) {
                return Ok(v);
            }
        }
        Err(missing(keys[0]))
    }

    pub fn opt_i64(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| invalid_value(key, &Value::Number(n.clone()))),
            Some(Value::String(s)) => {
                s.trim().parse::<i64>().map(Some).map_err(|_| invalid_value(key, &Value::String(s.clone())))
            }
            Some(v) => Err(invalid_value(key, v)),
        }
    }

    pub fn i64(&self, key: &str) -> ApiResult<i64> {
        self.opt_i64(key)?.ok_or_else(|| missing(key))
    }

    /// A double as protobuf JSON writes it: a number, or "NaN" / "Infinity" / "-Infinity".
    pub fn f64(&self, key: &str) -> ApiResult<f64> {
        match self.get(key) {
            None => Err(missing(key)),
            Some(v) => to_f64(v).ok_or_else(|| invalid_value(key, v)),
        }
    }

    pub fn opt_bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(v) => Err(invalid_value(key, v)),
        }
    }

    /// A list of strings (a JSON array, or repeated query keys).
    pub fn strings(&self, key: &str) -> ApiResult<Vec<String>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    v => Err(invalid_value(key, v)),
                })
                .collect(),
            Some(v) => Err(invalid_value(key, v)),
        }
    }

    /// A list of JSON objects (e.g. `tags`, `metrics`).
    pub fn objects(&self, key: &str) -> ApiResult<Vec<Params>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(Params { map: m.clone() }),
                    v => Err(invalid_value(key, v)),
                })
                .collect(),
            Some(v) => Err(invalid_value(key, v)),
        }
    }

    /// A nested JSON object.
    pub fn object(&self, key: &str) -> ApiResult<Params> {
        match self.get(key) {
            Some(Value::Object(m)) => Ok(Params { map: m.clone() }),
            None => Err(missing(key)),
            Some(v) => Err(invalid_value(key, v)),
        }
    }

    /// `[{key, value}]` pairs (tags, params).
    pub fn pairs(&self, key: &str) -> ApiResult<Vec<(String, String)>> {
        self.objects(key)?.iter().map(|o| Ok((o.string("key")?, o.opt_string("value")?.unwrap_or_default()))).collect()
    }
}

pub fn to_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

fn missing(key: &str) -> ApiError {
    ApiError::invalid(format!(
        "Missing value for required parameter '{key}'. See the API docs for more information about request parameters."
    ))
}

fn invalid_value(key: &str, v: &Value) -> ApiError {
    let shown: String = v.to_string().chars().take(200).collect();
    ApiError::invalid(format!("Invalid value {shown} for parameter '{key}' supplied."))
}
