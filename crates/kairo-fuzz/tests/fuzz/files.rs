//! Files a repository brings: `kairo.yaml` (`kairo_core::config::Config::parse`) and pointer
//! files (`kairo_core::pointer::Pointer::parse`). A cloned repository is input like any other:
//! a hostile one must get an error, not a panic or an exhausted machine.

use kairo_core::config::Config;
use kairo_core::pointer::Pointer;
use kairo_fuzz::corpus::{self, Input};
use kairo_fuzz::{cases, memory, values};
use proptest::prelude::*;

fn check_config(text: &str) {
    memory::case("kairo-yaml", text.as_bytes());
    let _ = Config::parse(text);
}

fn check_pointer(text: &str) {
    memory::case("pointer", text.as_bytes());
    if let Ok(p) = Pointer::parse(text) {
        // A pointer that parses renders and parses back to itself.
        let again = Pointer::parse(&p.render());
        assert!(matches!(&again, Ok(q) if *q == p), "{p:?} renders as {:?} which parses as {again:?}", p.render());
    }
}

/// YAML built from the config's own vocabulary, with anchors, aliases, tags and flow style.
fn yaml() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "version",
        "database",
        "remotes",
        "origin",
        "url",
        "default_remote",
        "store",
        "fsync",
        "stages",
        "models",
        "gates",
        "holdout",
        "path",
        "target",
        "approval",
        "rollout",
        "max_p99_ms",
        "monitors",
        "deployment",
        "window",
        "rows",
        "schedule",
        "drift_share",
        "alerts",
        "when",
        "for",
        "webhook",
        "retries",
        "cmd",
        "x",
    ]);
    let scalar = prop_oneof![
        4 => values::number().prop_map(|v| v.to_string()),
        3 => prop::sample::select(vec![
            "1", "true", "required", "auto", "1h", "30m", "0s", "-5m", "9223372036854775807d", "18446744073709551615",
            "auc >= 0.8", "drift_share > 0.3", "x", "~", "null", "''", "\"a\\u0000\"", "s3://b/p", "[]", "{}",
        ])
        .prop_map(str::to_string),
        1 => prop::sample::select(vec!["*a", "&a 1", "&a [1, 2]", "!tag x", "!!str 1", "<<: *a"]).prop_map(str::to_string),
        1 => values::string().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
    ];
    let leaf = scalar.prop_map(|s| s);
    leaf.prop_recursive(4, 40, 6, move |inner| {
        let keys = keys.clone();
        prop_oneof![
            (prop::collection::vec((keys, inner.clone()), 1..5)).prop_map(|kv| {
                format!("{{{}}}", kv.into_iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))
            }),
            prop::collection::vec(inner, 0..5).prop_map(|items| format!("[{}]", items.join(", "))),
        ]
    })
}

fn seed_bytes(target: &str) -> Vec<Vec<u8>> {
    corpus::seeds(target).into_iter().map(|(_, b)| b).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1500)))]

    #[test]
    fn mutated_configs(text in corpus::mutated(seed_bytes("kairo-yaml"), 6)) {
        check_config(&text.text());
    }

    #[test]
    fn structured_configs(doc in yaml(), top in prop::bool::weighted(0.7)) {
        // Usually a mapping at the top, as a config file has.
        let text = if top && doc.starts_with('{') { doc } else { format!("stages: {doc}") };
        check_config(&text);
    }

    #[test]
    fn mutated_pointers(text in corpus::mutated(seed_bytes("pointer"), 6)) {
        check_pointer(&text.text());
    }

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let text = Input(bytes).text();
        check_config(&text);
        check_pointer(&text);
    }
}

#[test]
fn seeds_parse() {
    for (name, bytes) in corpus::seeds("kairo-yaml") {
        let text = String::from_utf8_lossy(&bytes);
        assert!(Config::parse(&text).is_ok(), "{name}: {:?}", Config::parse(&text).err());
    }
    for (name, bytes) in corpus::seeds("pointer") {
        let text = String::from_utf8_lossy(&bytes);
        assert!(Pointer::parse(&text).is_ok(), "{name}: {:?}", Pointer::parse(&text).err());
        check_pointer(&text);
    }
}

/// The classic "billion laughs": nine levels of nine aliases each.
fn billion_laughs() -> String {
    let mut text = String::from("stages:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let refs = vec![format!("*l{}", level - 1); 9].join(", ");
        text.push_str(&format!("  l{level}: &l{level} [{refs}]\n"));
    }
    text
}

/// Quadratic expansion, which a limit on alias jumps alone lets through: one anchor of `k`
/// items, referenced `k` times (k² nodes from ~7k bytes).
fn quadratic(k: usize) -> String {
    format!("stages:\n  a: &a [{}]\n  b: [{}]\n", vec!["x"; k].join(", "), vec!["*a"; k].join(", "))
}

/// The same through a typed field: a long string copied by every alias in a list of gates.
fn long_string_aliases(len: usize, k: usize) -> String {
    format!("stages:\n  s: &s \"{}\"\nmodels:\n  m:\n    gates: [{}]\n", "A".repeat(len), vec!["*s"; k].join(", "))
}

#[test]
fn alias_expansion_is_refused() {
    for (what, text) in [
        ("billion laughs", billion_laughs()),
        ("quadratic", quadratic(20_000)),
        ("long strings", long_string_aliases(100_000, 20_000)),
    ] {
        memory::case("kairo-yaml", text.as_bytes());
        let started = std::time::Instant::now();
        let r = Config::parse(&text);
        let err = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("aliases"), "{what}: a {} byte kairo.yaml gave {err:?}", text.len());
        assert!(started.elapsed().as_secs() < 10, "{what}: took {:?}", started.elapsed());
    }
}

/// Found by `mutated_configs`: `window: 9223372036854775807h` overflowed the millisecond
/// conversion (a panic in debug builds, a wrapped negative window in release).
#[test]
fn huge_durations_are_refused() {
    for d in ["9223372036854775807h", "9223372036854775807", "106751991168d", "9223372036854775807ms"] {
        let text = format!("monitors:\n  m:\n    deployment: d\n    window: {d}\n    schedule: {d}\n");
        let r = Config::parse(&text);
        assert!(r.is_err() || d.ends_with("ms"), "{d}: {r:?}");
    }
}

#[test]
fn modest_anchors_still_work() {
    // Stage templates and shared gate lists, as people write them.
    let text = quadratic(30);
    assert!(Config::parse(&text).is_ok(), "{:?}", Config::parse(&text).err());
    let text = long_string_aliases(20, 10);
    assert!(Config::parse(&text).is_ok(), "{:?}", Config::parse(&text).err());
}

/// Nesting beyond the parser's depth limit is an error, not a stack overflow, and is refused
/// where the limit is reached (serde_yaml's scanner took tens of seconds on 100,000 levels;
/// see docs/fuzzing.md).
#[test]
fn deep_nesting_is_refused() {
    let deep = format!("stages: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Config::parse(&deep).is_err());
    let deep = format!("stages:\n{}", (0..2_000).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect::<String>());
    assert!(Config::parse(&deep).is_err());
    let deep = format!("path: {}x{}\n", "{a: ".repeat(100_000), "}".repeat(100_000));
    assert!(Pointer::parse(&deep).is_err());
}
