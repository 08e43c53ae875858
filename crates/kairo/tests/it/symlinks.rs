//! `kairo data add` and symbolic links: within the project, to the store, outside the
//! project, round in cycles. (The basic cases — a link outside refused, a link into `.kairo/`
//! refused, `--follow-symlinks` storing an outside file — are in `faults`.)

use crate::{make_tree, Repo};
use predicates::prelude::*;
use std::os::unix::fs::symlink;

fn refused_with_nothing_recorded(repo: &Repo, args: &[&str], pointer: &str, says: &[&str]) {
    let mut want = predicate::always().boxed();
    for s in says {
        want = want.and(predicate::str::contains(*s)).boxed();
    }
    repo.kairo(args).assert().code(1).stderr(want);
    assert!(!repo.join(pointer).exists(), "no pointer after a refused add: {args:?}");
    assert_eq!(repo.object_count(), 0, "nothing stored after a refused add: {args:?}");
}

#[test]
fn the_store_is_refused_however_it_is_reached() {
    let repo = Repo::new();
    // A link to the project root, named so that the walk skips it on the way round (checkout's
    // temp-file mark): without the store check this stored .kairo/ itself, database included.
    symlink(".", repo.join("snap.kairo-tmp-1")).unwrap();
    refused_with_nothing_recorded(
        &repo,
        &["data", "add", "snap.kairo-tmp-1"],
        "snap.kairo-tmp-1.kairo",
        &["snap.kairo-tmp-1/.kairo", "Kairo's own store"],
    );
    std::fs::remove_file(repo.join("snap.kairo-tmp-1")).unwrap();

    // Through a directory outside the project that links back into the store, with
    // --follow-symlinks: the outside link is named.
    make_tree(&repo, "data", 2);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("ok.txt"), "fine\n").unwrap();
    symlink(repo.join(".kairo/objects"), outside.path().join("back")).unwrap();
    symlink(outside.path(), repo.join("data/ext")).unwrap();
    refused_with_nothing_recorded(
        &repo,
        &["data", "add", "--follow-symlinks", "data"],
        "data.kairo",
        &["data/ext/back", "Kairo's own store"],
    );
}

#[test]
fn cycles_are_named_as_cycles_inside_and_outside_the_project() {
    let repo = Repo::new();
    make_tree(&repo, "data", 2);
    // A directory outside the project with a link to itself, reached with --follow-symlinks.
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("sub")).unwrap();
    symlink("..", outside.path().join("sub/parent")).unwrap();
    symlink(outside.path(), repo.join("data/ext")).unwrap();
    refused_with_nothing_recorded(
        &repo,
        &["data", "add", "--follow-symlinks", "data"],
        "data.kairo",
        &["data/ext/sub/parent", "symlink cycle"],
    );
    // Without the flag the same link is refused as leaving the project, naming the link.
    refused_with_nothing_recorded(
        &repo,
        &["data", "add", "data"],
        "data.kairo",
        &["data/ext", "outside the project", "--follow-symlinks"],
    );
    std::fs::remove_file(repo.join("data/ext")).unwrap();
    // The tracked path itself a link in a cycle.
    symlink("b", repo.join("a")).unwrap();
    symlink("a", repo.join("b")).unwrap();
    refused_with_nothing_recorded(&repo, &["data", "add", "a"], "a.kairo", &["/a", "symlink cycle"]);
    // And the data still adds once the links are gone.
    repo.kairo(&["data", "add", "data"]).assert().success();
}

#[test]
fn links_within_the_project_are_stored_as_their_content_without_the_flag() {
    let repo = Repo::new();
    make_tree(&repo, "data", 2);
    repo.write("shared/labels.csv", "a,b\n1,2\n");
    repo.write("shared/images/x.bin", "x");
    symlink("../shared/labels.csv", repo.join("data/labels.csv")).unwrap();
    symlink(repo.join("shared/images"), repo.join("data/images")).unwrap();
    repo.kairo(&["data", "add", "data"]).assert().success();
    std::fs::remove_dir_all(repo.join("data")).unwrap();
    repo.kairo(&["data", "checkout"]).assert().success();
    assert_eq!(repo.read("data/labels.csv"), b"a,b\n1,2\n");
    assert_eq!(repo.read("data/images/x.bin"), b"x");
    // A link to nothing is named as broken, and nothing is recorded.
    symlink("../shared/gone.csv", repo.join("data/gone.csv")).unwrap();
    std::fs::remove_file(repo.join("data.kairo")).unwrap();
    repo.kairo(&["data", "add", "data"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("data/gone.csv").and(predicate::str::contains("broken symbolic link")));
    assert!(!repo.join("data.kairo").exists());
}
