"""Writes the notebooks from the cell lists below (so their source is reviewable as text).

usage: python3 notebooks/make_notebooks.py     (rewrites notebooks/*.ipynb; outputs are empty)
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

SETUP = """:cache 4000
:dep sparsenet = { path = ".." }"""

SHOW = """// Show an SVG file inline (evcxr's rich-output protocol).
fn show(path: &std::path::Path) {
    let svg = std::fs::read_to_string(path).expect("figure written");
    println!("EVCXR_BEGIN_CONTENT image/svg+xml\\n{svg}\\nEVCXR_END_CONTENT");
}
let figs = std::env::temp_dir().join("sparsenet-notebooks");"""


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n").splitlines(True)}


def code(text):
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
            "source": text.strip("\n").splitlines(True)}


NOTEBOOKS = {
    "claims.ipynb": [
        md("""
# The claims of *Sparsely Aggregated Convolutional Networks*, checked in code

Four blocks of depth N = 100 — plain, ResNet (sum), DenseNet (concatenation) and SparseNet
(concatenation at offsets 1, 2, 4, …) — as DAGs. Every number below is exact and computed live."""),
        code(SETUP),
        code(SHOW),
        md("## Connections, exact path counts, gradient paths"),
        code("""
use sparsenet::graph::{Report, ReportOptions};
let report = Report::compute(&ReportOptions::new(100)).unwrap();
for t in &report.topologies {
    println!("{:8} {:6} connections  {:>32} paths  gradient path max {:3} mean {:.3}",
             t.name, t.connections, t.paths.to_string(), t.gradient_path_max, t.gradient_path_mean);
}"""),
        md("""
DenseNet has 2^99 paths — exactly — and so does ResNet: the number of paths does not tell them
apart. SparseNet keeps a path of at most popcount(ℓ − j) ≤ 6 hops between any two layers with
580 connections instead of 5 050."""),
        code("""
for c in &report.claims {
    println!("{} {}\\n    {}\\n    {}", if c.holds { "✓" } else { "✗" }, c.name, c.statement, c.detail);
}
assert!(report.all_claims_hold(), "a claim failed");"""),
        md("## The Res ↔ Dense bijection on a small example (N = 3)"),
        code("""
use sparsenet::graph::bijection::{enumerate_paths, res_to_dense, check_bijection};
use sparsenet::graph::unraveled::{UnraveledResNet, UnitNode};
let res = UnraveledResNet::new(3);
for p in enumerate_paths(&res.graph, res.input(), res.output()) {
    let runs: Vec<String> = p.iter().filter_map(|&n| match res.graph[n] { UnitNode::Residual(i) => Some(format!("F{i}")), _ => None }).collect();
    let dense: Vec<usize> = res_to_dense(&res, &p).iter().map(|n| n.index()).collect();
    println!("ResNet path through {:12} ↦ DenseNet path x{:?}", if runs.is_empty() { "identity".to_string() } else { runs.join("+") }, dense);
}
let check = check_bijection(12).unwrap();
println!("N = 12: {} ResNet paths, {} DenseNet paths, bijective: {}", check.res_paths, check.dense_paths, check.bijective);
assert!(check.bijective && check.inverse_ok);"""),
        md("## Path lengths (the ensemble view), gradient paths, and the base sweep"),
        code("""
let files = sparsenet::plot::figures::paths_figures(&report, &figs).unwrap();
show(&figs.join("path_lengths.svg"));
show(&figs.join("gradient_paths.svg"));"""),
        code("""
for b in &report.bases {
    println!("c = {:2}: {:4} connections, worst {:2} hops (bound {:2}), mean {:.3}, (c−1)/log2 c = {:.3}",
             b.base, b.connections, b.gradient_path_max, b.bound, b.gradient_path_mean, b.factor);
}
show(&figs.join("base_sweep_paths.svg"));
show(&figs.join("base_sweep_connections.svg"));
assert_eq!(files.len(), 8);"""),
    ],
    "parameters.ipynb": [
        md("""
# The zoo against the paper's tables

Whole networks — stem, blocks wired from the topology DAGs, transitions, head — with exact
parameter and FLOP counts beside the figures printed in the papers."""),
        code(SETUP),
        code(SHOW),
        code("""
use sparsenet::net::zoo::{named_row, ZOO};
let rows: Vec<_> = ZOO.iter().map(|m| named_row(m, None).unwrap()).collect();
for r in &rows {
    let verdict = match (r.paper_params, r.params_agree) {
        (Some(p), Some(true)) => format!("{p}M ✓"),
        (Some(p), Some(false)) => format!("{p}M ✗ ({:+.3}M)", r.params as f64 / 1e6 - p),
        _ => "—".into(),
    };
    println!("{:28} {:>10} params  paper {:18} {:7.3} GFLOPs", r.name, r.params, verdict, r.flops as f64 / 1e9);
}
assert_eq!(rows.iter().find(|r| r.name == "densenet-121").unwrap().params, 7_978_856);"""),
        md("""
The mismatches are listed in the README: the two (32, 64, 128) SparseNet rows come out at 28.7M
and 17.3M, as in public re-implementations; the counts are not tuned to the paper.

## Parameters against depth: O(n²) against O(n lg n)"""),
        code("""
use sparsenet::net::zoo::{depth_sweep, fit_exponent};
let depths = [16usize, 28, 40, 64, 100, 160, 250, 400, 640, 1000];
let sweep = depth_sweep(12, &depths).unwrap();
for (d, dense, sparse) in &sweep { println!("depth {d:5}: DenseNet {dense:>10}  SparseNet {sparse:>9}  ratio {:.1}", *dense as f64 / *sparse as f64); }
let xs: Vec<f64> = sweep[5..].iter().map(|r| r.0 as f64).collect();
let a_dense = fit_exponent(&xs, &sweep[5..].iter().map(|r| r.1 as f64).collect::<Vec<_>>());
let a_sparse = fit_exponent(&xs, &sweep[5..].iter().map(|r| r.2 as f64).collect::<Vec<_>>());
println!("fitted exponents: DenseNet {a_dense:.2}, SparseNet {a_sparse:.2}");
assert!(a_dense > 1.9 && a_sparse < 1.4);"""),
        code("""
sparsenet::plot::figures::zoo_figures(&figs, 12, &depths).unwrap();
show(&figs.join("params_vs_depth.svg"));
show(&figs.join("param_efficiency.svg"));"""),
    ],
    "training.ipynb": [
        md("""
# Training a SparseNet and a DenseNet from their DAGs

Both networks are built by the zoo and trained by the same interpreter on the Fashion-MNIST
subset committed with the project (2 000 training and 500 test images), for a few epochs."""),
        code(SETUP + "\n:opt 2"),
        code(SHOW),
        code("""
use sparsenet::net::zoo::{Family, Layout, NetSpec};
use sparsenet::optim::{Config, Optimizer, Schedule};
use sparsenet::train::{run, TrainOptions};
use std::path::Path;
fn options(family: Family, growth: usize, name: &str, figs: &Path) -> TrainOptions {
    TrainOptions {
    spec: NetSpec::new(family, Layout::Cifar, 10, &[growth], false, 10),
    name: name.to_string(),
    dataset: sparsenet::data::DatasetKind::FashionMnist,
    data_dir: Some("../src/data/fashion-mnist-subset".into()),
    folder: None,
    epochs: 4,
    batch_size: 64,
    lr: 0.1,
    schedule: Schedule::Cosine,
    optimizer: Config { kind: Optimizer::Sgd, momentum: 0.9, nesterov: true, weight_decay: 1e-4 },
    seed: 0,
    max_steps: None,
    out: figs.join(name),
    resume: false,
    progress: false,
    max_test: None,
    stop_after: None,
    device: sparsenet::train::DeviceKind::Cpu,
    gpus: None,
    group: None,
    max_memory: None,
    data: Default::default(),
    // Rerunning the notebook replaces its earlier run (a fresh run into a run's folder is refused without it).
    overwrite: true,
    epoch_bar: None,
    init_from: None,
    key_map: Default::default(),
    }
}"""),
        code("""
let mut log = Vec::new();
let sparse = run(&options(Family::Sparse, 8, "sparsenet-10-8", &figs), &mut log).unwrap();
let dense = run(&options(Family::Dense, 6, "densenet-10-6", &figs), &mut log).unwrap();
println!("{}", String::from_utf8_lossy(&log));
println!("SparseNet: {} parameters, DenseNet: {} parameters", sparse.params, dense.params);"""),
        code("""
use sparsenet::plot::{save, Chart, Mark, Series};
fn curve(s: &sparsenet::train::RunSummary) -> Vec<(f64, f64)> {
    s.epochs.iter().map(|m| (m.epoch as f64, m.test_acc)).collect()
}
save(&Chart {
    title: "Test accuracy on the Fashion-MNIST subset".into(),
    x_label: "epoch".into(),
    y_label: "accuracy".into(),
    series: vec![
        Series::new(format!("SparseNet-10-8 ({} params)", sparse.params), curve(&sparse), Mark::LinePoints),
        Series::new(format!("DenseNet-10-6 ({} params)", dense.params), curve(&dense), Mark::LinePoints),
    ],
}, &figs, "two_networks").unwrap();
show(&figs.join("two_networks.svg"));
assert!(sparse.best.unwrap().0 > 0.5 && dense.best.unwrap().0 > 0.5, "both learn far above chance");"""),
    ],
    "experiments.ipynb": [
        md("""
# Experiments on trained networks: efficiency, connection usage, lesions

The three `study` experiments through the library. With `SPARSENET_STUDY` set to a finished
study's folder (e.g. `runs/study-quick` after `sparsenet study efficiency --preset quick`), the notebook
reads it and trains nothing. Otherwise it runs the quick preset at smoke size — one seed,
2 epochs of 4 steps, 100 test images — so the figures below then show the pipeline working, not
the paper's claims: the README shows the figures of a full quick-preset run."""),
        code(SETUP + "\n:opt 2"),
        code(SHOW),
        code("""
use sparsenet::study::{self, efficiency, lesion};
use sparsenet::study::grid;
use sparsenet::optim::{Config, Optimizer, Schedule};
use sparsenet::train::TrainOptions;
let finished = std::env::var_os("SPARSENET_STUDY").map(std::path::PathBuf::from);
let smoke = finished.is_none();
let recipe = TrainOptions {
    spec: sparsenet::net::zoo::named("sparsenet-40-24").unwrap().spec(None), // replaced per run
    name: String::new(),
    dataset: sparsenet::data::DatasetKind::FashionMnist,
    data_dir: Some("../src/data/fashion-mnist-subset".into()),
    folder: None,
    epochs: if smoke { 2 } else { 6 },
    batch_size: 64,
    lr: 0.1,
    schedule: Schedule::Step,
    optimizer: Config { kind: Optimizer::Sgd, momentum: 0.9, nesterov: true, weight_decay: 1e-4 },
    seed: 0,
    max_steps: if smoke { Some(4) } else { None },
    out: figs.clone(),
    resume: false,
    progress: false,
    max_test: if smoke { Some(100) } else { None },
    stop_after: None,
    device: sparsenet::train::DeviceKind::Cpu,
    gpus: None,
    group: None,
    max_memory: None,
    data: Default::default(),
    // Rerunning the notebook replaces its earlier run (a fresh run into a run's folder is refused without it).
    overwrite: true,
    epoch_bar: None,
    init_from: None,
    key_map: Default::default(),
};
let st = efficiency::Study {
    grid: grid::preset(grid::Preset::Quick),
    seeds: if smoke { vec![1] } else { vec![1, 2] },
    recipe,
    jobs: 1,
    out: finished.clone().unwrap_or_else(|| figs.join("study-smoke")),
    shard: efficiency::Shard::WHOLE,
};
let results: Vec<efficiency::RunResult> = if smoke {
    let mut log = Vec::new();
    efficiency::run(&st, &mut log).unwrap()
} else {
    efficiency::read_results(&st.out).unwrap()
};
println!("{}", efficiency::report(&st, &results).unwrap());
show(&st.out.join("error_vs_params.svg"));
show(&st.out.join("error_vs_flops.svg"));"""),
        md("""
## Connection usage of the trained SparseNet

Entry (s, ℓ): mean |w| of layer ℓ's first convolution over the channels that come from source s,
divided by the block's largest entry; blank where layer ℓ does not read s."""),
        code("""
// A checkpoint of the study's first run of a family (evcxr keeps only owned values between cells).
fn checkpoint_of(st: &efficiency::Study, fam: sparsenet::net::zoo::Family) -> std::path::PathBuf {
    let e = st.grid.iter().find(|e| e.spec.family == fam).unwrap();
    efficiency::run_dir(&st.out, &efficiency::short_name(e), 1).join("last.safetensors")
}
let ck = checkpoint_of(&st, sparsenet::net::zoo::Family::Sparse);
let (usage, _) = study::weights::report(&ck, &figs).unwrap();
for b in &usage.blocks { println!("{}: {} layers", b.name, b.layers); }
show(&figs.join("weights.svg"));"""),
        md("## Lesions: layers removed at test time"),
        code("""
let sweep = lesion::Sweep { max_k: 3, draws: 2, seed: 0, batch: 100, limit: Some(100) };
let mut results = Vec::new();
for fam in [sparsenet::net::zoo::Family::Sparse, sparsenet::net::zoo::Family::Res] {
    let r = study::lesion::run(&checkpoint_of(&st, fam), sweep, None, |_, _| {}).unwrap();
    println!("{}: baseline {:.3}; rule: {}", r.network, r.baseline_acc, r.rule);
    results.push(r);
}
study::lesion::report(&results, &figs).unwrap();
show(&figs.join("lesion_single.svg"));
show(&figs.join("lesion_random.svg"));"""),
    ],
}

PANICS = [md("A notebook that must fail: its code cell panics."),
          code('let v: Vec<u32> = Vec::new();\nprintln!("{}", v[3]);')]


def write(path, cells):
    nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Rust", "language": "rust", "name": "rust"},
                                       "language_info": {"name": "rust"}}, "nbformat": 4, "nbformat_minor": 5}
    for i, c in enumerate(cells):
        c["id"] = f"cell-{i}"
    with open(path, "w") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        write(os.path.join(HERE, name), cells)
    write(os.path.join(HERE, "tests", "panics.ipynb"), PANICS)
    print("wrote", ", ".join(NOTEBOOKS), "and tests/panics.ipynb")
