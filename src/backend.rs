//! The interface between the DAG interpreter ([`crate::model::Model::walk`]) and a device: the
//! [`Backend`] trait, and the convolution description both backends share ([`ConvCfg`]: its
//! output size and which algorithm fits a shape). The CPU backend is [`crate::ops`] (dfdx
//! tensors and tape, our kernels); the GPU backend is `crate::gpu` (feature `cuda`).

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

/// The operations a device provides to the DAG interpreter ([`Model::walk`]). Each call
/// computes one node's output and, when the backend records, its backward step.
pub trait Backend {
    /// An activation (`N×C×H×W`).
    type Act;
    /// A parameter tensor.
    type Param;
    /// The running statistics of one batch norm.
    type Stats;
    /// The dimensions of an activation.
    fn dims(&self, x: &Self::Act) -> [usize; 4];
    /// Wait until queued work is done (for per-op timing on asynchronous devices).
    fn fence(&mut self) -> Result<()> {
        Ok(())
    }
    /// Convolution without bias; `x_grad` says whether `x` needs a gradient.
    fn conv2d(
        &mut self,
        x: &Self::Act,
        w: &Self::Param,
        cfg: ConvCfg,
        x_grad: bool,
    ) -> Result<Self::Act>;
    /// Batch norm (batch statistics in training, running ones in evaluation), followed by a
    /// ReLU when `relu`.
    fn batch_norm(
        &mut self,
        x: &Self::Act,
        gamma: &Self::Param,
        beta: &Self::Param,
        stats: &mut Self::Stats,
        relu: bool,
    ) -> Result<Self::Act>;
    /// `max(x, 0)`.
    fn relu(&mut self, x: &Self::Act) -> Result<Self::Act>;
    /// Concatenation along channels.
    fn concat(&mut self, xs: &[&Self::Act]) -> Result<Self::Act>;
    /// Elementwise sum.
    fn sum(&mut self, xs: &[&Self::Act]) -> Result<Self::Act>;
    /// Option-A shortcut (subsample, zero-pad channels).
    fn shortcut_a(&mut self, x: &Self::Act, stride: usize, out_ch: usize) -> Result<Self::Act>;
    /// Average pooling without padding.
    fn avg_pool(&mut self, x: &Self::Act, kernel: usize, stride: usize) -> Result<Self::Act>;
    /// Max pooling.
    fn max_pool(
        &mut self,
        x: &Self::Act,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self::Act>;
    /// Mean over each feature map.
    fn global_avg_pool(&mut self, x: &Self::Act) -> Result<Self::Act>;
    /// Fully connected layer on `N×in×1×1`, giving `N×out×1×1`.
    fn linear(
        &mut self,
        x: &Self::Act,
        w: &Self::Param,
        bias: &Self::Param,
        out_features: usize,
    ) -> Result<Self::Act>;
}
