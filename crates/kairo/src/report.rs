//! Small helpers for human and JSON output.

pub fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot render JSON: {e}"),
    }
}

/// Bytes for humans: 1.5 MiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Write whole, then rename: a failed or interrupted command leaves no partial file (`kairo
/// train`'s model and metrics, `kairo kpi --html`).
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), crate::Failure> {
    write_with_mode(path, bytes, 0o666)
}

/// As [`write_atomic`], readable by the owner only from the moment the file exists (tokens).
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), crate::Failure> {
    write_with_mode(path, bytes, 0o600)
}

fn write_with_mode(path: &std::path::Path, bytes: &[u8], mode: u32) -> Result<(), crate::Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = path.with_file_name(format!(".{name}.kairo-tmp"));
    // A leftover temp file would keep its old mode: start from none.
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
    written.and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        crate::Failure { code: kairo_core::exit::ERROR, message: format!("cannot write {}: {e}", path.display()) }
    })
}
