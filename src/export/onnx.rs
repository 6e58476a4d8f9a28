//! A checkpoint's network as an ONNX model (opset 13): the evaluation-mode graph with its
//! trained weights and batch-norm statistics as initializers, one ONNX node (or two) per DAG
//! node, input `input` (N × C × H × W, N dynamic, normalised as in training) and output
//! `logits` (N × classes). The messages are `onnx-protobuf`'s types, encoded by `protobuf`.

use anyhow::Result;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use sparsenet_net::op::Op;

use crate::model::Model;
use crate::train::checkpoint::{model_tensors, Meta};

/// The operator set the graph is written for.
pub const OPSET: i64 = 13;
/// The ONNX IR version of opset 13's release (1.8); every runtime since reads it.
const IR_VERSION: i64 = 7;

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INTS.into(),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i: v,
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::FLOAT.into(),
        f: v,
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: Vec<String>,
    output: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs,
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

fn int64_tensor(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: DataType::INT64 as i32,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let shape = TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Some(v) => dimension::Value::DimValue(*v),
                    None => dimension::Value::DimParam("N".into()),
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut t = TypeProto::new();
    t.set_tensor_type(type_proto::Tensor {
        elem_type: DataType::FLOAT as i32,
        shape: Some(shape).into(),
        ..Default::default()
    });
    ValueInfoProto {
        name: name.into(),
        type_: Some(t).into(),
        ..Default::default()
    }
}

/// The model's bytes (`.onnx`).
pub fn model_bytes(model: &Model<f32>, meta: &Meta) -> Result<Vec<u8>> {
    let dag = model.net.export();
    let mut graph = GraphProto {
        name: meta.spec.to_string(),
        ..Default::default()
    };
    for (name, shape, bytes) in model_tensors(model) {
        graph.initializer.push(TensorProto {
            name,
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: DataType::FLOAT as i32,
            raw_data: bytes,
            ..Default::default()
        });
    }
    // The value a DAG node's output is called in the graph.
    let value = |i: usize| -> String {
        if i == dag.input {
            "input".to_string()
        } else {
            dag.nodes[i].name.clone()
        }
    };
    for (i, n) in dag.nodes.iter().enumerate() {
        let ins: Vec<String> = n.inputs.iter().map(|&j| value(j)).collect();
        let out = value(i);
        let name = n.name.as_str();
        match &n.op {
            Op::Input => {}
            Op::Conv {
                kernel,
                stride,
                padding,
                bias,
                groups,
                ..
            } => {
                let (k, s, p) = (*kernel as i64, *stride as i64, *padding as i64);
                let mut inputs = vec![ins[0].clone(), format!("{name}.weight")];
                if *bias {
                    inputs.push(format!("{name}.bias"));
                }
                graph.node.push(node(
                    "Conv",
                    name,
                    inputs,
                    &out,
                    vec![
                        ints("kernel_shape", &[k, k]),
                        ints("strides", &[s, s]),
                        ints("pads", &[p, p, p, p]),
                        int("group", *groups as i64),
                    ],
                ));
            }
            Op::BatchNorm { .. } => {
                let inputs = ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .map(|t| format!("{name}.{t}"));
                graph.node.push(node(
                    "BatchNormalization",
                    name,
                    std::iter::once(ins[0].clone()).chain(inputs).collect(),
                    &out,
                    vec![float("epsilon", crate::backend::BN_EPS as f32)],
                ));
            }
            Op::Relu => graph.node.push(node("Relu", name, ins, &out, vec![])),
            Op::Concat => graph
                .node
                .push(node("Concat", name, ins, &out, vec![int("axis", 1)])),
            Op::Sum => graph.node.push(node("Sum", name, ins, &out, vec![])),
            Op::Max => graph.node.push(node("Max", name, ins, &out, vec![])),
            Op::ShortcutA { stride, out_ch } => {
                // Every stride-th pixel (a strided Slice), then zeros on the channels, split
                // before and after as the reference does (Pad).
                let src_ch = dag.nodes[n.inputs[0]].shape.c;
                let strided = format!("{name}.strided");
                let s = *stride as i64;
                for (t, v) in [
                    ("starts", vec![0, 0]),
                    ("ends", vec![i64::MAX, i64::MAX]),
                    ("axes", vec![2, 3]),
                    ("steps", vec![s, s]),
                ] {
                    graph
                        .initializer
                        .push(int64_tensor(&format!("{name}.{t}"), &v));
                }
                graph.node.push(node(
                    "Slice",
                    &strided,
                    vec![
                        ins[0].clone(),
                        format!("{name}.starts"),
                        format!("{name}.ends"),
                        format!("{name}.axes"),
                        format!("{name}.steps"),
                    ],
                    &strided,
                    vec![],
                ));
                let extra = (*out_ch - src_ch) as i64;
                let (before, after) = (extra / 2, extra - extra / 2);
                graph.initializer.push(int64_tensor(
                    &format!("{name}.pads"),
                    &[0, before, 0, 0, 0, after, 0, 0],
                ));
                graph.node.push(node(
                    "Pad",
                    name,
                    vec![strided, format!("{name}.pads")],
                    &out,
                    vec![],
                ));
            }
            Op::AvgPool { kernel, stride } => graph.node.push(node(
                "AveragePool",
                name,
                ins,
                &out,
                vec![
                    ints("kernel_shape", &[*kernel as i64; 2]),
                    ints("strides", &[*stride as i64; 2]),
                ],
            )),
            Op::MaxPool {
                kernel,
                stride,
                padding,
            } => graph.node.push(node(
                "MaxPool",
                name,
                ins,
                &out,
                vec![
                    ints("kernel_shape", &[*kernel as i64; 2]),
                    ints("strides", &[*stride as i64; 2]),
                    ints("pads", &[*padding as i64; 4]),
                ],
            )),
            Op::GlobalAvgPool => {
                graph
                    .node
                    .push(node("GlobalAveragePool", name, ins, &out, vec![]))
            }
            // Inference: a mean join is the plain mean (ONNX's Mean, n-ary).
            Op::MeanJoin { .. } => graph.node.push(node("Mean", name, ins, &out, vec![])),
            // An exported model runs inference, where dropout passes its input through.
            Op::Dropout { .. } => graph.node.push(node("Identity", name, ins, &out, vec![])),
            Op::Linear { .. } => {
                let flat = format!("{name}.flatten");
                graph
                    .node
                    .push(node("Flatten", &flat, ins, &flat, vec![int("axis", 1)]));
                graph.node.push(node(
                    "Gemm",
                    name,
                    vec![flat, format!("{name}.weight"), format!("{name}.bias")],
                    &out,
                    vec![int("transB", 1)],
                ));
            }
        }
    }
    let last = value(dag.output);
    let classes = model.net.classes() as i64;
    // The logits as N × classes, whatever the last op's rank.
    graph.node.push(node(
        "Flatten",
        "logits",
        vec![last],
        "logits",
        vec![int("axis", 1)],
    ));
    let s = meta.input;
    graph.input.push(value_info(
        "input",
        &[None, Some(s.c as i64), Some(s.h as i64), Some(s.w as i64)],
    ));
    graph
        .output
        .push(value_info("logits", &[None, Some(classes)]));
    let entry = |k: &str, v: String| StringStringEntryProto {
        key: k.into(),
        value: v,
        ..Default::default()
    };
    let model_proto = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "sparsenet".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{} trained on {} (epoch {} of {}). Input: N×{}×{}×{} images scaled to [0, 1], then normalised per channel: (x - mean) / std with the metadata's mean and std.",
            meta.spec, meta.data_source, meta.epoch, meta.epochs, s.c, s.h, s.w
        ),
        graph: Some(graph).into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
            ..Default::default()
        }],
        metadata_props: vec![
            entry("mean", serde_json::to_string(&meta.mean)?),
            entry("std", serde_json::to_string(&meta.std)?),
            entry("spec", meta.spec.to_string()),
        ],
        ..Default::default()
    };
    Ok(model_proto.write_to_bytes()?)
}
