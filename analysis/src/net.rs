//! Whole networks as typed DAGs: every node is one operation with its output shape.
//!
//! This is the graph the zoo counts parameters and FLOPs on and the graph the trainer
//! instantiates node by node, so it holds everything either needs: kernel sizes, strides,
//! paddings, channel widths and spatial sizes. Edges carry the input slot (their order matters
//! for concatenation). Nodes are added in a topological order, so `NodeIndex` order is an
//! execution order.

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::fmt;

use crate::AnalysisError;

/// A feature map shape, channels × height × width (batch excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Shape {
    /// A new shape.
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        Shape { c, h, w }
    }

    /// `c·h·w`.
    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}×{}", self.c, self.h, self.w)
    }
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The network input.
    Input,
    /// 2-D convolution without bias, weight `[out, in, k, k]`.
    Conv {
        /// Input channels.
        in_ch: usize,
        /// Output channels.
        out_ch: usize,
        /// Kernel size `k` (square).
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        padding: usize,
    },
    /// Batch normalisation over channels: learnable γ, β; running mean and variance.
    BatchNorm {
        /// Channels.
        channels: usize,
    },
    /// Rectified linear unit.
    Relu,
    /// Channel concatenation of the inputs, in slot order.
    Concat,
    /// Element-wise sum of the inputs (all of one shape).
    Sum,
    /// Parameter-free ("option A") shortcut: take every `stride`-th pixel, then zero-pad the
    /// channels up to `out_ch` (new channels split evenly before and after, as in the reference).
    ShortcutA {
        /// Spatial subsampling.
        stride: usize,
        /// Output channels.
        out_ch: usize,
    },
    /// Average pooling, no padding.
    AvgPool {
        /// Window.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Max pooling with padding.
    MaxPool {
        /// Window.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding on each side.
        padding: usize,
    },
    /// Mean over the whole spatial map (output `C×1×1`).
    GlobalAvgPool,
    /// Fully connected layer with bias over the flattened input (`C·H·W` features).
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
}

impl Op {
    /// Short name of the operation kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv { .. } => "conv",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Concat => "concat",
            Op::Sum => "sum",
            Op::ShortcutA { .. } => "shortcut_a",
            Op::AvgPool { .. } => "avg_pool",
            Op::MaxPool { .. } => "max_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Linear { .. } => "linear",
        }
    }
}

/// A node: an operation, its output shape and a stable name (used for parameter names).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// Unique, dotted name, e.g. `block1.layer3.conv2`.
    pub name: String,
    /// The operation.
    pub op: Op,
    /// Output shape.
    pub shape: Shape,
}

/// A network DAG; edge weight = input slot.
pub type NetDag = DiGraph<Node, usize>;

/// A whole network.
#[derive(Clone, Debug)]
pub struct NetGraph {
    /// The DAG, nodes in execution order.
    pub graph: NetDag,
    /// The input node.
    pub input: NodeIndex,
    /// The output node (logits).
    pub output: NodeIndex,
}

impl NetGraph {
    /// Inputs of `node` in slot order.
    pub fn inputs(&self, node: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<(usize, NodeIndex)> = self
            .graph
            .edges_directed(node, petgraph::Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// Nodes in execution (topological) order.
    pub fn order(&self) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph.node_indices()
    }

    /// The input shape.
    pub fn input_shape(&self) -> Shape {
        self.graph[self.input].shape
    }

    /// Number of output classes.
    pub fn classes(&self) -> usize {
        self.graph[self.output].shape.c
    }
}

/// Builds a [`NetGraph`], inferring and checking every shape as nodes are added.
#[derive(Debug)]
pub struct NetBuilder {
    graph: NetDag,
    input: NodeIndex,
    prefix: Vec<String>,
}

fn out_size(size: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = size + 2 * padding;
    if padded < kernel || stride == 0 {
        return None;
    }
    Some((padded - kernel) / stride + 1)
}

impl NetBuilder {
    /// Start a network with an input of the given shape.
    pub fn new(input: Shape) -> Self {
        let mut graph = NetDag::new();
        let input = graph.add_node(Node {
            name: "input".into(),
            op: Op::Input,
            shape: input,
        });
        NetBuilder {
            graph,
            input,
            prefix: Vec::new(),
        }
    }

    /// The input node.
    pub fn input(&self) -> NodeIndex {
        self.input
    }

    /// Shape of a node already added.
    pub fn shape(&self, n: NodeIndex) -> Shape {
        self.graph[n].shape
    }

    /// Enter a naming scope (`block1`, `layer3`, …).
    pub fn push_scope(&mut self, name: impl Into<String>) {
        self.prefix.push(name.into());
    }

    /// Leave the innermost naming scope.
    pub fn pop_scope(&mut self) {
        self.prefix.pop();
    }

    fn add(&mut self, name: &str, op: Op, shape: Shape, inputs: &[NodeIndex]) -> NodeIndex {
        let mut full = self.prefix.join(".");
        if !full.is_empty() {
            full.push('.');
        }
        full.push_str(name);
        let n = self.graph.add_node(Node {
            name: full,
            op,
            shape,
        });
        for (slot, &i) in inputs.iter().enumerate() {
            self.graph.add_edge(i, n, slot);
        }
        n
    }

    /// `k×k` convolution, no bias.
    pub fn conv(
        &mut self,
        name: &str,
        x: NodeIndex,
        out_ch: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<NodeIndex, AnalysisError> {
        let s = self.shape(x);
        let h = out_size(s.h, kernel, stride, padding);
        let w = out_size(s.w, kernel, stride, padding);
        let (Some(h), Some(w)) = (h, w) else {
            return Err(AnalysisError::Spec(format!(
                "{name}: a {kernel}×{kernel} convolution does not fit a {s} input; use a larger input"
            )));
        };
        let op = Op::Conv {
            in_ch: s.c,
            out_ch,
            kernel,
            stride,
            padding,
        };
        Ok(self.add(name, op, Shape::new(out_ch, h, w), &[x]))
    }

    /// Batch norm over `x`'s channels.
    pub fn bn(&mut self, name: &str, x: NodeIndex) -> NodeIndex {
        let s = self.shape(x);
        self.add(name, Op::BatchNorm { channels: s.c }, s, &[x])
    }

    /// ReLU.
    pub fn relu(&mut self, name: &str, x: NodeIndex) -> NodeIndex {
        let s = self.shape(x);
        self.add(name, Op::Relu, s, &[x])
    }

    /// BN → ReLU, the pre-activation used everywhere in DenseNet/SparseNet.
    pub fn bn_relu(&mut self, name: &str, x: NodeIndex) -> NodeIndex {
        let b = self.bn(&format!("{name}bn"), x);
        self.relu(&format!("{name}relu"), b)
    }

    /// Concatenate channels (a single input is passed through without a node).
    pub fn concat(&mut self, name: &str, xs: &[NodeIndex]) -> Result<NodeIndex, AnalysisError> {
        if xs.len() == 1 {
            return Ok(xs[0]);
        }
        let first = self.shape(xs[0]);
        let mut c = 0;
        for &x in xs {
            let s = self.shape(x);
            if (s.h, s.w) != (first.h, first.w) {
                return Err(AnalysisError::Spec(format!(
                    "{name}: cannot concatenate {s} with {first}: spatial sizes differ"
                )));
            }
            c += s.c;
        }
        Ok(self.add(name, Op::Concat, Shape::new(c, first.h, first.w), xs))
    }

    /// Element-wise sum of same-shaped inputs.
    pub fn sum(&mut self, name: &str, xs: &[NodeIndex]) -> Result<NodeIndex, AnalysisError> {
        let first = self.shape(xs[0]);
        if let Some(&bad) = xs.iter().find(|&&x| self.shape(x) != first) {
            return Err(AnalysisError::Spec(format!(
                "{name}: cannot sum {} with {first}",
                self.shape(bad)
            )));
        }
        Ok(self.add(name, Op::Sum, first, xs))
    }

    /// Parameter-free shortcut: subsample by `stride`, zero-pad channels to `out_ch`.
    pub fn shortcut_a(
        &mut self,
        name: &str,
        x: NodeIndex,
        stride: usize,
        out_ch: usize,
    ) -> NodeIndex {
        let s = self.shape(x);
        let shape = Shape::new(out_ch, s.h.div_ceil(stride), s.w.div_ceil(stride));
        self.add(name, Op::ShortcutA { stride, out_ch }, shape, &[x])
    }

    /// Average pooling without padding.
    pub fn avg_pool(
        &mut self,
        name: &str,
        x: NodeIndex,
        kernel: usize,
        stride: usize,
    ) -> Result<NodeIndex, AnalysisError> {
        let s = self.shape(x);
        match (out_size(s.h, kernel, stride, 0), out_size(s.w, kernel, stride, 0)) {
            (Some(h), Some(w)) if h > 0 && w > 0 => {
                Ok(self.add(name, Op::AvgPool { kernel, stride }, Shape::new(s.c, h, w), &[x]))
            }
            _ => Err(AnalysisError::Spec(format!(
                "{name}: {kernel}×{kernel} pooling does not fit a {s} map; use a larger input or fewer blocks"
            ))),
        }
    }

    /// Max pooling with padding.
    pub fn max_pool(
        &mut self,
        name: &str,
        x: NodeIndex,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<NodeIndex, AnalysisError> {
        let s = self.shape(x);
        match (
            out_size(s.h, kernel, stride, padding),
            out_size(s.w, kernel, stride, padding),
        ) {
            (Some(h), Some(w)) => Ok(self.add(
                name,
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                },
                Shape::new(s.c, h, w),
                &[x],
            )),
            _ => Err(AnalysisError::Spec(format!(
                "{name}: {kernel}×{kernel} max pooling does not fit a {s} map"
            ))),
        }
    }

    /// Global average pooling.
    pub fn global_avg_pool(&mut self, name: &str, x: NodeIndex) -> NodeIndex {
        let s = self.shape(x);
        self.add(name, Op::GlobalAvgPool, Shape::new(s.c, 1, 1), &[x])
    }

    /// Fully connected layer over the flattened input.
    pub fn linear(&mut self, name: &str, x: NodeIndex, out_features: usize) -> NodeIndex {
        let s = self.shape(x);
        let op = Op::Linear {
            in_features: s.numel(),
            out_features,
        };
        self.add(name, op, Shape::new(out_features, 1, 1), &[x])
    }

    /// Finish with `output` as the network output.
    pub fn finish(self, output: NodeIndex) -> NetGraph {
        NetGraph {
            graph: self.graph,
            input: self.input,
            output,
        }
    }
}

/// A node in the exported form: the op, its output shape and its inputs by index.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportedNode {
    /// Node name.
    pub name: String,
    /// Operation.
    pub op: Op,
    /// Output shape.
    pub shape: Shape,
    /// Input node indices, in slot order.
    pub inputs: Vec<usize>,
}

/// A whole network in exported form (`zoo --dag`): nodes in execution order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportedNet {
    /// Index of the input node.
    pub input: usize,
    /// Index of the output node.
    pub output: usize,
    /// Every node.
    pub nodes: Vec<ExportedNode>,
}

impl NetGraph {
    /// The DAG as plain data (for JSON export and other frameworks).
    pub fn export(&self) -> ExportedNet {
        ExportedNet {
            input: self.input.index(),
            output: self.output.index(),
            nodes: self
                .order()
                .map(|n| {
                    let node = &self.graph[n];
                    ExportedNode {
                        name: node.name.clone(),
                        op: node.op.clone(),
                        shape: node.shape,
                        inputs: self.inputs(n).iter().map(|i| i.index()).collect(),
                    }
                })
                .collect(),
        }
    }
}
