//! The Jobs API client against a real Ray head (`.ci/start-ray.sh` sets
//! `KAIRO_TEST_RAY_ADDRESS`): version, a package as working dir, a job that succeeds with its
//! output, one that fails with its exit code, one stopped, resubmission attaching to the same
//! job, the list, the resources, and the refusals (unknown job, unreachable cluster).

use std::time::{Duration, Instant};

use kairo_ray::{package, Client, RayError, Status, Submit, Submitted};

fn address() -> Option<String> {
    match std::env::var("KAIRO_TEST_RAY_ADDRESS") {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("KAIRO_CI").is_some() => {
            panic!("KAIRO_TEST_RAY_ADDRESS is not set, and under CI a test never skips")
        }
        _ => {
            eprintln!("skipping: KAIRO_TEST_RAY_ADDRESS is not set (`bash .ci/test` starts a Ray head)");
            None
        }
    }
}

/// The CI head's token (it runs with `RAY_AUTH_MODE=token`).
fn token() -> Option<String> {
    std::env::var("KAIRO_TEST_RAY_TOKEN").ok().filter(|t| !t.is_empty())
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_nanos();
    format!("{prefix}-{nanos:x}")
}

async fn wait(c: &Client, id: &str, until: impl Fn(Status) -> bool) -> kairo_ray::Job {
    let start = Instant::now();
    loop {
        let job = c.job(id).await.expect("the head answers").expect("the job exists");
        if until(job.status) {
            return job;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "job {id} stuck in {:?}", job.status);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn jobs_run_fail_stop_and_resubmit_on_a_real_head() {
    let Some(address) = address() else { return };
    let c = Client::new(&address, token()).unwrap();
    let ray = c.version().await.unwrap();
    assert!(ray.starts_with('2'), "{ray}");
    let r = c.resources().await.unwrap();
    assert!(r.cpus >= 1.0, "{r:?}");

    // A package as the working dir: the job reads its own file and prints it.
    let zip = package::zip(&[
        ("hello.txt".into(), b"from the package\n".to_vec()),
        ("job.py".into(), b"import sys\nprint(open('hello.txt').read().strip(), sys.argv[1])\n".to_vec()),
    ]);
    let uri = c.upload_package(zip.clone()).await.unwrap();
    assert!(uri.starts_with("gcs://_ray_pkg_"), "{uri}");
    assert_eq!(c.upload_package(zip).await.unwrap(), uri, "the same bytes, the same package");
    let id = unique("kairo-ok");
    let submit = Submit {
        entrypoint: "python job.py 42".into(),
        submission_id: id.clone(),
        runtime_env: serde_json::json!({"working_dir": uri}),
        metadata: [("kairo_run".to_string(), "r1".to_string())].into(),
        entrypoint_num_cpus: Some(0.5),
        ..Default::default()
    };
    assert_eq!(c.submit(&submit).await.unwrap(), Submitted::New);
    // A client that crashed and comes back submits the same id: it attaches.
    assert_eq!(c.submit(&submit).await.unwrap(), Submitted::Existing);
    let done = wait(&c, &id, Status::is_terminal).await;
    assert_eq!(done.status, Status::Succeeded, "{done:?}\n{}", c.logs(&id).await.unwrap_or_default());
    assert_eq!(done.metadata.unwrap()["kairo_run"], "r1");
    assert!(c.logs(&id).await.unwrap().contains("from the package 42"));
    assert!(c.jobs().await.unwrap().iter().any(|j| j.submission_id.as_deref() == Some(id.as_str())));

    // A failing job: its exit code and the tail of its output.
    let failing = unique("kairo-fail");
    let s = Submit {
        entrypoint: "python -c \"import sys; print('about to fail'); sys.exit(3)\"".into(),
        submission_id: failing.clone(),
        runtime_env: serde_json::json!({}),
        ..Default::default()
    };
    c.submit(&s).await.unwrap();
    let failed = wait(&c, &failing, Status::is_terminal).await;
    assert_eq!((failed.status, failed.driver_exit_code), (Status::Failed, Some(3)), "{failed:?}");
    assert!(c.logs(&failing).await.unwrap().contains("about to fail"));

    // A long job, stopped.
    let long = unique("kairo-long");
    let s = Submit {
        entrypoint: "sleep 120".into(),
        submission_id: long.clone(),
        runtime_env: serde_json::json!({}),
        ..Default::default()
    };
    c.submit(&s).await.unwrap();
    wait(&c, &long, |s| s == Status::Running).await;
    assert!(c.stop(&long).await.unwrap());
    assert_eq!(wait(&c, &long, Status::is_terminal).await.status, Status::Stopped);

    // Refusals named.
    assert!(c.job("kairo-no-such-job").await.unwrap().is_none());
    assert!(matches!(c.logs("kairo-no-such-job").await, Err(RayError::NoSuchJob(_))));
    let too_big = vec![0u8; package::MAX_PACKAGE + 1];
    assert!(matches!(c.upload_package(too_big).await, Err(RayError::TooLarge { .. })));
    // The head runs with token authentication: no token is 401, a wrong one 403.
    for (t, status) in [(None, 401), (Some("0123abcd".to_string()), 403)] {
        match Client::new(&address, t).unwrap().jobs().await {
            Err(RayError::Unauthorized { status: s, .. }) => assert_eq!(s, status),
            other => panic!("expected a refusal ({status}), got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_cluster_is_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = Client::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
    let e = c.version().await.unwrap_err();
    assert!(matches!(e, RayError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")) && e.to_string().contains("unreachable"), "{e}");
}
