//! The interface between the trainer and a device, and what both devices share.
//!
//! A backend is one type that implements [`BackendCore`] (its tensor types) and one trait per
//! family of ops — [`ConvOps`], [`NormOps`], [`CombineOps`], [`PoolOps`], [`LinearOps`],
//! [`LossOps`] — each with a forward primitive per op (returning the output and what the backward
//! needs, `…Saved`) and a backward primitive. [`Backend`] is all of them together. One trait per
//! family lets each backend implement an op in that op's own file: the CPU's `cpu/ops/conv/` and
//! the GPU's `gpu/ops/conv.rs` each hold `impl ConvOps`, beside the tape's `autodiff/ops/conv.rs`,
//! so the three pieces of an op sit at the same relative path.
//!
//! The order of the reverse pass, which gradients are kept and how they are summed over readers
//! live in the tape ([`crate::autodiff::Tape`]), once; a backend only computes. Shared here:
//! the convolution description ([`ConvCfg`]: output size, the rules both backends follow) and
//! the batch-norm constants and host-side running statistics ([`BnStats`]).

use anyhow::Result;
use sparsenet_net::op::{window_out, Op};

use crate::real::Real;

/// A class label: below the network's classes (u16, so that ImageNet's 1 000 classes and any
/// class-per-folder dataset up to 65 536 classes fit).
pub type Label = u16;

/// Batch norm's ε (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;
/// Batch norm's running-statistics momentum (PyTorch's default).
pub const BN_MOMENTUM: f64 = 0.1;

/// Running statistics of one batch norm (buffers, not trained), as the host keeps them: the
/// model's copy, the checkpoint's, and the CPU backend's own.
#[derive(Clone, Debug, PartialEq)]
pub struct BnStats<E> {
    /// Running mean per channel.
    pub mean: Vec<E>,
    /// Running (unbiased) variance per channel.
    pub var: Vec<E>,
}

impl<E: Real> BnStats<E> {
    /// Fresh statistics: mean 0, variance 1.
    pub fn new(channels: usize) -> Self {
        BnStats {
            mean: vec![E::zero(); channels],
            var: vec![E::one(); channels],
        }
    }
}

/// Shape of a convolution (the fields of [`Op::Conv`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvCfg {
    /// Input channels.
    pub in_ch: usize,
    /// Output channels.
    pub out_ch: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding.
    pub padding: usize,
    /// Channel groups (1: an ordinary convolution).
    pub groups: usize,
}

impl ConvCfg {
    /// The configuration of a convolution node (`None` for other ops).
    pub fn of(op: &Op) -> Option<Self> {
        match *op {
            Op::Conv {
                in_ch,
                out_ch,
                kernel,
                stride,
                padding,
                groups,
                ..
            } => Some(ConvCfg {
                in_ch,
                out_ch,
                kernel,
                stride,
                padding,
                groups,
            }),
            _ => None,
        }
    }

    /// Output height/width for an input of `size` (the network crate's window formula; the DAG
    /// was built with it, so the window always fits here).
    pub fn out_size(&self, size: usize) -> usize {
        window_out(size, self.kernel, self.stride, self.padding)
            .expect("the convolution fits its input (checked when the DAG was built)")
    }

    /// A 1×1, stride-1, unpadded convolution: one product per image, no column matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    /// A 3×3, stride-1 convolution with padding 1 (every 3×3 layer of DenseNet, SparseNet and
    /// the CIFAR ResNets): the CPU computes it with its direct kernels.
    pub fn is_3x3_same(&self) -> bool {
        self.kernel == 3 && self.stride == 1 && self.padding == 1
    }

    /// Whether the input gradient is computed as a convolution of the output gradient with the
    /// flipped, transposed kernel (padding `k − 1 − p`). With stride 1 that is exact; it pays
    /// when the layer narrows its input (`out < in`, every DenseNet/SparseNet 3×3 layer): its
    /// column matrix has `out·k²` rows instead of `in·k²`, and it needs no col2im scatter.
    /// Both backends take this path under this one rule.
    pub fn input_grad_by_transposed_conv(&self) -> bool {
        self.groups == 1
            && !self.is_pointwise()
            && self.stride == 1
            && self.padding < self.kernel
            && self.out_ch < self.in_ch
    }

    /// The convolution whose forward pass is this one's input gradient (see
    /// [`ConvCfg::input_grad_by_transposed_conv`]): channels swapped, padding `k − 1 − p`.
    pub fn transposed(&self) -> ConvCfg {
        let k = self.kernel;
        ConvCfg {
            in_ch: self.out_ch,
            out_ch: self.in_ch,
            kernel: k,
            stride: 1,
            padding: k - 1 - self.padding.min(k - 1),
            groups: 1,
        }
    }

    /// One group's convolution: `in/g → out/g` channels, ungrouped (the whole layer when
    /// `groups` is 1).
    pub fn per_group(&self) -> ConvCfg {
        let g = self.groups.max(1);
        ConvCfg {
            in_ch: self.in_ch / g,
            out_ch: self.out_ch / g,
            groups: 1,
            ..*self
        }
    }

    /// Values in the weight: `out · in/g · k²`.
    pub fn weight_len(&self) -> usize {
        self.out_ch * (self.in_ch / self.groups.max(1)) * self.kernel * self.kernel
    }
}

/// What every backend has whatever its ops: its tensor types and the few operations the
/// interpreter and the tape need around the ops.
pub trait BackendCore {
    /// An activation (`N×C×H×W`).
    type Act: Clone;
    /// A handle on a parameter tensor (and on its gradient in the backend's store).
    type Param: Clone;
    /// The gradient of an activation (same layout).
    type Grad;

    /// The dimensions of an activation.
    fn dims(&self, x: &Self::Act) -> [usize; 4];
    /// Whether forward primitives keep what their backward needs (training steps). The
    /// interpreter records a tape exactly when this is true.
    fn records(&self) -> bool;
    /// Whether this pass is in training mode (batch statistics, dropout active), as opposed to
    /// evaluation (running statistics, dropout the identity).
    fn training(&self) -> bool;
    /// Wait until queued work is done (for per-op timing on asynchronous devices).
    fn fence(&mut self) -> Result<()> {
        Ok(())
    }
    /// An activation of zeros (a layer removed at test time: `study lesion`).
    fn zeros(&mut self, dims: [usize; 4]) -> Result<Self::Act>;
}

/// Convolution (`cpu/ops/conv/`, `gpu/ops/conv.rs`; tape: `autodiff/ops/conv.rs`).
pub trait ConvOps: BackendCore {
    /// What a convolution keeps for its backward pass.
    type ConvSaved;

    /// Convolution of `x` with `w` (`[out, in, k, k]`), plus the per-channel `bias` when given.
    fn conv2d(
        &mut self,
        x: &Self::Act,
        w: &Self::Param,
        bias: Option<&Self::Param>,
        cfg: ConvCfg,
    ) -> Result<(Self::Act, Self::ConvSaved)>;
    /// Its filter and bias gradients (added to theirs) and, when `dx` is given, its data
    /// gradient (accumulated into `dx`); one primitive so that a backend may compute them in
    /// one pass. Unlike the other backward primitives the data gradient is optional: it is the
    /// costliest part, and the network's first convolution reads the images, which need none.
    fn conv2d_backward(
        &mut self,
        saved: Self::ConvSaved,
        w: &Self::Param,
        bias: Option<&Self::Param>,
        cfg: ConvCfg,
        dy: Self::Grad,
        dx: Option<&mut Option<Self::Grad>>,
    ) -> Result<()>;
}

/// Batch norm (`cpu/ops/norm.rs`, `gpu/ops/norm.rs`; tape: `autodiff/ops/norm.rs`).
pub trait NormOps: BackendCore {
    /// The running statistics of one batch norm.
    type Stats;
    /// What a batch norm keeps.
    type NormSaved;

    /// Batch norm (batch statistics in training, running ones in evaluation), followed by a
    /// ReLU when `relu`.
    fn batch_norm(
        &mut self,
        x: &Self::Act,
        gamma: &Self::Param,
        beta: &Self::Param,
        stats: &mut Self::Stats,
        relu: bool,
    ) -> Result<(Self::Act, Self::NormSaved)>;
    /// Gradients of γ and β (added to theirs) and of the input (accumulated into `dx`).
    fn batch_norm_backward(
        &mut self,
        saved: Self::NormSaved,
        gamma: &Self::Param,
        beta: &Self::Param,
        dy: Self::Grad,
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;
}

/// One dropout layer's mask in one training step, as a rule rather than a tensor: element `i`
/// (in `N×C×H×W` order) is kept when [`DropMask::keeps`] says so, and a kept element is scaled
/// by `scale = 1/(1 − p)`. The draw is SplitMix64's output function of `key + i·γ` (γ the
/// golden-ratio increment), so the mask is a function of the key and the position alone: the
/// same on every thread count and on every backend (the GPU kernel computes the same integers),
/// and the backward pass recomputes it instead of storing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropMask {
    /// The step's key for this layer (the interpreter mixes the step's key with the node).
    pub key: u64,
    /// An element is dropped when its draw is below this (`p·2⁶⁴`).
    pub threshold: u64,
    /// `1/(1 − p)`, as `f32` bits (the one rounding both backends use).
    pub scale_bits: u32,
}

/// The golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Steele, Lea & Flood 2014).
pub fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl DropMask {
    /// The mask of drop probability `p` (`0 ≤ p < 1`) drawn with `key`.
    pub fn new(p: f64, key: u64) -> Self {
        // p < 1, so p·2⁶⁴ < 2⁶⁴ (the cast saturates at the top for p within an ulp of 1).
        let threshold = (p * 18_446_744_073_709_551_616.0) as u64;
        DropMask {
            key,
            threshold,
            scale_bits: ((1.0 / (1.0 - p)) as f32).to_bits(),
        }
    }

    /// Whether element `i` is kept.
    pub fn keeps(&self, i: u64) -> bool {
        splitmix64(self.key.wrapping_add(i.wrapping_mul(GOLDEN))) >= self.threshold
    }

    /// The scale of kept elements.
    pub fn scale(&self) -> f32 {
        f32::from_bits(self.scale_bits)
    }
}

/// The key of the dropout layer at node `node` in the step drawn with `step_key`: the two mixed
/// so that layers and steps draw unrelated masks.
pub fn layer_key(step_key: u64, node: usize) -> u64 {
    splitmix64(step_key ^ splitmix64((node as u64).wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// Which of a mean join's `n` inputs survive drop-path in a training step drawn with `key`: each
/// is dropped when its draw (as [`DropMask::keeps`], input `i` as element `i`) falls below
/// `p·2⁶⁴`; when every one would be, the one a further draw picks is kept, as FractalNet keeps
/// at least one path through every join.
pub fn join_survivors(n: usize, p: f64, key: u64) -> Vec<bool> {
    let mask = DropMask::new(p, key);
    let mut keep: Vec<bool> = (0..n as u64).map(|i| mask.keeps(i)).collect();
    if n > 0 && !keep.contains(&true) {
        keep[(splitmix64(key ^ GOLDEN) % n as u64) as usize] = true;
    }
    keep
}

/// Aggregations and the element-wise layers: concatenation, sum, ReLU, dropout
/// (`cpu/ops/combine.rs`, `gpu/ops/combine.rs`; tape: `autodiff/ops/combine.rs`).
pub trait CombineOps: BackendCore {
    /// What a ReLU keeps.
    type ReluSaved;

    /// `max(x, 0)`.
    fn relu(&mut self, x: &Self::Act) -> Result<(Self::Act, Self::ReluSaved)>;
    /// `dx += dy` where the ReLU was active.
    fn relu_backward(
        &mut self,
        saved: Self::ReluSaved,
        dy: Self::Grad,
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;

    /// Dropout in training: `x·scale` where `mask` keeps the element, 0 elsewhere.
    fn dropout(&mut self, x: &Self::Act, mask: DropMask) -> Result<Self::Act>;
    /// `dx += dy·scale` where `mask` kept the element (the mask is recomputed, not stored).
    fn dropout_backward(
        &mut self,
        mask: DropMask,
        dy: Self::Grad,
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;

    /// Concatenation along channels.
    fn concat(&mut self, xs: &[&Self::Act]) -> Result<Self::Act>;
    /// `dx += dy[:, offset .. offset + x's channels]` for one input of a concatenation whose
    /// output has dimensions `y`.
    fn concat_backward(
        &mut self,
        dy: &Self::Grad,
        y: [usize; 4],
        offset: usize,
        x: [usize; 4],
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;

    /// Elementwise sum.
    fn sum(&mut self, xs: &[&Self::Act]) -> Result<Self::Act>;
    /// `a · Σ xs` (a mean join: `a = 1/|xs|`).
    fn scaled_sum(&mut self, xs: &[&Self::Act], a: f32) -> Result<Self::Act>;
    /// `dx += a·g` (both of dimensions `dims`): the backward of a scaled sum.
    fn accumulate_scaled(
        &mut self,
        g: &Self::Grad,
        a: f32,
        dims: [usize; 4],
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;
    /// `dx += g` (both of dimensions `dims`): the backward of a sum, and how the tape adds a
    /// gradient that arrives whole. By default the whole-tensor case of
    /// [`CombineOps::concat_backward`] (offset 0, all channels): the same copy or addition.
    fn accumulate(
        &mut self,
        g: &Self::Grad,
        dims: [usize; 4],
        dx: &mut Option<Self::Grad>,
    ) -> Result<()> {
        self.concat_backward(g, dims, 0, dims, dx)
    }
}

/// Pooling and the option-A shortcut (`cpu/ops/pool.rs`, `gpu/ops/pool.rs`; tape:
/// `autodiff/ops/pool.rs`).
pub trait PoolOps: BackendCore {
    /// What a max pooling keeps.
    type MaxPoolSaved;

    /// Option-A shortcut (subsample, zero-pad channels).
    fn shortcut_a(&mut self, x: &Self::Act, stride: usize, out_ch: usize) -> Result<Self::Act>;
    /// Its input gradient, for an input of dimensions `x`.
    fn shortcut_a_backward(
        &mut self,
        dy: Self::Grad,
        x: [usize; 4],
        stride: usize,
        out_ch: usize,
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;

    /// Average pooling without padding.
    fn avg_pool(&mut self, x: &Self::Act, kernel: usize, stride: usize) -> Result<Self::Act>;
    /// Its input gradient, for an input of dimensions `x`.
    fn avg_pool_backward(
        &mut self,
        dy: Self::Grad,
        x: [usize; 4],
        kernel: usize,
        stride: usize,
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;

    /// Max pooling.
    fn max_pool(
        &mut self,
        x: &Self::Act,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<(Self::Act, Self::MaxPoolSaved)>;
    /// Its input gradient (to the arg-max of each window), for an input of dimensions `x`.
    fn max_pool_backward(
        &mut self,
        saved: Self::MaxPoolSaved,
        dy: Self::Grad,
        x: [usize; 4],
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;

    /// Mean over each feature map.
    fn global_avg_pool(&mut self, x: &Self::Act) -> Result<Self::Act>;
    /// Its input gradient, for an input of dimensions `x`.
    fn global_avg_pool_backward(
        &mut self,
        dy: Self::Grad,
        x: [usize; 4],
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;
}

/// The fully connected layer (`cpu/ops/linear.rs`, `gpu/ops/linear.rs`; tape:
/// `autodiff/ops/linear.rs`).
pub trait LinearOps: BackendCore {
    /// What a linear layer keeps.
    type LinearSaved;

    /// Fully connected layer on `N×in×1×1`, giving `N×out×1×1`.
    fn linear(
        &mut self,
        x: &Self::Act,
        w: &Self::Param,
        bias: &Self::Param,
        out_features: usize,
    ) -> Result<(Self::Act, Self::LinearSaved)>;
    /// Gradients of the weight and bias (added to theirs) and of the input.
    fn linear_backward(
        &mut self,
        saved: Self::LinearSaved,
        w: &Self::Param,
        bias: &Self::Param,
        dy: Self::Grad,
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;
}

/// The loss (`cpu/ops/loss.rs`, `gpu/ops/loss.rs`): not a node of the DAG, called by
/// [`crate::model::Model::pass`] on the logits.
pub trait LossOps: BackendCore {
    /// A loss computed but not yet read back (the GPU reads it after the reverse pass is
    /// queued, so that reading does not stall the device between the two passes).
    type PendingLoss;

    /// Softmax cross-entropy of `N×classes×1×1` logits against `labels`: the gradient of the
    /// mean loss with respect to the logits (when recording), and the loss to read later.
    fn cross_entropy(
        &mut self,
        logits: &Self::Act,
        labels: &[Label],
    ) -> Result<(Option<Self::Grad>, Self::PendingLoss)>;
    /// The mean loss and the number of correct predictions (arg-max logit = label).
    fn read_loss(&mut self, loss: Self::PendingLoss) -> Result<(f64, usize)>;
}

/// A whole backend: every op family. Implemented for any type that implements them all, so a
/// backend never names this trait itself.
pub trait Backend:
    BackendCore + ConvOps + NormOps + CombineOps + PoolOps + LinearOps + LossOps
{
}

impl<B> Backend for B where
    B: BackendCore + ConvOps + NormOps + CombineOps + PoolOps + LinearOps + LossOps
{
}
