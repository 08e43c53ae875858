//! Integration tests of kairo-store against real databases and real object stores.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod metadata;
mod registry;
mod remote;
mod version_details;

/// Environment variable holding a PostgreSQL URL for the PostgreSQL half of the suite.
pub const PG_ENV: &str = "KAIRO_TEST_POSTGRES_URL";
/// Environment variable holding an `s3://bucket/prefix` URL for the S3 tests.
pub const S3_ENV: &str = "KAIRO_TEST_S3_URL";

/// The URL or path of a service a test needs, from `var`. Missing: under CI (`KAIRO_CI`, set by
/// `.ci/test`) the test fails, since a test whose service is missing must never pass by
/// skipping; elsewhere it is skipped with a message saying how to run it.
pub fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("KAIRO_CI").is_some() => panic!("{var} is not set, and under CI a test never skips"),
        _ => {
            eprintln!("skipping: {var} is not set (`bash .ci/test` starts the services and sets it)");
            None
        }
    }
}

/// A fresh PostgreSQL database for one test, or None (with a message) when none is configured.
pub async fn postgres_database() -> Option<String> {
    let base = service(PG_ENV)?;
    sqlx::any::install_default_drivers();
    let name = format!("kairo_t_{}", uuid_like());
    let pool = sqlx::AnyPool::connect(&base).await.expect("connect to KAIRO_TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.expect("create test database");
    pool.close().await;
    let mut url = url::Url::parse(&base).expect("valid postgres URL");
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

pub fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = nanos
        ^ ((std::process::id() as u128) << 64)
        ^ (COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u128) << 32;
    format!("{:x}", kairo_core::Hash::of(&n.to_le_bytes()).as_bytes()[..8].iter().fold(0u64, |a, b| a << 8 | *b as u64))
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
