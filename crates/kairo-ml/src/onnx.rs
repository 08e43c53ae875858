//! A small ONNX graph writer: nodes, constants and typed inputs/outputs, encoded with the
//! protobuf types tract ships. Only what the exporters need; every field is written in a
//! fixed order and nothing depends on time or hashing, so the same model gives the same bytes.

use prost::Message;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// The opsets the exported models use: onnxruntime and Kairo's runtime both run them.
pub const OPSET: i64 = 17;
pub const ML_OPSET: i64 = 3;

#[derive(Default)]
pub struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    counter: usize,
}

/// An attribute value.
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Floats(Vec<f32>),
    Str(String),
    Strs(Vec<String>),
}

fn value_info(name: &str, dtype: DataType, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                None => tensor_shape_proto::dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: dtype as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Graph {
    /// A fresh name with a readable prefix.
    pub fn name(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}_{}", self.counter)
    }

    /// An `[N, 1]` input (float or string).
    pub fn input(&mut self, name: &str, dtype: DataType) {
        self.inputs.push(value_info(name, dtype, &[None, Some(1)]));
    }

    /// A graph output with its shape (`None`: the batch dimension).
    pub fn output(&mut self, name: &str, dtype: DataType, dims: &[Option<i64>]) {
        self.outputs.push(value_info(name, dtype, dims));
    }

    /// A constant named after `prefix`; `tensor` carries its type and data.
    fn constant(&mut self, prefix: &str, dims: &[i64], tensor: TensorProto) -> String {
        let name = self.name(prefix);
        self.initializers.push(TensorProto { name: name.clone(), dims: dims.to_vec(), ..tensor });
        name
    }

    pub fn floats(&mut self, prefix: &str, dims: &[i64], values: Vec<f32>) -> String {
        let t = TensorProto { data_type: DataType::Float as i32, float_data: values, ..Default::default() };
        self.constant(prefix, dims, t)
    }

    pub fn ints(&mut self, prefix: &str, dims: &[i64], values: Vec<i64>) -> String {
        let t = TensorProto { data_type: DataType::Int64 as i32, int64_data: values, ..Default::default() };
        self.constant(prefix, dims, t)
    }

    pub fn strings(&mut self, prefix: &str, values: &[String]) -> String {
        let data = values.iter().map(|s| s.as_bytes().to_vec()).collect();
        let t = TensorProto { data_type: DataType::String as i32, string_data: data, ..Default::default() };
        self.constant(prefix, &[values.len() as i64], t)
    }

    /// Add a node; returns its (single) output, named `output` or a fresh name.
    pub fn node(
        &mut self,
        op: &str,
        domain: &str,
        inputs: &[&str],
        output: Option<&str>,
        attributes: Vec<(&str, Attr)>,
    ) -> String {
        let out = output.map(str::to_string).unwrap_or_else(|| self.name(&op.to_ascii_lowercase()));
        let attribute = attributes
            .into_iter()
            .map(|(name, a)| {
                let mut p = AttributeProto { name: name.to_string(), ..Default::default() };
                match a {
                    Attr::Int(i) => {
                        p.r#type = AttributeType::Int as i32;
                        p.i = i;
                    }
                    Attr::Ints(v) => {
                        p.r#type = AttributeType::Ints as i32;
                        p.ints = v;
                    }
                    Attr::Float(f) => {
                        p.r#type = AttributeType::Float as i32;
                        p.f = f;
                    }
                    Attr::Floats(v) => {
                        p.r#type = AttributeType::Floats as i32;
                        p.floats = v;
                    }
                    Attr::Str(s) => {
                        p.r#type = AttributeType::String as i32;
                        p.s = s.into_bytes();
                    }
                    Attr::Strs(v) => {
                        p.r#type = AttributeType::Strings as i32;
                        p.strings = v.into_iter().map(String::into_bytes).collect();
                    }
                }
                p
            })
            .collect();
        let name = self.name(&format!("{op}_node"));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name,
            op_type: op.to_string(),
            domain: domain.to_string(),
            attribute,
            ..Default::default()
        });
        out
    }

    /// The model's bytes, with `metadata` as the model's metadata properties.
    pub fn encode(self, doc: &str, metadata: &[(&str, String)]) -> Vec<u8> {
        let model = ModelProto {
            ir_version: 8,
            producer_name: "kairo".into(),
            producer_version: "1".into(),
            doc_string: doc.to_string(),
            opset_import: vec![
                OperatorSetIdProto { domain: String::new(), version: OPSET },
                OperatorSetIdProto { domain: "ai.onnx.ml".into(), version: ML_OPSET },
            ],
            graph: Some(GraphProto {
                node: self.nodes,
                name: "kairo".into(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto { key: k.to_string(), value: v.clone() })
                .collect(),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}

pub use tract_onnx::pb::tensor_proto::DataType as Type;
