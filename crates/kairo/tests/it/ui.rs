//! The web UI over a real socket: the overview page, its languages, its security headers,
//! escaping, and what a browser without credentials is told. (Real-browser tests come with the
//! rest of the pages.)

use crate::{spawn_listening, Repo};

fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
    let client = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut r = client.get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().unwrap();
    let status = r.status().as_u16();
    let h = r.headers().clone();
    (status, h, r.text().unwrap())
}

#[test]
fn the_overview_page_in_two_languages_with_strict_headers() {
    let repo = Repo::new();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/logreg20.onnx");
    repo.kairo(&["models", "register", "clf", "--file", model.to_str().unwrap()]).assert().success();
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
    repo.kairo(&["models", "alias", "clf", "<b>x</b>", "1"]).output().unwrap();
    let (mut server, url) = spawn_listening(&repo, &["server", "--port", "0"]);

    let (status, h, body) = get(&format!("{url}/"), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(body.contains("<html lang=\"en\">") && body.contains("Overview") && body.contains("Deployment frequency"));
    assert!(body.contains(">clf</a>") && body.contains("v1"), "{body}");
    assert!(!body.contains("<script") && !body.contains("style="), "no inline script or style");
    assert!(!body.contains("<b>x</b>") && body.contains("&lt;b&gt;x&lt;/b&gt;"), "every value escaped: {body}");

    // Japanese from Accept-Language, or by choice; the choice wins.
    let (_, _, ja) = get(&format!("{url}/"), &[("accept-language", "ja-JP,ja;q=0.9,en;q=0.5")]);
    assert!(ja.contains("<html lang=\"ja\">") && ja.contains("概要") && ja.contains("デプロイ頻度"), "{ja}");
    let (_, _, en) = get(&format!("{url}/?lang=en"), &[("accept-language", "ja")]);
    assert!(en.contains("<html lang=\"en\">"));

    let (status, h, css) = get(&format!("{url}/ui/kairo.css"), &[]);
    assert_eq!(status, 200);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/css") && css.contains("dl.figures"));

    // With users and no browser login configured, a browser is told how to authenticate.
    crate::auth::add_user(&repo, "ops", &["viewer"], Some("a password long enough"));
    std::thread::sleep(std::time::Duration::from_millis(5_500));
    let (status, _, body) = get(&format!("{url}/"), &[]);
    assert_eq!(status, 401, "{body}");
    let client = reqwest::blocking::Client::new();
    let r = client.get(format!("{url}/")).basic_auth("ops", Some("a password long enough")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _ = server.kill();
    let _ = server.wait();
}

/// A project whose `train` stage ran twice: lr 0.5 (acc 0.5), then lr 0.9 (acc 0.9).
fn two_training_runs() -> Repo {
    two_training_runs_in(Repo::new())
}

fn two_training_runs_in(repo: Repo) -> Repo {
    repo.write("train.sh", "printf '{\"acc\": %s}' \"$(sed -n 's/ *lr: *//p' params.yaml)\" > m.json\n");
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!("{config}stages:\n  train:\n    cmd: sh train.sh\n    deps: [train.sh]\n    params: [train.lr]\n    metrics: [m.json]\n"),
    );
    for lr in ["0.5", "0.9"] {
        repo.write("params.yaml", format!("train:\n  lr: {lr}\n"));
        let out = repo.kairo(&["run"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    repo
}

/// `/runs`: the MLflow filter grammar over pipeline runs, paging, a bad filter named.
#[test]
fn the_runs_page_filters_and_pages_on_the_server() {
    runs_page(two_training_runs());
}

/// The same pages on PostgreSQL (the filter is evaluated by the database).
#[test]
fn the_runs_and_compare_pages_on_postgres() {
    let Some(base) = crate::service("KAIRO_TEST_POSTGRES_URL") else { return };
    let url = crate::faults::fresh_postgres_database(&base);
    runs_page(two_training_runs_in(Repo::bare().with_database(url.clone()).initialised()));
    let url = crate::faults::fresh_postgres_database(&base);
    compare_page(two_training_runs_in(Repo::bare().with_database(url).initialised()));
}

fn runs_page(repo: Repo) {
    let (mut server, url) = spawn_listening(&repo, &["server", "--port", "0"]);
    let rows = |body: &str| body.matches("<tr>").count().saturating_sub(1);

    let (status, _, body) = get(&format!("{url}/runs"), &[]);
    assert_eq!(status, 200);
    assert_eq!(rows(&body), 2, "{body}");
    assert!(body.contains("acc=0.9") && body.contains("acc=0.5"));

    let (status, _, body) = get(&format!("{url}/runs?filter=metrics.acc+%3E+0.6+and+params.lr+%3D+%270.9%27"), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows(&body), 1, "{body}");
    assert!(body.contains("acc=0.9") && !body.contains("acc=0.5"));
    assert!(body.contains("value=\"metrics.acc &gt; 0.6 and params.lr = '0.9'\""), "the filter stays in the form");

    let (status, _, body) = get(&format!("{url}/runs?filter=attributes.stage+%3D+%27train%27&per=1"), &[]);
    assert_eq!((status, rows(&body)), (200, 1));
    assert!(body.contains("rel=\"next\"") && body.contains("page=2"), "{body}");
    let (_, _, body) = get(&format!("{url}/runs?filter=attributes.stage+%3D+%27train%27&per=1&page=2"), &[]);
    assert!(body.contains("rel=\"prev\"") && !body.contains("rel=\"next\""));

    // Sorted by a metric, either way; the header links toggle it.
    let (status, _, asc) = get(&format!("{url}/runs?cols=metrics.acc&sort=metrics.acc"), &[]);
    assert_eq!(status, 200, "{asc}");
    assert!(asc.find("0.500000").unwrap() < asc.find("0.900000").unwrap(), "ascending: {asc}");
    assert!(asc.contains("aria-sort=\"ascending\""), "{asc}");
    let (_, _, desc) = get(&format!("{url}/runs?cols=metrics.acc&sort=-metrics.acc"), &[]);
    assert!(desc.find("0.900000").unwrap() < desc.find("0.500000").unwrap(), "descending: {desc}");
    let (_, _, oldest) = get(&format!("{url}/runs?cols=params.lr&sort=started"), &[]);
    assert!(oldest.find(">0.5<").unwrap() < oldest.find(">0.9<").unwrap(), "oldest first: {oldest}");
    assert_eq!(get(&format!("{url}/runs?sort=bogus"), &[]).0, 400);

    let (status, _, body) = get(&format!("{url}/runs?filter=metrics.acc+%3E%3E+1"), &[]);
    assert_eq!(status, 400);
    assert!(body.contains("role=\"alert\""), "{body}");

    let (_, _, ja) = get(&format!("{url}/runs?lang=ja"), &[]);
    assert!(ja.contains("実行") && ja.contains("フィルター"));
    // The language switch keeps the view (its filter and page).
    let (_, _, filtered) = get(&format!("{url}/runs?filter=metrics.acc+%3E+0.6&page=1"), &[]);
    assert!(filtered.contains("href=\"/runs?filter=metrics.acc+%3E+0.6&amp;page=1&amp;lang=ja\""), "{filtered}");

    // One run, reached from the list.
    let (_, _, list) = get(&format!("{url}/runs?filter=metrics.acc+%3E+0.6"), &[]);
    let href = list.split("href=\"/runs/").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    let (status, _, run) = get(&format!("{url}/runs/{href}"), &[]);
    assert_eq!(status, 200, "{run}");
    assert!(
        run.contains("train.lr") && run.contains("0.9") && run.contains("train.sh") && run.contains("sh train.sh"),
        "{run}"
    );
    let (status, _, missing) = get(&format!("{url}/runs/ffffffffffff"), &[]);
    assert_eq!(status, 404);
    assert!(missing.contains("ffffffffffff"));
    assert_eq!(get(&format!("{url}/runs/%3Cscript%3E"), &[]).0, 404);
    let _ = server.kill();
    let _ = server.wait();
}

/// A real browser (Debian's Chromium through playwright-core, `.ci/browser.sh`) clicks through
/// the pages; axe-core finds no serious or critical violation; the CSP is never violated.
/// Screenshots are kept in `$CARGO_TARGET_TMPDIR/ui-screenshots`.
#[test]
fn a_real_browser_clicks_through_the_pages() {
    let Some(node_path) = crate::service("KAIRO_TEST_BROWSER_NODE_PATH") else { return };
    let repo = two_training_runs();
    let (mut server, url) = spawn_listening(&repo, &["server", "--port", "0"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/ui.mjs");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(&url)
        .arg(&shots)
        .env("NODE_PATH", node_path)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert_eq!(report["pages"].as_array().unwrap().len(), 5, "{report}");
    for name in ["overview", "runs", "runs-filtered", "run", "runs-ja"] {
        assert!(shots.join(format!("{name}.png")).metadata().unwrap().len() > 1000, "{name}.png");
    }
}

/// `/incidents` and one incident's timeline, in the loop's own words.
#[test]
fn the_incident_pages_show_the_timeline() {
    let (_repo, server, _, _) = crate::api_v1::seeded();
    let url = &server.url;
    let (status, _, list) = get(&format!("{url}/incidents"), &[]);
    assert_eq!(status, 200);
    assert!(list.contains("tidy") && list.contains("href=\"/incidents/1?lang=en\""), "{list}");
    let (status, _, one) = get(&format!("{url}/incidents/1"), &[]);
    assert_eq!(status, 200, "{one}");
    assert!(one.contains("Incident 1: failed") && one.contains("Timeline") && one.contains("opened by hand"), "{one}");
    assert!(one.contains("role=\"alert\"") && one.contains("register"), "the failed step is named: {one}");
    let (_, _, ja) = get(&format!("{url}/incidents/1?lang=ja"), &[]);
    assert!(ja.contains("経過"));
    assert_eq!(get(&format!("{url}/incidents/999"), &[]).0, 404);
    assert_eq!(get(&format!("{url}/incidents/abc"), &[]).0, 404);
}

fn run_ids(repo: &Repo) -> Vec<String> {
    repo.json(&["runs", "ls"]).as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

/// `/compare`: only what differs by default, every row on request, why the runs differ,
/// a chart per metric; bad selections named.
#[test]
fn the_compare_page_shows_what_differs_and_why() {
    compare_page(two_training_runs());
}

fn compare_page(repo: Repo) {
    let ids = run_ids(&repo);
    assert_eq!(ids.len(), 2);
    let (mut server, url) = spawn_listening(&repo, &["server", "--port", "0"]);
    let (status, _, body) = get(&format!("{url}/compare?runs={}&runs={}", ids[0], ids[1]), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Compare runs (2)") && body.contains("Why are these different?"), "{body}");
    let why = body.split("id=\"why-h\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(why.contains("Parameters") && why.contains("train.lr"), "params differ: {why}");
    assert!(!why.contains("Environment"), "same environment: {why}");
    assert!(body.contains("<svg class=\"bars\"") && body.contains("acc"), "a chart for acc");
    assert!(!body.contains(">command<"), "the same command is hidden by default");
    let (_, _, all) = get(&format!("{url}/compare?runs={},{}&all=1", ids[0], ids[1]), &[]);
    assert!(all.contains(">command<") && all.contains("sh train.sh"), "all rows on request");
    // Short ids as typed by hand; junk and unknown ids named.
    let (status, _, _) = get(&format!("{url}/compare?runs={}&runs={}", &ids[0][..24], &ids[1][..24]), &[]);
    assert_eq!(status, 200);
    let (status, _, body) = get(&format!("{url}/compare?runs=%3Cscript%3E"), &[]);
    assert_eq!(status, 400);
    assert!(body.contains("is not a run id") && !body.contains("<script>"), "{body}");
    assert_eq!(get(&format!("{url}/compare?runs=ffffffffffffffff"), &[]).0, 404);
    let many: Vec<String> = (0..501).map(|i| format!("{i:032x}")).collect();
    let (status, _, body) = get(&format!("{url}/compare?runs={}", many.join(",")), &[]);
    assert_eq!(status, 400);
    assert!(body.contains("at most 500"), "{body}");
    // The runs page sends ticked runs here.
    let (_, _, runs) = get(&format!("{url}/runs"), &[]);
    assert!(runs.contains("action=\"/compare\"") && runs.contains("name=\"runs\""), "{runs}");
    // Chosen columns.
    let (status, _, cols) = get(&format!("{url}/runs?cols=params.lr,metrics.acc,data.train.sh"), &[]);
    assert_eq!(status, 200);
    assert!(cols.contains(">params.lr<") && cols.contains("0.900000") && cols.contains(">data.train.sh<"), "{cols}");
    assert_eq!(get(&format!("{url}/runs?cols=bogus.x"), &[]).0, 400);
    let _ = server.kill();
    let _ = server.wait();
}

/// `/models`, a model's page, the approval inbox: an approver sees the decision form and
/// decides with a reason; a viewer sees why not, and a post of the form is refused.
#[test]
fn the_approval_inbox_decides_by_role() {
    let repo = Repo::new();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/logreg20.onnx");
    for _ in 0..2 {
        repo.kairo(&["models", "register", "clf", "--file", model.to_str().unwrap()]).assert().success();
    }
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write("kairo.yaml", format!("{config}models:\n  clf:\n    approval: required\n    four_eyes: false\n"));
    repo.kairo(&["models", "promote", "clf", "2"]).assert().code(6);
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
    crate::auth::add_user(&repo, "bob", &["approver"], Some("bob's long password"));
    crate::auth::add_user(&repo, "vera", &["viewer"], Some("vera's long password"));
    let (mut server, url) = spawn_listening(&repo, &["server", "--port", "0"]);
    let client = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let as_user = |user: &str, path: &str| {
        let r = client
            .get(format!("{url}{path}"))
            .basic_auth(user, Some(format!("{user}'s long password")))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let decide = |user: &str, form: &[(&str, &str)], origin: Option<&str>| {
        let mut r = client
            .post(format!("{url}/ui/models/clf/promotions/decide"))
            .basic_auth(user, Some(format!("{user}'s long password")))
            .form(form);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        (status, location, r.text().unwrap())
    };

    let (status, models) = as_user("vera", "/models");
    assert_eq!(status, 200, "{models}");
    assert!(models.contains("Approval inbox (1)") && models.contains("href=\"/models/clf?lang=en\""), "{models}");
    let (status, inbox) = as_user("vera", "/approvals");
    assert_eq!(status, 200);
    assert!(inbox.contains("clf v2") && inbox.contains("Your role does not allow approving"), "{inbox}");
    assert!(!inbox.contains("<form class=\"decide\""), "no form for a viewer");
    let approve = [("decision", "approve"), ("version", "2"), ("alias", "champion"), ("reason", "looked at it")];
    let (status, _, body) = decide("vera", &approve, None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("vera may not approve") && body.contains("<html"), "a page, not JSON: {body}");

    let (_, inbox) = as_user("bob", "/approvals");
    assert!(inbox.contains("<form class=\"decide\"") && inbox.contains("name=\"reason\""), "{inbox}");
    let (status, _, body) =
        decide("bob", &[("decision", "approve"), ("version", "2"), ("alias", "champion"), ("reason", "  ")], None);
    assert_eq!(status, 400);
    assert!(body.contains("needs a reason"), "{body}");
    let (status, _, _) = decide("bob", &approve, Some("http://evil.example"));
    assert_eq!(status, 403, "a form posted from another site");
    let (status, location, body) = decide("bob", &approve, None);
    assert_eq!(status, 303, "{body}");
    assert_eq!(location.as_deref(), Some("/models/clf?lang=en"));
    let shown = repo.json(&["models", "show", "clf"]);
    let p = &shown["promotions"].as_array().unwrap().iter().find(|p| p["version"] == 2).unwrap().clone();
    assert_eq!(
        (p["status"].as_str(), p["decided_by"].as_str(), p["reason"].as_str()),
        (Some("promoted"), Some("bob"), Some("looked at it")),
        "{p}"
    );

    let (status, page) = as_user("bob", "/models/clf");
    assert_eq!(status, 200);
    assert!(
        page.contains("Alias history") && page.contains("looked at it") && page.contains("Metrics across versions"),
        "{page}"
    );
    let (_, inbox) = as_user("bob", "/approvals");
    assert!(inbox.contains("Nothing is waiting for approval"), "{inbox}");
    assert_eq!(as_user("bob", "/models/nope").0, 404);

    // The deployment, and its change.
    repo.kairo(&["deploy", "clf", "--version", "2", "--strategy", "canary", "--weight", "20"]).assert().success();
    let (status, d) = as_user("vera", "/deployments/clf");
    assert_eq!(status, 200, "{d}");
    assert!(
        d.contains("Candidate") && d.contains("v2") && d.contains("20% v2") && d.contains("deployment.started"),
        "{d}"
    );
    let (_, list) = as_user("vera", "/deployments");
    assert!(list.contains("canary") && list.contains("20%"), "{list}");
    let _ = server.kill();
    let _ = server.wait();
}

/// `/data` with a file-level diff, `/lineage` in both directions, a run's files with
/// previews and downloads, `/monitors`.
#[test]
fn data_lineage_and_run_files_pages() {
    let (repo, server, pipeline_run, tracked) = crate::api_v1::seeded();
    let url = &server.url;
    let (status, _, data) = get(&format!("{url}/data"), &[]);
    assert_eq!(status, 200);
    assert!(data.contains("href=\"/data?path=data&amp;lang=en\""), "{data}");
    let (status, _, versions) = get(&format!("{url}/data?path=data"), &[]);
    assert_eq!(status, 200, "{versions}");
    assert!(versions.contains("type=\"radio\"") && versions.contains("Show the difference"));
    let hashes: Vec<String> = repo
        .json(&["data", "log", "data"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["hash"].as_str().unwrap().to_string())
        .collect();
    let (status, _, diff) = get(&format!("{url}/data?path=data&from={}&to={}", hashes[1], hashes[0]), &[]);
    assert_eq!(status, 200, "{diff}");
    assert!(diff.contains("Modified (1)") && diff.contains("<li class=\"mono\">a.csv</li>"), "{diff}");
    assert_eq!(get(&format!("{url}/data?path=data&from=workspace&to={}", hashes[0]), &[]).0, 400, "no work-tree diffs");
    assert_eq!(get(&format!("{url}/data?path=nope"), &[]).0, 404);

    // From the dataset's newest version: the run that read it and what that run wrote.
    let (status, _, lineage) = get(&format!("{url}/lineage?target=data"), &[]);
    assert_eq!(status, 200, "{lineage}");
    assert!(lineage.contains(&format!("count {}", &pipeline_run[..8])) && lineage.contains("count.txt@"), "{lineage}");
    assert!(lineage.contains("<svg class=\"lineage\""));
    let (status, _, from_run) = get(&format!("{url}/lineage?target={pipeline_run}"), &[]);
    assert_eq!(status, 200);
    assert!(from_run.contains("data@"), "upstream of the run: {from_run}");
    let (status, _, missing) = get(&format!("{url}/lineage?target=no/such/thing"), &[]);
    assert_eq!(status, 404);
    assert!(missing.contains("role=\"alert\""));

    // A pipeline run's output file, previewed and downloaded; an MLflow client's artifact.
    let (status, _, run) = get(&format!("{url}/runs/{pipeline_run}?preview=count.txt"), &[]);
    assert_eq!(status, 200, "{run}");
    assert!(run.contains("Preview") && run.contains("<pre class=\"log\">3\n</pre>"), "{run}");
    let (status, h, bytes) = get(&format!("{url}/runs/{pipeline_run}/file?path=count.txt"), &[]);
    assert_eq!((status, bytes.as_str()), (200, "3\n"));
    assert!(h["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert_eq!(
        get(&format!("{url}/runs/{pipeline_run}/file?path=data/a.csv"), &[]).0,
        404,
        "an input is not the run's file"
    );
    let (status, _, tracked_page) = get(&format!("{url}/runs/{tracked}"), &[]);
    assert_eq!(status, 200);
    assert!(tracked_page.contains("?dir=report"), "{tracked_page}");
    let (_, _, dir) = get(&format!("{url}/runs/{tracked}?dir=report&preview=report/summary.txt"), &[]);
    assert!(dir.contains("report/summary.txt") && dir.contains("all good"), "{dir}");
    assert_eq!(get(&format!("{url}/runs/{tracked}/file?path=../../etc/passwd"), &[]).0, 400);

    // A tag as a column and as a filter (the database evaluates it).
    let (status, v) = server
        .post("/api/2.0/mlflow/runs/set-tag", serde_json::json!({"run_id": tracked, "key": "team", "value": "risk"}));
    assert_eq!(status, 200, "{v}");
    let (status, _, cols) = get(&format!("{url}/runs?cols=tags.team,metrics.loss"), &[]);
    assert_eq!(status, 200);
    assert!(cols.contains(">tags.team<") && cols.contains(">risk<"), "{cols}");
    let (_, _, only) = get(&format!("{url}/runs?filter=tags.team+%3D+%27risk%27"), &[]);
    assert!(only.contains(&tracked[..12]) && !only.contains(&pipeline_run[..12]), "{only}");
    let (status, _, like) = get(&format!("{url}/runs?filter=tags.team+LIKE+%27r%25%27"), &[]);
    assert_eq!(status, 400, "{like}");

    let (status, _, monitors) = get(&format!("{url}/monitors"), &[]);
    assert_eq!(status, 200);
    assert!(monitors.contains("No monitors"), "{monitors}");
    assert_eq!(get(&format!("{url}/monitors/nope"), &[]).0, 404);
}

/// The walk through the loop in a real browser, logged in through a real OIDC
/// provider: bob (approver) finds a run by filter, compares two runs, approves a pending
/// promotion with a reason, sees the deployment change a deployer then makes, opens an
/// incident's timeline; alice (scientist) sees the inbox without a decision form and her
/// forged decision is refused. Every page: screenshot, axe-core, no console or CSP error.
#[test]
fn a_real_browser_logs_in_and_walks_the_loop() {
    use std::io::{BufRead, BufReader, Write};
    let Some(node_path) = crate::service("KAIRO_TEST_BROWSER_NODE_PATH") else { return };
    let Some(issuer) = crate::service("KAIRO_TEST_OIDC_ISSUER") else { return };
    let provider = crate::oidc::Provider { issuer };
    let port = crate::oidc::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (client_id, secret) = provider.register(&format!("{url}/auth/callback"));

    let repo = two_training_runs();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/logreg20.onnx");
    for _ in 0..3 {
        repo.kairo(&["models", "register", "clf", "--file", model.to_str().unwrap()]).assert().success();
    }
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    // An automation whose artifact is no model: its incident fails at registration.
    repo.write(
        "kairo.yaml",
        format!(
            "{config}  pack:\n    cmd: cp m.json packed.txt\n    deps: [m.json]\n    outs: [packed.txt]\nmodels:\n  clf:\n    approval: required\nautomations:\n  refit:\n    model: clf\n    on: [{{schedule: \"0 0 1 1 *\"}}]\n    retrain: {{stages: [pack], artifact: packed.txt}}\n"
        ),
    );
    repo.kairo(&["automations", "run", "refit"]).assert().success();
    for v in ["2", "3"] {
        repo.kairo(&["models", "promote", "clf", v]).assert().code(6);
    }
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!(
            "{config}auth:\n  oidc:\n    issuer: {}\n    client_id: {client_id}\n    audience: urn:kairo\n    roles:\n      ml-scientists: [scientist]\n      ml-approvers: [approver]\n",
            provider.issuer
        ),
    );
    let _server = crate::oidc::start_server(&repo, port, &secret);

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/loop.mjs");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-loop-screenshots");
    let mut child = std::process::Command::new("node")
        .arg(&script)
        .arg(&url)
        .arg(&shots)
        .env("NODE_PATH", node_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut report = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "STEP approved" {
            // A deployer rolls the approved version out as a canary while bob watches.
            let decided = repo.json(&["models", "show", "clf"]);
            let p = decided["promotions"].as_array().unwrap().iter().find(|p| p["version"] == 2).unwrap().clone();
            assert_eq!((p["status"].as_str(), p["decided_by"].as_str()), (Some("promoted"), Some("bob")), "{p}");
            repo.kairo(&["deploy", "clf", "--version", "2", "--strategy", "canary", "--weight", "20"])
                .assert()
                .success();
            writeln!(stdin, "go").unwrap();
        } else if line.starts_with('{') {
            report = Some(line);
            break;
        }
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let report = report.unwrap_or_else(|| panic!("no report from the browser: {stderr}"));
    assert!(status.success(), "{report}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    for name in
        ["overview", "runs-filtered", "compare", "approvals", "model", "deployment", "incident", "approvals-alice"]
    {
        assert!(shots.join(format!("{name}.png")).metadata().unwrap().len() > 1000, "{name}.png");
    }
    // The refused decision changed nothing: v3 still waits.
    let shown = repo.json(&["models", "show", "clf"]);
    let p3 = shown["promotions"].as_array().unwrap().iter().find(|p| p["version"] == 3).unwrap().clone();
    assert_eq!(p3["status"], "pending", "{p3}");
}
