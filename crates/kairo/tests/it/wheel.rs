//! The wheel `.ci/wheel.sh` builds with maturin (`KAIRO_TEST_WHEEL`): installed with pip into a
//! fresh venv it puts `kairo` on PATH, that binary runs `kairo demo` and needs nothing but glibc,
//! and the wheel's metadata is what PyPI shows (summary, licence, the README as Markdown). Also
//! the shell completions and manual pages the binary generates.

use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pip_install_the_wheel_then_kairo_demo() {
    let Some(wheel) = crate::service("KAIRO_TEST_WHEEL") else { return };
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    // No index: the wheel needs nothing from PyPI.
    run(Command::new(venv.join("bin/pip")).args(["install", "--no-index", "--disable-pip-version-check", &wheel]));
    let kairo = venv.join("bin/kairo");
    assert!(kairo.is_file(), "pip put no kairo in {}", venv.join("bin").display());
    let version = run(Command::new(&kairo).arg("--version"));
    assert_eq!(version.trim(), format!("kairo {}", env!("CARGO_PKG_VERSION")));

    // Nothing but glibc (and the kernel's vDSO).
    let ldd = run(Command::new("ldd").arg(&kairo));
    for line in ldd.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let lib = line.split_whitespace().next().unwrap();
        let glibc = ["linux-vdso.so.1", "libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2"]
            .contains(&lib)
            || lib.contains("/ld-linux");
        assert!(glibc, "kairo needs {lib}, which is not part of glibc:\n{ldd}");
    }
    let size = std::fs::metadata(&kairo).unwrap().len();
    eprintln!("the wheel's kairo binary: {size} bytes");

    // The main job, from the installed binary, in a directory of its own.
    let demo = dir.path().join("demo");
    let out =
        Command::new(&kairo).arg("demo").arg("--dir").arg(&demo).env("KAIRO_ACTOR", "tester@test").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("demo finished"), "{text}");

    // What PyPI shows.
    let site =
        std::fs::read_dir(venv.join("lib")).unwrap().map(|e| e.unwrap().path().join("site-packages")).next().unwrap();
    let info = std::fs::read_dir(&site)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with("kairo-")
                && p.extension().is_some_and(|e| e == "dist-info")
        })
        .unwrap();
    let metadata = std::fs::read_to_string(info.join("METADATA")).unwrap();
    for needle in [
        "Name: kairo",
        "Summary: MLOps in one binary",
        "License-Expression: Apache-2.0",
        "License-File: LICENSE",
        "Description-Content-Type: text/markdown",
    ] {
        assert!(metadata.contains(needle), "{needle} not in METADATA:\n{}", &metadata[..metadata.len().min(2000)]);
    }
    let licence = std::fs::read_to_string(info.join("licenses/LICENSE")).unwrap();
    assert!(
        licence.contains("Apache License") && licence.contains("Version 2.0"),
        "the licence text ships in the wheel"
    );
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    assert!(metadata.contains(readme.lines().nth(2).unwrap()), "the README is the long description");
}

/// Completions for three shells and the manual pages come from the clap definitions: bash
/// parses the script and completes a subcommand; every page renders with man.
#[test]
fn completions_and_manual_pages() {
    let dir = tempfile::tempdir().unwrap();
    let kairo = assert_cmd::cargo::cargo_bin("kairo");
    for shell in ["bash", "zsh", "fish"] {
        let script = run(Command::new(&kairo).args(["completions", shell]));
        assert!(
            script.contains("kairo") && script.contains("package"),
            "{shell}: {}",
            &script[..script.len().min(300)]
        );
        std::fs::write(dir.path().join(shell), &script).unwrap();
    }
    // bash: the function completes `kairo mod` to `models`.
    let probe = format!(
        "source {}; COMP_WORDS=(kairo mod); COMP_CWORD=1; COMP_LINE='kairo mod'; COMP_POINT=9; _kairo kairo mod kairo; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        dir.path().join("bash").display()
    );
    let completed = run(Command::new("bash").arg("-c").arg(&probe));
    assert!(completed.lines().any(|l| l == "models"), "{completed}");
    let out = Command::new(&kairo).args(["completions", "powershell-7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");

    let page = run(Command::new(&kairo).arg("man"));
    assert!(page.contains(".TH kairo 1") && page.contains("models"), "{}", &page[..page.len().min(300)]);
    let pages = dir.path().join("man");
    let said = run(Command::new(&kairo).arg("man").arg("--out-dir").arg(&pages));
    assert!(said.contains("manual pages"), "{said}");
    let package = pages.join("kairo-models-package.1");
    let rendered = run(Command::new("man").arg("-l").arg(&package).env("MANWIDTH", "100").env("MANPAGER", "cat"));
    assert!(rendered.contains("kairo models package") && rendered.contains("--push"), "{rendered}");
}
