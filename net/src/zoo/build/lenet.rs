//! LeNet-5 (LeCun et al. 1998).

use super::*;

/// LeNet-5 as Caffe's `lenet_train_test.prototxt` defines it, the network of Han et al.'s
/// pruning table: conv 20@5×5, max pool 2/2, conv 50@5×5, max pool 2/2, fc 500, ReLU, fc (no
/// ReLU after the convolutions, as there). `growth` may replace the widths 20, 50, 500.
pub(super) fn build_lenet5(spec: &NetSpec) -> Result<NetGraph, NetError> {
    if spec.depth != 5 {
        return Err(NetError::Spec(format!(
            "depth {} is not LeNet-5's: give --depth 5 or --model lenet-5",
            spec.depth
        )));
    }
    let [c1, c2, f1] = match spec.growth.as_slice() {
        [] => [20, 50, 500],
        [a, b, c] if *a > 0 && *b > 0 && *c > 0 => [*a, *b, *c],
        _ => {
            return Err(NetError::Spec(
                "LeNet-5 takes three widths (conv1, conv2, fc1; default 20, 50, 500) or none"
                    .into(),
            ))
        }
    };
    let mut b = NetBuilder::new(spec.input_shape());
    let x = b.conv_with_bias("conv1", b.input(), c1, 5, 1, 0)?;
    let x = b.max_pool("pool1", x, 2, 2, 0)?;
    let x = b.conv_with_bias("conv2", x, c2, 5, 1, 0)?;
    let x = b.max_pool("pool2", x, 2, 2, 0)?;
    let out = fc_stack(&mut b, x, &[f1], None, spec.classes);
    Ok(b.finish(out))
}
