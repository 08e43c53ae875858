//! A version's servable facts are typed in `kairo-core` and stored as JSON text. Rows written
//! before the record was typed (JSON built by hand, keys sorted, NaN as `null`) must still
//! read, and what is written now must be the same bytes; a stored value that does not fit
//! its type is `StoreError::Invalid` naming the version, the column and the path inside it.

use kairo_core::profile::{Kind, Role};
use kairo_core::serving::{ReferenceProfile, VersionArtifact};
use kairo_core::signature::DType;
use kairo_core::Hash;
use kairo_store::registry::NewModelVersion;
use kairo_store::{Metadata, StoreError};
use sqlx::Row;

/// As `kairo models register` wrote them before the record was typed.
const SIGNATURE: &str = r#"{"inputs":[{"datatype":"FP32","name":"x","shape":[-1,2]},{"datatype":"BYTES","name":"city","shape":[-1,1]}],"outputs":[{"datatype":"INT64","name":"label","shape":[-1]},{"datatype":"FP32","name":"probabilities","shape":[-1,2]}]}"#;
const METRICS: &str = r#"{"accuracy":0.9333333333333333,"loss":null,"n":150.0}"#;
const PROFILE: &str = r#"{"columns":[{"bins":[3,2,0],"count":5,"edges":[0.0,1.0],"infinite":0,"kind":"numeric","max":1.0,"mean":0.4,"min":0.0,"name":"a","nulls":1,"other":0,"role":"feature","source":{"index":0,"side":"inputs","tensor":"x"},"std":0.5477225575051661},{"categories":["paris","oslo"],"category_counts":[4,2],"count":6,"infinite":0,"kind":"categorical","name":"city","nulls":0,"other":1,"role":"feature","source":{"side":"inputs","tensor":"city"}},{"categories":["0","1"],"category_counts":[3,3],"count":6,"infinite":0,"kind":"categorical","name":"y","nulls":0,"other":0,"role":"target"},{"categories":["0","1"],"category_counts":[3,3],"count":6,"infinite":0,"kind":"categorical","name":"prediction","nulls":0,"other":0,"role":"prediction","source":{"side":"outputs","tensor":"label"}}],"rows":6}"#;
const IMPORTANCE: &str = r#"{"baseline":0.9,"features":[{"importance":0.31,"name":"x","std":0.02},{"importance":null,"name":"city","std":null}],"holdout":"data/holdout.csv","metric":"accuracy","rows":150}"#;
/// The profile of a Kairo older than monitoring.
const PRE_MONITORING_PROFILE: &str = r#"{"columns":[{"bin_edges":[1.0,2.0],"count":3,"kind":"numeric","max":3.0,"mean":2.0,"min":1.0,"name":"a","null_share":0.0,"std":1.0}],"rows":3}"#;

fn new_version(name: &str) -> NewModelVersion {
    NewModelVersion {
        name: name.into(),
        source: "file:/m.onnx".into(),
        run_id: None,
        model_id: None,
        run_link: String::new(),
        description: String::new(),
        tags: Vec::new(),
        user_id: "ana@host".into(),
    }
}

fn empty(bytes: &[u8]) -> VersionArtifact {
    VersionArtifact {
        object: Hash::of(bytes),
        size: bytes.len() as u64,
        signature: kairo_core::signature::Signature { inputs: Vec::new(), outputs: Vec::new() },
        metrics: Default::default(),
        profile: None,
        importance: None,
    }
}

/// Overwrite a version's stored columns, as an older Kairo (or damage) left them.
async fn store_raw(url: &str, name: &str, version: i64, columns: [(&str, Option<&str>); 4]) {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    for (column, text) in columns {
        sqlx::query(&format!("UPDATE model_version_details SET {column} = $1 WHERE name = $2 AND version = $3"))
            .bind(text)
            .bind(name)
            .bind(version)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

async fn stored(url: &str, name: &str, version: i64) -> [Option<String>; 4] {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let r = sqlx::query(
        "SELECT signature, metrics, profile, importance FROM model_version_details WHERE name = $1 AND version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_one(&pool)
    .await
    .unwrap();
    let out = [r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap(), r.try_get(3).unwrap()];
    pool.close().await;
    out
}

fn invalid<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Invalid(m)) => m,
        other => panic!("expected StoreError::Invalid, got {other:?}"),
    }
}

async fn suite(url: &str) {
    let md = Metadata::connect(url).await.unwrap();
    md.create_registered_model("clf", "", &[], "ana@host").await.unwrap();
    let v = md.register_version(&new_version("clf"), &empty(b"onnx-1")).await.unwrap().version;
    store_raw(
        url,
        "clf",
        v,
        [
            ("signature", Some(SIGNATURE)),
            ("metrics", Some(METRICS)),
            ("profile", Some(PROFILE)),
            ("importance", Some(IMPORTANCE)),
        ],
    )
    .await;

    // The old shape reads as the typed record.
    let a = md.version_artifact("clf", v).await.unwrap().unwrap();
    assert_eq!(a.signature.inputs.len(), 2);
    assert_eq!((a.signature.inputs[0].name.as_str(), a.signature.inputs[0].dtype), ("x", DType::F32));
    assert_eq!(a.signature.inputs[0].shape, [-1, 2]);
    assert_eq!(a.signature.inputs[1].dtype, DType::Bytes);
    assert_eq!(a.signature.outputs[1].to_string(), "probabilities FP32 [-1,2]");
    assert_eq!(a.metrics["accuracy"], 0.9333333333333333);
    assert_eq!(a.metrics["n"], 150.0);
    assert!(a.metrics["loss"].is_nan(), "null was a NaN metric");
    let Some(ReferenceProfile::Current(p)) = &a.profile else { panic!("{:?}", a.profile) };
    assert_eq!(p.rows, 6);
    let col = p.column("a").unwrap();
    assert_eq!((col.role, col.kind, col.bins.as_slice(), col.nulls), (Role::Feature, Kind::Numeric, &[3, 2, 0][..], 1));
    assert_eq!(col.source.as_ref().unwrap().index, Some(0));
    assert_eq!(p.column("city").unwrap().other, 1);
    assert_eq!(p.column("y").unwrap().role, Role::Target);
    let imp = a.importance.as_ref().unwrap();
    assert_eq!(
        (imp.metric.as_str(), imp.baseline, imp.rows, imp.holdout.as_str()),
        ("accuracy", 0.9, 150, "data/holdout.csv")
    );
    assert_eq!((imp.features[0].name.as_str(), imp.features[0].importance), ("x", 0.31));
    assert!(imp.features[1].importance.is_nan() && imp.features[1].std.is_nan());

    // Written again, the typed record is the same bytes.
    let again = VersionArtifact { object: Hash::of(b"onnx-2"), ..a.clone() };
    let v2 = md.register_version(&new_version("clf"), &again).await.unwrap().version;
    assert_eq!(
        stored(url, "clf", v2).await,
        [Some(SIGNATURE.into()), Some(METRICS.into()), Some(PROFILE.into()), Some(IMPORTANCE.into())]
    );
    let b = md.version_artifact("clf", v2).await.unwrap().unwrap();
    let a = md.version_artifact("clf", v).await.unwrap().unwrap();
    assert_eq!((&b.signature, &b.profile), (&a.signature, &a.profile));

    // A profile from before monitoring still reads (the version still serves), as outdated.
    store_raw(
        url,
        "clf",
        v,
        [
            ("profile", Some(PRE_MONITORING_PROFILE)),
            ("importance", None),
            ("metrics", Some("{}")),
            ("signature", Some(SIGNATURE)),
        ],
    )
    .await;
    let a = md.version_artifact("clf", v).await.unwrap().unwrap();
    assert_eq!(a.profile, Some(ReferenceProfile::Outdated));
    assert_eq!(a.importance, None);

    // A stored value that does not fit its type names the version, the column and the path.
    let damaged = [
        (
            "signature",
            r#"{"inputs":[{"datatype":"FP16","name":"x","shape":[-1]}],"outputs":[]}"#,
            "signature is invalid: inputs[0].datatype: unknown datatype `FP16`",
        ),
        (
            "signature",
            r#"{"inputs":[{"datatype":"FP32","name":"x","shape":"N"}],"outputs":[]}"#,
            "signature is invalid: inputs[0].shape: invalid type: string \"N\"",
        ),
        ("signature", r#"{"inputs":[]}"#, "signature is invalid: missing field `outputs`"),
        ("metrics", r#"{"accuracy":"high"}"#, "metrics is invalid: accuracy: invalid type: string \"high\""),
        ("metrics", "not json", "metrics is invalid: not JSON"),
        (
            "profile",
            r#"{"columns":[{"name":"a","role":"feature","kind":"numeric","count":"many","nulls":0}],"rows":1}"#,
            "profile is invalid: columns[0].count: invalid type: string \"many\"",
        ),
        (
            "profile",
            r#"{"columns":[{"name":"a","role":"label","kind":"numeric","count":1,"nulls":0}],"rows":1}"#,
            "profile is invalid: columns[0].role: unknown variant `label`",
        ),
        (
            "importance",
            r#"{"baseline":0.9,"features":[{"name":"x"}],"holdout":"h.csv","metric":"accuracy","rows":-1}"#,
            "importance is invalid: rows: invalid value: integer `-1`",
        ),
    ];
    for (column, text, expected) in damaged {
        store_raw(
            url,
            "clf",
            v,
            [("signature", Some(SIGNATURE)), ("metrics", Some("{}")), ("profile", None), ("importance", None)],
        )
        .await;
        store_raw(
            url,
            "clf",
            v,
            [(column, Some(text)), (column, Some(text)), (column, Some(text)), (column, Some(text))],
        )
        .await;
        let m = invalid(md.version_artifact("clf", v).await);
        assert!(m.starts_with(&format!("model 'clf' version {v}: stored ")), "{m}");
        assert!(m.contains(expected), "{column} {text}: {m}");
    }
    md.close().await;
}

#[tokio::test]
async fn sqlite_old_rows_read_and_write_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    suite(&format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display())).await;
}

#[tokio::test]
async fn postgres_old_rows_read_and_write_the_same_bytes() {
    let Some(url) = crate::postgres_database().await else { return };
    suite(&url).await;
}
