use crate::{make_tree, Repo};
use predicates::prelude::*;
use std::fs;

fn set_remote(repo: &Repo, url: &str) {
    repo.write("kairo.yaml", format!("version: 1\nremotes:\n  origin:\n    url: {url}\ndefault_remote: origin\n"));
}

/// Push from one clone, pull into another: only missing objects move, hashes are verified.
fn push_pull_round_trip(url: &str) {
    let a = Repo::new();
    set_remote(&a, url);
    // `kairo remote test` on the same remote: every step works.
    let t = a.json(&["remote", "test", "--size", "3000000"]);
    let steps: Vec<&str> = t["steps"].as_array().unwrap().iter().map(|s| s["what"].as_str().unwrap()).collect();
    assert_eq!(steps, ["write", "read", "list", "upload", "download", "delete"], "{t}");
    assert_eq!(t["ok"], true, "{t}");
    make_tree(&a, "data", 20);
    a.write("big.bin", vec![7u8; 20 << 20]);
    a.kairo(&["data", "add", "data", "big.bin"]).assert().success();
    let objects = a.object_count() as u64;

    let r = a.json(&["data", "push"]);
    assert_eq!(r["transferred"], objects);
    let again = a.json(&["data", "push"]);
    assert_eq!(again["transferred"], 0, "nothing is sent twice");

    // A fresh clone: pointers and config come through git, data through the remote; no
    // `kairo init` is needed.
    a.git(&["add", "-A"]);
    a.git(&["commit", "-qm", "track data"]);
    let b = Repo::bare();
    b.git(&["clone", "-q", a.path().to_str().unwrap(), "."]);
    assert!(!b.join(".kairo").exists() && !b.join("data").exists());
    let r = b.json(&["data", "pull"]);
    assert_eq!(r["transfer"]["transferred"], objects);
    assert_eq!(b.read("data/d3/f7.txt"), b"file 7\n");
    assert_eq!(b.read("big.bin").len(), 20 << 20);
    b.kairo(&["data", "status"]).assert().code(0);
    b.kairo(&["data", "verify"]).assert().code(0);

    // Only what changed moves next time.
    a.write("data/d0/f0.txt", "changed");
    a.kairo(&["data", "add", "data"]).assert().success();
    let r = a.json(&["data", "push", "data"]);
    assert_eq!(r["transferred"], 3, "one file and two manifests");
    fs::copy(a.join("data.kairo"), b.join("data.kairo")).unwrap();
    let r = b.json(&["data", "pull", "data"]);
    assert_eq!(r["transfer"]["transferred"], 3);
    assert_eq!(b.read("data/d0/f0.txt"), b"changed");
}

#[test]
fn push_pull_through_a_directory_remote() {
    let remote = tempfile::tempdir().unwrap();
    push_pull_round_trip(&format!("file://{}", remote.path().display()));
}

#[test]
fn push_pull_through_s3() {
    let Some(base) = crate::service("KAIRO_TEST_S3_URL") else { return };
    let unique =
        format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    push_pull_round_trip(&format!("{base}/cli-{unique}"));
}

/// Through Azurite (`.ci/start-azurite.sh`; `AZURE_STORAGE_USE_EMULATOR=true`).
#[test]
fn push_pull_through_azure() {
    let Some(base) = crate::service("KAIRO_TEST_AZURE_URL") else { return };
    push_pull_round_trip(&format!("{base}/cli-{}", unique()));
}

/// Through fake-gcs-server (`.ci/start-gcs.sh`; its address in the key file's `gcs_base_url`).
#[test]
fn push_pull_through_gcs() {
    let Some(base) = crate::service("KAIRO_TEST_GCS_URL") else { return };
    push_pull_round_trip(&format!("{base}/cli-{}", unique()));
}

/// Through Debian's OpenSSH server on loopback (`.ci/start-sshd.sh`; `KAIRO_SSH_COMMAND` names
/// its client config: key, port, known_hosts).
#[test]
fn push_pull_through_ssh() {
    let Some(base) = crate::service("KAIRO_TEST_SSH_URL") else { return };
    push_pull_round_trip(&format!("{base}/cli-{}", unique()));
}

fn unique() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

/// `kairo remote add|ls|test`: added to kairo.yaml (credentials refused), listed, probed; a
/// remote that cannot be reached fails its test naming the remote and the cause.
#[test]
fn remote_add_ls_and_test() {
    let repo = Repo::new();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    repo.kairo(&["remote", "add", "store", &url, "--default"]).assert().success();
    repo.kairo(&["remote", "add", "cloud", "gs://kairo-bucket/team"]).assert().success();
    let ls = repo.json(&["remote", "ls"]);
    let rows: Vec<(&str, &str, bool)> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["kind"].as_str().unwrap(), r["default"].as_bool().unwrap()))
        .collect();
    assert_eq!(rows, [("cloud", "gcs", false), ("store", "directory", true)]);
    repo.kairo(&["remote", "add", "store", "s3://b/p"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("a remote named `store` already"));
    repo.kairo(&["remote", "add", "sas", "az://c/p?sv=2022-11-02&sig=abc"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SAS token").and(predicate::str::contains("never in kairo.yaml")));
    repo.kairo(&["remote", "add", "ftp", "ftp://host/x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unsupported scheme"));
    let t = repo.json(&["remote", "test", "--size", "100000"]);
    assert_eq!(t["ok"], true, "{t}");
    assert!(std::fs::read_dir(dir.path().join("probe")).map(|d| d.count()).unwrap_or(0) == 0, "the probe is deleted");
    // Nothing listens there: the first step fails, named, and the test exits 1.
    repo.kairo(&["remote", "add", "down", "s3://kairo-test/x"]).assert().success();
    let out = repo
        .kairo(&["remote", "test", "down"])
        .env("AWS_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("write    FAIL") && text.contains("s3://kairo-test/x"), "{text}");
    assert!(text.contains("cannot reach the remote (network)"), "{text}");
}

/// A push killed halfway resumes: the next push sends only what is missing, and a fresh pull
/// verifies every object (directory remote: its objects can be counted while the push runs).
#[test]
fn a_killed_push_resumes_where_it_stopped() {
    let remote = tempfile::tempdir().unwrap();
    killed_push_resumes(&format!("file://{}", remote.path().display()), remote.path());
}

/// The same through SFTP: the server is on this machine, so its directory can be counted.
#[test]
fn a_killed_push_over_ssh_resumes_where_it_stopped() {
    let Some(base) = crate::service("KAIRO_TEST_SSH_URL") else { return };
    let url = format!("{base}/killed-{}", unique());
    let dir = std::path::PathBuf::from(url.split_once("127.0.0.1").unwrap().1.split_once('/').unwrap().1);
    killed_push_resumes(&url, &std::path::Path::new("/").join(dir));
}

fn killed_push_resumes(url: &str, remote: &std::path::Path) {
    let a = Repo::new();
    set_remote(&a, url);
    // Small files (they travel in packs) and files large enough to travel one by one.
    make_tree(&a, "data", 2000);
    for i in 0..300u32 {
        let mut bytes = vec![(i % 251) as u8; 300 << 10];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        a.write(&format!("data/large/f{i}.bin"), bytes);
    }
    a.kairo(&["data", "add", "data"]).assert().success();
    let total = a.object_count();
    let count = || walkdir_count(remote);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"))
        .args(["data", "push", "-j", "1"])
        .current_dir(a.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while count() < 50 {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "the push never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let sent = count();
    assert!(sent < total, "the push was killed before it finished ({sent} of {total})");
    let r = a.json(&["data", "push"]);
    let resumed = r["transferred"].as_u64().unwrap() as usize;
    assert!(resumed <= total - 50 && resumed + sent >= total, "sent {sent}, then {resumed}, of {total}");
    assert_eq!(a.json(&["data", "push"])["transferred"], 0);
    a.git(&["add", "-A"]);
    a.git(&["commit", "-qm", "data"]);
    let b = Repo::bare();
    b.git(&["clone", "-q", a.path().to_str().unwrap(), "."]);
    b.kairo(&["data", "pull"]).assert().success();
    b.kairo(&["data", "verify"]).assert().code(0);
}

/// The objects under `dir`: loose ones (files named by hex digits only) and those the pack
/// indexes list. A write in flight (SFTP's hidden `.NAME.kairo-tmp-…`, object_store's
/// `NAME#N`) is not an object yet, nor is a pack without its index.
fn walkdir_count(dir: &std::path::Path) -> usize {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if e.path().is_dir() {
                        walkdir_count(&e.path())
                    } else if name.starts_with("pack-") && name.ends_with(".idx") {
                        packed_count(&e.path())
                    } else {
                        usize::from(name.bytes().all(|b| b.is_ascii_hexdigit()))
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// How many objects a pack index lists (its entry count follows an 8-byte magic).
fn packed_count(idx: &std::path::Path) -> usize {
    let bytes = fs::read(idx).unwrap_or_default();
    bytes.get(8..16).map_or(0, |n| u64::from_le_bytes(n.try_into().unwrap()) as usize)
}

/// The pack indexes of a directory remote, newest last.
fn pack_indexes(remote: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut idx: Vec<_> = fs::read_dir(remote.join("packs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    idx.sort_by_key(|p| fs::metadata(p).unwrap().modified().unwrap());
    idx
}

/// A repository whose default remote is a new directory, with 40 small files added as `one`.
fn repo_with_dir_remote() -> (tempfile::TempDir, Repo) {
    let remote = tempfile::tempdir().unwrap();
    let a = Repo::new();
    set_remote(&a, &format!("file://{}", remote.path().display()));
    make_tree(&a, "one", 40);
    a.kairo(&["data", "add", "one"]).assert().success();
    (remote, a)
}

/// Small objects travel in packs. Each state a killed push can leave is resumed by the next
/// push (a pack without its index, nothing of a pack), a fresh clone pulls through the
/// packs, and a damaged pack or index is refused, named, with what to do.
#[test]
fn small_objects_travel_in_packs_that_resume_and_refuse_damage() {
    let (remote, a) = repo_with_dir_remote();
    let r = a.json(&["data", "push"]);
    let first = r["transferred"].as_u64().unwrap();
    assert_eq!((r["packs"].as_u64(), first), (Some(1), a.object_count() as u64), "{r}");
    make_tree(&a, "two", 60);
    a.kairo(&["data", "add", "two"]).assert().success();
    a.kairo(&["data", "push"])
        .assert()
        .success()
        .stdout(predicate::str::contains("small ones in 1 pack").and(predicate::str::contains("already there")));
    let packs = pack_indexes(remote.path());
    assert_eq!(packs.len(), 2);
    let second = packed_count(&packs[1]) as u64;

    // Killed after a pack, before its index: the pack is invisible; its objects go again.
    fs::remove_file(&packs[1]).unwrap();
    let r = a.json(&["data", "push"]);
    assert_eq!((r["transferred"].as_u64(), r["packs"].as_u64()), (Some(second), Some(1)), "{r}");
    // Killed before the pack was whole: the same.
    let packs = pack_indexes(remote.path());
    fs::remove_file(&packs[1]).unwrap();
    fs::write(packs[1].with_extension("pack"), b"KPACK01\ntrunc").unwrap();
    assert_eq!(a.json(&["data", "push"])["transferred"].as_u64(), Some(second));
    assert_eq!(a.json(&["data", "push"])["transferred"], 0, "nothing is sent twice");

    a.git(&["add", "-A"]);
    a.git(&["commit", "-qm", "data"]);
    let clone = || {
        let b = Repo::bare();
        b.git(&["clone", "-q", a.path().to_str().unwrap(), "."]);
        b
    };
    let b = clone();
    let r = b.json(&["data", "pull"]);
    assert_eq!(r["transfer"]["transferred"].as_u64(), Some(a.object_count() as u64));
    assert_eq!(b.read("two/d1/f9.txt"), b"file 9\n");
    b.kairo(&["data", "verify"]).assert().code(0);

    // A damaged pack: the object is refused by its hash and nothing of the pull is kept.
    let packs = pack_indexes(remote.path());
    let pack = packs[0].with_extension("pack");
    let mut bytes = fs::read(&pack).unwrap();
    let at = bytes.windows(7).position(|w| w == b"file 13").unwrap();
    bytes[at] ^= 0x20;
    fs::write(&pack, &bytes).unwrap();
    let c = clone();
    c.kairo(&["data", "pull", "one"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is corrupted: received bytes hash to"));
    bytes[at] ^= 0x20;
    fs::write(&pack, &bytes).unwrap();

    // A damaged index: named, with the fix; the pull fails before anything moves.
    fs::write(&packs[0], b"not an index").unwrap();
    let d = clone();
    d.kairo(&["data", "pull"]).assert().code(1).stderr(
        predicate::str::contains("pack index")
            .and(predicate::str::contains("does not match its name"))
            .and(predicate::str::contains("the next push sends its objects again")),
    );
    assert!(!d.join("one").exists(), "nothing checked out");

    // A well-formed index that names a range no Kairo pack holds (an object of 1 TiB): refused
    // before anything is read or allocated for it.
    fs::remove_file(&packs[0]).unwrap();
    let mut idx = b"KIDX001\n".to_vec();
    idx.extend_from_slice(&1u64.to_le_bytes());
    idx.extend_from_slice(blake3::hash(b"x").as_bytes());
    idx.extend_from_slice(&8u64.to_le_bytes());
    idx.extend_from_slice(&(1u64 << 40).to_le_bytes());
    idx.extend_from_slice(blake3::hash(&idx).as_bytes());
    let id = &blake3::hash(&idx).to_hex()[..40];
    fs::write(remote.path().join("packs").join(format!("pack-{id}.idx")), &idx).unwrap();
    clone().kairo(&["data", "pull"]).assert().code(1).stderr(predicate::str::contains("lists an object larger"));
}

/// `kairo data gc --remote` keeps what any branch, the work tree or the grace period still
/// needs, removes the rest (packed or loose, and a pack a killed push left without index), and
/// says so; a clone can still pull every branch, and what was removed is sent again when needed.
#[test]
fn remote_gc_removes_only_what_nothing_references() {
    let (remote, a) = repo_with_dir_remote();
    a.git(&["add", "-A"]);
    a.git(&["commit", "-qm", "v1"]);
    a.kairo(&["data", "push"]).assert().success();
    // A new version of 20 files, added and pushed.
    let version = |tag: &str| {
        for i in 0..20 {
            a.write(&format!("one/d{}/f{i}.txt", i % 4), format!("{tag} {i}\n"));
        }
        a.kairo(&["data", "add", "one"]).assert().success();
        a.kairo(&["data", "push"]).assert().success();
    };
    // v2 on a branch of its own.
    a.git(&["checkout", "-qb", "exp"]);
    version("v2");
    a.git(&["commit", "-qam", "v2"]);
    a.git(&["checkout", "-q", "-"]);
    // v3: pushed, then abandoned (its pointer reverted, never committed).
    version("v3");
    a.git(&["checkout", "-q", "--", "one.kairo"]);
    let before = walkdir_count(remote.path());
    // A pack a killed push left without its index, and an upload it left unfinished.
    fs::write(remote.path().join("packs/pack-0123456789abcdef0123456789abcdef01234567.pack"), b"KPACK01\n").unwrap();
    fs::create_dir_all(remote.path().join("ab")).unwrap();
    fs::write(remote.path().join("ab/cdef#3"), b"half an object").unwrap();

    // Within the default grace period (1d) nothing goes, and the output says why.
    a.kairo(&["data", "gc", "--remote"]).assert().success().stdout(
        predicate::str::contains("removed 0 objects")
            .and(predicate::str::contains("younger than the grace period (1d)")),
    );
    let dry = a.json(&["data", "gc", "--remote", "origin", "--grace", "0", "--dry-run"]);
    let removed = dry["objects_removed"].as_u64().unwrap();
    assert!(removed >= 22, "20 files and the manifests above them: {dry}");
    // v3's own pack, and the leftover.
    assert_eq!((dry["packs_removed"].as_u64(), dry["objects_young"].as_u64()), (Some(2), Some(0)), "{dry}");
    assert_eq!(walkdir_count(remote.path()), before, "a dry run removes nothing");
    // A clone that never pulled reads the manifests it lacks from the remote: same verdict.
    let c = Repo::bare();
    c.git(&["clone", "-q", a.path().to_str().unwrap(), "."]);
    let seen = c.json(&["data", "gc", "--remote", "--grace", "0", "--dry-run"]);
    assert_eq!(seen["objects_removed"], dry["objects_removed"], "{seen}");

    let done = a.json(&["data", "gc", "-r", "origin", "--grace", "0s"]);
    assert_eq!(
        (done["objects_removed"].clone(), done["dry_run"].clone()),
        (dry["objects_removed"].clone(), false.into())
    );
    assert_eq!(walkdir_count(remote.path()), before - removed as usize);
    assert!(!remote.path().join("packs/pack-0123456789abcdef0123456789abcdef01234567.pack").exists());
    assert_eq!(done["temp_files_removed"], 1, "{done}");
    assert!(!remote.path().join("ab/cdef#3").exists());
    a.kairo(&["data", "gc", "--remote", "--grace", "0"])
        .assert()
        .success()
        .stdout(predicate::str::contains("removed 0 objects"));

    // Both branches still pull into a fresh clone.
    let b = Repo::bare();
    b.git(&["clone", "-q", a.path().to_str().unwrap(), "."]);
    b.kairo(&["data", "pull"]).assert().success();
    assert_eq!(b.read("one/d1/f5.txt"), b"file 5\n");
    b.git(&["checkout", "-q", "exp"]);
    b.kairo(&["data", "pull"]).assert().success();
    assert_eq!(b.read("one/d1/f5.txt"), b"v2 5\n");
    b.kairo(&["data", "verify"]).assert().code(0);
    // v3 taken up again: exactly what was removed goes back.
    a.kairo(&["data", "add", "one"]).assert().success();
    assert_eq!(a.json(&["data", "push"])["transferred"].as_u64(), Some(removed));

    // Bad input: named, exit 2, nothing touched.
    a.kairo(&["data", "gc", "--remote", "--grace", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--grace").and(predicate::str::contains("30s, 15m, 1h or 1d")));
    a.kairo(&["data", "gc", "--grace", "1h"]).assert().code(2).stderr(predicate::str::contains("--remote"));
    a.kairo(&["data", "gc", "--remote", "nowhere"]).assert().code(1).stderr(predicate::str::contains("nowhere"));
}

/// `kairo data verify --remote` checks that the remote holds every object the tracked versions
/// need and that each still hashes to its name (downloaded, never kept); `--quick` only looks.
/// Damage in a pack and in a loose object, and a lost object, are each named with the fix.
#[test]
fn verify_remote_finds_damaged_and_missing_objects() {
    let remote = tempfile::tempdir().unwrap();
    let a = Repo::new();
    set_remote(&a, &format!("file://{}", remote.path().display()));
    make_tree(&a, "data", 40);
    let big: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    a.write("big.bin", big.clone());
    a.kairo(&["data", "add", "data", "big.bin"]).assert().success();
    a.kairo(&["data", "push"]).assert().success();
    let objects = a.object_count() as u64;
    let r = a.json(&["data", "verify", "--remote"]);
    assert_eq!((r["objects"].as_u64(), r["bytes"].as_u64().unwrap() > 400_000), (Some(objects), true), "{r}");
    a.kairo(&["data", "verify", "-r", "origin"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("remote is consistent"));
    let store_files = walkdir_count(&a.join(".kairo"));

    // A byte flipped in a pack and in the loose object: both named, exit 4.
    let pack = pack_indexes(remote.path())[0].with_extension("pack");
    let mut bytes = fs::read(&pack).unwrap();
    let at = bytes.windows(7).position(|w| w == b"file 13").unwrap();
    bytes[at] ^= 0x20;
    fs::write(&pack, &bytes).unwrap();
    let h = blake3::hash(&big).to_hex().to_string();
    let loose = remote.path().join(&h[..2]).join(&h[2..]);
    let mut damaged = fs::read(&loose).unwrap();
    damaged[1000] ^= 1;
    fs::write(&loose, &damaged).unwrap();
    let r = a.json(&["data", "verify", "--remote"]);
    let mut corrupt: Vec<String> =
        r["corrupt"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    corrupt.sort();
    let mut want = vec![h.clone(), blake3::hash(b"file 13\n").to_hex().to_string()];
    want.sort();
    assert_eq!(corrupt, want, "{r}");
    a.kairo(&["data", "verify", "--remote"])
        .assert()
        .code(4)
        .stdout(predicate::str::contains(format!("CORRUPT  {h}")).and(predicate::str::contains("remove it there")));
    assert_eq!(walkdir_count(&a.join(".kairo")), store_files, "nothing downloaded is kept");
    // Presence only: nothing downloaded, so the damage is not seen.
    a.kairo(&["data", "verify", "--remote", "--quick"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("presence only"));

    // A lost object: named with the path that needs it and the push that restores it.
    fs::remove_file(&loose).unwrap();
    a.kairo(&["data", "verify", "--remote", "--quick"])
        .assert()
        .code(4)
        .stdout(predicate::str::contains(format!("MISSING  {h}  (needed by big.bin; run `kairo data push big.bin`)")));
    a.kairo(&["data", "push"]).assert().success();
    bytes[at] ^= 0x20;
    fs::write(&pack, &bytes).unwrap();
    a.kairo(&["data", "verify", "--remote"]).assert().code(0);

    // Bad input.
    a.kairo(&["data", "verify", "--quick"]).assert().code(2).stderr(predicate::str::contains("--remote"));
    a.kairo(&["data", "verify", "--remote", "nowhere"]).assert().code(1).stderr(predicate::str::contains("nowhere"));
}

/// A refused credential and an unreachable host name the remote and the cause, and where the
/// credentials come from (S3, Azure, GCS).
#[test]
fn a_wrong_credential_or_an_unreachable_host_is_named() {
    let Some(s3) = crate::service("KAIRO_TEST_S3_URL") else { return };
    let Some(azure) = crate::service("KAIRO_TEST_AZURE_URL") else { return };
    let repo = Repo::new();
    repo.write("a.txt", "a");
    repo.kairo(&["data", "add", "a.txt"]).assert().success();
    set_remote(&repo, &format!("{s3}/wrong-{}", unique()));
    let out = repo.kairo(&["data", "push"]).env("AWS_SECRET_ACCESS_KEY", "not-the-secret").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused the credentials") && err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    set_remote(&repo, &format!("{azure}/wrong-{}", unique()));
    let out = repo
        .kairo(&["data", "push"])
        .env("AZURE_STORAGE_ACCOUNT_KEY", "bm90LXRoZS1rZXktbm90LXRoZS1rZXktbm90LXRoZS1rZXk=")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused the credentials") && err.contains("AZURE_STORAGE_ACCOUNT_KEY"), "{err}");
    let out = repo.kairo(&["data", "push"]).env("AZURITE_BLOB_STORAGE_URL", "http://127.0.0.1:9").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot reach the remote (network)") && err.contains(&azure), "{err}");

    // GCS: the emulator checks no token, so the wrong credentials are ones that cannot be
    // used at all: a key file that is not there, and one whose private key is not a key.
    let Some(gcs) = crate::service("KAIRO_TEST_GCS_URL") else { return };
    set_remote(&repo, &format!("{gcs}/wrong-{}", unique()));
    let scratch = tempfile::tempdir().unwrap();
    let bad_key = scratch.path().join("key.json");
    fs::write(
        &bad_key,
        r#"{"client_email": "kairo@example.iam.gserviceaccount.com", "private_key_id": "1",
            "private_key": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"}"#,
    )
    .unwrap();
    for key in [scratch.path().join("absent.json"), bad_key] {
        let out = repo.kairo(&["data", "push"]).env("GOOGLE_SERVICE_ACCOUNT", &key).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("refused the credentials")
                && err.contains("GOOGLE_APPLICATION_CREDENTIALS")
                && err.contains(&gcs),
            "{err}"
        );
    }
}

/// SSH: an unknown host key and a changed one are errors that say how to check and trust the
/// key (never accepted silently, whatever the user's config says); a key the server refuses
/// and a closed port name their cause.
#[test]
fn ssh_host_keys_are_never_trusted_silently() {
    let Some(url) = crate::service("KAIRO_TEST_SSH_URL") else { return };
    let Some(config) = crate::service("KAIRO_TEST_SSH_CONFIG") else { return };
    let Some(port) = crate::service("KAIRO_TEST_SSH_PORT") else { return };
    let repo = Repo::new();
    repo.write("a.txt", "a");
    repo.kairo(&["data", "add", "a.txt"]).assert().success();
    set_remote(&repo, &format!("{url}/keys-{}", unique()));
    let scratch = tempfile::tempdir().unwrap();
    let push = |command: String| {
        let out = repo.kairo(&["data", "push"]).env("KAIRO_SSH_COMMAND", command).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };

    // Unknown: an empty known_hosts, and a user config that would accept any new key.
    let empty = scratch.path().join("empty_known_hosts");
    fs::write(&empty, "").unwrap();
    let err =
        push(format!("ssh -F {config} -o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new", empty.display()));
    assert!(err.contains("[127.0.0.1]:") && err.contains("is not a known host"), "{err}");
    assert!(err.contains(&format!("ssh-keyscan -p {port} 127.0.0.1")), "{err}");
    assert_eq!(fs::read_to_string(&empty).unwrap(), "", "the key was not added");

    // Changed: known_hosts holds another key for this host and port.
    let other = scratch.path().join("other");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", other.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(made.success());
    let wrong = scratch.path().join("wrong_known_hosts");
    let public = fs::read_to_string(other.with_extension("pub")).unwrap();
    let key: Vec<&str> = public.split_whitespace().take(2).collect();
    fs::write(&wrong, format!("[127.0.0.1]:{port} {}\n", key.join(" "))).unwrap();
    let err = push(format!("ssh -F {config} -o UserKnownHostsFile={}", wrong.display()));
    assert!(err.contains("does not match the one in known_hosts"), "{err}");
    assert!(err.contains(&format!("ssh-keygen -R '[127.0.0.1]:{port}'")), "{err}");

    // A key the server does not accept (the config with its IdentityFile swapped).
    let swapped: String = fs::read_to_string(&config)
        .unwrap()
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("IdentityFile") {
                format!("  IdentityFile {}\n", other.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let swapped_config = scratch.path().join("ssh_config");
    fs::write(&swapped_config, swapped).unwrap();
    let err = push(format!("ssh -F {} -o IdentityAgent=none", swapped_config.display()));
    assert!(err.contains("refused the credentials") && err.contains("SSH key"), "{err}");

    // Nothing listens there.
    set_remote(&repo, &url.replacen(&format!(":{port}/"), ":9/", 1));
    let err = push(format!("ssh -F {config}"));
    assert!(err.contains("cannot reach the remote (network)"), "{err}");

    // A command that is not there is named, with where it came from.
    let err = push("kairo-no-such-ssh -F x".to_string());
    assert!(err.contains("cannot run `kairo-no-such-ssh`, the command KAIRO_SSH_COMMAND names"), "{err}");
}

#[test]
fn remote_errors_are_clear() {
    let repo = Repo::new();
    repo.write("a.txt", "a");
    repo.kairo(&["data", "add", "a.txt"]).assert().success();
    repo.kairo(&["data", "push"]).assert().code(1).stderr(predicate::str::contains("default_remote"));
    repo.kairo(&["data", "push", "--remote", "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no remote named `nope`"));
    // A pull whose objects are not on the remote fails without touching the work tree.
    let empty = tempfile::tempdir().unwrap();
    set_remote(&repo, &format!("file://{}", empty.path().display()));
    fs::remove_dir_all(repo.join(".kairo/objects")).unwrap();
    repo.kairo(&["data", "pull"]).assert().code(1).stderr(predicate::str::contains("not on the remote"));
    assert_eq!(repo.read("a.txt"), b"a");
}

#[test]
fn pull_rejects_corrupted_remote_objects() {
    let remote = tempfile::tempdir().unwrap();
    let a = Repo::new();
    set_remote(&a, &format!("file://{}", remote.path().display()));
    a.write("a.txt", "genuine");
    a.kairo(&["data", "add", "a.txt"]).assert().success();
    a.kairo(&["data", "push"]).assert().success();
    let h = blake3::hash(b"genuine").to_hex().to_string();
    fs::write(remote.path().join(&h[..2]).join(&h[2..]), "forged").unwrap();

    let b = Repo::new();
    set_remote(&b, &format!("file://{}", remote.path().display()));
    fs::copy(a.join("a.txt.kairo"), b.join("a.txt.kairo")).unwrap();
    b.kairo(&["data", "pull"]).assert().code(1).stderr(predicate::str::contains("corrupted"));
    assert!(!b.join("a.txt").exists());
    assert_eq!(b.object_count(), 0);

    // The checkout after a pull copies what the pull fetched (and hashed) without reading it
    // back, but an object already here is checked: a local corruption is refused, not copied.
    let big: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    a.write("big.bin", big.clone());
    a.kairo(&["data", "add", "big.bin"]).assert().success();
    a.kairo(&["data", "push"]).assert().success();
    let c = Repo::new();
    set_remote(&c, &format!("file://{}", remote.path().display()));
    fs::copy(a.join("big.bin.kairo"), c.join("big.bin.kairo")).unwrap();
    c.kairo(&["data", "pull"]).assert().success();
    assert_eq!(fs::read(c.join("big.bin")).unwrap(), big);
    c.corrupt_in_store(&big[1000..1064]);
    fs::remove_file(c.join("big.bin")).unwrap();
    c.kairo(&["data", "pull"]).assert().code(1).stderr(predicate::str::contains("is corrupted"));
    assert!(!c.join("big.bin").exists());
}

#[test]
fn metadata_goes_to_postgres_when_configured() {
    let Some(base) = crate::service("KAIRO_TEST_POSTGRES_URL") else { return };
    let url = crate::faults::fresh_postgres_database(&base);
    let repo = Repo::bare().with_database(url.clone()).initialised();
    make_tree(&repo, "data", 3);
    repo.kairo(&["data", "add", "data"]).assert().success();
    repo.write("data/d0/f0.txt", "v2");
    repo.kairo(&["data", "add", "data"]).assert().success();
    let log = repo.json(&["data", "log", "data"]);
    assert_eq!(log.as_array().unwrap().len(), 2);
    // The versions are in PostgreSQL, not in a SQLite file.
    let out = std::process::Command::new("psql")
        .args([url.as_str(), "-tAc", "SELECT count(*) FROM dataset_versions"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
    assert!(!repo.join(".kairo/kairo.db").exists());
}
