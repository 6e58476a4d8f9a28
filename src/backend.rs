//! The interface between the trainer and a device: the [`Backend`] trait (forward and backward
//! primitives, driven by the interpreter [`crate::model::Model::walk`] and the one reverse pass
//! [`crate::autodiff::Tape`]), and the convolution description both backends share
//! ([`ConvCfg`]: its output size and which algorithm fits a shape). The CPU backend is
//! [`crate::ops`] (our kernels on dfdx activation tensors); the GPU backend is `crate::gpu`
//! (feature `cuda`).

use anyhow::Result;
use sparsenet_net::op::{window_out, Op};

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
            } => Some(ConvCfg {
                in_ch,
                out_ch,
                kernel,
                stride,
                padding,
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

    /// Stride 1 with "same" padding and an odd kernel larger than 1 (every 3×3 layer of
    /// DenseNet/SparseNet): the CPU computes it as k² shifted products over a padded input.
    pub fn is_same(&self) -> bool {
        self.kernel > 1 && self.stride == 1 && 2 * self.padding + 1 == self.kernel
    }

    /// Whether the input gradient is computed as a convolution of the output gradient with the
    /// flipped, transposed kernel (padding `k − 1 − p`). With stride 1 that is exact; it pays
    /// when the layer narrows its input (`out < in`, every DenseNet/SparseNet 3×3 layer): its
    /// column matrix has `out·k²` rows instead of `in·k²`, and it needs no col2im scatter.
    /// Both backends take this path under this one rule.
    pub fn input_grad_by_transposed_conv(&self) -> bool {
        !self.is_pointwise()
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
        }
    }
}

/// The primitives a device provides to the DAG interpreter ([`crate::model::Model::walk`]) and
/// to the one reverse pass ([`crate::autodiff::Tape`]): for each op a forward primitive, which
/// returns the output and whatever its backward primitive will need (`…Saved`), and a backward
/// primitive, which turns the output gradient into the input gradient (accumulated into the
/// slot it is given) and adds the parameter gradients into the backend's own gradient store.
///
/// The order of the reverse pass, which gradients are kept and how they are summed over
/// readers live in the tape, once; a backend only computes.
pub trait Backend {
    /// An activation (`N×C×H×W`).
    type Act;
    /// A handle on a parameter tensor (and on its gradient in the backend's store).
    type Param: Clone;
    /// The running statistics of one batch norm.
    type Stats;
    /// The gradient of an activation (same layout).
    type Grad;
    /// What a convolution keeps for its backward pass.
    type ConvSaved;
    /// What a batch norm keeps.
    type NormSaved;
    /// What a ReLU keeps.
    type ReluSaved;
    /// What a max pooling keeps.
    type MaxPoolSaved;
    /// What a linear layer keeps.
    type LinearSaved;
    /// A loss computed but not yet read back (the GPU reads it after the reverse pass is
    /// queued, so that reading does not stall the device between the two passes).
    type PendingLoss;

    /// The dimensions of an activation.
    fn dims(&self, x: &Self::Act) -> [usize; 4];
    /// Whether forward primitives keep what their backward needs (training steps). The
    /// interpreter records a tape exactly when this is true.
    fn records(&self) -> bool;
    /// Wait until queued work is done (for per-op timing on asynchronous devices).
    fn fence(&mut self) -> Result<()> {
        Ok(())
    }

    /// Convolution without bias.
    fn conv2d(
        &mut self,
        x: &Self::Act,
        w: &Self::Param,
        cfg: ConvCfg,
    ) -> Result<(Self::Act, Self::ConvSaved)>;
    /// Its filter gradient (added to `w`'s) and, when `dx` is given, its data gradient
    /// (accumulated into `dx`); one primitive so that a backend may compute both in one pass.
    fn conv2d_backward(
        &mut self,
        saved: Self::ConvSaved,
        w: &Self::Param,
        cfg: ConvCfg,
        dy: Self::Grad,
        dx: Option<&mut Option<Self::Grad>>,
    ) -> Result<()>;

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

    /// `max(x, 0)`.
    fn relu(&mut self, x: &Self::Act) -> Result<(Self::Act, Self::ReluSaved)>;
    /// `dx += dy` where the ReLU was active.
    fn relu_backward(
        &mut self,
        saved: Self::ReluSaved,
        dy: Self::Grad,
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;

    /// An activation of zeros (a layer removed at test time: `study lesion`).
    fn zeros(&mut self, dims: [usize; 4]) -> Result<Self::Act>;

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
    /// `dx += g` (both of dimensions `dims`): the backward of a sum, and how the tape adds a
    /// gradient that arrives whole.
    fn accumulate(
        &mut self,
        g: &Self::Grad,
        dims: [usize; 4],
        dx: &mut Option<Self::Grad>,
    ) -> Result<()>;

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

    /// Softmax cross-entropy of `N×classes×1×1` logits against `labels`: the gradient of the
    /// mean loss with respect to the logits (when recording), and the loss to read later.
    fn cross_entropy(
        &mut self,
        logits: &Self::Act,
        labels: &[u8],
    ) -> Result<(Option<Self::Grad>, Self::PendingLoss)>;
    /// The mean loss and the number of correct predictions (arg-max logit = label).
    fn read_loss(&mut self, loss: Self::PendingLoss) -> Result<(f64, usize)>;
}
