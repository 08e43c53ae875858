//! `kairo predict` through the real binary: CSV, Parquet and directory inputs scored bit for
//! bit as `kairo serve` scores the same rows (a classifier, a regressor, a model with a string
//! input), bad input named before any output appears, `--on-error skip`, a killed run leaving
//! no output, and the run's lineage.

use crate::serving::{fixture, Serve};
use crate::Repo;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use serde_json::{json, Value};
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rows of `width` numbers with many digits (so any difference in parsing shows), and a text
/// column of colours.
fn rows(n: usize, width: usize) -> Vec<Vec<f64>> {
    (0..n).map(|i| (0..width).map(|j| ((i * 31 + j * 17) % 97) as f64 / 7.3 - 5.123456789).collect()).collect()
}

const COLORS: [&str; 3] = ["red", "green", "blue"];

fn write_csv(repo: &Repo, rel: &str, names: &[String], data: &[Vec<f64>], color: bool) {
    let mut text = String::from("id,");
    text.push_str(&names.join(","));
    if color {
        text.push_str(",color");
    }
    text.push('\n');
    for (i, r) in data.iter().enumerate() {
        let cells: Vec<String> = r.iter().map(|x| x.to_string()).collect();
        text.push_str(&format!("{},{}", 1000 + i, cells.join(",")));
        if color {
            text.push_str(&format!(",{}", COLORS[i % 3]));
        }
        text.push('\n');
    }
    repo.write(rel, text);
}

fn write_parquet(repo: &Repo, rel: &str, names: &[String], data: &[Vec<f64>], color: bool, first_id: i64) {
    let mut fields = vec![(
        "id".to_string(),
        Arc::new(Int64Array::from_iter_values(first_id..first_id + data.len() as i64)) as ArrayRef,
    )];
    for (j, n) in names.iter().enumerate() {
        fields.push((n.clone(), Arc::new(Float64Array::from_iter_values(data.iter().map(|r| r[j]))) as ArrayRef));
    }
    if color {
        let c: Vec<&str> = (0..data.len()).map(|i| COLORS[i % 3]).collect();
        fields.push(("color".into(), Arc::new(StringArray::from(c)) as ArrayRef));
    }
    let batch = RecordBatch::try_from_iter(fields).unwrap();
    let path = repo.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn read_parquet(repo: &Repo, rel: &str) -> RecordBatch {
    let file = File::open(repo.join(rel)).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow_select_concat(&batches)
}

fn arrow_select_concat(batches: &[RecordBatch]) -> RecordBatch {
    let schema = batches[0].schema();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let parts: Vec<&dyn arrow_array::Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow_select::concat::concat(&parts).unwrap()
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

fn column_names(batch: &RecordBatch) -> Vec<String> {
    batch.schema().fields().iter().map(|f| f.name().clone()).collect()
}

/// An OIP request of the same rows: one `[N, k]` FP32 input, or named `[N, 1]` inputs.
fn oip_body(names: &[String], data: &[Vec<f64>], single: Option<&str>, color: bool) -> Value {
    let n = data.len();
    let mut inputs = Vec::new();
    match single {
        Some(input) => {
            let flat: Vec<f64> = data.iter().flatten().copied().collect();
            inputs.push(json!({"name": input, "shape": [n, names.len()], "datatype": "FP32", "data": flat}));
        }
        None => {
            for (j, name) in names.iter().enumerate() {
                let col: Vec<f64> = data.iter().map(|r| r[j]).collect();
                inputs.push(json!({"name": name, "shape": [n, 1], "datatype": "FP32", "data": col}));
            }
        }
    }
    if color {
        let c: Vec<&str> = (0..n).map(|i| COLORS[i % 3]).collect();
        inputs.push(json!({"name": "color", "shape": [n, 1], "datatype": "BYTES", "data": c}));
    }
    json!({ "inputs": inputs })
}

/// The server's outputs as flat f32 (probabilities, regression values) or i64 (labels).
fn served(serve: &Serve, model: &str, body: &Value) -> Value {
    let (status, out) = serve.post(&format!("/v2/models/{model}/infer"), body);
    assert_eq!(status, 200, "{out}");
    out
}

fn output<'a>(response: &'a Value, name: &str) -> &'a Vec<Value> {
    response["outputs"].as_array().unwrap().iter().find(|o| o["name"] == name).unwrap()["data"].as_array().unwrap()
}

/// Every f32 of a served output equals, bit for bit, the predicted column(s) of the file.
fn assert_same_f32(batch: &RecordBatch, prefix: &str, width: usize, served: &[Value], what: &str) {
    let rows = batch.num_rows();
    assert_eq!(served.len(), rows * width, "{what}: {prefix}");
    for j in 0..width {
        let name = if width == 1 { prefix.to_string() } else { format!("{prefix}_{j}") };
        let col = batch
            .column_by_name(&name)
            .unwrap_or_else(|| panic!("{what}: no column {name} in {:?}", column_names(batch)));
        let col = col.as_primitive::<Float32Type>();
        for i in 0..rows {
            let want = served[i * width + j].as_f64().unwrap() as f32;
            assert_eq!(col.value(i).to_bits(), want.to_bits(), "{what}: {name} row {i}: {} vs {want}", col.value(i));
        }
    }
}

fn assert_same_labels(batch: &RecordBatch, served: &[Value], what: &str) {
    let col = batch.column_by_name("label").unwrap().as_primitive::<Int64Type>();
    for (i, v) in served.iter().enumerate() {
        assert_eq!(col.value(i), v.as_i64().unwrap(), "{what}: label row {i}");
    }
}

#[test]
fn scores_match_kairo_serve_bit_for_bit_from_csv_parquet_and_directories() {
    let repo = Repo::new();
    for (name, file) in [
        ("clf", "logreg20.onnx"),
        ("forest", "forest20.onnx"),
        ("reg", "linreg.onnx"),
        ("mixed", "pipeline_mixed.onnx"),
    ] {
        repo.kairo(&["models", "register", name, "--file", fixture(file).to_str().unwrap()]).assert().success();
    }
    repo.kairo(&["models", "alias", "clf", "champion", "1"]).assert().success();
    let serve = Serve::start(&repo, &["clf", "forest", "reg", "mixed"]);

    // A classifier with one [N, 20] input: columns in order, the id passed through.
    let f20: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    let data = rows(300, 20);
    write_csv(&repo, "in/clf.csv", &f20, &data, false);
    write_parquet(&repo, "in/clf.parquet", &f20, &data, false, 1000);
    let want = served(&serve, "clf", &oip_body(&f20, &data, Some("input"), false));
    for input in ["in/clf.csv", "in/clf.parquet"] {
        let report = repo.json(&[
            "predict",
            "clf@champion",
            "--input",
            input,
            "--out",
            "out/clf.parquet",
            "--id-column",
            "id",
            "--batch-rows",
            "64",
        ]);
        assert_eq!(report["rows"], 300, "{report}");
        assert_eq!(report["scored"], 300);
        assert_eq!((report["version"].as_i64(), report["alias"].as_str()), (Some(1), Some("champion")));
        let out = read_parquet(&repo, "out/clf.parquet");
        assert_eq!(column_names(&out), ["id", "label", "probabilities_0", "probabilities_1"], "{input}");
        assert_same_f32(&out, "probabilities", 2, output(&want, "probabilities"), input);
        assert_same_labels(&out, output(&want, "label"), input);
        // Ids come through in input order: text from CSV, typed from Parquet.
        let ids: Vec<String> = (0..out.num_rows()).map(|i| kairo_text(out.column(0), i)).collect();
        assert_eq!(ids.first().map(String::as_str), Some("1000"));
        assert_eq!(ids.last().map(String::as_str), Some("1299"));
    }

    // A tree ensemble (Kairo's own operator; predict loads it without the explainer).
    let want = served(&serve, "forest", &oip_body(&f20, &data, Some("input"), false));
    repo.kairo(&["predict", "forest", "--input", "in/clf.parquet", "--out", "out/forest.parquet", "--id-column", "id"])
        .assert()
        .success();
    let out = read_parquet(&repo, "out/forest.parquet");
    assert_same_f32(&out, "probabilities", 2, output(&want, "probabilities"), "forest");
    assert_same_labels(&out, output(&want, "label"), "forest");

    // A regressor, written as CSV.
    let f8: Vec<String> = (0..8).map(|i| format!("x{i}")).collect();
    let data8 = rows(120, 8);
    write_parquet(&repo, "in/reg.parquet", &f8, &data8, false, 0);
    let want = served(&serve, "reg", &oip_body(&f8, &data8, Some("input"), false));
    repo.kairo(&["predict", "reg:1", "--input", "in/reg.parquet", "--out", "out/reg.csv", "--id-column", "id"])
        .assert()
        .success();
    let text = String::from_utf8(repo.read("out/reg.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,variable"));
    let served_values = output(&want, "variable");
    for (i, line) in lines.enumerate() {
        let (id, value) = line.split_once(',').unwrap();
        assert_eq!(id, i.to_string());
        let got: f32 = value.parse().unwrap();
        assert_eq!(got.to_bits(), (served_values[i].as_f64().unwrap() as f32).to_bits(), "regression row {i}");
    }

    // Named inputs, one of them text, from a directory of two Parquet files (read in name order).
    let abc: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let data3 = rows(90, 3);
    write_parquet(&repo, "in/mixed/part-0.parquet", &abc, &data3[..50], true, 0);
    write_parquet(&repo, "in/mixed/part-1.parquet", &abc, &data3[50..], true, 50);
    // The server is asked the same rows, colours restarting with the second file.
    let mut want_p = Vec::new();
    let mut want_l = Vec::new();
    for part in [&data3[..50], &data3[50..]] {
        let r = served(&serve, "mixed", &oip_body(&abc, part, None, true));
        want_p.extend(output(&r, "probabilities").iter().cloned());
        want_l.extend(output(&r, "label").iter().cloned());
    }
    let report =
        repo.json(&["predict", "mixed", "--input", "in/mixed", "--out", "out/mixed.parquet", "--id-column", "id"]);
    assert_eq!((report["files"].as_u64(), report["scored"].as_u64()), (Some(2), Some(90)), "{report}");
    let out = read_parquet(&repo, "out/mixed.parquet");
    assert_same_f32(&out, "probabilities", 2, &want_p, "mixed");
    assert_same_labels(&out, &want_l, "mixed");
    serve.stop();
}

/// A cell as text (ids of either type).
fn kairo_text(col: &ArrayRef, i: usize) -> String {
    match col.data_type() {
        arrow_schema::DataType::Int64 => col.as_primitive::<Int64Type>().value(i).to_string(),
        _ => col.as_string::<i32>().value(i).to_string(),
    }
}

#[test]
fn bad_input_is_named_before_any_output_and_skip_sets_rows_aside() {
    let repo = Repo::new();
    repo.kairo(&["models", "register", "clf", "--file", fixture("logreg20.onnx").to_str().unwrap()]).assert().success();
    let f20: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    let data = rows(40, 20);
    write_csv(&repo, "good.csv", &f20, &data, false);

    // A column too few: the model's width, the file and the columns it has.
    let narrow: String = String::from_utf8(repo.read("good.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
        .collect();
    repo.write("narrow.csv", narrow);
    let out = repo
        .kairo(&["predict", "clf", "--input", "narrow.csv", "--out", "s.parquet", "--id-column", "id"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("narrow.csv") && err.contains("takes 20 values per row") && err.contains("19 columns"),
        "{err}"
    );
    assert!(!repo.join("s.parquet").exists());

    // A missing id column is named.
    let out = repo
        .kairo(&["predict", "clf", "--input", "good.csv", "--out", "s.parquet", "--id-column", "customer"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("customer"), "{err}");

    // A mistyped cell: the file, the row and the column, and nothing written.
    let mut text = String::from_utf8(repo.read("good.csv")).unwrap();
    let line7 = text.lines().nth(7).unwrap().to_string();
    let bad7 = line7.replacen(&line7.split(',').nth(4).unwrap().to_string(), "abc", 1);
    text = text.replace(&line7, &bad7);
    repo.write("bad.csv", &text);
    let out = repo
        .kairo(&[
            "predict",
            "clf",
            "--input",
            "bad.csv",
            "--out",
            "s.parquet",
            "--id-column",
            "id",
            "--batch-rows",
            "8",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.csv row 7") && err.contains("column 'f3'") && err.contains("`abc` is not a number"),
        "{err}"
    );
    assert!(!repo.join("s.parquet").exists(), "a failed run left an output");
    let leftovers: Vec<_> = std::fs::read_dir(repo.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("kairo-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // --on-error skip: the row is left out and listed with its reason; the rest are scored.
    let report = repo.json(&[
        "predict",
        "clf",
        "--input",
        "bad.csv",
        "--out",
        "s.parquet",
        "--id-column",
        "id",
        "--on-error",
        "skip",
        "--batch-rows",
        "8",
    ]);
    assert_eq!(
        (report["rows"].as_u64(), report["scored"].as_u64(), report["skipped"].as_u64()),
        (Some(40), Some(39), Some(1)),
        "{report}"
    );
    assert_eq!(report["skipped_file"], "s.parquet.skipped.csv");
    let side = String::from_utf8(repo.read("s.parquet.skipped.csv")).unwrap();
    assert!(side.starts_with("file,row,id,reason\n"), "{side}");
    assert!(side.contains(",7,1006,column 'f3': `abc` is not a number"), "{side}");
    let scored = read_parquet(&repo, "s.parquet");
    assert_eq!(scored.num_rows(), 39);
    let ids: Vec<String> = (0..39).map(|i| kairo_text(scored.column(0), i)).collect();
    assert!(!ids.contains(&"1006".to_string()) && ids.contains(&"1007".to_string()));

    // A later run that skips nothing leaves no stale list of skipped rows behind.
    repo.kairo(&["predict", "clf", "--input", "good.csv", "--out", "s.parquet", "--id-column", "id"])
        .assert()
        .success();
    assert!(!repo.join("s.parquet.skipped.csv").exists());

    // A reference to no model, and an empty input.
    let out = repo
        .kairo(&["predict", "nope@champion", "--input", "good.csv", "--out", "t.parquet", "--id-column", "id"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("nope"));
    repo.write("empty.csv", "id,".to_string() + &f20.join(",") + "\n");
    let out = repo
        .kairo(&["predict", "clf", "--input", "empty.csv", "--out", "t.parquet", "--id-column", "id"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no rows to score"));
    assert!(!repo.join("t.parquet").exists());
}

#[test]
fn a_killed_run_leaves_no_output_and_a_finished_one_has_lineage() {
    let repo = Repo::new();
    repo.kairo(&["models", "register", "clf", "--file", fixture("logreg20.onnx").to_str().unwrap()]).assert().success();
    let f20: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    write_csv(&repo, "big.csv", &f20, &rows(200_000, 20), false);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"))
        .args([
            "predict",
            "clf",
            "--input",
            "big.csv",
            "--out",
            "big.parquet",
            "--id-column",
            "id",
            "--batch-rows",
            "256",
        ])
        .current_dir(repo.path())
        .env("KAIRO_ACTOR", "tester@test")
        .spawn()
        .unwrap();
    let tmp = repo.join(&format!(".big.parquet.kairo-tmp-{}", child.id()));
    let start = Instant::now();
    while !tmp.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "the run never started writing");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!repo.join("big.parquet").exists(), "a killed run left a file that looks complete");

    // Lineage of a finished run's scores: the model version and the data that made them.
    write_csv(&repo, "small.csv", &f20, &rows(10, 20), false);
    repo.kairo(&["data", "add", "small.csv"]).assert().success();
    let report =
        repo.json(&["predict", "clf:1", "--input", "small.csv", "--out", "scores.parquet", "--id-column", "id"]);
    assert_eq!(report["input_dataset"], true, "{report}");
    let lineage = repo.json_with(&["lineage", "scores.parquet", "--format", "json"]);
    let run = &lineage["produced_by"];
    assert_eq!(run["stage"], "predict", "{lineage}");
    assert_eq!(run["id"], report["run_id"]);
    let inputs = run["inputs"].as_array().unwrap();
    let data = inputs.iter().find(|n| n["path"] == "small.csv").unwrap();
    assert_eq!(data["hash"], report["input_hash"]);
    assert_eq!(data["kind"], "dataset");
    let model = inputs.iter().find(|n| n["path"] == "models/clf:1").unwrap();
    assert_eq!(model["hash"], report["model_hash"]);
    // Data edited since `data add` is not that dataset version any more.
    let edited = String::from_utf8(repo.read("small.csv")).unwrap().replacen("1000,", "1999,", 1);
    repo.write("small.csv", edited);
    let again =
        repo.json(&["predict", "clf:1", "--input", "small.csv", "--out", "scores2.parquet", "--id-column", "id"]);
    assert_eq!(again["input_dataset"], false, "{again}");
    assert_ne!(again["input_hash"], report["input_hash"]);
    // The version `data add` recorded is still scoreable by its hash: PATH@VERSION.
    let hash = report["input_hash"].as_str().unwrap();
    let versioned = format!("small.csv@{}", &hash[..10]);
    let old = repo.json(&["predict", "clf:1", "--input", &versioned, "--out", "scores3.parquet", "--id-column", "id"]);
    assert_eq!((old["input"].as_str(), old["input_hash"].as_str()), (Some("small.csv"), Some(hash)), "{old}");
    assert_eq!(old["input_dataset"], true);
    assert_eq!(read_parquet(&repo, "scores3.parquet"), read_parquet(&repo, "scores.parquet"));
    let scratch: Vec<String> = std::fs::read_dir(repo.join(".kairo/tmp"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(!scratch.iter().any(|n| n.starts_with("predict-")), "scratch left: {scratch:?}");
    let out =
        repo.kairo(&["predict", "clf:1", "--input", "small.csv@0123456789", "--out", "x.parquet"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0123456789"), "{err}");

    // Changed scores are no longer the run's.
    repo.write("scores.parquet", "edited");
    let out = repo.kairo(&["lineage", "scores.parquet"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn explain_writes_the_contributions_kairo_serve_answers() {
    let repo = Repo::new();
    repo.write("churn.csv", crate::train::dataset("churn"));
    for algo in ["logistic", "gbdt"] {
        let file = format!("{algo}.onnx");
        repo.kairo(&["train", "--data", "churn.csv", "--target", "churn", "--algo", algo, "--out", &file])
            .assert()
            .success();
        repo.kairo(&["models", "register", algo, "--file", &file]).assert().success();
    }
    repo.kairo(&["models", "register", "plain", "--file", fixture("logreg20.onnx").to_str().unwrap()])
        .assert()
        .success();
    let text = String::from_utf8(repo.read("churn.csv")).unwrap();
    // 50 complete rows (the set has missing cells, which an OIP FP32 tensor cannot carry).
    let lines: Vec<&str> = text.lines().skip(1).filter(|l| !l.split(',').any(str::is_empty)).take(50).collect();
    let rows: Vec<Vec<String>> = lines.iter().map(|l| l.split(',').map(str::to_string).collect()).collect();
    repo.write("rows.csv", format!("{}\n{}\n", text.lines().next().unwrap(), lines.join("\n")));
    let num = |j: usize| -> Vec<f64> { rows.iter().map(|r| r[j].parse().unwrap()).collect() };
    let body = json!({
        "inputs": [
            {"name": "x1", "shape": [rows.len(), 1], "datatype": "FP32", "data": num(0)},
            {"name": "x2", "shape": [rows.len(), 1], "datatype": "FP32", "data": num(1)},
            {"name": "city", "shape": [rows.len(), 1], "datatype": "BYTES", "data": rows.iter().map(|r| r[2].clone()).collect::<Vec<_>>()},
        ],
        "parameters": {"contributions": true},
    });
    let serve = Serve::start(&repo, &["logistic", "gbdt"]);
    for algo in ["logistic", "gbdt"] {
        let want = served(&serve, algo, &body);
        let out_name = format!("{algo}.explained.parquet");
        repo.kairo(&["predict", algo, "--input", "rows.csv", "--out", &out_name, "--explain"]).assert().success();
        let out = read_parquet(&repo, &out_name);
        let contributions = want["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "contributions").unwrap();
        let shape: Vec<usize> =
            contributions["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let names: Vec<String> =
            output(&want, "contribution_names").iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(names, ["x1", "x2", "city", "bias"], "{algo}");
        let data = contributions["data"].as_array().unwrap();
        let (n, targets, width) = (shape[0], shape[1], shape[2]);
        assert_eq!(n, out.num_rows());
        for k in 0..targets {
            for (j, name) in names.iter().enumerate() {
                let column =
                    if targets == 1 { format!("contribution_{name}") } else { format!("contribution_{k}_{name}") };
                let got = out
                    .column_by_name(&column)
                    .unwrap_or_else(|| panic!("{algo}: no {column} in {:?}", column_names(&out)))
                    .as_primitive::<Float32Type>();
                for r in 0..n {
                    let want = data[(r * targets + k) * width + j].as_f64().unwrap() as f32;
                    assert_eq!(got.value(r).to_bits(), want.to_bits(), "{algo} {column} row {r}");
                }
            }
        }
    }
    serve.stop();
    // A model without contribution data says how to get it.
    let out =
        repo.kairo(&["predict", "plain", "--input", "rows.csv", "--out", "p.parquet", "--explain"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no contribution data") && err.contains("--profile-data"), "{err}");
}

/// `rows` rows of `id,f0..f19` (ids from `first_id`), the first `shifted` features moved.
fn scoring_csv(g: &mut crate::monitoring::Lcg, rows: usize, shifted: usize, first_id: usize) -> String {
    let x = crate::monitoring::features(g, rows, shifted, 3.0);
    let mut csv = String::from("id,") + &(0..20).map(|i| format!("f{i}")).collect::<Vec<_>>().join(",") + "\n";
    for r in 0..rows {
        let row: Vec<String> = x[r * 20..(r + 1) * 20].iter().map(|v| format!("{v:.5}")).collect();
        csv.push_str(&format!("cust{},{}\n", first_id + r, row.join(",")));
    }
    csv
}

#[test]
fn a_scored_batch_feeds_the_monitor_and_labels_by_id_measure_its_quality() {
    use crate::monitoring::{check, training_csv, Lcg};
    let repo = Repo::new();
    let mut g = Lcg(11);
    repo.write("train.csv", training_csv(&mut g, 2000));
    crate::serving::register_profiled(&repo, "churn", "forest20.onnx", "train.csv");
    repo.write(
        "kairo.yaml",
        "version: 1\nmonitors:\n  churn-watch:\n    deployment: churn\n    rows: 300\n    alerts:\n      - name: drifting\n        when: drift_share > 0.3\n      - name: inaccurate\n        when: accuracy < 0.6\n",
    );
    // A batch like the training data: logged, no drift.
    repo.write("calm.csv", scoring_csv(&mut g, 300, 0, 0));
    let r = repo.json(&["predict", "churn", "--input", "calm.csv", "--out", "calm.parquet", "--id-column", "id"]);
    assert_eq!(r["logged"], 300, "{r}");
    let (code, v) = check(&repo, &["--monitor", "churn-watch"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["windows"].as_array().unwrap().last().unwrap()["values"]["dataset_drift"], 0.0, "{v}");

    // --no-log scores without feeding the monitor.
    repo.write("shifted.csv", scoring_csv(&mut g, 300, 10, 300));
    let r = repo.json(&[
        "predict",
        "churn",
        "--input",
        "shifted.csv",
        "--out",
        "x.parquet",
        "--id-column",
        "id",
        "--no-log",
    ]);
    assert_eq!(r["logged"], 0, "{r}");
    let (code, _) = check(&repo, &["--monitor", "churn-watch"]);
    assert_eq!(code, 0, "an unlogged batch changed the monitor");

    // A drifted batch raises the monitor's drift alert.
    let out = repo
        .kairo(&["predict", "churn", "--input", "shifted.csv", "--out", "shifted.parquet", "--id-column", "id"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("logged 300 rows to the prediction log of 'churn'"), "{text}");
    let (code, v) = check(&repo, &["--monitor", "churn-watch"]);
    assert_eq!(code, 3, "{v}");
    let newest = v["windows"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(newest["values"]["dataset_drift"], 1.0, "{newest}");
    let rules: Vec<&str> =
        v["alerts"].as_array().unwrap().iter().map(|a| a["alert"]["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["drifting"], "{v}");

    // Labels by id, the opposite of every score: quality is measured on those rows.
    let scores = read_parquet(&repo, "shifted.parquet");
    let labels = scores.column_by_name("label").unwrap().as_primitive::<Int64Type>();
    let mut file = String::from("customer,churned\n");
    for i in 0..scores.num_rows() {
        file.push_str(&format!("{},{}\n", kairo_text(scores.column(0), i), 1 - labels.value(i)));
    }
    repo.write("labels.csv", file);
    let out = repo.kairo(&["models", "feedback", "churn", "--file", "labels.csv"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "the default columns are id,label");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("labels.csv: no column 'id' (its columns: customer, churned)"), "{err}");
    let stored = repo.json(&[
        "models",
        "feedback",
        "churn",
        "--file",
        "labels.csv",
        "--id-column",
        "customer",
        "--label-column",
        "churned",
    ]);
    assert_eq!(stored["stored"], 300);
    let (code, v) = check(&repo, &["--monitor", "churn-watch"]);
    assert_eq!(code, 3, "{v}");
    let newest = v["windows"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(newest["labelled"], 300, "{newest}");
    assert_eq!(newest["values"]["accuracy"], 0.0);
    let rules: Vec<&str> =
        v["alerts"].as_array().unwrap().iter().map(|a| a["alert"]["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"inaccurate"), "{v}");
}

#[test]
fn a_predict_stage_rescores_when_its_input_changes_or_the_alias_moves_and_not_otherwise() {
    let repo = Repo::new();
    for file in ["logreg20.onnx", "forest20.onnx"] {
        repo.kairo(&["models", "register", "churn", "--file", fixture(file).to_str().unwrap()]).assert().success();
    }
    repo.kairo(&["models", "alias", "churn", "champion", "1"]).assert().success();
    let f20: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    write_csv(&repo, "data/customers.csv", &f20, &rows(50, 20), false);
    repo.write(
        "kairo.yaml",
        "version: 1\nstages:\n  score:\n    predict:\n      model: churn@champion\n      input: data/customers.csv\n      out: scores/churn.parquet\n      id_columns: [id]\n",
    );
    let run = |repo: &Repo| -> Value { repo.json(&["run"]) };
    let status = |repo: &Repo| -> Value { repo.json(&["status"]) };
    let first = run(&repo);
    assert_eq!(first[0]["action"], "ran", "{first}");
    let v1 = read_parquet(&repo, "scores/churn.parquet");
    assert_eq!(column_names(&v1), ["id", "label", "probabilities_0", "probabilities_1"]);
    // The stage's run is the record: its dependencies name the model version; no second run.
    let lineage = repo.json_with(&["lineage", "scores/churn.parquet", "--format", "json"]);
    assert_eq!(lineage["produced_by"]["stage"], "score", "{lineage}");
    let inputs = lineage["produced_by"]["inputs"].as_array().unwrap();
    assert!(inputs.iter().any(|n| n["path"] == "models/churn:1"), "{lineage}");
    assert!(inputs.iter().any(|n| n["path"] == "data/customers.csv"), "{lineage}");
    let runs = repo.json(&["runs", "ls"]);
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    let lock = String::from_utf8(repo.read("kairo.lock")).unwrap();
    assert!(lock.contains("reference: churn@champion"), "{lock}");

    // Nothing changed: up to date.
    assert_eq!(status(&repo)[0]["action"], "up_to_date");
    assert_eq!(run(&repo)[0]["action"], "up_to_date");

    // The alias moves: stale for that reason, and re-scored with version 2.
    repo.kairo(&["models", "alias", "churn", "champion", "2"]).assert().success();
    let s = status(&repo);
    assert_eq!(s[0]["action"], "would_run", "{s}");
    assert_eq!(s[0]["reasons"], json!(["model `churn@champion` now resolves to version 2 (was version 1)"]));
    assert_eq!(run(&repo)[0]["action"], "ran");
    let lineage = repo.json_with(&["lineage", "scores/churn.parquet", "--format", "json"]);
    let inputs = lineage["produced_by"]["inputs"].as_array().unwrap();
    assert!(inputs.iter().any(|n| n["path"] == "models/churn:2"), "{lineage}");
    assert_eq!(run(&repo)[0]["action"], "up_to_date");

    // Back to version 1: the run cache has those scores.
    repo.kairo(&["models", "alias", "churn", "champion", "1"]).assert().success();
    let back = run(&repo);
    assert_eq!(back[0]["action"], "restored", "{back}");
    let restored = read_parquet(&repo, "scores/churn.parquet");
    assert_eq!(restored, v1, "the restored scores are version 1's");

    // The input changes: stale for that reason only.
    write_csv(&repo, "data/customers.csv", &f20, &rows(60, 20), false);
    let s = status(&repo);
    assert_eq!(s[0]["reasons"], json!(["dep `data/customers.csv` changed"]), "{s}");
    assert_eq!(run(&repo)[0]["action"], "ran");
    assert_eq!(read_parquet(&repo, "scores/churn.parquet").num_rows(), 60);

    // A mistake in the block is named where it is written; an alias that does not exist, at run.
    repo.write(
        "kairo.yaml",
        "version: 1\nstages:\n  score:\n    predict:\n      model: churn@champion\n      input: data/customers.csv\n      out: scores/churn.parquet\n      format: xlsx\n",
    );
    let out = repo.kairo(&["status"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kairo.yaml:") && err.contains("predict.format `xlsx`: use `parquet` or `csv`"), "{err}");
    repo.write(
        "kairo.yaml",
        "version: 1\nstages:\n  score:\n    predict:\n      model: churn@nope\n      input: data/customers.csv\n      out: scores/churn.parquet\n",
    );
    let out = repo.kairo(&["run"]).output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("model `churn@nope`: model 'churn' has no alias 'nope'"), "{text}");
}

#[test]
fn any_stage_can_depend_on_a_model_reference_and_sees_the_version_it_was_judged_against() {
    let repo = Repo::new();
    for file in ["logreg20.onnx", "forest20.onnx"] {
        repo.kairo(&["models", "register", "churn", "--file", fixture(file).to_str().unwrap()]).assert().success();
    }
    repo.kairo(&["models", "alias", "churn", "champion", "1"]).assert().success();
    repo.write(
        "kairo.yaml",
        "version: 1\nstages:\n  report:\n    cmd: printenv KAIRO_MODEL_PINS > pins.json\n    models: [churn@champion]\n    outs: [pins.json]\n",
    );
    assert_eq!(repo.json(&["run"])[0]["action"], "ran");
    let pins: Value = serde_json::from_slice(&repo.read("pins.json")).unwrap();
    assert_eq!(pins, json!({"churn@champion": 1}));
    assert_eq!(repo.json(&["status"])[0]["action"], "up_to_date");
    repo.kairo(&["models", "alias", "churn", "champion", "2"]).assert().success();
    let s = repo.json(&["status"]);
    assert_eq!(s[0]["reasons"], json!(["model `churn@champion` now resolves to version 2 (was version 1)"]), "{s}");
    assert_eq!(repo.json(&["run"])[0]["action"], "ran");
    let pins: Value = serde_json::from_slice(&repo.read("pins.json")).unwrap();
    assert_eq!(pins, json!({"churn@champion": 2}));
    // A reference that is not a model reference is named where it is written.
    repo.write(
        "kairo.yaml",
        "version: 1\nstages:\n  report:\n    cmd: echo\n    models: ['@oops']\n    outs: [pins.json]\n",
    );
    let out = repo.kairo(&["status"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kairo.yaml:5:14: stage `report`: ") && err.contains("`@oops`"), "{err}");
}

/// `scoring_csv`'s rows as Parquet with `group` rows per row group (ids as text).
fn scoring_parquet(repo: &Repo, rel: &str, csv: &str, group: usize) {
    let mut lines = csv.lines();
    let names: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let mut fields = vec![(
        names[0].to_string(),
        Arc::new(StringArray::from(rows.iter().map(|r| r[0]).collect::<Vec<_>>())) as ArrayRef,
    )];
    for (j, n) in names.iter().enumerate().skip(1) {
        let col = Float64Array::from_iter_values(rows.iter().map(|r| r[j].parse::<f64>().unwrap()));
        fields.push((n.to_string(), Arc::new(col) as ArrayRef));
    }
    let batch = RecordBatch::try_from_iter(fields).unwrap();
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(group)).build();
    let file = File::create(repo.join(rel)).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// `--executor ray` against the CI head (`.ci/start-ray.sh`, 2 CPUs): the input split into
/// tasks (a Parquet file by row groups, a directory by files), the scores put together equal to a
/// local run's byte for byte, one run recorded as on Ray, the rows logged for the monitor (a
/// drifted batch raises its alert), skipped rows named by their local file, a bad row failing
/// the run with no output, and nothing left staged on the remote.
#[test]
fn predict_on_ray_splits_the_input_and_comes_back_as_one_local_looking_run() {
    use crate::monitoring::{check, training_csv, Lcg};
    let Some(address) = crate::service("KAIRO_TEST_RAY_ADDRESS") else { return };
    let monitors = "monitors:\n  churn-watch:\n    deployment: churn\n    rows: 300\n    alerts:\n      - name: drifting\n        when: drift_share > 0.3\n";
    let repo = crate::ray::ray_repo(&address, monitors, None);
    let mut g = Lcg(23);
    repo.write("train.csv", training_csv(&mut g, 2000));
    crate::serving::register_profiled(&repo, "churn", "forest20.onnx", "train.csv");

    // One Parquet file of 6 row groups: two tasks (the head's two CPUs).
    scoring_parquet(&repo, "calm.parquet", &scoring_csv(&mut g, 600, 0, 0), 100);
    let r = repo.json(&[
        "predict",
        "churn",
        "--input",
        "calm.parquet",
        "--out",
        "ray.parquet",
        "--id-column",
        "id",
        "--executor",
        "ray",
        "--batch-rows",
        "64",
    ]);
    assert_eq!((r["executor"].as_str(), r["shards"].as_u64()), (Some("ray"), Some(2)), "{r}");
    assert_eq!((r["rows"].as_u64(), r["scored"].as_u64(), r["logged"].as_u64()), (Some(600), Some(600), Some(600)));
    repo.kairo(&[
        "predict",
        "churn",
        "--input",
        "calm.parquet",
        "--out",
        "local.parquet",
        "--id-column",
        "id",
        "--no-log",
    ])
    .assert()
    .success();
    assert_eq!(read_parquet(&repo, "ray.parquet"), read_parquet(&repo, "local.parquet"));
    let run = repo.json(&["runs", "show", r["run_id"].as_str().unwrap()]);
    assert_eq!((run["executor"].as_str(), run["status"].as_str()), (Some("ray"), Some("succeeded")), "{run}");
    let (code, v) = check(&repo, &["--monitor", "churn-watch"]);
    assert_eq!(code, 0, "{v}");

    // A directory of CSV files, drifted, one row unreadable: skipped and named by its file here.
    let shifted = scoring_csv(&mut g, 600, 10, 1000);
    let lines: Vec<&str> = shifted.lines().collect();
    let header = lines[0];
    let mut second: Vec<String> = lines[301..].iter().map(|l| l.to_string()).collect();
    let cells: Vec<&str> = second[4].split(',').collect();
    second[4] = format!("{},not-a-number,{}", cells[0], cells[2..].join(","));
    repo.write("shifted/a.csv", format!("{header}\n{}\n", lines[1..301].join("\n")));
    repo.write("shifted/b.csv", format!("{header}\n{}\n", second.join("\n")));
    let args = ["predict", "churn", "--input", "shifted", "--id-column", "id", "--executor", "ray"];
    let out = repo.kairo(&[&args[..], &["--out", "failed.csv"]].concat()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad row fails the run by default");
    assert!(err.contains("shifted/b.csv row 5, column 'f0'") && err.contains("not-a-number"), "{err}");
    assert!(!repo.join("failed.csv").exists());
    let r = repo.json(&[&args[..], &["--out", "ray.csv", "--on-error", "skip"]].concat());
    assert_eq!((r["scored"].as_u64(), r["skipped"].as_u64(), r["shards"].as_u64()), (Some(599), Some(1), Some(2)));
    let skipped = String::from_utf8(repo.read("ray.csv.skipped.csv")).unwrap();
    assert_eq!(skipped.lines().nth(1).unwrap(), "shifted/b.csv,5,cust1304,column 'f0': `not-a-number` is not a number");
    repo.kairo(&[
        "predict",
        "churn",
        "--input",
        "shifted",
        "--id-column",
        "id",
        "--out",
        "local.csv",
        "--on-error",
        "skip",
        "--no-log",
    ])
    .assert()
    .success();
    assert_eq!(repo.read("ray.csv"), repo.read("local.csv"));
    let (code, v) = check(&repo, &["--monitor", "churn-watch"]);
    assert_eq!(code, 3, "the drifted batch scored on Ray reaches the monitor: {v}");
    let staging = repo.join("remote-store/staging");
    let left: Vec<_> =
        std::fs::read_dir(&staging).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "staged parts are removed: {left:?}");

    // A predict stage with `executor: ray`: `kairo run` runs its command here, its rows on Ray.
    let jobs = crate::ray::jobs_of(&address, &repo, "predict").len();
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!("{config}stages:\n  score:\n    predict: {{model: churn, input: calm.parquet, out: staged.parquet, id_columns: [id], log: false}}\n    executor: ray\n"),
    );
    let out = repo.kairo(&["run"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_parquet(&repo, "staged.parquet"), read_parquet(&repo, "local.parquet"));
    assert_eq!(crate::ray::jobs_of(&address, &repo, "predict").len(), jobs + 1);

    // Ctrl-C: the job is stopped, nothing is written, the run is recorded interrupted.
    scoring_parquet(&repo, "big.parquet", &scoring_csv(&mut g, 200_000, 0, 0), 20_000);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"))
        .args([
            "predict",
            "churn",
            "--input",
            "big.parquet",
            "--out",
            "big.out.parquet",
            "--executor",
            "ray",
            "--id-column",
            "id",
        ])
        .current_dir(repo.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let running = || crate::ray::jobs_of(&address, &repo, "predict").iter().any(|j| j["status"] == "RUNNING");
    crate::ray::wait_for("the job to run", || {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("kairo predict ended ({status}) before its job ran: {err}");
        }
        running()
    });
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    crate::ray::wait_for("the job to stop", || !running());
    let stopped = crate::ray::jobs_of(&address, &repo, "predict").iter().filter(|j| j["status"] == "STOPPED").count();
    assert_eq!(stopped, 1);
    assert!(!repo.join("big.out.parquet").exists());
    let runs = repo.json(&["runs", "ls"]);
    assert_eq!(
        (runs[0]["stage"].as_str(), runs[0]["status"].as_str()),
        (Some("predict"), Some("interrupted")),
        "{runs}"
    );
}

/// `--executor ray` through the S3 test server: the tasks fetch kairo, the model and the input,
/// and send their parts and segments back, through signed URLs only.
#[test]
fn predict_on_ray_through_an_s3_remote() {
    let Some(address) = crate::service("KAIRO_TEST_RAY_ADDRESS") else { return };
    let Some(base) = crate::service("KAIRO_TEST_S3_URL") else { return };
    let unique =
        format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let repo = crate::ray::ray_repo(&address, "", Some(&format!("{base}/predict-ray-{unique}")));
    repo.kairo(&["models", "register", "forest", "--file", fixture("forest20.onnx").to_str().unwrap()])
        .assert()
        .success();
    scoring_parquet(&repo, "in.parquet", &scoring_csv(&mut crate::monitoring::Lcg(7), 500, 0, 0), 100);
    let args = ["predict", "forest", "--input", "in.parquet", "--id-column", "id"];
    let r = repo.json(&[&args[..], &["--out", "ray.parquet", "--executor", "ray"]].concat());
    assert_eq!((r["shards"].as_u64(), r["scored"].as_u64(), r["logged"].as_u64()), (Some(2), Some(500), Some(500)));
    repo.kairo(&[&args[..], &["--out", "local.parquet", "--no-log"]].concat()).assert().success();
    assert_eq!(read_parquet(&repo, "ray.parquet"), read_parquet(&repo, "local.parquet"));
}
