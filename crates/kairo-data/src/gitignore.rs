//! Keeping tracked data and the store out of git.

use crate::error::{DataError, Result};
use std::fs;
use std::path::Path;

/// Add `pattern` to `dir/.gitignore` unless a line already says exactly that.
pub fn ensure_ignored(dir: &Path, pattern: &str) -> Result<bool> {
    let path = dir.join(".gitignore");
    let existing = match fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(DataError::Io { path, source: e }),
    };
    if existing.lines().any(|l| l.trim() == pattern) {
        return Ok(false);
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(pattern);
    text.push('\n');
    let tmp = dir.join(".gitignore.kairo-tmp");
    fs::write(&tmp, text).map_err(DataError::io(&tmp))?;
    fs::rename(&tmp, &path).map_err(DataError::io(&path))?;
    Ok(true)
}

/// Ignore a tracked path (project-relative) in the .gitignore beside it, as `/name`.
pub fn ignore_tracked(root: &Path, rel: &str) -> Result<bool> {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((d, n)) => (root.join(d), n),
        None => (root.to_path_buf(), rel),
    };
    ensure_ignored(&dir, &format!("/{}", escape(name)))
}

/// Escape gitignore metacharacters in a literal file name.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, c) in name.chars().enumerate() {
        if matches!(c, '*' | '?' | '[' | '\\') || (i == 0 && matches!(c, '!' | '#')) {
            out.push('\\');
        }
        out.push(c);
    }
    if out.ends_with(' ') {
        out.pop();
        out.push_str("\\ ");
    }
    out
}
