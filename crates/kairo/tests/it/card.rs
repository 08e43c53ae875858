//! `kairo models card` (issue 21): a version's card from kairo.yaml's `card:` section, the
//! registry, the holdout and the monitors — Markdown, self-contained HTML and JSON, English
//! and Japanese; the same fairness numbers as the promotion gates; bad references named.

use serde_json::Value;

use crate::monitoring::{features, training_csv, Lcg};
use crate::serving::{fixture, register_profiled};
use crate::Repo;

/// The 20 features, the label (f0 > 0) and a group that follows f0.
fn holdout_csv(g: &mut Lcg, rows: usize) -> String {
    let x = features(g, rows, 0, 0.0);
    let mut csv = (0..20).map(|i| format!("f{i}")).collect::<Vec<_>>().join(",") + ",label,group\n";
    for r in 0..rows {
        let row: Vec<String> = x[r * 20..(r + 1) * 20].iter().map(|v| format!("{v:.5}")).collect();
        let group = if x[r * 20] > 0.5 { "a" } else { "b" };
        csv.push_str(&format!("{},{},{group}\n", row.join(","), u8::from(x[r * 20] > 0.0)));
    }
    csv
}

const CONFIG: &str = "version: 1
models:
  clf:
    holdout: {path: holdout.csv, target: label}
    gates: [\"accuracy >= 0.1\", \"demographic_parity_difference(group) <= 1\"]
    card:
      summary: Scores customers for churn risk.
      intended_use: Ranking retention offers | weekly.
      limitations: Trained on 2025 customers only.
      owners: [data-science@example.com]
      slices: [group]
      sensitive: [group]
monitors:
  clf-watch:
    deployment: clf
    rows: 100
";

#[test]
fn a_card_says_what_the_registry_the_holdout_and_the_monitors_know() {
    let repo = Repo::new();
    let mut g = Lcg(3);
    repo.write("train.csv", training_csv(&mut g, 500));
    repo.write("holdout.csv", holdout_csv(&mut g, 400));
    repo.write("kairo.yaml", CONFIG);
    register_profiled(&repo, "clf", "logreg20.onnx", "train.csv");
    let promoted = repo.json(&["models", "promote", "clf", "1", "--to", "champion", "--reason", "first"]);
    let dpd_gate: f64 = promoted["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"].as_str().unwrap().starts_with("demographic"))
        .and_then(|g| g["detail"].as_str()?.split_whitespace().next()?.parse().ok())
        .expect("the fairness gate's value");

    let card = repo.json(&["models", "card", "clf@champion"]);
    assert_eq!((card["name"].as_str(), card["version"].as_i64()), (Some("clf"), Some(1)));
    let e = &card["evaluation"];
    assert_eq!(e["rows"], 400);
    let accuracy = e["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == "accuracy").unwrap();
    let (v, lo, hi) =
        (accuracy["value"].as_f64().unwrap(), accuracy["low"].as_f64().unwrap(), accuracy["high"].as_f64().unwrap());
    assert!(lo <= v && v <= hi && hi - lo < 0.2, "{accuracy}");
    assert!(e["metrics"].as_array().unwrap().iter().any(|m| m["metric"] == "auc"), "{e}");
    let slices = e["slices"].as_array().unwrap();
    assert_eq!(slices.iter().map(|s| s["rows"].as_u64().unwrap()).sum::<u64>(), 400);
    assert!(slices
        .iter()
        .all(|s| s["column"] == "group" && s["judged"] == true && s["metric"]["metric"] == "accuracy"));
    let fairness = &e["fairness"][0];
    assert_eq!(fairness["column"], "group");
    let dpd = fairness["fairness"]["demographic_parity_difference"].as_f64().unwrap();
    assert!((dpd - dpd_gate).abs() < 1e-4, "the card and the gate agree: {dpd} vs {dpd_gate}");
    assert_eq!(fairness["fairness"]["groups"].as_array().unwrap().len(), 2);
    let promotion = &card["promotions"][0];
    assert_eq!(
        (promotion["alias"].as_str(), promotion["status"].as_str()),
        (Some("champion"), Some("promoted")),
        "{promotion}"
    );
    assert_eq!(card["monitoring"][0]["monitor"], "clf-watch");
    assert_eq!(card["about"]["lineage"], Value::Null, "registered from a file");
    assert!(card["notes"].as_array().unwrap().is_empty(), "{}", card["notes"]);

    let md = repo.kairo(&["models", "card", "clf@champion"]).output().unwrap();
    assert!(md.status.success());
    let md = String::from_utf8(md.stdout).unwrap();
    for needle in [
        "# Model card: clf v1",
        "## Intended use",
        "Ranking retention offers | weekly.",
        "Trained on 2025 customers only.",
        "data-science@example.com",
        "## Out of scope\n\nNot stated.",
        "### By slice",
        "### Fairness",
        "Demographic parity difference",
        "| accuracy >= 0.1 | passed |",
        "Registered from a file: no training run is recorded.",
        "| clf-watch | v1 |",
    ] {
        assert!(md.contains(needle), "{needle:?} in:\n{md}");
    }

    let out = repo.path().join("card.html");
    let done = repo
        .kairo(&["models", "card", "clf:1", "--format", "html", "--lang", "ja", "--out", "card.html"])
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let html = std::fs::read_to_string(out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<html lang=\"ja\">"), "{html}");
    for needle in ["モデルカード", "想定される用途", "公平性", "人口統計的パリティ差", "昇格と承認", "<table>"]
    {
        assert!(html.contains(needle), "{needle} in the Japanese card");
    }
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "self-contained");
    assert!(html.contains("Ranking retention offers | weekly."), "the user's words as written");

    // The same card on the team server's UI (its words in Japanese), behind its usual CSP.
    let (server, url) = crate::spawn_listening(&repo, &["server", "--port", "0", "--loop-every-s", "0"]);
    let r = reqwest::blocking::get(format!("{url}/models/clf/card?version=1&lang=ja")).unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("default-src"), "{:?}", r.headers());
    let page = r.text().unwrap();
    assert!(page.contains("モデルカード: clf v1") && page.contains("人口統計的パリティ差"), "{page}");
    let models = reqwest::blocking::get(format!("{url}/models/clf?lang=en")).unwrap().text().unwrap();
    assert!(models.contains("href=\"/models/clf/card?version=1&amp;lang=en\""), "{models}");
    assert_eq!(reqwest::blocking::get(format!("{url}/models/nope/card")).unwrap().status().as_u16(), 404);
    drop(server);

    // Bad input is named.
    let out = repo.kairo(&["models", "card", "nosuch@champion"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = repo.kairo(&["models", "card", "clf", "--format", "pdf"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Without a card section or holdout, the card says what it cannot tell.
    repo.write("kairo.yaml", "version: 1\n");
    let card = repo.json(&["models", "card", "clf"]);
    let notes = card["notes"].to_string();
    assert!(notes.contains("card:") && notes.contains("holdout:"), "{notes}");
    assert_eq!(card["evaluation"], Value::Null);
}

/// Gates on slices of the holdout: one slice by value, the worst slice of a column; a slice
/// with too few rows is not judged (by name it cannot pass; among all it is left out).
#[test]
fn slice_gates_judge_each_group_of_the_holdout() {
    let repo = Repo::new();
    let mut g = Lcg(3);
    repo.write("train.csv", training_csv(&mut g, 300));
    // Groups a and b as in the card test, plus five rows of a tiny group c.
    let mut csv = holdout_csv(&mut g, 400);
    for row in features(&mut g, 5, 0, 0.0).chunks(20) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.5}")).collect();
        csv.push_str(&format!("{},{},c\n", cells.join(","), u8::from(row[0] > 0.0)));
    }
    repo.write("holdout.csv", csv);
    let model = fixture("logreg20.onnx");
    repo.kairo(&["models", "register", "clf", "--file", model.to_str().unwrap()]).assert().success();
    let gates = |gates: &str| {
        repo.write(
            "kairo.yaml",
            format!("version: 1\nmodels:\n  clf:\n    holdout: {{path: holdout.csv, target: label}}\n    gates: [{gates}]\n"),
        );
        let out = repo.kairo(&["models", "promote", "clf", "1", "--to", "champion", "--json"]).output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), v)
    };
    let (code, v) = gates("\"accuracy[group=a] >= 0.5\", \"accuracy[group] >= 0.99\", \"accuracy[group=c] >= 0\", \"accuracy[group=zz] >= 0\"");
    assert_eq!(code, Some(5), "{v}");
    let detail = |i: usize| v["gates"][i]["detail"].as_str().unwrap().to_string();
    let passed = |i: usize| v["gates"][i]["passed"].as_bool().unwrap();
    assert!(passed(0) && detail(0).contains("(holdout, ") && detail(0).ends_with(" rows)"), "{}", detail(0));
    assert!(
        !passed(1)
            && detail(1).contains("worst of 2 slices: group=b")
            && detail(1).contains("1 with too few rows not judged"),
        "{}",
        detail(1)
    );
    assert!(!passed(2) && detail(2).contains("5 rows, too few to judge (30 needed)"), "{}", detail(2));
    assert!(
        !passed(3) && detail(3).contains("no holdout row has group = zz") && detail(3).contains("a, b, c"),
        "{}",
        detail(3)
    );
    // The worst slice's value is the lower of the two judged ones.
    let (code, v) = gates("\"accuracy[group] >= 0.3\"");
    assert_eq!(code, Some(0), "{v}");
    let worst: f64 = v["gates"][0]["detail"].as_str().unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!((0.3..0.99).contains(&worst), "{v}");
}
