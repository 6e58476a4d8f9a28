//! The full analysis of plain, res, dense and sparse blocks (exact path counts, path-length
//! histograms, all-pairs gradient statistics), as `paths` computes it. Peer: networkx, timed by
//! `benches/paths_vs_networkx.sh` in the same run. Results in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sparsenet_analysis::{analyze_many, Pattern, Topology};
use std::time::Duration;

fn blocks(n: usize) -> Vec<Topology> {
    [
        Pattern::Plain,
        Pattern::Res,
        Pattern::Dense,
        Pattern::Sparse { base: 2 },
    ]
    .into_iter()
    .map(|p| Topology::new(p, n).expect("valid depth"))
    .collect()
}

fn full_analysis(c: &mut Criterion) {
    let mut g = c.benchmark_group("four_topologies");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in [100usize, 1000] {
        let tops = blocks(n);
        g.bench_with_input(BenchmarkId::new("with_histograms", n), &tops, |b, t| {
            b.iter(|| analyze_many(t, true))
        });
    }
    for n in [10_000usize, 100_000] {
        let tops = blocks(n);
        g.bench_with_input(
            BenchmarkId::new("counts_and_gradients", n),
            &tops,
            |b, t| b.iter(|| analyze_many(t, false)),
        );
    }
    g.finish();
}

criterion_group!(benches, full_analysis);
criterion_main!(benches);
