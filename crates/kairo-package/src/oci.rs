//! OCI images (image-spec v1.1) built in memory and written as an image layout inside a tar.
//!
//! Reproducible by construction: layer entries are written in the order given with owner 0:0,
//! one fixed time and no user or group names; gzip carries no name or time; every JSON
//! document is `serde_json`'s compact form of a map with sorted keys. The same inputs give the
//! same bytes, so the same manifest digest.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{io, PackageError, Result};

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation an image layout's index names an image by (`umoci --image DIR:TAG`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One path in a layer. Paths are relative to the root (`usr/local/bin/kairo`).
#[derive(Debug, Clone)]
pub enum Entry {
    Dir { path: String, mode: u32 },
    File { path: String, mode: u32, bytes: Vec<u8> },
    Symlink { path: String, target: String },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => path,
        }
    }
}

/// A layer: its entries, and a line for the image's history.
#[derive(Debug, Clone)]
pub struct Layer {
    pub created_by: String,
    pub entries: Vec<Entry>,
}

/// What an image is made of.
#[derive(Debug, Clone)]
pub struct Spec {
    pub layers: Vec<Layer>,
    /// The runtime configuration (`config` of the image config: `Entrypoint`, `Env`, ...).
    pub runtime: Value,
    /// RFC 3339; also every layer entry's time.
    pub created: String,
    /// Seconds since 1970 of `created`, for the tar headers.
    pub mtime: u64,
    /// On the manifest (and as the image config's labels).
    pub annotations: BTreeMap<String, String>,
    /// The tag the layout's index names the image by.
    pub ref_name: String,
}

/// A blob: its digest (`sha256:HEX`), media type and bytes.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Blob {
        Blob { digest: digest(&bytes), media_type, bytes }
    }

    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

/// A built image: its layers (compressed), config and manifest.
#[derive(Debug, Clone)]
pub struct Image {
    pub layers: Vec<Blob>,
    pub config: Blob,
    pub manifest: Blob,
    pub ref_name: String,
}

pub fn digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A layer's uncompressed tar: parents before children, in the order given.
fn layer_tar(entries: &[Entry], mtime: u64) -> Result<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let path = e.path();
        if path.is_empty() || path.starts_with('/') || path.split('/').any(|c| c == ".." || c == ".") {
            return Err(PackageError::Invalid(format!("layer path `{path}` must be relative and plain")));
        }
        if !seen.insert(path.to_string()) {
            return Err(PackageError::Invalid(format!("layer path `{path}` appears twice")));
        }
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        let fail = |e: std::io::Error| PackageError::Invalid(format!("layer path `{path}`: {e}"));
        match e {
            Entry::Dir { mode, .. } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, format!("{path}/"), std::io::empty()).map_err(fail)?;
            }
            Entry::File { mode, bytes, .. } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(bytes.len() as u64);
                b.append_data(&mut h, path, &bytes[..]).map_err(fail)?;
            }
            Entry::Symlink { target, .. } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).map_err(fail)?;
            }
        }
    }
    b.into_inner().map_err(|e| PackageError::Invalid(format!("layer: {e}")))
}

/// gzip with no file name and time 0, so the same tar compresses to the same bytes.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Build the image: each layer tarred and compressed, the config (with the uncompressed
/// layers' digests), the manifest.
pub fn build(spec: &Spec) -> Result<Image> {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    for l in &spec.layers {
        let tar = layer_tar(&l.entries, spec.mtime)?;
        diff_ids.push(digest(&tar));
        layers.push(Blob::new(LAYER_GZIP, gzip(&tar)));
        history.push(json!({"created": spec.created, "created_by": l.created_by}));
    }
    let mut runtime = spec.runtime.clone();
    if let Some(r) = runtime.as_object_mut() {
        r.insert("Labels".into(), json!(spec.annotations));
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": spec.created,
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    let config = Blob::new(CONFIG, config.to_string().into_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        "annotations": spec.annotations,
    });
    let manifest = Blob::new(MANIFEST, manifest.to_string().into_bytes());
    Ok(Image { layers, config, manifest, ref_name: spec.ref_name.clone() })
}

impl Image {
    /// The image layout's `index.json`: this image, named by its tag.
    pub fn index(&self) -> Vec<u8> {
        let mut m = self.manifest.descriptor();
        m["annotations"] = json!({ REF_NAME: self.ref_name });
        json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [m]}).to_string().into_bytes()
    }

    /// Every blob once: layers, config, manifest.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut all: Vec<&Blob> = self.layers.iter().collect();
        all.push(&self.config);
        all.push(&self.manifest);
        let mut seen = std::collections::HashSet::new();
        all.retain(|b| seen.insert(b.digest.clone()));
        all
    }

    /// Write the image layout as a tar at `out` (through a temporary file beside it, renamed
    /// into place: a failure leaves no half-written archive).
    pub fn write_archive(&self, out: &Path, mtime: u64) -> Result<()> {
        let mut entries = vec![
            Entry::File {
                path: "oci-layout".into(),
                mode: 0o644,
                bytes: br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            },
            Entry::File { path: "index.json".into(), mode: 0o644, bytes: self.index() },
            Entry::Dir { path: "blobs".into(), mode: 0o755 },
            Entry::Dir { path: "blobs/sha256".into(), mode: 0o755 },
        ];
        for b in self.blobs() {
            let hex = b.digest.trim_start_matches("sha256:");
            entries.push(Entry::File { path: format!("blobs/sha256/{hex}"), mode: 0o644, bytes: b.bytes.clone() });
        }
        let tar = layer_tar(&entries, mtime)?;
        let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = out.with_file_name(format!(".{name}.partial"));
        std::fs::write(&tmp, &tar).map_err(io(tmp.display()))?;
        std::fs::rename(&tmp, out).map_err(io(out.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            layers: vec![Layer {
                created_by: "test".into(),
                entries: vec![
                    Entry::Dir { path: "etc".into(), mode: 0o755 },
                    Entry::File { path: "etc/hello".into(), mode: 0o644, bytes: b"hi\n".to_vec() },
                    Entry::Symlink { path: "hello".into(), target: "etc/hello".into() },
                ],
            }],
            runtime: json!({"Entrypoint": ["/bin/true"]}),
            created: "2026-01-01T00:00:00Z".into(),
            mtime: 1_767_225_600,
            annotations: BTreeMap::from([("org.opencontainers.image.version".to_string(), "3".to_string())]),
            ref_name: "v3".into(),
        }
    }

    #[test]
    fn the_same_spec_gives_the_same_digests() {
        let (a, b) = (build(&spec()).unwrap(), build(&spec()).unwrap());
        assert_eq!(a.manifest.digest, b.manifest.digest);
        assert_eq!(a.manifest.bytes, b.manifest.bytes);
        let mut other = spec();
        other.annotations.insert("x".into(), "y".into());
        assert_ne!(build(&other).unwrap().manifest.digest, a.manifest.digest);
    }

    #[test]
    fn the_config_names_the_uncompressed_layers() {
        let image = build(&spec()).unwrap();
        let config: Value = serde_json::from_slice(&image.config.bytes).unwrap();
        let tar = layer_tar(&spec().layers[0].entries, spec().mtime).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], digest(&tar));
        assert_eq!(config["config"]["Labels"]["org.opencontainers.image.version"], "3");
        let manifest: Value = serde_json::from_slice(&image.manifest.bytes).unwrap();
        assert_eq!(manifest["layers"][0]["digest"], image.layers[0].digest);
        assert_eq!(manifest["config"]["size"], image.config.bytes.len());
    }

    #[test]
    fn paths_that_escape_or_repeat_are_refused() {
        for bad in ["/etc/x", "../x", "a/./b", ""] {
            let entries = vec![Entry::File { path: bad.into(), mode: 0o644, bytes: vec![] }];
            assert!(layer_tar(&entries, 0).is_err(), "{bad}");
        }
        let twice = vec![Entry::Dir { path: "a".into(), mode: 0o755 }, Entry::Dir { path: "a".into(), mode: 0o755 }];
        assert!(layer_tar(&twice, 0).unwrap_err().to_string().contains("twice"));
    }
}
