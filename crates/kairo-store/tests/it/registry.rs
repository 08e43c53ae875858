//! Registry integrity, run against SQLite and PostgreSQL: version numbers are never reused
//! (deletes, model deletes, renames, concurrent registrations), a deleted version takes its
//! servable details and pin with it, and nothing that references a version (alias,
//! deployment) is left pointing at a deleted one.

use kairo_core::serving::{Promotion, PromotionStatus, RolloutLimits, Strategy, VersionArtifact};
use kairo_core::signature::Signature;
use kairo_core::Hash;
use kairo_store::registry::NewModelVersion;
use kairo_store::serving::DeploymentChange;
use kairo_store::{Metadata, StoreError};
use sqlx::Row;

fn new_version(name: &str, source: &str) -> NewModelVersion {
    NewModelVersion {
        name: name.into(),
        source: source.into(),
        run_id: None,
        model_id: None,
        run_link: String::new(),
        description: String::new(),
        tags: vec![("k".into(), "v".into())],
        user_id: "ana@host".into(),
    }
}

fn artifact(bytes: &[u8]) -> VersionArtifact {
    VersionArtifact {
        object: Hash::of(bytes),
        size: bytes.len() as u64,
        signature: Signature { inputs: Vec::new(), outputs: Vec::new() },
        metrics: Default::default(),
        profile: None,
        importance: None,
    }
}

/// `kairo models register`'s path: version row, details and pin.
async fn register(md: &Metadata, name: &str, bytes: &[u8]) -> i64 {
    md.register_version(&new_version(name, "file:/m.onnx"), &artifact(bytes)).await.unwrap().version
}

/// MLflow's `model-versions/create` path: a version row only.
async fn create(md: &Metadata, name: &str) -> i64 {
    md.create_model_version(&new_version(name, "mlflow-artifacts:/0/models/m-1/artifacts")).await.unwrap().version
}

fn deploy(name: &str, stable: i64, candidate: Option<i64>) -> DeploymentChange {
    DeploymentChange {
        name: name.into(),
        stable_version: stable,
        candidate_version: candidate,
        strategy: if candidate.is_some() { Strategy::Canary } else { Strategy::Direct },
        weight: if candidate.is_some() { 10 } else { 0 },
        limits: RolloutLimits::default(),
        kind: kairo_core::EventKind::DeploymentCreated,
        reason: "test".into(),
    }
}

fn invalid(r: Result<(), StoreError>) -> String {
    match r {
        Err(StoreError::Invalid(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn owners(url: &str, name: &str) -> Vec<String> {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let rows = sqlx::query(
        "SELECT owner_id FROM object_refs WHERE owner_kind = 'model_version' AND owner_id LIKE $1 ORDER BY owner_id",
    )
    .bind(format!("{name}/%"))
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.iter().map(|r| r.try_get(0).unwrap()).collect()
}

async fn suite(url: &str) {
    let md = Metadata::connect(url).await.unwrap();
    md.create_registered_model("clf", "", &[], "ana@host").await.unwrap();
    assert_eq!(register(&md, "clf", b"onnx-1").await, 1);
    assert_eq!(register(&md, "clf", b"onnx-2").await, 2);
    assert_eq!(create(&md, "clf").await, 3);

    // A deleted version takes its details and pin; its number is never given out again, by
    // either path, and the next version does not inherit its ONNX.
    md.delete_model_version("clf", 1, "ana@host").await.unwrap();
    assert!(md.version_artifact("clf", 1).await.unwrap().is_none());
    assert!(!md.referenced_objects().await.unwrap().contains(&Hash::of(b"onnx-1")));
    assert_eq!(owners(url, "clf").await, ["clf/2"]);
    md.delete_model_version("clf", 3, "ana@host").await.unwrap();
    assert_eq!(register(&md, "clf", b"onnx-4").await, 4);
    assert_eq!(create(&md, "clf").await, 5);
    assert!(md.version_artifact("clf", 5).await.unwrap().is_none(), "a new MLflow version has no ONNX");
    let events = md.events(Some("model:clf"), 100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "model.version_deleted").count(), 2);
    assert!(matches!(md.delete_model_version("clf", 1, "x").await, Err(StoreError::NotFound(_))));

    // Nothing may point at a deleted version: alias moves, promotions, deployments.
    let gone = |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    gone(md.move_alias("clf", "champion", Some(1), "x", "why").await.map(|_| ()));
    gone(md.move_alias("clf", "champion", Some(3), "x", "why").await.map(|_| ()));
    gone(md.change_deployment(&deploy("clf", 1, None), None, "x").await.map(|_| ()));
    gone(md.change_deployment(&deploy("clf", 2, Some(3)), None, "x").await.map(|_| ()));
    let promotion = Promotion {
        id: "p-1".into(),
        name: "clf".into(),
        version: 3,
        alias: "champion".into(),
        status: PromotionStatus::Promoted,
        gates: serde_json::json!([]),
        requested_by: "x".into(),
        decided_by: None,
        reason: None,
        created_ms: 0,
        decided_ms: None,
    };
    gone(md.record_promotion(&promotion).await);
    assert!(md.promotions("clf").await.unwrap().is_empty(), "the refused promotion left no row");
    assert!(md.deployment("clf").await.unwrap().is_none());

    // Refused while an alias names the version or a deployment serves it; nothing changes.
    md.move_alias("clf", "champion", Some(2), "x", "test").await.unwrap();
    md.move_alias("clf", "staging", Some(2), "x", "test").await.unwrap();
    let m = invalid(md.delete_model_version("clf", 2, "x").await);
    assert!(m.contains("@champion, @staging") && m.contains("kairo models alias clf"), "{m}");
    md.change_deployment(&deploy("clf", 4, Some(5)), None, "x").await.unwrap().unwrap();
    let m = invalid(md.delete_model_version("clf", 4, "x").await);
    assert!(m.contains("deployed as the stable version") && m.contains("kairo deploy clf --version N"), "{m}");
    let m = invalid(md.delete_model_version("clf", 5, "x").await);
    assert!(m.contains("deployed as the candidate version") && m.contains("kairo rollback clf"), "{m}");
    for v in [2, 4] {
        assert!(md.version_artifact("clf", v).await.unwrap().is_some());
    }
    assert_eq!(md.alias_version("clf", "champion").await.unwrap(), Some(2));
    assert_eq!(owners(url, "clf").await, ["clf/2", "clf/4"]);
    let versions: Vec<i64> = md.model_versions(Some("clf")).await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(versions, [2, 4, 5]);

    // A deployed model is neither deleted nor renamed.
    let m = invalid(md.delete_registered_model("clf", "x").await);
    assert!(m.contains("deployed (serving version 4, with version 5 as candidate)"), "{m}");
    let m = invalid(md.rename_registered_model("clf", "clf2", "x").await.map(|_| ()));
    assert!(m.contains("cannot be renamed"), "{m}");
    assert_eq!(md.model_versions(Some("clf")).await.unwrap().len(), 3);

    // Deleting a model: refused while an alias names a version; then its versions, details
    // and pins go, and a model created again under the name continues the numbering.
    md.create_registered_model("reg", "", &[], "x").await.unwrap();
    register(&md, "reg", b"reg-1").await;
    create(&md, "reg").await;
    md.move_alias("reg", "staging", Some(1), "x", "test").await.unwrap();
    let m = invalid(md.delete_registered_model("reg", "x").await);
    assert!(m.contains("@staging (version 1)") && m.contains("--delete"), "{m}");
    assert!(md.version_artifact("reg", 1).await.unwrap().is_some());
    md.move_alias("reg", "staging", None, "x", "test").await.unwrap();
    md.delete_registered_model("reg", "x").await.unwrap();
    assert!(md.version_artifact("reg", 1).await.unwrap().is_none());
    assert!(owners(url, "reg").await.is_empty());
    assert!(!md.referenced_objects().await.unwrap().contains(&Hash::of(b"reg-1")));
    md.create_registered_model("reg", "", &[], "x").await.unwrap();
    assert_eq!(register(&md, "reg", b"reg-3").await, 3);

    // Renaming moves the details and pins with the versions; the old name keeps its mark.
    md.create_registered_model("a", "", &[], "x").await.unwrap();
    register(&md, "a", b"a-1").await;
    create(&md, "a").await;
    md.move_alias("a", "champion", Some(1), "x", "test").await.unwrap();
    md.rename_registered_model("a", "b", "x").await.unwrap();
    assert_eq!(md.version_artifact("b", 1).await.unwrap().unwrap().object, Hash::of(b"a-1"));
    assert_eq!(md.alias_version("b", "champion").await.unwrap(), Some(1));
    assert_eq!(owners(url, "b").await, ["b/1"]);
    assert!(owners(url, "a").await.is_empty());
    assert_eq!(register(&md, "b", b"b-3").await, 3);
    md.create_registered_model("a", "", &[], "x").await.unwrap();
    assert_eq!(register(&md, "a", b"a-again").await, 3, "no UNIQUE failure, no inherited ONNX");
    // Onto a name an earlier model used: its history names versions with the same numbers.
    md.delete_registered_model("reg", "x").await.unwrap();
    let m = invalid(md.rename_registered_model("b", "reg", "x").await.map(|_| ()));
    assert!(m.contains("earlier model named 'reg' had versions up to 3"), "{m}");
    md.close().await;
}

/// Concurrent registrations from separate pools (separate processes) never share a number:
/// PostgreSQL has no in-process writer lock, so this is the high-water mark's row lock.
async fn concurrent_numbers(url: &str) {
    let md = Metadata::connect(url).await.unwrap();
    md.create_registered_model("busy", "", &[], "x").await.unwrap();
    md.close().await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let md = Metadata::connect(&url).await.unwrap();
            let mut got = Vec::new();
            for j in 0..5 {
                got.push(if (i + j) % 2 == 0 {
                    create(&md, "busy").await
                } else {
                    register(&md, "busy", format!("{i}-{j}").as_bytes()).await
                });
            }
            md.close().await;
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=30).collect::<Vec<i64>>());
}

/// Migrations 0007 and 0008 on a database that had the old behaviour: leftover details and
/// pins of deleted versions are removed, and numbering continues above every number the
/// name's history holds (a deleted model's promotions, a model deleted and created again).
async fn migrates_old_state(url: &str) {
    let md = Metadata::connect(url).await.unwrap();
    md.create_registered_model("old", "", &[], "x").await.unwrap();
    register(&md, "old", b"old-1").await;
    register(&md, "old", b"old-2").await;
    register(&md, "old", b"old-3").await;
    md.create_registered_model("again", "", &[], "x").await.unwrap();
    create(&md, "again").await;
    md.close().await;

    // Back to schema 6, with what the old code left behind.
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    for sql in [
        "DELETE FROM model_versions WHERE name = 'old' AND version = 3",
        "ALTER TABLE registered_models DROP COLUMN last_version",
        "DROP TABLE retired_model_names",
        "DROP TABLE incidents",
        "DROP TABLE automation_triggers",
        "ALTER TABLE events DROP COLUMN prev_hash",
        "ALTER TABLE events DROP COLUMN hash",
        "DROP TABLE grants",
        "DROP TABLE api_tokens",
        "DROP TABLE users",
        "DROP INDEX events_kind_at",
        "DROP INDEX runs_start",
        "ALTER TABLE runs DROP COLUMN cpu_ms",
        "DROP TABLE serving_days",
        "DROP TABLE monitor_check_days",
        "DROP TABLE candidate_counts",
        "DROP TABLE leases",
        "ALTER TABLE prediction_segments DROP COLUMN pruned_ms",
        "ALTER TABLE prediction_segments DROP COLUMN replica",
        "DELETE FROM kairo_migrations WHERE version >= 7",
        "INSERT INTO promotions (id, name, version, alias, status, gates, requested_by, created_ms) \
         VALUES ('p-gone', 'gone', 7, 'champion', 'promoted', '[]', 'x', 0)",
        "INSERT INTO promotions (id, name, version, alias, status, gates, requested_by, created_ms) \
         VALUES ('p-again', 'again', 4, 'champion', 'promoted', '[]', 'x', 0)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let md = Metadata::connect(url).await.unwrap();
    assert!(md.version_artifact("old", 3).await.unwrap().is_none(), "the leftover details are gone");
    assert!(!md.referenced_objects().await.unwrap().contains(&Hash::of(b"old-3")));
    assert_eq!(register(&md, "old", b"old-4").await, 4, "3 was given out once");
    assert_eq!(create(&md, "again").await, 5, "above the history of the earlier 'again'");
    md.create_registered_model("gone", "", &[], "x").await.unwrap();
    assert_eq!(create(&md, "gone").await, 8, "above the deleted model's promotions");
    md.close().await;
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display())
}

#[tokio::test]
async fn sqlite_registry_integrity() {
    let dir = tempfile::tempdir().unwrap();
    suite(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn sqlite_concurrent_registrations_never_share_a_number() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_numbers(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn sqlite_version_number_migrations() {
    let dir = tempfile::tempdir().unwrap();
    migrates_old_state(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn postgres_registry_integrity() {
    let Some(url) = crate::postgres_database().await else { return };
    suite(&url).await;
}

#[tokio::test]
async fn postgres_concurrent_registrations_never_share_a_number() {
    let Some(url) = crate::postgres_database().await else { return };
    concurrent_numbers(&url).await;
}

#[tokio::test]
async fn postgres_version_number_migrations() {
    let Some(url) = crate::postgres_database().await else { return };
    migrates_old_state(&url).await;
}
