//! The operations of a network DAG — the one description of each op. An op knows its
//! parameter tensors ([`Op::params`]: names and PyTorch shapes), its running statistics and its
//! output shape ([`Op::output_shape`]); the counts, the trainer's initialisation, checkpoint
//! names and both backends read them from here.

use std::fmt;

/// A feature map shape, channels × height × width (batch excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Shape {
    /// A new shape.
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        Shape { c, h, w }
    }

    /// `c·h·w`.
    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}×{}", self.c, self.h, self.w)
    }
}

/// Output length of a sliding window of `kernel` with `stride` and `padding` on each side over
/// `size` positions; `None` when the window does not fit (or the stride is 0). Convolution and
/// pooling, on every backend, use this one formula.
pub fn window_out(size: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = size + 2 * padding;
    if padded < kernel || stride == 0 {
        return None;
    }
    Some((padded - kernel) / stride + 1)
}

/// The output height and width of a window over a map of shape `s` (see [`window_out`]).
fn window_hw(s: Shape, kernel: usize, stride: usize, padding: usize) -> Option<(usize, usize)> {
    Some((
        window_out(s.h, kernel, stride, padding)?,
        window_out(s.w, kernel, stride, padding)?,
    ))
}

/// A probability in `[0, 1)`, kept as its `f64` (serialised as the number) and compared by its
/// bits, so that ops holding one stay `Eq` and hashable.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Prob(f64);

impl Prob {
    /// `p`, or what is wrong with it: a drop probability is finite and in `[0, 1)` (1 would drop
    /// everything).
    pub fn new(p: f64) -> Result<Self, String> {
        if p.is_finite() && (0.0..1.0).contains(&p) {
            Ok(Prob(p))
        } else {
            Err(format!(
                "drop probability {p} is outside [0, 1): give e.g. 0.5 (0 keeps everything)"
            ))
        }
    }

    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Prob {
    type Error = String;
    fn try_from(p: f64) -> Result<Self, String> {
        Prob::new(p)
    }
}

impl From<Prob> for f64 {
    fn from(p: Prob) -> f64 {
        p.0
    }
}

impl PartialEq for Prob {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Prob {}

impl std::hash::Hash for Prob {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.to_bits().hash(h)
    }
}

impl fmt::Display for Prob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The network input.
    Input,
    /// 2-D convolution, weight `[out, in / groups, k, k]`, and a bias `[out]` when `bias`.
    /// With `groups` g > 1 (ResNeXt's and DPN's grouped convolution) the channels are cut into g
    /// contiguous groups and output group i reads input group i only.
    Conv {
        /// Input channels.
        in_ch: usize,
        /// Output channels.
        out_ch: usize,
        /// Kernel size `k` (square).
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        padding: usize,
        /// A learnt bias per output channel (absent from the JSON when false, so DAGs
        /// without biases read and print as before).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        bias: bool,
        /// Channel groups (1: an ordinary convolution; absent from the JSON when 1).
        #[serde(default = "one_group", skip_serializing_if = "is_one_group")]
        groups: usize,
    },
    /// Batch normalisation over channels: learnable γ, β; running mean and variance.
    BatchNorm {
        /// Channels.
        channels: usize,
    },
    /// Rectified linear unit.
    Relu,
    /// Channel concatenation of the inputs, in slot order.
    Concat,
    /// Element-wise sum of the inputs (all of one shape).
    Sum,
    /// Element-wise maximum of the inputs (all of one shape): the `max` aggregation operator.
    Max,
    /// Parameter-free ("option A") shortcut: take every `stride`-th pixel, then zero-pad the
    /// channels up to `out_ch` (new channels split evenly before and after, as in the reference).
    ShortcutA {
        /// Spatial subsampling.
        stride: usize,
        /// Output channels.
        out_ch: usize,
    },
    /// Average pooling, no padding.
    AvgPool {
        /// Window.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Max pooling with padding.
    MaxPool {
        /// Window.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding on each side.
        padding: usize,
    },
    /// Mean over the whole spatial map (output `C×1×1`).
    GlobalAvgPool,
    /// Fully connected layer with bias over the flattened input (`C·H·W` features).
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
    /// Dropout (inverted): in training each element is zeroed with probability `p` and the
    /// survivors scaled by `1/(1−p)`, from a mask that is a function of the step's key and the
    /// element's position only (so the same seed gives the same masks on any thread count and
    /// after a resume); the identity at evaluation.
    Dropout {
        /// Drop probability.
        p: Prob,
    },
    /// FractalNet's join: the element-wise mean of the inputs (all of one shape). In training,
    /// drop-path: each input is dropped with probability `drop_path` for the whole batch, the
    /// survivors averaged, at least one kept (the mask a function of the step's key and the
    /// node, as dropout's); the plain mean at evaluation.
    MeanJoin {
        /// Probability of dropping each input in a training step.
        drop_path: Prob,
    },
}

fn one_group() -> usize {
    1
}

fn is_one_group(g: &usize) -> bool {
    *g == 1
}

/// One parameter tensor of an op: its name within the node (`weight`, `bias`) and its shape in
/// PyTorch's layout. The checkpoint name is `<node name>.<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamShape {
    /// Name within the node.
    pub name: &'static str,
    /// Shape (PyTorch layout).
    pub shape: Vec<usize>,
}

impl ParamShape {
    fn new(name: &'static str, shape: Vec<usize>) -> Self {
        ParamShape { name, shape }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

impl Op {
    /// Short name of the operation kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv { .. } => "conv",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Concat => "concat",
            Op::Sum => "sum",
            Op::Max => "max",
            Op::ShortcutA { .. } => "shortcut_a",
            Op::AvgPool { .. } => "avg_pool",
            Op::MaxPool { .. } => "max_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Linear { .. } => "linear",
            Op::Dropout { .. } => "dropout",
            Op::MeanJoin { .. } => "mean_join",
        }
    }

    /// The trainable parameters, in the order the trainer stores them: convolution `weight`
    /// `[out, in, k, k]` (and `bias` `[out]` when it has one); batch norm `weight` (γ) and `bias` (β), `[C]` each; linear `weight`
    /// `[out, in]` and `bias` `[out]`.
    pub fn params(&self) -> Vec<ParamShape> {
        match *self {
            Op::Conv {
                in_ch,
                out_ch,
                kernel,
                bias,
                groups,
                ..
            } => {
                let mut p = vec![ParamShape::new(
                    "weight",
                    vec![out_ch, in_ch / groups.max(1), kernel, kernel],
                )];
                if bias {
                    p.push(ParamShape::new("bias", vec![out_ch]));
                }
                p
            }
            Op::BatchNorm { channels } => vec![
                ParamShape::new("weight", vec![channels]),
                ParamShape::new("bias", vec![channels]),
            ],
            Op::Linear {
                in_features,
                out_features,
            } => vec![
                ParamShape::new("weight", vec![out_features, in_features]),
                ParamShape::new("bias", vec![out_features]),
            ],
            _ => Vec::new(),
        }
    }

    /// Running statistics kept outside the parameters (batch norm: mean and variance per channel).
    pub fn running_stats(&self) -> usize {
        match *self {
            Op::BatchNorm { channels } => 2 * channels,
            _ => 0,
        }
    }

    /// The output shape for inputs of `inputs` shapes (in slot order), or what does not fit.
    pub fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String> {
        let one = || {
            inputs
                .first()
                .copied()
                .ok_or_else(|| format!("a {} node needs an input", self.kind()))
        };
        match *self {
            Op::Input => Err("the input node has no inputs; its shape is given".into()),
            Op::Conv {
                in_ch,
                out_ch,
                kernel,
                stride,
                padding,
                groups,
                ..
            } => {
                let s = one()?;
                if s.c != in_ch {
                    return Err(format!(
                        "a convolution of {in_ch} input channels cannot read a {s} input"
                    ));
                }
                if groups == 0 || in_ch % groups != 0 || out_ch % groups != 0 {
                    return Err(format!(
                        "a convolution of {in_ch} → {out_ch} channels cannot have {groups} groups: the groups must divide both channel counts"
                    ));
                }
                match window_hw(s, kernel, stride, padding) {
                    Some((h, w)) => Ok(Shape::new(out_ch, h, w)),
                    None => Err(format!(
                        "a {kernel}×{kernel} convolution does not fit a {s} input; use a larger input"
                    )),
                }
            }
            Op::BatchNorm { .. } | Op::Relu | Op::Dropout { .. } => one(),
            Op::Concat => {
                let first = one()?;
                let mut c = 0;
                for s in inputs {
                    if (s.h, s.w) != (first.h, first.w) {
                        return Err(format!(
                            "cannot concatenate {s} with {first}: spatial sizes differ"
                        ));
                    }
                    c += s.c;
                }
                Ok(Shape::new(c, first.h, first.w))
            }
            Op::Sum | Op::Max | Op::MeanJoin { .. } => {
                let first = one()?;
                match inputs.iter().find(|&&s| s != first) {
                    Some(bad) => Err(format!("cannot combine {bad} with {first} element-wise")),
                    None => Ok(first),
                }
            }
            Op::ShortcutA { stride, out_ch } => {
                let s = one()?;
                Ok(Shape::new(
                    out_ch,
                    s.h.div_ceil(stride),
                    s.w.div_ceil(stride),
                ))
            }
            Op::AvgPool { kernel, stride } => {
                let s = one()?;
                match window_hw(s, kernel, stride, 0) {
                    Some((h, w)) if h > 0 && w > 0 => Ok(Shape::new(s.c, h, w)),
                    _ => Err(format!(
                        "{kernel}×{kernel} pooling does not fit a {s} map; use a larger input or fewer blocks"
                    )),
                }
            }
            Op::MaxPool {
                kernel,
                stride,
                padding,
            } => {
                let s = one()?;
                match window_hw(s, kernel, stride, padding) {
                    Some((h, w)) => Ok(Shape::new(s.c, h, w)),
                    None => Err(format!(
                        "{kernel}×{kernel} max pooling does not fit a {s} map"
                    )),
                }
            }
            Op::GlobalAvgPool => Ok(Shape::new(one()?.c, 1, 1)),
            Op::Linear {
                in_features,
                out_features,
            } => {
                let s = one()?;
                if s.c * s.h * s.w != in_features {
                    return Err(format!(
                        "a linear layer of {in_features} input features cannot read a {s} input"
                    ));
                }
                Ok(Shape::new(out_features, 1, 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_formula() {
        assert_eq!(window_out(32, 3, 1, 1), Some(32));
        assert_eq!(window_out(224, 7, 2, 3), Some(112));
        assert_eq!(window_out(7, 3, 2, 0), Some(3));
        assert_eq!(window_out(2, 3, 1, 0), None);
        assert_eq!(window_out(8, 3, 0, 1), None);
    }

    #[test]
    fn params_and_shapes_of_each_op() {
        let conv = Op::Conv {
            in_ch: 4,
            out_ch: 6,
            kernel: 3,
            stride: 2,
            padding: 1,
            bias: false,
            groups: 1,
        };
        assert_eq!(conv.params()[0].shape, vec![6, 4, 3, 3]);
        assert_eq!(conv.params()[0].numel(), 216);
        assert_eq!(conv.params().len(), 1, "no bias unless asked");
        let biased = Op::Conv {
            in_ch: 4,
            out_ch: 6,
            kernel: 3,
            stride: 2,
            padding: 1,
            bias: true,
            groups: 1,
        };
        // Grouped: each of the 2 output groups reads 2 of the 4 input channels.
        let grouped = Op::Conv {
            in_ch: 4,
            out_ch: 6,
            kernel: 3,
            stride: 2,
            padding: 1,
            bias: false,
            groups: 2,
        };
        assert_eq!(grouped.params()[0].shape, vec![6, 2, 3, 3]);
        assert_eq!(
            grouped.output_shape(&[Shape::new(4, 9, 9)]),
            Ok(Shape::new(6, 5, 5))
        );
        for groups in [0, 3, 4] {
            let bad = Op::Conv {
                in_ch: 4,
                out_ch: 6,
                kernel: 3,
                stride: 2,
                padding: 1,
                bias: false,
                groups,
            };
            let e = bad.output_shape(&[Shape::new(4, 9, 9)]).unwrap_err();
            assert!(e.contains("groups must divide"), "{groups}: {e}");
        }
        assert_eq!(biased.params()[1].name, "bias");
        assert_eq!(biased.params()[1].shape, vec![6]);
        // A convolution or linear layer refuses an input of other channels or features.
        assert!(conv.output_shape(&[Shape::new(3, 9, 9)]).is_err());
        assert_eq!(
            conv.output_shape(&[Shape::new(4, 9, 9)]).unwrap(),
            Shape::new(6, 5, 5)
        );
        let bn = Op::BatchNorm { channels: 5 };
        assert_eq!(bn.params().len(), 2);
        assert_eq!(bn.running_stats(), 10);
        let cat = Op::Concat.output_shape(&[Shape::new(2, 4, 4), Shape::new(3, 4, 4)]);
        assert_eq!(cat.unwrap(), Shape::new(5, 4, 4));
        assert!(Op::Concat
            .output_shape(&[Shape::new(2, 4, 4), Shape::new(3, 2, 2)])
            .unwrap_err()
            .contains("spatial sizes differ"));
        assert!(Op::Sum
            .output_shape(&[Shape::new(2, 4, 4), Shape::new(3, 4, 4)])
            .is_err());
        let lin = Op::Linear {
            in_features: 10,
            out_features: 3,
        };
        assert_eq!(
            lin.params().iter().map(ParamShape::numel).sum::<usize>(),
            33
        );
        let drop = Op::Dropout {
            p: Prob::new(0.5).unwrap(),
        };
        assert!(drop.params().is_empty());
        assert_eq!(
            drop.output_shape(&[Shape::new(7, 3, 2)]).unwrap(),
            Shape::new(7, 3, 2)
        );
        assert!(
            Prob::new(1.0).is_err() && Prob::new(-0.1).is_err() && Prob::new(f64::NAN).is_err()
        );
        let json = serde_json::to_string(&drop).unwrap();
        assert_eq!(json, r#"{"op":"dropout","p":0.5}"#);
        assert_eq!(serde_json::from_str::<Op>(&json).unwrap(), drop);
        assert!(serde_json::from_str::<Op>(r#"{"op":"dropout","p":1.5}"#).is_err());
        assert_eq!(
            Op::ShortcutA {
                stride: 2,
                out_ch: 8
            }
            .output_shape(&[Shape::new(4, 7, 7)])
            .unwrap(),
            Shape::new(8, 4, 4)
        );
    }
}
