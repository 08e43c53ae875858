//! Remotes through object_store: a directory, and a real S3-compatible server when configured.

use kairo_core::Hash;
use kairo_store::{LocalObjects, Remote, StoreError};

fn local_store(dir: &std::path::Path) -> LocalObjects {
    LocalObjects::open(dir.join("objects"), dir.join("tmp")).unwrap()
}

async fn round_trip(remote: &Remote) {
    let dir = tempfile::tempdir().unwrap();
    let src = local_store(&dir.path().join("a"));
    let small = src.put_bytes(b"small object").unwrap();
    // Big enough for a multipart upload.
    let big_bytes: Vec<u8> = (0..(20usize << 20)).map(|i| (i * 31 % 251) as u8).collect();
    let big = src.put_bytes(&big_bytes).unwrap();
    let empty = src.put_bytes(b"").unwrap();
    let all = vec![small, big, empty];

    let missing = remote.missing(&all, 4).await.unwrap();
    assert_eq!(missing.len(), 3);
    for h in &missing {
        remote.upload(&src, *h).await.unwrap();
    }
    assert!(remote.missing(&all, 4).await.unwrap().is_empty(), "existence check sees uploads");

    let dst = local_store(&dir.path().join("b"));
    let mut staged = Vec::new();
    for h in &all {
        staged.push(remote.download(&dst, *h).await.unwrap());
    }
    dst.commit(staged).unwrap();
    assert_eq!(dst.read(&small).unwrap(), b"small object");
    assert_eq!(dst.verify(&big).unwrap(), big_bytes.len() as u64);
    assert_eq!(dst.read(&empty).unwrap(), b"");

    // A remote object whose bytes changed is refused on download and leaves nothing behind.
    remote.put_raw(small, b"tampered".to_vec()).await.unwrap();
    let fresh = local_store(&dir.path().join("c"));
    match remote.download(&fresh, small).await {
        Err(StoreError::RemoteCorrupt { hash, .. }) => assert_eq!(hash, small),
        other => panic!("expected RemoteCorrupt, got {other:?}"),
    }
    assert!(!fresh.contains(&small));

    let absent = Hash::of(b"never uploaded");
    let err = remote.download(&fresh, absent).await.unwrap_err().to_string();
    assert!(err.contains("not on the remote"), "{err}");
    for h in &all {
        remote.delete(*h).await.unwrap();
    }
}

#[tokio::test]
async fn directory_remote_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let remote = Remote::open("remote-dir", dir.path()).unwrap();
    round_trip(&remote).await;
}

#[tokio::test]
async fn s3_remote_round_trip() {
    let Some(url) = crate::service(crate::S3_ENV) else { return };
    let remote = Remote::open(&format!("{url}/store-{}", crate::uuid_like()), std::path::Path::new(".")).unwrap();
    round_trip(&remote).await;
}

#[test]
fn bad_remote_urls_are_clear_errors() {
    let err = Remote::open("ftp://x/y", std::path::Path::new(".")).unwrap_err().to_string();
    assert!(err.contains("unsupported scheme"), "{err}");
    let err = Remote::open("s3:///prefix", std::path::Path::new(".")).unwrap_err().to_string();
    assert!(err.contains("bucket"), "{err}");
}
