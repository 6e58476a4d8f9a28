//! Hand-computed counts of small and reference networks.

use super::*;
use crate::count::count;
use crate::dag::NetGraph;
use crate::op::{Op, Shape};

#[test]
fn tiny_sparsenet_by_hand() {
    // Sparse, depth 7 → one layer per block, k = 2, stem 2k = 4, 3 classes, 32×32×3:
    //   stem conv 3→4 (3×3):                 3·4·9            = 108
    //   block1 layer1: BN(4) + conv 4→2:      8 + 4·2·9        = 80;  out = [x1, x0] → 6 ch
    //   transition1: BN(6) + conv 6→6 (1×1):  12 + 36          = 48
    //   block2 layer1: BN(6) + conv 6→2:      12 + 108         = 120; out → 8 ch
    //   transition2: BN(8) + conv 8→8:        16 + 64          = 80
    //   block3 layer1: BN(8) + conv 8→2:      16 + 144         = 160; out → 10 ch
    //   head: BN(10) + linear 10→3:           20 + 30 + 3      = 53
    //   total                                                  = 649
    let spec = NetSpec::new(Family::Sparse, Layout::Cifar, 7, &[2], false, 3);
    let (net, c) = build_and_count(&spec).unwrap();
    assert_eq!(c.params, 649);
    // BN running stats: 2·(4 + 6 + 6 + 8 + 8 + 10) = 84.
    assert_eq!(c.bn_running, 84);
    assert_eq!(net.graph[net.output].shape, Shape::new(3, 1, 1));
    // MACs: stem 108·32² + block1 72·32² + trans1 36·32² + block2 108·16² + trans2 64·16²
    //       + block3 144·8² + linear 30 = 110592 + 73728 + 36864 + 27648 + 16384 + 9216 + 30.
    assert_eq!(c.macs, 274462);
}

#[test]
fn resnet20_by_hand() {
    // stem 3·16·9 + BN 32 = 464; stage1: 3 units × (2·2304 + 2·32) = 14016;
    // stage2: (4608 + 9216 + 128) + 2·(2·9216 + 128) = 51072;
    // stage3: (18432 + 36864 + 256) + 2·(2·36864 + 256) = 203520; fc 64·10 + 10 = 650.
    let (_, c) = build_and_count(&named("resnet-20").unwrap().spec(None)).unwrap();
    assert_eq!(c.params, 464 + 14016 + 51072 + 203520 + 650);
}

#[test]
fn torchvision_densenet121_exact() {
    let (_, c) = build_and_count(&named("densenet-121").unwrap().spec(None)).unwrap();
    assert_eq!(c.params, 7_978_856);
}

#[test]
fn sparse_block_output_follows_the_rule_at_l_plus_one() {
    // CIFAR sparse depth 52 → 16 layers per block; the output aggregates ℓ = 17 − 2^m:
    // x16, x15, x13, x9, x1 → 5·k channels (x0 is not among them).
    let spec = NetSpec::new(Family::Sparse, Layout::Cifar, 52, &[12], false, 10);
    let net = build(&spec).unwrap();
    let out = net
        .graph
        .node_indices()
        .find(|&n| net.graph[n].name == "block1.out")
        .unwrap();
    assert_eq!(net.graph[out].shape.c, 5 * 12);
    assert_eq!(net.inputs(out).len(), 5);
}

#[test]
fn plain_has_no_sums_and_resnet_has_one_per_unit() {
    let plain = build(&NetSpec::new(
        Family::Plain,
        Layout::Cifar,
        20,
        &[],
        false,
        10,
    ))
    .unwrap();
    let res = build(&NetSpec::new(
        Family::Res,
        Layout::Cifar,
        20,
        &[],
        false,
        10,
    ))
    .unwrap();
    let sums = |n: &NetGraph| n.graph.node_weights().filter(|w| w.op == Op::Sum).count();
    assert_eq!(sums(&plain), 0);
    assert_eq!(sums(&res), 9);
    // Option-A shortcuts add no parameters: plain and res count the same.
    assert_eq!(count(&plain).params, count(&res).params);
}

#[test]
fn agreement_uses_printed_precision() {
    assert!(agrees(757_252, "0.76", 1e6));
    assert!(agrees(1_019_722, "1.0", 1e6));
    assert!(!agrees(25_557_032, "25.5", 1e6));
    assert!(agrees(769_162, "0.8", 1e6));
}

#[test]
fn bad_specs_are_errors() {
    let mut s = NetSpec::new(Family::Dense, Layout::Cifar, 41, &[12], false, 10);
    assert!(build(&s).is_err());
    s.depth = 40;
    s.bc = true; // (40 − 4) / 6 = 6: fine
    assert!(build(&s).is_ok());
    s.depth = 43;
    assert!(build(&s).is_err());
    s.depth = 40;
    s.classes = 0;
    assert!(build(&s).is_err());
    assert!(named("sparsenet-40")
        .unwrap_err()
        .to_string()
        .contains("sparsenet-40-24"));
}

#[test]
fn table_rows_carry_the_papers_errors() {
    // The SparseNet paper's CIFAR table has C10+/C100+ errors for 18 of the named models, and
    // for Wide ResNet-16-8 and FractalNet-21 among the systems it compares against.
    let with_errors = ZOO
        .iter()
        .filter(|m| m.paper_c10_error.is_some() || m.paper_c100_error.is_some())
        .count();
    assert_eq!(with_errors, 20);
    assert_eq!(named("wrn-16-8").unwrap().paper_c100_error, Some(22.07));
    let s = named("sparsenet-40-24").unwrap();
    assert_eq!(
        (s.paper_c10_error, s.paper_c100_error),
        (Some(5.13), Some(24.65))
    );
    let d = named("densenet-bc-100-12").unwrap();
    assert_eq!(
        (d.paper_c10_error, d.paper_c100_error),
        (Some(4.68), Some(22.62))
    );
    assert_eq!(named("densenet-121").unwrap().paper_c100_error, None);
}

#[test]
fn blocks_record_what_each_layer_reads_and_contributes() {
    use crate::dag::Aggregation;
    let net = build(&named("sparsenet-40-24").unwrap().spec(None)).unwrap();
    assert_eq!(net.blocks.len(), 3);
    let b1 = &net.blocks[0];
    assert_eq!(
        (b1.name.as_str(), b1.aggregation),
        ("block1", Aggregation::Concat)
    );
    assert_eq!(b1.layers.len(), 12);
    // Layer ℓ reads layers ℓ − 1, ℓ − 2, ℓ − 4, … (0 is the block input), nearest first.
    assert_eq!(b1.layers[3].sources, vec![3, 2, 0]);
    assert_eq!(b1.layers[11].sources, vec![11, 10, 8, 4]);
    assert_eq!(
        net.graph[b1.layers[3].first_conv].name,
        "block1.layer4.conv"
    );
    assert_eq!(net.graph[b1.layers[3].output].name, "block1.layer4.conv");
    // The first convolution's input channels are the sources' widths: layer 4 reads layers 3
    // and 2 (24 channels each) and the block input (the 48-channel stem).
    let Op::Conv { in_ch, .. } = net.graph[b1.layers[3].first_conv].op else {
        panic!("not a convolution")
    };
    assert_eq!(in_ch, 24 + 24 + 48);

    let net = build(&named("densenet-bc-100-12").unwrap().spec(None)).unwrap();
    let b2 = &net.blocks[1];
    assert_eq!(b2.layers[4].sources, vec![4, 3, 2, 1, 0]);
    assert_eq!(
        net.graph[b2.layers[4].first_conv].name,
        "block2.layer5.1.conv"
    );
    assert_eq!(net.graph[b2.layers[4].output].name, "block2.layer5.2.conv");

    let net = build(&named("resnet-20").unwrap().spec(None)).unwrap();
    assert_eq!(net.blocks.len(), 3);
    let s2 = &net.blocks[1];
    assert_eq!(
        (s2.name.as_str(), s2.aggregation),
        ("stage2", Aggregation::Sum)
    );
    let names: Vec<&str> = s2
        .layers
        .iter()
        .map(|l| net.graph[l.output].name.as_str())
        .collect();
    assert_eq!(
        names,
        ["stage2.unit1.bn2", "stage2.unit2.bn2", "stage2.unit3.bn2"]
    );
    assert_eq!(
        net.graph[s2.layers[0].first_conv].name,
        "stage2.unit1.conv1"
    );
    assert_eq!(s2.layers[2].sources, vec![2]);

    let mut spec = named("resnet-20").unwrap().spec(None);
    spec.family = Family::Plain;
    let net = build(&spec).unwrap();
    assert_eq!(net.blocks[0].aggregation, Aggregation::Chain);
    assert_eq!(net.blocks[0].layers.len(), 3);
}

#[test]
fn dag_blocks_by_hand() {
    // Every block is the DAG 0→1, 0→2, 1→2 (two layers; the output is node 2 alone), k = 2,
    // 3 classes, 32×32×3, depth 4 + 3·2 = 10:
    //   stem conv 3→4 (3×3):                                 108
    //   block1: layer1 BN(4) + conv 4→2 = 8 + 72;  layer2 reads [1, 0] = 6 ch: 12 + 108 = 200
    //   transition1 (2 ch): BN(2) + conv 2→2 (1×1) = 4 + 4                        =   8
    //   block2 (2 ch in): layer1 4 + 36;  layer2 reads 2 + 2 ch: 8 + 72            = 120
    //   transition2: 8;  block3: 120;  head BN(2) + linear 2→3: 4 + 9              = 140
    //   total                                                                      = 577
    use sparsenet_analysis::dag::BlockDag;
    use sparsenet_analysis::topology::Pattern;
    let dag = BlockDag::from_edges(None, &[(0, 1), (0, 2), (1, 2)]).unwrap();
    let mut spec = NetSpec::new(Family::Sparse, Layout::Cifar, 10, &[2], false, 3);
    spec.pattern = Some(Pattern::Dag(dag.clone()));
    let (net, c) = build_and_count(&spec).unwrap();
    assert_eq!(c.params, 577);
    assert_eq!(net.blocks[0].layers[1].sources, vec![1, 0]);
    // The depth must fit the DAG.
    spec.depth = 13;
    let e = build(&spec).unwrap_err().to_string();
    assert!(e.contains("give --depth 10"), "{e}");
    assert_eq!(NetSpec::dag_depth(&dag, false), 10);
    assert_eq!(NetSpec::dag_depth(&dag, true), 16);
    // The spec (with its DAG) survives JSON, validated again on reading.
    spec.depth = 10;
    let json = serde_json::to_string(&spec).unwrap();
    let back: NetSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
    let broken = json.replace("[[],[0],[1,0]]", "[[],[0],[2,0]]");
    assert_ne!(broken, json);
    assert!(
        serde_json::from_str::<NetSpec>(&broken).is_err(),
        "a cycle read from JSON is refused"
    );
}

#[test]
fn sum_aggregation_by_hand() {
    // Sparse, depth 7 (one layer per block), k = 2, summed, 3 classes, 32×32×3:
    //   stem conv 3→4 (3×3):                                         108
    //   block1: projection 4→2 (1×1) 8; layer1 BN(2) + conv 2→2 = 4 + 36 = 48; output
    //           x̃_1 + x̃_0: 2 channels
    //   transition1: BN(2) + conv 2→2 (1×1) = 4 + 4                  =   8
    //   block2 (2 ch in = k: no projection): 40;  transition2: 8;  block3: 40
    //   head: BN(2) + linear 2→3 = 4 + 9                             =  13
    //   total                                                        = 265
    let mut spec = NetSpec::new(Family::Sparse, Layout::Cifar, 7, &[2], false, 3);
    spec.aggregate = Aggregate::Sum;
    let (_, c) = build_and_count(&spec).unwrap();
    assert_eq!(c.params, 265);
    assert_eq!(spec.to_string(), "sparsenet-7-2-sum (cifar, 3 classes)");
    // The documented formula per block: C_0·k (if C_0 ≠ k) + Σ_ℓ (2k + 9k²), at depth 40, k = 24:
    // stem 3·48·9; block 1 projects 48 → 24, blocks 2 and 3 start at 24 channels.
    let mut big = NetSpec::new(Family::Sparse, Layout::Cifar, 40, &[24], false, 10);
    big.aggregate = Aggregate::Sum;
    let (_, c) = build_and_count(&big).unwrap();
    let k = 24u64;
    let layers = 12u64;
    let h = 2 * k + 9 * k * k;
    let want = 3 * 48 * 9 + 48 * k + 3 * layers * h + 2 * (2 * k + k * k) + (2 * k + k * 10 + 10);
    assert_eq!(c.params, want);
    // The same pattern summed and concatenated reads the same sources.
    let concat = NetSpec::new(Family::Sparse, Layout::Cifar, 40, &[24], false, 10);
    let (a, b) = (build(&big).unwrap(), build(&concat).unwrap());
    for (x, y) in a.blocks.iter().zip(&b.blocks) {
        let sx: Vec<&Vec<usize>> = x.layers.iter().map(|l| &l.sources).collect();
        let sy: Vec<&Vec<usize>> = y.layers.iter().map(|l| &l.sources).collect();
        assert_eq!(sx, sy);
    }
    assert_eq!(a.blocks[0].aggregation, crate::dag::Aggregation::Sum);
    // Named models keep concatenation, and their descriptions do not mention it.
    let json = serde_json::to_string(&concat).unwrap();
    assert!(!json.contains("aggregate"));
    assert!(serde_json::to_string(&big)
        .unwrap()
        .contains("\"aggregate\":\"sum\""));
    // Only the dense and sparse families aggregate by choice.
    let mut res = NetSpec::new(Family::Res, Layout::Cifar, 20, &[], false, 10);
    res.aggregate = Aggregate::Sum;
    assert!(build(&res)
        .unwrap_err()
        .to_string()
        .contains("dense and sparse"));
}

#[test]
fn mixed_and_dual_aggregation_by_hand() {
    // Sparse, depth 7 (one layer per block), 3 classes, 32×32×3, stem 2k = 4.
    // Mixed link, 1 channel summed and k = 2 concatenated per layer:
    //   stem 108
    //   block1 (C0 = 4): projection 4→1: 4; layer1 reads [P(x0) (1 ch); x0 (4 ch)] = 5 ch:
    //     BN 10 + conv 5→1 (45) + conv 5→2 (90) = 145; output [s1 + s0; c1; c0] = 1 + 2 + 4 = 7
    //   transition1: BN(7) 14 + conv 7→7 49 = 63
    //   block2 (C0 = 7): projection 7; layer1 on 8 ch: 16 + 72 + 144 = 232; output 1 + 2 + 7 = 10
    //   transition2: 20 + 100 = 120
    //   block3 (C0 = 10): projection 10; layer1 on 11 ch: 22 + 99 + 198 = 319; output 13
    //   head: BN(13) 26 + linear 13→3 42 = 68
    //   total 108 + 149 + 63 + 239 + 120 + 329 + 68 = 1076
    let mut spec = NetSpec::new(Family::Sparse, Layout::Cifar, 7, &[2], false, 3);
    spec.aggregate = Aggregate::Mixed { sum: 1 };
    assert_eq!(build_and_count(&spec).unwrap().1.params, 1076);
    assert_eq!(spec.to_string(), "sparsenet-7-2-mixed1 (cifar, 3 classes)");
    // Dual path, k = 2:
    //   block1 (C0 = 4): layer1 reads x0 (the residual path alone, 4 ch):
    //     BN 8 + conv 4→4 (144) + conv 4→2 (72) = 224; output [r1 + r0; d1] = 4 + 2 = 6
    //   transition1: 12 + 36 = 48
    //   block2 (C0 = 6): 12 + 324 + 108 = 444; output 8;  transition2: 16 + 64 = 80
    //   block3 (C0 = 8): 16 + 576 + 144 = 736; output 10;  head: 20 + 33 = 53
    //   total 108 + 224 + 48 + 444 + 80 + 736 + 53 = 1693
    spec.aggregate = Aggregate::Dual;
    let (net, c) = build_and_count(&spec).unwrap();
    assert_eq!(c.params, 1693);
    // Each layer's contribution is two nodes (the residual and the dense part).
    assert_eq!(net.blocks[0].layers[0].also.len(), 1);
    assert_eq!(net.blocks[0].aggregation, crate::dag::Aggregation::Dual);
}

#[test]
fn the_comparison_systems_count_as_published() {
    // LeNet-300-100: 784·300 + 300, 300·100 + 100, 100·10 + 10.
    let lenet300 = 235_500 + 30_100 + 1_010;
    // LeNet-5 (Caffe): 20·25 + 20, 50·20·25 + 50, 800·500 + 500, 500·10 + 10.
    let lenet5 = 520 + 25_050 + 400_500 + 5_010;
    // WRN-16-8, two units per stage: stem 3·16·9; stage 1 unit 1 BN(16) + 16·128·9 + BN(128) +
    // 128·128·9 + shortcut 16·128, unit 2 2·(BN(128) + 128·128·9); stages 2 and 3 alike;
    // head BN(512) + 512·10 + 10.
    let wrn = 432
        + (32 + 18_432 + 256 + 147_456 + 2_048)
        + 2 * (256 + 147_456)
        + (256 + 294_912 + 512 + 589_824 + 32_768)
        + 2 * (512 + 589_824)
        + (512 + 1_179_648 + 1_024 + 2_359_296 + 131_072)
        + 2 * (1_024 + 2_359_296)
        + 1_024
        + 5_130;
    assert_eq!(wrn, 10_961_370);
    // AlexNet and VGG-16: torchvision's documented counts (models' `num_params`).
    for (name, want) in [
        ("lenet-300-100", lenet300),
        ("lenet-5", lenet5),
        ("wrn-16-8", wrn),
        ("alexnet", 61_100_840),
        ("vgg-16", 138_357_544),
    ] {
        let (_, c) = build_and_count(&named(name).unwrap().spec(None)).unwrap();
        assert_eq!(c.params, want, "{name}");
        assert_eq!(
            c.bn_running > 0,
            name == "wrn-16-8",
            "{name}: batch norm only in WRN"
        );
    }
    // The other VGG configurations, torchvision's counts.
    for (depth, want) in [(11, 132_863_336), (13, 133_047_848), (19, 143_667_240)] {
        let spec = NetSpec::new(Family::Vgg, Layout::Imagenet, depth, &[], false, 1000);
        assert_eq!(
            build_and_count(&spec).unwrap().1.params,
            want,
            "vgg-{depth}"
        );
    }
    // A dropout layer changes no count: WRN with dropout has the same parameters.
    let mut spec = named("wrn-16-8").unwrap().spec(None);
    spec.dropout = Some(crate::op::Prob::new(0.3).unwrap());
    let net = build(&spec).unwrap();
    assert_eq!(count(&net).params, wrn);
    let drops = net
        .graph
        .node_indices()
        .filter(|&n| matches!(net.graph[n].op, Op::Dropout { .. }))
        .count();
    assert_eq!(drops, 6, "one per unit, between its convolutions");
}

#[test]
fn dropout_sits_where_torchvision_puts_it() {
    // VGG: fc-ReLU-dropout twice, then the classifier; AlexNet: dropout-fc-ReLU twice.
    let readers = |name: &str| -> Vec<String> {
        let net = build(&named(name).unwrap().spec(None)).unwrap();
        net.graph
            .node_indices()
            .filter(|&n| matches!(net.graph[n].op, Op::Dropout { .. }))
            .map(|n| {
                let r = net
                    .graph
                    .neighbors_directed(n, petgraph::Direction::Outgoing)
                    .next()
                    .unwrap();
                net.graph[r].name.clone()
            })
            .collect()
    };
    assert_eq!(readers("vgg-16"), ["classifier.fc2", "classifier.fc3"]);
    assert_eq!(readers("alexnet"), ["classifier.fc1", "classifier.fc2"]);
}

#[test]
fn the_comparison_systems_refuse_what_they_cannot_build() {
    let err = |spec: NetSpec| build(&spec).unwrap_err().to_string();
    assert!(err(NetSpec::new(
        Family::Wide,
        Layout::Cifar,
        18,
        &[8],
        false,
        10
    ))
    .contains("multiple of 6"));
    assert!(err(NetSpec::new(
        Family::Wide,
        Layout::Cifar,
        16,
        &[],
        false,
        10
    ))
    .contains("widening factor"));
    assert!(err(NetSpec::new(
        Family::Wide,
        Layout::Imagenet,
        16,
        &[8],
        false,
        10
    ))
    .contains("cifar layout only"));
    assert!(err(NetSpec::new(
        Family::Vgg,
        Layout::Imagenet,
        17,
        &[],
        false,
        10
    ))
    .contains("11, 13, 16, 19"));
    assert!(
        err(NetSpec::new(Family::Mlp, Layout::Mnist, 3, &[], false, 10)).contains("hidden widths")
    );
    assert!(err(NetSpec::new(
        Family::Mlp,
        Layout::Mnist,
        4,
        &[300, 100],
        false,
        10
    ))
    .contains("depth 3"));
    assert!(err(NetSpec::new(
        Family::Lenet,
        Layout::Mnist,
        5,
        &[20, 50],
        false,
        10
    ))
    .contains("three widths"));
    assert!(err(NetSpec::new(
        Family::Alexnet,
        Layout::Imagenet,
        7,
        &[],
        false,
        10
    ))
    .contains("8 layers"));
    assert!(err(NetSpec::new(
        Family::Dense,
        Layout::Mnist,
        40,
        &[12],
        false,
        10
    ))
    .contains("(mnist) layout"));
    let mut small = NetSpec::new(Family::Vgg, Layout::Imagenet, 16, &[], false, 10);
    small.input = Some(Shape::new(1, 28, 28));
    assert!(err(small).contains("at least 32×32"));
    let mut small = NetSpec::new(Family::Alexnet, Layout::Imagenet, 8, &[], false, 10);
    small.input = Some(Shape::new(3, 32, 32));
    assert!(err(small).contains("AlexNet does not fit"));
    let mut dropped = NetSpec::new(Family::Dense, Layout::Cifar, 40, &[12], false, 10);
    dropped.dropout = Some(crate::op::Prob::new(0.2).unwrap());
    assert!(err(dropped).contains("no dropout layers"));
}

#[test]
fn fractalnet_21_by_hand_and_the_printed_figure_it_does_not_reach() {
    // Five blocks of C = 3 columns: 7 convolutions each, 3 reading the block input (the first
    // of each column) and 4 reading the block's width; widths 64, 128, 256, 512, 512.
    let widths = [(3, 64), (64, 128), (128, 256), (256, 512), (512, 512)];
    let convs: usize = widths
        .iter()
        .map(|&(i, w)| 3 * 9 * i * w + 4 * 9 * w * w)
        .sum();
    let bn: usize = widths.iter().map(|&(_, w)| 7 * 2 * w).sum();
    let fc = 512 * 10 + 10;
    let (net, c) = build_and_count(&named("fractalnet-21").unwrap().spec(None)).unwrap();
    assert_eq!(c.params as usize, convs + bn + fc);
    assert_eq!(c.params, 33_724_618);
    // The SparseNet paper prints 38.6M; the released definition gives 33.7M.
    let row = super::row::named_row(named("fractalnet-21").unwrap(), None).unwrap();
    assert_eq!(row.params_agree, Some(false));
    // Each block: 7 convolutions, joins at rows 2 (2 inputs) and 4 (3 inputs, the output).
    let joins: Vec<usize> = net
        .graph
        .node_indices()
        .filter(|&n| matches!(net.graph[n].op, Op::MeanJoin { .. }))
        .map(|n| net.inputs(n).len())
        .collect();
    assert_eq!(joins.len(), 10);
    assert_eq!(&joins[..2], &[2, 3]);
    assert_eq!(net.blocks.len(), 5);
    assert_eq!(
        net.blocks[0].view.edges(),
        sparsenet_analysis::fractal::fractal_block(3)
            .unwrap()
            .edges()
    );
    // 28×28 fits four blocks, not five.
    let mut s = NetSpec::new(Family::Fractal, Layout::Cifar, 17, &[3], false, 10);
    s.input = Some(Shape::new(1, 28, 28));
    assert!(build(&s).is_ok());
    s.depth = 21;
    assert!(build(&s).unwrap_err().to_string().contains("fewer blocks"));
    let mut s = NetSpec::new(Family::Fractal, Layout::Cifar, 21, &[3], false, 10);
    s.dropout = Some(crate::op::Prob::new(0.1).unwrap());
    assert!(build(&s)
        .unwrap_err()
        .to_string()
        .contains("no dropout layers"));
    let mut s = NetSpec::new(Family::Dense, Layout::Cifar, 40, &[12], false, 10);
    s.drop_path = Some(crate::op::Prob::new(0.1).unwrap());
    assert!(build(&s).unwrap_err().to_string().contains("no joins"));
}

/// MixNet's parameters unit by unit as the authors' code allocates them (stem 3×3 to
/// `max(2k₂, k₁)`; per unit two branches BN(C)-1×1 to 4k-BN(4k)-3×3 to k; `C += k₂`;
/// transitions BN(C)-1×1 to `max(⌊C/2⌋, k₁)`; head BN(C)-linear).
fn mixnet_by_hand(depth: usize, k: usize, classes: usize) -> usize {
    let n = (depth - 4) / 6;
    let mut c = 2 * k;
    let mut p = 3 * c * 9;
    for block in 0..3 {
        for _ in 0..n {
            p += 2 * (2 * c + c * 4 * k + 2 * 4 * k + 4 * k * k * 9);
            c += k;
        }
        if block < 2 {
            let out = (c / 2).max(k);
            p += 2 * c + c * out;
            c = out;
        }
    }
    p + 2 * c + c * classes + classes
}

/// A DPN's parameters stage by stage (Chen et al. 2017): projection BN(C)-1×1 to bw + 2·inc in
/// a stage's first unit, then BN(C)-1×1 to r, BN(r)-grouped 3×3 (r·r/G·9), BN(r)-1×1 to
/// bw + inc; C becomes bw + 3·inc after the first unit and grows by inc after each other one.
fn dpn_by_hand(
    (stem, k_r, groups): (usize, usize, usize),
    units: [usize; 4],
    inc: [usize; 4],
    classes: usize,
) -> usize {
    let mut p = 3 * stem * 49 + 2 * stem;
    let mut c = stem;
    for s in 0..4 {
        let (bw, r) = (256 << s, k_r << s);
        for u in 0..units[s] {
            if u == 0 {
                p += 2 * c + c * (bw + 2 * inc[s]);
            }
            p += 2 * c + c * r + 2 * r + r * (r / groups) * 9 + 2 * r + r * (bw + inc[s]);
            c = if u == 0 { bw + 3 * inc[s] } else { c + inc[s] };
        }
    }
    p + 2 * c + c * classes + classes
}

#[test]
fn mixnet_and_dpn_by_hand_and_the_printed_figures() {
    let (_, c) = build_and_count(&named("mixnet-100").unwrap().spec(None)).unwrap();
    assert_eq!(c.params as usize, mixnet_by_hand(100, 12, 10));
    assert_eq!(c.params, 1_464_202);
    let row = super::row::named_row(named("mixnet-100").unwrap(), None).unwrap();
    assert_eq!(row.params_agree, Some(true), "1.46M is the printed 1.5M");
    for (depth, k) in [(10, 4), (16, 6)] {
        let spec = NetSpec::new(Family::Mixnet, Layout::Cifar, depth, &[k], false, 100);
        assert_eq!(
            build_and_count(&spec).unwrap().1.params as usize,
            mixnet_by_hand(depth, k, 100),
            "mixnet-{depth}-{k}"
        );
    }
    // The inner link lands on the last k₁ channels: in block 1 unit 2 it is added to unit 1's
    // outer link, so each unit adds one sum and the block input is cut once.
    let net = build(&named("mixnet-100").unwrap().spec(None)).unwrap();
    let sums = net
        .graph
        .node_indices()
        .filter(|&n| matches!(net.graph[n].op, Op::Sum))
        .count();
    assert_eq!(sums, 48, "one per unit");

    let (net, c) = build_and_count(&named("dpn-92").unwrap().spec(None)).unwrap();
    let want = dpn_by_hand((64, 96, 32), [3, 4, 20, 3], [16, 32, 24, 128], 1000);
    assert_eq!(c.params as usize, want);
    assert_eq!(c.params, 37_668_392);
    // The printed 37.8M is reached with batch norm's running mean and variance counted.
    assert_eq!(c.params + c.bn_running, 37_793_608);
    let row = super::row::named_row(named("dpn-92").unwrap(), None).unwrap();
    assert_eq!(row.params_agree, Some(false));
    let grouped: Vec<usize> = net
        .graph
        .node_indices()
        .filter_map(|n| match net.graph[n].op {
            Op::Conv { groups, .. } if groups > 1 => Some(groups),
            _ => None,
        })
        .collect();
    assert_eq!(grouped.len(), 30, "one grouped 3×3 per unit");
    assert!(grouped.iter().all(|&g| g == 32));
    // The paper's 6.5 × 10⁹ FLOPs count multiply-adds: ours are 6.50 G.
    assert_eq!(c.macs / 10_000_000, 650);
    for (depth, cfg, units, inc) in [
        (98, (96, 160, 40), [3, 6, 20, 3], [16, 32, 32, 128]),
        (131, (128, 160, 40), [4, 8, 28, 3], [16, 32, 32, 128]),
    ] {
        let spec = NetSpec::new(Family::Dpn, Layout::Imagenet, depth, &[], false, 1000);
        assert_eq!(
            build_and_count(&spec).unwrap().1.params as usize,
            dpn_by_hand(cfg, units, inc, 1000),
            "dpn-{depth}"
        );
    }
    let err = |spec: NetSpec| build(&spec).unwrap_err().to_string();
    assert!(err(NetSpec::new(
        Family::Mixnet,
        Layout::Cifar,
        100,
        &[12, 6],
        false,
        10
    ))
    .contains("k₁ = k₂"));
    assert!(err(NetSpec::new(
        Family::Mixnet,
        Layout::Cifar,
        99,
        &[12],
        false,
        10
    ))
    .contains("multiple of 6"));
    assert!(err(NetSpec::new(
        Family::Dpn,
        Layout::Imagenet,
        93,
        &[],
        false,
        10
    ))
    .contains("accepted 68, 92"));
    assert!(err(NetSpec::new(
        Family::Dpn,
        Layout::Imagenet,
        92,
        &[4],
        false,
        10
    ))
    .contains("leave out the widths"));
    assert!(
        err(NetSpec::new(Family::Dpn, Layout::Cifar, 92, &[], false, 10))
            .contains("imagenet layout only")
    );
}

/// The aggregation operators are one list: every kind parses from its name, and every
/// operator's kind gives it back with its widths.
#[test]
fn aggregation_operators_are_one_list() {
    use super::AggregateKind;
    assert_eq!(AggregateKind::ALL.len(), 5);
    for &k in AggregateKind::ALL {
        assert_eq!(AggregateKind::parse(k.name()).unwrap(), k);
        assert!(!k.help().is_empty());
    }
    assert!(AggregateKind::parse("maximum").is_err());
    for a in [
        Aggregate::Concat,
        Aggregate::Sum,
        Aggregate::Mixed { sum: 6 },
        Aggregate::Dual,
    ] {
        assert_eq!(a.kind().with_widths(6), a);
        assert_eq!(a.name(), a.kind().name());
    }
}

/// The max operator is sum's wiring with maxima in place of sums: the same parameters, a
/// maximum wherever sum has a sum, and its kind recorded on the blocks.
#[test]
fn max_is_sums_wiring_with_maxima() {
    let mut sum = NetSpec::new(Family::Sparse, Layout::Cifar, 22, &[12], false, 10);
    sum.aggregate = Aggregate::Sum;
    let mut max = sum.clone();
    max.aggregate = Aggregate::Max;
    let (s, cs) = build_and_count(&sum).unwrap();
    let (m, cm) = build_and_count(&max).unwrap();
    assert_eq!(cs.params, cm.params);
    let ops = |n: &NetGraph, op: Op| n.graph.node_weights().filter(|w| w.op == op).count();
    assert!(ops(&s, Op::Sum) > 0);
    assert_eq!(ops(&m, Op::Max), ops(&s, Op::Sum));
    assert_eq!(ops(&m, Op::Sum), 0);
    assert!(m
        .blocks
        .iter()
        .all(|b| b.aggregation == crate::dag::Aggregation::Max));
    assert_eq!(max.to_string(), "sparsenet-22-12-max (cifar, 10 classes)");
}
