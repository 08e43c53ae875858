//! A model's interface: named inputs and outputs with their element type and shape. The
//! runtime reads it from the ONNX graph, the registry keeps it with every version, and the
//! rollout compares two versions' inputs. Types are named as the Open Inference Protocol
//! names them.

use std::fmt;

/// An element type, named as the Open Inference Protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    /// Strings (OIP `BYTES`); ONNX `string` tensors.
    Bytes,
}

impl DType {
    /// The OIP datatype name (`FP32`, `INT64`, `BYTES`, ...).
    pub fn oip_name(self) -> &'static str {
        match self {
            DType::Bool => "BOOL",
            DType::U8 => "UINT8",
            DType::U16 => "UINT16",
            DType::U32 => "UINT32",
            DType::U64 => "UINT64",
            DType::I8 => "INT8",
            DType::I16 => "INT16",
            DType::I32 => "INT32",
            DType::I64 => "INT64",
            DType::F32 => "FP32",
            DType::F64 => "FP64",
            DType::Bytes => "BYTES",
        }
    }

    /// Parse an OIP datatype name; `FP16`/`BF16` are not supported and give `None`.
    pub fn from_oip(name: &str) -> Option<DType> {
        Some(match name {
            "BOOL" => DType::Bool,
            "UINT8" => DType::U8,
            "UINT16" => DType::U16,
            "UINT32" => DType::U32,
            "UINT64" => DType::U64,
            "INT8" => DType::I8,
            "INT16" => DType::I16,
            "INT32" => DType::I32,
            "INT64" => DType::I64,
            "FP32" => DType::F32,
            "FP64" => DType::F64,
            "BYTES" => DType::Bytes,
            _ => return None,
        })
    }

    /// Bytes per element in the binary tensor encoding; `None` for variable-size `BYTES`.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
            DType::Bytes => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.oip_name())
    }
}

/// One input or output as a model declares it: `-1` marks a dimension of any size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<i64>,
}

impl fmt::Display for TensorSpec {
    /// `x FP32 [-1,4]`, as `kairo models show` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(i64::to_string).collect();
        write!(f, "{} {} [{}]", self.name, self.dtype, dims.join(","))
    }
}

/// A model's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_round_trips_through_its_oip_name() {
        use DType::*;
        for d in [Bool, U8, U16, U32, U64, I8, I16, I32, I64, F32, F64, Bytes] {
            assert_eq!(DType::from_oip(d.oip_name()), Some(d));
        }
        assert_eq!(DType::from_oip("FP16"), None);
    }

    #[test]
    fn a_spec_prints_name_type_and_shape() {
        let s = TensorSpec { name: "x".into(), dtype: DType::F32, shape: vec![-1, 4] };
        assert_eq!(s.to_string(), "x FP32 [-1,4]");
    }
}
