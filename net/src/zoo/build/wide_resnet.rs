//! Wide ResNet (Zagoruyko and Komodakis 2016): WRN-D-K.

use super::*;

/// Wide ResNet for CIFAR (Zagoruyko & Komodakis 2016; the authors' code): WRN-D-K has
/// `n = (D − 4)/6` pre-activation basic blocks per stage at widths 16K, 32K, 64K (strides 1, 2,
/// 2) after a 3×3 stem of 16. A block is BN-ReLU-conv 3×3-(dropout)-BN-ReLU-conv 3×3; where the
/// width or stride changes (a stage's first block, unless its input already has the width) the
/// shortcut is a 1×1 convolution of the *pre-activated* input, as in the authors' code, and
/// the identity otherwise. Head: BN-ReLU, global average pooling (the authors' 8×8 pool at
/// 32×32), linear.
pub(super) fn build_wide_resnet(spec: &NetSpec) -> Result<NetGraph, NetError> {
    if spec.depth < 10 || !(spec.depth - 4).is_multiple_of(6) {
        return Err(NetError::Spec(format!(
            "depth {} does not fit a Wide ResNet: depth − 4 must be a positive multiple of 6, e.g. 16, 22, 28, 40",
            spec.depth
        )));
    }
    let widen = match spec.growth.as_slice() {
        [k] if *k > 0 => *k,
        _ => {
            return Err(NetError::Spec(
                "a Wide ResNet takes one widening factor K (--widen K, e.g. 8 for WRN-16-8)".into(),
            ))
        }
    };
    let units = (spec.depth - 4) / 6;
    let mut b = NetBuilder::new(spec.input_shape());
    let mut x = stem(&mut b, spec, false)?;
    let dropout = spec.dropout_p().filter(|p| p.get() > 0.0);
    for (si, width) in [16 * widen, 32 * widen, 64 * widen].into_iter().enumerate() {
        b.push_scope(format!("stage{}", si + 1));
        let stride = if si == 0 { 1 } else { 2 };
        let projects = stride != 1 || b.shape(x).c != width;
        // The pre-activated input of a projecting unit, which its shortcut reads too.
        let preact = std::cell::Cell::new(None);
        x = interpret_unraveled(
            &mut b,
            x,
            units,
            |b, input, unit| {
                let s = if unit == 1 { stride } else { 1 };
                let r1 = b.bn_relu("1.", input);
                if unit == 1 && projects {
                    preact.set(Some(r1));
                }
                let c1 = b.conv("1.conv", r1, width, 3, s, 1)?;
                let r2 = b.bn_relu("2.", c1);
                let r2 = match dropout {
                    Some(p) => b.dropout("dropout", r2, p),
                    None => r2,
                };
                b.conv("2.conv", r2, width, 3, 1, 1)
            },
            |b, input, unit| {
                if unit == 1 && projects {
                    let r = preact.get().expect("the residual branch is built first");
                    b.conv("shortcut", r, width, 1, stride, 0)
                } else {
                    Ok(input)
                }
            },
            false,
        )?;
        b.pop_scope();
    }
    head(b, spec, x, true, Head::Global)
}
