//! 1×1, stride-1, unpadded convolutions (DenseNet-BC bottlenecks, transitions, ResNet
//! projections): a sample's output is one product `W (out × in) · x (in × h·w)`, with no column
//! matrix.

use std::mem::MaybeUninit;

use super::{weight_product, ConvCfg};
use crate::cpu::gemm::Gemm;
use crate::cpu::Elem;

/// A pointwise layer for inputs of `h×w`, with its weight.
pub(super) struct Pointwise<'a, E> {
    cfg: ConvCfg,
    hw: usize,
    w: &'a [E],
}

impl<'a, E: Elem> Pointwise<'a, E> {
    pub(super) fn new(cfg: ConvCfg, h: usize, w: usize, weight: &'a [E]) -> Self {
        Pointwise {
            cfg,
            hw: h * w,
            w: weight,
        }
    }

    /// One sample's output, by column blocks of `x` when `blocks`.
    pub(super) fn forward(&self, x: &[E], out: &mut [E], blocks: bool) {
        let dims = (self.cfg.out_ch, self.cfg.in_ch, self.hw);
        weight_product(self.w, x, dims, out, blocks);
    }

    /// Per sample: `gW += gy · xᵀ`, and `gx = Wᵀ · gy` when asked.
    pub(super) fn backward(
        &self,
        x: &[E],
        gy: &[E],
        samples: usize,
        gw: &mut [E],
        mut gx: Option<&mut [MaybeUninit<E>]>,
    ) {
        let (o, hw, cin) = (self.cfg.out_ch, self.hw, self.cfg.in_ch);
        for s in 0..samples {
            let xi = &x[s * cin * hw..][..cin * hw];
            let gi = &gy[s * o * hw..][..o * hw];
            Gemm::new(o, cin, hw)
                .b_transposed()
                .accumulating()
                .run(gw, gi, xi);
            if let Some(gx) = gx.as_deref_mut() {
                let dst = &mut gx[s * cin * hw..][..cin * hw];
                Gemm::new(cin, hw, o)
                    .a_transposed()
                    .run_uninit(dst, self.w, gi);
            }
        }
    }
}
