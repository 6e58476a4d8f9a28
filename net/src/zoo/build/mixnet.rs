//! Mixed Link Networks (Wang et al. 2018).

use super::*;

/// Mixed Link Networks for CIFAR as the authors' code builds them (`models/cifar/mixnet.py`):
/// depth `6n + 4`, a 3×3 stem of `max(2k₂, k₁)` channels, three blocks of `n` units joined by
/// transitions (BN-ReLU-conv 1×1 to `max(⌊C/2⌋, k₁)`, 2×2 average pooling), BN-ReLU, global
/// average pooling, linear. A unit has two bottleneck branches on its input `x` of `C`
/// channels, each BN-ReLU-conv 1×1 to `4k`-BN-ReLU-conv 3×3 to `k`: the inner link `i` (k₁) is
/// *added* onto the last k₁ channels of `x`, the outer link `o` (k₂) *concatenated*:
/// `[x[: C−k₁], x[C−k₁:] + i, o]`.
///
/// With k₁ = k₂ (every published MixNet) the last k₁ channels of a unit's input are the
/// previous unit's outer link, so the state is a list of pieces and no channel is ever sliced:
/// the block input (stem or transition output) is the only piece that is cut, and it is built
/// as two convolutions (`….a`, `….b`: the first `C − k₁` and the last k₁ output channels of the
/// authors' single one — the same function and parameters).
pub(super) fn build_mixnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
    if spec.depth < 10 || !(spec.depth - 4).is_multiple_of(6) {
        return Err(NetError::Spec(format!(
            "depth {} does not fit a MixNet: depth − 4 must be a positive multiple of 6, e.g. 100, 190, 250",
            spec.depth
        )));
    }
    let k = match spec.growth.as_slice() {
        [k] | [k, _] if *k > 0 && spec.growth.iter().all(|g| g == k) => *k,
        _ => {
            return Err(NetError::Spec(
                "a MixNet takes k₁ = k₂ (--growth K, e.g. 12 for MixNet-100; every published MixNet has equal inner and outer widths, and unequal ones would cut channels of a piece)".into(),
            ))
        }
    };
    let units = (spec.depth - 4) / 6;
    let mut b = NetBuilder::new(spec.input_shape());
    // The block input, built as its first C − k and its last k channels.
    let split = |b: &mut NetBuilder,
                 name: &str,
                 x: NodeIndex,
                 width: usize,
                 kernel: usize,
                 pool: bool|
     -> Result<Vec<NodeIndex>, NetError> {
        let mut parts = Vec::new();
        for (suffix, w) in [("a", width - k), ("b", k)] {
            if w == 0 {
                continue;
            }
            let c = b.conv(&format!("{name}{suffix}"), x, w, kernel, 1, kernel / 2)?;
            parts.push(if pool {
                b.avg_pool(&format!("{name}{suffix}.pool"), c, 2, 2)?
            } else {
                c
            });
        }
        Ok(parts)
    };
    let stem_width = (2 * k).max(k);
    let input = b.input();
    let mut pieces = split(&mut b, "stem.conv.", input, stem_width, 3, false)?;
    for bi in 0..3 {
        b.push_scope(format!("block{}", bi + 1));
        for u in 1..=units {
            b.push_scope(format!("{u}"));
            let x = b.concat("in", &pieces)?;
            let branch = |b: &mut NetBuilder, name: &str| -> Result<NodeIndex, NetError> {
                let r = b.bn_relu(&format!("{name}.1."), x);
                let c = b.conv(&format!("{name}.1.conv"), r, 4 * k, 1, 1, 0)?;
                let r = b.bn_relu(&format!("{name}.2."), c);
                b.conv(&format!("{name}.2.conv"), r, k, 3, 1, 1)
            };
            let inner = branch(&mut b, "inner")?;
            let outer = branch(&mut b, "outer")?;
            let last = pieces.pop().expect("a unit's input has pieces");
            let added = b.sum("add", &[last, inner])?;
            pieces.push(added);
            pieces.push(outer);
            b.pop_scope();
        }
        b.pop_scope();
        if bi < 2 {
            let x = b.concat(&format!("trans{}.in", bi + 1), &pieces)?;
            let c = b.shape(x).c;
            let r = b.bn_relu(&format!("trans{}.", bi + 1), x);
            let width = (c / 2).max(k);
            pieces = split(&mut b, &format!("trans{}.conv.", bi + 1), r, width, 1, true)?;
        }
    }
    let x = b.concat("out", &pieces)?;
    head(b, spec, x, true, Head::Global)
}
