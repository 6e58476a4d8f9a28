//! Whole networks as typed DAGs: every node is one operation with its output shape.
//!
//! This is the graph the zoo counts parameters and FLOPs on and the graph the trainer
//! instantiates node by node, so it holds everything either needs: kernel sizes, strides,
//! paddings, channel widths and spatial sizes. Edges carry the input slot (their order matters
//! for concatenation). Nodes are added in a topological order, so `NodeIndex` order is an
//! execution order.

use petgraph::graph::{DiGraph, NodeIndex};
use sparsenet_analysis::dag::BlockDag;
use sparsenet_analysis::topology::inputs_in_slot_order;

use crate::op::{Op, Shape};
use crate::NetError;

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

/// How the layers of a block combine what they read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Channel concatenation (DenseNet, SparseNet).
    Concat,
    /// Summation (ResNet: each unit adds its residual branch to the running state).
    Sum,
    /// A chain: each layer reads only the previous one (plain networks).
    Chain,
    /// Mixed link: each layer's output split into a summed part and a concatenated part.
    Mixed,
    /// Dual path: a residual path (summed, the block input's width) and a dense path
    /// (concatenated).
    Dual,
    /// Element-wise maximum over the sources (the `max` operator).
    Max,
    /// FractalNet's mean joins (with drop-path in training).
    Mean,
}

/// One layer of a block as the builder wired it: what it contributes and what it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLayer {
    /// The node whose output is the layer's contribution to the block: a DenseNet/SparseNet
    /// layer's last convolution, a ResNet unit's residual branch (before the sum); with the
    /// mixed and dual operators, its concatenated part.
    pub output: NodeIndex,
    /// Other nodes that carry the layer's contribution (the summed part of a mixed or dual
    /// layer); empty otherwise.
    pub also: Vec<NodeIndex>,
    /// The layer's first convolution (its input channels are the sources, concatenated).
    pub first_conv: NodeIndex,
    /// The sources the layer reads, in slot order: 0 is the block input, `j` is layer `j`.
    pub sources: Vec<usize>,
}

/// One block (dense block, ResNet stage) with its layers in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The block's scope name, e.g. `block1` or `stage2`.
    pub name: String,
    /// The node the block reads (source 0 of its layers).
    pub input: NodeIndex,
    /// How its layers combine their sources.
    pub aggregation: Aggregation,
    /// Its layers, layer 1 first.
    pub layers: Vec<BlockLayer>,
    /// The block in the aggregation view, as the graph crate analyses it: node 0 is the block
    /// input, node `ℓ` layer `ℓ` with the nodes it aggregates as sources (a ResNet unit reads
    /// the sum of everything before it, so every earlier node), node `L + 1` the block's output.
    pub view: BlockDag,
}

/// A whole network.
#[derive(Clone, Debug)]
pub struct NetGraph {
    /// The DAG, nodes in execution order.
    pub graph: NetDag,
    /// The input node.
    pub input: NodeIndex,
    /// The output node (logits).
    pub output: NodeIndex,
    /// The blocks, as the builder wired them (for experiments on layers and connections).
    pub blocks: Vec<Block>,
}

impl NetGraph {
    /// Inputs of `node` in slot order.
    pub fn inputs(&self, node: NodeIndex) -> Vec<NodeIndex> {
        inputs_in_slot_order(&self.graph, node)
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
    blocks: Vec<Block>,
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
            blocks: Vec::new(),
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

    /// Add a node running `op` on `inputs` (in slot order); its shape is the op's output shape
    /// for theirs ([`Op::output_shape`]), and an op that does not fit is an error naming the node.
    pub fn add(&mut self, name: &str, op: Op, inputs: &[NodeIndex]) -> Result<NodeIndex, NetError> {
        let mut full = self.prefix.join(".");
        if !full.is_empty() {
            full.push('.');
        }
        full.push_str(name);
        let shapes: Vec<Shape> = inputs.iter().map(|&i| self.shape(i)).collect();
        let shape = op
            .output_shape(&shapes)
            .map_err(|e| NetError::Spec(format!("{name}: {e}")))?;
        let n = self.graph.add_node(Node {
            name: full,
            op,
            shape,
        });
        for (slot, &i) in inputs.iter().enumerate() {
            self.graph.add_edge(i, n, slot);
        }
        Ok(n)
    }

    /// Add a node whose op fits any input shape (batch norm, ReLU, shortcut, global pooling,
    /// linear: their output shapes are always defined).
    fn add_total(&mut self, name: &str, op: Op, x: NodeIndex) -> NodeIndex {
        self.add(name, op, &[x])
            .expect("the op's output shape is defined for every input")
    }

    /// `k×k` convolution, no bias (every layer followed by batch norm).
    pub fn conv(
        &mut self,
        name: &str,
        x: NodeIndex,
        out_ch: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<NodeIndex, NetError> {
        self.conv_op(name, x, [out_ch, kernel, stride, padding], false, 1)
    }

    /// `k×k` grouped convolution without bias: `groups` groups of channels, each output group
    /// reading its own input group (DPN's 3×3 layers). A group count that does not divide both
    /// channel counts is an error.
    pub fn grouped_conv(
        &mut self,
        name: &str,
        x: NodeIndex,
        out_ch: usize,
        [kernel, stride, padding]: [usize; 3],
        groups: usize,
    ) -> Result<NodeIndex, NetError> {
        self.conv_op(name, x, [out_ch, kernel, stride, padding], false, groups)
    }

    /// `k×k` convolution with a bias per output channel (networks without batch norm: LeNet,
    /// AlexNet, VGG).
    pub fn conv_with_bias(
        &mut self,
        name: &str,
        x: NodeIndex,
        out_ch: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<NodeIndex, NetError> {
        self.conv_op(name, x, [out_ch, kernel, stride, padding], true, 1)
    }

    fn conv_op(
        &mut self,
        name: &str,
        x: NodeIndex,
        [out_ch, kernel, stride, padding]: [usize; 4],
        bias: bool,
        groups: usize,
    ) -> Result<NodeIndex, NetError> {
        let op = Op::Conv {
            in_ch: self.shape(x).c,
            out_ch,
            kernel,
            stride,
            padding,
            bias,
            groups,
        };
        self.add(name, op, &[x])
    }

    /// Batch norm over `x`'s channels.
    pub fn bn(&mut self, name: &str, x: NodeIndex) -> NodeIndex {
        let channels = self.shape(x).c;
        self.add_total(name, Op::BatchNorm { channels }, x)
    }

    /// ReLU.
    pub fn relu(&mut self, name: &str, x: NodeIndex) -> NodeIndex {
        self.add_total(name, Op::Relu, x)
    }

    /// BN → ReLU, the pre-activation used everywhere in DenseNet/SparseNet.
    pub fn bn_relu(&mut self, name: &str, x: NodeIndex) -> NodeIndex {
        let b = self.bn(&format!("{name}bn"), x);
        self.relu(&format!("{name}relu"), b)
    }

    /// Concatenate channels (a single input is passed through without a node).
    pub fn concat(&mut self, name: &str, xs: &[NodeIndex]) -> Result<NodeIndex, NetError> {
        if xs.len() == 1 {
            return Ok(xs[0]);
        }
        self.add(name, Op::Concat, xs)
    }

    /// Element-wise sum of same-shaped inputs.
    pub fn sum(&mut self, name: &str, xs: &[NodeIndex]) -> Result<NodeIndex, NetError> {
        self.add(name, Op::Sum, xs)
    }

    /// Element-wise maximum of same-shaped inputs.
    pub fn max(&mut self, name: &str, xs: &[NodeIndex]) -> Result<NodeIndex, NetError> {
        self.add(name, Op::Max, xs)
    }

    /// Parameter-free shortcut: subsample by `stride`, zero-pad channels to `out_ch`.
    pub fn shortcut_a(
        &mut self,
        name: &str,
        x: NodeIndex,
        stride: usize,
        out_ch: usize,
    ) -> NodeIndex {
        self.add_total(name, Op::ShortcutA { stride, out_ch }, x)
    }

    /// Average pooling without padding.
    pub fn avg_pool(
        &mut self,
        name: &str,
        x: NodeIndex,
        kernel: usize,
        stride: usize,
    ) -> Result<NodeIndex, NetError> {
        self.add(name, Op::AvgPool { kernel, stride }, &[x])
    }

    /// Max pooling with padding.
    pub fn max_pool(
        &mut self,
        name: &str,
        x: NodeIndex,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<NodeIndex, NetError> {
        let op = Op::MaxPool {
            kernel,
            stride,
            padding,
        };
        self.add(name, op, &[x])
    }

    /// Global average pooling.
    pub fn global_avg_pool(&mut self, name: &str, x: NodeIndex) -> NodeIndex {
        self.add_total(name, Op::GlobalAvgPool, x)
    }

    /// Fully connected layer over the flattened input.
    pub fn linear(&mut self, name: &str, x: NodeIndex, out_features: usize) -> NodeIndex {
        let op = Op::Linear {
            in_features: self.shape(x).numel(),
            out_features,
        };
        self.add_total(name, op, x)
    }

    /// FractalNet's mean join of same-shaped inputs, with drop-path probability `drop_path` in
    /// training (a single input is passed through without a node).
    pub fn mean_join(
        &mut self,
        name: &str,
        xs: &[NodeIndex],
        drop_path: crate::op::Prob,
    ) -> Result<NodeIndex, NetError> {
        if xs.len() == 1 {
            return Ok(xs[0]);
        }
        self.add(name, Op::MeanJoin { drop_path }, xs)
    }

    /// Dropout with drop probability `p` (training only; the identity at evaluation).
    pub fn dropout(&mut self, name: &str, x: NodeIndex, p: crate::op::Prob) -> NodeIndex {
        self.add_total(name, Op::Dropout { p }, x)
    }

    /// Finish with `output` as the network output.
    pub fn finish(self, output: NodeIndex) -> NetGraph {
        NetGraph {
            graph: self.graph,
            input: self.input,
            output,
            blocks: self.blocks,
        }
    }

    /// The current scope, dotted (e.g. `block1`).
    pub fn scope(&self) -> String {
        self.prefix.join(".")
    }

    /// Number of nodes so far (the index the next node gets).
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether only the input exists.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() <= 1
    }

    /// The first convolution added at or after node index `start`.
    pub fn first_conv_since(&self, start: usize) -> Option<NodeIndex> {
        (start..self.graph.node_count())
            .map(NodeIndex::new)
            .find(|&n| matches!(self.graph[n].op, Op::Conv { .. }))
    }

    /// Record a block the builder just wired.
    pub fn record_block(&mut self, block: Block) {
        self.blocks.push(block);
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
