//! Golden tests of the KPIs: a synthetic history written through the real store API (events
//! with their own times, runs, dataset versions, monitor checks), on SQLite and PostgreSQL,
//! whose every figure was computed by hand below.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use kairo_core::config::Config;
use kairo_core::run::{PathVersion, Run, RunStatus};
use kairo_core::{time, EventKind, Hash};
use kairo_kpi::{Query, Report, Sources};
use kairo_store::kpi::ImportedEvent;
use kairo_store::metadata::NewDatasetVersion;
use kairo_store::Metadata;
use serde_json::{json, Value};

const H: i64 = 3_600_000;
const D: i64 = 24 * H;
const M: i64 = 60_000;
/// Monday 2027-03-01T00:00:00Z: the period is four weeks from here.
const T0: i64 = 1_803_859_200_000;

fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("KAIRO_CI").is_some() => panic!("{var} is not set, and under CI a test never skips"),
        _ => {
            eprintln!("skipping: {var} is not set (`bash .ci/test` starts the services and sets it)");
            None
        }
    }
}

async fn postgres() -> Option<String> {
    let base = service("KAIRO_TEST_POSTGRES_URL")?;
    sqlx::any::install_default_drivers();
    let name = format!("kairo_kpi_{}", &kairo_core::run::new_run_id()[..20]);
    let pool = sqlx::AnyPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
    pool.close().await;
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

fn ev(at_ms: i64, actor: &str, kind: EventKind, subject: &str, payload: Value) -> ImportedEvent {
    ImportedEvent { at_ms, actor: actor.into(), kind, subject: subject.into(), payload }
}

fn deploy(before: Option<(i64, Option<i64>)>, after: (i64, Option<i64>), reason: &str) -> Value {
    let side = |(stable, candidate): (i64, Option<i64>)| json!({"stable": stable, "candidate": candidate});
    json!({"before": before.map(side), "after": side(after), "reason": reason})
}

struct NewRun<'a> {
    id: &'a str,
    stage: &'a str,
    actor: &'a str,
    trigger: &'a str,
    start: i64,
    end: i64,
    cpu_ms: Option<u64>,
    deps: Vec<PathVersion>,
}

async fn run(md: &Metadata, r: NewRun<'_>) {
    let mut run =
        Run::tracked(r.id.into(), r.stage.into(), r.actor.into(), "host".into(), time::millis_to_string(r.start));
    run.trigger = r.trigger.into();
    run.executor = "local".into();
    run.deps = r.deps;
    md.start_run(&run).await.unwrap();
    run.status = RunStatus::Succeeded;
    run.ended_at = Some(time::millis_to_string(r.end));
    run.cpu_ms = r.cpu_ms;
    assert!(md.finish_run(&run, &[]).await.unwrap());
}

/// The history, as `docs/kpi.md`'s worked example tells it. Returns when the dataset version
/// that caused churn v1 was recorded (the store stamps it with the real time).
async fn write_history(md: &Metadata) -> i64 {
    let data = Hash::of(b"train.csv v1");
    md.record_dataset_version(
        &NewDatasetVersion {
            path: "data/train.csv",
            hash: data,
            kind: "file",
            size: 10,
            files: 1,
            git_commit: None,
            git_branch: None,
        },
        "alice",
    )
    .await
    .unwrap();
    let data_at = md.dataset_version_recorded_ms("data/train.csv", &data.to_hex()).await.unwrap().unwrap();
    let dep = PathVersion { path: "data/train.csv".into(), hash: data, kind: "file".into(), size: 10, dataset: true };

    let auto = "automation:retrain";
    for (id, stage, actor, trigger, start, end, cpu, deps) in [
        ("0a00", "prepare", "alice", "manual", T0 + 30 * M, T0 + 50 * M, None, vec![]),
        ("0a01", "train", "alice", "manual", T0 + H, T0 + 2 * H, Some(5_400_000), vec![dep]),
        ("0a02", "train", auto, "alert", T0 + 10 * D + 10 * M, T0 + 10 * D + 40 * M, Some(3_600_000), vec![]),
        ("0a03", "train", "alice", "manual", T0 + 15 * D, T0 + 15 * D + 30 * M, Some(1_800_000), vec![]),
    ] {
        run(md, NewRun { id, stage, actor, trigger, start, end, cpu_ms: cpu, deps }).await;
    }

    let reg = |at, actor: &str, model: &str, v: i64, run: Option<&str>| {
        ev(
            at,
            actor,
            EventKind::ModelVersionRegistered,
            &format!("model:{model}"),
            json!({"version": v, "run_id": run}),
        )
    };
    let alert_at = T0 + 10 * D - 5 * M;
    let events = vec![
        // churn v1: trained on a new dataset version, approved by bob, deployed directly.
        reg(T0 + 2 * H + 10 * M, "alice", "churn", 1, Some("0a01")),
        ev(
            T0 + 2 * H + 20 * M,
            "alice",
            EventKind::PromotionRequested,
            "model:churn",
            json!({"version": 1, "alias": "champion"}),
        ),
        ev(
            T0 + 5 * H,
            "bob",
            EventKind::PromotionApproved,
            "model:churn",
            json!({"version": 1, "alias": "champion", "requested_by": "alice"}),
        ),
        ev(T0 + 6 * H, "alice", EventKind::DeploymentCreated, "deployment:churn", deploy(None, (1, None), "first")),
        // fraud: served by @champion only. Its first move is on a Sunday evening in UTC, a
        // Monday morning in Tokyo.
        reg(T0 + 2 * D, "carol", "fraud", 1, None),
        reg(T0 + 7 * D, "carol", "fraud", 2, None),
        ev(
            T0 + 6 * D + 20 * H,
            "carol",
            EventKind::AliasMoved,
            "model:fraud",
            json!({"alias": "champion", "before": null, "after": 1}),
        ),
        ev(
            T0 + 8 * D,
            "carol",
            EventKind::AliasMoved,
            "model:fraud",
            json!({"alias": "champion", "before": 1, "after": 2}),
        ),
        ev(
            T0 + 9 * D,
            "carol",
            EventKind::AliasMoved,
            "model:fraud",
            json!({"alias": "champion", "before": 2, "after": 1}),
        ),
        ev(
            T0 + 9 * D,
            "carol",
            EventKind::AliasMoved,
            "model:fraud",
            json!({"alias": "challenger", "before": null, "after": 2}),
        ),
        // Incident 1: drift since two hours before the alert; the loop retrains, promotes,
        // canaries v2 and resolves.
        ev(
            T0 + 10 * D,
            auto,
            EventKind::IncidentOpened,
            "incident:1",
            json!({
            "automation": "retrain", "model": "churn", "state": "triggered",
            "trigger": {"key": "event:9", "at_ms": T0 + 10 * D, "what": {
                "kind": "alert", "event": 9, "at": time::millis_to_string(alert_at),
                "alert": {"evidence": [{"start_ms": T0 + 10 * D - 2 * H}, {"start_ms": T0 + 10 * D - H}]}}}}),
        ),
        ev(
            T0 + 10 * D + 10 * M,
            auto,
            EventKind::IncidentAdvanced,
            "incident:1",
            json!({"from": "triggered", "to": "retraining", "at_ms": T0 + 10 * D + 10 * M, "facts": {}}),
        ),
        reg(T0 + 10 * D + 45 * M, auto, "churn", 2, Some("0a02")),
        ev(
            T0 + 10 * D + 45 * M,
            auto,
            EventKind::IncidentAdvanced,
            "incident:1",
            json!({"from": "registering", "to": "evaluating", "at_ms": T0 + 10 * D + 45 * M, "facts": {"challenger": {"version": 2}}}),
        ),
        ev(T0 + 10 * D + H, auto, EventKind::Promoted, "model:churn", json!({"version": 2, "alias": "champion"})),
        ev(
            T0 + 10 * D + 65 * M,
            auto,
            EventKind::DeploymentStarted,
            "deployment:churn",
            deploy(Some((1, None)), (1, Some(2)), "canary"),
        ),
        ev(
            T0 + 10 * D + 125 * M,
            "kairo-serve",
            EventKind::DeploymentCompleted,
            "deployment:churn",
            deploy(Some((1, Some(2))), (2, None), "healthy"),
        ),
        ev(
            T0 + 10 * D + 3 * H,
            auto,
            EventKind::IncidentAdvanced,
            "incident:1",
            json!({"from": "verifying", "to": "resolved", "at_ms": T0 + 10 * D + 3 * H, "facts": {}}),
        ),
        // churn v3: a canary the guard rolls back.
        reg(T0 + 15 * D + 40 * M, "alice", "churn", 3, Some("0a03")),
        ev(
            T0 + 15 * D + H,
            "alice",
            EventKind::DeploymentStarted,
            "deployment:churn",
            deploy(Some((2, None)), (2, Some(3)), "try v3"),
        ),
        ev(
            T0 + 15 * D + 90 * M,
            "kairo-serve",
            EventKind::DeploymentRolledBack,
            "deployment:churn",
            deploy(Some((2, Some(3))), (2, None), "automatic rollback of version 3: candidate error rate 0.2"),
        ),
        // Incident 3: a person asks for a retrain; the challenger is not better.
        ev(
            T0 + 16 * D,
            "alice",
            EventKind::IncidentOpened,
            "incident:3",
            json!({
            "automation": "retrain", "model": "churn", "trigger": {"what": {"kind": "manual", "at": time::millis_to_string(T0 + 16 * D)}}}),
        ),
        ev(
            T0 + 16 * D + H,
            auto,
            EventKind::IncidentAdvanced,
            "incident:3",
            json!({"from": "evaluating", "to": "not_better", "at_ms": T0 + 16 * D + H, "facts": {}}),
        ),
        // churn v4: created through MLflow (no run, no cause), deployed directly a day later,
        // rolled back by hand after it had taken all traffic.
        ev(
            T0 + 19 * D,
            "dave",
            EventKind::ModelVersionCreated,
            "model:churn",
            json!({"version": 4, "source": "runs:/x/model"}),
        ),
        ev(
            T0 + 20 * D,
            "alice",
            EventKind::DeploymentCreated,
            "deployment:churn",
            deploy(Some((2, None)), (4, None), "v4"),
        ),
        ev(
            T0 + 21 * D,
            "alice",
            EventKind::DeploymentRolledBack,
            "deployment:churn",
            deploy(Some((4, None)), (2, None), "manual rollback"),
        ),
        // Incident 2: opened by the schedule, never resolved.
        ev(
            T0 + 25 * D,
            auto,
            EventKind::IncidentOpened,
            "incident:2",
            json!({
            "automation": "nightly", "model": "churn", "trigger": {"what": {"kind": "schedule", "at": time::millis_to_string(T0 + 25 * D)}}}),
        ),
        ev(
            T0 + 25 * D + M,
            auto,
            EventKind::IncidentAdvanced,
            "incident:2",
            json!({"from": "triggered", "to": "retraining", "at_ms": T0 + 25 * D + M, "facts": {}}),
        ),
        // Outside the period: ignored except as history.
        ev(
            T0 + 40 * D,
            "alice",
            EventKind::DeploymentCreated,
            "deployment:churn",
            deploy(Some((2, None)), (5, None), "later"),
        ),
    ];
    md.import_events(&events).await.unwrap();

    // Serving health of churn v2 on its first full day, from two serving processes, and a day
    // before the period.
    let day = |requests, client_errors, server_errors, micros: u64, instance: &str, day_ms| {
        let mut latency = kairo_core::latency::Histogram::new();
        for _ in 0..requests {
            latency.record(micros);
        }
        kairo_store::kpi::ServingDay {
            deployment: "churn".into(),
            version: 2,
            day_ms,
            instance: instance.into(),
            requests,
            client_errors,
            server_errors,
            latency,
            updated_ms: day_ms,
        }
    };
    md.put_serving_days(&[
        day(100, 2, 1, 1_000, "a", T0 + 11 * D),
        day(50, 0, 1, 3_000, "b", T0 + 11 * D),
        day(7, 0, 0, 1, "a", T0 - D),
    ])
    .await
    .unwrap();
    // A process writes its running totals again: the row is replaced, not added to.
    md.put_serving_days(&[day(100, 2, 1, 1_000, "a", T0 + 11 * D)]).await.unwrap();

    for (day, scheduled, times) in [(10, true, 3), (11, true, 2), (12, false, 1)] {
        for i in 0..times {
            md.record_monitor_check("churn-drift", T0 + day * D + i * H, scheduled).await.unwrap();
        }
    }
    data_at
}

fn config(extra: &str) -> Config {
    Config::parse(&format!("version: 1\n{extra}")).unwrap()
}

const VALUE: &str = "value:\n  currency: EUR\n  engineer_hourly_cost: 80\n  cpu_hour_cost: 0.5\n  manual_minutes: {retrain: 120, deploy: 30, drift_check: 15, rollback: 45}\n";

async fn report(md: &Metadata, config: &Config) -> Report {
    let q = Query { since_ms: T0, until_ms: T0 + 28 * D, model: None };
    kairo_kpi::compute(&Sources { md, objects: None, git_root: None }, config, &q).await.unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * b.abs().max(1.0)
}

async fn golden(url: &str) {
    let md = Metadata::connect(url).await.unwrap();
    let data_at = write_history(&md).await;
    let r = report(&md, &config(VALUE)).await;

    // Deployment frequency: churn v1, v2, v4 and fraud v1, v2, v1 again reached 100%.
    let df = &r.deployment_frequency;
    assert_eq!(df.total, 6);
    assert!(close(df.per_week, 1.5));
    let weeks: Vec<(&str, u64)> = df.weeks.iter().map(|w| (w.week.as_str(), w.count)).collect();
    assert_eq!(weeks, [("2027-03-01", 2), ("2027-03-08", 3), ("2027-03-15", 1), ("2027-03-22", 0)]);
    let by_model: Vec<(&str, u64)> = df.by_model.iter().map(|m| (m.model.as_str(), m.count)).collect();
    assert_eq!(by_model, [("churn", 3), ("fraud", 3)]);

    // Lead time: v1 from its dataset version, v2 from its alert; the other four have no cause.
    let lt = &r.lead_time;
    assert_eq!((lt.changes, lt.with_cause), (6, 2));
    let v1_total = (T0 + 6 * H - data_at) as f64 / 1000.0;
    assert!(close(lt.median_s.unwrap(), (v1_total + 7800.0) / 2.0), "{:?}", lt.median_s);
    let v2 = lt.changes_detail.iter().find(|c| c.model == "churn" && c.version == 2).unwrap();
    assert_eq!(v2.cause.as_deref(), Some("alert"));
    assert_eq!(v2.total_s, Some(7800.0));
    assert_eq!(v2.stages_s, [Some(900.0), Some(1800.0), Some(1200.0), Some(0.0), Some(300.0), Some(3600.0)]);
    let v1 = lt.changes_detail.iter().find(|c| c.model == "churn" && c.version == 1).unwrap();
    assert_eq!(v1.cause.as_deref(), Some("dataset"));
    assert_eq!(v1.stages_s[1..], [Some(3600.0), Some(1200.0), Some(9600.0), Some(3600.0), Some(0.0)]);
    let v4 = lt.changes_detail.iter().find(|c| c.model == "churn" && c.version == 4).unwrap();
    assert_eq!((v4.cause.as_deref(), v4.total_s), (None, None), "a change with no recorded cause");
    assert_eq!(v4.stages_s, [None, None, None, Some(0.0), Some(86400.0), Some(0.0)]);
    let medians: Vec<Option<f64>> = lt.stages.iter().map(|s| s.median_s).collect();
    let wait_v1 = (T0 + H - data_at) as f64 / 1000.0;
    assert_eq!(
        medians,
        [Some((wait_v1 + 900.0) / 2.0), Some(2700.0), Some(1200.0), Some(0.0), Some(86400.0), Some(0.0)]
    );
    assert_eq!(lt.bottleneck.as_deref(), Some("waiting_to_start"));
    assert!(close(lt.stages.iter().map(|s| s.share).sum::<f64>(), 1.0));

    // Change failure rate: 7 changes (6 reached, 1 canary aborted); v3's canary, v4's manual
    // rollback, fraud v2's move back, and v2 followed by incident 3 within 7 days.
    let cf = &r.change_failure;
    assert_eq!((cf.changes, cf.failed), (7, 4));
    assert!(close(cf.rate.unwrap(), 4.0 / 7.0));
    let mut why: Vec<(String, i64, String)> =
        cf.failures.iter().map(|f| (f.model.clone(), f.version, f.why.clone())).collect();
    why.sort();
    assert_eq!(
        why,
        [
            ("churn".into(), 2, "incident".into()),
            ("churn".into(), 3, "canary_rolled_back".into()),
            ("churn".into(), 4, "rolled_back".into()),
            ("fraud".into(), 2, "rolled_back".into())
        ]
    );

    // Time to restore: one resolved in 3 h (detected 1 h 55 min after the drift began), one
    // closed not better, one open for the last 3 days.
    let rs = &r.restore;
    assert_eq!((rs.incidents, rs.resolved, rs.closed_unresolved, rs.open), (3, 1, 1, 1));
    assert_eq!((rs.median_s, rs.mean_s), (Some(10800.0), Some(10800.0)));
    assert_eq!((rs.detect_median_s, rs.detected), (Some(6900.0), 1));
    let open = rs.incidents_detail.iter().find(|i| i.id == 2).unwrap();
    assert_eq!((open.restore_s, open.open_for_s), (None, Some(3.0 * 86400.0)));

    // Automation rate.
    let a = &r.automation;
    let pairs = |s: &kairo_kpi::report::Share| (s.automated, s.manual);
    assert_eq!(pairs(&a.retrains), (1, 2), "train runs: r2 by the loop; r1, r3 by alice");
    assert_eq!(pairs(&a.promotions), (1, 1));
    assert_eq!(pairs(&a.deploys), (1, 6));
    assert_eq!(pairs(&a.rollbacks), (1, 1));
    assert_eq!(pairs(&a.drift_checks), (5, 1));

    // Serving health: both processes summed; percentiles from the merged histogram.
    assert_eq!(r.serving.len(), 1, "{:?}", r.serving);
    let sv = &r.serving[0];
    assert_eq!((sv.model.as_str(), sv.version, sv.day.as_str()), ("churn", 2, "2027-03-12"));
    assert_eq!((sv.requests, sv.client_errors, sv.server_errors), (150, 2, 2));
    assert!(close(sv.error_rate, 2.0 / 150.0));
    let near = |got: Option<f64>, want: f64| (got.unwrap() - want).abs() <= 0.09 * want;
    assert!(near(sv.p50_ms, 1.0) && near(sv.p95_ms, 3.0) && near(sv.p99_ms, 3.0), "{sv:?}");

    // Compute.
    let c = &r.compute;
    assert_eq!((c.runs, c.failed, c.unmeasured), (4, 0, 1));
    assert_eq!((c.wall_s, c.cpu_s), (8400.0, 10800.0));
    let rows: Vec<(&str, i64, f64, f64)> =
        c.by_model.iter().map(|r| (r.key.as_str(), r.runs, r.wall_s, r.cpu_s)).collect();
    assert_eq!(rows, [("(other)", 1, 1200.0, 0.0), ("churn", 3, 7200.0, 10800.0)]);
    let rows: Vec<(&str, i64)> = c.by_trigger.iter().map(|r| (r.key.as_str(), r.runs)).collect();
    assert_eq!(rows, [("alert (automation)", 1), ("manual", 3)]);

    // ROI: 2 h + 0.5 h + 0.5 h (two monitor-days) + 0.75 h saved at 80/h; 3 CPU-hours at 0.5.
    let v = &r.value;
    assert!(v.configured);
    assert!(close(v.hours_saved, 3.75));
    assert_eq!(v.money_saved, Some(300.0));
    assert_eq!(v.compute_cost, Some(1.5));
    assert_eq!(v.net, Some(298.5));
    assert_eq!(v.net_formula, "saved 300 − compute 1.50 = 298.50");
    let retrain = v.lines.iter().find(|l| l.item == "retrain").unwrap();
    assert_eq!(retrain.formula, "1 × 120 min ÷ 60 = 2 h; × 80 = 160");
    assert_eq!(v.missing.len(), 1, "{:?}", v.missing);
    assert!(v.missing[0].starts_with("value.prediction_value or value.outcome_value"));

    // Without `value:`: time figures only, and what to configure.
    let bare = report(&md, &config("")).await;
    assert!(!bare.value.configured && bare.value.lines.is_empty() && bare.value.net.is_none());
    assert!(bare.value.missing[0].contains("`value:` section"));

    // Weeks in Tokyo: fraud's Sunday-evening move lands in the second week.
    let tokyo = report(&md, &config("kpi:\n  timezone: \"+09:00\"\n")).await;
    let weeks: Vec<(&str, u64)> = tokyo.deployment_frequency.weeks.iter().map(|w| (w.week.as_str(), w.count)).collect();
    assert_eq!(weeks, [("2027-03-01", 1), ("2027-03-08", 4), ("2027-03-15", 1), ("2027-03-22", 0), ("2027-03-29", 0)]);
    assert_eq!(tokyo.period.timezone, "+09:00");

    // A shorter failure window: incident 3 (5 d 22 h after v2) no longer counts against v2.
    let short = report(&md, &config("kpi:\n  failure_window: 5d\n")).await;
    assert_eq!((short.change_failure.changes, short.change_failure.failed), (7, 3));

    // One model.
    let q = Query { since_ms: T0, until_ms: T0 + 28 * D, model: Some("fraud".into()) };
    let fraud = kairo_kpi::compute(&Sources { md: &md, objects: None, git_root: None }, &config(""), &q).await.unwrap();
    assert_eq!((fraud.deployment_frequency.total, fraud.change_failure.changes, fraud.restore.incidents), (3, 3, 0));
    md.close().await;
}

#[tokio::test]
async fn golden_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    golden(&format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display())).await;
}

#[tokio::test]
async fn golden_postgres() {
    let Some(url) = postgres().await else { return };
    golden(&url).await;
}

#[tokio::test]
async fn an_empty_ledger_reports_nothing_and_divides_by_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let md = Metadata::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display())).await.unwrap();
    let r = report(&md, &config("")).await;
    assert_eq!(r.deployment_frequency.total, 0);
    assert_eq!((r.lead_time.median_s, r.change_failure.rate, r.restore.median_s), (None, None, None));
    assert_eq!(r.automation.retrains.rate, None);
    assert_eq!(r.deployment_frequency.weeks.len(), 4);
    let page = kairo_kpi::html::render(&r, kairo_kpi::html::Lang::Ja);
    assert!(page.contains("この期間はありません"));
}

/// A change trained from a commit (no tracked data) is dated from the commit's time, read from
/// the project's git history.
#[tokio::test]
async fn a_commit_is_a_cause() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str], date: Option<&str>| {
        let mut c = std::process::Command::new("git");
        c.args(args).current_dir(dir.path());
        if let Some(d) = date {
            c.env("GIT_COMMITTER_DATE", d).env("GIT_AUTHOR_DATE", d);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "-q"], None);
    git(
        &["-c", "user.name=T", "-c", "user.email=t@x", "commit", "-q", "--allow-empty", "-m", "m"],
        Some("2027-03-01T10:00:00Z"),
    );
    let commit = git(&["rev-parse", "HEAD"], None).trim().to_string();
    let md = Metadata::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display())).await.unwrap();
    let mut r =
        Run::tracked("0b01".into(), "train".into(), "alice".into(), "h".into(), time::millis_to_string(T0 + 11 * H));
    r.executor = "local".into();
    r.trigger = "ci".into();
    r.git.commit = Some(commit);
    md.start_run(&r).await.unwrap();
    r.status = RunStatus::Succeeded;
    r.ended_at = Some(time::millis_to_string(T0 + 12 * H));
    md.finish_run(&r, &[]).await.unwrap();
    md.import_events(&[
        ev(T0 + 12 * H, "ci", EventKind::ModelVersionRegistered, "model:m", json!({"version": 1, "run_id": "0b01"})),
        ev(T0 + 13 * H, "ci", EventKind::DeploymentCreated, "deployment:m", deploy(None, (1, None), "ci")),
    ])
    .await
    .unwrap();
    let q = Query { since_ms: T0, until_ms: T0 + 7 * D, model: None };
    let with_git = Sources { md: &md, objects: None, git_root: Some(dir.path()) };
    let r = kairo_kpi::compute(&with_git, &config(""), &q).await.unwrap();
    let c = &r.lead_time.changes_detail[0];
    assert_eq!(c.cause.as_deref(), Some("commit"));
    assert_eq!(c.cause_at.as_deref(), Some("2027-03-01T10:00:00.000Z"));
    assert_eq!(c.total_s, Some(3.0 * 3600.0), "10:00 commit → 13:00 in production");
    assert_eq!(c.stages_s[0], Some(3600.0), "waited an hour to start training");
    // Without the git history there is no cause to date it from.
    let r = kairo_kpi::compute(&Sources { md: &md, objects: None, git_root: None }, &config(""), &q).await.unwrap();
    assert_eq!(r.lead_time.changes_detail[0].cause, None);
}

/// A serving day whose stored histogram is damaged is an error naming it, not a panic.
#[tokio::test]
async fn a_damaged_serving_day_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
    let md = Metadata::connect(&url).await.unwrap();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO serving_days VALUES ('churn', 3, $1, 'x', 1, 0, 0, 'v1 999:1', 0)")
        .bind(T0)
        .execute(&pool)
        .await
        .unwrap();
    let err = report_err(&md).await;
    assert!(
        err.contains("serving day of churn version 3 on 2027-03-01") && err.contains("bucket 999 is out of range"),
        "{err}"
    );
}

async fn report_err(md: &Metadata) -> String {
    let q = Query { since_ms: T0, until_ms: T0 + 28 * D, model: None };
    kairo_kpi::compute(&Sources { md, objects: None, git_root: None }, &config(""), &q).await.unwrap_err().to_string()
}
