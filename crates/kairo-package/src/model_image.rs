//! The OCI image of one model version.
//!
//! Three layers, each reproducible:
//! 1. the C runtime: the ELF interpreter of the `kairo` binary and the shared libraries the
//!    running `kairo` has mapped (glibc, libm, libgcc_s: nothing else), at their paths on this
//!    host; `/etc/passwd` and `/etc/group` naming the unprivileged user it runs as; `/tmp`.
//! 2. the `kairo` binary at `/usr/local/bin/kairo`;
//! 3. the model directory at `/model` (`model.onnx`, `kairo-model.json`: [`crate::model_dir`]).
//!
//! The entrypoint is `kairo serve --model-dir /model` with the arguments `--host 0.0.0.0 --port
//! 8080` (replaceable): no database and no project, the state (prediction log) in `/tmp`. The annotations carry the lineage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::model_dir::{self, Packaged};
use crate::oci::{Entry, Layer, Spec};
use crate::{io, PackageError, Result};

/// The port the image's server listens on.
pub const PORT: u16 = 8080;
/// The unprivileged user (and group) the image runs as.
pub const USER: u32 = 65532;
pub const MODEL_DIR: &str = "/model";
pub const BINARY: &str = "/usr/local/bin/kairo";

/// The annotation keys, `org.opencontainers.image.*` first, then Kairo's.
pub mod keys {
    pub const TITLE: &str = "org.opencontainers.image.title";
    pub const VERSION: &str = "org.opencontainers.image.version";
    pub const CREATED: &str = "org.opencontainers.image.created";
    pub const REVISION: &str = "org.opencontainers.image.revision";
    pub const DESCRIPTION: &str = "org.opencontainers.image.description";
    pub const MODEL: &str = "dev.kairo.model";
    pub const MODEL_VERSION: &str = "dev.kairo.model.version";
    pub const MODEL_HASH: &str = "dev.kairo.model.hash";
    pub const RUN: &str = "dev.kairo.run";
    pub const COMMIT: &str = "dev.kairo.commit";
    pub const DATA: &str = "dev.kairo.data";
    pub const ENVIRONMENT: &str = "dev.kairo.environment";
    pub const KAIRO_VERSION: &str = "dev.kairo.version";
}

/// The executable's ELF interpreter (`PT_INTERP`), e.g. `/lib64/ld-linux-x86-64.so.2`; none
/// for a static executable.
pub fn interpreter(elf: &[u8]) -> Result<Option<String>> {
    let bad = || PackageError::Invalid("the kairo binary is not a 64-bit little-endian ELF executable".into());
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |o: usize| elf.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| {
        elf.get(o..o + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_le_bytes).map(|v| v as usize)
    };
    let phoff = u64_at(0x20).ok_or_else(bad)?;
    let (size, count) = (u16_at(0x36).ok_or_else(bad)?, u16_at(0x38).ok_or_else(bad)?);
    for i in 0..count {
        let ph = phoff.checked_add(i.checked_mul(size).ok_or_else(bad)?).ok_or_else(bad)?;
        if u32_at(ph).ok_or_else(bad)? == 3 {
            let (off, len) = (u64_at(ph + 8).ok_or_else(bad)?, u64_at(ph + 32).ok_or_else(bad)?);
            let raw = elf.get(off..off.checked_add(len).ok_or_else(bad)?).ok_or_else(bad)?;
            let path = String::from_utf8_lossy(raw).trim_end_matches('\0').to_string();
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// The shared libraries this process has mapped (from `/proc/self/maps`), sorted: what the
/// running `kairo` needs to run.
pub fn mapped_libraries() -> Result<Vec<PathBuf>> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(io("/proc/self/maps"))?;
    let mut libs: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && (p.ends_with(".so") || p.contains(".so.")))
        .map(PathBuf::from)
        .collect();
    libs.sort();
    libs.dedup();
    Ok(libs)
}

/// Directories leading to `path` (each once, parents first), as entries of `entries`.
fn with_parents(entries: &mut Vec<Entry>, seen: &mut std::collections::BTreeSet<String>, path: &str) {
    let parts: Vec<&str> = path.split('/').collect();
    for i in 1..parts.len() {
        let dir = parts[..i].join("/");
        if seen.insert(dir.clone()) {
            entries.push(Entry::Dir { path: dir, mode: 0o755 });
        }
    }
}

/// The C runtime layer: the interpreter (at its `PT_INTERP` path, a link to the file) and the
/// libraries, at their paths on this host.
pub fn runtime_layer(kairo: &[u8], libraries: &[PathBuf]) -> Result<Layer> {
    let mut entries = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let passwd = format!("root:x:0:0:root:/root:/sbin/nologin\nkairo:x:{USER}:{USER}:kairo:/tmp:/sbin/nologin\n");
    let group = format!("root:x:0:\nkairo:x:{USER}:\n");
    with_parents(&mut entries, &mut seen, "etc/passwd");
    entries.push(Entry::File { path: "etc/passwd".into(), mode: 0o644, bytes: passwd.into_bytes() });
    entries.push(Entry::File { path: "etc/group".into(), mode: 0o644, bytes: group.into_bytes() });
    entries.push(Entry::Dir { path: "tmp".into(), mode: 0o1777 });
    seen.insert("tmp".into());
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for lib in libraries {
        let real = lib.canonicalize().map_err(io(lib.display()))?;
        let bytes = std::fs::read(&real).map_err(io(real.display()))?;
        files.insert(real.display().to_string().trim_start_matches('/').to_string(), bytes);
    }
    let interp = interpreter(kairo)?;
    let mut links = Vec::new();
    if let Some(interp) = &interp {
        let real = Path::new(interp).canonicalize().map_err(io(interp))?;
        let real_rel = real.display().to_string().trim_start_matches('/').to_string();
        if !files.contains_key(&real_rel) {
            files.insert(real_rel.clone(), std::fs::read(&real).map_err(io(real.display()))?);
        }
        let at = interp.trim_start_matches('/').to_string();
        if at != real_rel {
            links.push((at, real.display().to_string()));
        }
    }
    for (path, bytes) in files {
        with_parents(&mut entries, &mut seen, &path);
        entries.push(Entry::File { path, mode: 0o755, bytes });
    }
    for (path, target) in links {
        with_parents(&mut entries, &mut seen, &path);
        entries.push(Entry::Symlink { path, target });
    }
    Ok(Layer { created_by: "kairo models package: the C runtime of the kairo binary, from the host".into(), entries })
}

/// The lineage annotations of a packaged version.
pub fn annotations(p: &Packaged, kairo_version: &str) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    let created = kairo_core::time::millis_to_string(p.created_ms);
    a.insert(keys::TITLE.into(), p.name.clone());
    a.insert(keys::VERSION.into(), p.version.to_string());
    a.insert(keys::CREATED.into(), created);
    if !p.description.is_empty() {
        a.insert(keys::DESCRIPTION.into(), p.description.clone());
    }
    a.insert(keys::MODEL.into(), p.name.clone());
    a.insert(keys::MODEL_VERSION.into(), p.version.to_string());
    a.insert(keys::MODEL_HASH.into(), format!("blake3:{}", p.artifact.object.to_hex()));
    a.insert(keys::KAIRO_VERSION.into(), kairo_version.to_string());
    let text = |k: &str| p.lineage[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(run) = text("run") {
        a.insert(keys::RUN.into(), run);
    }
    if let Some(commit) = text("commit") {
        a.insert(keys::REVISION.into(), commit.clone());
        a.insert(keys::COMMIT.into(), commit);
    }
    if let Some(env) = text("environment") {
        a.insert(keys::ENVIRONMENT.into(), env);
    }
    if p.lineage["data"].as_object().is_some_and(|d| !d.is_empty()) {
        a.insert(keys::DATA.into(), p.lineage["data"].to_string());
    }
    a
}

/// Everything an image of `p` is built from.
pub fn spec(p: &Packaged, onnx: &[u8], kairo: &[u8], runtime: Layer, kairo_version: &str) -> Result<Spec> {
    let mut entries = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    with_parents(&mut entries, &mut seen, BINARY.trim_start_matches('/'));
    entries.push(Entry::File { path: BINARY.trim_start_matches('/').into(), mode: 0o755, bytes: kairo.to_vec() });
    let binary = Layer { created_by: format!("kairo models package: kairo {kairo_version}"), entries };
    let dir = MODEL_DIR.trim_start_matches('/');
    let model = Layer {
        created_by: format!("kairo models package: model {} version {}", p.name, p.version),
        entries: vec![
            Entry::Dir { path: dir.into(), mode: 0o755 },
            Entry::File { path: format!("{dir}/{}", model_dir::DOCUMENT), mode: 0o644, bytes: model_dir::document(p)? },
            Entry::File { path: format!("{dir}/{}", model_dir::ONNX), mode: 0o644, bytes: onnx.to_vec() },
        ],
    };
    let runtime_config = json!({
        "User": format!("{USER}:{USER}"),
        "Entrypoint": entrypoint(),
        "Cmd": cmd(),
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "TMPDIR=/tmp", "HOME=/tmp"],
        "ExposedPorts": { format!("{PORT}/tcp"): {} },
        "WorkingDir": "/tmp",
    });
    let secs = (p.created_ms.max(0) / 1000) as u64;
    Ok(Spec {
        layers: vec![runtime, binary, model],
        runtime: runtime_config,
        created: kairo_core::time::millis_to_string(p.created_ms),
        mtime: secs,
        annotations: annotations(p, kairo_version),
        ref_name: format!("v{}", p.version),
    })
}

/// The image of `p` around the `kairo` that is running (its binary and the C runtime it has
/// mapped), and the spec it was built from (its annotations and time).
pub fn build_running(p: &Packaged, onnx: &[u8], kairo_version: &str) -> Result<(crate::oci::Image, Spec)> {
    let exe = std::env::current_exe().map_err(io("the running kairo binary"))?;
    let kairo = std::fs::read(&exe).map_err(io(exe.display()))?;
    let runtime = runtime_layer(&kairo, &mapped_libraries()?)?;
    let spec = spec(p, onnx, &kairo, runtime, kairo_version)?;
    Ok((crate::oci::build(&spec)?, spec))
}

/// The image's entrypoint: serve the model directory.
pub fn entrypoint() -> Vec<String> {
    [BINARY, "serve", "--model-dir", MODEL_DIR].iter().map(|s| s.to_string()).collect()
}

/// Its default arguments, which `docker run IMAGE ARGS...` (or a pod's `args`) replace: any of
/// `kairo serve`'s flags (`--threads`, `--auth`, `--max-body-mb`, ...).
pub fn cmd() -> Vec<String> {
    ["--host", "0.0.0.0", "--port", &PORT.to_string()].iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_binary_has_an_interpreter_and_its_libraries_are_mapped() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let interp = interpreter(&me).unwrap().expect("a dynamically linked test binary");
        assert!(interp.starts_with('/') && interp.contains("ld-"), "{interp}");
        let libs = mapped_libraries().unwrap();
        assert!(libs.iter().any(|l| l.display().to_string().contains("libc.so")), "{libs:?}");
        assert!(interpreter(b"not an elf").is_err());
    }
}
