//! The named models: one line of data each, carrying the paper's figures (parameters and
//! FLOPs as printed, CIFAR errors) beside the spec they are counted from.

use super::spec::{Family, Layout, NetSpec};
use crate::NetError;

/// A named model: one line of data.
#[derive(Clone, Copy, Debug)]
pub struct Named {
    /// The name (`sparsenet-bc-100-24`).
    pub name: &'static str,
    /// Family.
    pub family: Family,
    /// Layout.
    pub layout: Layout,
    /// Depth.
    pub depth: usize,
    /// Growth per block (empty for ResNets).
    pub growth: &'static [usize],
    /// BC variant.
    pub bc: bool,
    /// The classes of the paper's figure.
    pub classes: usize,
    /// Parameters in millions as printed by the paper (its precision matters).
    pub paper_params: Option<&'static str>,
    /// GFLOPs as printed by the paper.
    pub paper_flops: Option<&'static str>,
    /// CIFAR-10 test error (%) with augmentation (C10+) as printed in the SparseNet paper.
    pub paper_c10_error: Option<f64>,
    /// CIFAR-100 test error (%) with augmentation (C100+) as printed in the SparseNet paper.
    pub paper_c100_error: Option<f64>,
}

impl Named {
    /// The spec, with `classes` overriding the paper's head when given.
    pub fn spec(&self, classes: Option<usize>) -> NetSpec {
        NetSpec::new(
            self.family,
            self.layout,
            self.depth,
            self.growth,
            self.bc,
            classes.unwrap_or(self.classes),
        )
    }
}

#[allow(clippy::too_many_arguments)]
const fn row(
    name: &'static str,
    family: Family,
    layout: Layout,
    depth: usize,
    growth: &'static [usize],
    bc: bool,
    classes: usize,
    paper_params: Option<&'static str>,
    paper_flops: Option<&'static str>,
    paper_c10_error: Option<f64>,
    paper_c100_error: Option<f64>,
) -> Named {
    Named {
        name,
        family,
        layout,
        depth,
        growth,
        bc,
        classes,
        paper_params,
        paper_flops,
        paper_c10_error,
        paper_c100_error,
    }
}

use Family::{Alexnet, Dense, Dpn, Fractal, Lenet, Mixnet, Mlp, Preres, Res, Sparse, Vgg, Wide};
use Layout::{Cifar, Imagenet, Mnist};

/// Every named model with the paper's figures (SparseNet paper; DenseNet and ResNet papers for
/// their rows; CIFAR SparseNet quoted with the 100-class head, CIFAR DenseNet/ResNet with 10;
/// Wide ResNet as the SparseNet paper's CIFAR table prints it; the LeNets, AlexNet and VGG-16
/// as Han et al. 2015's pruning table prints them). For the families whose `growth` is not a
/// growth rate it holds their widths: Wide ResNet's widening factor, the MLP's hidden widths,
/// MixNet's k₁ = k₂; MixNet-100 and DPN-92 as the issue quotes their papers (Wang et al. 2018,
/// Chen et al. 2017).
/// Columns: name, family, layout, depth, growth per block, BC, classes of the printed figures,
/// parameters (M) and GFLOPs as printed, C10+ and C100+ errors (%) as printed.
#[rustfmt::skip]
pub const ZOO: &[Named] = &[
    row("sparsenet-40-24",            Sparse, Cifar,    40,   &[24],          false, 100,  Some("0.76"),  None,         Some(5.13), Some(24.65)),
    row("sparsenet-100-24",           Sparse, Cifar,    100,  &[24],          false, 100,  Some("2.52"),  None,         Some(4.64), Some(22.41)),
    row("sparsenet-100-36",           Sparse, Cifar,    100,  &[36],          false, 100,  Some("5.65"),  None,         Some(4.34), Some(20.50)),
    row("sparsenet-100-16-32-64",     Sparse, Cifar,    100,  &[16, 32, 64],  false, 100,  Some("7.22"),  None,         Some(4.11), Some(19.49)),
    row("sparsenet-100-32-64-128",    Sparse, Cifar,    100,  &[32, 64, 128], false, 100,  Some("27.72"), None,         Some(3.88), Some(18.80)),
    row("sparsenet-bc-100-24",        Sparse, Cifar,    100,  &[24],          true,  100,  Some("1.46"),  None,         Some(4.03), Some(22.12)),
    row("sparsenet-bc-100-36",        Sparse, Cifar,    100,  &[36],          true,  100,  Some("3.26"),  None,         Some(3.91), Some(20.31)),
    row("sparsenet-bc-100-16-32-64",  Sparse, Cifar,    100,  &[16, 32, 64],  true,  100,  Some("4.38"),  None,         None,       Some(19.71)),
    row("sparsenet-bc-100-32-64-128", Sparse, Cifar,    100,  &[32, 64, 128], true,  100,  Some("16.72"), None,         None,       Some(17.71)),
    row("densenet-40-12",             Dense,  Cifar,    40,   &[12],          false, 10,   Some("1.0"),   None,         Some(5.39), Some(24.79)),
    row("densenet-100-12",            Dense,  Cifar,    100,  &[12],          false, 10,   Some("7.0"),   None,         Some(4.28), Some(20.97)),
    row("densenet-100-24",            Dense,  Cifar,    100,  &[24],          false, 10,   Some("27.2"),  None,         Some(4.04), Some(19.61)),
    row("densenet-bc-100-12",         Dense,  Cifar,    100,  &[12],          true,  10,   Some("0.8"),   None,         Some(4.68), Some(22.62)),
    row("densenet-bc-250-24",         Dense,  Cifar,    250,  &[24],          true,  10,   Some("15.3"),  None,         Some(3.65), Some(17.6)),
    row("densenet-bc-190-40",         Dense,  Cifar,    190,  &[40],          true,  10,   Some("25.6"),  None,         Some(3.75), Some(17.53)),
    row("resnet-20",                  Res,    Cifar,    20,   &[],            false, 10,   Some("0.27"),  None,         None,       None),
    row("resnet-32",                  Res,    Cifar,    32,   &[],            false, 10,   Some("0.46"),  None,         None,       None),
    row("resnet-44",                  Res,    Cifar,    44,   &[],            false, 10,   Some("0.66"),  None,         None,       None),
    row("resnet-56",                  Res,    Cifar,    56,   &[],            false, 10,   Some("0.85"),  None,         None,       None),
    row("resnet-110",                 Res,    Cifar,    110,  &[],            false, 10,   Some("1.7"),   None,         Some(6.61), None),
    row("resnet-1202",                Res,    Cifar,    1202, &[],            false, 10,   Some("19.4"),  None,         None,       None),
    row("preresnet-164",              Preres, Cifar,    164,  &[],            false, 10,   Some("1.7"),   None,         Some(5.46), Some(24.33)),
    row("preresnet-1001",             Preres, Cifar,    1001, &[],            false, 10,   Some("10.2"),  None,         Some(4.62), Some(22.71)),
    row("densenet-121",               Dense,  Imagenet, 121,  &[32],          true,  1000, Some("7.98"),  Some("5.7"),  None,       None),
    row("densenet-169",               Dense,  Imagenet, 169,  &[32],          true,  1000, Some("14.15"), Some("6.76"), None,       None),
    row("densenet-201",               Dense,  Imagenet, 201,  &[32],          true,  1000, Some("20.01"), Some("8.63"), None,       None),
    row("sparsenet-121-32",           Sparse, Imagenet, 121,  &[32],          true,  1000, Some("4.51"),  Some("3.46"), None,       None),
    row("sparsenet-169-32",           Sparse, Imagenet, 169,  &[32],          true,  1000, Some("6.23"),  Some("3.74"), None,       None),
    row("sparsenet-201-32",           Sparse, Imagenet, 201,  &[32],          true,  1000, Some("7.22"),  Some("4.13"), None,       None),
    row("sparsenet-201-48",           Sparse, Imagenet, 201,  &[48],          true,  1000, Some("14.91"), Some("9.19"), None,       None),
    row("resnet-50",                  Res,    Imagenet, 50,   &[],            false, 1000, Some("25.5"),  Some("8.20"), None,       None),
    row("wrn-16-8",                   Wide,   Cifar,    16,   &[8],           false, 10,   Some("11.0"),  None,         Some(4.81), Some(22.07)),
    row("fractalnet-21",              Fractal, Cifar,   21,   &[3],           false, 10,   Some("38.6"),  None,         Some(5.52), Some(23.30)),
    row("mixnet-100",                 Mixnet, Cifar,    100,  &[12],          false, 10,   Some("1.5"),   None,         None,       None),
    row("dpn-92",                     Dpn,    Imagenet, 92,   &[],            false, 1000, Some("37.8"),  None,         None,       None),
    row("lenet-300-100",              Mlp,    Mnist,    3,    &[300, 100],    false, 10,   Some("0.267"), None,         None,       None),
    row("lenet-5",                    Lenet,  Mnist,    5,    &[],            false, 10,   Some("0.431"), None,         None,       None),
    row("alexnet",                    Alexnet, Imagenet, 8,   &[],            false, 1000, Some("61"),    None,         None,       None),
    row("vgg-16",                     Vgg,    Imagenet, 16,   &[],            false, 1000, Some("138"),   None,         None,       None),
];

/// Look up a named model.
pub fn named(name: &str) -> Result<&'static Named, NetError> {
    let lower = name.to_ascii_lowercase();
    ZOO.iter().find(|m| m.name == lower).ok_or_else(|| {
        let mut close: Vec<(usize, &str)> = ZOO
            .iter()
            .map(|m| (edit_distance(&lower, m.name), m.name))
            .collect();
        close.sort();
        let names: Vec<&str> = close.iter().take(3).map(|(_, n)| *n).collect();
        NetError::Spec(format!(
            "unknown model '{name}': closest names are {} (see --list)",
            names.join(", ")
        ))
    })
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
