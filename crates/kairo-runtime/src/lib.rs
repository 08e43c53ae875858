//! ONNX inference for Kairo.
//!
//! Owns: loading an ONNX model into tract (pure Rust), lowering the ONNX-ML operators tract
//! lacks (`lower`), the model's signature, and running typed tensors through it with the
//! checks every frontend needs (names, dtypes, shapes, non-finite values), so the HTTP
//! protocols and the CLI give the same errors.
//!
//! Knows nothing of HTTP, JSON, the registry or where model bytes are stored.

pub mod explain;
mod lower;
#[cfg(feature = "ort")]
mod ort_backend;
mod tensor;
mod tree_explain;
mod trees;

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::{tensor_proto::DataType, type_proto, ModelProto};
use tract_onnx::prelude::*;

pub use tensor::{DType, Data, ShapeError, Signature, Tensor, TensorSpec};

/// Why a model could not be loaded or a request could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("not an ONNX model: {0}")]
    Decode(String),
    #[error("the model uses operators the runtime does not support: {}", .ops.join(", "))]
    Unsupported { ops: Vec<String> },
    #[error("the model cannot be prepared: {0}")]
    Load(String),
    /// A client mistake, naming the input.
    #[error("{0}")]
    Input(String),
    #[error("inference failed: {0}")]
    Run(String),
}

type Plan = Arc<TypedRunnableModel>;

/// A tract plan with run states to reuse: making a state allocates a slot per node and copies
/// the plan's constants into it, which on a one-row request costs more than the arithmetic.
/// A state forgets its inputs and resolved symbols after every run, so any state serves any
/// request; at most [`MAX_IDLE_STATES`] idle ones are kept.
struct Tract {
    plan: Plan,
    idle: std::sync::Mutex<Vec<TypedSimpleState>>,
}

const MAX_IDLE_STATES: usize = 64;

impl Tract {
    fn run(&self, values: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut state = match reused {
            Some(state) => state,
            None => self.plan.spawn()?,
        };
        let outputs = state.run(values)?;
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_STATES {
                idle.push(state);
            }
        }
        Ok(outputs)
    }
}

/// What runs a model.
enum Backend {
    Tract(Tract),
    #[cfg(feature = "ort")]
    Ort(ort_backend::OrtModel),
}

/// A loaded, optimised model, ready to run from many threads at once.
pub struct Model {
    backend: Backend,
    signature: Signature,
    /// ONNX-ML operators rewritten into core operators at load.
    lowered: Vec<String>,
    /// Whether NaN in a float input means "missing" to this model (imputers, tree ensembles).
    accepts_nan: bool,
    op_types: Vec<String>,
    /// The model's metadata properties (key, value).
    metadata: Vec<(String, String)>,
    /// For a tree ensemble over one float input: its explainer, without covers.
    tree_explainer: Option<explain::Explainer>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("signature", &self.signature).field("lowered", &self.lowered).finish()
    }
}

const NAN_AWARE_OPS: &[&str] = &["Imputer", "IsNaN", "TreeEnsembleClassifier", "TreeEnsembleRegressor"];

impl Model {
    /// Decode, lower, check operators, and optimise for a batch of any size.
    pub fn load(bytes: &[u8]) -> Result<Model, RuntimeError> {
        Model::load_with(bytes, true)
    }

    /// [`Model::load`], building a tree ensemble's explainer only when `explain` (scoring
    /// alone, as `kairo predict` does, never asks for contributions; for a large forest the
    /// explainer is a large share of loading's time and memory).
    pub fn load_with(bytes: &[u8], explain: bool) -> Result<Model, RuntimeError> {
        Model::load_from(std::borrow::Cow::Borrowed(bytes), explain)
    }

    /// [`Model::load_with`] taking the bytes, which are freed once decoded (a large forest's
    /// file need not sit beside its decoded nodes while it is built), unless a fallback to
    /// ONNX Runtime may still need them (feature `ort`).
    pub fn load_owned(bytes: Vec<u8>, explain: bool) -> Result<Model, RuntimeError> {
        Model::load_from(std::borrow::Cow::Owned(bytes), explain)
    }

    fn load_from(bytes: std::borrow::Cow<'_, [u8]>, explain: bool) -> Result<Model, RuntimeError> {
        let mut proto = ModelProto::decode(bytes.as_ref()).map_err(|e| RuntimeError::Decode(e.to_string()))?;
        #[cfg(not(feature = "ort"))]
        drop(bytes);
        let graph = proto.graph.as_ref().ok_or_else(|| RuntimeError::Decode("the model has no graph".into()))?;
        let mut op_types: Vec<String> = graph.node.iter().map(|n| n.op_type.clone()).collect();
        op_types.sort();
        op_types.dedup();
        let accepts_nan = op_types.iter().any(|op| NAN_AWARE_OPS.contains(&op.as_str()));
        let metadata: Vec<(String, String)> =
            proto.metadata_props.iter().map(|p| (p.key.clone(), p.value.clone())).collect();
        // A tree ensemble's explainer, read before lowering rewrites the ensemble (models that
        // carry their own explanation data use that).
        let tree_explainer = if !explain || metadata.iter().any(|(k, _)| k == explain::METADATA_KEY) {
            None
        } else {
            tree_explain::from_graph(graph)
        };

        let lowered = lower::lower(&mut proto).map_err(|e| RuntimeError::Load(e.to_string()))?;
        let mut onnx = tract_onnx::onnx();
        trees::register(&mut onnx.op_register);
        let graph = proto.graph.as_ref().ok_or_else(|| RuntimeError::Decode("the model has no graph".into()))?;
        let mut missing: Vec<String> = graph
            .node
            .iter()
            .filter(|n| !onnx.op_register.0.contains_key(&n.op_type))
            .map(|n| if n.domain.is_empty() { n.op_type.clone() } else { format!("{}:{}", n.domain, n.op_type) })
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            #[cfg(feature = "ort")]
            {
                return match ort_backend::load(&bytes) {
                    Ok(m) => Ok(Model {
                        signature: m.signature.clone(),
                        backend: Backend::Ort(m),
                        lowered: Vec::new(),
                        accepts_nan,
                        op_types,
                        metadata,
                        tree_explainer,
                    }),
                    Err(e) => Err(RuntimeError::Load(format!(
                        "the model uses operators tract does not support ({}), and ONNX Runtime could not take it: {e}",
                        missing.join(", ")
                    ))),
                };
            }
            #[cfg(not(feature = "ort"))]
            return Err(RuntimeError::Unsupported { ops: missing });
        }

        let initializers: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<(String, DType, Vec<i64>)> = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
            .map(value_info)
            .collect::<Result<_, _>>()?;
        let output_names: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();

        let load = |e: TractError| RuntimeError::Load(format!("{e:#}"));
        let mut model = onnx.model_for_proto_model(&proto).map_err(load)?;
        // The decoded protobuf (a large forest's nodes, strings and all) is not needed past
        // this point; freeing it before optimising lowers the peak of loading.
        drop(proto);
        let batch = model.symbols.sym("N");
        for (ix, (name, dtype, shape)) in inputs.iter().enumerate() {
            let dims: Vec<TDim> = shape
                .iter()
                .enumerate()
                .map(|(axis, d)| {
                    if *d >= 0 {
                        TDim::Val(*d)
                    } else if axis == 0 {
                        TDim::Sym(batch.clone())
                    } else {
                        TDim::Sym(model.symbols.sym(&format!("{name}_{axis}")))
                    }
                })
                .collect();
            let fact = InferenceFact::dt_shape(datum_type(*dtype), dims);
            model.set_input_fact(ix, fact).map_err(load)?;
        }
        let typed = model.into_optimized().map_err(load)?;
        let mut outputs = Vec::new();
        for (ix, name) in output_names.iter().enumerate() {
            let fact = typed.output_fact(ix).map_err(load)?;
            let dtype = dtype_of(fact.datum_type).ok_or_else(|| {
                RuntimeError::Load(format!("output '{name}' has unsupported type {:?}", fact.datum_type))
            })?;
            let shape = fact.shape.iter().map(|d| d.to_i64().unwrap_or(-1)).collect();
            outputs.push(TensorSpec { name: name.clone(), dtype, shape });
        }
        let plan = typed.into_runnable().map_err(load)?;
        let signature = Signature {
            inputs: inputs.into_iter().map(|(name, dtype, shape)| TensorSpec { name, dtype, shape }).collect(),
            outputs,
        };
        let backend = Backend::Tract(Tract { plan, idle: std::sync::Mutex::new(Vec::new()) });
        Ok(Model { backend, signature, lowered, accepts_nan, op_types, metadata, tree_explainer })
    }

    /// The explainer of the model's tree ensemble (skl2onnx's trees, forests, boosting), when
    /// it is one and carries no explanation data of its own; it has no covers until given some.
    pub fn tree_explainer(&self) -> Option<&explain::Explainer> {
        self.tree_explainer.as_ref()
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// A metadata property of the model file.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Which engine runs the model: `tract`, or `onnxruntime` (feature `ort`) for models
    /// tract cannot run.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Tract(_) => "tract",
            #[cfg(feature = "ort")]
            Backend::Ort(_) => "onnxruntime",
        }
    }

    /// ONNX-ML operators the runtime rewrote at load.
    pub fn lowered_ops(&self) -> &[String] {
        &self.lowered
    }

    /// Distinct operator types of the original graph.
    pub fn op_types(&self) -> &[String] {
        &self.op_types
    }

    /// Check named inputs against the signature and order them; every error names the input.
    pub fn prepare(&self, mut named: HashMap<String, Tensor>) -> Result<Vec<Tensor>, RuntimeError> {
        let mut ordered = Vec::with_capacity(self.signature.inputs.len());
        let mut rows = None;
        for spec in &self.signature.inputs {
            let tensor = named
                .remove(&spec.name)
                .ok_or_else(|| RuntimeError::Input(format!("missing input '{}'", spec.name)))?;
            self.check(spec, &tensor)?;
            let n = tensor.rows();
            match rows {
                None => rows = Some(n),
                Some(r) if r != n => {
                    return Err(RuntimeError::Input(format!(
                        "input '{}' has {n} rows but the other inputs have {r}",
                        spec.name
                    )))
                }
                _ => {}
            }
            ordered.push(tensor);
        }
        if let Some(unknown) = named.keys().min() {
            let known: Vec<&str> = self.signature.inputs.iter().map(|s| s.name.as_str()).collect();
            return Err(RuntimeError::Input(format!(
                "unknown input '{unknown}'; the model's inputs are {}",
                known.join(", ")
            )));
        }
        Ok(ordered)
    }

    fn check(&self, spec: &TensorSpec, tensor: &Tensor) -> Result<(), RuntimeError> {
        let name = &spec.name;
        if tensor.dtype() != spec.dtype {
            return Err(RuntimeError::Input(format!(
                "input '{name}': expected datatype {}, got {}",
                spec.dtype,
                tensor.dtype()
            )));
        }
        let rank_ok = tensor.shape.len() == spec.shape.len();
        let dims_ok =
            rank_ok && spec.shape.iter().zip(&tensor.shape).all(|(want, got)| *want < 0 || *want as usize == *got);
        if !dims_ok {
            return Err(RuntimeError::Input(format!(
                "input '{name}': expected shape {}, got {:?}",
                shape_text(&spec.shape),
                tensor.shape
            )));
        }
        if tensor.data.is_empty() {
            return Err(RuntimeError::Input(format!("input '{name}' is empty")));
        }
        if !self.accepts_nan {
            if let Some(at) = tensor.data.first_non_finite() {
                return Err(RuntimeError::Input(format!(
                    "input '{name}': element {at} is NaN or infinite, which this model does not accept"
                )));
            }
        }
        Ok(())
    }

    /// Run checked inputs (in signature order, from [`Model::prepare`]); outputs in signature order.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, RuntimeError> {
        // A single arm without the `ort` feature.
        #[allow(clippy::infallible_destructuring_match)]
        let tract = match &self.backend {
            Backend::Tract(tract) => tract,
            #[cfg(feature = "ort")]
            Backend::Ort(m) => return m.run(inputs),
        };
        let run = |e: TractError| RuntimeError::Run(format!("{e:#}"));
        let values: TVec<TValue> =
            inputs.into_iter().map(|t| to_tract(t).map(TValue::from)).collect::<Result<_, _>>()?;
        let outputs = tract.run(values).map_err(run)?;
        outputs.iter().map(from_tract).collect()
    }

    /// [`Model::prepare`] then [`Model::run`].
    pub fn infer(&self, named: HashMap<String, Tensor>) -> Result<Vec<Tensor>, RuntimeError> {
        let inputs = self.prepare(named)?;
        self.run(inputs)
    }
}

fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| if *d < 0 { "-1".to_string() } else { d.to_string() }).collect();
    format!("[{}]", dims.join(", "))
}

fn value_info(info: &tract_onnx::pb::ValueInfoProto) -> Result<(String, DType, Vec<i64>), RuntimeError> {
    let name = info.name.clone();
    let Some(type_proto::Value::TensorType(t)) = info.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(RuntimeError::Load(format!("input '{name}' is not a tensor")));
    };
    let dtype = onnx_dtype(t.elem_type)
        .ok_or_else(|| RuntimeError::Load(format!("input '{name}' has unsupported element type {}", t.elem_type)))?;
    let shape = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => v,
                    _ => -1,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((name, dtype, shape))
}

fn onnx_dtype(elem: i32) -> Option<DType> {
    Some(match DataType::try_from(elem).ok()? {
        DataType::Bool => DType::Bool,
        DataType::Uint8 => DType::U8,
        DataType::Uint16 => DType::U16,
        DataType::Uint32 => DType::U32,
        DataType::Uint64 => DType::U64,
        DataType::Int8 => DType::I8,
        DataType::Int16 => DType::I16,
        DataType::Int32 => DType::I32,
        DataType::Int64 => DType::I64,
        DataType::Float => DType::F32,
        DataType::Double => DType::F64,
        DataType::String => DType::Bytes,
        _ => return None,
    })
}

fn datum_type(dtype: DType) -> DatumType {
    match dtype {
        DType::Bool => DatumType::Bool,
        DType::U8 => DatumType::U8,
        DType::U16 => DatumType::U16,
        DType::U32 => DatumType::U32,
        DType::U64 => DatumType::U64,
        DType::I8 => DatumType::I8,
        DType::I16 => DatumType::I16,
        DType::I32 => DatumType::I32,
        DType::I64 => DatumType::I64,
        DType::F32 => DatumType::F32,
        DType::F64 => DatumType::F64,
        DType::Bytes => DatumType::String,
    }
}

fn dtype_of(dt: DatumType) -> Option<DType> {
    Some(match dt {
        DatumType::Bool => DType::Bool,
        DatumType::U8 => DType::U8,
        DatumType::U16 => DType::U16,
        DatumType::U32 => DType::U32,
        DatumType::U64 => DType::U64,
        DatumType::I8 => DType::I8,
        DatumType::I16 => DType::I16,
        DatumType::I32 => DType::I32,
        DatumType::I64 => DType::I64,
        DatumType::F32 => DType::F32,
        DatumType::F64 => DType::F64,
        DatumType::String => DType::Bytes,
        // Shape arithmetic (e.g. an index lookup tract folded into dimensions) is i64 to callers.
        DatumType::TDim => DType::I64,
        _ => return None,
    })
}

fn to_tract(t: Tensor) -> Result<tract_onnx::prelude::Tensor, RuntimeError> {
    let shape = t.shape;
    let err = |e: TractError| RuntimeError::Input(format!("{e:#}"));
    Ok(match t.data {
        Data::Bool(v) => tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(err)?,
        Data::U8(v) => tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(err)?,
        Data::U16(v) => tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(err)?,
        Data::U32(v) => tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(err)?,
        Data::U64(v) => tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(err)?,
        Data::I8(v) => tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(err)?,
        Data::I16(v) => tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(err)?,
        Data::I32(v) => tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(err)?,
        Data::I64(v) => tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(err)?,
        Data::F32(v) => tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(err)?,
        Data::F64(v) => tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(err)?,
        Data::Bytes(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)
            .map_err(|e| RuntimeError::Input(e.to_string()))?
            .into_tensor(),
    })
}

fn from_tract(v: &TValue) -> Result<Tensor, RuntimeError> {
    let shape = v.shape().to_vec();
    let view = v.try_as_plain_ram().map_err(|e| RuntimeError::Run(format!("{e:#}")))?;
    let bad = |e: TractError| RuntimeError::Run(format!("{e:#}"));
    let data = match v.datum_type() {
        DatumType::Bool => Data::Bool(view.as_slice::<bool>().map_err(bad)?.to_vec()),
        DatumType::U8 => Data::U8(view.as_slice::<u8>().map_err(bad)?.to_vec()),
        DatumType::U16 => Data::U16(view.as_slice::<u16>().map_err(bad)?.to_vec()),
        DatumType::U32 => Data::U32(view.as_slice::<u32>().map_err(bad)?.to_vec()),
        DatumType::U64 => Data::U64(view.as_slice::<u64>().map_err(bad)?.to_vec()),
        DatumType::I8 => Data::I8(view.as_slice::<i8>().map_err(bad)?.to_vec()),
        DatumType::I16 => Data::I16(view.as_slice::<i16>().map_err(bad)?.to_vec()),
        DatumType::I32 => Data::I32(view.as_slice::<i32>().map_err(bad)?.to_vec()),
        DatumType::I64 => Data::I64(view.as_slice::<i64>().map_err(bad)?.to_vec()),
        DatumType::F32 => Data::F32(view.as_slice::<f32>().map_err(bad)?.to_vec()),
        DatumType::F64 => Data::F64(view.as_slice::<f64>().map_err(bad)?.to_vec()),
        DatumType::String => Data::Bytes(view.as_slice::<String>().map_err(bad)?.to_vec()),
        DatumType::TDim => {
            let ints = v.cast_to::<i64>().map_err(bad)?;
            let view = ints.try_as_plain_ram().map_err(bad)?;
            Data::I64(view.as_slice::<i64>().map_err(bad)?.to_vec())
        }
        other => return Err(RuntimeError::Run(format!("unsupported output type {other:?}"))),
    };
    Tensor::new(shape, data).map_err(|e| RuntimeError::Run(e.to_string()))
}
