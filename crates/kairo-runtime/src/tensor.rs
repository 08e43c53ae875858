//! Typed tensors as Kairo's frontends exchange them with the runtime: a shape and a flat,
//! row-major vector of one element type. The names follow the Open Inference Protocol.

pub use kairo_core::signature::{DType, Signature, TensorSpec};

/// The elements of a tensor, flat and row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<String>),
}

macro_rules! each_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            Data::Bool($v) => $body,
            Data::U8($v) => $body,
            Data::U16($v) => $body,
            Data::U32($v) => $body,
            Data::U64($v) => $body,
            Data::I8($v) => $body,
            Data::I16($v) => $body,
            Data::I32($v) => $body,
            Data::I64($v) => $body,
            Data::F32($v) => $body,
            Data::F64($v) => $body,
            Data::Bytes($v) => $body,
        }
    };
}

impl Data {
    pub fn dtype(&self) -> DType {
        match self {
            Data::Bool(_) => DType::Bool,
            Data::U8(_) => DType::U8,
            Data::U16(_) => DType::U16,
            Data::U32(_) => DType::U32,
            Data::U64(_) => DType::U64,
            Data::I8(_) => DType::I8,
            Data::I16(_) => DType::I16,
            Data::I32(_) => DType::I32,
            Data::I64(_) => DType::I64,
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::Bytes(_) => DType::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        each_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Position of the first NaN or infinite element, for float data.
    pub fn first_non_finite(&self) -> Option<usize> {
        match self {
            Data::F32(v) => v.iter().position(|x| !x.is_finite()),
            Data::F64(v) => v.iter().position(|x| !x.is_finite()),
            _ => None,
        }
    }

    /// Keep the rows `start..end` of a tensor whose rows hold `row_len` elements each.
    pub fn rows(&self, row_len: usize, start: usize, end: usize) -> Data {
        let (a, b) = (start * row_len, end * row_len);
        match self {
            Data::Bool(v) => Data::Bool(v[a..b].to_vec()),
            Data::U8(v) => Data::U8(v[a..b].to_vec()),
            Data::U16(v) => Data::U16(v[a..b].to_vec()),
            Data::U32(v) => Data::U32(v[a..b].to_vec()),
            Data::U64(v) => Data::U64(v[a..b].to_vec()),
            Data::I8(v) => Data::I8(v[a..b].to_vec()),
            Data::I16(v) => Data::I16(v[a..b].to_vec()),
            Data::I32(v) => Data::I32(v[a..b].to_vec()),
            Data::I64(v) => Data::I64(v[a..b].to_vec()),
            Data::F32(v) => Data::F32(v[a..b].to_vec()),
            Data::F64(v) => Data::F64(v[a..b].to_vec()),
            Data::Bytes(v) => Data::Bytes(v[a..b].to_vec()),
        }
    }

    /// Element `i` as a JSON-friendly number, if numeric.
    pub fn f64_at(&self, i: usize) -> Option<f64> {
        Some(match self {
            Data::Bool(v) => f64::from(u8::from(v[i])),
            Data::U8(v) => f64::from(v[i]),
            Data::U16(v) => f64::from(v[i]),
            Data::U32(v) => f64::from(v[i]),
            Data::U64(v) => v[i] as f64,
            Data::I8(v) => f64::from(v[i]),
            Data::I16(v) => f64::from(v[i]),
            Data::I32(v) => f64::from(v[i]),
            Data::I64(v) => v[i] as f64,
            Data::F32(v) => f64::from(v[i]),
            Data::F64(v) => v[i],
            Data::Bytes(_) => return None,
        })
    }
}

/// A shape that does not hold the data it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shape {shape:?} holds {} elements but {given} were given", want.map_or_else(|| "more than 2^64".to_string(), |w| w.to_string()))]
pub struct ShapeError {
    pub shape: Vec<usize>,
    /// The shape's element count; `None` when it overflows.
    pub want: Option<usize>,
    pub given: usize,
}

/// A named-free tensor: shape plus data. `shape.iter().product() == data.len()` always holds
/// for tensors built through [`Tensor::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    /// A tensor, or a [`ShapeError`] when the shape does not hold the data.
    pub fn new(shape: Vec<usize>, data: Data) -> Result<Tensor, ShapeError> {
        let want = shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d));
        if want != Some(data.len()) {
            return Err(ShapeError { shape, want, given: data.len() });
        }
        Ok(Tensor { shape, data })
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Number of rows (the first dimension; 1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
}
