//! `kairo kpi` on the demo's closed loop: non-empty, plausible KPIs through the CLI (table,
//! JSON, HTML in English and Japanese), `/api/v1/kpi` and the tracking server's gauges, and
//! the command's bad input.

use crate::{spawn_listening, Repo};

/// A project where `kairo demo` has closed the loop once.
fn demo_project() -> Repo {
    let repo = Repo::bare();
    let out = repo.kairo(&["demo", "--dir", "."]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    repo
}

#[test]
fn the_demo_loop_yields_plausible_kpis_everywhere() {
    let repo = demo_project();
    let r = repo.json(&["kpi", "--since", "7d"]);

    // v1 deployed by hand, v2 by the loop's canary: two versions reached 100%.
    assert_eq!(r["deployment_frequency"]["total"], 2, "{r:#}");
    assert_eq!(r["deployment_frequency"]["by_model"][0]["model"], "churn");
    // v2's cause is the alert; its lead time is seconds, not days, and its stages add up.
    let v2 = r["lead_time"]["changes_detail"].as_array().unwrap().iter().find(|c| c["version"] == 2).unwrap();
    assert_eq!(v2["cause"], "alert", "{v2:#}");
    let total = v2["total_s"].as_f64().unwrap();
    assert!(total > 0.0 && total < 600.0, "{total}");
    let staged: f64 = v2["stages_s"].as_array().unwrap().iter().filter_map(|s| s.as_f64()).sum();
    assert!((staged - total).abs() < 0.01, "{staged} vs {total}");
    assert!(v2["stages_s"][5].as_f64().unwrap() > 0.0, "the canary took time");
    // One incident, resolved, its drift dated from the windows.
    assert_eq!(r["restore"]["incidents"], 1);
    assert_eq!(r["restore"]["resolved"], 1, "{:#}", r["restore"]);
    assert!(r["restore"]["median_s"].as_f64().unwrap() > 0.0);
    assert!(r["restore"]["detect_median_s"].as_f64().unwrap() >= 0.0);
    // The loop's retrain and promotion; v1's by hand.
    assert_eq!(r["automation"]["retrains"]["automated"], 1);
    assert_eq!(r["automation"]["retrains"]["manual"], 1);
    assert_eq!(r["automation"]["promotions"]["automated"], 1);
    // Runs have CPU time now.
    assert!(r["compute"]["cpu_s"].as_f64().unwrap() > 0.0, "{:#}", r["compute"]);
    assert_eq!(r["compute"]["unmeasured"], 0);
    // Quality over time: the drifted champion was worse than the challenger on the labels.
    let quality = r["quality"].as_array().unwrap();
    let acc = |v: i64| quality.iter().find(|q| q["version"] == v).and_then(|q| q["value"].as_f64()).unwrap();
    assert!(acc(2) > acc(1), "{quality:#?}");
    assert!(quality.iter().all(|q| q["coverage"].as_f64().unwrap() > 0.0));
    // No value section: time figures only, and it says what to configure.
    assert_eq!(r["value"]["configured"], false);
    assert!(r["value"]["missing"][0].as_str().unwrap().contains("value:"));

    // The table and the meeting page, in Japanese.
    let out = repo.kairo(&["kpi", "--html", "report.html", "--lang", "ja"]).output().unwrap();
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    for line in ["deployment frequency", "lead time (median)", "change failure rate", "time to restore", "AUTOMATION"] {
        assert!(table.contains(line), "{line} in\n{table}");
    }
    let page = String::from_utf8(repo.read("report.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html><html lang=\"ja\">"));
    assert!(page.contains("変更のリードタイム") && page.contains("<svg") && page.contains("@page{size:A4"));
    assert!(!page.contains("src=") && !page.contains("href=") && !page.contains("<script"));

    // With a value section, money appears with its formula.
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!(
            "{config}\nvalue:\n  engineer_hourly_cost: 90\n  manual_minutes: {{retrain: 60}}\n  cpu_hour_cost: 2\n"
        ),
    );
    let r = repo.json(&["kpi"]);
    assert_eq!(r["value"]["configured"], true);
    let retrain = r["value"]["lines"].as_array().unwrap().iter().find(|l| l["item"] == "retrain").unwrap();
    assert_eq!(retrain["formula"], "1 × 60 min ÷ 60 = 1 h; × 90 = 90", "{retrain:#}");
    assert!(r["value"]["net"].as_f64().unwrap() < 90.0, "compute is subtracted");

    // The API and the gauges.
    let (mut server, url) = spawn_listening(&repo, &["server", "--port", "0"]);
    let api: serde_json::Value = reqwest::blocking::get(format!("{url}/api/v1/kpi?since=7d")).unwrap().json().unwrap();
    assert_eq!(api["deployment_frequency"]["total"], 2);
    assert_eq!(api["restore"]["resolved"], 1);
    let bad = reqwest::blocking::get(format!("{url}/api/v1/kpi?since=forever")).unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().unwrap();
    assert!(body["message"].as_str().unwrap().contains("since `forever`"), "{body}");
    let metrics = reqwest::blocking::get(format!("{url}/metrics")).unwrap().text().unwrap();
    assert!(metrics.contains("kairo_kpi_deployments_per_week{window=\"30d\"}"), "{metrics}");
    assert!(metrics.contains("kairo_kpi_automation_rate{window=\"30d\",action=\"retrain\"} 0.5"), "{metrics}");
    assert!(metrics.contains("kairo_kpi_hours_saved{window=\"30d\"} 1"), "{metrics}");
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn bad_input_is_named_and_nothing_is_written() {
    let repo = Repo::new();
    for (args, says) in [
        (vec!["kpi", "--since", "forever"], "since `forever`: expected a period such as 90d"),
        (vec!["kpi", "--since", "0d"], "since `0d`"),
        (vec!["kpi", "--until", "yesterday"], "until `yesterday`: expected an RFC 3339 time"),
        (vec!["kpi", "--lang", "fr", "--html", "r.html"], "--lang `fr`: the report speaks en or ja"),
    ] {
        let out = repo.kairo(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!repo.join("r.html").exists());
    // A value that is not a cost is refused where it is written.
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write("kairo.yaml", format!("{config}\nvalue:\n  engineer_hourly_cost: -5\n"));
    let out = repo.kairo(&["kpi"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("value.engineer_hourly_cost: -5 is not a cost"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo.write("kairo.yaml", format!("{config}\nkpi:\n  timezone: Asia/Tokyo\n"));
    let out = repo.kairo(&["kpi"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("kpi.timezone: `Asia/Tokyo`: expected a UTC offset"));
    // An empty project: a report of nothing, not an error.
    repo.write("kairo.yaml", config);
    let r = repo.json(&["kpi"]);
    assert_eq!(r["deployment_frequency"]["total"], 0);
    assert!(r["lead_time"]["median_s"].is_null());
}

/// Requests served by two `kairo serve` processes in turn, good and refused: the KPI's
/// serving health counts every one of them once, with latency, and keeps them across restarts.
#[test]
fn serving_health_survives_restarts() {
    use crate::serving::Serve;
    let repo = demo_project();
    let today = |r: &serde_json::Value, version: i64| -> (i64, i64, i64) {
        let day = kairo_core::time::now_string()[..10].to_string();
        r["serving"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["model"] == "churn" && s["version"] == version && s["day"] == day.as_str())
            .map(|s| {
                (
                    s["requests"].as_i64().unwrap(),
                    s["client_errors"].as_i64().unwrap(),
                    s["server_errors"].as_i64().unwrap(),
                )
            })
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    };
    let before = repo.json(&["kpi", "--since", "1d"]);
    let (r0, c0, s0) = today(&before, 2);
    assert!(r0 > 0, "the demo's own traffic is there: {:#}", before["serving"]);
    let sample = before["serving"].as_array().unwrap().iter().find(|s| s["version"] == 2).unwrap().clone();
    assert!(
        sample["p50_ms"].as_f64().unwrap() > 0.0
            && sample["p99_ms"].as_f64().unwrap() >= sample["p50_ms"].as_f64().unwrap()
    );

    let good = serde_json::json!({"dataframe_split": {
        "columns": ["tenure", "spend", "support_calls", "usage_hours"], "data": [[6.0, 76.02, 4.0, 2.9]]}});
    let bad = serde_json::json!({"dataframe_split": {"columns": ["nope"], "data": [[1.0]]}});
    for (good_n, bad_n) in [(5, 3), (4, 0)] {
        let serve = Serve::start(&repo, &["churn"]);
        for _ in 0..good_n {
            assert_eq!(serve.post("/invocations", &good).0, 200);
        }
        for _ in 0..bad_n {
            assert_eq!(serve.post("/invocations", &bad).0, 400);
        }
        serve.stop();
    }
    let after = repo.json(&["kpi", "--since", "1d"]);
    assert_eq!(today(&after, 2), (r0 + 12, c0 + 3, s0), "{:#}", after["serving"]);
}
