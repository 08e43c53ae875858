//! Shipping a registered model where Kairo is not installed.
//!
//! - [`oci`]: an OCI image written as an image layout inside a tar (`oci-archive:` for skopeo,
//!   `podman load`), byte-for-byte reproducible: every tar entry's owner and time fixed, gzip
//!   without a timestamp, JSON with sorted keys. No container engine is involved.
//! - [`model_dir`]: a version as files (`model.onnx`, `kairo-model.json`), and installing
//!   such a directory into a store under the same name and number.
//! - [`model_image`]: the image of one model version: the host's C runtime (the loader and the
//!   libraries the running `kairo` has mapped, nothing else), the `kairo` binary, the model's
//!   ONNX bytes and its servable facts, and an entrypoint `kairo serve --model-dir /model`;
//!   annotations carry the lineage.
//! - [`push`]: the image to a registry over the OCI distribution API, answering its Bearer
//!   token or Basic challenge.
//! - [`k8s`]: a Deployment, Service and HorizontalPodAutoscaler for that image, and a KServe
//!   `InferenceService` using it as a custom predictor.

pub mod k8s;
pub mod model_dir;
pub mod model_image;
pub mod oci;
pub mod push;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, PackageError>;

pub(crate) fn io(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> PackageError {
    let path = path.to_string();
    move |source| PackageError::Io { path, source }
}
