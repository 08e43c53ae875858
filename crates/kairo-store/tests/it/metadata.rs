//! The repository suite, run once against SQLite and once against PostgreSQL.

use kairo_core::Hash;
use kairo_store::metadata::{NewDatasetVersion, SCHEMA_VERSION};
use kairo_store::{Metadata, StoreError};

async fn suite(url: &str) {
    let md = Metadata::connect(url).await.expect("connect and migrate");
    assert_eq!(md.schema_version().await.unwrap(), SCHEMA_VERSION);

    // A new version writes the row and its event in one transaction.
    let v1 = NewDatasetVersion {
        path: "data/train",
        hash: Hash::of(b"v1"),
        kind: "dir",
        size: 10,
        files: 2,
        git_commit: Some("abc123"),
        git_branch: Some("main"),
    };
    let (row, new) = md.record_dataset_version(&v1, "ana@host").await.unwrap();
    assert!(new);
    assert_eq!(row.hash, Hash::of(b"v1"));
    assert_eq!((row.size, row.files, row.kind.as_str()), (10, 2, "dir"));
    assert_eq!(row.git_commit.as_deref(), Some("abc123"));

    // Recording the same version again is not a state change: no new row, no event.
    let (_, new) = md.record_dataset_version(&v1, "ana@host").await.unwrap();
    assert!(!new);
    let v2 = NewDatasetVersion { hash: Hash::of(b"v2"), git_commit: None, git_branch: None, ..v1.clone() };
    md.record_dataset_version(&v2, "bo@host").await.unwrap();

    let versions = md.dataset_versions("data/train").await.unwrap();
    assert_eq!(versions.iter().map(|v| v.hash).collect::<Vec<_>>(), vec![Hash::of(b"v1"), Hash::of(b"v2")]);
    assert_eq!(versions[1].git_commit, None);
    assert!(md.dataset_versions("other").await.unwrap().is_empty());

    let events = md.events(Some("dataset:data/train"), 100).await.unwrap();
    assert_eq!(events.len(), 2, "one event per new version: {events:?}");
    assert_eq!(events[0].kind, "dataset.version_added");
    assert_eq!(events[0].actor, "ana@host");
    assert_eq!(events[1].actor, "bo@host");
    assert_eq!(events[0].payload["hash"], Hash::of(b"v1").to_hex());
    assert!(events[0].id < events[1].id);
    assert!(events[0].at.ends_with('Z'));

    // Pins are what gc keeps; pinning twice is one pin and one event.
    md.add_object_ref(Hash::of(b"model"), "model_version", "m:1", "ci@host").await.unwrap();
    md.add_object_ref(Hash::of(b"model"), "model_version", "m:1", "ci@host").await.unwrap();
    assert_eq!(md.referenced_objects().await.unwrap(), vec![Hash::of(b"model")]);
    md.record_event("ci@host", kairo_core::EventKind::ObjectsCollected, "store:local", &serde_json::json!({"n": 3}))
        .await
        .unwrap();
    let all = md.events(None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["dataset.version_added", "dataset.version_added", "object.pinned", "objects.collected"]
    );
    assert_eq!(md.events(None, 1).await.unwrap()[0].kind, "objects.collected", "limit keeps the newest");
    // Monitoring: segment sketches are cached once; labels are found by request id.
    let object = Hash::of(b"segment");
    assert_eq!(md.segment_sketch(&object, "churn", 1).await.unwrap(), None);
    md.put_segment_sketch(&object, "churn", 1, 10, "{\"rows\":10}").await.unwrap();
    md.put_segment_sketch(&object, "churn", 1, 10, "{\"rows\":99}").await.unwrap();
    assert_eq!(md.segment_sketch(&object, "churn", 1).await.unwrap().as_deref(), Some("{\"rows\":10}"));
    assert_eq!(md.segment_sketch(&object, "churn", 2).await.unwrap(), None);
    let before = kairo_core::time::now_millis();
    let labels: Vec<(String, i64, serde_json::Value)> =
        (0..600).map(|i| (format!("req-{i}"), i % 2, serde_json::json!(i % 3))).collect();
    md.add_feedback(&labels).await.unwrap();
    assert_eq!(md.feedback_count_since(before).await.unwrap(), 600);
    assert_eq!(md.feedback_count_since(kairo_core::time::now_millis() + 60_000).await.unwrap(), 0);
    let ids: Vec<String> = (0..700).map(|i| format!("req-{i}")).collect();
    let found = md.feedback_for(&ids).await.unwrap();
    assert_eq!(found.len(), 600, "found across two chunks of ids");
    assert_eq!(found[&("req-599".to_string(), 1)], serde_json::json!(2));

    md.close().await;

    // Reconnecting does not re-run migrations.
    let again = Metadata::connect(url).await.unwrap();
    assert_eq!(again.dataset_versions("data/train").await.unwrap().len(), 2);
    again.close().await;
}

async fn refuses_newer_schema(url: &str) {
    let md = Metadata::connect(url).await.unwrap();
    md.close().await;
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query("INSERT INTO kairo_migrations (version, name, applied_at) VALUES (999, 'future', 'x')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    match Metadata::connect(url).await {
        Err(StoreError::SchemaTooNew { found: 999, supported }) => assert_eq!(supported, SCHEMA_VERSION),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn sqlite_repository_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kairo.db");
    suite(&format!("sqlite://{}?mode=rwc", path.display())).await;
    // WAL mode and foreign keys are on.
    let md = Metadata::open_sqlite(&path).await.unwrap();
    md.close().await;
    assert!(dir.path().join("kairo.db-wal").exists() || dir.path().join("kairo.db").exists());
}

#[tokio::test]
async fn sqlite_refuses_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    refuses_newer_schema(&format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display())).await;
}

#[tokio::test]
async fn sqlite_concurrent_writers_do_not_lose_events() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_writers(format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display())).await;
}

#[tokio::test]
async fn postgres_concurrent_writers_keep_one_chain() {
    let Some(url) = crate::postgres_database().await else { return };
    concurrent_writers(url).await;
}

/// Eight writers with their own pools (as separate processes), ten events each: none lost,
/// and the event log is still one unbroken hash chain.
async fn concurrent_writers(url: String) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            // Separate pools behave like separate processes.
            let md = Metadata::connect(&url).await.unwrap();
            for j in 0..10 {
                let hash = Hash::of(format!("{i}-{j}").as_bytes());
                let v = NewDatasetVersion {
                    path: "d",
                    hash,
                    kind: "file",
                    size: 1,
                    files: 1,
                    git_commit: None,
                    git_branch: None,
                };
                md.record_dataset_version(&v, "t").await.unwrap();
            }
            md.close().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let md = Metadata::connect(&url).await.unwrap();
    assert_eq!(md.dataset_versions("d").await.unwrap().len(), 80);
    assert_eq!(md.events(None, 1000).await.unwrap().len(), 80);
    let chain = md.verify_events().await.unwrap();
    assert_eq!((chain.events, chain.before_chain), (80, 0));
    assert!(chain.breaks.is_empty(), "{:?}", chain.breaks);
}

#[tokio::test]
async fn sqlite_foreign_keys_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
    let md = Metadata::connect(&url).await.unwrap();
    md.close().await;
    let pool = sqlx::any::AnyPoolOptions::new()
        .after_connect(|c, _| {
            Box::pin(async move { sqlx::Executor::execute(c, "PRAGMA foreign_keys = ON").await.map(|_| ()) })
        })
        .connect(&url)
        .await
        .unwrap();
    let err = sqlx::query("INSERT INTO dataset_versions (dataset_id, hash, kind, size, files, created_at, actor) VALUES (42, 'h', 'file', 1, 1, 't', 'a')")
        .execute(&pool)
        .await;
    assert!(err.is_err(), "orphan version must be rejected");
}

#[tokio::test]
async fn postgres_repository_suite() {
    let Some(url) = crate::postgres_database().await else { return };
    suite(&url).await;
}

#[tokio::test]
async fn postgres_refuses_newer_schema() {
    let Some(url) = crate::postgres_database().await else { return };
    refuses_newer_schema(&url).await;
}

#[tokio::test]
async fn unsupported_database_url_is_a_clear_error() {
    let err = Metadata::connect("mysql://u:secret@h/db").await.unwrap_err().to_string();
    assert!(err.contains("not supported") && !err.contains("secret"), "{err}");
}
