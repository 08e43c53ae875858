//! The optional ONNX Runtime backend (cargo feature `ort`), for models tract cannot run
//! (SVMs, label encoders, ...). ONNX Runtime is loaded at run time from `ORT_DYLIB_PATH` —
//! for example the `libonnxruntime.so` that the `onnxruntime` Python wheel ships in
//! `onnxruntime/capi/` — so nothing is downloaded or linked at build time.

use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::{DType, Data, RuntimeError, Signature, Tensor, TensorSpec};

/// Why ONNX Runtime could not take a model.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrtError {
    #[error(
        "ONNX Runtime is not configured: set ORT_DYLIB_PATH to a libonnxruntime.so \
         (the onnxruntime Python wheel ships one in onnxruntime/capi/)"
    )]
    NotConfigured,
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    Init { path: String, message: String },
    #[error("cannot start ONNX Runtime from {path}: {message}")]
    Start { path: String, message: String },
    #[error("{what} '{name}' has unsupported element type {ty}")]
    ElementType { what: &'static str, name: String, ty: String },
    #[error("{what} '{name}' is not a tensor ({ty}); export classifiers with zipmap=False")]
    NotATensor { what: &'static str, name: String, ty: String },
    /// ONNX Runtime refused the model (ort's errors are not `Clone`, so the text is kept).
    #[error("ONNX Runtime: {0}")]
    Session(String),
}

/// Loaded once per process; a failure is kept and answered to every later load.
static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, OrtError>> = OnceLock::new();

/// Load ONNX Runtime once per process.
fn environment() -> Result<&'static ort::environment::Environment, OrtError> {
    ENVIRONMENT
        .get_or_init(|| {
            let path = std::env::var_os("ORT_DYLIB_PATH").ok_or(OrtError::NotConfigured)?;
            let shown = std::path::Path::new(&path).display().to_string();
            ort::init_from(&path)
                .map_err(|e| OrtError::Init { path: shown.clone(), message: e.to_string() })?
                .with_name("kairo")
                .build()
                .map_err(|e| OrtError::Start { path: shown, message: e.to_string() })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A model held by ONNX Runtime. Sessions run one request at a time (`run` takes `&mut`).
pub struct OrtModel {
    session: Mutex<Session>,
    pub signature: Signature,
}

fn dtype(ty: TensorElementType) -> Option<DType> {
    Some(match ty {
        TensorElementType::Float32 => DType::F32,
        TensorElementType::Float64 => DType::F64,
        TensorElementType::Int8 => DType::I8,
        TensorElementType::Int16 => DType::I16,
        TensorElementType::Int32 => DType::I32,
        TensorElementType::Int64 => DType::I64,
        TensorElementType::Uint8 => DType::U8,
        TensorElementType::Uint16 => DType::U16,
        TensorElementType::Uint32 => DType::U32,
        TensorElementType::Uint64 => DType::U64,
        TensorElementType::Bool => DType::Bool,
        TensorElementType::String => DType::Bytes,
        _ => return None,
    })
}

fn spec(name: &str, ty: &ValueType, what: &'static str) -> Result<TensorSpec, OrtError> {
    match ty {
        ValueType::Tensor { ty, shape, .. } => Ok(TensorSpec {
            name: name.to_string(),
            dtype: dtype(*ty).ok_or_else(|| OrtError::ElementType {
                what,
                name: name.to_string(),
                ty: format!("{ty:?}"),
            })?,
            shape: shape.iter().map(|d| if *d < 0 { -1 } else { *d }).collect(),
        }),
        other => Err(OrtError::NotATensor { what, name: name.to_string(), ty: format!("{other:?}") }),
    }
}

pub fn load(bytes: &[u8]) -> Result<OrtModel, OrtError> {
    let env = environment()?;
    let err = |e: ort::Error| OrtError::Session(e.to_string());
    let session = Session::builder(env)
        .map_err(err)?
        .with_intra_threads(1)
        .map_err(|e| OrtError::Session(e.to_string()))?
        .commit_from_memory(bytes)
        .map_err(err)?;
    let inputs = session.inputs().iter().map(|o| spec(o.name(), o.dtype(), "input")).collect::<Result<Vec<_>, _>>()?;
    let outputs =
        session.outputs().iter().map(|o| spec(o.name(), o.dtype(), "output")).collect::<Result<Vec<_>, _>>()?;
    Ok(OrtModel { session: Mutex::new(session), signature: Signature { inputs, outputs } })
}

fn to_ort(t: Tensor) -> Result<ort::value::DynValue, ort::Error> {
    let shape: Vec<i64> = t.shape.iter().map(|d| *d as i64).collect();
    use ort::value::Tensor as T;
    Ok(match t.data {
        Data::Bool(v) => T::from_array((shape, v))?.into_dyn(),
        Data::U8(v) => T::from_array((shape, v))?.into_dyn(),
        Data::U16(v) => T::from_array((shape, v))?.into_dyn(),
        Data::U32(v) => T::from_array((shape, v))?.into_dyn(),
        Data::U64(v) => T::from_array((shape, v))?.into_dyn(),
        Data::I8(v) => T::from_array((shape, v))?.into_dyn(),
        Data::I16(v) => T::from_array((shape, v))?.into_dyn(),
        Data::I32(v) => T::from_array((shape, v))?.into_dyn(),
        Data::I64(v) => T::from_array((shape, v))?.into_dyn(),
        Data::F32(v) => T::from_array((shape, v))?.into_dyn(),
        Data::F64(v) => T::from_array((shape, v))?.into_dyn(),
        Data::Bytes(v) => T::from_string_array((shape, v.as_slice()))?.into_dyn(),
    })
}

fn from_ort(v: &ort::value::DynValue, dtype: DType) -> Result<Tensor, ort::Error> {
    macro_rules! prim {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = v.try_extract_tensor::<$t>()?;
            (shape.iter().map(|d| *d as usize).collect::<Vec<_>>(), Data::$variant(data.to_vec()))
        }};
    }
    let (shape, data) = match dtype {
        DType::Bool => prim!(bool, Bool),
        DType::U8 => prim!(u8, U8),
        DType::U16 => prim!(u16, U16),
        DType::U32 => prim!(u32, U32),
        DType::U64 => prim!(u64, U64),
        DType::I8 => prim!(i8, I8),
        DType::I16 => prim!(i16, I16),
        DType::I32 => prim!(i32, I32),
        DType::I64 => prim!(i64, I64),
        DType::F32 => prim!(f32, F32),
        DType::F64 => prim!(f64, F64),
        DType::Bytes => {
            let (shape, strings) = v.try_extract_strings()?;
            (shape.iter().map(|d| *d as usize).collect(), Data::Bytes(strings))
        }
    };
    Tensor::new(shape, data).map_err(|e| ort::Error::new(e.to_string()))
}

impl OrtModel {
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, RuntimeError> {
        let run = |e: ort::Error| RuntimeError::Run(format!("ONNX Runtime: {e}"));
        let values = self
            .signature
            .inputs
            .iter()
            .zip(inputs)
            .map(|(spec, t)| Ok((spec.name.clone(), to_ort(t)?)))
            .collect::<Result<Vec<(String, ort::value::DynValue)>, ort::Error>>()
            .map_err(run)?;
        let mut session = match self.session.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let outputs = session.run(values).map_err(run)?;
        self.signature
            .outputs
            .iter()
            .enumerate()
            .map(|(i, spec)| from_ort(&outputs[i], spec.dtype).map_err(run))
            .collect()
    }
}
