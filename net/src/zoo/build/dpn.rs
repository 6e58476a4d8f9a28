//! Dual Path Networks (Chen et al. 2017).

use super::*;

/// One DPN configuration: stem width, bottleneck width k_R of the first stage, groups G,
/// units per stage, dense increments per stage, and whether it is a small (DPN-68) network
/// (3×3 stem, residual widths 64·2^s instead of 256·2^s).
pub(super) struct DpnConfig {
    depth: usize,
    stem: usize,
    k_r: usize,
    groups: usize,
    units: [usize; 4],
    inc: [usize; 4],
    small: bool,
}

/// The published DPNs (Chen et al. 2017, Table 1; the small DPN-68 of the authors' release).
#[rustfmt::skip]
pub(super) const DPNS: &[DpnConfig] = &[
    DpnConfig { depth: 68,  stem: 10,  k_r: 128, groups: 32, units: [3, 4, 12, 3], inc: [16, 32, 32, 64],   small: true },
    DpnConfig { depth: 92,  stem: 64,  k_r: 96,  groups: 32, units: [3, 4, 20, 3], inc: [16, 32, 24, 128],  small: false },
    DpnConfig { depth: 98,  stem: 96,  k_r: 160, groups: 40, units: [3, 6, 20, 3], inc: [16, 32, 32, 128],  small: false },
    DpnConfig { depth: 107, stem: 128, k_r: 200, groups: 50, units: [4, 8, 20, 3], inc: [20, 64, 64, 128],  small: false },
    DpnConfig { depth: 131, stem: 128, k_r: 160, groups: 40, units: [4, 8, 28, 3], inc: [16, 32, 32, 128],  small: false },
];
/// Dual Path Networks for ImageNet (Chen et al. 2017): a stem (7×7 stride-2 convolution, 3×3
/// for DPN-68, BN-ReLU, 3×3 stride-2 max pooling), four stages of units, BN-ReLU on the last
/// concatenation, global average pooling, linear. Stage s has residual width `bw = 256·2^s`
/// (`64·2^s` for DPN-68), bottleneck width `r = k_R·2^s` and dense increment `inc_s`. A unit
/// reads `x = [res ; dense]` and computes BN-ReLU-conv 1×1 to r, BN-ReLU-grouped conv 3×3 (G
/// groups; stride 2 in the first unit of stages 2–4), BN-ReLU-conv 1×1 to `bw + inc`, whose
/// first `bw` channels are added to `res` and last `inc` concatenated to `dense`. A stage's
/// first unit first projects its input (BN-ReLU-conv 1×1, with the unit's stride) to the new
/// `res` (bw) and `dense` (2·inc). A convolution whose output is cut into a residual and a
/// dense part is built as two (`…res`, `…dense`): the same function and parameters.
pub(super) fn build_dpn(spec: &NetSpec) -> Result<NetGraph, NetError> {
    let cfg = DPNS.iter().find(|c| c.depth == spec.depth).ok_or_else(|| {
        let depths: Vec<String> = DPNS.iter().map(|c| c.depth.to_string()).collect();
        NetError::Spec(format!(
            "depth {} is not a published DPN: accepted {}",
            spec.depth,
            depths.join(", ")
        ))
    })?;
    if !spec.growth.is_empty() {
        return Err(NetError::Spec(
            "a DPN's widths come with its depth (68, 92, 98, 107, 131): leave out the widths"
                .into(),
        ));
    }
    let mut b = NetBuilder::new(spec.input_shape());
    let (k, pad) = if cfg.small { (3, 1) } else { (7, 3) };
    let c = b.conv("stem.conv", b.input(), cfg.stem, k, 2, pad)?;
    let r = b.bn_relu("stem.", c);
    let stem = b.max_pool("stem.pool", r, 3, 2, 1)?;
    let base = if cfg.small { 64 } else { 256 };
    // (res, dense); before the first unit the stem's output alone.
    let mut state: Option<(NodeIndex, NodeIndex)> = None;
    for (s, (&units, &inc)) in cfg.units.iter().zip(&cfg.inc).enumerate() {
        b.push_scope(format!("stage{}", s + 1));
        let (bw, r_width) = (base << s, (cfg.k_r * (base << s)) / base);
        for u in 1..=units {
            b.push_scope(format!("{u}"));
            let x = match state {
                None => stem,
                Some((res, dense)) => b.concat("in", &[res, dense])?,
            };
            let stride = if u == 1 && s > 0 { 2 } else { 1 };
            let (res, dense) = match state {
                Some(st) if u > 1 => st,
                _ => {
                    let p = b.bn_relu("proj.", x);
                    (
                        b.conv("proj.res", p, bw, 1, stride, 0)?,
                        b.conv("proj.dense", p, 2 * inc, 1, stride, 0)?,
                    )
                }
            };
            let a = b.bn_relu("a.", x);
            let a = b.conv("a.conv", a, r_width, 1, 1, 0)?;
            let g = b.bn_relu("b.", a);
            let g = b.grouped_conv("b.conv", g, r_width, [3, stride, 1], cfg.groups)?;
            let c = b.bn_relu("c.", g);
            let out_res = b.conv("c.res", c, bw, 1, 1, 0)?;
            let out_dense = b.conv("c.dense", c, inc, 1, 1, 0)?;
            state = Some((
                b.sum("res", &[res, out_res])?,
                b.concat("dense", &[dense, out_dense])?,
            ));
            b.pop_scope();
        }
        b.pop_scope();
    }
    let (res, dense) = state.expect("a DPN has units");
    let x = b.concat("out", &[res, dense])?;
    head(b, spec, x, true, Head::Global)
}
