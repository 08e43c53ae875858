//! Every YAML document Kairo reads or writes goes through here (serde-saphyr underneath).
//!
//! Reading reports errors with the parser's line and column, and bounds the work a document
//! can cause. serde-saphyr caps events, nodes, depth and replayed alias events, but a replayed
//! alias copies its scalars too: a long string behind `&s`, referenced from a list of `*s`,
//! grows a small file by its length per alias. So a document is first walked without building
//! anything, counting the nodes and scalar bytes its aliases expand to, and refused beyond a
//! budget linear in its size (the check `from_str` had under serde_yaml, kept as it was).
//!
//! Writing keeps serde_yaml's block style (sequences not indented under their key, long strings
//! on one line, multi-line ones as `|` blocks), so a file written by an earlier Kairo and by
//! this one differ at most in quoting: strings a YAML 1.1 reader (PyYAML, so DVC-style tools)
//! would take for a boolean or a number are now double-quoted.

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess};
use serde::de::{IgnoredAny, VariantAccess, Visitor};
use serde::Serialize;
use std::fmt;

pub use serde_saphyr::{Location, Spanned};

/// A YAML read or write error: what is wrong and, when the parser knows, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    /// 1-based line and column; `None` when the error has no place in the text.
    location: Option<(usize, usize)>,
}

impl Error {
    /// The 1-based `(line, column)` the parser reported.
    pub fn location(&self) -> Option<(usize, usize)> {
        self.location
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn from_saphyr(e: &serde_saphyr::Error) -> Self {
        use serde_saphyr::budget::BudgetBreach as B;
        let location = e.location().and_then(position);
        // serde-saphyr's own limits print as `budget breached: Debug`; say what they mean. A
        // limit reached while replaying an alias is the alias's doing.
        let (inner, in_alias) = unwrap_alias(e);
        let limit = match inner {
            serde_saphyr::Error::Budget { breach, .. } => Some(match breach {
                B::Aliases { .. }
                | B::Anchors { .. }
                | B::AliasAnchorRatio { .. }
                | B::RecordedAnchorEvents { .. }
                | B::RecordedAnchorBytes { .. } => ALIASES.to_string(),
                _ if in_alias => ALIASES.to_string(),
                B::Depth { depth } => format!("YAML nested {depth} levels deep; Kairo reads at most {MAX_DEPTH}"),
                other => format!("YAML document too large for Kairo to read ({other:?})"),
            }),
            serde_saphyr::Error::AliasReplayLimitExceeded { .. }
            | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. }
            | serde_saphyr::Error::AliasReplayCounterOverflow { .. } => Some(ALIASES.to_string()),
            _ => None,
        };
        if let Some(message) = limit {
            return Error { message, location };
        }
        let text = e.to_string();
        // The plain rendering ends with " at line L, column C"; keep the message alone.
        let message = match location {
            Some((line, column)) => {
                let suffix = format!(" at line {line}, column {column}");
                text.strip_suffix(&suffix).map(str::to_string).unwrap_or(text)
            }
            None => text,
        };
        Error { message, location }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.location {
            Some((line, column)) => write!(f, "{} at line {line} column {column}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// The error under any alias wrappers, and whether there was one.
fn unwrap_alias(e: &serde_saphyr::Error) -> (&serde_saphyr::Error, bool) {
    match e.without_snippet() {
        serde_saphyr::Error::AliasError { error, .. } => (unwrap_alias(error).0, true),
        other => (other, false),
    }
}

/// A parser location as 1-based `(line, column)`; `None` for an unknown one.
pub fn position(l: Location) -> Option<(usize, usize)> {
    let (line, column) = (usize::try_from(l.line()).ok()?, usize::try_from(l.column()).ok()?);
    (line > 0 && column > 0).then_some((line, column))
}

const ALIASES: &str = "YAML aliases (`*name`) expand this document far beyond its size; write the repeated parts out";

/// Nesting depth (sequences and mappings) a document may reach: serde-saphyr's default.
const MAX_DEPTH: usize = 64;

/// Reading options for `text`. serde-saphyr's absolute caps on events, nodes and scalar bytes
/// are raised to what the text itself holds, so a large alias-free file (a metrics or params
/// file of many numbers) is read; aliases stay bounded by [`budget`].
fn options(text: &str) -> serde_saphyr::Options {
    let defaults = serde_saphyr::Budget::default();
    serde_saphyr::options! {
        // Plain messages; Kairo adds `file:LINE:COL` itself.
        with_snippet: false,
        // YAML 1.2 booleans only (`yes`/`on` stay strings), as serde_yaml read them.
        strict_booleans: true,
        // `.nan`/`.inf` in an untyped value (a params or metrics file) as text, not an error.
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::AsString,
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_events: defaults.max_events.max(text.len().saturating_mul(2)),
            max_nodes: defaults.max_nodes.max(text.len()),
            max_total_scalar_bytes: defaults.max_total_scalar_bytes.max(text.len()),
        },
    }
}

/// Nodes plus scalar bytes a document may expand to: 8 per byte of text, and at least 64 Ki
/// (an alias-free document expands to about its own size; templates reused a few times fit).
fn budget(text: &str) -> usize {
    text.len().saturating_mul(8).saturating_add(64 << 10)
}

/// Read one YAML document into `T`, refusing documents whose aliases expand beyond [`budget`].
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    let mut left = Budget(budget(text));
    serde_saphyr::with_deserializer_from_str_with_options(text, options(text), |d| (&mut left).deserialize(d))
        .map_err(|e| Error::from_saphyr(&e))?;
    serde_saphyr::from_str_with_options(text, options(text)).map_err(|e| Error::from_saphyr(&e))
}

/// Write `value` as a YAML document in block style (see the module docs).
pub fn to_string<T: Serialize>(value: &T) -> Result<String, Error> {
    let options = serde_saphyr::ser_options! {
        compact_list_indent: true,
        // Multi-line strings as `|` blocks, single-line ones never folded.
        folded_wrap_chars: usize::MAX,
    };
    serde_saphyr::to_string_with_options(value, options).map_err(|e| Error { message: e.to_string(), location: None })
}

/// What is left of the budget while walking a document.
struct Budget(usize);

impl Budget {
    fn spend<E: de::Error>(&mut self, n: usize) -> Result<(), E> {
        match self.0.checked_sub(n.saturating_add(1)) {
            Some(left) => {
                self.0 = left;
                Ok(())
            }
            None => Err(E::custom(ALIASES)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for &mut Budget {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Budget {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.spend(v.len())
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.spend(v.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.spend(0)?;
        while seq.next_element_seed(&mut *self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.spend(0)?;
        while map.next_key_seed(&mut *self)?.is_some() {
            map.next_value_seed(&mut *self)?;
        }
        Ok(())
    }
    /// A tagged node (`!tag value`).
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        self.spend(0)?;
        let (IgnoredAny, variant) = data.variant()?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadratic_aliases_are_refused_and_modest_ones_kept() {
        let k = 3000;
        let bomb = format!("a: &a [{}]\nb: [{}]\n", vec!["x"; k].join(", "), vec!["*a"; k].join(", "));
        let err = from_str::<serde_json::Value>(&bomb).unwrap_err().to_string();
        assert!(err.contains("aliases"), "{err}");
        let modest = "a: &a {cmd: run, deps: [x, y]}\nb: *a\nc: [*a, *a]\n";
        let v: serde_json::Value = from_str(modest).unwrap();
        assert_eq!(v["b"]["cmd"], "run");
        assert_eq!(v["c"][1]["deps"][1], "y");
    }

    #[test]
    fn large_alias_free_documents_are_read() {
        // 400,000 numbers: past serde-saphyr's default 250,000 nodes.
        let text = format!("[{}]", vec!["1"; 400_000].join(","));
        let v: Vec<u8> = from_str(&text).unwrap();
        assert_eq!(v.len(), 400_000);
    }

    #[test]
    fn errors_carry_the_parsers_line_and_column() {
        let err = from_str::<serde_json::Value>("a: 1\nb: [\n").unwrap_err();
        assert!(err.location().is_some_and(|(line, _)| line >= 2), "{err:?}");
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            a: u32,
        }
        let err = from_str::<S>("a: 1\nzz: 2\n").unwrap_err();
        assert_eq!(err.location(), Some((2, 1)), "{err:?}");
        assert!(err.message().contains("zz") && !err.message().contains("line"), "{err:?}");
        assert!(err.to_string().ends_with(" at line 2 column 1"), "{err}");
    }

    #[test]
    fn yaml_1_2_booleans_and_spans() {
        let v: serde_json::Value = from_str("a: yes\nb: true\nc: .nan\n").unwrap();
        assert_eq!(v, serde_json::json!({"a": "yes", "b": true, "c": ".nan"}));
        #[derive(serde::Deserialize)]
        struct S {
            deps: Vec<Spanned<String>>,
        }
        let s: S = from_str("deps: [a, ../b]\n").unwrap();
        assert_eq!(position(s.deps[1].referenced), Some((1, 11)));
    }
}
