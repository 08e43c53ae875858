//! Privacy of the prediction log: per-field policies (`models: NAME: privacy:` in kairo.yaml),
//! what each does to a value, and which columns look personal.
//!
//! A policy is applied by the serving process to a row's inputs before the row is queued, so
//! a raw value never reaches the store; registration applies the same policy to the training
//! data it profiles, so drift is measured on the same hashed categories and buckets.
//! Pure functions, no I/O (the key comes from the caller).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The environment variable holding the hashing key unless `key_env` names another.
pub const DEFAULT_KEY_ENV: &str = "KAIRO_PRIVACY_KEY";

/// What happens to one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    Keep,
    /// Never logged.
    Drop,
    /// Keyed BLAKE3 of the value (`h:` and 16 hex digits): equal values stay equal, so
    /// categories can still be counted and compared.
    Hash,
    /// Shape kept, content hidden: `a***@e***.com`, `0*********8`.
    Mask,
    /// A number replaced by the range it falls in (`30–50`), given ascending edges.
    Bucket(Vec<f64>),
}

impl Policy {
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Keep => "keep",
            Policy::Drop => "drop",
            Policy::Hash => "hash",
            Policy::Mask => "mask",
            Policy::Bucket(_) => "bucket",
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PolicyText {
    Word(String),
    Bucket { bucket: Vec<f64> },
}

impl Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Policy::Bucket(edges) => PolicyText::Bucket { bucket: edges.clone() }.serialize(s),
            p => PolicyText::Word(p.name().to_string()).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
        use serde::de::Error;
        let text = PolicyText::deserialize(d)
            .map_err(|_| D::Error::custom("a policy is keep, drop, hash, mask or {bucket: [EDGE, ...]}"))?;
        match text {
            PolicyText::Word(w) => match w.as_str() {
                "keep" => Ok(Policy::Keep),
                "drop" => Ok(Policy::Drop),
                "hash" => Ok(Policy::Hash),
                "mask" => Ok(Policy::Mask),
                other => Err(D::Error::custom(format!(
                    "unknown policy `{other}`: use keep, drop, hash, mask or {{bucket: [EDGE, ...]}}"
                ))),
            },
            PolicyText::Bucket { bucket } => {
                if bucket.is_empty() || bucket.iter().any(|e| !e.is_finite()) || bucket.windows(2).any(|w| w[0] >= w[1])
                {
                    return Err(D::Error::custom(
                        "bucket edges must be finite numbers in ascending order, at least one",
                    ));
                }
                Ok(Policy::Bucket(bucket))
            }
        }
    }
}

/// `privacy:` of a model in kairo.yaml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySpec {
    /// Field (a training-data column as the version's profile names it, or an input tensor)
    /// → policy. Fields not named are kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Policy>,
    /// The environment variable holding the key for `hash` (default `KAIRO_PRIVACY_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// How long raw prediction-log rows are kept (`30d`, `12h`); older segments are given up
    /// by `kairo data gc` (their sketches and the serving aggregates stay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
}

impl PrivacySpec {
    /// Whether any field is changed.
    pub fn is_active(&self) -> bool {
        self.fields.values().any(|p| *p != Policy::Keep)
    }

    pub fn key_env(&self) -> &str {
        self.key_env.as_deref().unwrap_or(DEFAULT_KEY_ENV)
    }

    pub fn needs_key(&self) -> bool {
        self.fields.values().any(|p| *p == Policy::Hash)
    }

    /// The retention in milliseconds, if any.
    pub fn retention_ms(&self) -> Result<Option<i64>, String> {
        self.retention
            .as_deref()
            .map(|r| crate::config::parse_duration_ms(r).map_err(|e| format!("privacy.retention: {e}")))
            .transpose()
    }
}

/// The hashing key, derived from the secret text the environment holds.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl Key {
    pub fn from_secret(secret: &str) -> Key {
        Key(blake3::derive_key("kairo prediction-log privacy v1", secret.as_bytes()))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// The text a value is hashed or masked as: a string's content; a number as the 32-bit float
/// a model input holds (so a training CSV's `0.1` and a request's `0.1` hash alike); else its
/// JSON.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map(|x| format!("{}", x as f32)).unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

/// "h:" and the first 16 hex digits of the keyed hash of `text`.
fn hashed(text: &str, key: &Key) -> Value {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = blake3::keyed_hash(&key.0, text.as_bytes());
    let mut out = String::with_capacity(18);
    out.push_str("h:");
    for b in &digest.as_bytes()[..8] {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    Value::String(out)
}

/// [`apply`] for a number, without a JSON value in between (the serving path).
pub fn apply_number(policy: &Policy, x: f64, key: Option<&Key>) -> Option<Value> {
    match policy {
        Policy::Keep => Some(serde_json::json!(x)),
        Policy::Drop => None,
        Policy::Hash => key.map(|k| hashed(&format!("{}", x as f32), k)),
        Policy::Mask => Some(Value::String(mask(&format!("{}", x as f32)))),
        Policy::Bucket(edges) => Some(if x.is_finite() { Value::String(bucket(edges, x)) } else { Value::Null }),
    }
}

/// A policy made ready for the serving path: [`apply_number`]'s result written as JSON straight
/// into a buffer, with no `Value` and no string allocated per value (bucket labels are made
/// once, here).
#[derive(Debug, Clone)]
pub struct Compiled {
    policy: Policy,
    /// Each bucket's label as a JSON string, quotes included.
    labels: Vec<Vec<u8>>,
}

impl Compiled {
    pub fn new(policy: &Policy) -> Compiled {
        let labels = match policy {
            // One value inside each bucket: below the first edge, then each edge itself.
            Policy::Bucket(edges) if !edges.is_empty() => std::iter::once(f64::NEG_INFINITY)
                .chain(edges.iter().copied())
                .map(|x| serde_json::to_vec(&bucket(edges, x)).unwrap_or_else(|_| b"null".to_vec()))
                .collect(),
            _ => Vec::new(),
        };
        Compiled { policy: policy.clone(), labels }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Write `apply_number(policy, x, key)` as JSON (`null` when dropped) to `out`.
    pub fn write_number(&self, x: f64, key: Option<&Key>, out: &mut Vec<u8>) {
        use std::io::Write;
        // The number as a 32-bit float's shortest text, on the stack.
        let text = |buf: &mut [u8; 48]| -> usize {
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{}", x as f32);
            cursor.position() as usize
        };
        match &self.policy {
            Policy::Keep => {
                let _ = serde_json::to_writer(&mut *out, &serde_json::json!(x));
            }
            Policy::Drop => out.extend_from_slice(b"null"),
            Policy::Hash => {
                let Some(k) = key else {
                    out.extend_from_slice(b"null");
                    return;
                };
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut buf = [0u8; 48];
                let n = text(&mut buf);
                let digest = blake3::keyed_hash(&k.0, &buf[..n]);
                out.extend_from_slice(b"\"h:");
                for b in &digest.as_bytes()[..8] {
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 15)]);
                }
                out.push(b'"');
            }
            Policy::Mask => {
                // A number's text is ASCII: first and last character kept.
                let mut buf = [0u8; 48];
                let n = text(&mut buf);
                out.push(b'"');
                match n {
                    0 => {}
                    1 | 2 => out.extend(std::iter::repeat_n(b'*', n)),
                    _ => {
                        out.push(buf[0]);
                        out.extend(std::iter::repeat_n(b'*', n - 2));
                        out.push(buf[n - 1]);
                    }
                }
                out.push(b'"');
            }
            Policy::Bucket(edges) => {
                if !x.is_finite() || edges.is_empty() {
                    out.extend_from_slice(b"null");
                    return;
                }
                let at = edges.iter().position(|e| x < *e).unwrap_or(edges.len());
                out.extend_from_slice(&self.labels[at]);
            }
        }
    }
}

/// `policy` applied to one value; `None` when the value is dropped.
pub fn apply(policy: &Policy, value: &Value, key: Option<&Key>) -> Option<Value> {
    if value.is_null() {
        return Some(Value::Null);
    }
    if let (Some(x), false) = (value.as_f64(), *policy == Policy::Keep) {
        return apply_number(policy, x, key);
    }
    match policy {
        Policy::Keep => Some(value.clone()),
        Policy::Drop => None,
        // No key: callers refuse to start; never log the raw value regardless.
        Policy::Hash => key.map(|k| hashed(&text_of(value), k)),
        Policy::Mask => Some(Value::String(mask(&text_of(value)))),
        Policy::Bucket(edges) => {
            Some(match value.as_f64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok())) {
                Some(x) if x.is_finite() => Value::String(bucket(edges, x)),
                _ => Value::Null,
            })
        }
    }
}

/// The range label of `x` among ascending `edges`: `<18`, `18–30`, `≥70`.
pub fn bucket(edges: &[f64], x: f64) -> String {
    let fmt = |e: f64| if e.fract() == 0.0 && e.abs() < 1e15 { format!("{}", e as i64) } else { format!("{e}") };
    match edges.iter().position(|e| x < *e) {
        Some(0) => format!("<{}", fmt(edges[0])),
        Some(i) => format!("{}–{}", fmt(edges[i - 1]), fmt(edges[i])),
        None => format!("≥{}", fmt(edges[edges.len() - 1])),
    }
}

/// Hide a text's content, keeping its shape: an e-mail keeps its first letters and its
/// top-level domain; anything else its first and last character.
pub fn mask(text: &str) -> String {
    let hide = |s: &str| -> String {
        let chars: Vec<char> = s.chars().collect();
        match chars.len() {
            0 => String::new(),
            1 | 2 => "*".repeat(chars.len()),
            n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
        }
    };
    if let Some((local, domain)) = text.split_once('@') {
        let (host, tld) = domain.rsplit_once('.').unwrap_or((domain, ""));
        let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
        let tld = if tld.is_empty() { String::new() } else { format!(".{tld}") };
        return format!("{}***@{}***{tld}", first(local), first(host));
    }
    hide(text)
}

/// Why a column looks personal, and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub column: String,
    pub reason: String,
    /// The policy Kairo suggests (`drop`, `hash`, `mask`).
    pub suggested: &'static str,
}

/// What a column's values are checked for: the description, the check, the suggested policy.
type ValueCheck<'a> = (&'a str, &'a dyn Fn(&str) -> bool, &'static str);

/// Columns whose names or values look personal. `values` are a sample of each column's
/// values as text.
pub fn personal_columns(columns: &[(String, Vec<String>)]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, values) in columns {
        if let Some((reason, suggested)) = by_name(name) {
            out.push(Finding { column: name.clone(), reason, suggested });
            continue;
        }
        let present: Vec<&str> = values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
        if present.is_empty() {
            continue;
        }
        let share = |f: &dyn Fn(&str) -> bool| present.iter().filter(|v| f(v)).count() as f64 / present.len() as f64;
        let checks: [ValueCheck; 4] = [
            ("e-mail addresses", &is_email, "hash"),
            ("credit-card numbers (Luhn)", &is_card, "drop"),
            ("My Number (個人番号) values", &is_my_number, "drop"),
            ("phone numbers", &is_phone, "mask"),
        ];
        for (what, check, suggested) in checks {
            let s = share(check);
            if s >= 0.5 {
                out.push(Finding {
                    column: name.clone(),
                    reason: format!("{:.0}% of its values look like {what}", s * 100.0),
                    suggested,
                });
                break;
            }
        }
    }
    out
}

/// The words of a column name: split at non-alphanumerics and camelCase, lower-cased.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if (!c.is_ascii_alphanumeric() || (c.is_ascii_uppercase() && prev_lower)) && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn by_name(name: &str) -> Option<(String, &'static str)> {
    let words = words(name);
    let joined: String = words.concat();
    // Short needles match a whole word (`tel` in `tel2`/`home_tel`, not in `hotel`); long ones
    // anywhere in the joined name (`email` in `EmailAddress`, `birth` in `date_of_birth`).
    let hit = |k: &str| {
        if k.len() >= 5 {
            joined.contains(k)
        } else {
            words.iter().any(|w| w == k || (w.starts_with(k) && w[k.len()..].chars().all(|c| c.is_ascii_digit())))
        }
    };
    let rules: [(&[&str], &str, &'static str); 9] = [
        (&["email", "mail"], "an e-mail address", "hash"),
        (&["phone", "tel", "mobile", "fax"], "a phone number", "mask"),
        (&["address", "addr", "street", "zipcode", "zip", "postcode", "postalcode"], "an address", "drop"),
        (&["birth", "dob", "birthday"], "a birth date", "drop"),
        (
            &["name", "firstname", "lastname", "fullname", "surname", "givenname", "familyname"],
            "a person's name",
            "drop",
        ),
        (&["ssn", "passport", "nationalid", "mynumber", "kojinbango", "taxid"], "a national identifier", "drop"),
        (&["creditcard", "cardnumber", "iban", "accountnumber"], "a payment identifier", "drop"),
        (&["ipaddress", "ipaddr", "ip"], "an IP address", "hash"),
        (&["customerid", "userid", "clientid", "personid", "memberid"], "an identifier of a person", "hash"),
    ];
    rules
        .iter()
        .find(|(needles, _, _)| needles.iter().any(|k| hit(k)))
        .map(|(_, what, suggested)| (format!("its name suggests {what}"), *suggested))
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && !s.contains(char::is_whitespace)
}

/// 10 to 15 digits, written with only `+ - ( ) .` and spaces besides.
pub fn is_phone(s: &str) -> bool {
    let n = digits(s).len();
    (10..=15).contains(&n) && s.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) && !s.contains('.')
}

/// 13 to 19 digits (spaces or dashes allowed) passing the Luhn check.
pub fn is_card(s: &str) -> bool {
    if !s.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') {
        return false;
    }
    let d = digits(s);
    if !(13..=19).contains(&d.len()) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                if x * 2 > 9 {
                    x * 2 - 9
                } else {
                    x * 2
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Japan's Individual Number: 12 digits whose last is the check digit of the first 11.
pub fn is_my_number(s: &str) -> bool {
    if !s.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') {
        return false;
    }
    let d = digits(s);
    if d.len() != 12 {
        return false;
    }
    // P(n): the n-th digit counting from the right of the first 11; Q(n) = n+1 (n ≤ 6), n-5.
    let sum: u32 = (1..=11).map(|n| d[11 - n] * if n <= 6 { n as u32 + 1 } else { n as u32 - 5 }).sum();
    let r = sum % 11;
    let check = if r <= 1 { 0 } else { 11 - r };
    d[11] == check
}

#[cfg(test)]
mod compiled_tests {
    use super::*;

    #[test]
    fn the_serving_path_writes_what_apply_number_returns() {
        let key = Key::from_secret("k");
        let policies = [
            Policy::Keep,
            Policy::Drop,
            Policy::Hash,
            Policy::Mask,
            Policy::Bucket(vec![18.0, 30.0, 50.0, 70.0]),
            Policy::Bucket(vec![0.5]),
        ];
        let numbers = [0.0, -1.5, 7.0, 17.999, 18.0, 29.0, 49.5, 70.0, 1e9, 731953.25, 0.1, f64::NAN, f64::INFINITY];
        for p in &policies {
            let c = Compiled::new(p);
            for x in numbers {
                for key in [Some(&key), None] {
                    let mut got = Vec::new();
                    c.write_number(x, key, &mut got);
                    let want = serde_json::to_vec(&apply_number(p, x, key).unwrap_or(Value::Null)).unwrap();
                    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "{p:?} {x}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies_parse_and_refuse_by_name() {
        let spec: PrivacySpec = crate::yaml::from_str(
            "fields:\n  email: drop\n  customer_id: hash\n  phone: mask\n  age: {bucket: [18, 30, 50]}\n",
        )
        .unwrap();
        assert_eq!(spec.fields["age"], Policy::Bucket(vec![18.0, 30.0, 50.0]));
        assert!(spec.needs_key() && spec.is_active());
        let bad = crate::yaml::from_str::<PrivacySpec>("fields:\n  email: shred\n").unwrap_err().to_string();
        assert!(bad.contains("unknown policy `shred`"), "{bad}");
        let bad = crate::yaml::from_str::<PrivacySpec>("fields:\n  age: {bucket: [30, 18]}\n").unwrap_err().to_string();
        assert!(bad.contains("ascending"), "{bad}");
    }

    #[test]
    fn each_policy_changes_the_value_as_documented() {
        let key = Key::from_secret("s3cret");
        let other = Key::from_secret("other");
        let v = json!("alice@example.com");
        assert_eq!(apply(&Policy::Keep, &v, None), Some(v.clone()));
        assert_eq!(apply(&Policy::Drop, &v, None), None);
        let h = apply(&Policy::Hash, &v, Some(&key)).unwrap();
        assert!(h.as_str().unwrap().starts_with("h:") && h.as_str().unwrap().len() == 18, "{h}");
        assert_eq!(apply(&Policy::Hash, &v, Some(&key)), Some(h.clone()), "stable");
        assert_ne!(apply(&Policy::Hash, &v, Some(&other)), Some(h.clone()), "keyed");
        assert_eq!(apply(&Policy::Hash, &v, None), None, "no key, nothing logged");
        assert_eq!(apply(&Policy::Mask, &v, None), Some(json!("a***@e***.com")));
        assert_eq!(mask("09012345678"), "0*********8");
        let edges = Policy::Bucket(vec![18.0, 30.0, 50.0]);
        assert_eq!(apply(&edges, &json!(17), None), Some(json!("<18")));
        assert_eq!(apply(&edges, &json!(30), None), Some(json!("30–50")));
        assert_eq!(apply(&edges, &json!(50.5), None), Some(json!("≥50")));
        assert_eq!(apply(&edges, &json!("x"), None), Some(Value::Null));
    }

    #[test]
    fn personal_columns_by_name_and_by_value() {
        let col = |n: &str, vs: &[&str]| (n.to_string(), vs.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let found = personal_columns(&[
            col("Email_Address", &["x"]),
            col("contact", &["a@b.co", "c@d.org", ""]),
            col("card", &["4111 1111 1111 1111", "5500-0000-0000-0004"]),
            col("kojin", &["123456789018", "123456789018"]),
            col("tel2", &["x"]),
            col("reach", &["+81 90-1234-5678", "03-1234-5678"]),
            col("tenure", &["12", "7"]),
            col("hotel_rating", &["4"]),
            col("customerName", &["x"]),
            col("plan", &["gold", "basic"]),
        ]);
        let by: BTreeMap<&str, &Finding> = found.iter().map(|f| (f.column.as_str(), f)).collect();
        assert_eq!(by["Email_Address"].suggested, "hash");
        assert!(by["contact"].reason.contains("e-mail"), "{:?}", by["contact"]);
        assert!(by["card"].reason.contains("credit-card"));
        assert!(by["kojin"].reason.contains("My Number"), "{found:?}");
        assert_eq!(by["tel2"].suggested, "mask");
        assert!(by["reach"].reason.contains("phone"));
        assert!(
            !by.contains_key("tenure") && !by.contains_key("plan") && !by.contains_key("hotel_rating"),
            "{found:?}"
        );
        assert_eq!(by["customerName"].suggested, "drop");
        assert!(is_card("4111111111111111") && !is_card("4111111111111112"));
        assert!(is_my_number("123456789018") && !is_my_number("123456789012"));
    }
}
