//! Remotes through object_store: a directory, and a real S3-compatible server when configured.

use kairo_core::Hash;
use kairo_store::{LocalObjects, Remote, StoreError};
use std::collections::HashSet;
use std::time::Duration;

fn local_store(dir: &std::path::Path) -> LocalObjects {
    LocalObjects::open(dir.join("objects"), dir.join("tmp")).unwrap()
}

/// The round trip on the remote at `url`, opened as a project opens it.
async fn round_trip(url: &str, base: &std::path::Path) {
    let remote = Remote::open(url, base).unwrap();
    loose_round_trip(&remote).await;
    packed_round_trip(url, base).await;
    collection(url, base).await;
}

async fn loose_round_trip(remote: &Remote) {
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
    let sized: Vec<(Hash, u64)> = missing.iter().map(|h| (*h, src.size(h).unwrap())).collect();
    let sent = remote.send(&src, &sized, 4, &|_, _| {}).await.unwrap();
    assert_eq!((sent.objects, sent.packs), (3, 0), "too few small objects to pack: each goes loose");
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

/// Many small objects travel as packs: sent in few requests, seen as present by a process that
/// never saw them sent (the index is read back from the remote, then from the cache), fetched
/// back by ranges and verified; a packed object also gets a loose copy for a job's URL.
async fn packed_round_trip(url: &str, base: &std::path::Path) {
    let dir = tempfile::tempdir().unwrap();
    let src = local_store(&dir.path().join("a"));
    let hashes: Vec<Hash> = (0..300).map(|i| src.put_bytes(format!("small object {i}").as_bytes()).unwrap()).collect();
    let sized: Vec<(Hash, u64)> = hashes.iter().map(|h| (*h, src.size(h).unwrap())).collect();
    let cache = dir.path().join("index-cache");
    let open = || Remote::open(url, base).unwrap().with_index_cache(cache.clone());
    let remote = open();
    assert_eq!(remote.missing(&hashes, 4).await.unwrap().len(), 300);
    let heard = std::sync::Mutex::new((0u64, 0u64));
    let sent = remote
        .send(&src, &sized, 4, &|bytes, n| {
            let mut h = heard.lock().unwrap();
            *h = (h.0 + bytes, h.1 + n);
        })
        .await
        .unwrap();
    let total: u64 = sized.iter().map(|s| s.1).sum();
    assert_eq!((sent.objects, sent.bytes, sent.packs), (300, total, 1));
    assert_eq!(*heard.lock().unwrap(), (total, 300), "progress hears of every object");

    // Another process: the index comes from the remote, then from the cache.
    for round in ["remote", "cache"] {
        let again = open();
        assert!(again.missing(&hashes, 4).await.unwrap().is_empty(), "packed objects are present ({round})");
        let dst = local_store(&dir.path().join(format!("b-{round}")));
        let staged = again.fetch(&dst, &hashes, 4, &|_, _| {}).await.unwrap();
        assert_eq!(staged.len(), 300);
        dst.commit(staged).unwrap();
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(dst.read(h).unwrap(), format!("small object {i}").as_bytes());
        }
    }
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "one index cached");

    // One packed object on its own, and a loose copy of it for a job elsewhere.
    let one = local_store(&dir.path().join("c"));
    let staged = open().download(&one, hashes[7]).await.unwrap();
    assert_eq!(staged.hash, hashes[7]);
    remote.ensure_loose(&src, hashes[7]).await.unwrap();
    let hex = hashes[7].to_hex();
    if url == "remote-dir" {
        assert!(base.join(url).join(&hex[..2]).join(&hex[2..]).is_file(), "a loose copy");
    }
    remote.delete(hashes[7]).await.unwrap();
}

/// What a fresh look at the remote finds of `hashes`: the ones it lacks, sorted.
async fn lacking(url: &str, base: &std::path::Path, hashes: &[Hash]) -> Vec<Hash> {
    let mut missing = Remote::open(url, base).unwrap().missing(hashes, 4).await.unwrap();
    missing.sort();
    missing
}

/// Collection on a remote: unreferenced objects go, loose and packed, once older than the
/// grace period; a pack holding some is rewritten with the rest, which stay readable; an object
/// packed twice (a collection killed between writing and deleting) loses its extra copy.
async fn collection(url: &str, base: &std::path::Path) {
    let url = &format!("{url}/collect");
    let dir = tempfile::tempdir().unwrap();
    let src = local_store(&dir.path().join("a"));
    let put = |tag: &str, n: usize| -> Vec<(Hash, u64)> {
        (0..n)
            .map(|i| {
                let h = src.put_bytes(format!("{tag} {i}").as_bytes()).unwrap();
                (h, src.size(&h).unwrap())
            })
            .collect()
    };
    let (first, second, loose) = (put("first", 200), put("second", 50), put("loose", 3));
    let cache = dir.path().join("index-cache");
    let open = || Remote::open(url, base).unwrap().with_index_cache(cache.clone());
    for batch in [&first, &second, &loose] {
        open().send(&src, batch, 4, &|_, _| {}).await.unwrap();
    }
    let all: Vec<Hash> = first.iter().chain(&second).chain(&loose).map(|o| o.0).collect();
    let live: HashSet<Hash> = first.iter().step_by(2).chain(&second).chain(&loose[..1]).map(|o| o.0).collect();
    let mut dead: Vec<Hash> = all.iter().copied().filter(|h| !live.contains(h)).collect();
    dead.sort();
    let dead_bytes: u64 = first.iter().chain(&loose).filter(|o| !live.contains(&o.0)).map(|o| o.1).sum();

    // A killed upload's temporary file, where this machine can reach it (SSH to localhost, a
    // directory): hidden from listings, collected with the rest.
    let temp = if let Some(rest) = url.strip_prefix("ssh://") {
        rest.find('/').map(|at| std::path::PathBuf::from(&rest[at..]).join("ab/.cdef.kairo-tmp-1-1"))
    } else if !url.contains("://") {
        Some(base.join(url).join("ab/cdef#1"))
    } else {
        None
    };
    let temp_bytes = 1000u64;
    if let Some(t) = &temp {
        std::fs::create_dir_all(t.parent().unwrap()).unwrap();
        std::fs::write(t, vec![0u8; temp_bytes as usize]).unwrap();
    }
    let temps = u64::from(temp.is_some());

    // Within the grace period nothing goes.
    let c = open().collect(&live, Duration::from_secs(3600), false, 4).await.unwrap();
    assert_eq!((c.objects_removed, c.objects_young, c.objects_kept), (0, 102, 151), "{c:?}");
    assert_eq!(c.temp_files_removed, 0);
    assert!(lacking(url, base, &all).await.is_empty());

    // Dry: counted, nothing changed.
    let c = open().collect(&live, Duration::ZERO, true, 4).await.unwrap();
    assert_eq!((c.objects_removed, c.objects_kept, c.temp_files_removed), (102, 151, temps), "{c:?}");
    assert_eq!(c.bytes_removed, dead_bytes + temps * temp_bytes);
    assert_eq!((c.packs_rewritten, c.packs_written, c.packs_removed), (1, 1, 0), "{c:?}");
    assert!(lacking(url, base, &all).await.is_empty(), "a dry run changes nothing");
    assert!(temp.as_ref().is_none_or(|t| t.exists()));

    let c = open().collect(&live, Duration::ZERO, false, 4).await.unwrap();
    assert_eq!((c.objects_removed, c.objects_kept, c.temp_files_removed), (102, 151, temps), "{c:?}");
    assert_eq!(c.bytes_removed, dead_bytes + temps * temp_bytes);
    assert_eq!((c.packs_rewritten, c.packs_written, c.packs_removed), (1, 1, 0), "{c:?}");
    assert_eq!(lacking(url, base, &all).await, dead, "exactly the unreferenced objects are gone");
    assert!(temp.as_ref().is_none_or(|t| !t.exists()), "the temporary file is gone");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2, "the rewritten pack's index left the cache");
    let live_list: Vec<Hash> = live.iter().copied().collect();
    let dst = local_store(&dir.path().join("b"));
    let staged = open().fetch(&dst, &live_list, 4, &|_, _| {}).await.unwrap();
    assert_eq!(staged.len(), live.len());
    dst.commit(staged).unwrap();
    assert_eq!(dst.read(&first[10].0).unwrap(), b"first 10");
    let c = open().collect(&live, Duration::ZERO, false, 4).await.unwrap();
    assert_eq!((c.objects_removed, c.objects_kept, c.packs_rewritten), (0, 151, 0), "{c:?}");

    // The same objects in two packs: the second copy goes.
    open().send(&src, &second[..30], 4, &|_, _| {}).await.unwrap();
    let c = open().collect(&live, Duration::ZERO, false, 4).await.unwrap();
    assert_eq!((c.objects_removed, c.objects_kept), (30, 151), "{c:?}");
    let c = open().collect(&live, Duration::ZERO, false, 4).await.unwrap();
    assert_eq!(c.objects_removed, 0, "{c:?}");

    // Twenty small pushes, twenty more packs: past sixteen, the under-filled ones are merged.
    let batches: Vec<Vec<(Hash, u64)>> = (0..20).map(|b| put(&format!("batch {b}"), 16)).collect();
    for batch in &batches {
        assert_eq!(open().send(&src, batch, 4, &|_, _| {}).await.unwrap().packs, 1);
    }
    let mut live = live;
    live.extend(batches.iter().flatten().map(|o| o.0));
    let c = open().collect(&live, Duration::ZERO, false, 4).await.unwrap();
    assert_eq!((c.objects_removed, c.objects_kept, c.packs_written), (0, 151 + 320, 1), "{c:?}");
    assert!(c.packs_rewritten >= 20, "{c:?}");
    let merged: Vec<Hash> = live.iter().copied().collect();
    assert!(lacking(url, base, &merged).await.is_empty(), "merging loses nothing");
    let dst = local_store(&dir.path().join("c"));
    let staged = open().fetch(&dst, &merged, 4, &|_, _| {}).await.unwrap();
    assert_eq!(staged.len(), merged.len());

    // Nothing referenced: every pack goes whole.
    let c = open().collect(&HashSet::new(), Duration::ZERO, false, 4).await.unwrap();
    assert_eq!((c.objects_removed, c.objects_kept, c.packs_rewritten), (151 + 320, 0, 0), "{c:?}");
    assert_eq!(lacking(url, base, &all).await.len(), all.len());
}

#[tokio::test]
async fn directory_remote_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    round_trip("remote-dir", dir.path()).await;
}

/// The round trip on the server whose base URL `var` names (`.ci/test` starts each one).
async fn round_trip_on(var: &str) {
    let Some(url) = crate::service(var) else { return };
    round_trip(&format!("{url}/store-{}", crate::uuid_like()), std::path::Path::new(".")).await;
}

#[tokio::test]
async fn s3_remote_round_trip() {
    round_trip_on(crate::S3_ENV).await;
}

#[tokio::test]
async fn azure_remote_round_trip() {
    round_trip_on("KAIRO_TEST_AZURE_URL").await;
}

#[tokio::test]
async fn gcs_remote_round_trip() {
    round_trip_on("KAIRO_TEST_GCS_URL").await;
}

#[tokio::test]
async fn ssh_remote_round_trip() {
    round_trip_on("KAIRO_TEST_SSH_URL").await;
}

#[test]
fn remote_urls_name_their_store_and_never_carry_credentials() {
    use kairo_store::remote::{parse_url, Kind};
    let p = parse_url("abfss://models@acme.dfs.core.windows.net/team/kairo/").unwrap();
    assert_eq!(
        (p.kind, p.bucket.as_str(), p.account.as_deref(), p.prefix.as_str()),
        (Kind::Azure, "models", Some("acme"), "team/kairo")
    );
    for (url, kind, bucket) in [
        ("gs://b/p", Kind::Gcs, "b"),
        ("az://c/p", Kind::Azure, "c"),
        ("azure://c", Kind::Azure, "c"),
        ("s3://b/p/q", Kind::S3, "b"),
    ] {
        let p = parse_url(url).unwrap();
        assert_eq!((p.kind, p.bucket.as_str()), (kind, bucket), "{url}");
    }
    let err = parse_url("az://c/p?sv=2022&sig=abc").unwrap_err();
    assert!(
        err.contains("SAS token") && err.contains("AZURE_STORAGE_SAS_KEY") && err.contains("never in kairo.yaml"),
        "{err}"
    );
    let err = parse_url("s3://AKIA:secret@bucket/p").unwrap_err();
    assert!(err.contains("no user or password") && err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    let p = parse_url("ssh://deploy@files.internal:2222/srv/kairo/").unwrap();
    let t = p.ssh.unwrap();
    assert_eq!(
        (p.kind, t.user.as_deref(), t.host.as_str(), t.port, t.root.as_str()),
        (Kind::Ssh, Some("deploy"), "files.internal", Some(2222), "/srv/kairo")
    );
    let t = parse_url("ssh://[::1]/data").unwrap().ssh.unwrap();
    assert_eq!((t.user, t.host.as_str(), t.port, t.root.as_str()), (None, "::1", None, "/data"));
    let err = parse_url("ssh://deploy:hunter2@host/p").unwrap_err();
    assert!(err.contains("no password") && err.contains("IdentityFile"), "{err}");
    assert!(parse_url("ssh://host:port/p").unwrap_err().contains("not a port number"));
    let err = parse_url("gs:///p").unwrap_err();
    assert!(err.contains("no bucket name (expected gs://bucket/prefix)"), "{err}");
}

#[test]
fn bad_remote_urls_are_clear_errors() {
    let err = Remote::open("ftp://x/y", std::path::Path::new(".")).unwrap_err().to_string();
    assert!(err.contains("unsupported scheme"), "{err}");
    let err = Remote::open("s3:///prefix", std::path::Path::new(".")).unwrap_err().to_string();
    assert!(err.contains("bucket"), "{err}");
}
