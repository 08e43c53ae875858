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
    assert!(body.contains("<td>clf</td>") && body.contains("v1"), "{body}");
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
    let repo = Repo::new();
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
    let repo = two_training_runs();
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

    let (status, _, body) = get(&format!("{url}/runs?filter=metrics.acc+%3E%3E+1"), &[]);
    assert_eq!(status, 400);
    assert!(body.contains("role=\"alert\""), "{body}");

    let (_, _, ja) = get(&format!("{url}/runs?lang=ja"), &[]);
    assert!(ja.contains("実行") && ja.contains("フィルター"));

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
