//! A grouped convolution as one plan per group: group i's output channels read group i's input
//! channels only, with group i's slice of the weight. A sample's channels are contiguous per
//! group, so the forward pass hands each plan its slices in place; the backward pass, which
//! takes samples back to back, gathers each group's channels of the chunk first and scatters
//! its input gradient back.

use std::mem::MaybeUninit;

use super::{ConvCfg, Plan};
use crate::cpu::Elem;

/// The per-group plans of one layer and the sizes that cut samples into groups.
pub(super) struct Grouped<'a, E> {
    plans: Vec<Plan<'a, E>>,
    /// One group's values in an input sample (`in/g · h · w`).
    in_len: usize,
    /// One group's values in an output sample (`out/g · ho · wo`).
    out_len: usize,
    /// One group's values in the weight.
    weight_len: usize,
}

impl<'a, E: Elem> Grouped<'a, E> {
    pub(super) fn new(cfg: ConvCfg, h: usize, w: usize, plans: Vec<Plan<'a, E>>) -> Self {
        let one = cfg.per_group();
        Grouped {
            plans,
            in_len: one.in_ch * h * w,
            out_len: one.out_ch * cfg.out_size(h) * cfg.out_size(w),
            weight_len: cfg.weight_len() / cfg.groups,
        }
    }

    /// One sample's output, group by group.
    pub(super) fn forward(&self, x: &[E], out: &mut [E], blocks: bool) {
        for (g, plan) in self.plans.iter().enumerate() {
            plan.forward(
                &x[g * self.in_len..][..self.in_len],
                &mut out[g * self.out_len..][..self.out_len],
                blocks,
            );
        }
    }

    /// The weight gradients of `samples` samples added into `gw` (group i into its slice),
    /// and their input gradients written whole into `gx` when given.
    pub(super) fn backward(
        &self,
        x: &[E],
        gy: &[E],
        samples: usize,
        gw: &mut [E],
        mut gx: Option<&mut [MaybeUninit<E>]>,
    ) {
        let groups = self.plans.len();
        let gather = |v: &[E], len: usize, g: usize| -> Vec<E> {
            v.chunks(len * groups)
                .flat_map(|s| s[g * len..][..len].iter().copied())
                .collect()
        };
        for (g, plan) in self.plans.iter().enumerate() {
            let xg = gather(x, self.in_len, g);
            let gyg = gather(gy, self.out_len, g);
            let gwg = &mut gw[g * self.weight_len..][..self.weight_len];
            match gx.as_deref_mut() {
                None => plan.backward(&xg, &gyg, samples, gwg, None),
                Some(gx) => {
                    let mut part: Vec<E> = Vec::with_capacity(samples * self.in_len);
                    plan.backward(
                        &xg,
                        &gyg,
                        samples,
                        gwg,
                        Some(&mut part.spare_capacity_mut()[..samples * self.in_len]),
                    );
                    // SAFETY: every plan writes its input gradient whole (the dispatcher's
                    // contract), so all samples·in_len values were initialised just above.
                    unsafe { part.set_len(samples * self.in_len) };
                    for (i, src) in part.chunks(self.in_len).enumerate() {
                        let dst = &mut gx[(i * groups + g) * self.in_len..][..self.in_len];
                        for (d, &s) in dst.iter_mut().zip(src) {
                            d.write(s);
                        }
                    }
                }
            }
        }
    }
}
