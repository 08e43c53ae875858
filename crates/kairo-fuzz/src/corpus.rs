//! The seed corpus (`fuzz/corpus/<target>/`, committed) and the byte-level mutations applied
//! to it: a seed is picked, then a few edits (bit flips, insertions, deletions, splices from
//! another seed, numbers replaced by boundary values, duplicated ranges) are applied. Edits
//! address positions as fractions of the current length ([`Index`]), so they stay valid as
//! earlier edits change it and shrink towards the unmutated seed.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;

/// Numbers at the edges of the types decoders convert to, as text.
pub const BOUNDARY_NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "1e309",
    "-1e400",
    "5e-324",
    "0.1",
    "1.5",
    "-0",
    "1e1000000",
    "99999999999999999999999999999999999999",
];

/// Tokens that change the structure of JSON, CSV, YAML and filters when inserted.
pub const STRUCTURAL: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\"",
    "'",
    "`",
    "\\",
    "\n",
    "\r\n",
    "\t",
    " ",
    "null",
    "true",
    "-",
    "&a ",
    "*a",
    "<<: ",
    "!!binary ",
    "---\n",
    "%",
    "\u{feff}",
    "\u{0}",
    "é",
    "\u{10ffff}",
    "(",
    ")",
    "=",
    "!=",
    " and ",
    "..",
];

/// Where the corpus of `target` lives in the repository. The crate's directory comes from
/// `cargo test`'s environment when it runs (a test binary reused from a checkout elsewhere
/// must read this checkout's corpus), else from where it was compiled.
pub fn dir(target: &str) -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf());
    crate_dir.join("../../fuzz/corpus").join(target)
}

/// Every seed of `target`, with its file name, sorted by name. Panics (failing the test) when
/// the directory is missing or empty: a fuzz target without seeds would pass vacuously.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = dir(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display())).path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "corpus {} has no seeds", dir.display());
    out
}

/// One byte-level edit.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Flip one bit of the byte at a position.
    Flip(Index, u8),
    /// Overwrite the byte at a position.
    Set(Index, u8),
    /// Insert bytes at a position.
    Insert(Index, Vec<u8>),
    /// Insert a structural token.
    Token(Index, usize),
    /// Delete up to `n` bytes from a position.
    Delete(Index, usize),
    /// Replace the run of digits at or after a position with a boundary number.
    Number(Index, usize),
    /// Copy a range of another seed (by index) into a position.
    Splice(Index, usize, Index, usize),
    /// Repeat a range in place `k` times (long rows, deep nesting, many keys).
    Repeat(Index, usize, usize),
    /// Cut everything after a position (truncated bodies).
    Truncate(Index),
}

fn at(i: &Index, len: usize) -> usize {
    // Positions 0..=len (insertion after the last byte is allowed).
    i.index(len + 1)
}

impl Edit {
    pub fn apply(&self, buf: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        match self {
            Edit::Flip(i, bit) => {
                if !buf.is_empty() {
                    let p = i.index(buf.len());
                    buf[p] ^= 1 << (bit % 8);
                }
            }
            Edit::Set(i, b) => {
                if !buf.is_empty() {
                    let p = i.index(buf.len());
                    buf[p] = *b;
                }
            }
            Edit::Insert(i, bytes) => {
                let p = at(i, buf.len());
                buf.splice(p..p, bytes.iter().copied());
            }
            Edit::Token(i, t) => {
                let p = at(i, buf.len());
                buf.splice(p..p, STRUCTURAL[t % STRUCTURAL.len()].bytes());
            }
            Edit::Delete(i, n) => {
                if !buf.is_empty() {
                    let p = i.index(buf.len());
                    let end = p.saturating_add(*n).min(buf.len());
                    buf.drain(p..end);
                }
            }
            Edit::Number(i, k) => {
                let number = BOUNDARY_NUMBERS[k % BOUNDARY_NUMBERS.len()].as_bytes();
                let p = at(i, buf.len());
                let start = buf[p..].iter().position(u8::is_ascii_digit).map_or(p, |o| p + o);
                let end = buf[start..].iter().position(|b| !b.is_ascii_digit()).map_or(buf.len(), |o| start + o);
                // A leading minus belongs to the number being replaced.
                let start = if start > 0 && buf[start - 1] == b'-' { start - 1 } else { start };
                buf.splice(start..end, number.iter().copied());
            }
            Edit::Splice(i, s, from, n) => {
                let Some(other) = seeds.get(s % seeds.len().max(1)) else { return };
                if other.is_empty() {
                    return;
                }
                let a = from.index(other.len());
                let b = a.saturating_add(*n).min(other.len());
                let p = at(i, buf.len());
                buf.splice(p..p, other[a..b].iter().copied());
            }
            Edit::Repeat(i, n, k) => {
                if buf.is_empty() {
                    return;
                }
                let a = i.index(buf.len());
                let b = a.saturating_add(*n).min(buf.len());
                let piece = buf[a..b].to_vec();
                for _ in 0..*k {
                    buf.splice(b..b, piece.iter().copied());
                }
            }
            Edit::Truncate(i) => {
                let p = at(i, buf.len());
                buf.truncate(p);
            }
        }
    }
}

/// A random edit.
pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Edit::Insert(i, b)),
        3 => (any::<Index>(), any::<usize>()).prop_map(|(i, t)| Edit::Token(i, t)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        3 => (any::<Index>(), any::<usize>()).prop_map(|(i, k)| Edit::Number(i, k)),
        2 => (any::<Index>(), any::<usize>(), any::<Index>(), 1usize..64)
            .prop_map(|(i, s, f, n)| Edit::Splice(i, s, f, n)),
        1 => (any::<Index>(), 1usize..32, 1usize..64).prop_map(|(i, n, k)| Edit::Repeat(i, n, k)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// Bytes under test, shown as an escaped byte string when proptest reports a failure.
#[derive(Clone, PartialEq, Eq)]
pub struct Input(pub Vec<u8>);

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\" ({} bytes)", self.0.escape_ascii(), self.0.len())
    }
}

impl Input {
    /// The bytes as text, invalid UTF-8 replaced (files are read with `read_to_string`, which
    /// refuses invalid UTF-8 before any decoder sees it).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// A seed of `seeds` with up to `max_edits` random edits applied.
pub fn mutated(seeds: Vec<Vec<u8>>, max_edits: usize) -> impl Strategy<Value = Input> {
    let n = seeds.len();
    (0..n, prop::collection::vec(edit(), 0..=max_edits)).prop_map(move |(s, edits)| {
        let mut buf = seeds[s].clone();
        for e in &edits {
            e.apply(&mut buf, &seeds);
        }
        Input(buf)
    })
}
