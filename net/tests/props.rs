//! The DAG-derived parameter count against an independent closed-form sum over layers.

use proptest::prelude::*;
use sparsenet_analysis::topology::Pattern;
use sparsenet_net::zoo::{build_and_count, Aggregate, Family, Layout, NetSpec};

/// Sources of layer `l` in a block: dense all of 0..l; sparse l − base^m ≥ 0.
fn sources(dense: bool, base: usize, l: usize) -> Vec<usize> {
    if dense {
        return (0..l).collect();
    }
    let mut v = Vec::new();
    let mut p = 1;
    while p <= l {
        v.push(l - p);
        p *= base;
    }
    v
}

/// After block `b` (0-based) with `cout` output channels: the transition's parameters (BN and
/// a 1×1 convolution, halving with BC) added to `total` for the first two blocks; returns the
/// next block's input width.
fn after_block(total: &mut u64, b: usize, cout: usize, bc: bool) -> usize {
    if b < 2 {
        let next = if bc { cout / 2 } else { cout };
        *total += (2 * cout + cout * next) as u64;
        next
    } else {
        cout
    }
}

/// The head: BN over `c` channels and the linear layer to `classes`.
fn head(c: usize, classes: usize) -> u64 {
    (2 * c + c * classes + classes) as u64
}

/// Parameters of a CIFAR DenseNet/SparseNet written out layer by layer, with no graph.
fn closed_form(
    dense: bool,
    depth: usize,
    g: &[usize; 3],
    bc: bool,
    base: usize,
    classes: usize,
) -> u64 {
    let layers = (depth - 4) / if bc { 6 } else { 3 };
    let stem = if dense && !bc { 16 } else { 2 * g[0] };
    let mut total = (3 * stem * 9) as u64;
    let mut c = stem;
    for (b, &k) in g.iter().enumerate() {
        let ch = |j: usize| if j == 0 { c } else { k };
        for l in 1..=layers {
            let cin: usize = sources(dense, base, l).into_iter().map(ch).sum();
            total += if bc {
                (2 * cin + cin * 4 * k + 2 * 4 * k + 4 * k * k * 9) as u64
            } else {
                (2 * cin + cin * k * 9) as u64
            };
        }
        let cout: usize = sources(dense, base, layers + 1).into_iter().map(ch).sum();
        c = after_block(&mut total, b, cout, bc);
    }
    total + head(c, classes)
}

/// A CIFAR DenseNet or SparseNet (sparse base `base`) of `blocks_layers` layers per block.
fn cifar_spec(
    dense: bool,
    bc: bool,
    blocks_layers: usize,
    g: &[usize; 3],
    base: usize,
    classes: usize,
) -> NetSpec {
    let depth = 4 + blocks_layers * if bc { 6 } else { 3 };
    let family = if dense { Family::Dense } else { Family::Sparse };
    let mut spec = NetSpec::new(family, Layout::Cifar, depth, g, bc, classes);
    if !dense {
        spec.pattern = Some(Pattern::Sparse { base });
    }
    spec
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn dag_count_equals_layer_by_layer_sum(
        dense in any::<bool>(),
        bc in any::<bool>(),
        blocks_layers in 1usize..=20,
        g in proptest::array::uniform3(1usize..=40),
        base in 2usize..=5,
        classes in 1usize..=100,
    ) {
        let spec = cifar_spec(dense, bc, blocks_layers, &g, base, classes);
        let depth = spec.depth;
        let (_, c) = build_and_count(&spec).unwrap();
        prop_assert_eq!(c.params, closed_form(dense, depth, &g, bc, base, classes));
    }
}

/// Parameters of a summed CIFAR DenseNet/SparseNet, written out from the documented equations
/// (`NetSpec::aggregate`): every block projects its input to `k` channels when it differs, each
/// layer is `H_ℓ` on `k` channels, the block output has `k` channels.
fn closed_form_sum(dense: bool, depth: usize, g: &[usize; 3], bc: bool, classes: usize) -> u64 {
    let layers = ((depth - 4) / if bc { 6 } else { 3 }) as u64;
    let stem = if dense && !bc { 16 } else { 2 * g[0] };
    let mut total = (3 * stem * 9) as u64;
    let mut c = stem as u64;
    for (b, &k) in g.iter().enumerate() {
        let k = k as u64;
        if c != k {
            total += c * k;
        }
        total += layers
            * if bc {
                2 * k + 4 * k * k + 8 * k + 36 * k * k
            } else {
                2 * k + 9 * k * k
            };
        c = after_block(&mut total, b, k as usize, bc) as u64;
    }
    total + head(c as usize, classes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn summing_reads_the_same_sources_and_counts_as_documented(
        dense in any::<bool>(),
        bc in any::<bool>(),
        blocks_layers in 1usize..=12,
        g in proptest::array::uniform3(2usize..=32),
        base in 2usize..=5,
        classes in 1usize..=20,
    ) {
        let concat = cifar_spec(dense, bc, blocks_layers, &g, base, classes);
        let depth = concat.depth;
        let mut sum = concat.clone();
        sum.aggregate = Aggregate::Sum;
        let (a, ca) = build_and_count(&sum).unwrap();
        let (b, _) = build_and_count(&concat).unwrap();
        prop_assert_eq!(ca.params, closed_form_sum(dense, depth, &g, bc, classes));
        // The same pattern: every layer reads the same sources in the same order.
        for (x, y) in a.blocks.iter().zip(&b.blocks) {
            for (lx, ly) in x.layers.iter().zip(&y.layers) {
                prop_assert_eq!(&lx.sources, &ly.sources);
            }
        }
    }
}

/// Parameters of a mixed-link (`Some(a)`) or dual-path (`None`) CIFAR network of the sparse
/// pattern of `base` (or dense), written out from the documented equations.
fn closed_form_split(
    dense: bool,
    base: usize,
    depth: usize,
    g: &[usize; 3],
    bc: bool,
    classes: usize,
    mixed: Option<usize>,
) -> u64 {
    let layers = (depth - 4) / if bc { 6 } else { 3 };
    let stem = if dense && !bc { 16 } else { 2 * g[0] };
    let mut total = (3 * stem * 9) as u64;
    let mut c = stem;
    for (b, &k) in g.iter().enumerate() {
        // Input width of layer l (l = layers + 1: the block output), and the summed width.
        let (width, s) = match mixed {
            Some(a) => {
                if c != a {
                    total += (c * a) as u64;
                }
                let w = move |l: usize| -> usize {
                    a + sources(dense, base, l)
                        .into_iter()
                        .map(|j| if j == 0 { c } else { k })
                        .sum::<usize>()
                };
                (Box::new(w) as Box<dyn Fn(usize) -> usize>, a)
            }
            None => {
                let w = move |l: usize| -> usize {
                    c + k * sources(dense, base, l)
                        .into_iter()
                        .filter(|&j| j > 0)
                        .count()
                };
                (Box::new(w) as Box<dyn Fn(usize) -> usize>, c)
            }
        };
        for l in 1..=layers {
            let u = width(l);
            total += if bc {
                (2 * u + 4 * k * u + 8 * k + 36 * k * (s + k)) as u64
            } else {
                (2 * u + 9 * u * (s + k)) as u64
            };
        }
        let cout = width(layers + 1);
        c = after_block(&mut total, b, cout, bc);
    }
    total + head(c, classes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn mixed_and_dual_count_as_documented(
        dense in any::<bool>(),
        bc in any::<bool>(),
        blocks_layers in 1usize..=6,
        g in proptest::array::uniform3(2usize..=16),
        a in 1usize..=16,
        base in 2usize..=4,
        classes in 1usize..=12,
        mixed in any::<bool>(),
    ) {
        let mut spec = cifar_spec(dense, bc, blocks_layers, &g, base, classes);
        let depth = spec.depth;
        spec.aggregate = if mixed { Aggregate::Mixed { sum: a } } else { Aggregate::Dual };
        let (_, c) = build_and_count(&spec).unwrap();
        prop_assert_eq!(
            c.params,
            closed_form_split(dense, base, depth, &g, bc, classes, mixed.then_some(a))
        );
    }
}
