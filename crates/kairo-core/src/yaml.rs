//! YAML read with a bound on alias expansion. serde_yaml limits alias *jumps* (100 × the
//! document's events), but every jump replays the whole anchored node, so expansion can still
//! be quadratic: `a: &a [x, x, …]` referenced from `b: [*a, *a, …]` made a 140 KB `kairo.yaml`
//! grow past 1 GiB. A document is first walked without building anything, counting the nodes
//! and scalar bytes its aliases expand to, and refused beyond a budget linear in its size.

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess};
use serde::de::{IgnoredAny, VariantAccess, Visitor};

/// Nodes plus scalar bytes a document may expand to: 8 per byte of text, and at least 64 Ki
/// (an alias-free document expands to about its own size; templates reused a few times fit).
fn budget(text: &str) -> usize {
    text.len().saturating_mul(8).saturating_add(64 << 10)
}

/// `serde_yaml::from_str`, refusing documents whose aliases expand beyond [`budget`].
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_yaml::Error> {
    let mut left = Budget(budget(text));
    for document in serde_yaml::Deserializer::from_str(text) {
        (&mut left).deserialize(document)?;
    }
    serde_yaml::from_str(text)
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
            None => Err(E::custom(
                "YAML aliases (`*name`) expand this document far beyond its size; write the repeated parts out",
            )),
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
        let err = from_str::<serde_yaml::Value>(&bomb).unwrap_err().to_string();
        assert!(err.contains("aliases"), "{err}");
        let modest = "a: &a {cmd: run, deps: [x, y]}\nb: *a\nc: !tag [*a, *a]\n";
        let v: serde_yaml::Value = from_str(modest).unwrap();
        assert_eq!(v["b"]["cmd"], "run");
        assert!(from_str::<serde_yaml::Value>("a: [").is_err());
    }
}
