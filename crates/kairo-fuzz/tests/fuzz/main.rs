//! The fuzz targets, one module per decoder family. Every property feeds generated or mutated
//! input to a decoder and asserts that it returns: `Ok`, or an error that maps to a 4xx. A
//! panic fails the property (proptest shrinks it and prints the smallest input); an allocation
//! above the memory limit aborts this binary (see `kairo_fuzz::memory`).
//!
//! `cargo test -p kairo-fuzz` runs the short pass; for a long run:
//! `PROPTEST_CASES=100000 cargo test -p kairo-fuzz --release`.

use kairo_fuzz::memory::MemoryLimit;

#[global_allocator]
static MEMORY: MemoryLimit = MemoryLimit::new();

mod files;
mod invocations;
mod mlflow;
mod models;
mod oip;

/// Run by [`an_allocation_above_the_limit_aborts`] in a child process only.
#[test]
#[ignore = "aborts on purpose; run as a child process by an_allocation_above_the_limit_aborts"]
fn allocate_above_the_limit() {
    if std::env::var_os("KAIRO_FUZZ_ABORT_CHILD").is_some() {
        kairo_fuzz::memory::case("memory-limit", b"300 MiB");
        let v = vec![1u8; 300 << 20];
        std::hint::black_box(v);
    }
}

/// The limit is installed in this binary: a 300 MiB allocation aborts the process, naming the
/// input being decoded.
#[test]
fn an_allocation_above_the_limit_aborts() {
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args(["--ignored", "--exact", "allocate_above_the_limit", "--nocapture", "--test-threads=1"])
        .env("KAIRO_FUZZ_ABORT_CHILD", "1")
        .output()
        .expect("run the test binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child survived a 300 MiB allocation:\n{stderr}");
    assert!(stderr.contains("kairo-fuzz: refused an allocation of 314572800 bytes"), "{stderr}");
    assert!(stderr.contains("target `memory-limit`"), "{stderr}");
}
